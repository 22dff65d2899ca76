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
    pub(crate) service_tier: Option<&'a RawValue>,
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

    /// Parses a complete response body and summarises its `choices` in the same pass; `None` if it
    /// is not a JSON object. The result is the one of [`Top::parse`] followed by [`choices`] (the
    /// returned `Top` has no `choices`: the summary replaces them).
    pub(crate) fn parse_with_choices(body: &'a [u8]) -> Option<(Top<'a>, ChoicesSummary)> {
        // One pass when `choices` has the expected shape. Otherwise `choices` must be read
        // leniently, as `choices` does: parse again the slow way.
        if let Ok(t) = serde_json::from_slice::<TopWithChoices<'a>>(body) {
            let summary = summarize(t.choices.as_deref().unwrap_or_default());
            let top = Top {
                id: t.id,
                model: t.model,
                provider: t.provider,
                service_tier: t.service_tier,
                usage: t.usage,
                choices: None,
                error: t.error,
                message: t.message,
                delta: t.delta,
                kind: t.kind,
            };
            return Some((top, summary));
        }
        let mut top = Top::parse(body)?;
        let summary = top.choices.take().map(choices).unwrap_or_default();
        Some((top, summary))
    }
}

/// [`Top`] with `choices` read as it goes (same members, so the same bodies are accepted when
/// `choices` has the expected shape).
#[derive(Deserialize)]
struct TopWithChoices<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(borrow, default)]
    provider: Option<&'a RawValue>,
    #[serde(borrow, default)]
    service_tier: Option<&'a RawValue>,
    #[serde(borrow, default)]
    usage: Option<&'a RawValue>,
    #[serde(borrow, default)]
    choices: Option<Vec<Choice<'a>>>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
    #[serde(borrow, default)]
    message: Option<&'a RawValue>,
    #[serde(borrow, default)]
    delta: Option<&'a RawValue>,
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
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
    /// A legacy completions choice's text.
    #[serde(borrow, default)]
    text: Option<&'a RawValue>,
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
    summarize(&list)
}

fn summarize(list: &[Choice<'_>]) -> ChoicesSummary {
    let mut s = ChoicesSummary::default();
    for c in list {
        if s.finish_reason.is_none() {
            s.finish_reason = c.finish_reason.as_deref().map(str::to_owned);
        }
        if let Some(t) = c.text.filter(|t| t.get() != "null") {
            s.content_bytes += t.get().len() as u64;
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
    use proptest::prelude::*;

    use super::*;

    /// Bodies whose `choices` may or may not have the expected shape (and some that are not
    /// objects at all).
    fn body() -> impl Strategy<Value = String> {
        let choice = prop_oneof![
            Just(
                r#"{"index":0,"message":{"role":"assistant","content":"hi \"there\""},"finish_reason":"stop"}"#
            ),
            Just(r#"{"delta":{"content":null,"tool_calls":[{"id":"t"}]},"finish_reason":null}"#),
            Just(r#"{"message":{"reasoning":"r","content":"c"}}"#),
            Just(r#"{"finish_reason":3}"#),
            Just(r#"{"message":"text"}"#),
            Just(r#"7"#),
        ];
        let choices = prop_oneof![
            proptest::collection::vec(choice, 0..4).prop_map(|c| format!("[{}]", c.join(","))),
            Just("null".to_string()),
            Just("{}".to_string()),
        ];
        let member = prop_oneof![
            choices.prop_map(|c| format!(r#""choices":{c}"#)),
            Just(r#""id":"chatcmpl-1""#.to_string()),
            Just(r#""usage":{"prompt_tokens":1}"#.to_string()),
            Just(r#""type":"message""#.to_string()),
            Just(r#""type":5"#.to_string()),
            Just(r#""error":null"#.to_string()),
            Just(r#""other":[1,{"a":"b"}]"#.to_string()),
        ];
        prop_oneof![
            proptest::collection::vec(member, 0..5).prop_map(|m| format!("{{{}}}", m.join(","))),
            Just("[]".to_string()),
            Just(r#"{"choices":["#.to_string()),
        ]
    }

    proptest! {
        #[test]
        fn one_pass_parse_is_parse_then_choices(b in body()) {
            let slow = Top::parse(b.as_bytes()).map(|t| {
                let s = t.choices.map(choices).unwrap_or_default();
                (format!("{:?}", Top { choices: None, ..t }), s.finish_reason, s.content_bytes)
            });
            let fast = Top::parse_with_choices(b.as_bytes())
                .map(|(t, s)| (format!("{t:?}"), s.finish_reason, s.content_bytes));
            prop_assert_eq!(fast, slow);
        }
    }

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

    #[test]
    fn legacy_text_is_content() {
        let raw: Box<RawValue> =
            serde_json::from_str(r#"[{"index":0,"text":"abcd","finish_reason":"stop"}]"#).unwrap();
        let s = choices(&raw);
        assert_eq!(s.content_bytes, 6);
        assert_eq!(s.finish_reason.as_deref(), Some("stop"));
    }
}
