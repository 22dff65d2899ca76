//! RateLimit: exact sliding windows under concurrency, the 429's shape, `:free` limits, classes,
//! model and endpoint limits, tokens, the order of checks against the budget and the fallback.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tower_ai_gateway::catalog::{Catalog, Usd};
use tower_ai_gateway::clock::ManualClock;
use tower_ai_gateway::model_routing::ModelRoutingLayer;
use tower_ai_gateway::rate_limit::{
    FreeLimits, InMemoryRateLimitStore, Limits, RateClass, RateLimitLayer, RateLimitStore,
};
use tower_ai_gateway::usage_meter::{CallerKey, InMemoryLedger, Period, UsageMeterLayer};
use tower_ai_gateway::{GatewayError, GatewayLayer};

/// 2026-11-22 08:52 UTC.
const NOW: i64 = 1_795_315_920_000;
const DAY: i64 = 86_400_000;
const LLAMA: &str = "meta-llama/llama-3.3-70b-instruct";
const FREE: &str = "meta-llama/llama-3.3-70b-instruct:free";

fn demo() -> Catalog {
    Catalog::from_json(include_bytes!("fixtures/catalog/demo-catalog.json")).unwrap()
}

type Req = Request<Full<Bytes>>;
type Res = Response<Full<Bytes>>;

/// An upstream that answers 200 with a tiny chat completion and counts its calls.
fn upstream(
    calls: Arc<AtomicUsize>,
) -> impl Service<Req, Response = Res, Error = Infallible, Future: Send> + Clone {
    tower::service_fn(move |_req: Req| {
        calls.fetch_add(1, Ordering::SeqCst);
        async {
            let body = r#"{"id":"x","model":"m","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}"#;
            let mut res = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
            res.headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
            Ok(res)
        }
    })
}

fn chat(key: &str, body: Value) -> Req {
    let mut req = Request::post("/api/v1/chat/completions")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    req.extensions_mut().insert(CallerKey::new(key));
    req
}

fn hello(key: &str, model: &str) -> Req {
    chat(
        key,
        json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
    )
}

async fn json_of<B: http_body::Body>(res: Response<B>) -> Value
where
    B::Error: std::fmt::Debug,
{
    serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap()
}

fn header<B>(res: &Response<B>, name: &str) -> Option<String> {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_1000_concurrent_requests_lets_exactly_the_limit_through() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = ServiceBuilder::new()
        .layer(
            RateLimitLayer::new()
                .clock(ManualClock::new(NOW))
                .default_limits(Limits::new().requests_per_minute(100)),
        )
        .service(upstream(calls.clone()));
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(async move { svc.oneshot(hello("k", LLAMA)).await.unwrap().status() })
        })
        .collect();
    let mut ok = 0;
    let mut limited = 0;
    for t in tasks {
        match t.await.unwrap() {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => limited += 1,
            s => panic!("unexpected {s}"),
        }
    }
    assert_eq!((ok, limited), (100, 900));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        100,
        "refused requests reach no upstream"
    );
}

