//! UsageMeter: metering of JSON and SSE responses, exact costs over the demo catalog, generation
//! records, cancellation, budgets.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_ai_gateway::catalog::{Catalog, EndpointKey, Pricing, Usd};
use tower_ai_gateway::clock::ManualClock;
use tower_ai_gateway::model_routing::ModelRoutingLayer;
use tower_ai_gateway::route::{Route, ServedBy};
use tower_ai_gateway::sim::{SimProfile, SimulatedProvider};
use tower_ai_gateway::usage_meter::{
    price, CallerKey, GenerationRecord, GenerationStore, InMemoryLedger, KeyLimits, KeyUsage,
    Ledger, LedgerFuture, Period, Refusal, Reservation, TokenUsage, UsageMeterLayer,
};

const DEMO: &[u8] = include_bytes!("fixtures/catalog/demo-catalog.json");
/// 2026-11-22T02:52:00Z, a Sunday.
const NOW: i64 = 1_795_315_920_000;

fn demo() -> Catalog {
    Catalog::from_json(DEMO).unwrap()
}

fn usd(s: &str) -> Usd {
    Usd::parse(s).unwrap()
}

/// A scripted upstream body: frames, then either the end or a body that never yields again.
struct Script {
    frames: VecDeque<Result<Bytes, io::Error>>,
    hang: bool,
    trailers: Option<http::HeaderMap>,
}

impl Body for Script {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        match this.frames.pop_front() {
            Some(r) => Poll::Ready(Some(r.map(Frame::data))),
            None if this.hang => Poll::Pending,
            None => Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t)))),
        }
    }
}

#[derive(Clone)]
struct Upstream {
    frames: Vec<Result<Bytes, String>>,
    hang: bool,
    sse: bool,
    trailers: bool,
    served: (String, String, String),
}

impl Upstream {
    fn json(body: &str, model: &str, tag: &str, provider: &str) -> Self {
        Upstream {
            frames: vec![Ok(Bytes::copy_from_slice(body.as_bytes()))],
            hang: false,
            sse: false,
            trailers: false,
            served: (model.into(), tag.into(), provider.into()),
        }
    }

    fn sse(frames: Vec<Bytes>, model: &str, tag: &str, provider: &str) -> Self {
        Upstream {
            frames: frames.into_iter().map(Ok).collect(),
            hang: false,
            sse: true,
            trailers: false,
            served: (model.into(), tag.into(), provider.into()),
        }
    }

    fn respond(&self) -> Response<Script> {
        let frames = self
            .frames
            .iter()
            .map(|f| f.clone().map_err(io::Error::other))
            .collect();
        let mut res = Response::builder()
            .header(
                "content-type",
                if self.sse {
                    "text/event-stream"
                } else {
                    "application/json"
                },
            )
            .body(Script {
                frames,
                hang: self.hang,
                trailers: self.trailers.then(|| {
                    let mut t = http::HeaderMap::new();
                    t.insert("x-upstream-done", http::HeaderValue::from_static("1"));
                    t
                }),
            })
            .unwrap();
        let (m, t, p) = &self.served;
        res.extensions_mut()
            .insert(ServedBy::new(EndpointKey::new(m, t), p.clone()));
        res
    }
}

type Out = Response<
    tower_ai_gateway::body::GatewayBody<tower_ai_gateway::usage_meter::ResponseBody<Script>>,
>;

fn stack(
    up: Upstream,
    meter: UsageMeterLayer,
) -> impl Service<Request<Full<Bytes>>, Response = Out, Error = Infallible> + Clone {
    ServiceBuilder::new()
        .layer(ModelRoutingLayer::new(demo()))
        .layer(meter)
        .service(tower::service_fn(move |_req: Request<Full<Bytes>>| {
            let up = up.clone();
            async move { Ok::<_, Infallible>(up.respond()) }
        }))
}

