//! [`InMemoryRateLimitStore`]: sliding-window logs and UTC-day counters in sharded maps.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use super::store::{next_midnight, Check, Decision, Grant, RateLimitStore, Refused, StoreFuture};
use super::store::{Window, DAY_MS};
use crate::hash::{fast_hash, FastMap};

/// Default number of shards of an [`InMemoryRateLimitStore`].
pub const DEFAULT_SHARDS: usize = 64;
/// Default most buckets an [`InMemoryRateLimitStore`] holds.
pub const DEFAULT_MAX_BUCKETS: usize = 100_000;

/// How often (in operations on one shard) its expired buckets are swept out.
const SWEEP_EVERY: u32 = 1024;

#[derive(Debug)]
enum Counter {
    /// `(Unix ms, units)` in time order, entries of the same millisecond merged; `sum` of units.
    Sliding { log: VecDeque<(i64, u64)>, sum: u64 },
    /// Units counted on UTC day `day` (days since the epoch).
    Day { day: i64, count: u64 },
}

#[derive(Debug)]
struct Bucket {
    window: Window,
    counter: Counter,
    /// When the bucket counts nothing any more (Unix ms): it may then be evicted.
    expires: i64,
}

impl Bucket {
    fn new(window: Window, now: i64) -> Self {
        let counter = match window {
            Window::Sliding(_) => Counter::Sliding {
                log: VecDeque::new(),
                sum: 0,
            },
            Window::UtcDay => Counter::Day {
                day: now.div_euclid(DAY_MS),
                count: 0,
            },
        };
        Bucket {
            window,
            counter,
            expires: now,
        }
    }

    /// Drops what has left the window at `now`; returns the units still counted.
    fn used(&mut self, now: i64) -> u64 {
        let len = self.window.millis();
        match &mut self.counter {
            Counter::Sliding { log, sum } => {
                // An entry charged at `t` counts during (t − len, t]… until `t + len` exclusive.
                while let Some(&(at, units)) = log.front() {
                    if at.saturating_add(len) > now {
                        break;
                    }
                    log.pop_front();
                    *sum -= units;
                }
                *sum
            }
            Counter::Day { day, count } => {
                let today = now.div_euclid(DAY_MS);
                if *day != today {
                    *day = today;
                    *count = 0;
                }
                *count
            }
        }
    }

    /// `None` if `check.cost` more units fit at `now`, else why not.
    fn refusal(&mut self, check: &Check, now: i64) -> Option<Refused> {
        let used = self.used(now);
        if used.saturating_add(check.cost) <= check.limit {
            return None;
        }
        let remaining = check.limit.saturating_sub(used);
        let len = self.window.millis();
        let reset = match &self.counter {
            Counter::Day { .. } => next_midnight(now),
            // More than the whole limit never fits: report the end of a full window.
            Counter::Sliding { .. } if check.cost > check.limit => now.saturating_add(len),
            Counter::Sliding { log, .. } => {
                // The time the oldest entries free enough units for this request.
                let need = used + check.cost - check.limit;
                let mut freed = 0;
                let mut at_free = now.saturating_add(len);
                for &(at, units) in log {
                    freed += units;
                    if freed >= need {
                        at_free = at.saturating_add(len);
                        break;
                    }
                }
                at_free
            }
        };
        Some(Refused {
            index: 0,
            limit: check.limit,
            remaining,
            reset_unix_ms: reset,
        })
    }

    fn charge(&mut self, units: u64, now: i64) {
        if units == 0 {
            return;
        }
        match &mut self.counter {
            Counter::Sliding { log, sum } => {
                match log.back_mut() {
                    Some((at, u)) if *at == now => *u += units,
                    _ => log.push_back((now, units)),
                }
                *sum += units;
                self.expires = self.expires.max(now.saturating_add(self.window.millis()));
            }
            Counter::Day { count, .. } => {
                *count += units;
                self.expires = self.expires.max(next_midnight(now));
            }
        }
    }

