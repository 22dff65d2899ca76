// `StatsConfig` is `#[non_exhaustive]`: users outside the crate must mutate a default, so tests do too.
#![allow(clippy::field_reassign_with_default)]

use std::time::Duration;

use http::{HeaderMap, HeaderValue, StatusCode};
use tokio::time::Instant;

use super::*;
use crate::health::{HealthSource, Percentile};

fn key(tag: &str) -> EndpointKey {
    EndpointKey::new("m/x", tag)
}

fn ok_ms(ms: u64) -> Attempt {
    Attempt::new(Outcome::Success).latency(Duration::from_millis(ms))
}

fn fail(kind: FailureKind) -> Attempt {
    Attempt::new(Outcome::Failure(kind))
}

const SERVER: FailureKind = FailureKind::ServerError { status: 502 };

fn within(got: f64, want: f64) -> bool {
    (got - want).abs() <= want * 0.02 + 1e-9
}

#[test]
fn latency_percentiles_of_uniform_distribution() {
    let t0 = Instant::now();
    let stats = Stats::with_origin(StatsConfig::default(), t0);
    let k = key("a");
    for ms in 1..=1000 {
        stats.record_attempt(&k, ok_ms(ms), t0);
    }
    for (pct, want) in [
        (Percentile::P50, 500.0),
        (Percentile::P75, 750.0),
        (Percentile::P90, 900.0),
        (Percentile::P99, 990.0),
    ] {
        let got = stats.latency_ms(&k, pct, t0).unwrap_or(f64::NAN);
        assert!(within(got, want), "{pct:?}: got {got}, want {want}");
    }
}

#[test]
fn throughput_percentiles_read_at_least() {
    let t0 = Instant::now();
    let stats = Stats::with_origin(StatsConfig::default(), t0);
    let k = key("a");
    // 1..=100 tokens/s (tokens over one second).
    for tps in 1..=100 {
        stats.record_generation(&k, Generation::new(tps, Duration::from_secs(1)), t0);
    }
    // p90: 90 % of requests reach at least ~10 tok/s.
    for (pct, want) in [
        (Percentile::P50, 50.0),
        (Percentile::P75, 25.0),
        (Percentile::P90, 10.0),
        (Percentile::P99, 1.0),
    ] {
        let got = stats.throughput(&k, pct, t0).unwrap_or(f64::NAN);
        assert!(within(got, want), "{pct:?}: got {got}, want {want}");
    }
    // Zero duration or zero tokens: no sample, no panic.
    let k2 = key("b");
    for _ in 0..10 {
        stats.record_generation(&k2, Generation::new(10, Duration::ZERO), t0);
        stats.record_generation(&k2, Generation::new(0, Duration::from_secs(1)), t0);
    }
    assert_eq!(stats.throughput(&k2, Percentile::P50, t0), None);
    assert_eq!(stats.counts(&k2).map(|c| c.generations), Some(20));
}

#[test]
fn ttft_from_generation_is_a_latency_sample() {
    let t0 = Instant::now();
    let stats = Stats::with_origin(StatsConfig::default(), t0);
    let k = key("a");
    for _ in 0..5 {
        // Streamed: the fallback layer records no latency, the body reports TTFT.
        stats.record_attempt(&k, Attempt::new(Outcome::Success), t0);
        stats.record_generation(
            &k,
            Generation::new(50, Duration::from_secs(1)).ttft(Duration::from_millis(800)),
            t0,
        );
    }
    let p50 = stats
        .latency_ms(&k, Percentile::P50, t0)
        .unwrap_or(f64::NAN);
    assert!(within(p50, 800.0), "{p50}");
}

#[test]
fn too_few_samples_is_none() {
    let t0 = Instant::now();
    let stats = Stats::with_origin(StatsConfig::default(), t0);
    let k = key("a");
    assert_eq!(stats.latency_ms(&k, Percentile::P50, t0), None);
    for _ in 0..4 {
        stats.record_attempt(&k, ok_ms(100), t0);
    }
    assert_eq!(stats.latency_ms(&k, Percentile::P50, t0), None);
    assert_eq!(stats.success_rate(&k, t0), None);
    stats.record_attempt(&k, ok_ms(100), t0);
    assert!(stats.latency_ms(&k, Percentile::P50, t0).is_some());
    assert_eq!(stats.success_rate(&k, t0), Some(1.0));
}

