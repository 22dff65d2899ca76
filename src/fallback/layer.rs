use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use tower_layer::Layer;

use super::budget::RetryBudget;
use super::policy::{DefaultPolicy, FallbackPolicy};
use super::ProviderFallback;
use crate::health::{HealthSource, SharedHealth};
use crate::route::AnswerReader;
use crate::stats::Stats;

/// What to do with candidates whose endpoint is cooling down
/// ([`HealthSource::in_cooldown`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CooldownMode {
    /// Try them only after every other candidate (default).
    #[default]
    Defer,
    /// Never try them; when every candidate is cooling down, answer 503 without calling anyone.
    FailFast,
    /// Ignore cooldowns.
    Ignore,
}

/// Default attempt timeout: 120 s.
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(120);
/// Default time-to-first-token timeout for streams: 60 s.
pub const DEFAULT_FIRST_TOKEN_TIMEOUT: Duration = Duration::from_secs(60);
/// Default stream idle timeout (longest silence after the first content): 60 s.
pub const DEFAULT_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default overall deadline: 300 s.
pub const DEFAULT_OVERALL_TIMEOUT: Duration = Duration::from_secs(300);
/// Default cap on a buffered non-streamed response: 32 MiB.
pub const DEFAULT_MAX_BUFFER: usize = 32 * 1024 * 1024;

/// Caller headers forwarded by default (see the [module docs](super#headers)).
const DEFAULT_FORWARD: &[&str] = &[
    "user-agent",
    "accept",
    "x-request-id",
    "traceparent",
    "tracestate",
];

/// Headers that can never be forwarded, whatever the configuration.
pub(crate) const NEVER_FORWARD: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "cookie",
    "set-cookie",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "content-type",
    "content-encoding",
];

#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) policy: Arc<dyn FallbackPolicy>,
    pub(crate) stats: Option<Stats>,
    pub(crate) health: Option<SharedHealth>,
    pub(crate) budget: Option<RetryBudget>,
    pub(crate) cooldown: CooldownMode,
    pub(crate) attempt_timeout: Duration,
    pub(crate) first_token_timeout: Duration,
    pub(crate) stream_idle_timeout: Duration,
    pub(crate) overall_timeout: Duration,
    pub(crate) max_buffer: usize,
    pub(crate) forward: Vec<HeaderName>,
    pub(crate) stream_latency: bool,
    /// The reader of answers lent by the meter above (`GatewayLayer` sets it): see
    /// [`AnswerReader`].
    pub(crate) reader: Option<AnswerReader>,
}

/// Layer that applies the [`ProviderFallback`] middleware. See the [module docs](super) for an
/// example.
#[derive(Clone)]
#[must_use]
pub struct ProviderFallbackLayer {
    pub(crate) config: Arc<Config>,
}

impl Default for ProviderFallbackLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl ProviderFallbackLayer {
    /// The defaults: [`DefaultPolicy`], no stats, a default [`RetryBudget`], cooldowns deferred,
    /// attempt timeout 120 s, first-token timeout 60 s, overall deadline 300 s, 32 MiB buffer cap,
    /// the default forwarded headers.
    pub fn new() -> Self {
        ProviderFallbackLayer {
            config: Arc::new(Config {
                policy: Arc::new(DefaultPolicy),
                stats: None,
                health: None,
                budget: Some(RetryBudget::default()),
                cooldown: CooldownMode::Defer,
                attempt_timeout: DEFAULT_ATTEMPT_TIMEOUT,
                first_token_timeout: DEFAULT_FIRST_TOKEN_TIMEOUT,
                stream_idle_timeout: DEFAULT_STREAM_IDLE_TIMEOUT,
                overall_timeout: DEFAULT_OVERALL_TIMEOUT,
                max_buffer: DEFAULT_MAX_BUFFER,
                forward: DEFAULT_FORWARD
                    .iter()
                    .map(|h| HeaderName::from_static(h))
                    .collect(),
                stream_latency: false,
                reader: None,
            }),
        }
    }

