//! Endpoint health and generation records shared by replicas through one Redis: a failure seen
//! by replica A demotes the endpoint on replica B after a sync; a generation recorded on A is read
//! on B; Redis going away falls back to local behaviour and recovers after a restart.

#[path = "support/redis.rs"]
mod redis_server;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use redis_server::RedisServer;
use tokio::time::Instant;
use tower::{Layer, ServiceExt};
use tower_ai_gateway::catalog::{Catalog, EndpointKey};
use tower_ai_gateway::health::HealthSource;
use tower_ai_gateway::redis::{RedisHealth, RedisOptions, RedisStores};
use tower_ai_gateway::route::ServedBy;
use tower_ai_gateway::sim::{SimOutputLength, SimProfile, SimulatedProvider};
use tower_ai_gateway::stats::{Attempt, FailureKind, Outcome};
use tower_ai_gateway::usage_meter::{CallerKey, GenerationRecord, GenerationSink};
use tower_ai_gateway::{Gateway, GatewayLayer, Stats};

/// One model on two providers: `cheap` costs a tenth of `dear`, so routing prefers it.
const CATALOG: &str = r#"
[[providers]]
slug = "cheap"
name = "Cheap"
base_url = "http://sim.local/v1"

[[providers]]
slug = "dear"
name = "Dear"
base_url = "http://sim.local/v1"

[[models]]
id = "acme/chat"
name = "Acme Chat"
context_length = 8192
pricing = { prompt = "0.000001", completion = "0.000001" }

[[endpoints."acme/chat"]]
tag = "cheap"
context_length = 8192
provider_model_id = "chat"
pricing = { prompt = "0.000001", completion = "0.000001" }

[[endpoints."acme/chat"]]
tag = "dear"
context_length = 8192
provider_model_id = "chat"
pricing = { prompt = "0.00001", completion = "0.00001" }
"#;

type Stack = Gateway<SimulatedProvider>;

fn cheap() -> EndpointKey {
    EndpointKey::new("acme/chat", "cheap")
}

/// A replica: its own Stats and stack, routing on health shared through its own connection.
struct Replica {
    stack: Stack,
    health: RedisHealth,
    stores: RedisStores,
}

async fn replica(server: &RedisServer, name: &str, sink: impl GenerationSink) -> Replica {
    let options = RedisOptions::default().call_timeout(Duration::from_millis(500));
    let stores = RedisStores::connect(&server.url(), options).await.unwrap();
    let stats = Stats::default();
    let health = stores
        .health(stats.clone())
        .replica_id(name)
        .sync_interval(Duration::from_millis(100));
    let layer = GatewayLayer::with_stats(Catalog::from_toml(CATALOG).unwrap(), stats)
        .routing(|r| r.seed(1).sticky_store(stores.sticky_store()))
        .health(health.clone())
        .usage_meter(|m| m.sink(sink));
    let sim = SimulatedProvider::builder(7)
        .default_profile(SimProfile::instant().with_output_tokens(SimOutputLength::fixed(5)))
        .build();
    Replica {
        stack: layer.layer(sim),
        health,
        stores,
    }
}

/// Three server errors in a row on `key`: degraded (streak rule) and cooling down, locally.
fn fail(stats: &Stats, key: &EndpointKey) {
    let error = Attempt::new(Outcome::Failure(FailureKind::ServerError { status: 500 }));
    for _ in 0..3 {
        stats.record_attempt(key, error, Instant::now());
    }
}

/// Sends a chat request for `alice`; the endpoint that served it, and the generation id.
async fn chat(stack: &Stack) -> (EndpointKey, String) {
    chat_with(stack, "").await
}

/// [`chat`] with `extra` members in the body (`,"session_id":"s"`).
async fn chat_with(stack: &Stack, extra: &str) -> (EndpointKey, String) {
    let body =
        format!(r#"{{"model":"acme/chat","messages":[{{"role":"user","content":"hi"}}]{extra}}}"#);
    let mut req = http::Request::post("http://gw.local/api/v1/chat/completions")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    req.extensions_mut().insert(CallerKey::new("alice"));
    let res = stack.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let served = res.extensions().get::<ServedBy>().unwrap().endpoint.clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    (served, json["id"].as_str().unwrap().to_owned())
}

/// Which endpoints served 10 requests.
async fn served(stack: &Stack) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..10 {
        out.push(chat(stack).await.0.tag().to_owned());
    }
    out
}

