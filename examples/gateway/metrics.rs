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

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{OnceLock, RwLock};
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

/// The duration labels of a chat generation served by `s`'s provider and model.
fn operation(s: ServedLabels, error_type: &'static str) -> OperationLabels {
    OperationLabels {
        gen_ai_operation_name: "chat",
        gen_ai_provider_name: s.gen_ai_provider_name,
        gen_ai_response_model: s.gen_ai_response_model,
        error_type,
    }
}

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
    /// The handles of each model and provider that served, so that a generation costs one
    /// lookup instead of five label hashes and ten string copies (see [`Served`]).
    served: RwLock<HashMap<String, Vec<(String, Served)>>>,
    /// The handles every answer counts with, taken from their families once (as `served`).
    answers: RwLock<Answers>,
}

/// The `gateway_requests_total` series by route and status, and the `gateway_attempts_total`
/// series by provider and outcome, as handles: counting an answer then costs a short scan
/// instead of two label hashes and a string copy. Both are small (a few routes and statuses;
/// the catalog's providers, each with its outcomes seen).
#[derive(Default)]
struct Answers {
    requests: Vec<(&'static str, u16, Counter)>,
    attempts: HashMap<String, Vec<(&'static str, Counter)>>,
}

/// The metrics one model on one provider observes at every finished generation: handles that
/// share their values with the families' entries (a `prometheus-client` metric is a shared
/// handle), taken from the families once. The duration and time-to-first-token series are
/// created on first use, as `get_or_create` would, so that /metrics shows no empty series.
struct Served {
    input: Histogram,
    output: Histogram,
    cost: Counter<f64, AtomicU64>,
    duration: OnceLock<Histogram>,
    ttft: OnceLock<Histogram>,
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
            served: RwLock::default(),
            answers: RwLock::default(),
        };
        m.register();
        m
    }
}

impl Answers {
    fn request(&self, route: &str, status: u16) -> Option<&Counter> {
        self.requests
            .iter()
            .find(|(r, s, _)| *s == status && *r == route)
            .map(|(_, _, c)| c)
    }

    fn attempt(&self, provider: &str, outcome: &str) -> Option<&Counter> {
        self.attempts
            .get(provider)?
            .iter()
            .find(|(o, _)| *o == outcome)
            .map(|(_, c)| c)
    }

    /// Counts an answer and its sent attempts; false (nothing counted) when a handle is missing.
    fn count(&self, route: &str, status: u16, attempts: &[AttemptRecord]) -> bool {
        let Some(request) = self.request(route, status) else {
            return false;
        };
        // Every handle first (one lookup per attempt), so that a missing one counts nothing.
        let mut handles: smallvec::SmallVec<[&Counter; 2]> = smallvec::SmallVec::new();
        for a in attempts.iter().filter(|a| a.sent) {
            match self.attempt(provider_of(&a.endpoint), a.kind.as_str()) {
                Some(c) => handles.push(c),
                None => return false,
            }
        }
        request.inc();
        for c in handles {
            c.inc();
        }
        true
    }
}

/// The provider slug of an endpoint: its tag up to the first `/` (`deepinfra/turbo` → `deepinfra`).
fn provider_of(e: &EndpointKey) -> &str {
    e.tag().split('/').next().unwrap_or_default()
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
        let sent = attempts.iter().filter(|a| a.sent).count() as u64;
        self.fallbacks.inc_by(sent.saturating_sub(1));
        {
            let answers = self.answers.read().unwrap_or_else(|e| e.into_inner());
            let counted = answers.count(route, status, attempts);
            drop(answers);
            if !counted {
                self.add_answer_handles(route, status, attempts);
                let answers = self.answers.read().unwrap_or_else(|e| e.into_inner());
                answers.count(route, status, attempts);
            }
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
                        .map(|a| provider_of(&a.endpoint).to_owned())
                        .unwrap_or_default(),
                    gen_ai_response_model: String::new(),
                    error_type,
                })
                .observe(elapsed.as_secs_f64());
        }
    }

    /// Observes a finished generation (a UsageMeter sink): duration, tokens, TTFT and cost.
    pub fn record_generation(&self, r: &GenerationRecord) {
        let provider = r.endpoint.as_ref().map_or("", provider_of);
        let model: &str = &r.model;
        let served = self.served.read().unwrap_or_else(|e| e.into_inner());
        let Some(s) = served
            .get(model)
            .and_then(|v| v.iter().find(|(p, _)| p == provider))
        else {
            drop(served);
            self.add_served(model, provider);
            return self.record_generation(r);
        };
        let s = &s.1;
        let labels = || ServedLabels {
            gen_ai_provider_name: provider.to_owned(),
            gen_ai_response_model: model.to_owned(),
        };
        if r.error {
            self.duration
                .get_or_create(&operation(labels(), "stream_error"))
                .observe(r.latency.as_secs_f64());
        } else {
            s.duration
                .get_or_init(|| {
                    self.duration
                        .get_or_create(&operation(labels(), ""))
                        .clone()
                })
                .observe(r.latency.as_secs_f64());
        }
        s.input.observe(r.tokens.prompt as f64);
        s.output.observe(r.tokens.completion as f64);
        if let Some(t) = r.ttft {
            s.ttft
                .get_or_init(|| self.ttft.get_or_create(&labels()).clone())
                .observe(t.as_secs_f64());
        }
        s.cost.inc_by(r.cost.to_f64());
    }

    /// Takes the handles of `model` on `provider` from the families (the series every
    /// generation observes: tokens and cost).
    #[cold]
    fn add_served(&self, model: &str, provider: &str) {
        let tokens = |kind| {
            self.tokens
                .get_or_create(&TokenLabels {
                    gen_ai_operation_name: "chat",
                    gen_ai_provider_name: provider.to_owned(),
                    gen_ai_response_model: model.to_owned(),
                    gen_ai_token_type: kind,
                })
                .clone()
        };
        let served = Served {
            input: tokens("input"),
            output: tokens("output"),
            cost: self
                .cost
                .get_or_create(&ServedLabels {
                    gen_ai_provider_name: provider.to_owned(),
                    gen_ai_response_model: model.to_owned(),
                })
                .clone(),
            duration: OnceLock::new(),
            ttft: OnceLock::new(),
        };
        let mut map = self.served.write().unwrap_or_else(|e| e.into_inner());
        let providers = map.entry(model.to_owned()).or_default();
        if !providers.iter().any(|(p, _)| p == provider) {
            providers.push((provider.to_owned(), served));
        }
    }

    /// Takes the handles an answer counts with (its route and status, each sent attempt's
    /// provider and outcome) from the families.
    #[cold]
    fn add_answer_handles(&self, route: &'static str, status: u16, attempts: &[AttemptRecord]) {
        let mut answers = self.answers.write().unwrap_or_else(|e| e.into_inner());
        if answers.request(route, status).is_none() {
            let c = self
                .requests
                .get_or_create(&RequestLabels { route, status });
            answers.requests.push((route, status, c.clone()));
        }
        for a in attempts.iter().filter(|a| a.sent) {
            let provider = provider_of(&a.endpoint);
            let outcome = a.kind.as_str();
            if answers.attempt(provider, outcome).is_none() {
                let labels = AttemptLabels {
                    gen_ai_provider_name: provider.to_owned(),
                    outcome,
                };
                let c = self.attempts.get_or_create(&labels).clone();
                let entry = answers.attempts.entry(provider.to_owned()).or_default();
                entry.push((outcome, c));
            }
        }
    }

    /// The OpenMetrics text of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
