//! An incremental SSE scanner that decides when a stream has started and how it ended.

use std::borrow::Cow;
use std::ops::Range;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::body::SseLines;
use crate::route::skim;

/// How far a stream has got, as seen by [`Watch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// No content-bearing event yet.
    Waiting,
    /// Failed before content (see [`Watch::failed`]).
    Failed,
    /// Content has been seen.
    Started,
    /// `data: [DONE]` after content.
    Done,
    /// An in-band error event after content. It is not passed on: the gateway ends the stream
    /// with its own error chunk, so no provider text (which may quote a key) reaches the caller.
    UpstreamError,
    /// A `data:` payload after content that is not JSON (a truncated or garbled event). It is not
    /// passed on either: SDKs would fail to decode it.
    Invalid,
}

/// What a stream looked like before content, when it failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PreContentFailure {
    /// `data: [DONE]` without any content.
    EmptyDone,
    /// An event with a top-level `error`.
    InBandError,
    /// A `data:` payload that is not JSON.
    Invalid,
}

/// Scans SSE bytes, split anywhere, with the SSE rules' line ends (CRLF, LF or a lone CR, as the
/// caller's SSE parser reads them), keeping only the unfinished line and the current event's data.
#[derive(Debug)]
pub(crate) struct Watch {
    lines: SseLines,
    data: Vec<u8>,
    has_data: bool,
    pub(crate) phase: Phase,
    pub(crate) failed: Option<PreContentFailure>,
    /// `created` of the first content event, for the error chunk (its `id` and `model` are
    /// [`learned`](Self::learned)).
    pub(crate) created: Option<i64>,
    /// The `code` of an in-band error after content (a number or a short token), for the
    /// gateway's error chunk.
    pub(crate) upstream_code: Option<serde_json::Value>,
    /// The end of the last complete event in the bytes of the last [`feed`](Self::feed) (the
    /// bytes after it belong to an event not finished yet, or to a bad one).
    last_end: Option<usize>,
    /// The usual event's shape and the first content event's `id` and `model`.
    learned: Learned,
    /// The shape is the first content event's and has not fit an event yet.
    tentative: bool,
}

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    created: Option<i64>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
    #[serde(borrow, default)]
    choices: Option<Vec<Choice<'a>>>,
    #[serde(borrow, default)]
    usage: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(borrow, default)]
    delta: Option<Delta<'a>>,
    #[serde(borrow, default)]
    finish_reason: Option<&'a RawValue>,
    /// A legacy completions chunk's text.
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reasoning: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    refusal: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tool_calls: Option<&'a RawValue>,
}

/// What is read of an event after content: whether it has an `error` (the parse also checks the
/// event is JSON).
#[derive(Deserialize)]
struct ErrorOnly<'a> {
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

fn nonnull(r: Option<&RawValue>) -> bool {
    r.is_some_and(|r| r.get() != "null")
}

fn nonempty(s: &Option<Cow<'_, str>>) -> bool {
    s.as_deref().is_some_and(|s| !s.is_empty())
}

impl Chunk<'_> {
    /// A data event is content-bearing when a choice's delta has non-empty `content`, `reasoning`,
    /// `refusal` or `tool_calls`, a choice has a non-empty `text` (legacy completions), a choice has a `finish_reason`, or the chunk carries `usage`.
    fn has_content(&self) -> bool {
        nonnull(self.usage)
            || self.choices.iter().flatten().any(|c| {
                nonnull(c.finish_reason)
                    || nonempty(&c.text)
                    || c.delta.as_ref().is_some_and(|d| {
                        nonempty(&d.content)
                            || nonempty(&d.reasoning)
                            || nonempty(&d.refusal)
                            || d.tool_calls.is_some_and(|t| {
                                let t = t.get().trim();
                                t != "null" && t != "[]"
                            })
                    })
            })
    }
}

impl Watch {
    pub(crate) fn new() -> Self {
        Watch {
            lines: SseLines::default(),
            data: Vec::new(),
            has_data: false,
            phase: Phase::Waiting,
            failed: None,
            created: None,
            upstream_code: None,
            last_end: None,
            learned: Learned::default(),
            tentative: false,
        }
    }

    /// `id` of the first content event, for the error chunk.
    pub(crate) fn id(&self) -> Option<&str> {
        self.learned.text(self.learned.id.clone())
    }

    /// `model` of the first content event, for the error chunk.
    pub(crate) fn model(&self) -> Option<&str> {
        self.learned.text(self.learned.model.clone())
    }

    /// True after content when the stream turned bad: an in-band error or an invalid event.
    pub(crate) fn bad(&self) -> bool {
        matches!(self.phase, Phase::UpstreamError | Phase::Invalid)
    }

    /// An event grew past the limit: the stream is invalid (before content, a failed attempt).
    pub(crate) fn too_long(&mut self) {
        self.lines.clear();
        self.data = Vec::new();
        self.has_data = false;
        match self.phase {
            Phase::Waiting => self.fail(PreContentFailure::Invalid),
            Phase::Started => self.phase = Phase::Invalid,
            _ => {}
        }
    }

    /// The end of the last complete, good event in the bytes of the last `feed`, if one ended
    /// there (once the stream is done: the end of `[DONE]`, and nothing after it).
    pub(crate) fn take_end(&mut self, len: usize) -> Option<usize> {
        let end = self.last_end.take();
        if self.phase == Phase::Done {
            // The end of `[DONE]` when it was in these bytes; nothing of what follows it.
            return Some(end.unwrap_or(0).min(len));
        }
        end
    }

