//! Anthropic Messages request → chat-completions request, and the `count_tokens` estimate.

use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use crate::error::GatewayError;

/// Most `fallbacks` entries a Messages request may carry (OpenRouter's limit).
pub const MAX_FALLBACKS: usize = 3;

fn invalid(message: impl Into<String>) -> GatewayError {
    GatewayError::new(crate::error::ErrorType::InvalidRequest, message)
}

/// Text of a `system` value or of a `role: "system"` message: a string, or text blocks joined by
/// blank lines (other blocks are skipped).
fn system_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| match b {
                Value::String(s) => Some(s.as_str()),
                b => b.get("text").and_then(Value::as_str),
            })
            .collect::<Vec<_>>()
            .join("\n\n"),
        _ => String::new(),
    }
}

/// An Anthropic `image` block as an OpenAI `image_url` part (base64 → data URL, `url` as is).
fn image_part(block: &Value) -> Option<Value> {
    let src = block.get("source")?;
    let url = match src.get("type").and_then(Value::as_str) {
        Some("base64") => format!(
            "data:{};base64,{}",
            src.get("media_type")
                .and_then(Value::as_str)
                .unwrap_or("image/png"),
            src.get("data").and_then(Value::as_str).unwrap_or("")
        ),
        Some("url") => src.get("url").and_then(Value::as_str)?.to_owned(),
        _ => return None,
    };
    Some(json!({"type": "image_url", "image_url": {"url": url}}))
}

/// Content parts as a plain string when they are all text, else the parts array.
fn parts_content(parts: Vec<Value>) -> Value {
    if parts
        .iter()
        .all(|p| p.get("type").and_then(Value::as_str) == Some("text"))
    {
        let texts: Vec<&str> = parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect();
        Value::String(texts.concat())
    } else {
        Value::Array(parts)
    }
}

/// The text of a `tool_result` content (string or blocks); image blocks are returned separately.
fn tool_result_content(v: Option<&Value>) -> (String, Vec<Value>) {
    match v {
        None | Some(Value::Null) => (String::new(), Vec::new()),
        Some(Value::String(s)) => (s.clone(), Vec::new()),
        Some(Value::Array(blocks)) => {
            let mut text = String::new();
            let mut images = Vec::new();
            for b in blocks {
                match b.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        text.push_str(b.get("text").and_then(Value::as_str).unwrap_or(""))
                    }
                    Some("image") => images.extend(image_part(b)),
                    _ => {}
                }
            }
            (text, images)
        }
        Some(other) => (other.to_string(), Vec::new()),
    }
}

fn user_message(content: &Value, out: &mut Vec<Value>) {
    let blocks = match content {
        Value::Array(b) => b,
        other => {
            out.push(json!({"role": "user", "content": system_text(other)}));
            return;
        }
    };
    let mut parts = Vec::new();
    let mut tool_images = Vec::new();
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => parts.push(
                json!({"type": "text", "text": b.get("text").cloned().unwrap_or(Value::from(""))}),
            ),
            Some("image") => parts.extend(image_part(b)),
            Some("tool_result") => {
                let (mut text, images) = tool_result_content(b.get("content"));
                if b.get("is_error").and_then(Value::as_bool) == Some(true) {
                    text = format!("[tool error] {text}");
                }
                tool_images.extend(images);
                out.push(json!({
                    "role": "tool",
                    "tool_call_id": b.get("tool_use_id").cloned().unwrap_or(Value::from("")),
                    "content": text,
                }));
            }
            // `document`, `search_result` and other block types have no chat-completions form.
            _ => {}
        }
    }
    // Images returned by tools go in a user message right after the tool messages.
    tool_images.extend(parts);
    if !tool_images.is_empty() {
        out.push(json!({"role": "user", "content": parts_content(tool_images)}));
    }
}

