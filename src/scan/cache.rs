//! The layer-result cache seam: keyed by layer digest + analyzer-set version + scan
//! config hash, always bounded. The store module provides the on-disk implementation;
//! this file has the in-memory one.

use std::collections::HashMap;
use std::sync::Mutex;

use super::layer::LayerResult;

pub trait LayerCache: Send + Sync {
    fn get(&self, key: &str) -> Option<LayerResult>;
    fn put(&self, key: &str, r: &LayerResult);
}

/// A bounded in-memory cache; the least recently used entry goes first.
pub struct MemoryLayerCache {
    max: usize,
    inner: Mutex<MemoryInner>,
}

#[derive(Default)]
struct MemoryInner {
    tick: u64,
    map: HashMap<String, (u64, LayerResult)>,
}

impl MemoryLayerCache {
    pub fn new(max_entries: usize) -> Self {
        MemoryLayerCache {
            max: max_entries.max(1),
            inner: Mutex::new(MemoryInner::default()),
        }
    }

    pub fn len(&self) -> usize {
        self.inner.lock().map(|i| i.map.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl LayerCache for MemoryLayerCache {
    fn get(&self, key: &str) -> Option<LayerResult> {
        let mut g = self.inner.lock().ok()?;
        g.tick += 1;
        let tick = g.tick;
        let e = g.map.get_mut(key)?;
        e.0 = tick;
        Some(e.1.clone())
    }

    fn put(&self, key: &str, r: &LayerResult) {
        let Ok(mut g) = self.inner.lock() else { return };
        g.tick += 1;
        let tick = g.tick;
        if !g.map.contains_key(key) && g.map.len() >= self.max {
            // O(n) eviction is fine at the sizes a node keeps (thousands of layers).
            if let Some(oldest) = g
                .map
                .iter()
                .min_by_key(|(_, (t, _))| *t)
                .map(|(k, _)| k.clone())
            {
                g.map.remove(&oldest);
            }
        }
        g.map.insert(key.to_string(), (tick, r.clone()));
    }
}
