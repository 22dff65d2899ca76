//! What a replica shares with the others through Redis beyond the stores `config` puts there
//! (budgets, rate limits, cache): endpoint health, sticky sessions and generation records. Without `--redis`
//! (or without feature `redis`) nothing is shared.

use serde_json::Value;
use tower_ai_gateway::usage_meter::CallerKey;
use tower_ai_gateway::{GatewayLayer, Stats};

/// The shared generation records, when in Redis.
#[derive(Clone, Default)]
pub struct Shared {
    #[cfg(feature = "redis")]
    generations: Option<tower_ai_gateway::redis::RedisGenerationStore>,
}

impl Shared {
    /// With a Redis connection: routing reads health shared with the other replicas (a
    /// `RedisHealth` over `stats`, synced every second in the background) and their sticky
    /// sessions, and every generation record also goes to Redis. Must run inside a tokio runtime.
    pub fn wire(
        redis: &crate::config::SharedStores,
        stats: &Stats,
        gateway: GatewayLayer,
    ) -> (GatewayLayer, Shared) {
        #[cfg(feature = "redis")]
        if let Some(stores) = redis {
            let health = stores.health(stats.clone());
            health.start();
            let generations = stores.generation_store();
            let sink = generations.clone();
            let sticky = stores.sticky_store();
            let gateway = gateway
                .health(health)
                .routing(|r| r.sticky_store(sticky))
                .usage_meter(|u| u.sink(sink));
            let shared = Shared {
                generations: Some(generations),
            };
            return (gateway, shared);
        }
        let _ = (redis, stats);
        (gateway, Shared::default())
    }

    /// The record `id` from Redis (its caller and its `/generation` JSON): `None` when records
    /// are not shared or Redis did not answer (the caller then looks in its own store).
    pub async fn generation(&self, id: &str) -> Option<Option<(Option<CallerKey>, Value)>> {
        #[cfg(feature = "redis")]
        if let Some(store) = &self.generations {
            match store.get(id).await {
                Ok(found) => return Some(found.map(|g| (g.caller, g.data))),
                Err(e) => tracing::warn!(error = %e, "generation lookup in redis failed"),
            }
        }
        let _ = id;
        None
    }

    /// Waits until the generation records queued so far are in Redis (tests).
    #[allow(dead_code)]
    pub async fn flush(&self) {
        #[cfg(feature = "redis")]
        if let Some(store) = &self.generations {
            store.flush().await;
        }
    }
}
