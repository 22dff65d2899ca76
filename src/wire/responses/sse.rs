//! Incremental translation of a chat-completions SSE stream into Responses API events.

use bytes::{Bytes, BytesMut};
use serde_json::{json, Value};

use super::response::{
    call_item, item_status, message_item, reasoning_item, response_object, status_of, text_part,
    usage_to_responses, Head, ItemIds,
};

/// An open `message` or `reasoning` item: its output index and text so far.
#[derive(Debug)]
struct OpenText {
    index: usize,
    text: String,
}

/// An open `function_call` item.
#[derive(Debug)]
struct OpenCall {
    /// Its `index` in the chat stream's `tool_calls`.
    chat_index: u64,
    index: usize,
    id: String,
    call_id: String,
    name: String,
    args: String,
}

/// Translates OpenAI `chat.completion.chunk` events into Responses API streaming events, as bytes
/// arrive. Only an unfinished line is held between calls.
///
/// The sequence is `response.created`, `response.in_progress`, then per output item
/// `response.output_item.added`, its content events (`response.content_part.added` /
/// `response.output_text.delta`… / `response.output_text.done` / `response.content_part.done`
/// for a message; `response.reasoning_summary_part.added` / `response.reasoning_summary_text.delta`…
/// / `.done` for reasoning; `response.function_call_arguments.delta`… / `.done` for a call) and
/// `response.output_item.done`; last `response.completed` (or `response.incomplete` when the
/// model stopped at `max_output_tokens` or a content filter) carrying the whole response and its
/// `usage`. An in-band error chunk or a failing upstream ends the stream with `error` and
/// `response.failed`. Every event has an `event:` line and a `sequence_number`.
#[derive(Debug)]
pub struct ResponsesSseTranslator {
    lines: crate::body::SseLines,
    seq: u64,
    started: bool,
    finished: bool,
    id: String,
    created: u64,
    model: String,
    provider: Option<Value>,
    echo: Value,
    /// Output items by output index, filled as they finish.
    output: Vec<Value>,
    message: Option<OpenText>,
    reasoning: Option<OpenText>,
    calls: Vec<OpenCall>,
    call_count: usize,
    finish_reason: Option<String>,
    usage: Option<Value>,
}

impl ResponsesSseTranslator {
    /// A translator; `model` is used if the chunks name none; `echo` (from
    /// [`echo_fields`](super::echo_fields)) is repeated in every response object.
    pub fn new(model: impl Into<String>, echo: Value) -> Self {
        ResponsesSseTranslator {
            lines: crate::body::SseLines::default(),
            seq: 0,
            started: false,
            finished: false,
            id: String::new(),
            created: 0,
            model: model.into(),
            provider: None,
            echo,
            output: Vec::new(),
            message: None,
            reasoning: None,
            calls: Vec::new(),
            call_count: 0,
            finish_reason: None,
            usage: None,
        }
    }

    /// True once the terminal event has been written.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Feeds upstream bytes; returns the events they complete (possibly none).
    pub fn feed(&mut self, bytes: &[u8]) -> Bytes {
        let mut out = BytesMut::new();
        let mut lines = std::mem::take(&mut self.lines);
        lines.feed(bytes, |line, _| {
            self.line_in(line, &mut out);
            !self.finished
        });
        self.lines = lines;
        out.freeze()
    }

    /// The end of the upstream stream: closes what is open and writes the terminal event.
    pub fn finish(&mut self) -> Bytes {
        let mut out = BytesMut::new();
        if let Some(line) = self.lines.take_rest() {
            self.line_in(&line, &mut out);
        }
        self.end(&mut out);
        out.freeze()
    }

    /// Ends the stream with `error` and `response.failed` (e.g. the upstream body failed).
    pub fn fail(&mut self, message: &str) -> Bytes {
        let mut out = BytesMut::new();
        self.failed(&mut out, "server_error", message);
        out.freeze()
    }

