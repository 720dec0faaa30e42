//! Import of OSV exports into the working copy: one write transaction per import, the
//! content hash kept as an XOR of per-record hashes so the version is order independent.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use redb::{ReadableTable, ReadableTableMetadata};

use crate::report::Severity;

use super::osv::{self, Advisory, AffectedPackage, IndexRow, ParseNotes, Parsed};
use super::{
    AFFECTED, ALIASES, ECO_COUNTS, EMPTY_VERSION, ImportReport, META, RECORDS, SCHEMA, VulnDbError,
    row, source,
};

/// Examples of skipped records kept in a report (the counts are complete).
const MAX_SKIP_EXAMPLES: usize = 50;

/// Running state of one import transaction.
pub(super) struct Counters {
    records: u64,
    hash: [u8; 32],
    newest: String,
}

/// Open (or create) the working copy for writing, with our schema.
pub(super) fn open_writable(path: &Path) -> Result<redb::Database, VulnDbError> {
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
pub(super) fn import_into(
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

pub(super) fn skip(report: &mut ImportReport, name: &str, category: &str, detail: &str) {
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

pub(super) fn version_string(c: &Counters) -> String {
    if c.records == 0 {
        EMPTY_VERSION.into()
    } else {
        format!("osv-{}", hex::encode(&c.hash[..8]))
    }
}

pub(super) enum ApplyError {
    Storage(redb::Error),
    Stored(String, serde_json::Error),
}

impl<E: Into<redb::Error>> From<E> for ApplyError {
    fn from(e: E) -> Self {
        ApplyError::Storage(e.into())
    }
}

pub(super) struct Tables<'t> {
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

pub(super) fn xor(acc: &mut [u8; 32], h: &[u8; 32]) {
    for (a, b) in acc.iter_mut().zip(h) {
        *a ^= b;
    }
}