    /// Feeds bytes; stops looking once the phase is final (failed, done, upstream error).
    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        self.last_end = None;
        if !self.live() {
            return;
        }
        if self.usual_frame(bytes) {
            self.last_end = Some(bytes.len());
            return;
        }
        if !self.has_data && self.lines.at_line_start() {
            if let Some(data) = one_data_event(bytes) {
                self.event(data);
                if self.live() || self.phase == Phase::Done {
                    self.last_end = Some(bytes.len());
                }
                return;
            }
        }
        let mut lines = std::mem::take(&mut self.lines);
        lines.feed(bytes, |line, end| {
            if self.line_done(line) && (self.live() || self.phase == Phase::Done) {
                self.last_end = Some(end);
            }
            self.live()
        });
        self.lines = lines;
    }

    /// True if `frame`, coming at the start of a line with no event pending, is one whole event
    /// that the line scan would find good without a look at anything but its string: `data: `,
    /// the learned [`Shape`] (around a string), a blank line; or the usual end, `data: [DONE]`
    /// and a blank line ([`DONE_FRAME`]), which ends the stream. Most upstreams send one event
    /// per frame; such a frame then costs the shape's check, not a line scan and a copy of its
    /// data.
    ///
    /// When true, the frame is read: it is what [`feed`](Self::feed) then
    /// [`take_end`](Self::take_end) read as one good event ending at `frame.len()`, and nothing
    /// else changes (but the phase, after `[DONE]`). When false, nothing changed: the frame is to
    /// be fed.
    #[inline]
    pub(crate) fn usual_frame(&mut self, frame: &[u8]) -> bool {
        if self.phase != Phase::Started || self.has_data || !self.lines.at_line_start() {
            return false;
        }
        if self.learned.fits_frame(frame) {
            self.tentative = false;
        } else if frame == DONE_FRAME {
            self.phase = Phase::Done;
        } else {
            return false;
        }
        self.last_end = None;
        true
    }

    /// The body ended: a last unterminated line or event is taken as complete.
    pub(crate) fn finish(&mut self) {
        if let Some(line) = self.lines.take_rest() {
            self.line_done(&line);
        }
        if self.has_data {
            self.dispatch();
        }
    }

    fn live(&self) -> bool {
        matches!(self.phase, Phase::Waiting | Phase::Started)
    }

    /// One line; true when it was blank (the end of an event).
    fn line_done(&mut self, line: &[u8]) -> bool {
        if line.is_empty() {
            if self.has_data {
                self.dispatch();
            }
            return true;
        }
        if line[0] == b':' {
            return false;
        }
        let (field, value) = match line.iter().position(|b| *b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        if field == b"data" {
            if self.has_data {
                self.data.push(b'\n');
            }
            self.data.extend_from_slice(value);
            self.has_data = true;
        }
        false
    }

    fn dispatch(&mut self) {
        let data = std::mem::take(&mut self.data);
        self.has_data = false;
        self.event(&data);
        let mut data = data;
        data.clear();
        self.data = data;
    }

    fn event(&mut self, data: &[u8]) {
        let trimmed = trim_json_whitespace(data);
        if trimmed == b"[DONE]" {
            match self.phase {
                Phase::Waiting => self.fail(PreContentFailure::EmptyDone),
                _ => self.phase = Phase::Done,
            }
            return;
        }
        match self.phase {
            // The skimmer reads the usual event; serde the rest (and decides what is not JSON).
            Phase::Waiting => {
                let (first, hole) = match skim_first(trimmed) {
                    Some((f, hole)) => (Some(f), hole),
                    None => (First::parse(trimmed), None),
                };
                match first {
                    Some(f) if f.error => self.fail(PreContentFailure::InBandError),
                    Some(f) => {
                        if f.content {
                            self.phase = Phase::Started;
                            self.created = f.created;
                            // The first content event's shape, tried on the next event.
                            let names = (f.id.as_deref(), f.model.as_deref());
                            self.tentative = hole.is_some();
                            self.learned.first(trimmed, hole, names);
                        }
                    }
                    None => self.fail(PreContentFailure::Invalid),
                }
            }
            // Every event after content is checked to be JSON (the parse skips what it does not
            // name) and for a top-level `error`.
            Phase::Started => {
                if self.learned.fits(trimmed) {
                    self.tentative = false;
                    return;
                }
                // The next event's shape is learned when the first's did not fit it (or none was).
                if self.learned.shape.is_none() || self.tentative {
                    if let Some(hole) = skim_event(trimmed) {
                        self.tentative = false;
                        self.learned.relearn(trimmed, hole);
                        return;
                    }
                } else if self.learned.error_free(trimmed) {
                    return;
                }
                match serde_json::from_slice::<ErrorOnly<'_>>(trimmed) {
                    Ok(e) if nonnull(e.error) => {
                        self.phase = Phase::UpstreamError;
                        self.upstream_code = e.error.and_then(error_code);
                    }
                    Ok(_) => {}
                    Err(_) => self.phase = Phase::Invalid,
                }
            }
            _ => {}
        }
    }

    fn fail(&mut self, f: PreContentFailure) {
        self.phase = Phase::Failed;
        self.failed = Some(f);
    }
}

/// What an event before content tells: whether it has a non-null `error`, whether it bears content
/// (see [`Chunk::has_content`]), and its `id`, `model` (their text, UTF-8) and `created`.
#[derive(Debug, Default, PartialEq)]
struct First<'a> {
    error: bool,
    content: bool,
    id: Option<Cow<'a, [u8]>>,
    model: Option<Cow<'a, [u8]>>,
    created: Option<i64>,
}

