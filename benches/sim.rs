//! Cost of the simulator's zero-latency path (what load tests pay per request).

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use http_body_util::{BodyExt, Full};
use tower::ServiceExt;
use tower_ai_gateway::sim::{SimOutputLength, SimProfile, SimulatedProvider};

const BODY: &str = r#"{"model":"meta-llama/llama-3.3-70b-instruct","stream":STREAM,
  "messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello to the gateway."}]}"#;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let sim = SimulatedProvider::builder(1)
        .host(
            "deepinfra.sim",
            SimProfile::instant().with_output_tokens(SimOutputLength::fixed(32)),
        )
        .record_requests(false)
        .build();
    for stream in [false, true] {
        let body = Bytes::from(BODY.replace("STREAM", if stream { "true" } else { "false" }));
        let name = if stream {
            "sim/instant_stream_32_tokens"
        } else {
            "sim/instant_json_32_tokens"
        };
        c.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(async {
                    let req = http::Request::post("http://deepinfra.sim/v1/chat/completions")
                        .body(Full::new(body.clone()))
                        .expect("request");
                    let res = sim.clone().oneshot(req).await.expect("answer");
                    res.into_body().collect().await.expect("body").to_bytes()
                })
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
