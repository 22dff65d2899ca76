//! Simulated tool calls end to end: a Responses request offering a function tool, through
//! `ResponsesLayer` and `GatewayLayer` over a simulator with tool calls on, gets a
//! `function_call` output item (JSON and streamed), metered with the call's tokens; the
//! follow-up carrying the `function_call_output` gets text. Time is tokio's paused clock.

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use tower::{ServiceBuilder, ServiceExt};
use tower_ai_gateway::catalog::{Catalog, Credentials, Endpoint, Model, Provider, Usd};
use tower_ai_gateway::responses::ResponsesLayer;
use tower_ai_gateway::sim::{SimProfile, SimulatedProvider};
use tower_ai_gateway::usage_meter::GenerationStore;
use tower_ai_gateway::GatewayLayer;

const MODEL: &str = "acme/chat";

fn catalog() -> Catalog {
    let mut e = Endpoint::new(MODEL, "alpha");
    e.pricing.prompt = Usd::from_micros(1);
    e.pricing.completion = Usd::from_micros(2);
    e.supported_parameters = vec!["tools".into(), "tool_choice".into(), "max_tokens".into()];
    Catalog::builder()
        .model(Model::new(MODEL, "Acme Chat"))
        .provider(
            Provider::new("alpha", "Alpha")
                .base_url("http://alpha.sim/v1")
                .credentials(Credentials::key("sk-alpha-secret-0123456789")),
        )
        .endpoint(e)
        .build()
        .expect("catalog")
}

fn shell_tool() -> Value {
    json!({"type": "function", "name": "exec_command", "parameters": {
        "type": "object",
        "properties": {"cmd": {"type": "string"}, "workdir": {"type": "string"}},
        "required": ["cmd"],
    }})
}

/// Sends `body` to `/api/v1/responses` through the whole stack; the status and body bytes.
async fn call(tool_calls: bool, store: &GenerationStore, body: &Value) -> (u16, Bytes) {
    let sim = SimulatedProvider::builder(5)
        .default_profile(SimProfile::instant().with_tool_calls(tool_calls))
        .build();
    let gateway = GatewayLayer::new(catalog()).usage_meter(|m| m.sink(store.clone()));
    let svc = ServiceBuilder::new()
        .layer(ResponsesLayer::new())
        .layer(gateway)
        .service(sim);
    let req = Request::post("/api/v1/responses")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    let status = res.status().as_u16();
    (status, res.into_body().collect().await.unwrap().to_bytes())
}

fn first_turn(stream: bool) -> Value {
    json!({"model": MODEL, "input": "run `echo hello`", "tools": [shell_tool()], "stream": stream})
}

/// The `data:` payloads of a Responses event stream.
fn events(bytes: &[u8]) -> Vec<Value> {
    std::str::from_utf8(bytes)
        .unwrap()
        .split("\n\n")
        .filter_map(|block| block.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_function_tool_gets_a_function_call_item_then_text_after_its_output() {
    let store = GenerationStore::new(8);
    let (status, bytes) = call(true, &store, &first_turn(false)).await;
    assert_eq!(status, 200, "{bytes:?}");
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    let item = &v["output"][0];
    assert_eq!(item["type"], "function_call", "{v}");
    assert_eq!(item["name"], "exec_command");
    let args: Value = serde_json::from_str(item["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"cmd": "echo hello"}));
    let call_id = item["call_id"].as_str().unwrap().to_owned();
    assert!(call_id.starts_with("call_"));
    // Metered with the call's tokens: ceil(("exec_command" + arguments) bytes / 4).
    let expected = ("exec_command".len() + item["arguments"].as_str().unwrap().len()).div_ceil(4);
    assert_eq!(v["usage"]["output_tokens"], expected, "{v}");
    let record = store.records().pop().expect("a generation record");
    assert_eq!(record.tokens.completion, expected as u64);
    assert_eq!(record.finish_reason.as_deref(), Some("tool_calls"));

    // The follow-up carries the call and its output: the answer is text, the loop ends.
    let follow_up = json!({"model": MODEL, "tools": [shell_tool()], "input": [
        {"role": "user", "content": "run `echo hello`"},
        {"type": "function_call", "call_id": call_id, "name": "exec_command",
         "arguments": item["arguments"]},
        {"type": "function_call_output", "call_id": call_id, "output": "hello\n"},
    ]});
    let (status, bytes) = call(true, &store, &follow_up).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["output"][0]["type"], "message", "{v}");
    assert!(!v["output"][0]["content"][0]["text"]
        .as_str()
        .unwrap()
        .is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_streamed_function_call_follows_the_event_sequence() {
    let store = GenerationStore::new(8);
    let (status, bytes) = call(true, &store, &first_turn(true)).await;
    assert_eq!(status, 200);
    let events = events(&bytes);
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types.first(), Some(&"response.created"));
    assert_eq!(types.last(), Some(&"response.completed"));
    assert!(
        types.contains(&"response.function_call_arguments.delta"),
        "{types:?}"
    );
    let deltas: String = events
        .iter()
        .filter(|e| e["type"] == "response.function_call_arguments.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, r#"{"cmd":"echo hello"}"#);
    let done = events.last().unwrap();
    let item = &done["response"]["output"][0];
    assert_eq!(item["type"], "function_call", "{done}");
    assert_eq!(item["name"], "exec_command");
    assert_eq!(item["arguments"], r#"{"cmd":"echo hello"}"#);
    let expected = ("exec_command".len() + deltas.len()).div_ceil(4);
    assert_eq!(done["response"]["usage"]["output_tokens"], expected);
}

#[tokio::test(start_paused = true)]
async fn without_tool_calls_the_same_request_gets_text() {
    let store = GenerationStore::new(8);
    let (status, bytes) = call(false, &store, &first_turn(false)).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["output"][0]["type"], "message", "{v}");
}
