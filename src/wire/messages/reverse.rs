//! The reverse direction: chat-completions request → Anthropic Messages request, and Anthropic
//! message → chat completion, for providers whose own wire format is Anthropic Messages.

use serde_json::{json, Map, Value};

/// `max_tokens` of a translated request when the chat request gives neither `max_tokens` nor
/// `max_completion_tokens` (the Messages API requires it).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// Text of a chat `content` value: a string, or the `text` of its text parts joined by blank lines.
fn content_text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n\n"),
        _ => String::new(),
    }
}

/// One chat content part → a Messages block (`text`, or `image` from an `image_url` part), with
/// the part's `cache_control` breakpoint (OpenRouter's prompt-caching syntax) kept.
fn part_block(part: &Value) -> Option<Value> {
    let mut block = bare_block(part)?;
    if let Some(cc) = part.get("cache_control").filter(|c| c.is_object()) {
        block["cache_control"] = cc.clone();
    }
    Some(block)
}

fn bare_block(part: &Value) -> Option<Value> {
    match part.get("type").and_then(Value::as_str) {
        Some("text") => {
            let text = part.get("text").and_then(Value::as_str)?;
            Some(json!({"type": "text", "text": text}))
        }
        Some("image_url") => {
            let url = part
                .get("image_url")
                .and_then(|u| u.get("url").and_then(Value::as_str).or_else(|| u.as_str()))?;
            if let Some(rest) = url.strip_prefix("data:") {
                let (media, data) = rest.split_once(";base64,")?;
                Some(json!({"type": "image", "source":
                    {"type": "base64", "media_type": media, "data": data}}))
            } else {
                Some(json!({"type": "image", "source": {"type": "url", "url": url}}))
            }
        }
        _ => None,
    }
}

/// A chat `content` value → Messages blocks (empty text dropped).
fn content_blocks(v: Option<&Value>) -> Vec<Value> {
    match v {
        Some(Value::String(s)) if !s.is_empty() => vec![json!({"type": "text", "text": s})],
        Some(Value::Array(parts)) => parts.iter().filter_map(part_block).collect(),
        _ => Vec::new(),
    }
}

/// Appends `blocks` as a message of `role`, merging with the previous message of the same role
/// (the Messages API wants alternating turns; tool results follow as user turns).
fn push_turn(out: &mut Vec<Value>, role: &str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    if let Some(last) = out.last_mut() {
        if last.get("role").and_then(Value::as_str) == Some(role) {
            if let Some(Value::Array(existing)) = last.get_mut("content") {
                existing.extend(blocks);
                return;
            }
        }
    }
    out.push(json!({"role": role, "content": blocks}));
}

/// A chat `tools` entry → a Messages tool (`None` for non-function tools).
fn tool(t: &Value) -> Option<Value> {
    let f = t.get("function")?;
    let name = f.get("name").and_then(Value::as_str)?;
    let mut out = Map::new();
    out.insert("name".into(), name.into());
    if let Some(d) = f.get("description").and_then(Value::as_str) {
        out.insert("description".into(), d.into());
    }
    let schema = f
        .get("parameters")
        .filter(|p| p.is_object())
        .cloned()
        .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
    out.insert("input_schema".into(), schema);
    Some(Value::Object(out))
}

/// A chat `tool_choice` → a Messages `tool_choice` (`"none"` → `{"type":"none"}`).
fn tool_choice(v: &Value, parallel: Option<bool>) -> Option<Value> {
    let mut choice = match v {
        Value::String(s) => match s.as_str() {
            "auto" => json!({"type": "auto"}),
            "required" => json!({"type": "any"}),
            "none" => json!({"type": "none"}),
            _ => return None,
        },
        Value::Object(o) => {
            let name = o
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)?;
            json!({"type": "tool", "name": name})
        }
        _ => return None,
    };
    if parallel == Some(false) && choice["type"] != "none" {
        choice["disable_parallel_tool_use"] = Value::Bool(true);
    }
    Some(choice)
}

