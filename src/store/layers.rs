//! The layer result cache: opaque bytes by key (diffID + analyzer version + scan config
//! hash, chosen by the scanner), bounded to `layer_cache_entries` with least-recently-used
//! eviction so it cannot grow without limit as images come and go.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};

use super::{LAYER_LRU, LAYER_TICK, LAYERS, StoreError, VerdictStore, db};

/// Largest layer result accepted; results are summaries (packages, findings), far below.
pub const MAX_LAYER_RESULT_BYTES: usize = 64 << 20;
/// Touches remembered between writes; beyond this, reads stop refreshing recency until
/// the next write (the order is approximate by design).
const MAX_PENDING_TOUCHES: usize = 16_384;

impl VerdictStore {
    /// The cached bytes for `key`, and marks the entry as recently used.
    pub fn layer_get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let rtx = self.db.begin_read().map_err(db("begin read"))?;
        let layers = rtx.open_table(LAYERS).map_err(db("open layers"))?;
        let Some(bytes) = layers.get(key).map_err(db("read layer result"))? else {
            return Ok(None);
        };
        let bytes = bytes.value().to_vec();
        let tick = self.layer_tick.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut pending) = self.pending_touches.lock()
            && (pending.len() < MAX_PENDING_TOUCHES || pending.contains_key(key))
        {
            pending.insert(key.to_string(), tick);
        }
        Ok(Some(bytes))
    }

    /// Stores `bytes` under `key` durably, then evicts the least recently used entries
    /// down to the configured bound. With a bound of 0 the cache is off and this does
    /// nothing.
    pub fn layer_put(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        if self.layer_capacity == 0 {
            return Ok(());
        }
        if bytes.len() > MAX_LAYER_RESULT_BYTES {
            return Err(StoreError::LayerTooLarge {
                key: key.to_string(),
                len: bytes.len(),
                max: MAX_LAYER_RESULT_BYTES,
            });
        }
        let touches: Vec<(String, u64)> = match self.pending_touches.lock() {
            Ok(mut p) => p.drain().collect(),
            Err(_) => Vec::new(),
        };
        let tick = self.layer_tick.fetch_add(1, Ordering::Relaxed);
        let wtx = self.db.begin_write().map_err(db("begin write"))?;
        {
            let mut layers = wtx.open_table(LAYERS).map_err(db("open layers"))?;
            let mut ticks = wtx.open_table(LAYER_TICK).map_err(db("open layer_tick"))?;
            let mut lru = wtx.open_table(LAYER_LRU).map_err(db("open layer_lru"))?;
            let mut set_tick = |k: &str, t: u64| -> Result<(), StoreError> {
                if let Some(old) = ticks.insert(k, t).map_err(db("write layer tick"))? {
                    lru.remove(old.value()).map_err(db("update layer lru"))?;
                }
                lru.insert(t, k).map_err(db("update layer lru"))?;
                Ok(())
            };
            for (k, t) in &touches {
                // A touched entry may have been evicted meanwhile; do not resurrect it.
                if layers.get(k.as_str()).map_err(db("read layer"))?.is_some() {
                    set_tick(k, *t)?;
                }
            }
            layers
                .insert(key, bytes)
                .map_err(db("write layer result"))?;
            set_tick(key, tick)?;
            let mut count = layers.len().map_err(db("count layers"))?;
            while count > self.layer_capacity {
                let Some((_, victim)) = lru.pop_first().map_err(db("evict layer"))? else {
                    break;
                };
                let victim = victim.value().to_string();
                ticks.remove(victim.as_str()).map_err(db("evict layer"))?;
                if layers
                    .remove(victim.as_str())
                    .map_err(db("evict layer"))?
                    .is_some()
                {
                    count -= 1;
                }
            }
        }
        wtx.commit().map_err(db("commit layer result"))?;
        Ok(())
    }

    /// Forgets every layer result (e.g. after an analyzer fix the key does not capture).
    pub fn layer_clear(&self) -> Result<u64, StoreError> {
        let wtx = self.db.begin_write().map_err(db("begin write"))?;
        let n;
        {
            let mut layers = wtx.open_table(LAYERS).map_err(db("open layers"))?;
            n = layers.len().map_err(db("count layers"))?;
            layers.retain(|_, _| false).map_err(db("clear layers"))?;
            let mut ticks = wtx.open_table(LAYER_TICK).map_err(db("open layer_tick"))?;
            ticks.retain(|_, _| false).map_err(db("clear layers"))?;
            let mut lru = wtx.open_table(LAYER_LRU).map_err(db("open layer_lru"))?;
            lru.retain(|_, _| false).map_err(db("clear layers"))?;
        }
        wtx.commit().map_err(db("commit layer clear"))?;
        if let Ok(mut p) = self.pending_touches.lock() {
            p.clear();
        }
        Ok(n)
    }
}

/// The raw face of the layer cache the scanner's `LayerCache` trait is glued onto.
/// Errors are logged and read as a miss / a skipped write: the cache is an optimisation
/// and must never fail a scan.
#[derive(Debug, Clone)]
pub struct LayerStore {
    store: Arc<VerdictStore>,
}

impl LayerStore {
    pub fn new(store: Arc<VerdictStore>) -> LayerStore {
        LayerStore { store }
    }

    pub fn get_raw(&self, key: &str) -> Option<Vec<u8>> {
        self.store.layer_get(key).unwrap_or_else(|e| {
            tracing::warn!(%key, error = %e, "layer cache read failed; scanning the layer");
            None
        })
    }

    pub fn put_raw(&self, key: &str, bytes: &[u8]) {
        if let Err(e) = self.store.layer_put(key, bytes) {
            tracing::warn!(%key, error = %e, "layer cache write failed; result not cached");
        }
    }
}
