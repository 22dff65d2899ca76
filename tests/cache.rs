//! ResponseCache: OpenRouter's response cache in front of UsageMeter — HITs cost nothing and carry
//! a new id, streams are recorded frame by frame and replayed frame for frame, callers never see
//! each other's entries, TTLs parse as OpenRouter's, only complete 200s within the size limit are
//! stored, identical misses can be coalesced.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use tokio::sync::mpsc;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_ai_gateway::cache::{CacheStatus, InMemoryStore, ResponseCacheLayer};
use tower_ai_gateway::catalog::{Catalog, Usd};
use tower_ai_gateway::clock::ManualClock;
use tower_ai_gateway::model_routing::ModelRoutingLayer;
use tower_ai_gateway::usage_meter::{
    CallerKey, GenerationStore, InMemoryLedger, Period, UsageMeterLayer,
};

const DEMO: &[u8] = include_bytes!("fixtures/catalog/demo-catalog.json");
/// 2026-11-22T02:52:00Z.
const NOW: i64 = 1_795_315_920_000;
const BODY: &str =
    r#"{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"Hi there"}]}"#;
const STREAM_BODY: &str =
    r#"{"model":"openai/gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Hi"}]}"#;
const JSON_ANSWER: &str = r#"{"id":"up-1","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello!"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1000,"completion_tokens":500,"total_tokens":1500,"completion_tokens_details":{"reasoning_tokens":7}}}"#;
const SSE_ANSWER: [&str; 4] = [
    "data: {\"id\":\"up-2\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"}}]}\n\n",
    "data: {\"id\":\"up-2\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\n",
    "data: {\"id\":\"up-2\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":2,\"total_tokens\":12}}\n\n",
    "data: [DONE]\n\n",
];

/// An upstream body fed through a channel, so a test decides when each frame arrives.
struct Chan(mpsc::UnboundedReceiver<Result<Bytes, std::io::Error>>);

impl Body for Chan {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|f| f.map(|r| r.map(Frame::data)))
    }
}

/// Put in the extensions of the upstream's `n`th answer.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Marker(usize);

/// What the upstream answers: a status, whether it is SSE, and a channel feeding its body.
type Reply = (StatusCode, bool, Chan);

fn complete(status: StatusCode, sse: bool, frames: &[&str]) -> Reply {
    let (tx, rx) = mpsc::unbounded_channel();
    for f in frames {
        tx.send(Ok(Bytes::copy_from_slice(f.as_bytes()))).unwrap();
    }
    (status, sse, Chan(rx))
}

/// The upstream: counts calls, answers with `reply(call number)`, after `delay`.
#[derive(Clone)]
struct Upstream {
    calls: Arc<AtomicUsize>,
    reply: Arc<dyn Fn(usize) -> Reply + Send + Sync>,
    delay: Duration,
}

impl Upstream {
    fn new(reply: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Self {
        Upstream {
            calls: Arc::new(AtomicUsize::new(0)),
            reply: Arc::new(reply),
            delay: Duration::ZERO,
        }
    }

    fn json() -> Self {
        Self::new(|_| complete(StatusCode::OK, false, &[JSON_ANSWER]))
    }

    fn sse() -> Self {
        Self::new(|_| complete(StatusCode::OK, true, &SSE_ANSWER))
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Service<Request<Full<Bytes>>> for Upstream {
    type Response = Response<Chan>;
    type Error = Infallible;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Response<Chan>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<Full<Bytes>>) -> Self::Future {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let (status, sse, body) = (self.reply)(n);
        let delay = self.delay;
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            let ct = if sse {
                "text/event-stream"
            } else {
                "application/json"
            };
            let mut res = Response::builder()
                .status(status)
                .header("content-type", ct)
                .body(body)
                .unwrap();
            res.extensions_mut().insert(Marker(n));
            Ok(res)
        })
    }
}

/// Everything a test looks at.
struct Harness {
    clock: ManualClock,
    ledger: InMemoryLedger,
    generations: GenerationStore,
}

impl Harness {
    fn new() -> Self {
        let clock = ManualClock::new(NOW);
        let ledger = InMemoryLedger::new(clock.clone()).limit(
            "team-a",
            Period::Day,
            Usd::parse("5").unwrap(),
        );
        Harness {
            clock,
            ledger,
            generations: GenerationStore::new(100),
        }
    }

