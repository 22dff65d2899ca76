//! The upstream body: one splice pass over the caller's bytes.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;

use serde_json::value::RawValue;
use smallvec::SmallVec;

use crate::catalog::ParamSet;
use crate::route::{splice, Piece, RequestView};

/// Keys of `provider.options[slug]` that are never merged: the layer decides them.
const RESERVED_OPTIONS: &[&str] = &["model", "stream"];

/// The value `stream_options` gets when the caller's is not an object.
const INCLUDE_USAGE: &[u8] = br#"{"include_usage":true}"#;

/// The member appended to a body that has no `stream_options` (a constant: the usual streamed
/// request costs no allocation for it).
const ASK_USAGE_MEMBER: &[u8] = br#","stream_options":{"include_usage":true}"#;

/// What of the endpoint shapes the body beyond its model id and slug.
#[derive(Clone, Copy, Default)]
pub(crate) struct Fit {
    /// Its `supported_parameters` (empty: not listed, everything is forwarded).
    pub(crate) supported: ParamSet,
    /// Its context length (0: unknown), for middle-out compression.
    pub(crate) context_length: u64,
    /// A streamed request to an OpenAI-wire provider: `stream_options.include_usage` is made
    /// `true` (such providers report a stream's usage only when asked, and OpenRouter always
    /// reports it).
    pub(crate) ask_usage: bool,
}

/// Builds the body for one endpoint: `model` set to `upstream_model`, the gateway-only members
/// removed, the members the endpoint does not support removed (the rule is
/// [`RequestView::unsupported_spans`]), messages removed from the middle when middle-out
/// compression is on for it ([`crate::route::middle_out_cuts`]), and the members of
/// `provider.options[slug]` merged into the top-level object (they replace body members of the
/// same name), and `stream_options.include_usage` set when [`Fit::ask_usage`]. `None` if the body
/// is not a JSON object (it always is after ModelRouting).
pub(crate) fn upstream_body(
    body: &[u8],
    view: &RequestView<'_>,
    upstream_model: &str,
    slug: &str,
    fit: Fit,
) -> Option<Vec<u8>> {
    // Members to remove: the gateway-only ones, plus those the provider options override.
    // Pushed one by one: collecting the chained, filtered iterator costs more than the few
    // members (usually one: `provider`).
    let mut remove: SmallVec<[Range<usize>; 8]> = SmallVec::new();
    let spans = view.gateway_members.iter().cloned();
    for v in spans.chain(view.unsupported_spans(fit.supported)) {
        if let Some(span) = member_span(body, v) {
            remove.push(span);
        }
    }
    let options = view
        .options_span
        .as_ref()
        .and_then(|r| body.get(r.clone()))
        .and_then(|o| slug_options(o, slug));
    let mut insert: Vec<u8> = Vec::new();
    let overridden = options.iter().flatten().any(|(k, _)| k == "stream_options");
    let usage = if fit.ask_usage && !overridden {
        ask_usage(body, view)
    } else {
        AskUsage::Asked
    };
    if let Some(members) = &options {
        let names: Vec<&str> = members.iter().map(|(k, _)| k.as_ref()).collect();
        for (key, span) in top_level_members(body)? {
            if names.contains(&key.as_ref()) && !remove.contains(&span) {
                remove.push(span);
            }
        }
        for (k, v) in members {
            insert.push(b',');
            crate::route::write_json_str(&mut insert, k);
            insert.push(b':');
            insert.extend_from_slice(v.get().as_bytes());
        }
    }
    remove.sort_by_key(|r| r.start);
    remove.dedup();

    let mut edits = Edits::new();
    match &view.model_span {
        Some(r) => edits.push(edit(r.clone(), Piece::Quoted(upstream_model))),
        None => {
            // No `model` (only `models`): the first removed member becomes `"model":…`, so the
            // commas around it stay as they are.
            if remove.is_empty() {
                return None;
            }
            let first = remove.remove(0);
            edits.push((first, model_member(upstream_model)));
        }
    }
    push_removals(body, &remove, &mut edits);
    let cuts = compression_cuts(body, view, fit);
    push_removals(body, &cuts, &mut edits);
    let appended: &[u8] = match &usage {
        AskUsage::Asked => &[],
        AskUsage::Edit(r, v) => {
            edits.push(edit(r.clone(), Piece::Raw(v)));
            &[]
        }
        AskUsage::Append => ASK_USAGE_MEMBER,
    };
    if !appended.is_empty() || !insert.is_empty() {
        let end = body.iter().rposition(|b| !b.is_ascii_whitespace())?;
        if body[end] != b'}' {
            return None;
        }
        edits.push((end..end, [Piece::Raw(appended), Piece::Raw(&insert)]));
    }
    Some(splice(body, &mut edits))
}