/// Translates a chat-completions request body into an Anthropic Messages request body.
///
/// The reverse of [`messages_to_chat`](super::messages_to_chat), for providers that speak the
/// Messages wire:
///
/// | chat completions | Messages |
/// | --- | --- |
/// | `system` / `developer` messages (anywhere) | `system`, joined by blank lines |
/// | user / assistant text and `image_url` parts | `text` / `image` blocks (data URLs become `base64` sources) |
/// | assistant `tool_calls` | `tool_use` blocks, `arguments` parsed into `input` (invalid JSON becomes `{"_raw_arguments": …}`) |
/// | `role: "tool"` messages | `tool_result` blocks (with `tool_use_id`) in a user turn |
/// | consecutive turns of one role | merged into one message |
/// | `max_tokens` / `max_completion_tokens` (the smaller) | `max_tokens`, [`DEFAULT_MAX_TOKENS`] when absent |
/// | `stop` (string or array) | `stop_sequences` |
/// | `temperature`, `top_p`, `top_k`, `stream` | the same names |
/// | `user` | `metadata.user_id` |
/// | `tools` (`function.parameters`) | `tools[].input_schema` |
/// | `tool_choice` `auto` / `required` / `{function}` / `none`; `parallel_tool_calls: false` | `auto` / `any` / `tool` / `none`; `disable_parallel_tool_use: true` |
/// | anything else (`stream_options`, `n`, `logprobs`, `response_format`, …) | dropped |
///
/// `model` is copied as it is (the caller sets the upstream model). Odd input never panics:
/// members of the wrong type are skipped.
pub fn chat_to_messages(req: &Value) -> Value {
    let empty = Map::new();
    let obj = req.as_object().unwrap_or(&empty);
    let mut system = Vec::new();
    // System text blocks, kept apart when one carries a `cache_control` breakpoint.
    let mut system_blocks: Vec<Value> = Vec::new();
    let mut system_cached = false;
    let mut turns: Vec<Value> = Vec::new();
    for m in obj
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match m.get("role").and_then(Value::as_str).unwrap_or("user") {
            "system" | "developer" => {
                let text = content_text(m.get("content"));
                if !text.is_empty() {
                    system.push(text);
                }
                let blocks = content_blocks(m.get("content"));
                system_cached |= blocks.iter().any(|b| b.get("cache_control").is_some());
                system_blocks.extend(blocks.into_iter().filter(|b| b["type"] == "text"));
            }
            "assistant" => {
                let mut blocks = content_blocks(m.get("content"));
                for c in m
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let f = c.get("function").unwrap_or(&Value::Null);
                    blocks.push(json!({
                        "type": "tool_use",
                        "id": c.get("id").and_then(Value::as_str).unwrap_or_default(),
                        "name": f.get("name").and_then(Value::as_str).unwrap_or_default(),
                        "input": super::tool_input(
                            f.get("arguments").and_then(Value::as_str).unwrap_or_default()
                        ),
                    }));
                }
                push_turn(&mut turns, "assistant", blocks);
            }
            "tool" => {
                let block = json!({
                    "type": "tool_result",
                    "tool_use_id": m.get("tool_call_id").and_then(Value::as_str).unwrap_or_default(),
                    "content": content_text(m.get("content")),
                });
                push_turn(&mut turns, "user", vec![block]);
            }
            _ => push_turn(&mut turns, "user", content_blocks(m.get("content"))),
        }
    }

    let mut out = Map::new();
    if let Some(model) = obj.get("model") {
        out.insert("model".into(), model.clone());
    }
    if system_cached {
        out.insert("system".into(), Value::Array(system_blocks));
    } else if !system.is_empty() {
        out.insert("system".into(), system.join("\n\n").into());
    }
    out.insert("messages".into(), Value::Array(turns));
    let cap = [obj.get("max_tokens"), obj.get("max_completion_tokens")]
        .into_iter()
        .filter_map(|v| v.and_then(Value::as_u64))
        .min()
        .unwrap_or(DEFAULT_MAX_TOKENS);
    out.insert("max_tokens".into(), cap.into());
    match obj.get("stop") {
        Some(Value::String(s)) => {
            out.insert("stop_sequences".into(), json!([s]));
        }
        Some(Value::Array(a)) => {
            let seqs: Vec<&Value> = a.iter().filter(|v| v.is_string()).collect();
            if !seqs.is_empty() {
                out.insert("stop_sequences".into(), json!(seqs));
            }
        }
        _ => {}
    }
    for key in ["temperature", "top_p", "top_k"] {
        if let Some(v) = obj.get(key).filter(|v| v.is_number()) {
            out.insert(key.into(), v.clone());
        }
    }
    if let Some(v) = obj.get("stream").filter(|v| v.is_boolean()) {
        out.insert("stream".into(), v.clone());
    }
    if let Some(u) = obj.get("user").and_then(Value::as_str) {
        out.insert("metadata".into(), json!({"user_id": u}));
    }
    let tools: Vec<Value> = obj
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(tool)
        .collect();
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
        let parallel = obj.get("parallel_tool_calls").and_then(Value::as_bool);
        let choice = obj
            .get("tool_choice")
            .and_then(|c| tool_choice(c, parallel))
            .or_else(|| {
                (parallel == Some(false)).then(|| tool_choice(&"auto".into(), parallel))?
            });
        if let Some(c) = choice {
            out.insert("tool_choice".into(), c);
        }
    }
    Value::Object(out)
}

