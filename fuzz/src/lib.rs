//! The fuzz targets of tower-ai-gateway, as plain functions of the input bytes.
//!
//! Each binary in `src/bin/` hands one of them to AFL++ (`cargo afl build --features afl`, then
//! `cargo afl fuzz -i corpus/<target> -o out/<target> target/debug/<target>`); `tests/smoke.rs`
//! runs every target over its seed corpus and seeded random inputs on every CI run. A target
//! panics when a property fails, never on bad input alone:
//!
//! * [`request_view`]: the request parser (its fast path agrees with its serde path); a parsed
//!   body's model splice is JSON naming the new model.
//! * [`sse_streams`]: the whole `GatewayLayer` over an upstream that sends the input as an SSE
//!   stream, cut into frames where the input says: the caller gets complete JSON events only, the
//!   provider's key never, and a stream that ends with `[DONE]` or the gateway's error chunk.
//! * [`wire_json`]: the Messages ⇄ chat translations of requests and answers.
//! * [`wire_sse`]: both SSE translators, fed the input in pieces; every event they write is JSON.
//! * [`catalog`]: the catalog loaders (JSON and TOML).

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, StreamBody};
use serde_json::Value;
use tower::{ServiceBuilder, ServiceExt};
use tower_ai_gateway::catalog::{Catalog, CatalogFile, Credentials, Endpoint, Model, Provider};
use tower_ai_gateway::compat::{
    chat_to_message, chat_to_messages, message_to_chat, messages_to_chat, ChatSseTranslator,
    SseTranslator,
};
use tower_ai_gateway::route::RequestView;
use tower_ai_gateway::GatewayLayer;

/// The provider key of [`sse_streams`]' catalog, which must never reach the caller.
const KEY: &str = "sk-fuzz-0123456789abcdef";

/// The request parser, then the model splice of what it accepted. Whenever the parser's fast
/// path (the skimmer) takes the body, the serde path must accept it too and build the same view.
pub fn request_view(data: &[u8]) {
    if let Some(fast) = RequestView::parse_skimmed(data) {
        let serde = RequestView::parse_serde(data)
            .unwrap_or_else(|e| panic!("the fast path took a body serde rejects: {e}"));
        assert_eq!(
            format!("{fast:?}"),
            format!("{serde:?}"),
            "the two paths differ"
        );
    }
    let Ok(view) = RequestView::parse(data) else {
        return;
    };
    let _ = view.prompt_bound();
    let out = view.splice_model(data, "fuzz/model");
    // The grammar, not the range of numbers (`1E400` is JSON, though no f64): the other members
    // are skipped, not built.
    #[derive(serde::Deserialize)]
    struct Model {
        model: String,
    }
    let m: Model = serde_json::from_slice(&out).unwrap_or_else(|e| {
        panic!(
            "splice broke the JSON ({e}): {}",
            String::from_utf8_lossy(&out)
        )
    });
    assert_eq!(m.model, "fuzz/model");
}

/// Cut points for `data` from its first byte: up to 8 places to split the rest into frames.
fn frames(data: &[u8]) -> Vec<Bytes> {
    let Some((&seed, rest)) = data.split_first() else {
        return Vec::new();
    };
    let mut cuts: Vec<usize> = (0..usize::from(seed % 8))
        .map(|i| (usize::from(seed).wrapping_mul(31).wrapping_add(i * 97)) % (rest.len() + 1))
        .collect();
    cuts.sort_unstable();
    let mut out = Vec::new();
    let mut at = 0;
    for c in cuts.into_iter().chain([rest.len()]) {
        if c > at {
            out.push(Bytes::copy_from_slice(&rest[at..c]));
            at = c;
        }
    }
    out
}

fn one_provider() -> Catalog {
    Catalog::builder()
        .model(Model::new("fuzz/model", "Fuzz"))
        .provider(
            Provider::new("p", "P")
                .base_url("http://p.test/v1")
                .credentials(Credentials::key(KEY)),
        )
        .endpoint(Endpoint::new("fuzz/model", "p"))
        .build()
        .expect("catalog")
}

