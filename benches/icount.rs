//! Fixed-iteration runs of the scenarios of the other benches, for counting instructions with
//! callgrind (stable on a loaded machine, unlike wall-clock times).
//!
//! ```text
//! cargo bench --no-run --bench icount
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out target/release/deps/icount-<hash> <scenario> <n>
//! ```
//!
//! Instructions per request = (Ir at n) − (Ir at 0), divided by n: the setup cancels out. Run with no
//! arguments to list the scenarios.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame};
use http_body_util::Full;
use serde_json::json;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_ai_gateway::catalog::{
    Catalog, Credentials, Endpoint, EndpointKey, Model, Provider, Usd,
};
use tower_ai_gateway::data_policy::DataPolicyLayer;
use tower_ai_gateway::fallback::ProviderFallbackLayer;
use tower_ai_gateway::model_routing::ModelRoutingLayer;
use tower_ai_gateway::price_cap::PriceCapLayer;
use tower_ai_gateway::route::{RequestView, Route, ServedBy};
use tower_ai_gateway::usage_meter::{GenerationStore, UsageMeterLayer};
use tower_ai_gateway::GatewayLayer;

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

fn drain<B: Body<Data = Bytes>>(body: B) -> usize
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

/// The stream of benches/usage.rs: 1,000 content chunks, a finish chunk, a usage chunk, `[DONE]`.
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

/// A `Route` for qwen/qwen3-coder on the demo catalog, made by ModelRouting once.
fn demo_route() -> Route {
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

fn routed_request(route: &Route) -> Request<Full<Bytes>> {
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

/// Runs `f` `n` times.
fn repeat(n: usize, mut f: impl FnMut() -> usize) {
    let mut total = 0;
    for _ in 0..n {
        total += f();
    }
    black_box(total);
}

fn usage_sse(which: &str, n: usize) {
    let frames = stream_frames(1000);
    let route = demo_route();
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
        .layer(UsageMeterLayer::new().rewrite(which == "metered"))
        .service(upstream);
    match which {
        "bare" => repeat(n, || drain(Frames(frames.iter().cloned().collect()))),
        _ => repeat(n, || {
            drain(
                now(metered.call(routed_request(&route)))
                    .unwrap()
                    .into_body(),
            )
        }),
    }
}

fn usage_json(which: &str, n: usize) {
    let route = demo_route();
    let filler = "The printing press changed the world by making books cheap. ".repeat(13);
    let body = Bytes::from(
        json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1_763_780_000,
            "model": "qwen3-coder", "system_fingerprint": null,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": filler},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 120, "completion_tokens": 180, "total_tokens": 300}})
        .to_string(),
    );
    let upstream = tower::service_fn(move |_req: Request<Full<Bytes>>| {
        let (mut parts, body) = Response::new(Full::new(body.clone())).into_parts();
        served(&mut parts);
        std::future::ready(Ok::<_, Infallible>(Response::from_parts(parts, body)))
    });
    let mut bare = upstream.clone();
    let mut metered = ServiceBuilder::new()
        .layer(UsageMeterLayer::new())
        .service(upstream);
    match which {
        "bare" => repeat(n, || {
            drain(now(bare.call(routed_request(&route))).unwrap().into_body())
        }),
        _ => repeat(n, || {
            drain(
                now(metered.call(routed_request(&route)))
                    .unwrap()
                    .into_body(),
            )
        }),
    }
}

/// The body of benches/routing.rs.
fn routing_body() -> Bytes {
    let filler =
        "Tell me about the history of the printing press in a few sentences please. ".repeat(9);
    let body = json!({
        "model": "meta-llama/llama-3.3-70b-instruct",
        "messages": [
            {"role": "system", "content": "You are a concise assistant."},
            {"role": "user", "content": filler},
        ],
        "max_tokens": 256,
        "temperature": 0.7,
        "provider": {"data_collection": "deny", "max_price": {"prompt": 2, "completion": 4}},
    });
    Bytes::from(serde_json::to_vec(&body).unwrap())
}

async fn empty_answer(_: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(b"{}"))))
}

