//! The example gateway's Anthropic Messages routes over loopback, replaying what Claude Code and
//! the anthropic SDK actually sent (tests/fixtures/clients/{claude-code,anthropic-sdk}).

#![allow(dead_code)]

#[path = "../examples/gateway/app.rs"]
mod app;
#[path = "../examples/gateway/config.rs"]
mod config;
mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use serde_json::{json, Value};
use support::{HttpClient, Reply};

struct Gateway {
    addr: SocketAddr,
    sim: tower_ai_gateway::sim::SimulatedProvider,
    client: HttpClient,
}

async fn start(loopback_without_key: bool) -> Gateway {
    let mut cfg = config::demo_recording(11, true, true);
    cfg.loopback_without_key = loopback_without_key;
    let sim = match &cfg.upstream {
        config::Upstream::Sim(s) => s.clone(),
        config::Upstream::Http => unreachable!(),
    };
    let (router, _state) = app::build(cfg);
    let (addr, client) = support::serve(router).await;
    Gateway { addr, sim, client }
}

impl Gateway {
    async fn send(
        &self,
        method: Method,
        target: &str,
        headers: &[(String, String)],
        body: Bytes,
    ) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{}{target}", self.addr));
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        support::fetch(&self.client, req.body(Full::new(body)).unwrap()).await
    }

    async fn messages(&self, body: Value, headers: &[(&str, &str)]) -> Reply {
        let mut h: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        h.push(("content-type".into(), "application/json".into()));
        h.push(("anthropic-version".into(), "2023-06-01".into()));
        self.send(
            Method::POST,
            "/v1/messages?beta=true",
            &h,
            Bytes::from(body.to_string()),
        )
        .await
    }
}

/// Parses an Anthropic SSE body: every event must have an `event:` line naming its `data.type`.
fn sse_events(body: &[u8]) -> Vec<(String, Value)> {
    let text = std::str::from_utf8(body).unwrap();
    let mut out = Vec::new();
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let mut name = None;
        let mut data = None;
        for line in block.lines() {
            if let Some(n) = line.strip_prefix("event: ") {
                name = Some(n.to_owned());
            } else if let Some(d) = line.strip_prefix("data: ") {
                data = Some(serde_json::from_str::<Value>(d).unwrap());
            }
        }
        let name = name.unwrap_or_else(|| panic!("an event without `event:` line: {block}"));
        let data = data.unwrap_or_else(|| panic!("an event without data: {block}"));
        assert_eq!(data["type"], name.as_str(), "{block}");
        out.push((name, data));
    }
    out
}

/// Checks the full Anthropic event sequence and returns the assembled text.
fn check_stream(events: &[(String, Value)]) -> String {
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[0], "message_start", "{names:?}");
    assert_eq!(names[1], "ping", "{names:?}");
    assert_eq!(names[names.len() - 2], "message_delta", "{names:?}");
    assert_eq!(names[names.len() - 1], "message_stop", "{names:?}");
    let start = &events[0].1["message"];
    assert_eq!(start["type"], "message");
    assert_eq!(start["role"], "assistant");
    assert!(start["id"].as_str().unwrap().starts_with("gen-"), "{start}");
    let delta = &events[names.len() - 2].1;
    assert!(delta["delta"]["stop_reason"].is_string(), "{delta}");
    assert!(
        delta["usage"]["output_tokens"].as_u64().unwrap() > 0,
        "{delta}"
    );
    let mut text = String::new();
    let mut open: Option<u64> = None;
    for (name, data) in &events[2..events.len() - 2] {
        match name.as_str() {
            "content_block_start" => {
                assert!(open.is_none());
                open = data["index"].as_u64();
            }
            "content_block_delta" => {
                assert_eq!(data["index"].as_u64(), open);
                if let Some(t) = data["delta"]["text"].as_str() {
                    text.push_str(t);
                }
            }
            "content_block_stop" => {
                assert_eq!(data["index"].as_u64(), open);
                open = None;
            }
            other => panic!("unexpected event {other}"),
        }
    }
    assert!(open.is_none());
    text
}

fn check_message(v: &Value) {
    assert_eq!(v["type"], "message", "{v}");
    assert_eq!(v["role"], "assistant");
    assert!(v["id"].as_str().unwrap().starts_with("gen-"), "{v}");
    assert!(
        v["content"].as_array().is_some_and(|c| !c.is_empty()),
        "{v}"
    );
    assert!(v["stop_reason"].is_string());
    assert!(v.as_object().unwrap().contains_key("stop_sequence"));
    assert!(v["usage"]["input_tokens"].as_u64().unwrap() > 0, "{v}");
    assert!(v["usage"]["output_tokens"].as_u64().unwrap() > 0, "{v}");
}

