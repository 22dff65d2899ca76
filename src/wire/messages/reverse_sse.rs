//! Incremental Anthropic Messages SSE → chat-completions SSE translation.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use serde_json::{json, Value};

use super::reverse::finish_reason;

/// Most bytes of one unfinished event kept between frames; a longer event is dropped.
const MAX_EVENT: usize = 16 * 1024 * 1024;

/// Translates an Anthropic Messages event stream into chat-completions chunks, frame by frame.
///
/// Feed it the upstream bytes as they arrive ([`feed`](Self::feed)); it returns the chunks that
/// the complete events in them translate to (possibly none), holding only an unfinished event
/// between calls:
///
/// | Messages event | chat-completions output |
/// | --- | --- |
/// | `message_start` | a role chunk (`delta: {"role":"assistant","content":""}`); its `id`, `model` and `usage.input_tokens` are kept |
/// | `content_block_start` `tool_use` | a `tool_calls` delta with `id`, `name` and empty `arguments` |
/// | `content_block_delta` `text_delta` / `thinking_delta` / `input_json_delta` | `content` / `reasoning` / `tool_calls[].function.arguments` deltas |
/// | `message_delta` | a chunk with `finish_reason`; `usage.output_tokens` is kept |
/// | `message_stop` | a usage chunk (`choices: []`) and `data: [DONE]` |
/// | `error` | an in-band error chunk (`error.code` 502, `finish_reason: "error"`) |
/// | `ping`, `content_block_stop`, comments, anything else | nothing |
///
/// A stream that ends without `message_stop` simply ends: the caller sees no `[DONE]`.
#[derive(Debug)]
pub struct ChatSseTranslator {
    buf: BytesMut,
    id: String,
    model: Value,
    created: u64,
    input_tokens: u64,
    cache_read: u64,
    cache_write: u64,
    output_tokens: u64,
    /// Content block index → tool call index.
    tools: HashMap<u64, u64>,
    done: bool,
}

impl ChatSseTranslator {
    /// A translator whose chunks carry `created` (the Messages stream has no timestamp).
    pub fn new(created: u64) -> Self {
        ChatSseTranslator {
            buf: BytesMut::new(),
            id: String::new(),
            model: Value::from(""),
            created,
            input_tokens: 0,
            cache_read: 0,
            cache_write: 0,
            output_tokens: 0,
            tools: HashMap::new(),
            done: false,
        }
    }

    /// Whether `message_stop` has been translated (the output ended with `[DONE]`).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Translates the complete events in `data` (plus what earlier calls left over).
    pub fn feed(&mut self, data: &[u8]) -> Bytes {
        self.buf.extend_from_slice(data);
        let mut out = BytesMut::new();
        while let Some((end, sep)) = event_end(&self.buf) {
            let event = self.buf.split_to(end + sep);
            self.event(&event[..end], &mut out);
        }
        if self.buf.len() > MAX_EVENT {
            self.buf.clear();
        }
        out.freeze()
    }

