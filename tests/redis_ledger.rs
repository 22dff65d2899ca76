//! `RedisLedger` against a real `redis-server`: the `Ledger` contract (the same suite as
//! `InMemoryLedger`), reservations left by a crashed replica expiring, micro-dollar rounding.

#[path = "support/ledger_contract.rs"]
mod ledger_contract;
#[path = "support/redis.rs"]
mod redis_server;

use std::time::Duration;

use ledger_contract::{ContractLedger, T};
use redis_server::RedisServer;
use tower_ai_gateway::catalog::Usd;
use tower_ai_gateway::clock::ManualClock;
use tower_ai_gateway::redis::{RedisLedger, RedisOptions, RedisStores};
use tower_ai_gateway::usage_meter::{CallerKey, InMemoryLedger, KeyLimits, Ledger, Period};

impl ContractLedger for InMemoryLedger {
    fn set_key_limits(&self, key: &str, limits: KeyLimits) {
        self.set_limits(key, limits);
    }
    async fn settled(&self) {}
}

impl ContractLedger for RedisLedger {
    fn set_key_limits(&self, key: &str, limits: KeyLimits) {
        self.set_limits(key, limits);
    }
    async fn settled(&self) {
        self.flush().await;
    }
}

async fn connect(server: &RedisServer, options: RedisOptions) -> RedisStores {
    RedisStores::connect(&server.url(), options).await.unwrap()
}

#[tokio::test]
async fn in_memory_ledger_keeps_the_contract() {
    ledger_contract::run(InMemoryLedger::new(ManualClock::new(T))).await;
}

#[tokio::test]
async fn redis_ledger_keeps_the_contract() {
    let server = RedisServer::start();
    let stores = connect(&server, RedisOptions::default()).await;
    ledger_contract::run(stores.ledger()).await;
}

#[tokio::test]
async fn two_replicas_share_one_budget() {
    let server = RedisServer::start();
    let a = connect(&server, RedisOptions::default()).await.ledger();
    let b = connect(&server, RedisOptions::default()).await.ledger();
    let limits = KeyLimits::new().limit(Period::Total, Usd::from_int(1));
    a.set_limits("k", limits.clone());
    b.set_limits("k", limits);
    let k = CallerKey::new("k");
    let r = a.reserve(&k, Usd::parse("0.7").unwrap(), T).await.unwrap();
    assert!(b.reserve(&k, Usd::parse("0.7").unwrap(), T).await.is_err());
    a.settle(r, Usd::parse("0.25").unwrap());
    a.flush().await;
    let r = b.reserve(&k, Usd::parse("0.75").unwrap(), T).await.unwrap();
    b.release(r);
    b.flush().await;
    assert_eq!(a.usage(&k, T).await.usage, Usd::parse("0.25").unwrap());
}

#[tokio::test]
async fn a_crashed_replicas_reservation_expires_after_the_ttl() {
    let server = RedisServer::start();
    let options = RedisOptions::default().reservation_ttl(Duration::from_secs(60));
    let crashed = connect(&server, options.clone()).await.ledger();
    let alive = connect(&server, options).await.ledger();
    for l in [&crashed, &alive] {
        l.set_limits("k", KeyLimits::new().limit(Period::Day, Usd::from_int(1)));
    }
    let k = CallerKey::new("k");
    let held = crashed.reserve(&k, Usd::from_int(1), T).await.unwrap();
    std::mem::forget(held); // never settled: the replica died
    drop(crashed);
    assert!(alive
        .reserve(&k, Usd::parse("0.01").unwrap(), T + 59_999)
        .await
        .is_err());
    assert_eq!(alive.usage(&k, T + 59_999).await.reserved, Usd::from_int(1));
    assert_eq!(alive.usage(&k, T + 60_000).await.reserved, Usd::ZERO);
    let r = alive
        .reserve(&k, Usd::from_int(1), T + 60_000)
        .await
        .unwrap();
    alive.settle(r, Usd::parse("0.5").unwrap());
    alive.flush().await;
    assert_eq!(
        alive.usage(&k, T + 60_000).await.usage,
        Usd::parse("0.5").unwrap()
    );
}

#[tokio::test]
async fn money_is_whole_micro_dollars() {
    let server = RedisServer::start();
    let l = connect(&server, RedisOptions::default()).await.ledger();
    l.set_limits(
        "k",
        KeyLimits::new().limit(Period::Total, Usd::parse("0.000003").unwrap()),
    );
    let k = CallerKey::new("k");
    // Reservations round up: 0.0000021 holds 3 micro-dollars, so nothing more fits.
    let r = l
        .reserve(&k, Usd::parse("0.0000021").unwrap(), T)
        .await
        .unwrap();
    assert!(l
        .reserve(&k, Usd::parse("0.000001").unwrap(), T)
        .await
        .is_err());
    // Costs round to the nearest micro-dollar.
    l.settle(r, Usd::parse("0.0000015").unwrap());
    l.flush().await;
    assert_eq!(l.usage(&k, T).await.usage, Usd::parse("0.000002").unwrap());
}
