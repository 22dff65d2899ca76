//! The meter's reading of a non-streamed answer, made once: as the reader lent to ProviderFallback
//! ([`reader`], see `route::AnswerReader`), which judges the answer by it and passes it on, or by
//! the meter itself when no reading of the same bytes came with the response.
//!
//! Imports `json` (the reading is [`Top::parse_with_choices_into`]'s, kept as byte ranges) and
//! `cost` (the usage counts, as plain data).

use std::borrow::Cow;

use bytes::Bytes;

use super::cost::WireUsage;
use super::json::{ChoicesSummary, Raw, Top};
use crate::route::{AnswerReader, AnswerReading, ByteSpan, ReadAnswer};

/// The reader UsageMeter lends to ProviderFallback.
pub(crate) fn reader() -> AnswerReader {
    AnswerReader(read)
}

/// [`Top::parse_with_choices_into`] of `body` as an [`AnswerReading`], written into `slot`: byte
/// ranges for `Top`'s borrowed values (its `type` too: one with escapes, which the parse
/// unescapes, is judged but not written: the meter reads such a body itself), the summary's data
/// as it is.
fn read(body: &Bytes, slot: &mut Option<AnswerReading>) -> Option<ReadAnswer> {
    // Objects only (serde would read an array into `Top` by position): the judge decides the rest,
    // and a body too long for the reading's offsets is left to it and to the meter.
    if u32::try_from(body.len()).is_err()
        || body.get(crate::route::skim::ws(body, 0)) != Some(&b'{')
    {
        return None;
    }
    // Parsed in place (a returned parse is moved, a few hundred bytes).
    let mut parsed = Default::default();
    if !Top::parse_with_choices_into(body, &mut parsed) {
        return None;
    }
    let (top, summary) = &mut parsed;
    let answer = ReadAnswer {
        error: top.error.is_some_and(|e| !e.is_null()),
        message: top.kind.as_deref() == Some("message"),
    };
    let kind = match &top.kind {
        None => Some(None),
        Some(Cow::Borrowed(k)) => super::json::span(body, Raw::new(k.as_bytes())).map(Some),
        Some(Cow::Owned(_)) => None,
    };
    let Some(kind) = kind else {
        // Judged, but no reading: the meter reads the body itself.
        return Some(answer);
    };
    // Within the body, so within `u32`.
    let span = |v: Option<Raw<'_>>| ByteSpan::of(v.and_then(|v| super::json::span(body, v)));
    *slot = Some(AnswerReading {
        at: (body.as_ptr() as usize, body.len()),
        spans: [
            span(top.id),
            span(top.model),
            span(top.provider),
            span(top.service_tier),
            span(top.usage),
            span(top.choices),
            span(top.error),
            span(top.message),
            span(top.delta),
            ByteSpan::of(kind),
        ],
        finish_reason: summary.finish_reason.take(),
        content_bytes: summary.content_bytes,
        usage: summary.usage.as_ref().map(WireUsage::to_counts),
    });
    Some(answer)
}

