//! The decision history: one event per pull decision (evaluated or answered from the
//! cache), bounded to the newest `history_limit` events, for `status` and audit.

use std::time::Duration;

use redb::{Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata};
use serde::{Deserialize, Serialize};

use super::{HISTORY, StoreError, VerdictStore, db};
use crate::policy::{Decision, DenyKind, Verdict};

/// History commits are cheap (no fsync) but made durable at least this often, so a
/// crash loses at most a couple of seconds of audit events — never a verdict.
const HISTORY_SYNC_INTERVAL: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEvent {
    /// RFC 3339 UTC.
    pub at: String,
    pub digest: String,
    pub reference: String,
    pub policy: String,
    pub mode: String,
    pub decision: Decision,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny_kind: Option<DenyKind>,
    /// True when the verdict store answered; false when the image was evaluated.
    pub cached: bool,
}

impl HistoryEvent {
    /// An event for a pull answered with `v`, stamped now.
    pub fn from_verdict(v: &Verdict, reference: &str, cached: bool) -> HistoryEvent {
        HistoryEvent {
            at: now_rfc3339(),
            digest: v.digest.clone(),
            reference: reference.to_string(),
            policy: v.policy.clone(),
            mode: v.mode.clone(),
            decision: v.decision,
            deny_kind: v.deny_kind,
            cached,
        }
    }
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl VerdictStore {
    /// Appends `event` and drops the oldest events past the limit. The commit is
    /// non-durable unless the last durable commit is older than two seconds: a cached
    /// allow must cost about nothing, and an audit trail that may lose the last seconds
    /// on power loss is an accepted trade (verdicts themselves are always durable).
    pub fn record(&self, event: &HistoryEvent) -> Result<(), StoreError> {
        let json = serde_json::to_vec(event).map_err(|source| StoreError::Encode {
            what: "history event",
            source,
        })?;
        let durable = match self.last_durable.lock() {
            Ok(t) => t.elapsed() >= HISTORY_SYNC_INTERVAL,
            Err(_) => true,
        };
        let mut wtx = self.db.begin_write().map_err(db("begin write"))?;
        if !durable {
            wtx.set_durability(Durability::None)
                .map_err(db("set durability"))?;
        }
        {
            let mut history = wtx.open_table(HISTORY).map_err(db("open history"))?;
            let next = history
                .last()
                .map_err(db("read history"))?
                .map(|(k, _)| k.value() + 1)
                .unwrap_or(1);
            history
                .insert(next, json.as_slice())
                .map_err(db("write history"))?;
            let mut len = history.len().map_err(db("count history"))?;
            while len > self.history_limit {
                if history.pop_first().map_err(db("trim history"))?.is_none() {
                    break;
                }
                len -= 1;
            }
        }
        wtx.commit().map_err(db("commit history"))?;
        if durable {
            self.mark_durable();
        }
        Ok(())
    }

    /// The newest `limit` events, newest first. Events that do not decode are skipped.
    pub fn history(&self, limit: usize) -> Result<Vec<HistoryEvent>, StoreError> {
        self.history_filtered(limit, |_| true)
    }

    /// The newest `limit` events of one manifest digest, newest first.
    pub fn history_of(&self, digest: &str, limit: usize) -> Result<Vec<HistoryEvent>, StoreError> {
        self.history_filtered(limit, |e| e.digest == digest)
    }

    fn history_filtered(
        &self,
        limit: usize,
        keep: impl Fn(&HistoryEvent) -> bool,
    ) -> Result<Vec<HistoryEvent>, StoreError> {
        let rtx = self.db.begin_read().map_err(db("begin read"))?;
        let history = rtx.open_table(HISTORY).map_err(db("open history"))?;
        let mut out = Vec::new();
        for entry in history.iter().map_err(db("read history"))?.rev() {
            if out.len() >= limit {
                break;
            }
            let (_, bytes) = entry.map_err(db("read history"))?;
            match serde_json::from_slice::<HistoryEvent>(bytes.value()) {
                Ok(e) if keep(&e) => out.push(e),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "skipping a history event that does not decode")
                }
            }
        }
        Ok(out)
    }
}
