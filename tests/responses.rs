//! The example gateway's Responses API routes over loopback: JSON and streamed answers, a tool
//! round trip, metering (the generation record agrees with `usage.cost`), routing options, errors.

#![allow(dead_code)]

#[path = "../examples/gateway/app.rs"]
mod app;
#[path = "../examples/gateway/config.rs"]
mod config;
mod support;

use std::net::SocketAddr;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde_json::{json, Value};
use support::{HttpClient, Reply};
use tower_ai_gateway::sim::{SimOutcome, SimulatedProvider};

const MODEL: &str = "meta-llama/llama-3.3-70b-instruct";

struct Gateway {
    addr: SocketAddr,
    sim: SimulatedProvider,
    client: HttpClient,
}

async fn start() -> Gateway {
    let cfg = config::demo_recording(16, true, true);
    let sim = match &cfg.upstream {
        config::Upstream::Sim(s) => s.clone(),
        config::Upstream::Http => unreachable!(),
    };
    let (router, _state) = app::build(cfg);
    let (addr, client) = support::serve(router).await;
    Gateway { addr, sim, client }
}

impl Gateway {
    async fn post(&self, path: &str, body: &Value) -> Reply {
        let req = Request::post(format!("http://{}{path}", self.addr))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        support::fetch(&self.client, req).await
    }

    async fn get(&self, path: &str) -> Reply {
        let req = Request::get(format!("http://{}{path}", self.addr))
            .body(Full::new(Bytes::new()))
            .unwrap();
        support::fetch(&self.client, req).await
    }
}

/// Responses SSE: every event names its `type`, sequence numbers count from 0, no `[DONE]`.
fn events(body: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(body).unwrap();
    assert!(!text.contains("[DONE]"));
    let mut out: Vec<Value> = Vec::new();
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let (name, data) = block.split_once('\n').unwrap();
        let v: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(name.strip_prefix("event: ").unwrap(), v["type"], "{block}");
        assert_eq!(v["sequence_number"], out.len());
        out.push(v);
    }
    out
}

