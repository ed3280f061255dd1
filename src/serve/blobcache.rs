//! Small blobs kept in memory for `serve`, least recently used out first, within a byte
//! budget: the `lru` crate keeps the order, this file only counts bytes. Blobs are
//! content-addressed and never change, so an entry is never stale.

use std::sync::Mutex;

use bytes::Bytes;
use lru::LruCache;

use crate::digest::Digest;

pub struct BlobCache {
    budget: u64,
    inner: Mutex<Entries>,
}

struct Entries {
    lru: LruCache<Digest, Bytes>,
    used: u64,
}

impl BlobCache {
    /// A cache of at most `budget` bytes; a blob larger than a quarter of it is never kept.
    pub fn new(budget: u64) -> Self {
        BlobCache {
            budget,
            inner: Mutex::new(Entries {
                lru: LruCache::unbounded(),
                used: 0,
            }),
        }
    }

    pub fn get(&self, d: &Digest) -> Option<Bytes> {
        self.inner.lock().ok()?.lru.get(d).cloned()
    }

    pub fn put(&self, d: &Digest, bytes: &Bytes) {
        let size = bytes.len() as u64;
        if size > self.budget / 4 {
            return;
        }
        let Ok(mut e) = self.inner.lock() else {
            return;
        };
        if e.lru.contains(d) {
            return;
        }
        while e.used + size > self.budget {
            match e.lru.pop_lru() {
                Some((_, old)) => e.used -= old.len() as u64,
                None => break,
            }
        }
        e.lru.put(d.clone(), bytes.clone());
        e.used += size;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_recently_used_within_budget() {
        let cache = BlobCache::new(40);
        let (a, b, c) = (Digest::of(b"a"), Digest::of(b"b"), Digest::of(b"c"));
        cache.put(&a, &Bytes::from(vec![0; 10]));
        cache.put(&b, &Bytes::from(vec![0; 10]));
        assert!(cache.get(&a).is_some());
        cache.put(&c, &Bytes::from(vec![0; 10]));
        cache.put(&Digest::of(b"d"), &Bytes::from(vec![0; 10]));
        cache.put(&Digest::of(b"e"), &Bytes::from(vec![0; 10]));
        // b was used least recently, so it went first; a was touched and stays.
        assert!(cache.get(&b).is_none());
        assert!(cache.get(&a).is_some());
        // Too big for a quarter of the budget: never kept.
        cache.put(&Digest::of(b"big"), &Bytes::from(vec![0; 11]));
        assert!(cache.get(&Digest::of(b"big")).is_none());
        // A zero budget keeps nothing.
        let none = BlobCache::new(0);
        none.put(&a, &Bytes::from(vec![0; 1]));
        assert!(none.get(&a).is_none());
    }
}
