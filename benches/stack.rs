//! Per-request overhead of ModelRouting + ProviderFallback, and of all six layers, against the bare
//! inner service, for a 1 KB non-streamed request.
//!
//! `cargo bench --bench stack`

use std::convert::Infallible;

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_ai_gateway::catalog::{Catalog, Credentials, Endpoint, Model, Provider, Usd};
use tower_ai_gateway::fallback::ProviderFallbackLayer;
use tower_ai_gateway::model_routing::ModelRoutingLayer;
use tower_ai_gateway::sim::{SimOutputLength, SimProfile, SimulatedProvider};
use tower_ai_gateway::GatewayLayer;

const ANSWER: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":0,"model":"acme-chat","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there, how can I help?"},"finish_reason":"stop"}],"usage":{"prompt_tokens":250,"completion_tokens":8,"total_tokens":258}}"#;

fn catalog() -> Catalog {
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

fn request_body() -> Bytes {
    let filler = "lorem ipsum dolor sit amet ".repeat(34);
    let body = format!(
        r#"{{"model":"acme/chat","messages":[{{"role":"system","content":"You are terse."}},{{"role":"user","content":"{filler}"}}],"temperature":0.2,"max_tokens":8,"provider":{{"sort":"price"}}}}"#
    );
    assert!((1000..1100).contains(&body.len()), "{}", body.len());
    Bytes::from(body)
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
    B: http_body::Body<Data = Bytes>,
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

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let body = request_body();
    let mut g = c.benchmark_group("stack_1kb");

    let mut bare = tower::service_fn(fixed);
    g.bench_function("service_fn/bare", |b| {
        b.iter(|| rt.block_on(once(&mut bare, black_box(&body))))
    });
    let mut routed = ServiceBuilder::new()
        .layer(ModelRoutingLayer::new(catalog()).seed(1))
        .service_fn(fixed);
    g.bench_function("service_fn/routing", |b| {
        b.iter(|| rt.block_on(once(&mut routed, black_box(&body))))
    });
    let mut stacked = ServiceBuilder::new()
        .layer(ModelRoutingLayer::new(catalog()).seed(1))
        .layer(ProviderFallbackLayer::new())
        .service_fn(fixed);
    g.bench_function("service_fn/routing+fallback", |b| {
        b.iter(|| rt.block_on(once(&mut stacked, black_box(&body))))
    });
    // All six layers (GatewayLayer: routing, data policy, price cap, percentiles, metering with a
    // ledger and the in-memory generation store, fallback with stats).
    let mut full = ServiceBuilder::new()
        .layer(
            GatewayLayer::new(catalog())
                .routing(|r| r.seed(1))
                .usage_meter(|u| u.sink(tower_ai_gateway::usage_meter::GenerationStore::new(1024))),
        )
        .service_fn(fixed);
    g.bench_function("service_fn/all six layers", |b| {
        b.iter(|| rt.block_on(once(&mut full, black_box(&body))))
    });

    let profile = SimProfile::instant().with_output_tokens(SimOutputLength::fixed(8));
    let sim = || {
        SimulatedProvider::builder(1)
            .default_profile(profile.clone())
            .record_requests(false)
            .build()
    };
    let mut bare_sim = sim();
    g.bench_function("sim/bare", |b| {
        b.iter(|| rt.block_on(once(&mut bare_sim, black_box(&body))))
    });
    let mut stacked_sim = ServiceBuilder::new()
        .layer(ModelRoutingLayer::new(catalog()).seed(1))
        .layer(ProviderFallbackLayer::new())
        .service(sim());
    g.bench_function("sim/routing+fallback", |b| {
        b.iter(|| rt.block_on(once(&mut stacked_sim, black_box(&body))))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
