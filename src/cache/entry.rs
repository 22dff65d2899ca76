//! Preparing an answer for the cache (billable usage zeroed once, at store time) and replaying it
//! (a new generation id and `created`, at every HIT).

use std::borrow::Cow;
use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use memchr::memmem;
use serde_json::value::RawValue;

/// What [`prepare`] learnt from an answer.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Prepared {
    pub(crate) frames: Vec<Bytes>,
    pub(crate) source_id: Option<String>,
    pub(crate) created: Option<i64>,
}

/// The top-level members of one JSON document, borrowed.
type Members<'a> = HashMap<Cow<'a, str>, &'a RawValue>;

/// Copies the JSON value `raw` into `out` with every number replaced by `0` (token counts,
/// `cost`, every `*_details` counter); strings, booleans, nulls, member order and spacing stay.
/// `raw` is valid JSON (serde_json checked it), so a number is any run of number characters
/// outside a string.
fn zero_numbers(raw: &[u8], out: &mut Vec<u8>) {
    let mut in_string = false;
    let mut escaped = false;
    let mut in_number = false;
    for &b in raw {
        if in_string {
            in_string = escaped || b != b'"';
            escaped = !escaped && b == b'\\';
            out.push(b);
            continue;
        }
        let number_char = b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E');
        if in_number && number_char {
            continue;
        }
        in_number = false;
        if b == b'-' || b.is_ascii_digit() {
            in_number = true;
            out.push(b'0');
            continue;
        }
        in_string = b == b'"';
        out.push(b);
    }
}

/// The byte range of `raw` inside `doc` (it was borrowed from it).
fn span(doc: &[u8], raw: &RawValue) -> std::ops::Range<usize> {
    let start = raw.get().as_ptr() as usize - doc.as_ptr() as usize;
    start..start + raw.get().len()
}

/// Reads one JSON document: notes `id` and `created` the first time they are seen, and returns the
/// document with a non-null top-level `usage` zeroed (`None` if unchanged). `Err` when the document
/// mentions usage but cannot be read: such an answer is not cached, since a HIT must never report
/// billable usage.
fn prepare_doc(doc: &[u8], out: &mut Prepared) -> Result<Option<Vec<u8>>, ()> {
    let mentions_usage = memmem::find(doc, b"\"usage\"").is_some();
    if !mentions_usage && out.source_id.is_some() {
        return Ok(None);
    }
    let members: Members<'_> = match serde_json::from_slice(doc) {
        Ok(m) => m,
        Err(_) if mentions_usage => return Err(()),
        Err(_) => return Ok(None),
    };
    // Anthropic's `message_start` nests its id and usage in `message`.
    let message: Option<Members<'_>> = members
        .get("message")
        .and_then(|m| serde_json::from_str(m.get()).ok());
    if out.source_id.is_none() {
        let id = |m: &Members<'_>| serde_json::from_str::<String>(m.get("id")?.get()).ok();
        out.source_id = id(&members).or_else(|| message.as_ref().and_then(id));
        out.created = members
            .get("created")
            .and_then(|r| serde_json::from_str::<i64>(r.get()).ok());
    }
    let mut usages: Vec<&RawValue> = [Some(&members), message.as_ref()]
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("usage").copied())
        .filter(|u| u.get() != "null")
        .collect();
    if usages.is_empty() {
        // `"usage"` inside some other member (a string, a tool argument) is not billing.
        return Ok(None);
    }
    usages.sort_by_key(|u| span(doc, u).start);
    let mut edited = Vec::with_capacity(doc.len());
    let mut copied = 0;
    for u in usages {
        let range = span(doc, u);
        edited.extend_from_slice(&doc[copied..range.start]);
        zero_numbers(u.get().as_bytes(), &mut edited);
        copied = range.end;
    }
    edited.extend_from_slice(&doc[copied..]);
    Ok(Some(edited))
}