#[tokio::test(start_paused = true)]
async fn the_429_is_openrouter_shaped_and_successes_carry_no_ratelimit_headers() {
    let clock = ManualClock::new(NOW);
    let mut svc = RateLimitLayer::new()
        .clock(clock.clone())
        .default_limits(Limits::new().requests_per_minute(2))
        .layer(upstream(Arc::default()));
    for _ in 0..2 {
        let res = send(&mut svc, hello("k", LLAMA)).await;
        clock.advance(Duration::from_secs(10));
        assert_eq!(res.status(), 200);
        assert!(
            !res.headers()
                .keys()
                .any(|k| k.as_str().starts_with("x-ratelimit")),
            "a success carries no X-RateLimit-*: {:?}",
            res.headers()
        );
    }
    clock.advance(Duration::from_millis(10_500));
    let res = send(&mut svc, hello("k", LLAMA)).await;
    assert_eq!(res.status(), 429);
    // The first request leaves the window at NOW + 60 s: 29.5 s from now, rounded up.
    assert_eq!(header(&res, "retry-after").as_deref(), Some("30"));
    assert_eq!(header(&res, "x-ratelimit-limit").as_deref(), Some("2"));
    assert_eq!(header(&res, "x-ratelimit-remaining").as_deref(), Some("0"));
    let reset = (NOW + 60_000).to_string();
    assert_eq!(header(&res, "x-ratelimit-reset"), Some(reset.clone()));
    let e = res.extensions().get::<GatewayError>().unwrap();
    assert_eq!(e.error_type().as_str(), "rate_limit_exceeded");
    let v = json_of(res).await;
    assert_eq!(v["error"]["code"], 429);
    assert_eq!(v["error"]["metadata"]["error_type"], "rate_limit_exceeded");
    assert_eq!(
        v["error"]["metadata"]["headers"]["X-RateLimit-Reset"],
        reset
    );
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("Rate limit exceeded: requests-per-minute."),
        "{msg}"
    );

    // The window slides: exactly when the first request leaves it, one more fits, not two.
    clock.set(NOW + 60_000);
    let res = send(&mut svc, hello("k", LLAMA)).await;
    assert_eq!(res.status(), 200);
    let res = send(&mut svc, hello("k", LLAMA)).await;
    assert_eq!(res.status(), 429);
    // Another key has its own window.
    let res = send(&mut svc, hello("other", LLAMA)).await;
    assert_eq!(res.status(), 200);
}

/// ModelRouting → RateLimit → upstream, with `layer`.
fn routed(
    layer: RateLimitLayer,
    calls: Arc<AtomicUsize>,
) -> impl Service<
    Req,
    Response = Response<impl http_body::Body<Error: std::fmt::Debug>>,
    Error: std::fmt::Debug,
> + Clone {
    ServiceBuilder::new()
        .layer(ModelRoutingLayer::new(demo()))
        .layer(layer)
        .service(upstream(calls))
}

async fn send<S: Service<Req>>(svc: &mut S, req: Req) -> S::Response
where
    S::Error: std::fmt::Debug,
{
    ServiceExt::<Req>::ready(svc)
        .await
        .unwrap()
        .call(req)
        .await
        .unwrap()
}

async fn statuses<S, B>(svc: &mut S, n: usize, mut make: impl FnMut() -> Req) -> Vec<u16>
where
    S: Service<Req, Response = Response<B>>,
    S::Error: std::fmt::Debug,
{
    let mut out = Vec::new();
    for _ in 0..n {
        let res = send(svc, make()).await;
        out.push(res.status().as_u16());
    }
    out
}