fn fixtures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/clients");
    let mut out = Vec::new();
    for client in ["claude-code", "anthropic-sdk"] {
        for scenario in std::fs::read_dir(root.join(client)).unwrap() {
            for f in std::fs::read_dir(scenario.unwrap().path()).unwrap() {
                let p = f.unwrap().path();
                if p.extension().is_some_and(|e| e == "json") {
                    out.push(p);
                }
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn every_captured_anthropic_request_is_answered() {
    let gw = start(true).await;
    let files = fixtures();
    assert!(files.len() >= 20, "{}", files.len());
    for path in files {
        let f: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let name = path.display().to_string();
        let mut target = f["raw_target"].as_str().unwrap().to_owned();
        if target.is_empty() {
            target = f["path"].as_str().unwrap().to_owned();
        }
        let mut headers = Vec::new();
        for (k, v) in f["headers"].as_object().unwrap() {
            let lower = k.to_ascii_lowercase();
            if matches!(
                lower.as_str(),
                "host" | "content-length" | "connection" | "accept-encoding"
            ) {
                continue;
            }
            let v = v.as_str().unwrap();
            // Secrets are redacted in the captures; on loopback the demo accepts any key.
            let v = match lower.as_str() {
                "authorization" => "Bearer local-test-key".to_owned(),
                "x-api-key" => "local-test-key".to_owned(),
                _ => v.to_owned(),
            };
            headers.push((k.clone(), v));
        }
        let body = &f["body"];
        let r = gw
            .send(
                Method::POST,
                &target,
                &headers,
                Bytes::from(body.to_string()),
            )
            .await;
        assert_eq!(r.status, 200, "{name}: {:?}", r.body);
        if target.contains("count_tokens") {
            let v = r.json();
            assert!(v["input_tokens"].as_u64().unwrap() > 0, "{name}: {v}");
            assert_eq!(v.as_object().unwrap().len(), 1, "{name}: {v}");
            continue;
        }
        let model = body["model"].as_str().unwrap();
        let served = if model.starts_with("anthropic/") {
            "anthropic/claude-sonnet-4.5"
        } else {
            model
        };
        if body["stream"] == true {
            assert!(
                r.headers["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("text/event-stream"),
                "{name}"
            );
            let events = sse_events(&r.body);
            let text = check_stream(&events);
            assert!(!text.is_empty(), "{name}");
            assert_eq!(events[0].1["message"]["model"], served, "{name}");
        } else {
            let v = r.json();
            check_message(&v);
            assert_eq!(v["model"], served, "{name}");
            assert!(v["usage"]["cost"].as_f64().unwrap() > 0.0, "{name}: {v}");
        }
    }
}

#[tokio::test]
async fn streamed_and_non_streamed_answers() {
    let gw = start(true).await;
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 64,
        "messages": [{"role": "user", "content": "hello"}]});
    let r = gw
        .messages(body.clone(), &[("x-api-key", "whatever")])
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let v = r.json();
    check_message(&v);
    assert_eq!(v["model"], "anthropic/claude-sonnet-4.5");
    assert!(v["provider"].is_string(), "{v}");

    let mut s = body;
    s["stream"] = json!(true);
    let r = gw.messages(s, &[]).await;
    assert_eq!(r.status, 200);
    let events = sse_events(&r.body);
    check_stream(&events);
    let delta = &events[events.len() - 2].1;
    assert!(
        delta["usage"]["input_tokens"].as_u64().unwrap() > 0,
        "{delta}"
    );
    assert!(delta["usage"]["cost"].as_f64().unwrap() > 0.0, "{delta}");
}

#[tokio::test]
async fn errors_are_in_anthropic_shape() {
    let gw = start(false).await;
    let body = json!({"model": "deepseek/deepseek-chat", "max_tokens": 16,
        "messages": [{"role": "user", "content": "hi"}]});
    // No key.
    let r = gw.messages(body.clone(), &[]).await;
    assert_eq!(r.status, 401);
    let v = r.json();
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], "authentication_error", "{v}");
    assert_eq!(v["error"]["error_type"], "authentication", "{v}");
    assert!(v["request_id"].is_null());
    // A wrong key.
    let r = gw
        .messages(body.clone(), &[("authorization", "Bearer nope-nope-nope")])
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["type"], "authentication_error");

    let gw = start(true).await;
    // Unknown model.
    let mut b = body.clone();
    b["model"] = json!("nobody/nothing");
    let r = gw.messages(b, &[]).await;
    assert!(r.status.is_client_error(), "{}", r.status);
    let v = r.json();
    assert_eq!(v["type"], "error", "{v}");
    assert!(
        ["invalid_request_error", "not_found_error"]
            .contains(&v["error"]["type"].as_str().unwrap()),
        "{v}"
    );
    // Too many fallbacks, and fallbacks with models.
    let mut b = body.clone();
    b["fallbacks"] =
        json!([{"model": "a/b"}, {"model": "a/c"}, {"model": "a/d"}, {"model": "a/e"}]);
    let r = gw.messages(b, &[]).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    let mut b = body.clone();
    b["fallbacks"] = json!([{"model": "openai/gpt-4o-mini"}]);
    b["models"] = json!(["openai/gpt-4o-mini"]);
    let r = gw.messages(b, &[]).await;
    assert_eq!(r.status, 400);
    // Fallbacks alone are accepted.
    let mut b = body.clone();
    b["fallbacks"] = json!([{"model": "openai/gpt-4o-mini"}]);
    let r = gw.messages(b, &[]).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // Not JSON.
    let r = gw
        .send(
            Method::POST,
            "/v1/messages",
            &[],
            Bytes::from_static(b"{nope"),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    // Too large.
    let big = "x".repeat(tower_ai_gateway::model_routing::DEFAULT_BODY_LIMIT + 10);
    let r = gw
        .messages(json!({"model": "deepseek/deepseek-chat", "max_tokens": 1, "messages": [{"role": "user", "content": big}]}), &[])
        .await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["type"], "error");
}