/// Writes `reading` into `read` (a default one) if it is a reading of `body` (same bytes, same
/// place); false, with `read` untouched, otherwise (the meter then reads `body` itself). Read in
/// place: only the finish reason is taken from it.
pub(crate) fn read_into<'b>(
    reading: &mut AnswerReading,
    body: &'b [u8],
    read: &mut (Top<'b>, ChoicesSummary),
) -> bool {
    if reading.at != (body.as_ptr() as usize, body.len()) {
        return false;
    }
    let bytes = |s: ByteSpan| match s.get() {
        None => Some(None),
        Some(r) => body.get(r).map(Some),
    };
    let raw = |s: ByteSpan| bytes(s).map(|v| v.map(Raw::new));
    let [id, model, provider, service_tier, usage, choices, error, message, delta, kind] =
        reading.spans;
    let (Some(id), Some(model), Some(provider), Some(service_tier), Some(usage)) = (
        raw(id),
        raw(model),
        raw(provider),
        raw(service_tier),
        raw(usage),
    ) else {
        return false;
    };
    let (Some(choices), Some(error), Some(message), Some(delta)) =
        (raw(choices), raw(error), raw(message), raw(delta))
    else {
        return false;
    };
    let Some(kind) = bytes(kind) else {
        return false;
    };
    let kind = match kind.map(std::str::from_utf8) {
        None => None,
        Some(Ok(k)) => Some(Cow::Borrowed(k)),
        Some(Err(_)) => return false,
    };
    let top = &mut read.0;
    (top.id, top.model, top.provider, top.service_tier) = (id, model, provider, service_tier);
    (top.usage, top.choices, top.error) = (usage, choices, error);
    (top.message, top.delta, top.kind) = (message, delta, kind);
    let summary = &mut read.1;
    summary.finish_reason = reading.finish_reason.take();
    summary.content_bytes = reading.content_bytes;
    summary.usage = reading.usage.as_ref().map(WireUsage::from_counts);
    true
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// What the reader gives, with the reading it wrote.
    struct Read {
        error: bool,
        message: bool,
        reading: AnswerReading,
    }

    /// The reader's answer and reading of `body` (`None` when it writes no reading).
    fn read(body: &Bytes) -> Option<Read> {
        let mut slot = None;
        let r = super::read(body, &mut slot)?;
        let reading = slot?;
        let (error, message) = (r.error, r.message);
        Some(Read {
            error,
            message,
            reading,
        })
    }

    /// Answers with what a reading's byte ranges must get right: text above ASCII, escapes,
    /// whitespace, `null`s, members in any order.
    fn answer() -> impl Strategy<Value = String> {
        let text = prop_oneof![
            Just(r#""plain""#),
            Just(r#""caf\u00e9 \"quoted\"""#),
            Just("\"d\u{e9}j\u{e0} \u{1F600}\""),
            Just("null"),
            Just("[1, {\"a\": \"\u{e9}\"}]"),
        ];
        let member = prop_oneof![
            text.clone().prop_map(|t| format!(r#""id":{t}"#)),
            text.clone().prop_map(|t| format!(r#""model" : {t}"#)),
            text.clone().prop_map(|t| format!(r#""provider":{t}"#)),
            text.clone().prop_map(|t| format!(r#""error":{t}"#)),
            text.clone().prop_map(|t| format!(
                r#""choices":[{{"message":{{"content":{t}}},"finish_reason":"stop"}}]"#
            )),
            Just(r#""usage":{"prompt_tokens":3,"completion_tokens":2}"#.to_string()),
            // Every count the meter reads, details (some `null` or empty) and `cost`.
            Just(
                r#""usage":{"prompt_tokens":5,"completion_tokens":4,"prompt_tokens_details":{"cached_tokens":1,"cache_write_tokens":2},"completion_tokens_details":{"reasoning_tokens":3},"server_tool_use_details":{"web_search_requests":1},"cost":0.5}"#
                    .to_string()
            ),
            Just(
                r#""usage":{"input_tokens":3,"output_tokens":2,"cache_read_input_tokens":1,"cache_creation_input_tokens":4,"prompt_tokens_details":{},"completion_tokens_details":null,"cost":null}"#
                    .to_string()
            ),
            Just(r#""type":"message""#.to_string()),
            // Unescaped by the parse: judged, not handed on.
            Just(r#""type":"mess\u0061ge""#.to_string()),
        ];
        proptest::collection::vec(member, 0..6).prop_map(|m| format!(" {{{}}}\n", m.join(" ,")))
    }

    proptest! {
        /// A reading handed on gives what the meter's own parse of the same bytes gives.
        #[test]
        fn a_reading_is_the_parse(b in answer()) {
            let body = Bytes::from(b);
            let parsed = Top::parse_with_choices(&body);
            let escaped = matches!(&parsed, Some((t, _)) if matches!(t.kind, Some(Cow::Owned(_))));
            let expected = parsed.map(|(t, s)| format!("{t:?} {s:?}"));
            if escaped {
                // Judged as the parse judges it, with no reading: the meter parses the body.
                let mut slot = None;
                let r = super::read(&body, &mut slot);
                prop_assert_eq!(r.map(|r| r.message), Some(true));
                prop_assert!(slot.is_none());
            } else {
                let got = read(&body).and_then(|mut r| {
                    let mut got = Default::default();
                    read_into(&mut r.reading, &body, &mut got)
                        .then(|| format!("{:?} {:?}", got.0, got.1))
                });
                prop_assert_eq!(got, expected);
            }
        }
    }

    /// The reading handed on is the meter's own reading of the same bytes, and of no other bytes.
    #[test]
    fn a_reading_is_the_parse_of_the_same_bytes_only() {
        let bodies: [&[u8]; 4] = [
            br#"{"id":"x","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#,
            // Whitespace, an escape, a provider and a tier: the skimmer's and serde's shapes.
            br#"{ "id" : "a\"b", "provider":"P", "service_tier":"flex", "choices" : [ ], "usage" : null }"#,
            br#"{"type":"message","id":"msg_1","content":[{"type":"text","text":"hi"}],"usage":{"input_tokens":2,"output_tokens":1}}"#,
            br#"{"error":{"code":502,"message":"down"}}"#,
        ];
        for b in bodies {
            let body = Bytes::copy_from_slice(b);
            let mut first = read(&body).expect("a JSON object is read");
            let expected = Top::parse_with_choices(&body).expect("parsed");
            assert_eq!(first.error, b.starts_with(br#"{"error""#));
            assert_eq!(first.message, b.starts_with(br#"{"type":"message""#));
            let mut got = Default::default();
            assert!(
                read_into(&mut first.reading, &body, &mut got),
                "the reading of these bytes"
            );
            assert_eq!(format!("{got:?}"), format!("{expected:?}"));
            // The same text elsewhere (a translated or copied answer) is not this reading's.
            let mut again = read(&body).expect("read");
            let copy = Bytes::copy_from_slice(b);
            assert!(!read_into(
                &mut again.reading,
                &copy,
                &mut Default::default()
            ));
        }
        assert!(read(&Bytes::from_static(b"[1,2]")).is_none());
        assert!(read(&Bytes::from_static(b"{\"id\":")).is_none());
    }

    /// A reading of other bytes is not used: an answer translated from another wire (the reading
    /// is of the upstream's answer), or the same text at another address. The reading is left as
    /// it came and the meter reads the body itself, as it does without a reading.
    #[test]
    fn a_reading_of_other_bytes_is_not_used() {
        let upstream = Bytes::from_static(
            br#"{"type":"message","id":"msg_1","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","usage":{"input_tokens":2,"output_tokens":1}}"#,
        );
        // Longer than the upstream's answer: the reading's ranges all fall within it.
        let translated = Bytes::from_static(
            br#"{"id":"msg_1","object":"chat.completion","model":"claude","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":2,"completion_tokens":1,"total_tokens":3},"padding":"...................................."}"#,
        );
        let elsewhere = Bytes::copy_from_slice(&upstream);
        for other in [&translated, &elsewhere] {
            let mut r = read(&upstream).expect("read").reading;
            let before = r.clone();
            let mut got = Default::default();
            assert!(!read_into(&mut r, other, &mut got));
            assert_eq!(r, before, "the reading is left as it came");
            let untouched: (Top<'_>, ChoicesSummary) = Default::default();
            assert_eq!(
                format!("{got:?}"),
                format!("{untouched:?}"),
                "`read` is untouched"
            );
        }
    }
}
