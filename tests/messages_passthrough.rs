//! Messages in, Messages out: an Anthropic Messages request routed to an Anthropic-wire provider
//! passes through byte for byte apart from the model (and the gateway-only members), and the
//! answer comes back untranslated, metered. The stack is MessagesLayer → ModelRouting →
//! UsageMeter → ProviderFallback over a scripted upstream that records what it is sent.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, Request, Response};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_ai_gateway::catalog::{
    AuthStyle, Catalog, Credentials, Endpoint, Model, Provider, Usd, WireFormat,
};
use tower_ai_gateway::compat::MessagesLayer;
use tower_ai_gateway::fallback::ProviderFallbackLayer;
use tower_ai_gateway::model_routing::ModelRoutingLayer;
use tower_ai_gateway::route::ServedBy;
use tower_ai_gateway::usage_meter::{GenerationRecord, GenerationStore, UsageMeterLayer};
use tower_ai_gateway::BoxError;

const MODEL: &str = "acme/claude";
const KEY: &str = "sk-ant-secret-0123456789";
const BACKUP_KEY: &str = "sk-backup-secret-987654";

// ===== the scripted upstream =====

/// What the upstream answers: a status and body frames (an error frame breaks the body).
#[derive(Clone)]
struct Answer {
    status: u16,
    content_type: &'static str,
    frames: Vec<Result<Bytes, ()>>,
}

impl Answer {
    fn json(status: u16, body: &str) -> Self {
        Answer {
            status,
            content_type: "application/json",
            frames: vec![Ok(Bytes::from(body.to_owned()))],
        }
    }

    fn sse(frames: Vec<Result<Bytes, ()>>) -> Self {
        Answer {
            status: 200,
            content_type: "text/event-stream",
            frames,
        }
    }
}

struct Script(VecDeque<Result<Bytes, ()>>);

impl Body for Script {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        Poll::Ready(self.get_mut().0.pop_front().map(|r| {
            r.map(Frame::data)
                .map_err(|()| io::Error::other("connection reset"))
        }))
    }
}

/// One request the upstream saw.
#[derive(Clone, Debug)]
struct Seen {
    uri: String,
    headers: HeaderMap,
    body: Bytes,
}

/// The answers still to give, per host.
type Queues = Vec<(&'static str, VecDeque<Answer>)>;

/// Answers by host: each host has a queue of answers; records every request.
#[derive(Clone, Default)]
struct Upstream {
    answers: Arc<Mutex<Queues>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    fn answer(self, host: &'static str, a: Answer) -> Self {
        {
            let mut all = self.answers.lock().unwrap();
            match all.iter_mut().find(|(h, _)| *h == host) {
                Some((_, q)) => q.push_back(a),
                None => all.push((host, VecDeque::from([a]))),
            }
        }
        self
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Service<Request<Full<Bytes>>> for Upstream {
    type Response = Response<Script>;
    type Error = BoxError;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Response<Script>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Full<Bytes>>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let body = body.collect().await?.to_bytes();
            let host = parts.uri.host().unwrap_or("").to_owned();
            this.seen.lock().unwrap().push(Seen {
                uri: parts.uri.to_string(),
                headers: parts.headers,
                body,
            });
            let answer = this
                .answers
                .lock()
                .unwrap()
                .iter_mut()
                .find(|(h, _)| *h == host)
                .and_then(|(_, q)| q.pop_front());
            let a = answer.ok_or("no answer scripted")?;
            let mut res = Response::new(Script(a.frames.into()));
            *res.status_mut() = http::StatusCode::from_u16(a.status)?;
            res.headers_mut()
                .insert("content-type", a.content_type.parse()?);
            Ok(res)
        })
    }
}

// ===== the stack =====

