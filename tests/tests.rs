//! The one integration test binary (see STYLE.md): each module is one area.
//! Tests that need the real registry and containerd read them from the environment
//! that `integration/test.sh` sets up.

mod scan;
mod support;
