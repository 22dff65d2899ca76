//! The SSE fast path (whole ordinary content chunk frames, [`OnEvent::whole_event`]) against the
//! scanner's own path: random streams of the usual chunk shape, cut into random frames, fed to a
//! handler with the fast path and to one without it, must emit the same bytes frame by frame and
//! leave the same observations. And the template's copies against the rules alone: a handler
//! that never learns the template must emit the same bytes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use tokio::time::Instant;

use super::edit::{plain_line, Handler, StreamEdits};
use super::settle::{Ctx, Obs};
use super::sse::{OnEvent, SseScanner};
use crate::clock::Clock;

/// A monotonic clock that moves one millisecond per [`Ticks::tick`], so that the time of each
/// observation tells which frame it was made in.
struct Ticks {
    base: Instant,
    ticks: AtomicU64,
}

impl Ticks {
    fn tick(&self) {
        self.ticks.fetch_add(1, Ordering::SeqCst);
    }
}

impl Clock for Ticks {
    fn now(&self) -> Instant {
        self.base + Duration::from_millis(self.ticks.load(Ordering::SeqCst))
    }
    fn unix_millis(&self) -> i64 {
        1_763_780_000_000
    }
}

/// A stream context: rewriting or not, keeping `content_limit` bytes of content.
fn ctx(clock: Arc<Ticks>, rewrite: bool, content_limit: usize) -> Ctx {
    let cfg = super::config::Config {
        clock,
        rewrite,
        content_limit,
        ..Default::default()
    };
    Ctx {
        cfg: Arc::new(cfg),
        id: super::record::GenerationId::from_parts(&["gen-fast-1"]),
        created_ms: 0,
        start: Instant::now(),
        key: None,
        requested_model: None,
        catalog: None,
        first_candidate: None,
        request_ms: 0,
        prompt_estimate: 0,
        images: 0,
        hold: None,
        endpoint: None,
        endpoint_key: None,
        model: "acme/served-model".into(),
        provider_name: "Acme".into(),
        streamed: true,
        success: true,
        rewrite,
        served_latency: None,
        attempts: 1,
        service_tier: None,
        upstream_request_id: None,
        embeddings: false,
        completions: false,
        served_tier: None,
        app: None,
        session_id: None,
        provider_responses: Default::default(),
        preset: None,
        span: tracing::Span::none(),
        metadata: None,
    }
}

/// The handler without the fast path: every frame goes through the scanner.
struct Slow<'a>(Handler<'a>);

impl OnEvent for Slow<'_> {
    fn on_event(&mut self, name: &[u8], data: &[u8]) -> Option<Vec<u8>> {
        self.0.on_event(name, data)
    }
    fn rewrites(&self) -> bool {
        self.0.rewrites()
    }
    fn rewrite(&mut self, src: &[u8], out: &mut BytesMut) {
        self.0.rewrite(src, out);
    }
}

/// One meter's stream state.
struct Side {
    ctx: Ctx,
    obs: Obs,
    edits: StreamEdits,
    sse: SseScanner,
}

impl Side {
    fn new(clock: Arc<Ticks>, rewrite: bool, content_limit: usize) -> Self {
        Side {
            ctx: ctx(clock, rewrite, content_limit),
            obs: Obs::default(),
            edits: StreamEdits::default(),
            sse: SseScanner::default(),
        }
    }

    /// A side that never learns the content chunk template (see
    /// [`StreamEdits::without_template`]).
    fn without_template(clock: Arc<Ticks>, rewrite: bool, content_limit: usize) -> Self {
        Side {
            edits: StreamEdits::without_template(),
            ..Side::new(clock, rewrite, content_limit)
        }
    }

    /// Feeds a frame (`last`: then ends the stream); returns what was emitted.
    fn feed(&mut self, frame: Option<Bytes>, fast: bool) -> Bytes {
        let mut h = Handler::new(&self.ctx, &mut self.obs, &mut self.edits);
        match (frame, fast) {
            (Some(f), true) => self.sse.feed(f, &mut h),
            (Some(f), false) => self.sse.feed(f, &mut Slow(h)),
            (None, true) => self.sse.finish(&mut h),
            (None, false) => self.sse.finish(&mut Slow(h)),
        }
    }
}

