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

mod common;

use std::hint::black_box;

use bytes::Bytes;
use common::{
    demo_route, drain, empty_answer, fixed, fixed_stream, fixed_with_headers, json_answer_1kb,
    json_upstream, mock_stream_frames, now, once, routed_request, routing_body, sse_upstream,
    stack_body, stack_catalog, stack_stream_body, stream_frames, Frames, DEMO,
};
use http::Request;
use http_body_util::Full;
use tower::{Service, ServiceBuilder};
use tower_ai_gateway::catalog::Catalog;
use tower_ai_gateway::data_policy::DataPolicyLayer;
use tower_ai_gateway::model_routing::ModelRoutingLayer;
use tower_ai_gateway::price_cap::PriceCapLayer;
use tower_ai_gateway::route::RequestView;
use tower_ai_gateway::usage_meter::{GenerationStore, UsageMeterLayer};
use tower_ai_gateway::{fallback::ProviderFallbackLayer, GatewayLayer};

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
    let upstream = sse_upstream(frames.clone());
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
    let upstream = json_upstream(json_answer_1kb());
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

fn routing(which: &str, n: usize) {
    let body = routing_body("meta-llama/llama-3.3-70b-instruct");
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
    let stream_body = stack_stream_body();
    match which {
        "bare" => run!(tower::service_fn(fixed)),
        // A streamed request, answered with the example mock upstream's 22 frames, drained.
        "bare+stream" => {
            let mut svc = fixed_stream(mock_stream_frames());
            repeat(n, || rt.block_on(once(&mut svc, &stream_body)))
        }
        "all6+stream" => {
            let mut svc = ServiceBuilder::new()
                .layer(
                    GatewayLayer::new(stack_catalog())
                        .routing(|r| r.seed(1))
                        .usage_meter(|u| u.sink(GenerationStore::new(1024))),
                )
                .service(fixed_stream(mock_stream_frames()));
            repeat(n, || rt.block_on(once(&mut svc, &stream_body)))
        }
        // The upstream answers with a provider's usual headers, which the gateway drops.
        "bare+headers" => run!(tower::service_fn(fixed_with_headers)),
        "all6+headers" => run!(ServiceBuilder::new()
            .layer(
                GatewayLayer::new(stack_catalog())
                    .routing(|r| r.seed(1))
                    .usage_meter(|u| u.sink(GenerationStore::new(1024))),
            )
            .service_fn(fixed_with_headers)),
        // Every request billed to one key of an in-memory ledger, under a limit never reached.
        "all6+ledger" => {
            use tower_ai_gateway::catalog::Usd;
            use tower_ai_gateway::clock::ManualClock;
            use tower_ai_gateway::usage_meter::{CallerKey, InMemoryLedger, KeyLimits, Period};
            let ledger = InMemoryLedger::new(ManualClock::new(1_795_315_920_000))
                .default_limits(KeyLimits::new().limit(Period::Day, Usd::from_int(1_000_000_000)));
            run!(ServiceBuilder::new()
                .map_request(|mut req: Request<Full<Bytes>>| {
                    req.extensions_mut().insert(CallerKey::new("caller"));
                    req
                })
                .layer(
                    GatewayLayer::new(stack_catalog())
                        .routing(|r| r.seed(1))
                        .usage_meter(|u| u.sink(GenerationStore::new(1024)).ledger(ledger)),
                )
                .service_fn(fixed))
        }
        "routing" => run!(ServiceBuilder::new()
            .layer(ModelRoutingLayer::new(stack_catalog()).seed(1))
            .service_fn(fixed)),
        "routing+fallback" => run!(ServiceBuilder::new()
            .layer(ModelRoutingLayer::new(stack_catalog()).seed(1))
            .layer(ProviderFallbackLayer::new())
            .service_fn(fixed)),
        "all6" | "all6+subscriber" => {
            // With a subscriber interested in the GenAI spans (the registry, which stores every
            // span, filtered to their target): what tracing costs when someone listens.
            let _guard = (which == "all6+subscriber").then(|| {
                use tracing_subscriber::layer::SubscriberExt;
                let targets = tracing_subscriber::filter::Targets::new()
                    .with_target(tower_ai_gateway::telemetry::TARGET, tracing::Level::INFO);
                tracing::subscriber::set_default(tracing_subscriber::registry().with(targets))
            });
            run!(ServiceBuilder::new()
                .layer(
                    GatewayLayer::new(stack_catalog())
                        .routing(|r| r.seed(1))
                        .usage_meter(|u| u.sink(GenerationStore::new(1024))),
                )
                .service_fn(fixed))
        }
        _ => usage(),
    }
}