fn routing(which: &str, n: usize) {
    let body = routing_body();
    match which {
        "bare" => {
            let mut svc = tower::service_fn(empty_answer);
            repeat(n, || {
                let req = Request::post("/").body(Full::new(body.clone())).unwrap();
                now(svc.call(req)).unwrap().status().as_u16() as usize
            })
        }
        "parse" => repeat(n, || {
            RequestView::parse(black_box(&body)).unwrap().message_count
        }),
        _ => {
            let mut svc = ServiceBuilder::new()
                .layer(ModelRoutingLayer::new(Catalog::from_json(DEMO).unwrap()).seed(1))
                .layer(DataPolicyLayer::new())
                .layer(PriceCapLayer::new())
                .service_fn(empty_answer);
            repeat(n, || {
                let req = Request::post("/").body(Full::new(body.clone())).unwrap();
                let res = now(Service::<Request<Full<Bytes>>>::call(&mut svc, req)).unwrap();
                assert_eq!(res.status(), 200);
                res.status().as_u16() as usize
            })
        }
    }
}

// The scenario of benches/stack.rs.

const ANSWER: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":0,"model":"acme-chat","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there, how can I help?"},"finish_reason":"stop"}],"usage":{"prompt_tokens":250,"completion_tokens":8,"total_tokens":258}}"#;

fn stack_catalog() -> Catalog {
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

fn stack_body() -> Bytes {
    let filler = "lorem ipsum dolor sit amet ".repeat(34);
    Bytes::from(format!(
        r#"{{"model":"acme/chat","messages":[{{"role":"system","content":"You are terse."}},{{"role":"user","content":"{filler}"}}],"temperature":0.2,"max_tokens":8,"provider":{{"sort":"price"}}}}"#
    ))
}

async fn fixed(_: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(
        ANSWER.as_bytes(),
    ))))
}

async fn once<S, B>(svc: &mut S, body: &Bytes) -> usize
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
    drain(res.into_body())
}

fn stack(which: &str, n: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let body = stack_body();
    macro_rules! run {
        ($svc:expr) => {{
            let mut svc = $svc;
            repeat(n, || rt.block_on(once(&mut svc, &body)))
        }};
    }
    match which {
        "bare" => run!(tower::service_fn(fixed)),
        "routing" => run!(ServiceBuilder::new()
            .layer(ModelRoutingLayer::new(stack_catalog()).seed(1))
            .service_fn(fixed)),
        "routing+fallback" => run!(ServiceBuilder::new()
            .layer(ModelRoutingLayer::new(stack_catalog()).seed(1))
            .layer(ProviderFallbackLayer::new())
            .service_fn(fixed)),
        "all6" => run!(ServiceBuilder::new()
            .layer(
                GatewayLayer::new(stack_catalog())
                    .routing(|r| r.seed(1))
                    .usage_meter(|u| u.sink(GenerationStore::new(1024))),
            )
            .service_fn(fixed)),
        _ => usage(),
    }
}

const SCENARIOS: &str = "usage_sse/{bare,metered,observe} usage_json/{bare,metered} \
                         routing/{bare,parse,demo} stack/{bare,routing,routing+fallback,all6}";

fn usage() {
    eprintln!("usage: icount <scenario> <n>; scenarios: {SCENARIOS}");
    std::process::exit(2);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` runs every bench target with `--bench`: nothing to do here then.
    if args.iter().any(|a| a == "--bench") || args.is_empty() {
        if args.is_empty() {
            eprintln!("scenarios: {SCENARIOS}");
        }
        return;
    }
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1);
    let (group, which) = args[0].split_once('/').unwrap_or((&args[0], ""));
    match group {
        "usage_sse" => usage_sse(which, n),
        "usage_json" => usage_json(which, n),
        "routing" => routing(which, n),
        "stack" => stack(which, n),
        _ => usage(),
    }
}
