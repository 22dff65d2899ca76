//! Scenarios shared by the benches (`mod common;` in each): the bodies, catalogs, routes and
//! upstreams they measure, so that `icount` counts instructions on exactly what the criterion
//! benches time.

// Each bench uses a part of this module.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use serde_json::json;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_ai_gateway::catalog::{
    Catalog, Credentials, Endpoint, EndpointKey, Model, Provider, Usd,
};
use tower_ai_gateway::model_routing::ModelRoutingLayer;
use tower_ai_gateway::route::{Route, ServedBy};

#[path = "../../examples/shared/mock_stream.rs"]
mod mock_stream;

pub const DEMO: &[u8] = include_bytes!("../../tests/fixtures/catalog/demo-catalog.json");

/// Every future here completes without waiting: poll it once.
pub fn now<F: Future>(f: F) -> F::Output {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("pending"),
    }
}

/// An upstream body: the given frames, one per poll.
pub struct Frames(pub VecDeque<Bytes>);

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

/// Reads a body that never waits to its end the way a server would, counting bytes.
pub fn drain<B: Body<Data = Bytes>>(body: B) -> usize
where
    B::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let mut body = std::pin::pin!(body);
    let mut n = 0;
    while let Poll::Ready(Some(f)) = body.as_mut().poll_frame(&mut cx) {
        if let Ok(d) = f.expect("frame").into_data() {
            n += black_box(d).len();
        }
    }
    n
}

// ===== UsageMeter: a stream and a 1 KB answer, served by the demo's qwen3-coder on Together =====

/// A recorded-shape stream: a role chunk, `chunks` content chunks, a finish chunk, a usage chunk,
/// `[DONE]`.
pub fn stream_frames(chunks: usize) -> Vec<Bytes> {
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

/// A non-streamed answer of about 1 KB with usage.
pub fn json_answer_1kb() -> Bytes {
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
    body
}

/// A `Route` for qwen/qwen3-coder on the demo catalog, made by ModelRouting once.
pub fn demo_route() -> Route {
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
    let res = now(svc.call(req)).unwrap();
    res.extensions().get::<Route>().unwrap().clone()
}

/// An empty request carrying `route`, as UsageMeter sees it behind the routing layers.
pub fn routed_request(route: &Route) -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::new(Bytes::new()));
    req.extensions_mut().insert(route.clone());
    req
}

/// Marks a response as served by Together, as ProviderFallback would.
pub fn served(res: &mut http::response::Parts) {
    res.extensions.insert(ServedBy::new(
        EndpointKey::new("qwen/qwen3-coder", "together"),
        "Together",
    ));
}

/// An upstream answering `frames` as an event stream, served by Together.
pub fn sse_upstream(
    frames: Vec<Bytes>,
) -> impl Service<Request<Full<Bytes>>, Response = Response<Frames>, Error = Infallible> + Clone {
    tower::service_fn(move |_req: Request<Full<Bytes>>| {
        let body = Frames(frames.iter().cloned().collect());
        let (mut parts, body) = Response::builder()
            .header("content-type", "text/event-stream")
            .body(body)
            .unwrap()
            .into_parts();
        served(&mut parts);
        std::future::ready(Ok(Response::from_parts(parts, body)))
    })
}

/// An upstream answering `body` as JSON, served by Together.
pub fn json_upstream(
    body: Bytes,
) -> impl Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>, Error = Infallible> + Clone
{
    tower::service_fn(move |_req: Request<Full<Bytes>>| {
        let (mut parts, body) = Response::new(Full::new(body.clone())).into_parts();
        served(&mut parts);
        std::future::ready(Ok(Response::from_parts(parts, body)))
    })
}

// ===== routing: a 1 KB request with a data policy and a price cap =====

/// A 1 KB chat request for `model` with `data_collection: deny` and `max_price`.
pub fn routing_body(model: &str) -> Bytes {
    let filler =
        "Tell me about the history of the printing press in a few sentences please. ".repeat(9);
    let body = json!({
        "model": model,
        "messages": [
            {"role": "system", "content": "You are a concise assistant."},
            {"role": "user", "content": filler},
        ],
        "max_tokens": 256,
        "temperature": 0.7,
        "provider": {"data_collection": "deny", "max_price": {"prompt": 2, "completion": 4}},
    });
    let b = serde_json::to_vec(&body).unwrap();
    assert!((900..1200).contains(&b.len()), "{}", b.len());
    Bytes::from(b)
}

/// An inner service answering `{}` at once.
pub async fn empty_answer(_: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(b"{}"))))
}

// ===== the stack: three providers of acme/chat, a 1 KB request, a fixed answer =====

pub const ANSWER: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":0,"model":"acme-chat","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there, how can I help?"},"finish_reason":"stop"}],"usage":{"prompt_tokens":250,"completion_tokens":8,"total_tokens":258}}"#;

