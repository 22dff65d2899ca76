//! [`RequestView::parse`]'s fast path: the request read by the [`skim`]mer, without serde's
//! per-member machinery, for the usual shape of a chat request. Whatever it does not handle —
//! bad grammar, a body that is not UTF-8, escapes in keys or in the strings it borrows, a
//! duplicate member, a message it cannot vouch for, a number it cannot read exactly, the
//! deprecated `route`, nesting deeper than [`skim::MAX_DEPTH`] — gives `None`, and the serde
//! path (`ViewSeed`) then reads the body and decides, errors included. The fast path never
//! accepts a body the serde path rejects, and for a body it accepts it builds the same view
//! (the differential proptest in this module's tests checks both).
//!
//! The members it reads the same way as the serde path go through the same `ViewSeed` readers
//! (`model`, `provider`, the parameters, …), given the member's raw text: only the members that
//! serde reads directly from the map (`messages`, `stream`, `max_tokens`, …) are read here.

use std::borrow::Cow;
use std::cell::Cell;
use std::ops::Range;

use super::prefs::{DataCollection, MaxPrice, ProviderPrefs, Sort, SortBy};
use super::request::{RequestView, ViewSeed};
use super::short::ViewStr;
use super::skim;
use super::validate::{self, Seen};
use crate::catalog::{Parameter, Usd};

/// The error type the shared readers are run with here; their errors are only ever dropped.
type E = serde_json::Error;

/// The nesting of a message's values: the body, `messages`, the message, then its values.
const MESSAGE_VALUES: usize = 3;

/// The view of `body` if the fast path can read it (see the module docs), else `None`.
pub(super) fn parse_skimmed(body: &[u8]) -> Option<RequestView<'_>> {
    let mut view = RequestView::default();
    read_into(body, &mut view).map(|()| view)
}

/// [`parse_skimmed`] into `view` (a default one), where the caller wants it: the view is big,
/// and moving it costs more than reading most members. On `None`, `view` holds whatever was read
/// so far and must be discarded.
pub(super) fn read_into<'a>(body: &'a [u8], view: &mut RequestView<'a>) -> Option<()> {
    // No UTF-8 check of the whole body: the skimmer accepts only UTF-8 (see `skim`).
    let b = body;
    let start = skim::ws(b, 0);
    if b.get(start) != Some(&b'{') {
        return None;
    }
    let failed_field = Cell::new(None);
    let seed = ViewSeed {
        body,
        failed_field: &failed_field,
        track_paths: false,
    };
    let mut seen = Seen::default();
    let mut common_seen = [false; 8];
    let end = skim::members(b, start, 0, |key, at| {
        // The most common members are told apart by a `match`, the rest by `Seen`: each name
        // always goes the same way, so every duplicate is still caught.
        let (fresh, key) = match Common::of(key) {
            Some(c) => (
                !std::mem::replace(&mut common_seen[c as usize], true),
                Key::Common(c),
            ),
            None => {
                let key = std::str::from_utf8(key).ok()?;
                (seen.insert(key).is_none(), Key::Other(key))
            }
        };
        if !fresh {
            return None;
        }
        member(&seed, view, b, key, at)
    })?;
    (skim::ws(b, end) == b.len()).then_some(())
}

/// The most common top-level members, told apart from their bytes at once.
#[derive(Clone, Copy, PartialEq)]
enum Common {
    Model,
    Messages,
    MaxTokens,
    Temperature,
    Provider,
    Stream,
    Tools,
    TopP,
}

/// A top-level member's name: a [`Common`] one, or any other.
#[derive(Clone, Copy)]
enum Key<'k> {
    Common(Common),
    Other(&'k str),
}

impl Common {
    /// All of them, in the order of their bits in the duplicate check.
    const ALL: [Common; 8] = [
        Common::Model,
        Common::Messages,
        Common::MaxTokens,
        Common::Temperature,
        Common::Provider,
        Common::Stream,
        Common::Tools,
        Common::TopP,
    ];

    /// Their names, in the same order.
    const NAMES: [&'static str; 8] = [
        "model",
        "messages",
        "max_tokens",
        "temperature",
        "provider",
        "stream",
        "tools",
        "top_p",
    ];

    /// [`NAMES`](Self::NAMES) as bytes, computed at compile time (the compares then inline).
    const BYTES: [&'static [u8]; 8] = {
        let mut out: [&[u8]; 8] = [b""; 8];
        let mut i = 0;
        while i < out.len() {
            out[i] = Self::NAMES[i].as_bytes();
            i += 1;
        }
        out
    };

    /// The member named `key`, if it is a [`Common`] one.
    #[inline]
    fn of(key: &[u8]) -> Option<Common> {
        which(key, Self::BYTES).map(|i| Self::ALL[i])
    }