fn catalog() -> Catalog {
    let mut e = Endpoint::new(MODEL, "anthro");
    e.provider_model_id = Some("claude-native-1".into());
    e.max_completion_tokens = Some(8192);
    e.supported_parameters = ["tools", "tool_choice", "max_tokens", "reasoning"]
        .map(String::from)
        .to_vec();
    e.pricing.prompt = Usd::parse("0.000003").unwrap();
    e.pricing.completion = Usd::parse("0.000015").unwrap();
    let mut b = Endpoint::new(MODEL, "backup");
    b.provider_model_id = Some("backup-native".into());
    b.supported_parameters = e.supported_parameters.clone();
    b.pricing.prompt = Usd::parse("0.000001").unwrap();
    b.pricing.completion = Usd::parse("0.000002").unwrap();
    Catalog::builder()
        .model(Model::new(MODEL, "Acme Claude"))
        .provider(
            Provider::new("anthro", "Anthro")
                .base_url("http://anthro.test/v1")
                .wire_format(WireFormat::Anthropic)
                .auth(AuthStyle::Header(HeaderName::from_static("x-api-key")))
                .credentials(Credentials::key(KEY)),
        )
        .provider(
            Provider::new("backup", "Backup")
                .base_url("http://backup.test/v1")
                .credentials(Credentials::key(BACKUP_KEY)),
        )
        .endpoint(e)
        .endpoint(b)
        .build()
        .unwrap()
}

struct Reply {
    status: u16,
    served: Option<ServedBy>,
    body: Bytes,
}

async fn send(
    up: Upstream,
    store: &GenerationStore,
    body: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let svc = ServiceBuilder::new()
        .layer(MessagesLayer::new().max_tokens_cap(|_| Some(8192)))
        .layer(ModelRoutingLayer::new(catalog()).seed(3))
        .layer(UsageMeterLayer::new().sink(store.clone()))
        .layer(ProviderFallbackLayer::new().no_budget())
        .service(up);
    let mut req = Request::post("/v1/messages?beta=true");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::from(body.to_owned()))).unwrap();
    let res = svc.oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&body);
    assert!(!text.contains(KEY) && !text.contains(BACKUP_KEY), "{text}");
    Reply {
        status: parts.status.as_u16(),
        served: parts.extensions.get::<ServedBy>().cloned(),
        body,
    }
}

/// A Claude Code-like request: odd spacing, a cached system prefix, an assistant turn with a
/// thinking block and its signature, a gateway-only `provider` member, a beta-only field.
fn request(stream: bool) -> String {
    format!(
        concat!(
            "{{\"model\": \"acme/claude\",\n",
            "  \"provider\" : {{\"order\": [\"anthro\", \"backup\"]}},\n",
            "  \"max_tokens\":32000,\n",
            "  \"system\":[{{\"type\":\"text\",\"text\":\"You are terse.\",",
            "\"cache_control\":{{\"type\":\"ephemeral\"}}}}],\n",
            "  \"messages\":[{{\"role\":\"user\",\"content\":\"hi\"}},",
            "{{\"role\":\"assistant\",\"content\":[{{\"type\":\"thinking\",\"thinking\":\"Greet.\",",
            "\"signature\":\"EqQBCkYIBxgCKkD0r1g1n4l+/sig==\"}},{{\"type\":\"text\",\"text\":\"Hello.\"}}]}},",
            "{{\"role\":\"user\",\"content\":[{{\"type\":\"text\",\"text\":\"again\",",
            "\"cache_control\":{{\"type\":\"ephemeral\"}}}}]}}],\n",
            "  \"thinking\":{{\"type\":\"enabled\",\"budget_tokens\":1024}},\n",
            "  \"context_management\":{{\"edits\":[{{\"type\":\"clear_tool_uses_20250919\"}}]}},\n",
            "  \"stream\":{}}}"
        ),
        stream
    )
}

/// `request` as the Anthropic-wire provider must receive it.
fn expected_upstream(stream: bool) -> String {
    request(stream)
        .replace(
            "\"model\": \"acme/claude\"",
            "\"model\":\"claude-native-1\"",
        )
        .replace("\"provider\" : {\"order\": [\"anthro\", \"backup\"]},", "")
        .replace("\"max_tokens\":32000", "\"max_tokens\":8192")
}

