use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::catalog::EndpointKey;
use crate::hash::{fast_hash, FastMap};

const SHARDS: usize = 16;

/// Sticky sessions: conversation → endpoint, per model, with an idle TTL and bounded memory.
///
/// Each shard keeps two generations of entries; when the current one reaches its share of the
/// capacity, it becomes the old one and the previous old one is dropped (entries still in use are
/// carried forward when read). Memory is bounded by the capacity, lookups are O(1), and no scan ever
/// runs.
pub(crate) struct StickyTable {
    pub(crate) seed: u64,
    shards: Vec<Mutex<Shard>>,
    ttl: Duration,
    per_shard: usize,
}

#[derive(Default)]
struct Shard {
    current: FastMap<u64, Entry>,
    old: FastMap<u64, Entry>,
}

#[derive(Clone)]
struct Entry {
    endpoint: EndpointKey,
    last_used: Instant,
}

/// Keys are derived from caller-chosen session ids, so they are mixed with a per-table random seed.
pub(crate) fn sticky_key(seed: u64, session: u64, model: &str) -> u64 {
    fast_hash(&(seed, session, model))
}

impl StickyTable {
    pub(crate) fn new(ttl: Duration, capacity: usize) -> Self {
        StickyTable {
            seed: rand::random(),
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            ttl,
            per_shard: (capacity / SHARDS / 2).max(1),
        }
    }

    fn shard(&self, key: u64) -> std::sync::MutexGuard<'_, Shard> {
        let m = &self.shards[(key as usize) % SHARDS];
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The idle TTL.
    pub(crate) fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The live sticky endpoint for `key`.
    pub(crate) fn get(&self, key: u64, now: Instant) -> Option<EndpointKey> {
        let mut s = self.shard(key);
        let entry = match s.current.get(&key) {
            Some(e) => e.clone(),
            None => {
                let e = s.old.remove(&key)?;
                s.current.insert(key, e.clone());
                e
            }
        };
        if now.saturating_duration_since(entry.last_used) > self.ttl {
            s.current.remove(&key);
            return None;
        }
        Some(entry.endpoint)
    }

    /// Records a success on `endpoint`: (re)starts the idle timer.
    pub(crate) fn put(&self, key: u64, endpoint: EndpointKey, now: Instant) {
        let per_shard = self.per_shard;
        let mut s = self.shard(key);
        if s.current.len() >= per_shard && !s.current.contains_key(&key) {
            let full = std::mem::take(&mut s.current);
            s.old = full;
        }
        s.current.insert(
            key,
            Entry {
                endpoint,
                last_used: now,
            },
        );
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|m| {
                let s = m.lock().unwrap_or_else(|p| p.into_inner());
                s.current.len() + s.old.len()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn ttl_and_bound() {
        let t = StickyTable::new(Duration::from_secs(600), 64);
        let k = EndpointKey::new("m", "p");
        let now = Instant::now();
        t.put(1, k.clone(), now);
        assert_eq!(t.get(1, now + Duration::from_secs(599)), Some(k.clone()));
        assert_eq!(t.get(1, now + Duration::from_secs(601)), None);
        for i in 0..10_000u64 {
            t.put(i, k.clone(), now);
        }
        assert!(t.len() <= 64 + SHARDS, "{}", t.len());
    }
}
