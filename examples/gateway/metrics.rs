//! `/metrics`: OpenTelemetry GenAI metrics (<https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-metrics/>)
//! and the gateway's own counters, kept by `prometheus-client` and served in the OpenMetrics text
//! format (which Prometheus scrapes).
//!
//! | Metric | Type | Labels |
//! |---|---|---|
//! | `gen_ai_client_operation_duration_seconds` | histogram | `gen_ai_operation_name`, `gen_ai_provider_name`, `gen_ai_response_model`, `error_type` |
//! | `gen_ai_client_token_usage` | histogram (`{token}`) | `gen_ai_operation_name`, `gen_ai_provider_name`, `gen_ai_response_model`, `gen_ai_token_type` |
//! | `gen_ai_server_time_to_first_token_seconds` | histogram | `gen_ai_provider_name`, `gen_ai_response_model` |
//! | `gateway_attempts_total` | counter | `gen_ai_provider_name`, `outcome` |
//! | `gateway_fallbacks_total` | counter | — |
//! | `gateway_budget_refusals_total` | counter | — |
//! | `gateway_requests_total` | counter | `route`, `status` |
//! | `gateway_cost_usd_total` | counter | `gen_ai_provider_name`, `gen_ai_response_model` |
//!
//! **Label cardinality is bounded by the configuration, never by callers**: providers are the
//! catalog's slugs (taken from the serving endpoint's tag), models the catalog's model ids (the
//! model that served, never the string a caller sent), `outcome` one of the 13 attempt kinds,
//! `error_type` one of the gateway's error types (or `stream_error`; empty on success),
//! `gen_ai_token_type` `input` or `output`, `route` the four completion routes and `status` the
//! HTTP statuses the gateway answers with. Durations are from the request's arrival to the end
//! of its response body (the end of the stream for streams); failed requests are observed when
//! their answer's head is ready.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use tower_ai_gateway::catalog::EndpointKey;
use tower_ai_gateway::route::AttemptRecord;
use tower_ai_gateway::usage_meter::GenerationRecord;

/// `gen_ai.client.operation.duration`'s labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    gen_ai_operation_name: &'static str,
    gen_ai_provider_name: String,
    gen_ai_response_model: String,
    error_type: &'static str,
}

/// `gen_ai.client.token.usage`'s labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    gen_ai_operation_name: &'static str,
    gen_ai_provider_name: String,
    gen_ai_response_model: String,
    gen_ai_token_type: &'static str,
}

/// Provider and model.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServedLabels {
    gen_ai_provider_name: String,
    gen_ai_response_model: String,
}

/// One attempt's provider and outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabels {
    gen_ai_provider_name: String,
    outcome: &'static str,
}

/// A completion route and the status it answered.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    status: u16,
}

type Hist<L> = Family<L, Histogram, fn() -> Histogram>;

/// The GenAI conventions' advised buckets for durations, in seconds.
fn duration_histogram() -> Histogram {
    Histogram::new([
        0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
    ])
}

/// The GenAI conventions' advised buckets for token counts (powers of 4).
fn token_histogram() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        1.0, 4.0, 14,
    ))
}

/// The gateway's metrics and the registry that serves them.
pub struct Metrics {
    registry: Registry,
    duration: Hist<OperationLabels>,
    tokens: Hist<TokenLabels>,
    ttft: Hist<ServedLabels>,
    attempts: Family<AttemptLabels, Counter>,
    fallbacks: Counter,
    budget_refusals: Counter,
    requests: Family<RequestLabels, Counter>,
    cost: Family<ServedLabels, Counter<f64, AtomicU64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut m = Metrics {
            registry: Registry::default(),
            duration: Family::new_with_constructor(duration_histogram),
            tokens: Family::new_with_constructor(token_histogram),
            ttft: Family::new_with_constructor(duration_histogram),
            attempts: Family::default(),
            fallbacks: Counter::default(),
            budget_refusals: Counter::default(),
            requests: Family::default(),
            cost: Family::default(),
        };
        m.register();
        m
    }
}

