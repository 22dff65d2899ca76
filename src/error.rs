//! OpenRouter-shaped errors.
//!
//! Every policy rejection in this crate is an HTTP response, never a panic and never a widened service
//! error. The body is OpenRouter's envelope (<https://openrouter.ai/docs/api/reference/errors-and-debugging>):
//!
//! ```json
//! {"error":{"code":404,"message":"…","metadata":{"error_type":"not_found"},
//!           "availability":{"code":"constraint_filtered","retryable":false,…}}}
//! ```
//!
//! The HTTP status always equals `error.code`. The same [`GatewayError`] is inserted into the response
//! extensions, so an outer layer (or the embedding service) can tell *why* a request was refused without
//! parsing the body:
//!
//! ```
//! use tower_ai_gateway::{ErrorType, GatewayError};
//!
//! let err = GatewayError::invalid_request("provider.sort", "one of price, throughput, latency, exacto");
//! let res: http::Response<bytes::Bytes> = err.clone().into_response();
//! assert_eq!(res.status(), 400);
//! assert_eq!(res.extensions().get::<GatewayError>().unwrap().error_type(), ErrorType::InvalidRequest);
//! ```
//!
//! Permanent failures are 4xx: every real client retries 5xx, some for an hour.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use serde::Serialize;
use serde_json::{Map, Value};

/// OpenRouter's typed error vocabulary (`error.metadata.error_type`, <https://openrouter.ai/docs/api/reference/errors-and-debugging>).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorType {
    /// Input and output exceed the context window (400).
    ContextLengthExceeded,
    /// Stopped at `max_tokens` (400).
    MaxTokensExceeded,
    /// A gateway token budget was exceeded (400).
    TokenLimitExceeded,
    /// A field is longer than allowed (400).
    StringTooLong,
    /// Key missing, invalid or revoked (401).
    Authentication,
    /// The caller lacks permission (403).
    PermissionDenied,
    /// Not enough credits or budget (402).
    PaymentRequired,
    /// Request or token rate limit (429).
    RateLimitExceeded,
    /// The upstream is overloaded (503).
    ProviderOverloaded,
    /// Invalid or empty upstream response (502).
    ProviderUnavailable,
    /// A malformed parameter (400).
    InvalidRequest,
    /// A bad message (400).
    InvalidPrompt,
    /// A resource is missing (404).
    NotFound,
    /// A precondition header failed (412).
    PreconditionFailed,
    /// The request body is too large (413).
    PayloadTooLarge,
    /// Semantically invalid (422).
    Unprocessable,
    /// Blocked by a content filter (400).
    ContentPolicyViolation,
    /// The model refused (400).
    Refusal,
    /// Internal error; the message is masked (500).
    Server,
    /// The provider did not answer in time (408 for the caller's deadline, 504 upstream).
    Timeout,
    /// An upstream error that maps to nothing else (500).
    Unmapped,
    /// The gateway's retry budget (shared by all requests) refused another attempt at a
    /// provider already tried by this request (503); its metadata names the providers tried and
    /// not tried. This crate's addition to OpenRouter's vocabulary.
    RetryBudgetExhausted,
}