impl<'a> First<'a> {
    /// Reads `d` with serde as a [`Chunk`]; `None` if it is not one (not JSON, or a member of the
    /// wrong type).
    fn parse(d: &'a [u8]) -> Option<First<'a>> {
        let c = serde_json::from_slice::<Chunk<'a>>(d).ok()?;
        Some(First {
            error: nonnull(c.error),
            content: c.has_content(),
            id: c.id.map(bytes),
            model: c.model.map(bytes),
            created: c.created,
        })
    }
}

/// A text's bytes.
fn bytes(s: Cow<'_, str>) -> Cow<'_, [u8]> {
    match s {
        Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
        Cow::Owned(s) => Cow::Owned(s.into_bytes()),
    }
}

/// Marks the member `bit` of a struct as seen in `seen`; `None` if it was seen already (serde
/// refuses a duplicate field: the skimmer leaves the event to it).
fn once(seen: &mut u8, bit: u8) -> Option<()> {
    (*seen & bit == 0).then(|| *seen |= bit)
}

/// True for a string-or-null member that is a non-empty string; `None` (give up) for another
/// type or a string with escapes.
fn nonempty_text(d: &[u8], at: usize, end: usize) -> Option<bool> {
    Some(skim::plain_bytes(&d[at..end])?.is_some_and(|s| !s.is_empty()))
}

/// A number member `t` (as the skimmer found it) as serde reads an `i64`; `None` (give up) for a
/// fraction, an exponent, a value out of range, or `-0` (which serde_json reads as a float).
fn integer(t: &[u8]) -> Option<i64> {
    let (negative, digits) = match t.split_first()? {
        (b'-', rest) => (true, rest),
        _ => (false, t),
    };
    if digits.is_empty() || (negative && digits[0] == b'0') {
        return None;
    }
    // Counted down: `i64::MIN` has no positive twin.
    let mut n: i64 = 0;
    for c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_sub(i64::from(c - b'0'))?;
    }
    if negative {
        Some(n)
    } else {
        n.checked_neg()
    }
}

/// Reads an event before content with the strict skimmer: what [`First::parse`] reads, when the
/// event has the usual plain shape. `None` sends the event to serde, which decides as before:
/// anything the skimmer gives up on, a member of [`Chunk`] of another type than the usual one or
/// given twice, a string member with escapes, a `created` that is not a plain integer, a
/// top-level array, bad JSON or bad UTF-8.
///
/// With it, where its first `choices[i].delta.content` string is (quotes included), as
/// [`skim_event`] finds it, if it has one and no `error` member.
fn skim_first(d: &[u8]) -> Option<(First<'_>, Option<Hole>)> {
    if d.first() != Some(&b'{') {
        return None;
    }
    let mut f = First::default();
    let mut hole = None;
    let mut member = 0;
    let mut seen = 0;
    let end = skim::members(d, 0, 0, |key, at| {
        let bit = match key {
            b"id" => 1,
            b"model" => 2,
            b"created" => 4,
            b"error" => 8,
            b"choices" => 16,
            b"usage" => 32,
            _ => return skim::value(d, at, 1),
        };
        once(&mut seen, bit)?;
        if bit == 16 && d.get(at) == Some(&b'[') {
            member = key_start(d, key);
            return skim::elements(d, at, 1, |i| first_choice(d, i, &mut f.content, &mut hole));
        }
        if bit & 3 != 0 && d.get(at) == Some(&b'"') {
            let (end, escaped) = skim::string(d, at)?;
            // A string with escapes goes to serde (which unescapes it).
            if escaped {
                return None;
            }
            // UTF-8: the skimmer checked it.
            let text = Cow::Borrowed(&d[at + 1..end - 1]);
            *(if bit == 1 { &mut f.id } else { &mut f.model }) = Some(text);
            return Some(end);
        }
        let end = skim::value(d, at, 1)?;
        let nonnull = &d[at..end] != b"null";
        match bit {
            // Neither a string nor null: serde refuses it.
            1 | 2 if nonnull => return None,
            4 if nonnull => f.created = Some(integer(&d[at..end])?),
            8 => f.error = nonnull,
            16 if nonnull => return None,
            32 => f.content |= nonnull,
            _ => {}
        }
        Some(end)
    })?;
    let hole = hole.filter(|_| seen & 8 == 0);
    (end == d.len()).then_some((f, hole.map(|string| Hole { string, member })))
}

/// Where an event's first `choices[i].delta.content` string is (quotes included), and where the
/// top-level member holding it begins (the opening quote of its key).
#[derive(Clone, Debug, PartialEq)]
struct Hole {
    string: Range<usize>,
    member: usize,
}

/// Where `key`, a key the skimmer found in `d` (a slice of it, unescaped), begins: its opening
/// quote.
fn key_start(d: &[u8], key: &[u8]) -> usize {
    key.as_ptr() as usize - d.as_ptr() as usize - 1
}

/// Skims one element of `choices` before content, as serde reads a [`Choice`]: `content` is set
/// if it bears content, `hole` to its `delta.content` string if none was found before.
fn first_choice(
    d: &[u8],
    i: usize,
    content: &mut bool,
    hole: &mut Option<Range<usize>>,
) -> Option<usize> {
    if d.get(i) != Some(&b'{') {
        return None;
    }
    let mut seen = 0;
    skim::members(d, i, 2, |key, at| {
        let bit = match key {
            b"delta" => 1,
            b"finish_reason" => 2,
            b"text" => 4,
            _ => return skim::value(d, at, 3),
        };
        once(&mut seen, bit)?;
        if bit == 1 && d.get(at) == Some(&b'{') {
            return first_delta(d, at, content, hole);
        }
        let end = skim::value(d, at, 3)?;
        let nonnull = &d[at..end] != b"null";
        match bit {
            1 if nonnull => return None,
            2 => *content |= nonnull,
            4 => *content |= nonempty_text(d, at, end)?,
            _ => {}
        }
        Some(end)
    })
}

/// Skims a choice's `delta` before content, as serde reads a [`Delta`]: `content` is set if it
/// bears content, `hole` to its `content` string if none was found before.
fn first_delta(
    d: &[u8],
    i: usize,
    content: &mut bool,
    hole: &mut Option<Range<usize>>,
) -> Option<usize> {
    let mut seen = 0;
    skim::members(d, i, 3, |key, at| {
        let bit = match key {
            b"content" => 1,
            b"reasoning" => 2,
            b"refusal" => 4,
            b"tool_calls" => 8,
            _ => return skim::value(d, at, 4),
        };
        once(&mut seen, bit)?;
        let end = skim::value(d, at, 4)?;
        let raw = &d[at..end];
        *content |= if bit == 8 {
            raw != b"null" && raw != b"[]"
        } else {
            nonempty_text(d, at, end)?
        };
        if bit == 1 && raw[0] == b'"' && hole.is_none() {
            *hole = Some(at..end);
        }
        Some(end)
    })
}

/// Reads `d` with the strict skimmer: `Some(hole)` if it is a JSON object without an `error`
/// member, `hole` being where its first `choices[i].delta.content` string is (quotes included),
/// if it has one. The usual event after content then costs a scan instead of a serde parse.
/// `None` sends the event to serde, which decides as before: anything the skimmer gives up on (an
/// escaped key, deep nesting), any `error` member (even `null`, and serde refuses one given
/// twice), a top-level array (which serde reads into a struct), bad JSON or bad UTF-8.
fn skim_event(d: &[u8]) -> Option<Option<Hole>> {
    // The skimmer checks UTF-8 too (see `skim`).
    if d.first() != Some(&b'{') {
        return None;
    }
    let (mut hole, mut member) = (None, 0);
    let end = skim::members(d, 0, 0, |key, at| match key {
        b"error" => None,
        b"choices" if d.get(at) == Some(&b'[') => {
            let found = hole.is_some();
            let end = skim::elements(d, at, 1, |i| choice(d, i, &mut hole));
            if !found && hole.is_some() {
                member = key_start(d, key);
            }
            end
        }
        _ => skim::value(d, at, 1),
    })?;
    (end == d.len()).then_some(hole.map(|string| Hole { string, member }))
}

/// True if `d` is a JSON object without an `error` member: what `skim_event(d).is_some()` tells,
/// without looking for a content string. `members`, when `d` starts with it, is taken as read:
/// the bytes of a learned event up to its content's member (`{` and whole members, none named
/// `error`, which the skimmer read there as it would here).
fn skim_error_free(d: &[u8], members: &[u8]) -> bool {
    let member = |key: &[u8], at| match key {
        b"error" => None,
        _ => skim::value(d, at, 1),
    };
    let end = if members.len() > 1 && d.starts_with(members) {
        skim::resume_members(d, 0, 0, Some(members.len()), member)
    } else if d.first() == Some(&b'{') {
        skim::members(d, 0, 0, member)
    } else {
        None
    };
    end == Some(d.len())
}

/// Skims one element of `choices`, noting where its `delta.content` string is.
fn choice(d: &[u8], i: usize, hole: &mut Option<Range<usize>>) -> Option<usize> {
    if d.get(i) != Some(&b'{') {
        return skim::value(d, i, 2);
    }
    skim::members(d, i, 2, |key, at| match key {
        b"delta" if d.get(at) == Some(&b'{') => skim::members(d, at, 3, |key, at| {
            let end = skim::value(d, at, 4)?;
            if key == b"content" && d[at] == b'"' && hole.is_none() {
                *hole = Some(at..end);
            }
            Some(end)
        }),
        _ => skim::value(d, at, 3),
    })
}

/// What a stream's first events taught the watch, kept in one buffer (one allocation per
/// stream): the usual event's [`Shape`], and the first content event's `id` and `model`.
#[derive(Debug, Default)]
struct Learned {
    /// The shape's pieces as the usual frame carries them ([`FRAME_HEAD`], the prefix, the
    /// suffix, [`FRAME_TAIL`]) when one is learned, then the `id` and the `model`.
    buf: Vec<u8>,
    /// The usual event after content, once learned: tried first on the first content event's
    /// (the usual one, most often), learned from the next event read whole when that one did not
    /// fit, then kept.
    shape: Option<Shape>,
    /// Where the `id` and `model` begin in the buffer (after the shape's pieces, if any).
    names: usize,
    id: Option<Range<usize>>,
    model: Option<Range<usize>>,
}

/// The usual event after content, learned from the first content event (read by [`skim_first`])
/// or from the first event after it that [`skim_event`] read whole: its bytes before the content
/// string and after it. Chunks from one serializer repeat both, and a later event made of the
/// same two pieces around another string is as good as that one (a JSON object without `error`)
/// without being read again: only its string is checked.
///
/// Kept as the usual frame carries it, `data: `, the prefix, the suffix and a blank line (at the
/// start of [`Learned::buf`]), so that such a frame is checked as it comes (see
/// [`Learned::fits_frame`]).
#[derive(Clone, Copy, Debug)]
struct Shape {
    /// Where the string goes in the framed pieces: the end of the prefix.
    split: usize,
    /// The end of the framed pieces.
    end: usize,
    /// True if neither piece has a line end (`\n` or `\r`).
    one_line: bool,
    /// Where, in the prefix, the top-level member holding the string begins: the prefix up to
    /// there is `{` and whole members, none named `error` (see [`skim_error_free`]).
    member: usize,
}

/// What a frame carrying one `data:` line has before its data.
const FRAME_HEAD: &[u8] = b"data: ";
/// What a frame carrying one whole event ends with: the line end of its data line, a blank line.
const FRAME_TAIL: &[u8] = b"\n\n";
/// The usual last frame of a stream: `[DONE]` in one data line, then a blank line.
const DONE_FRAME: &[u8] = b"data: [DONE]\n\n";

impl Learned {
    /// The first content event `d` (whose content string, if any, is at `hole`), and its `id` and
    /// `model`: the buffer is made once, at its size.
    fn first(&mut self, d: &[u8], hole: Option<Hole>, names: (Option<&[u8]>, Option<&[u8]>)) {
        let framed = |h: &Hole| FRAME_HEAD.len() + d.len() - h.string.len() + FRAME_TAIL.len();
        let len = |s: Option<&[u8]>| s.map_or(0, <[u8]>::len);
        let size = hole.as_ref().map_or(0, framed) + len(names.0) + len(names.1);
        self.buf = Vec::with_capacity(size);
        self.shape = hole.map(|h| self.push_shape(d, h));
        self.names = self.buf.len();
        self.id = names.0.map(|s| self.push(s));
        self.model = names.1.map(|s| self.push(s));
    }

