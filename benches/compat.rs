//! What the Messages front end costs on a real Claude Code request (77 KB: a system prompt, a
//! `role: "system"` message, tool definitions, adaptive thinking), captured in
//! tests/fixtures/clients/claude-code/basic-json.
//!
//! `cargo bench --bench compat`

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use tower::{Layer, ServiceExt};
use tower_ai_gateway::compat::messages_to_chat;
use tower_ai_gateway::compat::MessagesLayer;
use tower_ai_gateway::route::RequestView;

const CAPTURE: &str =
    include_str!("../tests/fixtures/clients/claude-code/basic-json/001-POST-v1_messages.json");

fn claude_code_body() -> Vec<u8> {
    let capture: Value = serde_json::from_str(CAPTURE).expect("fixture");
    serde_json::to_vec(&capture["body"]).expect("body")
}

fn compat(c: &mut Criterion) {
    let body = claude_code_body();
    let mut g = c.benchmark_group("claude_code_77KB");
    g.throughput(Throughput::Bytes(body.len() as u64));
    // The whole request as a `Value`, translated and serialised (the public `messages_to_chat`).
    g.bench_function("messages_to_chat on a Value", |b| {
        b.iter(|| {
            let v: Value = serde_json::from_slice(black_box(&body)).expect("json");
            let chat = messages_to_chat(&v).expect("valid");
            black_box(chat.to_string())
        })
    });
    g.bench_function("serde_json::Value parse only", |b| {
        b.iter(|| black_box(serde_json::from_slice::<Value>(black_box(&body)).is_ok()))
    });
    // MessagesLayer over an inner service that answers a fixed completion at once: reading the
    // body, translating it (tool schemas copied raw), translating the answer back.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let inner = tower::service_fn(|_req: http::Request<Full<Bytes>>| async {
        let answer = r#"{"id":"gen-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":"Hi."}}],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}"#;
        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from_static(
            answer.as_bytes(),
        ))))
    });
    let layer = MessagesLayer::new().layer(inner);
    let bytes = Bytes::from(body.clone());
    g.bench_function("MessagesLayer round trip", |b| {
        b.iter(|| {
            let req = http::Request::post("/v1/messages")
                .body(Full::new(bytes.clone()))
                .expect("request");
            rt.block_on(async {
                let res = layer.clone().oneshot(req).await.expect("response");
                black_box(res.into_body().collect().await.expect("body").to_bytes())
            })
        })
    });
    // ModelRouting's parse of the translated body, for comparison.
    let chat = messages_to_chat(&serde_json::from_slice(&body).expect("json"))
        .expect("valid")
        .to_string();
    g.bench_function("RequestView::parse of the chat body", |b| {
        b.iter(|| black_box(RequestView::parse(black_box(chat.as_bytes())).is_ok()))
    });
    g.finish();
}

criterion_group!(benches, compat);
criterion_main!(benches);