    /// The member's name.
    fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// The index of `key` in `names`: each compared whole (a length check and a few word loads),
/// where a slice pattern in a `match` compares byte after byte.
#[inline(always)]
fn which<const N: usize>(key: &[u8], names: [&[u8]; N]) -> Option<usize> {
    names.iter().position(|n| *n == key)
}

/// One top-level member, `key`, whose value starts at `at`: where the value ends, or `None`.
fn member<'a>(
    seed: &ViewSeed<'a, '_>,
    v: &mut RequestView<'a>,
    b: &'a [u8],
    key: Key<'_>,
    at: usize,
) -> Option<usize> {
    // The common members in their usual forms, read at once; the rest below.
    let param = match key {
        Key::Common(Common::Messages) => return messages(v, b, at),
        // Written in place (moving the preferences costs); when it gives up, the serde reader
        // below replaces them whole.
        Key::Common(Common::Provider) => {
            if let Some(end) = provider(b, at, &mut v.provider) {
                v.gateway_members.push(at..end);
                return Some(end);
            }
            None
        }
        Key::Common(Common::Model) => return model(seed, v, b, at),
        Key::Common(Common::Temperature) => Some(Parameter::Temperature),
        Key::Common(Common::TopP) => Some(Parameter::TopP),
        Key::Common(_) => None,
        Key::Other(name) => Parameter::from_name(name),
    };
    let end = skim::value(b, at, 1)?;
    let name = match key {
        Key::Common(c) => c.name(),
        Key::Other(name) => name,
    };
    if byte_member(v, name, b, at..end)? || number_param(v, param, b, at..end) {
        return Some(end);
    }
    let raw = skim::text(b, at..end)?;
    let read: Result<(), E> = match name {
        "models" => seed.models(v, raw),
        "provider" => seed.provider(v, raw),
        "session_id" => seed.session_id(v, raw),
        "tools" => seed.tools(v, raw),
        "transforms" => seed.compression(v, "transforms", raw),
        "plugins" => seed.compression(v, "plugins", raw),
        "prompt" => seed.prompt(v, "prompt", raw),
        "input" => {
            v.embeddings |= raw != "null";
            seed.prompt(v, "input", raw)
        }
        "encoding_format" => seed.embedding_option("encoding_format", raw),
        "dimensions" => seed.embedding_option("dimensions", raw),
        "prompt_cache_key" => {
            v.prompt_cache_key = skim::plain_string(raw)?.map(Cow::Borrowed);
            Ok(())
        }
        "service_tier" => {
            v.service_tier = skim::plain_string(raw)?.map(Cow::Borrowed);
            Ok(())
        }
        other => seed.other(v, other, raw),
    };
    read.ok().map(|()| end)
}

/// The top-level members read from their bytes (`stream`, `stream_options`, the token caps),
/// whose value spans `span`: `Some(true)` when `key` is one of them and was read, `Some(false)`
/// when it is not, `None` to give up.
fn byte_member(v: &mut RequestView<'_>, key: &str, b: &[u8], span: Range<usize>) -> Option<bool> {
    let raw = &b[span.clone()];
    match key {
        "stream" => {
            v.stream = match raw {
                b"true" => true,
                b"false" | b"null" => false,
                _ => return None,
            };
        }
        "stream_options" => {
            v.stream_options_span = Some(span);
        }
        "max_tokens" => {
            v.max_tokens = token_count(raw)?;
            if v.max_tokens.is_some() {
                v.params.insert(Parameter::MaxTokens);
            }
        }
        "max_completion_tokens" => {
            v.max_completion_tokens = token_count(raw)?;
            if v.max_completion_tokens.is_some() {
                v.params.insert(Parameter::MaxCompletionTokens);
            }
        }
        // The deprecated `route` is left to serde.
        "route" => return None,
        _ => return Some(false),
    }
    Some(true)
}

/// A number parameter `p` (`temperature`, `top_p`, …) whose value at `span` is a plain decimal
/// surely in range ([`validate::surely_in_range`]): recorded as `ViewSeed::other` records it,
/// without reading it through serde. False for anything else (read the usual way).
fn number_param(
    v: &mut RequestView<'_>,
    p: Option<Parameter>,
    b: &[u8],
    span: Range<usize>,
) -> bool {
    let Some(p) = p.filter(|p| validate::surely_in_range(*p, &b[span.clone()])) else {
        return false;
    };
    v.params.insert(p);
    v.droppable.push((Some(p), span));
    true
}

