//! Where cached answers live: the [`CacheStore`] trait and the in-memory [`InMemoryStore`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderMap;

use super::key::CacheKey;

/// One cached answer: the response head and body frames of a `200` as they left the layers below
/// the cache, prepared for replay (billable usage already zeroed).
#[derive(Clone, Debug)]
pub struct CachedResponse {
    /// The response headers to replay (without `Content-Length`, `X-Generation-Id` and cache
    /// headers, which each HIT sets itself).
    pub headers: HeaderMap,
    /// The body, frame by frame: one frame for a JSON answer, the SSE frames of a stream.
    pub frames: Vec<Bytes>,
    /// The generation id of the answer that was stored (`X-OpenRouter-Cache-Source-Id`).
    pub source_id: Option<Arc<str>>,
    /// The `created` timestamp (Unix seconds) in the stored body, which a HIT replaces.
    pub created: Option<i64>,
    /// When it was stored (Unix milliseconds, from the layer's clock).
    pub stored_at_ms: i64,
    /// How long it stays valid.
    pub ttl: Duration,
    /// Whether it is an SSE stream.
    pub streamed: bool,
    /// The MISS's response extensions (e.g. which endpoint served it, or that a Messages answer
    /// is already in Anthropic's wire format), given back to each HIT. A remote store keeps
    /// those it knows how to serialise.
    pub extensions: http::Extensions,
}

impl CachedResponse {
    /// The bytes it holds (body frames and headers), which is what an in-memory store weighs.
    pub fn size(&self) -> usize {
        let body: usize = self.frames.iter().map(Bytes::len).sum();
        let head: usize = self
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len())
            .sum();
        body + head + self.source_id.as_ref().map_or(0, |s| s.len())
    }

    /// Whether it is still valid at `now_ms`.
    pub fn is_fresh(&self, now_ms: i64) -> bool {
        now_ms
            < self
                .stored_at_ms
                .saturating_add(self.ttl.as_millis() as i64)
    }

    /// Its age at `now_ms`, in whole seconds.
    pub fn age_secs(&self, now_ms: i64) -> u64 {
        (now_ms.saturating_sub(self.stored_at_ms).max(0) / 1000) as u64
    }
}

/// The future of [`CacheStore::get`]: ready at once for an in-memory store, boxed for a remote
/// one.
pub enum StoreFuture {
    /// An answer already known.
    Ready(Option<Option<Arc<CachedResponse>>>),
    /// An answer still to come.
    Pending(Pin<Box<dyn Future<Output = Option<Arc<CachedResponse>>> + Send + 'static>>),
}

impl Future for StoreFuture {
    type Output = Option<Arc<CachedResponse>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            StoreFuture::Ready(v) => Poll::Ready(v.take().flatten()),
            StoreFuture::Pending(f) => f.as_mut().poll(cx),
        }
    }
}

impl fmt::Debug for StoreFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreFuture::Ready(_) => f.write_str("StoreFuture::Ready"),
            StoreFuture::Pending(_) => f.write_str("StoreFuture::Pending"),
        }
    }
}

/// A store of cached answers.
///
/// # Async reads, synchronous writes
///
/// [`get`](CacheStore::get) returns a [`StoreFuture`], so a remote store (Redis: `GET`) can
/// implement it; the in-memory store answers at once without allocating.
/// [`put`](CacheStore::put) and [`remove`](CacheStore::remove) are **synchronous and must not
/// block**: the cache stores an answer where its body ends — inside `poll_frame`, where nothing can
/// be awaited. The in-memory store applies them at once; a remote store should queue them (a
/// channel drained by its own task: `SET key value PX ttl`, `DEL key`) — each is one independent
/// command, with no read-modify-write across a round trip. The entry's own
/// [`ttl`](CachedResponse::ttl) is the expiry to give the remote store; the layer also checks
/// [`is_fresh`](CachedResponse::is_fresh) on every read, so a store may return an expired entry.
pub trait CacheStore: Send + Sync + 'static {
    /// The entry under `key`, if any.
    fn get(&self, key: &CacheKey) -> StoreFuture;

    /// Stores `entry` under `key` for `entry.ttl`, replacing any entry there.
    fn put(&self, key: CacheKey, entry: Arc<CachedResponse>);

    /// Drops the entry under `key`.
    fn remove(&self, key: &CacheKey);
}

