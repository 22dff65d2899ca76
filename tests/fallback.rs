//! ProviderFallback over SimulatedProvider (and scripted mocks), behind ModelRouting.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, Request, Response};
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_ai_gateway::catalog::{
    AuthStyle, Catalog, Credentials, Endpoint, Model, Provider, WireFormat,
};
use tower_ai_gateway::catalog::{EndpointKey, Usd};
use tower_ai_gateway::fallback::{Attempts, CooldownMode, ProviderFallbackLayer, RetryBudget};
use tower_ai_gateway::health::{HealthSource, Percentile};
use tower_ai_gateway::model_routing::ModelRoutingLayer;
use tower_ai_gateway::route::ServedBy;
use tower_ai_gateway::sim::{SimLatency, SimOutcome, SimProfile, SimulatedProvider};
use tower_ai_gateway::stats::{Attempt, FailureKind, Outcome, Stats, StatsConfig};

const MODEL: &str = "acme/chat";
const BACKUP: &str = "acme/backup";
const SLUGS: &[&str] = &["alpha", "beta", "gamma", "delta"];

fn key(slug: &str) -> String {
    format!("sk-secret-{slug}-XYZ")
}

fn catalog() -> Catalog {
    catalog_with(false)
}

/// The test catalog; with `anthro`, also an Anthropic-wire provider serving `MODEL`.
fn catalog_with(anthro: bool) -> Catalog {
    let mut b = Catalog::builder()
        .model(Model::new(MODEL, "Acme Chat"))
        .model(Model::new(BACKUP, "Acme Backup"));
    for (i, slug) in SLUGS.iter().enumerate() {
        let mut p = Provider::new(*slug, slug.to_uppercase())
            .base_url(format!("http://{slug}.sim/v1/"))
            .credentials(Credentials::key(key(slug)));
        if *slug == "beta" {
            p = p.auth(AuthStyle::Header(HeaderName::from_static("x-api-key")));
        }
        b = b.provider(p);
        let model = if *slug == "delta" { BACKUP } else { MODEL };
        let mut e = Endpoint::new(model, *slug);
        e.provider_model_id = Some(format!("{slug}-native-model"));
        e.pricing.prompt = Usd::from_micros(1 + i as i64);
        e.pricing.completion = Usd::from_micros(2 + i as i64);
        b = b.endpoint(e);
    }
    b = b
        .provider(Provider::new("nourl", "NoUrl"))
        .endpoint(Endpoint::new(MODEL, "nourl"));
    if anthro {
        b = b
            .provider(
                Provider::new("anthro", "Anthro")
                    .base_url("http://anthro.sim/v1")
                    .wire_format(WireFormat::Anthropic),
            )
            .endpoint(Endpoint::new(MODEL, "anthro"));
    }
    b.build().expect("catalog")
}

fn ekey(slug: &str) -> EndpointKey {
    let model = if slug == "delta" { BACKUP } else { MODEL };
    EndpointKey::new(model, slug)
}

/// A SimulatedProvider with one host per provider, each scripted.
fn sim(scripts: &[(&str, &[SimOutcome])]) -> SimulatedProvider {
    let mut b = SimulatedProvider::builder(7);
    for slug in SLUGS {
        let script = scripts
            .iter()
            .find(|(s, _)| s == slug)
            .map_or(&[][..], |(_, o)| *o);
        let profile = SimProfile::instant()
            .with_retry_after(Duration::from_secs(7))
            .with_script(script.iter().copied());
        b = b.host(&format!("http://{slug}.sim/v1"), profile);
    }
    b.host("http://anthro.sim/v1", SimProfile::instant())
        .build()
}

fn layer() -> ProviderFallbackLayer {
    ProviderFallbackLayer::new().no_budget()
}

fn body(order: &[&str], stream: bool, extra: &str) -> String {
    let order: Vec<String> = order.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        r#"{{"model":"{MODEL}","messages":[{{"role":"user","content":"hello there"}}],"stream":{stream},"max_tokens":6,"provider":{{"order":[{}]}},"session_id":"s-1"{extra}}}"#,
        order.join(",")
    )
}

fn request(body: String) -> Request<Full<Bytes>> {
    Request::post("/v1/chat/completions")
        .header("authorization", "Bearer caller-own-token")
        .header("x-api-key", "caller-own-api-key")
        .header("cookie", "session=caller-cookie")
        .header("user-agent", "test-agent/1.0")
        .header("connection", "keep-alive")
        .body(Full::new(Bytes::from(body)))
        .expect("request")
}

struct Answer {
    status: u16,
    headers: http::HeaderMap,
    served: Option<ServedBy>,
    attempts: Option<Attempts>,
    bytes: Bytes,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.bytes).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }
    fn served_by(&self) -> &str {
        self.served.as_ref().map_or("", |s| s.endpoint.tag())
    }
}

