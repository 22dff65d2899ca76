//! Chat-completions callers routed to an Anthropic-wire provider: ModelRouting + ProviderFallback
//! over a SimulatedProvider that answers the Messages wire.

use bytes::Bytes;
use http::{HeaderName, Request};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use tower::{ServiceBuilder, ServiceExt};
use tower_ai_gateway::catalog::{
    AuthStyle, Catalog, Credentials, Endpoint, Model, Provider, WireFormat,
};
use tower_ai_gateway::fallback::ProviderFallbackLayer;
use tower_ai_gateway::model_routing::ModelRoutingLayer;
use tower_ai_gateway::route::ServedBy;
use tower_ai_gateway::sim::{SimProfile, SimulatedProvider};

const MODEL: &str = "acme/claude";
const KEY: &str = "sk-secret-anthro";

fn catalog(wire: WireFormat) -> Catalog {
    let mut e = Endpoint::new(MODEL, "anthro");
    e.provider_model_id = Some("claude-native".into());
    Catalog::builder()
        .model(Model::new(MODEL, "Acme Claude"))
        .provider(
            Provider::new("anthro", "Anthro")
                .base_url("http://anthro.sim/v1")
                .wire_format(wire)
                .auth(AuthStyle::Header(HeaderName::from_static("x-api-key")))
                .credentials(Credentials::key(KEY)),
        )
        .endpoint(e)
        .build()
        .expect("catalog")
}

fn sim() -> SimulatedProvider {
    SimulatedProvider::builder(5)
        .host("http://anthro.sim/v1", SimProfile::instant())
        .build()
}

struct Answer {
    status: u16,
    served: Option<ServedBy>,
    bytes: Bytes,
}

async fn call(sim: SimulatedProvider, wire: WireFormat, stream: bool) -> Answer {
    let svc = ServiceBuilder::new()
        .layer(ModelRoutingLayer::new(catalog(wire)).seed(1))
        .layer(ProviderFallbackLayer::new().no_budget())
        .service(sim);
    let body = json!({
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hello there"},
        ],
        "stream": stream,
        "max_tokens": 6,
        "stop": ["END"],
    });
    let req = Request::post("/v1/chat/completions")
        .header("authorization", "Bearer caller-own-token")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("request");
    let res = svc.oneshot(req).await.expect("service never fails");
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.expect("body never fails").to_bytes();
    let text = String::from_utf8_lossy(&bytes);
    assert!(!text.contains(KEY), "key in body: {text}");
    Answer {
        status: parts.status.as_u16(),
        served: parts.extensions.get::<ServedBy>().cloned(),
        bytes,
    }
}

/// The chunks of an SSE answer, and whether it ended with `[DONE]`.
fn chunks(bytes: &[u8]) -> (Vec<Value>, bool) {
    let text = std::str::from_utf8(bytes).expect("utf-8");
    let mut out = Vec::new();
    let mut done = false;
    for data in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
        if data == "[DONE]" {
            done = true;
        } else {
            out.push(serde_json::from_str(data).expect("chunk json"));
        }
    }
    (out, done)
}

fn check_upstream_request(sim: &SimulatedProvider, stream: bool) {
    let last = sim
        .handle("anthro.sim")
        .expect("profile")
        .last_request()
        .expect("recorded");
    assert_eq!(last.uri.path(), "/v1/messages");
    assert_eq!(last.headers["x-api-key"], KEY);
    assert_eq!(last.headers["anthropic-version"], "2023-06-01");
    assert!(
        last.bearer().is_none(),
        "the caller's token never goes upstream"
    );
    let body = last.json().expect("json body");
    assert_eq!(body["model"], "claude-native");
    assert_eq!(body["system"], "Be brief.");
    assert_eq!(
        body["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "hello there"}]}])
    );
    assert_eq!(body["max_tokens"], 6);
    assert_eq!(body["stop_sequences"], json!(["END"]));
    assert_eq!(body["stream"], stream);
}

#[tokio::test(start_paused = true)]
async fn json_answer_is_a_chat_completion() {
    let anthro = sim();
    let a = call(anthro.clone(), WireFormat::Anthropic, false).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.bytes));
    check_upstream_request(&anthro, false);
    let served = a.served.expect("served by");
    assert_eq!(&*served.provider_slug, "anthro");
    assert_eq!(&*served.upstream_model, "claude-native");
    assert!(!served.streamed);
    let kinds: Vec<&str> = served.attempts.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(kinds, ["ok"]);

    let v: Value = serde_json::from_slice(&a.bytes).expect("json");
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 6);

    // The same seeded request on the OpenAI wire: same content and usage.
    let openai = call(sim(), WireFormat::Openai, false).await;
    let o: Value = serde_json::from_slice(&openai.bytes).expect("json");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        o["choices"][0]["message"]["content"]
    );
    assert_eq!(v["usage"], o["usage"]);
}