/// One edit of the caller's body: the byte range it replaces, and the pieces that replace it
/// (at most two: `"model":` and the model id).
type Edit<'a> = (Range<usize>, [Piece<'a>; 2]);

/// The edits of one body (inline: a body has a handful).
type Edits<'a> = SmallVec<[Edit<'a>; 8]>;

/// An edit by one piece.
fn edit(r: Range<usize>, p: Piece<'_>) -> Edit<'_> {
    (r, [p, Piece::Empty])
}

/// The pieces of a `"model":` member for `model`.
fn model_member(model: &str) -> [Piece<'_>; 2] {
    [Piece::Raw(b"\"model\":"), Piece::Quoted(model)]
}

/// How the upstream body asks for usage in a stream (`stream_options.include_usage`).
enum AskUsage {
    /// It does already, or need not.
    Asked,
    /// The caller's `stream_options` (at the range) replaced by the value.
    Edit(Range<usize>, Vec<u8>),
    /// [`ASK_USAGE_MEMBER`] appended to the body's object (the caller sent no `stream_options`).
    Append,
}

/// Makes `stream_options.include_usage` true: the edit of the caller's `stream_options`, or (when
/// it has none) the member to append.
fn ask_usage(body: &[u8], view: &RequestView<'_>) -> AskUsage {
    match view.stream_options_span.clone() {
        Some(span) => match include_usage(&body[span.clone()]) {
            Some(v) => AskUsage::Edit(span, v),
            None => AskUsage::Asked,
        },
        None => AskUsage::Append,
    }
}

/// The caller's `stream_options` value with `include_usage` set to `true`, its other members
/// kept; `None` when it already asks for usage. A value that is not an object is replaced.
fn include_usage(value: &[u8]) -> Option<Vec<u8>> {
    match serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(value) {
        Ok(m) if m.get("include_usage") == Some(&serde_json::Value::Bool(true)) => None,
        Ok(mut m) => {
            m.insert("include_usage".into(), serde_json::Value::Bool(true));
            serde_json::to_vec(&m).ok()
        }
        Err(_) => Some(INCLUDE_USAGE.to_vec()),
    }
}

/// The messages middle-out compression removes for an endpoint (none when it is off or the
/// request fits).
fn compression_cuts(body: &[u8], view: &RequestView<'_>, fit: Fit) -> Vec<Range<usize>> {
    let needed = view
        .prompt_estimate()
        .saturating_add(view.max_output().unwrap_or(0));
    if !view.compresses_for(fit.context_length) || needed <= fit.context_length {
        return Vec::new();
    }
    let messages = std::str::from_utf8(body)
        .ok()
        .and_then(crate::route::members)
        .and_then(|m| m.into_iter().find(|(k, _)| k == "messages"))
        .and_then(|(_, v)| crate::route::span_of(body, v.get()));
    match messages {
        Some(span) => crate::route::middle_out_cuts(body, span, needed, fit.context_length),
        None => Vec::new(),
    }
}

/// A caller's Anthropic Messages body for an Anthropic-wire endpoint: `model` set to
/// `upstream_model` (added first when absent), `max_tokens` replaced when given, the
/// gateway-only members removed; every other byte as it was. `None` if the body is not a JSON
/// object.
pub(crate) fn passthrough_body(
    body: &[u8],
    upstream_model: &str,
    max_tokens: Option<u64>,
) -> Option<Vec<u8>> {
    let members = top_level_members(body)?;
    let mut remove: Vec<Range<usize>> = Vec::new();
    let max_tokens = max_tokens.map(|m| format!("\"max_tokens\":{m}"));
    let mut edits = Edits::new();
    let mut has_model = false;
    let total = members.len();
    for (key, span) in members {
        match key.as_ref() {
            "model" if !has_model => {
                has_model = true;
                edits.push((span, model_member(upstream_model)));
            }
            "max_tokens" => {
                if let Some(m) = &max_tokens {
                    edits.push(edit(span, Piece::Raw(m.as_bytes())));
                }
            }
            k if crate::wire::GATEWAY_ONLY_MEMBERS.contains(&k) => remove.push(span),
            _ => {}
        }
    }
    if !has_model {
        let open = body.iter().position(|b| *b == b'{')?;
        edits.push((open + 1..open + 1, model_member(upstream_model)));
        if remove.len() < total {
            edits.push(edit(open + 1..open + 1, Piece::Raw(b",")));
        }
    }
    push_removals(body, &remove, &mut edits);
    Some(splice(body, &mut edits))
}

/// `provider.options[slug]`'s members, if it is an object; reserved keys dropped.
fn slug_options<'a>(options: &'a [u8], slug: &str) -> Option<Vec<(Cow<'a, str>, &'a RawValue)>> {
    let all: HashMap<Cow<'a, str>, &'a RawValue> = serde_json::from_slice(options).ok()?;
    // An escaped slug key is unlikely but harmless: `Cow` covers it.
    let raw = all.get(slug)?;
    let members = crate::route::members(raw.get())?;
    Some(
        members
            .into_iter()
            .filter(|(k, _)| !RESERVED_OPTIONS.contains(&k.as_ref()))
            .collect(),
    )
}