/// A chunk of the usual shape around `delta` and `finish`: compact like OpenAI's (`shape` bit 0
/// clear) or spaced, with its `model` (bit 1) and `id` (bit 2) members before the choices or
/// after them, where the rewrite then edits the bytes after the content. With bit 3 (and the `id`
/// before the choices), the choice repeats the `id` member after the content: the `id` rule then
/// matches on both sides of the content, and no template may be learned.
fn chunk(shape: u8, delta: &str, finish: &str) -> String {
    let repeat = if shape & 12 == 8 {
        r#","id":"chatcmpl-abc""#
    } else {
        ""
    };
    let mut c = format!(
        r#"{{"id":"chatcmpl-abc","object":"chat.completion.chunk","created":1763780000,"model":"up/model","choices":[{{"index":0,"delta":{delta},"finish_reason":{finish}{repeat}}}]}}"#
    );
    for (bit, member) in [(2, r#""model":"up/model""#), (4, r#""id":"chatcmpl-abc""#)] {
        if shape & bit != 0 {
            c = c.replacen(&format!("{member},"), "", 1);
            c.insert_str(c.len() - 1, &format!(",{member}"));
        }
    }
    if shape & 1 == 0 {
        c
    } else {
        c.replace("\":", "\": ").replace(",\"", ", \"")
    }
}

/// A content string as written in JSON: mostly escaped pieces, sometimes raw quotes, CR or LF
/// (broken JSON the meter must still read as the scanner does).
fn content() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => Just(" token"),
        2 => Just("a"),
        1 => Just(""),
        1 => Just("\\\""),
        1 => Just("\\\\"),
        1 => Just("\\n"),
        1 => Just("\\u00e9"),
        1 => Just("é"),
        1 => Just("日本"),
        1 => Just("\\"),
        1 => Just("\""),
        1 => Just("\r"),
        1 => Just("\n"),
        1 => Just("lorem ipsum dolor sit amet, consectetur"),
    ];
    proptest::collection::vec(piece, 0..6).prop_map(|p| p.concat())
}

