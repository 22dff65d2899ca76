//! Three gateway stacks (separate `GatewayLayer`s, each with its own in-process state) sharing
//! one Redis: budgets and rate limits hold across replicas under 1,000 concurrent requests, and
//! Redis going away mid-run never hangs or panics a request.

#[path = "support/redis.rs"]
mod redis_server;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use redis_server::RedisServer;
use tower::{Layer, ServiceExt};
use tower_ai_gateway::cache::ResponseCacheLayer;
use tower_ai_gateway::catalog::{Catalog, Usd};
use tower_ai_gateway::clock::ManualClock;
use tower_ai_gateway::rate_limit::{Limits, RateLimitLayer};
use tower_ai_gateway::redis::{FailMode, RedisLedger, RedisOptions, RedisStores};
use tower_ai_gateway::sim::{SimOutputLength, SimProfile, SimulatedProvider};
use tower_ai_gateway::usage_meter::{CallerKey, GenerationRecord, KeyLimits, Ledger, Period};
use tower_ai_gateway::{Gateway, GatewayLayer};

/// 2026-11-22 02:52 UTC.
const T: i64 = 1_795_315_920_000;

/// One model, one endpoint: 1 µ$ per prompt token, 10 µ$ per completion token.
const CATALOG: &str = r#"
[[providers]]
slug = "sim"
name = "Sim"
base_url = "http://sim.local/v1"

[[models]]
id = "acme/chat"
name = "Acme Chat"
context_length = 8192
pricing = { prompt = "0.000001", completion = "0.00001" }

[[endpoints."acme/chat"]]
tag = "sim"
context_length = 8192
provider_model_id = "chat"
max_completion_tokens = 1000
pricing = { prompt = "0.000001", completion = "0.00001" }
"#;

type Stack = Gateway<SimulatedProvider>;

/// What every stack's UsageMeter records.
type Records = Arc<Mutex<Vec<GenerationRecord>>>;

/// A replica: its own GatewayLayer (own Stats, own layers) over its own simulator, with the ledger
/// and rate-limit store of its own connection to the shared Redis.
async fn replica(
    server: &RedisServer,
    options: RedisOptions,
    rpm: Option<u64>,
    budget: Usd,
    records: &Records,
) -> (Stack, RedisLedger) {
    let stores = RedisStores::connect(&server.url(), options).await.unwrap();
    let ledger = stores
        .ledger()
        .limits("alice", KeyLimits::new().limit(Period::Day, budget));
    let sink_records = records.clone();
    let sink = move |r: &GenerationRecord| sink_records.lock().unwrap().push(r.clone());
    let mut limits = RateLimitLayer::new()
        .store(stores.rate_limit_store())
        .clock(ManualClock::new(T));
    if let Some(rpm) = rpm {
        limits = limits.key_limits("alice", Limits::new().requests_per_minute(rpm));
    }
    let meter_ledger = ledger.clone();
    let cache = ResponseCacheLayer::new()
        .store(stores.cache_store())
        .clock(ManualClock::new(T));
    let layer = GatewayLayer::new(Catalog::from_toml(CATALOG).unwrap())
        .rate_limit(limits)
        .cache(cache)
        .usage_meter(move |m| m.ledger(meter_ledger).sink(sink).clock(ManualClock::new(T)));
    let sim = SimulatedProvider::builder(7)
        .default_profile(SimProfile::instant().with_output_tokens(SimOutputLength::fixed(10)))
        .build();
    (layer.layer(sim), ledger)
}

/// Sends one chat request for `alice` (at most 20 output tokens) and reads the whole answer.
async fn chat(stack: Stack) -> (u16, Bytes) {
    let body =
        r#"{"model":"acme/chat","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}"#;
    let mut req = http::Request::post("http://gw.local/api/v1/chat/completions")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    req.extensions_mut().insert(CallerKey::new("alice"));
    let res = stack.oneshot(req).await.unwrap();
    let status = res.status().as_u16();
    (status, res.into_body().collect().await.unwrap().to_bytes())
}

/// 1,000 concurrent requests spread over `stacks`; the status of each.
async fn burst(stacks: &[Stack]) -> Vec<u16> {
    // 1,000 requests at once on two cores of a debug build: the wait for a Redis answer includes
    // the runtime's queue, so the connections get a generous call timeout (see `patient`).
    let tasks: Vec<_> = (0..1000)
        .map(|i| tokio::spawn(chat(stacks[i % stacks.len()].clone())))
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_ne!(status, 503, "{}", String::from_utf8_lossy(&body));
        statuses.push(status);
    }
    statuses
}

