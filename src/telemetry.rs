//! Spans in OpenTelemetry's GenAI semantic conventions, through `tracing` only.
//!
//! The crate depends on no OpenTelemetry crate: it opens `tracing` spans whose field names are the
//! GenAI conventions' attribute names
//! (<https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-spans/>), so that
//! `tracing-opentelemetry` (or any `tracing` subscriber) exports them as they are. The example
//! gateway wires `tracing-opentelemetry` and an OTLP exporter behind its `otel` feature.
//!
//! # The spans
//!
//! ```text
//! gen_ai.request   (UsageMeter: one per request that reaches it; otel.kind = server)
//! ├── gen_ai.attempt   (ProviderFallback: one per upstream request sent; otel.kind = client)
//! └── gen_ai.attempt   (the attempt that served it)
//! ```
//!
//! Both have target [`TARGET`] and level INFO, so a filter such as
//! `tower_ai_gateway::gen_ai=info` selects exactly them.
//!
//! * **`gen_ai.request`** is opened by [`UsageMeter`](crate::usage_meter::UsageMeter) when the
//!   request arrives. UsageMeter is the outermost layer that sees a request through to the end of
//!   its answer: it knows the routed model, the caller's budget (a 402 ends the span with
//!   `error.type = payment_required`), the serving endpoint, the usage and the cost, and its body
//!   finishes exactly once. The span is entered while the layers below it are polled, so
//!   ProviderFallback's attempt spans are its children, and it is **held by the response body**:
//!   a streamed request's span closes when the stream ends (or is dropped), not when the head goes
//!   out. Requests answered before UsageMeter (a 400 from routing, a 429 from RateLimit, a cache
//!   HIT) get no `gen_ai.request` span.
//! * **`gen_ai.attempt`** is opened by [`ProviderFallback`](crate::fallback) for each request it
//!   sends upstream (skipped candidates get none), as a child of the current span. A failed
//!   attempt's span closes when the failure is known; the serving attempt's closes with the
//!   answer (non-streamed) or at the end of the stream it serves.
//!
//! # Attributes
//!
//! | Attribute | `gen_ai.request` | `gen_ai.attempt` |
//! |---|---|---|
//! | `gen_ai.operation.name` | `chat` | `chat` |
//! | `gen_ai.request.model` | the model the caller named | the provider's model id |
//! | `gen_ai.provider.name` | the serving provider's slug | the provider's slug |
//! | `gen_ai.response.model` | the catalog model that served | — |
//! | `gen_ai.response.id` | the generation id (`gen-…`) | — |
//! | `gen_ai.response.finish_reasons` | the first choice's finish reason | — |
//! | `gen_ai.usage.input_tokens` / `output_tokens` | reported (or estimated) tokens | — |
//! | `gen_ai.usage.cache_read.input_tokens` | cached prompt tokens | — |
//! | `gen_ai.usage.cache_creation.input_tokens` | prompt tokens written to the cache | — |
//! | `gen_ai.usage.reasoning.output_tokens` | reasoning tokens | — |
//! | `gen_ai.response.time_to_first_chunk` | request start → first data event, seconds | attempt start → first content, seconds (streams) |
//! | `gen_ai.conversation.id` | `session_id` (body, else `x-session-id`) | — |
//! | `gen_ai.usage.cost` | cost in USD (not a convention attribute: OpenRouter's `usage.cost`) | — |
//! | `gen_ai.input.messages` / `gen_ai.output.messages` | prompt / completion, only with `trace_content` (below) | — |
//! | `gen_ai.attempt.number` | — | 1 for the first request sent, 2 for the next, … |
//! | `http.response.status_code` | — | the upstream's status, when a head arrived |
//! | `error.type` | the error type (`payment_required`, `provider_unavailable`, …) | the attempt's failure kind (`server_error`, `timeout`, …) |
//! | `otel.name`, `otel.kind`, `otel.status_code` | `chat {model}`, `server`, `ERROR` on error | `chat {model}`, `client`, `ERROR` on error |
//!
//! **Prompt and completion contents are never recorded** unless the operator opts in with
//! [`UsageMeterLayer::trace_content`](crate::usage_meter::UsageMeterLayer::trace_content): then
//! the request span also gets `gen_ai.input.messages` and `gen_ai.output.messages` (the
//! conventions' JSON message arrays, text cut to the configured byte budget). Otherwise the spans
//! carry counts, names and timings only.
//!
//! # Trace context (feature `otel`)
//!
//! With feature `otel`, a W3C `traceparent` / `tracestate` on the incoming request becomes the
//! `gen_ai.request` span's remote parent (through `tracing-opentelemetry`, when the subscriber
//! has its layer), and each `gen_ai.attempt` span's context is written into its upstream request
//! as `traceparent` / `tracestate`, replacing the caller's. Without the feature (or without an
//! OpenTelemetry layer) nothing is read or written here, and ProviderFallback forwards the
//! caller's two headers unchanged (they are on its default allow-list).
//!
//! # Cost when nobody listens
//!
//! With no subscriber interested in [`TARGET`], opening a span is one callsite-interest check and
//! the spans are disabled: recording on them does nothing, and the strings only a subscriber
//! would read (`otel.name`) are built only when the span is enabled
//! ([`Span::is_disabled`](tracing::Span::is_disabled)). `cargo bench --bench icount` measures the
//! stack with and without a subscriber.

use tracing::field::Empty;
use tracing::Span;