fn assistant_message(content: &Value, out: &mut Vec<Value>) {
    let blocks = match content {
        Value::Array(b) => b,
        other => {
            out.push(json!({"role": "assistant", "content": system_text(other)}));
            return;
        }
    };
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(b.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("thinking") => {
                reasoning.push_str(b.get("thinking").and_then(Value::as_str).unwrap_or(""))
            }
            Some("tool_use") | Some("server_tool_use") => {
                let input = b.get("input").cloned().unwrap_or_else(|| json!({}));
                calls.push(json!({
                    "id": b.get("id").cloned().unwrap_or(Value::from("")),
                    "type": "function",
                    "function": {
                        "name": b.get("name").cloned().unwrap_or(Value::from("")),
                        "arguments": input.to_string(),
                    },
                }));
            }
            // `redacted_thinking` is opaque to other providers and dropped.
            _ => {}
        }
    }
    let mut m = Map::new();
    m.insert("role".into(), "assistant".into());
    m.insert(
        "content".into(),
        if text.is_empty() && !calls.is_empty() {
            Value::Null
        } else {
            Value::String(text)
        },
    );
    if !reasoning.is_empty() {
        m.insert("reasoning".into(), Value::String(reasoning));
    }
    if !calls.is_empty() {
        m.insert("tool_calls".into(), Value::Array(calls));
    }
    out.push(Value::Object(m));
}

/// Translates an Anthropic Messages request body into a chat-completions request body.
///
/// See the [`compat` module docs](crate::compat) for the field mapping. Unknown fields are ignored; malformed
/// `model`, `messages`, `fallbacks` or `models`, or a missing `max_tokens` (Anthropic requires it),
/// give a 400 [`GatewayError`].
pub fn messages_to_chat(req: &Value) -> Result<Value, GatewayError> {
    let obj = req
        .as_object()
        .ok_or_else(|| invalid("the request body must be a JSON object"))?;
    let model = obj
        .get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("model: a model id is required"))?;
    let messages = obj
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("messages: an array of messages is required"))?;
    // Required by Anthropic's Messages API (<https://docs.anthropic.com/en/api/messages>).
    if obj
        .get("max_tokens")
        .and_then(Value::as_u64)
        .is_none_or(|n| n == 0)
    {
        return Err(invalid("max_tokens: a positive integer is required"));
    }

    let mut out = Map::new();
    out.insert("model".into(), model.into());
    let mut msgs = Vec::with_capacity(messages.len() + 1);
    if let Some(system) = obj.get("system") {
        let text = system_text(system);
        if !text.is_empty() {
            msgs.push(json!({"role": "system", "content": text}));
        }
    }
    for (i, m) in messages.iter().enumerate() {
        let content = m.get("content").unwrap_or(&Value::Null);
        match m.get("role").and_then(Value::as_str) {
            Some("user") => user_message(content, &mut msgs),
            Some("assistant") => assistant_message(content, &mut msgs),
            Some("system") | Some("developer") => {
                msgs.push(json!({"role": "system", "content": system_text(content)}))
            }
            _ => {
                return Err(invalid(format!(
                    "messages.{i}.role: expected `user`, `assistant` or `system`"
                )))
            }
        }
    }
    out.insert("messages".into(), Value::Array(msgs));

    for key in ["max_tokens", "temperature", "top_p", "top_k"] {
        if let Some(v) = obj.get(key).filter(|v| !v.is_null()) {
            out.insert(key.into(), v.clone());
        }
    }
    if let Some(stop) = obj.get("stop_sequences").and_then(Value::as_array) {
        if !stop.is_empty() {
            out.insert("stop".into(), Value::Array(stop.clone()));
        }
    }
    if let Some(user) = obj
        .get("metadata")
        .and_then(|m| m.get("user_id"))
        .and_then(Value::as_str)
    {
        out.insert("user".into(), user.into());
    }
    if let Some(tools) = obj.get("tools").and_then(Value::as_array) {
        let tools: Vec<Value> = tools
            .iter()
            // Server tools (`web_search_20250305`, …) have a versioned `type` and no schema.
            .filter(|t| {
                t.get("input_schema").is_some()
                    || matches!(t.get("type").and_then(Value::as_str), None | Some("custom"))
            })
            .map(|t| {
                let mut f = Map::new();
                f.insert(
                    "name".into(),
                    t.get("name").cloned().unwrap_or(Value::from("")),
                );
                if let Some(d) = t.get("description") {
                    f.insert("description".into(), d.clone());
                }
                f.insert(
                    "parameters".into(),
                    t.get("input_schema")
                        .cloned()
                        .unwrap_or_else(|| json!({"type": "object"})),
                );
                json!({"type": "function", "function": f})
            })
            .collect();
        if !tools.is_empty() {
            out.insert("tools".into(), Value::Array(tools));
        }
    }
    if let Some(tc) = obj.get("tool_choice").filter(|v| v.is_object()) {
        let choice = match tc.get("type").and_then(Value::as_str) {
            Some("any") => Value::from("required"),
            Some("none") => Value::from("none"),
            Some("tool") => {
                json!({"type": "function", "function": {"name": tc.get("name").cloned().unwrap_or(Value::from(""))}})
            }
            _ => Value::from("auto"),
        };
        out.insert("tool_choice".into(), choice);
        if tc.get("disable_parallel_tool_use").and_then(Value::as_bool) == Some(true) {
            out.insert("parallel_tool_calls".into(), false.into());
        }
    }
    if let Some(reasoning) = thinking_to_reasoning(obj) {
        out.insert("reasoning".into(), reasoning);
    }
    if obj.get("stream").and_then(Value::as_bool) == Some(true) {
        out.insert("stream".into(), true.into());
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    // OpenRouter extensions.
    for key in [
        "provider",
        "models",
        "session_id",
        "user",
        "plugins",
        "transforms",
        "route",
    ] {
        if let Some(v) = obj.get(key).filter(|v| !v.is_null()) {
            out.insert(key.into(), v.clone());
        }
    }
    if let Some(fallbacks) = obj.get("fallbacks").filter(|v| !v.is_null()) {
        if obj.get("models").is_some_and(|m| !m.is_null()) {
            return Err(invalid("fallbacks: cannot be combined with `models`"));
        }
        let list = fallbacks
            .as_array()
            .ok_or_else(|| invalid("fallbacks: expected an array of `{\"model\": …}` objects"))?;
        if list.len() > MAX_FALLBACKS {
            return Err(invalid(format!(
                "fallbacks: must have {MAX_FALLBACKS} items or fewer"
            )));
        }
        let mut models = Vec::with_capacity(list.len());
        for (i, f) in list.iter().enumerate() {
            let m = f
                .as_object()
                .filter(|m| m.len() == 1)
                .and_then(|m| m.get("model"))
                .and_then(Value::as_str);
            match m {
                Some(m) => models.push(Value::from(m)),
                None => {
                    return Err(invalid(format!(
                        "fallbacks.{i}: expected `{{\"model\": \"<id>\"}}`"
                    )))
                }
            }
        }
        if !models.is_empty() {
            out.insert("models".into(), Value::Array(models));
        }
    }
    Ok(Value::Object(out))
}

