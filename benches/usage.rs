//! UsageMeter's cost: a 1,000-chunk SSE stream through the metering body against a bare
//! pass-through of the same frames, and the layer over a bare service for a 1 KB non-streamed
//! request.
//!
//! `cargo bench --bench usage -- --warm-up-time 1 --measurement-time 3`

mod common;

use common::{
    demo_route, drain, json_answer_1kb, json_upstream, now, routed_request, sse_upstream,
    stream_frames, Frames,
};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use tower::{Service, ServiceBuilder};
use tower_ai_gateway::usage_meter::UsageMeterLayer;

fn bench_stream(c: &mut Criterion) {
    let frames = stream_frames(1000);
    let route = demo_route();
    let mut g = c.benchmark_group("usage_sse_1000_chunks");
    g.bench_function("bare_passthrough", |b| {
        b.iter(|| {
            let body = Frames(frames.iter().cloned().collect());
            black_box(drain(body))
        })
    });
    let upstream = sse_upstream(frames);
    let mut metered = ServiceBuilder::new()
        .layer(UsageMeterLayer::new())
        .service(upstream.clone());
    g.bench_function("metered", |b| {
        b.iter(|| {
            let res = now(metered.call(routed_request(&route))).unwrap();
            black_box(drain(res.into_body()))
        })
    });
    let mut observe_only = ServiceBuilder::new()
        .layer(UsageMeterLayer::new().rewrite(false))
        .service(upstream);
    g.bench_function("metered_observe_only", |b| {
        b.iter(|| {
            let res = now(observe_only.call(routed_request(&route))).unwrap();
            black_box(drain(res.into_body()))
        })
    });
    g.finish();
}

fn bench_json(c: &mut Criterion) {
    let route = demo_route();
    let upstream = json_upstream(json_answer_1kb());
    let mut g = c.benchmark_group("usage_json_1kb");
    let mut bare = upstream.clone();
    g.bench_function("bare_service", |b| {
        b.iter(|| {
            let res = now(bare.call(routed_request(&route))).unwrap();
            black_box(drain(res.into_body()))
        })
    });
    let mut metered = ServiceBuilder::new()
        .layer(UsageMeterLayer::new())
        .service(upstream);
    g.bench_function("metered", |b| {
        b.iter(|| {
            let res = now(metered.call(routed_request(&route))).unwrap();
            black_box(drain(res.into_body()))
        })
    });
    g.finish();
}

criterion_group!(benches, bench_stream, bench_json);
criterion_main!(benches);