async fn call<S, B>(svc: S, body: String) -> Answer
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let res = svc
        .oneshot(request(body))
        .await
        .expect("service never fails");
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.expect("body never fails").to_bytes();
    let a = Answer {
        status: parts.status.as_u16(),
        served: parts.extensions.get::<ServedBy>().cloned(),
        attempts: parts.extensions.get::<Attempts>().cloned(),
        headers: parts.headers,
        bytes,
    };
    assert_no_secret(&a);
    a
}

fn assert_no_secret(a: &Answer) {
    let text = a.text();
    assert!(!text.contains("sk-secret"), "key in body: {text}");
    for (k, v) in &a.headers {
        assert!(
            !String::from_utf8_lossy(v.as_bytes()).contains("sk-secret"),
            "key in header {k}"
        );
    }
}

fn stack(
    sim: SimulatedProvider,
    fallback: ProviderFallbackLayer,
) -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<impl http_body::Body<Data = Bytes, Error = Infallible>>,
    Error = tower_ai_gateway::BoxError,
> + Clone {
    ServiceBuilder::new()
        .layer(ModelRoutingLayer::new(catalog()).seed(1))
        .layer(fallback)
        .service(sim)
}

// ===== retry classes =====

#[tokio::test(start_paused = true)]
async fn each_retry_class_moves_to_the_next_provider() {
    let cases = [
        SimOutcome::ConnectError,
        SimOutcome::Status(408),
        SimOutcome::Status(429),
        SimOutcome::Status(500),
        SimOutcome::Status(502),
        SimOutcome::Status(503),
        SimOutcome::Status(504),
        SimOutcome::Status(524),
        SimOutcome::Status(529),
        SimOutcome::Status(401),
        SimOutcome::Status(403),
        SimOutcome::MalformedJson,
        SimOutcome::Truncated,
        SimOutcome::Timeout,
        SimOutcome::Stall,
        SimOutcome::StallBody,
    ];
    for outcome in cases {
        let sim = sim(&[("alpha", &[outcome])]);
        let svc = stack(sim.clone(), layer().attempt_timeout(Duration::from_secs(5)));
        let a = call(svc, body(&["alpha", "beta"], false, "")).await;
        assert_eq!(a.status, 200, "{outcome:?}: {}", a.text());
        assert_eq!(a.served_by(), "beta", "{outcome:?}");
        let served = a.served.as_ref().expect("served");
        assert_eq!(served.attempts.len(), 2, "{outcome:?}");
        assert!(served.attempts[0].error_type.is_some());
        assert_eq!(served.attempts[1].kind, "ok");
        assert_eq!(&*served.upstream_model, "beta-native-model");
        let alpha = sim.handle("alpha.sim").expect("alpha");
        assert_eq!(alpha.stats().requests, 1, "{outcome:?}");
        assert_eq!(
            alpha.stats().in_flight,
            0,
            "{outcome:?}: the attempt was dropped"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn empty_200_is_retried() {
    let calls = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = calls.clone();
    let mock = tower::service_fn(move |req: Request<Full<Bytes>>| {
        let host = req.uri().host().unwrap_or("").to_string();
        seen.lock().unwrap().push(host.clone());
        async move {
            let body = if host == "alpha.sim" {
                ""
            } else {
                r#"{"choices":[]}"#
            };
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
        }
    });
    let svc = ServiceBuilder::new()
        .layer(ModelRoutingLayer::new(catalog()).seed(1))
        .layer(layer())
        .service(mock);
    let a = call(svc, body(&["alpha", "beta"], false, "")).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.served_by(), "beta");
    assert_eq!(*calls.lock().unwrap(), vec!["alpha.sim", "beta.sim"]);
    assert_eq!(a.served.unwrap().attempts[0].kind, "invalid_response");
}

/// Some providers answer `200` with an error object instead of a completion: it is judged by its
/// `code` (502 without one), so a server-side error falls over and a caller error is returned.
#[tokio::test(start_paused = true)]
async fn error_in_a_200_body_is_judged_by_its_code() {
    for (alpha, status, served, kind) in [
        (
            r#"{"error":{"code":503,"message":"upstream overloaded"}}"#,
            200,
            "beta",
            "server_error",
        ),
        (
            r#"{"error":{"message":"no code"},"choices":null}"#,
            200,
            "beta",
            "server_error",
        ),
        (
            r#"{"error":{"code":"rate_limit","message":"later"}}"#,
            200,
            "beta",
            "server_error",
        ),
        (
            r#"{"error":{"code":400,"message":"temperature is out of range"}}"#,
            400,
            "",
            "",
        ),
        (r#"{"error":null,"choices":[]}"#, 200, "alpha", "ok"),
    ] {
        let calls = Arc::new(Mutex::new(Vec::<String>::new()));
        let seen = calls.clone();
        let mock = tower::service_fn(move |req: Request<Full<Bytes>>| {
            let host = req.uri().host().unwrap_or("").to_string();
            seen.lock().unwrap().push(host.clone());
            let body = if host == "alpha.sim" {
                alpha
            } else {
                r#"{"choices":[]}"#
            };
            async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body)))) }
        });
        let svc = ServiceBuilder::new()
            .layer(ModelRoutingLayer::new(catalog()).seed(1))
            .layer(layer())
            .service(mock);
        let a = call(svc, body(&["alpha", "beta"], false, "")).await;
        assert_eq!(a.status, status, "{alpha}: {}", a.text());
        if status == 400 {
            let j = a.json();
            assert_eq!(j["error"]["code"], 400);
            assert_eq!(j["error"]["message"], "temperature is out of range", "{j}");
            assert_eq!(*calls.lock().unwrap(), vec!["alpha.sim"]);
            continue;
        }
        assert_eq!(a.served_by(), served, "{alpha}");
        assert_eq!(a.served.unwrap().attempts[0].kind, kind, "{alpha}");
    }
}