impl ErrorType {
    /// The wire name, e.g. `"invalid_request"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ContextLengthExceeded => "context_length_exceeded",
            Self::MaxTokensExceeded => "max_tokens_exceeded",
            Self::TokenLimitExceeded => "token_limit_exceeded",
            Self::StringTooLong => "string_too_long",
            Self::Authentication => "authentication",
            Self::PermissionDenied => "permission_denied",
            Self::PaymentRequired => "payment_required",
            Self::RateLimitExceeded => "rate_limit_exceeded",
            Self::ProviderOverloaded => "provider_overloaded",
            Self::ProviderUnavailable => "provider_unavailable",
            Self::InvalidRequest => "invalid_request",
            Self::InvalidPrompt => "invalid_prompt",
            Self::NotFound => "not_found",
            Self::PreconditionFailed => "precondition_failed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::Unprocessable => "unprocessable",
            Self::ContentPolicyViolation => "content_policy_violation",
            Self::Refusal => "refusal",
            Self::Server => "server",
            Self::Timeout => "timeout",
            Self::Unmapped => "unmapped",
            Self::RetryBudgetExhausted => "retry_budget_exhausted",
        }
    }

    /// The HTTP status OpenRouter pairs with this type.
    pub fn default_status(self) -> StatusCode {
        match self {
            Self::Authentication => StatusCode::UNAUTHORIZED,
            Self::PermissionDenied => StatusCode::FORBIDDEN,
            Self::PaymentRequired => StatusCode::PAYMENT_REQUIRED,
            Self::RateLimitExceeded => StatusCode::TOO_MANY_REQUESTS,
            Self::ProviderOverloaded | Self::RetryBudgetExhausted => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::ProviderUnavailable => StatusCode::BAD_GATEWAY,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Server | Self::Unmapped => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl fmt::Display for ErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// `error.availability.code` (<https://openrouter.ai/docs/api/reference/errors-and-debugging>).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AvailabilityCode {
    /// The model id is unknown (400).
    ModelNotFound,
    /// The model has no endpoint at all (404).
    NoEndpoints,
    /// Every endpoint was filtered out by a constraint (404).
    ConstraintFiltered,
    /// Every endpoint was filtered out by a data policy (404).
    PrivacyRestricted,
    /// Every attempt was rate limited (429).
    CapacityExhausted,
    /// Every attempt failed transiently (503).
    TemporarilyUnavailable,
}

/// Why an endpoint was removed from the candidates: the `excluded_by` vocabulary of §12.4, plus a few
/// local reasons that never reach `excluded_by` on their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[non_exhaustive]
pub enum ExcludedBy {
    /// `data_collection: "deny"` or a training/retention floor.
    #[serde(rename = "data_policy:training")]
    DataPolicyTraining,
    /// `zdr: true` or a ZDR floor.
    #[serde(rename = "data_policy:zdr")]
    DataPolicyZdr,
    /// `enforce_distillable_text`.
    #[serde(rename = "data_policy:distillable_text")]
    DataPolicyDistillable,
    /// `max_price` or the operator's price cap.
    #[serde(rename = "max_price")]
    MaxPrice,
    /// Context length, `max_tokens` or `max_prompt_tokens` too small for the request.
    #[serde(rename = "context_length")]
    ContextLength,
    /// `require_parameters` or the soft `tools`/`response_format`/`verbosity` preference.
    #[serde(rename = "require_parameters")]
    RequireParameters,
    /// `quantizations`.
    #[serde(rename = "quantization")]
    Quantization,
    /// `only`, `ignore`, `order` with `allow_fallbacks: false`, or the operator's allow/deny lists.
    #[serde(rename = "allowed_providers")]
    AllowedProviders,
    /// A tier endpoint that was not opted into, or an endpoint whose status takes it out of service.
    #[serde(rename = "service_tier")]
    ServiceTier,
}

impl ExcludedBy {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DataPolicyTraining => "data_policy:training",
            Self::DataPolicyZdr => "data_policy:zdr",
            Self::DataPolicyDistillable => "data_policy:distillable_text",
            Self::MaxPrice => "max_price",
            Self::ContextLength => "context_length",
            Self::RequireParameters => "require_parameters",
            Self::Quantization => "quantization",
            Self::AllowedProviders => "allowed_providers",
            Self::ServiceTier => "service_tier",
        }
    }

    /// True for the data-policy reasons, which make the availability code `privacy_restricted`.
    pub fn is_privacy(self) -> bool {
        matches!(
            self,
            Self::DataPolicyTraining | Self::DataPolicyZdr | Self::DataPolicyDistillable
        )
    }
}

