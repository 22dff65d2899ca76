//! Issue 17's fault-injection run: three providers of one model, two of them failing half the
//! time in every way the simulator knows (statuses, refused connections, stalls before and after
//! the head, garbled and truncated bodies, errors mid-stream), the third healthy; 400 seeded
//! requests, streamed and not, 50 at a time, through the whole `GatewayLayer` with a budgeted key.
//!
//! Whatever happens, every request is answered: a 200 whose body is complete JSON (or an SSE
//! stream whose every event is JSON and which ends with `[DONE]` or the gateway's in-band error),
//! or an error in OpenRouter's envelope; no request outlives its deadlines; and the ledger's spend
//! equals the sum of the generations' costs to the micro-dollar, with nothing left reserved.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use tower::{ServiceBuilder, ServiceExt};
use tower_ai_gateway::catalog::{Catalog, Credentials, Endpoint, Model, Provider, Usd};
use tower_ai_gateway::clock::SystemClock;
use tower_ai_gateway::sim::{SimOutcome, SimProfile, SimulatedProvider};
use tower_ai_gateway::usage_meter::{CallerKey, GenerationStore, InMemoryLedger, Period};
use tower_ai_gateway::GatewayLayer;

const MODEL: &str = "acme/chat";
const REQUESTS: usize = 400;
const AT_ONCE: usize = 50;
/// The longest any request may take: the overall deadline plus the stream idle timeout.
const LONGEST: Duration = Duration::from_secs(60 + 5);

fn catalog() -> Catalog {
    let mut b = Catalog::builder().model(Model::new(MODEL, "Acme Chat"));
    for (i, slug) in ["alpha", "beta", "gamma"].into_iter().enumerate() {
        b = b.provider(
            Provider::new(slug, slug.to_uppercase())
                .base_url(format!("http://{slug}.sim/v1"))
                .credentials(Credentials::key(format!("sk-{slug}-secret-0123456789"))),
        );
        let mut e = Endpoint::new(MODEL, slug);
        e.pricing.prompt = Usd::from_micros(1 + i as i64);
        e.pricing.completion = Usd::from_micros(2 + i as i64);
        b = b.endpoint(e);
    }
    b.build().expect("catalog")
}

/// Alpha and beta fail half the time, 5 % for each kind of fault; gamma never does.
fn providers(seed: u64) -> SimulatedProvider {
    let faults = [
        SimOutcome::Status(500),
        SimOutcome::Status(503),
        SimOutcome::Status(429),
        SimOutcome::ConnectError,
        SimOutcome::Stall,
        SimOutcome::StallBody,
        SimOutcome::MalformedJson,
        SimOutcome::Truncated,
        SimOutcome::MidStreamError,
        SimOutcome::BodyError,
    ];
    let faulty = faults
        .into_iter()
        .fold(SimProfile::instant(), |p, f| p.with_failure(f, 0.05));
    SimulatedProvider::builder(seed)
        .host("http://alpha.sim/v1", faulty.clone())
        .host("http://beta.sim/v1", faulty)
        .host("http://gamma.sim/v1", SimProfile::instant())
        .build()
}

/// What one request got.
struct Outcome {
    status: u16,
    streamed: bool,
    body: String,
}