#[tokio::test(start_paused = true)]
async fn caller_errors_are_not_retried_for_the_same_model() {
    for status in [400u16, 404, 413, 422] {
        let sim = sim(&[("alpha", &[SimOutcome::Status(status)])]);
        let a = call(
            stack(sim.clone(), layer()),
            body(&["alpha", "beta"], false, ""),
        )
        .await;
        assert_eq!(a.status, status);
        let j = a.json();
        assert_eq!(j["error"]["code"], status);
        assert_eq!(j["error"]["metadata"]["provider_name"], "ALPHA");
        assert_eq!(sim.handle("beta.sim").unwrap().stats().requests, 0);
    }
}

#[tokio::test(start_paused = true)]
async fn caller_errors_do_move_to_a_fallback_model() {
    let sim = sim(&[("alpha", &[SimOutcome::Status(400)])]);
    let b = format!(
        r#"{{"model":"{MODEL}","models":["{BACKUP}"],"messages":[{{"role":"user","content":"hi"}}],"provider":{{"order":["alpha","delta"],"allow_fallbacks":false}}}}"#
    );
    let a = call(stack(sim.clone(), layer()), b).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.served_by(), "delta");
    let delta = sim.handle("delta.sim").unwrap().last_request().unwrap();
    assert_eq!(delta.model().as_deref(), Some("delta-native-model"));
}

#[tokio::test(start_paused = true)]
async fn uncallable_providers_are_skipped_and_anthropic_wire_is_spoken() {
    let sim = sim(&[]);
    let svc = ServiceBuilder::new()
        .layer(ModelRoutingLayer::new(catalog_with(true)).seed(1))
        .layer(layer())
        .service(sim);
    let a = call(svc, body(&["nourl", "anthro", "gamma"], false, "")).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["object"], "chat.completion");
    let kinds: Vec<&str> = a
        .served
        .as_ref()
        .unwrap()
        .attempts
        .iter()
        .map(|r| r.kind.as_str())
        .collect();
    if cfg!(feature = "anthropic") {
        assert_eq!(a.served_by(), "anthro");
        assert_eq!(kinds, ["not_callable", "ok"]);
    } else {
        // Without the `anthropic` feature the Anthropic-wire provider is skipped, unsent.
        assert_eq!(a.served_by(), "gamma");
        assert_eq!(kinds, ["not_callable", "unsupported_wire_format", "ok"]);
    }
}

#[tokio::test(start_paused = true)]
async fn no_route_is_a_400() {
    let svc = ProviderFallbackLayer::new().layer_service(sim(&[]));
    let res = svc
        .oneshot(Request::new(Full::new(Bytes::from("{}"))))
        .await
        .expect("response");
    assert_eq!(res.status(), 400);
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&bytes).contains("put ModelRouting in front"));
}

/// A caller's mark in the request extensions (must not reach the response).
#[derive(Clone, Debug)]
struct CallerMark;

/// An answer with no headers and no extensions gets none of the request's: no caller header,
/// no caller extension, no route; `ServedBy` is there.
#[tokio::test(start_paused = true)]
async fn a_bare_answer_gets_nothing_of_the_request() {
    const ANSWER: &str = r#"{"id":"gen-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#;
    let upstream = tower::service_fn(|_: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
            ANSWER.as_bytes(),
        ))))
    });
    let svc = ServiceBuilder::new()
        .layer(ModelRoutingLayer::new(catalog()).seed(1))
        .layer(layer())
        .service(upstream);
    let mut req = request(body(&["alpha"], false, ""));
    req.extensions_mut().insert(CallerMark);
    let res = svc.oneshot(req).await.expect("response");
    assert_eq!(res.status(), 200);
    assert!(res.headers().is_empty(), "{:?}", res.headers());
    let ext = res.extensions();
    assert!(ext.get::<CallerMark>().is_none());
    assert!(ext.get::<tower_ai_gateway::route::Route>().is_none());
    assert_eq!(
        ext.get::<ServedBy>().expect("served").endpoint.tag(),
        "alpha"
    );
}

trait LayerService {
    fn layer_service<S>(&self, s: S) -> tower_ai_gateway::fallback::ProviderFallback<S>;
}
impl LayerService for ProviderFallbackLayer {
    fn layer_service<S>(&self, s: S) -> tower_ai_gateway::fallback::ProviderFallback<S> {
        tower::Layer::layer(self, s)
    }
}