/// One event of a stream (of chunks of `shape`): mostly ordinary content chunks, some unusual ones.
fn event(shape: u8) -> impl Strategy<Value = String> {
    let ordinary =
        content().prop_map(move |c| chunk(shape, &format!(r#"{{"content":"{c}"}}"#), "null"));
    prop_oneof![
        12 => ordinary.prop_map(|c| format!("data: {c}\n\n")),
        1 => content().prop_map(move |c| format!(
            "data: {}\n\n",
            chunk(shape, &format!(r#"{{"content":"{c}"}}"#), "\"stop\"")
        )),
        // Not content, with a prefix as long as the content chunk's: only its bytes differ.
        1 => content().prop_map(move |c| format!(
            "data: {}\n\n",
            chunk(shape, &format!(r#"{{"refusal":"{c}"}}"#), "null")
        )),
        1 => Just(": keep-alive\n\n".to_owned()),
        1 => Just("data: [DONE]\n\n".to_owned()),
        1 => content().prop_map(move |c| format!(
            "event: note\ndata: {}\n\n",
            chunk(shape, &format!(r#"{{"content":"{c}"}}"#), "null")
        )),
        1 => content().prop_map(move |c| format!(
            "data: {}\r\n\r\n",
            chunk(shape, &format!(r#"{{"content":"{c}"}}"#), "null")
        )),
        1 => content().prop_map(move |c| format!(
            "data:{}\ndata: \n\n",
            chunk(shape, &format!(r#"{{"content":"{c}"}}"#), "null")
        )),
        1 => Just(
            r#"data: {"id":"chatcmpl-abc","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}
    "#
            .to_owned()
                + "\n"
        ),
        1 => Just(r#"data: {"error":{"message":"boom","code":502}}"#.to_owned() + "\n\n"),
    ]
}

/// A stream: the role chunk, then events; and how to cut it into frames.
fn stream() -> impl Strategy<Value = (Vec<String>, Vec<u8>, bool, usize)> {
    (0u8..16).prop_flat_map(|shape| {
        let first = chunk(shape, r#"{"role":"assistant","content":""}"#, "null");
        let events = proptest::collection::vec(event(shape), 0..40).prop_map(move |mut e| {
            e.insert(0, format!("data: {first}\n\n"));
            e
        });
        (
            events,
            proptest::collection::vec(any::<u8>(), 48),
            any::<bool>(),
            prop_oneof![Just(0usize), Just(7), Just(4096)],
        )
    })
}

/// Cuts the events into frames: most events are a frame of their own; `cuts` (one byte per
/// event) merge some with the next or split them at a position.
fn frames(events: &[String], cuts: &[u8]) -> Vec<Bytes> {
    let mut frames = Vec::new();
    let mut pending = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let c = cuts[i % cuts.len()];
        pending.extend_from_slice(e.as_bytes());
        match c % 8 {
            0 => continue,
            1 => {
                let at = usize::from(c) % pending.len();
                frames.push(Bytes::copy_from_slice(&pending[..at]));
                pending.drain(..at);
            }
            _ => {}
        }
        frames.push(Bytes::from(std::mem::take(&mut pending)));
    }
    if !pending.is_empty() {
        frames.push(Bytes::from(pending));
    }
    frames
}

/// Bytes around the edges of what [`plain_line`] looks for.
fn byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        1 => Just(b'"'),
        1 => Just(b'\r'),
        1 => Just(b'\n'),
        1 => Just(b'\\'),
        1 => Just(b'!'),
        1 => Just(b' '),
        1 => Just(0x1f),
        1 => Just(0),
        1 => Just(1),
        1 => Just(b'#'),
        6 => any::<u8>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn plain_line_is_the_byte_test(
        s in proptest::collection::vec(byte(), 0..60),
        after in proptest::collection::vec(byte(), 0..20),
    ) {
        let slow = !s.iter().any(|b| *b == b'"' || *b < 0x20)
            && s.iter().rev().take_while(|b| **b == b'\\').count() % 2 == 0;
        prop_assert_eq!(plain_line(&[&s[..], &after[..]].concat(), s.len()), slow);
    }

    #[test]
    fn fast_path_is_the_scanners((events, cuts, rewrite, limit) in stream()) {
        let clock = Arc::new(Ticks { base: Instant::now(), ticks: AtomicU64::new(0) });
        let mut fast = Side::new(clock.clone(), rewrite, limit);
        let mut slow = Side::new(clock.clone(), rewrite, limit);
        for (i, f) in frames(&events, &cuts).into_iter().enumerate() {
            let a = fast.feed(Some(f.clone()), true);
            let b = slow.feed(Some(f), false);
            prop_assert_eq!(
                String::from_utf8_lossy(&a),
                String::from_utf8_lossy(&b),
                "frame {}",
                i
            );
            clock.tick();
        }
        prop_assert_eq!(fast.feed(None, true), slow.feed(None, false));
        prop_assert_eq!(format!("{:?}", fast.obs), format!("{:?}", slow.obs));
    }

    #[test]
    fn template_is_the_rules((events, cuts, rewrite, limit) in stream()) {
        let clock = Arc::new(Ticks { base: Instant::now(), ticks: AtomicU64::new(0) });
        let mut fast = Side::new(clock.clone(), rewrite, limit);
        let mut rules = Side::without_template(clock.clone(), rewrite, limit);
        for (i, f) in frames(&events, &cuts).into_iter().enumerate() {
            let a = fast.feed(Some(f.clone()), true);
            let b = rules.feed(Some(f), true);
            prop_assert_eq!(
                String::from_utf8_lossy(&a),
                String::from_utf8_lossy(&b),
                "frame {}",
                i
            );
            clock.tick();
        }
        prop_assert_eq!(fast.feed(None, true), rules.feed(None, true));
        prop_assert_eq!(fast.obs.content_bytes, rules.obs.content_bytes);
        prop_assert_eq!(fast.obs.usage, rules.obs.usage);
        prop_assert_eq!(&fast.obs.finish_reason, &rules.obs.finish_reason);
    }
}

/// [`plain_line`] at every length its word tests cover and past them, for strings that end in
/// one or two backslashes (an escape or not) or in a plain byte, followed by bytes it must not read
/// as part of the string.
#[test]
fn plain_line_reads_the_last_byte_at_every_length() {
    let slow = |s: &[u8]| {
        !s.iter().any(|b| *b == b'"' || *b < 0x20)
            && s.iter().rev().take_while(|b| **b == b'\\').count() % 2 == 0
    };
    for n in 0..=40 {
        for end in [&b""[..], b"\\", b"\\\\", b"\\a", b"\""] {
            if end.len() > n {
                continue;
            }
            let mut s = vec![b'x'; n - end.len()];
            s.extend_from_slice(end);
            for after in [&b""[..], b"\\", b"\"\\\\\\\\\\\\\\\\\\\\\\\\\\\\"] {
                let full = [&s[..], after].concat();
                assert_eq!(plain_line(&full, n), slow(&s), "{s:?} then {after:?}");
            }
        }
    }
}

/// The fast path does take the usual stream: every content chunk after the one the template is
/// learned from, rewritten or not.
#[test]
fn fast_path_takes_ordinary_chunks() {
    for rewrite in [false, true] {
        let clock = Arc::new(Ticks {
            base: Instant::now(),
            ticks: AtomicU64::new(0),
        });
        let mut side = Side::new(clock, rewrite, 0);
        let role = chunk(0, r#"{"role":"assistant","content":""}"#, "null");
        side.feed(Some(Bytes::from(format!("data: {role}\n\n"))), true);
        let mut taken = 0;
        for c in ["one", " two", " th\\\\ree", ""] {
            let frame = Bytes::from(format!(
                "data: {}\n\n",
                chunk(0, &format!(r#"{{"content":"{c}"}}"#), "null")
            ));
            let mut h = Handler::new(&side.ctx, &mut side.obs, &mut side.edits);
            let mut out = BytesMut::new();
            match h.whole_event(frame.clone(), &mut out) {
                Ok(emitted) => {
                    taken += 1;
                    let text = String::from_utf8_lossy(&emitted).into_owned();
                    assert_eq!(text.contains("gen-fast-1"), rewrite, "{text}");
                    assert!(text.contains(&format!("\"content\":\"{c}\"")), "{text}");
                }
                Err(back) => {
                    assert_eq!(back, frame);
                    side.feed(Some(back), true);
                }
            }
        }
        // "one" teaches the template; the three after it take the fast path.
        assert_eq!(taken, 3, "rewrite {rewrite}");
        assert_eq!(side.obs.content_bytes, 3 + 4 + 8);
    }
}

/// The handler counting the events the scanner reads line by line (`on_event`).
struct Counting<'a>(Handler<'a>, usize);

impl OnEvent for Counting<'_> {
    fn on_event(&mut self, name: &[u8], data: &[u8]) -> Option<Vec<u8>> {
        self.1 += 1;
        self.0.on_event(name, data)
    }
    fn rewrites(&self) -> bool {
        self.0.rewrites()
    }
    fn rewrite(&mut self, src: &[u8], out: &mut BytesMut) {
        self.0.rewrite(src, out);
    }
    fn known_event(&mut self, buf: &[u8]) -> Option<usize> {
        self.0.known_event(buf)
    }
}

/// A frame of several events (an upstream's burst read at once) has its usual events taken whole
/// too, not read line by line, and emits what one event per frame would.
#[test]
fn known_events_in_a_burst_skip_the_line_scan() {
    for rewrite in [false, true] {
        let clock = Arc::new(Ticks {
            base: Instant::now(),
            ticks: AtomicU64::new(0),
        });
        let event = |c: &str| {
            format!(
                "data: {}\n\n",
                chunk(0, &format!(r#"{{"content":"{c}"}}"#), "null")
            )
        };
        let mut one = Side::new(clock.clone(), rewrite, 0);
        one.feed(Some(Bytes::from(event("teach"))), true);
        let mut burst = Side::new(clock, rewrite, 0);
        burst.feed(Some(Bytes::from(event("teach"))), true);
        let words = ["a", "b\\\\c", "", "d e"];
        let expected: Vec<u8> = words
            .iter()
            .flat_map(|w| one.feed(Some(Bytes::from(event(w))), true).to_vec())
            .collect();
        let frame: String = words.iter().map(|w| event(w)).collect::<String>() + ": ping\n\n";
        let mut h = Counting(
            Handler::new(&burst.ctx, &mut burst.obs, &mut burst.edits),
            0,
        );
        let out = burst.sse.feed(Bytes::from(frame), &mut h);
        assert_eq!(h.1, 0, "no event read line by line (rewrite {rewrite})");
        assert_eq!(out[..expected.len()], expected[..], "rewrite {rewrite}");
        assert!(out.ends_with(b": ping\n\n"));
        assert_eq!(burst.obs.content_bytes, one.obs.content_bytes);
    }
}
