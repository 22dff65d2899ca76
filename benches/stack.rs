//! Per-request overhead of ModelRouting + ProviderFallback, and of all six layers, against the bare
//! inner service, for a 1 KB non-streamed request.
//!
//! `cargo bench --bench stack`

mod common;

use common::{fixed, once, stack_body, stack_catalog as catalog};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use tower::ServiceBuilder;
use tower_ai_gateway::fallback::ProviderFallbackLayer;
use tower_ai_gateway::model_routing::ModelRoutingLayer;
use tower_ai_gateway::sim::{SimOutputLength, SimProfile, SimulatedProvider};
use tower_ai_gateway::GatewayLayer;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let body = stack_body();
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