fn tool_request() -> Value {
    json!({
        "model": MODEL,
        "instructions": "You are terse.",
        "input": [
            {"role": "user", "content": "Weather in Paris?"},
            {"type": "function_call", "call_id": "call_7", "name": "get_weather",
             "arguments": "{\"city\":\"Paris\"}"},
            {"type": "function_call_output", "call_id": "call_7", "output": "18C, sunny"},
        ],
        "tools": [{"type": "function", "name": "get_weather",
                   "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}],
        "tool_choice": "auto",
        "max_output_tokens": 64,
    })
}

#[tokio::test]
async fn json_answer_with_tool_round_trip_is_metered() {
    let gw = start().await;
    let groq = gw.sim.model_handle("groq.sim", MODEL).unwrap();
    let mut body = tool_request();
    body["provider"] = json!({"order": ["groq"], "allow_fallbacks": false});
    for path in ["/api/v1/responses", "/v1/responses"] {
        let r = gw.post(path, &body).await;
        assert_eq!(r.status, 200, "{path}: {:?}", r.body);
        let v = r.json();
        assert_eq!(v["object"], "response");
        assert_eq!(v["status"], "completed");
        assert_eq!(v["model"], MODEL);
        assert_eq!(v["instructions"], "You are terse.");
        assert_eq!(v["tools"][0]["name"], "get_weather");
        assert_eq!(v["output"][0]["type"], "message");
        assert_eq!(v["output"][0]["content"][0]["type"], "output_text");
        assert!(!v["output"][0]["content"][0]["text"]
            .as_str()
            .unwrap()
            .is_empty());
        let id = v["id"].as_str().unwrap();
        assert_eq!(r.headers["x-generation-id"], id);
        let usage = &v["usage"];
        assert!(usage["input_tokens"].as_u64().unwrap() > 0, "{usage}");
        assert!(usage["output_tokens"].as_u64().unwrap() > 0, "{usage}");
        assert_eq!(
            usage["total_tokens"],
            usage["input_tokens"].as_u64().unwrap() + usage["output_tokens"].as_u64().unwrap()
        );
        // The provider got the conversation as chat messages, the tool call and its result
        // included.
        let sent = groq.last_request().unwrap().json().unwrap();
        let m = &sent["messages"];
        assert_eq!(m[0], json!({"role": "system", "content": "You are terse."}));
        assert_eq!(m[2]["tool_calls"][0]["id"], "call_7");
        assert_eq!(m[2]["tool_calls"][0]["function"]["name"], "get_weather");
        assert_eq!(
            m[3],
            json!({"role": "tool", "tool_call_id": "call_7", "content": "18C, sunny"})
        );
        assert_eq!(sent["tools"][0]["function"]["name"], "get_weather");
        assert_eq!(sent["max_tokens"], 64);
        // Metered: the generation record has the cost the answer reports.
        let g = gw.get(&format!("/api/v1/generation?id={id}")).await;
        assert_eq!(g.status, 200, "{:?}", g.body);
        let g = g.json();
        assert_eq!(g["data"]["total_cost"], usage["cost"], "{g}");
        assert_eq!(g["data"]["tokens_prompt"], usage["input_tokens"], "{g}");
    }
}

#[tokio::test]
async fn streamed_answer_follows_the_event_sequence() {
    let gw = start().await;
    let mut body = tool_request();
    body["stream"] = json!(true);
    let r = gw.post("/v1/responses", &body).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let ev = events(&r.body);
    let names: Vec<&str> = ev.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        names[..5],
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta"
        ]
    );
    assert_eq!(
        names[names.len() - 4..],
        [
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    let deltas: String = ev
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    let done = ev.last().unwrap();
    assert_eq!(done["type"], "response.completed");
    let resp = &done["response"];
    assert_eq!(resp["output"][0]["content"][0]["text"], deltas);
    assert!(
        resp["usage"]["output_tokens"].as_u64().unwrap() > 0,
        "{resp}"
    );
    let id = resp["id"].as_str().unwrap();
    assert_eq!(r.headers["x-generation-id"], id);
    let g = gw.get(&format!("/api/v1/generation?id={id}")).await.json();
    assert_eq!(g["data"]["total_cost"], resp["usage"]["cost"], "{g}");
    assert_eq!(g["data"]["streamed"], true, "{g}");
}

#[tokio::test]
async fn routing_options_apply() {
    let gw = start().await;
    let mut body = tool_request();
    body["provider"] = json!({"order": ["groq"], "allow_fallbacks": false});
    let r = gw.post("/v1/responses", &body).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.json()["provider"], "Groq", "{:?}", r.body);
    // Nothing passes a tiny price cap: OpenRouter's 404 envelope comes through unchanged.
    body["provider"] = json!({"max_price": {"prompt": 0.000001}});
    let r = gw.post("/v1/responses", &body).await;
    assert_eq!(r.status, 404, "{:?}", r.body);
    assert!(r.json()["error"]["message"].is_string());
}

#[tokio::test]
async fn errors_are_openrouter_shaped() {
    let gw = start().await;
    let mut b = tool_request();
    b["previous_response_id"] = json!("resp_123");
    let r = gw.post("/v1/responses", &b).await;
    assert_eq!(r.status, 400);
    let v = r.json();
    assert_eq!(v["error"]["code"], 400);
    assert_eq!(v["error"]["metadata"]["field"], "previous_response_id");
    for bad in [
        json!({"model": MODEL}),
        json!({"model": MODEL, "input": [{"type": "nope"}]}),
    ] {
        let r = gw.post("/api/v1/responses", &bad).await;
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(
            r.json()["error"]["metadata"]["error_type"],
            "invalid_request"
        );
    }
    let r = gw
        .post(
            "/v1/responses",
            &json!({"model": "nobody/nothing", "input": "hi"}),
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    // Not JSON at all.
    let req = Request::post(format!("http://{}/v1/responses", gw.addr))
        .body(Full::new(Bytes::from_static(b"{not json")))
        .unwrap();
    let r = support::fetch(&gw.client, req).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], 400);
}

#[tokio::test]
async fn mid_stream_failure_ends_with_response_failed() {
    let gw = start().await;
    let h = gw.sim.model_handle("groq.sim", MODEL).unwrap();
    let mut body = tool_request();
    body["provider"] = json!({"order": ["groq"], "allow_fallbacks": false});
    body["stream"] = json!(true);
    h.push_script([SimOutcome::MidStreamError]);
    let r = gw.post("/v1/responses", &body).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let ev = events(&r.body);
    let n = ev.len();
    assert_eq!(ev[0]["type"], "response.created");
    assert_eq!(ev[n - 2]["type"], "error", "{ev:?}");
    assert_eq!(ev[n - 1]["type"], "response.failed");
    assert_eq!(ev[n - 1]["response"]["status"], "failed");
    assert!(!ev.iter().any(|e| e["type"] == "response.completed"));
    // Before any output: the upstream's error status comes back as an error response.
    body["stream"] = json!(false);
    h.push_script([SimOutcome::Status(503)]);
    let r = gw.post("/v1/responses", &body).await;
    assert!(r.status.is_server_error(), "{}", r.status);
    assert!(r.json()["error"]["message"].is_string());
    assert!(!std::str::from_utf8(&r.body).unwrap().contains("sk-sim-"));
}

