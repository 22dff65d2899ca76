//! `RedisCacheStore` against a real `redis-server`: the `CacheStore` contract (the same suite as
//! `InMemoryStore`), and an answer cached by one replica is a HIT on another.

#[path = "support/cache_contract.rs"]
mod cache_contract;
#[path = "support/redis.rs"]
mod redis_server;

use cache_contract::ContractCache;
use redis_server::RedisServer;
use tower_ai_gateway::cache::InMemoryStore;
use tower_ai_gateway::redis::{RedisCacheStore, RedisOptions, RedisStores};

impl ContractCache for InMemoryStore {
    async fn settled(&self) {}
}

impl ContractCache for RedisCacheStore {
    async fn settled(&self) {
        self.flush().await;
    }
}

async fn connect(server: &RedisServer) -> RedisStores {
    RedisStores::connect(&server.url(), RedisOptions::default())
        .await
        .unwrap()
}

#[tokio::test]
async fn in_memory_store_keeps_the_contract() {
    cache_contract::run(InMemoryStore::new(1 << 20)).await;
}

#[tokio::test]
async fn redis_store_keeps_the_contract() {
    let server = RedisServer::start();
    cache_contract::run(connect(&server).await.cache_store()).await;
}

#[tokio::test]
async fn redis_down_is_a_miss_and_writes_are_dropped() {
    let mut server = RedisServer::start();
    let options = RedisOptions::default().call_timeout(std::time::Duration::from_millis(200));
    let store = RedisStores::connect(&server.url(), options)
        .await
        .unwrap()
        .cache_store();
    server.kill();
    let key = tower_ai_gateway::cache::CacheKey::new("alice", "m", "/p", false, b"{}");
    assert!(tower_ai_gateway::cache::CacheStore::get(&store, &key)
        .await
        .is_none());
    tower_ai_gateway::cache::CacheStore::remove(&store, &key);
    store.flush().await;
}