/// RateLimit over an empty answer, one key: `bare` (no layer), `off` (no limits), `allowed` (a
/// per-minute limit never reached) and `refused` (every request over the limit: the 429).
fn rate_limit(which: &str, n: usize) {
    use tower::Layer;
    use tower_ai_gateway::clock::ManualClock;
    use tower_ai_gateway::rate_limit::{Limits, RateLimitLayer};
    use tower_ai_gateway::usage_meter::CallerKey;
    let route = demo_route();
    let request = || {
        let mut req = routed_request(&route);
        req.extensions_mut().insert(CallerKey::new("bench"));
        req
    };
    let layer = RateLimitLayer::new().clock(ManualClock::new(1_795_315_920_000));
    let limited = |rpm| {
        layer
            .clone()
            .default_limits(Limits::new().requests_per_minute(rpm))
    };
    let inner = tower::service_fn(empty_answer);
    let mut svc = match which {
        "bare" => {
            let mut svc = inner;
            return repeat(n, || {
                now(svc.call(request())).unwrap().status().as_u16() as usize
            });
        }
        "off" => layer.layer(inner),
        "allowed" => limited(u64::MAX).layer(inner),
        "refused" => {
            let mut svc = limited(1).layer(inner);
            now(svc.call(request())).unwrap();
            svc
        }
        _ => return usage(),
    };
    let want = if which == "refused" { 429 } else { 200 };
    repeat(n, || {
        let res = now(svc.call(request())).unwrap();
        assert_eq!(res.status(), want);
        res.status().as_u16() as usize
    })
}

const SCENARIOS: &str = "usage_sse/{bare,metered,observe} usage_json/{bare,metered} \
                         routing/{bare,parse,demo} \
                         stack/{bare,routing,routing+fallback,all6,all6+subscriber,all6+ledger,bare+headers,all6+headers,bare+stream,all6+stream} \
                         rate_limit/{bare,off,allowed,refused} \
                         cache/{bare,miss,hit,key1k,key100k}";

/// ModelRouting → ResponseCache → UsageMeter → a fixed answer: `bare` with the cache disabled,
/// `miss` (`X-OpenRouter-Cache-Clear`: drop, call, record, store), `hit`; `key1k` / `key100k`: the
/// lookup alone (key hashing and a store read) for a 1 KB and a 100 KB body.
fn cache(which: &str, n: usize) {
    use tower_ai_gateway::cache::{CacheKey, CacheStore, InMemoryStore, ResponseCacheLayer};
    use tower_ai_gateway::usage_meter::CallerKey;

    if let Some(size) = match which {
        "key1k" => Some(1_000),
        "key100k" => Some(100_000),
        _ => None,
    } {
        // A chat body of `size` bytes, with whitespace to normalise away.
        let text = "lorem ipsum dolor sit amet ".repeat(size / 27);
        let body = format!(
            r#"{{"model": "acme/chat", "messages": [{{"role": "user", "content": "{text}"}}]}}"#
        );
        let key = |b: &[u8]| CacheKey::new("caller", "acme/chat", "/v1/chat/completions", false, b);
        let store = InMemoryStore::new(1 << 20);
        let entry = tower_ai_gateway::cache::CachedResponse {
            headers: http::HeaderMap::new(),
            frames: vec![Bytes::from_static(common::ANSWER.as_bytes())],
            source_id: None,
            created: None,
            stored_at_ms: 0,
            ttl: std::time::Duration::from_secs(300),
            streamed: false,
            extensions: http::Extensions::new(),
        };
        store.put(key(body.as_bytes()), std::sync::Arc::new(entry));
        return repeat(n, || {
            let k = key(black_box(body.as_bytes()));
            now(store.get(&k)).map_or(0, |e| e.frames.len())
        });
    }
    let layer = match which {
        "bare" => ResponseCacheLayer::disabled(),
        "miss" | "hit" => ResponseCacheLayer::new(),
        _ => return usage(),
    };
    let body = stack_body();
    let mut svc = ServiceBuilder::new()
        .layer(ModelRoutingLayer::new(stack_catalog()).seed(1))
        .layer(layer)
        .layer(UsageMeterLayer::new())
        .service_fn(fixed);
    let clear = which == "miss";
    drain(
        now(svc.call(cached_request(&body, false)))
            .unwrap()
            .into_body(),
    );
    repeat(n, || {
        let req = cached_request(&body, clear);
        let res = now(svc.call(req)).unwrap();
        debug_assert_eq!(
            res.headers()["x-openrouter-cache-status"],
            if clear { "MISS" } else { "HIT" }
        );
        drain(res.into_body())
    });

    /// A request that opts in to the cache, from caller `caller`.
    fn cached_request(body: &Bytes, clear: bool) -> Request<Full<Bytes>> {
        let mut req = Request::post("http://alpha.sim/v1/chat/completions")
            .header("x-openrouter-cache", "true")
            .header(
                "x-openrouter-cache-clear",
                if clear { "true" } else { "false" },
            )
            .body(Full::new(body.clone()))
            .unwrap();
        req.extensions_mut().insert(CallerKey::new("caller"));
        req
    }
}

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
        "rate_limit" => rate_limit(which, n),
        "cache" => cache(which, n),
        _ => usage(),
    }
}