/// A Messages body with its `tools` translated apart: the request as a [`Value`] without `tools`
/// (for [`messages_to_chat`]) and the chat-completions `tools` array as JSON text, if any tool
/// survives. The tool schemas (most of a Claude Code request) are copied as raw JSON instead of
/// being parsed into values, cloned and serialised again; the result is the same as
/// [`messages_to_chat`] on the whole body.
pub(crate) fn split_tools(body: &[u8]) -> Result<(Value, Option<Vec<u8>>), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let (rest, tools) = serde::Deserializer::deserialize_any(&mut de, SplitVisitor)?;
    de.end()?;
    let tools = match (rest.is_object(), tools) {
        (true, Some(raw)) => tools_to_chat(raw),
        _ => None,
    };
    Ok((rest, tools))
}

/// The chat body: `chat` (from [`messages_to_chat`], an object) serialised, with `tools` (from
/// [`split_tools`]) added as its last member.
pub(crate) fn chat_body(chat: &Value, tools: Option<&[u8]>) -> Vec<u8> {
    let mut body = serde_json::to_vec(chat).unwrap_or_default();
    if let (Some(tools), Some(b'}')) = (tools, body.last()) {
        body.pop();
        if body.len() > 1 {
            body.push(b',');
        }
        body.extend_from_slice(b"\"tools\":");
        body.extend_from_slice(tools);
        body.push(b'}');
    }
    body
}

/// Reads a JSON value; for an object, keeps `tools` as raw JSON and the rest as a [`Value`].
struct SplitVisitor;

