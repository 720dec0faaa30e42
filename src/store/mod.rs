//! The verdict store: verdicts, layer results and the decision history in one redb file,
//! `<state_dir>/verdicts.redb`. Every acknowledged write is a durable commit, so the store
//! survives `kill -9`; a damaged file is moved aside and rebuilt empty, never trusted.
//!
//! Threading: one `VerdictStore` is shared by the whole daemon (`Arc<VerdictStore>`); all
//! methods take `&self` and are safe to call from many threads. Every method but
//! `record` does blocking file I/O (a durable commit is an `fsync`), so async callers run
//! them under `tokio::task::spawn_blocking`, never directly on the runtime; `record` only
//! queues the event for a writer thread and may be called anywhere.
//!
//! Size: verdicts are kept per digest × policy fingerprint (a newer vulnerability db
//! replaces the older verdict), the history and the layer results are bounded; only the
//! number of distinct images has no bound (`purge` forgets them).
//!
//! What is never cached: a verdict that came from an infrastructure failure (a
//! `deny_kind` of `registry` or `infrastructure`). Storing one as `allow` is refused by
//! [`VerdictStore::put`]; a deny of that kind is kept so `verdict`/`explain` can show it,
//! but [`VerdictStore::get`] (the gate's cache lookup) never returns it, so the next pull
//! re-evaluates instead of repeating a transient failure.

mod history;
mod inventory;
mod layers;
mod open;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::Serialize;

use crate::digest::Digest;
use crate::policy::{Decision, DenyKind, Verdict};
use crate::reference::Reference;

pub use history::{HistoryEvent, now_rfc3339};
use inventory::INVENTORY;
pub use inventory::{
    INVENTORY_FORMAT, ImageInventory, InventoryError, MAX_INVENTORY_BYTES, SignatureEvidence,
    VexEvidence,
};
pub use layers::LayerStore;

/// The file name under `state_dir`.
pub const FILE_NAME: &str = "verdicts.redb";
/// Layout version of the tables below; a file with another version is moved aside.
pub const SCHEMA_VERSION: &str = "1";
/// Decisions kept in the history (oldest dropped first).
pub const DEFAULT_HISTORY_LIMIT: u64 = 10_000;

/// `"schema"` → layout version.
const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
/// Encoded [`VerdictKey`] → verdict JSON.
const VERDICTS: TableDefinition<&str, &[u8]> = TableDefinition::new("verdicts");
/// Manifest digest → encoded key of the verdict stored last for it.
const LATEST: TableDefinition<&str, &str> = TableDefinition::new("latest");
/// Reference (as pulled and normalized) or platform digest → manifest digest.
const REFS: TableDefinition<&str, &str> = TableDefinition::new("refs");
/// Layer cache key → opaque layer result bytes.
const LAYERS: TableDefinition<&str, &[u8]> = TableDefinition::new("layers");
/// Layer cache key → last access tick.
const LAYER_TICK: TableDefinition<&str, u64> = TableDefinition::new("layer_tick");
/// Access tick → layer cache key; the first entry is the least recently used.
const LAYER_LRU: TableDefinition<u64, &str> = TableDefinition::new("layer_lru");
/// Sequence number → history event JSON.
const HISTORY: TableDefinition<u64, &[u8]> = TableDefinition::new("history");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("creating state directory {}: {source}", path.display())]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("verdict store {} is in use by another process (another pullwarden?)", .0.display())]
    InUse(PathBuf),
    #[error("opening verdict store {}: {source}", path.display())]
    Open {
        path: PathBuf,
        source: redb::DatabaseError,
    },
    #[error("moving corrupt verdict store {} aside: {source}", path.display())]
    Quarantine {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("verdict store {} is still unusable after rebuilding it empty: {reason}", path.display())]
    Rebuild { path: PathBuf, reason: String },
    #[error("verdict store: {action}: {source}")]
    Database {
        action: &'static str,
        source: redb::Error,
    },
    #[error("encoding {what}: {source}")]
    Encode {
        what: &'static str,
        source: serde_json::Error,
    },
    #[error("verdict key field {field} {value:?} is empty or contains a newline")]
    BadKey { field: &'static str, value: String },
    #[error(
        "verdict for {verdict_digest} does not belong under key {key} (digest, policy fingerprint and db version must match)"
    )]
    KeyMismatch { key: String, verdict_digest: String },
    #[error(
        "refusing to store an allow for {digest} that came from a {kind:?} failure: infrastructure errors are never cached as allow"
    )]
    InfrastructureAllow { digest: String, kind: DenyKind },
    #[error("history queue full (the disk is not keeping up); event dropped")]
    HistoryQueueFull,
    #[error("history writer stopped; event dropped")]
    HistoryWriterStopped,
    #[error("starting the history writer thread: {source}")]
    HistoryThread { source: std::io::Error },
    #[error("layer result {key:?} is {len} bytes, more than the {max}-byte limit")]
    LayerTooLarge { key: String, len: usize, max: usize },
}

