//! Responses API requests → chat-completions requests.

use serde_json::{json, Map, Value};

use crate::error::GatewayError;

/// Members copied as they are from a Responses request into the chat request: the sampling
/// parameters both APIs share and the gateway's own routing members.
const SAME_NAME: &[&str] = &[
    "model",
    "models",
    "provider",
    "route",
    "session_id",
    "transforms",
    "plugins",
    "usage",
    "user",
    "temperature",
    "top_p",
    "top_k",
    "top_logprobs",
    "frequency_penalty",
    "presence_penalty",
    "repetition_penalty",
    "seed",
    "parallel_tool_calls",
    "prompt_cache_key",
    "safety_identifier",
];

/// Translates a Responses API request (`POST /responses`) into a chat-completions request.
///
/// `input` (a string, or a list of `message`, `function_call`, `function_call_output` and
/// `reasoning` items) becomes `messages`, after `instructions` as a first `system` message;
/// function `tools` and `tool_choice` take the chat shape (other tool types are dropped);
/// `reasoning` keeps its `effort` / `max_tokens`; `text.format` becomes `response_format` and
/// `text.verbosity` `verbosity`; `max_output_tokens` becomes `max_tokens`; `stream: true` asks
/// for usage in the stream. The translation is stateless: `previous_response_id`, `conversation`
/// and `item_reference` items need a stored response and are refused with a 400, as are input
/// items and content parts of unknown types.
pub fn responses_to_chat(req: &Value) -> Result<Value, GatewayError> {
    let obj = req
        .as_object()
        .ok_or_else(|| GatewayError::invalid_request("", "the body must be a JSON object"))?;
    for key in ["previous_response_id", "conversation"] {
        if obj.get(key).is_some_and(|v| !v.is_null()) {
            return Err(GatewayError::invalid_request(
                key,
                "this gateway stores no responses (the Responses API is served stateless): \
                 send the whole conversation in `input` instead",
            ));
        }
    }
    let mut chat = Map::new();
    for key in SAME_NAME {
        if let Some(v) = obj.get(*key).filter(|v| !v.is_null()) {
            chat.insert((*key).into(), v.clone());
        }
    }
    chat.insert("messages".into(), Value::Array(messages(obj)?));
    if let Some(n) = obj.get("max_output_tokens").filter(|v| !v.is_null()) {
        chat.insert("max_tokens".into(), n.clone());
    }
    if let Some(tools) = obj.get("tools").filter(|v| !v.is_null()) {
        let tools = function_tools(tools)?;
        if !tools.is_empty() {
            chat.insert("tools".into(), Value::Array(tools));
        }
    }
    if let Some(choice) = obj.get("tool_choice").filter(|v| !v.is_null()) {
        chat.insert("tool_choice".into(), tool_choice(choice)?);
    }
    if let Some(r) = obj.get("reasoning").and_then(reasoning) {
        chat.insert("reasoning".into(), r);
    }
    text_options(obj.get("text"), &mut chat)?;
    if obj.get("stream").and_then(Value::as_bool) == Some(true) {
        chat.insert("stream".into(), Value::Bool(true));
        chat.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Ok(Value::Object(chat))
}

/// `instructions` and `input` → chat `messages`.
fn messages(obj: &Map<String, Value>) -> Result<Vec<Value>, GatewayError> {
    let mut b = Builder::default();
    match obj.get("instructions") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => b.out.push(json!({"role": "system", "content": s})),
        Some(_) => return Err(GatewayError::invalid_request("instructions", "a string")),
    }
    match obj.get("input") {
        Some(Value::String(s)) => b.out.push(json!({"role": "user", "content": s})),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                b.item(item, i)?;
            }
        }
        None | Some(Value::Null) => {
            return Err(GatewayError::invalid_request(
                "input",
                "a string or a list of input items is required",
            ))
        }
        Some(_) => {
            return Err(GatewayError::invalid_request(
                "input",
                "a string or a list of input items",
            ))
        }
    }
    Ok(b.out)
}

/// Builds the chat messages item by item.
#[derive(Default)]
struct Builder {
    out: Vec<Value>,
    /// Reasoning text waiting for the assistant turn that follows it.
    reasoning: Option<String>,
}

