use std::time::Duration;

use super::rng::SimRng;

/// The 99th percentile of the standard normal distribution.
const Z99: f64 = 2.326_347_874_040_840_8;

/// Latencies are capped here so that odd parameters never overflow a `Duration` or a deadline.
const MAX_LATENCY: Duration = Duration::from_secs(3600);

/// A latency distribution: fixed, or lognormal given its median and 99th percentile.
///
/// The lognormal is `exp(mu + sigma * Z)` with `mu = ln(p50)` and `sigma = ln(p99 / p50) / z99`,
/// where `z99 ≈ 2.326` is the standard normal 99th percentile, so the distribution reproduces both
/// figures exactly. Samples are capped at one hour.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SimLatency {
    median: Duration,
    sigma: f64,
}

impl SimLatency {
    /// No latency at all; never touches a timer.
    pub const ZERO: SimLatency = SimLatency {
        median: Duration::ZERO,
        sigma: 0.0,
    };

    /// Always `latency`.
    pub fn fixed(latency: Duration) -> Self {
        SimLatency {
            median: latency.min(MAX_LATENCY),
            sigma: 0.0,
        }
    }

    /// Lognormal with median `p50` and 99th percentile `p99`.
    ///
    /// A `p99` not above `p50` (or a zero `p50`) gives the fixed latency `p50`.
    pub fn lognormal(p50: Duration, p99: Duration) -> Self {
        if p50.is_zero() || p99 <= p50 {
            return Self::fixed(p50);
        }
        let sigma = (p99.as_secs_f64() / p50.as_secs_f64()).ln() / Z99;
        SimLatency {
            median: p50.min(MAX_LATENCY),
            sigma: if sigma.is_finite() { sigma } else { 0.0 },
        }
    }

    /// The median.
    pub fn p50(&self) -> Duration {
        self.median
    }

    /// The 99th percentile (capped at one hour).
    pub fn p99(&self) -> Duration {
        self.at(Z99)
    }

    /// True when every sample is zero.
    pub fn is_zero(&self) -> bool {
        self.median.is_zero()
    }

    /// The latency at standard normal deviate `z`.
    pub(crate) fn at(&self, z: f64) -> Duration {
        if self.sigma == 0.0 || self.median.is_zero() {
            return self.median;
        }
        let secs = self.median.as_secs_f64() * (self.sigma * z).exp();
        Duration::try_from_secs_f64(secs)
            .unwrap_or(MAX_LATENCY)
            .min(MAX_LATENCY)
    }

    #[cfg(test)]
    pub(crate) fn sample(&self, rng: &mut SimRng) -> Duration {
        self.at(rng.standard_normal())
    }
}

impl Default for SimLatency {
    /// Lognormal, p50 400 ms, p99 2 s.
    fn default() -> Self {
        Self::lognormal(Duration::from_millis(400), Duration::from_secs(2))
    }
}

/// How many completion tokens ("words") a profile generates before `max_tokens` is applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimOutputLength {
    min: u32,
    max: u32,
}

impl SimOutputLength {
    /// Always `tokens`.
    pub fn fixed(tokens: u32) -> Self {
        SimOutputLength {
            min: tokens,
            max: tokens,
        }
    }

    /// Uniform in `min..=max` (the bounds are swapped if given in the wrong order).
    pub fn range(min: u32, max: u32) -> Self {
        SimOutputLength {
            min: min.min(max),
            max: min.max(max),
        }
    }

    /// The smallest length.
    pub fn min(&self) -> u32 {
        self.min
    }

    /// The largest length.
    pub fn max(&self) -> u32 {
        self.max
    }

    pub(crate) fn pick(&self, rng: &mut SimRng) -> u32 {
        let span = u64::from(self.max - self.min) + 1;
        // `below(span) < span <= u32::MAX + 1`, so the sum stays within `max`.
        self.min + rng.below(span) as u32
    }
}

impl Default for SimOutputLength {
    /// 16 to 64 tokens.
    fn default() -> Self {
        Self::range(16, 64)
    }
}