/// Zeroes usage in every `data:` line of one SSE frame.
fn prepare_sse_frame(frame: &Bytes, out: &mut Prepared) -> Result<Bytes, ()> {
    let mut edited: Option<BytesMut> = None;
    let mut copied = 0;
    let mut pos = 0;
    while pos < frame.len() {
        // Lines end at LF, CR or CRLF (a CRLF gives an empty line between its two bytes).
        let end = memchr::memchr2(b'\n', b'\r', &frame[pos..]).map_or(frame.len(), |i| pos + i);
        let line = &frame[pos..end];
        if let Some(data) = line.strip_prefix(b"data:") {
            let data = data.strip_prefix(b" ").unwrap_or(data);
            if data != b"[DONE]" {
                if let Some(doc) = prepare_doc(data, out)? {
                    let start = data.as_ptr() as usize - frame.as_ptr() as usize;
                    let buf = edited.get_or_insert_with(|| BytesMut::with_capacity(frame.len()));
                    buf.extend_from_slice(&frame[copied..start]);
                    buf.extend_from_slice(&doc);
                    copied = start + data.len();
                }
            }
        }
        pos = end + 1;
    }
    Ok(match edited {
        Some(mut buf) => {
            buf.extend_from_slice(&frame[copied..]);
            buf.freeze()
        }
        None => frame.clone(),
    })
}

/// Prepares a recorded answer for the cache: zeroes billable usage (in the JSON body, or in every
/// SSE event that carries it) and notes the generation id and `created` a HIT replaces. `None`
/// when usage cannot be zeroed for certain (the answer is then not cached).
pub(crate) fn prepare(frames: Vec<Bytes>, streamed: bool) -> Option<Prepared> {
    let mut out = Prepared::default();
    if streamed {
        let mut prepared = Vec::with_capacity(frames.len());
        for f in &frames {
            prepared.push(prepare_sse_frame(f, &mut out).ok()?);
        }
        out.frames = prepared;
        return Some(out);
    }
    let body: Bytes = match frames.len() {
        0 => Bytes::new(),
        1 => frames.into_iter().next().unwrap_or_default(),
        _ => frames.concat().into(),
    };
    let edited = prepare_doc(&body, &mut out).ok()?;
    out.frames = vec![edited.map_or(body, Bytes::from)];
    Some(out)
}

/// A replacement of every occurrence of one byte pattern.
struct Replace {
    finder: memmem::Finder<'static>,
    with: Vec<u8>,
}

/// What a HIT changes in each replayed frame: the stored generation id (as a JSON string) and the
/// stored `created` member.
pub(crate) struct Rewrite {
    replaces: Vec<Replace>,
}

impl Rewrite {
    /// Replaces `source_id` by `new_id` and `"created":<old>` by `"created":<new>`.
    pub(crate) fn new(
        source_id: Option<&str>,
        new_id: &str,
        created: Option<i64>,
        new_created: i64,
    ) -> Self {
        let mut replaces = Vec::new();
        if let Some(src) = source_id.filter(|s| !s.is_empty()) {
            replaces.push(Replace {
                finder: memmem::Finder::new(format!("\"{src}\"").as_bytes()).into_owned(),
                with: format!("\"{new_id}\"").into_bytes(),
            });
        }
        if let Some(old) = created {
            for sep in [":", ": "] {
                replaces.push(Replace {
                    finder: memmem::Finder::new(format!("\"created\"{sep}{old}").as_bytes())
                        .into_owned(),
                    with: format!("\"created\"{sep}{new_created}").into_bytes(),
                });
            }
        }
        Rewrite { replaces }
    }

