//! Top-level spans of a JSON response object, and byte splices that edit it without re-serialising.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::ops::Range;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::cost::{Cost, TokenUsage, WireUsage};

/// The members of a chat-completion object (or chunk, or Anthropic event) the meter reads, as raw
/// values borrowing from the body: their byte spans are where edits go.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Top<'a> {
    #[serde(borrow, default)]
    pub(crate) id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) model: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) provider: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) usage: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) choices: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) error: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) message: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) delta: Option<&'a RawValue>,
    #[serde(rename = "type", borrow, default)]
    pub(crate) kind: Option<Cow<'a, str>>,
}

impl<'a> Top<'a> {
    /// Parses the top-level object of `body`; `None` if it is not a JSON object.
    pub(crate) fn parse(body: &'a [u8]) -> Option<Top<'a>> {
        serde_json::from_slice(body).ok()
    }
}

/// The byte range of `raw` inside `base` (which it borrows from).
pub(crate) fn span(base: &[u8], raw: &RawValue) -> Option<Range<usize>> {
    let start = (raw.get().as_ptr() as usize).checked_sub(base.as_ptr() as usize)?;
    let end = start + raw.get().len();
    (end <= base.len()).then_some(start..end)
}

/// The span from the member's key (`"id"`) to the end of its value, if the bytes before the value are
/// `"<key>"` `:` (whitespace allowed).
pub(crate) fn member_span(base: &[u8], key: &str, value: Range<usize>) -> Range<usize> {
    let before = &base[..value.start];
    let trimmed = trim_end(before);
    if let Some(t) = trimmed.strip_suffix(b":") {
        let t = trim_end(t);
        let quoted_len = key.len() + 2;
        if t.len() >= quoted_len {
            let k = &t[t.len() - quoted_len..];
            if k[0] == b'"' && &k[1..=key.len()] == key.as_bytes() && k[quoted_len - 1] == b'"' {
                return t.len() - quoted_len..value.end;
            }
        }
    }
    value
}

fn trim_end(b: &[u8]) -> &[u8] {
    let mut end = b.len();
    while end > 0 && b[end - 1].is_ascii_whitespace() {
        end -= 1;
    }
    &b[..end]
}

/// A JSON string literal for `s`.
pub(crate) fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| String::from("\"\""))
}

/// `"cost":…,"cost_details":{…}` for `cost`, exact decimals written as JSON numbers.
pub(crate) fn cost_members(cost: &Cost) -> String {
    let mut s = String::with_capacity(160);
    let _ = write!(
        s,
        "\"cost\":{},\"cost_details\":{{\"upstream_inference_cost\":null,\
         \"upstream_inference_prompt_cost\":{},\"upstream_inference_completions_cost\":{}}}",
        cost.total, cost.prompt, cost.completion
    );
    s
}

/// The edit that adds the cost members to the usage object at `usage` (its span in `base`): an
/// insertion before the closing brace, or — when the upstream already sent a `cost` — a replacement
/// of the usage object by a re-serialised copy with the cost members set.
pub(crate) fn usage_edit(
    base: &[u8],
    usage: Range<usize>,
    wire: &WireUsage,
    cost: &Cost,
) -> Option<(Range<usize>, Vec<u8>)> {
    let obj = base.get(usage.clone())?;
    if obj.first() != Some(&b'{') || obj.last() != Some(&b'}') {
        return None;
    }
    let members = cost_members(cost);
    if wire.cost.is_some() {
        let mut map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(obj).ok()?;
        let extra: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&format!("{{{members}}}")).ok()?;
        map.extend(extra);
        return Some((usage, serde_json::to_vec(&map).ok()?));
    }
    insert_members(base, usage, &[members])
}

/// The edit that inserts `members` (each `"key":value`) before the closing brace of the object
/// at `span` in `base`, with the commas it needs. `None` if `span` is not an object or there is
/// nothing to insert.
fn insert_members(
    base: &[u8],
    span: Range<usize>,
    members: &[String],
) -> Option<(Range<usize>, Vec<u8>)> {
    let obj = base.get(span.clone())?;
    if obj.len() < 2 || obj.first() != Some(&b'{') || obj.last() != Some(&b'}') {
        return None;
    }
    if members.is_empty() {
        return None;
    }
    let mut first = obj[1..obj.len() - 1]
        .iter()
        .all(|b| b.is_ascii_whitespace());
    let mut ins = Vec::with_capacity(members.iter().map(|m| m.len() + 1).sum());
    for m in members {
        if !std::mem::take(&mut first) {
            ins.push(b',');
        }
        ins.extend_from_slice(m.as_bytes());
    }
    let at = span.end - 1;
    Some((at..at, ins))
}

