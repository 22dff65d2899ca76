//! [`RedisCacheStore`]: the response cache in Redis, shared by every replica.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use super::{codec, RedisStores};
use crate::cache::{CacheKey, CacheStore, CachedResponse, StoreFuture};

/// A [`CacheStore`] in Redis: an answer cached by one replica is a HIT on all of them.
///
/// * One entry is one string key, `{prefix}:cache:{caller}:{SHA-256 hex}` (the caller as hash
///   tag), holding the entry in a small binary format (headers, body frames, times; of the
///   response extensions only the mark that a body is on the Anthropic Messages wire is kept).
///   `SET … PX ttl`: Redis drops it when it expires; the layer checks freshness on every read too.
/// * [`get`](CacheStore::get) is one `GET`, bounded by the call timeout; **any** failure (Redis
///   away, a value it cannot read) is a miss, whatever the [`FailMode`](super::FailMode): a cache
///   never refuses a request.
/// * [`put`](CacheStore::put) and [`remove`](CacheStore::remove) are queued (`SET`, `DEL`) and not
///   retried: a lost write costs a later miss, nothing more.
/// * Memory is Redis's to bound (`maxmemory` with an `allkeys-lru` or `volatile-ttl` policy); the
///   layer's own entry size limit applies before anything is sent.
#[derive(Clone)]
pub struct RedisCacheStore {
    stores: RedisStores,
}

impl fmt::Debug for RedisCacheStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCacheStore")
            .field("stores", &self.stores)
            .finish()
    }
}

impl RedisCacheStore {
    pub(super) fn new(stores: RedisStores) -> Self {
        RedisCacheStore { stores }
    }

    fn key(&self, key: &CacheKey) -> String {
        let tag = self.stores.key(key.caller(), "cache");
        format!("{tag}:{}", key.hex())
    }

    /// Waits until every write queued so far has been sent.
    pub async fn flush(&self) {
        self.stores.flush().await;
    }
}

impl CacheStore for RedisCacheStore {
    fn get(&self, key: &CacheKey) -> StoreFuture {
        let stores = self.stores.clone();
        let name = self.key(key);
        StoreFuture::Pending(Box::pin(async move {
            let got: Result<Option<Vec<u8>>, _> = stores.query(redis::cmd("GET").arg(&name)).await;
            match got {
                Ok(raw) => raw
                    .and_then(|r| codec::decode(Bytes::from(r)))
                    .map(Arc::new),
                Err(e) => {
                    tracing::warn!(error = %e, "redis cache: read failed, a miss");
                    None
                }
            }
        }))
    }

    fn put(&self, key: CacheKey, entry: Arc<CachedResponse>) {
        let stores = self.stores.clone();
        let name = self.key(&key);
        let ttl = u64::try_from(entry.ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let value = codec::encode(&entry);
        self.stores.enqueue(async move {
            let mut cmd = redis::cmd("SET");
            cmd.arg(&name).arg(value.as_ref()).arg("PX").arg(ttl);
            if let Err(e) = stores.query::<()>(&cmd).await {
                tracing::warn!(error = %e, "redis cache: write lost");
            }
        });
    }

    fn remove(&self, key: &CacheKey) {
        let stores = self.stores.clone();
        let name = self.key(key);
        self.stores.enqueue(async move {
            if let Err(e) = stores.query::<()>(redis::cmd("DEL").arg(&name)).await {
                tracing::warn!(error = %e, "redis cache: delete lost");
            }
        });
    }
}