/// Wraps any redb error with what the store was doing.
fn db<E: Into<redb::Error>>(action: &'static str) -> impl FnOnce(E) -> StoreError {
    move |e| StoreError::Database {
        action,
        source: e.into(),
    }
}

/// What a cached verdict is valid for: the same image bytes judged by the same policy
/// (fingerprint covers the policy text and every key/trust file) against the same
/// vulnerability database. Any change to one of the three is a miss.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct VerdictKey {
    pub digest: String,
    pub policy_fingerprint: String,
    pub db_version: String,
}

impl VerdictKey {
    pub fn new(
        digest: impl Into<String>,
        policy_fingerprint: impl Into<String>,
        db_version: impl Into<String>,
    ) -> VerdictKey {
        VerdictKey {
            digest: digest.into(),
            policy_fingerprint: policy_fingerprint.into(),
            db_version: db_version.into(),
        }
    }

    /// The key a verdict belongs under.
    pub fn of(v: &Verdict) -> VerdictKey {
        VerdictKey::new(v.digest.to_string(), &v.policy_fingerprint, &v.db_version)
    }

    /// `digest\nfingerprint\ndb_version`: the digest first so that every verdict of a
    /// digest is one key range (purge), and `\n` because none of the parts may hold one.
    fn encode(&self) -> Result<String, StoreError> {
        for (field, value) in [
            ("digest", &self.digest),
            ("policy_fingerprint", &self.policy_fingerprint),
            ("db_version", &self.db_version),
        ] {
            if value.is_empty() || value.contains('\n') {
                return Err(StoreError::BadKey {
                    field,
                    value: value.clone(),
                });
            }
        }
        Ok(format!(
            "{}\n{}\n{}",
            self.digest, self.policy_fingerprint, self.db_version
        ))
    }
}

/// The key range holding every verdict of `digest`: `digest\n` up to (not including)
/// `digest\x0b` (`\n` + 1).
fn digest_range(digest: &str) -> (String, String) {
    (format!("{digest}\n"), format!("{digest}\u{b}"))
}

/// Counts for `status`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StoreStats {
    pub path: PathBuf,
    pub schema: String,
    /// Distinct manifest digests with a verdict.
    pub images: u64,
    /// Stored verdicts (one per digest × policy fingerprint × db version).
    pub verdicts: u64,
    pub layer_results: u64,
    pub layer_capacity: u64,
    pub history_events: u64,
    /// Where a corrupt store was moved at startup, if that happened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovered_from_corruption: Option<PathBuf>,
}

pub struct VerdictStore {
    db: Arc<Database>,
    path: PathBuf,
    layer_capacity: u64,
    /// Next LRU tick; ticks only grow, so the smallest tick is the coldest entry.
    layer_tick: AtomicU64,
    /// Layer reads since the last write: applied to the LRU index by the next
    /// `layer_put`, so a cache hit costs a read transaction and no commit. Lost on a
    /// crash, which only makes the LRU order approximate.
    pending_touches: Mutex<HashMap<String, u64>>,
    quarantined: Option<PathBuf>,
    /// Declared last: dropped after everything else that holds the database, and its
    /// drop drains the queue, so a closed store has written every recorded event.
    history_writer: history::HistoryWriter,
}

impl std::fmt::Debug for VerdictStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerdictStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl VerdictStore {
    /// Opens (or creates) `<state_dir>/verdicts.redb`. A damaged file — garbage,
    /// truncated, zero-length, failing redb's integrity check, or of an unknown schema —
    /// is renamed to `verdicts.redb.corrupt-<time>` with an error logged, and a new empty
    /// store is created: a cache we cannot trust is worth nothing, re-evaluation is safe.
    /// A store held open by another process is an error (`InUse`), not corruption.
    pub fn open(state_dir: &Path, layer_cache_entries: u64) -> Result<VerdictStore, StoreError> {
        Self::open_with_history_limit(state_dir, layer_cache_entries, DEFAULT_HISTORY_LIMIT)
    }