/// `model` at `at`: a plain, non-blank id read here, as `ViewSeed::model` reads it; the rest goes
/// there.
fn model<'a>(
    seed: &ViewSeed<'a, '_>,
    v: &mut RequestView<'a>,
    b: &'a [u8],
    at: usize,
) -> Option<usize> {
    if b.get(at) == Some(&b'"') {
        let (end, escaped) = skim::string(b, at)?;
        let m = skim::text(b, at + 1..end - 1)?;
        // Not blank: a printable ASCII first byte says so without `trim`'s Unicode tables.
        if !escaped
            && (m.bytes().next().is_some_and(|c| c.is_ascii_graphic()) || !m.trim().is_empty())
        {
            v.model = Some(ViewStr::Borrowed(m));
            v.model_span = Some(at..end);
            return Some(end);
        }
    }
    let end = skim::value(b, at, 1)?;
    seed.model::<E>(v, skim::text(b, at..end)?)
        .ok()
        .map(|()| end)
}

/// The `provider` object at `at` when it holds only the usual preferences in their usual forms
/// (`order` / `only` / `ignore` lists of plain strings, the booleans, `data_collection`, `sort`
/// by name, `max_price` in whole dollars), read as serde reads them; `None` leaves the member to
/// the serde reader of the preferences (`ViewSeed::provider`), which also decides `null`. Read
/// into `p` (default preferences); returns where the object ends.
fn provider<'a>(b: &'a [u8], at: usize, p: &mut ProviderPrefs<'a>) -> Option<usize> {
    if b.get(at) != Some(&b'{') {
        return None;
    }
    let mut seen = 0u16;
    skim::members(b, at, 1, |key, i| {
        let bit = which(key, PREFS)?;
        if seen & (1 << bit) != 0 {
            return None;
        }
        seen |= 1 << bit;
        // `max_price` is read where it is skimmed; every other value is skimmed first.
        if bit == 9 {
            return max_price(b, i, p.max_price.insert(Box::default()));
        }
        let end = skim::value(b, i, 2)?;
        let raw = &b[i..end];
        match bit {
            0 => p.order = list(raw)?,
            1 => p.only = list(raw)?,
            2 => p.ignore = list(raw)?,
            3 => p.allow_fallbacks = flag(raw)?,
            4 => p.require_parameters = flag(raw)?,
            5 => p.zdr = flag(raw)?,
            6 => p.enforce_distillable_text = flag(raw)?,
            7 => p.data_collection = data_collection(raw)?,
            _ => p.sort = sort(raw)?,
        }
        Some(end)
    })
}

/// The preferences [`provider`] reads, by their bit in its duplicate check.
const PREFS: [&[u8]; 10] = [
    b"order",
    b"only",
    b"ignore",
    b"allow_fallbacks",
    b"require_parameters",
    b"zdr",
    b"enforce_distillable_text",
    b"data_collection",
    b"sort",
    b"max_price",
];

/// A list of plain strings or `null`, as the serde path's `str_list` reads it.
fn list(raw: &[u8]) -> Option<Option<Vec<Cow<'_, str>>>> {
    if raw == b"null" {
        return Some(None);
    }
    let b = raw;
    let mut out = Vec::new();
    skim::elements(b, 0, 2, |i| {
        let end = skim::value(b, i, 3)?;
        out.push(Cow::Borrowed(skim::plain_string(skim::text(b, i..end)?)??));
        Some(end)
    })?;
    Some(Some(out))
}

/// `true`, `false` or `null`.
fn flag(raw: &[u8]) -> Option<Option<bool>> {
    match raw {
        b"true" => Some(Some(true)),
        b"false" => Some(Some(false)),
        b"null" => Some(None),
        _ => None,
    }
}

/// `data_collection` by name, or `null`.
fn data_collection(raw: &[u8]) -> Option<Option<DataCollection>> {
    match raw {
        br#""allow""# => Some(Some(DataCollection::Allow)),
        br#""deny""# => Some(Some(DataCollection::Deny)),
        b"null" => Some(None),
        _ => None,
    }
}

/// `sort` by name (no partition), or `null`.
fn sort(raw: &[u8]) -> Option<Option<Sort>> {
    let by = match raw {
        b"null" => return Some(None),
        br#""price""# => SortBy::Price,
        br#""throughput""# => SortBy::Throughput,
        br#""latency""# => SortBy::Latency,
        br#""exacto""# => SortBy::Exacto,
        _ => return None,
    };
    Some(Some(Sort {
        by,
        partition: None,
    }))
}

/// `max_price` at `at`: an object of whole, non-negative dollar amounts (or `null`s), read into
/// `m` (empty); returns where the object ends.
fn max_price(b: &[u8], at: usize, m: &mut MaxPrice) -> Option<usize> {
    if b.get(at) != Some(&b'{') {
        return None;
    }
    let mut seen = 0u8;
    skim::members(b, at, 2, |key, i| {
        let end = skim::value(b, i, 3)?;
        let bit = which(
            key,
            [b"prompt", b"completion", b"request", b"image", b"audio"],
        )?;
        let slot = match bit {
            0 => &mut m.prompt,
            1 => &mut m.completion,
            2 => &mut m.request,
            3 => &mut m.image,
            _ => &mut m.audio,
        };
        if seen & (1 << bit) != 0 {
            return None;
        }
        seen |= 1 << bit;
        let raw = &b[i..end];
        *slot = match raw {
            b"null" => None,
            _ => Some(Usd::from_int(i64::try_from(whole(raw)?).ok()?)),
        };
        Some(end)
    })
}

