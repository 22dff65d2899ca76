//! The state of one endpoint. All methods take time as milliseconds since the `Stats` origin.

use super::config::{millis, Layout, StatsConfig};
use super::histogram::bucket_of;
use super::outcome::{Attempt, FailureCounts, Generation, Outcome};
use super::snapshot::{EndpointCounts, EndpointSnapshot, PercentileStats};
use super::window::{Direction, HistogramWindow, TallyRing};
use crate::catalog::EndpointKey;
use crate::health::Percentile;

/// One minute, in milliseconds.
const MINUTE_MS: u64 = 60_000;
/// Minutes kept for `uptime_last_1d`.
const DAY_MINUTES: usize = 1440;

pub(crate) fn pct_index(pct: Percentile) -> usize {
    match pct {
        Percentile::P50 => 0,
        Percentile::P75 => 1,
        Percentile::P90 => 2,
        Percentile::P99 => 3,
    }
}

#[derive(Debug)]
pub(crate) struct EndpointState {
    latency: HistogramWindow,
    latency_report: HistogramWindow,
    throughput: HistogramWindow,
    throughput_report: HistogramWindow,
    /// Counted attempts over the routing window (success rate).
    recent: TallyRing,
    /// Counted attempts over the outage window.
    outage: TallyRing,
    /// Counted attempts per minute over a day (uptime).
    minutes: TallyRing,
    /// Consecutive failures for the cooldown (rate limits included, caller errors ignored).
    streak: u32,
    /// Consecutive counted failures for the outage streak rule.
    outage_streak: u32,
    last_failure_ms: Option<u64>,
    backoff_until: u64,
    hint_until: u64,
    counts: EndpointCounts,
}

impl EndpointState {
    pub(crate) fn new(l: &Layout) -> Self {
        EndpointState {
            latency: HistogramWindow::new(l.routing_slot_ms, l.routing_slots, Direction::AtMost),
            latency_report: HistogramWindow::new(
                l.report_slot_ms,
                l.report_slots,
                Direction::AtMost,
            ),
            throughput: HistogramWindow::new(
                l.routing_slot_ms,
                l.routing_slots,
                Direction::AtLeast,
            ),
            throughput_report: HistogramWindow::new(
                l.report_slot_ms,
                l.report_slots,
                Direction::AtLeast,
            ),
            recent: TallyRing::new(l.routing_slot_ms, l.routing_slots),
            outage: TallyRing::new(l.outage_slot_ms, l.outage_slots),
            minutes: TallyRing::new(MINUTE_MS, DAY_MINUTES),
            streak: 0,
            outage_streak: 0,
            last_failure_ms: None,
            backoff_until: 0,
            hint_until: 0,
            counts: EndpointCounts::default(),
        }
    }

    /// One latency sample in both latency windows (its bucket computed once).
    fn latency_sample(&mut self, t: u64, ms: f64) {
        if ms.is_nan() {
            return;
        }
        let b = bucket_of(ms);
        self.latency.record_bucket(t, b);
        self.latency_report.record_bucket(t, b);
    }

    pub(crate) fn record_attempt(&mut self, c: &StatsConfig, t: u64, a: &Attempt) {
        self.counts.attempts = self.counts.attempts.saturating_add(1);
        match &a.outcome {
            Outcome::Success => {
                self.counts.successes = self.counts.successes.saturating_add(1);
                self.streak = 0;
                self.outage_streak = 0;
                self.backoff_until = 0;
                if let Some(l) = a.latency {
                    self.latency_sample(t, l.as_secs_f64() * 1000.0);
                }
            }
            Outcome::Failure(kind) => {
                self.counts.failures.bump(kind);
                if kind.counts_against_uptime() {
                    self.outage_streak = self.outage_streak.saturating_add(1);
                    self.last_failure_ms = Some(t);
                }
                if !matches!(kind, super::FailureKind::CallerError { .. }) {
                    self.streak = self.streak.saturating_add(1);
                    let threshold = c.cooldown_after_failures.max(1);
                    if self.streak >= threshold {
                        let doublings = (self.streak - threshold).min(40);
                        let d = millis(c.cooldown_base)
                            .saturating_mul(1u64 << doublings)
                            .min(millis(c.cooldown_max));
                        self.backoff_until = self.backoff_until.max(t.saturating_add(d));
                    }
                }
            }
        }
        if let Some(hint) = a.retry_hint() {
            if !a.outcome.is_success() {
                let d = hint.min(c.retry_after_cap);
                self.hint_until = self.hint_until.max(t.saturating_add(millis(d)));
            }
        }
        if a.outcome.is_counted() {
            let ok = a.outcome.is_success();
            self.recent.record(t, ok);
            self.outage.record(t, ok);
            self.minutes.record(t, ok);
        }
    }

