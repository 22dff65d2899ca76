//! Prompt and completion contents on the `gen_ai.request` span — only when the operator opts in
//! with [`UsageMeterLayer::trace_content`](super::UsageMeterLayer::trace_content).
//!
//! The attributes are the GenAI conventions' `gen_ai.input.messages` and `gen_ai.output.messages`
//! (<https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-spans/>): JSON arrays of
//! `{role, parts: [{type: "text", content} | {type: "tool_call", id, name, arguments} |
//! {type: "tool_call_response", id, response}], finish_reason?}`. Image and other non-text parts
//! are named by their type only (`{type: "image_url"}`), never copied. Each attribute is bounded:
//! text beyond the byte budget is cut (at a character boundary) and the rest of the parts keep
//! their shape with empty text, so the attribute stays valid JSON.
//!
//! Streamed completions keep their text (up to the budget) as it passes; streamed tool calls are
//! not reassembled (their count is in the answer, not here).
//!
//! Imports nothing from the meter.

use serde::Deserialize;
use serde_json::{json, Value};
use tracing::Span;

/// What a chat body's messages look like, for the input attribute.
#[derive(Deserialize)]
struct Body {
    #[serde(default)]
    messages: Vec<Value>,
}

/// Cuts `s` to at most `*budget` bytes (at a character boundary), taking them from the budget.
fn take(s: &str, budget: &mut usize) -> String {
    let mut end = s.len().min(*budget);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    *budget -= end;
    s[..end].to_owned()
}

fn text(s: &str, budget: &mut usize) -> Value {
    json!({"type": "text", "content": take(s, budget)})
}

/// A chat message's parts in the conventions' shape.
fn parts(m: &Value, budget: &mut usize) -> Vec<Value> {
    let mut out = Vec::new();
    match &m["content"] {
        Value::String(s) => out.push(text(s, budget)),
        Value::Array(items) => {
            for p in items {
                match (p["type"].as_str(), p["text"].as_str()) {
                    (_, Some(t)) => out.push(text(t, budget)),
                    (Some(kind), None) => out.push(json!({ "type": kind })),
                    _ => {}
                }
            }
        }
        _ => {}
    }
    if let Some(calls) = m["tool_calls"].as_array() {
        for c in calls {
            let args = c["function"]["arguments"].as_str().unwrap_or("");
            out.push(json!({
                "type": "tool_call",
                "id": c["id"],
                "name": c["function"]["name"],
                "arguments": take(args, budget),
            }));
        }
    }
    if m["role"] == "tool" {
        let response = out
            .drain(..)
            .filter_map(|p| p["content"].as_str().map(str::to_owned))
            .collect::<String>();
        out.push(
            json!({"type": "tool_call_response", "id": m["tool_call_id"], "response": response}),
        );
    }
    out
}

fn message(m: &Value, budget: &mut usize) -> Value {
    json!({"role": m["role"], "parts": parts(m, budget)})
}

/// Records `gen_ai.input.messages` from a chat body, up to `limit` bytes of text.
pub(crate) fn record_input(span: &Span, body: &[u8], limit: usize) {
    if limit == 0 || span.is_disabled() {
        return;
    }
    let Ok(b) = serde_json::from_slice::<Body>(body) else {
        return;
    };
    let mut budget = limit;
    let messages: Vec<Value> = b.messages.iter().map(|m| message(m, &mut budget)).collect();
    span.record(
        "gen_ai.input.messages",
        Value::Array(messages).to_string().as_str(),
    );
}

/// Records `gen_ai.output.messages` from a non-streamed chat answer, up to `limit` bytes of text.
pub(crate) fn record_body_output(span: &Span, body: &[u8], limit: usize) {
    if limit == 0 || span.is_disabled() {
        return;
    }
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    let Some(choices) = v["choices"].as_array() else {
        return;
    };
    let mut budget = limit;
    let out: Vec<Value> = choices
        .iter()
        .map(|c| {
            let mut m = message(&c["message"], &mut budget);
            m["finish_reason"] = c["finish_reason"].clone();
            m
        })
        .collect();
    span.record(
        "gen_ai.output.messages",
        Value::Array(out).to_string().as_str(),
    );
}

/// Keeps the raw (JSON-escaped) content of a streamed chunk, up to `limit` bytes in all.
#[inline]
pub(crate) fn capture(kept: &mut Vec<u8>, raw: &[u8], limit: usize) {
    let room = limit.saturating_sub(kept.len());
    if room > 0 && !raw.is_empty() {
        // Cut before an escape that would be split (the decoder drops a broken tail anyway).
        kept.extend_from_slice(&raw[..raw.len().min(room)]);
    }
}

/// Records `gen_ai.output.messages` of a stream from the content kept by [`capture`].
pub(crate) fn record_stream_output(
    span: &Span,
    kept: &[u8],
    finish_reason: Option<&str>,
    limit: usize,
) {
    if limit == 0 || span.is_disabled() {
        return;
    }
    let text = decode(kept);
    let mut budget = limit;
    let out = json!([{
        "role": "assistant",
        "parts": [{"type": "text", "content": take(&text, &mut budget)}],
        "finish_reason": finish_reason,
    }]);
    span.record("gen_ai.output.messages", out.to_string().as_str());
}

/// The text of concatenated JSON string contents; a tail cut inside an escape is dropped.
fn decode(raw: &[u8]) -> String {
    let mut end = raw.len();
    while end > 0 {
        let mut quoted = Vec::with_capacity(end + 2);
        quoted.push(b'"');
        quoted.extend_from_slice(&raw[..end]);
        quoted.push(b'"');
        if let Ok(s) = serde_json::from_slice::<String>(&quoted) {
            return s;
        }
        end -= 1;
        if raw.len() - end > 6 {
            break;
        }
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_cuts_at_a_character_boundary_and_spends_the_budget() {
        let mut b = 4;
        assert_eq!(take("héllo", &mut b), "hél");
        assert_eq!(b, 0);
        assert_eq!(take("more", &mut b), "");
    }

    #[test]
    fn decode_drops_a_broken_escape_at_the_end() {
        assert_eq!(decode(br#"a\"b\n"#), "a\"b\n");
        assert_eq!(decode(br"ab\u00"), "ab");
        assert_eq!(decode(b""), "");
    }

    #[test]
    fn messages_take_the_conventions_shape() {
        let m = json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]});
        let mut b = 100;
        assert_eq!(
            message(&m, &mut b),
            json!({"role": "assistant", "parts": [
                {"type": "tool_call", "id": "c1", "name": "f", "arguments": "{}"}]})
        );
        let t = json!({"role": "tool", "tool_call_id": "c1", "content": "42"});
        assert_eq!(
            message(&t, &mut b)["parts"],
            json!([{"type": "tool_call_response", "id": "c1", "response": "42"}])
        );
        let img = json!({"role": "user", "content": [
            {"type": "text", "text": "see"}, {"type": "image_url", "image_url": {"url": "data:x"}}]});
        assert_eq!(
            message(&img, &mut b)["parts"],
            json!([{"type": "text", "content": "see"}, {"type": "image_url"}])
        );
    }
}
