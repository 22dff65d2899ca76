//! Incremental translation of a chat-completions SSE stream into Anthropic's named events.

use bytes::{Bytes, BytesMut};
use serde_json::{json, Value};

use super::response::{error_to_anthropic, stop_reason, Signer};

/// The content block being streamed.
#[derive(Debug)]
enum Open {
    None,
    Text,
    Thinking(Signer),
    /// A tool call: its index in the chat stream's `tool_calls`.
    Tool(u64),
}

/// Translates OpenAI `chat.completion.chunk` events into Anthropic Messages events, as bytes
/// arrive. Only an unfinished line is held between calls.
///
/// Every event it writes has an `event:` line. The sequence is `message_start`, `ping`, blocks
/// (`content_block_start` / `content_block_delta`… / `content_block_stop`), `message_delta`,
/// `message_stop`; or, on an in-band error, `event: error` and nothing after it.
#[derive(Debug)]
pub struct SseTranslator {
    lines: crate::body::SseLines,
    started: bool,
    finished: bool,
    open: Open,
    index: u64,
    finish_reason: Option<String>,
    usage: Option<Value>,
    fallback_model: String,
    /// Tool calls whose fragments arrived while another call's block was open.
    held: Vec<HeldCall>,
}

/// A tool call held whole (see `SseTranslator::tool_call`).
#[derive(Debug)]
struct HeldCall {
    index: u64,
    /// Its `tool_use` block, as it opens.
    block: Value,
    args: String,
}

/// The `tool_use` block that opens for a chat tool call.
fn tool_use(call: &Value, function: &Value) -> Value {
    json!({
        "type": "tool_use",
        "id": call.get("id").cloned().unwrap_or(Value::from("")),
        "name": function.get("name").cloned().unwrap_or(Value::from("")),
        "input": {},
    })
}

impl SseTranslator {
    /// A translator; `model` is used for `message_start` if the first chunk names none.
    pub fn new(model: impl Into<String>) -> Self {
        SseTranslator {
            lines: crate::body::SseLines::default(),
            started: false,
            finished: false,
            open: Open::None,
            index: 0,
            finish_reason: None,
            usage: None,
            fallback_model: model.into(),
            held: Vec::new(),
        }
    }

    /// True once `message_stop` or `error` has been written.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Feeds upstream bytes; returns the Anthropic events they complete (possibly none).
    pub fn feed(&mut self, bytes: &[u8]) -> Bytes {
        let mut out = BytesMut::new();
        let mut lines = std::mem::take(&mut self.lines);
        lines.feed(bytes, |line, _| {
            self.handle_line(line, &mut out);
            !self.finished
        });
        self.lines = lines;
        out.freeze()
    }

    /// The end of the upstream stream: closes what is open (a stream without `finish_reason` ends
    /// with `end_turn`).
    pub fn finish(&mut self) -> Bytes {
        let mut out = BytesMut::new();
        if let Some(line) = self.lines.take_rest() {
            self.handle_line(&line, &mut out);
        }
        self.end(&mut out);
        out.freeze()
    }

    /// Ends the stream with an `event: error` (e.g. the upstream body failed).
    pub fn fail(&mut self, message: &str) -> Bytes {
        let mut out = BytesMut::new();
        if !self.finished {
            let body = json!({"type": "error", "error": {"type": "api_error", "message": message}});
            event(&mut out, "error", &body);
            self.finished = true;
        }
        out.freeze()
    }

    fn handle_line(&mut self, line: &[u8], out: &mut BytesMut) {
        if self.finished {
            return;
        }
        // Keep-alive comments are passed on.
        if crate::body::pass_comment(line, out) {
            return;
        }
        let Some(data) = line.strip_prefix(b"data:") else {
            return; // `event:`/`id:` lines and blank separators
        };
        let data = data.strip_prefix(b" ").unwrap_or(data);
        if data.trim_ascii() == b"[DONE]" {
            self.end(out);
            return;
        }
        let Ok(chunk) = serde_json::from_slice::<Value>(data) else {
            return;
        };
        self.chunk(&chunk, out);
    }

    fn start(&mut self, chunk: &Value, out: &mut BytesMut) {
        if self.started {
            return;
        }
        self.started = true;
        let usage = chunk.get("usage").filter(|u| !u.is_null());
        let input = usage
            .and_then(|u| u.get("prompt_tokens"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let model = chunk
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or(&self.fallback_model);
        let mut message = json!({
            "id": chunk.get("id").cloned().unwrap_or(Value::from("")),
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": model,
            "stop_reason": null,
            "stop_sequence": null,
            "usage": {"input_tokens": input, "output_tokens": 0,
                      "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0},
        });
        if let Some(p) = chunk.get("provider") {
            message["provider"] = p.clone();
        }
        event(
            out,
            "message_start",
            &json!({"type": "message_start", "message": message}),
        );
        event(out, "ping", &json!({"type": "ping"}));
    }

    fn chunk(&mut self, chunk: &Value, out: &mut BytesMut) {
        let choice = chunk.get("choices").and_then(|c| c.get(0));
        let error = chunk
            .get("error")
            .filter(|e| !e.is_null())
            .or_else(|| choice.and_then(|c| c.get("error")).filter(|e| !e.is_null()));
        if let Some(e) = error {
            let mut body = error_to_anthropic(502, &json!({"error": e}));
            // In-band errors mid-stream are reported as `api_error` (or `overloaded_error`).
            if body["error"]["type"] != "overloaded_error" {
                body["error"]["type"] = Value::from("api_error");
            }
            event(out, "error", &body);
            self.finished = true;
            return;
        }
        self.start(chunk, out);
        if let Some(u) = chunk.get("usage").filter(|u| !u.is_null()) {
            self.usage = Some(u.clone());
        }
        let Some(choice) = choice else { return };
        if let Some(delta) = choice.get("delta") {
            let reasoning = delta
                .get("reasoning")
                .or_else(|| delta.get("reasoning_content"))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty());
            if let Some(r) = reasoning {
                if !matches!(self.open, Open::Thinking(_)) {
                    self.close(out);
                    self.open_block(
                        out,
                        json!({"type": "thinking", "thinking": "", "signature": ""}),
                    );
                    self.open = Open::Thinking(Signer::default());
                }
                if let Open::Thinking(s) = &mut self.open {
                    s.update(r.as_bytes());
                }
                self.delta(out, json!({"type": "thinking_delta", "thinking": r}));
            }
            if let Some(text) = delta
                .get("content")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            {
                if !matches!(self.open, Open::Text) {
                    self.close(out);
                    self.open_block(out, json!({"type": "text", "text": ""}));
                    self.open = Open::Text;
                }
                self.delta(out, json!({"type": "text_delta", "text": text}));
            }
            if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
                for call in calls {
                    self.tool_call(call, out);
                }
            }
        }
        if let Some(r) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish_reason = Some(r.to_owned());
            self.close(out);
        }
    }

