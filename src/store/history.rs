//! The decision history: one event per pull decision (evaluated or answered from the
//! cache), bounded to the newest `history_limit` events, for `status`, `explain` and
//! audit. Recording never blocks the caller: events go through a bounded queue to one
//! writer thread that commits them in batches.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};
use serde::{Deserialize, Serialize};

use super::{HISTORY, StoreError, VerdictStore, db};
use crate::policy::{Decision, DenyKind, Verdict};

/// Events waiting for the writer; past this, new events are dropped (and counted in the
/// log) rather than slowing down pulls.
const QUEUE_CAPACITY: usize = 8192;
/// Most events committed in one transaction.
const BATCH: usize = QUEUE_CAPACITY;

/// One pull decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEvent {
    /// RFC 3339 UTC.
    pub at: String,
    pub digest: String,
    /// The reference as pulled.
    pub reference: String,
    pub policy: String,
    pub mode: String,
    pub decision: Decision,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny_kind: Option<DenyKind>,
    /// True when the verdict store (or a concurrent evaluation) answered; false when
    /// the image was evaluated for this pull.
    pub cached: bool,
    /// `evaluated`, `cached`, `shared` or `rescored` (judged again from the stored
    /// inventory, no pull). Absent in events recorded before this field existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub how: Option<crate::policy::verdict::How>,
}

impl HistoryEvent {
    /// An event for a pull answered with `v`, stamped now.
    pub fn from_verdict(v: &Verdict, reference: &str, cached: bool) -> HistoryEvent {
        HistoryEvent {
            at: now_rfc3339(),
            digest: v.digest.to_string(),
            reference: reference.to_string(),
            policy: v.policy.clone(),
            mode: v.mode.to_string(),
            decision: v.decision,
            deny_kind: v.deny_kind,
            cached,
            how: None,
        }
    }
}

pub fn now_rfc3339() -> String {
    crate::rfc3339::format(time::OffsetDateTime::now_utc())
}

pub(super) enum Message {
    Event(Box<HistoryEvent>),
    /// Answered once every event queued before it is committed.
    Flush(std::sync::mpsc::Sender<()>),
}

/// The writer thread and its queue; dropping it drains the queue and joins the thread.
pub(super) struct HistoryWriter {
    tx: Mutex<Option<SyncSender<Message>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl HistoryWriter {
    pub(super) fn start(database: Arc<Database>, limit: u64) -> Result<HistoryWriter, StoreError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE_CAPACITY);
        let thread = std::thread::Builder::new()
            .name("pullwarden-history".into())
            .spawn(move || write_loop(&database, limit, &rx))
            .map_err(|source| StoreError::HistoryThread { source })?;
        Ok(HistoryWriter {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    fn send(&self, m: Message) -> Result<(), TrySendError<Message>> {
        match self.tx.lock().ok().as_ref().and_then(|g| g.as_ref()) {
            Some(tx) => tx.try_send(m),
            None => Err(TrySendError::Disconnected(m)),
        }
    }

    fn flush(&self) {
        let (ack_tx, ack_rx) = std::sync::mpsc::channel();
        let sent = match self.tx.lock().ok().as_ref().and_then(|g| g.as_ref()) {
            // A blocking send: a flush waits for room rather than being dropped.
            Some(tx) => tx.send(Message::Flush(ack_tx)).is_ok(),
            None => false,
        };
        if sent {
            let _ = ack_rx.recv();
        }
    }
}

impl Drop for HistoryWriter {
    fn drop(&mut self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        if let Ok(mut t) = self.thread.lock()
            && let Some(t) = t.take()
        {
            let _ = t.join();
        }
    }
}

fn write_loop(database: &Database, limit: u64, rx: &Receiver<Message>) {
    while let Ok(first) = rx.recv() {
        let mut events = Vec::new();
        let mut acks = Vec::new();
        let mut next = Some(first);
        while let Some(m) = next.take() {
            match m {
                Message::Event(e) => events.push(*e),
                Message::Flush(ack) => acks.push(ack),
            }
            if events.len() < BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !events.is_empty()
            && let Err(e) = commit(database, limit, &events)
        {
            tracing::error!(error = %e, events = events.len(), "history events not recorded");
        }
        for ack in acks {
            let _ = ack.send(());
        }
    }
}

fn commit(database: &Database, limit: u64, events: &[HistoryEvent]) -> Result<(), StoreError> {
    let wtx = database.begin_write().map_err(db("begin write"))?;
    {
        let mut history = wtx.open_table(HISTORY).map_err(db("open history"))?;
        let first = history
            .last()
            .map_err(db("read history"))?
            .map(|(k, _)| k.value() + 1)
            .unwrap_or(1);
        for (next, e) in (first..).zip(events) {
            let json = serde_json::to_vec(e).map_err(|source| StoreError::Encode {
                what: "history event",
                source,
            })?;
            history
                .insert(next, json.as_slice())
                .map_err(db("write history"))?;
        }
        let mut len = history.len().map_err(db("count history"))?;
        while len > limit {
            if history.pop_first().map_err(db("trim history"))?.is_none() {
                break;
            }
            len -= 1;
        }
    }
    wtx.commit().map_err(db("commit history"))
}

impl VerdictStore {
    /// Queues `event` for the history and returns at once; it never blocks on disk, so
    /// the gate may call it on an async thread. When the queue is full (the disk cannot
    /// keep up) the event is dropped and `HistoryQueueFull` returned: the caller logs
    /// it, and audit lines also go to the log.
    pub fn record(&self, event: &HistoryEvent) -> Result<(), StoreError> {
        match self
            .history_writer
            .send(Message::Event(Box::new(event.clone())))
        {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(StoreError::HistoryQueueFull),
            Err(TrySendError::Disconnected(_)) => Err(StoreError::HistoryWriterStopped),
        }
    }

    /// Waits until every event recorded so far is committed.
    pub fn flush_history(&self) {
        self.history_writer.flush();
    }

    /// The newest `limit` events, newest first (after flushing the queue, so a reader
    /// sees its own writes). Events that do not decode are skipped.
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
        self.flush_history();
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