fn request(body: Value) -> Request<Full<Bytes>> {
    Request::post("/v1/chat/completions")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn counting_sink() -> (
    Arc<AtomicUsize>,
    impl Fn(&GenerationRecord) + Send + Sync + 'static,
) {
    let n = Arc::new(AtomicUsize::new(0));
    let m = n.clone();
    (n, move |_: &GenerationRecord| {
        m.fetch_add(1, Ordering::SeqCst);
    })
}

// ===== a recorded OpenAI stream =====

const UP_ID: &str = "chatcmpl-Bq7xYz";
const UP_MODEL: &str = "claude-sonnet-4-5-20250929";

fn chunk(delta: Value, finish: Value) -> String {
    json!({"id": UP_ID, "object": "chat.completion.chunk", "created": 1_763_780_000,
           "model": UP_MODEL, "system_fingerprint": null,
           "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
           "usage": null})
    .to_string()
}

fn recorded_stream(crlf: bool) -> Vec<u8> {
    let usage = json!({"id": UP_ID, "object": "chat.completion.chunk", "created": 1_763_780_000,
        "model": UP_MODEL, "choices": [],
        "usage": {"prompt_tokens": 1200, "completion_tokens": 7, "total_tokens": 1207,
                  "prompt_tokens_details": {"cached_tokens": 1000},
                  "completion_tokens_details": {"reasoning_tokens": 0}}})
    .to_string();
    let events = [
        ": keep-alive".to_string(),
        format!(
            "data: {}",
            chunk(json!({"role": "assistant", "content": ""}), Value::Null)
        ),
        format!("data: {}", chunk(json!({"content": "Hello"}), Value::Null)),
        ": OPENROUTER PROCESSING".to_string(),
        format!(
            "data: {}",
            chunk(json!({"content": ", \"world\"!"}), Value::Null)
        ),
        format!(
            "data: {}",
            chunk(json!({"content": " How are you?"}), Value::Null)
        ),
        format!("data: {}", chunk(json!({}), json!("stop"))),
        format!("data: {usage}"),
        "data: [DONE]".to_string(),
    ];
    let nl = if crlf { "\r\n" } else { "\n" };
    let mut s = String::new();
    for e in events {
        s.push_str(&e);
        s.push_str(nl);
        s.push_str(nl);
    }
    s.into_bytes()
}

/// The JSON payloads of the `data:` events of an SSE byte stream.
fn events(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8(bytes.to_vec())
        .unwrap()
        .replace("\r\n", "\n");
    text.split("\n\n")
        .filter_map(|e| {
            let data: Vec<&str> = e
                .lines()
                .filter_map(|l| l.strip_prefix("data:").map(|d| d.trim_start()))
                .collect();
            (!data.is_empty()).then(|| data.join("\n"))
        })
        .collect()
}

async fn run_stream(frames: Vec<Bytes>) -> (Vec<u8>, String, Arc<GenerationRecord>) {
    run_stream_for(frames, "hi").await
}

/// A streamed request saying `prompt`, answered with `frames` by the Anthropic endpoint of the
/// demo catalog: the metered body, the generation id and its record.
async fn run_stream_for(
    frames: Vec<Bytes>,
    prompt: &str,
) -> (Vec<u8>, String, Arc<GenerationRecord>) {
    let store = GenerationStore::new(10);
    let svc = stack(
        Upstream::sse(
            frames,
            "anthropic/claude-sonnet-4.5",
            "anthropic",
            "Anthropic",
        ),
        UsageMeterLayer::new().sink(store.clone()),
    );
    let res = svc
        .oneshot(request(
            json!({"model": "anthropic/claude-sonnet-4.5", "stream": true,
                                "messages": [{"role": "user", "content": prompt}]}),
        ))
        .await
        .unwrap();
    let id = res.headers()["x-generation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = res.into_body().collect().await.unwrap().to_bytes().to_vec();
    assert_eq!(store.len(), 1);
    let rec = store.get(&id).expect("recorded under the header's id");
    (body, id, rec)
}

fn check_stream_output(upstream: &[u8], out: &[u8], id: &str) {
    let up = events(upstream);
    let got = events(out);
    assert_eq!(up.len(), got.len());
    for (u, g) in up.iter().zip(&got) {
        if u == "[DONE]" {
            assert_eq!(g, "[DONE]");
            continue;
        }
        let u: Value = serde_json::from_str(u).unwrap();
        let mut g: Value = serde_json::from_str(g).unwrap();
        assert_eq!(g["id"], id);
        assert_eq!(g["model"], "anthropic/claude-sonnet-4.5");
        assert_eq!(g["provider"], "Anthropic");
        let o = g.as_object_mut().unwrap();
        o.insert("id".into(), json!(UP_ID));
        o.insert("model".into(), json!(UP_MODEL));
        o.remove("provider");
        if let Some(usage) = o.get_mut("usage").and_then(Value::as_object_mut) {
            // 200 × $0.000003 + 1000 × $0.0000003 + 7 × $0.000015 = 0.0006 + 0.0003 + 0.000105
            assert_eq!(usage.remove("cost").unwrap().to_string(), "0.001005");
            assert_eq!(
                usage.remove("cost_details").unwrap(),
                json!({"upstream_inference_cost": null,
                       "upstream_inference_prompt_cost": 0.0009,
                       "upstream_inference_completions_cost": 0.000105})
            );
        }
        assert_eq!(g, u, "only the intended changes");
    }
}

fn check_record(rec: &GenerationRecord) {
    assert_eq!(rec.tokens, TokenUsage::new(1200, 7).cached(1000));
    assert_eq!(rec.cost, usd("0.001005"));
    assert_eq!(rec.finish_reason.as_deref(), Some("stop"));
    assert!(rec.streamed && !rec.cancelled && !rec.usage_missing);
    assert_eq!(rec.upstream_id.as_deref(), Some(UP_ID));
    assert_eq!(&*rec.provider_name, "Anthropic");
    assert_eq!(&*rec.model, "anthropic/claude-sonnet-4.5");
}

#[tokio::test]
async fn sse_every_split_point_yields_the_same_usage() {
    for crlf in [false, true] {
        let src = recorded_stream(crlf);
        for cut in 0..=src.len() {
            let frames = vec![
                Bytes::copy_from_slice(&src[..cut]),
                Bytes::copy_from_slice(&src[cut..]),
            ];
            let (out, id, rec) = run_stream(frames).await;
            check_record(&rec);
            check_stream_output(&src, &out, &id);
            assert!(id.starts_with("gen-"));
        }
        let bytes: Vec<Bytes> = src.iter().map(|b| Bytes::copy_from_slice(&[*b])).collect();
        let (out, id, rec) = run_stream(bytes).await;
        check_record(&rec);
        check_stream_output(&src, &out, &id);
    }
}

#[tokio::test]
async fn sse_one_event_per_frame_is_passed_at_once() {
    // Frames that each hold whole events come out one for one.
    let src = recorded_stream(false);
    let frames: Vec<Bytes> = String::from_utf8(src.clone())
        .unwrap()
        .split_inclusive("\n\n")
        .map(|e| Bytes::from(e.to_owned()))
        .collect();
    let n = frames.len();
    let svc = stack(
        Upstream::sse(
            frames,
            "anthropic/claude-sonnet-4.5",
            "anthropic",
            "Anthropic",
        ),
        UsageMeterLayer::new(),
    );
    let res = svc
        .oneshot(request(
            json!({"model": "anthropic/claude-sonnet-4.5", "stream": true,
                                "messages": [{"role": "user", "content": "hi"}]}),
        ))
        .await
        .unwrap();
    let mut body = res.into_body();
    let mut count = 0;
    while let Some(f) = body.frame().await {
        assert!(!f.unwrap().into_data().unwrap().is_empty());
        count += 1;
    }
    assert_eq!(count, n);
}

// ===== streamed and non-streamed agree =====

async fn sim_run(stream: bool) -> Arc<GenerationRecord> {
    let sim = SimulatedProvider::builder(7)
        .default_profile(SimProfile::instant())
        .build();
    let store = GenerationStore::new(10);
    let svc = ServiceBuilder::new()
        .layer(ModelRoutingLayer::new(demo()))
        .layer(UsageMeterLayer::new().sink(store.clone()))
        .service(tower::service_fn(move |req: Request<Full<Bytes>>| {
            let sim = sim.clone();
            async move {
                let route = req.extensions().get::<Route>().unwrap().clone();
                let c = route.candidates()[0];
                let e = route.endpoint(&c);
                let up = Request::post("http://sim.test/v1/chat/completions")
                    .body(Full::new(route.body().clone()))
                    .unwrap();
                let mut res = sim.oneshot(up).await?;
                res.extensions_mut().insert(ServedBy::new(
                    e.key().clone(),
                    route.provider(&c).name.clone(),
                ));
                Ok::<_, tower_ai_gateway::sim::SimError>(res)
            }
        }));
    let res = svc
        .oneshot(request(
            json!({"model": "qwen/qwen3-coder", "stream": stream,
            "provider": {"order": ["together"], "allow_fallbacks": false},
            "messages": [{"role": "user", "content": "Write a haiku about routers, please."}]}),
        ))
        .await
        .unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    if !stream {
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["provider"], "Together");
        assert_eq!(v["model"], "qwen/qwen3-coder");
        assert!(v["usage"]["cost"].is_number());
    }
    let recs = store.records();
    assert_eq!(recs.len(), 1);
    recs[0].clone()
}

#[tokio::test]
async fn streamed_and_non_streamed_record_identical_tokens_and_cost() {
    let a = sim_run(false).await;
    let b = sim_run(true).await;
    assert!(!a.streamed && b.streamed);
    assert!(!a.usage_missing && !b.usage_missing);
    assert_eq!(a.tokens, b.tokens);
    assert_eq!(a.cost, b.cost);
    assert_eq!(a.finish_reason, b.finish_reason);
    // The provider's own id is recorded for both (the answer's `id` now names the generation).
    for r in [&a, &b] {
        let up = r
            .upstream_id
            .as_deref()
            .expect("the upstream id is recorded");
        assert!(!up.is_empty() && up != &*r.id, "{up}");
    }
    // Together's Qwen3 Coder: $2/M both ways, discount 0.1.
    let expect = usd("0.000002")
        .times(a.tokens.prompt + a.tokens.completion)
        .scale(rust_decimal::Decimal::new(9, 1))
        .normalize();
    assert_eq!(a.cost, expect);
}

// ===== cancellation, errors, missing usage =====

fn claude_stream_frames() -> Vec<Bytes> {
    let src = String::from_utf8(recorded_stream(false)).unwrap();
    src.split_inclusive("\n\n")
        .map(|e| Bytes::from(e.to_owned()))
        .collect()
}

#[tokio::test]
async fn cancellation_mid_stream_finishes_once_with_an_estimate() {
    let (count, sink) = counting_sink();
    let store = GenerationStore::new(10);
    let mut up = Upstream::sse(
        claude_stream_frames()[..4].to_vec(),
        "anthropic/claude-sonnet-4.5",
        "anthropic",
        "Anthropic",
    );
    up.hang = true;
    let svc = stack(up, UsageMeterLayer::new().sink(sink).sink(store.clone()));
    let res = svc
        .oneshot(request(
            json!({"model": "anthropic/claude-sonnet-4.5", "stream": true,
                                "messages": [{"role": "user", "content": "hi"}]}),
        ))
        .await
        .unwrap();
    let mut body = res.into_body();
    for _ in 0..3 {
        body.frame().await.unwrap().unwrap();
    }
    assert_eq!(
        count.load(Ordering::SeqCst),
        0,
        "not finished while streaming"
    );
    drop(body);
    assert_eq!(count.load(Ordering::SeqCst), 1);
    let r = &store.records()[0];
    assert!(r.cancelled && r.usage_missing && r.streamed);
    // Prompt estimate from the route, completion = ceil(5 content bytes / 4) = 2.
    assert_eq!(r.tokens.completion, 2);
    assert!(r.tokens.prompt > 0);
    assert!(!r.cost.is_zero(), "missing usage is never free");
}

#[tokio::test]
async fn cancellation_before_the_body_finishes_once() {
    let (count, sink) = counting_sink();
    let mut up = Upstream::sse(
        vec![],
        "anthropic/claude-sonnet-4.5",
        "anthropic",
        "Anthropic",
    );
    up.hang = true;
    let svc = stack(up, UsageMeterLayer::new().sink(sink));
    let res = svc
        .oneshot(request(
            json!({"model": "anthropic/claude-sonnet-4.5", "stream": true,
                                "messages": [{"role": "user", "content": "hi"}]}),
        ))
        .await
        .unwrap();
    drop(res);
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn error_mid_stream_finishes_once() {
    let (count, sink) = counting_sink();
    let store = GenerationStore::new(10);
    let mut frames: Vec<Result<Bytes, String>> = claude_stream_frames()[..4]
        .iter()
        .cloned()
        .map(Ok)
        .collect();
    frames.push(Err("connection reset".into()));
    let up = Upstream {
        frames,
        hang: false,
        sse: true,
        trailers: false,
        served: (
            "anthropic/claude-sonnet-4.5".into(),
            "anthropic".into(),
            "Anthropic".into(),
        ),
    };
    let svc = stack(up, UsageMeterLayer::new().sink(sink).sink(store.clone()));
    let res = svc
        .oneshot(request(
            json!({"model": "anthropic/claude-sonnet-4.5", "stream": true,
                                "messages": [{"role": "user", "content": "hi"}]}),
        ))
        .await
        .unwrap();
    let mut body = res.into_body();
    let mut saw_error = false;
    while let Some(f) = body.frame().await {
        if f.is_err() {
            saw_error = true;
        }
    }
    assert!(saw_error);
    assert_eq!(count.load(Ordering::SeqCst), 1);
    drop(body);
    assert_eq!(
        count.load(Ordering::SeqCst),
        1,
        "drop after the error does not finish again"
    );
    let r = &store.records()[0];
    assert!(r.error && r.usage_missing && !r.cancelled);
    assert!(!r.cost.is_zero());
}

#[tokio::test]
async fn error_event_mid_stream_is_insured() {
    let mut frames = claude_stream_frames()[..3].to_vec();
    frames.push(Bytes::from(format!(
        "data: {}\n\n",
        json!({"id": UP_ID, "object": "chat.completion.chunk", "model": UP_MODEL,
               "error": {"code": 502, "message": "upstream failed"},
               "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]})
    )));
    let (_, _, r) = run_stream(frames).await;
    assert!(r.error && r.insured);
    assert_eq!(r.finish_reason.as_deref(), Some("error"));
    assert!(
        r.cost.is_zero(),
        "finish_reason error: no token charge, no request fee here"
    );
}

#[tokio::test]
async fn missing_usage_is_recorded_as_an_estimate() {
    // The stream ends without its usage chunk and [DONE].
    let frames = claude_stream_frames()[..7].to_vec();
    let (_, _, r) = run_stream_for(frames, "hello there").await;
    assert!(r.usage_missing && !r.cancelled);
    // "Hello" + ", \"world\"!" (as written: 13 bytes) + " How are you?" = 5 + 13 + 13 = 31 → 8.
    assert_eq!(r.tokens.completion, 8);
    // The route's prompt estimate (`RequestView::prompt_estimate`): 4 tokens here.
    assert_eq!(r.tokens.prompt, 4);
    // 4 × 0.000003 + 8 × 0.000015 = 0.000012 + 0.00012
    assert_eq!(r.cost, usd("0.000132"));
}

// ===== exact costs over the demo catalog =====

async fn json_cost(
    model: &str,
    tag: &str,
    provider: &str,
    usage: Value,
    extra: Value,
) -> (Value, Arc<GenerationRecord>, http::HeaderMap) {
    let store = GenerationStore::new(10);
    let body = json!({"id": "resp_123", "object": "chat.completion", "created": 1_763_780_000,
        "model": "upstream-model-name", "system_fingerprint": null,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Done."},
                     "finish_reason": "stop"}],
        "usage": usage})
    .to_string();
    let clock = ManualClock::new(NOW);
    let svc = stack(
        Upstream::json(&body, model, tag, provider),
        UsageMeterLayer::new().clock(clock).sink(store.clone()),
    );
    let mut req = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    if let (Some(r), Some(e)) = (req.as_object_mut(), extra.as_object()) {
        r.extend(e.clone());
    }
    let res = svc.oneshot(request(req)).await.unwrap();
    assert!(res.headers().get("content-length").is_none());
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    let rec = store.records()[0].clone();
    assert_eq!(v["id"], &*rec.id);
    assert_eq!(headers["x-generation-id"], &*rec.id);
    assert_eq!(v["model"], model);
    assert_eq!(v["provider"], provider);
    assert_eq!(v["choices"][0]["message"]["content"], "Done.");
    (v, rec, headers)
}

#[tokio::test]
async fn exact_cost_claude_cache_read_and_write() {
    let (v, rec, _) = json_cost(
        "anthropic/claude-sonnet-4.5",
        "anthropic",
        "Anthropic",
        json!({"prompt_tokens": 10000, "completion_tokens": 500, "total_tokens": 10500,
               "prompt_tokens_details": {"cached_tokens": 6000, "cache_write_tokens": 2000}}),
        json!({}),
    )
    .await;
    // uncached 2000 × $0.000003 = 0.006; read 6000 × $0.0000003 = 0.0018;
    // write 2000 × $0.00000375 = 0.0075 → prompt 0.0153; completion 500 × $0.000015 = 0.0075.
    assert_eq!(rec.cost, usd("0.0228"));
    assert_eq!(rec.prompt_cost, usd("0.0153"));
    assert_eq!(rec.completion_cost, usd("0.0075"));
    assert_eq!(v["usage"]["cost"].to_string(), "0.0228");
    assert_eq!(
        v["usage"]["cost_details"]["upstream_inference_prompt_cost"].to_string(),
        "0.0153"
    );
    assert!(v["usage"]["cost_details"]["upstream_inference_cost"].is_null());
    assert_eq!(v["usage"]["prompt_tokens"], 10000, "upstream members kept");
}

#[tokio::test]
async fn exact_cost_gemini_reasoning() {
    let (_, rec, _) = json_cost(
        "google/gemini-2.5-flash",
        "google-vertex",
        "Google Vertex",
        json!({"prompt_tokens": 1000, "completion_tokens": 3000, "total_tokens": 4000,
               "completion_tokens_details": {"reasoning_tokens": 2000}}),
        json!({}),
    )
    .await;
    // prompt 1000 × $0.0000003 = 0.0003; completion (3000 − 2000) × $0.0000025 = 0.0025
    // + reasoning 2000 × internal_reasoning $0.0000025 = 0.005 → 0.0075; total 0.0078.
    assert_eq!(rec.tokens.reasoning, 2000);
    assert_eq!(rec.cost, usd("0.0078"));

    // Where internal_reasoning differs from completion, reasoning tokens (inside completion_tokens)
    // are billed at it: 60 × $0.000002 + 40 × $0.000004 = 0.00012 + 0.00016.
    let p: Pricing = serde_json::from_str(
        r#"{"prompt":"0.000001","completion":"0.000002","internal_reasoning":"0.000004"}"#,
    )
    .unwrap();
    let c = price(&p, &TokenUsage::new(0, 100).reasoning(40), NOW, 0, false);
    assert_eq!(c.total, usd("0.00028"));
}

#[tokio::test]
async fn exact_cost_claude_long_context_override() {
    let (_, rec, _) = json_cost(
        "anthropic/claude-sonnet-4.5",
        "anthropic",
        "Anthropic",
        json!({"prompt_tokens": 250000, "completion_tokens": 1000, "total_tokens": 251000,
               "prompt_tokens_details": {"cached_tokens": 50000}}),
        json!({}),
    )
    .await;
    // > 200k prompt tokens (reported, not estimated): uncached 200000 × $0.000006 = 1.2;
    // read 50000 × $0.0000006 = 0.03; completion 1000 × $0.0000225 = 0.0225 → 1.2525.
    assert_eq!(rec.cost, usd("1.2525"));

    // At exactly 200k the base prices apply: 200000 × $0.000003 + 1000 × $0.000015 = 0.6 + 0.015.
    let (_, rec, _) = json_cost(
        "anthropic/claude-sonnet-4.5",
        "anthropic",
        "Anthropic",
        json!({"prompt_tokens": 200000, "completion_tokens": 1000}),
        json!({}),
    )
    .await;
    assert_eq!(rec.cost, usd("0.615"));
}

#[tokio::test]
async fn exact_cost_qwen_together_discount() {
    let (v, rec, _) = json_cost(
        "qwen/qwen3-coder",
        "together",
        "Together",
        json!({"prompt_tokens": 10000, "completion_tokens": 5000, "total_tokens": 15000}),
        json!({}),
    )
    .await;
    // (10000 × $0.000002 + 5000 × $0.000002) × (1 − 0.1) = 0.03 × 0.9 = 0.027
    assert_eq!(rec.cost, usd("0.027"));
    assert_eq!(rec.prompt_cost, usd("0.018"));
    assert_eq!(rec.completion_cost, usd("0.009"));
    assert_eq!(v["usage"]["cost"].to_string(), "0.027");
}

#[tokio::test]
async fn exact_cost_priority_tier_endpoint() {
    // The request did not ask for the priority tier, but the priority endpoint served it: its
    // prices apply.
    let (_, rec, _) = json_cost(
        "openai/gpt-4o-mini",
        "openai/priority",
        "OpenAI",
        json!({"prompt_tokens": 4000, "completion_tokens": 1000, "total_tokens": 5000,
               "prompt_tokens_details": {"cached_tokens": 2000}}),
        json!({}),
    )
    .await;
    // uncached 2000 × $0.00000025 = 0.0005; cached 2000 × $0.000000125 = 0.00025;
    // completion 1000 × $0.000001 = 0.001 → 0.00175.
    assert_eq!(rec.cost, usd("0.00175"));
    assert_eq!(
        rec.endpoint,
        Some(EndpointKey::new("openai/gpt-4o-mini", "openai/priority"))
    );
}

#[tokio::test]
async fn zero_completion_without_finish_reason_is_free() {
    let store = GenerationStore::new(10);
    let body = json!({"id": "x", "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": ""},
                     "finish_reason": null}],
        "usage": {"prompt_tokens": 5000, "completion_tokens": 0}})
    .to_string();
    let svc = stack(
        Upstream::json(
            &body,
            "anthropic/claude-sonnet-4.5",
            "anthropic",
            "Anthropic",
        ),
        UsageMeterLayer::new().sink(store.clone()),
    );
    let res = svc
        .oneshot(request(json!({"model": "anthropic/claude-sonnet-4.5",
                                "messages": [{"role": "user", "content": "hi"}]})))
        .await
        .unwrap();
    let v: Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(v["usage"]["cost"], 0);
    let r = &store.records()[0];
    assert!(r.insured && r.cost.is_zero() && !r.usage_missing);
}