    fn chunk(&self, out: &mut BytesMut, delta: Value, finish: Option<&str>) {
        let v = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        });
        write_data(out, &v);
    }

    fn event(&mut self, event: &[u8], out: &mut BytesMut) {
        let Ok(text) = std::str::from_utf8(event) else {
            return;
        };
        let mut data = String::new();
        for line in text.lines() {
            if let Some(d) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(d.strip_prefix(' ').unwrap_or(d));
            }
        }
        let Ok(v) = serde_json::from_str::<Value>(&data) else {
            return;
        };
        let n = |v: Option<&Value>| v.and_then(Value::as_u64).unwrap_or(0);
        match v.get("type").and_then(Value::as_str) {
            Some("message_start") => {
                let m = v.get("message").unwrap_or(&Value::Null);
                if let Some(id) = m.get("id").and_then(Value::as_str) {
                    self.id = id.to_string();
                }
                if let Some(model) = m.get("model").filter(|m| m.is_string()) {
                    self.model = model.clone();
                }
                let u = m.get("usage");
                self.input_tokens = n(u.and_then(|u| u.get("input_tokens")));
                self.cache_read = n(u.and_then(|u| u.get("cache_read_input_tokens")));
                self.cache_write = n(u.and_then(|u| u.get("cache_creation_input_tokens")));
                self.chunk(out, json!({"role": "assistant", "content": ""}), None);
            }
            Some("content_block_start") => {
                let block = v.get("content_block").unwrap_or(&Value::Null);
                if block.get("type").and_then(Value::as_str) == Some("tool_use") {
                    let index = self.tools.len() as u64;
                    self.tools.insert(n(v.get("index")), index);
                    let call = json!({
                        "index": index,
                        "id": block.get("id").and_then(Value::as_str).unwrap_or_default(),
                        "type": "function",
                        "function": {
                            "name": block.get("name").and_then(Value::as_str).unwrap_or_default(),
                            "arguments": "",
                        },
                    });
                    self.chunk(out, json!({"tool_calls": [call]}), None);
                }
            }
            Some("content_block_delta") => {
                let d = v.get("delta").unwrap_or(&Value::Null);
                let s = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or_default();
                match d.get("type").and_then(Value::as_str) {
                    Some("text_delta") => self.chunk(out, json!({"content": s("text")}), None),
                    Some("thinking_delta") => {
                        self.chunk(out, json!({"reasoning": s("thinking")}), None)
                    }
                    Some("input_json_delta") => {
                        let index = self.tools.get(&n(v.get("index"))).copied().unwrap_or(0);
                        let call = json!({"index": index,
                            "function": {"arguments": s("partial_json")}});
                        self.chunk(out, json!({"tool_calls": [call]}), None);
                    }
                    _ => {}
                }
            }
            Some("message_delta") => {
                if let Some(o) = v.get("usage").and_then(|u| u.get("output_tokens")) {
                    self.output_tokens = n(Some(o));
                }
                let stop = v
                    .get("delta")
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str);
                self.chunk(out, json!({}), Some(finish_reason(stop)));
            }
            Some("message_stop") => {
                let usage = super::usage_to_chat(Some(&json!({
                    "input_tokens": self.input_tokens,
                    "output_tokens": self.output_tokens,
                    "cache_read_input_tokens": self.cache_read,
                    "cache_creation_input_tokens": self.cache_write,
                })));
                let v = json!({
                    "id": self.id,
                    "object": "chat.completion.chunk",
                    "created": self.created,
                    "model": self.model,
                    "choices": [],
                    "usage": usage,
                });
                write_data(out, &v);
                out.extend_from_slice(b"data: [DONE]\n\n");
                self.done = true;
            }
            Some("error") => {
                let message = v
                    .get("error")
                    .and_then(|e| e.get("message"))
                    .and_then(Value::as_str)
                    .unwrap_or("upstream provider error");
                let v = json!({
                    "id": self.id,
                    "object": "chat.completion.chunk",
                    "created": self.created,
                    "model": self.model,
                    "error": {"code": 502, "message": message},
                    "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}],
                });
                write_data(out, &v);
            }
            _ => {}
        }
    }
}

fn write_data(out: &mut BytesMut, v: &Value) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(v.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
}

/// The end of the first complete event (a blank line) and the separator's length.
fn event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i + 1 < buf.len() {
        if buf[i] == b'\n' {
            if buf[i + 1] == b'\n' {
                return Some((i, 2));
            }
            if buf[i + 1] == b'\r' && buf.get(i + 2) == Some(&b'\n') {
                return Some((i, 3));
            }
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude-x\",\"usage\":{\"input_tokens\":7,\"output_tokens\":1}}}\n\n\
event: ping\ndata: {\"type\":\"ping\"}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"lo\"}}\n\n\
event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"tu_1\",\"name\":\"get\",\"input\":{}}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"q\\\":1}\"}}\n\n\
event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":5}}\n\n\
event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

    fn chunks(out: &[u8]) -> (Vec<Value>, bool) {
        let text = std::str::from_utf8(out).expect("utf-8");
        let mut v = Vec::new();
        let mut done = false;
        for line in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
            if line == "[DONE]" {
                done = true;
            } else {
                v.push(serde_json::from_str(line).expect("chunk json"));
            }
        }
        (v, done)
    }

    fn check(out: &[u8]) {
        let (c, done) = chunks(out);
        assert!(done);
        assert_eq!(c[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(c[0]["id"], "msg_1");
        assert_eq!(c[0]["model"], "claude-x");
        let text: String = c
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "Hello");
        assert_eq!(c[3]["choices"][0]["delta"]["tool_calls"][0]["id"], "tu_1");
        assert_eq!(
            c[4]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"],
            "{\"q\":1}"
        );
        assert_eq!(c[5]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(c[6]["choices"], json!([]));
        assert_eq!(
            c[6]["usage"],
            json!({"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12})
        );
    }

    #[test]
    fn translates_in_one_piece_and_at_every_split() {
        let mut t = ChatSseTranslator::new(1);
        check(&t.feed(STREAM.as_bytes()));
        assert!(t.is_done());
        let bytes = STREAM.as_bytes();
        for split in 0..bytes.len() {
            let mut t = ChatSseTranslator::new(1);
            let mut out = t.feed(&bytes[..split]).to_vec();
            out.extend_from_slice(&t.feed(&bytes[split..]));
            check(&out);
        }
        let crlf = STREAM.replace('\n', "\r\n");
        let mut t = ChatSseTranslator::new(1);
        check(&t.feed(crlf.as_bytes()));
    }

    #[test]
    fn errors_and_garbage() {
        let mut t = ChatSseTranslator::new(1);
        let out = t.feed(b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"busy\"}}\n\n: comment\n\ndata: {not json\n\n\xff\xfe\n\n");
        let (c, done) = chunks(&out);
        assert!(!done);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0]["error"]["message"], "busy");
        assert_eq!(c[0]["choices"][0]["finish_reason"], "error");
    }
}
