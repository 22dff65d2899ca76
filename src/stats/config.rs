//! Windows and thresholds.

use std::time::Duration;

/// Windows and thresholds of [`Stats`](super::Stats). The defaults are described in the
/// [module docs](super); start from [`StatsConfig::default()`] and change fields.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct StatsConfig {
    /// Rolling window for routing (`latency_ms`, `throughput`, `success_rate`). Default 5 min.
    pub routing_window: Duration,
    /// Sub-windows the routing window rotates through. Default 10 (30 s each).
    pub routing_slots: usize,
    /// Rolling window of the snapshot's `latency_last_30m` / `throughput_last_30m`. Default 30 min.
    pub report_window: Duration,
    /// Sub-windows of the report window. Default 10 (3 min each).
    pub report_slots: usize,
    /// Fewer samples (or counted attempts, for `success_rate`) than this in the window → `None`.
    /// Default 5.
    pub min_samples: u64,

    /// Window of outage detection. Default 30 s.
    pub outage_window: Duration,
    /// Share rule: at least this many counted attempts in the outage window… Default 5.
    pub outage_min_attempts: u32,
    /// …of which at least this share failed. Default 0.5.
    pub outage_failure_share: f64,
    /// Streak rule: this many counted failures in a row, the last within the outage window.
    /// Default 3; 0 disables the rule.
    pub outage_consecutive_failures: u32,

    /// Consecutive failures (rate limits included) before a cooldown starts. Default 3; 0 behaves
    /// like 1.
    pub cooldown_after_failures: u32,
    /// First cooldown; each further failure doubles it. Default 1 s.
    pub cooldown_base: Duration,
    /// Longest exponential cooldown. Default 60 s.
    pub cooldown_max: Duration,
    /// Longest cooldown a `Retry-After` hint can impose. Default 60 s.
    pub retry_after_cap: Duration,

    /// A minute counts for uptime only with at least this many counted attempts. Default 10 (as
    /// OpenRouter); lower it for low-traffic deployments and tests.
    pub uptime_min_attempts: u32,
    /// A counted minute is "up" when at least this share of its attempts succeeded. Default 0.8.
    pub uptime_success_share: f64,
}

impl Default for StatsConfig {
    fn default() -> Self {
        StatsConfig {
            routing_window: Duration::from_secs(5 * 60),
            routing_slots: 10,
            report_window: Duration::from_secs(30 * 60),
            report_slots: 10,
            min_samples: 5,
            outage_window: Duration::from_secs(30),
            outage_min_attempts: 5,
            outage_failure_share: 0.5,
            outage_consecutive_failures: 3,
            cooldown_after_failures: 3,
            cooldown_base: Duration::from_secs(1),
            cooldown_max: Duration::from_secs(60),
            retry_after_cap: Duration::from_secs(60),
            uptime_min_attempts: 10,
            uptime_success_share: 0.8,
        }
    }
}

/// Ring sizes and slot lengths in milliseconds, derived once from a config.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    pub(crate) routing_slot_ms: u64,
    pub(crate) routing_slots: usize,
    pub(crate) report_slot_ms: u64,
    pub(crate) report_slots: usize,
    pub(crate) outage_slot_ms: u64,
    pub(crate) outage_slots: usize,
}

/// Outage detection uses this many sub-windows.
const OUTAGE_SLOTS: usize = 30;
/// More sub-windows than this are not useful and cost memory.
const MAX_SLOTS: usize = 1000;

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn slot_ms(window: Duration, slots: usize) -> u64 {
    (millis(window) / slots as u64).max(1)
}

impl Layout {
    pub(crate) fn new(c: &StatsConfig) -> Self {
        let routing_slots = c.routing_slots.clamp(1, MAX_SLOTS);
        let report_slots = c.report_slots.clamp(1, MAX_SLOTS);
        Layout {
            routing_slot_ms: slot_ms(c.routing_window, routing_slots),
            routing_slots,
            report_slot_ms: slot_ms(c.report_window, report_slots),
            report_slots,
            outage_slot_ms: slot_ms(c.outage_window, OUTAGE_SLOTS),
            outage_slots: OUTAGE_SLOTS,
        }
    }
}
