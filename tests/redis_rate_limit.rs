//! `RedisRateLimitStore` against a real `redis-server`: the `RateLimitStore` contract (the same
//! suite as `InMemoryRateLimitStore`), and counters shared by replicas.

#[path = "support/rate_limit_contract.rs"]
mod rate_limit_contract;
#[path = "support/redis.rs"]
mod redis_server;

use rate_limit_contract::{check, ContractStore, DAY0};
use redis_server::RedisServer;
use tower_ai_gateway::rate_limit::{Decision, InMemoryRateLimitStore, RateLimitStore, Window};
use tower_ai_gateway::redis::{RedisOptions, RedisRateLimitStore, RedisStores};

impl ContractStore for InMemoryRateLimitStore {
    async fn settled(&self) {}
}

impl ContractStore for RedisRateLimitStore {
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
    rate_limit_contract::run(InMemoryRateLimitStore::new()).await;
}

#[tokio::test]
async fn redis_store_keeps_the_contract() {
    let server = RedisServer::start();
    rate_limit_contract::run(connect(&server).await.rate_limit_store()).await;
}

#[tokio::test]
async fn three_replicas_share_one_limit() {
    let server = RedisServer::start();
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(connect(&server).await.rate_limit_store());
    }
    let c = check("key:alice:rpm", 100, Window::MINUTE, 1);
    let tasks: Vec<_> = (0..600)
        .map(|i| {
            let (s, c) = (replicas[i % 3].clone(), c.clone());
            tokio::spawn(async move { s.acquire(vec![c], DAY0 + i as i64).await })
        })
        .collect();
    let mut admitted = 0;
    for t in tasks {
        admitted += usize::from(matches!(t.await.unwrap(), Decision::Allowed(_)));
    }
    assert_eq!(admitted, 100);
}
