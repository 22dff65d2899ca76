//! What happened on one attempt, and what the recording API takes.

use std::time::Duration;

use http::{HeaderMap, StatusCode};
use serde::Serialize;

use super::retry_after::parse_retry_after;

/// How one attempt against an endpoint ended.
///
/// See the [module docs](super#what-counts-against-an-endpoint) for which outcomes count against
/// an endpoint's uptime, success rate and outage detection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The endpoint answered successfully.
    Success,
    /// The attempt failed.
    Failure(FailureKind),
}

/// Why an attempt failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// `429` (or a provider's equivalent), with the `Retry-After` hint if one was sent.
    RateLimited {
        /// How long the provider asked us to wait.
        retry_after: Option<Duration>,
    },
    /// A `5xx` from the provider.
    ServerError {
        /// The status code (`500..=599`; other values are kept as given).
        status: u16,
    },
    /// No response head (or first token) within the deadline; also a provider's `408`.
    Timeout,
    /// Connecting, TLS or I/O failed before a complete response.
    Connect,
    /// The response was unusable: empty, not valid JSON, or a stream that ended early.
    InvalidResponse,
    /// The provider rejected our credentials (`401`/`403`).
    CredentialsRejected {
        /// `401` or `403`.
        status: u16,
    },
    /// A `4xx` caused by the request itself (`400`, `404`, `413`, `422`, …). Never counts
    /// against the endpoint.
    CallerError {
        /// The status code.
        status: u16,
    },
}

impl FailureKind {
    /// True if the failure says something about the endpoint's health: everything except
    /// [`RateLimited`](Self::RateLimited) and [`CallerError`](Self::CallerError).
    pub fn counts_against_uptime(&self) -> bool {
        !matches!(self, Self::RateLimited { .. } | Self::CallerError { .. })
    }

    /// A short snake-case name (`"rate_limited"`, `"server_error"`, …), as used in
    /// [`FailureCounts`].
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::RateLimited { .. } => "rate_limited",
            Self::ServerError { .. } => "server_error",
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::InvalidResponse => "invalid_response",
            Self::CredentialsRejected { .. } => "credentials_rejected",
            Self::CallerError { .. } => "caller_error",
        }
    }
}

impl Outcome {
    /// Classifies a provider's response head: `2xx`/`3xx` success, `429` rate limited (with
    /// [`parse_retry_after`]), `401`/`403` credentials rejected, `408` timeout, other `4xx`
    /// caller error, `5xx` server error.
    pub fn from_response(status: StatusCode, headers: &HeaderMap) -> Self {
        let code = status.as_u16();
        match code {
            429 => Outcome::Failure(FailureKind::RateLimited {
                retry_after: parse_retry_after(headers),
            }),
            401 | 403 => Outcome::Failure(FailureKind::CredentialsRejected { status: code }),
            408 => Outcome::Failure(FailureKind::Timeout),
            400..=499 => Outcome::Failure(FailureKind::CallerError { status: code }),
            500..=599 => Outcome::Failure(FailureKind::ServerError { status: code }),
            _ => Outcome::Success,
        }
    }

    /// True for [`Outcome::Success`].
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Success)
    }

    /// Whether this outcome is counted in uptime and success rate: successes and failures for
    /// which [`FailureKind::counts_against_uptime`] holds.
    pub fn is_counted(&self) -> bool {
        match self {
            Outcome::Success => true,
            Outcome::Failure(k) => k.counts_against_uptime(),
        }
    }
}

/// One attempt against one endpoint, as the provider-fallback layer reports it.
///
/// Build with [`Attempt::new`] or [`Attempt::from_response`], then add details.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct Attempt {
    pub(crate) outcome: Outcome,
    pub(crate) latency: Option<Duration>,
    pub(crate) retry_after: Option<Duration>,
}

impl Attempt {
    /// An attempt that ended with `outcome`, with no latency sample and no retry hint.
    pub fn new(outcome: Outcome) -> Self {
        Attempt {
            outcome,
            latency: None,
            retry_after: None,
        }
    }