/// The provider slug of an endpoint: its tag up to the first `/` (`deepinfra/turbo` → `deepinfra`).
fn provider_of(e: &EndpointKey) -> String {
    e.tag().split('/').next().unwrap_or_default().to_owned()
}

impl Metrics {
    fn register(&mut self) {
        let r = &mut self.registry;
        r.register_with_unit(
            "gen_ai_client_operation_duration",
            "GenAI operation duration: request arrival to the end of the answer",
            Unit::Seconds,
            self.duration.clone(),
        );
        r.register(
            "gen_ai_client_token_usage",
            "Tokens used per request, by token type (input, output)",
            self.tokens.clone(),
        );
        r.register_with_unit(
            "gen_ai_server_time_to_first_token",
            "Request arrival to the first data of the answer",
            Unit::Seconds,
            self.ttft.clone(),
        );
        r.register(
            "gateway_attempts",
            "Upstream attempts, by provider and outcome",
            self.attempts.clone(),
        );
        r.register(
            "gateway_fallbacks",
            "Upstream attempts beyond a request's first",
            self.fallbacks.clone(),
        );
        r.register(
            "gateway_budget_refusals",
            "Requests refused because a key's budget would be crossed (402)",
            self.budget_refusals.clone(),
        );
        r.register(
            "gateway_requests",
            "HTTP requests to the completion routes, by status",
            self.requests.clone(),
        );
        r.register(
            "gateway_cost_usd",
            "Cost metered in USD, by provider and model",
            self.cost.clone(),
        );
    }

    /// Counts a completion request's answer: its status, its attempts (from `ServedBy` or
    /// `Attempts`), a budget refusal, and — for a failure — its duration so far.
    pub fn record_answer(
        &self,
        route: &'static str,
        status: u16,
        attempts: &[AttemptRecord],
        error_type: Option<&'static str>,
        elapsed: Duration,
    ) {
        self.requests
            .get_or_create(&RequestLabels { route, status })
            .inc();
        let sent = attempts.iter().filter(|a| a.sent).count() as u64;
        self.fallbacks.inc_by(sent.saturating_sub(1));
        for a in attempts.iter().filter(|a| a.sent) {
            self.attempts
                .get_or_create(&AttemptLabels {
                    gen_ai_provider_name: provider_of(&a.endpoint),
                    outcome: a.kind.as_str(),
                })
                .inc();
        }
        if error_type == Some("payment_required") {
            self.budget_refusals.inc();
        }
        if let Some(error_type) = error_type {
            let served = attempts.last();
            self.duration
                .get_or_create(&OperationLabels {
                    gen_ai_operation_name: "chat",
                    gen_ai_provider_name: served
                        .map(|a| provider_of(&a.endpoint))
                        .unwrap_or_default(),
                    gen_ai_response_model: String::new(),
                    error_type,
                })
                .observe(elapsed.as_secs_f64());
        }
    }

    /// Observes a finished generation (a UsageMeter sink): duration, tokens, TTFT and cost.
    pub fn record_generation(&self, r: &GenerationRecord) {
        let provider = r.endpoint.as_ref().map(provider_of).unwrap_or_default();
        let served = ServedLabels {
            gen_ai_provider_name: provider.clone(),
            gen_ai_response_model: r.model.to_string(),
        };
        let error_type = if r.error { "stream_error" } else { "" };
        self.duration
            .get_or_create(&OperationLabels {
                gen_ai_operation_name: "chat",
                gen_ai_provider_name: provider.clone(),
                gen_ai_response_model: r.model.to_string(),
                error_type,
            })
            .observe(r.latency.as_secs_f64());
        for (kind, n) in [("input", r.tokens.prompt), ("output", r.tokens.completion)] {
            self.tokens
                .get_or_create(&TokenLabels {
                    gen_ai_operation_name: "chat",
                    gen_ai_provider_name: provider.clone(),
                    gen_ai_response_model: r.model.to_string(),
                    gen_ai_token_type: kind,
                })
                .observe(n as f64);
        }
        if let Some(t) = r.ttft {
            self.ttft.get_or_create(&served).observe(t.as_secs_f64());
        }
        self.cost.get_or_create(&served).inc_by(r.cost.to_f64());
    }

    /// The OpenMetrics text of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