#[tokio::test]
async fn odd_upstream_bodies_never_panic() {
    for body in [
        "not json at all",
        "{\"usage\":{\"prompt_tokens\":-3,\"completion_tokens\":1e999}}",
        "{\"id\":5,\"model\":null,\"usage\":\"lots\",\"choices\":7}",
        "{\"usage\":{\"prompt_tokens\":18446744073709551616000,\"completion_tokens\":\"9\"}}",
        "[1,2,3]",
        "",
    ] {
        let store = GenerationStore::new(10);
        let svc = stack(
            Upstream::json(
                body,
                "anthropic/claude-sonnet-4.5",
                "anthropic",
                "Anthropic",
            ),
            UsageMeterLayer::new().sink(store.clone()),
        );
        let res = svc
            .oneshot(request(json!({"model": "anthropic/claude-sonnet-4.5",
                                    "messages": [{"role": "user", "content": "hi"}]})))
            .await
            .unwrap();
        let _ = res.into_body().collect().await.unwrap();
        assert_eq!(store.len(), 1, "{body}");
    }
    // Odd SSE too.
    let frames = vec![Bytes::from_static(
        b"data: {\"usage\":{\"prompt_tokens\":-1}}\n\ndata: {broken\n\nevent: x\n\n\n\n:c\n\ndata: [DONE]",
    )];
    let svc = stack(
        Upstream::sse(
            frames,
            "anthropic/claude-sonnet-4.5",
            "anthropic",
            "Anthropic",
        ),
        UsageMeterLayer::new(),
    );
    let res = svc
        .oneshot(request(
            json!({"model": "anthropic/claude-sonnet-4.5", "stream": true,
                                "messages": [{"role": "user", "content": "hi"}]}),
        ))
        .await
        .unwrap();
    let _ = res.into_body().collect().await.unwrap();
}