/// The anthropic SDKs raise `NotFoundError` and Claude Code says "There's an issue with the
/// selected model" only for a 404; Anthropic's API answers an unknown model with 404
/// `not_found_error`. OpenRouter's own route keeps OpenRouter's 400 "is not a valid model ID".
#[tokio::test]
async fn unknown_model_is_a_404_not_found_error_on_messages() {
    let gw = start(true).await;
    for stream in [false, true] {
        for path in ["/v1/messages?beta=true", "/api/v1/messages"] {
            let body = json!({"model": "nobody/no-such-model", "max_tokens": 16, "stream": stream,
                "messages": [{"role": "user", "content": "hi"}]});
            let r = gw
                .send(
                    Method::POST,
                    path,
                    &[("content-type".into(), "application/json".into())],
                    Bytes::from(body.to_string()),
                )
                .await;
            assert_eq!(r.status, 404, "{path} stream={stream}: {:?}", r.body);
            let v = r.json();
            assert_eq!(v["type"], "error", "{v}");
            assert_eq!(v["error"]["type"], "not_found_error", "{v}");
            assert_eq!(v["error"]["error_type"], "not_found", "{v}");
            let msg = v["error"]["message"].as_str().unwrap();
            assert!(msg.contains("nobody/no-such-model"), "{v}");
        }
    }
    // A fallback list of unknown models is the same error.
    let body = json!({"model": "nobody/a", "fallbacks": [{"model": "nobody/b"}], "max_tokens": 16,
        "messages": [{"role": "user", "content": "hi"}]});
    let r = gw.messages(body, &[]).await;
    assert_eq!(r.status, 404, "{:?}", r.body);
    // The OpenRouter route answers as OpenRouter does.
    let body = json!({"model": "nobody/no-such-model",
        "messages": [{"role": "user", "content": "hi"}]});
    let r = gw
        .send(
            Method::POST,
            "/api/v1/chat/completions",
            &[],
            Bytes::from(body.to_string()),
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    let v = r.json();
    assert_eq!(v["error"]["code"], 400, "{v}");
    assert_eq!(v["error"]["availability"]["code"], "model_not_found", "{v}");
}

/// With only `ANTHROPIC_BASE_URL` set, Claude Code 2.1 asks for `claude-opus-4-8` (its haiku tier
/// for `claude-haiku-4-5`); the demo serves every id Claude Code ships with its Claude model.
#[tokio::test]
async fn claude_code_default_model_ids_are_served_by_the_demo() {
    let gw = start(true).await;
    for model in [
        "claude-opus-4-8",
        "claude-opus-4-7",
        "claude-opus-4-6",
        "claude-sonnet-4-6",
        "claude-sonnet-5",
        "claude-haiku-4-5",
        "claude-haiku-4-5-20251001",
        "claude-sonnet-4-5-20250929",
    ] {
        let body = json!({"model": model, "max_tokens": 64000, "stream": true,
            "thinking": {"type": "adaptive"},
            "messages": [{"role": "user", "content": "say hello"}]});
        let r = gw
            .messages(body, &[("authorization", "Bearer anything")])
            .await;
        assert_eq!(r.status, 200, "{model}: {:?}", r.body);
        let events = sse_events(&r.body);
        check_stream(&events);
        assert_eq!(
            events[0].1["message"]["model"], "anthropic/claude-sonnet-4.5",
            "{model}"
        );
    }
}

#[tokio::test]
async fn count_tokens_estimates() {
    let gw = start(true).await;
    let r = gw
        .send(
            Method::POST,
            "/api/v1/messages/count_tokens",
            &[],
            Bytes::from(
                json!({"model": "openai/gpt-4o-mini",
                    "messages": [{"role": "user", "content": "12345678"}]})
                .to_string(),
            ),
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r.json()["input_tokens"].as_u64().unwrap() >= 2);
}

#[tokio::test]
async fn upstream_failures_become_anthropic_errors() {
    use tower_ai_gateway::sim::SimOutcome;
    let gw = start(true).await;
    let h = gw
        .sim
        .model_handle("groq.sim", "meta-llama/llama-3.3-70b-instruct")
        .unwrap();
    let body = json!({"model": "meta-llama/llama-3.3-70b-instruct", "max_tokens": 64,
        "provider": {"order": ["groq"], "allow_fallbacks": false},
        "messages": [{"role": "user", "content": "hi"}]});
    // Before any output: an error response with the upstream's status class.
    h.push_script([SimOutcome::Status(503)]);
    let r = gw.messages(body.clone(), &[]).await;
    assert!(r.status.is_server_error(), "{}", r.status);
    let v = r.json();
    assert_eq!(v["type"], "error", "{v}");
    assert!(
        ["overloaded_error", "api_error"].contains(&v["error"]["type"].as_str().unwrap()),
        "{v}"
    );
    assert!(!std::str::from_utf8(&r.body).unwrap().contains("sk-sim-"));
    // After output has started: `event: error` ends the stream.
    h.push_script([SimOutcome::MidStreamError]);
    let mut s = body.clone();
    s["stream"] = json!(true);
    let r = gw.messages(s, &[]).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let events = sse_events(&r.body);
    assert_eq!(events[0].0, "message_start");
    let (name, last) = events.last().unwrap();
    assert_eq!(name, "error", "{events:?}");
    assert_eq!(last["error"]["type"], "api_error");
    assert!(!events.iter().any(|(n, _)| n == "message_stop"));
}

/// Messages in, Anthropic-wire provider out, over the example gateway: the sim receives the
/// caller's bytes apart from the model and the gateway-only `provider`, and its answer comes back
/// untranslated but metered.
#[tokio::test]
async fn messages_pass_through_to_the_anthropic_wire_provider() {
    let gw = start(true).await;
    for stream in [false, true] {
        let body = format!(
            concat!(
                "{{ \"model\": \"claude-sonnet-4-5\", \"max_tokens\": 64,\n",
                "  \"system\": [{{\"type\": \"text\", \"text\": \"Be brief.\", ",
                "\"cache_control\": {{\"type\": \"ephemeral\"}}}}],\n",
                "  \"messages\": [{{\"role\": \"user\", \"content\": \"hello\"}}, ",
                "{{\"role\": \"assistant\", \"content\": [{{\"type\": \"thinking\", ",
                "\"thinking\": \"hm\", \"signature\": \"EqQBsig/+=\"}}, ",
                "{{\"type\": \"text\", \"text\": \"Hi.\"}}]}}, ",
                "{{\"role\": \"user\", \"content\": \"again\"}}],\n",
                "  \"provider\": {{\"only\": [\"anthropic\"]}}, \"stream\": {}}}"
            ),
            stream
        );
        let r = gw
            .send(
                Method::POST,
                "/v1/messages?beta=true",
                &[
                    ("content-type".into(), "application/json".into()),
                    (
                        "anthropic-beta".into(),
                        "interleaved-thinking-2025-05-14".into(),
                    ),
                ],
                Bytes::from(body.clone()),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let seen = gw
            .sim
            .model_handle("anthropic.sim", "anthropic/claude-sonnet-4.5")
            .expect("the anthropic provider")
            .last_request()
            .expect("recorded");
        assert_eq!(seen.uri.path(), "/v1/messages");
        let expected = body
            .replace(
                "\"model\": \"claude-sonnet-4-5\"",
                "\"model\":\"anthropic/claude-sonnet-4.5\"",
            )
            .replace("\"provider\": {\"only\": [\"anthropic\"]},", "");
        assert_eq!(std::str::from_utf8(&seen.body).unwrap(), expected);
        assert_eq!(
            seen.headers["anthropic-beta"],
            "interleaved-thinking-2025-05-14"
        );
        assert_eq!(seen.headers["x-api-key"], "sk-sim-anthropic-demo");
        if stream {
            let events = sse_events(&r.body);
            check_stream(&events);
            let usage = &events[events.len() - 2].1["usage"];
            assert!(usage["input_tokens"].as_u64().unwrap() > 0, "{usage}");
            assert!(usage["cost"].as_f64().unwrap() > 0.0, "{usage}");
        } else {
            let v = r.json();
            check_message(&v);
            assert_eq!(v["model"], "anthropic/claude-sonnet-4.5");
            assert_eq!(v["provider"], "Anthropic");
            assert!(v["usage"]["cost"].as_f64().unwrap() > 0.0, "{v}");
        }
    }
}