    pub(crate) fn record_generation(&mut self, t: u64, g: &Generation) {
        self.counts.generations = self.counts.generations.saturating_add(1);
        self.counts.completion_tokens = self
            .counts
            .completion_tokens
            .saturating_add(g.completion_tokens);
        if let Some(ttft) = g.ttft {
            self.latency_sample(t, ttft.as_secs_f64() * 1000.0);
        }
        if let Some(tps) = g.tokens_per_second().filter(|v| !v.is_nan()) {
            let b = bucket_of(tps);
            self.throughput.record_bucket(t, b);
            self.throughput_report.record_bucket(t, b);
        }
    }

    pub(crate) fn latency_ms(&mut self, t: u64, pct: Percentile, min: u64) -> Option<f64> {
        self.latency.percentiles(t, min).map(|a| a[pct_index(pct)])
    }

    pub(crate) fn throughput(&mut self, t: u64, pct: Percentile, min: u64) -> Option<f64> {
        self.throughput
            .percentiles(t, min)
            .map(|a| a[pct_index(pct)])
    }

    pub(crate) fn success_rate(&mut self, t: u64, min: u64) -> Option<f64> {
        let s = self.recent.sum(t);
        if u64::from(s.attempts) < min.max(1) {
            return None;
        }
        Some(f64::from(s.successes) / f64::from(s.attempts))
    }

    pub(crate) fn is_degraded(&mut self, c: &StatsConfig, t: u64) -> bool {
        let window = millis(c.outage_window);
        if c.outage_consecutive_failures > 0 && self.outage_streak >= c.outage_consecutive_failures
        {
            if let Some(last) = self.last_failure_ms {
                if t.saturating_sub(last) < window {
                    return true;
                }
            }
        }
        let s = self.outage.sum(t);
        s.attempts > 0
            && s.attempts >= c.outage_min_attempts
            && f64::from(s.failures()) >= c.outage_failure_share * f64::from(s.attempts)
    }

    pub(crate) fn cooldown_remaining(&self, t: u64) -> u64 {
        self.backoff_until.max(self.hint_until).saturating_sub(t)
    }

    /// Share (percent) of qualifying minutes among the last `minutes` that were up.
    pub(crate) fn uptime(&mut self, c: &StatsConfig, t: u64, minutes: usize) -> Option<f64> {
        let min = c.uptime_min_attempts.max(1);
        let share = c.uptime_success_share;
        let (mut qualified, mut up) = (0u32, 0u32);
        for m in self.minutes.recent(t, minutes) {
            if m.attempts >= min {
                qualified += 1;
                if f64::from(m.successes) >= share * f64::from(m.attempts) {
                    up += 1;
                }
            }
        }
        (qualified > 0).then(|| 100.0 * f64::from(up) / f64::from(qualified))
    }

    pub(crate) fn counts(&self) -> EndpointCounts {
        self.counts
    }

    pub(crate) fn failure_counts(&self) -> FailureCounts {
        self.counts.failures
    }

    pub(crate) fn snapshot(
        &mut self,
        c: &StatsConfig,
        key: &EndpointKey,
        t: u64,
    ) -> EndpointSnapshot {
        let min = c.min_samples;
        EndpointSnapshot {
            key: key.clone(),
            model_id: key.model().to_owned(),
            tag: key.tag().to_owned(),
            uptime_last_5m: self.uptime(c, t, 5),
            uptime_last_30m: self.uptime(c, t, 30),
            uptime_last_1d: self.uptime(c, t, DAY_MINUTES),
            latency_last_30m: self
                .latency_report
                .percentiles(t, min)
                .map(PercentileStats::from_array),
            throughput_last_30m: self
                .throughput_report
                .percentiles(t, min)
                .map(PercentileStats::from_array),
            latency_routing: self
                .latency
                .percentiles(t, min)
                .map(PercentileStats::from_array),
            throughput_routing: self
                .throughput
                .percentiles(t, min)
                .map(PercentileStats::from_array),
            success_rate: self.success_rate(t, min),
            degraded: self.is_degraded(c, t),
            cooldown_remaining_ms: self.cooldown_remaining(t),
            counts: self.counts,
        }
    }
}