    pub fn open_with_history_limit(
        state_dir: &Path,
        layer_cache_entries: u64,
        history_limit: u64,
    ) -> Result<VerdictStore, StoreError> {
        let (database, path, quarantined) = open::open_or_rebuild(state_dir)?;
        let layer_tick = {
            let rtx = database.begin_read().map_err(db("begin read"))?;
            let lru = rtx.open_table(LAYER_LRU).map_err(db("open layer_lru"))?;
            let last = lru.last().map_err(db("read layer_lru"))?;
            last.map(|(k, _)| k.value() + 1).unwrap_or(1)
        };
        let database = Arc::new(database);
        let history_writer = history::HistoryWriter::start(database.clone(), history_limit.max(1))?;
        Ok(VerdictStore {
            db: database,
            path,
            layer_capacity: layer_cache_entries,
            layer_tick: AtomicU64::new(layer_tick),
            pending_touches: Mutex::new(HashMap::new()),
            quarantined,
            history_writer,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where a corrupt file was moved at open, if it was.
    pub fn recovered_from_corruption(&self) -> Option<&Path> {
        self.quarantined.as_deref()
    }

    /// Stores `v` under `key` durably (returns after the commit reached the disk) and
    /// makes it the latest verdict of its digest and of its reference.
    pub fn put(&self, key: &VerdictKey, v: &Verdict) -> Result<(), StoreError> {
        let wtx = self.db.begin_write().map_err(db("begin write"))?;
        self.write_verdict(&wtx, key, v)?;
        wtx.commit().map_err(db("commit verdict"))?;
        Ok(())
    }

    /// The verdict part of [`VerdictStore::put`], inside the caller's transaction.
    fn write_verdict(
        &self,
        wtx: &redb::WriteTransaction,
        key: &VerdictKey,
        v: &Verdict,
    ) -> Result<(), StoreError> {
        if v.decision == Decision::Allow
            && let Some(kind @ (DenyKind::Registry | DenyKind::Infrastructure)) = v.deny_kind
        {
            return Err(StoreError::InfrastructureAllow {
                digest: v.digest.to_string(),
                kind,
            });
        }
        let encoded = key.encode()?;
        if VerdictKey::of(v) != *key {
            return Err(StoreError::KeyMismatch {
                key: encoded.replace('\n', " "),
                verdict_digest: v.digest.to_string(),
            });
        }
        let json = serde_json::to_vec(v).map_err(|source| StoreError::Encode {
            what: "verdict",
            source,
        })?;
        let mut refs: Vec<String> = vec![v.reference.clone()];
        if let Ok(r) = v.reference.parse::<Reference>() {
            refs.push(r.to_string());
        }
        if let Some(p) = &v.platform_digest {
            refs.push(p.to_string());
        }
        let (from, to) = digest_range(&key.digest);
        let superseded_prefix = format!("{}\n{}\n", key.digest, key.policy_fingerprint);
        {
            let mut verdicts = wtx.open_table(VERDICTS).map_err(db("open verdicts"))?;
            // A verdict under an older vulnerability database for the same digest and
            // policy is never looked up again (the gate asks with the current version):
            // drop it, so the store grows with images × policies, not with db updates.
            verdicts
                .retain_in(from.as_str()..to.as_str(), |k, _| {
                    !(k.starts_with(&superseded_prefix) && k != encoded)
                })
                .map_err(db("drop superseded verdicts"))?;
            verdicts
                .insert(encoded.as_str(), json.as_slice())
                .map_err(db("insert verdict"))?;
            let mut latest = wtx.open_table(LATEST).map_err(db("open latest"))?;
            latest
                .insert(key.digest.as_str(), encoded.as_str())
                .map_err(db("insert latest"))?;
            let mut refs_table = wtx.open_table(REFS).map_err(db("open refs"))?;
            for r in refs.iter().filter(|r| !r.is_empty() && **r != key.digest) {
                refs_table
                    .insert(r.as_str(), key.digest.as_str())
                    .map_err(db("insert ref"))?;
            }
        }
        Ok(())
    }

    /// The gate's cache lookup: the verdict stored under exactly this key, unless it came
    /// from an infrastructure failure (those are kept for display only). A record that no
    /// longer decodes is logged and treated as a miss: it is never trusted.
    pub fn get(&self, key: &VerdictKey) -> Result<Option<Verdict>, StoreError> {
        let encoded = key.encode()?;
        let rtx = self.db.begin_read().map_err(db("begin read"))?;
        let verdicts = rtx.open_table(VERDICTS).map_err(db("open verdicts"))?;
        let Some(bytes) = verdicts.get(encoded.as_str()).map_err(db("read verdict"))? else {
            return Ok(None);
        };
        Ok(decode_verdict(&encoded, bytes.value()).filter(|v| {
            !matches!(
                v.deny_kind,
                Some(DenyKind::Registry | DenyKind::Infrastructure)
            )
        }))
    }

    /// The manifest digest `digest_or_ref` names: a digest with a verdict, a platform
    /// digest, a reference as it was pulled, its normalized form, or `repo@digest`.
    pub fn resolve(&self, digest_or_ref: &str) -> Result<Option<String>, StoreError> {
        let rtx = self.db.begin_read().map_err(db("begin read"))?;
        let latest = rtx.open_table(LATEST).map_err(db("open latest"))?;
        let refs = rtx.open_table(REFS).map_err(db("open refs"))?;
        let mut candidates = vec![digest_or_ref.to_string()];
        if let Ok(r) = digest_or_ref.parse::<Reference>() {
            candidates.push(r.to_string());
            if let Some(d) = &r.digest {
                candidates.push(d.to_string());
            }
        }
        for c in &candidates {
            if latest.get(c.as_str()).map_err(db("read latest"))?.is_some() {
                return Ok(Some(c.clone()));
            }
            if let Some(d) = refs.get(c.as_str()).map_err(db("read refs"))? {
                let d = d.value().to_string();
                if latest.get(d.as_str()).map_err(db("read latest"))?.is_some() {
                    return Ok(Some(d));
                }
            }
        }
        Ok(None)
    }

    /// The verdict stored last for the image `digest_or_ref` names (see `resolve`).
    pub fn latest(&self, digest_or_ref: &str) -> Result<Option<Verdict>, StoreError> {
        let Some(digest) = self.resolve(digest_or_ref)? else {
            return Ok(None);
        };
        let rtx = self.db.begin_read().map_err(db("begin read"))?;
        let latest = rtx.open_table(LATEST).map_err(db("open latest"))?;
        let verdicts = rtx.open_table(VERDICTS).map_err(db("open verdicts"))?;
        let Some(key) = latest.get(digest.as_str()).map_err(db("read latest"))? else {
            return Ok(None);
        };
        let key = key.value();
        Ok(verdicts
            .get(key)
            .map_err(db("read verdict"))?
            .and_then(|b| decode_verdict(key, b.value())))
    }

    /// The latest verdict of every image, optionally only those with `decision`, newest
    /// decision first.
    pub fn list(&self, decision: Option<Decision>) -> Result<Vec<Verdict>, StoreError> {
        let rtx = self.db.begin_read().map_err(db("begin read"))?;
        let latest = rtx.open_table(LATEST).map_err(db("open latest"))?;
        let verdicts = rtx.open_table(VERDICTS).map_err(db("open verdicts"))?;
        let mut out = Vec::new();
        for entry in latest.iter().map_err(db("iterate latest"))? {
            let (_, key) = entry.map_err(db("iterate latest"))?;
            let key = key.value();
            let Some(bytes) = verdicts.get(key).map_err(db("read verdict"))? else {
                continue;
            };
            if let Some(v) = decode_verdict(key, bytes.value())
                && decision.is_none_or(|d| v.decision == d)
            {
                out.push(v);
            }
        }
        // RFC 3339 UTC strings of one format sort by time.
        out.sort_by(|a, b| {
            b.decided_at
                .cmp(&a.decided_at)
                .then_with(|| a.digest.cmp(&b.digest))
        });
        Ok(out)
    }

    /// Forgets every verdict of `digest_or_ref`'s image (all fingerprints and db
    /// versions), its stored inventory and the references pointing at it; returns how
    /// many verdicts went. The next pull re-evaluates. History and layer results stay.
    pub fn purge(&self, digest_or_ref: &str) -> Result<u64, StoreError> {
        let digest = match self.resolve(digest_or_ref)? {
            Some(d) => d,
            None => match digest_or_ref.parse::<Digest>() {
                Ok(d) => d.to_string(),
                Err(_) => return Ok(0),
            },
        };
        let (from, to) = digest_range(&digest);
        let wtx = self.db.begin_write().map_err(db("begin write"))?;
        let removed;
        {
            let mut verdicts = wtx.open_table(VERDICTS).map_err(db("open verdicts"))?;
            let mut n = 0u64;
            verdicts
                .retain_in(from.as_str()..to.as_str(), |_, _| {
                    n += 1;
                    false
                })
                .map_err(db("remove verdicts"))?;
            removed = n;
            let mut latest = wtx.open_table(LATEST).map_err(db("open latest"))?;
            latest
                .remove(digest.as_str())
                .map_err(db("remove latest"))?;
            let mut refs = wtx.open_table(REFS).map_err(db("open refs"))?;
            refs.retain(|_, d| d != digest).map_err(db("remove refs"))?;
            let mut inventory = wtx.open_table(INVENTORY).map_err(db("open inventory"))?;
            inventory
                .remove(digest.as_str())
                .map_err(db("remove inventory"))?;
        }
        wtx.commit().map_err(db("commit purge"))?;
        Ok(removed)
    }

    /// Forgets the verdicts of images that are gone from the node: every digest whose
    /// latest verdict was decided before `decided_before` (RFC 3339 UTC) and which
    /// `present` (containerd's image targets) names neither as the digest nor as the
    /// platform digest. Returns how many images went. Images still present keep their
    /// verdicts whatever their age (ImageStatus admits them by these). History and layer
    /// results stay.
    pub fn forget_absent(
        &self,
        present: &std::collections::HashSet<String>,
        decided_before: &str,
    ) -> Result<u64, StoreError> {
        let mut gone = Vec::new();
        {
            let rtx = self.db.begin_read().map_err(db("begin read"))?;
            let latest = rtx.open_table(LATEST).map_err(db("open latest"))?;
            let verdicts = rtx.open_table(VERDICTS).map_err(db("open verdicts"))?;
            for entry in latest.iter().map_err(db("iterate latest"))? {
                let (digest, key) = entry.map_err(db("iterate latest"))?;
                let digest = digest.value().to_string();
                if present.contains(&digest) {
                    continue;
                }
                let v = verdicts
                    .get(key.value())
                    .map_err(db("read verdict"))?
                    .and_then(|b| decode_verdict(key.value(), b.value()));
                let keep = v.as_ref().is_some_and(|v| {
                    v.decided_at.as_str() >= decided_before
                        || v.platform_digest
                            .as_ref()
                            .is_some_and(|p| present.contains(&p.to_string()))
                });
                if !keep {
                    gone.push(digest);
                }
            }
        }
        for d in &gone {
            self.purge(d)?;
        }
        Ok(gone.len() as u64)
    }

    /// Forgets every verdict and stored inventory; returns how many verdicts went. Layer
    /// results (content-addressed and keyed by analyzer version) and the history stay.
    pub fn purge_all(&self) -> Result<u64, StoreError> {
        let wtx = self.db.begin_write().map_err(db("begin write"))?;
        let removed;
        {
            let mut verdicts = wtx.open_table(VERDICTS).map_err(db("open verdicts"))?;
            removed = verdicts.len().map_err(db("count verdicts"))?;
            verdicts
                .retain(|_, _| false)
                .map_err(db("clear verdicts"))?;
            let mut latest = wtx.open_table(LATEST).map_err(db("open latest"))?;
            latest.retain(|_, _| false).map_err(db("clear latest"))?;
            let mut refs = wtx.open_table(REFS).map_err(db("open refs"))?;
            refs.retain(|_, _| false).map_err(db("clear refs"))?;
            let mut inventory = wtx.open_table(INVENTORY).map_err(db("open inventory"))?;
            inventory
                .retain(|_, _| false)
                .map_err(db("clear inventory"))?;
        }
        wtx.commit().map_err(db("commit purge"))?;
        Ok(removed)
    }

    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        self.flush_history();
        let rtx = self.db.begin_read().map_err(db("begin read"))?;
        let count = |n: Result<u64, redb::StorageError>| n.map_err(db("count"));
        Ok(StoreStats {
            path: self.path.clone(),
            schema: SCHEMA_VERSION.to_string(),
            images: count(rtx.open_table(LATEST).map_err(db("open latest"))?.len())?,
            verdicts: count(rtx.open_table(VERDICTS).map_err(db("open verdicts"))?.len())?,
            layer_results: count(rtx.open_table(LAYERS).map_err(db("open layers"))?.len())?,
            layer_capacity: self.layer_capacity,
            history_events: count(rtx.open_table(HISTORY).map_err(db("open history"))?.len())?,
            recovered_from_corruption: self.quarantined.clone(),
        })
    }
}

fn decode_verdict(key: &str, bytes: &[u8]) -> Option<Verdict> {
    match serde_json::from_slice::<Verdict>(bytes) {
        Ok(v) => Some(v.normalize()),
        Err(e) => {
            tracing::error!(key = %key.replace('\n', " "), error = %e,
                "stored verdict does not decode; ignoring it (the image will be re-evaluated)");
            None
        }
    }
}

#[cfg(test)]
mod tests;
