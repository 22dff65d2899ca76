//! GenAI spans read back with a capturing `tracing` layer: names, attributes, parent/child
//! structure, and when a stream's span closes. Also the generation record's attempts and app
//! attribution.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use tower::{ServiceBuilder, ServiceExt};
use tower_ai_gateway::catalog::{Catalog, Credentials, Endpoint, Model, Provider, Usd};
use tower_ai_gateway::fallback::ProviderFallbackLayer;
use tower_ai_gateway::model_routing::ModelRoutingLayer;
use tower_ai_gateway::sim::{SimOutcome, SimProfile, SimulatedProvider};
use tower_ai_gateway::telemetry::TARGET;
use tower_ai_gateway::usage_meter::{GenerationStore, UsageMeterLayer};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

const MODEL: &str = "acme/chat";

// ===== the capturing layer =====

/// One span as the layer saw it.
#[derive(Clone, Debug, Default)]
struct Seen {
    name: &'static str,
    target: String,
    parent: Option<usize>,
    fields: HashMap<String, String>,
    closed: bool,
}

impl Seen {
    fn field(&self, k: &str) -> &str {
        self.fields.get(k).map_or("", String::as_str)
    }
}

/// Every span opened, in order; a span's index is kept in its extensions.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Seen>>>);

struct Index(usize);

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, f: &Field, v: &str) {
        self.0.insert(f.name().to_owned(), v.to_owned());
    }
    fn record_debug(&mut self, f: &Field, v: &dyn std::fmt::Debug) {
        self.0.insert(f.name().to_owned(), format!("{v:?}"));
    }
}

impl<S> Layer<S> for Capture
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let parent = span
            .parent()
            .and_then(|p| p.extensions().get::<Index>().map(|i| i.0));
        let mut seen = Seen {
            name: attrs.metadata().name(),
            target: attrs.metadata().target().to_owned(),
            parent,
            ..Seen::default()
        };
        attrs.record(&mut Fields(&mut seen.fields));
        let mut all = self.0.lock().unwrap();
        span.extensions_mut().insert(Index(all.len()));
        all.push(seen);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(i) = ctx
            .span(id)
            .and_then(|s| s.extensions().get::<Index>().map(|i| i.0))
        else {
            return;
        };
        values.record(&mut Fields(&mut self.0.lock().unwrap()[i].fields));
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if let Some(i) = ctx
            .span(&id)
            .and_then(|s| s.extensions().get::<Index>().map(|i| i.0))
        {
            self.0.lock().unwrap()[i].closed = true;
        }
    }
}

impl Capture {
    fn spans(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }

    fn install(&self) -> tracing::subscriber::DefaultGuard {
        tracing::subscriber::set_default(tracing_subscriber::registry().with(self.clone()))
    }
}

// ===== the stack =====

fn catalog() -> Catalog {
    let mut b = Catalog::builder().model(Model::new(MODEL, "Acme Chat"));
    for slug in ["alpha", "beta"] {
        b = b.provider(
            Provider::new(slug, slug.to_uppercase())
                .base_url(format!("http://{slug}.sim/v1"))
                .credentials(Credentials::key(format!("sk-{slug}"))),
        );
        let mut e = Endpoint::new(MODEL, slug);
        e.provider_model_id = Some(format!("{slug}-native"));
        e.pricing.prompt = Usd::from_micros(1);
        e.pricing.completion = Usd::from_micros(2);
        b = b.endpoint(e);
    }
    b.build().unwrap()
}

/// alpha answers 503 once, beta serves.
fn sim() -> SimulatedProvider {
    SimulatedProvider::builder(3)
        .host(
            "http://alpha.sim/v1",
            SimProfile::instant().with_script([SimOutcome::Status(503)]),
        )
        .host("http://beta.sim/v1", SimProfile::instant())
        .build()
}