/// Options for a loaded debug build: Redis answers in well under a millisecond, but the runtime
/// may take seconds to come back to a call among 1,000 concurrent requests.
fn patient() -> RedisOptions {
    RedisOptions::default().call_timeout(Duration::from_secs(30))
}

fn micros(u: Usd) -> i64 {
    let m = u.as_decimal() * rust_decimal::Decimal::from(1_000_000);
    assert!(m.fract().is_zero(), "{u} is not whole micro-dollars");
    i64::try_from(m.trunc().mantissa()).unwrap() / 10i64.pow(m.trunc().scale())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_never_overspend_one_budget() {
    let server = RedisServer::start();
    let records = Records::default();
    let budget = Usd::parse("0.05").unwrap();
    let mut stacks = Vec::new();
    let mut ledgers = Vec::new();
    for _ in 0..3 {
        let (s, l) = replica(&server, patient(), None, budget, &records).await;
        stacks.push(s);
        ledgers.push(l);
    }
    let statuses = burst(&stacks).await;
    let ok = statuses.iter().filter(|&&s| s == 200).count();
    let refused = statuses.iter().filter(|&&s| s == 402).count();
    assert_eq!(ok + refused, 1000, "only 200s and 402s: {statuses:?}");
    assert!(refused > 0 && ok > 100, "ok {ok}, refused {refused}");
    // Concurrent worst-case reservations refuse some requests early; one at a time, the
    // replicas then use up the rest until less than one worst case (20 × 10 µ$ + prompt) is left.
    let mut more = 0;
    while chat(stacks[more % 3].clone()).await.0 == 200 {
        more += 1;
        assert!(more < 1000);
    }
    for l in &ledgers {
        l.flush().await;
    }
    let usage = ledgers[1].usage(&CallerKey::new("alice"), T).await;
    let records = records.lock().unwrap();
    assert_eq!(records.len(), ok + more);
    let costs: i64 = records.iter().map(|r| micros(r.cost)).sum();
    // Every generation is in the ledger, to the micro-dollar, and nothing is left reserved.
    assert_eq!(micros(usage.usage_daily), costs);
    assert_eq!(usage.reserved, Usd::ZERO);
    // The worst case was reserved before each request: the budget is never crossed.
    assert!(usage.usage_daily <= budget, "{usage:?}");
    assert!(micros(budget) - costs < 1_000, "{costs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_admit_exactly_100_requests_a_minute() {
    let server = RedisServer::start();
    let records = Records::default();
    let mut stacks = Vec::new();
    let mut ledgers = Vec::new();
    for _ in 0..3 {
        let (s, l) = replica(&server, patient(), Some(100), Usd::from_int(100), &records).await;
        stacks.push(s);
        ledgers.push(l);
    }
    let statuses = burst(&stacks).await;
    assert_eq!(statuses.iter().filter(|&&s| s == 200).count(), 100);
    assert_eq!(statuses.iter().filter(|&&s| s == 429).count(), 900);
    for l in &ledgers {
        l.flush().await;
    }
    let usage = ledgers[2].usage(&CallerKey::new("alice"), T).await;
    let costs: i64 = records.lock().unwrap().iter().map(|r| micros(r.cost)).sum();
    assert_eq!(micros(usage.usage_daily), costs);
}

/// A request during an outage: its status, its error message and how long it took.
async fn timed_chat(stack: &Stack) -> (u16, String, Duration) {
    let started = Instant::now();
    let (status, body) = chat(stack.clone()).await;
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let msg = v["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (status, msg, started.elapsed())
}

/// After a restart, the first calls may still see the old connection fail; the manager then
/// reconnects. Sends until a 200 (at most 40 tries, 50 ms apart).
async fn until_ok(stack: &Stack) -> usize {
    for tries in 1..=40 {
        if chat(stack.clone()).await.0 == 200 {
            return tries;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the stores did not recover within 2 s of Redis coming back");
}

const TIMEOUT: Duration = Duration::from_millis(200);
/// A timed-out call returns within the timeout plus the runtime's scheduling slack.
const SLACK: Duration = Duration::from_millis(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_closed_with_503s_and_recovers_after_a_restart() {
    let mut server = RedisServer::start();
    let records = Records::default();
    let options = RedisOptions::default().call_timeout(TIMEOUT);
    let budget = Usd::from_int(1);
    let (limited, limited_ledger) =
        replica(&server, options.clone(), Some(1000), budget, &records).await;
    let (budgeted, ledger) = replica(&server, options, None, budget, &records).await;
    assert_eq!(chat(limited.clone()).await.0, 200);
    assert_eq!(chat(budgeted.clone()).await.0, 200);

    // Hung: nothing answers, every call times out.
    server.pause();
    for (stack, store) in [(&limited, "rate-limit store"), (&budgeted, "budget ledger")] {
        let (status, msg, took) = timed_chat(stack).await;
        assert_eq!(status, 503, "{msg}");
        assert!(
            msg.contains(&format!("The {store} is unavailable")),
            "{msg}"
        );
        assert!(msg.contains("no answer within 200 ms"), "{msg}");
        assert!(took < TIMEOUT + SLACK, "{took:?}");
    }
    server.resume();
    until_ok(&limited).await;

    // Killed: connections refused, answered at once.
    server.kill();
    for stack in [&limited, &budgeted] {
        let (status, msg, took) = timed_chat(stack).await;
        assert_eq!(status, 503, "{msg}");
        assert!(took < TIMEOUT + SLACK, "{took:?}");
    }

    // Restarted empty on the same port: both stores work again without a restart of ours.
    server.restart();
    until_ok(&limited).await;
    until_ok(&budgeted).await;
    limited_ledger.flush().await;
    ledger.flush().await;
    let usage = ledger.usage(&CallerKey::new("alice"), T).await;
    assert!(usage.usage_daily > Usd::ZERO, "{usage:?}");
    assert_eq!(usage.reserved, Usd::ZERO);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_open_to_local_counters() {
    let mut server = RedisServer::start();
    let records = Records::default();
    let options = RedisOptions::default()
        .call_timeout(TIMEOUT)
        .fail_mode(FailMode::Open);
    let budget = Usd::parse("0.003").unwrap();
    let (stack, ledger) = replica(&server, options, Some(3), budget, &records).await;
    assert_eq!(chat(stack.clone()).await.0, 200);
    server.kill();
    // The local fallback enforces the same limits, on this replica alone: 3 a minute.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let (status, msg, took) = timed_chat(&stack).await;
        assert!(took < 2 * (TIMEOUT + SLACK), "{took:?}");
        statuses.push((status, msg));
    }
    let codes: Vec<u16> = statuses.iter().map(|s| s.0).collect();
    assert_eq!(codes, [200, 200, 200, 429], "{statuses:?}");
    server.restart();
    // Back in Redis (which restarted empty): its counters and budget apply again.
    until_ok(&stack).await;
    ledger.flush().await;
    let usage = ledger.usage(&CallerKey::new("alice"), T).await;
    assert!(
        usage.usage_daily > Usd::ZERO && usage.reserved.is_zero(),
        "{usage:?}"
    );
}

/// A request asking for the response cache: the cache status and the body.
async fn cached_chat(stack: &Stack) -> (String, Bytes) {
    let body = r#"{"model":"acme/chat","max_tokens":20,"messages":[{"role":"user","content":"cache me"}]}"#;
    let mut req = http::Request::post("http://gw.local/api/v1/chat/completions")
        .header("content-type", "application/json")
        .header("x-openrouter-cache", "true")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    req.extensions_mut().insert(CallerKey::new("alice"));
    let res = stack.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let status = res.headers()["x-openrouter-cache-status"]
        .to_str()
        .unwrap()
        .to_owned();
    (status, res.into_body().collect().await.unwrap().to_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_cached_by_one_replica_is_a_hit_on_another() {
    let server = RedisServer::start();
    let records = Records::default();
    let budget = Usd::from_int(1);
    let (a, ledger_a) = replica(&server, patient(), None, budget, &records).await;
    let (b, _) = replica(&server, patient(), None, budget, &records).await;
    let (status, miss) = cached_chat(&a).await;
    assert_eq!(status, "MISS");
    ledger_a.flush().await; // the same queue carries the cache write
    let (status, hit) = cached_chat(&b).await;
    assert_eq!(status, "HIT");
    let (miss, hit): (serde_json::Value, serde_json::Value) = (
        serde_json::from_slice(&miss).unwrap(),
        serde_json::from_slice(&hit).unwrap(),
    );
    assert_eq!(hit["choices"], miss["choices"]);
    assert_ne!(hit["id"], miss["id"], "a HIT has a new generation id");
    // One upstream call, one generation billed.
    assert_eq!(records.lock().unwrap().len(), 1);
}