#[tokio::test(start_paused = true)]
async fn streamed_answer_is_chat_chunks_with_usage_and_done() {
    let anthro = sim();
    let a = call(anthro.clone(), WireFormat::Anthropic, true).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.bytes));
    check_upstream_request(&anthro, true);
    let served = a.served.expect("served by");
    assert_eq!(&*served.provider_slug, "anthro");
    assert!(served.streamed);

    let (c, done) = chunks(&a.bytes);
    assert!(done, "ends with [DONE]");
    assert!(c.iter().all(|c| c["object"] == "chat.completion.chunk"));
    assert_eq!(c[0]["choices"][0]["delta"]["role"], "assistant");
    let content: String = c
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    let finish: Vec<&str> = c
        .iter()
        .filter_map(|c| c["choices"][0]["finish_reason"].as_str())
        .collect();
    assert_eq!(finish, ["length"]);
    let last = c.last().expect("usage chunk");
    assert_eq!(last["choices"], json!([]));

    let openai = call(sim(), WireFormat::Openai, true).await;
    let (o, done) = chunks(&openai.bytes);
    assert!(done);
    let o_content: String = o
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, o_content);
    assert_eq!(last["usage"], o.last().expect("usage chunk")["usage"]);
    assert_eq!(last["usage"]["completion_tokens"], 6);
}

/// An Anthropic-wire provider that fails (overloaded, or a stream that dies before content) is
/// failed over like any other; the OpenAI-wire backup serves.
#[tokio::test(start_paused = true)]
async fn anthropic_wire_failures_fail_over() {
    use tower_ai_gateway::sim::SimOutcome;
    let mut backup = Endpoint::new(MODEL, "backup");
    backup.provider_model_id = Some("backup-native".into());
    let mut e = Endpoint::new(MODEL, "anthro");
    e.provider_model_id = Some("claude-native".into());
    let catalog = Catalog::builder()
        .model(Model::new(MODEL, "Acme Claude"))
        .provider(
            Provider::new("anthro", "Anthro")
                .base_url("http://anthro.sim/v1")
                .wire_format(WireFormat::Anthropic)
                .credentials(Credentials::key(KEY)),
        )
        .provider(
            Provider::new("backup", "Backup")
                .base_url("http://backup.sim/v1")
                .credentials(Credentials::key("sk-secret-backup")),
        )
        .endpoint(e)
        .endpoint(backup)
        .build()
        .expect("catalog");
    let sim = SimulatedProvider::builder(5)
        .host(
            "http://anthro.sim/v1",
            SimProfile::instant()
                .with_fail_after_tokens(0)
                .with_script([SimOutcome::Status(529), SimOutcome::Truncated]),
        )
        .host("http://backup.sim/v1", SimProfile::instant())
        .build();
    let svc = ServiceBuilder::new()
        .layer(ModelRoutingLayer::new(catalog).seed(1))
        .layer(ProviderFallbackLayer::new().no_budget())
        .service(sim.clone());
    for stream in [false, true] {
        let body = json!({
            "model": MODEL,
            "messages": [{"role": "user", "content": "hi"}],
            "stream": stream,
            "provider": {"order": ["anthro", "backup"]},
        });
        let req = Request::post("/v1/chat/completions")
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("request");
        let res = svc.clone().oneshot(req).await.expect("response");
        assert_eq!(res.status(), 200);
        let served = res
            .extensions()
            .get::<ServedBy>()
            .cloned()
            .expect("served by");
        assert_eq!(&*served.provider_slug, "backup");
        let kinds: Vec<&str> = served.attempts.iter().map(|r| r.kind.as_str()).collect();
        assert_eq!(kinds.len(), 2, "{kinds:?}");
        assert_eq!(kinds[1], "ok");
        let bytes = res.into_body().collect().await.expect("body").to_bytes();
        assert!(!String::from_utf8_lossy(&bytes).contains(KEY));
    }
    assert_eq!(
        sim.handle("anthro.sim").expect("anthro").stats().requests,
        2
    );
}
