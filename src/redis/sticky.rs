//! [`RedisStickyStore`]: sticky sessions shared by every replica.

use std::fmt;
use std::time::Duration;

use super::RedisStores;
use crate::catalog::EndpointKey;
use crate::model_routing::{StickyLoad, StickyStore};

/// A [`StickyStore`] in Redis: a session that stuck to an endpoint on one replica sticks to it on
/// every replica.
///
/// * One session is one hash `{prefix}:sticky:{<session hash, hex>}`: model id → endpoint tag.
///   Each success (`HSET` + `PEXPIRE`, one queued pipeline, not retried) restarts the session's
///   idle timer (the routing layer's sticky TTL, 10 minutes by default); Redis drops the session
///   after that much idleness. The timer is per session, not per model of the session.
/// * [`load`](StickyStore::load) is one `HGETALL`, bounded by the call timeout; **any** failure
///   answers nothing (logged): routing then uses its local table, whatever the
///   [`FailMode`](super::FailMode). Only requests that name a session pay this round trip.
#[derive(Clone)]
pub struct RedisStickyStore {
    stores: RedisStores,
}

impl fmt::Debug for RedisStickyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStickyStore")
            .field("stores", &self.stores)
            .finish()
    }
}

impl RedisStickyStore {
    pub(super) fn new(stores: RedisStores) -> Self {
        RedisStickyStore { stores }
    }

    fn key(&self, session: u64) -> String {
        format!(
            "{}:sticky:{{{session:016x}}}",
            self.stores.options.key_prefix
        )
    }

    /// Waits until every write queued so far has been sent.
    pub async fn flush(&self) {
        self.stores.flush().await;
    }
}

impl StickyStore for RedisStickyStore {
    fn load(&self, session: u64) -> StickyLoad {
        let stores = self.stores.clone();
        let key = self.key(session);
        Box::pin(async move {
            let got: Result<Vec<(String, String)>, _> =
                stores.query(redis::cmd("HGETALL").arg(&key)).await;
            match got {
                Ok(pairs) => pairs
                    .iter()
                    .filter(|(model, tag)| !model.contains(' ') && !tag.contains(' '))
                    .map(|(model, tag)| EndpointKey::new(model, tag))
                    .collect(),
                Err(e) => {
                    tracing::warn!(error = %e, "redis sticky sessions: read failed, local table");
                    Vec::new()
                }
            }
        })
    }

    fn save(&self, session: u64, endpoint: &EndpointKey, ttl: Duration) {
        let stores = self.stores.clone();
        let key = self.key(session);
        let (model, tag) = (endpoint.model().to_owned(), endpoint.tag().to_owned());
        let px = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        self.stores.enqueue(async move {
            let mut pipe = redis::pipe();
            pipe.cmd("HSET").arg(&key).arg(model).arg(tag).ignore();
            pipe.cmd("PEXPIRE").arg(&key).arg(px).ignore();
            let mut conn = stores.conn.clone();
            if let Err(e) = stores.bounded(pipe.query_async::<()>(&mut conn)).await {
                tracing::warn!(error = %e, "redis sticky sessions: write lost");
            }
        });
    }
}
