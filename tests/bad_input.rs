//! Bad input (issue 17 items E, 6, 7, 8): a table of raw request bodies and the status each gets
//! from ModelRouting → UsageMeter → ProviderFallback over a recording client. Caller garbage is a
//! 4xx before routing and never reaches a provider. The table is the README's "Bad input" section:
//! `bad_input_table_matches_the_readme` fails (and prints the table) when they differ.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use tower::{ServiceBuilder, ServiceExt};
use tower_ai_gateway::catalog::{Catalog, Credentials, Endpoint, Model, Provider};
use tower_ai_gateway::fallback::ProviderFallbackLayer;
use tower_ai_gateway::model_routing::ModelRoutingLayer;
use tower_ai_gateway::usage_meter::UsageMeterLayer;

const ANSWER: &str = r#"{"id":"gen-1","object":"chat.completion","model":"acme/chat","choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":"hi"}}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#;

/// `acme/chat` at two providers: `strict` lists its supported parameters, `lax` lists none.
/// `acme/small` has a 1,000-token context (so middle-out is on by default there).
fn catalog() -> Catalog {
    let provider = |slug: &str| {
        Provider::new(slug, slug)
            .base_url(format!("http://{slug}.test/v1"))
            .credentials(Credentials::key("sk-test"))
    };
    let mut strict = Endpoint::new("acme/chat", "strict");
    strict.supported_parameters = ["temperature", "max_tokens", "stop", "seed", "tools"]
        .map(String::from)
        .to_vec();
    let mut small = Endpoint::new("acme/small", "lax");
    small.context_length = 1000;
    Catalog::builder()
        .model(Model::new("acme/chat", "Acme Chat"))
        .model(Model::new("acme/small", "Acme Small"))
        .provider(provider("strict"))
        .provider(provider("lax"))
        .endpoint(strict)
        .endpoint(small)
        .build()
        .expect("catalog")
}

/// The status, the answer's JSON, and the bodies the upstream received.
async fn send(body: &[u8]) -> (u16, Value, Vec<Bytes>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let client = tower::service_fn(move |req: Request<Full<Bytes>>| {
        let record = record.clone();
        async move {
            let body = req.into_body().collect().await.unwrap().to_bytes();
            record.lock().unwrap().push(body);
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                ANSWER.as_bytes(),
            ))))
        }
    });
    let svc = ServiceBuilder::new()
        .layer(
            ModelRoutingLayer::new(catalog())
                .seed(1)
                .body_limit(1 << 20),
        )
        .layer(UsageMeterLayer::new())
        .layer(ProviderFallbackLayer::new())
        .service(client);
    let req = Request::post("/v1/chat/completions")
        .body(Full::new(Bytes::copy_from_slice(body)))
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    let status = res.status().as_u16();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let seen = seen.lock().unwrap().clone();
    (status, json, seen)
}

const HI: &str = r#"[{"role":"user","content":"hi"}]"#;