#[tokio::test]
async fn anthropic_wire_usage_events_are_read() {
    let frames = vec![
        Bytes::from_static(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"usage\":{\"input_tokens\":100,\"cache_read_input_tokens\":1000,\"cache_creation_input_tokens\":200,\"output_tokens\":1}}}\n\n"),
        Bytes::from_static(b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n"),
        Bytes::from_static(b"event: ping\ndata: {\"type\": \"ping\"}\n\n"),
        Bytes::from_static(b"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":40}}\n\n"),
        Bytes::from_static(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"),
    ];
    let (_, _, r) = run_stream(frames).await;
    assert!(!r.usage_missing);
    assert_eq!(
        r.tokens,
        TokenUsage::new(1300, 40).cached(1000).cache_write(200)
    );
    assert_eq!(r.finish_reason.as_deref(), Some("end_turn"));
    // 100 × 0.000003 + 1000 × 0.0000003 + 200 × 0.00000375 + 40 × 0.000015
    // = 0.0003 + 0.0003 + 0.00075 + 0.0006 = 0.00195
    assert_eq!(r.cost, usd("0.00195"));
}

// ===== generation records =====

#[tokio::test]
async fn generation_record_serialises_in_openrouter_shape() {
    let (_, rec, _) = json_cost(
        "qwen/qwen3-coder",
        "together",
        "Together",
        json!({"prompt_tokens": 10, "completion_tokens": 5}),
        json!({}),
    )
    .await;
    let v = rec.to_openrouter_json();
    assert_eq!(v["id"], &*rec.id);
    assert_eq!(v["created_at"], "2026-11-22T02:52:00.000Z");
    assert_eq!(v["provider_name"], "Together");
    assert_eq!(v["tokens_prompt"], 10);
    assert_eq!(v["native_tokens_completion"], 5);
    assert_eq!(v["streamed"], false);
    assert_eq!(v["cancelled"], false);
    assert_eq!(v["finish_reason"], "stop");
    // (10 + 5) × 0.000002 × 0.9 = 0.000027
    assert_eq!(v["total_cost"].to_string(), "0.000027");
    let secs = NOW / 1000;
    assert!(rec.id.starts_with(&format!("gen-{secs}-")));
}

#[tokio::test]
async fn channel_sink_receives_records() {
    let (sink, mut rx) = tower_ai_gateway::usage_meter::ChannelSink::channel(4);
    let body = json!({"id": "x", "model": "m", "choices": [],
                      "usage": {"prompt_tokens": 1, "completion_tokens": 1}})
    .to_string();
    let svc = stack(
        Upstream::json(&body, "qwen/qwen3-coder", "together", "Together"),
        UsageMeterLayer::new()
            .sink(sink)
            .sink(tower_ai_gateway::usage_meter::TracingSink),
    );
    let res = svc
        .oneshot(request(json!({"model": "qwen/qwen3-coder",
                                "messages": [{"role": "user", "content": "hi"}]})))
        .await
        .unwrap();
    res.into_body().collect().await.unwrap();
    let r = rx.recv().await.unwrap();
    assert_eq!(r.tokens.prompt, 1);
}

// ===== budgets =====

/// M in "…You requested up to `requested` tokens, but can only afford M." (panics on other wording).
fn afford(msg: &str, requested: u64) -> u64 {
    let prefix = format!(
        "This request requires more credits, or fewer max_tokens. You requested up to {requested} \
         tokens, but can only afford "
    );
    let tail = msg.strip_prefix(&prefix).unwrap_or_else(|| panic!("{msg}"));
    tail.strip_suffix('.')
        .unwrap_or_else(|| panic!("{msg}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn over_limit_is_402_payment_required() {
    let clock = ManualClock::new(NOW);
    let ledger = InMemoryLedger::new(clock.clone())
        .limit("k", Period::Day, usd("0.01"))
        .limits("capped", KeyLimits::new().per_request(usd("0.001")));
    let body = json!({"id": "x", "model": "m", "choices": [],
                      "usage": {"prompt_tokens": 1, "completion_tokens": 1}})
    .to_string();
    let (count, sink) = counting_sink();
    let svc = stack(
        Upstream::json(
            &body,
            "anthropic/claude-sonnet-4.5",
            "anthropic",
            "Anthropic",
        ),
        UsageMeterLayer::new()
            .clock(clock)
            .ledger(ledger.clone())
            .sink(sink),
    );
    // Worst case: 64000 output tokens × $0.0000165 (the dearest candidate) ≈ $1.06 > $0.01.
    let mut req = request(json!({"model": "anthropic/claude-sonnet-4.5",
                                 "messages": [{"role": "user", "content": "hi"}]}));
    req.extensions_mut().insert(CallerKey::new("k"));
    let res = svc.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), 402);
    let v: Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(v["error"]["code"], 402);
    assert_eq!(v["error"]["metadata"]["error_type"], "payment_required");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with(
            "This request requires more credits, or fewer max_tokens. You requested up to"
        ),
        "{msg}"
    );
    // OpenRouter's wording exactly, and nothing after it (the limit's figures are in metadata).
    // The prompt's bound: 19 message bytes + 16 per message + 128 per request = 163 tokens at
    // $3/M; the rest of $0.01 at $15/M is 634 output tokens.
    assert_eq!(
        afford(msg, 64000),
        634,
        "$0.01 at $15/M output, less the prompt: {msg}"
    );
    assert_eq!(v["error"]["metadata"]["limit_reset"], "daily");
    assert_eq!(count.load(Ordering::SeqCst), 0);

    // With a small max_tokens it fits.
    let mut req = request(
        json!({"model": "anthropic/claude-sonnet-4.5", "max_tokens": 100,
                                 "messages": [{"role": "user", "content": "hi"}]}),
    );
    req.extensions_mut().insert(CallerKey::new("k"));
    let res = svc.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), 200);
    res.into_body().collect().await.unwrap();
    let u = ledger.usage_now(&CallerKey::new("k"));
    // 1 × 0.000003 + 1 × 0.000015
    assert_eq!(u.usage_daily, usd("0.000018"));
    assert_eq!(u.reserved, Usd::ZERO);
    assert_eq!(u.limit, Some(usd("0.01")));
    assert_eq!(u.limit_remaining, Some(usd("0.009982")));
    assert_eq!(u.limit_reset, Some("daily"));

    // Per-request cap: a reservation over it is refused too.
    let mut req = request(
        json!({"model": "anthropic/claude-sonnet-4.5", "max_tokens": 100,
                                 "messages": [{"role": "user", "content": "hi"}]}),
    );
    req.extensions_mut().insert(CallerKey::new("capped"));
    let res = svc.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), 402);
    let v: Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    let msg = v["error"]["message"].as_str().unwrap();
    // The 163-token prompt bound at the dearest $3.30/M leaves $0.000462: 28 tokens at $16.50/M.
    assert_eq!(
        afford(msg, 100),
        28,
        "$0.001 at the dearest output price, less the prompt: {msg}"
    );
    assert_eq!(v["error"]["metadata"]["limit_reset"], "per_request");

    // No key: no budget.
    let req = request(json!({"model": "anthropic/claude-sonnet-4.5",
                             "messages": [{"role": "user", "content": "hi"}]}));
    assert_eq!(svc.oneshot(req).await.unwrap().status(), 200);
}

