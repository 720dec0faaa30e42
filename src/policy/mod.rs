//! Pure policy evaluation: (image, signature outcome, scan report) → verdict. No I/O.

pub mod findings;
pub mod fingerprint;
pub mod verdict;
pub mod vulns;

pub use verdict::{Decision, DenyKind, Findings, Verdict};
pub mod evaluate;