/// `max_tokens` or `max_completion_tokens` as the serde path reads them (`null`, or a positive
/// integer that fits a `u64`); `None` (give up) for anything else.
fn token_count(raw: &[u8]) -> Option<Option<u64>> {
    if raw == b"null" {
        return Some(None);
    }
    match whole(raw)? {
        0 => None,
        n => Some(Some(n)),
    }
}

/// The value of `raw` if it is all digits (what `str::parse` reads of such a number: leading zeros
/// aside, which the skimmer does not pass), `None` for anything else or past `u64::MAX`.
fn whole(raw: &[u8]) -> Option<u64> {
    if raw.is_empty() {
        return None;
    }
    raw.iter().try_fold(0u64, |n, c| {
        let d = c.checked_sub(b'0').filter(|d| *d < 10)?;
        n.checked_mul(10)?.checked_add(u64::from(d))
    })
}

/// A message's `role` (its raw JSON text) if it is one of the known roles as a plain string;
/// `None` leaves the message to serde, which reads or rejects it.
fn known_role(raw: &[u8]) -> Option<&'static str> {
    let name = raw.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    validate::ROLES.into_iter().find(|r| r.as_bytes() == name)
}

/// What the messages add up to, as the serde path's `MessageStats`.
#[derive(Default)]
struct Stats {
    bytes: usize,
    bound_bytes: u64,
    images: u64,
    count: usize,
    /// The content span of the first system (or developer) message, once there is one.
    system: Option<Option<Range<usize>>>,
    /// The content span of the first other message, once there is one.
    first: Option<Option<Range<usize>>>,
}

/// `messages` at `at`: `null`, or a non-empty array of messages the fast path can vouch for.
fn messages(v: &mut RequestView<'_>, b: &[u8], at: usize) -> Option<usize> {
    let mut stats = Stats::default();
    let end = match b.get(at)? {
        b'n' => skim::value(b, at, 1)?,
        b'[' => skim::elements(b, at, 1, |i| message(b, i, &mut stats))?,
        _ => return None,
    };
    if b[at] == b'[' && stats.count == 0 {
        return None;
    }
    v.prompt_bytes += stats.bytes;
    v.bound_bytes += stats.bound_bytes;
    v.image_parts += stats.images;
    v.message_count = stats.count;
    v.has_input |= stats.count > 0;
    v.conversation_spans = (stats.system.flatten(), stats.first.flatten());
    Some(end)
}

/// One message at `at`, checked as the serde path's `Message` checks it, and added to `stats`.
#[inline]
fn message(b: &[u8], at: usize, stats: &mut Stats) -> Option<usize> {
    if b.get(at) != Some(&b'{') {
        return None;
    }
    let mut role: Option<&'static str> = None;
    let mut content: Option<Range<usize>> = None;
    let mut tool_call_id = false;
    let (mut bound, mut images) = (0u64, 0u64);
    let end = skim::members(b, at, 2, |key, i| {
        bound += key.len() as u64;
        // By index in `[role, content, tool_call_id]` (see `which`).
        match which(key, [b"role", b"content", b"tool_call_id"]) {
            Some(0) if role.is_none() => {
                let end = skim::value(b, i, MESSAGE_VALUES)?;
                role = Some(known_role(&b[i..end])?);
                Some(end)
            }
            Some(1) if content.is_none() => {
                let (end, bytes, n) = content_bound(b, i)?;
                bound += bytes;
                images += n;
                content = Some(i..end);
                Some(end)
            }
            Some(2) if !tool_call_id => {
                let end = skim::value(b, i, MESSAGE_VALUES)?;
                let id = skim::plain_bytes(&b[i..end])?;
                bound += id.map_or(4, |s| s.len() as u64 + 2);
                tool_call_id = id.is_some();
                Some(end)
            }
            // A second `role`, `content` or (non-null) `tool_call_id` is left to serde.
            Some(_) => None,
            None => {
                let end = skim::value(b, i, MESSAGE_VALUES)?;
                bound += (end - i) as u64;
                Some(end)
            }
        }
    })?;
    let role = role?;
    let first = content.as_ref().map(|r| b[r.start]);
    // A list of parts was checked while it was walked (objects, each with one plain string
    // `type`: what `check_content` asks, and more).
    if first != Some(b'[') {
        validate::check_content_start::<E>(role, first).ok()?;
    }
    if role == "tool" && !tool_call_id {
        return None;
    }
    stats.count += 1;
    stats.bound_bytes += bound + role.len() as u64;
    stats.images += images;
    stats.bytes += content.as_ref().map_or(0, Range::len);
    let slot = match role {
        "system" | "developer" => &mut stats.system,
        _ => &mut stats.first,
    };
    slot.get_or_insert(content);
    Some(end)
}

