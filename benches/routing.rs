//! ModelRouting + DataPolicy + PriceCap per request on a 1 KB body, with the demo catalog (8 models)
//! and with the 414-model OpenRouter dump, against the bare inner service.
//!
//! `cargo bench --bench routing`

use std::convert::Infallible;
use std::future::Future;

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use http::{Request, Response};
use http_body_util::Full;
use tower::{Service, ServiceBuilder};
use tower_ai_gateway::catalog::{Catalog, DataPolicy, Provider};
use tower_ai_gateway::data_policy::DataPolicyLayer;
use tower_ai_gateway::model_routing::ModelRoutingLayer;
use tower_ai_gateway::price_cap::PriceCapLayer;

/// Every future here completes without waiting: poll it once.
fn now<F: Future>(f: F) -> F::Output {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("pending"),
    }
}

async fn inner(_: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(b"{}"))))
}

fn body_1kb(model: &str) -> Bytes {
    let filler =
        "Tell me about the history of the printing press in a few sentences please. ".repeat(9);
    let body = serde_json::json!({
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

fn bench(c: &mut Criterion) {
    let demo = Catalog::from_json(include_bytes!(
        "../tests/fixtures/catalog/demo-catalog.json"
    ))
    .unwrap();
    let dump = Catalog::from_openrouter_models(
        include_bytes!("../tests/fixtures/catalog/openrouter-models.json"),
        Provider::new("openrouter", "OpenRouter").data_policy(DataPolicy::ZDR),
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
