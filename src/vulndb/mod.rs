//! Offline OSV vulnerability database: import of osv.dev exports into an embedded redb
//! store, per-ecosystem version ordering, and exact matching of an image's inventory.
//! One `VulnDb` is shared by every scan of the daemon; matching only reads.
//!
//! Layout (redb tables):
//! - `records`: advisory id → compact validated advisory (JSON);
//! - `affected`: `ecosystem-base \0 package-name \0 id` → that advisory's entries for the
//!   package (a prefix scan per installed package is the whole match cost);
//! - `aliases`: `alias \0 id` → id (severity of distro advisories from upstream records);
//! - `eco_counts`: OSV ecosystem string → records; `meta`: schema, version, counters.
//!
//! The database version is a digest of the content (an XOR of per-record hashes), so it
//! changes with every real change and is independent of import order; it is part of
//! every verdict cache key.

pub mod cvss;
pub mod ecosystem;
mod error;
mod import;
mod matcher;
pub mod osv;
pub mod row;
mod source;
pub mod version;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::report::{Distro, Package, Vulnerability};

use self::import::import_into;

const RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("records");
const AFFECTED: TableDefinition<&str, &[u8]> = TableDefinition::new("affected");
const ALIASES: TableDefinition<&str, &str> = TableDefinition::new("aliases");
const ECO_COUNTS: TableDefinition<&str, u64> = TableDefinition::new("eco_counts");
const META: TableDefinition<&str, &str> = TableDefinition::new("meta");

/// Bumped when the stored layout changes; an old file must be re-imported.
pub const SCHEMA: &str = "pullwarden-vulndb-1";
/// Version of an empty (or missing) database.
pub const EMPTY_VERSION: &str = "none";
/// File name under `[server] state_dir`.
pub const FILE_NAME: &str = "vulndb.redb";

pub use error::VulnDbError;
pub use matcher::Matcher;

/// Counts of one import. Every record read lands in exactly one of `added`, `updated`,
/// `unchanged`, `stale`, `withdrawn_removed`, `withdrawn_ignored`, `not_applicable`,
/// `skipped`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImportReport {
    pub records_read: u64,
    pub added: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Older than the stored record with the same id.
    pub stale: u64,
    pub withdrawn_removed: u64,
    pub withdrawn_ignored: u64,
    /// Valid records with nothing we can match (no supported ecosystem) and no severity.
    pub not_applicable: u64,
    /// Malformed records, by reason category.
    pub skipped: u64,
    pub skipped_by_reason: BTreeMap<String, u64>,
    /// The first few skipped records with their reasons.
    pub skipped_examples: Vec<String>,
    /// Ranges not evaluated: GIT (commit ranges), unknown types, bounds the ecosystem
    /// cannot parse; affected entries in ecosystems pullwarden does not order.
    pub git_ranges_ignored: u64,
    pub unknown_range_types: u64,
    pub unparseable_ranges: u64,
    pub unsupported_affected: u64,
    /// Sources that could not be opened at all (path and reason).
    pub failed_sources: Vec<String>,
    pub version_before: String,
    pub version_after: String,
    pub seconds: f64,
}

/// `pullwarden db status` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DbStatus {
    pub path: String,
    pub exists: bool,
    pub schema: String,
    pub version: String,
    pub records: u64,
    /// Records per OSV ecosystem string (`Debian:12`, `PyPI`, …).
    pub ecosystems: BTreeMap<String, u64>,
    pub newest_modified: Option<String>,
}

enum Handle {
    Read(redb::ReadOnlyDatabase),
    Write(redb::Database),
}

impl Handle {
    fn begin_read(&self) -> Result<redb::ReadTransaction, redb::TransactionError> {
        match self {
            Handle::Read(d) => d.begin_read(),
            Handle::Write(d) => d.begin_read(),
        }
    }
}

/// The offline vulnerability database. `Send + Sync`: share one instance.
pub struct VulnDb {
    path: PathBuf,
    handle: Option<Handle>,
    version: String,
    /// Identity of the file opened, None when it did not exist.
    file_id: Option<(u64, u64)>,
}

impl std::fmt::Debug for VulnDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VulnDb")
            .field("path", &self.path)
            .field("version", &self.version)
            .finish()
    }
}

impl VulnDb {
    /// Default location under the state directory.
    pub fn default_path(state_dir: &Path) -> PathBuf {
        state_dir.join(FILE_NAME)
    }