#[tokio::test(start_paused = true)]
async fn samples_expire_with_the_window() {
    let stats = Stats::new(StatsConfig::default());
    let k = key("a");
    for _ in 0..10 {
        stats.record_attempt(&k, ok_ms(100), Instant::now());
    }
    tokio::time::advance(Duration::from_secs(4 * 60)).await;
    for _ in 0..10 {
        stats.record_attempt(&k, ok_ms(1000), Instant::now());
    }
    let now = Instant::now();
    // Both batches inside 5 min: median between them.
    assert!(within(
        stats.latency_ms(&k, Percentile::P50, now).unwrap_or(0.0),
        100.0
    ));
    // A minute later the first batch is gone from the routing window…
    tokio::time::advance(Duration::from_secs(60)).await;
    let now = Instant::now();
    let p50 = stats.latency_ms(&k, Percentile::P50, now).unwrap_or(0.0);
    assert!(within(p50, 1000.0), "{p50}");
    // …but still in the 30-minute report window.
    let snap = stats.snapshot(&k, now).expect("known");
    let report = snap.latency_last_30m.expect("enough samples");
    assert!(within(report.p50, 100.0), "{report:?}");
    // After 30 more minutes everything is gone.
    tokio::time::advance(Duration::from_secs(30 * 60)).await;
    let now = Instant::now();
    assert_eq!(stats.latency_ms(&k, Percentile::P50, now), None);
    let snap = stats.snapshot(&k, now).expect("known");
    assert_eq!(snap.latency_last_30m, None);
    assert_eq!(snap.counts.successes, 20);
}

#[test]
fn outage_share_rule_and_recovery() {
    let t0 = Instant::now();
    let mut cfg = StatsConfig::default();
    cfg.outage_consecutive_failures = 0; // only the share rule
    let stats = Stats::with_origin(cfg, t0);
    let k = key("a");
    for i in 0..4 {
        let a = if i % 2 == 0 { fail(SERVER) } else { ok_ms(10) };
        stats.record_attempt(&k, a, t0);
    }
    assert!(!stats.is_degraded(&k, t0), "4 attempts < minimum 5");
    stats.record_attempt(&k, fail(FailureKind::Timeout), t0);
    assert!(stats.is_degraded(&k, t0), "3 of 5 failed");
    // Successes bring the share under 50 %.
    stats.record_attempt(&k, ok_ms(10), t0);
    stats.record_attempt(&k, ok_ms(10), t0);
    assert!(!stats.is_degraded(&k, t0));
    // Failures age out after 30 s.
    let t1 = t0 + Duration::from_secs(1);
    for _ in 0..5 {
        stats.record_attempt(&k, fail(FailureKind::Connect), t1);
    }
    assert!(stats.is_degraded(&k, t1 + Duration::from_secs(29)));
    assert!(!stats.is_degraded(&k, t1 + Duration::from_secs(31)));
}

#[test]
fn outage_streak_rule() {
    let t0 = Instant::now();
    let stats = Stats::with_origin(StatsConfig::default(), t0);
    let k = key("a");
    stats.record_attempt(&k, fail(FailureKind::InvalidResponse), t0);
    stats.record_attempt(&k, fail(SERVER), t0);
    assert!(!stats.is_degraded(&k, t0));
    stats.record_attempt(&k, fail(SERVER), t0);
    assert!(stats.is_degraded(&k, t0));
    assert!(stats.is_degraded(&k, t0 + Duration::from_millis(29_999)));
    assert!(!stats.is_degraded(&k, t0 + Duration::from_secs(30)));
    // A success ends the streak immediately.
    for _ in 0..3 {
        stats.record_attempt(&k, fail(SERVER), t0);
    }
    assert!(stats.is_degraded(&k, t0));
    stats.record_attempt(&k, ok_ms(10), t0);
    assert!(!stats.is_degraded(&k, t0));
}

#[test]
fn rate_limits_and_caller_errors_are_not_outages() {
    let t0 = Instant::now();
    let stats = Stats::with_origin(StatsConfig::default(), t0);
    let k = key("a");
    for _ in 0..20 {
        stats.record_attempt(&k, fail(FailureKind::RateLimited { retry_after: None }), t0);
        stats.record_attempt(&k, fail(FailureKind::CallerError { status: 400 }), t0);
        stats.record_attempt(&k, fail(FailureKind::CallerError { status: 413 }), t0);
    }
    assert!(!stats.is_degraded(&k, t0));
    assert_eq!(stats.success_rate(&k, t0), None);
    let counts = stats.counts(&k).expect("known");
    assert_eq!(counts.attempts, 60);
    assert_eq!(counts.failures.rate_limited, 20);
    assert_eq!(counts.failures.caller_error, 40);
    assert_eq!(counts.failures.total(), 60);
}