/// Anthropic `stop_reason` → chat `finish_reason` (missing or unknown → `stop`).
pub(crate) fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop",
    }
}

/// Anthropic usage → chat-completions usage: `prompt_tokens` is `input_tokens` plus cache reads
/// and writes (reported again in `prompt_tokens_details`).
pub(crate) fn usage_to_chat(usage: Option<&Value>) -> Value {
    let u = usage.unwrap_or(&Value::Null);
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let cached = n("cache_read_input_tokens");
    let written = n("cache_creation_input_tokens");
    let prompt = n("input_tokens")
        .saturating_add(cached)
        .saturating_add(written);
    let completion = n("output_tokens");
    let mut out = json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt.saturating_add(completion),
    });
    if cached > 0 || written > 0 {
        out["prompt_tokens_details"] =
            json!({"cached_tokens": cached, "cache_write_tokens": written});
    }
    out
}

/// Translates an Anthropic message (a non-streamed Messages answer) into a chat completion.
///
/// `text` blocks are concatenated into `content` (`null` when there is none), `thinking` blocks
/// into `reasoning`, `tool_use` blocks become `tool_calls` with the `input` serialised as
/// `arguments`; `stop_reason` becomes `finish_reason` and usage
/// the chat `usage` shape. `created` is the caller's (the message has none).
pub fn message_to_chat(message: &Value, created: u64) -> Value {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for b in message
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(b.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("thinking") => {
                reasoning.push_str(b.get("thinking").and_then(Value::as_str).unwrap_or(""))
            }
            Some("tool_use") => calls.push(json!({
                "id": b.get("id").and_then(Value::as_str).unwrap_or_default(),
                "type": "function",
                "function": {
                    "name": b.get("name").and_then(Value::as_str).unwrap_or_default(),
                    "arguments": b.get("input").map_or_else(|| "{}".to_string(), Value::to_string),
                },
            })),
            _ => {}
        }
    }
    let mut msg = Map::new();
    msg.insert("role".into(), "assistant".into());
    msg.insert(
        "content".into(),
        if text.is_empty() && !calls.is_empty() {
            Value::Null
        } else {
            text.into()
        },
    );
    if !reasoning.is_empty() {
        msg.insert("reasoning".into(), reasoning.into());
    }
    if !calls.is_empty() {
        msg.insert("tool_calls".into(), Value::Array(calls));
    }
    json!({
        "id": message.get("id").cloned().unwrap_or(Value::from("")),
        "object": "chat.completion",
        "created": created,
        "model": message.get("model").cloned().unwrap_or(Value::from("")),
        "choices": [{
            "index": 0,
            "message": Value::Object(msg),
            "finish_reason": finish_reason(message.get("stop_reason").and_then(Value::as_str)),
        }],
        "usage": usage_to_chat(message.get("usage")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_to_messages_maps_roles_tools_and_limits() {
        let req = json!({
            "model": "claude-x",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "hi"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function",
                     "function": {"name": "get", "arguments": "{\"q\":1}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "42"},
                {"role": "user", "content": "thanks"},
                {"role": "developer", "content": [{"type": "text", "text": "More."}]},
            ],
            "stop": "END",
            "temperature": 0.5,
            "user": "u1",
            "stream": true,
            "stream_options": {"include_usage": true},
            "tools": [{"type": "function", "function": {"name": "get", "parameters":
                {"type": "object", "properties": {"q": {"type": "number"}}}}}],
            "tool_choice": "required",
            "parallel_tool_calls": false,
        });
        let out = chat_to_messages(&req);
        assert_eq!(out["model"], "claude-x");
        assert_eq!(out["system"], "Be brief.\n\nMore.");
        assert_eq!(out["max_tokens"], DEFAULT_MAX_TOKENS);
        assert_eq!(out["stop_sequences"], json!(["END"]));
        assert_eq!(out["temperature"], 0.5);
        assert_eq!(out["stream"], true);
        assert_eq!(out["metadata"], json!({"user_id": "u1"}));
        assert!(out.get("stream_options").is_none());
        assert_eq!(
            out["messages"],
            json!([
                {"role": "user", "content": [{"type": "text", "text": "hi"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}]},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "call_1", "name": "get", "input": {"q": 1}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "42"},
                    {"type": "text", "text": "thanks"}]},
            ])
        );
        assert_eq!(
            out["tools"][0]["input_schema"]["properties"]["q"]["type"],
            "number"
        );
        assert_eq!(
            out["tool_choice"],
            json!({"type": "any", "disable_parallel_tool_use": true})
        );
        let out = chat_to_messages(&json!({"model": "m", "messages": [],
            "max_tokens": 10, "max_completion_tokens": 7, "stop": ["a", 1]}));
        assert_eq!(out["max_tokens"], 7);
        assert_eq!(out["stop_sequences"], json!(["a"]));
    }

    #[test]
    fn chat_to_messages_keeps_cache_breakpoints() {
        let cc = json!({"type": "ephemeral"});
        let out = chat_to_messages(&json!({"model": "m", "messages": [
            {"role": "system", "content": [
                {"type": "text", "text": "Long rules."},
                {"type": "text", "text": "Big document.", "cache_control": cc}]},
            {"role": "system", "content": "More."},
            {"role": "user", "content": [
                {"type": "text", "text": "Question", "cache_control": cc},
                {"type": "text", "text": "now"}]},
        ]}));
        assert_eq!(
            out["system"],
            json!([
                {"type": "text", "text": "Long rules."},
                {"type": "text", "text": "Big document.", "cache_control": cc},
                {"type": "text", "text": "More."},
            ])
        );
        assert_eq!(
            out["messages"],
            json!([{"role": "user", "content": [
                {"type": "text", "text": "Question", "cache_control": cc},
                {"type": "text", "text": "now"}]}])
        );
        // Without a breakpoint the system prompt stays one string.
        let out = chat_to_messages(&json!({"model": "m", "messages": [
            {"role": "system", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "user", "content": "hi"}]}));
        assert_eq!(out["system"], "a\n\nb");
    }

    #[test]
    fn chat_to_messages_survives_odd_input() {
        for v in [
            json!(null),
            json!([1, 2]),
            json!({"messages": "x", "tools": 3, "stop": {}, "tool_choice": []}),
            json!({"messages": [1, {"role": 3}, {"role": "tool"}, {"role": "assistant", "tool_calls": [1]}]}),
        ] {
            let out = chat_to_messages(&v);
            assert!(out["messages"].is_array());
            assert_eq!(out["max_tokens"], DEFAULT_MAX_TOKENS);
        }
    }

    #[test]
    fn message_to_chat_maps_blocks_and_usage() {
        let msg = json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [{"type": "thinking", "thinking": "hmm", "signature": "s"},
                        {"type": "text", "text": "Hello"},
                        {"type": "tool_use", "id": "tu_1", "name": "get", "input": {"q": 1}}],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 2},
        });
        let chat = message_to_chat(&msg, 7);
        assert_eq!(chat["object"], "chat.completion");
        assert_eq!(chat["created"], 7);
        let m = &chat["choices"][0]["message"];
        assert_eq!(m["content"], "Hello");
        assert_eq!(m["reasoning"], "hmm");
        assert_eq!(m["tool_calls"][0]["function"]["arguments"], "{\"q\":1}");
        assert_eq!(chat["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(chat["usage"]["prompt_tokens"], 12);
        assert_eq!(chat["usage"]["total_tokens"], 17);
        assert_eq!(chat["usage"]["prompt_tokens_details"]["cached_tokens"], 2);
        let chat = message_to_chat(&json!("odd"), 0);
        assert_eq!(chat["choices"][0]["finish_reason"], "stop");
        assert_eq!(chat["usage"]["total_tokens"], 0);
    }
}
