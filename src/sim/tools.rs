//! Simulated tool calls: a request that offers function `tools` is answered with a call to one of
//! them ([`SimProfile::with_tool_calls`](super::SimProfile::with_tool_calls)).
//!
//! The called function is the one `tool_choice` names, else the first function offered. Its
//! arguments are generated from the function's JSON-schema `parameters`: every `required`
//! property gets a value — strings `"hello"` (the first `enum` value when there is one), numbers
//! and integers `1`, booleans `false`, objects recursively, arrays one item — except that a
//! property named `command` or `cmd` gets `["echo","hello"]` when it is an array of strings (the
//! older Codex `shell` tool) or `"echo hello"` when it is a string (Codex's `exec_command`). No
//! tool call is made when `tool_choice` is
//! `"none"` or when the last message is a tool result (`role: "tool"`): the model then answers
//! with text, which ends an agent's loop.

use std::fmt::Write as _;

use bytes::Bytes;
use http::{header, HeaderValue, Response};
use serde_json::{json, Map, Value};

use super::body::SimBody;
use super::error::SimError;
use super::stats::FlightGuard;

use super::profile::SimOutcome;
use super::response::Plan;

/// How deep argument generation follows nested schemas.
const MAX_DEPTH: usize = 8;

/// Bytes of arguments per streamed `tool_calls` delta.
const ARGUMENT_PIECE: usize = 12;

/// A tool call chosen for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ToolCall {
    /// The function's name.
    pub(crate) name: String,
    /// The arguments, serialized JSON.
    pub(crate) arguments: String,
}

impl ToolCall {
    /// The tool call a chat request asks for, if any (see the module docs).
    pub(crate) fn choose(body: &[u8]) -> Option<ToolCall> {
        let req: Value = serde_json::from_slice(body).ok()?;
        let last_role = req["messages"].as_array()?.last()?["role"].as_str();
        if last_role == Some("tool") {
            return None;
        }
        let functions: Vec<&Value> = req["tools"]
            .as_array()?
            .iter()
            .filter(|t| t["type"].as_str().unwrap_or("function") == "function")
            .filter_map(|t| t.get("function"))
            .filter(|f| f["name"].is_string())
            .collect();
        let function = match &req["tool_choice"] {
            Value::String(s) if s == "none" => return None,
            Value::Object(choice) => {
                let named = choice.get("function").and_then(|f| f["name"].as_str());
                match named {
                    Some(name) => *functions.iter().find(|f| f["name"] == name)?,
                    None => *functions.first()?,
                }
            }
            _ => *functions.first()?,
        };
        let name = function["name"].as_str()?.to_owned();
        let arguments = generate(&function["parameters"], "", 0);
        let arguments = match arguments {
            Value::Object(_) => arguments.to_string(),
            _ => String::from("{}"),
        };
        Some(ToolCall { name, arguments })
    }

    /// Completion tokens of the call: `ceil((name + arguments bytes) / 4)`, at least 1.
    pub(crate) fn tokens(&self) -> u32 {
        let bytes = self.name.len() + self.arguments.len();
        u32::try_from(bytes.div_ceil(4)).unwrap_or(u32::MAX).max(1)
    }
}

/// A value matching `schema` for a property called `name`.
fn generate(schema: &Value, name: &str, depth: usize) -> Value {
    if depth > MAX_DEPTH {
        return Value::Null;
    }
    if let Some(first) = schema["enum"].as_array().and_then(|e| e.first()) {
        return first.clone();
    }
    if let Some(alt) = ["anyOf", "oneOf"]
        .iter()
        .find_map(|k| schema[k].as_array().and_then(|a| a.first()))
    {
        return generate(alt, name, depth + 1);
    }
    let command = matches!(name, "command" | "cmd");
    match schema_type(schema) {
        "object" => Value::Object(object(schema, depth)),
        "array" if command => json!(["echo", "hello"]),
        "array" => match schema.get("items") {
            Some(items) => Value::Array(vec![generate(items, "", depth + 1)]),
            None => Value::Array(Vec::new()),
        },
        "string" if command => json!("echo hello"),
        "string" => json!("hello"),
        "number" | "integer" => json!(1),
        "boolean" => json!(false),
        _ => Value::Null,
    }
}

/// The schema's `type` (the first non-`null` one of a list); `object` when it has `properties`.
fn schema_type(schema: &Value) -> &str {
    match &schema["type"] {
        Value::String(t) => t,
        Value::Array(types) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ if schema.get("properties").is_some() => "object",
        _ => "",
    }
}