const MESSAGE: &str = r#"{"id":"msg_01XYZ","type":"message","role":"assistant","model":"claude-native-1","content":[{"type":"thinking","thinking":"They greet again.","signature":"Eq-upstream-signature/+="},{"type":"text","text":"Hi again."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":20,"cache_read_input_tokens":100,"cache_creation_input_tokens":0,"output_tokens":12}}"#;

fn stream_events() -> Vec<String> {
    [
        r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_01XYZ","type":"message","role":"assistant","model":"claude-native-1","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":20,"cache_read_input_tokens":100,"cache_creation_input_tokens":0,"output_tokens":1}}}"#,
        r#"event: ping
data: {"type": "ping"}"#,
        r#"event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}"#,
        r#"event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"They greet again."}}"#,
        r#"event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"Eq-upstream-signature/+="}}"#,
        r#"event: content_block_stop
data: {"type":"content_block_stop","index":0}"#,
        r#"event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}"#,
        r#"event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Hi again."}}"#,
        r#"event: content_block_stop
data: {"type":"content_block_stop","index":1}"#,
        r#"event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":12}}"#,
        r#"event: message_stop
data: {"type":"message_stop"}"#,
    ]
    .iter()
    .map(|e| format!("{e}\n\n"))
    .collect()
}

/// Parses an Anthropic event stream; every event has an `event:` line naming its `data.type`.
fn events(body: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(body).unwrap();
    text.split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(|block| {
            let name = block
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or_else(|| panic!("no event line: {block}"));
            let data: Value = serde_json::from_str(
                block
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .unwrap(),
            )
            .unwrap();
            assert_eq!(data["type"], name, "{block}");
            data
        })
        .collect()
}

fn check_record(r: &GenerationRecord, streamed: bool) {
    assert_eq!(&*r.provider_name, "Anthro");
    assert_eq!(r.tokens.prompt, 120);
    assert_eq!(r.tokens.cached, 100);
    assert_eq!(r.tokens.completion, 12);
    assert_eq!(r.streamed, streamed);
    assert!(!r.usage_missing);
    assert!(r.cost > Usd::ZERO);
}

// ===== the tests =====

#[tokio::test(start_paused = true)]
async fn json_request_and_answer_pass_through() {
    let up = Upstream::default().answer("anthro.test", Answer::json(200, MESSAGE));
    let store = GenerationStore::new(8);
    let r = send(
        up.clone(),
        &store,
        &request(false),
        &[
            ("authorization", "Bearer caller-token"),
            ("anthropic-beta", "context-management-2025-06-27"),
            ("anthropic-version", "2023-06-01"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].uri, "http://anthro.test/v1/messages");
    assert_eq!(
        std::str::from_utf8(&seen[0].body).unwrap(),
        expected_upstream(false),
        "byte for byte but model, provider and the clamped max_tokens"
    );
    assert_eq!(seen[0].headers["x-api-key"], KEY);
    assert!(seen[0].headers.get("authorization").is_none());
    assert_eq!(
        seen[0].headers["anthropic-beta"],
        "context-management-2025-06-27"
    );
    assert_eq!(seen[0].headers["anthropic-version"], "2023-06-01");

    // The answer is the provider's message: thinking block and signature untouched.
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    let upstream: Value = serde_json::from_str(MESSAGE).unwrap();
    assert_eq!(v["content"], upstream["content"]);
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["usage"]["input_tokens"], 20);
    assert_eq!(v["usage"]["cache_read_input_tokens"], 100);
    assert_eq!(v["usage"]["output_tokens"], 12);
    assert!(v["usage"]["cost"].as_f64().unwrap() > 0.0, "{v}");
    assert_eq!(v["model"], MODEL);
    assert_eq!(v["provider"], "Anthro");
    let id = v["id"].as_str().unwrap();
    assert!(id.starts_with("gen-"), "{id}");
    let rec = store.get(id).expect("recorded");
    check_record(&rec, false);
    assert_eq!(rec.upstream_id.as_deref(), Some("msg_01XYZ"));
    assert_eq!(&*r.served.unwrap().provider_slug, "anthro");
}