    /// Open for matching. A missing file is an empty database (version `none`); a
    /// corrupt, truncated or foreign file is an error.
    pub fn open(path: impl AsRef<Path>) -> Result<VulnDb, VulnDbError> {
        let path = path.as_ref().to_path_buf();
        if !path.exists() {
            return Ok(VulnDb {
                path,
                handle: None,
                version: EMPTY_VERSION.into(),
                file_id: None,
            });
        }
        let handle = match redb::ReadOnlyDatabase::open(&path) {
            Ok(db) => Handle::Read(db),
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(VulnDbError::InUse { path });
            }
            Err(_) => {
                // A writer killed mid-commit leaves a file that needs recovery, which a
                // read-only open refuses; a writable open repairs it (the last committed
                // import survives). Anything it cannot repair is corrupt.
                match redb::Database::open(&path) {
                    Ok(db) => Handle::Write(db),
                    Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                        return Err(VulnDbError::InUse { path });
                    }
                    Err(source) => return Err(VulnDbError::Corrupt { path, source }),
                }
            }
        };
        let file_id = file_id(&path);
        let mut db = VulnDb {
            path,
            handle: Some(handle),
            version: EMPTY_VERSION.into(),
            file_id,
        };
        db.version = db.read_version()?;
        Ok(db)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Content version: `none` when empty, else `osv-` and 16 hex digits.
    pub fn version(&self) -> String {
        self.version.clone()
    }

    fn storage(&self, e: impl Into<redb::Error>) -> VulnDbError {
        VulnDbError::Storage {
            path: self.path.clone(),
            source: e.into(),
        }
    }

    fn stored_entry(&self, key: &str, source: serde_json::Error) -> VulnDbError {
        VulnDbError::StoredEntry {
            path: self.path.clone(),
            key: key.to_string(),
            source,
        }
    }

    /// Read the schema and version; a file without our schema is refused.
    fn read_version(&self) -> Result<String, VulnDbError> {
        let Some(h) = &self.handle else {
            return Ok(EMPTY_VERSION.into());
        };
        let txn = h.begin_read().map_err(|e| self.storage(e))?;
        let meta = match txn.open_table(META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => {
                return Err(VulnDbError::Schema {
                    path: self.path.clone(),
                    found: String::new(),
                });
            }
            Err(e) => return Err(self.storage(e)),
        };
        let schema = meta
            .get("schema")
            .map_err(|e| self.storage(e))?
            .map(|v| v.value().to_string())
            .unwrap_or_default();
        if schema != SCHEMA {
            return Err(VulnDbError::Schema {
                path: self.path.clone(),
                found: schema,
            });
        }
        Ok(meta
            .get("version")
            .map_err(|e| self.storage(e))?
            .map(|v| v.value().to_string())
            .unwrap_or_else(|| EMPTY_VERSION.into()))
    }

    /// Import OSV sources (zip archives, directories, JSON files).
    ///
    /// Copy-on-write: the import runs on a copy (`<db>.importing`) which then replaces
    /// the database by rename. Readers that have the old file open (the daemon) keep a
    /// consistent view and are never locked out, an interrupted import leaves the old
    /// database untouched, and concurrent imports are serialised by `<db>.lock`.
    pub fn import(&mut self, paths: &[PathBuf]) -> Result<ImportReport, VulnDbError> {
        let started = Instant::now();
        let path = self.path.clone();
        let io = |what: &'static str, source: std::io::Error| VulnDbError::Io {
            path: path.clone(),
            what,
            source,
        };
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io("creating its directory", e))?;
        }
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(sibling(&self.path, "lock"))
            .map_err(|e| io("opening the import lock", e))?;
        lock.lock().map_err(|e| io("taking the import lock", e))?;
        // Under the lock, the file on disk is what the previous import left; match it.
        let mut report = ImportReport {
            version_before: match VulnDb::open(&self.path) {
                Ok(current) => current.version,
                Err(e) => return Err(e),
            },
            ..Default::default()
        };
        let work = sibling(&self.path, "importing");
        let _ = std::fs::remove_file(&work);
        if self.path.exists() {
            std::fs::copy(&self.path, &work).map_err(|e| io("copying for import", e))?;
        }
        let result = import_into(&work, paths, &mut report);
        if let Err(e) = result {
            let _ = std::fs::remove_file(&work);
            return Err(e);
        }
        std::fs::File::open(&work)
            .and_then(|f| f.sync_all())
            .map_err(|e| io("syncing the imported copy", e))?;
        std::fs::rename(&work, &self.path)
            .map_err(|e| io("replacing with the imported copy", e))?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // make the rename durable
            let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
        }
        self.handle = None;
        *self = VulnDb::open(&self.path)?;
        drop(lock);
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }

    /// True when the file at `path` is no longer the one this instance has open (an
    /// import replaced it): the daemon then opens a fresh instance and swaps it in.
    pub fn is_replaced(&self) -> bool {
        file_id(&self.path) != self.file_id
    }

    /// Counts and version, for `db status` and the daemon's status page.
    pub fn status(&self) -> Result<DbStatus, VulnDbError> {
        let mut st = DbStatus {
            path: self.path.display().to_string(),
            exists: self.handle.is_some(),
            schema: SCHEMA.into(),
            version: self.version.clone(),
            records: 0,
            ecosystems: BTreeMap::new(),
            newest_modified: None,
        };
        let Some(h) = &self.handle else {
            return Ok(st);
        };
        let txn = h.begin_read().map_err(|e| self.storage(e))?;
        let meta = txn.open_table(META).map_err(|e| self.storage(e))?;
        let get = |k: &str| -> Result<Option<String>, VulnDbError> {
            Ok(meta
                .get(k)
                .map_err(|e| self.storage(e))?
                .map(|v| v.value().to_string()))
        };
        st.records = get("records")?.and_then(|s| s.parse().ok()).unwrap_or(0);
        st.newest_modified = get("newest_modified")?.filter(|s| !s.is_empty());
        if let Ok(counts) = txn.open_table(ECO_COUNTS) {
            for row in counts.iter().map_err(|e| self.storage(e))? {
                let (k, v) = row.map_err(|e| self.storage(e))?;
                st.ecosystems.insert(k.value().to_string(), v.value());
            }
        }
        Ok(st)
    }

    /// Match an inventory against the database: the vulnerabilities each of `packages`
    /// (on `os`) has, in package order. Pure read; safe from many threads. To match many
    /// inventories in one pass, use [`VulnDb::matcher`].
    pub fn matches(
        &self,
        os: Option<&Distro>,
        packages: &[Package],
    ) -> Result<Vec<Vulnerability>, VulnDbError> {
        self.matcher()?.matches(os, packages)
    }
}

/// `<db>.<suffix>` next to the database file.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(suffix);
    path.with_file_name(name)
}

/// (device, inode) of a file, to notice that an import replaced it.
fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}