/// The `tracing` target of the gateway's GenAI spans.
pub const TARGET: &str = "tower_ai_gateway::gen_ai";

/// Opens a `gen_ai.request` span (see the [module docs](self)), a child of the current span.
pub(crate) fn request_span(requested_model: Option<&str>) -> Span {
    let span = tracing::info_span!(
        target: TARGET,
        "gen_ai.request",
        gen_ai.operation.name = "chat",
        gen_ai.request.model = requested_model,
        gen_ai.provider.name = Empty,
        gen_ai.response.model = Empty,
        gen_ai.response.id = Empty,
        gen_ai.response.finish_reasons = Empty,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        gen_ai.usage.cache_read.input_tokens = Empty,
        gen_ai.usage.cache_creation.input_tokens = Empty,
        gen_ai.usage.reasoning.output_tokens = Empty,
        gen_ai.response.time_to_first_chunk = Empty,
        gen_ai.conversation.id = Empty,
        gen_ai.usage.cost = Empty,
        gen_ai.input.messages = Empty,
        gen_ai.output.messages = Empty,
        "error.type" = Empty,
        otel.name = Empty,
        otel.kind = "server",
        otel.status_code = Empty,
    );
    if !span.is_disabled() {
        if let Some(m) = requested_model {
            span.record("otel.name", format!("chat {m}"));
        }
    }
    span
}

/// Opens a `gen_ai.attempt` span (see the [module docs](self)), a child of the current span.
pub(crate) fn attempt_span(provider_slug: &str, upstream_model: &str, number: u32) -> Span {
    let span = tracing::info_span!(
        target: TARGET,
        "gen_ai.attempt",
        gen_ai.operation.name = "chat",
        gen_ai.provider.name = provider_slug,
        gen_ai.request.model = upstream_model,
        gen_ai.attempt.number = i64::from(number),
        gen_ai.response.time_to_first_chunk = Empty,
        http.response.status_code = Empty,
        "error.type" = Empty,
        otel.name = Empty,
        otel.kind = "client",
        otel.status_code = Empty,
    );
    if !span.is_disabled() {
        span.record("otel.name", format!("chat {upstream_model}"));
    }
    span
}

/// A count as a signed integer: OpenTelemetry attributes have no unsigned type, and
/// `tracing-opentelemetry` records a `u64` as a string.
pub(crate) fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Marks `span` failed with `error_type` (`error.type`, and `otel.status_code = ERROR`).
pub(crate) fn record_error(span: &Span, error_type: &str) {
    // Checked first: with `tracing`'s `log` feature on, recording on a disabled span still costs.
    if !span.is_disabled() {
        span.record("error.type", error_type);
        span.record("otel.status_code", "ERROR");
    }
}

/// Records an attempt's upstream status (`http.response.status_code`).
pub(crate) fn record_status(span: &Span, status: u16) {
    if !span.is_disabled() {
        span.record("http.response.status_code", i64::from(status));
    }
}

/// With feature `otel`: makes the caller's W3C trace context (`traceparent` / `tracestate` in
/// `headers`) the remote parent of `span`, through `tracing-opentelemetry`. Does nothing without
/// the feature, for a disabled span, without a `traceparent`, or when the subscriber has no
/// OpenTelemetry layer.
#[inline]
pub(crate) fn set_remote_parent(span: &Span, headers: &http::HeaderMap) {
    #[cfg(feature = "otel")]
    if !span.is_disabled() && headers.contains_key("traceparent") {
        otel::set_remote_parent(span, headers);
    }
    #[cfg(not(feature = "otel"))]
    let _ = (span, headers);
}

/// With feature `otel`: writes `span`'s trace context into `headers` as `traceparent` (and
/// `tracestate`), replacing the caller's. Does nothing without the feature, for a disabled span,
/// or when the span has no OpenTelemetry context (the caller's headers, forwarded by default,
/// then go on unchanged).
#[inline]
pub(crate) fn inject_context(span: &Span, headers: &mut http::HeaderMap) {
    #[cfg(feature = "otel")]
    if !span.is_disabled() {
        otel::inject_context(span, headers);
    }
    #[cfg(not(feature = "otel"))]
    let _ = (span, headers);
}

/// W3C Trace Context through `tracing-opentelemetry` (feature `otel`).
#[cfg(feature = "otel")]
mod otel {
    use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use tracing::Span;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    struct Headers<'a>(&'a http::HeaderMap);

    impl Extractor for Headers<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(http::HeaderName::as_str).collect()
        }
    }

    struct HeadersMut<'a>(&'a mut http::HeaderMap);

    impl Injector for HeadersMut<'_> {
        fn set(&mut self, key: &str, value: String) {
            if let (Ok(k), Ok(v)) = (
                http::HeaderName::from_bytes(key.as_bytes()),
                http::HeaderValue::from_str(&value),
            ) {
                self.0.insert(k, v);
            }
        }
    }

    pub(super) fn set_remote_parent(span: &Span, headers: &http::HeaderMap) {
        let cx = TraceContextPropagator::new().extract(&Headers(headers));
        // Err: no OpenTelemetry layer, or the span already started; either way it keeps its
        // local parent.
        let _ = span.set_parent(cx);
    }

    pub(super) fn inject_context(span: &Span, headers: &mut http::HeaderMap) {
        let cx = span.context();
        TraceContextPropagator::new().inject_context(&cx, &mut HeadersMut(headers));
    }
}