impl Builder {
    fn item(&mut self, item: &Value, i: usize) -> Result<(), GatewayError> {
        let field = |name: &str| format!("input[{i}].{name}");
        let kind = match item.get("type") {
            None | Some(Value::Null) if item.get("role").is_some() => "message",
            Some(Value::String(t)) => t.as_str(),
            _ => {
                return Err(GatewayError::invalid_request(
                    &format!("input[{i}]"),
                    "an input item with a `type` (or a `role`)",
                ))
            }
        };
        match kind {
            "message" => self.message(item, i),
            "function_call" => {
                let call = json!({
                    "id": str_field(item, "call_id", &field("call_id"))?,
                    "type": "function",
                    "function": {
                        "name": str_field(item, "name", &field("name"))?,
                        "arguments": item.get("arguments").and_then(Value::as_str).unwrap_or("{}"),
                    },
                });
                self.assistant_turn().push_call(call);
                Ok(())
            }
            "function_call_output" => {
                let id = str_field(item, "call_id", &field("call_id"))?;
                let content = match item.get("output") {
                    Some(Value::String(s)) => Value::from(s.as_str()),
                    Some(Value::Array(parts)) => content_parts(parts, &field("output"))?,
                    _ => return Err(GatewayError::invalid_request(&field("output"), "a string")),
                };
                self.out
                    .push(json!({"role": "tool", "tool_call_id": id, "content": content}));
                Ok(())
            }
            "reasoning" => {
                let text = reasoning_text(item);
                if !text.is_empty() {
                    let held = self.reasoning.get_or_insert_with(String::new);
                    if !held.is_empty() {
                        held.push_str("\n\n");
                    }
                    held.push_str(&text);
                }
                Ok(())
            }
            "item_reference" => Err(GatewayError::invalid_request(
                &field("type"),
                "`item_reference` needs a stored response; this gateway stores none",
            )),
            other => Err(GatewayError::invalid_request(
                &field("type"),
                &format!(
                    "input items of type `{other}` are not supported (message, function_call, \
                     function_call_output and reasoning are)"
                ),
            )),
        }
    }

    /// A `message` item (roles `user`, `system`, `developer`, `assistant`).
    fn message(&mut self, item: &Value, i: usize) -> Result<(), GatewayError> {
        let role = match item.get("role").and_then(Value::as_str) {
            Some(r @ ("user" | "system" | "developer" | "assistant")) => r,
            _ => {
                return Err(GatewayError::invalid_request(
                    &format!("input[{i}].role"),
                    "one of `user`, `system`, `developer`, `assistant`",
                ))
            }
        };
        let field = format!("input[{i}].content");
        let content = match item.get("content") {
            Some(Value::String(s)) => Value::from(s.as_str()),
            Some(Value::Array(parts)) => content_parts(parts, &field)?,
            _ => {
                return Err(GatewayError::invalid_request(
                    &field,
                    "a string or a list of content parts",
                ))
            }
        };
        if role == "assistant" {
            let content = match content {
                Value::Array(parts) => Value::from(joined_text(&parts)),
                c => c,
            };
            self.start_assistant(content);
        } else {
            self.out.push(json!({"role": role, "content": content}));
        }
        Ok(())
    }

    /// Starts a new assistant message, carrying any held reasoning.
    fn start_assistant(&mut self, content: Value) {
        let mut m = json!({"role": "assistant", "content": content});
        if let Some(r) = self.reasoning.take() {
            m["reasoning"] = Value::from(r);
        }
        self.out.push(m);
    }

    /// The assistant message a `function_call` belongs to: the last message when it is an
    /// assistant's, else a new one.
    fn assistant_turn(&mut self) -> &mut Map<String, Value> {
        let last_is_assistant = self
            .out
            .last()
            .is_some_and(|m| m["role"] == "assistant" && self.reasoning.is_none());
        if !last_is_assistant {
            self.start_assistant(Value::Null);
        }
        self.out
            .last_mut()
            .and_then(Value::as_object_mut)
            .expect("an assistant message was just ensured")
    }
}

/// Adds a tool call to an assistant message.
trait PushCall {
    fn push_call(&mut self, call: Value);
}

impl PushCall for Map<String, Value> {
    fn push_call(&mut self, call: Value) {
        let calls = self
            .entry("tool_calls")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(a) = calls {
            a.push(call);
        }
    }
}

/// A required string member of an input item.
fn str_field<'a>(item: &'a Value, key: &str, field: &str) -> Result<&'a str, GatewayError> {
    item.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| GatewayError::invalid_request(field, "a string"))
}

/// A reasoning item's text: its `summary` texts, else its `content` texts, joined by blank lines.
fn reasoning_text(item: &Value) -> String {
    let texts = |key: &str| -> Vec<String> {
        item.get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .map(str::to_owned)
            .collect()
    };
    let summary = texts("summary");
    if summary.is_empty() {
        texts("content").join("\n\n")
    } else {
        summary.join("\n\n")
    }
}

/// Responses content parts → chat content: the text when there is one text part, else chat parts.
fn content_parts(parts: &[Value], field: &str) -> Result<Value, GatewayError> {
    let mut out = Vec::with_capacity(parts.len());
    for (i, p) in parts.iter().enumerate() {
        out.push(content_part(p, &format!("{field}[{i}]"))?);
    }
    if let [one] = out.as_slice() {
        if one["type"] == "text" {
            return Ok(one["text"].clone());
        }
    }
    Ok(Value::Array(out))
}