#[tokio::test]
async fn error_responses_release_the_reservation() {
    let clock = ManualClock::new(NOW);
    let ledger = InMemoryLedger::new(clock.clone()).limit("k", Period::Day, usd("1"));
    let (count, sink) = counting_sink();
    let svc = ServiceBuilder::new()
        .layer(ModelRoutingLayer::new(demo()))
        .layer(
            UsageMeterLayer::new()
                .clock(clock)
                .ledger(ledger.clone())
                .sink(sink),
        )
        .service(tower::service_fn(|_req: Request<Full<Bytes>>| async {
            let mut res = Response::new(Full::new(Bytes::from_static(b"{\"error\":{}}")));
            *res.status_mut() = http::StatusCode::BAD_GATEWAY;
            Ok::<_, Infallible>(res)
        }));
    let mut req = request(
        json!({"model": "anthropic/claude-sonnet-4.5", "max_tokens": 10,
                                 "messages": [{"role": "user", "content": "hi"}]}),
    );
    req.extensions_mut().insert(CallerKey::new("k"));
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), 502);
    // The error carries its generation id (issue 17 item 11), though nothing is recorded.
    assert!(res.headers()["x-generation-id"]
        .to_str()
        .unwrap()
        .starts_with("gen-"));
    res.into_body().collect().await.unwrap();
    let u = ledger.usage_now(&CallerKey::new("k"));
    assert_eq!((u.usage, u.reserved), (Usd::ZERO, Usd::ZERO));
    assert_eq!(count.load(Ordering::SeqCst), 0);
}