#[tokio::test(start_paused = true)]
async fn free_variant_limits_per_minute_and_per_day() {
    let clock = ManualClock::new(NOW);
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = RateLimitLayer::new()
        .clock(clock.clone())
        .free(FreeLimits::openrouter())
        .free_requests_per_day("rich", FreeLimits::UNLOCKED_PER_DAY);
    let mut svc = routed(layer.clone(), calls.clone());
    let got = statuses(&mut svc, 30, || hello("k", FREE)).await;
    assert_eq!(got.iter().filter(|s| **s == 200).count(), 20);
    assert!(got[20..].iter().all(|s| *s == 429), "{got:?}");
    // Paid models are not limited, nor the `:free` requests of another key.
    assert_eq!(statuses(&mut svc, 5, || hello("k", LLAMA)).await, [200; 5]);
    assert_eq!(statuses(&mut svc, 1, || hello("k2", FREE)).await, [200]);
    let res = send(&mut svc, hello("k", FREE)).await;
    let v = json_of(res).await;
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("free-models-per-min"));

    // Per day: 50 for most keys, 1,000 for `rich`; the count resets at 00:00 UTC.
    let mut used = 20;
    while used < 50 {
        clock.advance(Duration::from_secs(61));
        used += statuses(&mut svc, 20, || hello("k", FREE))
            .await
            .iter()
            .filter(|s| **s == 200)
            .count();
    }
    assert_eq!(used, 50, "clock may not cross midnight here");
    clock.advance(Duration::from_secs(61));
    let res = send(&mut svc, hello("k", FREE)).await;
    assert_eq!(res.status(), 429);
    let midnight = (NOW.div_euclid(DAY) + 1) * DAY;
    assert_eq!(header(&res, "x-ratelimit-limit").as_deref(), Some("50"));
    assert_eq!(
        header(&res, "x-ratelimit-reset"),
        Some(midnight.to_string())
    );
    let v = json_of(res).await;
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("free-models-per-day"));
    assert_eq!(
        layer.free_requests_today(&CallerKey::new("k")).await,
        Some((50, 50))
    );
    assert_eq!(
        layer.free_requests_today(&CallerKey::new("rich")).await,
        Some((0, 1000))
    );
    clock.set(midnight);
    assert_eq!(statuses(&mut svc, 1, || hello("k", FREE)).await, [200]);
    assert_eq!(
        layer.free_requests_today(&CallerKey::new("k")).await,
        Some((1, 50))
    );
}

#[tokio::test(start_paused = true)]
async fn key_limits_override_the_class_which_overrides_the_default() {
    let layer = RateLimitLayer::new()
        .clock(ManualClock::new(NOW))
        .default_limits(Limits::new().requests_per_minute(1))
        .class("pro", Limits::new().requests_per_minute(3))
        .key_class("alice", "pro")
        .key_limits("bob", Limits::new().requests_per_day(2));
    let mut svc = layer.layer(upstream(Arc::default()));
    let ok = |v: Vec<u16>| v.iter().filter(|s| **s == 200).count();
    assert_eq!(
        ok(statuses(&mut svc, 5, || hello("anyone", LLAMA)).await),
        1
    );
    assert_eq!(ok(statuses(&mut svc, 5, || hello("alice", LLAMA)).await), 3);
    assert_eq!(ok(statuses(&mut svc, 5, || hello("bob", LLAMA)).await), 2);
    // A class in the request extensions counts per key, too.
    let classed = || {
        let mut r = hello("carol", LLAMA);
        r.extensions_mut().insert(RateClass::new("pro"));
        r
    };
    assert_eq!(ok(statuses(&mut svc, 5, classed).await), 3);
    // A request without a key is counted as `anonymous`.
    let anon = || Request::post("/").body(Full::new(Bytes::new())).unwrap();
    assert_eq!(ok(statuses(&mut svc, 3, anon).await), 1);
    assert_eq!(
        layer
            .limits_of(&CallerKey::new("alice"))
            .requests_per_minute,
        Some(3)
    );
}

#[tokio::test(start_paused = true)]
async fn model_and_endpoint_limits_are_shared_by_all_callers() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = RateLimitLayer::new()
        .clock(ManualClock::new(NOW))
        .model_limits(LLAMA, Limits::new().requests_per_minute(3));
    let mut svc = routed(layer, calls.clone());
    let mut n = 0;
    let got = statuses(&mut svc, 5, || {
        n += 1;
        hello(&format!("caller-{n}"), LLAMA)
    })
    .await;
    assert_eq!(got, [200, 200, 200, 429, 429]);
    // Another model is not limited.
    assert_eq!(
        statuses(&mut svc, 2, || hello("x", "openai/gpt-4o-mini")).await,
        [200, 200]
    );

    // An endpoint limit: every request pinned to one endpoint counts against it.
    let layer = RateLimitLayer::new()
        .clock(ManualClock::new(NOW))
        .endpoint_limits(
            "openai/gpt-4o-mini@openai",
            Limits::new().requests_per_day(2),
        );
    let mut svc = routed(layer, calls);
    let pinned = || {
        chat(
            "x",
            json!({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}],
                   "provider": {"order": ["openai"], "allow_fallbacks": false}}),
        )
    };
    assert_eq!(statuses(&mut svc, 3, pinned).await, [200, 200, 429]);
}

