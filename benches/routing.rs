//! ModelRouting + ProviderDataPolicy + PriceCap per request on a 1 KB body, with the demo catalog (8 models)
//! and with the 414-model OpenRouter dump, against the bare inner service.
//!
//! `cargo bench --bench routing`

mod common;

use bytes::Bytes;
use common::{empty_answer as inner, now, routing_body as body_1kb};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use http::Request;
use http_body_util::Full;
use tower::{Service, ServiceBuilder};
use tower_ai_gateway::catalog::{Catalog, Provider, ProviderDataPolicy};
use tower_ai_gateway::data_policy::DataPolicyLayer;
use tower_ai_gateway::model_routing::ModelRoutingLayer;
use tower_ai_gateway::price_cap::PriceCapLayer;

fn bench(c: &mut Criterion) {
    let demo = Catalog::from_json(include_bytes!(
        "../tests/fixtures/catalog/demo-catalog.json"
    ))
    .unwrap();
    let dump = Catalog::from_openrouter_models(
        include_bytes!("../tests/fixtures/catalog/openrouter-models.json"),
        Provider::new("openrouter", "OpenRouter").data_policy(ProviderDataPolicy::ZDR),
    )
    .unwrap();
    let mut g = c.benchmark_group("routing 1KB");

    let body = body_1kb("meta-llama/llama-3.3-70b-instruct");
    let mut bare = tower::service_fn(inner);
    g.bench_function("bare inner service", |b| {
        b.iter(|| {
            let req = Request::post("/").body(Full::new(body.clone())).unwrap();
            black_box(now(bare.call(req)).unwrap())
        })
    });

    for (name, catalog, model) in [
        (
            "demo catalog (8 models)",
            demo,
            "meta-llama/llama-3.3-70b-instruct",
        ),
        (
            "OpenRouter dump (414 models)",
            dump,
            "meta-llama/llama-3.3-70b-instruct",
        ),
    ] {
        let body = body_1kb(model);
        let mut svc = ServiceBuilder::new()
            .layer(ModelRoutingLayer::new(catalog).seed(1))
            .layer(DataPolicyLayer::new())
            .layer(PriceCapLayer::new())
            .service_fn(inner);
        g.bench_function(name, |b| {
            b.iter(|| {
                let req = Request::post("/").body(Full::new(body.clone())).unwrap();
                let res = now(Service::<Request<Full<Bytes>>>::call(&mut svc, req)).unwrap();
                assert_eq!(res.status(), 200);
                black_box(res)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
