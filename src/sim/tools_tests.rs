//! Simulated tool calls: JSON and SSE shapes, determinism, arguments from the schema, and the
//! cases that answer with text.

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use tower::ServiceExt;

use super::tools::ToolCall;
use super::{SimOutcome, SimProfile, SimulatedProvider};

fn shell_tool() -> Value {
    json!({"type": "function", "function": {"name": "shell", "parameters": {
        "type": "object",
        "properties": {
            "command": {"type": "array", "items": {"type": "string"}},
            "workdir": {"type": "string"},
            "timeout_ms": {"type": "number"},
        },
        "required": ["command"],
    }}})
}

fn weather_tool() -> Value {
    json!({"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer"},
            "detailed": {"type": "boolean"},
            "where": {"type": "object", "properties": {"lat": {"type": ["number", "null"]}},
                      "required": ["lat"]},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["city", "unit", "days", "detailed", "where", "tags"],
    }}})
}

fn body(stream: bool, tools: Value, last_role: &str) -> Value {
    json!({
        "model": "vendor/model-x",
        "stream": stream,
        "messages": [
            {"role": "user", "content": "run echo hello"},
            {"role": last_role, "content": "hello", "tool_call_id": "call_1"},
        ],
        "tools": tools,
    })
}

fn sim(profile: SimProfile) -> SimulatedProvider {
    SimulatedProvider::builder(7).host("p.sim", profile).build()
}

async fn send(sim: &SimulatedProvider, body: &Value) -> (String, Bytes) {
    let req = Request::post("http://p.sim/v1/chat/completions")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("valid request");
    let res = sim.clone().oneshot(req).await.expect("an answer");
    assert_eq!(res.status(), 200);
    let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
    (ct, res.into_body().collect().await.unwrap().to_bytes())
}

fn sse_chunks(bytes: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(bytes).unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    text.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

fn tools_on() -> SimProfile {
    SimProfile::instant().with_tool_calls(true)
}

#[tokio::test(start_paused = true)]
async fn json_answer_is_a_tool_call_with_schema_arguments() {
    let sim = sim(tools_on());
    let (ct, bytes) = send(&sim, &body(false, json!([shell_tool()]), "user")).await;
    assert_eq!(ct, "application/json");
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let call = &choice["message"]["tool_calls"][0];
    assert!(call["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "shell");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"command": ["echo", "hello"]}));
    // Completion tokens count the call: ceil(("shell" + arguments) bytes / 4).
    let expected = ("shell".len() + args.to_string().len()).div_ceil(4);
    assert_eq!(v["usage"]["completion_tokens"], expected);
    let u = &v["usage"];
    assert_eq!(
        u["total_tokens"].as_u64(),
        Some(u["prompt_tokens"].as_u64().unwrap() + expected as u64)
    );
}

#[tokio::test(start_paused = true)]
async fn sse_streams_the_call_in_pieces_and_agrees_with_json() {
    let sim = sim(tools_on());
    let (_, json_bytes) = send(&sim, &body(false, json!([shell_tool()]), "user")).await;
    let whole: Value = serde_json::from_slice(&json_bytes).unwrap();
    let (ct, bytes) = send(&sim, &body(true, json!([shell_tool()]), "user")).await;
    assert_eq!(ct, "text/event-stream");
    let chunks = sse_chunks(&bytes);
    let first = &chunks[0]["choices"][0]["delta"];
    assert_eq!(first["role"], "assistant");
    assert_eq!(first["tool_calls"][0]["function"]["name"], "shell");
    assert!(first["tool_calls"][0]["id"]
        .as_str()
        .unwrap()
        .starts_with("call_"));
    let pieces: Vec<&str> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .filter(|a| !a.is_empty())
        .collect();
    assert!(pieces.len() > 1, "arguments come in pieces: {pieces:?}");
    let joined: String = pieces.concat();
    let expected = &whole["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"];
    assert_eq!(joined, expected.as_str().unwrap());
    let finish: Vec<&Value> = chunks
        .iter()
        .map(|c| &c["choices"][0]["finish_reason"])
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finish, [&json!("tool_calls")]);
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(
        last["usage"]["completion_tokens"],
        whole["usage"]["completion_tokens"]
    );
}

#[tokio::test(start_paused = true)]
async fn answers_are_deterministic() {
    let a = send(&sim(tools_on()), &body(true, json!([shell_tool()]), "user")).await;
    let b = send(&sim(tools_on()), &body(true, json!([shell_tool()]), "user")).await;
    assert_eq!(a.1, b.1);
}

#[test]
fn arguments_cover_every_required_key_by_type() {
    let req = body(false, json!([weather_tool(), shell_tool()]), "user");
    let call = ToolCall::choose(req.to_string().as_bytes()).expect("a call");
    assert_eq!(call.name, "get_weather");
    let args: Value = serde_json::from_str(&call.arguments).unwrap();
    assert_eq!(
        args,
        json!({"city": "hello", "unit": "celsius", "days": 1, "detailed": false,
               "where": {"lat": 1}, "tags": ["hello"]})
    );
}

#[test]
fn tool_choice_picks_the_function_or_turns_calls_off() {
    let mut req = body(false, json!([weather_tool(), shell_tool()]), "user");
    req["tool_choice"] = json!({"type": "function", "function": {"name": "shell"}});
    let call = ToolCall::choose(req.to_string().as_bytes()).expect("a call");
    assert_eq!(call.name, "shell");
    req["tool_choice"] = json!({"type": "function", "function": {"name": "nope"}});
    assert_eq!(ToolCall::choose(req.to_string().as_bytes()), None);
    req["tool_choice"] = json!("none");
    assert_eq!(ToolCall::choose(req.to_string().as_bytes()), None);
    req["tool_choice"] = json!("required");
    assert!(ToolCall::choose(req.to_string().as_bytes()).is_some());
    // A string `cmd` gets a command line.
    let exec = json!({"type": "function", "function": {"name": "exec_command", "parameters": {
        "type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]}}});
    let call = ToolCall::choose(body(false, json!([exec]), "user").to_string().as_bytes());
    assert_eq!(call.unwrap().arguments, r#"{"cmd":"echo hello"}"#);
}

#[tokio::test(start_paused = true)]
async fn text_after_a_tool_result_without_tools_or_when_off() {
    let text = |bytes: &Bytes| -> Value {
        let v: Value = serde_json::from_slice(bytes).unwrap();
        assert_eq!(v["choices"][0]["finish_reason"], "stop", "{v}");
        assert!(v["choices"][0]["message"]["content"].is_string());
        v
    };
    let on = sim(tools_on());
    text(
        &send(&on, &body(false, json!([shell_tool()]), "tool"))
            .await
            .1,
    );
    text(&send(&on, &body(false, json!([]), "user")).await.1);
    let off = sim(SimProfile::instant());
    text(
        &send(&off, &body(false, json!([shell_tool()]), "user"))
            .await
            .1,
    );
    // A failing request fails as before, tools or not.
    let failing = sim(tools_on().with_script([SimOutcome::Status(503)]));
    let req = Request::post("http://p.sim/v1/chat/completions")
        .body(Full::new(Bytes::from(
            body(false, json!([shell_tool()]), "user").to_string(),
        )))
        .unwrap();
    assert_eq!(failing.oneshot(req).await.unwrap().status(), 503);
}
