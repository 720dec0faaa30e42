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
pub mod osv;
pub mod row;
mod source;
pub mod version;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::report::{Distro, Package, Severity, Vulnerability};

use self::osv::{Advisory, AdvisoryHead, AffectedPackage, IndexRow, ParseNotes, Parsed};

/// What a finding takes from its advisory.
struct Head {
    id: String,
    aliases: Vec<String>,
    summary: Option<String>,
    severity: Severity,
    score: Option<f32>,
}

impl From<&AdvisoryHead<'_>> for Head {
    fn from(h: &AdvisoryHead<'_>) -> Head {
        Head {
            id: h.id.to_string(),
            aliases: h.aliases.iter().map(|a| a.to_string()).collect(),
            summary: h.summary.as_ref().map(|s| s.to_string()),
            severity: h.severity,
            score: h.score,
        }
    }
}

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
/// Examples of skipped records kept in a report (the counts are complete).
const MAX_SKIP_EXAMPLES: usize = 50;

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

/// Running state of one import transaction.
struct Counters {
    records: u64,
    hash: [u8; 32],
    newest: String,
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

    /// Match an inventory against the database. Pure read; safe from many threads.
    pub fn matches(
        &self,
        os: Option<&Distro>,
        packages: &[Package],
    ) -> Result<Vec<Vulnerability>, VulnDbError> {
        let Some(h) = &self.handle else {
            return Ok(Vec::new());
        };
        let txn = h.begin_read().map_err(|e| self.storage(e))?;
        let affected = txn.open_table(AFFECTED).map_err(|e| self.storage(e))?;
        let records = txn.open_table(RECORDS).map_err(|e| self.storage(e))?;
        let aliases = txn.open_table(ALIASES).map_err(|e| self.storage(e))?;
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for (pkg, target) in packages.iter().flat_map(|p| {
            ecosystem::targets_for(p, os)
                .into_iter()
                .map(move |t| (p, t))
        }) {
            let prefix = target.ecosystem.index_prefix(&target.name);
            for item in affected
                .range(prefix.as_str()..)
                .map_err(|e| self.storage(e))?
            {
                let (k, v) = item.map_err(|e| self.storage(e))?;
                let key = k.value();
                let Some(id) = key.strip_prefix(prefix.as_str()) else {
                    break;
                };
                let row = row::decode(v.value()).map_err(|source| VulnDbError::DamagedRow {
                    path: self.path.clone(),
                    key: key.to_string(),
                    source,
                })?;
                // The release's own archive decides; an Ubuntu Pro (ESM) entry decides
                // only where the archive has none, and names the fix where the archive
                // has none.
                let mut hit: Option<(&AffectedPackage<'_>, Option<String>)> = None;
                let mut pro_hit: Option<(&AffectedPackage<'_>, Option<String>)> = None;
                let (mut archive_entry, mut pro_entry) = (false, false);
                for entry in &row.entries {
                    if !ecosystem::applies(&entry.ecosystem, &target) {
                        continue;
                    }
                    let pro = ecosystem::is_ubuntu_pro(&entry.ecosystem);
                    archive_entry |= !pro;
                    pro_entry |= pro;
                    let slot = if pro { &mut pro_hit } else { &mut hit };
                    if let Some(fixed) = entry.affects(&target.version)
                        && slot.as_ref().is_none_or(|(_, f)| f.is_none())
                    {
                        *slot = Some((entry, fixed));
                    }
                }
                let (entry, fixed_in, fix_channel) = match (hit, pro_hit) {
                    (Some((e, None)), Some((_, Some(pro_fix)))) => {
                        (e, Some(pro_fix), Some("ubuntu-pro".to_string()))
                    }
                    // Unfixed in the archive, but the installed version is Pro's fix
                    // or later: the image gets its packages from Ubuntu Pro.
                    (Some((_, None)), None) if pro_entry => continue,
                    (Some((e, fixed)), _) => (e, fixed, None),
                    (None, Some((e, fixed))) if !archive_entry => {
                        let channel = fixed.is_some().then(|| "ubuntu-pro".to_string());
                        (e, fixed, channel)
                    }
                    (None, _) => continue,
                };
                if !seen.insert((
                    id.to_string(),
                    pkg.name.clone(),
                    pkg.version.clone(),
                    pkg.layer.clone(),
                )) {
                    continue;
                }
                let adv = Head::from(&row.head);
                let (severity, score) = match entry.severity {
                    Some(s) => s,
                    None if adv.severity != Severity::Unknown => (adv.severity, adv.score),
                    None => self.alias_severity(&records, &aliases, &adv)?,
                };
                out.push(Vulnerability {
                    id: adv.id.clone(),
                    aliases: adv.aliases.clone(),
                    package: pkg.name.clone(),
                    installed_version: pkg.version.clone(),
                    ecosystem: entry.ecosystem.to_string(),
                    fixed_in,
                    fix_channel,
                    severity,
                    score,
                    summary: adv.summary.clone(),
                    purl: pkg.purl.clone(),
                    layer: pkg.layer.clone(),
                });
            }
        }
        Ok(out)
    }

    fn load(
        &self,
        records: &redb::ReadOnlyTable<&str, &[u8]>,
        id: &str,
    ) -> Result<Option<Head>, VulnDbError> {
        let Some(v) = records.get(id).map_err(|e| self.storage(e))? else {
            return Ok(None);
        };
        let h: AdvisoryHead<'_> =
            serde_json::from_slice(v.value()).map_err(|e| self.stored_entry(id, e))?;
        Ok(Some(Head::from(&h)))
    }

    /// Severity of a distro advisory that carries none: the most severe rating among
    /// the records it aliases (the upstream CVE record, GHSA records naming the CVE).
    fn alias_severity(
        &self,
        records: &redb::ReadOnlyTable<&str, &[u8]>,
        aliases: &redb::ReadOnlyTable<&str, &str>,
        adv: &Head,
    ) -> Result<(Severity, Option<f32>), VulnDbError> {
        let mut best: Option<(Severity, Option<f32>)> = None;
        let mut consider = |s: Severity, score: Option<f32>| {
            if s == Severity::Unknown {
                return;
            }
            let better = match best {
                None => true,
                Some((bs, bscore)) => (s, score.unwrap_or(0.0)) > (bs, bscore.unwrap_or(0.0)),
            };
            if better {
                best = Some((s, score));
            }
        };
        for alias in adv.aliases.iter().take(16) {
            if let Some(a) = self.load(records, alias)? {
                consider(a.severity, a.score);
            }
            let prefix = format!("{alias}\0");
            for row in aliases
                .range(prefix.as_str()..)
                .map_err(|e| self.storage(e))?
                .take(64)
            {
                let (k, v) = row.map_err(|e| self.storage(e))?;
                if !k.value().starts_with(&prefix) {
                    break;
                }
                let other = v.value();
                if other == adv.id {
                    continue;
                }
                if let Some(a) = self.load(records, other)? {
                    consider(a.severity, a.score);
                }
            }
        }
        Ok(best.unwrap_or((Severity::Unknown, None)))
    }
}

/// Open (or create) the working copy for writing, with our schema.
fn open_writable(path: &Path) -> Result<redb::Database, VulnDbError> {
    let storage = |e: redb::Error| VulnDbError::Storage {
        path: path.to_path_buf(),
        source: e,
    };
    let db = match redb::Database::create(path) {
        Ok(db) => db,
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
            return Err(VulnDbError::InUse {
                path: path.to_path_buf(),
            });
        }
        Err(source) => {
            return Err(VulnDbError::Corrupt {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    // A fresh file gets our schema; an existing one must already have it.
    let txn = db.begin_write().map_err(|e| storage(e.into()))?;
    {
        let mut meta = txn.open_table(META).map_err(|e| storage(e.into()))?;
        let existing = meta
            .get("schema")
            .map_err(|e| storage(e.into()))?
            .map(|v| v.value().to_string());
        let has_records = txn
            .open_table(RECORDS)
            .map_err(|e| storage(e.into()))?
            .len()
            .map_err(|e| storage(e.into()))?
            > 0;
        match existing {
            Some(s) if s == SCHEMA => {}
            None if !has_records => {
                meta.insert("schema", SCHEMA)
                    .map_err(|e| storage(e.into()))?;
            }
            other => {
                return Err(VulnDbError::Schema {
                    path: path.to_path_buf(),
                    found: other.unwrap_or_default(),
                });
            }
        }
        txn.open_table(AFFECTED).map_err(|e| storage(e.into()))?;
        txn.open_table(ALIASES).map_err(|e| storage(e.into()))?;
        txn.open_table(ECO_COUNTS).map_err(|e| storage(e.into()))?;
    }
    txn.commit().map_err(|e| storage(e.into()))?;
    Ok(db)
}

/// Run one import transaction on the working copy at `path`.
fn import_into(
    path: &Path,
    paths: &[PathBuf],
    report: &mut ImportReport,
) -> Result<(), VulnDbError> {
    let storage = |e: redb::Error| VulnDbError::Storage {
        path: path.to_path_buf(),
        source: e,
    };
    let db = open_writable(path)?;
    let txn = db.begin_write().map_err(|e| storage(e.into()))?;
    let mut notes = ParseNotes::default();
    let mut fatal: Option<VulnDbError> = None;
    {
        let mut tables = Tables {
            records: txn.open_table(RECORDS).map_err(|e| storage(e.into()))?,
            affected: txn.open_table(AFFECTED).map_err(|e| storage(e.into()))?,
            aliases: txn.open_table(ALIASES).map_err(|e| storage(e.into()))?,
            eco_counts: txn.open_table(ECO_COUNTS).map_err(|e| storage(e.into()))?,
            meta: txn.open_table(META).map_err(|e| storage(e.into()))?,
        };
        let mut counters = tables.read_counters().map_err(storage)?;
        for src in paths {
            let mut sink = |item: source::Item<'_>| {
                if fatal.is_some() {
                    return;
                }
                report.records_read += 1;
                match item {
                    source::Item::Unreadable {
                        name,
                        category,
                        detail,
                    } => skip(report, name, category, &detail),
                    source::Item::Record { name, bytes } => match osv::parse(bytes, &mut notes) {
                        Err(r) => skip(report, name, r.category, &r.detail),
                        Ok(parsed) => {
                            if let Err(e) = tables.apply(parsed, &mut counters, report) {
                                fatal = Some(match e {
                                    ApplyError::Storage(e) => storage(e),
                                    ApplyError::Stored(key, source) => VulnDbError::StoredEntry {
                                        path: path.to_path_buf(),
                                        key,
                                        source,
                                    },
                                });
                            }
                        }
                    },
                }
            };
            if let Err(f) = source::read_source(src, &mut sink) {
                report
                    .failed_sources
                    .push(format!("{}: {}", f.path.display(), f.reason));
            }
        }
        if let Some(e) = fatal.take() {
            return Err(e);
        }
        tables.write_counters(&counters).map_err(storage)?;
        report.version_after = version_string(&counters);
    }
    txn.commit().map_err(|e| storage(e.into()))?;
    report.git_ranges_ignored = notes.git_ranges;
    report.unknown_range_types = notes.unknown_range_types;
    report.unparseable_ranges = notes.unparseable_ranges;
    report.unsupported_affected = notes.unsupported_affected;
    Ok(())
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

fn skip(report: &mut ImportReport, name: &str, category: &str, detail: &str) {
    report.skipped += 1;
    *report
        .skipped_by_reason
        .entry(category.to_string())
        .or_default() += 1;
    if report.skipped_examples.len() < MAX_SKIP_EXAMPLES {
        let mut d = detail.to_string();
        d.truncate(200);
        report
            .skipped_examples
            .push(format!("{name}: {category}: {d}"));
    }
}

fn version_string(c: &Counters) -> String {
    if c.records == 0 {
        EMPTY_VERSION.into()
    } else {
        format!("osv-{}", hex::encode(&c.hash[..8]))
    }
}

enum ApplyError {
    Storage(redb::Error),
    Stored(String, serde_json::Error),
}

impl<E: Into<redb::Error>> From<E> for ApplyError {
    fn from(e: E) -> Self {
        ApplyError::Storage(e.into())
    }
}

struct Tables<'t> {
    records: redb::Table<'t, &'static str, &'static [u8]>,
    affected: redb::Table<'t, &'static str, &'static [u8]>,
    aliases: redb::Table<'t, &'static str, &'static str>,
    eco_counts: redb::Table<'t, &'static str, u64>,
    meta: redb::Table<'t, &'static str, &'static str>,
}

impl Tables<'_> {
    fn read_counters(&self) -> Result<Counters, redb::Error> {
        let get = |k: &str| -> Result<Option<String>, redb::Error> {
            Ok(self.meta.get(k)?.map(|v| v.value().to_string()))
        };
        let mut hash = [0u8; 32];
        if let Some(h) = get("content_hash")?
            && let Ok(bytes) = hex::decode(h)
            && bytes.len() == 32
        {
            hash.copy_from_slice(&bytes);
        }
        Ok(Counters {
            records: get("records")?.and_then(|s| s.parse().ok()).unwrap_or(0),
            hash,
            newest: get("newest_modified")?.unwrap_or_default(),
        })
    }

    fn write_counters(&mut self, c: &Counters) -> Result<(), redb::Error> {
        self.meta
            .insert("records", c.records.to_string().as_str())?;
        self.meta
            .insert("content_hash", hex::encode(c.hash).as_str())?;
        self.meta.insert("newest_modified", c.newest.as_str())?;
        self.meta.insert("version", version_string(c).as_str())?;
        Ok(())
    }

    fn stored(&self, id: &str) -> Result<Option<(Advisory<'static>, [u8; 32])>, ApplyError> {
        let Some(v) = self.records.get(id)? else {
            return Ok(None);
        };
        let bytes = v.value();
        let adv: Advisory<'_> =
            serde_json::from_slice(bytes).map_err(|e| ApplyError::Stored(id.to_string(), e))?;
        let adv = adv.into_owned();
        Ok(Some((adv, *blake3::hash(bytes).as_bytes())))
    }

    fn apply(
        &mut self,
        parsed: Parsed,
        c: &mut Counters,
        report: &mut ImportReport,
    ) -> Result<(), ApplyError> {
        match parsed {
            Parsed::Withdrawn { id, modified } => match self.stored(&id)? {
                Some((old, hash)) if old.modified <= modified => {
                    self.remove(&old, hash, c)?;
                    report.withdrawn_removed += 1;
                }
                _ => report.withdrawn_ignored += 1,
            },
            Parsed::Advisory(adv) => {
                let old = self.stored(&adv.id)?;
                if let Some((o, _)) = &old
                    && o.modified > adv.modified
                {
                    report.stale += 1;
                    return Ok(());
                }
                let keep = !adv.affected.is_empty() || adv.severity != Severity::Unknown;
                let bytes =
                    serde_json::to_vec(&adv).map_err(|e| ApplyError::Stored(adv.id.clone(), e))?;
                let hash = *blake3::hash(&bytes).as_bytes();
                match old {
                    Some((_, old_hash)) if old_hash == hash => report.unchanged += 1,
                    Some((o, old_hash)) => {
                        self.remove(&o, old_hash, c)?;
                        if keep {
                            self.insert(&adv, &bytes, hash, c)?;
                            report.updated += 1;
                        } else {
                            report.not_applicable += 1;
                        }
                    }
                    None if keep => {
                        self.insert(&adv, &bytes, hash, c)?;
                        report.added += 1;
                    }
                    None => report.not_applicable += 1,
                }
            }
        }
        Ok(())
    }

    fn index_keys<'s>(adv: &'s Advisory<'_>) -> BTreeMap<String, Vec<&'s AffectedPackage<'s>>> {
        let mut groups: BTreeMap<String, Vec<&AffectedPackage>> = BTreeMap::new();
        for a in &adv.affected {
            if let Some(e) = a.ecosystem_kind() {
                let key = format!("{}{}", e.index_prefix(&a.name), adv.id);
                groups.entry(key).or_default().push(a);
            }
        }
        groups
    }

    fn insert(
        &mut self,
        adv: &Advisory<'_>,
        bytes: &[u8],
        hash: [u8; 32],
        c: &mut Counters,
    ) -> Result<(), ApplyError> {
        self.records.insert(adv.id.as_str(), bytes)?;
        for (key, entries) in Self::index_keys(adv) {
            let row = IndexRow {
                head: adv.head(),
                entries: entries.into_iter().cloned().collect(),
            };
            let v = row::encode(&row);
            self.affected.insert(key.as_str(), v.as_slice())?;
        }
        for alias in &adv.aliases {
            let key = format!("{alias}\0{}", adv.id);
            self.aliases.insert(key.as_str(), adv.id.as_str())?;
        }
        for eco in osv::ecosystems(adv) {
            let n = self.eco_counts.get(eco)?.map(|v| v.value()).unwrap_or(0);
            self.eco_counts.insert(eco, n + 1)?;
        }
        xor(&mut c.hash, &hash);
        c.records += 1;
        if adv.modified > c.newest {
            c.newest = adv.modified.clone();
        }
        Ok(())
    }

    fn remove(
        &mut self,
        adv: &Advisory<'_>,
        hash: [u8; 32],
        c: &mut Counters,
    ) -> Result<(), ApplyError> {
        self.records.remove(adv.id.as_str())?;
        for key in Self::index_keys(adv).keys() {
            self.affected.remove(key.as_str())?;
        }
        for alias in &adv.aliases {
            let key = format!("{alias}\0{}", adv.id);
            self.aliases.remove(key.as_str())?;
        }
        let ecos: BTreeSet<&str> = osv::ecosystems(adv);
        for eco in ecos {
            let n = self.eco_counts.get(eco)?.map(|v| v.value()).unwrap_or(0);
            if n <= 1 {
                self.eco_counts.remove(eco)?;
            } else {
                self.eco_counts.insert(eco, n - 1)?;
            }
        }
        xor(&mut c.hash, &hash);
        c.records = c.records.saturating_sub(1);
        Ok(())
    }
}

fn xor(acc: &mut [u8; 32], h: &[u8; 32]) {
    for (a, b) in acc.iter_mut().zip(h) {
        *a ^= b;
    }
}
