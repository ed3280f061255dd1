//! Small blobs kept in memory for `serve`, least recently used out first, within a byte
//! budget. Blobs are content-addressed and never change, so an entry is never stale.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;

use crate::digest::Digest;

pub struct BlobCache {
    budget: u64,
    inner: Mutex<Lru>,
}

#[derive(Default)]
struct Lru {
    /// Blob → bytes and the tick of its last use.
    map: HashMap<Digest, (Bytes, u64)>,
    used: u64,
    tick: u64,
}

impl BlobCache {
    /// A cache of at most `budget` bytes; a blob larger than a quarter of it is never kept.
    pub fn new(budget: u64) -> Self {
        BlobCache {
            budget,
            inner: Mutex::new(Lru::default()),
        }
    }

    pub fn get(&self, d: &Digest) -> Option<Bytes> {
        let mut lru = self.inner.lock().ok()?;
        lru.tick += 1;
        let now = lru.tick;
        lru.map.get_mut(d).map(|(bytes, used)| {
            *used = now;
            bytes.clone()
        })
    }

    pub fn put(&self, d: &Digest, bytes: &Bytes) {
        let size = bytes.len() as u64;
        if size > self.budget / 4 {
            return;
        }
        let Ok(mut lru) = self.inner.lock() else {
            return;
        };
        if lru.map.contains_key(d) {
            return;
        }
        while lru.used + size > self.budget {
            let Some(oldest) = lru
                .map
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some((b, _)) = lru.map.remove(&oldest) {
                lru.used -= b.len() as u64;
            }
        }
        lru.tick += 1;
        let tick = lru.tick;
        lru.map.insert(d.clone(), (bytes.clone(), tick));
        lru.used += size;
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