/// What a run of concurrent budgeted requests left behind.
struct BudgetRun {
    ok: usize,
    refused: usize,
    /// The key's settled spend.
    spent: Usd,
}

/// 1,000 concurrent requests with `body` on key `k` limited to `limit` a day, through a provider
/// that reports `prompt` prompt tokens and `completion(n)` completion tokens for the `n`th call.
/// Checks what must hold whatever the estimate: one record per admitted request, settled spend =
/// metered costs, nothing left reserved.
async fn run_budgeted(
    limit: Usd,
    body: Value,
    prompt: u64,
    completion: fn(usize) -> u64,
) -> BudgetRun {
    let clock = ManualClock::new(NOW);
    let ledger = InMemoryLedger::new(clock.clone()).limit("k", Period::Day, limit);
    let store = GenerationStore::new(2000);
    let served = Arc::new(AtomicUsize::new(0));
    let s2 = served.clone();
    let svc = ServiceBuilder::new()
        .layer(ModelRoutingLayer::new(demo()))
        .layer(
            UsageMeterLayer::new()
                .clock(clock)
                .ledger(ledger.clone())
                .sink(store.clone()),
        )
        .service(tower::service_fn(move |req: Request<Full<Bytes>>| {
            let n = s2.fetch_add(1, Ordering::SeqCst);
            async move {
                for _ in 0..(n % 7) {
                    tokio::task::yield_now().await;
                }
                let route = req.extensions().get::<Route>().unwrap().clone();
                let c = route.candidates()[0];
                let body = json!({"id": "x", "model": "m",
                    "choices": [{"index": 0, "message": {"content": "ok"}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": prompt, "completion_tokens": completion(n)}})
                .to_string();
                let mut res = Response::new(Full::new(Bytes::from(body)));
                res.extensions_mut().insert(ServedBy::new(
                    route.endpoint(&c).key().clone(),
                    route.provider(&c).name.clone(),
                ));
                Ok::<_, Infallible>(res)
            }
        }));
    let statuses = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let svc = svc.clone();
        let statuses = statuses.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let mut req = request(body);
            req.extensions_mut().insert(CallerKey::new("k"));
            let res = svc.oneshot(req).await.unwrap();
            let status = res.status().as_u16();
            res.into_body().collect().await.unwrap();
            statuses.lock().unwrap().push(status);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let statuses = statuses.lock().unwrap();
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 402).count();
    assert_eq!(ok + refused, 1000);
    let u = ledger.usage_now(&CallerKey::new("k"));
    let recorded = store
        .records()
        .iter()
        .fold(Usd::ZERO, |acc, r| acc.add(r.cost));
    assert_eq!(store.len(), ok, "one record per admitted request");
    assert_eq!(u.usage, recorded, "settled spend = metered costs");
    assert_eq!(u.reserved, Usd::ZERO, "every reservation settled");
    assert!(ok > 0 && refused > 0, "ok {ok}, refused {refused}");
    BudgetRun {
        ok,
        refused,
        spent: u.usage,
    }
}

const SONNET: &str = "anthropic/claude-sonnet-4.5";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_never_overshoot_the_limit() {
    let limit = usd("0.02");
    let body = json!({"model": SONNET, "max_tokens": 100,
        "messages": [{"role": "user", "content": "hello"}]});
    // Completion between 20 and 99 tokens: under the 100 reserved.
    let run = run_budgeted(limit, body, 3, |n| 20 + n as u64 % 80).await;
    // The reservation is an upper bound (the prompt's bytes), so no request costs more than it
    // reserved and the limit holds exactly.
    assert!(run.spent <= limit, "{} > {}", run.spent, limit);
    eprintln!(
        "admitted {}, refused {}, settled {}",
        run.ok, run.refused, run.spent
    );
}

/// Issue 17 item C: assistant tool-call arguments count toward the reservation. 1,000 concurrent
/// requests carrying 40 KB of arguments, whose provider reports their tokens honestly (one per
/// four bytes), never spend past a $0.50 limit (9.85× before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_tool_call_arguments_count_toward_the_reservation() {
    let limit = usd("0.50");
    let args = "x".repeat(40_000);
    let body = json!({"model": SONNET, "max_tokens": 20, "messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
            "function": {"name": "write", "arguments": args}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "done"}]});
    let run = run_budgeted(limit, body, 10_000, |_| 20).await;
    assert!(run.spent <= limit, "{} > {}", run.spent, limit);
}

/// Issue 17 item 12: a provider that reports far more prompt tokens than the text holds (a
/// hidden preamble: 100 tokens for a two-letter prompt) stays within the reservation's bound, so
/// 1,000 requests on a $0.01 key never overshoot it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item12_an_over_reporting_provider_cannot_overshoot_the_limit() {
    let limit = usd("0.01");
    let body = json!({"model": SONNET, "max_tokens": 20,
        "messages": [{"role": "user", "content": "hi"}]});
    let run = run_budgeted(limit, body, 100, |_| 20).await;
    assert!(run.spent <= limit, "{} > {}", run.spent, limit);
}

// ===== statistics =====

#[tokio::test(start_paused = true)]
async fn streamed_generations_feed_stats_with_ttft_and_throughput() {
    use std::time::Duration;
    use tower_ai_gateway::health::{HealthSource, Percentile};
    use tower_ai_gateway::sim::{SimLatency, SimOutputLength};
    use tower_ai_gateway::Stats;

    let sim = SimulatedProvider::builder(3)
        .default_profile(
            SimProfile::instant()
                .with_ttft(SimLatency::fixed(Duration::from_millis(200)))
                .with_throughput(100.0)
                .with_output_tokens(SimOutputLength::fixed(51)),
        )
        .build();
    let stats = Stats::default();
    let store = GenerationStore::new(10);
    let svc = ServiceBuilder::new()
        .layer(ModelRoutingLayer::new(demo()))
        .layer(
            UsageMeterLayer::new()
                .stats(stats.clone())
                .sink(store.clone()),
        )
        .service(tower::service_fn(move |req: Request<Full<Bytes>>| {
            let sim = sim.clone();
            async move {
                let route = req.extensions().get::<Route>().unwrap().clone();
                let up = Request::post("http://sim.test/v1/chat/completions")
                    .body(Full::new(route.body().clone()))
                    .unwrap();
                let mut res = sim.oneshot(up).await?;
                res.extensions_mut().insert(ServedBy::new(
                    EndpointKey::new("qwen/qwen3-coder", "fireworks"),
                    "Fireworks",
                ));
                Ok::<_, tower_ai_gateway::sim::SimError>(res)
            }
        }));
    for _ in 0..5 {
        let res = svc
            .clone()
            .oneshot(request(json!({"model": "qwen/qwen3-coder", "stream": true,
                "messages": [{"role": "user", "content": "go"}]})))
            .await
            .unwrap();
        res.into_body().collect().await.unwrap();
    }
    let key = EndpointKey::new("qwen/qwen3-coder", "fireworks");
    let now = tokio::time::Instant::now();
    let ttft = stats
        .latency_ms(&key, Percentile::P50, now)
        .expect("5 samples");
    assert!((ttft - 200.0).abs() < 200.0 * 0.03, "ttft {ttft}");
    // 51 tokens, the first at 200 ms and one every 10 ms after: 50 intervals over 500 ms.
    let tps = stats
        .throughput(&key, Percentile::P50, now)
        .expect("5 samples");
    assert!((tps - 102.0).abs() < 102.0 * 0.05, "throughput {tps}");
    let r = &store.records()[4];
    assert_eq!(r.ttft, Some(Duration::from_millis(200)));
    assert!(r.throughput.is_some());
}