// ===== aggregated failures =====

#[tokio::test(start_paused = true)]
async fn all_429_is_capacity_exhausted_with_retry_after_and_cooldown() {
    let r = [SimOutcome::Status(429)];
    let sim = sim(&[("alpha", &r), ("beta", &r), ("gamma", &r)]);
    let stats = Stats::default();
    let svc = stack(sim, layer().stats(stats.clone()));
    let a = call(svc, body(&["alpha", "beta", "gamma"], false, "")).await;
    assert_eq!(a.status, 429, "{}", a.text());
    let j = a.json();
    assert_eq!(j["error"]["metadata"]["error_type"], "rate_limit_exceeded");
    assert_eq!(j["error"]["availability"]["code"], "capacity_exhausted");
    assert_eq!(j["error"]["availability"]["retry_after"], 7);
    assert_eq!(a.headers["retry-after"], "7");
    let previous = j["error"]["metadata"]["previous_errors"]
        .as_array()
        .unwrap()
        .clone();
    let rate_limited = previous.iter().filter(|e| e["status"] == 429).count();
    assert_eq!(rate_limited, 3, "{previous:?}");
    assert_eq!(previous[0]["code"], "rate_limited");
    assert_eq!(j["error"]["metadata"]["provider_name"], "GAMMA");
    let now = tokio::time::Instant::now();
    assert!(
        stats.in_cooldown(&ekey("alpha"), now),
        "Retry-After imposes a cooldown"
    );
    assert_eq!(a.attempts.unwrap().0.iter().filter(|r| r.sent).count(), 3);
}

/// A buffered answer's attempt goes to the statistics as a success with a latency sample, the
/// failed attempt before it as a failure.
#[tokio::test(start_paused = true)]
async fn a_buffered_answer_is_a_success_sample_in_the_stats() {
    let sim = sim(&[("alpha", &[SimOutcome::Status(503)])]);
    let mut config = StatsConfig::default();
    config.min_samples = 1;
    let stats = Stats::new(config);
    let svc = stack(sim, layer().stats(stats.clone()));
    let a = call(svc, body(&["alpha", "beta"], false, "")).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.served_by(), "beta");
    let alpha = stats.counts(&ekey("alpha")).expect("alpha recorded");
    assert_eq!((alpha.attempts, alpha.successes), (1, 0));
    let beta = stats.counts(&ekey("beta")).expect("beta recorded");
    assert_eq!((beta.attempts, beta.successes), (1, 1));
    let now = tokio::time::Instant::now();
    assert!(stats
        .latency_ms(&ekey("beta"), Percentile::P50, now)
        .is_some());
}

#[tokio::test(start_paused = true)]
async fn all_transient_is_503_and_mixed_is_502() {
    let sim1 = sim(&[
        ("alpha", &[SimOutcome::Status(503)]),
        ("beta", &[SimOutcome::Status(529)]),
        ("gamma", &[SimOutcome::ConnectError]),
    ]);
    let a = call(
        stack(sim1, layer()),
        body(&["alpha", "beta", "gamma"], false, ""),
    )
    .await;
    assert_eq!(a.status, 503);
    assert_eq!(
        a.json()["error"]["availability"]["code"],
        "temporarily_unavailable"
    );
    assert_eq!(a.json()["error"]["metadata"]["provider_name"], "GAMMA");

    let sim2 = sim(&[
        ("alpha", &[SimOutcome::Status(500)]),
        ("beta", &[SimOutcome::MalformedJson]),
        ("gamma", &[SimOutcome::Status(401)]),
    ]);
    let a = call(
        stack(sim2, layer()),
        body(&["alpha", "beta", "gamma"], false, ""),
    )
    .await;
    assert_eq!(a.status, 502);
    assert_eq!(
        a.json()["error"]["metadata"]["error_type"],
        "provider_unavailable"
    );
}

#[tokio::test(start_paused = true)]
async fn all_timeouts_is_504_and_overall_deadline_is_408() {
    let s = [SimOutcome::Stall];
    let sim1 = sim(&[("alpha", &s), ("beta", &s), ("gamma", &s)]);
    let l = layer().attempt_timeout(Duration::from_secs(2));
    let a = call(stack(sim1, l), body(&["alpha", "beta", "gamma"], false, "")).await;
    assert_eq!(a.status, 504);

    let sim2 = sim(&[("alpha", &s), ("beta", &s), ("gamma", &s)]);
    let l = layer()
        .attempt_timeout(Duration::from_secs(10))
        .overall_timeout(Duration::from_secs(15));
    let start = tokio::time::Instant::now();
    let a = call(
        stack(sim2.clone(), l),
        body(&["alpha", "beta", "gamma"], false, ""),
    )
    .await;
    assert_eq!(a.status, 408, "{}", a.text());
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(15),
        "the last attempt got what remained"
    );
    assert_eq!(sim2.handle("gamma.sim").unwrap().stats().requests, 0);
}

// ===== cooldown and budget =====

