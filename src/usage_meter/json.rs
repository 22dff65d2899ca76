//! Top-level spans of a JSON response object, and byte splices that edit it without re-serialising.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::cost::{finish_reason, finish_reason_bytes, Cost, FinishReason, TokenUsage, WireUsage};
use crate::catalog::Usd;
use crate::route::{plain_json_str, skim, Piece, Pieces, ShortString};

/// A raw JSON value borrowed from the body (what serde_json's `RawValue` gives, as a `Copy`
/// handle that the skimmer of [`Top::parse_with_choices_into`] can make too), kept as bytes: the
/// skimmer and the edits need its place and bytes only, so its text is checked only when read.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Raw<'a>(&'a [u8]);

impl<'a> Raw<'a> {
    /// The raw value `bytes` (JSON text, as the body has it).
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Raw(bytes)
    }

    /// The value's JSON bytes.
    pub(crate) fn bytes(self) -> &'a [u8] {
        self.0
    }

    /// The value's JSON text. A raw value is made from text (serde's) or from a value the skimmer
    /// accepted (UTF-8, see [`skim`]); other bytes read as the empty text, which no reader takes.
    pub(crate) fn get(self) -> &'a str {
        std::str::from_utf8(self.0).unwrap_or_default()
    }

    /// The value as serde reads a `String` from it (`None` for `null` or another type), held
    /// inline when short: a string without escapes is copied as it is, serde unescapes the others.
    pub(crate) fn string(self) -> Option<ShortString> {
        match skim::plain_bytes(self.0) {
            Some(s) => s
                .and_then(|s| std::str::from_utf8(s).ok())
                .map(ShortString::from),
            None => serde_json::from_str(self.get()).ok(),
        }
    }

    /// Whether the value is `null`.
    pub(crate) fn is_null(self) -> bool {
        self.0 == b"null"
    }
}

impl fmt::Debug for Raw<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Raw")
            .field(&String::from_utf8_lossy(self.0))
            .finish()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Raw<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <&'de RawValue>::deserialize(d).map(|r| Raw(r.get().as_bytes()))
    }
}

/// The members of a chat-completion object (or chunk, or Anthropic event) the meter reads, as raw
/// values borrowing from the body: their byte spans are where edits go.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Top<'a> {
    #[serde(borrow, default)]
    pub(crate) id: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub(crate) model: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub(crate) provider: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub(crate) service_tier: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub(crate) usage: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub(crate) choices: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub(crate) error: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub(crate) message: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub(crate) delta: Option<Raw<'a>>,
    #[serde(rename = "type", borrow, default)]
    pub(crate) kind: Option<Cow<'a, str>>,
}