/// What a simulated request does: succeed, or fail in one of the ways real providers fail.
///
/// Outcomes are drawn per request from a profile's failure rates
/// ([`SimProfile::with_failure`]) or forced by its script ([`SimProfile::with_script`],
/// [`ProfileHandle::push_script`](super::ProfileHandle::push_script)). See the
/// [module docs](super#failure-modes) for what each one looks like on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SimOutcome {
    /// A normal answer.
    Ok,
    /// An HTTP error status with an OpenAI-style body; `429` adds `Retry-After`.
    Status(u16),
    /// The response future fails with a [`SimError`](super::SimError) whose `is_connect()` is true.
    ConnectError,
    /// The response head never arrives.
    Stall,
    /// The head (and, for streams, the role chunk and some tokens) arrives, then nothing ever again.
    StallBody,
    /// The head arrives only after the profile's timeout delay; the answer is then normal.
    Timeout,
    /// A 200 whose body is not valid JSON; for streams one `data:` line is not valid JSON.
    MalformedJson,
    /// The body ends early: no `finish_reason`, no usage, no `[DONE]`.
    Truncated,
    /// After some content, an error event (`finish_reason: "error"`) ends the stream.
    MidStreamError,
    /// After some content, the body returns an `Err` frame.
    BodyError,
}

/// How one simulated endpoint behaves: latency, speed, output length and failures.
///
/// Build one with [`SimProfile::default`], [`SimProfile::instant`] or [`SimProfile::from_observed`]
/// and refine it with the `with_*` methods.
///
/// ```
/// use std::time::Duration;
/// use tower_ai_gateway::sim::{SimLatency, SimOutcome, SimOutputLength, SimProfile};
///
/// let profile = SimProfile::from_observed(350.0, 2400.0, 85.0)
///     .with_output_tokens(SimOutputLength::range(20, 200))
///     .with_failure(SimOutcome::Status(503), 0.02)
///     .with_failure(SimOutcome::Status(429), 0.01)
///     .with_keep_alive(Duration::from_secs(1))
///     .with_script([SimOutcome::Status(502), SimOutcome::Ok]);
/// assert_eq!(profile.ttft().p50(), Duration::from_millis(350));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct SimProfile {
    pub(crate) ttft: SimLatency,
    pub(crate) throughput: f64,
    pub(crate) output: SimOutputLength,
    pub(crate) failures: Vec<(SimOutcome, f64)>,
    pub(crate) script: Vec<SimOutcome>,
    pub(crate) keep_alive: Option<Duration>,
    pub(crate) retry_after: Duration,
    pub(crate) retry_after_ms: bool,
    pub(crate) timeout_delay: Duration,
    pub(crate) fail_after_tokens: Option<u32>,
    pub(crate) min_event_interval: Duration,
    pub(crate) tool_calls: bool,
}

impl Default for SimProfile {
    /// TTFT lognormal (p50 400 ms, p99 2 s), 80 tokens/s, 16 to 64 tokens, no failures, no
    /// keep-alives, `Retry-After: 1`, timeout delay 300 s.
    fn default() -> Self {
        SimProfile {
            ttft: SimLatency::default(),
            throughput: 80.0,
            output: SimOutputLength::default(),
            failures: Vec::new(),
            script: Vec::new(),
            keep_alive: None,
            retry_after: Duration::from_secs(1),
            retry_after_ms: false,
            timeout_delay: Duration::from_secs(300),
            fail_after_tokens: None,
            min_event_interval: Duration::from_millis(5),
            tool_calls: false,
        }
    }
}

impl SimProfile {
    /// No latency and unbounded throughput: answers never touch a timer. 16 to 64 tokens.
    pub fn instant() -> Self {
        SimProfile {
            ttft: SimLatency::ZERO,
            throughput: f64::INFINITY,
            ..Self::default()
        }
    }

    /// A profile seeded from an endpoint's observed statistics (the catalog's `latency_last_30m`
    /// p50/p99 in milliseconds and `throughput_last_30m` p50 in tokens per second).
    ///
    /// Latency is taken as time to first token. Values that are not finite or not positive fall
    /// back to the [`Default`] figures.
    pub fn from_observed(latency_p50_ms: f64, latency_p99_ms: f64, throughput_p50: f64) -> Self {
        let ms = |v: f64| {
            (v.is_finite() && v > 0.0)
                .then(|| Duration::try_from_secs_f64(v / 1000.0).ok())
                .flatten()
        };
        let default = Self::default();
        let ttft = match (ms(latency_p50_ms), ms(latency_p99_ms)) {
            (Some(p50), Some(p99)) => SimLatency::lognormal(p50, p99),
            (Some(p50), None) => SimLatency::fixed(p50),
            _ => default.ttft,
        };
        let throughput = if throughput_p50.is_finite() && throughput_p50 > 0.0 {
            throughput_p50
        } else {
            default.throughput
        };
        SimProfile {
            ttft,
            throughput,
            ..default
        }
    }

