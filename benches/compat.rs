//! What the Messages front end costs on a real Claude Code request (77 KB: a system prompt, a
//! `role: "system"` message, tool definitions, adaptive thinking), captured in
//! tests/fixtures/clients/claude-code/basic-json.
//!
//! `cargo bench --bench compat`

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use serde_json::Value;
use tower_ai_gateway::compat::messages_to_chat;
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
    // What MessagesLayer does before the routing stack: parse, translate, serialise.
    g.bench_function("messages_to_chat", |b| {
        b.iter(|| {
            let v: Value = serde_json::from_slice(black_box(&body)).expect("json");
            let chat = messages_to_chat(&v).expect("valid");
            black_box(chat.to_string())
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