    /// Learns the shape of `d`, an event after content whose content string, if any, is at
    /// `hole` (none: no shape); the `id` and `model` are kept.
    fn relearn(&mut self, d: &[u8], hole: Option<Hole>) {
        let Some(hole) = hole else {
            // The pieces of the shape dropped stay in the buffer, unused.
            self.shape = None;
            return;
        };
        let old = self.names;
        let names = std::mem::take(&mut self.buf).split_off(old);
        self.buf = Vec::with_capacity(FRAME_HEAD.len() + d.len() + FRAME_TAIL.len() + names.len());
        self.shape = Some(self.push_shape(d, hole));
        let new = self.buf.len();
        self.names = new;
        self.buf.extend_from_slice(&names);
        let moved = |r: &mut Option<Range<usize>>| {
            if let Some(r) = r {
                *r = r.start - old + new..r.end - old + new;
            }
        };
        moved(&mut self.id);
        moved(&mut self.model);
    }

    /// Appends the shape of `d` around `hole`, framed, to the (empty) buffer.
    fn push_shape(&mut self, d: &[u8], hole: Hole) -> Shape {
        let (prefix, suffix) = (&d[..hole.string.start], &d[hole.string.end..]);
        let line_end = |p: &[u8]| memchr::memchr2(b'\n', b'\r', p).is_some();
        self.buf.extend_from_slice(FRAME_HEAD);
        self.buf.extend_from_slice(prefix);
        let split = self.buf.len();
        self.buf.extend_from_slice(suffix);
        self.buf.extend_from_slice(FRAME_TAIL);
        Shape {
            split,
            end: self.buf.len(),
            member: hole.member,
            one_line: !line_end(prefix) && !line_end(suffix),
        }
    }

    /// Appends `s` to the buffer; where it is.
    fn push(&mut self, s: &[u8]) -> Range<usize> {
        let start = self.buf.len();
        self.buf.extend_from_slice(s);
        start..self.buf.len()
    }

    /// The text at `r` (copied from a text: UTF-8).
    fn text(&self, r: Option<Range<usize>>) -> Option<&str> {
        std::str::from_utf8(&self.buf[r?]).ok()
    }

    /// The shape's framed pieces: `data: ` and the prefix, the suffix and a blank line.
    #[inline]
    fn framed(&self) -> Option<(&[u8], &[u8])> {
        let s = self.shape?;
        Some((&self.buf[..s.split], &self.buf[s.split..s.end]))
    }

    /// The learned event's bytes before the content string (empty if none is learned).
    fn prefix(&self) -> &[u8] {
        self.framed()
            .map_or(&[], |(head, _)| &head[FRAME_HEAD.len()..])
    }

    /// The learned event's bytes after the content string (empty if none is learned).
    fn suffix(&self) -> &[u8] {
        self.framed()
            .map_or(&[], |(_, tail)| &tail[..tail.len() - FRAME_TAIL.len()])
    }

    /// True if `d` is a JSON object without an `error` member (see [`skim_error_free`]), read from
    /// the learned shape's top-level members before its content's when `d` has them too.
    fn error_free(&self, d: &[u8]) -> bool {
        let members = self.shape.map_or(&[][..], |s| &self.prefix()[..s.member]);
        skim_error_free(d, members)
    }

    /// True if a shape is learned and `d` is its prefix, a JSON string (valid escapes, valid
    /// UTF-8: the skimmer checks both), then its suffix.
    fn fits(&self, d: &[u8]) -> bool {
        self.shape.is_some() && around_string(d, self.prefix(), self.suffix())
    }