    /// One `tool_calls` fragment. The first call streams live as a `tool_use` block; a fragment
    /// of any other call while that block is open (providers may interleave parallel calls'
    /// fragments by `index`) is held, and those calls are written whole when the live block
    /// closes, so that no call's arguments are ever split across blocks.
    fn tool_call(&mut self, call: &Value, out: &mut BytesMut) {
        let idx = call.get("index").and_then(Value::as_u64);
        let f = call.get("function").unwrap_or(&Value::Null);
        let args = f.get("arguments").and_then(Value::as_str).unwrap_or("");
        let live = match (&self.open, idx) {
            (Open::Tool(cur), Some(i)) => *cur == i,
            (Open::Tool(_), None) => call.get("id").is_none_or(Value::is_null),
            _ => false,
        };
        if !live && (matches!(self.open, Open::Tool(_)) || !self.held.is_empty()) {
            let i = idx.unwrap_or(u64::MAX);
            match self.held.iter_mut().find(|h| h.index == i) {
                Some(h) => h.args.push_str(args),
                None => self.held.push(HeldCall {
                    index: i,
                    block: tool_use(call, f),
                    args: args.to_owned(),
                }),
            }
            return;
        }
        if !live {
            self.close(out);
            self.open_block(out, tool_use(call, f));
            self.open = Open::Tool(idx.unwrap_or(self.index));
        }
        if !args.is_empty() {
            self.delta(
                out,
                json!({"type": "input_json_delta", "partial_json": args}),
            );
        }
    }

    /// Writes the held tool calls, each as a whole block, in `index` order.
    fn write_held(&mut self, out: &mut BytesMut) {
        let mut held = std::mem::take(&mut self.held);
        held.sort_by_key(|h| h.index);
        for h in held {
            self.open_block(out, h.block);
            if !h.args.is_empty() {
                self.delta(
                    out,
                    json!({"type": "input_json_delta", "partial_json": h.args}),
                );
            }
            self.stop_block(out);
        }
    }

    fn open_block(&mut self, out: &mut BytesMut, block: Value) {
        event(
            out,
            "content_block_start",
            &json!({"type": "content_block_start", "index": self.index, "content_block": block}),
        );
    }

    fn delta(&self, out: &mut BytesMut, delta: Value) {
        event(
            out,
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": self.index, "delta": delta}),
        );
    }

    /// Closes the open block (then writes the tool calls held while a tool block was open).
    fn close(&mut self, out: &mut BytesMut) {
        match std::mem::replace(&mut self.open, Open::None) {
            Open::None => {}
            Open::Thinking(s) => {
                self.delta(
                    out,
                    json!({"type": "signature_delta", "signature": s.finish()}),
                );
                self.stop_block(out);
            }
            Open::Text | Open::Tool(_) => self.stop_block(out),
        }
        if !self.held.is_empty() {
            self.write_held(out);
        }
    }

    fn stop_block(&mut self, out: &mut BytesMut) {
        event(
            out,
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": self.index}),
        );
        self.index += 1;
    }

    fn end(&mut self, out: &mut BytesMut) {
        if self.finished {
            return;
        }
        if !self.started {
            self.start(&Value::Null, out);
        }
        self.close(out);
        let mut usage = super::response::usage_to_anthropic(self.usage.as_ref());
        if self.usage.is_none() {
            if let Some(u) = usage.as_object_mut() {
                u.retain(|k, _| k == "output_tokens");
            }
        }
        event(
            out,
            "message_delta",
            &json!({
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason(self.finish_reason.as_deref()), "stop_sequence": null},
                "usage": usage,
            }),
        );
        event(out, "message_stop", &json!({"type": "message_stop"}));
        self.finished = true;
    }
}

fn event(out: &mut BytesMut, name: &str, data: &Value) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(data.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
}

/// A body that translates a chat-completions SSE body into Anthropic events frame by frame.
pub type MessagesSseBody<B> = crate::body::TranslatedSse<B, SseTranslator>;

impl crate::body::SseTranslate for SseTranslator {
    fn feed(&mut self, bytes: &[u8]) -> Bytes {
        SseTranslator::feed(self, bytes)
    }

    fn fail(&mut self, message: &str) -> Bytes {
        SseTranslator::fail(self, message)
    }

    fn finish(&mut self) -> Bytes {
        SseTranslator::finish(self)
    }
}