#[tokio::test]
async fn a_dropped_request_holds_no_reservation() {
    let clock = ManualClock::new(NOW);
    let ledger = InMemoryLedger::new(clock.clone()).limit("k", Period::Day, usd("1"));
    let body = json!({"id": "x", "model": "m", "choices": [],
                      "usage": {"prompt_tokens": 1, "completion_tokens": 1}})
    .to_string();
    let mut svc = stack(
        Upstream::json(
            &body,
            "anthropic/claude-sonnet-4.5",
            "anthropic",
            "Anthropic",
        ),
        UsageMeterLayer::new().clock(clock).ledger(ledger.clone()),
    );
    let key = CallerKey::new("k");
    // Dropped before it is polled.
    let mut req = request(
        json!({"model": "anthropic/claude-sonnet-4.5", "max_tokens": 10,
                                 "messages": [{"role": "user", "content": "hi"}]}),
    );
    req.extensions_mut().insert(key.clone());
    svc.ready().await.unwrap();
    drop(svc.call(req));
    assert_eq!(ledger.usage_now(&key).reserved, Usd::ZERO);
    // Dropped with its response head in hand but the body unread: cancelled, settled with the
    // estimate rather than left outstanding.
    let mut req = request(
        json!({"model": "anthropic/claude-sonnet-4.5", "max_tokens": 10,
                                 "messages": [{"role": "user", "content": "hi"}]}),
    );
    req.extensions_mut().insert(key.clone());
    let res = svc.ready().await.unwrap().call(req).await.unwrap();
    assert!(ledger.usage_now(&key).reserved > Usd::ZERO);
    drop(res);
    let u = ledger.usage_now(&key);
    assert_eq!(u.reserved, Usd::ZERO);
    assert!(u.usage > Usd::ZERO);
}

#[tokio::test]
async fn trailers_finish_once_and_pass_through() {
    let (count, sink) = counting_sink();
    let store = GenerationStore::new(10);
    // The last event lacks its blank line: it is emitted before the trailers.
    let mut frames = claude_stream_frames();
    let last = frames.pop().unwrap();
    frames.push(last.slice(..last.len() - 2));
    let mut up = Upstream::sse(
        frames,
        "anthropic/claude-sonnet-4.5",
        "anthropic",
        "Anthropic",
    );
    up.trailers = true;
    let svc = stack(up, UsageMeterLayer::new().sink(sink).sink(store.clone()));
    let res = svc
        .oneshot(request(
            json!({"model": "anthropic/claude-sonnet-4.5", "stream": true,
                                "messages": [{"role": "user", "content": "hi"}]}),
        ))
        .await
        .unwrap();
    let collected = res.into_body().collect().await.unwrap();
    assert_eq!(collected.trailers().unwrap()["x-upstream-done"], "1");
    let bytes = collected.to_bytes();
    assert!(bytes.ends_with(b"data: [DONE]"));
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert_eq!(store.records()[0].cost, usd("0.001005"));
}

// ===== with the real ProviderFallback =====

#[tokio::test(start_paused = true)]
async fn behind_provider_fallback_prices_the_serving_endpoint() {
    use tower_ai_gateway::catalog::{Credentials, Endpoint, Model, Provider};
    use tower_ai_gateway::fallback::ProviderFallbackLayer;
    use tower_ai_gateway::sim::SimOutcome;

    let mut b = Catalog::builder().model(Model::new("acme/chat", "Acme Chat"));
    for (slug, prompt, completion) in [("alpha", 1, 2), ("beta", 3, 4)] {
        b = b.provider(
            Provider::new(slug, slug.to_uppercase())
                .base_url(format!("http://{slug}.sim/v1/"))
                .credentials(Credentials::key(format!("sk-{slug}"))),
        );
        let mut e = Endpoint::new("acme/chat", slug);
        e.provider_model_id = Some(format!("{slug}-native"));
        e.pricing.prompt = Usd::from_micros(prompt);
        e.pricing.completion = Usd::from_micros(completion);
        b = b.endpoint(e);
    }
    let catalog = b.build().unwrap();
    for stream in [false, true] {
        let sim = SimulatedProvider::builder(11)
            .host(
                "http://alpha.sim/v1",
                SimProfile::instant().with_script([SimOutcome::Status(500)]),
            )
            .host("http://beta.sim/v1", SimProfile::instant())
            .build();
        let store = GenerationStore::new(10);
        let svc = ServiceBuilder::new()
            .layer(ModelRoutingLayer::new(catalog.clone()).seed(1))
            .layer(UsageMeterLayer::new().sink(store.clone()))
            .layer(ProviderFallbackLayer::new().no_budget())
            .service(sim);
        let res = svc
            .oneshot(request(
                json!({"model": "acme/chat", "stream": stream, "max_tokens": 6,
                "provider": {"order": ["alpha", "beta"]},
                "messages": [{"role": "user", "content": "hello there"}]}),
            ))
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let id = res.headers()["x-generation-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let last_json = if stream {
            events(&bytes)
                .into_iter()
                .rfind(|e| e.contains("\"usage\":{"))
                .unwrap()
        } else {
            String::from_utf8(bytes.to_vec()).unwrap()
        };
        let v: Value = serde_json::from_str(&last_json).unwrap();
        assert_eq!(v["id"], id.as_str());
        assert_eq!(v["provider"], "BETA");
        assert_eq!(v["model"], "acme/chat");
        let r = store.get(&id).expect("recorded");
        assert_eq!(r.attempts, 2, "alpha failed, beta served");
        assert_eq!(&*r.provider_name, "BETA");
        assert!(!r.usage_missing);
        // Beta's prices: $3/M prompt, $4/M completion.
        let expect = Usd::from_micros(3)
            .times(r.tokens.prompt)
            .add(Usd::from_micros(4).times(r.tokens.completion))
            .normalize();
        assert_eq!(r.cost, expect);
        assert_eq!(v["usage"]["cost"].to_string(), expect.to_string());
    }
}

// ===== ordinary chunks with adversarial content =====