#[tokio::test(start_paused = true)]
async fn tokens_per_minute_count_the_prompt_estimate_and_max_tokens() {
    let clock = ManualClock::new(NOW);
    let layer = RateLimitLayer::new()
        .clock(clock.clone())
        .default_limits(Limits::new().tokens_per_minute(1000));
    let mut svc = routed(layer, Arc::default());
    let ask = |max: u64| {
        move || {
            chat(
                "k",
                json!({"model": LLAMA, "max_tokens": max,
                       "messages": [{"role": "user", "content": "hi"}]}),
            )
        }
    };
    assert_eq!(statuses(&mut svc, 1, ask(600)).await, [200]);
    let res = send(&mut svc, ask(600)()).await;
    assert_eq!(res.status(), 429);
    let remaining: u64 = header(&res, "x-ratelimit-remaining")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        remaining < 400 && remaining > 300,
        "1000 − 600 − the prompt: {remaining}"
    );
    let v = json_of(res).await;
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("tokens-per-minute"));
    // A smaller request fits in what is left.
    assert_eq!(statuses(&mut svc, 1, ask(100)).await, [200]);
    clock.advance(Duration::from_secs(60));
    assert_eq!(statuses(&mut svc, 1, ask(900)).await, [200]);
}

#[tokio::test(start_paused = true)]
async fn a_refused_request_never_reaches_the_budget_or_the_upstream() {
    let clock = ManualClock::new(NOW);
    let calls = Arc::new(AtomicUsize::new(0));
    let ledger =
        InMemoryLedger::new(clock.clone()).limit("k", Period::Day, Usd::parse("1").unwrap());
    let mut svc = ServiceBuilder::new()
        .layer(ModelRoutingLayer::new(demo()))
        .layer(
            RateLimitLayer::new()
                .clock(clock.clone())
                .default_limits(Limits::new().requests_per_minute(1)),
        )
        .layer(
            UsageMeterLayer::new()
                .clock(clock.clone())
                .ledger(ledger.clone()),
        )
        .service(upstream(calls.clone()));
    let small = || {
        chat(
            "k",
            json!({"model": LLAMA, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}),
        )
    };
    let res = send(&mut svc, small()).await;
    assert_eq!(res.status(), 200);
    res.into_body().collect().await.unwrap();
    let before = ledger.usage_now(&CallerKey::new("k"));
    let res = send(&mut svc, small()).await;
    assert_eq!(res.status(), 429);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let after = ledger.usage_now(&CallerKey::new("k"));
    assert_eq!(after.usage, before.usage);
    assert_eq!(
        after.reserved,
        Usd::ZERO,
        "nothing reserved for the refused request"
    );
}

