//! pullwarden: a node daemon on the CRI image service socket. Every image pull passes
//! through it; before a pull may complete, the image's signatures are verified and its
//! layers scanned, and the verdict is recorded by digest. See DESIGN.md for the data flow.

// Unit tests build fixtures with narrowing casts of small known values.
#![cfg_attr(test, allow(clippy::cast_possible_truncation))]

pub mod accept;
pub mod admin;
pub mod app;
pub mod audit;
pub mod cli;
pub mod config;
pub mod containerd;
pub mod cri;
pub mod dial;
pub mod digest;
pub mod doctor;
pub mod engine;
pub mod fleet;
pub mod gate;
pub mod metrics;
pub mod oci;
pub mod percent;
pub mod platform;
pub mod policy;
pub mod reference;
pub mod registry;
pub mod report;
pub mod rescore;
pub mod rfc3339;
pub mod scan;
pub mod snapshot;
pub mod store;
pub mod verify;
pub mod vex;
pub mod vulndb;
