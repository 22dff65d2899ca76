//! Live per-endpoint statistics: latency, throughput, success, outages, cooldowns and uptime.
//!
//! [`Stats`] is the write side (the provider-fallback layer records each [`Attempt`], the usage
//! meter records each finished [`Generation`]) and implements [`HealthSource`], the read side
//! routing uses. Statistics are kept per [`EndpointKey`]; an endpoint is created on its first
//! record. [`Stats::snapshot`] reports what OpenRouter's `GET /models/{id}/endpoints` reports
//! (`uptime_last_5m`, `uptime_last_30m`, `uptime_last_1d`, `latency_last_30m`,
//! `throughput_last_30m`), and [`Stats::snapshot_all`] feeds a metrics page.
//!
//! Time is always passed in as a [`tokio::time::Instant`] (`now`), so tests control it with
//! explicit instants or `#[tokio::test(start_paused = true)]` and `tokio::time::advance`.
//!
//! # What is measured
//!
//! - **Latency**: time to first token, in milliseconds. For a non-streamed response it is the
//!   time to the response head, reported through [`Attempt::latency`]; for a stream it is the
//!   time to the first data frame, reported through [`Generation::ttft`]. Report it once per
//!   request. Only successful attempts give latency samples.
//! - **Throughput**: [`Generation::completion_tokens`] divided by [`Generation::generation_time`]
//!   (first to last token), in tokens per second. Generations with no tokens or a zero duration
//!   (a non-streamed body arrives at once) give no throughput sample.
//! - **Percentiles** follow OpenRouter: latency `pXX` is the value XX % of requests are at or
//!   below; throughput `pXX` is the value XX % of requests reach *at least* (so throughput `p99`
//!   is the 1st percentile of the samples).
//!
//! # Windows
//!
//! | What | Default | Config |
//! |---|---|---|
//! | routing percentiles, `success_rate` | 5 min as 10 × 30 s slots | [`StatsConfig::routing_window`], [`routing_slots`](StatsConfig::routing_slots) |
//! | snapshot `*_last_30m` percentiles | 30 min as 10 × 3 min slots | [`StatsConfig::report_window`], [`report_slots`](StatsConfig::report_slots) |
//! | outage detection | 30 s as 30 × 1 s slots | [`StatsConfig::outage_window`] |
//! | uptime | the last 5, 30 and 1440 one-minute slots | [`StatsConfig::uptime_min_attempts`] |
//!
//! OpenRouter routes on a 5-minute window but reports 30-minute percentiles, so both are kept.
//! A window covers its current slot and the slots before it: a sample leaves the window between
//! `window − slot` and `window` after it was recorded. Samples recorded with a `now` older than
//! the window are dropped.
//!
//! Below [`StatsConfig::min_samples`] samples (default 5) in the routing window,
//! [`HealthSource::latency_ms`], [`HealthSource::throughput`] and
//! [`HealthSource::success_rate`] return `None`; routing treats an endpoint with too few samples
//! as meeting every threshold. The snapshot's percentiles use the same minimum.
//!
//! # What counts against an endpoint
//!
//! | [`Outcome`] | uptime, success rate, outage | cooldown streak |
//! |---|---|---|
//! | [`Success`](Outcome::Success) | success | resets it |
//! | [`ServerError`](FailureKind::ServerError), [`Timeout`](FailureKind::Timeout), [`Connect`](FailureKind::Connect), [`InvalidResponse`](FailureKind::InvalidResponse) | failure | +1 |
//! | [`CredentialsRejected`](FailureKind::CredentialsRejected) | failure (the endpoint is unusable for us) | +1 |
//! | [`RateLimited`](FailureKind::RateLimited) | **not counted** (as OpenRouter) | +1 |
//! | [`CallerError`](FailureKind::CallerError) | **not counted** | unchanged |
//!
//! Rate limits are excluded from uptime and from outage detection, as OpenRouter excludes them
//! from uptime: a 429 says the endpoint is busy for *us*, not that it is down. They are handled
//! by the cooldown instead (and by `Retry-After`). Every outcome is counted in the totals.
//!
//! # Outages
//!
//! [`HealthSource::is_degraded`] ("a significant outage in the last 30 s") is true when either
//!
//! - **share rule**: the outage window holds at least [`outage_min_attempts`](StatsConfig::outage_min_attempts)
//!   (5) counted attempts and at least [`outage_failure_share`](StatsConfig::outage_failure_share)
//!   (50 %) of them failed, or
//! - **streak rule**: the last [`outage_consecutive_failures`](StatsConfig::outage_consecutive_failures)
//!   (3) counted attempts all failed and the last of them is within the outage window.
//!
//! It recovers when failures age out of the window or successes bring the share down (a success
//! ends the streak at once).
//!
//! # Cooldowns
//!
//! After [`cooldown_after_failures`](StatsConfig::cooldown_after_failures) (3) consecutive
//! failures (rate limits included, caller errors ignored) the endpoint cools down for
//! [`cooldown_base`](StatsConfig::cooldown_base) (1 s), doubled on each further failure, capped
//! at [`cooldown_max`](StatsConfig::cooldown_max) (60 s). A success ends this cooldown. A retry
//! hint on a failed attempt (`Retry-After` / `retry-after-ms`, see [`parse_retry_after`]) imposes
//! a cooldown of its own, capped at [`retry_after_cap`](StatsConfig::retry_after_cap) (60 s),
//! which a success does not end; [`HealthSource::in_cooldown`] is true while either runs.
//!
//! # Uptime
//!
//! As OpenRouter's newer SDK defines it: the percentage of minutes in which at least 80 %
//! ([`uptime_success_share`](StatsConfig::uptime_success_share)) of counted attempts succeeded,
//! among the minutes with at least 10 counted attempts
//! ([`uptime_min_attempts`](StatsConfig::uptime_min_attempts); lower it for low traffic). The
//! current, partial minute is included. `None` when no minute qualifies.
//!
//! # Histograms and their error
//!
//! Latency and throughput go into fixed-size log-bucketed histograms (DDSketch's mapping, written
//! here): bucket `i` holds `(0.1·γ^(i−1), 0.1·γ^i]` with `γ = 1.02 / 0.98`, and reports the point
//! 2 % from both edges. **A reported percentile is within 2 % (relative) of a sample of the
//! requested rank** for values in `0.1..=1_000_000` (ms or tokens/s); smaller values read as 0.1,
//! larger ones as ~10⁶. That is 404 `u32` counters (1.6 KiB) per histogram. Each window keeps its
//! slot histograms plus a running sum (a slot is subtracted when it expires), so a query reads
//! one histogram, and the four percentiles are cached until the next record or expiry.
//! This was chosen over the `hdrhistogram` crate by benchmark (`benches/stats.rs`, on a loaded
//! 2-core machine): hdrhistogram with 2 significant figures needs 2304 counters (9 KiB) per
//! histogram against 404 (+ 26 group sums) here, takes ~1.9 µs for the four quantiles of a
//! 10 000-sample histogram and ~14 µs to add and subtract one (the rotation step), while
//! recording (~12 ns) is cheaper than our `ln`-based mapping but negligible next to the rest of a
//! record. Fixed arrays merge and subtract trivially and add no dependency. Group sums of 16
//! buckets let a quantile walk skip empty stretches.
//!
//! Memory per endpoint is bounded: 44 histograms with the default 10 + 10 slots (~75 KiB) plus a
//! 1440-minute counter ring (~11 KiB) and small rings for outages and success rate.
//!
//! # Concurrency
//!
//! Endpoints live in an [`arc_swap`]-published map: lookups are lock-free, and a lock is taken
//! only to insert a new endpoint (copying the map; endpoints come from the catalog, so their
//! number is bounded by it). Each endpoint's state sits behind its own small mutex, held for
//! O(1) work on record (a query may additionally walk one histogram when its cache is stale).
//! Measured (release, loaded 2-core machine, 50 endpoints): `record_attempt` ~190 ns,
//! `record_generation` ~235 ns, a cached `latency_ms` ~95 ns, `latency_ms` right after a record
//! (recompute) ~450 ns, `snapshot` ~530 ns.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use tokio::time::Instant;
//! use tower_ai_gateway::catalog::EndpointKey;
//! use tower_ai_gateway::health::{HealthSource, Percentile};
//! use tower_ai_gateway::stats::{Attempt, FailureKind, Generation, Outcome, Stats, StatsConfig};
//!
//! let stats = Stats::new(StatsConfig::default());
//! let key = EndpointKey::new("meta-llama/llama-3.3-70b-instruct", "deepinfra/turbo");
//! let now = Instant::now();
//!
//! for ms in [200, 250, 300, 350, 400] {
//!     // The fallback layer: one attempt, non-streamed, head after `ms`.
//!     stats.record_attempt(&key, Attempt::new(Outcome::Success).latency(Duration::from_millis(ms)), now);
//!     // The usage meter: 100 tokens in 2 s.
//!     stats.record_generation(&key, Generation::new(100, Duration::from_secs(2)), now);
//! }
//! let p50 = stats.latency_ms(&key, Percentile::P50, now).unwrap_or_default();
//! assert!((p50 - 300.0).abs() <= 300.0 * 0.02);
//! assert!(stats.throughput(&key, Percentile::P50, now).is_some());
//!
//! // A caller error does not count against the endpoint.
//! let bad_request = Attempt::new(Outcome::Failure(FailureKind::CallerError { status: 400 }));
//! stats.record_attempt(&key, bad_request, now);
//! assert_eq!(stats.success_rate(&key, now), Some(1.0));
//!
//! let snap = stats.snapshot(&key, now).expect("recorded above");
//! assert_eq!(snap.counts.attempts, 6);
//! let json = serde_json::to_value(&snap).expect("serializable");
//! assert!(json["latency_last_30m"]["p99"].is_number());
//! ```