#[tokio::test]
async fn anthropic_wire_provider_serves_responses() {
    let gw = start().await;
    let claude = "anthropic/claude-sonnet-4.5";
    let mut body = tool_request();
    body["model"] = json!(claude);
    body["reasoning"] = json!({"effort": "low"});
    for stream in [false, true] {
        body["stream"] = json!(stream);
        let r = gw.post("/v1/responses", &body).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let resp = if stream {
            events(&r.body).pop().unwrap()["response"].clone()
        } else {
            r.json()
        };
        assert_eq!(resp["status"], "completed", "{resp}");
        assert_eq!(resp["model"], claude);
        let text = resp["output"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["type"] == "message")
            .map(|o| o["content"][0]["text"].clone());
        assert!(
            text.is_some_and(|t| t.as_str().is_some_and(|t| !t.is_empty())),
            "{resp}"
        );
        assert!(resp["usage"]["cost"].as_f64().unwrap() > 0.0, "{resp}");
    }
}

/// The layer alone, over a scripted chat service.
mod layer {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use serde_json::{json, Value};
    use tower::{service_fn, Layer, ServiceExt};
    use tower_ai_gateway::responses::ResponsesLayer;
    use tower_ai_gateway::BoxError;

    /// Calls a `ResponsesLayer` over a service answering `status` + `body` (counting its calls).
    async fn call(
        limit: usize,
        request: Bytes,
        status: u16,
        body: &'static str,
    ) -> (u16, Value, usize) {
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = calls.clone();
        let chat = service_fn(move |_req: http::Request<Full<Bytes>>| {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                let mut res = http::Response::new(Full::new(Bytes::from_static(body.as_bytes())));
                *res.status_mut() = http::StatusCode::from_u16(status).unwrap();
                Ok::<_, BoxError>(res)
            }
        });
        let svc = ResponsesLayer::new().body_limit(limit).layer(chat);
        let res = svc
            .oneshot(
                http::Request::post("/v1/responses")
                    .body(Full::new(request))
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = res.status().as_u16();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, v, calls.load(std::sync::atomic::Ordering::SeqCst))
    }

    fn hello() -> Bytes {
        Bytes::from(json!({"model": "m", "input": "hello"}).to_string())
    }

    #[tokio::test]
    async fn too_large_is_413_before_the_inner_service() {
        let (status, v, calls) = call(8, hello(), 200, "{}").await;
        assert_eq!((status, calls), (413, 0));
        assert_eq!(v["error"]["code"], 413);
    }

    #[tokio::test]
    async fn upstream_answers_that_are_not_completions() {
        let (status, v, _) = call(1 << 20, hello(), 200, "not json").await;
        assert_eq!(status, 502);
        assert_eq!(v["error"]["code"], 502);
        // An error inside a 200 body takes its code as the status.
        let (status, v, _) = call(
            1 << 20,
            hello(),
            200,
            r#"{"error":{"code":429,"message":"slow down"}}"#,
        )
        .await;
        assert_eq!(status, 429);
        assert_eq!(v["error"]["message"], "slow down");
        // An error status passes through as it is.
        let (status, v, _) = call(
            1 << 20,
            hello(),
            503,
            r#"{"error":{"code":503,"message":"down"}}"#,
        )
        .await;
        assert_eq!(status, 503);
        assert_eq!(v["error"]["message"], "down");
    }

    #[tokio::test]
    async fn bad_requests_never_reach_the_inner_service() {
        for body in [
            &b"{nope"[..],
            b"[]",
            br#"{"model":"m"}"#,
            br#"{"model":"m","input":"x","previous_response_id":"r"}"#,
        ] {
            let (status, v, calls) = call(1 << 20, Bytes::from_static(body), 200, "{}").await;
            assert_eq!((status, calls), (400, 0), "{body:?}");
            assert_eq!(v["error"]["code"], 400);
        }
    }
}
