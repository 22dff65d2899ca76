//! What Redis-backed stores add to a request: the same `GatewayLayer` over an instant simulator,
//! with a per-key rate limit and a budget, once with the in-memory stores and once with
//! `RedisStores` (README, "Running several replicas").
//!
//! ```text
//! redis-server --port 6399 --save '' --appendonly no &
//! cargo run --release --example redis_overhead --features redis -- redis://127.0.0.1:6399 5000
//! ```
//!
//! Sends the requests one after another (so each pays its round trips in full) and prints the
//! mean, p50 and p99 latency of each store, and the difference.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tower::{Layer, Service, ServiceExt};
use tower_ai_gateway::catalog::{Catalog, Usd};
use tower_ai_gateway::rate_limit::{InMemoryRateLimitStore, Limits, RateLimitLayer};
use tower_ai_gateway::redis::{RedisOptions, RedisStores};
use tower_ai_gateway::sim::{SimProfile, SimulatedProvider};
use tower_ai_gateway::usage_meter::{CallerKey, InMemoryLedger, KeyLimits, Ledger, Period};
use tower_ai_gateway::{clock::SystemClock, GatewayLayer};

const CATALOG: &str = r#"
default_provider = "sim"
[[providers]]
slug = "sim"
name = "Sim"
base_url = "http://sim.local/v1"

[[models]]
id = "acme/chat"
name = "Acme Chat"
context_length = 8192
pricing = { prompt = "0.000001", completion = "0.00001" }
"#;

fn stack(
    ledger: impl Ledger,
    store: impl tower_ai_gateway::rate_limit::RateLimitStore,
) -> tower_ai_gateway::Gateway<SimulatedProvider> {
    let limits = RateLimitLayer::new()
        .key_limits("bench", Limits::new().requests_per_minute(10_000_000))
        .store(store);
    let sim = SimulatedProvider::builder(1)
        .default_profile(SimProfile::instant())
        .build();
    GatewayLayer::new(Catalog::from_toml(CATALOG).expect("catalog"))
        .rate_limit(limits)
        .usage_meter(|m| m.ledger(ledger))
        .layer(sim)
}

async fn run(
    name: &str,
    mut svc: tower_ai_gateway::Gateway<SimulatedProvider>,
    n: usize,
) -> Vec<Duration> {
    let body =
        r#"{"model":"acme/chat","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}"#;
    let mut took = Vec::with_capacity(n);
    for _ in 0..n {
        let mut req = http::Request::post("http://gw.local/api/v1/chat/completions")
            .body(Full::new(Bytes::from(body)))
            .expect("request");
        req.extensions_mut().insert(CallerKey::new("bench"));
        let started = Instant::now();
        let res = ServiceExt::<http::Request<Full<Bytes>>>::ready(&mut svc)
            .await
            .expect("ready")
            .call(req)
            .await
            .expect("response");
        assert_eq!(res.status(), 200, "{name}");
        res.into_body().collect().await.expect("body");
        took.push(started.elapsed());
    }
    took.sort();
    took
}

fn report(name: &str, t: &[Duration]) -> Duration {
    let mean = t.iter().sum::<Duration>() / t.len() as u32;
    let p = |q: f64| t[((t.len() as f64 * q) as usize).min(t.len() - 1)];
    println!(
        "{name:10} mean {mean:>10.1?}  p50 {:>10.1?}  p99 {:>10.1?}",
        p(0.5),
        p(0.99)
    );
    mean
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(5000);
    let budget = KeyLimits::new().limit(Period::Day, Usd::from_int(1_000_000));

    let memory = stack(
        InMemoryLedger::new(SystemClock).limits("bench", budget.clone()),
        InMemoryRateLimitStore::new(),
    );
    let stores = RedisStores::connect(&url, RedisOptions::default())
        .await
        .expect("redis");
    let ledger = stores.ledger().limits("bench", budget);
    let redis = stack(ledger.clone(), stores.rate_limit_store());

    // Warm up both (script cache, connection, allocations).
    run("warm-up", memory.clone(), n / 10 + 1).await;
    run("warm-up", redis.clone(), n / 10 + 1).await;
    let a = report("in-memory", &run("in-memory", memory, n).await);
    let b = report("redis", &run("redis", redis, n).await);
    ledger.flush().await;
    println!(
        "added by Redis: {:.1?} per request ({n} sequential requests)",
        b.saturating_sub(a)
    );
}
