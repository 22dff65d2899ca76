//! Chat-completions responses and OpenRouter errors → Anthropic Messages shapes.

use http::StatusCode;
use serde_json::{json, Map, Value};

/// The incremental hash behind thinking signatures: 64-bit FNV-1a.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Signer(u64);

impl Default for Signer {
    fn default() -> Self {
        Signer(0xcbf2_9ce4_8422_2325)
    }
}

impl Signer {
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    pub(crate) fn finish(self) -> String {
        format!("gw-fnv1a-{:016x}", self.0)
    }
}

/// The `signature` given to a thinking block made from a provider's `reasoning`:
/// `gw-fnv1a-<16 hex digits>`, an FNV-1a hash of the thinking text. It is stable (the same text
/// always gets the same signature) but not a secret MAC; clients echo it back and the gateway
/// ignores it.
pub(crate) fn thinking_signature(thinking: &str) -> String {
    let mut s = Signer::default();
    s.update(thinking.as_bytes());
    s.finish()
}

/// `finish_reason` → `stop_reason` (`stop` / missing → `end_turn`).
pub(crate) fn stop_reason(finish_reason: Option<&str>) -> &'static str {
    match finish_reason {
        Some("length") => "max_tokens",
        Some("tool_calls") | Some("function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

/// A chat-completions `usage` object → Anthropic usage (`input_tokens` excludes cache reads and
/// writes, which are reported in their own fields); `cost` (and `cost_details`) are kept.
pub(crate) fn usage_to_anthropic(usage: Option<&Value>) -> Value {
    let u = usage.unwrap_or(&Value::Null);
    let n = |v: Option<&Value>| v.and_then(Value::as_u64).unwrap_or(0);
    let details = u.get("prompt_tokens_details");
    let cached = n(details.and_then(|d| d.get("cached_tokens")));
    let written = n(details.and_then(|d| d.get("cache_write_tokens")));
    let prompt = n(u.get("prompt_tokens"));
    let mut out = Map::new();
    out.insert(
        "input_tokens".into(),
        prompt.saturating_sub(cached + written).into(),
    );
    out.insert("output_tokens".into(), n(u.get("completion_tokens")).into());
    out.insert("cache_read_input_tokens".into(), cached.into());
    out.insert("cache_creation_input_tokens".into(), written.into());
    for key in ["cost", "cost_details", "is_byok"] {
        if let Some(v) = u.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    Value::Object(out)
}

/// Parses tool-call arguments; invalid JSON (or a non-object) becomes `{}`, with the original
/// string kept under the key `"_raw_arguments"` so nothing is silently lost.
pub(crate) fn tool_input(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return json!({});
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({"_raw_arguments": arguments}),
    }
}

/// Translates a chat completion into an Anthropic message.
pub fn chat_to_message(chat: &Value) -> Value {
    let choice = chat
        .get("choices")
        .and_then(|c| c.get(0))
        .unwrap_or(&Value::Null);
    let msg = choice.get("message").unwrap_or(&Value::Null);
    let mut content = Vec::new();
    let reasoning = msg
        .get("reasoning")
        .or_else(|| msg.get("reasoning_content"))
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty());
    if let Some(r) = reasoning {
        content
            .push(json!({"type": "thinking", "thinking": r, "signature": thinking_signature(r)}));
    }
    if let Some(text) = msg.get("content").and_then(Value::as_str) {
        if !text.is_empty() {
            content.push(json!({"type": "text", "text": text}));
        }
    }
    if let Some(calls) = msg.get("tool_calls").and_then(Value::as_array) {
        for c in calls {
            let f = c.get("function").unwrap_or(&Value::Null);
            content.push(json!({
                "type": "tool_use",
                "id": c.get("id").cloned().unwrap_or(Value::from("")),
                "name": f.get("name").cloned().unwrap_or(Value::from("")),
                "input": tool_input(f.get("arguments").and_then(Value::as_str).unwrap_or("")),
            }));
        }
    }
    let mut out = Map::new();
    out.insert(
        "id".into(),
        chat.get("id").cloned().unwrap_or(Value::from("")),
    );
    out.insert("type".into(), "message".into());
    out.insert("role".into(), "assistant".into());
    out.insert("content".into(), Value::Array(content));
    out.insert(
        "model".into(),
        chat.get("model").cloned().unwrap_or(Value::from("")),
    );
    out.insert(
        "stop_reason".into(),
        stop_reason(choice.get("finish_reason").and_then(Value::as_str)).into(),
    );
    out.insert("stop_sequence".into(), Value::Null);
    out.insert("usage".into(), usage_to_anthropic(chat.get("usage")));
    if let Some(p) = chat.get("provider") {
        out.insert("provider".into(), p.clone());
    }
    Value::Object(out)
}

/// OpenRouter `error_type` → Anthropic `error.type` (<https://openrouter.ai/docs/api-reference/errors>, <https://docs.anthropic.com/en/api/errors>).
pub fn anthropic_error_type(error_type: &str) -> &'static str {
    match error_type {
        "authentication" => "authentication_error",
        "permission_denied" => "permission_error",
        "payment_required" => "billing_error",
        "not_found" | "image_not_found" => "not_found_error",
        "rate_limit_exceeded" => "rate_limit_error",
        "provider_overloaded" => "overloaded_error",
        "timeout" => "timeout_error",
        "provider_unavailable" | "server" | "unmapped" => "api_error",
        "context_length_exceeded"
        | "max_tokens_exceeded"
        | "token_limit_exceeded"
        | "string_too_long"
        | "invalid_request"
        | "invalid_prompt"
        | "precondition_failed"
        | "payload_too_large"
        | "unprocessable"
        | "content_policy_violation"
        | "refusal"
        | "invalid_image"
        | "image_too_large"
        | "image_too_small"
        | "unsupported_image_format"
        | "image_download_failed" => "invalid_request_error",
        _ => "api_error",
    }
}