    /// Classifies a response head with [`Outcome::from_response`] and takes its retry hint (on any
    /// status, e.g. a `503` with `Retry-After`).
    pub fn from_response(status: StatusCode, headers: &HeaderMap) -> Self {
        Attempt {
            outcome: Outcome::from_response(status, headers),
            latency: None,
            retry_after: parse_retry_after(headers),
        }
    }

    /// Time from sending the request to the response head.
    ///
    /// It becomes a latency sample only on success. For streamed responses leave it unset and let
    /// the body report time to first token through [`Generation::ttft`], so that every request
    /// contributes exactly one latency sample.
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = Some(latency);
        self
    }

    /// A retry hint from the provider (capped by
    /// [`StatsConfig::retry_after_cap`](super::StatsConfig::retry_after_cap)).
    pub fn retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = Some(retry_after);
        self
    }

    /// The outcome.
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// The effective retry hint: the explicit one, else the one inside a rate-limit outcome.
    pub fn retry_hint(&self) -> Option<Duration> {
        match (self.retry_after, self.outcome) {
            (Some(d), _) => Some(d),
            (None, Outcome::Failure(FailureKind::RateLimited { retry_after })) => retry_after,
            _ => None,
        }
    }
}

/// A finished (or ended) response body, as the usage meter reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct Generation {
    /// Time from sending the request to the first data frame; becomes a latency sample when set.
    pub ttft: Option<Duration>,
    /// Completion tokens produced.
    pub completion_tokens: u64,
    /// Time between the first and the last token.
    pub generation_time: Duration,
}

impl Generation {
    /// A generation of `completion_tokens` over `generation_time`, without a TTFT.
    pub fn new(completion_tokens: u64, generation_time: Duration) -> Self {
        Generation {
            ttft: None,
            completion_tokens,
            generation_time,
        }
    }

    /// Sets the time to first token.
    pub fn ttft(mut self, ttft: Duration) -> Self {
        self.ttft = Some(ttft);
        self
    }

    /// Tokens per second, or `None` when there are no tokens or no measurable duration.
    pub fn tokens_per_second(&self) -> Option<f64> {
        let secs = self.generation_time.as_secs_f64();
        if self.completion_tokens == 0 || secs.is_nan() || secs <= 0.0 {
            return None;
        }
        let tps = self.completion_tokens as f64 / secs;
        tps.is_finite().then_some(tps)
    }
}

/// Failures by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct FailureCounts {
    /// [`FailureKind::RateLimited`].
    pub rate_limited: u64,
    /// [`FailureKind::ServerError`].
    pub server_error: u64,
    /// [`FailureKind::Timeout`].
    pub timeout: u64,
    /// [`FailureKind::Connect`].
    pub connect: u64,
    /// [`FailureKind::InvalidResponse`].
    pub invalid_response: u64,
    /// [`FailureKind::CredentialsRejected`].
    pub credentials_rejected: u64,
    /// [`FailureKind::CallerError`].
    pub caller_error: u64,
}

impl FailureCounts {
    pub(crate) fn bump(&mut self, kind: &FailureKind) {
        let c = match kind {
            FailureKind::RateLimited { .. } => &mut self.rate_limited,
            FailureKind::ServerError { .. } => &mut self.server_error,
            FailureKind::Timeout => &mut self.timeout,
            FailureKind::Connect => &mut self.connect,
            FailureKind::InvalidResponse => &mut self.invalid_response,
            FailureKind::CredentialsRejected { .. } => &mut self.credentials_rejected,
            FailureKind::CallerError { .. } => &mut self.caller_error,
        };
        *c = c.saturating_add(1);
    }

    /// All failures.
    pub fn total(&self) -> u64 {
        [
            self.rate_limited,
            self.server_error,
            self.timeout,
            self.connect,
            self.invalid_response,
            self.credentials_rejected,
            self.caller_error,
        ]
        .iter()
        .fold(0u64, |a, b| a.saturating_add(*b))
    }
}