#[test]
fn caller_errors_do_not_lower_success_rate_or_uptime() {
    let t0 = Instant::now();
    let stats = Stats::with_origin(StatsConfig::default(), t0);
    let k = key("a");
    for _ in 0..10 {
        stats.record_attempt(&k, ok_ms(10), t0);
        stats.record_attempt(&k, fail(FailureKind::CallerError { status: 400 }), t0);
    }
    assert_eq!(stats.success_rate(&k, t0), Some(1.0));
    let snap = stats.snapshot(&k, t0).expect("known");
    assert_eq!(snap.uptime_last_5m, Some(100.0));
    assert!(!stats.in_cooldown(&k, t0));
}

#[test]
fn cooldown_grows_exponentially_and_is_capped() {
    let t0 = Instant::now();
    let mut cfg = StatsConfig::default();
    cfg.cooldown_after_failures = 2;
    cfg.cooldown_base = Duration::from_secs(1);
    cfg.cooldown_max = Duration::from_secs(5);
    let stats = Stats::with_origin(cfg, t0);
    let k = key("a");
    stats.record_attempt(&k, fail(SERVER), t0);
    assert!(!stats.in_cooldown(&k, t0));
    let expect = [1, 2, 4, 5, 5];
    for secs in expect {
        stats.record_attempt(&k, fail(SERVER), t0);
        assert_eq!(
            stats.cooldown_remaining(&k, t0),
            Some(Duration::from_secs(secs))
        );
        // Let it expire before the next failure, so each value is visible.
    }
    assert!(stats.in_cooldown(&k, t0 + Duration::from_millis(4999)));
    assert!(!stats.in_cooldown(&k, t0 + Duration::from_secs(5)));
    // Rate limits extend it too; caller errors do not.
    let t1 = t0 + Duration::from_secs(100);
    stats.record_attempt(&k, fail(FailureKind::CallerError { status: 400 }), t1);
    assert!(!stats.in_cooldown(&k, t1));
    stats.record_attempt(&k, fail(FailureKind::RateLimited { retry_after: None }), t1);
    assert_eq!(
        stats.cooldown_remaining(&k, t1),
        Some(Duration::from_secs(5))
    );
    // A success clears the exponential cooldown and the streak.
    stats.record_attempt(&k, ok_ms(10), t1);
    assert!(!stats.in_cooldown(&k, t1));
    stats.record_attempt(&k, fail(SERVER), t1);
    assert!(!stats.in_cooldown(&k, t1));
}

/// `any_cooling` lets the fallback skip asking about each endpoint: it must never be false while
/// one endpoint is cooling down.
#[test]
fn any_cooling_is_true_while_some_endpoint_cools() {
    let t0 = Instant::now();
    let mut cfg = StatsConfig::default();
    cfg.cooldown_after_failures = 1;
    cfg.cooldown_base = Duration::from_secs(2);
    let stats = Stats::with_origin(cfg, t0);
    assert!(!stats.any_cooling(t0), "nothing recorded");
    stats.record_attempt(&key("a"), ok_ms(10), t0);
    assert!(!stats.any_cooling(t0), "a success cools nothing");
    stats.record_attempt(&key("b"), fail(SERVER), t0);
    assert!(stats.in_cooldown(&key("b"), t0));
    for t in [t0, t0 + Duration::from_millis(1999)] {
        assert!(stats.any_cooling(t));
    }
    assert!(!stats.in_cooldown(&key("b"), t0 + Duration::from_secs(2)));
    assert!(!stats.any_cooling(t0 + Duration::from_secs(2)));
}