/// Syncs until Redis answers (a restarted server: the connection comes back on a later call).
async fn sync_until_ok(health: &RedisHealth) -> usize {
    for _ in 0..20 {
        if let Ok(n) = health.sync_now().await {
            return n;
        }
    }
    panic!("redis health never synced again");
}

fn nothing(_: &GenerationRecord) {}

#[tokio::test]
async fn a_failure_seen_on_one_replica_demotes_the_endpoint_on_the_other() {
    let server = RedisServer::start();
    let a = replica(&server, "a", nothing).await;
    let b = replica(&server, "b", nothing).await;
    assert!(
        served(&b.stack).await.contains(&"cheap".to_owned()),
        "healthy, the cheap endpoint serves"
    );

    fail(a.health.local(), &cheap());
    assert!(a.health.is_degraded(&cheap(), Instant::now()));
    assert!(
        !b.health.is_degraded(&cheap(), Instant::now()),
        "not synced yet"
    );
    assert_eq!(a.health.sync_now().await.unwrap(), 0, "b marks nothing");
    assert_eq!(b.health.sync_now().await.unwrap(), 1, "a marks `cheap`");
    let now = Instant::now();
    assert!(b.health.is_degraded(&cheap(), now) && b.health.in_cooldown(&cheap(), now));
    assert_eq!(
        b.health.local().counts(&cheap()).unwrap().failures.total(),
        0
    );
    assert_eq!(
        served(&b.stack).await,
        vec!["dear"; 10],
        "b routes around it"
    );

    // A's endpoint recovers (a success ends the streak and the cooldown): B follows at its sync.
    let ok = Attempt::new(Outcome::Success).latency(Duration::from_millis(10));
    a.health
        .local()
        .record_attempt(&cheap(), ok, Instant::now());
    assert!(!a.health.is_degraded(&cheap(), Instant::now()));
    a.health.sync_now().await.unwrap();
    assert_eq!(b.health.sync_now().await.unwrap(), 0);
    assert!(!b.health.is_degraded(&cheap(), Instant::now()));
}