    /// True if `frame` is `data: `, an event that [`fits`](Self::fits), then a blank line, with no
    /// other line end: one data line and a blank line, whose data is taken as is (the prefix
    /// starts with `{`, the suffix ends with `}`: no whitespace to trim). A JSON string has no
    /// raw control character, so when neither piece has a line end, no line ends inside.
    #[inline]
    fn fits_frame(&self, frame: &[u8]) -> bool {
        let Some(s) = self.shape else { return false };
        s.one_line && around_string(frame, &self.buf[..s.split], &self.buf[s.split..s.end])
    }
}

/// True if `d` is `head`, a JSON string, then `tail`.
fn around_string(d: &[u8], head: &[u8], tail: &[u8]) -> bool {
    let (h, t) = (head.len(), tail.len());
    d.len() >= h + t + 2
        && d.ends_with(tail)
        && d.starts_with(head)
        && d[h] == b'"'
        && skim::string(d, h).map(|(end, _)| end) == Some(d.len() - t)
}

/// An in-band error's `code`, if it is a number or a short lowercase word such as
/// `server_error` (never free text, and nothing shaped like a key: no digits, capitals or dashes).
fn error_code(error: &RawValue) -> Option<serde_json::Value> {
    #[derive(Deserialize)]
    struct Code {
        #[serde(default)]
        code: Option<serde_json::Value>,
    }
    let code = serde_json::from_str::<Code>(error.get()).ok()?.code?;
    let token = |s: &str| s.len() <= 32 && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    match &code {
        serde_json::Value::Number(_) => Some(code),
        serde_json::Value::String(s) if token(s) => Some(code),
        _ => None,
    }
}

/// The data of `bytes` when, read at the start of a line with no event pending, they are one
/// `data:` line and a blank line (`data:`, an optional space, the data without any line end,
/// `\n\n`): what the line scan would dispatch, read in place. Other frames (other fields,
/// comments, CR line ends, several lines or events, a part of one) take the line scan.
fn one_data_event(bytes: &[u8]) -> Option<&[u8]> {
    let rest = bytes.strip_prefix(b"data:")?;
    let rest = rest.strip_prefix(b" ").unwrap_or(rest);
    let data = rest.strip_suffix(b"\n\n")?;
    memchr::memchr2(b'\n', b'\r', data)
        .is_none()
        .then_some(data)
}

/// `data` without JSON's whitespace (space, tab, line feed, carriage return) at either end. Not
/// `trim_ascii`: it also strips a form feed, which is no JSON whitespace, and the event, passed
/// on as it came, would then not be JSON to the caller (found by AFL++ on `sse_streams`).
fn trim_json_whitespace(data: &[u8]) -> &[u8] {
    let ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let start = data.iter().position(|b| !ws(b)).unwrap_or(data.len());
    let end = data.iter().rposition(|b| !ws(b)).map_or(start, |i| i + 1);
    &data[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const STREAM: &str = ": keep-alive\n\ndata: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\ndata: {\"id\":\"c1\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"total_tokens\":3}}\n\ndata: [DONE]\n\n";

    fn phases(chunks: &[&[u8]]) -> Vec<Phase> {
        let mut w = Watch::new();
        chunks
            .iter()
            .map(|c| {
                w.feed(c);
                w.phase
            })
            .collect()
    }

    #[test]
    fn role_chunk_is_not_content() {
        let s = STREAM.as_bytes();
        let role_end = s.windows(4).position(|w| w == b"}]}\n").unwrap() + 5;
        let p = phases(&[&s[..role_end], &s[role_end..]]);
        assert_eq!(p, vec![Phase::Waiting, Phase::Done]);
    }

    #[test]
    fn legacy_text_is_content() {
        let mut w = Watch::new();
        w.feed(b"data: {\"choices\":[{\"index\":0,\"text\":\"\",\"finish_reason\":null}]}\n\n");
        assert_eq!(w.phase, Phase::Waiting);
        w.feed(b"data: {\"choices\":[{\"index\":0,\"text\":\"Hi\",\"finish_reason\":null}]}\n\n");
        assert_eq!(w.phase, Phase::Started);
    }

    #[test]
    fn in_band_error_after_content() {
        let mut w = Watch::new();
        w.feed(b"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\r\n\r\n");
        assert_eq!(w.phase, Phase::Started);
        w.feed(b"data: {\"error\":{\"code\":502},\"choices\":[]}\r\n\r\n");
        assert_eq!(w.phase, Phase::UpstreamError);
    }

    #[test]
    fn failures_before_content() {
        for (s, f) in [
            ("data: [DONE]\n\n", PreContentFailure::EmptyDone),
            (
                "data: {\"error\":{\"code\":429}}\n\n",
                PreContentFailure::InBandError,
            ),
            ("data: {nope\n\n", PreContentFailure::Invalid),
        ] {
            let mut w = Watch::new();
            w.feed(s.as_bytes());
            assert_eq!(w.failed, Some(f), "{s}");
        }
    }

    #[test]
    fn the_usual_event_skips_serde_and_the_rest_goes_to_it() {
        let chunk = br#"{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hi \"x\""},"finish_reason":null}],"usage":null}"#;
        let hole = Hole {
            string: 85..95,
            member: 44,
        };
        assert_eq!(skim_event(chunk), Some(Some(hole)));
        assert_eq!(skim_event(b"{}"), Some(None));
        for d in [
            &br#"{"error":null}"#[..],
            br#"{"id":"c1","error":{"code":500}}"#,
            br#"{"\u0065rror":{"code":500}}"#,
            br#"{"a":1,}"#,
            br#"{"a":1} x"#,
            br#"[{"a":1}]"#,
            b"{\"a\":\"\xff\"}",
            b"{\"a\":\"\x01\"}",
        ] {
            assert_eq!(skim_event(d), None, "{}", String::from_utf8_lossy(d));
        }
    }

    /// The first content event's `id` and `model` are kept while the shape is learned again, and
    /// dropped, and learned again.
    #[test]
    fn the_names_outlive_the_shapes() {
        let first = &br#"{"id":"c\u0031","model":"m","choices":[{"delta":{"content":"a"}}]}"#[..];
        let x = br#"{"choices":[{"delta":{"content":"b"}}],"x":1}"#;
        let tool = br#"{"choices":[{"delta":{"tool_calls":[{"id":"t"}]}}]}"#;
        let y = br#"{"choices":[{"delta":{"content":"c"}}],"y":[]}"#;
        for (events, suffix) in [
            (&[first, x, tool, y][..], &br#"}}],"x":1}"#[..]),
            (&[first, tool, y, x, y], br#"}}],"y":[]}"#),
        ] {
            let mut w = Watch::new();
            for d in events {
                w.feed(&[b"data: ", *d, b"\n\n"].concat());
                assert_eq!(
                    (w.phase, w.id(), w.model()),
                    (Phase::Started, Some("c1"), Some("m"))
                );
            }
            assert_eq!(w.learned.suffix(), suffix);
        }
    }

    /// A number as serde reads an `i64`, wherever [`integer`] reads one.
    #[test]
    fn integers_read_as_serde_reads_them() {
        for t in [
            "0",
            "-0",
            "7",
            "-7",
            "1700000000",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "-9223372036854775809",
            "99999999999999999999",
            "1.5",
            "-0.0",
            "1e3",
            "-1E-3",
            "10",
        ] {
            let serde = serde_json::from_str::<i64>(t).ok();
            assert_eq!(integer(t.as_bytes()), serde, "{t}");
        }
    }

    const CHUNK: &[u8] =
        br#"{"id":"c1","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#;

    fn shape() -> Learned {
        let hole = skim_event(CHUNK).flatten().expect("a content string");
        let mut learned = Learned::default();
        learned.first(CHUNK, Some(hole), (None, None));
        learned
    }

    #[test]
    fn the_learned_shape_takes_its_siblings_only() {
        let s = shape();
        let with = |content: &[u8]| {
            let mut d = s.prefix().to_vec();
            d.extend_from_slice(content);
            d.extend_from_slice(s.suffix());
            d
        };
        for good in [&b"\"\""[..], b"\" x \\\" \\u00e9 \xc3\xa9\"", b"\"\\n\""] {
            assert!(s.fits(&with(good)), "{}", String::from_utf8_lossy(good));
        }
        for bad in [
            &b"\"a\"b\""[..],
            b"\"a\\\"",
            b"\"\xff\"",
            b"\"\x01\"",
            b"\"\\ud800\"",
            b"1",
            b"\"",
        ] {
            assert!(!s.fits(&with(bad)), "{}", String::from_utf8_lossy(bad));
        }
        assert!(!s.fits(
            br#"{"id":"c2","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#
        ));
    }

    /// A stream whose events fit the shape ends as one read event by event: an in-band error
    /// after content is still seen.
    #[test]
    fn an_error_event_after_content_is_seen_with_a_shape_learned() {
        let event = |d: &[u8]| [b"data: ", d, b"\n\n"].concat();
        let mut w = Watch::new();
        w.feed(&event(CHUNK));
        w.feed(&event(CHUNK));
        assert!(w.learned.shape.is_some());
        assert_eq!(w.phase, Phase::Started);
        w.feed(&event(
            br#"{"id":"c1","error":{"code":502,"message":"down"}}"#,
        ));
        assert_eq!(w.phase, Phase::UpstreamError);
    }

    /// The usual first events are read by the skimmer, as serde reads them.
    #[test]
    fn the_skimmer_reads_the_usual_first_events() {
        for d in [
            &br#"{"id":"c1","object":"chat.completion.chunk","created":1700000000,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#[..],
            br#"{"id":"c1","created":-3,"model":null,"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}],"usage":null}"#,
            br#"{"choices":[{"text":"x"},{"delta":{"tool_calls":[{"id":"t"}]}}]}"#,
            br#"{"choices":[],"usage":{"total_tokens":3}}"#,
            br#"{"error":{"code":429},"choices":null}"#,
            br#"{"choices":[{"delta":{"tool_calls":[]},"finish_reason":null}]}"#,
            br#"{"choices":[{"delta":{"tool_calls":null,"refusal":""},"text":null}]}"#,
            br#"{"choices":[{"delta":null,"finish_reason":"stop"}],"error":null}"#,
            br#"{"choices":[{"delta":{"content":"a"}},{"delta":{"content":"b"}}]}"#,
            br#"{"error":null,"choices":[{"delta":{"content":"a"}}]}"#,
        ] {
            let f = skim_first(d);
            assert!(f.is_some(), "{}", String::from_utf8_lossy(d));
            // Its content string, if any, is the one read after content.
            let hole = f.as_ref().and_then(|(_, h)| h.clone());
            let after = skim_event(d).flatten();
            assert_eq!(hole, after, "{}", String::from_utf8_lossy(d));
            assert_eq!(f.map(|(f, _)| f), First::parse(d));
        }
    }

    /// A string-or-null value: the usual ones three times in four, odd ones (which serde may
    /// refuse) otherwise.
    fn text_value() -> impl Strategy<Value = &'static str> + Clone {
        prop_oneof![
            3 => prop::sample::select(vec!["null", "\"\"", "\"a\"", "\"é\""]),
            1 => prop::sample::select(vec!["1", "[]", "{}", "\"\\u0041\""]),
        ]
    }

    /// Any other value, the usual ones three times in four.
    fn raw_value() -> impl Strategy<Value = &'static str> + Clone {
        prop_oneof![
            3 => prop::sample::select(vec![
                "null", "[]", "[ ]", "[1]", "{}", "\"x\"", "0", "true", "[{\"a\":[]}]",
                "-9223372036854775808",
            ]),
            1 => prop::sample::select(vec![
                "1.5", "-0", "99999999999999999999", "1e3", "01", "\"\\ud800\"",
            ]),
        ]
    }

    /// A `choices` array of a first event: deltas of any of the keys that bear content or not.
    fn first_choices() -> impl Strategy<Value = String> {
        let (text, raw) = (text_value(), raw_value());
        let delta_key = prop::sample::select(vec![
            "content",
            "reasoning",
            "refusal",
            "tool_calls",
            "role",
        ]);
        let delta =
            prop::collection::vec((delta_key, text.clone(), raw.clone(), any::<bool>()), 1..4)
                .prop_map(|ms| {
                    let ms: Vec<String> = ms
                        .into_iter()
                        .map(|(k, t, r, pick)| {
                            format!("\"{k}\":{}", if pick || k == "tool_calls" { r } else { t })
                        })
                        .collect();
                    format!("{{{}}}", ms.join(","))
                });
        let choice_key =
            prop::sample::select(vec!["delta", "delta", "finish_reason", "text", "index"]);
        let choice =
            prop::collection::vec((choice_key, delta, text, raw, 0u8..3), 1..3).prop_map(|ms| {
                let ms: Vec<String> = ms
                    .into_iter()
                    .map(|(k, d, t, r, pick)| {
                        let v = match (k, pick) {
                            ("delta", 0) | ("delta", 1) => d,
                            ("text", 0 | 1) => t.to_string(),
                            _ => r.to_string(),
                        };
                        format!("\"{k}\":{v}")
                    })
                    .collect();
                format!("{{{}}}", ms.join(","))
            });
        prop::collection::vec(choice, 0..3).prop_map(|cs| format!("[{}]", cs.join(",")))
    }

    /// Pieces of first events: members of [`Chunk`], [`Choice`] and [`Delta`] with values of the
    /// usual types and others, given twice at times, with escapes, odd numbers and bad JSON.
    fn first_event() -> impl Strategy<Value = Vec<u8>> {
        let (text, raw, choices) = (text_value(), raw_value(), first_choices());
        let key = prop::sample::select(vec![
            "id", "model", "created", "error", "choices", "choices", "choices", "usage", "object",
        ]);
        let members =
            prop::collection::vec((key, choices, text, raw, 0u8..3), 0..5).prop_map(|ms| {
                let ms: Vec<String> = ms
                    .into_iter()
                    .map(|(k, c, t, r, pick)| {
                        let v = match (k, pick) {
                            ("choices", 0) | ("choices", 1) => c,
                            ("id" | "model", 0 | 1) => t.to_string(),
                            _ => r.to_string(),
                        };
                        format!("\"{k}\":{v}")
                    })
                    .collect();
                format!("{{{}}}", ms.join(", "))
            });
        (members, any::<prop::sample::Index>(), 0u8..8).prop_map(|(m, at, how)| {
            let mut b = m.into_bytes();
            let i = at.index(b.len());
            match how {
                0 => b.truncate(i),
                1 => b[i] = b'"',
                2 => b[i] = 0xff,
                _ => {}
            }
            b
        })
    }

    proptest! {
        // Cheap cases, and the rarer shapes (a delta's `tool_calls: []`) need many.
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// Wherever the skimmer reads a first event, serde reads it the same.
        #[test]
        fn the_first_event_skims_as_serde_reads_it(d in first_event()) {
            if let Some((f, hole)) = skim_first(&d) {
                prop_assert_eq!(Some(f), First::parse(&d), "{}", String::from_utf8_lossy(&d));
                // The content string found is the one found after content (the learned shape's).
                if let Some(hole) = hole {
                    prop_assert_eq!(skim_event(&d), Some(Some(hole)), "{}", String::from_utf8_lossy(&d));
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// Whether an event is a JSON object without `error` is told alike by the skim that
        /// looks for its content string and by the one that resumes after the learned event's
        /// members (the events here start with them half the time).
        #[test]
        fn the_error_free_skim_reads_as_skim_event(d in first_event(), resumed in any::<bool>()) {
            let s = shape();
            let members = &s.prefix()[..s.shape.unwrap().member];
            prop_assert_eq!(members, br#"{"id":"c1","#);
            let d = match d.split_first() {
                Some((b'{', rest)) if resumed => [members, rest].concat(),
                _ => d,
            };
            prop_assert_eq!(skim_error_free(&d, members), skim_event(&d).is_some(), "{}", String::from_utf8_lossy(&d));
            prop_assert_eq!(s.error_free(&d), skim_event(&d).is_some());
            prop_assert_eq!(skim_error_free(&d, b""), skim_event(&d).is_some());
        }

        /// A number as serde reads an `i64`, wherever [`integer`] reads one.
        #[test]
        fn any_integer_reads_as_serde_reads_it(t in "-?(0|[1-9][0-9]{0,20})(\\.[0-9]{1,2})?([eE][+-]?[0-9]{1,2})?") {
            prop_assert_eq!(integer(t.as_bytes()), serde_json::from_str::<i64>(&t).ok(), "{}", t);
        }
    }

    proptest! {

        /// An event the learned shape takes is one serde takes, without an error.
        #[test]
        fn the_shape_agrees_with_serde(middle in proptest::collection::vec(prop::sample::select(b"\"\\/unbx0aD8\x01\x7f\xc3\xa9\xff ".to_vec()), 0..12)) {
            let s = shape();
            let d = [s.prefix(), b"\"", &middle, b"\"", s.suffix()].concat();
            if s.fits(&d) {
                let e = serde_json::from_slice::<ErrorOnly<'_>>(&d);
                prop_assert!(e.is_ok_and(|e| e.error.is_none()), "{}", String::from_utf8_lossy(&d));
            }
        }

        /// The skimmer's shortcut agrees with serde wherever it answers.
        #[test]
        fn plain_object_agrees_with_serde(s in "[\\[\\]{}\",:0-9a-z.eE+\\- \\\\\u{1}\u{e9}]{0,24}", wrap in any::<bool>()) {
            let d = if wrap { format!("{{\"k\":{s}}}") } else { s };
            if skim_event(d.as_bytes()).is_some() {
                let e = serde_json::from_slice::<ErrorOnly<'_>>(d.as_bytes());
                prop_assert!(e.is_ok_and(|e| e.error.is_none()), "{}", d);
            }
        }

        /// A frame that is one whole event reads as the same frame cut after its first byte
        /// (which never takes the shortcut): same phase, same failure, same end of the last good
        /// event, event after event. The contents mix what fits the shape and what does not.
        #[test]
        fn whole_event_frames_read_as_cut_ones(events in proptest::collection::vec((0u8..6, proptest::collection::vec(prop::sample::select(b"ab \"\\/nu0\n\r\x01\xc3\xa9\xff".to_vec()), 0..8)), 1..12)) {
            let mut whole = Watch::new();
            let mut cut = Watch::new();
            for (kind, content) in events {
                let content = [&b"\""[..], &content, b"\""].concat();
                let frame = match kind {
                    0..=2 => [shape().prefix(), &content, shape().suffix(), b"\n\n"].concat(),
                    3 => [&br#"{"id":"c1","error":{"code":502},"choices":[]}"#[..], b"\n\n"].concat(),
                    4 => [&br#"{"id":"c9","choices":[{"delta":{"content":"#[..], &content, b"}}]}\n\n"].concat(),
                    _ => b"[DONE]\n\n".to_vec(),
                };
                let frame = [&b"data: "[..], &frame].concat();
                whole.feed(&frame);
                let a = whole.take_end(frame.len());
                cut.feed(&frame[..1]);
                prop_assert_eq!(cut.take_end(1), None);
                cut.feed(&frame[1..]);
                let b = cut.take_end(frame.len() - 1).map(|e| e + 1);
                prop_assert_eq!(a, b, "{}", String::from_utf8_lossy(&frame));
                prop_assert_eq!((whole.phase, whole.failed), (cut.phase, cut.failed));
                prop_assert_eq!(&whole.upstream_code, &cut.upstream_code);
                if !whole.live() {
                    break;
                }
            }
        }

        #[test]
        fn any_split_any_line_ending(cuts in proptest::collection::vec(0usize..400, 0..8), end in prop::sample::select(vec!["\n", "\r\n", "\r"])) {
            let text = STREAM.replace('\n', end);
            let bytes = text.as_bytes();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
            cuts.sort_unstable();
            let mut w = Watch::new();
            let mut at = 0;
            for c in cuts.into_iter().chain([bytes.len()]) {
                w.feed(&bytes[at..c]);
                at = c;
            }
            prop_assert_eq!(w.phase, Phase::Done);
            prop_assert_eq!(w.id(), Some("c1"));
        }
    }

    /// The events of a stream, as an upstream may send them: the usual chunks, a first one, a
    /// finish and usage one, an error, a garbled payload, `[DONE]`, each with one of the three
    /// line ends, `data:` with or without its space, at times after a comment or with its data on
    /// two `data:` lines.
    fn sse_events() -> impl Strategy<Value = Vec<Vec<u8>>> {
        // The usual frame (a content chunk, `data: `, LF line ends, nothing else) most often.
        let event = (
            0u8..13,
            "[a-z \"\\\\é]{0,6}",
            prop::sample::select(vec!["\n", "\n", "\n", "\n", "\r\n", "\r"]),
            0u8..4,
            0u8..8,
            any::<prop::sample::Index>(),
        );
        prop::collection::vec(event, 1..10).prop_map(|events| {
            let mut all = Vec::new();
            for (kind, word, end, colon, extra, at) in events {
                let mut text = Vec::new();
                let data = match kind {
                    0..=5 => format!(
                        r#"{{"id":"c1","object":"chat.completion.chunk","model":"m","choices":[{{"index":0,"delta":{{"content":"{word}"}},"finish_reason":null}}]}}"#
                    ),
                    6 => r#"{"id":"c1","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"total_tokens":3}}"#.to_owned(),
                    7 => r#"{"id":"c1","error":{"code":502,"message":"down"}}"#.to_owned(),
                    8 => format!("{{nope {word}"),
                    // The usual chunk's members before `choices`, then others: read from there.
                    10 => r#"{"id":"c1","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"total_tokens":3}}"#.to_owned(),
                    11 => r#"{"id":"c1","object":"chat.completion.chunk","model":"m","error":{"code":"server_error"},"choices":[]}"#.to_owned(),
                    12 => format!(r#"{{"id":"c1","object":"chat.completion.chunk","model":"m","choices":[{word}]}}"#),
                    _ => "[DONE]".to_owned(),
                };
                let colon = if colon == 0 { "data:" } else { "data: " };
                if extra == 0 {
                    text.extend_from_slice(format!(": keep-alive{end}").as_bytes());
                }
                if extra == 1 {
                    // Two data lines, joined with a line feed by the line scan.
                    let mut cut = at.index(data.len() + 1);
                    while !data.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    let (a, b) = data.split_at(cut);
                    text.extend_from_slice(format!("{colon}{a}{end}{colon}{b}{end}").as_bytes());
                } else {
                    text.extend_from_slice(format!("{colon}{data}{end}").as_bytes());
                }
                text.extend_from_slice(end.as_bytes());
                all.push(text);
            }
            all
        })
    }

    /// What a watch tells after a frame, with the end of the last good event in it.
    type Seen = (
        Phase,
        Option<PreContentFailure>,
        Option<serde_json::Value>,
        Option<String>,
        Option<String>,
        Option<i64>,
        Option<usize>,
    );

    fn seen(w: &Watch, end: Option<usize>) -> Seen {
        let (id, model) = (w.id().map(str::to_owned), w.model().map(str::to_owned));
        (
            w.phase,
            w.failed,
            w.upstream_code.clone(),
            id,
            model,
            w.created,
            end,
        )
    }

    /// Feeds `frame` a byte at a time (one byte is never a whole event: no fast path is taken),
    /// and tells what feeding it at once should: the end of the last good event is the offset
    /// past the last byte that ended one (its LF for a CRLF); once done, 0 unless `[DONE]` ended
    /// in this frame.
    fn by_bytes(w: &mut Watch, frame: &[u8]) -> Seen {
        let mut end = None;
        for (i, b) in frame.iter().enumerate() {
            w.feed(std::slice::from_ref(b));
            match w.take_end(1) {
                Some(1) => end = Some(i + 1),
                Some(_) => end = end.or(Some(0)),
                None => {}
            }
            // A CRLF cut after its CR ends the event there; read at once, after its LF.
            if *b == b'\n' && i > 0 && frame[i - 1] == b'\r' && end == Some(i) {
                end = Some(i + 1);
            }
        }
        seen(w, end)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// A stream read frame by frame, each frame fed at once (where the usual frame, one
        /// whole `data:` event, is read in place or by the learned shape), reads as the same
        /// frames fed byte by byte (the line scan alone), after every frame: same phase,
        /// failure, error code, `id`, `model`, `created`, and end of the last good event. The
        /// frames are one per event or cut anywhere.
        #[test]
        fn frames_read_as_their_bytes(events in sse_events(), per_event in any::<bool>(), cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8)) {
            let text = events.concat();
            let frames: Vec<&[u8]> = if per_event {
                events.iter().map(Vec::as_slice).collect()
            } else {
                let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(text.len() + 1)).collect();
                cuts.sort_unstable();
                let mut at = 0;
                cuts.into_iter().chain([text.len()]).map(|c| {
                    let f = &text[at..c];
                    at = c;
                    f
                }).collect()
            };
            let (mut whole, mut bytes) = (Watch::new(), Watch::new());
            for frame in frames.into_iter().filter(|f| !f.is_empty()) {
                whole.feed(frame);
                let end = whole.take_end(frame.len());
                prop_assert_eq!(seen(&whole, end), by_bytes(&mut bytes, frame), "{}", String::from_utf8_lossy(frame));
            }
            whole.finish();
            bytes.finish();
            prop_assert_eq!(seen(&whole, None), seen(&bytes, None));
        }
    }

    proptest! {
        /// The bytes sent on for each frame of a stream sent one event per frame (where the
        /// usual frame is sent on as it is) are the ones sent for it when it comes cut after its
        /// first byte (the line scan, and the framer joining the held byte to the rest).
        #[test]
        fn event_frames_are_sent_on_as_their_bytes(events in sse_events()) {
            use crate::fallback::body::{observe, Framer};
            let (mut whole, mut framer) = (Watch::new(), Framer::default());
            let (mut cut, mut cut_framer) = (Watch::new(), Framer::default());
            for frame in events.into_iter().map(bytes::Bytes::from) {
                let out = observe(None, &mut whole, &mut framer, frame.clone());
                let head = observe(None, &mut cut, &mut cut_framer, frame.slice(..1));
                let tail = observe(None, &mut cut, &mut cut_framer, frame.slice(1..));
                prop_assert_eq!(out, [head, tail].concat(), "{}", String::from_utf8_lossy(&frame));
                prop_assert_eq!(whole.phase, cut.phase);
            }
            whole.finish();
            cut.finish();
            prop_assert_eq!(framer.flush(&whole), cut_framer.flush(&cut));
        }
    }
}