/// The edit that completes an Anthropic usage object at `usage` (its span in `base`): the input
/// side it lacks (a `message_delta` may carry only `output_tokens`; the counts come from
/// `message_start`, merged into `tokens`) and `cost`, inserted before the closing brace. Nothing
/// is replaced: an upstream `cost` is kept.
pub(crate) fn anthropic_usage_edit(
    base: &[u8],
    usage: Range<usize>,
    wire: &WireUsage,
    tokens: &TokenUsage,
    cost: &Cost,
) -> Option<(Range<usize>, Vec<u8>)> {
    let mut members = Vec::with_capacity(4);
    let (input, read, write) = wire.anthropic_input();
    if input.is_none() {
        let n = tokens
            .prompt
            .saturating_sub(tokens.cached)
            .saturating_sub(tokens.cache_write);
        members.push(format!("\"input_tokens\":{n}"));
    }
    if read.is_none() && tokens.cached > 0 {
        members.push(format!("\"cache_read_input_tokens\":{}", tokens.cached));
    }
    if write.is_none() && tokens.cache_write > 0 {
        members.push(format!(
            "\"cache_creation_input_tokens\":{}",
            tokens.cache_write
        ));
    }
    if wire.cost.is_none() {
        members.push(format!("\"cost\":{}", cost.total));
    }
    insert_members(base, usage, &members)
}

/// Applies non-overlapping `edits` (range → replacement) to `base`.
pub(crate) fn apply(base: &[u8], edits: &mut [(Range<usize>, Vec<u8>)]) -> Vec<u8> {
    edits.sort_by_key(|(r, _)| (r.start, r.end));
    let extra: usize = edits.iter().map(|(_, v)| v.len()).sum();
    let mut out = Vec::with_capacity(base.len() + extra);
    let mut at = 0;
    for (r, v) in edits.iter() {
        if r.start < at || r.end > base.len() {
            continue;
        }
        out.extend_from_slice(&base[at..r.start]);
        out.extend_from_slice(v);
        at = r.end;
    }
    out.extend_from_slice(&base[at..]);
    out
}

/// What a non-streamed body's `choices` say: the first finish reason, and the bytes of content.
#[derive(Debug, Default)]
pub(crate) struct ChoicesSummary {
    pub(crate) finish_reason: Option<String>,
    pub(crate) content_bytes: u64,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(borrow, default)]
    finish_reason: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    message: Option<Message<'a>>,
    #[serde(borrow, default)]
    delta: Option<Message<'a>>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
    #[serde(borrow, default)]
    reasoning: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tool_calls: Option<&'a RawValue>,
}

/// Reads `choices` leniently (an unexpected shape gives an empty summary).
pub(crate) fn choices(raw: &RawValue) -> ChoicesSummary {
    let list: Vec<Choice<'_>> = serde_json::from_str(raw.get()).unwrap_or_default();
    let mut s = ChoicesSummary::default();
    for c in &list {
        if s.finish_reason.is_none() {
            s.finish_reason = c.finish_reason.as_deref().map(str::to_owned);
        }
        for m in c.message.iter().chain(c.delta.iter()) {
            for r in [m.content, m.reasoning, m.tool_calls].into_iter().flatten() {
                if r.get() != "null" {
                    s.content_bytes += r.get().len() as u64;
                }
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_and_splice() {
        let body = br#"{"id" : "x1", "model":"m", "usage":{"prompt_tokens":1}}"#;
        let top = Top::parse(body).unwrap();
        let id = span(body, top.id.unwrap()).unwrap();
        assert_eq!(&body[id.clone()], b"\"x1\"");
        let m = member_span(body, "id", id.clone());
        assert_eq!(&body[m], br#""id" : "x1""#);
        let mut edits = vec![(id, b"\"gen\"".to_vec())];
        let out = apply(body, &mut edits);
        assert_eq!(
            out,
            br#"{"id" : "gen", "model":"m", "usage":{"prompt_tokens":1}}"#
        );
    }
}