#[tokio::test(start_paused = true)]
async fn stream_passes_through_at_every_split() {
    let whole: String = stream_events().concat();
    let store = GenerationStore::new(4096);
    let mut reference: Option<Vec<Value>> = None;
    // Every split point of the upstream stream into two frames, and one frame per event.
    let mut splits: Vec<Vec<Result<Bytes, ()>>> = (1..whole.len())
        .map(|i| {
            vec![
                Ok(Bytes::from(whole[..i].to_owned())),
                Ok(Bytes::from(whole[i..].to_owned())),
            ]
        })
        .collect();
    splits.push(
        stream_events()
            .into_iter()
            .map(|e| Ok(Bytes::from(e)))
            .collect(),
    );
    for frames in splits {
        let up = Upstream::default().answer("anthro.test", Answer::sse(frames));
        let r = send(up.clone(), &store, &request(true), &[]).await;
        assert_eq!(r.status, 200);
        assert_eq!(
            std::str::from_utf8(&up.seen()[0].body).unwrap(),
            expected_upstream(true)
        );
        let ev = events(&r.body);
        let names: Vec<&str> = ev.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        // The thinking signature arrives as the provider sent it.
        assert_eq!(ev[4]["delta"]["signature"], "Eq-upstream-signature/+=");
        let id = ev[0]["message"]["id"].as_str().unwrap().to_owned();
        assert!(id.starts_with("gen-"), "{id}");
        assert_eq!(ev[0]["message"]["model"], MODEL);
        // The closing usage is completed: input side and cost.
        let usage = &ev[9]["usage"];
        assert_eq!(usage["output_tokens"], 12);
        assert_eq!(usage["input_tokens"], 20);
        assert_eq!(usage["cache_read_input_tokens"], 100);
        assert!(usage["cost"].as_f64().unwrap() > 0.0, "{usage}");
        let rec = store.get(&id).expect("recorded");
        check_record(&rec, true);
        // Apart from the id, every split gives the same events.
        let mut normal = ev.clone();
        normal[0]["message"]["id"] = json!("");
        match &reference {
            None => reference = Some(normal),
            Some(r) => assert_eq!(r, &normal),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn passthrough_failure_falls_over_to_a_translated_provider() {
    let backup_answer = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "backup-native",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "From the backup."}}],
        "usage": {"prompt_tokens": 30, "completion_tokens": 4, "total_tokens": 34},
    });
    let up = Upstream::default()
        .answer(
            "anthro.test",
            Answer::json(
                529,
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            ),
        )
        .answer("backup.test", Answer::json(200, &backup_answer.to_string()));
    let store = GenerationStore::new(8);
    let r = send(up.clone(), &store, &request(false), &[]).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let seen = up.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        std::str::from_utf8(&seen[0].body).unwrap(),
        expected_upstream(false)
    );
    // The OpenAI-wire backup gets the translated chat body.
    let chat: Value = serde_json::from_slice(&seen[1].body).unwrap();
    assert_eq!(seen[1].uri, "http://backup.test/v1/chat/completions");
    assert_eq!(chat["model"], "backup-native");
    assert_eq!(chat["messages"][0]["role"], "system");
    assert!(seen[1].headers.get("anthropic-beta").is_none());
    // And its answer is translated back to a message.
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(
        v["content"],
        json!([{"type": "text", "text": "From the backup."}])
    );
    assert_eq!(v["usage"]["input_tokens"], 30);
    let served = r.served.unwrap();
    assert_eq!(&*served.provider_slug, "backup");
    assert_eq!(served.attempts.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn stream_failing_before_content_falls_over_after_content_ends_with_an_error_event() {
    let upstream_events = stream_events();
    // Dies after message_start and ping: nothing was delivered, the backup serves.
    let backup = [
        r#"data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"b","choices":[{"index":0,"delta":{"role":"assistant","content":"Backup."},"finish_reason":null}]}"#,
        r#"data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"b","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":30,"completion_tokens":2,"total_tokens":32}}"#,
        "data: [DONE]",
    ]
    .map(|l| Ok(Bytes::from(format!("{l}\n\n"))))
    .to_vec();
    let up = Upstream::default()
        .answer(
            "anthro.test",
            Answer::sse(vec![
                Ok(Bytes::from(upstream_events[..2].concat())),
                Err(()),
            ]),
        )
        .answer("backup.test", Answer::sse(backup));
    let store = GenerationStore::new(8);
    let r = send(up.clone(), &store, &request(true), &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(&*r.served.as_ref().unwrap().provider_slug, "backup");
    let ev = events(&r.body);
    assert_eq!(ev.first().unwrap()["type"], "message_start");
    assert_eq!(ev.last().unwrap()["type"], "message_stop");
    let text: String = ev
        .iter()
        .filter_map(|e| e["delta"]["text"].as_str())
        .collect();
    assert_eq!(text, "Backup.");

    // Dies mid-event after the text began: the stream ends with an Anthropic error event.
    let cut = upstream_events[..8].concat();
    let up = Upstream::default().answer(
        "anthro.test",
        Answer::sse(vec![
            Ok(Bytes::from(cut.clone())),
            Ok(Bytes::from_static(
                b"event: content_block_delta\ndata: {\"ty",
            )),
            Err(()),
        ]),
    );
    let r = send(up, &store, &request(true), &[]).await;
    assert_eq!(r.status, 200);
    let text = std::str::from_utf8(&r.body).unwrap();
    let tail = text.rsplit("\n\n").find(|b| !b.trim().is_empty()).unwrap();
    assert!(tail.starts_with("event: error\ndata: "), "{text}");
    let err: Value = serde_json::from_str(tail.split_once("data: ").unwrap().1).unwrap();
    assert_eq!(err["error"]["type"], "api_error");
    assert!(
        text.contains("\"text\":\"Hi again.\""),
        "content delivered: {text}"
    );
}

#[tokio::test(start_paused = true)]
async fn tool_conversation_passes_through_both_turns() {
    let tool_use = r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-native-1","content":[{"type":"text","text":"Checking."},{"type":"tool_use","id":"toolu_01A","name":"get_weather","input":{"city":"Paris"}}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":50,"output_tokens":20}}"#;
    let answer = r#"{"id":"msg_2","type":"message","role":"assistant","model":"claude-native-1","content":[{"type":"text","text":"It is sunny in Paris."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":90,"output_tokens":8}}"#;
    let up = Upstream::default()
        .answer("anthro.test", Answer::json(200, tool_use))
        .answer("anthro.test", Answer::json(200, answer));
    let store = GenerationStore::new(8);
    let tools = r#"[{"name":"get_weather","description":"Weather","input_schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}]"#;
    let first = format!(
        r#"{{"model":"acme/claude","max_tokens":1024,"tools":{tools},"messages":[{{"role":"user","content":"Weather in Paris?"}}],"provider":{{"order":["anthro"]}}}}"#
    );
    let r = send(up.clone(), &store, &first, &[]).await;
    assert_eq!(r.status, 200);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["stop_reason"], "tool_use");
    let call = &v["content"][1];
    assert_eq!(call["type"], "tool_use");
    assert_eq!(call["input"], json!({"city": "Paris"}));

    let second = format!(
        r#"{{"model":"acme/claude","max_tokens":1024,"tools":{tools},"messages":[{{"role":"user","content":"Weather in Paris?"}},{{"role":"assistant","content":{}}},{{"role":"user","content":[{{"type":"tool_result","tool_use_id":"toolu_01A","content":[{{"type":"text","text":"sunny, 21C"}}]}}]}}],"provider":{{"order":["anthro"]}}}}"#,
        v["content"]
    );
    let r = send(up.clone(), &store, &second, &[]).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["content"][0]["text"], "It is sunny in Paris.");
    let seen = up.seen();
    assert_eq!(seen.len(), 2);
    for (s, sent) in seen.iter().zip([&first, &second]) {
        assert_eq!(
            std::str::from_utf8(&s.body).unwrap(),
            sent.replacen("\"acme/claude\"", "\"claude-native-1\"", 1)
                .replace(",\"provider\":{\"order\":[\"anthro\"]}", "")
        );
    }
    assert_eq!(store.records().len(), 2);
}