/// The `error_type` an HTTP status implies when an error body does not say.
fn error_type_for_status(status: u16) -> &'static str {
    match status {
        400 => "invalid_request",
        401 => "authentication",
        402 => "payment_required",
        403 => "permission_denied",
        404 => "not_found",
        408 | 504 | 524 => "timeout",
        413 => "payload_too_large",
        422 => "unprocessable",
        429 => "rate_limit_exceeded",
        502 => "provider_unavailable",
        503 | 529 => "provider_overloaded",
        500 => "server",
        _ => "unmapped",
    }
}

/// Translates an OpenRouter error body (`{"error":{"code","message","metadata":{"error_type"}}}`)
/// into Anthropic's `{"type":"error","error":{"type","message","error_type"},"request_id":null}`.
/// `status` is the HTTP status of the response; it is used when the body names no `error_type`.
///
/// An unknown model (OpenRouter's 400 with `availability.code: "model_not_found"`) becomes a
/// `not_found_error`, as Anthropic's API reports it; answer it with [`anthropic_status`]'s 404.
pub fn error_to_anthropic(status: u16, body: &Value) -> Value {
    let err = body.get("error").unwrap_or(body);
    let code = err
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (400..600).contains(c))
        .unwrap_or(status);
    let model_not_found =
        err.pointer("/availability/code").and_then(Value::as_str) == Some("model_not_found");
    let error_type = if model_not_found {
        "not_found"
    } else {
        err.get("metadata")
            .and_then(|m| m.get("error_type"))
            .or_else(|| err.get("error_type"))
            .and_then(Value::as_str)
            .unwrap_or_else(|| error_type_for_status(code))
    };
    let message = err
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("upstream error");
    json!({
        "type": "error",
        "error": {
            "type": anthropic_error_type(error_type),
            "message": message,
            "error_type": error_type,
        },
        "request_id": Value::Null,
    })
}

/// The HTTP status to send an Anthropic-shaped error with: a `not_found_error` is a 404 (Anthropic
/// answers an unknown model that way, and its SDKs raise `NotFoundError` for it, where OpenRouter
/// says 400); anything else keeps `status`.
pub fn anthropic_status(status: StatusCode, error: &Value) -> StatusCode {
    if error.pointer("/error/type").and_then(Value::as_str) == Some("not_found_error") {
        StatusCode::NOT_FOUND
    } else {
        status
    }
}