/// Top-level members of `body`: key and the span of the whole member (key through value).
fn top_level_members(body: &[u8]) -> Option<Vec<(Cow<'_, str>, Range<usize>)>> {
    let s = std::str::from_utf8(body).ok()?;
    let members = crate::route::members(s)?;
    members
        .into_iter()
        .map(|(k, v)| {
            let r = crate::route::span_of(body, v.get())?;
            Some((k, member_span(body, r)?))
        })
        .collect()
}

/// Extends the span of a member's value back over `:` and the key: `"key" : value`.
pub(crate) fn member_span(body: &[u8], value: Range<usize>) -> Option<Range<usize>> {
    let mut i = value.start;
    i = skip_ws_back(body, i);
    if i == 0 || body[i - 1] != b':' {
        return None;
    }
    i = skip_ws_back(body, i - 1);
    if i == 0 || body[i - 1] != b'"' {
        return None;
    }
    // Find the key's opening quote: the previous `"` preceded by an even number of backslashes.
    let mut j = i - 1;
    loop {
        if j == 0 {
            return None;
        }
        j -= 1;
        if body[j] == b'"' {
            let backslashes = body[..j].iter().rev().take_while(|b| **b == b'\\').count();
            if backslashes % 2 == 0 {
                return Some(j..value.end);
            }
        }
    }
}

fn skip_ws_back(body: &[u8], mut i: usize) -> usize {
    while i > 0 && body[i - 1].is_ascii_whitespace() {
        i -= 1;
    }
    i
}