    /// Sets the time-to-first-token distribution.
    #[must_use]
    pub fn with_ttft(mut self, ttft: SimLatency) -> Self {
        self.ttft = ttft;
        self
    }

    /// Sets the generation speed in tokens per second. Infinite, zero, negative or NaN means
    /// "unbounded": all tokens are available at the first-token time.
    #[must_use]
    pub fn with_throughput(mut self, tokens_per_sec: f64) -> Self {
        self.throughput = tokens_per_sec;
        self
    }

    /// Sets the output length distribution.
    #[must_use]
    pub fn with_output_tokens(mut self, output: SimOutputLength) -> Self {
        self.output = output;
        self
    }

    /// Adds a failure mode drawn with probability `rate` per request.
    ///
    /// Rates are checked in the order they were added against one uniform draw; whatever is left
    /// up to 1 is [`SimOutcome::Ok`]. Rates that are not finite or negative count as 0, and rates
    /// beyond a total of 1 are never reached.
    #[must_use]
    pub fn with_failure(mut self, outcome: SimOutcome, rate: f64) -> Self {
        self.failures.push((outcome, rate));
        self
    }

    /// Forces the outcomes of the next requests, in order, before any sampling.
    ///
    /// The script is copied into the provider when it is built; every request pops one entry.
    #[must_use]
    pub fn with_script(mut self, outcomes: impl IntoIterator<Item = SimOutcome>) -> Self {
        self.script.extend(outcomes);
        self
    }

    /// Sends a `: keep-alive` SSE comment every `interval` while a stream waits for its first
    /// token. Off by default.
    #[must_use]
    pub fn with_keep_alive(mut self, interval: Duration) -> Self {
        self.keep_alive = (!interval.is_zero()).then_some(interval);
        self
    }

    /// Sets the `Retry-After` of 429 answers (whole seconds, rounded up, in `Retry-After`).
    #[must_use]
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = after;
        self
    }

    /// Also sends `retry-after-ms` on 429 answers.
    #[must_use]
    pub fn with_retry_after_ms(mut self, enabled: bool) -> Self {
        self.retry_after_ms = enabled;
        self
    }

    /// Sets how long a [`SimOutcome::Timeout`] head takes (default 300 s).
    #[must_use]
    pub fn with_timeout_delay(mut self, delay: Duration) -> Self {
        self.timeout_delay = delay.min(MAX_LATENCY);
        self
    }

    /// Sets after how many content tokens mid-stream failures strike (default: half the output,
    /// rounded down). Capped at the output length.
    #[must_use]
    pub fn with_fail_after_tokens(mut self, tokens: u32) -> Self {
        self.fail_after_tokens = Some(tokens);
        self
    }

    /// Sets the shortest gap between two content events (default 5 ms). When tokens come faster
    /// than that, several are sent per SSE event. With unbounded throughput, 8 tokens go in each
    /// event.
    #[must_use]
    pub fn with_min_event_interval(mut self, interval: Duration) -> Self {
        self.min_event_interval = interval;
        self
    }

    /// Answers chat requests that offer function `tools` with a tool call instead of text (off
    /// by default). See the [module docs](super#tool-calls) for which function is called, how
    /// its arguments are made and when the answer is text after all.
    #[must_use]
    pub fn with_tool_calls(mut self, enabled: bool) -> Self {
        self.tool_calls = enabled;
        self
    }

    /// Whether this profile answers requests that offer tools with tool calls.
    pub fn tool_calls(&self) -> bool {
        self.tool_calls
    }

    /// The time-to-first-token distribution.
    pub fn ttft(&self) -> SimLatency {
        self.ttft
    }

    /// The generation speed in tokens per second, `None` if unbounded.
    pub fn throughput(&self) -> Option<f64> {
        (self.throughput.is_finite() && self.throughput > 0.0).then_some(self.throughput)
    }

    /// The output length distribution.
    pub fn output_tokens(&self) -> SimOutputLength {
        self.output
    }

    /// The failure modes and their rates.
    pub fn failures(&self) -> &[(SimOutcome, f64)] {
        &self.failures
    }

    /// Picks an outcome for uniform draw `u` in `[0, 1)`.
    pub(crate) fn outcome_for(&self, u: f64) -> SimOutcome {
        let mut acc = 0.0;
        for &(outcome, rate) in &self.failures {
            if rate.is_finite() && rate > 0.0 {
                acc += rate;
                if u < acc {
                    return outcome;
                }
            }
        }
        SimOutcome::Ok
    }
}