#[test]
fn retry_after_is_honoured_and_capped() {
    let t0 = Instant::now();
    let mut cfg = StatsConfig::default();
    cfg.retry_after_cap = Duration::from_secs(30);
    let stats = Stats::with_origin(cfg, t0);
    let k = key("a");
    let rl = |s| {
        fail(FailureKind::RateLimited {
            retry_after: Some(Duration::from_secs(s)),
        })
    };
    stats.record_attempt(&k, rl(10), t0);
    assert_eq!(
        stats.cooldown_remaining(&k, t0),
        Some(Duration::from_secs(10))
    );
    stats.record_attempt(&k, rl(3600), t0);
    assert_eq!(
        stats.cooldown_remaining(&k, t0),
        Some(Duration::from_secs(30))
    );
    // A success does not cancel an explicit hint.
    stats.record_attempt(&k, ok_ms(10), t0 + Duration::from_secs(1));
    assert!(stats.in_cooldown(&k, t0 + Duration::from_secs(29)));
    assert!(!stats.in_cooldown(&k, t0 + Duration::from_secs(30)));
    // A 503 with retry-after-ms via the header helper.
    let mut h = HeaderMap::new();
    h.insert("retry-after-ms", HeaderValue::from_static("1500"));
    let a = Attempt::from_response(StatusCode::SERVICE_UNAVAILABLE, &h);
    assert_eq!(
        a.outcome(),
        Outcome::Failure(FailureKind::ServerError { status: 503 })
    );
    let t1 = t0 + Duration::from_secs(60);
    stats.record_attempt(&k, a, t1);
    assert_eq!(
        stats.cooldown_remaining(&k, t1),
        Some(Duration::from_millis(1500))
    );
    // Huge hints don't overflow.
    stats.record_attempt(
        &k,
        fail(SERVER).retry_after(Duration::MAX),
        t1 + Duration::from_secs(1),
    );
    assert_eq!(
        stats.cooldown_remaining(&k, t1 + Duration::from_secs(1)),
        Some(Duration::from_secs(30))
    );
}

#[test]
fn classify_responses() {
    let h = HeaderMap::new();
    let f = |s: u16| Outcome::from_response(StatusCode::from_u16(s).unwrap_or_default(), &h);
    assert_eq!(f(200), Outcome::Success);
    assert_eq!(
        f(429),
        Outcome::Failure(FailureKind::RateLimited { retry_after: None })
    );
    assert_eq!(
        f(401),
        Outcome::Failure(FailureKind::CredentialsRejected { status: 401 })
    );
    assert_eq!(f(408), Outcome::Failure(FailureKind::Timeout));
    assert_eq!(
        f(413),
        Outcome::Failure(FailureKind::CallerError { status: 413 })
    );
    assert_eq!(
        f(529),
        Outcome::Failure(FailureKind::ServerError { status: 529 })
    );
    let mut h = HeaderMap::new();
    h.insert("retry-after", HeaderValue::from_static("2"));
    assert_eq!(
        Outcome::from_response(StatusCode::TOO_MANY_REQUESTS, &h),
        Outcome::Failure(FailureKind::RateLimited {
            retry_after: Some(Duration::from_secs(2))
        })
    );
}

#[test]
fn uptime_minute_rules() {
    let t0 = Instant::now();
    let mut cfg = StatsConfig::default();
    cfg.uptime_min_attempts = 10;
    let stats = Stats::with_origin(cfg, t0);
    let k = key("a");
    let minute = |m: u64| t0 + Duration::from_secs(60 * m);
    // Minute 0: 9 successes + 1 failure = 90 % → up.
    for _ in 0..9 {
        stats.record_attempt(&k, ok_ms(10), minute(0));
    }
    stats.record_attempt(&k, fail(SERVER), minute(0));
    // Minute 1: 7 of 10 → down (< 80 %). Rate limits and caller errors don't count.
    for i in 0..10 {
        let a = if i < 7 {
            ok_ms(10)
        } else {
            fail(FailureKind::Timeout)
        };
        stats.record_attempt(&k, a, minute(1));
        stats.record_attempt(
            &k,
            fail(FailureKind::RateLimited { retry_after: None }),
            minute(1),
        );
    }
    // Minute 2: only 9 attempts, all failed → does not qualify.
    for _ in 0..9 {
        stats.record_attempt(&k, fail(SERVER), minute(2));
    }
    // Minute 3: exactly 80 % → up.
    for i in 0..10 {
        let a = if i < 8 { ok_ms(10) } else { fail(SERVER) };
        stats.record_attempt(&k, a, minute(3));
    }
    let snap = stats.snapshot(&k, minute(3)).expect("known");
    let up = snap.uptime_last_5m.unwrap_or(f64::NAN);
    assert!((up - 200.0 / 3.0).abs() < 1e-9, "{up}");
    assert_eq!(snap.uptime_last_30m, snap.uptime_last_5m);
    assert_eq!(snap.uptime_last_1d, snap.uptime_last_5m);
    // 5 minutes later only minute 3 is in the 5-minute window… (minutes 4..=8)
    let snap = stats.snapshot(&k, minute(7)).expect("known");
    assert_eq!(snap.uptime_last_5m, Some(100.0));
    let snap = stats.snapshot(&k, minute(8)).expect("known");
    assert_eq!(snap.uptime_last_5m, None, "no qualifying minute");
    assert!(snap.uptime_last_30m.is_some());
    // A day later nothing is left.
    let snap = stats.snapshot(&k, minute(3 + 1440)).expect("known");
    assert_eq!(snap.uptime_last_1d, None);
}