fn request(stream: bool) -> Request<Full<Bytes>> {
    let body = format!(
        r#"{{"model":"{MODEL}","messages":[{{"role":"user","content":"hello"}}],"stream":{stream},"max_tokens":8,"provider":{{"order":["alpha","beta"]}},"session_id":"conv-7"}}"#
    );
    Request::post("/v1/chat/completions")
        .header("http-referer", "https://app.example")
        .header("x-title", "legacy title")
        .header("x-openrouter-title", "Example App")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

fn stack(
    store: &GenerationStore,
) -> impl tower::Service<
    Request<Full<Bytes>>,
    Response = http::Response<
        impl http_body::Body<Data = Bytes, Error = impl std::fmt::Debug> + Unpin,
    >,
    Error = tower_ai_gateway::BoxError,
> {
    stack_with(store, 0)
}

/// The stack, recording up to `content` bytes of prompt and completion text.
fn stack_with(
    store: &GenerationStore,
    content: usize,
) -> impl tower::Service<
    Request<Full<Bytes>>,
    Response = http::Response<
        impl http_body::Body<Data = Bytes, Error = impl std::fmt::Debug> + Unpin,
    >,
    Error = tower_ai_gateway::BoxError,
> {
    ServiceBuilder::new()
        .layer(ModelRoutingLayer::new(catalog()).seed(1))
        .layer(
            UsageMeterLayer::new()
                .sink(store.clone())
                .trace_content(content),
        )
        .layer(ProviderFallbackLayer::new().no_budget())
        .service(sim())
}

fn gen_ai(spans: &[Seen]) -> Vec<(usize, &Seen)> {
    spans
        .iter()
        .enumerate()
        .filter(|(_, s)| s.target == TARGET)
        .collect()
}

// ===== tests =====

#[tokio::test(start_paused = true)]
async fn a_fallback_gives_one_request_span_with_two_attempt_children() {
    let capture = Capture::default();
    let _guard = capture.install();
    let store = GenerationStore::new(10);
    let res = stack(&store).oneshot(request(false)).await.unwrap();
    assert_eq!(res.status(), 200);
    let id = res.headers()["x-generation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();

    let spans = capture.spans();
    let ours = gen_ai(&spans);
    let names: Vec<&str> = ours.iter().map(|(_, s)| s.name).collect();
    assert_eq!(
        names,
        ["gen_ai.request", "gen_ai.attempt", "gen_ai.attempt"]
    );
    let (ri, req) = ours[0];
    let (a1, a2) = (ours[1].1, ours[2].1);
    assert_eq!(req.parent, None);
    assert_eq!(
        (a1.parent, a2.parent),
        (Some(ri), Some(ri)),
        "attempts are children"
    );
    assert!(spans.iter().all(|s| s.closed), "{spans:#?}");

    // The request span.
    assert_eq!(req.field("gen_ai.operation.name"), "chat");
    assert_eq!(req.field("gen_ai.request.model"), MODEL);
    assert_eq!(req.field("gen_ai.provider.name"), "beta");
    assert_eq!(req.field("gen_ai.response.model"), MODEL);
    assert_eq!(req.field("gen_ai.response.id"), id);
    assert_eq!(req.field("gen_ai.conversation.id"), "conv-7");
    assert_eq!(req.field("otel.name"), format!("chat {MODEL}"));
    assert_eq!(req.field("otel.kind"), "server");
    let usage = &json["usage"];
    assert_eq!(
        req.field("gen_ai.usage.input_tokens"),
        usage["prompt_tokens"].to_string()
    );
    assert_eq!(
        req.field("gen_ai.usage.output_tokens"),
        usage["completion_tokens"].to_string()
    );
    assert_eq!(req.field("gen_ai.usage.cache_read.input_tokens"), "0");
    assert_eq!(req.field("gen_ai.usage.reasoning.output_tokens"), "0");
    let cost: f64 = req.field("gen_ai.usage.cost").parse().unwrap();
    assert!((cost - usage["cost"].as_f64().unwrap()).abs() < 1e-12 && cost > 0.0);
    assert_eq!(
        req.field("gen_ai.response.finish_reasons"),
        json["choices"][0]["finish_reason"].as_str().unwrap()
    );
    assert_eq!(req.field("error.type"), "", "the request succeeded");

    // The attempts.
    assert_eq!(a1.field("gen_ai.provider.name"), "alpha");
    assert_eq!(a1.field("gen_ai.request.model"), "alpha-native");
    assert_eq!(a1.field("gen_ai.attempt.number"), "1");
    assert_eq!(a1.field("http.response.status_code"), "503");
    assert_eq!(a1.field("error.type"), "server_error");
    assert_eq!(a1.field("otel.status_code"), "ERROR");
    assert_eq!(a1.field("otel.kind"), "client");
    assert_eq!(a2.field("gen_ai.provider.name"), "beta");
    assert_eq!(a2.field("gen_ai.attempt.number"), "2");
    assert_eq!(a2.field("http.response.status_code"), "200");
    assert_eq!(a2.field("error.type"), "");

    // The generation record has both attempts and the attribution.
    let rec = store.get(&id).expect("recorded");
    let j = rec.to_openrouter_json();
    let pr = j["provider_responses"].as_array().expect("attempts");
    assert_eq!(pr.len(), 2, "{j}");
    assert_eq!(pr[0]["provider_name"], "ALPHA");
    assert_eq!(pr[0]["status"], 503);
    assert_eq!(pr[0]["error_class"], "server_error");
    assert_eq!(pr[0]["endpoint_id"], format!("{MODEL}@alpha"));
    assert_eq!(pr[1]["provider_name"], "BETA");
    assert_eq!(pr[1]["status"], 200);
    assert_eq!(pr[1]["error_class"], "ok");
    assert_eq!(j["http_referer"], "https://app.example");
    assert_eq!(j["app_name"], "Example App", "X-OpenRouter-Title wins");
    assert_eq!(j["session_id"], "conv-7");
    assert_eq!(j["service_tier"], "default");
}

#[tokio::test(start_paused = true)]
async fn a_streamed_request_span_closes_after_the_last_chunk() {
    let capture = Capture::default();
    let _guard = capture.install();
    let store = GenerationStore::new(10);
    let res = stack(&store).oneshot(request(true)).await.unwrap();
    assert_eq!(res.status(), 200);
    let open = |name: &str| {
        capture
            .spans()
            .iter()
            .filter(|s| s.name == name && s.target == TARGET)
            .any(|s| !s.closed)
    };
    assert!(
        open("gen_ai.request"),
        "the head went out, the span is open"
    );
    assert!(open("gen_ai.attempt"), "the serving attempt streams on");

    let mut body = res.into_body();
    let mut frames = 0;
    let mut text = String::new();
    while let Some(frame) = body.frame().await {
        let data = frame.unwrap().into_data().unwrap_or_default();
        text.push_str(&String::from_utf8_lossy(&data));
        frames += 1;
        if !text.contains("[DONE]") {
            assert!(
                open("gen_ai.request"),
                "open before the last chunk ({frames})"
            );
        }
    }
    assert!(frames > 2, "{frames} frames: {text}");
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(!open("gen_ai.request"), "closed at the end of the stream");
    assert!(!open("gen_ai.attempt"));
    let spans = capture.spans();
    let req = spans.iter().find(|s| s.name == "gen_ai.request").unwrap();
    assert_ne!(req.field("gen_ai.usage.output_tokens"), "");
    let ttfc: f64 = req
        .field("gen_ai.response.time_to_first_chunk")
        .parse()
        .unwrap();
    assert!(ttfc >= 0.0);
    let served = spans.iter().rfind(|s| s.name == "gen_ai.attempt").unwrap();
    assert_eq!(served.field("gen_ai.provider.name"), "beta");
    assert_ne!(served.field("gen_ai.response.time_to_first_chunk"), "");
}

#[tokio::test(start_paused = true)]
async fn a_budget_refusal_ends_the_request_span_with_its_error_type() {
    use tower_ai_gateway::clock::ManualClock;
    use tower_ai_gateway::usage_meter::{CallerKey, InMemoryLedger, Period};
    let capture = Capture::default();
    let _guard = capture.install();
    let ledger = InMemoryLedger::new(ManualClock::new(0)).limit("k", Period::Day, Usd::ZERO);
    let svc = ServiceBuilder::new()
        .layer(ModelRoutingLayer::new(catalog()).seed(1))
        .layer(UsageMeterLayer::new().ledger(ledger))
        .layer(ProviderFallbackLayer::new().no_budget())
        .service(sim());
    let mut req = request(false);
    req.extensions_mut().insert(CallerKey::new("k"));
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), 402);
    drop(res);
    let spans = capture.spans();
    let ours = gen_ai(&spans);
    assert_eq!(ours.len(), 1, "no attempt was made: {ours:#?}");
    let req = ours[0].1;
    assert_eq!(req.field("error.type"), "payment_required");
    assert_eq!(req.field("otel.status_code"), "ERROR");
    assert!(req.closed);
}