#[tokio::test(start_paused = true)]
async fn cooling_endpoints_are_deferred_or_fail_fast() {
    let stats = Stats::default();
    let now = tokio::time::Instant::now();
    let hint = Attempt::new(Outcome::Failure(FailureKind::RateLimited {
        retry_after: Some(Duration::from_secs(30)),
    }));
    stats.record_attempt(&ekey("alpha"), hint, now);
    assert!(stats.in_cooldown(&ekey("alpha"), now));

    let s = sim(&[]);
    let a = call(
        stack(s.clone(), layer().stats(stats.clone())),
        body(&["alpha", "beta"], false, ""),
    )
    .await;
    assert_eq!(a.served_by(), "beta");
    assert_eq!(s.handle("alpha.sim").unwrap().stats().requests, 0);

    // Deferred, not dropped: tried when nothing else is left.
    let s = sim(&[
        ("beta", &[SimOutcome::Status(503)]),
        ("gamma", &[SimOutcome::Status(503)]),
    ]);
    let a = call(
        stack(s.clone(), layer().stats(stats.clone())),
        body(&["alpha", "beta", "gamma"], false, ""),
    )
    .await;
    assert_eq!(a.served_by(), "alpha");

    // Fail fast: nothing called.
    let s = sim(&[]);
    let b = format!(
        r#"{{"model":"{MODEL}","messages":[{{"role":"user","content":"hi"}}],"provider":{{"order":["alpha"],"allow_fallbacks":false}}}}"#
    );
    let l = layer()
        .stats(stats.clone())
        .cooldown(CooldownMode::FailFast);
    let a = call(stack(s.clone(), l), b).await;
    assert_eq!(a.status, 503, "{}", a.text());
    assert_eq!(s.total_stats().requests, 0);
}

/// Two providers, each serving `MODEL` and `BACKUP`, both down; requests name both models.
fn budget_stack(
    budget: RetryBudget,
) -> (
    SimulatedProvider,
    impl Service<
            Request<Full<Bytes>>,
            Response = Response<impl http_body::Body<Data = Bytes, Error = Infallible>>,
            Error = tower_ai_gateway::BoxError,
        > + Clone,
) {
    let mut b = Catalog::builder()
        .model(Model::new(MODEL, "Acme Chat"))
        .model(Model::new(BACKUP, "Acme Backup"));
    for slug in ["alpha", "beta"] {
        b = b.provider(
            Provider::new(slug, slug.to_uppercase()).base_url(format!("http://{slug}.sim/v1")),
        );
        for model in [MODEL, BACKUP] {
            b = b.endpoint(Endpoint::new(model, slug));
        }
    }
    let down = SimProfile::instant().with_failure(SimOutcome::Status(503), 1.0);
    let sim = SimulatedProvider::builder(1)
        .host("http://alpha.sim/v1", down.clone())
        .host("http://beta.sim/v1", down)
        .build();
    let svc = ServiceBuilder::new()
        .layer(ModelRoutingLayer::new(b.build().expect("catalog")).seed(1))
        .layer(ProviderFallbackLayer::new().budget(budget))
        .service(sim.clone());
    (sim, svc)
}

/// Issue 17 item D: the first attempt at each distinct provider is exempt from the retry budget
/// (fallbacks are always tried); repeated attempts at a provider already tried draw on it, and a
/// refusal says so with its own error type and the providers tried and not tried.
#[tokio::test(start_paused = true)]
async fn d_the_budget_bounds_repeats_never_the_first_try_of_each_provider() {
    let budget = RetryBudget::new(Duration::from_secs(10), 0, 0.1);
    let (sim, svc) = budget_stack(budget);
    let body = format!(
        r#"{{"models":["{MODEL}","{BACKUP}"],"messages":[{{"role":"user","content":"hi"}}],"provider":{{"order":["alpha","beta"]}}}}"#
    );
    let mut refused = 0;
    for _ in 0..50 {
        let a = call(svc.clone(), body.clone()).await;
        assert_eq!(a.status, 503);
        let j = a.json();
        if j["error"]["metadata"]["error_type"] == "retry_budget_exhausted" {
            refused += 1;
            assert_eq!(
                j["error"]["metadata"]["providers_tried"],
                serde_json::json!(["ALPHA", "BETA"]),
                "{j}"
            );
            assert!(j["error"]["message"]
                .as_str()
                .unwrap()
                .contains("retry budget"));
            assert!(!j["error"]["metadata"]["providers_not_tried"]
                .as_array()
                .unwrap()
                .is_empty());
        }
    }
    let alpha = sim.handle("alpha.sim").unwrap().stats().requests;
    let beta = sim.handle("beta.sim").unwrap().stats().requests;
    // Every request tried both providers once (100 calls); of the 100 repeats (the backup model
    // on each provider), the budget allowed 10 % of 50 requests.
    assert!(alpha >= 50 && beta >= 50, "{alpha} {beta}");
    let repeats = alpha + beta - 100;
    assert!(repeats <= 6, "{repeats} repeated calls");
    assert!(refused >= 44, "{refused} refusals");
}

// ===== streams =====