    /// ModelRouting → ResponseCache → UsageMeter (ledger, generation store) → `up`.
    fn stack(
        &self,
        cache: ResponseCacheLayer,
        up: Upstream,
    ) -> impl Service<
        Request<Full<Bytes>>,
        Response = Response<impl Body<Data = Bytes, Error = impl std::fmt::Debug>>,
        Error = Infallible,
    > + Clone {
        ServiceBuilder::new()
            .layer(ModelRoutingLayer::new(Catalog::from_json(DEMO).unwrap()))
            .layer(cache.clock(self.clock.clone()))
            .layer(
                UsageMeterLayer::new()
                    .clock(self.clock.clone())
                    .ledger(self.ledger.clone())
                    .sink(self.generations.clone()),
            )
            .service(up)
    }

    fn spent(&self, key: &str) -> Usd {
        self.ledger.usage_now(&CallerKey::new(key)).usage_daily
    }
}

fn request(key: Option<&str>, body: &str, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut b = Request::post("/api/v1/chat/completions");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let mut req = b
        .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
        .unwrap();
    if let Some(k) = key {
        req.extensions_mut().insert(CallerKey::new(k));
    }
    req
}

const ON: &[(&str, &str)] = &[("x-openrouter-cache", "true")];

struct Got {
    status: StatusCode,
    headers: http::HeaderMap,
    cache: Option<CacheStatus>,
    marker: Option<Marker>,
    frames: Vec<Bytes>,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.frames.concat()).unwrap()
    }

    fn id(&self) -> String {
        self.header("x-generation-id").unwrap().to_owned()
    }
}

async fn send<S, B>(svc: &mut S, req: Request<Full<Bytes>>) -> Got
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>, Error = Infallible>,
    B: Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let res = svc.ready().await.unwrap().call(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let mut body = std::pin::pin!(body);
    let mut frames = Vec::new();
    while let Some(f) = body.frame().await {
        if let Ok(d) = f.unwrap().into_data() {
            frames.push(d);
        }
    }
    Got {
        status: parts.status,
        cache: parts.extensions.get::<CacheStatus>().copied(),
        marker: parts.extensions.get::<Marker>().copied(),
        headers: parts.headers,
        frames,
    }
}

#[tokio::test(start_paused = true)]
async fn a_hit_costs_nothing_and_carries_a_new_id() {
    let h = Harness::new();
    let up = Upstream::json();
    let mut svc = h.stack(ResponseCacheLayer::new(), up.clone());

    let miss = send(&mut svc, request(Some("team-a"), BODY, ON)).await;
    assert_eq!(miss.status, 200);
    assert_eq!(miss.header("x-openrouter-cache-status"), Some("MISS"));
    assert_eq!(miss.header("x-openrouter-cache-ttl"), Some("300"));
    assert_eq!(miss.header("x-openrouter-cache-age"), None);
    assert_eq!(miss.cache, Some(CacheStatus::Miss));
    let spent = h.spent("team-a");
    assert!(spent > Usd::ZERO, "the MISS is charged");
    assert!(miss.json()["usage"]["cost"].as_f64().unwrap() > 0.0);

    h.clock.advance(Duration::from_secs(42));
    let hit = send(&mut svc, request(Some("team-a"), BODY, ON)).await;
    assert_eq!(hit.status, 200);
    assert_eq!(hit.header("x-openrouter-cache-status"), Some("HIT"));
    assert_eq!(hit.header("x-openrouter-cache-age"), Some("42"));
    assert_eq!(hit.header("x-openrouter-cache-ttl"), Some("300"));
    assert_eq!(
        hit.header("x-openrouter-cache-source-id"),
        Some(miss.id().as_str())
    );
    assert_eq!(hit.header("content-type"), Some("application/json"));
    assert_eq!(hit.cache, Some(CacheStatus::Hit));
    assert_eq!(
        hit.marker,
        Some(Marker(0)),
        "the MISS's extensions come back"
    );
    assert_ne!(hit.id(), miss.id(), "a new generation id");
    let json = hit.json();
    assert_eq!(json["id"], hit.id().as_str());
    assert_eq!(json["created"], (NOW + 42_000) / 1000);
    for field in ["prompt_tokens", "completion_tokens", "total_tokens", "cost"] {
        assert_eq!(json["usage"][field], 0, "{field}");
    }
    assert_eq!(
        json["usage"]["completion_tokens_details"]["reasoning_tokens"],
        0
    );
    assert_eq!(json["choices"], miss.json()["choices"], "the same answer");
    assert_eq!(json["provider"], miss.json()["provider"]);

    assert_eq!(up.calls(), 1, "the HIT never reached upstream");
    assert_eq!(h.spent("team-a"), spent, "the HIT cost the caller nothing");
    assert_eq!(h.generations.len(), 1, "no generation recorded for the HIT");
    assert!(h.generations.get(&hit.id()).is_none());
}