impl<'a> Top<'a> {
    /// Parses the top-level object of `body`; `None` if it is not a JSON object.
    pub(crate) fn parse(body: &'a [u8]) -> Option<Top<'a>> {
        serde_json::from_slice(body).ok()
    }

    /// [`Top::parse_with_choices_into`], returned (the tests' form).
    #[cfg(test)]
    pub(crate) fn parse_with_choices(body: &'a [u8]) -> Option<(Top<'a>, ChoicesSummary)> {
        let mut read = Default::default();
        Top::parse_with_choices_into(body, &mut read).then_some(read)
    }

    /// The top-level members of `body` without reading its `choices`: the `Top` of
    /// [`Top::parse_with_choices_into`] (the same for every body:
    /// `members_parse_is_parse_with_choices`), for a reader that wants the members only (a
    /// stream's first event, learned from). The skimmer passes over `choices` as over any other
    /// value.
    pub(crate) fn parse_members(body: &'a [u8]) -> Option<Top<'a>> {
        Top::parse_members_usage(body).map(|(top, _)| top)
    }

    /// [`Top::parse_members`], with the `usage` counts when the skimmer read them on the way
    /// (`None`: read them from `Top::usage`; the same counts:
    /// `members_parse_is_parse_with_choices`).
    /// A stream event's reading: the stream path never looks at an event's `choices`.
    pub(crate) fn parse_members_usage(body: &'a [u8]) -> Option<(Top<'a>, Option<WireUsage>)> {
        let mut read: (Top<'a>, ChoicesSummary) = Default::default();
        if skimmed(body, &mut read, false).is_some() {
            return Some((read.0, read.1.usage));
        }
        let mut top = Top::parse(body)?;
        top.choices = None;
        Some((top, None))
    }

    /// Parses a complete response body and summarises its `choices` in the same pass, into
    /// `read`, which must be the default one (filled in place: a returned result would be moved, a
    /// few hundred bytes, more than once); false, with `read` left as it may be, if the body is not
    /// a JSON object. The result is the one of [`Top::parse`] followed by [`choices`] (the `Top`
    /// has no `choices`: the summary replaces them).
    pub(crate) fn parse_with_choices_into(
        body: &'a [u8],
        read: &mut (Top<'a>, ChoicesSummary),
    ) -> bool {
        // The skimmer first: a well-formed body of the usual shape, split without serde.
        if skimmed(body, read, true).is_some() {
            return true;
        }
        match Top::deserialize_with_choices(body) {
            Some(r) => {
                *read = r;
                true
            }
            None => false,
        }
    }

    /// [`Top::parse_with_choices_into`] by serde_json.
    fn deserialize_with_choices(body: &'a [u8]) -> Option<(Top<'a>, ChoicesSummary)> {
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

/// The index of the member of [`Top`] named `key` (the bit of `seen` in [`skimmed`]). A `match`
/// on literals: each compare has a constant length, made inline after the length check.
fn top_key(key: &[u8]) -> Option<u32> {
    Some(match key {
        b"id" => 0,
        b"model" => 1,
        b"provider" => 2,
        b"service_tier" => 3,
        b"usage" => 4,
        b"choices" => 5,
        b"error" => 6,
        b"message" => 7,
        b"delta" => 8,
        b"type" => 9,
        _ => return None,
    })
}

/// The index of the member of a choice named `key`, if [`summarize`] reads it.
fn choice_key(key: &[u8]) -> Option<u32> {
    Some(match key {
        b"finish_reason" => 0,
        b"message" => 1,
        b"delta" => 2,
        b"text" => 3,
        _ => return None,
    })
}

/// The index of the member of a choice's message (or delta) named `key`, if its bytes count as
/// content.
fn message_key(key: &[u8]) -> Option<u32> {
    Some(match key {
        b"content" => 0,
        b"reasoning" => 1,
        b"tool_calls" => 2,
        _ => return None,
    })
}

/// [`Top::parse_with_choices_into`] by the [`skim`]mer, without serde: `None` when the body is not
/// UTF-8, not well-formed to the skimmer, or not of the usual shape (a duplicate member, an
/// escaped `type` or finish reason, `choices` not an array of objects, …) — the serde path then
/// reads it, so the result is always the serde path's. The result is written into `read`, which
/// must be the default one (and is left partly written when this gives up). Without
/// `with_choices`, `choices` is skimmed past as any value and not summarised (the summary's
/// finish reason and content bytes stay empty).
fn skimmed<'a>(
    body: &'a [u8],
    read: &mut (Top<'a>, ChoicesSummary),
    with_choices: bool,
) -> Option<()> {
    // No UTF-8 check of the whole body: the skimmer accepts only UTF-8 (see `skim`).
    let b = body;
    let start = skim::ws(b, 0);
    if b.get(start) != Some(&b'{') {
        return None;
    }
    let (top, summary) = read;
    let mut seen = 0u16;
    let end = skim::members(b, start, 0, |key, at| {
        let Some(k) = top_key(key) else {
            return skim::value(b, at, 1);
        };
        if seen & (1 << k) != 0 {
            return None;
        }
        seen |= 1 << k;
        if k == 5 {
            return if with_choices {
                skim_choices(b, at, summary)
            } else {
                skim::value(b, at, 1)
            };
        }
        // The usage's counts are read as it is skimmed, when the hand reader can.
        let wire = (k == 4)
            .then(|| WireUsage::skim_into(b, at, 1, summary.usage.insert(WireUsage::default())))
            .flatten();
        let end = match wire {
            Some(end) => end,
            None => {
                summary.usage = None;
                skim::value(b, at, 1)?
            }
        };
        let raw = &b[at..end];
        if k == 9 {
            top.kind = match skim::plain_bytes(raw)? {
                Some(s) => Some(Cow::Borrowed(std::str::from_utf8(s).ok()?)),
                None => None,
            };
            return Some(end);
        }
        let slot = match k {
            0 => &mut top.id,
            1 => &mut top.model,
            2 => &mut top.provider,
            3 => &mut top.service_tier,
            4 => &mut top.usage,
            6 => &mut top.error,
            7 => &mut top.message,
            _ => &mut top.delta,
        };
        *slot = (raw != b"null").then_some(Raw(raw));
        Some(end)
    })?;
    (skim::ws(b, end) == b.len()).then_some(())
}

/// `choices` at `at` in `b`: `null`, or an array of choice objects summarised into `summary`.
fn skim_choices(b: &[u8], at: usize, summary: &mut ChoicesSummary) -> Option<usize> {
    match b.get(at)? {
        b'n' => skim::value(b, at, 1),
        b'[' => skim::elements(b, at, 1, |i| skim_choice(b, i, summary)),
        _ => None,
    }
}

/// One choice object at `at`: its finish reason (the first one of the list wins) and content
/// bytes go to `summary`, as [`summarize`] does.
fn skim_choice(b: &[u8], at: usize, summary: &mut ChoicesSummary) -> Option<usize> {
    if b.get(at) != Some(&b'{') {
        return None;
    }
    let (mut seen, mut finish, mut content) = (0u8, None, 0);
    let end = skim::members(b, at, 2, |key, i| {
        let Some(k) = choice_key(key) else {
            return skim::value(b, i, 3);
        };
        if seen & (1 << k) != 0 {
            return None;
        }
        seen |= 1 << k;
        match (k, b.get(i)?) {
            (0, _) => {
                let end = skim::value(b, i, 3)?;
                finish = skim::plain_bytes(&b[i..end])?;
                Some(end)
            }
            (_, b'n') => skim::value(b, i, 3),
            // A legacy completions choice's text counts whole, as `summarize` counts it.
            (3, b'"') => {
                let end = skim::value(b, i, 3)?;
                content += (end - i) as u64;
                Some(end)
            }
            (1 | 2, b'{') => skim_message(b, i, &mut content),
            _ => None,
        }
    })?;
    if summary.finish_reason.is_none() {
        summary.finish_reason = match finish {
            Some(f) => Some(finish_reason_bytes(f)?),
            None => None,
        };
    }
    summary.content_bytes += content;
    Some(end)
}

/// A choice's message (or delta) object at `at`: the bytes of its non-null `content`,
/// `reasoning` and `tool_calls` are added to `content`.
fn skim_message(b: &[u8], at: usize, content: &mut u64) -> Option<usize> {
    let mut seen = 0u8;
    skim::members(b, at, 3, |key, i| {
        let end = skim::value(b, i, 4)?;
        if let Some(k) = message_key(key) {
            if seen & (1 << k) != 0 {
                return None;
            }
            seen |= 1 << k;
            let raw = &b[i..end];
            if raw != b"null" {
                *content += raw.len() as u64;
            }
        }
        Some(end)
    })
}

/// [`Top`] with `choices` read as it goes (same members, so the same bodies are accepted when
/// `choices` has the expected shape).
#[derive(Deserialize)]
struct TopWithChoices<'a> {
    #[serde(borrow, default)]
    id: Option<Raw<'a>>,
    #[serde(borrow, default)]
    model: Option<Raw<'a>>,
    #[serde(borrow, default)]
    provider: Option<Raw<'a>>,
    #[serde(borrow, default)]
    service_tier: Option<Raw<'a>>,
    #[serde(borrow, default)]
    usage: Option<Raw<'a>>,
    #[serde(borrow, default)]
    choices: Option<Vec<Choice<'a>>>,
    #[serde(borrow, default)]
    error: Option<Raw<'a>>,
    #[serde(borrow, default)]
    message: Option<Raw<'a>>,
    #[serde(borrow, default)]
    delta: Option<Raw<'a>>,
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
}

/// The byte range of `raw` inside `base` (which it borrows from).
pub(crate) fn span(base: &[u8], raw: Raw<'_>) -> Option<Range<usize>> {
    let start = (raw.0.as_ptr() as usize).checked_sub(base.as_ptr() as usize)?;
    let end = start + raw.0.len();
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
    // Written as it is when it needs no escaping, without the serializer.
    if plain_json_str(s) {
        let mut q = String::with_capacity(s.len() + 2);
        q.push('"');
        q.push_str(s);
        q.push('"');
        return q;
    }
    serde_json::to_string(s).unwrap_or_else(|_| String::from("\"\""))
}

/// The fixed text of [`CostMembers`], around its three amounts.
const COST_TEXT: [&[u8]; 4] = [
    b"\"cost\":",
    b",\"cost_details\":{\"upstream_inference_cost\":null,\"upstream_inference_prompt_cost\":",
    b",\"upstream_inference_completions_cost\":",
    b"}",
];

/// Room for the [`CostMembers`] of any cost, and for the padding after the last amount's text
/// (each amount's text is copied with the fixed size [`Usd::TEXT_PADDED`]).
const COST_MEMBERS: usize = COST_TEXT[0].len()
    + COST_TEXT[1].len()
    + COST_TEXT[2].len()
    + COST_TEXT[3].len()
    + 3 * Usd::TEXT_MAX
    + Usd::TEXT_PADDED;

/// `"cost":…,"cost_details":{…}` for a cost, exact decimals written as JSON numbers, on the stack
/// (no allocation: an edit borrows the bytes as they are).
pub(crate) struct CostMembers {
    buf: [u8; COST_MEMBERS],
    len: usize,
}

impl CostMembers {
    /// The members for `cost`.
    pub(crate) fn new(cost: &Cost) -> Self {
        let mut m = CostMembers {
            buf: [0; COST_MEMBERS],
            len: 0,
        };
        m.push(COST_TEXT[0]);
        m.amount(cost.total);
        m.push(COST_TEXT[1]);
        m.amount(cost.prompt);
        m.push(COST_TEXT[2]);
        m.amount(cost.completion);
        m.push(COST_TEXT[3]);
        m
    }

    /// Appends `b` (always room: the buffer holds the fixed text and three amounts of any size).
    #[inline]
    fn push(&mut self, b: &[u8]) {
        if let Some(dst) = self.buf.get_mut(self.len..self.len + b.len()) {
            dst.copy_from_slice(b);
            self.len += b.len();
        }
    }

    /// Appends the text of `usd`: its padded text copied whole (a copy of a fixed size), the
    /// padding then overwritten by what follows.
    #[inline]
    fn amount(&mut self, usd: Usd) {
        let t = usd.plain();
        let padded = t.padded();
        if let Some(dst) = self.buf.get_mut(self.len..self.len + padded.len()) {
            dst.copy_from_slice(padded);
            self.len += t.len();
        }
    }

    /// The members' JSON text.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// The splice that adds the cost `members` to the usage object at `usage` (its span in `base`):
/// an insertion before the closing brace (the comma and the members as pieces, not joined), or —
/// when the upstream already sent a `cost` — a replacement of the usage object by a re-serialised
/// copy with the cost members set, which it writes into `object`.
pub(crate) fn usage_splice<'m>(
    base: &[u8],
    usage: Range<usize>,
    wire: &WireUsage,
    members: &'m CostMembers,
    object: &'m mut Vec<u8>,
) -> Option<Splice<'m>> {
    let obj = base.get(usage.clone())?;
    if obj.first() != Some(&b'{') || obj.last() != Some(&b'}') {
        return None;
    }
    if wire.cost.is_some() {
        let mut map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(obj).ok()?;
        let extra: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&[b"{", members.bytes(), b"}"].concat()).ok()?;
        map.extend(extra);
        *object = serde_json::to_vec(&map).ok()?;
        let object: &'m [u8] = object;
        return Some((usage, Pieces::new([Piece::Raw(object)])));
    }
    let (at, comma) = insertion_point(base, usage)?;
    let members = Piece::Raw(members.bytes());
    let pieces = if comma {
        Pieces::new([Piece::Raw(b","), members])
    } else {
        Pieces::new([members])
    };
    Some((at..at, pieces))
}

/// Where members go in the object at `span` in `base` (before its closing brace), and whether
/// they need a comma before them (the object has members). `None` if `span` is not an object.
fn insertion_point(base: &[u8], span: Range<usize>) -> Option<(usize, bool)> {
    let obj = base.get(span.clone())?;
    if obj.len() < 2 || obj.first() != Some(&b'{') || obj.last() != Some(&b'}') {
        return None;
    }
    let empty = obj[1..obj.len() - 1]
        .iter()
        .all(|b| b.is_ascii_whitespace());
    Some((span.end - 1, !empty))
}

/// The edit that inserts `members` (each `"key":value`) before the closing brace of the object
/// at `span` in `base`, with the commas it needs. `None` if `span` is not an object or there is
/// nothing to insert.
fn insert_members(
    base: &[u8],
    span: Range<usize>,
    members: &[String],
) -> Option<(Range<usize>, Vec<u8>)> {
    let (at, mut comma) = insertion_point(base, span)?;
    if members.is_empty() {
        return None;
    }
    let mut ins = Vec::with_capacity(members.iter().map(|m| m.len() + 1).sum());
    for m in members {
        if std::mem::replace(&mut comma, true) {
            ins.push(b',');
        }
        ins.extend_from_slice(m.as_bytes());
    }
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

/// The most pieces a [`Splice`] has (a model value: model, provider and tier members).
pub(crate) const PIECES: usize = 5;

/// A byte range of a body and the pieces that replace it.
pub(crate) type Splice<'a> = (Range<usize>, Pieces<'a, PIECES>);

/// What a non-streamed body's `choices` say: the first finish reason, and the bytes of content.
#[derive(Debug, Default)]
pub(crate) struct ChoicesSummary {
    pub(crate) finish_reason: Option<FinishReason>,
    pub(crate) content_bytes: u64,
    /// The `usage` object's counts when the skimmer read them on the way (else `None`: read
    /// them from `Top::usage`).
    pub(crate) usage: Option<WireUsage>,
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
    content: Option<Raw<'a>>,
    #[serde(borrow, default)]
    reasoning: Option<Raw<'a>>,
    #[serde(borrow, default)]
    tool_calls: Option<Raw<'a>>,
}

/// Reads `choices` leniently (an unexpected shape gives an empty summary).
pub(crate) fn choices(raw: Raw<'_>) -> ChoicesSummary {
    let list: Vec<Choice<'_>> = serde_json::from_str(raw.get()).unwrap_or_default();
    summarize(&list)
}

fn summarize(list: &[Choice<'_>]) -> ChoicesSummary {
    let mut s = ChoicesSummary::default();
    for c in list {
        if s.finish_reason.is_none() {
            s.finish_reason = c
                .finish_reason
                .as_deref()
                .map(|f| finish_reason(Cow::Borrowed(f)));
        }
        if let Some(t) = c.text.filter(|t| t.get() != "null") {
            s.content_bytes += t.get().len() as u64;
        }
        for m in c.message.iter().chain(c.delta.iter()) {
            for r in [m.content, m.reasoning, m.tool_calls].into_iter().flatten() {
                if !r.is_null() {
                    s.content_bytes += r.bytes().len() as u64;
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
    use crate::route::splice;

    /// The skimmer's reading of `body`, if it reads it.
    fn skimmed(body: &[u8]) -> Option<(Top<'_>, ChoicesSummary)> {
        let mut read = Default::default();
        super::skimmed(body, &mut read, true).map(|()| read)
    }

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
            Just(r#"{"index":0,"text":"once \"upon\"","finish_reason":"length"}"#),
            Just(r#"{"text":null}"#),
            Just(r#"{"text":{"a":1}}"#),
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

    /// Bodies of the usual shape with what the skimmer must get right or give up on: escapes,
    /// nulls, nesting, whitespace, duplicates, numbers.
    fn answer() -> impl Strategy<Value = String> {
        let text = prop_oneof![
            Just(r#""plain""#),
            Just(r#""with \"escape\" \u00e9""#),
            Just(r#""\ud83d\ude00""#),
            Just("null"),
            Just("12.5e-3"),
            Just("[1, {\"a\": [true, false]}]"),
            Just(r#"{"content":"x","content":"y"}"#),
            Just(r#"{"prompt_tokens":3, "completion_tokens_details" : {"reasoning_tokens":1}}"#),
            Just(r#"{"prompt_tokens":3,"prompt_tokens":4}"#),
        ];
        let message = (text.clone(), text.clone()).prop_map(|(c, r)| {
            format!(r#"{{"role":"assistant","content":{c}, "reasoning" :{r}}}"#)
        });
        let choice = (message, text.clone(), prop::bool::ANY).prop_map(|(m, f, delta)| {
            let key = if delta { "delta" } else { "message" };
            format!(r#"{{"index":0,"{key}":{m},"finish_reason":{f}}}"#)
        });
        let member = prop_oneof![
            proptest::collection::vec(choice, 0..3)
                .prop_map(|c| format!(r#""choices":[{}]"#, c.join(" , "))),
            text.clone().prop_map(|t| format!(r#""id":{t}"#)),
            text.clone().prop_map(|t| format!(r#""type":{t}"#)),
            text.prop_map(|t| format!(r#""usage":{t}"#)),
            Just(r#""model" : "m""#.to_string()),
            Just(r#""x\u0069d":"y""#.to_string()),
        ];
        proptest::collection::vec(member, 0..5).prop_map(|m| format!("\n{{ {} }}\t", m.join(",")))
    }

    proptest! {
        /// Splices write what `apply` writes with the pieces joined (overlaps skipped alike).
        #[test]
        fn splice_is_apply(
            base in "[a-z{}\"]{0,24}",
            edits in proptest::collection::vec((0usize..30, 0usize..4, "[a-z\"\\\\]{0,3}", any::<bool>()), 0..5),
        ) {
            let mut splices: Vec<Splice<'_>> = Vec::new();
            let mut joined = Vec::new();
            for (start, len, text, quoted) in &edits {
                let r = *start..start + len;
                let p = if *quoted { Piece::Quoted(text) } else { Piece::Raw(text.as_bytes()) };
                let v = if *quoted { quote(text).into_bytes() } else { text.clone().into_bytes() };
                splices.push((r.clone(), Pieces::new([Piece::Raw(b","), p])));
                joined.push((r, [b",".as_slice(), &v].concat()));
            }
            prop_assert_eq!(splice(base.as_bytes(), &mut splices), apply(base.as_bytes(), &mut joined));
        }

        /// A raw value's string is serde's reading of its text (and its text is the text), inline
        /// or not (up to 80 characters: the inline capacity is 40 bytes).
        #[test]
        fn raw_string_is_serde(
            s in "[a-z\"\\\\\n\u{e9}\u{1F600}]{0,80}",
            other in prop_oneof![Just("null"), Just("12"), Just("[\"a\"]"), Just("{}")],
        ) {
            let quoted = serde_json::to_string(&s).unwrap();
            for raw in [quoted.as_str(), other] {
                let r = Raw::new(raw.as_bytes());
                prop_assert_eq!(r.get(), raw);
                let (got, want) = (r.string(), serde_json::from_str::<String>(raw).ok());
                prop_assert_eq!(got.as_deref(), want.as_deref());
            }
        }

        /// The quoting short cut writes what serde_json writes.
        #[test]
        fn quote_is_serde(s in "[a-z/\\-\"\\\\\n\u{1}\u{7f}\u{e9}\u{2028}]{0,12}") {
            prop_assert_eq!(quote(&s), serde_json::to_string(&s).unwrap());
        }

        /// The cost members written on the stack are the ones `Display` formats, for any amounts
        /// (up to a `Decimal`'s largest mantissa and scale, either sign).
        #[test]
        fn cost_members_are_display(
            amounts in proptest::collection::vec((any::<i128>(), 0u32..=28, 0u32..=96), 3),
        ) {
            let usd = |(m, scale, bits): (i128, u32, u32)| {
                let m = m % (1i128 << bits).max(2);
                crate::catalog::Usd::from_decimal(rust_decimal::Decimal::from_i128_with_scale(m, scale))
            };
            let cost = Cost {
                total: usd(amounts[0]),
                prompt: usd(amounts[1]),
                completion: usd(amounts[2]),
            };
            let display = format!(
                "\"cost\":{},\"cost_details\":{{\"upstream_inference_cost\":null,\
                 \"upstream_inference_prompt_cost\":{},\"upstream_inference_completions_cost\":{}}}",
                cost.total, cost.prompt, cost.completion
            );
            let members = CostMembers::new(&cost);
            prop_assert_eq!(std::str::from_utf8(members.bytes()), Ok(display.as_str()));
        }

        /// Whenever the skimmer reads a body, it reads what serde does.
        #[test]
        fn skimmer_is_serde(b in prop_oneof![answer(), body()]) {
            if let Some((top, summary)) = skimmed(b.as_bytes()) {
                let (t, s) = Top::deserialize_with_choices(b.as_bytes()).expect("serde reads it too");
                prop_assert_eq!(format!("{top:?}"), format!("{t:?}"));
                prop_assert_eq!(summary.finish_reason, s.finish_reason);
                prop_assert_eq!(summary.content_bytes, s.content_bytes);
                // Usage read on the way is serde's reading of it.
                if let Some(w) = summary.usage {
                    let raw = t.usage.expect("a usage object").get();
                    let serde = serde_json::from_str::<WireUsage>(raw).expect("serde reads it");
                    prop_assert_eq!(format!("{w:?}"), format!("{serde:?}"));
                }
            }
        }

        /// The members-only reading is the one-pass reading's `Top`, whoever reads the body
        /// (the skimmer, serde), and the members-only skimmer reads what serde does.
        #[test]
        fn members_parse_is_parse_with_choices(b in prop_oneof![answer(), body()]) {
            let members = Top::parse_members(b.as_bytes()).map(|t| format!("{t:?}"));
            let full = Top::parse_with_choices(b.as_bytes()).map(|(t, _)| format!("{t:?}"));
            prop_assert_eq!(members, full);
            // The usage counts, as the stream path takes them (the skimmer's, else read anew).
            let counts = |t: &Top<'_>, w: Option<WireUsage>| {
                format!("{:?}", w.or_else(|| WireUsage::read(t.usage?.get())))
            };
            let members = Top::parse_members_usage(b.as_bytes()).map(|(t, w)| counts(&t, w));
            let full = Top::parse_with_choices(b.as_bytes()).map(|(t, s)| counts(&t, s.usage));
            prop_assert_eq!(members, full);
            let mut read = Default::default();
            if super::skimmed(b.as_bytes(), &mut read, false).is_some() {
                let serde = Top::parse(b.as_bytes()).expect("serde reads it too");
                let serde = Top { choices: None, ..serde };
                prop_assert_eq!(format!("{:?}", read.0), format!("{serde:?}"));
            }
        }

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

    /// The longest amounts fit: a `Decimal`'s extremes at every scale.
    #[test]
    fn cost_members_fit_the_extremes() {
        use rust_decimal::Decimal;
        for scale in 0..=28 {
            for m in [Decimal::MAX.mantissa(), Decimal::MIN.mantissa(), 1, -1] {
                let a = crate::catalog::Usd::from_decimal(Decimal::from_i128_with_scale(m, scale));
                let cost = Cost {
                    total: a,
                    prompt: a,
                    completion: a,
                };
                let display = format!(
                    "\"cost\":{a},\"cost_details\":{{\"upstream_inference_cost\":null,\
                     \"upstream_inference_prompt_cost\":{a},\"upstream_inference_completions_cost\":{a}}}"
                );
                let members = CostMembers::new(&cost);
                assert_eq!(std::str::from_utf8(members.bytes()), Ok(display.as_str()));
            }
        }
    }

    #[test]
    fn skimmer_reads_the_usual_answer() {
        let body = br#"{"id":"chatcmpl-1","object":"chat.completion","created":0,"model":"m",
            "choices":[{"index":0,"message":{"role":"assistant","content":"Hi \"you\"",
            "tool_calls":null},"finish_reason":"stop"}],
            "usage":{"prompt_tokens":2,"completion_tokens":3,"total_tokens":5}}"#;
        let (top, summary) = skimmed(body).expect("the skimmer reads it");
        assert_eq!(top.id.map(Raw::get), Some(r#""chatcmpl-1""#));
        assert_eq!(top.model.map(Raw::get), Some(r#""m""#));
        assert!(top
            .usage
            .unwrap()
            .get()
            .starts_with(r#"{"prompt_tokens":2"#));
        assert_eq!(summary.finish_reason.as_deref(), Some("stop"));
        assert_eq!(summary.content_bytes, r#""Hi \"you\"""#.len() as u64);
        // Not of the usual shape: left to serde.
        assert!(skimmed(br#"{"id":"a","id":"b"}"#).is_none());
        assert!(skimmed(br#"{"choices":{}}"#).is_none());
        assert!(skimmed(b"[1]").is_none());
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
        let raw: Raw<'_> =
            serde_json::from_str(r#"[{"index":0,"text":"abcd","finish_reason":"stop"}]"#).unwrap();
        let s = choices(raw);
        assert_eq!(s.content_bytes, 6);
        assert_eq!(s.finish_reason.as_deref(), Some("stop"));
    }
}