fn slow_first_token() -> SimProfile {
    SimProfile::default().with_ttft(SimLatency::fixed(Duration::from_secs(100)))
}

#[tokio::test(start_paused = true)]
async fn stream_fails_over_before_the_first_token() {
    // Stall before the first token → first-token deadline → next candidate.
    let sim = SimulatedProvider::builder(3)
        .host(
            "http://alpha.sim/v1",
            slow_first_token().with_keep_alive(Duration::from_secs(1)),
        )
        .host("http://beta.sim/v1", SimProfile::instant())
        .build();
    let l = layer().first_token_timeout(Duration::from_secs(10));
    let a = call(stack(sim.clone(), l), body(&["alpha", "beta"], true, "")).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.served_by(), "beta");
    assert_eq!(
        a.served.as_ref().unwrap().attempts[0].kind,
        "first_token_timeout"
    );
    assert!(a.text().trim_end().ends_with("data: [DONE]"));
    assert_eq!(sim.handle("alpha.sim").unwrap().stats().cancelled, 1);

    // Status error and connection error before the stream.
    for o in [
        SimOutcome::Status(503),
        SimOutcome::ConnectError,
        SimOutcome::MalformedJson,
    ] {
        let sim = sim_streaming(&[("alpha", &[o])]);
        let a = call(stack(sim, layer()), body(&["alpha", "beta"], true, "")).await;
        assert_eq!(a.served_by(), "beta", "{o:?}");
        assert!(a.text().trim_end().ends_with("data: [DONE]"));
    }
}

fn sim_streaming(scripts: &[(&str, &[SimOutcome])]) -> SimulatedProvider {
    let mut b = SimulatedProvider::builder(9);
    for slug in SLUGS {
        let script = scripts
            .iter()
            .find(|(s, _)| s == slug)
            .map_or(&[][..], |(_, o)| *o);
        // Fail before any token for MalformedJson: the failure point is token 0.
        let p = SimProfile::instant()
            .with_fail_after_tokens(0)
            .with_script(script.iter().copied());
        b = b.host(&format!("http://{slug}.sim/v1"), p);
    }
    b.build()
}