/// `hit` with its generation id and `created` put back to `miss`'s.
fn unrewritten(hit: &Bytes, hit_id: &str, miss_id: &str, created: i64) -> String {
    String::from_utf8(hit.to_vec())
        .unwrap()
        .replace(hit_id, miss_id)
        .replace(&format!("\"created\":{created}"), "\"created\":1700000000")
}

#[tokio::test(start_paused = true)]
async fn a_streamed_hit_replays_the_same_frames() {
    let h = Harness::new();
    let up = Upstream::sse();
    let mut svc = h.stack(ResponseCacheLayer::new(), up.clone());

    let miss = send(&mut svc, request(Some("team-a"), STREAM_BODY, ON)).await;
    assert_eq!(miss.header("x-openrouter-cache-status"), Some("MISS"));
    assert_eq!(miss.frames.len(), 4);
    let spent = h.spent("team-a");
    assert!(spent > Usd::ZERO);

    let hit = send(&mut svc, request(Some("team-a"), STREAM_BODY, ON)).await;
    assert_eq!(hit.header("x-openrouter-cache-status"), Some("HIT"));
    assert_eq!(hit.header("content-type"), Some("text/event-stream"));
    assert_eq!(hit.frames.len(), miss.frames.len(), "frame for frame");
    let created = NOW / 1000;
    for (i, (m, h2)) in miss.frames.iter().zip(&hit.frames).enumerate() {
        let back = unrewritten(h2, &hit.id(), &miss.id(), created);
        if i == 2 {
            // The usage chunk: the same but every counter 0.
            let m: Value = serde_json::from_slice(&m[6..]).unwrap();
            let hv: Value = serde_json::from_str(&back[6..]).unwrap();
            assert!(m["usage"]["cost"].as_f64().unwrap() > 0.0);
            for (k, v) in hv["usage"].as_object().unwrap() {
                assert!(v == 0 || !v.is_number(), "{k} = {v}");
            }
            assert_eq!(hv["choices"], m["choices"]);
            assert_eq!(hv["id"], m["id"]);
        } else {
            assert_eq!(back, std::str::from_utf8(m).unwrap(), "frame {i}");
        }
        if i < 3 {
            let ids = std::str::from_utf8(h2).unwrap().matches(&hit.id()).count();
            assert_eq!(ids, 1, "frame {i} carries the new id");
        }
    }
    assert_eq!(up.calls(), 1);
    assert_eq!(h.spent("team-a"), spent);
    assert_eq!(h.generations.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_miss_streams_through_frame_by_frame() {
    let h = Harness::new();
    let (tx, rx) = mpsc::unbounded_channel();
    let rx = Arc::new(Mutex::new(Some(rx)));
    let up = Upstream::new(move |_| {
        let rx = rx.lock().unwrap().take().expect("one call");
        (StatusCode::OK, true, Chan(rx))
    });
    let mut svc = h.stack(ResponseCacheLayer::new(), up);
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(request(Some("team-a"), STREAM_BODY, ON))
        .await
        .unwrap();
    let mut body = std::pin::pin!(res.into_body());
    for f in SSE_ANSWER {
        tx.send(Ok(Bytes::from_static(f.as_bytes()))).unwrap();
        // Each frame comes out before the next is even sent: nothing is buffered.
        let got = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert!(got.starts_with(b"data: "), "{got:?}");
    }
    drop(tx);
    assert!(body.frame().await.is_none());
    let hit = send(&mut svc, request(Some("team-a"), STREAM_BODY, ON)).await;
    assert_eq!(hit.header("x-openrouter-cache-status"), Some("HIT"));
}

#[tokio::test(start_paused = true)]
async fn a_callers_cache_is_never_visible_to_another_key() {
    let h = Harness::new();
    let up = Upstream::json();
    let mut svc = h.stack(ResponseCacheLayer::new(), up.clone());
    send(&mut svc, request(Some("team-a"), BODY, ON)).await;
    let other = send(&mut svc, request(Some("team-b"), BODY, ON)).await;
    assert_eq!(other.header("x-openrouter-cache-status"), Some("MISS"));
    assert_eq!(up.calls(), 2);
    let again = send(&mut svc, request(Some("team-b"), BODY, ON)).await;
    assert_eq!(again.header("x-openrouter-cache-status"), Some("HIT"));
    assert_ne!(
        again.header("x-openrouter-cache-source-id"),
        Some(
            send(&mut svc, request(Some("team-a"), BODY, ON))
                .await
                .header("x-openrouter-cache-source-id")
                .unwrap()
        ),
        "each key replays its own answer"
    );
    // Without a caller key nothing is cached (and no cache headers are sent).
    let anon = send(&mut svc, request(None, BODY, ON)).await;
    assert_eq!(anon.header("x-openrouter-cache-status"), None);
    assert_eq!(anon.cache, None);
    assert_eq!(up.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn the_key_ignores_whitespace_but_not_the_stream_mode_or_the_path() {
    let h = Harness::new();
    let up = Upstream::json();
    let mut svc = h.stack(ResponseCacheLayer::new(), up.clone());
    send(&mut svc, request(Some("team-a"), BODY, ON)).await;
    let spaced = BODY.replace(",", " ,\n  ").replace(":", " : ");
    let hit = send(&mut svc, request(Some("team-a"), &spaced, ON)).await;
    assert_eq!(hit.header("x-openrouter-cache-status"), Some("HIT"));
    let mut other_path = request(Some("team-a"), BODY, ON);
    *other_path.uri_mut() = "/v1/chat/completions".parse().unwrap();
    let miss = send(&mut svc, other_path).await;
    assert_eq!(miss.header("x-openrouter-cache-status"), Some("MISS"));
    assert_eq!(up.calls(), 2);
}

/// The TTL a request gets, and whether it is still a HIT one second before and at its end.
async fn ttl_case(header: &str, expect: u64) {
    let h = Harness::new();
    let up = Upstream::json();
    let mut svc = h.stack(ResponseCacheLayer::new(), up.clone());
    let headers = [
        ("x-openrouter-cache", "true"),
        ("x-openrouter-cache-ttl", header),
    ];
    let miss = send(&mut svc, request(Some("team-a"), BODY, &headers)).await;
    assert_eq!(
        miss.header("x-openrouter-cache-ttl"),
        Some(expect.to_string().as_str()),
        "{header}"
    );
    h.clock.advance(Duration::from_millis(expect * 1000 - 1));
    let hit = send(&mut svc, request(Some("team-a"), BODY, ON)).await;
    assert_eq!(
        hit.header("x-openrouter-cache-status"),
        Some("HIT"),
        "{header}"
    );
    assert_eq!(
        hit.header("x-openrouter-cache-ttl"),
        Some(expect.to_string().as_str())
    );
    h.clock.advance(Duration::from_millis(1));
    let expired = send(&mut svc, request(Some("team-a"), BODY, ON)).await;
    assert_eq!(
        expired.header("x-openrouter-cache-status"),
        Some("MISS"),
        "{header}"
    );
    assert_eq!(up.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn ttl_edge_cases() {
    ttl_case("0", 1).await;
    ttl_case("1", 1).await;
    ttl_case("86400", 86_400).await;
    ttl_case("86401", 86_400).await;
    ttl_case("12abc", 12).await;
    ttl_case("3.9", 3).await;
    ttl_case("abc", 300).await;
    ttl_case("", 300).await;
}

#[tokio::test(start_paused = true)]
async fn the_default_ttl_is_configurable() {
    let h = Harness::new();
    let layer = ResponseCacheLayer::new().default_ttl(Duration::from_secs(90));
    let mut svc = h.stack(layer, Upstream::json());
    let miss = send(&mut svc, request(Some("team-a"), BODY, ON)).await;
    assert_eq!(miss.header("x-openrouter-cache-ttl"), Some("90"));
}

#[tokio::test(start_paused = true)]
async fn only_200s_are_cached() {
    let h = Harness::new();
    let up = Upstream::new(|n| match n {
        0 => complete(
            StatusCode::TOO_MANY_REQUESTS,
            false,
            &[r#"{"error":{"code":429,"message":"slow down"}}"#],
        ),
        _ => complete(StatusCode::OK, false, &[JSON_ANSWER]),
    });
    let mut svc = h.stack(ResponseCacheLayer::new(), up.clone());
    let failed = send(&mut svc, request(Some("team-a"), BODY, ON)).await;
    assert_eq!(failed.status, 429);
    assert_eq!(failed.header("x-openrouter-cache-status"), Some("MISS"));
    let next = send(&mut svc, request(Some("team-a"), BODY, ON)).await;
    assert_eq!(next.status, 200);
    assert_eq!(
        next.header("x-openrouter-cache-status"),
        Some("MISS"),
        "the 429 was not stored"
    );
    let hit = send(&mut svc, request(Some("team-a"), BODY, ON)).await;
    assert_eq!(hit.header("x-openrouter-cache-status"), Some("HIT"));
    assert_eq!(up.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_failed_or_dropped_stream_is_not_cached() {
    let h = Harness::new();
    let up = Upstream::new(|n| {
        let (tx, rx) = mpsc::unbounded_channel();
        tx.send(Ok(Bytes::from_static(SSE_ANSWER[0].as_bytes())))
            .unwrap();
        if n == 0 {
            tx.send(Err(std::io::Error::other("reset"))).unwrap();
        } else {
            std::mem::forget(tx); // never ends
        }
        (StatusCode::OK, true, Chan(rx))
    });
    let mut svc = h.stack(ResponseCacheLayer::new(), up.clone());
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(request(Some("team-a"), STREAM_BODY, ON))
        .await
        .unwrap();
    let collected = res.into_body().collect().await;
    assert!(collected.is_err());
    // The second stream is dropped after its first frame.
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(request(Some("team-a"), STREAM_BODY, ON))
        .await
        .unwrap();
    let mut body = Box::pin(res.into_body());
    body.frame().await.unwrap().unwrap();
    drop(body);
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(request(Some("team-a"), STREAM_BODY, ON))
        .await
        .unwrap();
    assert_eq!(res.headers()["x-openrouter-cache-status"], "MISS");
    assert_eq!(up.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn oversize_answers_are_not_cached() {
    let h = Harness::new();
    let up = Upstream::json();
    let mut svc = h.stack(ResponseCacheLayer::new().max_entry_bytes(100), up.clone());
    let first = send(&mut svc, request(Some("team-a"), BODY, ON)).await;
    assert_eq!(first.status, 200);
    assert!(first.frames.concat().len() > 100);
    let second = send(&mut svc, request(Some("team-a"), BODY, ON)).await;
    assert_eq!(second.header("x-openrouter-cache-status"), Some("MISS"));
    assert_eq!(up.calls(), 2);

    // And the store's total bound holds.
    let store = InMemoryStore::new(4_000);
    let mut svc = h.stack(
        ResponseCacheLayer::new().store(store.clone()),
        Upstream::json(),
    );
    for i in 0..20 {
        let body = BODY.replace("Hi there", &format!("Hi {i}"));
        send(&mut svc, request(Some("team-a"), &body, ON)).await;
    }
    assert!(store.weighted_size() <= 4_000, "{}", store.weighted_size());
    assert!(store.entry_count() >= 1);
}

async fn concurrent_misses(coalesce: bool) -> (usize, Vec<Option<String>>) {
    let h = Harness::new();
    let mut up = Upstream::json();
    up.delay = Duration::from_secs(2);
    let svc = h.stack(ResponseCacheLayer::new().coalesce(coalesce), up.clone());
    let one = || {
        let mut svc = svc.clone();
        async move { send(&mut svc, request(Some("team-a"), BODY, ON)).await }
    };
    let all = tokio::join!(one(), one(), one(), one(), one());
    let mut statuses = Vec::new();
    for got in [all.0, all.1, all.2, all.3, all.4] {
        assert_eq!(got.status, 200);
        assert_eq!(got.json()["choices"][0]["message"]["content"], "Hello!");
        statuses.push(got.header("x-openrouter-cache-status").map(str::to_owned));
    }
    statuses.sort();
    (up.calls(), statuses)
}

#[tokio::test(start_paused = true)]
async fn concurrent_identical_misses_are_coalesced_when_turned_on() {
    let (calls, statuses) = concurrent_misses(true).await;
    assert_eq!(calls, 1, "one upstream call");
    let hits = statuses
        .iter()
        .filter(|s| s.as_deref() == Some("HIT"))
        .count();
    assert_eq!(hits, 4, "{statuses:?}");
    // OpenRouter's default: no coalescing.
    let (calls, _) = concurrent_misses(false).await;
    assert_eq!(calls, 5);
}

#[tokio::test(start_paused = true)]
async fn a_coalesced_miss_that_fails_lets_the_followers_go_upstream() {
    let h = Harness::new();
    let mut up = Upstream::new(|n| match n {
        0 => complete(
            StatusCode::BAD_GATEWAY,
            false,
            &[r#"{"error":{"code":502,"message":"x"}}"#],
        ),
        _ => complete(StatusCode::OK, false, &[JSON_ANSWER]),
    });
    up.delay = Duration::from_secs(1);
    let svc = h.stack(ResponseCacheLayer::new().coalesce(true), up.clone());
    let one = || {
        let mut svc = svc.clone();
        async move {
            send(&mut svc, request(Some("team-a"), BODY, ON))
                .await
                .status
        }
    };
    let all = tokio::join!(one(), one(), one());
    let mut codes = vec![all.0.as_u16(), all.1.as_u16(), all.2.as_u16()];
    codes.sort();
    assert_eq!(codes, [200, 200, 502]);
    assert_eq!(up.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn operator_rules_and_the_request_headers() {
    let h = Harness::new();
    let up = Upstream::json();
    let rule =
        |k: &CallerKey, _model: &str| (k.as_str() == "team-a").then(|| Duration::from_secs(60));
    let mut svc = h.stack(ResponseCacheLayer::new().rule(rule), up.clone());
    // The rule caches team-a without the header, with its TTL.
    let miss = send(&mut svc, request(Some("team-a"), BODY, &[])).await;
    assert_eq!(miss.header("x-openrouter-cache-ttl"), Some("60"));
    let hit = send(&mut svc, request(Some("team-a"), BODY, &[])).await;
    assert_eq!(hit.header("x-openrouter-cache-status"), Some("HIT"));
    // `X-OpenRouter-Cache: false` overrides the rule.
    let off = send(
        &mut svc,
        request(Some("team-a"), BODY, &[("x-openrouter-cache", "false")]),
    )
    .await;
    assert_eq!(off.header("x-openrouter-cache-status"), None);
    // Not selected by the rule and no header: not cached.
    let b = send(&mut svc, request(Some("team-b"), BODY, &[])).await;
    assert_eq!(b.header("x-openrouter-cache-status"), None);
    // `X-OpenRouter-Cache-Clear: true` refreshes the entry.
    let clear = [("x-openrouter-cache-clear", "true")];
    let cleared = send(&mut svc, request(Some("team-a"), BODY, &clear)).await;
    assert_eq!(cleared.header("x-openrouter-cache-status"), Some("MISS"));
    let hit2 = send(&mut svc, request(Some("team-a"), BODY, &[])).await;
    assert_eq!(
        hit2.header("x-openrouter-cache-source-id"),
        Some(cleared.id().as_str())
    );
    assert_eq!(up.calls(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_disabled_cache_passes_everything_through() {
    let h = Harness::new();
    let up = Upstream::json();
    let mut svc = h.stack(ResponseCacheLayer::disabled(), up.clone());
    for _ in 0..2 {
        let got = send(&mut svc, request(Some("team-a"), BODY, ON)).await;
        assert_eq!(got.header("x-openrouter-cache-status"), None);
    }
    assert_eq!(up.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn readiness_is_the_inner_services() {
    let (mut svc, mut handle) =
        tower_test::mock::spawn_layer::<Request<Full<Bytes>>, Response<Full<Bytes>>, _>(
            ResponseCacheLayer::new(),
        );
    handle.allow(0);
    tokio_test_pending(&mut svc);
    handle.allow(1);
    assert!(matches!(svc.poll_ready(), Poll::Ready(Ok(()))));
}

fn tokio_test_pending<T>(svc: &mut tower_test::mock::Spawn<T>)
where
    T: Service<Request<Full<Bytes>>>,
    T::Error: std::fmt::Debug,
{
    assert!(svc.poll_ready().is_pending());
}