/// The gateway over an upstream whose stream is the input.
pub fn sse_streams(data: &[u8]) {
    let frames = frames(data);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let upstream = tower::service_fn(move |_req: Request<Full<Bytes>>| {
            let chunks = frames.clone();
            async move {
                let s = futures_util::stream::iter(
                    chunks
                        .into_iter()
                        .map(|b| Ok::<_, std::convert::Infallible>(http_body::Frame::data(b))),
                );
                let res = Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(StreamBody::new(s))
                    .expect("response");
                Ok::<_, std::convert::Infallible>(res)
            }
        });
        let svc = ServiceBuilder::new()
            .layer(GatewayLayer::new(one_provider()))
            .service(upstream);
        let body =
            r#"{"model":"fuzz/model","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
        let res = svc
            .oneshot(
                Request::post("/")
                    .body(Full::new(Bytes::from(body)))
                    .expect("request"),
            )
            .await
            .expect("the stack never fails");
        let status = res.status();
        let bytes = res
            .into_body()
            .collect()
            .await
            .expect("body never fails")
            .to_bytes();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(KEY), "the key reached the caller: {text}");
        if status != 200 {
            let v: Value = serde_json::from_slice(&bytes).expect("error envelope");
            assert!(v["error"]["code"].is_number(), "{text}");
            return;
        }
        check_chat_stream(&text);
    });
}

/// Every `data:` event of a chat stream the gateway sent is JSON (or `[DONE]`), and the stream
/// ends with `[DONE]` or the gateway's error chunk.
fn check_chat_stream(text: &str) {
    // Lines end with CRLF, LF or a lone CR, and a blank line ends an event (the SSE rules, as the
    // SDKs' parsers follow them); an event's data is its `data:` lines joined with newlines;
    // events without data (comments) are skipped.
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let events: Vec<String> = text
        .split("\n\n")
        .map(|e| {
            e.lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .filter(|d| !d.trim().is_empty())
        .collect();
    // The grammar, not the range of numbers: `1E400` is JSON, though no f64.
    for e in events.iter().filter(|e| e.trim() != "[DONE]") {
        serde_json::from_str::<serde::de::IgnoredAny>(e)
            .unwrap_or_else(|_| panic!("invalid event {e:?} in {text:?}"));
    }
    let last = events.last().map(|e| e.trim()).unwrap_or_default();
    if last != "[DONE]" {
        let v: Value = serde_json::from_str(last).unwrap_or_default();
        assert_eq!(
            v["choices"][0]["finish_reason"], "error",
            "not ended: {text:?}"
        );
    }
}

/// The translations of requests and answers between the two wires.
pub fn wire_json(data: &[u8]) {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    if let Ok(chat) = messages_to_chat(&v) {
        let back = chat_to_messages(&chat);
        assert!(back.is_object(), "{back}");
    }
    let _ = chat_to_messages(&v);
    let message = chat_to_message(&v);
    assert!(message.is_object(), "{message}");
    let chat = message_to_chat(&v, 0);
    assert!(chat.is_object(), "{chat}");
}

/// Both SSE translators, fed the input in pieces.
pub fn wire_sse(data: &[u8]) {
    let pieces = frames(data);
    let mut messages = SseTranslator::new("fuzz/model");
    let mut out = Vec::new();
    for p in &pieces {
        out.extend_from_slice(&messages.feed(p));
    }
    out.extend_from_slice(&messages.finish());
    let text = String::from_utf8_lossy(&out);
    // Comments (keep-alives) are passed on as they are; every other block is an event.
    let is_comment = |b: &str| b.lines().all(|l| l.starts_with(':'));
    for block in text
        .split("\n\n")
        .filter(|b| !b.trim().is_empty() && !is_comment(b))
    {
        let data = block
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .unwrap_or_else(|| panic!("an event without data: {block:?}"));
        serde_json::from_str::<Value>(data).unwrap_or_else(|_| panic!("invalid {data:?}"));
    }
    let mut chat = ChatSseTranslator::new(0);
    let mut out = Vec::new();
    for p in &pieces {
        out.extend_from_slice(&chat.feed(p));
    }
    let text = String::from_utf8_lossy(&out);
    for line in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
        if line != "[DONE]" {
            serde_json::from_str::<Value>(line).unwrap_or_else(|_| panic!("invalid {line:?}"));
        }
    }
}

/// The catalog loaders.
pub fn catalog(data: &[u8]) {
    if let Ok(c) = Catalog::from_json(data) {
        for m in c.models() {
            let _ = c.endpoints(&m.id);
        }
    }
    let _ = CatalogFile::from_json(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Catalog::from_toml(text);
    }
}
