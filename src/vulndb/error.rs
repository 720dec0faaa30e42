//! Failures of the vulnerability database: storage, schema, a file in use or corrupt.

use std::path::PathBuf;

use super::{SCHEMA, row};

#[derive(Debug, thiserror::Error)]
pub enum VulnDbError {
    #[error(
        "vulnerability database {path} is not usable (corrupt, truncated or not a redb file); \
         move it away and re-import"
    )]
    Corrupt {
        path: PathBuf,
        #[source]
        source: redb::DatabaseError,
    },
    #[error(
        "vulnerability database {path} is open in another process (the daemon?); \
         stop it or run the import through it"
    )]
    InUse { path: PathBuf },
    #[error(
        "{path} is not a pullwarden vulnerability database (schema {found:?}, expected {SCHEMA:?})"
    )]
    Schema { path: PathBuf, found: String },
    #[error("vulnerability database {path}: storage error")]
    Storage {
        path: PathBuf,
        #[source]
        source: redb::Error,
    },
    #[error("vulnerability database {path}: {what}")]
    Io {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("vulnerability database {path}: index row {key:?} is damaged")]
    DamagedRow {
        path: PathBuf,
        key: String,
        #[source]
        source: row::RowError,
    },
    #[error("vulnerability database {path}: stored entry {key:?} is unreadable")]
    StoredEntry {
        path: PathBuf,
        key: String,
        #[source]
        source: serde_json::Error,
    },
}