/// A provider that goes silent after content never holds the caller: after the idle timeout the
/// stream ends with the error chunk, and the attempt counts as a failure.
#[tokio::test(start_paused = true)]
async fn a_stream_stalled_after_content_ends_after_the_idle_timeout() {
    // The default is 60 s (issue 17 item 1: at most 60 s of no bytes at all).
    for (configured, silence) in [(Some(Duration::from_secs(30)), 30), (None, 60)] {
        let sim = sim(&[("alpha", &[SimOutcome::StallBody])]);
        let stats = Stats::default();
        let mut l = layer().stats(stats.clone());
        if let Some(t) = configured {
            l = l.stream_idle_timeout(t);
        }
        let start = tokio::time::Instant::now();
        let a = call(stack(sim, l), body(&["alpha", "beta"], true, "")).await;
        let waited = start.elapsed();
        assert_eq!(a.served_by(), "alpha");
        let text = a.text();
        assert!(text.contains("\"content\":\""), "content first: {text}");
        assert!(!text.contains("[DONE]"), "{text}");
        assert!(text.contains("stalled"), "{text}");
        assert!(
            waited >= Duration::from_secs(silence) && waited < Duration::from_secs(silence + 5),
            "{waited:?}"
        );
        let snap = stats
            .snapshot(&ekey("alpha"), tokio::time::Instant::now())
            .expect("recorded");
        assert_eq!(snap.counts.failures.timeout, 1, "{snap:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn mid_stream_failures_end_with_an_error_chunk() {
    for o in [
        SimOutcome::Truncated,
        SimOutcome::BodyError,
        SimOutcome::MidStreamError,
    ] {
        let sim = sim(&[("alpha", &[o])]);
        let a = call(
            stack(sim.clone(), layer()),
            body(&["alpha", "beta"], true, ""),
        )
        .await;
        assert_eq!(a.status, 200, "{o:?}");
        assert_eq!(a.served_by(), "alpha", "{o:?}: no failover after content");
        let text = a.text();
        assert!(
            text.contains("\"content\":\""),
            "{o:?}: content was forwarded"
        );
        assert!(!text.contains("[DONE]"), "{o:?}: never a clean end\n{text}");
        let last = text
            .trim_end()
            .rsplit("\n\n")
            .next()
            .unwrap()
            .trim_start_matches("data: ")
            .to_string();
        let last: serde_json::Value =
            serde_json::from_str(&last).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert_eq!(last["choices"][0]["finish_reason"], "error", "{o:?}");
        assert!(last["error"].is_object(), "{o:?}");
        if o != SimOutcome::MidStreamError {
            assert_eq!(
                last["error"]["metadata"]["error_type"],
                "provider_unavailable"
            );
            assert_eq!(last["provider"], "ALPHA");
            assert_eq!(last["object"], "chat.completion.chunk");
        }
        assert_eq!(sim.handle("beta.sim").unwrap().stats().requests, 0);
    }
}

#[tokio::test(start_paused = true)]
async fn held_frames_are_replayed_in_order() {
    let sim = SimulatedProvider::builder(5)
        .host(
            "http://alpha.sim/v1",
            SimProfile::default()
                .with_ttft(SimLatency::fixed(Duration::from_secs(3)))
                .with_keep_alive(Duration::from_secs(1)),
        )
        .build();
    let a = call(stack(sim, layer()), body(&["alpha"], true, "")).await;
    let text = a.text();
    assert!(text.starts_with(": "), "keep-alives first: {text}");
    let role = text
        .find("\"role\":\"assistant\"")
        .expect("role chunk replayed");
    let content = text.find("\"content\":\"").unwrap();
    assert!(role <= content);
    assert!(text.trim_end().ends_with("data: [DONE]"));
    let served = a.served.unwrap();
    assert!(served.streamed);
    assert_eq!(served.latency, Some(Duration::from_secs(3)));
}

// ===== cancellation =====

#[tokio::test(start_paused = true)]
async fn dropping_the_future_or_the_body_cancels_upstream() {
    let sim1 = sim(&[("alpha", &[SimOutcome::Stall])]);
    let svc = stack(sim1.clone(), layer());
    let r = tokio::time::timeout(
        Duration::from_secs(1),
        svc.oneshot(request(body(&["alpha"], false, ""))),
    )
    .await;
    assert!(r.is_err());
    let s = sim1.handle("alpha.sim").unwrap().stats();
    assert_eq!((s.cancelled, s.in_flight), (1, 0));

    let slow = SimProfile::default()
        .with_ttft(SimLatency::fixed(Duration::from_millis(10)))
        .with_throughput(1.0);
    let sim2 = SimulatedProvider::builder(2)
        .host("http://alpha.sim/v1", slow)
        .build();
    let res = stack(sim2.clone(), layer())
        .oneshot(request(body(&["alpha"], true, "")))
        .await
        .unwrap();
    let mut b = res.into_body();
    let first = b.frame().await.unwrap().unwrap();
    assert!(first.is_data());
    drop(b);
    let s = sim2.handle("alpha.sim").unwrap().stats();
    assert_eq!((s.cancelled, s.in_flight), (1, 0));
}

// ===== what reaches the provider =====

#[tokio::test(start_paused = true)]
async fn credentials_headers_and_body_per_provider() {
    let sim = sim(&[("alpha", &[SimOutcome::Status(503)])]);
    let extra = r#","transforms":[],"provider_extra":1,"provider2":{"x":1},"debug":{"echo_upstream_body":true}"#;
    let b = body(&["alpha", "beta"], false, extra).replace(
        r#""provider":{"order":["alpha","beta"]}"#,
        r#""provider":{"order":["alpha","beta"],"options":{"beta":{"top_k":5,"max_tokens":9},"alpha":{"alpha_only":true}}}"#,
    );
    let a = call(stack(sim.clone(), layer()), b).await;
    assert_eq!(a.served_by(), "beta");

    let alpha = sim.handle("alpha.sim").unwrap().last_request().unwrap();
    assert_eq!(alpha.uri, "http://alpha.sim/v1/chat/completions");
    assert_eq!(alpha.bearer(), Some("sk-secret-alpha-XYZ"));
    assert!(alpha.headers.get("x-api-key").is_none());
    let aj = alpha.json().unwrap();
    assert_eq!(aj["alpha_only"], true);
    assert!(aj.get("top_k").is_none());

    let beta = sim.handle("beta.sim").unwrap().last_request().unwrap();
    assert_eq!(beta.headers["x-api-key"], "sk-secret-beta-XYZ");
    assert!(
        beta.headers.get("authorization").is_none(),
        "caller's Authorization never forwarded"
    );
    for h in ["cookie", "connection"] {
        assert!(beta.headers.get(h).is_none(), "{h}");
    }
    assert_eq!(beta.headers["user-agent"], "test-agent/1.0");
    assert_eq!(beta.headers["content-type"], "application/json");
    let bj = beta.json().unwrap();
    assert_eq!(bj["model"], "beta-native-model");
    assert_eq!(bj["max_tokens"], 9, "options win over the body");
    assert_eq!(bj["top_k"], 5);
    assert!(
        bj.get("alpha_only").is_none(),
        "options go only to their provider"
    );
    for gone in ["provider", "session_id", "transforms", "debug"] {
        assert!(bj.get(gone).is_none(), "{gone} removed");
    }
    assert_eq!(bj["provider_extra"], 1);
    assert_eq!(bj["provider2"]["x"], 1);
    assert_eq!(bj["messages"][0]["content"], "hello there");
}

/// Every header of a request, sorted by name (the values of one name in their order).
fn header_list(h: &http::HeaderMap) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = h
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// The exact header set of the first attempt's request and of a fallback attempt's: the
/// forwarded caller headers (several values of one name in order), the content type and the
/// provider's credentials, nothing else of the caller's.
#[tokio::test(start_paused = true)]
async fn upstream_requests_carry_exactly_their_headers() {
    let sim = sim(&[("alpha", &[SimOutcome::Status(503)])]);
    let fallback = layer().forward_header(HeaderName::from_static("x-custom-forwarded"));
    let mut req = request(body(&["alpha", "beta"], false, ""));
    for (k, v) in [
        ("accept", "application/json"),
        ("x-custom-forwarded", "one"),
        ("accept", "text/event-stream"),
        ("x-custom-kept-home", "no"),
        ("x-request-id", "req-1"),
        ("host", "gateway.local"),
        ("content-length", "99"),
        ("content-type", "text/plain"),
        ("x-custom-forwarded", "two"),
        ("proxy-authorization", "Basic x"),
    ] {
        req.headers_mut().append(
            HeaderName::from_static(k),
            http::HeaderValue::from_static(v),
        );
    }
    let res = stack(sim.clone(), fallback).oneshot(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let from_caller = [
        ("accept", "application/json"),
        ("accept", "text/event-stream"),
        ("content-type", "application/json"),
        ("user-agent", "test-agent/1.0"),
        ("x-custom-forwarded", "one"),
        ("x-custom-forwarded", "two"),
        ("x-request-id", "req-1"),
    ];
    let expected = |auth: (&str, String)| {
        let mut v: Vec<(String, String)> = from_caller
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain([(auth.0.to_string(), auth.1)])
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let alpha = sim.handle("alpha.sim").unwrap().last_request().unwrap();
    assert_eq!(
        header_list(&alpha.headers),
        expected(("authorization", format!("Bearer {}", key("alpha"))))
    );
    let beta = sim.handle("beta.sim").unwrap().last_request().unwrap();
    assert_eq!(
        header_list(&beta.headers),
        expected(("x-api-key", key("beta")))
    );
}

// ===== secrets in responses and logs =====

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<String>>);

struct Visitor<'a>(&'a mut String);
impl tracing::field::Visit for Visitor<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={:?} ", field.name(), value));
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, a: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut s = self.0.lock().unwrap();
        a.record(&mut Visitor(&mut s));
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, v: &tracing::span::Record<'_>) {
        v.record(&mut Visitor(&mut self.0.lock().unwrap()));
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, e: &tracing::Event<'_>) {
        let mut s = self.0.lock().unwrap();
        e.record(&mut Visitor(&mut s));
        s.push('\n');
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// A mock that echoes the key it received in error bodies and headers, like a careless provider.
fn echoing_mock(
    status: u16,
) -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone {
    tower::service_fn(move |req: Request<Full<Bytes>>| {
        let key = req
            .headers()
            .get("authorization")
            .or_else(|| req.headers().get("x-api-key"))
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        async move {
            let body = format!(r#"{{"error":{{"message":"Incorrect API key provided: {key}"}}}}"#);
            let res = Response::builder()
                .status(status)
                .header("x-echo", key.clone())
                .body(Full::new(Bytes::from(body)))
                .unwrap();
            Ok::<_, Infallible>(res)
        }
    })
}

#[tokio::test(start_paused = true)]
async fn keys_never_reach_responses_or_logs() {
    // A global subscriber: a thread-local one loses events when other tests (threads) cache the
    // callsites' interest first. It captures every test's events, which are all scanned below.
    static CAPTURE: std::sync::OnceLock<Capture> = std::sync::OnceLock::new();
    let capture = CAPTURE
        .get_or_init(|| {
            let c = Capture::default();
            let _ = tracing::subscriber::set_global_default(c.clone());
            c
        })
        .clone();
    tracing::callsite::rebuild_interest_cache();
    let failures: &[&[SimOutcome]] = &[
        &[SimOutcome::Status(401)],
        &[SimOutcome::Status(400)],
        &[SimOutcome::Status(429)],
        &[SimOutcome::ConnectError],
        &[SimOutcome::MalformedJson],
        &[SimOutcome::Truncated],
        &[SimOutcome::BodyError],
    ];
    for script in failures {
        for stream in [false, true] {
            let s = sim(&[("alpha", script), ("beta", script), ("gamma", script)]);
            let a = call(
                stack(s, layer()),
                body(&["alpha", "beta", "gamma"], stream, ""),
            )
            .await;
            assert!(a.status >= 200, "{script:?}");
        }
    }
    for status in [400u16, 401, 403, 422, 500] {
        for stream in [false, true] {
            let svc = ServiceBuilder::new()
                .layer(ModelRoutingLayer::new(catalog()).seed(1))
                .layer(layer())
                .service(echoing_mock(status));
            let a = call(svc, body(&["alpha", "beta"], stream, "")).await;
            assert_eq!(a.headers.get("x-echo"), None);
            if status == 400 || status == 422 {
                assert_eq!(a.status, status);
                assert_eq!(a.json()["error"]["message"], "Provider returned error");
            }
        }
    }
    let logs = capture.0.lock().unwrap().clone();
    assert!(
        logs.contains("provider attempt failed"),
        "events were captured"
    );
    assert!(!logs.contains("sk-secret"), "{logs}");
}