/// The `error.availability` object (<https://openrouter.ai/docs/api/reference/errors-and-debugging>).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Availability {
    /// What kind of unavailability.
    pub code: AvailabilityCode,
    /// Whether retrying the same request may succeed.
    pub retryable: bool,
    /// Seconds to wait, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// The models the request asked for, in order.
    pub requested_models: Vec<String>,
    /// Providers that were tried or excluded.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub affected_providers: Vec<String>,
    /// The rules that removed endpoints (sorted, de-duplicated).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub excluded_by: Vec<ExcludedBy>,
    /// Link to the routing documentation.
    pub docs_url: &'static str,
}

impl Availability {
    /// A new availability object.
    pub fn new(code: AvailabilityCode, requested_models: Vec<String>) -> Self {
        let retryable = matches!(
            code,
            AvailabilityCode::CapacityExhausted | AvailabilityCode::TemporarilyUnavailable
        );
        Self {
            code,
            retryable,
            retry_after: None,
            requested_models,
            affected_providers: Vec::new(),
            excluded_by: Vec::new(),
            docs_url: "https://openrouter.ai/docs/guides/routing/provider-selection",
        }
    }
}

/// An OpenRouter-shaped error: status, typed reason, message, metadata.
///
/// It is both the body of the rejection (see [`GatewayError::into_response`]) and the typed reason that
/// the response carries in its extensions.
#[derive(Clone, Debug, PartialEq)]
pub struct GatewayError {
    status: StatusCode,
    error_type: ErrorType,
    message: String,
    metadata: Map<String, Value>,
    // Boxed: routing failures are rare, and a small error keeps `Result<_, GatewayError>` cheap.
    availability: Option<Box<Availability>>,
    retry_after: Option<Duration>,
}

impl GatewayError {
    /// An error of `error_type` with its usual status.
    pub fn new(error_type: ErrorType, message: impl Into<String>) -> Self {
        Self {
            status: error_type.default_status(),
            error_type,
            message: message.into(),
            metadata: Map::new(),
            availability: None,
            retry_after: None,
        }
    }

    /// 400 `invalid_request` naming the offending `field` and what was `expected` there.
    pub fn invalid_request(field: &str, expected: &str) -> Self {
        let msg = if field.is_empty() {
            format!("invalid request body: {expected}")
        } else {
            format!("invalid `{field}`: {expected}")
        };
        let mut e = Self::new(ErrorType::InvalidRequest, msg);
        if !field.is_empty() {
            e.metadata
                .insert("field".into(), Value::String(field.into()));
        }
        e
    }

    /// 413 `payload_too_large` for a body over `limit` bytes.
    pub fn payload_too_large(limit: usize) -> Self {
        let mut e = Self::new(
            ErrorType::PayloadTooLarge,
            format!("request body is larger than the limit of {limit} bytes"),
        );
        e.metadata.insert("limit".into(), Value::from(limit));
        e
    }