mod config;
mod endpoint;
mod histogram;
mod outcome;
mod retry_after;
mod snapshot;
mod window;

#[cfg(test)]
mod tests;

pub use config::StatsConfig;
pub use outcome::{Attempt, FailureCounts, FailureKind, Generation, Outcome};
pub use retry_after::{parse_retry_after, parse_retry_after_at};
pub use snapshot::{EndpointCounts, EndpointSnapshot, PercentileStats};

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::time::Instant;

use self::config::Layout;
use self::endpoint::EndpointState;
use crate::catalog::EndpointKey;
use crate::health::{HealthSource, Percentile};

// Keys come from the catalog, not from callers, so a fast non-keyed hasher is fine (SipHash cost a
// third of a query).
type EndpointMap = crate::hash::FastMap<EndpointKey, Arc<Mutex<EndpointState>>>;

/// Live per-endpoint statistics. Cheap to clone (one `Arc`); clones share the data.
///
/// See the [module docs](self) for what is measured and how.
#[derive(Clone)]
pub struct Stats {
    shared: Arc<Shared>,
}

struct Shared {
    config: StatsConfig,
    layout: Layout,
    origin: Instant,
    endpoints: ArcSwap<EndpointMap>,
    insert: Mutex<()>,
    /// The latest end of any endpoint's cooldown ever set (ms from `origin`): before it, no
    /// endpoint can be cooling down, and cooldown queries answer without a lookup.
    cooldown_until: AtomicU64,
    /// 1 + the time (ms from `origin`) of the latest failure of any endpoint; 0 before any.
    last_failure: AtomicU64,
}