    fn cfg(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// Replaces the [`FallbackPolicy`].
    pub fn policy(mut self, policy: impl FallbackPolicy) -> Self {
        self.cfg().policy = Arc::new(policy);
        self
    }

    /// Records every attempt in `stats`, and reads cooldowns from it unless [`health`](Self::health)
    /// names another source.
    pub fn stats(mut self, stats: Stats) -> Self {
        self.cfg().stats = Some(stats);
        self
    }

    /// Reads cooldowns from `health` instead of the stats.
    pub fn health(mut self, health: impl HealthSource) -> Self {
        self.cfg().health = Some(SharedHealth(Arc::new(health)));
        self
    }

    /// Shares `budget` (clones share the balance) among every request through this layer.
    pub fn budget(mut self, budget: RetryBudget) -> Self {
        self.cfg().budget = Some(budget);
        self
    }

    /// No retry budget: every candidate may be tried (not recommended in production).
    pub fn no_budget(mut self) -> Self {
        self.cfg().budget = None;
        self
    }

    /// What to do with endpoints in cooldown.
    pub fn cooldown(mut self, mode: CooldownMode) -> Self {
        self.cfg().cooldown = mode;
        self
    }

    /// Per-attempt timeout: to the response head for streams, to the complete body otherwise.
    /// A stream's wait for its first content is bounded by it too (see
    /// [`first_token_timeout`](Self::first_token_timeout)).
    pub fn attempt_timeout(mut self, t: Duration) -> Self {
        self.cfg().attempt_timeout = t;
        self
    }

    /// Streams: time from sending the request to the first content-bearing event. The
    /// effective limit is the smaller of this and [`attempt_timeout`](Self::attempt_timeout), so
    /// an operator who sets only the attempt timeout gets it for a stream that stalls before its
    /// first token too.
    pub fn first_token_timeout(mut self, t: Duration) -> Self {
        self.cfg().first_token_timeout = t;
        self
    }

    /// Streams, after the first content: the longest the provider may send nothing. A stream
    /// silent for longer is ended with the in-band error chunk and counted as a failure, so a
    /// stalled provider never holds the caller forever.
    pub fn stream_idle_timeout(mut self, t: Duration) -> Self {
        self.cfg().stream_idle_timeout = t;
        self
    }

    /// The whole request's deadline; the last attempt gets what remains.
    pub fn overall_timeout(mut self, t: Duration) -> Self {
        self.cfg().overall_timeout = t;
        self
    }

    /// The one cap on what this layer buffers ([`DEFAULT_MAX_BUFFER`], 32 MiB, by default): the
    /// request body it receives (larger is a 413) and a non-streamed answer (larger is an
    /// invalid response, and the next candidate is tried).
    pub fn max_buffer(mut self, bytes: usize) -> Self {
        self.cfg().max_buffer = bytes;
        self
    }

    /// Also forwards the caller's header `name` to providers. Credentials (`authorization`,
    /// `x-api-key`, …), cookies and hop-by-hop headers are refused silently.
    pub fn forward_header(mut self, name: HeaderName) -> Self {
        if !NEVER_FORWARD.contains(&name.as_str()) && !self.config.forward.contains(&name) {
            self.cfg().forward.push(name);
        }
        self
    }

    /// Forwards no caller header at all.
    pub fn forward_no_headers(mut self) -> Self {
        self.cfg().forward.clear();
        self
    }

    /// Streams: also record the time to the first content event as the attempt's latency sample.
    /// Off by default, because the usage meter reports it as
    /// [`Generation::ttft`](crate::stats::Generation::ttft) and each request must give one sample;
    /// turn it on in stacks without a usage meter.
    pub fn stream_latency(mut self, on: bool) -> Self {
        self.cfg().stream_latency = on;
        self
    }

    /// Judges answers with `reader` and hands its reading on in the response extensions, so that
    /// the layer that lent it does not read the answer again.
    pub(crate) fn answer_reader(mut self, reader: AnswerReader) -> Self {
        self.cfg().reader = Some(reader);
        self
    }
}

impl<S> Layer<S> for ProviderFallbackLayer {
    type Service = ProviderFallback<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ProviderFallback {
            inner,
            config: self.config.clone(),
        }
    }
}

impl fmt::Debug for ProviderFallbackLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        f.debug_struct("ProviderFallbackLayer")
            .field("stats", &c.stats.is_some())
            .field("budget", &c.budget)
            .field("cooldown", &c.cooldown)
            .field("attempt_timeout", &c.attempt_timeout)
            .field("first_token_timeout", &c.first_token_timeout)
            .field("stream_idle_timeout", &c.stream_idle_timeout)
            .field("overall_timeout", &c.overall_timeout)
            .field("max_buffer", &c.max_buffer)
            .field("forward", &c.forward)
            .finish_non_exhaustive()
    }
}