#[test]
fn odd_inputs_do_not_panic() {
    let t0 = Instant::now();
    let stats = Stats::with_origin(StatsConfig::default(), t0 + Duration::from_secs(10));
    let k = key("a");
    // Instant before origin, zero and huge durations.
    stats.record_attempt(&k, ok_ms(0), t0);
    stats.record_attempt(
        &k,
        Attempt::new(Outcome::Success).latency(Duration::MAX),
        t0,
    );
    stats.record_generation(&k, Generation::new(u64::MAX, Duration::from_nanos(1)), t0);
    stats.record_generation(
        &k,
        Generation::new(1, Duration::MAX).ttft(Duration::ZERO),
        t0,
    );
    let far = t0 + Duration::from_secs(86_400 * 365 * 100);
    stats.record_attempt(&k, ok_ms(1), far);
    let _ = stats.snapshot_all(far);
    let _ = stats.latency_ms(&k, Percentile::P99, t0);
    // Degenerate config.
    let mut cfg = StatsConfig::default();
    cfg.routing_window = Duration::ZERO;
    cfg.routing_slots = 0;
    cfg.report_slots = usize::MAX;
    cfg.outage_window = Duration::ZERO;
    cfg.outage_failure_share = f64::NAN;
    cfg.cooldown_after_failures = 0;
    cfg.cooldown_base = Duration::MAX;
    cfg.min_samples = 0;
    cfg.uptime_min_attempts = 0;
    let s = Stats::with_origin(cfg, t0);
    s.record_attempt(&k, fail(SERVER), t0);
    s.record_attempt(&k, ok_ms(5), t0);
    let _ = s.is_degraded(&k, t0);
    let _ = s.snapshot(&k, t0);
    assert!(s.latency_ms(&k, Percentile::P50, t0).is_some());
}

#[test]
fn snapshot_serializes_like_openrouter() {
    let t0 = Instant::now();
    let stats = Stats::with_origin(StatsConfig::default(), t0);
    let k = key("deepinfra/turbo");
    for ms in [100, 200, 300, 400, 500] {
        stats.record_attempt(&k, ok_ms(ms), t0);
        stats.record_generation(&k, Generation::new(60, Duration::from_secs(2)), t0);
    }
    stats.record_attempt(&key("other"), fail(SERVER), t0);
    let all = stats.snapshot_all(t0);
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].tag, "deepinfra/turbo");
    let v = serde_json::to_value(&all[0]).unwrap_or_default();
    assert_eq!(v["model_id"], "m/x");
    for f in ["p50", "p75", "p90", "p99"] {
        assert!(v["latency_last_30m"][f].is_number(), "{f}");
        assert!(v["throughput_last_30m"][f].is_number(), "{f}");
    }
    assert!(v["uptime_last_5m"].is_null(), "5 attempts < 10 per minute");
    assert_eq!(v["counts"]["failures"]["server_error"], 0);
    assert_eq!(stats.keys().len(), 2);
}

#[test]
fn concurrent_recording_adds_up() {
    let t0 = Instant::now();
    let stats = Stats::with_origin(StatsConfig::default(), t0);
    let threads = 4;
    let per = 5_000u64;
    std::thread::scope(|s| {
        for th in 0..threads {
            let stats = stats.clone();
            s.spawn(move || {
                for i in 0..per {
                    let k = key(["a", "b", "c"][(i % 3) as usize]);
                    let now = t0 + Duration::from_millis(i / 10);
                    if (i + th) % 4 == 0 {
                        stats.record_attempt(&k, fail(SERVER), now);
                    } else {
                        stats.record_attempt(&k, ok_ms(i % 500 + 1), now);
                    }
                    let _ = stats.latency_ms(&k, Percentile::P99, now);
                    let _ = stats.is_degraded(&k, now);
                }
            });
        }
    });
    let total: u64 = stats
        .snapshot_all(t0)
        .iter()
        .map(|s| s.counts.attempts)
        .sum();
    assert_eq!(total, threads * per);
    let successes: u64 = ["a", "b", "c"]
        .iter()
        .filter_map(|t| stats.counts(&key(t)))
        .map(|c| c.successes + c.failures.server_error)
        .sum();
    assert_eq!(successes, threads * per);
}