#[tokio::test(start_paused = true)]
async fn no_content_is_recorded() {
    let capture = Capture::default();
    let _guard = capture.install();
    let store = GenerationStore::new(10);
    let res = stack(&store).oneshot(request(false)).await.unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let answer = json["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(!answer.is_empty());
    for s in gen_ai(&capture.spans()) {
        for (k, v) in &s.1.fields {
            assert!(!v.contains("hello"), "prompt in {k}");
            assert!(!v.contains(answer), "completion in {k}");
        }
    }
}

/// Without an OpenTelemetry layer (or without feature `otel`) the caller's `traceparent` and
/// `tracestate` go upstream unchanged (they are on ProviderFallback's default forward list).
#[tokio::test(start_paused = true)]
async fn without_opentelemetry_the_callers_traceparent_is_forwarded_unchanged() {
    let capture = Capture::default();
    let _guard = capture.install();
    let sent = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = sent.clone();
    let svc = ServiceBuilder::new()
        .layer(ModelRoutingLayer::new(catalog()).seed(1))
        .layer(UsageMeterLayer::new())
        .layer(ProviderFallbackLayer::new().no_budget())
        .map_request(move |req: Request<Full<Bytes>>| {
            let h = |k: &str| req.headers().get(k).map_or("", |v| v.to_str().unwrap());
            seen.lock()
                .unwrap()
                .push(format!("{} {}", h("traceparent"), h("tracestate")));
            req
        })
        .service(sim());
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let mut req = request(false);
    req.headers_mut().insert("traceparent", tp.parse().unwrap());
    req.headers_mut()
        .insert("tracestate", "k=v".parse().unwrap());
    let res = svc.oneshot(req).await.unwrap();
    res.into_body().collect().await.unwrap();
    let expect = format!("{tp} k=v");
    assert_eq!(*sent.lock().unwrap(), [expect.clone(), expect]);
}

/// The request span's `gen_ai.input.messages` / `gen_ai.output.messages` when contents are
/// recorded: `(input, output)` parsed, and the answer's text (joined from the chunks of a stream).
async fn traced_contents(
    stream: bool,
    limit: usize,
) -> (serde_json::Value, serde_json::Value, String) {
    let capture = Capture::default();
    let _guard = capture.install();
    let store = GenerationStore::new(10);
    let res = stack_with(&store, limit)
        .oneshot(request(stream))
        .await
        .unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(body.to_vec()).unwrap();
    let answer = if stream {
        text.split("\n\n")
            .filter_map(|e| e.trim().strip_prefix("data: "))
            .filter_map(|e| serde_json::from_str::<serde_json::Value>(e).ok())
            .filter_map(|c| {
                c["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect()
    } else {
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        json["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let spans = capture.spans();
    let req = gen_ai(&spans)[0].1.clone();
    let parse = |k: &str| serde_json::from_str(req.field(k)).unwrap_or(serde_json::Value::Null);
    (
        parse("gen_ai.input.messages"),
        parse("gen_ai.output.messages"),
        answer,
    )
}

#[tokio::test(start_paused = true)]
async fn contents_are_recorded_when_the_operator_opts_in() {
    for stream in [false, true] {
        let (input, output, answer) = traced_contents(stream, 64 * 1024).await;
        assert_eq!(
            input,
            serde_json::json!([{"role": "user", "parts": [{"type": "text", "content": "hello"}]}])
        );
        assert!(!answer.is_empty());
        assert_eq!(output[0]["role"], "assistant", "{output}");
        assert_eq!(output[0]["parts"][0]["type"], "text");
        assert_eq!(
            output[0]["parts"][0]["content"],
            answer.as_str(),
            "stream {stream}"
        );
        assert!(output[0]["finish_reason"].is_string(), "{output}");
    }
}

#[tokio::test(start_paused = true)]
async fn recorded_contents_are_cut_to_the_budget() {
    for stream in [false, true] {
        let (input, output, answer) = traced_contents(stream, 3).await;
        assert_eq!(input[0]["parts"][0]["content"], "hel");
        let cut: String = answer.chars().take(3).collect();
        assert!(answer.len() > 3);
        assert_eq!(
            output[0]["parts"][0]["content"],
            cut.as_str(),
            "stream {stream}"
        );
    }
}

/// Through `tracing-opentelemetry` into the SDK's in-memory exporter: the spans an OTLP
/// collector would receive for a request that fell back once.
#[cfg(feature = "otel")]
mod otel {
    use super::*;
    use opentelemetry::trace::{SpanKind, Status, TracerProvider as _};
    use opentelemetry::Value;
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};

    fn attr<'s>(s: &'s SpanData, key: &str) -> Option<&'s Value> {
        s.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| &kv.value)
    }

    #[tokio::test(start_paused = true)]
    async fn otel_spans_of_a_request_that_fell_back_once() {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
        let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
        let store = GenerationStore::new(10);
        let res = stack(&store).oneshot(request(false)).await.unwrap();
        assert_eq!(res.status(), 200);
        res.into_body().collect().await.unwrap();
        provider.force_flush().unwrap();

        let spans = exporter.get_finished_spans().unwrap();
        let names: Vec<&str> = spans.iter().map(|s| s.name.as_ref()).collect();
        // Children end first; `otel.name` names them.
        assert_eq!(
            names,
            ["chat alpha-native", "chat beta-native", "chat acme/chat"],
            "{spans:#?}"
        );
        let (failed, served, request) = (&spans[0], &spans[1], &spans[2]);
        assert_eq!(request.span_kind, SpanKind::Server);
        assert_eq!(failed.span_kind, SpanKind::Client);
        let root = request.span_context.span_id();
        assert_eq!(failed.parent_span_id, root);
        assert_eq!(served.parent_span_id, root);
        let trace = request.span_context.trace_id();
        assert!(spans.iter().all(|s| s.span_context.trace_id() == trace));
        assert_eq!(
            attr(failed, "gen_ai.provider.name"),
            Some(&Value::from("alpha"))
        );
        assert_eq!(
            attr(failed, "error.type"),
            Some(&Value::from("server_error"))
        );
        assert!(
            matches!(failed.status, Status::Error { .. }),
            "{:?}",
            failed.status
        );
        assert_eq!(
            attr(failed, "http.response.status_code"),
            Some(&Value::I64(503))
        );
        assert_eq!(
            attr(served, "gen_ai.provider.name"),
            Some(&Value::from("beta"))
        );
        assert_eq!(attr(served, "error.type"), None);
        assert_eq!(
            attr(request, "gen_ai.provider.name"),
            Some(&Value::from("beta"))
        );
        assert_eq!(
            attr(request, "gen_ai.request.model"),
            Some(&Value::from(MODEL))
        );
        assert!(matches!(
            attr(request, "gen_ai.usage.input_tokens"),
            Some(Value::I64(n)) if *n > 0
        ));
        assert!(matches!(
            attr(request, "gen_ai.usage.cost"),
            Some(Value::F64(c)) if *c > 0.0
        ));
    }

    const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
    const CALLER_SPAN: &str = "b7ad6b7169203331";

    #[tokio::test(start_paused = true)]
    async fn a_callers_traceparent_is_the_parent_and_each_attempt_propagates_its_own() {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
        let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
        // What each upstream request carried.
        let sent = Arc::new(Mutex::new(Vec::<String>::new()));
        let seen = sent.clone();
        let store = GenerationStore::new(10);
        let svc = ServiceBuilder::new()
            .layer(ModelRoutingLayer::new(catalog()).seed(1))
            .layer(UsageMeterLayer::new().sink(store.clone()))
            .layer(ProviderFallbackLayer::new().no_budget())
            .map_request(move |req: Request<Full<Bytes>>| {
                let tp = req
                    .headers()
                    .get("traceparent")
                    .map(|v| v.to_str().unwrap().to_owned());
                seen.lock().unwrap().push(tp.unwrap_or_default());
                req
            })
            .service(sim());
        let mut req = request(false);
        req.headers_mut().insert(
            "traceparent",
            format!("00-{TRACE}-{CALLER_SPAN}-01").parse().unwrap(),
        );
        let res = svc.oneshot(req).await.unwrap();
        assert_eq!(res.status(), 200);
        res.into_body().collect().await.unwrap();
        provider.force_flush().unwrap();

        let spans = exporter.get_finished_spans().unwrap();
        assert_eq!(spans.len(), 3, "{spans:#?}");
        for s in &spans {
            assert_eq!(s.span_context.trace_id().to_string(), TRACE, "{}", s.name);
        }
        let (failed, served, request) = (&spans[0], &spans[1], &spans[2]);
        assert_eq!(request.parent_span_id.to_string(), CALLER_SPAN);
        assert!(request.parent_span_is_remote);
        // Each upstream request carries its attempt span as the parent, in the caller's trace.
        let sent = sent.lock().unwrap().clone();
        let expect: Vec<String> = [failed, served]
            .iter()
            .map(|s| format!("00-{TRACE}-{}-01", s.span_context.span_id()))
            .collect();
        assert_eq!(sent, expect);
    }
}
