//! Parse + splice of chat bodies (1 KB, 100 KB, 1 MB) and loading the 414-model OpenRouter dump.
//!
//! `cargo bench --bench parse`

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tower_ai_gateway::catalog::{Catalog, Provider};
use tower_ai_gateway::route::RequestView;

/// A realistic chat body of about `size` bytes: a system prompt, alternating turns, tools and a
/// provider object.
pub fn chat_body(size: usize) -> Vec<u8> {
    let mut messages = vec![
        serde_json::json!({"role": "system", "content": "You are a helpful assistant. Answer briefly."}),
    ];
    let turn = "The quick brown fox jumps over the lazy dog; \"quoted\" text, numbers 12345 and unicode café. ";
    let mut i = 0;
    loop {
        let body = serde_json::json!({
            "model": "meta-llama/llama-3.3-70b-instruct",
            "messages": messages,
            "max_tokens": 256,
            "temperature": 0.7,
            "stream": true,
            "provider": {"sort": "price", "ignore": ["groq"], "max_price": {"prompt": 1, "completion": 2}},
        });
        let bytes = serde_json::to_vec(&body).unwrap();
        if bytes.len() >= size {
            return bytes;
        }
        let role = if i % 2 == 0 { "user" } else { "assistant" };
        let reps = ((size - bytes.len()) / turn.len()).clamp(1, 20);
        messages.push(serde_json::json!({"role": role, "content": turn.repeat(reps)}));
        i += 1;
    }
}

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse+splice");
    for (name, size) in [("1KB", 1_000), ("100KB", 100_000), ("1MB", 1_000_000)] {
        let body = chat_body(size);
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(name), &body, |b, body| {
            b.iter(|| {
                let v = RequestView::parse(black_box(body)).unwrap();
                black_box(v.splice_model(body, "llama-3.3-70b-instruct-turbo"))
            })
        });
    }
    g.finish();

    let body = chat_body(1_000);
    c.bench_function("parse only 1KB", |b| {
        b.iter(|| black_box(RequestView::parse(black_box(&body)).unwrap()))
    });
}

fn load(c: &mut Criterion) {
    let dump = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/catalog/openrouter-models.json"
    ))
    .unwrap();
    let mut g = c.benchmark_group("catalog");
    g.sample_size(20);
    g.throughput(Throughput::Bytes(dump.len() as u64));
    g.bench_function("load 414-model dump", |b| {
        b.iter(|| {
            Catalog::from_openrouter_models(
                black_box(&dump),
                Provider::new("openrouter", "OpenRouter"),
            )
            .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, parse, load);
criterion_main!(benches, base);

#[allow(dead_code)]
fn baseline(c: &mut Criterion) {
    let body = chat_body(1_000);
    c.bench_function("baseline IgnoredAny 1KB", |b| {
        b.iter(|| {
            black_box(serde_json::from_slice::<serde::de::IgnoredAny>(black_box(&body)).unwrap())
        })
    });
    c.bench_function("baseline Value 1KB", |b| {
        b.iter(|| black_box(serde_json::from_slice::<serde_json::Value>(black_box(&body)).unwrap()))
    });
}
criterion_group!(base, baseline);
