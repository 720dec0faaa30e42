//! Pure policy evaluation: (image, signature outcome, scan report) → verdict. No I/O.

pub mod verdict;
pub mod vulns;

pub use verdict::{Decision, DenyKind, Findings, Verdict};