    /// One frame, rewritten (the same `Bytes` when nothing matches).
    pub(crate) fn apply(&self, frame: &Bytes) -> Bytes {
        let mut out: Option<Bytes> = None;
        for r in &self.replaces {
            let cur = out.as_ref().unwrap_or(frame);
            let mut last = 0;
            let mut buf: Option<Vec<u8>> = None;
            for at in r.finder.find_iter(cur) {
                let b = buf.get_or_insert_with(|| Vec::with_capacity(cur.len() + 16));
                b.extend_from_slice(&cur[last..at]);
                b.extend_from_slice(&r.with);
                last = at + r.finder.needle().len();
            }
            if let Some(mut b) = buf {
                b.extend_from_slice(&cur[last..]);
                out = Some(Bytes::from(b));
            }
        }
        out.unwrap_or_else(|| frame.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn zeroed(raw: &str) -> String {
        let mut out = Vec::new();
        zero_numbers(raw.as_bytes(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn numbers_become_zero_and_nothing_else_changes() {
        assert_eq!(
            zeroed(
                r#"{"a": 12, "b":-3.5e-7,"c":[1,2.0E+3],"d":"x1 \"9\" 2","e":true,"f":null,"g9":{}}"#
            ),
            r#"{"a": 0, "b":0,"c":[0,0],"d":"x1 \"9\" 2","e":true,"f":null,"g9":{}}"#
        );
        assert_eq!(zeroed("7"), "0");
        assert_eq!(
            zeroed(r#""\\" "#),
            r#""\\" "#,
            "an escaped backslash ends the escape"
        );
    }

    #[test]
    fn json_usage_is_zeroed_in_place() {
        let body = br#"{"id":"gen-1","created":17,"choices":[{"message":{"content":"usage"}}],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,"cost":0.002,"is_byok":false,"prompt_tokens_details":{"cached_tokens":3},"cost_details":{"upstream_inference_cost":null}},"provider":"Acme"}"#;
        let p = prepare(vec![Bytes::from_static(body)], false).unwrap();
        assert_eq!(p.source_id.as_deref(), Some("gen-1"));
        assert_eq!(p.created, Some(17));
        let v: Value = serde_json::from_slice(&p.frames[0]).unwrap();
        assert_eq!(v["usage"]["prompt_tokens"], 0);
        assert_eq!(v["usage"]["total_tokens"], 0);
        assert_eq!(v["usage"]["cost"], 0);
        assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
        assert_eq!(v["usage"]["is_byok"], false);
        assert!(v["usage"]["cost_details"]["upstream_inference_cost"].is_null());
        let text = std::str::from_utf8(&p.frames[0]).unwrap();
        assert!(
            text.starts_with(r#"{"id":"gen-1","created":17,"choices""#),
            "{text}"
        );
        assert!(text.ends_with(r#","provider":"Acme"}"#), "{text}");
    }

    #[test]
    fn sse_usage_is_zeroed_and_frames_kept() {
        let frames = vec![
            Bytes::from_static(b"data: {\"id\":\"gen-9\",\"created\":5,\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n"),
            Bytes::from_static(b": keep-alive\n\ndata: {\"id\":\"gen-9\",\"created\":5,\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":2,\"total_tokens\":6,\"cost\":0.1}}\n\n"),
            Bytes::from_static(b"data: [DONE]\n\n"),
        ];
        let p = prepare(frames.clone(), true).unwrap();
        assert_eq!(p.frames.len(), 3);
        assert_eq!(p.frames[0], frames[0], "no usage: same bytes");
        assert_eq!(p.frames[2], frames[2]);
        assert_eq!(
            &p.frames[1][..],
            &b": keep-alive\n\ndata: {\"id\":\"gen-9\",\"created\":5,\"choices\":[],\"usage\":{\"prompt_tokens\":0,\"completion_tokens\":0,\"total_tokens\":0,\"cost\":0}}\n\n"[..]
        );
        assert_eq!(p.source_id.as_deref(), Some("gen-9"));
    }

    #[test]
    fn anthropic_streams_give_their_message_id() {
        let frames = vec![
            Bytes::from_static(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"gen-a\",\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\n"),
            Bytes::from_static(b"event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":30}}\n\n"),
        ];
        let p = prepare(frames, true).unwrap();
        assert_eq!(p.source_id.as_deref(), Some("gen-a"));
        assert!(std::str::from_utf8(&p.frames[0])
            .unwrap()
            .contains(r#""usage":{"input_tokens":0,"output_tokens":0}"#));
        assert!(std::str::from_utf8(&p.frames[1])
            .unwrap()
            .contains(r#""usage":{"output_tokens":0}"#));
    }

    #[test]
    fn unreadable_usage_is_not_cached() {
        assert!(prepare(
            vec![Bytes::from_static(b"{\"usage\":{\"prompt_tokens\":1")],
            false
        )
        .is_none());
        let split = vec![
            Bytes::from_static(b"data: {\"usage\":{\"prompt_tokens\":1"),
            Bytes::from_static(b"}}\n\n"),
        ];
        assert!(prepare(split, true).is_none());
        // Not JSON and no usage: cached as is.
        assert!(prepare(vec![Bytes::from_static(b"plain")], false).is_some());
    }

    #[test]
    fn rewrite_replaces_id_and_created() {
        let rw = Rewrite::new(Some("gen-1"), "gen-22", Some(17), 99);
        let f = Bytes::from_static(br#"{"id":"gen-1","created":17,"x":"gen-1x","y":"gen-1"}"#);
        assert_eq!(
            &rw.apply(&f)[..],
            &br#"{"id":"gen-22","created":99,"x":"gen-1x","y":"gen-22"}"#[..]
        );
        let other = Bytes::from_static(b"data: [DONE]\n\n");
        assert_eq!(
            rw.apply(&other).as_ptr(),
            other.as_ptr(),
            "untouched frames are not copied"
        );
    }
}