#[tokio::test(start_paused = true)]
async fn a_budget_refusal_further_in_refunds_the_slot() {
    let clock = ManualClock::new(NOW);
    let calls = Arc::new(AtomicUsize::new(0));
    let ledger =
        InMemoryLedger::new(clock.clone()).limit("k", Period::Day, Usd::parse("0.001").unwrap());
    let mut svc = ServiceBuilder::new()
        .layer(ModelRoutingLayer::new(demo()))
        .layer(
            RateLimitLayer::new()
                .clock(clock.clone())
                .default_limits(Limits::new().requests_per_minute(1).requests_per_day(1)),
        )
        .layer(UsageMeterLayer::new().clock(clock.clone()).ledger(ledger))
        .service(upstream(calls.clone()));
    let ask = |max: u64| {
        chat(
            "k",
            json!({"model": LLAMA, "max_tokens": max, "messages": [{"role": "user", "content": "hi"}]}),
        )
    };
    // 100,000 output tokens cannot be afforded: 402 from the budget, and the slot is given back…
    let res = send(&mut svc, ask(100_000)).await;
    assert_eq!(res.status(), 402);
    // …so the next (affordable) request in the same minute and day is served.
    let res = send(&mut svc, ask(10)).await;
    assert_eq!(res.status(), 200);
    res.into_body().collect().await.unwrap();
    let res = send(&mut svc, ask(10)).await;
    assert_eq!(res.status(), 429);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn upstream_429s_stay_the_fallbacks_business() {
    let clock = ManualClock::new(NOW);
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let client = tower::service_fn(move |_req: Req| {
        counted.fetch_add(1, Ordering::SeqCst);
        async {
            let mut res = Response::new(Full::new(Bytes::from_static(b"{\"error\":{}}")));
            *res.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            Ok::<_, Infallible>(res)
        }
    });
    // The demo catalog with every provider callable (a base URL the mock client ignores).
    let file = tower_ai_gateway::catalog::CatalogFile::from_json(include_bytes!(
        "fixtures/catalog/demo-catalog.json"
    ))
    .unwrap();
    let catalog = file
        .apply(Catalog::builder(), None)
        .unwrap()
        .map_providers(|p| p.base_url("http://upstream.test/v1"))
        .build()
        .unwrap();
    let gateway = GatewayLayer::new(catalog).rate_limit(
        RateLimitLayer::new()
            .clock(clock)
            .default_limits(Limits::new().requests_per_minute(1)),
    );
    let mut svc = gateway.layer(client);
    let res = send(&mut svc, hello("k", LLAMA)).await;
    // Every candidate was tried: the fallback's `capacity_exhausted`, not this layer's 429.
    assert_eq!(res.status(), 429);
    assert!(
        calls.load(Ordering::SeqCst) > 1,
        "the fallback tried the other candidates"
    );
    assert!(header(&res, "x-ratelimit-limit").is_none());
    let v = json_of(res).await;
    assert_eq!(v["error"]["availability"]["code"], "capacity_exhausted");
    // The request reached upstreams, so it kept its slot.
    let tried = calls.load(Ordering::SeqCst);
    let res = send(&mut svc, hello("k", LLAMA)).await;
    assert_eq!(header(&res, "x-ratelimit-limit").as_deref(), Some("1"));
    assert_eq!(calls.load(Ordering::SeqCst), tried);
}

#[tokio::test(start_paused = true)]
async fn a_future_dropped_before_it_is_polled_charges_nothing() {
    let store = InMemoryRateLimitStore::new();
    let mut svc = RateLimitLayer::new()
        .clock(ManualClock::new(NOW))
        .store(store.clone())
        .default_limits(Limits::new().requests_per_minute(1))
        .layer(upstream(Arc::default()));
    let fut = svc.ready().await.unwrap().call(hello("k", LLAMA));
    drop(fut);
    assert!(store.is_empty());
    let res = send(&mut svc, hello("k", LLAMA)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(store.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn no_limits_configured_means_no_store_calls() {
    /// A store that must never be asked.
    struct Unreachable;
    impl RateLimitStore for Unreachable {
        fn acquire(
            &self,
            _: Vec<tower_ai_gateway::rate_limit::Check>,
            _: i64,
        ) -> tower_ai_gateway::rate_limit::StoreFuture<tower_ai_gateway::rate_limit::Decision>
        {
            panic!("asked the store with no limits configured")
        }
        fn refund(&self, _: tower_ai_gateway::rate_limit::Grant) {}
        fn used(
            &self,
            _: &tower_ai_gateway::rate_limit::Check,
            _: i64,
        ) -> tower_ai_gateway::rate_limit::StoreFuture<u64> {
            Box::pin(std::future::ready(0))
        }
    }
    let mut svc = routed(RateLimitLayer::new().store(Unreachable), Arc::default());
    assert_eq!(statuses(&mut svc, 3, || hello("k", FREE)).await, [200; 3]);
}
