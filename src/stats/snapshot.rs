//! What a snapshot reports.

use serde::Serialize;

use super::outcome::FailureCounts;
use crate::catalog::EndpointKey;
use crate::health::Percentile;

/// p50/p75/p90/p99 of a metric, named as OpenRouter's `PercentileStats`.
///
/// For latency (milliseconds) `pXX` is the value XX % of requests are at or below; for throughput
/// (tokens per second) it is the value XX % of requests reach at least.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct PercentileStats {
    /// Median.
    pub p50: f64,
    /// 75th percentile.
    pub p75: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
}

impl PercentileStats {
    pub(crate) fn from_array(a: [f64; 4]) -> Self {
        PercentileStats {
            p50: a[0],
            p75: a[1],
            p90: a[2],
            p99: a[3],
        }
    }

    /// The value at `pct`.
    pub fn get(&self, pct: Percentile) -> f64 {
        match pct {
            Percentile::P50 => self.p50,
            Percentile::P75 => self.p75,
            Percentile::P90 => self.p90,
            Percentile::P99 => self.p99,
        }
    }
}

/// Totals since the endpoint was first seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct EndpointCounts {
    /// Every recorded attempt, whatever its outcome.
    pub attempts: u64,
    /// Successful attempts.
    pub successes: u64,
    /// Failed attempts by kind.
    pub failures: FailureCounts,
    /// Recorded generations (finished bodies).
    pub generations: u64,
    /// Completion tokens over all generations.
    pub completion_tokens: u64,
}

/// One endpoint's statistics at one instant: the fields of OpenRouter's `/endpoints` plus the
/// routing view and totals. Serializes with OpenRouter's field names.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct EndpointSnapshot {
    /// The endpoint (serialized as `model_id` and `tag`).
    #[serde(skip)]
    pub key: EndpointKey,
    /// The model id.
    pub model_id: String,
    /// The endpoint tag.
    pub tag: String,
    /// Uptime percent (0..=100) over the last 5 minutes; `None` if no minute qualified.
    pub uptime_last_5m: Option<f64>,
    /// Uptime percent over the last 30 minutes.
    pub uptime_last_30m: Option<f64>,
    /// Uptime percent over the last day.
    pub uptime_last_1d: Option<f64>,
    /// Time to first token in milliseconds over the report window (30 min by default).
    pub latency_last_30m: Option<PercentileStats>,
    /// Completion tokens per second over the report window.
    pub throughput_last_30m: Option<PercentileStats>,
    /// Time to first token over the routing window (5 min by default): what routing sees.
    pub latency_routing: Option<PercentileStats>,
    /// Throughput over the routing window.
    pub throughput_routing: Option<PercentileStats>,
    /// Success share (0..=1) over the routing window, as
    /// [`HealthSource::success_rate`](crate::health::HealthSource::success_rate).
    pub success_rate: Option<f64>,
    /// Significant outage in the outage window.
    pub degraded: bool,
    /// Milliseconds of cooldown left (0 when not cooling down).
    pub cooldown_remaining_ms: u64,
    /// Totals.
    pub counts: EndpointCounts,
}