    /// An availability error (§12.4) with the status and `error_type` the code implies.
    pub fn unavailable(message: impl Into<String>, availability: Availability) -> Self {
        let (status, ty) = match availability.code {
            AvailabilityCode::ModelNotFound => (StatusCode::BAD_REQUEST, ErrorType::InvalidRequest),
            AvailabilityCode::NoEndpoints
            | AvailabilityCode::ConstraintFiltered
            | AvailabilityCode::PrivacyRestricted => (StatusCode::NOT_FOUND, ErrorType::NotFound),
            AvailabilityCode::CapacityExhausted => {
                (StatusCode::TOO_MANY_REQUESTS, ErrorType::RateLimitExceeded)
            }
            AvailabilityCode::TemporarilyUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorType::ProviderOverloaded,
            ),
        };
        let retry_after = availability.retry_after.map(Duration::from_secs);
        Self {
            status,
            error_type: ty,
            message: message.into(),
            metadata: Map::new(),
            availability: Some(Box::new(availability)),
            retry_after,
        }
    }

    /// Overrides the HTTP status (and `error.code`).
    #[must_use]
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// Adds a `metadata` entry.
    #[must_use]
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Sets the `Retry-After` hint.
    #[must_use]
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The typed reason.
    pub fn error_type(&self) -> ErrorType {
        self.error_type
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Extra metadata (`error.metadata` without `error_type`).
    pub fn metadata(&self) -> &Map<String, Value> {
        &self.metadata
    }

    /// The availability object, for routing failures.
    pub fn availability(&self) -> Option<&Availability> {
        self.availability.as_deref()
    }

    /// The `Retry-After` hint.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The JSON body: `{"error":{"code","message","metadata":{"error_type",…},"availability"?}}`.
    pub fn to_json(&self) -> Value {
        let mut meta = Map::with_capacity(self.metadata.len() + 1);
        meta.insert("error_type".into(), Value::from(self.error_type.as_str()));
        for (k, v) in &self.metadata {
            meta.insert(k.clone(), v.clone());
        }
        let mut err = Map::with_capacity(5);
        err.insert("code".into(), Value::from(self.status.as_u16()));
        err.insert("message".into(), Value::from(self.message.as_str()));
        err.insert("metadata".into(), Value::Object(meta));
        if let Some(a) = &self.availability {
            err.insert("http_status".into(), Value::from(self.status.as_u16()));
            err.insert(
                "availability".into(),
                serde_json::to_value(a).unwrap_or(Value::Null),
            );
        }
        let mut top = Map::with_capacity(1);
        top.insert("error".into(), Value::Object(err));
        Value::Object(top)
    }

    /// The JSON body as bytes.
    pub fn to_bytes(&self) -> Bytes {
        Bytes::from(self.to_json().to_string())
    }

    /// An HTTP response with this error as JSON body and as a response extension.
    pub fn into_response<B: From<Bytes>>(self) -> Response<B> {
        let body = self.to_bytes();
        let mut res = Response::new(B::from(body));
        *res.status_mut() = self.status;
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(after) = self.retry_after {
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res.extensions_mut().insert(self);
        res
    }
}

impl fmt::Display for GatewayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.error_type,
            self.message
        )
    }
}

impl std::error::Error for GatewayError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_status_equals_code() {
        let e = GatewayError::invalid_request("model", "a string");
        let v = e.to_json();
        assert_eq!(v["error"]["code"], 400);
        assert_eq!(v["error"]["metadata"]["error_type"], "invalid_request");
        assert_eq!(v["error"]["metadata"]["field"], "model");
        let res: Response<Bytes> = e.into_response();
        assert_eq!(res.status(), 400);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
    }

    #[test]
    fn availability_shape() {
        let mut a = Availability::new(
            AvailabilityCode::ConstraintFiltered,
            vec!["openai/gpt-4o-mini".into()],
        );
        a.excluded_by = vec![ExcludedBy::MaxPrice];
        let e = GatewayError::unavailable("no endpoints", a);
        assert_eq!(e.status(), 404);
        let v = e.to_json();
        assert_eq!(v["error"]["availability"]["code"], "constraint_filtered");
        assert_eq!(v["error"]["availability"]["excluded_by"][0], "max_price");
        assert_eq!(v["error"]["availability"]["retryable"], false);
        assert!(v["error"]["availability"].get("retry_after").is_none());
        assert_eq!(v["error"]["metadata"]["error_type"], "not_found");
    }

    #[test]
    fn retry_after_header_rounds_up() {
        let e = GatewayError::new(ErrorType::RateLimitExceeded, "slow down")
            .with_retry_after(Duration::from_millis(1500));
        let res: Response<Bytes> = e.into_response();
        assert_eq!(res.status(), 429);
        assert_eq!(res.headers()[header::RETRY_AFTER], "2");
    }
}