fn skip_ws(body: &[u8], mut i: usize) -> usize {
    while i < body.len() && body[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// Edits that remove whole members (sorted, disjoint spans of `"key":value`) from an object,
/// with exactly the commas that keep it valid: a member followed by a comma takes that comma;
/// a run of removed members that reaches the closing brace takes the comma before the run.
fn push_removals(body: &[u8], members: &[Range<usize>], out: &mut Edits<'_>) {
    let mut i = 0;
    while i < members.len() {
        // The maximal run of members separated only by commas and whitespace.
        let start = members[i].start;
        let mut end = members[i].end;
        let mut j = i + 1;
        while j < members.len() {
            let k = skip_ws(body, end);
            if k < body.len() && body[k] == b',' && skip_ws(body, k + 1) == members[j].start {
                end = members[j].end;
                j += 1;
            } else {
                break;
            }
        }
        let after = skip_ws(body, end);
        if after < body.len() && body[after] == b',' {
            out.push(edit(start..after + 1, Piece::Empty));
        } else {
            let before = skip_ws_back(body, start);
            if before > 0 && body[before - 1] == b',' {
                out.push(edit(before - 1..end, Piece::Empty));
            } else {
                out.push(edit(start..end, Piece::Empty));
            }
        }
        i = j;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rewrite(body: &str, model: &str, slug: &str) -> serde_json::Value {
        let view = RequestView::parse(body.as_bytes()).expect("valid");
        let out =
            upstream_body(body.as_bytes(), &view, model, slug, Fit::default()).expect("object");
        serde_json::from_slice(&out)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out)))
    }

    #[test]
    fn removes_gateway_members_and_splices_model() {
        let v = rewrite(
            r#"{"provider":{"order":["a"]},"model":"x/y","models":["z"],"messages":[{"role":"user","content":"hi"}],"route":"fallback","usage":{"include":true}}"#,
            "up-model",
            "a",
        );
        assert_eq!(
            v,
            serde_json::json!({"model":"up-model","messages":[{"role":"user","content":"hi"}]})
        );
    }

    fn streamed(body: &str, slug: &str) -> String {
        let view = RequestView::parse(body.as_bytes()).expect("valid");
        let fit = Fit {
            ask_usage: true,
            ..Fit::default()
        };
        let out = upstream_body(body.as_bytes(), &view, "m", slug, fit).expect("object");
        serde_json::from_slice::<serde_json::Value>(&out).expect("JSON");
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn b_streams_ask_for_usage() {
        // Absent: added.
        let out = streamed(
            r#"{"model":"x","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
            "a",
        );
        assert_eq!(
            out,
            r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}],"stream_options":{"include_usage":true}}"#
        );
        // Present without it (or false): set, other members kept.
        let out = streamed(
            r#"{"model":"x","stream":true,"stream_options":{"include_obfuscation":false,"include_usage":false},"messages":[{"role":"user","content":"hi"}]}"#,
            "a",
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            v["stream_options"],
            serde_json::json!({"include_obfuscation": false, "include_usage": true})
        );
        // Already asking: byte for byte.
        let body = r#"{"model":"m","stream":true,"stream_options": {"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#;
        assert_eq!(streamed(body, "a"), body);
        // `null`: replaced.
        let out = streamed(
            r#"{"model":"x","stream":true,"stream_options":null,"messages":[{"role":"user","content":"hi"}]}"#,
            "a",
        );
        assert_eq!(
            out,
            r#"{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#
        );
        // Provider options that set it win.
        let body = r#"{"model":"x","stream":true,"messages":[{"role":"user","content":"hi"}],"provider":{"options":{"a":{"stream_options":{"include_usage":false}}}}}"#;
        let v: serde_json::Value = serde_json::from_str(&streamed(body, "a")).unwrap();
        assert_eq!(
            v["stream_options"],
            serde_json::json!({"include_usage": false})
        );
        // Other provider options: merged after the added member, byte for byte.
        let body = r#"{"model":"x","stream":true,"messages":[{"role":"user","content":"hi"}],"provider":{"options":{"a":{"top_k":4}}}}"#;
        assert_eq!(
            streamed(body, "a"),
            r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}],"stream_options":{"include_usage":true},"top_k":4}"#
        );
    }

    #[test]
    fn only_models() {
        let v = rewrite(
            r#"{ "models" : ["a/b"] , "messages":[{"role":"user","content":"hi"}] }"#,
            "m",
            "a",
        );
        assert_eq!(
            v,
            serde_json::json!({"model":"m","messages":[{"role":"user","content":"hi"}]})
        );
        let v = rewrite(
            r#"{"messages":[{"role":"user","content":"hi"}],"models":["a/b"]}"#,
            "m",
            "a",
        );
        assert_eq!(
            v,
            serde_json::json!({"model":"m","messages":[{"role":"user","content":"hi"}]})
        );
    }

    #[test]
    fn options_for_this_slug_only() {
        let body = r#"{"model":"x/y","temperature":1,"provider":{"options":{"a":{"temperature":0.5,"top_k":3,"model":"evil"},"b":{"seed":1}}},"messages":[{"role":"user","content":"hi"}]}"#;
        let v = rewrite(body, "m", "a");
        assert_eq!(
            v,
            serde_json::json!({"model":"m","temperature":0.5,"top_k":3,"messages":[{"role":"user","content":"hi"}]})
        );
        let v = rewrite(body, "m", "b");
        assert_eq!(
            v,
            serde_json::json!({"model":"m","temperature":1,"seed":1,"messages":[{"role":"user","content":"hi"}]})
        );
        let v = rewrite(body, "m", "c");
        assert_eq!(
            v,
            serde_json::json!({"model":"m","temperature":1,"messages":[{"role":"user","content":"hi"}]})
        );
    }

    const GATEWAY: &[&str] = crate::route::GATEWAY_ONLY;
    const PLAIN: &[&str] = &[
        "messages",
        "temperature",
        "x_custom",
        "stop",
        "user",
        "seed",
        "top_k",
        "logit_bias",
    ];

    fn value() -> impl Strategy<Value = serde_json::Value> {
        prop_oneof![
            Just(serde_json::json!(1)),
            Just(serde_json::json!("s,}\"{")),
            Just(serde_json::json!(null)),
            Just(serde_json::json!([1, {"a": ","}])),
            Just(serde_json::json!({"k": [",", "}"]})),
        ]
    }

    /// A value of the right type for `key` (the view rejects wrong types), or `v`.
    fn typed_value(key: &str, v: &serde_json::Value) -> serde_json::Value {
        match key {
            "models" => serde_json::json!(["a/b"]),
            "provider" => serde_json::json!({"sort": "price"}),
            "route" => serde_json::json!("fallback"),
            "session_id" => serde_json::json!("s1"),
            "transforms" | "plugins" => serde_json::json!([]),
            "messages" => serde_json::json!([{"role": "user", "content": "a,}\"{"}]),
            "temperature" | "seed" | "top_k" => serde_json::json!(1),
            "stop" => serde_json::json!(["}\",{"]),
            "logit_bias" => serde_json::json!({"1": 2}),
            _ => v.clone(),
        }
    }

    fn ws() -> impl Strategy<Value = &'static str> {
        prop_oneof![Just(""), Just(" "), Just("\n  "), Just("\r\n\t")]
    }

    fn supported_set() -> impl Strategy<Value = ParamSet> {
        let names = [
            "temperature",
            "stop",
            "seed",
            "top_k",
            "logit_bias",
            "tools",
        ];
        proptest::sample::subsequence(names.to_vec(), 0..=names.len())
            .prop_map(ParamSet::from_names)
    }

    proptest! {
        /// The upstream body is valid JSON, holds exactly the members it should (gateway-only and,
        /// when the endpoint lists parameters, unsupported and unknown ones removed), and every kept
        /// member is the caller's bytes.
        #[test]
        fn result_parses_and_differs_only_as_intended(
            members in proptest::collection::vec((0usize..20, value(), ws(), ws(), ws()), 0..10),
            has_model in any::<bool>(),
            supported in supported_set(),
        ) {
            let mut text = String::from("{");
            let mut expected = serde_json::Map::new();
            let mut kept_bytes = Vec::new();
            let mut seen = std::collections::HashSet::new();
            let mut parts = Vec::new();
            if has_model {
                parts.push(r#""model":"orig/model""#.to_string());
            }
            let mut any_models = false;
            for (k, v, w1, w2, w3) in &members {
                let key = if *k < GATEWAY.len() { GATEWAY[*k] } else { PLAIN[(k - GATEWAY.len()) % PLAIN.len()] };
                if !seen.insert(key) { continue; }
                let v = typed_value(key, v);
                any_models |= key == "models";
                let param = crate::catalog::Parameter::from_name(key);
                let dropped = !supported.is_empty()
                    && match param {
                        Some(p) => !supported.contains(p),
                        None => key == "x_custom",
                    };
                let member = format!("\"{key}\"{w2}:{w3}{v}");
                if !GATEWAY.contains(&key) && !dropped {
                    expected.insert(key.to_string(), v.clone());
                    kept_bytes.push(member.clone());
                }
                parts.push(format!("{w1}{member}{w1}"));
            }
            prop_assume!(has_model || any_models);
            if !seen.contains("messages") {
                let v = typed_value("messages", &serde_json::Value::Null);
                parts.push(format!("\"messages\":{v}"));
                kept_bytes.push(format!("\"messages\":{v}"));
                expected.insert("messages".into(), v);
            }
            text.push_str(&parts.join(","));
            text.push('}');
            expected.insert("model".into(), serde_json::json!("new/model"));
            let view = RequestView::parse(text.as_bytes()).expect("valid request");
            let out = upstream_body(text.as_bytes(), &view, "new/model", "x", Fit { supported, context_length: 0, ask_usage: false })
                .expect("object");
            let out_text = String::from_utf8_lossy(&out);
            let parsed: serde_json::Value = serde_json::from_slice(&out)
                .map_err(|e| TestCaseError::fail(format!("{e}: {out_text}")))?;
            prop_assert_eq!(parsed, serde_json::Value::Object(expected));
            for m in &kept_bytes {
                prop_assert!(out_text.contains(m.as_str()), "{} not kept verbatim in {}", m, out_text);
            }
        }
    }

    fn passthrough(body: &str, max_tokens: Option<u64>) -> String {
        let out = passthrough_body(body.as_bytes(), "claude-native", max_tokens).expect("object");
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn passthrough_changes_only_model_and_gateway_members() {
        // Odd spacing, a cache_control block and a thinking signature: all kept byte for byte.
        let body = "{ \"model\" : \"acme/claude\",\n \"provider\": {\"only\":[\"a\"]},\"messages\":[{\"role\":\"assistant\",\"content\":[{\"type\":\"thinking\",\"thinking\":\"hm\",\"signature\":\"EqQBCkYIBxgCKkB+/=\"}]}],\n  \"system\":[{\"type\":\"text\",\"text\":\"x\",\"cache_control\":{\"type\":\"ephemeral\"}}], \"max_tokens\" :32000 , \"session_id\":\"s\"}";
        assert_eq!(
            passthrough(body, None),
            "{ \"model\":\"claude-native\",\n \"messages\":[{\"role\":\"assistant\",\"content\":[{\"type\":\"thinking\",\"thinking\":\"hm\",\"signature\":\"EqQBCkYIBxgCKkB+/=\"}]}],\n  \"system\":[{\"type\":\"text\",\"text\":\"x\",\"cache_control\":{\"type\":\"ephemeral\"}}], \"max_tokens\" :32000 }"
        );
        assert!(passthrough(body, Some(8192)).contains(", \"max_tokens\":8192 }"));
    }

    #[test]
    fn passthrough_adds_a_missing_model() {
        assert_eq!(
            passthrough(
                r#"{"models":["a/b"],"messages":[{"role":"user","content":"hi"}]}"#,
                None
            ),
            r#"{"model":"claude-native","messages":[{"role":"user","content":"hi"}]}"#
        );
        assert_eq!(
            passthrough(r#"{"models":["a/b"]}"#, None),
            r#"{"model":"claude-native"}"#
        );
        assert_eq!(passthrough("{}", None), r#"{"model":"claude-native"}"#);
        assert!(passthrough_body(b"[1]", "m", None).is_none());
        assert!(passthrough_body(b"{", "m", None).is_none());
    }

    proptest! {
        #[test]
        fn passthrough_parses_and_keeps_every_other_member(
            members in proptest::collection::vec((0usize..16, value(), ws(), ws(), ws()), 0..10),
            has_model in any::<bool>(),
        ) {
            const OTHER: &[&str] = &["messages", "system", "thinking", "x_custom", "max_tokens"];
            let gateway = crate::wire::GATEWAY_ONLY_MEMBERS;
            let mut parts = Vec::new();
            if has_model {
                parts.push(r#""model":"orig/model""#.to_string());
            }
            let mut expected = serde_json::Map::new();
            let mut seen = std::collections::HashSet::new();
            for (k, v, w1, w2, w3) in &members {
                let key = if *k < gateway.len() { gateway[*k] } else { OTHER[(k - gateway.len()) % OTHER.len()] };
                if !seen.insert(key) { continue; }
                if !gateway.contains(&key) { expected.insert(key.to_string(), v.clone()); }
                parts.push(format!("{w1}\"{key}\"{w2}:{w3}{v}{w1}"));
            }
            let text = format!("{{{}}}", parts.join(","));
            expected.insert("model".into(), serde_json::json!("claude-native"));
            let out = passthrough_body(text.as_bytes(), "claude-native", None).expect("object");
            let parsed: serde_json::Value = serde_json::from_slice(&out)
                .map_err(|e| TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&out))))?;
            prop_assert_eq!(parsed, serde_json::Value::Object(expected));
        }
    }
}