/// A message's `content` at `at`: where it ends, the bytes that bound its tokens and its image
/// parts, as the serde path's `content_bound` counts them. A list of parts must be objects with
/// one plain string `type` each.
fn content_bound(b: &[u8], at: usize) -> Option<(usize, u64, u64)> {
    if b.get(at) != Some(&b'[') {
        let end = skim::value(b, at, MESSAGE_VALUES)?;
        return Some((end, (end - at) as u64, 0));
    }
    let (mut bytes, mut images) = (0, 0);
    let end = skim::elements(b, at, MESSAGE_VALUES, |i| {
        let (end, image) = part(b, i)?;
        if image {
            images += 1;
        } else {
            bytes += (end - i) as u64;
        }
        Some(end)
    })?;
    Some((end, bytes, images))
}

/// A content part at `at`: where it ends and whether it is an `image_url` part.
fn part(b: &[u8], at: usize) -> Option<(usize, bool)> {
    if b.get(at) != Some(&b'{') {
        return None;
    }
    let mut kind: Option<&[u8]> = None;
    let end = skim::members(b, at, MESSAGE_VALUES + 1, |key, i| {
        let end = skim::value(b, i, MESSAGE_VALUES + 2)?;
        if key == b"type" {
            // One plain string: a repeated, escaped or non-string `type` is left to serde.
            if kind.is_some() || b[i] != b'"' || b[i + 1..end - 1].contains(&b'\\') {
                return None;
            }
            kind = Some(&b[i + 1..end - 1]);
        }
        Some(end)
    })?;
    Some((end, kind? == b"image_url"))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Both paths on `body`: whenever the fast path takes it, the serde path accepts it and
    /// builds the same view. Returns whether the fast path took it.
    fn agree(body: &[u8]) -> Result<bool, TestCaseError> {
        let Some(fast) = RequestView::parse_skimmed(body) else {
            return Ok(false);
        };
        let text = String::from_utf8_lossy(body);
        let serde = RequestView::parse_serde(body);
        prop_assert!(
            serde.is_ok(),
            "fast path took a bad body: {text}\n{serde:?}"
        );
        let serde = serde.unwrap_or_default();
        prop_assert_eq!(format!("{fast:#?}"), format!("{serde:#?}"), "{}", text);
        Ok(true)
    }

    /// Real requests from the captured clients, and the common shapes: all on the fast path.
    fn fixtures() -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = [
            &br#"{"model":"acme/chat","messages":[{"role":"system","content":"Be brief."},
               {"role":"user","content":"Tell me about the printing press."}],
               "max_tokens":256,"temperature":0.7,
               "provider":{"data_collection":"deny","max_price":{"prompt":2,"completion":4}}}"#[..],
            br#" { "model" : "openai/gpt-4o" , "stream" : true ,
               "stream_options" : { "include_usage" : true } , "messages" : [
               { "role" : "developer" , "content" : "Answer in French.\n" } ,
               { "role" : "user" , "name" : "ann" , "content" : [
                 { "type" : "text" , "text" : "What is \"this\"?" } ,
                 { "type" : "image_url" , "image_url" : { "url" : "data:image/png;base64,AAAA" } }
               ] } ] , "top_p" : 0.9 , "seed" : 7 , "stop" : [ "\n\n" ] , "user" : "u-1" } "#,
            br#"{"model":"anthropic/claude-sonnet-4.5","models":["openai/gpt-4o"],
               "messages":[{"role":"user","content":"List the files."},
               {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",
                "function":{"name":"ls","arguments":"{\"path\": \".\"}"}}]},
               {"role":"tool","tool_call_id":"call_1","content":"README.md\nmain.py"}],
               "tools":[{"type":"function","function":{"name":"ls","parameters":{"type":"object"}}}],
               "tool_choice":"auto","parallel_tool_calls":false,"max_completion_tokens":1000,
               "session_id":"s-42","prompt_cache_key":"k","service_tier":"flex",
               "response_format":{"type":"json_schema","json_schema":{"name":"x"}},
               "frequency_penalty":0.5,"presence_penalty":-0.5,"top_k":40,"min_p":0.1,
               "repetition_penalty":1.1,"logprobs":true,"top_logprobs":5,"reasoning":{"effort":"low"},
               "transforms":["middle-out"],"x_custom":{"a":[1,2]},"metadata":{"k":"v"}}"#,
        ]
        .iter()
        .map(|b| b.to_vec())
        .collect();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/clients");
        for client in std::fs::read_dir(dir).expect("fixtures") {
            let client = client.expect("entry").path();
            for scenario in std::fs::read_dir(&client).into_iter().flatten() {
                for f in std::fs::read_dir(scenario.expect("entry").path()).expect("dir") {
                    let cap: serde_json::Value =
                        serde_json::from_slice(&std::fs::read(f.expect("entry").path()).unwrap())
                            .expect("capture");
                    let path = cap["path"].as_str().unwrap_or_default();
                    if path.ends_with("chat/completions") {
                        out.push(serde_json::to_vec(&cap["body"]).expect("body"));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn real_requests_take_the_fast_path() {
        let all = fixtures();
        assert!(all.len() >= 10, "only {} fixtures", all.len());
        for body in &all {
            let text = String::from_utf8_lossy(body);
            assert!(agree(body).expect("agree"), "not on the fast path: {text}");
            assert!(RequestView::parse(body).is_ok(), "{text}");
        }
    }

    #[test]
    fn unusual_bodies_are_left_to_serde() {
        for body in [
            &br#"{"model":"a/b","model":"c/d","messages":[{"role":"user","content":"hi"}]}"#[..],
            br#"{"model":"a/b","messages":[{"role":"user","content":"h\i"}]}"#,
            br#"{"m\u006fdel":"a/b","messages":[{"role":"user","content":"hi"}]}"#,
            br#"{"model":"a/b","messages":[{"role":"wizard","content":"hi"}]}"#,
            br#"{"model":"a/b","messages":[{"role":"user","content":"hi","role":"user"}]}"#,
            br#"{"model":"a/b","messages":[{"role":"tool","content":"hi"}]}"#,
            br#"{"model":"a/b","messages":[{"role":"user","content":[{"text":"hi"}]}]}"#,
            br#"{"model":"a/b","messages":[{"role":"user","content":1}]}"#,
            br#"{"model":"a/b","messages":[]}"#,
            br#"{"model":"a/b","messages":[{"role":"user","content":"hi"}],"max_tokens":0}"#,
            br#"{"model":"a/b","messages":[{"role":"user","content":"hi"}],"max_tokens":1.0}"#,
            br#"{"model":"a/b","messages":[{"role":"user","content":"hi"}],"temperature":3}"#,
            br#"{"model":"a/b","messages":[{"role":"user","content":"hi"}],"route":"fallback"}"#,
            br#"{"model":"a/b","messages":[{"role":"user","content":"hi"}]} x"#,
            b"{\"model\":\"a/b\xff\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
        ] {
            let text = String::from_utf8_lossy(body);
            assert!(RequestView::parse_skimmed(body).is_none(), "{text}");
        }
        let deep = format!(
            r#"{{"model":"a/b","messages":[{{"role":"user","content":"hi"}}],"x":{}{}}}"#,
            "[".repeat(70),
            "]".repeat(70)
        );
        assert!(RequestView::parse_skimmed(deep.as_bytes()).is_none());
        assert!(RequestView::parse_serde(deep.as_bytes()).is_ok());
    }

    /// JSON text of a string, sometimes with escapes.
    fn text() -> impl Strategy<Value = String> {
        "[a-z/ é\"\\\\\n\u{1}\u{1F600}]{0,10}".prop_map(|s| serde_json::to_string(&s).unwrap())
    }

    /// A value of any type, as JSON text.
    fn any_value() -> BoxedStrategy<String> {
        prop_oneof![
            text(),
            Just("null".to_string()),
            Just("true".to_string()),
            prop_oneof![
                Just("0"),
                Just("1"),
                Just("-1"),
                Just("0.5"),
                Just("1e2"),
                Just("99999999999999999999")
            ]
            .prop_map(str::to_string),
            Just("[]".to_string()),
            Just("{}".to_string()),
            text().prop_map(|s| format!("[{s}]")),
            text().prop_map(|s| format!(r#"{{"type":{s}}}"#)),
        ]
        .boxed()
    }

    /// A JSON object of `members`, in the order given, with `sep` around the punctuation.
    fn object(members: &[(String, String)], sep: &str) -> String {
        let inner: Vec<String> = members
            .iter()
            .map(|(k, v)| format!("{sep}{k}{sep}:{sep}{v}{sep}"))
            .collect();
        format!("{{{}}}", inner.join(","))
    }

    /// A content part: text, image, or something wrong.
    fn content_part() -> impl Strategy<Value = String> {
        prop_oneof![
            text().prop_map(|s| format!(r#"{{"type":"text","text":{s}}}"#)),
            text().prop_map(|s| format!(r#"{{"image_url":{{"url":{s}}},"type":"image_url"}}"#)),
            text().prop_map(|s| format!(r#"{{"type":{s}}}"#)),
            Just(r#"{"type":"text","type":"image_url"}"#.to_string()),
            Just(r#"{"type":"image_\u0075rl"}"#.to_string()),
            Just(r#"{"text":"no type"}"#.to_string()),
            Just(r#"{"type":null}"#.to_string()),
            Just("1".to_string()),
        ]
    }

    /// A message's members (key and value as JSON text), often of the real shapes.
    fn message_member() -> impl Strategy<Value = (String, String)> {
        let role = prop_oneof![
            Just("system"),
            Just("developer"),
            Just("user"),
            Just("assistant"),
            Just("tool"),
            Just("function"),
            Just("wizard"),
        ]
        .prop_map(|r| format!("\"{r}\""));
        let content = prop_oneof![
            3 => text(),
            1 => Just("null".to_string()),
            2 => prop::collection::vec(content_part(), 0..3).prop_map(|p| format!("[{}]", p.join(","))),
            1 => any_value(),
        ];
        let call = text().prop_map(|a| {
            format!(
                r#"[{{"id":"call_1","type":"function","function":{{"name":"f","arguments":{a}}}}}]"#
            )
        });
        let key = |k: &str| serde_json::to_string(k).unwrap();
        prop_oneof![
            3 => prop_oneof![role, Just("null".to_string()), text()].prop_map(move |v| (key("role"), v)),
            3 => content.prop_map(move |v| (key("content"), v)),
            1 => prop_oneof![text(), Just("null".to_string())].prop_map(move |v| (key("tool_call_id"), v)),
            1 => call.prop_map(move |v| (key("tool_calls"), v)),
            1 => (prop_oneof![Just("name"), Just("ro\\u006ce"), Just("x")], any_value())
                .prop_map(|(k, v)| (format!("\"{k}\""), v)),
        ]
    }

    /// A message: usually a role and a content, sometimes more, in any order.
    fn message() -> impl Strategy<Value = String> {
        let typical = (
            prop_oneof![
                Just("system"),
                Just("user"),
                Just("assistant"),
                Just("developer")
            ],
            text(),
        )
            .prop_map(|(r, c)| {
                vec![
                    ("\"role\"".to_string(), format!("\"{r}\"")),
                    ("\"content\"".to_string(), c),
                ]
            });
        (
            typical,
            prop::collection::vec(message_member(), 0..2),
            any::<prop::sample::Index>(),
        )
            .prop_map(|(mut m, extra, at)| {
                for e in extra {
                    let i = at.index(m.len() + 1);
                    m.insert(i, e);
                }
                object(&m, "")
            })
    }

    /// One of the given values, as JSON text.
    fn pick(xs: &'static [&'static str]) -> BoxedStrategy<String> {
        prop::sample::select(xs).prop_map(str::to_string).boxed()
    }

    /// The routing members, with values of the real shapes and wrong ones.
    fn routing_members() -> Vec<(&'static str, BoxedStrategy<String>)> {
        let num = pick;
        let messages =
            prop::collection::vec(message(), 0..4).prop_map(|m| format!("[{}]", m.join(",")));
        let provider = prop_oneof![
            Just(r#"{"data_collection":"deny","max_price":{"prompt":2,"completion":4}}"#),
            Just(r#"{"sort":"price","only":["a","b"],"options":{"a":{"x":1}}}"#),
            Just(r#"{"order":["openai"],"allow_fallbacks":false}"#),
            Just(r#"{"sort":"cheapest"}"#),
            Just(r#"{"sort":{"by":"price"},"zdr":true,"enforce_distillable_text":null}"#),
            Just(r#"{"max_price":{"prompt":0.5,"completion":"2","image":null,"audio":-1}}"#),
            Just(r#"{"max_price":{"prompt":1,"prompt":2},"allow_fallbacks":"yes"}"#),
            Just(r#"{"max_price":{"request":99999999999999999999,"x":1},"only":null}"#),
            Just(r#"{"ignore":["a\u0062",1],"require_parameters":true,"only":[]}"#),
            Just(r#"{"order":["a"],"order":["b"],"data_collection":"allow"}"#),
            Just(r#"{"sort":"latency","quantizations":["fp8"],"data_collection":"never"}"#),
            Just("null"),
        ]
        .prop_map(str::to_string);
        vec![
            (
                "model",
                prop_oneof![Just("\"openai/gpt-4o\"".to_string()), text()].boxed(),
            ),
            (
                "models",
                prop_oneof![
                    Just(r#"["a/b","c/d"]"#.to_string()),
                    text().prop_map(|s| format!("[{s}]"))
                ]
                .boxed(),
            ),
            ("provider", provider.boxed()),
            ("messages", messages.boxed()),
            ("stream", num(&["true", "false", "null", "1"]).boxed()),
            (
                "stream_options",
                num(&[r#"{"include_usage":true}"#, "null"]).boxed(),
            ),
            (
                "max_tokens",
                num(&[
                    "256",
                    "0",
                    "-1",
                    "1.5",
                    "1e3",
                    "null",
                    "18446744073709551616",
                    "18446744073709551615",
                ])
                .boxed(),
            ),
            (
                "max_completion_tokens",
                num(&["1000", "0", "null", "2.0"]).boxed(),
            ),
        ]
    }

    /// The parameters and other members, with values of the real shapes and wrong ones.
    fn other_members() -> Vec<(&'static str, BoxedStrategy<String>)> {
        let num = pick;
        vec![
            (
                "temperature",
                num(&["0.7", "2", "2.5", "-0", "1e0", "null", "\"hot\""]).boxed(),
            ),
            ("top_p", num(&["0.9", "1", "1.01"]).boxed()),
            ("top_k", num(&["40", "-1", "1.5"]).boxed()),
            ("seed", num(&["7", "-7", "1e2"]).boxed()),
            (
                "stop",
                num(&[r#"["a"]"#, r#""\n""#, r#"["a","b","c","d","e"]"#, "3"]).boxed(),
            ),
            (
                "tools",
                num(&[
                    r#"[{"type":"function","function":{"name":"f"}}]"#,
                    "[]",
                    "null",
                    "[1]",
                ])
                .boxed(),
            ),
            (
                "tool_choice",
                num(&[r#""auto""#, r#"{"type":"function"}"#, "1"]).boxed(),
            ),
            (
                "response_format",
                num(&[
                    r#"{"type":"json_object"}"#,
                    r#"{"type":"json_schema","json_schema":{}}"#,
                    "{}",
                ])
                .boxed(),
            ),
            ("user", any_value()),
            ("session_id", any_value()),
            ("prompt_cache_key", any_value()),
            ("service_tier", any_value()),
            (
                "transforms",
                num(&[r#"["middle-out"]"#, "[]", r#"["x"]"#]).boxed(),
            ),
            ("prompt", any_value()),
            ("input", any_value()),
            ("usage", any_value()),
            ("route", any_value()),
            ("x_custom", any_value()),
            ("mod\\u0065l", any_value()),
        ]
    }

    /// A top-level member of a chat request (key and value as JSON text), usually of the real
    /// shape for its key.
    fn request_member() -> impl Strategy<Value = (String, String)> {
        let strategies: Vec<BoxedStrategy<(String, String)>> = routing_members()
            .into_iter()
            .chain(other_members())
            .map(|(k, v)| v.prop_map(move |v| (format!("\"{k}\""), v)).boxed())
            .collect();
        prop::strategy::Union::new(strategies)
    }

    /// A chat request: a model, messages and other members, in any order, with whitespace or
    /// not.
    fn request() -> impl Strategy<Value = Vec<u8>> {
        let base = (message(), prop::collection::vec(message(), 0..3)).prop_map(|(m, more)| {
            let all: Vec<String> = std::iter::once(m).chain(more).collect();
            vec![
                ("\"model\"".to_string(), "\"acme/chat\"".to_string()),
                ("\"messages\"".to_string(), format!("[{}]", all.join(","))),
            ]
        });
        let sep = prop::sample::select(&["", " ", "\n\t "][..]);
        (
            base,
            prop::collection::vec((request_member(), any::<prop::sample::Index>()), 0..5),
            sep,
        )
            .prop_map(|(mut m, extra, sep)| {
                for (e, at) in extra {
                    let i = at.index(m.len() + 1);
                    m.insert(i, e);
                }
                format!("{sep}{}{sep}", object(&m, sep)).into_bytes()
            })
    }

    /// A byte edit: cut the body short, remove a byte, or put one of JSON's special bytes in.
    fn mutate(mut body: Vec<u8>, at: prop::sample::Index, kind: u8, byte: u8) -> Vec<u8> {
        let i = at.index(body.len());
        let special = b"\"\\{}[],: 0n-.e\x01\xff";
        match kind % 4 {
            0 => body.truncate(i),
            1 => drop(body.remove(i)),
            2 => body.insert(i, special[usize::from(byte) % special.len()]),
            _ => body[i] = special[usize::from(byte) % special.len()],
        }
        body
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whenever the fast path takes a body, the serde path accepts it and builds the same
        /// view; edited bodies too.
        #[test]
        fn fast_path_equals_serde_path(
            body in request(),
            at in any::<prop::sample::Index>(),
            kind in any::<u8>(),
            byte in any::<u8>(),
        ) {
            agree(&body)?;
            agree(&mutate(body, at, kind, byte))?;
        }
    }

    /// The generator is not so wild that the fast path is never taken: a good share of its
    /// bodies must go through the fast path (and agree).
    #[test]
    fn generated_bodies_often_take_the_fast_path() {
        use proptest::strategy::ValueTree;
        use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
        let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]);
        let mut runner = TestRunner::new_with_rng(Config::default(), rng);
        let (mut fast, n) = (0, 400);
        for _ in 0..n {
            let body = request().new_tree(&mut runner).expect("tree").current();
            fast += usize::from(agree(&body).expect("agree"));
        }
        assert!(fast * 10 >= n, "only {fast} of {n} on the fast path");
    }
}
