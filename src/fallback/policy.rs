use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;

use crate::catalog::{Endpoint, Provider};
use crate::route::AttemptKind;

/// What went wrong with one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AttemptError {
    /// The provider answered with a non-success status (`4xx`, `5xx`, or anything but `2xx`).
    Status(u16),
    /// The inner client failed (connect, TLS, I/O) before a response head.
    Connect,
    /// No response head (streams) or no complete body (non-streamed) within the attempt timeout.
    Timeout,
    /// A stream produced no content-bearing event within the time-to-first-token timeout.
    FirstTokenTimeout,
    /// A non-streamed `2xx` whose body is empty, not valid JSON, over the buffer cap, or failed
    /// while being read.
    InvalidResponse,
    /// A stream that failed before its first content-bearing event: it ended, returned an error
    /// frame, sent an in-band `error` event, `[DONE]` or an invalid `data:` line.
    StreamFailed,
    /// The provider has no (valid) base URL: nothing was sent.
    NotCallable,
    /// The provider speaks a wire format this build cannot send (an Anthropic-wire provider
    /// without the `anthropic` cargo feature): nothing was sent.
    UnsupportedWireFormat,
}

impl AttemptError {
    /// What the attempt's record says ([`AttemptRecord::kind`](crate::route::AttemptRecord::kind)).
    pub fn kind(self) -> AttemptKind {
        match self {
            Self::Status(429) => AttemptKind::RateLimited,
            Self::Status(401 | 403) => AttemptKind::CredentialsRejected,
            Self::Status(408) => AttemptKind::Timeout,
            Self::Status(500..=599) => AttemptKind::ServerError,
            Self::Status(_) => AttemptKind::CallerError,
            Self::Connect => AttemptKind::Connect,
            Self::Timeout => AttemptKind::Timeout,
            Self::FirstTokenTimeout => AttemptKind::FirstTokenTimeout,
            Self::InvalidResponse => AttemptKind::InvalidResponse,
            Self::StreamFailed => AttemptKind::StreamFailed,
            Self::NotCallable => AttemptKind::NotCallable,
            Self::UnsupportedWireFormat => AttemptKind::UnsupportedWireFormat,
        }
    }

    /// The short snake-case name used in `previous_errors[].code` ([`AttemptKind::as_str`]).
    pub fn as_str(self) -> &'static str {
        self.kind().as_str()
    }

    /// The upstream status, for [`AttemptError::Status`].
    pub fn status(self) -> Option<u16> {
        match self {
            Self::Status(s) => Some(s),
            _ => None,
        }
    }
}

impl fmt::Display for AttemptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status(s) => write!(f, "status {s}"),
            other => f.pad(other.as_str()),
        }
    }
}

/// One failed attempt, as the [`FallbackPolicy`] sees it.
#[derive(Debug)]
#[non_exhaustive]
pub struct Failure<'a> {
    /// What went wrong.
    pub error: AttemptError,
    /// The provider's retry hint (`retry-after-ms` / `Retry-After`), if any.
    pub retry_after: Option<Duration>,
    /// The endpoint that was tried.
    pub endpoint: &'a Endpoint,
    /// Its provider.
    pub provider: &'a Provider,
    /// 0 for the first candidate, 1 for the second, …
    pub position: usize,
    /// True when the next candidate serves another model (a fallback from `models`).
    pub next_is_other_model: bool,
    /// True when there is a next candidate at all.
    pub has_next: bool,
}

/// What to do after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Try the next candidate (if the deadline and the retry budget allow it).
    TryNext,
    /// Stop and answer with this failure.
    Return,
}

/// Decides, after each failed attempt, whether ProviderFallback moves on to the next candidate;
/// optionally adjusts each upstream request before it is sent.
///
/// Closures `Fn(&Failure<'_>) -> Decision` implement it. [`DefaultPolicy`] is the default.
///
/// ```
/// use tower_ai_gateway::fallback::{AttemptError, Decision, DefaultPolicy, FallbackPolicy, Failure};
///
/// /// Like the default, but never moves on after a 500 (say, a provider known to fail fast).
/// #[derive(Debug)]
/// struct No500;
///
/// impl FallbackPolicy for No500 {
///     fn on_failure(&self, failure: &Failure<'_>) -> Decision {
///         match failure.error {
///             AttemptError::Status(500) if !failure.next_is_other_model => Decision::Return,
///             _ => DefaultPolicy.on_failure(failure),
///         }
///     }
/// }
/// # fn _obj_safe(_: Box<dyn FallbackPolicy>) {}
/// ```
pub trait FallbackPolicy: Send + Sync + 'static {
    /// Called after every failed attempt (skipped candidates included).
    fn on_failure(&self, failure: &Failure<'_>) -> Decision;

    /// Called with each upstream request after the body and headers are built and before the
    /// provider's credentials are applied (so it can neither read nor replace them). The default does
    /// nothing.
    fn prepare(
        &self,
        _request: &mut Request<Full<Bytes>>,
        _endpoint: &Endpoint,
        _provider: &Provider,
    ) {
    }
}

impl<F> FallbackPolicy for F
where
    F: Fn(&Failure<'_>) -> Decision + Send + Sync + 'static,
{
    fn on_failure(&self, failure: &Failure<'_>) -> Decision {
        self(failure)
    }
}

/// The default policy (after OpenRouter's provider and model fallbacks:
/// <https://openrouter.ai/docs/features/provider-routing>,
/// <https://openrouter.ai/docs/features/model-routing>).
///
/// * Moving on to a candidate of **another model** (a fallback from `models`) happens after any
///   error, as OpenRouter does.
/// * Otherwise, try the next provider after connect / I/O errors, timeouts (attempt and first
///   token), `408`, `429`, any `5xx` (`500`, `502`, `503`, `504`, `524`, `529`, …), an invalid
///   non-streamed `2xx` body, a stream that failed before content, `401` / `402` / `403` (the
///   provider rejected *our* credentials or account, not the caller's request), and candidates that
///   could not be called at all.
/// * Any other status (`400`, `404`, `413`, `422`, …) is the caller's own error: returned as is.
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultPolicy;

impl FallbackPolicy for DefaultPolicy {
    fn on_failure(&self, failure: &Failure<'_>) -> Decision {
        if failure.next_is_other_model {
            return Decision::TryNext;
        }
        match failure.error {
            AttemptError::Status(401..=403 | 408 | 429 | 500..=599) => Decision::TryNext,
            AttemptError::Status(100..=399) => Decision::TryNext,
            AttemptError::Status(_) => Decision::Return,
            _ => Decision::TryNext,
        }
    }
}