impl<'de> serde::de::Visitor<'de> for SplitVisitor {
    type Value = (Value, Option<&'de RawValue>);

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut rest = Map::new();
        let mut tools = None;
        while let Some(key) = map.next_key::<crate::route::Str<'de>>()? {
            if key.0 == "tools" {
                tools = Some(map.next_value::<&'de RawValue>()?);
            } else {
                rest.insert(key.0.into_owned(), map.next_value()?);
            }
        }
        Ok((Value::Object(rest), tools))
    }

    // Anything but an object is kept as it is (and rejected by `messages_to_chat`).
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok((Value::Bool(v), None))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok((Value::from(v), None))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok((Value::from(v), None))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok((Value::from(v), None))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok((Value::from(v), None))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok((Value::Null, None))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok((Value::Array(Vec::new()), None))
    }
}

/// The chat-completions `tools` for a raw Messages `tools` value, with the rules of
/// [`messages_to_chat`]: `None` when it is not an array or no tool survives.
fn tools_to_chat(raw: &RawValue) -> Option<Vec<u8>> {
    let tools: Vec<&RawValue> = serde_json::from_str(raw.get()).ok()?;
    let mut out = Vec::with_capacity(raw.get().len() + 64 * tools.len());
    out.push(b'[');
    for t in tools {
        // A member map; anything but an object has no members.
        let members = crate::route::members(t.get()).unwrap_or_default();
        let get = |name: &str| members.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
        let schema = get("input_schema");
        let kind = get("type").map(|v| serde_json::from_str::<crate::route::Str<'_>>(v.get()));
        // A `type` that is not a string counts as absent.
        let custom = match kind {
            Some(Ok(k)) => k.0 == "custom",
            _ => true,
        };
        // Server tools (`web_search_20250305`, …) have a versioned `type` and no schema.
        if schema.is_none() && !custom {
            continue;
        }
        if out.len() > 1 {
            out.push(b',');
        }
        out.extend_from_slice(br#"{"type":"function","function":{"name":"#);
        out.extend_from_slice(get("name").map_or("\"\"", RawValue::get).as_bytes());
        if let Some(d) = get("description") {
            out.extend_from_slice(br#","description":"#);
            out.extend_from_slice(d.get().as_bytes());
        }
        out.extend_from_slice(br#","parameters":"#);
        out.extend_from_slice(
            schema
                .map_or(r#"{"type":"object"}"#, RawValue::get)
                .as_bytes(),
        );
        out.extend_from_slice(b"}}");
    }
    out.push(b']');
    (out.len() > 2).then_some(out)
}

/// `thinking` → OpenRouter `reasoning`: `enabled` → `{max_tokens: budget_tokens}`; `adaptive` →
/// `{effort}` from `output_config.effort` (default `"medium"`); `disabled` or absent → none.
fn thinking_to_reasoning(obj: &Map<String, Value>) -> Option<Value> {
    let thinking = obj.get("thinking")?;
    match thinking.get("type").and_then(Value::as_str)? {
        "enabled" => Some(
            match thinking.get("budget_tokens").and_then(Value::as_u64) {
                Some(b) => json!({"max_tokens": b}),
                None => json!({"enabled": true}),
            },
        ),
        "adaptive" => {
            let effort = obj
                .get("output_config")
                .and_then(|o| o.get("effort"))
                .and_then(Value::as_str)
                .filter(|e| matches!(*e, "minimal" | "low" | "medium" | "high"))
                .unwrap_or("medium");
            Some(json!({"effort": effort}))
        }
        _ => None,
    }
}

/// The `count_tokens` estimate: one token per four bytes (rounded up) of the JSON text of
/// `system`, `messages` and `tools`. It is deliberately cheap and model-independent.
pub fn count_tokens(req: &Value) -> u64 {
    let bytes: usize = ["system", "messages", "tools"]
        .iter()
        .filter_map(|k| req.get(*k))
        .map(|v| v.to_string().len())
        .sum();
    (bytes as u64).div_ceil(4)
}

/// The `count_tokens` response body, `{"input_tokens": N}`.
pub fn count_tokens_json(req: &Value) -> Value {
    json!({"input_tokens": count_tokens(req)})
}