    fn refund(&mut self, units: u64, at: i64) {
        match &mut self.counter {
            Counter::Sliding { log, sum } => {
                if let Some(i) = log.iter().rposition(|(t, _)| *t == at) {
                    let back = units.min(log[i].1);
                    log[i].1 -= back;
                    *sum -= back;
                    if log[i].1 == 0 {
                        log.remove(i);
                    }
                }
            }
            Counter::Day { day, count } => {
                if *day == at.div_euclid(DAY_MS) {
                    *count -= units.min(*count);
                }
            }
        }
    }
}

#[derive(Debug, Default)]
struct Shard {
    map: FastMap<Arc<str>, Bucket>,
    ops: u32,
}

impl Shard {
    /// The bucket of `check`, created (evicting if the shard is full) when missing or when its
    /// window changed.
    fn bucket(&mut self, check: &Check, now: i64, cap: usize) -> &mut Bucket {
        self.ops = self.ops.wrapping_add(1);
        if self.ops % SWEEP_EVERY == 0 {
            self.map.retain(|_, b| b.expires > now);
        }
        let fresh = self
            .map
            .get(&check.bucket)
            .is_none_or(|b| b.window != check.window);
        if fresh {
            if !self.map.contains_key(&check.bucket) && self.map.len() >= cap {
                self.evict(now, cap);
            }
            self.map
                .insert(check.bucket.clone(), Bucket::new(check.window, now));
        }
        self.map.get_mut(&check.bucket).expect("inserted above")
    }

    /// Makes room: drops the expired buckets, else the one closest to expiring (it holds the least).
    fn evict(&mut self, now: i64, cap: usize) {
        self.map.retain(|_, b| b.expires > now);
        if self.map.len() < cap {
            return;
        }
        let victim = self
            .map
            .iter()
            .min_by_key(|(_, b)| b.expires)
            .map(|(k, _)| k.clone());
        if let Some(k) = victim {
            self.map.remove(&k);
        }
    }
}

struct Inner {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
}

fn lock(m: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inner {
    fn shard_of(&self, bucket: &str) -> usize {
        (fast_hash(bucket) % self.shards.len() as u64) as usize
    }

    fn acquire(&self, checks: Vec<Check>, now: i64) -> Decision {
        let of: Vec<usize> = checks.iter().map(|c| self.shard_of(&c.bucket)).collect();
        let mut order = of.clone();
        order.sort_unstable();
        order.dedup();
        // Locked in index order, so two calls over the same shards cannot deadlock.
        let mut guards: Vec<MutexGuard<'_, Shard>> =
            order.iter().map(|&i| lock(&self.shards[i])).collect();
        let slot = |shard: usize| order.binary_search(&shard).expect("locked above");
        for (n, c) in checks.iter().enumerate() {
            let bucket = guards[slot(of[n])].bucket(c, now, self.per_shard);
            if let Some(mut r) = bucket.refusal(c, now) {
                r.index = n;
                return Decision::Refused(r);
            }
        }
        for (n, c) in checks.iter().enumerate() {
            guards[slot(of[n])]
                .bucket(c, now, self.per_shard)
                .charge(c.cost, now);
        }
        drop(guards);
        Decision::Allowed(Grant {
            charged: checks.into_iter().map(|c| (c, now)).collect(),
        })
    }

    fn refund(&self, grant: Grant) {
        for (c, at) in grant.charged {
            let mut shard = lock(&self.shards[self.shard_of(&c.bucket)]);
            if let Some(b) = shard.map.get_mut(&c.bucket) {
                b.refund(c.cost, at);
            }
        }
    }

    fn used(&self, check: &Check, now: i64) -> u64 {
        let mut shard = lock(&self.shards[self.shard_of(&check.bucket)]);
        match shard.map.get_mut(&check.bucket) {
            Some(b) if b.window == check.window => b.used(now),
            _ => 0,
        }
    }
}

/// The default [`RateLimitStore`]: counters in memory, for one process.
///
/// * **Sliding windows** keep a log of `(time, units)` per bucket, entries of the same
///   millisecond merged, expired entries dropped on every access: a bucket of limit `n` holds at
///   most `n` entries (each at least one unit), so memory per bucket is bounded by its limit.
/// * **UTC-day windows** are one counter and the day it counts.
/// * Buckets live in [`DEFAULT_SHARDS`] maps, each behind its own mutex (a call locks only the
///   shards its buckets hash to, in index order). The store holds at most
///   [`DEFAULT_MAX_BUCKETS`] buckets ([`with_capacity`](Self::with_capacity)); buckets that count
///   nothing any more are swept out every 1,024 operations on their shard, and when a shard is
///   full the one closest to expiring is evicted first (forgetting the least).
///
/// Cloning shares the counters.
#[derive(Clone)]
pub struct InMemoryRateLimitStore {
    inner: Arc<Inner>,
}

impl InMemoryRateLimitStore {
    /// A store with the default shards and capacity.
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_SHARDS, DEFAULT_MAX_BUCKETS)
    }

    /// A store of `shards` maps (at least 1) holding at most `max_buckets` buckets in all
    /// (at least one per shard).
    pub fn with_capacity(shards: usize, max_buckets: usize) -> Self {
        let shards = shards.max(1);
        InMemoryRateLimitStore {
            inner: Arc::new(Inner {
                shards: (0..shards).map(|_| Mutex::default()).collect(),
                per_shard: max_buckets.div_ceil(shards).max(1),
            }),
        }
    }

    /// Buckets held now (expired ones not yet swept included).
    pub fn len(&self) -> usize {
        self.inner.shards.iter().map(|s| lock(s).map.len()).sum()
    }

    /// True if no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for InMemoryRateLimitStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for InMemoryRateLimitStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryRateLimitStore")
            .field("shards", &self.inner.shards.len())
            .field("buckets", &self.len())
            .finish()
    }
}