/// The required properties of an object schema, each with a generated value.
fn object(schema: &Value, depth: usize) -> Map<String, Value> {
    let mut out = Map::new();
    let Some(required) = schema["required"].as_array() else {
        return out;
    };
    for key in required.iter().filter_map(Value::as_str) {
        let property = &schema["properties"][key];
        out.insert(key.to_owned(), generate(property, key, depth + 1));
    }
    out
}

impl Plan {
    /// Answers with `call` (when there is one) if this request succeeds; its completion tokens
    /// then count the call.
    pub(crate) fn set_tool_call(&mut self, call: Option<ToolCall>) {
        let Some(call) = call else { return };
        if matches!(self.outcome, SimOutcome::Ok | SimOutcome::Timeout) {
            self.completion_tokens = call.tokens();
            self.tool_call = Some(call);
        }
    }

    /// The answer once the head is due: the tool call if there is one, else
    /// [`respond`](Plan::respond)'s.
    pub(crate) fn answer(mut self, guard: FlightGuard) -> Result<Response<SimBody>, SimError> {
        let Some(call) = self.tool_call.take() else {
            return self.respond(guard);
        };
        let (body, content_type) = if self.stream {
            let events = self.tool_call_events(&call);
            (SimBody::frames(events, guard), "text/event-stream")
        } else {
            guard.complete();
            (
                SimBody::full(self.tool_call_json(&call)),
                "application/json",
            )
        };
        let mut res = Response::new(body);
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        Ok(res)
    }

    /// The call's id: `call_` and 16 hex digits derived from the completion id.
    fn call_id(&self) -> String {
        format!("call_{:016x}", self.id.rotate_left(17) ^ 0x5eed)
    }

    /// A non-streamed completion whose message is the tool call.
    pub(crate) fn tool_call_json(&self, call: &ToolCall) -> Bytes {
        let choices = json!([{
            "index": 0,
            "message": {"role": "assistant", "content": null, "tool_calls": [{
                "id": self.call_id(), "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }]},
            "finish_reason": "tool_calls",
        }]);
        let mut s = self.tool_call_head("chat.completion");
        let _ = write!(
            s,
            "\"system_fingerprint\":null,\"choices\":{choices},\"usage\":{}}}",
            self.usage_json(call)
        );
        Bytes::from(s)
    }

    /// The SSE events of a streamed tool call, as OpenAI-wire providers send them: the id, type
    /// and name in the first `tool_calls` delta, the arguments in pieces, a chunk with
    /// `finish_reason: "tool_calls"`, the usage chunk, `[DONE]`.
    pub(crate) fn tool_call_events(&self, call: &ToolCall) -> Vec<Bytes> {
        let first = json!({"role": "assistant", "content": null, "tool_calls": [{
            "index": 0, "id": self.call_id(), "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }]});
        let mut events = vec![self.tool_chunk(&json!([delta(first, None)]), None)];
        let mut rest = call.arguments.as_str();
        while !rest.is_empty() {
            let mut at = ARGUMENT_PIECE.min(rest.len());
            while !rest.is_char_boundary(at) {
                at += 1;
            }
            let (piece, tail) = rest.split_at(at);
            rest = tail;
            let d = json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]});
            events.push(self.tool_chunk(&json!([delta(d, None)]), None));
        }
        let finish = delta(json!({}), Some("tool_calls"));
        events.push(self.tool_chunk(&json!([finish]), None));
        events.push(self.tool_chunk(&json!([]), Some(call)));
        events.push(Bytes::from_static(b"data: [DONE]\n\n"));
        events
    }

    /// `{"id":…,"object":…,"created":…,"model":…,` (left open).
    fn tool_call_head(&self, object: &str) -> String {
        format!(
            "{{\"id\":\"chatcmpl-{:016x}\",\"object\":\"{object}\",\"created\":{},\"model\":{},",
            self.id, self.created, self.model_json
        )
    }

    fn usage_json(&self, call: &ToolCall) -> Value {
        let completion = u64::from(call.tokens());
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        })
    }

    /// One `chat.completion.chunk` event; the usage chunk when `usage` is given.
    fn tool_chunk(&self, choices: &Value, usage: Option<&ToolCall>) -> Bytes {
        let mut s = String::from("data: ");
        s.push_str(&self.tool_call_head("chat.completion.chunk"));
        let _ = write!(s, "\"choices\":{choices}");
        if let Some(call) = usage {
            let _ = write!(s, ",\"usage\":{}", self.usage_json(call));
        }
        s.push_str("}\n\n");
        Bytes::from(s)
    }
}

/// A streamed choice with `delta` and `finish_reason`.
fn delta(delta: Value, finish: Option<&str>) -> Value {
    json!({"index": 0, "delta": delta, "finish_reason": finish})
}
