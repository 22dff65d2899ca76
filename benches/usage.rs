//! UsageMeter's cost: a 1,000-chunk SSE stream through the metering body against a bare
//! pass-through of the same frames, and the layer over a bare service for a 1 KB non-streamed
//! request.
//!
//! `cargo bench --bench usage -- --warm-up-time 1 --measurement-time 3`

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use http::{Request, Response};
use http_body::{Body, Frame};
use http_body_util::Full;
use serde_json::json;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_ai_gateway::catalog::{Catalog, EndpointKey};
use tower_ai_gateway::model_routing::ModelRoutingLayer;
use tower_ai_gateway::route::{Route, ServedBy};
use tower_ai_gateway::usage_meter::UsageMeterLayer;

const DEMO: &[u8] = include_bytes!("../tests/fixtures/catalog/demo-catalog.json");

/// Every future here completes without waiting: poll it once.
fn now<F: Future>(f: F) -> F::Output {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("pending"),
    }
}

/// The upstream body: the recorded frames, one per poll.
struct Frames(VecDeque<Bytes>);

impl Body for Frames {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.get_mut().0.pop_front().map(|b| Ok(Frame::data(b))))
    }
}

/// Reads a body to its end the way a server would, counting bytes.
fn drain<B: Body<Data = Bytes>>(body: B) -> usize {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let mut body = std::pin::pin!(body);
    let mut n = 0;
    while let Poll::Ready(Some(Ok(f))) = body.as_mut().poll_frame(&mut cx) {
        if let Ok(d) = f.into_data() {
            n += black_box(d).len();
        }
    }
    n
}

fn stream_frames(chunks: usize) -> Vec<Bytes> {
    let id = "chatcmpl-Bq7xYzAbCdEfGhIjKlMnOp";
    let model = "qwen3-coder-480b-a35b-instruct";
    let chunk = |delta: serde_json::Value, finish: serde_json::Value| {
        let c = json!({"id": id, "object": "chat.completion.chunk", "created": 1_763_780_000,
            "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        Bytes::from(format!("data: {c}\n\n"))
    };
    let mut v = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        json!(null),
    )];
    for i in 0..chunks {
        v.push(chunk(json!({"content": format!(" token{i}")}), json!(null)));
    }
    v.push(chunk(json!({}), json!("stop")));
    let usage = json!({"id": id, "object": "chat.completion.chunk", "created": 1_763_780_000,
        "model": model, "choices": [],
        "usage": {"prompt_tokens": 120, "completion_tokens": chunks, "total_tokens": 120 + chunks}});
    v.push(Bytes::from(format!("data: {usage}\n\n")));
    v.push(Bytes::from_static(b"data: [DONE]\n\n"));
    v
}

/// A `Route` for qwen/qwen3-coder, made by ModelRouting once.
fn route() -> Route {
    let catalog = Catalog::from_json(DEMO).unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(ModelRoutingLayer::new(catalog))
        .service_fn(|req: Request<Full<Bytes>>| async move {
            let r = req.extensions().get::<Route>().unwrap().clone();
            let mut res = Response::new(Full::new(Bytes::new()));
            res.extensions_mut().insert(r);
            Ok::<_, Infallible>(res)
        });
    let body = json!({"model": "qwen/qwen3-coder", "stream": true,
        "messages": [{"role": "user", "content": "Write a long story."}]});
    let req = Request::post("/v1/chat/completions")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let ready = ServiceExt::<Request<Full<Bytes>>>::ready(&mut svc);
    let res = now(ready.now_or_panic().unwrap().call(req)).unwrap();
    res.extensions().get::<Route>().unwrap().clone()
}

trait NowOrPanic: Future + Sized {
    fn now_or_panic(self) -> Self::Output {
        now(self)
    }
}
impl<F: Future> NowOrPanic for F {}

fn request(route: &Route) -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::new(Bytes::new()));
    req.extensions_mut().insert(route.clone());
    req
}

fn served(res: &mut http::response::Parts) {
    res.extensions.insert(ServedBy::new(
        EndpointKey::new("qwen/qwen3-coder", "together"),
        "Together",
    ));
}

fn bench_stream(c: &mut Criterion) {
    let frames = stream_frames(1000);
    let route = route();
    let mut g = c.benchmark_group("usage_sse_1000_chunks");
    g.bench_function("bare_passthrough", |b| {
        b.iter(|| {
            let body = Frames(frames.iter().cloned().collect());
            black_box(drain(body))
        })
    });
    let upstream = {
        let frames = frames.clone();
        tower::service_fn(move |_req: Request<Full<Bytes>>| {
            let body = Frames(frames.iter().cloned().collect());
            let (mut parts, body) = Response::builder()
                .header("content-type", "text/event-stream")
                .body(body)
                .unwrap()
                .into_parts();
            served(&mut parts);
            std::future::ready(Ok::<_, Infallible>(Response::from_parts(parts, body)))
        })
    };
    let mut metered = ServiceBuilder::new()
        .layer(UsageMeterLayer::new())
        .service(upstream.clone());
    g.bench_function("metered", |b| {
        b.iter(|| {
            let res = now(metered.call(request(&route))).unwrap();
            black_box(drain(res.into_body()))
        })
    });
    let mut observe_only = ServiceBuilder::new()
        .layer(UsageMeterLayer::new().rewrite(false))
        .service(upstream);
    g.bench_function("metered_observe_only", |b| {
        b.iter(|| {
            let res = now(observe_only.call(request(&route))).unwrap();
            black_box(drain(res.into_body()))
        })
    });
    g.finish();
}

fn bench_json(c: &mut Criterion) {
    let route = route();
    let filler = "The printing press changed the world by making books cheap. ".repeat(13);
    let body = Bytes::from(
        json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1_763_780_000,
            "model": "qwen3-coder", "system_fingerprint": null,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": filler},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 120, "completion_tokens": 180, "total_tokens": 300}})
        .to_string(),
    );
    assert!(body.len() >= 1000 && body.len() < 1200, "{}", body.len());
    let upstream = tower::service_fn(move |_req: Request<Full<Bytes>>| {
        let (mut parts, body) = Response::new(Full::new(body.clone())).into_parts();
        served(&mut parts);
        std::future::ready(Ok::<_, Infallible>(Response::from_parts(parts, body)))
    });
    let mut g = c.benchmark_group("usage_json_1kb");
    let mut bare = upstream.clone();
    g.bench_function("bare_service", |b| {
        b.iter(|| {
            let res = now(bare.call(request(&route))).unwrap();
            black_box(drain(res.into_body()))
        })
    });
    let mut metered = ServiceBuilder::new()
        .layer(UsageMeterLayer::new())
        .service(upstream);
    g.bench_function("metered", |b| {
        b.iter(|| {
            let res = now(metered.call(request(&route))).unwrap();
            black_box(drain(res.into_body()))
        })
    });
    g.finish();
}

criterion_group!(benches, bench_stream, bench_json);
criterion_main!(benches);