/// A content string that may look like the members the meter looks for, with quotes, escapes
/// and a trailing backslash.
fn tricky_content() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let piece = prop_oneof![
        Just("usage"),
        Just("finish_reason"),
        Just("\""),
        Just("\\"),
        Just(":{"),
        Just("\",\"usage\":{"),
        Just(" token"),
        Just("é"),
        Just("\n"),
        Just(""),
    ];
    proptest::collection::vec(piece, 0..5).prop_map(|p| p.concat())
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// However the content of ordinary chunks looks, every event comes out with only the intended
    /// changes, and the usage estimate (no usage chunk) counts exactly the content bytes as
    /// written.
    #[test]
    fn ordinary_chunks_with_any_content(
        contents in proptest::collection::vec((tricky_content(), proptest::option::of(tricky_content())), 1..8),
    ) {
        // Members in OpenAI's order (`json!` would sort them): `id` and `model` come first.
        let chunk = |delta: Value, finish: Value| {
            format!(
                "data: {{\"id\":\"{UP_ID}\",\"object\":\"chat.completion.chunk\",\"created\":1,\
                 \"model\":\"{UP_MODEL}\",\"choices\":[{{\"index\":0,\"delta\":{delta},\
                 \"finish_reason\":{finish}}}]}}\n\n"
            )
        };
        let mut src = chunk(json!({"role": "assistant", "content": ""}), Value::Null);
        let mut written = 0usize;
        for (c, extra) in &contents {
            // Some chunks have another delta member after the content (keys are sorted): the
            // same bytes before the content and after the last string, but not an ordinary chunk.
            let delta = match extra {
                Some(x) => json!({"content": c, "zz": x}),
                None => json!({"content": c}),
            };
            src.push_str(&chunk(delta, Value::Null));
            written += serde_json::to_string(c).unwrap().len() - 2;
        }
        src.push_str(&chunk(json!({}), json!("stop")));
        src.push_str("data: [DONE]\n\n");
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let (out, id, rec) = rt.block_on(run_stream(vec![Bytes::from(src.clone())]));
        let up = events(src.as_bytes());
        let got = events(&out);
        proptest::prop_assert_eq!(up.len(), got.len());
        for (u, g) in up.iter().zip(&got) {
            if u == "[DONE]" {
                proptest::prop_assert_eq!(g, "[DONE]");
                continue;
            }
            let u: Value = serde_json::from_str(u).unwrap();
            let mut g: Value = serde_json::from_str(g).unwrap();
            proptest::prop_assert_eq!(&g["id"], &json!(id));
            let o = g.as_object_mut().unwrap();
            o.insert("id".into(), json!(UP_ID));
            o.insert("model".into(), json!(UP_MODEL));
            o.remove("provider");
            proptest::prop_assert_eq!(&g, &u);
        }
        proptest::prop_assert!(rec.usage_missing);
        proptest::prop_assert_eq!(rec.tokens.completion, (written as u64).div_ceil(4));
        proptest::prop_assert_eq!(rec.finish_reason.as_deref(), Some("stop"));
    }
}

/// An in-memory ledger without [`Ledger::reserve_ready`]: the meter takes the async path
/// (a boxed reservation future, awaited before the inner service is called).
#[derive(Clone)]
struct AsyncOnly(InMemoryLedger);

impl Ledger for AsyncOnly {
    fn reserve(
        &self,
        key: &CallerKey,
        amount: Usd,
        unix_millis: i64,
    ) -> LedgerFuture<Result<Reservation, Refusal>> {
        self.0.reserve(key, amount, unix_millis)
    }

    fn settle(&self, reservation: Reservation, actual: Usd) {
        self.0.settle(reservation, actual);
    }

    fn release(&self, reservation: Reservation) {
        self.0.release(reservation);
    }

    fn usage(&self, key: &CallerKey, unix_millis: i64) -> LedgerFuture<KeyUsage> {
        self.0.usage(key, unix_millis)
    }
}

/// Keys with a daily limit, a weekly one, a per-request cap, and none of their own (the
/// default limits).
fn differential_ledger() -> InMemoryLedger {
    InMemoryLedger::new(ManualClock::new(NOW))
        .limit("day", Period::Day, usd("0.004"))
        .limit("week", Period::Week, usd("0.006"))
        .limits("capped", KeyLimits::new().per_request(usd("0.0012")))
        .default_limits(KeyLimits::new().limit(Period::Total, usd("0.005")))
}

/// One request of a differential run: what becomes of it.
#[derive(Clone, Copy, Debug)]
enum Fate {
    /// Answered 200 and read to its end.
    Read,
    /// Answered 502 by the upstream.
    Failed,
    /// The response future dropped before it is polled.
    DroppedUnpolled,
    /// The response dropped with its body unread.
    DroppedUnread,
}

/// Sends the request `(key, max_tokens, completion tokens, fate)` through a meter over
/// `ledger`: its status and body (when it was read), with the generation id taken out.
async fn differential_step(
    ledger: Arc<dyn Ledger>,
    (key, max_tokens, completion, fate): (&str, u64, u64, Fate),
) -> Option<(u16, Value)> {
    let mut svc = ServiceBuilder::new()
        // Seeded: both runs route each request to the same endpoint.
        .layer(ModelRoutingLayer::new(demo()).seed(1))
        .layer(
            UsageMeterLayer::new()
                .clock(ManualClock::new(NOW))
                .shared_ledger(ledger),
        )
        .service(tower::service_fn(
            move |req: Request<Full<Bytes>>| async move {
                let route = req.extensions().get::<Route>().unwrap().clone();
                let c = route.candidates()[0];
                let body = json!({"id": "x", "model": "m",
                "choices": [{"index": 0, "message": {"content": "ok"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 7, "completion_tokens": completion}})
                .to_string();
                let mut res = Response::new(Full::new(Bytes::from(body)));
                if matches!(fate, Fate::Failed) {
                    *res.status_mut() = http::StatusCode::BAD_GATEWAY;
                }
                res.extensions_mut().insert(ServedBy::new(
                    route.endpoint(&c).key().clone(),
                    route.provider(&c).name.clone(),
                ));
                Ok::<_, Infallible>(res)
            },
        ));
    let mut req = request(json!({"model": SONNET, "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": "hello"}]}));
    req.extensions_mut().insert(CallerKey::new(key));
    let fut = ServiceExt::<Request<Full<Bytes>>>::ready(&mut svc)
        .await
        .unwrap()
        .call(req);
    match fate {
        Fate::DroppedUnpolled => None,
        Fate::DroppedUnread => {
            let status = fut.await.unwrap().status().as_u16();
            Some((status, Value::Null))
        }
        Fate::Read | Fate::Failed => {
            let res = fut.await.unwrap();
            let status = res.status().as_u16();
            let bytes = res.into_body().collect().await.unwrap().to_bytes();
            let mut v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            if let Some(o) = v.as_object_mut() {
                o.remove("id");
            }
            Some((status, v))
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// The meter's synchronous reservation (`reserve_ready`) and its async one (`reserve`,
    /// awaited) give the same answers — refusals and their figures included — and leave the
    /// same spend and reservations behind, whatever becomes of each request.
    #[test]
    fn sync_and_async_reservations_agree(
        steps in proptest::collection::vec(
            (0..4usize, 1..120u64, 0..130u64, 0..4usize), 1..24),
    ) {
        let keys = ["day", "week", "capped", "other"];
        let fates = [Fate::Read, Fate::Failed, Fate::DroppedUnpolled, Fate::DroppedUnread];
        let sync = differential_ledger();
        let async_only = AsyncOnly(differential_ledger());
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        for (k, max, completion, fate) in steps {
            let step = (keys[k], max, completion, fates[fate]);
            let a = rt.block_on(differential_step(Arc::new(sync.clone()), step));
            let b = rt.block_on(differential_step(Arc::new(async_only.clone()), step));
            proptest::prop_assert_eq!(&a, &b, "{:?}", step);
            for key in keys {
                let key = CallerKey::new(key);
                proptest::prop_assert_eq!(sync.usage_now(&key), async_only.0.usage_now(&key));
            }
        }
    }
}
