//! The read side of endpoint statistics, as routing sees it.
//!
//! [`ModelRouting`](crate::model_routing) and [`PercentileDeprioritize`](crate::percentile) read
//! health, latency and throughput through [`HealthSource`]. The default, [`NoStats`], knows nothing:
//! every endpoint is healthy and has no samples, so routing falls back to price.
//! [`Stats`](crate::stats::Stats) implements the trait from live traffic.

use std::fmt;
use std::sync::Arc;

use tokio::time::Instant;

use crate::catalog::EndpointKey;

/// A percentile that routing preferences can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Percentile {
    /// The median.
    P50,
    /// The 75th percentile.
    P75,
    /// The 90th percentile.
    P90,
    /// The 99th percentile.
    P99,
}

impl Percentile {
    /// All four, in ascending order.
    pub const ALL: [Percentile; 4] = [Self::P50, Self::P75, Self::P90, Self::P99];

    /// The quantile as a fraction (`0.5`, `0.75`, `0.9`, `0.99`).
    pub fn quantile(self) -> f64 {
        match self {
            Self::P50 => 0.5,
            Self::P75 => 0.75,
            Self::P90 => 0.9,
            Self::P99 => 0.99,
        }
    }

    /// `"p50"`, `"p75"`, `"p90"`, `"p99"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::P50 => "p50",
            Self::P75 => "p75",
            Self::P90 => "p90",
            Self::P99 => "p99",
        }
    }
}

/// What routing may ask about an endpoint's recent behaviour.
///
/// Every method has a "no data" default, so an implementation only overrides what it knows.
/// Implementations must be cheap: routing calls them for every candidate of every request.
pub trait HealthSource: Send + Sync + 'static {
    /// True if the endpoint had a significant outage recently (the default window is 30 s); such
    /// endpoints go last in the default order.
    fn is_degraded(&self, _key: &EndpointKey, _now: Instant) -> bool {
        false
    }

    /// True while the endpoint is cooling down after failures or a `Retry-After`.
    fn in_cooldown(&self, _key: &EndpointKey, _now: Instant) -> bool {
        false
    }

    /// [`is_degraded`](Self::is_degraded) or [`in_cooldown`](Self::in_cooldown): what routing asks
    /// of every endpoint. A source that can answer both with one lookup overrides it.
    fn is_unstable(&self, key: &EndpointKey, now: Instant) -> bool {
        self.is_degraded(key, now) || self.in_cooldown(key, now)
    }

    /// Time to first token at `pct`, in milliseconds, over the rolling window; `None` when there are
    /// too few samples to say.
    fn latency_ms(&self, _key: &EndpointKey, _pct: Percentile, _now: Instant) -> Option<f64> {
        None
    }

    /// Output tokens per second at `pct` (the pct-th percentile of requests achieve *at least* this),
    /// over the rolling window; `None` when there are too few samples to say.
    fn throughput(&self, _key: &EndpointKey, _pct: Percentile, _now: Instant) -> Option<f64> {
        None
    }

    /// Share of recent attempts that succeeded (0..=1), excluding caller-caused failures; `None` with
    /// too few samples.
    fn success_rate(&self, _key: &EndpointKey, _now: Instant) -> Option<f64> {
        None
    }
}

/// Knows nothing: every endpoint is healthy and unmeasured.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoStats;

impl HealthSource for NoStats {}

impl<T: HealthSource + ?Sized> HealthSource for Arc<T> {
    fn is_degraded(&self, key: &EndpointKey, now: Instant) -> bool {
        (**self).is_degraded(key, now)
    }
    fn in_cooldown(&self, key: &EndpointKey, now: Instant) -> bool {
        (**self).in_cooldown(key, now)
    }
    fn is_unstable(&self, key: &EndpointKey, now: Instant) -> bool {
        (**self).is_unstable(key, now)
    }
    fn latency_ms(&self, key: &EndpointKey, pct: Percentile, now: Instant) -> Option<f64> {
        (**self).latency_ms(key, pct, now)
    }
    fn throughput(&self, key: &EndpointKey, pct: Percentile, now: Instant) -> Option<f64> {
        (**self).throughput(key, pct, now)
    }
    fn success_rate(&self, key: &EndpointKey, now: Instant) -> Option<f64> {
        (**self).success_rate(key, now)
    }
}

/// A shared, type-erased health source.
#[derive(Clone)]
pub struct SharedHealth(pub Arc<dyn HealthSource>);

impl Default for SharedHealth {
    fn default() -> Self {
        SharedHealth(Arc::new(NoStats))
    }
}

impl fmt::Debug for SharedHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedHealth(..)")
    }
}
