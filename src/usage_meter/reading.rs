//! The meter's reading of a non-streamed answer, made once: as the reader lent to ProviderFallback
//! ([`reader`], see `route::AnswerReader`), which judges the answer by it and passes it on, or by
//! the meter itself when no reading of the same bytes came with the response.
//!
//! Imports `json` (the reading is [`Top::parse_with_choices`]'s, kept as byte ranges).

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;

use super::json::{ChoicesSummary, Raw, Top};
use crate::route::{AnswerReader, AnswerReading, ReadAnswer};

/// [`Top`] and [`ChoicesSummary`] of one body, with byte ranges for `Top`'s borrowed values, so
/// that it can travel in the response extensions.
#[derive(Debug)]
pub(crate) struct Reading {
    /// The body read: a reading applies to these very bytes only.
    at: (usize, usize),
    /// `id`, `model`, `provider`, `service_tier`, `usage`, `choices`, `error`, `message`, `delta`
    /// (`u32` offsets: 108 bytes less to allocate per reading; a body of 4 GiB or more is not read).
    spans: [Option<Range<u32>>; 9],
    kind: Option<String>,
    summary: ChoicesSummary,
}

/// The reader UsageMeter lends to ProviderFallback.
pub(crate) fn reader() -> AnswerReader {
    AnswerReader(read)
}

fn read(body: &Bytes) -> Option<ReadAnswer> {
    // Objects only (serde would read an array into `Top` by position): the judge decides the rest,
    // and a body too long for the reading's offsets is left to it and to the meter.
    if u32::try_from(body.len()).is_err()
        || body.get(crate::route::skim::ws(body, 0)) != Some(&b'{')
    {
        return None;
    }
    let (top, summary) = Top::parse_with_choices(body)?;
    let error = top.error.is_some_and(|e| !e.is_null());
    let message = top.kind.as_deref() == Some("message");
    // Within the body, so within `u32`.
    let span = |v: Option<Raw<'_>>| {
        let s = super::json::span(body, v?)?;
        Some(s.start as u32..s.end as u32)
    };
    let reading = Reading {
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
        ],
        kind: top.kind.map(Cow::into_owned),
        summary,
    };
    Some(ReadAnswer {
        error,
        message,
        reading: AnswerReading(Arc::new(reading)),
    })
}

impl Reading {
    /// Writes the reading in `reading` into `read` (a default one) if it is the meter's, of `body`
    /// (same bytes, same place), and not shared (it travels alone in the response extensions; a
    /// shared one is left to its owners); false, with `read` untouched, otherwise.
    pub(crate) fn read_into<'b>(
        reading: AnswerReading,
        body: &'b [u8],
        read: &mut (Top<'b>, ChoicesSummary),
    ) -> bool {
        let Ok(mut r) = Arc::downcast::<Reading>(reading.0) else {
            return false;
        };
        // Taken from the shared allocation in place, not moved out of it whole.
        let Some(r) = Arc::get_mut(&mut r) else {
            return false;
        };
        if r.at != (body.as_ptr() as usize, body.len()) {
            return false;
        }
        let raw = |s: &Option<Range<u32>>| match s {
            None => Some(None),
            Some(r) => body
                .get(r.start as usize..r.end as usize)
                .map(|v| Some(Raw::new(v))),
        };
        let [id, model, provider, service_tier, usage, choices, error, message, delta] = &r.spans;
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
        let top = &mut read.0;
        (top.id, top.model, top.provider, top.service_tier) = (id, model, provider, service_tier);
        (top.usage, top.choices, top.error) = (usage, choices, error);
        (top.message, top.delta) = (message, delta);
        top.kind = r.kind.take().map(Cow::Owned);
        read.1 = std::mem::take(&mut r.summary);
        true
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

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
            Just(r#""type":"message""#.to_string()),
        ];
        proptest::collection::vec(member, 0..6).prop_map(|m| format!(" {{{}}}\n", m.join(" ,")))
    }

    proptest! {
        /// A reading handed on gives what the meter's own parse of the same bytes gives.
        #[test]
        fn a_reading_is_the_parse(b in answer()) {
            let body = Bytes::from(b);
            let expected = Top::parse_with_choices(&body).map(|(t, s)| format!("{t:?} {s:?}"));
            let got = read(&body).and_then(|r| {
                let mut got = Default::default();
                Reading::read_into(r.reading, &body, &mut got).then(|| format!("{:?} {:?}", got.0, got.1))
            });
            prop_assert_eq!(got, expected);
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
            let first = read(&body).expect("a JSON object is read");
            let expected = Top::parse_with_choices(&body).expect("parsed");
            assert_eq!(first.error, b.starts_with(br#"{"error""#));
            assert_eq!(first.message, b.starts_with(br#"{"type":"message""#));
            let mut got = Default::default();
            assert!(
                Reading::read_into(first.reading, &body, &mut got),
                "the reading of these bytes"
            );
            assert_eq!(format!("{got:?}"), format!("{expected:?}"));
            // The same text elsewhere (a translated or copied answer) is not this reading's.
            let again = read(&body).expect("read");
            let copy = Bytes::copy_from_slice(b);
            assert!(!Reading::read_into(
                again.reading,
                &copy,
                &mut Default::default()
            ));
        }
        assert!(read(&Bytes::from_static(b"[1,2]")).is_none());
        assert!(read(&Bytes::from_static(b"{\"id\":")).is_none());
    }
}
