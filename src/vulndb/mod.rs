//! Offline OSV vulnerability database: import, per-ecosystem version ordering, matching.

pub mod cvss;
pub mod ecosystem;
pub mod osv;
pub mod version;