#[cfg(feature = "redis")]
impl InMemoryRateLimitStore {
    /// [`RateLimitStore::acquire`], decided now (the Redis store's local fallback).
    pub(crate) fn decide(&self, checks: Vec<Check>, now_unix_ms: i64) -> Decision {
        self.inner.acquire(checks, now_unix_ms)
    }
}

impl RateLimitStore for InMemoryRateLimitStore {
    fn acquire(&self, checks: Vec<Check>, now_unix_ms: i64) -> StoreFuture<Decision> {
        let inner = self.inner.clone();
        // Decided when polled: a future dropped unpolled charges nothing.
        Box::pin(async move { inner.acquire(checks, now_unix_ms) })
    }

    fn refund(&self, grant: Grant) {
        self.inner.refund(grant);
    }

    fn used(&self, check: &Check, now_unix_ms: i64) -> StoreFuture<u64> {
        let used = self.inner.used(check, now_unix_ms);
        Box::pin(std::future::ready(used))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn check(bucket: &str, limit: u64, window: Window, cost: u64) -> Check {
        Check {
            bucket: bucket.into(),
            limit,
            window,
            cost,
        }
    }

    fn decide(store: &InMemoryRateLimitStore, checks: Vec<Check>, now: i64) -> Decision {
        store.inner.acquire(checks, now)
    }

    #[test]
    fn sliding_window_is_exact() {
        let s = InMemoryRateLimitStore::new();
        let c = check("a", 3, Window::MINUTE, 1);
        for t in [0, 10_000, 20_000] {
            assert!(matches!(
                decide(&s, vec![c.clone()], t),
                Decision::Allowed(_)
            ));
        }
        // The 4th within any 60 s is refused until the first leaves the window at 60 000.
        let Decision::Refused(r) = decide(&s, vec![c.clone()], 59_999) else {
            panic!("allowed a 4th request within the minute")
        };
        assert_eq!((r.limit, r.remaining, r.reset_unix_ms), (3, 0, 60_000));
        assert_eq!(r.retry_after(59_999), Duration::from_millis(1));
        assert!(matches!(
            decide(&s, vec![c.clone()], 60_000),
            Decision::Allowed(_)
        ));
        assert!(matches!(decide(&s, vec![c], 60_001), Decision::Refused(_)));
    }

    #[test]
    fn all_or_nothing_across_buckets_and_shards() {
        let s = InMemoryRateLimitStore::with_capacity(8, 1000);
        let roomy = check("roomy", 100, Window::MINUTE, 1);
        let tight = check("tight", 1, Window::UtcDay, 1);
        assert!(matches!(
            decide(&s, vec![roomy.clone(), tight.clone()], 0),
            Decision::Allowed(_)
        ));
        let Decision::Refused(r) = decide(&s, vec![roomy.clone(), tight], 1) else {
            panic!("the day bucket is full")
        };
        assert_eq!(r.index, 1);
        assert_eq!(r.reset_unix_ms, DAY_MS);
        // The refused call charged nothing in the roomy bucket.
        assert_eq!(s.inner.used(&roomy, 2), 1);
    }

    #[test]
    fn day_counter_resets_at_utc_midnight_and_refunds() {
        let s = InMemoryRateLimitStore::new();
        let c = check("d", 2, Window::UtcDay, 1);
        let Decision::Allowed(g) = decide(&s, vec![c.clone()], DAY_MS - 5) else {
            panic!()
        };
        assert!(matches!(
            decide(&s, vec![c.clone()], DAY_MS - 4),
            Decision::Allowed(_)
        ));
        assert!(matches!(
            decide(&s, vec![c.clone()], DAY_MS - 3),
            Decision::Refused(_)
        ));
        s.refund(g);
        assert_eq!(s.inner.used(&c, DAY_MS - 2), 1);
        assert_eq!(s.inner.used(&c, DAY_MS), 0);
    }

    #[test]
    fn weighted_costs_and_refund_in_sliding_windows() {
        let s = InMemoryRateLimitStore::new();
        let c = |cost| check("tpm", 1000, Window::MINUTE, cost);
        let Decision::Allowed(g) = decide(&s, vec![c(700)], 0) else {
            panic!()
        };
        let Decision::Refused(r) = decide(&s, vec![c(400)], 1) else {
            panic!()
        };
        assert_eq!((r.remaining, r.reset_unix_ms), (300, 60_000));
        s.refund(g);
        assert!(matches!(decide(&s, vec![c(400)], 2), Decision::Allowed(_)));
        // More than the whole limit never fits.
        let Decision::Refused(r) = decide(&s, vec![c(1001)], 3) else {
            panic!()
        };
        assert_eq!(r.reset_unix_ms, 60_003);
    }

    #[test]
    fn exact_under_threads() {
        // 8 threads × 250 requests at once against a limit of 100, the checks spread over shards.
        let s = InMemoryRateLimitStore::with_capacity(16, 1000);
        let checks = || {
            vec![
                check("key:k:rpm", 100, Window::MINUTE, 1),
                check("key:k:rpd", 1000, Window::UtcDay, 1),
            ]
        };
        let allowed: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| {
                        (0..250)
                            .filter(|i| {
                                matches!(decide(&s, checks(), *i as i64), Decision::Allowed(_))
                            })
                            .count()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(allowed, 100);
        assert_eq!(
            s.inner.used(&checks()[1], 1000),
            100,
            "refusals charged nothing"
        );
    }

    #[test]
    fn memory_is_bounded_and_expired_buckets_go() {
        let s = InMemoryRateLimitStore::with_capacity(1, 10);
        for i in 0..100 {
            let c = check(&format!("k{i}"), 5, Window::MINUTE, 1);
            decide(&s, vec![c], i);
        }
        assert!(s.len() <= 10, "{} buckets", s.len());
        // Once the window has passed, every bucket counts nothing and the next full shard sweeps.
        for i in 0..10 {
            let c = check(&format!("late{i}"), 5, Window::MINUTE, 1);
            decide(&s, vec![c], 200_000 + i);
        }
        assert!(s.inner.shards[0]
            .lock()
            .unwrap()
            .map
            .keys()
            .all(|k| k.starts_with("late")));
    }
}
