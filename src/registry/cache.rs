//! A small bounded cache of content-addressed documents (manifests, signature blobs)
//! keyed by digest. Content by digest never changes, so entries never go stale; the
//! bounds (entries and bytes) keep a registry full of signatures from growing it.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;

use crate::digest::Digest;

pub(crate) struct ContentCache {
    max_entries: usize,
    max_bytes: usize,
    bytes: usize,
    entries: HashMap<Digest, (String, Bytes)>,
    /// Insertion order; the oldest entry goes first (FIFO is enough for a working set
    /// that is re-verified on every pull).
    order: VecDeque<Digest>,
}

impl ContentCache {
    pub(crate) fn new(max_entries: usize, max_bytes: usize) -> ContentCache {
        ContentCache {
            max_entries,
            max_bytes,
            bytes: 0,
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn get(&self, d: &Digest) -> Option<(String, Bytes)> {
        self.entries.get(d).cloned()
    }

    pub(crate) fn put(&mut self, d: Digest, media_type: String, bytes: Bytes) {
        if bytes.len() > self.max_bytes || self.entries.contains_key(&d) {
            return;
        }
        while !self.order.is_empty()
            && (self.entries.len() >= self.max_entries || self.bytes + bytes.len() > self.max_bytes)
        {
            if let Some(old) = self.order.pop_front()
                && let Some((_, b)) = self.entries.remove(&old)
            {
                self.bytes -= b.len();
            }
        }
        self.bytes += bytes.len();
        self.order.push_back(d.clone());
        self.entries.insert(d, (media_type, bytes));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_by_entries_and_bytes() {
        let mut c = ContentCache::new(2, 10);
        let d = |s: &str| Digest::sha256_of(s.as_bytes());
        c.put(d("a"), "t".into(), Bytes::from_static(b"1234"));
        c.put(d("b"), "t".into(), Bytes::from_static(b"1234"));
        c.put(d("c"), "t".into(), Bytes::from_static(b"1234"));
        assert_eq!(c.len(), 2);
        assert!(c.get(&d("a")).is_none());
        c.put(d("big"), "t".into(), Bytes::from_static(b"12345678901"));
        assert!(c.get(&d("big")).is_none());
        c.put(d("e"), "t".into(), Bytes::from_static(b"123456789"));
        assert_eq!(c.len(), 1);
        assert!(c.get(&d("e")).is_some());
    }
}
