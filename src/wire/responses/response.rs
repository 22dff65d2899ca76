//! Chat completions → Responses API objects (and back, for the round-trip tests and for
//! callers that need it).

use serde_json::{json, Map, Value};

/// Makes the default of an echoed member.
type MakeDefault = fn() -> Value;

/// The request members a Responses object echoes, with the defaults OpenAI documents for
/// absent ones.
const ECHOED: &[(&str, MakeDefault)] = &[
    ("instructions", || Value::Null),
    ("max_output_tokens", || Value::Null),
    ("metadata", || json!({})),
    ("parallel_tool_calls", || Value::Bool(true)),
    ("reasoning", || json!({"effort": null, "summary": null})),
    ("temperature", || Value::Null),
    ("text", || json!({"format": {"type": "text"}})),
    ("tool_choice", || Value::from("auto")),
    ("tools", || json!([])),
    ("top_p", || Value::Null),
    ("user", || Value::Null),
];

/// What a Responses object repeats from its request (`instructions`, `tools`, `tool_choice`,
/// `text`, `reasoning`, …), with OpenAI's defaults for what the request left out; `store` is
/// always `false` and `previous_response_id` `null` (nothing is stored).
pub fn echo_fields(req: &Value) -> Value {
    let mut out = Map::new();
    for (key, default) in ECHOED {
        let v = req.get(*key).filter(|v| !v.is_null()).cloned();
        out.insert((*key).into(), v.unwrap_or_else(default));
    }
    out.insert("store".into(), Value::Bool(false));
    out.insert("previous_response_id".into(), Value::Null);
    out.insert("truncation".into(), Value::from("disabled"));
    Value::Object(out)
}

/// A chat `usage` object → Responses usage: `input_tokens` (with `input_tokens_details.
/// cached_tokens`), `output_tokens` (with `output_tokens_details.reasoning_tokens`),
/// `total_tokens`, and the gateway's `cost` / `cost_details` / `is_byok` when present.
pub fn usage_to_responses(u: &Value) -> Value {
    let n = |v: Option<&Value>| v.and_then(Value::as_u64).unwrap_or(0);
    let input = n(u.get("prompt_tokens"));
    let output = n(u.get("completion_tokens"));
    let mut out = json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens":
            n(u.get("prompt_tokens_details").and_then(|d| d.get("cached_tokens")))},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens":
            n(u.get("completion_tokens_details").and_then(|d| d.get("reasoning_tokens")))},
        "total_tokens": u.get("total_tokens").and_then(Value::as_u64).unwrap_or(input + output),
    });
    for key in ["cost", "cost_details", "is_byok"] {
        if let Some(v) = u.get(key) {
            out[key] = v.clone();
        }
    }
    out
}

/// Responses usage → chat usage (the inverse of [`usage_to_responses`]).
pub fn usage_to_chat(u: &Value) -> Value {
    let n = |v: Option<&Value>| v.and_then(Value::as_u64).unwrap_or(0);
    let mut out = json!({
        "prompt_tokens": n(u.get("input_tokens")),
        "completion_tokens": n(u.get("output_tokens")),
        "total_tokens": n(u.get("total_tokens")),
        "prompt_tokens_details": {"cached_tokens":
            n(u.get("input_tokens_details").and_then(|d| d.get("cached_tokens")))},
        "completion_tokens_details": {"reasoning_tokens":
            n(u.get("output_tokens_details").and_then(|d| d.get("reasoning_tokens")))},
    });
    for key in ["cost", "cost_details", "is_byok"] {
        if let Some(v) = u.get(key) {
            out[key] = v.clone();
        }
    }
    out
}

/// `status` and `incomplete_details` for a chat `finish_reason`: `length` and
/// `content_filter` make the response `incomplete`.
pub(crate) fn status_of(finish_reason: Option<&str>) -> (&'static str, Value) {
    match finish_reason {
        Some("length") => ("incomplete", json!({"reason": "max_output_tokens"})),
        Some("content_filter") => ("incomplete", json!({"reason": "content_filter"})),
        _ => ("completed", Value::Null),
    }
}

/// The status of a finished message item in a response of `status`: a cut-off response's
/// message is `incomplete`.
pub(crate) fn item_status(status: &str) -> &'static str {
    if status == "incomplete" {
        "incomplete"
    } else {
        "completed"
    }
}

/// The ids of a response's output items, derived from the response id.
pub(crate) struct ItemIds<'a>(pub(crate) &'a str);

impl ItemIds<'_> {
    pub(crate) fn message(&self) -> String {
        format!("msg_{}", self.0)
    }
    pub(crate) fn reasoning(&self) -> String {
        format!("rs_{}", self.0)
    }
    pub(crate) fn call(&self, n: usize) -> String {
        format!("fc_{}_{n}", self.0)
    }
}

/// A `reasoning` output item.
pub(crate) fn reasoning_item(id: &str, text: &str) -> Value {
    json!({"type": "reasoning", "id": id,
           "summary": if text.is_empty() { json!([]) } else { json!([{"type": "summary_text", "text": text}]) }})
}