    fn line_in(&mut self, line: &[u8], out: &mut BytesMut) {
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
        } else if let Ok(chunk) = serde_json::from_slice::<Value>(data) {
            self.chunk(&chunk, out);
        }
    }

    fn emit(&mut self, out: &mut BytesMut, name: &str, mut data: Value) {
        data["type"] = Value::from(name);
        data["sequence_number"] = Value::from(self.seq);
        self.seq += 1;
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\ndata: ");
        out.extend_from_slice(data.to_string().as_bytes());
        out.extend_from_slice(b"\n\n");
    }

    /// The response object as it stands.
    fn response(&self, status: &str, incomplete: Value) -> Value {
        let head = Head {
            id: &self.id,
            created: self.created,
            model: &self.model,
            provider: self.provider.as_ref(),
            echo: &self.echo,
        };
        let output = self.output.iter().filter(|v| !v.is_null()).cloned();
        let usage = self.usage.as_ref().map(usage_to_responses);
        response_object(&head, status, incomplete, output.collect(), usage)
    }

    fn start(&mut self, chunk: &Value, out: &mut BytesMut) {
        if self.started {
            return;
        }
        self.started = true;
        let s = |k: &str| chunk.get(k).and_then(Value::as_str).map(str::to_owned);
        self.id = s("id").unwrap_or_default();
        if let Some(m) = s("model") {
            self.model = m;
        }
        self.created = chunk.get("created").and_then(Value::as_u64).unwrap_or(0);
        self.provider = chunk.get("provider").filter(|p| !p.is_null()).cloned();
        let r = self.response("in_progress", Value::Null);
        self.emit(out, "response.created", json!({"response": r}));
        self.emit(out, "response.in_progress", json!({"response": r}));
    }

    fn chunk(&mut self, chunk: &Value, out: &mut BytesMut) {
        let choice = chunk.get("choices").and_then(|c| c.get(0));
        let error = chunk
            .get("error")
            .filter(|e| !e.is_null())
            .or_else(|| choice.and_then(|c| c.get("error")).filter(|e| !e.is_null()));
        if let Some(e) = error {
            self.start(chunk, out);
            let msg = e
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("upstream error");
            self.failed(out, "server_error", msg);
            return;
        }
        self.start(chunk, out);
        if let Some(u) = chunk.get("usage").filter(|u| !u.is_null()) {
            self.usage = Some(u.clone());
        }
        let Some(choice) = choice else { return };
        if let Some(delta) = choice.get("delta") {
            let text = |k: &str| {
                delta
                    .get(k)
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
            };
            if let Some(r) = text("reasoning").or_else(|| text("reasoning_content")) {
                self.reasoning_delta(r, out);
            }
            if let Some(t) = text("content") {
                self.text_delta(t, out);
            }
            for call in delta
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                self.call_delta(call, out);
            }
        }
        if let Some(r) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish_reason = Some(r.to_owned());
            self.close_all(out);
        }
    }

    /// Reserves the next output index.
    fn next_index(&mut self) -> usize {
        self.output.push(Value::Null);
        self.output.len() - 1
    }

    fn reasoning_delta(&mut self, delta: &str, out: &mut BytesMut) {
        if self.reasoning.is_none() {
            self.close_message(out);
            let index = self.next_index();
            let id = ItemIds(&self.id).reasoning();
            let item = reasoning_item(&id, "");
            self.emit(
                out,
                "response.output_item.added",
                json!({"output_index": index, "item": item}),
            );
            let part = json!({"type": "summary_text", "text": ""});
            self.emit(
                out,
                "response.reasoning_summary_part.added",
                json!({"item_id": id, "output_index": index, "summary_index": 0, "part": part}),
            );
            self.reasoning = Some(OpenText {
                index,
                text: String::new(),
            });
        }
        let Some(open) = self.reasoning.as_mut() else {
            return;
        };
        open.text.push_str(delta);
        let index = open.index;
        let id = ItemIds(&self.id).reasoning();
        self.emit(
            out,
            "response.reasoning_summary_text.delta",
            json!({"item_id": id, "output_index": index, "summary_index": 0, "delta": delta}),
        );
    }

    fn text_delta(&mut self, delta: &str, out: &mut BytesMut) {
        if self.message.is_none() {
            self.close_reasoning(out);
            let index = self.next_index();
            let id = ItemIds(&self.id).message();
            let item = message_item(&id, None, "in_progress");
            self.emit(
                out,
                "response.output_item.added",
                json!({"output_index": index, "item": item}),
            );
            self.emit(out, "response.content_part.added",
                json!({"item_id": id, "output_index": index, "content_index": 0, "part": text_part("")}));
            self.message = Some(OpenText {
                index,
                text: String::new(),
            });
        }
        let Some(open) = self.message.as_mut() else {
            return;
        };
        open.text.push_str(delta);
        let index = open.index;
        let id = ItemIds(&self.id).message();
        self.emit(
            out,
            "response.output_text.delta",
            json!({"item_id": id, "output_index": index,
            "content_index": 0, "delta": delta, "logprobs": []}),
        );
    }

    /// One `tool_calls` fragment: a new chat `index` (or a fragment with a new `id`) opens a
    /// `function_call` item; later fragments add to its arguments. Calls stay open side by side
    /// (each event names its item), so interleaved parallel calls need no holding back.
    fn call_delta(&mut self, call: &Value, out: &mut BytesMut) {
        let f = call.get("function").unwrap_or(&Value::Null);
        let args = f.get("arguments").and_then(Value::as_str).unwrap_or("");
        let chat_index = call.get("index").and_then(Value::as_u64);
        let new_id = call
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        let pos = match chat_index {
            Some(i) => self.calls.iter().position(|c| c.chat_index == i),
            None if new_id.is_none() => self.calls.len().checked_sub(1),
            None => None,
        };
        let pos = match pos {
            Some(p) => p,
            None => self.open_call(call, chat_index, new_id, out),
        };
        if args.is_empty() {
            return;
        }
        self.calls[pos].args.push_str(args);
        let (id, index) = (self.calls[pos].id.clone(), self.calls[pos].index);
        self.emit(
            out,
            "response.function_call_arguments.delta",
            json!({"item_id": id, "output_index": index, "delta": args}),
        );
    }

    fn open_call(
        &mut self,
        call: &Value,
        chat_index: Option<u64>,
        id: Option<&str>,
        out: &mut BytesMut,
    ) -> usize {
        self.close_message(out);
        self.close_reasoning(out);
        let index = self.next_index();
        let name = call
            .get("function")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str);
        let open = OpenCall {
            chat_index: chat_index.unwrap_or(self.call_count as u64),
            index,
            id: ItemIds(&self.id).call(self.call_count),
            call_id: id.unwrap_or_default().to_owned(),
            name: name.unwrap_or_default().to_owned(),
            args: String::new(),
        };
        self.call_count += 1;
        let item = call_item(&open.id, &open.call_id, &open.name, "", "in_progress");
        self.emit(
            out,
            "response.output_item.added",
            json!({"output_index": index, "item": item}),
        );
        self.calls.push(open);
        self.calls.len() - 1
    }

    fn close_reasoning(&mut self, out: &mut BytesMut) {
        let Some(OpenText { index, text }) = self.reasoning.take() else {
            return;
        };
        let id = ItemIds(&self.id).reasoning();
        self.emit(
            out,
            "response.reasoning_summary_text.done",
            json!({"item_id": id, "output_index": index, "summary_index": 0, "text": text}),
        );
        let part = json!({"type": "summary_text", "text": text});
        self.emit(
            out,
            "response.reasoning_summary_part.done",
            json!({"item_id": id, "output_index": index, "summary_index": 0, "part": part}),
        );
        self.item_done(index, reasoning_item(&id, &text), out);
    }

    fn close_message(&mut self, out: &mut BytesMut) {
        let Some(OpenText { index, text }) = self.message.take() else {
            return;
        };
        let id = ItemIds(&self.id).message();
        self.emit(
            out,
            "response.output_text.done",
            json!({"item_id": id, "output_index": index,
            "content_index": 0, "text": text, "logprobs": []}),
        );
        self.emit(
            out,
            "response.content_part.done",
            json!({"item_id": id, "output_index": index,
            "content_index": 0, "part": text_part(&text)}),
        );
        let (status, _) = status_of(self.finish_reason.as_deref());
        let item = message_item(&id, Some(&text), item_status(status));
        self.item_done(index, item, out);
    }

    fn close_calls(&mut self, out: &mut BytesMut) {
        for c in std::mem::take(&mut self.calls) {
            self.emit(
                out,
                "response.function_call_arguments.done",
                json!({"item_id": c.id,
                "output_index": c.index, "name": c.name, "arguments": c.args}),
            );
            let item = call_item(&c.id, &c.call_id, &c.name, &c.args, "completed");
            self.item_done(c.index, item, out);
        }
    }

    fn item_done(&mut self, index: usize, item: Value, out: &mut BytesMut) {
        self.emit(
            out,
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
        );
        self.output[index] = item;
    }

    fn close_all(&mut self, out: &mut BytesMut) {
        self.close_reasoning(out);
        self.close_message(out);
        self.close_calls(out);
    }

    fn end(&mut self, out: &mut BytesMut) {
        if self.finished {
            return;
        }
        self.start(&Value::Null, out);
        self.close_all(out);
        let (status, incomplete) = status_of(self.finish_reason.as_deref());
        let name = if status == "completed" {
            "response.completed"
        } else {
            "response.incomplete"
        };
        let r = self.response(status, incomplete);
        self.emit(out, name, json!({"response": r}));
        self.finished = true;
    }

    fn failed(&mut self, out: &mut BytesMut, code: &str, message: &str) {
        if self.finished {
            return;
        }
        self.start(&Value::Null, out);
        self.emit(
            out,
            "error",
            json!({"code": code, "message": message, "param": null}),
        );
        let mut r = self.response("failed", Value::Null);
        r["error"] = json!({"code": code, "message": message});
        self.emit(out, "response.failed", json!({"response": r}));
        self.finished = true;
    }
}

/// A body that translates a chat-completions SSE body into Responses events frame by frame.
pub type ResponsesSseBody<B> = crate::body::TranslatedSse<B, ResponsesSseTranslator>;

impl crate::body::SseTranslate for ResponsesSseTranslator {
    fn feed(&mut self, bytes: &[u8]) -> Bytes {
        ResponsesSseTranslator::feed(self, bytes)
    }

    fn fail(&mut self, message: &str) -> Bytes {
        ResponsesSseTranslator::fail(self, message)
    }

    fn finish(&mut self) -> Bytes {
        ResponsesSseTranslator::finish(self)
    }
}
