//! What ProviderFallback reports about the attempts of a request.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use smallvec::SmallVec;

use super::{AnswerReading, ShortString};
use crate::catalog::EndpointKey;
use crate::error::ErrorType;

/// Who served a request: inserted into the response extensions by the layer that called the provider
/// (ProviderFallback), read by ModelRouting (stickiness) and UsageMeter (pricing).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServedBy {
    /// The endpoint.
    pub endpoint: EndpointKey,
    /// The provider's display name (shared with the catalog: cloning it allocates nothing).
    pub provider_name: Arc<str>,
    /// The provider's slug (empty when built with [`ServedBy::new`]).
    pub provider_slug: Arc<str>,
    /// The model id sent upstream (empty when built with [`ServedBy::new`]).
    pub upstream_model: Arc<str>,
    /// Whether the response is an SSE stream.
    pub streamed: bool,
    /// Time from sending the request to the serving endpoint until its response head (non-streamed)
    /// or its first content-bearing event (streamed).
    pub latency: Option<Duration>,
    /// Every attempt made for this request, the serving one last (the usual single attempt held
    /// inline: no allocation; the generation record's `provider_responses` is a copy:
    /// [`GenerationRecord`](crate::usage_meter::GenerationRecord)).
    pub attempts: SmallVec<[AttemptRecord; 1]>,
    /// The provider's own request id (`x-request-id`, `request-id`, `cf-ray`, …) from the serving
    /// response's headers, which never reach the caller (held inline up to 40 bytes: copying it
    /// allocates nothing).
    pub upstream_request_id: Option<ShortString>,
    /// The lent reader's reading of a non-streamed answer, for the layer that lent it
    /// ([`AnswerReader`](super::AnswerReader)): carried here, by value, rather than in an
    /// extension or an allocation of its own.
    pub(crate) answer: Option<AnswerReading>,
}

impl ServedBy {
    /// A record for `endpoint`, served by the provider called `provider_name`.
    pub fn new(endpoint: EndpointKey, provider_name: impl Into<Arc<str>>) -> Self {
        ServedBy {
            endpoint,
            provider_name: provider_name.into(),
            provider_slug: Arc::from(""),
            upstream_model: Arc::from(""),
            streamed: false,
            latency: None,
            attempts: SmallVec::new(),
            upstream_request_id: None,
            answer: None,
        }
    }
}

/// The attempts of a request that no provider served, in the response extensions (a served
/// request has them in [`ServedBy::attempts`]). Defined here so that the layers outside
/// ProviderFallback (UsageMeter's `openrouter_metadata`) read it; re-exported as
/// `fallback::Attempts`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attempts(pub Vec<AttemptRecord>);

/// One attempt (or skipped candidate) of a request, as ProviderFallback reports it in
/// [`ServedBy::attempts`] and in the `Attempts` extension of failed responses.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AttemptRecord {
    /// The provider's display name (shared with the catalog).
    pub provider: Arc<str>,
    /// The endpoint.
    pub endpoint: EndpointKey,
    /// The upstream HTTP status, when a response head arrived.
    pub status: Option<u16>,
    /// `None` for the attempt that served the request; otherwise what the failure maps to.
    pub error_type: Option<ErrorType>,
    /// What happened (compares equal to its snake-case name, [`AttemptKind::as_str`]).
    pub kind: AttemptKind,
    /// Whether a request was actually sent (false for skipped candidates).
    pub sent: bool,
    /// From sending the request until the outcome was known.
    pub duration: Duration,
    /// The provider's retry hint, if it sent one.
    pub retry_after: Option<Duration>,
}

/// What happened to one attempt ([`AttemptRecord::kind`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AttemptKind {
    /// The attempt served the request.
    Ok,
    /// `429`.
    RateLimited,
    /// `401` / `403`: the provider rejected the gateway's credentials.
    CredentialsRejected,
    /// `408`, or no answer within the attempt timeout.
    Timeout,
    /// A `5xx`.
    ServerError,
    /// Another status: the caller's own error (`400`, `404`, `413`, `422`, …).
    CallerError,
    /// The inner client failed before a response head.
    Connect,
    /// A stream gave no content within the first-token timeout.
    FirstTokenTimeout,
    /// A non-streamed `2xx` that is not a valid answer.
    InvalidResponse,
    /// A stream that failed before its first content.
    StreamFailed,
    /// The provider has no (valid) base URL: nothing was sent.
    NotCallable,
    /// The provider speaks a wire format that cannot be sent: nothing was sent.
    UnsupportedWireFormat,
    /// Skipped: the endpoint is cooling down.
    Cooldown,
}

impl AttemptKind {
    /// The snake-case name: `"ok"`, `"rate_limited"`, `"credentials_rejected"`, `"timeout"`,
    /// `"server_error"`, `"caller_error"`, `"connect"`, `"first_token_timeout"`,
    /// `"invalid_response"`, `"stream_failed"`, `"not_callable"`, `"unsupported_wire_format"`,
    /// `"cooldown"` (also `previous_errors[].code` in error answers).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::RateLimited => "rate_limited",
            Self::CredentialsRejected => "credentials_rejected",
            Self::Timeout => "timeout",
            Self::ServerError => "server_error",
            Self::CallerError => "caller_error",
            Self::Connect => "connect",
            Self::FirstTokenTimeout => "first_token_timeout",
            Self::InvalidResponse => "invalid_response",
            Self::StreamFailed => "stream_failed",
            Self::NotCallable => "not_callable",
            Self::UnsupportedWireFormat => "unsupported_wire_format",
            Self::Cooldown => "cooldown",
        }
    }

    /// Whether the attempt ran out of time (attempt or first-token timeout, or a `408`).
    pub fn is_timeout(self) -> bool {
        matches!(self, Self::Timeout | Self::FirstTokenTimeout)
    }
}

impl fmt::Display for AttemptKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl PartialEq<str> for AttemptKind {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for AttemptKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `ServedBy` box in the response extensions stays on glibc's per-thread cache (blocks
    /// up to 1,032 B): a bigger one takes malloc's slow path, ~1,000 instructions per request.
    #[test]
    fn served_by_fits_the_allocator_cache() {
        let size = std::mem::size_of::<ServedBy>();
        assert!(size <= 1032, "ServedBy {size} B");
    }
}
