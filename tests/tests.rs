//! The one integration test binary (see STYLE.md): each module is one area.
//! Tests that need the real registry and containerd read them from the environment
//! that `integration/test.sh` sets up.
// Test and bench code states expectations with unwrap/expect, indexing and casts.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

mod admin;
mod attacks;
mod attacks2;
mod config_files;
mod containerd_api;
mod cri_clients;
mod cri_proxy;
mod doctor;
mod fleet;
mod gate_e2e;
mod gate_flow;
mod hostile;
mod rescore;
mod sbom;
mod scan;
mod scan_final;
mod scan_lang;
mod scan_report;
mod scan_rpm;
mod scan_sources;
mod store;
mod support;
mod verify;
mod vex;
mod vex_keyless;
mod vulndb;
