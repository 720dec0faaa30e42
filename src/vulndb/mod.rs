//! Offline OSV vulnerability database: import, per-ecosystem version ordering, matching.