/// One content part.
fn content_part(p: &Value, field: &str) -> Result<Value, GatewayError> {
    let text = |key: &str| {
        p.get(key)
            .and_then(Value::as_str)
            .map(|t| json!({"type": "text", "text": t}))
            .ok_or_else(|| GatewayError::invalid_request(&format!("{field}.{key}"), "a string"))
    };
    match p.get("type").and_then(Value::as_str) {
        Some("input_text" | "output_text" | "text" | "summary_text" | "reasoning_text") => {
            text("text")
        }
        Some("refusal") => text("refusal"),
        Some("input_image") => {
            let url = p.get("image_url").and_then(Value::as_str).ok_or_else(|| {
                GatewayError::invalid_request(
                    &format!("{field}.image_url"),
                    "a URL or data URL (file ids need a file store; this gateway has none)",
                )
            })?;
            let detail = p.get("detail").and_then(Value::as_str).unwrap_or("auto");
            Ok(json!({"type": "image_url", "image_url": {"url": url, "detail": detail}}))
        }
        Some("input_file") => {
            let data = p
                .get("file_data")
                .or_else(|| p.get("file_url"))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    GatewayError::invalid_request(&format!("{field}.file_data"), "a string")
                })?;
            let name = p.get("filename").and_then(Value::as_str).unwrap_or("file");
            Ok(json!({"type": "file", "file": {"filename": name, "file_data": data}}))
        }
        Some("input_audio") => Ok(json!({"type": "input_audio",
            "input_audio": p.get("input_audio").cloned().unwrap_or(Value::Null)})),
        _ => Err(GatewayError::invalid_request(
            &format!("{field}.type"),
            "a content part of type input_text, output_text, refusal, input_image, \
             input_file or input_audio",
        )),
    }
}

/// The text of chat text parts, concatenated.
fn joined_text(parts: &[Value]) -> String {
    parts
        .iter()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect()
}

/// Function tools in the chat shape; other tool types (hosted tools) are dropped.
fn function_tools(tools: &Value) -> Result<Vec<Value>, GatewayError> {
    let tools = tools
        .as_array()
        .ok_or_else(|| GatewayError::invalid_request("tools", "a list of tools"))?;
    let mut out = Vec::new();
    for (i, t) in tools.iter().enumerate() {
        if t.get("type").and_then(Value::as_str) != Some("function") {
            continue;
        }
        let name = str_field(t, "name", &format!("tools[{i}].name"))?;
        let mut f = Map::new();
        f.insert("name".into(), Value::from(name));
        for key in ["description", "parameters", "strict"] {
            if let Some(v) = t.get(key).filter(|v| !v.is_null()) {
                f.insert(key.into(), v.clone());
            }
        }
        out.push(json!({"type": "function", "function": f}));
    }
    Ok(out)
}

/// `tool_choice`: the strings are the same; `{"type":"function","name"}` takes the chat shape.
fn tool_choice(choice: &Value) -> Result<Value, GatewayError> {
    match choice {
        Value::String(s) if matches!(s.as_str(), "auto" | "none" | "required") => {
            Ok(choice.clone())
        }
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
            let name = str_field(choice, "name", "tool_choice.name")?;
            Ok(json!({"type": "function", "function": {"name": name}}))
        }
        _ => Err(GatewayError::invalid_request(
            "tool_choice",
            "`auto`, `none`, `required` or {\"type\":\"function\",\"name\":…}",
        )),
    }
}

/// `reasoning` (`effort`, OpenRouter's `max_tokens` / `exclude` / `enabled`); `summary` is
/// dropped. `None` when nothing is left.
fn reasoning(r: &Value) -> Option<Value> {
    let mut out = Map::new();
    for key in ["effort", "max_tokens", "exclude", "enabled"] {
        if let Some(v) = r.get(key).filter(|v| !v.is_null()) {
            out.insert(key.into(), v.clone());
        }
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

/// `text.format` → `response_format`; `text.verbosity` → `verbosity`.
fn text_options(text: Option<&Value>, chat: &mut Map<String, Value>) -> Result<(), GatewayError> {
    let Some(text) = text.filter(|t| !t.is_null()) else {
        return Ok(());
    };
    if let Some(v) = text.get("verbosity").filter(|v| !v.is_null()) {
        chat.insert("verbosity".into(), v.clone());
    }
    let Some(format) = text.get("format").filter(|f| !f.is_null()) else {
        return Ok(());
    };
    let out = match format.get("type").and_then(Value::as_str) {
        Some("text") => return Ok(()),
        Some("json_object") => json!({"type": "json_object"}),
        Some("json_schema") => {
            let mut schema = Map::new();
            schema.insert(
                "name".into(),
                Value::from(str_field(format, "name", "text.format.name")?),
            );
            for key in ["schema", "strict", "description"] {
                if let Some(v) = format.get(key).filter(|v| !v.is_null()) {
                    schema.insert(key.into(), v.clone());
                }
            }
            json!({"type": "json_schema", "json_schema": schema})
        }
        _ => {
            return Err(GatewayError::invalid_request(
                "text.format.type",
                "`text`, `json_object` or `json_schema`",
            ))
        }
    };
    chat.insert("response_format".into(), out);
    Ok(())
}