/// Checks an answer: an error envelope, a complete JSON body, or a well-ended stream of JSON
/// events. Returns whether it was a success.
fn check(o: &Outcome) -> bool {
    let text = &o.body;
    if o.status != 200 {
        let v: Value = serde_json::from_str(text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        assert!(v["error"]["code"].is_number(), "no envelope: {text}");
        assert!(v["error"]["message"].is_string(), "no message: {text}");
        return false;
    }
    assert!(
        !text.contains("secret"),
        "a provider key reached the caller: {text}"
    );
    if !o.streamed {
        let v: Value = serde_json::from_str(text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        assert!(v["choices"].is_array(), "{text}");
        return true;
    }
    let events: Vec<&str> = text
        .split("\n\n")
        .filter_map(|e| e.trim_start_matches('\n').strip_prefix("data: "))
        .collect();
    let last = events.last().expect("an event");
    for e in events.iter().filter(|e| **e != "[DONE]") {
        serde_json::from_str::<Value>(e).unwrap_or_else(|_| panic!("invalid event {e}: {text}"));
    }
    if *last == "[DONE]" {
        return true;
    }
    let v: Value = serde_json::from_str(last).expect("JSON");
    assert_eq!(
        v["choices"][0]["finish_reason"], "error",
        "stream not ended: {text}"
    );
    assert!(v["error"]["message"].is_string(), "{text}");
    false
}

#[tokio::test(start_paused = true)]
async fn faults_of_every_kind_never_lose_a_request_or_a_micro_dollar() {
    let ledger = Arc::new(InMemoryLedger::new(SystemClock).limit(
        "k",
        Period::Day,
        Usd::parse("1000").unwrap(),
    ));
    let store = GenerationStore::new(10_000);
    let (l, s) = (ledger.clone(), store.clone());
    let gateway = GatewayLayer::new(catalog())
        .routing(|r| r.seed(17))
        .usage_meter(move |u| u.shared_ledger(l).sink(s))
        .fallback(|f| {
            f.attempt_timeout(Duration::from_secs(10))
                .first_token_timeout(Duration::from_secs(5))
                .stream_idle_timeout(Duration::from_secs(5))
                .overall_timeout(Duration::from_secs(60))
        });
    let svc = ServiceBuilder::new().layer(gateway).service(providers(42));

    let mut outcomes = Vec::with_capacity(REQUESTS);
    for batch in 0..REQUESTS / AT_ONCE {
        let mut tasks = Vec::with_capacity(AT_ONCE);
        for i in 0..AT_ONCE {
            let n = batch * AT_ONCE + i;
            let streamed = n % 2 == 0;
            let body = format!(
                r#"{{"model":"{MODEL}","stream":{streamed},"max_tokens":16,"messages":[{{"role":"user","content":"request {n}"}}]}}"#
            );
            let mut req = Request::post("/api/v1/chat/completions")
                .body(Full::new(Bytes::from(body)))
                .unwrap();
            req.extensions_mut().insert(CallerKey::new("k"));
            let svc = svc.clone();
            tasks.push(tokio::spawn(async move {
                let started = tokio::time::Instant::now();
                let res = svc.oneshot(req).await.expect("the stack never fails");
                let status = res.status().as_u16();
                let bytes = res.into_body().collect().await.expect("body").to_bytes();
                assert!(
                    started.elapsed() <= LONGEST,
                    "request {n} took {:?}",
                    started.elapsed()
                );
                Outcome {
                    status,
                    streamed,
                    body: String::from_utf8(bytes.to_vec()).expect("UTF-8"),
                }
            }));
        }
        for t in tasks {
            outcomes.push(t.await.expect("no panic"));
        }
    }

    let ok = outcomes.iter().filter(|o| check(o)).count();
    assert_eq!(outcomes.len(), REQUESTS);
    // Gamma is always there: almost every request is served (a stream that failed after its
    // content started cannot move, so a few end with the in-band error).
    assert!(ok >= REQUESTS * 9 / 10, "only {ok} of {REQUESTS} served");

    let usage = ledger.usage_now(&CallerKey::new("k"));
    let recorded = store
        .records()
        .iter()
        .fold(Usd::ZERO, |acc, r| acc.add(r.cost));
    assert_eq!(
        usage.reserved,
        Usd::ZERO,
        "every reservation settled or released"
    );
    assert_eq!(
        usage.usage, recorded,
        "spend = the generations' costs, exactly"
    );
    assert!(recorded > Usd::ZERO);
    eprintln!(
        "{ok} of {REQUESTS} served; {} generations; spend {}",
        store.len(),
        usage.usage
    );
}
