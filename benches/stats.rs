//! Cost of recording into and querying [`Stats`], with `hdrhistogram` as the baseline the
//! histogram choice was compared against.
//!
//! `cargo bench --bench stats -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use tokio::time::Instant;
use tower_ai_gateway::catalog::EndpointKey;
use tower_ai_gateway::health::{HealthSource, Percentile};
use tower_ai_gateway::stats::{Attempt, Generation, Outcome, Stats, StatsConfig};

fn warm(stats: &Stats, key: &EndpointKey, t0: Instant) {
    for i in 0..10_000u64 {
        let now = t0 + Duration::from_millis(i * 20);
        let attempt = Attempt::new(Outcome::Success).latency(Duration::from_millis(50 + i % 950));
        stats.record_attempt(key, attempt, now);
        let g = Generation::new(100 + i % 400, Duration::from_secs(2));
        stats.record_generation(key, g, now);
    }
}

fn bench_stats(c: &mut Criterion) {
    let t0 = Instant::now();
    let stats = Stats::with_origin(StatsConfig::default(), t0);
    // 50 endpoints known, so the map lookup is realistic.
    let keys: Vec<_> = (0..50)
        .map(|i| {
            EndpointKey::new(
                "meta-llama/llama-3.3-70b-instruct",
                &format!("provider{i}/turbo"),
            )
        })
        .collect();
    for k in &keys {
        warm(&stats, k, t0);
    }
    let key = &keys[17];
    let now = t0 + Duration::from_millis(200_000);
    let attempt = Attempt::new(Outcome::Success).latency(Duration::from_millis(321));

    let mut g = c.benchmark_group("stats");
    g.bench_function("record_attempt", |b| {
        b.iter(|| stats.record_attempt(black_box(key), attempt, now))
    });
    g.bench_function("record_generation", |b| {
        let gen =
            Generation::new(250, Duration::from_millis(1800)).ttft(Duration::from_millis(400));
        b.iter(|| stats.record_generation(black_box(key), gen, now))
    });
    g.bench_function("latency_ms_p99_warm_cached", |b| {
        b.iter(|| stats.latency_ms(black_box(key), Percentile::P99, now))
    });
    g.bench_function("latency_ms_p99_after_record", |b| {
        b.iter(|| {
            stats.record_attempt(key, attempt, now);
            stats.latency_ms(black_box(key), Percentile::P99, now)
        })
    });
    g.bench_function("routing_view_4_calls", |b| {
        b.iter(|| {
            let k = black_box(key);
            (
                stats.is_degraded(k, now),
                stats.in_cooldown(k, now),
                stats.latency_ms(k, Percentile::P50, now),
                stats.throughput(k, Percentile::P50, now),
            )
        })
    });
    g.bench_function("snapshot_one", |b| {
        b.iter(|| stats.snapshot(black_box(key), now))
    });
    g.bench_function("snapshot_all_50", |b| {
        b.iter(|| stats.snapshot_all(now).len())
    });
    g.finish();

    // Baseline: hdrhistogram with 2 significant figures (1 % precision), 0.1 ms .. ~17 min in µs·100.
    let mut g = c.benchmark_group("hdrhistogram");
    let mut h =
        hdrhistogram::Histogram::<u32>::new_with_bounds(1, 10_000_000, 2).expect("valid bounds");
    for i in 0..10_000u64 {
        let _ = h.record(500 + (i % 9500) * 10);
    }
    let other = h.clone();
    println!(
        "hdrhistogram<u32> sigfig 2 counters: {} ({} bytes)",
        h.distinct_values(),
        h.distinct_values() * 4
    );
    g.bench_function("record", |b| b.iter(|| h.record(black_box(3210))));
    g.bench_function("four_quantiles", |b| {
        b.iter(|| [0.5, 0.75, 0.9, 0.99].map(|q| h.value_at_quantile(black_box(q))))
    });
    g.bench_function("add_then_subtract", |b| {
        b.iter(|| {
            let _ = h.add(&other);
            let _ = h.subtract(&other);
        })
    });
    g.finish();
}

criterion_group!(benches, bench_stats);
criterion_main!(benches);