#[tokio::test]
async fn the_background_sync_demotes_within_the_documented_delay() {
    let server = RedisServer::start();
    let a = replica(&server, "a", nothing).await;
    let b = replica(&server, "b", nothing).await;
    let (task_a, task_b) = (a.health.start(), b.health.start());
    let start = Instant::now();
    fail(a.health.local(), &cheap());
    // 2 × sync_interval + call_timeout (100 ms and 500 ms here).
    let bound = Duration::from_millis(2 * 100 + 500);
    while !b.health.is_degraded(&cheap(), Instant::now()) {
        assert!(start.elapsed() <= bound, "not demoted within {bound:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    task_a.abort();
    task_b.abort();
}

#[tokio::test]
async fn redis_away_means_local_health_and_it_recovers_after_a_restart() {
    let mut server = RedisServer::start();
    let a = replica(&server, "a", nothing).await;
    let b = replica(&server, "b", nothing).await;
    fail(a.health.local(), &cheap());
    a.health.sync_now().await.unwrap();
    b.health.sync_now().await.unwrap();
    assert!(b.health.is_degraded(&cheap(), Instant::now()));

    server.kill();
    let t = std::time::Instant::now();
    assert!(b.health.sync_now().await.is_err());
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "bounded by the call timeout"
    );
    assert!(
        !b.health.is_degraded(&cheap(), Instant::now()),
        "local health only"
    );
    assert!(
        a.health.is_degraded(&cheap(), Instant::now()),
        "a's own view"
    );
    assert!(served(&b.stack).await.contains(&"cheap".to_owned()));

    server.restart();
    sync_until_ok(&a.health).await;
    assert_eq!(sync_until_ok(&b.health).await, 1);
    assert!(b.health.is_degraded(&cheap(), Instant::now()));
}

type Records = Arc<Mutex<Vec<GenerationRecord>>>;

#[tokio::test]
async fn a_generation_recorded_on_one_replica_is_read_on_another() {
    let server = RedisServer::start();
    let records = Records::default();
    let stores_a = RedisStores::connect(&server.url(), RedisOptions::default())
        .await
        .unwrap();
    let store_a = stores_a.generation_store();
    let sink = store_a.clone();
    let a_stack = {
        let sim = SimulatedProvider::builder(7)
            .default_profile(SimProfile::instant())
            .build();
        let records = records.clone();
        GatewayLayer::new(Catalog::from_toml(CATALOG).unwrap())
            .usage_meter(|m| {
                m.sink(sink)
                    .sink(move |r: &GenerationRecord| records.lock().unwrap().push(r.clone()))
            })
            .layer(sim)
    };
    let (_, id) = chat(&a_stack).await;
    store_a.flush().await;

    let other = RedisStores::connect(&server.url(), RedisOptions::default())
        .await
        .unwrap();
    let store_b = other.generation_store();
    let got = store_b.get(&id).await.unwrap().expect("written by a");
    assert_eq!(got.caller, Some(CallerKey::new("alice")));
    let record = records
        .lock()
        .unwrap()
        .iter()
        .find(|r| *r.id == *id)
        .cloned()
        .unwrap();
    assert_eq!(got.data, record.to_openrouter_json());
    assert!(store_b.get("gen-unknown").await.unwrap().is_none());
    assert!(store_b.get(&"x".repeat(10_000)).await.unwrap().is_none());

    // Kept for the documented TTL.
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let pttl: i64 = redis::cmd("PTTL")
        .arg(format!("gw:gen:{{{id}}}"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(pttl > 3_500_000 && pttl <= 3_600_000, "{pttl}");
    assert_eq!(store_a.dropped(), 0);
}

#[tokio::test]
async fn generation_writes_never_block_and_resume_after_a_restart() {
    let mut server = RedisServer::start();
    let stores = RedisStores::connect(
        &server.url(),
        RedisOptions::default().call_timeout(Duration::from_millis(300)),
    )
    .await
    .unwrap();
    let store = stores.generation_store().with_queue_capacity(4);
    let a = replica(&server, "a", store.clone()).await;

    server.kill();
    let t = std::time::Instant::now();
    for _ in 0..3 {
        chat(&a.stack).await;
    }
    store.flush().await;
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(store.dropped(), 3, "lost writes are counted");
    assert!(
        store.get("gen-x").await.is_err(),
        "a bounded error, not a hang"
    );

    server.restart();
    let mut found = false;
    for _ in 0..20 {
        let (_, id) = chat(&a.stack).await;
        store.flush().await;
        if let Ok(Some(g)) = store.get(&id).await {
            assert_eq!(g.data["id"], id.as_str());
            found = true;
            break;
        }
    }
    assert!(found, "records are written again after the restart");
}

/// The endpoint that serves `session` on `stack`.
async fn served_session(stack: &Stack, session: &str) -> String {
    let extra = format!(r#","session_id":"{session}""#);
    chat_with(stack, &extra).await.0.tag().to_owned()
}

#[tokio::test]
async fn a_session_that_stuck_on_one_replica_sticks_on_the_other() {
    let mut server = RedisServer::start();
    let a = replica(&server, "a", nothing).await;
    let b = replica(&server, "b", nothing).await;
    // On a, the session is served by `dear` (asked for explicitly), which it then sticks to.
    let pinned = r#","session_id":"s1","provider":{"order":["dear"]}"#;
    assert_eq!(chat_with(&a.stack, pinned).await.0.tag(), "dear");
    a.stores.flush().await;
    for _ in 0..5 {
        assert_eq!(
            served_session(&b.stack, "s1").await,
            "dear",
            "stuck on b too"
        );
    }
    assert_eq!(
        served_session(&b.stack, "s2").await,
        "cheap",
        "another session"
    );

    // Redis away: answered from the local table (b remembers `dear` itself now), never hung.
    server.kill();
    let t = std::time::Instant::now();
    assert_eq!(served_session(&b.stack, "s1").await, "dear");
    assert_eq!(served_session(&b.stack, "s3").await, "cheap");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());

    // Back (empty): a new stick on a is seen by b again.
    server.restart();
    for _ in 0..20 {
        let pinned = r#","session_id":"s4","provider":{"order":["dear"]}"#;
        chat_with(&a.stack, pinned).await;
        a.stores.flush().await;
        if served_session(&b.stack, "s4").await == "dear" {
            return;
        }
    }
    panic!("sticky sessions never shared again after the restart");
}