impl fmt::Debug for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stats")
            .field("config", &self.shared.config)
            .field("endpoints", &self.shared.endpoints.load().len())
            .finish()
    }
}

impl Default for Stats {
    fn default() -> Self {
        Stats::new(StatsConfig::default())
    }
}

fn lock(m: &Mutex<EndpointState>) -> MutexGuard<'_, EndpointState> {
    // A panic while holding the lock cannot leave the counters unusable; keep going.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Stats {
    /// Empty statistics with `config`. Time is measured from [`Instant::now`]; instants before it
    /// count as the origin.
    pub fn new(config: StatsConfig) -> Self {
        Self::with_origin(config, Instant::now())
    }

    /// Empty statistics whose time starts at `origin` (instants before it count as `origin`).
    pub fn with_origin(config: StatsConfig, origin: Instant) -> Self {
        Stats {
            shared: Arc::new(Shared {
                layout: Layout::new(&config),
                config,
                origin,
                endpoints: ArcSwap::from_pointee(EndpointMap::default()),
                insert: Mutex::new(()),
                cooldown_until: AtomicU64::new(0),
                last_failure: AtomicU64::new(0),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &StatsConfig {
        &self.shared.config
    }

    fn ms(&self, now: Instant) -> u64 {
        config::millis(now.saturating_duration_since(self.shared.origin))
    }

    /// Runs `f` on the state of `key` if it is known.
    fn with<R>(&self, key: &EndpointKey, f: impl FnOnce(&mut EndpointState) -> R) -> Option<R> {
        let map = self.shared.endpoints.load();
        let ep = map.get(key)?;
        let mut guard = lock(ep);
        Some(f(&mut guard))
    }

    /// Runs `f` on the state of `key`, creating it first if needed.
    fn with_or_insert<R>(&self, key: &EndpointKey, f: impl FnOnce(&mut EndpointState) -> R) -> R {
        {
            let map = self.shared.endpoints.load();
            if let Some(ep) = map.get(key) {
                return f(&mut lock(ep));
            }
        }
        let ep = {
            let _g = self
                .shared
                .insert
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let current = self.shared.endpoints.load_full();
            match current.get(key) {
                Some(ep) => Arc::clone(ep),
                None => {
                    let ep = Arc::new(Mutex::new(EndpointState::new(&self.shared.layout)));
                    let mut next = EndpointMap::clone(&current);
                    next.insert(key.clone(), Arc::clone(&ep));
                    self.shared.endpoints.store(Arc::new(next));
                    ep
                }
            }
        };
        let mut guard = lock(&ep);
        f(&mut guard)
    }

    /// Records one attempt against `key` that ended at `now` (called by the provider-fallback
    /// layer for every attempt, including the ones it retries).
    pub fn record_attempt(&self, key: &EndpointKey, attempt: Attempt, now: Instant) {
        let t = self.ms(now);
        let c = &self.shared.config;
        let remaining = self.with_or_insert(key, |s| {
            s.record_attempt(c, t, &attempt);
            s.cooldown_remaining(t)
        });
        if remaining > 0 {
            // Not cooling down (the usual case after a success): the mark need not move.
            self.shared
                .cooldown_until
                .fetch_max(t.saturating_add(remaining), Ordering::Relaxed);
        }
        if !attempt.outcome.is_success() {
            self.shared
                .last_failure
                .fetch_max(t.saturating_add(1), Ordering::Relaxed);
        }
    }

    /// False when no endpoint can be degraded at `t`: with a positive failure share, that takes
    /// a failure within the outage window (two windows are allowed for, no lookup).
    fn any_degraded(&self, t: u64) -> bool {
        let c = &self.shared.config;
        // A share of 0 (or NaN) counts any attempt: no shortcut then.
        if c.outage_failure_share.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
            return true;
        }
        let last = self.shared.last_failure.load(Ordering::Relaxed);
        let window = config::millis(c.outage_window);
        last != 0 && t < (last - 1).saturating_add(window.saturating_mul(2))
    }

    /// True while no endpoint has ever failed or cooled down (with a positive failure share):
    /// then none is degraded or cooling down at any time, which takes no clock reading to say.
    fn calm(&self) -> bool {
        self.shared.cooldown_until.load(Ordering::Relaxed) == 0
            && self.shared.last_failure.load(Ordering::Relaxed) == 0
            && self.shared.config.outage_failure_share > 0.0
    }

    /// False when no endpoint can be cooling down at `t` (no lookup).
    fn any_cooldown(&self, t: u64) -> bool {
        t < self.shared.cooldown_until.load(Ordering::Relaxed)
    }

    /// False when no endpoint can be cooling down at `now`: one read, so that a caller about to
    /// ask about several endpoints can skip them all.
    pub(crate) fn any_cooling(&self, now: Instant) -> bool {
        // Never set, the mark needs no clock reading.
        self.shared.cooldown_until.load(Ordering::Relaxed) != 0 && self.any_cooldown(self.ms(now))
    }

    /// Records a finished response body of `key` at `now` (called by the usage meter): TTFT as a
    /// latency sample if set, and a throughput sample if tokens and duration allow one.
    pub fn record_generation(&self, key: &EndpointKey, generation: Generation, now: Instant) {
        let t = self.ms(now);
        self.with_or_insert(key, |s| s.record_generation(t, &generation));
    }

    /// Time left in the cooldown of `key` at `now`, `None` when not cooling down.
    pub fn cooldown_remaining(&self, key: &EndpointKey, now: Instant) -> Option<Duration> {
        let t = self.ms(now);
        if !self.any_cooldown(t) {
            return None;
        }
        let ms = self.with(key, |s| s.cooldown_remaining(t))?;
        (ms > 0).then(|| Duration::from_millis(ms))
    }

    /// Totals of `key` since it was first recorded.
    pub fn counts(&self, key: &EndpointKey) -> Option<EndpointCounts> {
        self.with(key, |s| s.counts())
    }

    /// Failures of `key` by kind since it was first recorded.
    pub fn failure_counts(&self, key: &EndpointKey) -> Option<FailureCounts> {
        self.with(key, |s| s.failure_counts())
    }

    /// The endpoints recorded so far, sorted.
    pub fn keys(&self) -> Vec<EndpointKey> {
        let mut keys: Vec<_> = self.shared.endpoints.load().keys().cloned().collect();
        keys.sort();
        keys
    }

    /// The statistics of `key` at `now`, `None` if it was never recorded.
    pub fn snapshot(&self, key: &EndpointKey, now: Instant) -> Option<EndpointSnapshot> {
        let t = self.ms(now);
        let c = &self.shared.config;
        self.with(key, |s| s.snapshot(c, key, t))
    }

    /// Snapshots of every recorded endpoint at `now`, sorted by key.
    pub fn snapshot_all(&self, now: Instant) -> Vec<EndpointSnapshot> {
        let t = self.ms(now);
        let c = &self.shared.config;
        let map = self.shared.endpoints.load();
        let mut out: Vec<_> = map
            .iter()
            .map(|(k, ep)| lock(ep).snapshot(c, k, t))
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }
}

impl HealthSource for Stats {
    fn is_degraded(&self, key: &EndpointKey, now: Instant) -> bool {
        let t = self.ms(now);
        if !self.any_degraded(t) {
            return false;
        }
        let c = &self.shared.config;
        self.with(key, |s| s.is_degraded(c, t)).unwrap_or(false)
    }

    fn in_cooldown(&self, key: &EndpointKey, now: Instant) -> bool {
        self.cooldown_remaining(key, now).is_some()
    }

    fn is_unstable(&self, key: &EndpointKey, now: Instant) -> bool {
        if self.calm() {
            return false;
        }
        let t = self.ms(now);
        if !self.any_cooldown(t) && !self.any_degraded(t) {
            return false;
        }
        let c = &self.shared.config;
        self.with(key, |s| s.is_degraded(c, t) || s.cooldown_remaining(t) > 0)
            .unwrap_or(false)
    }

    fn latency_ms(&self, key: &EndpointKey, pct: Percentile, now: Instant) -> Option<f64> {
        let t = self.ms(now);
        let min = self.shared.config.min_samples;
        self.with(key, |s| s.latency_ms(t, pct, min)).flatten()
    }

    fn throughput(&self, key: &EndpointKey, pct: Percentile, now: Instant) -> Option<f64> {
        let t = self.ms(now);
        let min = self.shared.config.min_samples;
        self.with(key, |s| s.throughput(t, pct, min)).flatten()
    }

    fn success_rate(&self, key: &EndpointKey, now: Instant) -> Option<f64> {
        let t = self.ms(now);
        let min = self.shared.config.min_samples;
        self.with(key, |s| s.success_rate(t, min)).flatten()
    }
}