/// Every header of a request the upstream saw, sorted by name (the values of one name in their
/// order).
fn header_list(h: &HeaderMap) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = h
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// A first attempt that fails with a 5xx and a second at a provider of the other wire, in both
/// orders: each attempt gets the caller headers it would get alone (the default allow-list's, and
/// the `anthropic-beta` flags on the passed-through Messages attempt, even when the first attempt
/// did not forward them), its provider's credentials, and never the caller's gateway key.
#[tokio::test(start_paused = true)]
async fn a_fallback_to_the_other_wire_forwards_the_same_caller_headers() {
    let caller = [
        ("authorization", "Bearer sk-gateway-caller"),
        ("user-agent", "claude-cli/1.0"),
        ("anthropic-beta", "context-management-2025-06-27"),
        ("x-api-key", "sk-gateway-caller"),
        ("accept", "application/json"),
        ("anthropic-beta", "fine-grained-tool-streaming-2025-05-14"),
        ("x-stainless-os", "Linux"),
        ("x-request-id", "req-7"),
        ("anthropic-version", "2023-06-01"),
    ];
    let common = [
        ("accept", "application/json"),
        ("content-type", "application/json"),
        ("user-agent", "claude-cli/1.0"),
        ("x-request-id", "req-7"),
    ];
    let expected = |own: &[(&str, &str)]| {
        let mut v: Vec<(String, String)> = common
            .iter()
            .chain(own)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let anthro = expected(&[
        ("anthropic-beta", "context-management-2025-06-27"),
        ("anthropic-beta", "fine-grained-tool-streaming-2025-05-14"),
        ("anthropic-version", "2023-06-01"),
        ("x-api-key", KEY),
    ]);
    let bearer = format!("Bearer {BACKUP_KEY}");
    let backup = expected(&[("authorization", &bearer)]);
    let backup_answer = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "backup-native",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "From the backup."}}],
        "usage": {"prompt_tokens": 30, "completion_tokens": 4, "total_tokens": 34},
    })
    .to_string();
    let overloaded =
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
    for anthro_first in [true, false] {
        let (up, body) = if anthro_first {
            let up = Upstream::default()
                .answer("anthro.test", Answer::json(529, overloaded))
                .answer("backup.test", Answer::json(200, &backup_answer));
            (up, request(false))
        } else {
            let up = Upstream::default()
                .answer(
                    "backup.test",
                    Answer::json(500, r#"{"error":{"message":"down"}}"#),
                )
                .answer("anthro.test", Answer::json(200, MESSAGE));
            let body = request(false).replace(r#"["anthro", "backup"]"#, r#"["backup", "anthro"]"#);
            (up, body)
        };
        let store = GenerationStore::new(8);
        let r = send(up.clone(), &store, &body, &caller).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let seen = up.seen();
        let hosts: Vec<&str> = seen.iter().map(|s| s.uri.as_str()).collect();
        let (first, second) = if anthro_first {
            (&anthro, &backup)
        } else {
            (&backup, &anthro)
        };
        assert_eq!(seen.len(), 2, "{hosts:?}");
        assert_eq!(&header_list(&seen[0].headers), first, "{hosts:?}");
        assert_eq!(&header_list(&seen[1].headers), second, "{hosts:?}");
    }
}