#[test]
fn stats_is_send_sync_clone_debug() {
    fn check<T: Send + Sync + Clone + std::fmt::Debug + 'static>() {}
    check::<Stats>();
    let s = Stats::default();
    assert!(format!("{s:?}").contains("Stats"));
}

/// The answers without a lookup (no cooldown or failure recently anywhere) agree with the
/// per-endpoint state: a cooldown or an outage is seen at once, and stops being seen when it ends.
#[test]
fn health_answers_without_a_lookup_agree_with_the_state() {
    let t0 = Instant::now();
    let mut c = StatsConfig::default();
    c.cooldown_after_failures = 1;
    c.outage_min_attempts = 1;
    let stats = Stats::with_origin(c.clone(), t0);
    let (a, b) = (key("a"), key("b"));
    stats.record_attempt(&b, ok_ms(10), t0);
    assert!(!stats.is_unstable(&a, t0) && !stats.is_unstable(&b, t0));
    assert!(!stats.in_cooldown(&b, t0) && !stats.is_degraded(&b, t0));

    let t1 = t0 + Duration::from_secs(1);
    stats.record_attempt(&a, fail(SERVER), t1);
    assert!(stats.in_cooldown(&a, t1) && stats.is_degraded(&a, t1) && stats.is_unstable(&a, t1));
    assert!(
        !stats.is_unstable(&b, t1),
        "another endpoint's failure is not b's"
    );

    // Long after: neither a cooldown nor an outage is left.
    let later = t1 + c.outage_window * 3 + c.cooldown_max;
    assert!(!stats.in_cooldown(&a, later) && !stats.is_unstable(&a, later));

    // With a failure share of 0, any attempt in the window counts: no shortcut then.
    let mut z = StatsConfig::default();
    z.outage_failure_share = 0.0;
    z.outage_min_attempts = 1;
    let zero = Stats::with_origin(z, t0);
    zero.record_attempt(&b, ok_ms(10), t0);
    assert!(zero.is_degraded(&b, t0));
}

mod shortcut {
    use proptest::prelude::*;

    use super::*;

    /// One recorded attempt: which endpoint, how many milliseconds after the previous one, and
    /// its outcome (0 success, 1 a 502, 2 a 429, 3 a caller's 400, 4 a timeout).
    fn attempts() -> impl Strategy<Value = Vec<(u8, u64, u8)>> {
        proptest::collection::vec((0u8..3, 0u64..90_000, 0u8..5), 0..12)
    }

    fn attempt(kind: u8) -> Attempt {
        match kind {
            0 => ok_ms(40),
            1 => fail(SERVER),
            2 => fail(FailureKind::RateLimited { retry_after: None }),
            3 => fail(FailureKind::CallerError { status: 400 }),
            _ => fail(FailureKind::Timeout),
        }
    }

    proptest! {
        /// `is_unstable`, with its answers that need no lookup and no clock reading, is what the
        /// trait's definition says (`is_degraded || in_cooldown`), and `any_cooling` is never
        /// false while an endpoint cools, after any history, at any time, with any failure share.
        #[test]
        fn is_unstable_is_degraded_or_in_cooldown(
            history in attempts(),
            share in prop_oneof![Just(0.0), Just(0.5), Just(1.0)],
            later in 0u64..400_000,
        ) {
            let t0 = Instant::now();
            let mut c = StatsConfig::default();
            c.outage_failure_share = share;
            c.outage_min_attempts = 1;
            c.cooldown_after_failures = 1;
            let stats = Stats::with_origin(c, t0);
            let keys = [key("a"), key("b"), key("c")];
            let mut t = t0;
            let check = |t: Instant| -> Result<(), TestCaseError> {
                let mut cooling = false;
                for k in &keys {
                    let (degraded, cools) = (stats.is_degraded(k, t), stats.in_cooldown(k, t));
                    cooling |= cools;
                    prop_assert_eq!(stats.is_unstable(k, t), degraded || cools);
                }
                prop_assert!(!cooling || stats.any_cooling(t));
                Ok(())
            };
            check(t)?;
            for (k, after, kind) in history {
                t += Duration::from_millis(after);
                stats.record_attempt(&keys[usize::from(k)], attempt(kind), t);
                check(t)?;
            }
            check(t + Duration::from_millis(later))?;
        }
    }
}