/// `{"model":"acme/chat","messages":HI,<extra>}`.
fn chat(extra: &str) -> String {
    let sep = if extra.is_empty() { "" } else { "," };
    format!(r#"{{"model":"acme/chat","messages":{HI}{sep}{extra}}}"#)
}

fn deep(levels: usize) -> String {
    chat(&format!(
        r#""x_custom":{}{}"#,
        "[".repeat(levels),
        "]".repeat(levels)
    ))
}

/// (what, body, expected status).
fn cases() -> Vec<(&'static str, Vec<u8>, u16)> {
    let c = |what, body: String, status| (what, body.into_bytes(), status);
    let msg = |m: &str| format!(r#"{{"model":"acme/chat","messages":[{m}]}}"#);
    vec![
        c("a valid request", chat(""), 200),
        c("unknown member `x_custom`", chat(r#""x_custom":1"#), 200),
        c(
            "`transforms: [\"middle-out\"]`",
            chat(r#""transforms":["middle-out"]"#),
            200,
        ),
        c(
            "plugin `web` with `enabled: false`",
            chat(r#""plugins":[{"id":"web","enabled":false}]"#),
            200,
        ),
        c("nesting 99 levels deep in an unknown member", deep(98), 200),
        c("empty body", String::new(), 400),
        c("not JSON", "{\"model\":".into(), 400),
        c("a JSON array", "[]".into(), 400),
        c("invalid UTF-8 in `model`", String::new(), 400),
        c(
            "no `model` nor `models`",
            format!(r#"{{"messages":{HI}}}"#),
            400,
        ),
        c("no `messages`", r#"{"model":"acme/chat"}"#.into(), 400),
        c(
            "`messages: null`",
            r#"{"model":"acme/chat","messages":null}"#.into(),
            400,
        ),
        c(
            "duplicate `model`",
            format!(r#"{{"model":"acme/chat","model":"acme/small","messages":{HI}}}"#),
            400,
        ),
        c(
            "duplicate `stream`",
            chat(r#""stream":false,"stream":true"#),
            400,
        ),
        c(
            "duplicate `temperature`",
            chat(r#""temperature":1,"temperature":1"#),
            400,
        ),
        c(
            "duplicate `role` in a message",
            msg(r#"{"role":"user","role":"system","content":"x"}"#),
            400,
        ),
        c(
            "`messages: []`",
            r#"{"model":"acme/chat","messages":[]}"#.into(),
            400,
        ),
        c(
            "`messages` a string",
            r#"{"model":"acme/chat","messages":"hi"}"#.into(),
            400,
        ),
        c(
            "message role `wizard`",
            msg(r#"{"role":"wizard","content":"x"}"#),
            400,
        ),
        c("message without `role`", msg(r#"{"content":"x"}"#), 400),
        c(
            "user message with `content: null`",
            msg(r#"{"role":"user","content":null}"#),
            400,
        ),
        c(
            "message `content` a number",
            msg(r#"{"role":"user","content":5}"#),
            400,
        ),
        c(
            "content part without `type`",
            msg(r#"{"role":"user","content":[{"text":"x"}]}"#),
            400,
        ),
        c(
            "`tool` message without `tool_call_id`",
            msg(r#"{"role":"tool","content":"x"}"#),
            400,
        ),
        c(
            "`temperature: \"hot\"`",
            chat(r#""temperature":"hot""#),
            400,
        ),
        c("`temperature: 3`", chat(r#""temperature":3"#), 400),
        c("`top_p: 1.5`", chat(r#""top_p":1.5"#), 400),
        c("`top_k: -1`", chat(r#""top_k":-1"#), 400),
        c(
            "`frequency_penalty: 9`",
            chat(r#""frequency_penalty":9"#),
            400,
        ),
        c("`top_logprobs: 50`", chat(r#""top_logprobs":50"#), 400),
        c(
            "`stop` with 5 sequences",
            chat(r#""stop":["a","b","c","d","e"]"#),
            400,
        ),
        c("`logprobs: \"yes\"`", chat(r#""logprobs":"yes""#), 400),
        c("`tools: [1]`", chat(r#""tools":[1]"#), 400),
        c(
            "`response_format` without `type`",
            chat(r#""response_format":{}"#),
            400,
        ),
        c("`max_tokens: 0`", chat(r#""max_tokens":0"#), 400),
        c("`max_tokens: -1`", chat(r#""max_tokens":-1"#), 400),
        c("`stream: \"yes\"`", chat(r#""stream":"yes""#), 400),
        c("10,000-deep JSON in an unknown member", deep(10_000), 400),
        c("nesting 101 levels deep", deep(100), 400),
        c(
            "10,000-deep JSON in a message member",
            msg(&format!(
                r#"{{"role":"assistant","content":null,"tool_calls":{}{}}}"#,
                "[".repeat(10_000),
                "]".repeat(10_000)
            )),
            400,
        ),
        c(
            "10,000-deep JSON inside `provider`",
            chat(&format!(
                r#""provider":{{"x":{}{}}}"#,
                "[".repeat(10_000),
                "]".repeat(10_000)
            )),
            400,
        ),
        c("plugin `web`", chat(r#""plugins":[{"id":"web"}]"#), 400),
        c(
            "plugin `file-parser`",
            chat(r#""plugins":[{"id":"file-parser"}]"#),
            400,
        ),
        c(
            "unknown transform",
            chat(r#""transforms":["squeeze"]"#),
            400,
        ),
        c(
            "`:online` variant",
            format!(r#"{{"model":"acme/chat:online","messages":{HI}}}"#),
            400,
        ),
        c(
            "`provider.sort: \"cheapest\"`",
            chat(r#""provider":{"sort":"cheapest"}"#),
            400,
        ),
        c(
            "duplicate `provider.sort`",
            chat(r#""provider":{"sort":"price","sort":"price"}"#),
            400,
        ),
        c(
            "`session_id` over 256 characters",
            chat(&format!(r#""session_id":"{}""#, "s".repeat(257))),
            400,
        ),
        c(
            "unknown model",
            format!(r#"{{"model":"acme/nope","messages":{HI}}}"#),
            400,
        ),
        c(
            "body over the size limit",
            chat(&format!(r#""x_custom":"{}""#, "x".repeat(1 << 20))),
            413,
        ),
    ]
}

fn fix_invalid_utf8(cases: &mut [(&'static str, Vec<u8>, u16)]) {
    for (what, body, _) in cases.iter_mut() {
        if *what == "invalid UTF-8 in `model`" {
            *body = b"{\"model\":\"acme/\xffchat\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"
                .to_vec();
        }
    }
}

/// Runs every case: the status is the expected one, every error is the JSON envelope with
/// `code` = status, and no 4xx reached the provider. Returns the Markdown table.
async fn run_table() -> String {
    let mut cases = cases();
    fix_invalid_utf8(&mut cases);
    let mut table = String::from("| Input | Status | `error.message` (start) |\n|---|---|---|\n");
    let mut wrong = Vec::new();
    for (what, body, want) in &cases {
        let (status, json, seen) = send(body).await;
        if status != *want {
            wrong.push(format!("{what}: {status} (want {want}): {json}"));
        }
        let message = json["error"]["message"].as_str().unwrap_or("");
        if status >= 400 {
            assert_eq!(json["error"]["code"], *want, "{what}: {json}");
            assert!(seen.is_empty(), "{what} reached the provider");
        } else {
            assert_eq!(seen.len(), 1, "{what}");
        }
        let message = message.split(" (at line").next().unwrap_or_default();
        let mut short: String = message.chars().take(72).collect();
        if short.len() < message.len() {
            short.push('…');
        }
        let short = short.replace('|', "\\|").replace('`', "'");
        let short = if short.is_empty() {
            String::new()
        } else {
            format!("`{short}`")
        };
        table.push_str(&format!("| {what} | {status} | {short} |\n"));
    }
    assert!(wrong.is_empty(), "wrong statuses:\n{}", wrong.join("\n"));
    table
}

#[tokio::test]
async fn bad_input_table_matches_the_readme() {
    let table = run_table().await;
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    assert!(
        readme.contains(&table),
        "README.md's \"Bad input\" table is out of date; it should read:\n\n{table}"
    );
}

#[tokio::test]
async fn e_duplicate_model_key_is_400() {
    let body = format!(r#"{{"model":"acme/chat","model":"acme/small","messages":{HI}}}"#);
    let (status, json, seen) = send(body.as_bytes()).await;
    assert_eq!(status, 400, "{json}");
    assert_eq!(json["error"]["metadata"]["field"], "model", "{json}");
    assert!(seen.is_empty());
}

#[tokio::test]
async fn item7_empty_messages_is_400() {
    let (status, json, seen) = send(br#"{"model":"acme/chat","messages":[]}"#).await;
    assert_eq!(status, 400, "{json}");
    assert!(seen.is_empty());
}

#[tokio::test]
async fn item7_caller_garbage_never_reaches_a_provider() {
    for body in [
        deep(10_000),
        chat(r#""temperature":"hot""#),
        r#"{"model":"acme/chat","messages":[{"role":"wizard","content":"x"}]}"#.to_string(),
    ] {
        let (status, json, seen) = send(body.as_bytes()).await;
        assert_eq!(status, 400, "{json}");
        assert!(seen.is_empty());
    }
}

/// Item 6: an endpoint that lists its parameters gets only those (plus the standard members);
/// gateway-only members never go upstream; kept members are the caller's bytes.
#[tokio::test]
async fn item6_unsupported_and_gateway_only_parameters_are_not_forwarded() {
    let extra = r#""temperature": 0.50,"top_k":3,"min_p":0.1,"logit_bias":{"1":2},"top_a":0.2,
        "verbosity":"low","x_custom":{"a":1},"trace":{"trace_id":"t"},"user":"u  1","max_tokens":7"#;
    // (`preset` names a preset now: an unknown one is a 404, tests/completions_presets.rs; a known
    // one is merged and never forwarded.)
    let (status, _, seen) = send(chat(extra).as_bytes()).await;
    assert_eq!(status, 200);
    let sent = std::str::from_utf8(&seen[0]).unwrap();
    let v: Value = serde_json::from_str(sent).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["max_tokens", "messages", "model", "temperature", "user"],
        "{sent}"
    );
    assert!(sent.contains(r#""temperature": 0.50"#) && sent.contains(r#""user":"u  1""#));

    // An endpoint whose parameters the catalog does not list gets everything but the
    // gateway-only members.
    let body =
        format!(r#"{{"model":"acme/small","messages":{HI},"top_k":3,"x_custom":1,"trace":{{}}}}"#);
    let (status, _, seen) = send(body.as_bytes()).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&seen[0]).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["messages", "model", "top_k", "x_custom"]);
}

#[tokio::test]
async fn item8_plugins_the_gateway_cannot_run_are_400() {
    for id in ["web", "file-parser", "response-healing"] {
        let (status, json, seen) =
            send(chat(&format!(r#""plugins":[{{"id":"{id}"}}]"#)).as_bytes()).await;
        assert_eq!(status, 400, "{json}");
        assert!(json["error"]["message"].as_str().unwrap().contains(id));
        assert!(seen.is_empty());
    }
}

/// Item 8: 10 messages of ~175 tokens each (1,755 tokens) to a 1,000-token endpoint: middle-out
/// (on by default at ≤ 8k context) admits it and removes messages from the middle until the
/// estimate fits; `transforms: []` turns it off (404, no endpoint has the context).
#[tokio::test]
async fn item8_middle_out_fits_the_smallest_context() {
    let messages: Vec<String> = (0..10)
        .map(|i| {
            let role = if i % 2 == 0 { "user" } else { "assistant" };
            format!(r#"{{"role":"{role}","content":"{i}{}"}}"#, "x".repeat(699))
        })
        .collect();
    let body = |extra: &str| {
        format!(
            r#"{{"model":"acme/small","messages":[{}]{extra}}}"#,
            messages.join(",")
        )
    };
    for extra in [
        "",
        r#","transforms":["middle-out"]"#,
        r#","plugins":[{"id":"context-compression"}]"#,
    ] {
        let (status, json, seen) = send(body(extra).as_bytes()).await;
        assert_eq!(status, 200, "{json}");
        let v: Value = serde_json::from_slice(&seen[0]).unwrap();
        let sent = v["messages"].as_array().unwrap();
        let contents: Vec<&str> = sent
            .iter()
            .map(|m| m["content"].as_str().unwrap())
            .collect();
        assert!(sent.len() < 10 && sent.len() >= 2, "{}", sent.len());
        assert!(contents[0].starts_with('0') && contents.last().unwrap().starts_with('9'));
        let bytes: usize = contents.iter().map(|c| c.len()).sum();
        assert!(bytes.div_ceil(4) <= 1000, "{bytes} bytes still sent");
    }
    let (status, json, seen) = send(body(r#","transforms":[]"#).as_bytes()).await;
    assert_eq!(status, 404, "{json}");
    assert!(seen.is_empty());
}