impl<T: CacheStore + ?Sized> CacheStore for Arc<T> {
    fn get(&self, key: &CacheKey) -> StoreFuture {
        (**self).get(key)
    }

    fn put(&self, key: CacheKey, entry: Arc<CachedResponse>) {
        (**self).put(key, entry)
    }

    fn remove(&self, key: &CacheKey) {
        (**self).remove(key)
    }
}

/// Expires moka's entries at their own TTL (in real time: a housekeeping bound; freshness is
/// decided by the layer's clock).
struct EntryTtl;

impl moka::Expiry<CacheKey, Arc<CachedResponse>> for EntryTtl {
    fn expire_after_create(
        &self,
        _key: &CacheKey,
        value: &Arc<CachedResponse>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// The default store: an in-process cache bounded by the total bytes of its entries.
///
/// Built on [moka](https://docs.rs/moka) (a concurrent cache with a TinyLFU admission policy and
/// LRU eviction): every entry is weighed by [`CachedResponse::size`], and entries are evicted when
/// the sum would exceed `max_bytes`. Eviction is amortised over later operations, so the total can
/// overshoot briefly by the entries written since the last maintenance. Clones share the entries.
#[derive(Clone)]
pub struct InMemoryStore {
    cache: moka::sync::Cache<CacheKey, Arc<CachedResponse>>,
    max_bytes: u64,
}

impl InMemoryStore {
    /// A store holding at most `max_bytes` of answers.
    pub fn new(max_bytes: u64) -> Self {
        let cache = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_k: &CacheKey, v: &Arc<CachedResponse>| {
                u32::try_from(v.size()).unwrap_or(u32::MAX)
            })
            .expire_after(EntryTtl)
            .build();
        InMemoryStore { cache, max_bytes }
    }

    /// The bound given to [`new`](Self::new).
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// The total bytes of the entries held, after pending maintenance.
    pub fn weighted_size(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.weighted_size()
    }

    /// The number of entries held, after pending maintenance.
    pub fn entry_count(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }
}

impl CacheStore for InMemoryStore {
    fn get(&self, key: &CacheKey) -> StoreFuture {
        StoreFuture::Ready(Some(self.cache.get(key)))
    }

    fn put(&self, key: CacheKey, entry: Arc<CachedResponse>) {
        self.cache.insert(key, entry);
    }

    fn remove(&self, key: &CacheKey) {
        self.cache.invalidate(key);
    }
}

impl fmt::Debug for InMemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryStore")
            .field("max_bytes", &self.max_bytes)
            .field("entries", &self.cache.entry_count())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(bytes: usize) -> Arc<CachedResponse> {
        Arc::new(CachedResponse {
            headers: HeaderMap::new(),
            frames: vec![Bytes::from(vec![b'x'; bytes])],
            source_id: None,
            created: None,
            stored_at_ms: 0,
            ttl: Duration::from_secs(300),
            streamed: false,
            extensions: http::Extensions::new(),
        })
    }

    #[test]
    fn bounded_by_total_bytes() {
        let store = InMemoryStore::new(10_000);
        for i in 0..50 {
            let key = CacheKey::new("k", "m", "/e", false, format!("{i}").as_bytes());
            store.put(key, entry(1_000));
        }
        assert!(store.weighted_size() <= 10_000, "{}", store.weighted_size());
        assert!(store.entry_count() <= 10);
    }

    #[test]
    fn freshness_and_age() {
        let e = entry(1);
        assert!(e.is_fresh(299_999));
        assert!(!e.is_fresh(300_000));
        assert_eq!(e.age_secs(12_999), 12);
        assert_eq!(e.age_secs(-5), 0);
    }
}