/// An `output_text` content part.
pub(crate) fn text_part(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

/// An assistant `message` output item (`text` `None`: no content part yet).
pub(crate) fn message_item(id: &str, text: Option<&str>, status: &str) -> Value {
    let content: Vec<Value> = text.map(text_part).into_iter().collect();
    json!({"type": "message", "id": id, "status": status, "role": "assistant", "content": content})
}

/// A `function_call` output item.
pub(crate) fn call_item(id: &str, call_id: &str, name: &str, args: &str, status: &str) -> Value {
    json!({"type": "function_call", "id": id, "call_id": call_id, "name": name,
           "arguments": args, "status": status})
}

/// The parts of a Responses object that are not its output.
pub(crate) struct Head<'a> {
    pub(crate) id: &'a str,
    pub(crate) created: u64,
    pub(crate) model: &'a str,
    pub(crate) provider: Option<&'a Value>,
    pub(crate) echo: &'a Value,
}

/// A Responses object.
pub(crate) fn response_object(
    head: &Head<'_>,
    status: &str,
    incomplete: Value,
    output: Vec<Value>,
    usage: Option<Value>,
) -> Value {
    let mut r = json!({
        "id": head.id,
        "object": "response",
        "created_at": head.created,
        "status": status,
        "error": null,
        "incomplete_details": incomplete,
        "model": head.model,
        "output": output,
        "usage": usage,
    });
    if let (Some(o), Some(e)) = (r.as_object_mut(), head.echo.as_object()) {
        for (k, v) in e {
            o.insert(k.clone(), v.clone());
        }
    }
    if let Some(p) = head.provider {
        r["provider"] = p.clone();
    }
    r
}

/// A chat completion → a Responses object: a `reasoning` item (from `reasoning` /
/// `reasoning_content`), a `message` item with one `output_text` part (when there is text), and
/// a `function_call` item per tool call, in that order; `usage` translated by
/// [`usage_to_responses`]; `echo` (from [`echo_fields`]) repeated.
pub fn chat_to_response(chat: &Value, echo: &Value) -> Value {
    let id = chat.get("id").and_then(Value::as_str).unwrap_or("");
    let ids = ItemIds(id);
    let choice = chat.get("choices").and_then(|c| c.get(0));
    let message = choice
        .and_then(|c| c.get("message"))
        .unwrap_or(&Value::Null);
    let mut output = Vec::new();
    let reasoning = message
        .get("reasoning")
        .or_else(|| message.get("reasoning_content"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    if let Some(r) = reasoning {
        output.push(reasoning_item(&ids.reasoning(), r));
    }
    let finish = choice
        .and_then(|c| c.get("finish_reason"))
        .and_then(Value::as_str);
    let (status, incomplete) = status_of(finish);
    if let Some(t) = message.get("content").and_then(Value::as_str) {
        if !t.is_empty() {
            output.push(message_item(&ids.message(), Some(t), item_status(status)));
        }
    }
    let calls = message.get("tool_calls").and_then(Value::as_array);
    for (n, call) in calls.into_iter().flatten().enumerate() {
        let f = call.get("function").unwrap_or(&Value::Null);
        let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        output.push(call_item(
            &ids.call(n),
            &s(call, "id"),
            &s(f, "name"),
            &s(f, "arguments"),
            "completed",
        ));
    }
    let head = Head {
        id,
        created: chat.get("created").and_then(Value::as_u64).unwrap_or(0),
        model: chat.get("model").and_then(Value::as_str).unwrap_or(""),
        provider: chat.get("provider").filter(|p| !p.is_null()),
        echo,
    };
    let usage = chat
        .get("usage")
        .filter(|u| !u.is_null())
        .map(usage_to_responses);
    response_object(&head, status, incomplete, output, usage)
}

/// A Responses object → a chat completion (the inverse of [`chat_to_response`]): output texts
/// concatenated into `content`, reasoning summaries into `reasoning`, function calls into
/// `tool_calls`; `finish_reason` is `tool_calls` when there are calls, `length` /
/// `content_filter` for an incomplete response, else `stop`.
pub fn response_to_chat(resp: &Value) -> Value {
    let items = resp.get("output").and_then(Value::as_array);
    let (mut text, mut reasoning, mut calls) = (None::<String>, None::<String>, Vec::new());
    let texts = |v: Option<&Value>| -> String {
        v.and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect()
    };
    for item in items.into_iter().flatten() {
        match item.get("type").and_then(Value::as_str) {
            Some("message") => text.get_or_insert_with(String::new).push_str(&texts(item.get("content"))),
            Some("reasoning") => reasoning.get_or_insert_with(String::new).push_str(&texts(item.get("summary"))),
            Some("function_call") => calls.push(json!({
                "id": item.get("call_id").cloned().unwrap_or(Value::from("")),
                "type": "function",
                "function": {"name": item.get("name").cloned().unwrap_or(Value::from("")),
                             "arguments": item.get("arguments").cloned().unwrap_or(Value::from(""))},
            })),
            _ => {}
        }
    }
    let reason = resp
        .get("incomplete_details")
        .and_then(|d| d.get("reason"))
        .and_then(Value::as_str);
    let finish = match reason {
        _ if !calls.is_empty() => "tool_calls",
        Some("max_output_tokens") => "length",
        Some("content_filter") => "content_filter",
        _ => "stop",
    };
    let mut message = json!({"role": "assistant", "content": text});
    if let Some(r) = reasoning {
        message["reasoning"] = Value::from(r);
    }
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    let mut chat = json!({
        "id": resp.get("id").cloned().unwrap_or(Value::Null),
        "object": "chat.completion",
        "created": resp.get("created_at").cloned().unwrap_or(Value::from(0)),
        "model": resp.get("model").cloned().unwrap_or(Value::Null),
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
    });
    if let Some(u) = resp.get("usage").filter(|u| !u.is_null()) {
        chat["usage"] = usage_to_chat(u);
    }
    chat
}