pub fn stack_catalog() -> Catalog {
    let mut b = Catalog::builder().model(Model::new("acme/chat", "Acme Chat"));
    for (i, slug) in ["alpha", "beta", "gamma"].iter().enumerate() {
        b = b.provider(
            Provider::new(*slug, slug.to_uppercase())
                .base_url(format!("http://{slug}.sim/v1"))
                .credentials(Credentials::key(format!("sk-{slug}"))),
        );
        let mut e = Endpoint::new("acme/chat", *slug);
        e.pricing.prompt = Usd::from_micros(1 + i as i64);
        e.pricing.completion = Usd::from_micros(2 + i as i64);
        b = b.endpoint(e);
    }
    b.build().expect("catalog")
}

pub fn stack_body() -> Bytes {
    let filler = "lorem ipsum dolor sit amet ".repeat(34);
    let body = format!(
        r#"{{"model":"acme/chat","messages":[{{"role":"system","content":"You are terse."}},{{"role":"user","content":"{filler}"}}],"temperature":0.2,"max_tokens":8,"provider":{{"sort":"price"}}}}"#
    );
    assert!((1000..1100).contains(&body.len()), "{}", body.len());
    Bytes::from(body)
}

/// The stack's inner service: [`ANSWER`] at once.
pub async fn fixed(_: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(
        ANSWER.as_bytes(),
    ))))
}

/// The headers a provider's answer usually carries besides its content type (OpenAI's kind: an
/// organization, timings, rate limits, request ids, a cookie, Cloudflare's), none of which the
/// gateway passes on.
pub const PROVIDER_HEADERS: [(&str, &str); 13] = [
    ("date", "Sun, 06 Dec 2026 12:00:00 GMT"),
    ("openai-organization", "org-acme"),
    ("openai-processing-ms", "412"),
    ("openai-version", "2020-10-01"),
    ("x-ratelimit-limit-requests", "10000"),
    ("x-ratelimit-limit-tokens", "2000000"),
    ("x-ratelimit-remaining-requests", "9999"),
    ("x-ratelimit-remaining-tokens", "1999980"),
    ("x-request-id", "req_8f2c1e0b9a7d4c3e"),
    (
        "strict-transport-security",
        "max-age=31536000; includeSubDomains",
    ),
    ("set-cookie", "__cf_bm=abc; path=/; HttpOnly; Secure"),
    ("server", "cloudflare"),
    ("cf-ray", "8f00aa11bb22cc33-IAD"),
];

/// [`fixed`], with a content type and a provider's usual headers ([`PROVIDER_HEADERS`]).
pub async fn fixed_with_headers(
    req: Request<Full<Bytes>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut res = fixed(req).await?;
    let headers = res.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    for (name, value) in PROVIDER_HEADERS {
        headers.append(
            http::HeaderName::from_static(name),
            http::HeaderValue::from_static(value),
        );
    }
    Ok(res)
}

/// One request through `svc`, its body read to the end.
pub async fn once<S, B>(svc: &mut S, body: &Bytes) -> usize
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let req = Request::post("http://alpha.sim/v1/chat/completions")
        .header("authorization", "Bearer caller")
        .body(Full::new(body.clone()))
        .expect("request");
    let res = svc
        .ready()
        .await
        .expect("ready")
        .call(req)
        .await
        .expect("response");
    res.into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .len()
}

// ===== the stack, streamed: the same request with `"stream":true`, a 22-frame answer =====

/// [`stack_body`] asking for a stream.
pub fn stack_stream_body() -> Bytes {
    let body = stack_body();
    let mut v = body[..body.len() - 1].to_vec();
    v.extend_from_slice(br#","stream":true}"#);
    Bytes::from(v)
}

/// The 22 frames of one stream as `examples/mock_upstream.rs` sends them (one event per frame):
/// 20 content chunks, a finish chunk carrying usage, `[DONE]`; the example's own code.
pub fn mock_stream_frames() -> VecDeque<Bytes> {
    mock_stream::stream_frames(mock_stream::CHUNKS)
}

/// The streamed stack's inner service: `frames` as an event stream, at once. The frames are
/// shared by the service's clones (ProviderFallback clones its inner service for each request:
/// the clone must not copy the list, which the bare service never does).
pub fn fixed_stream(
    frames: VecDeque<Bytes>,
) -> impl Service<Request<Full<Bytes>>, Response = Response<Frames>, Error = Infallible> + Clone {
    let frames = std::sync::Arc::new(frames);
    tower::service_fn(move |_req: Request<Full<Bytes>>| {
        let res = Response::builder()
            .header("content-type", "text/event-stream")
            .body(Frames(VecDeque::clone(&frames)))
            .unwrap();
        std::future::ready(Ok(res))
    })
}
