//! Editing: what the meter changes in an answer, always by splicing bytes, never by re-serialising.
//!
//! * A **non-streamed body** ([`edit_body`]) is parsed once into top-level spans; `id`, `model`,
//!   `provider` and the `usage` object (with `cost` / `cost_details` inserted) are replaced in it.
//! * An **SSE stream** is edited event by event through a [`Handler`] (the
//!   [`OnEvent`] of the [`SseScanner`](super::sse::SseScanner)): the first JSON event teaches the
//!   byte patterns of the upstream's `"id":"…"` / `"model":"…"` members ([`Rule`]s) and an
//!   ordinary content chunk teaches the chunk shape ([`Template`]); later events are rewritten by
//!   pattern search or by copying around their content, and only the usage chunk (and Anthropic's
//!   `message_start` / `message_delta`) is parsed and spliced. A frame that is exactly one
//!   ordinary content chunk is metered and emitted by comparing it with the template alone,
//!   without the scanner ([`Template::frame_content`]).
//!
//! Imports `settle` (the request context and observations it fills in), `json`, `cost`,
//! `metadata`, `scan` and `sse`.

use std::ops::Range;

use arrayvec::ArrayVec;
use bytes::{Bytes, BytesMut};
use memchr::memmem::Finder;
use serde::Deserialize;
use tokio::time::Instant;

use super::content;
use super::cost::{self, Cost, TokenUsage, WireUsage};
use super::json::{self, ChoicesSummary, Top};
use super::metadata;
use super::reading::read_into;
use super::scan::{self, trim_start};
use super::settle::{Ctx, Obs};
use super::sse::{out_put, out_reserve, OnEvent};
use crate::route::{splice, AnswerReading, Piece, Pieces};

/// A splice: a byte range of the original and what replaces it.
type Edit = (Range<usize>, Vec<u8>);

// ===== shared =====

/// The value that replaces `"model"`: the served catalog model, followed by a `"provider"` member
/// when the object has none, and a `"service_tier"` member when a tier was served and the object
/// has none (when it has one, [`tier_edit`] replaces its value).
fn model_value(ctx: &Ctx, top: &Top<'_>) -> Vec<u8> {
    let (_, pieces) = model_splice(ctx, top, 0..0);
    splice(&[], &mut [(0..0, pieces)])
}

/// The upstream's `service_tier` value replaced by the tier the gateway served, if it served one.
fn tier_splice<'c>(ctx: &'c Ctx, top: &Top<'_>, d: &[u8]) -> Option<json::Splice<'c>> {
    let tier = ctx.service_tier.as_ref()?;
    let r = json::span(d, top.service_tier?)?;
    Some((r, Pieces::new([Piece::Raw(tier.as_bytes())])))
}

/// `openrouter_metadata` appended to the object `d`, when the request asked for it (a
/// successful answer names its serving endpoint; an error none).
fn metadata_edit(ctx: &Ctx, d: &[u8]) -> Option<Edit> {
    let plan = ctx.metadata.as_deref()?;
    let served = ctx.endpoint_key.as_ref().filter(|_| ctx.success);
    let elapsed = ctx.cfg.clock.now().saturating_duration_since(ctx.start);
    metadata::insertion(plan, d, served, elapsed)
}

/// The cost of `t` at the served endpoint, insured or not by the finish reason seen so far.
fn cost_of(ctx: &Ctx, obs: &mut Obs, t: &TokenUsage) -> Cost {
    let insured = !ctx.embeddings && cost::insured(Some(t), obs.finish_reason.as_deref());
    obs.price(ctx, t, insured)
}

// ===== non-streamed bodies =====

/// Reads a complete non-streamed body into `obs` and, when the layer rewrites, edits it: `id`,
/// `model` (+ `provider`), `provider`, and `usage` with the cost. A body that is not a JSON object
/// is returned as it is.
pub(crate) fn edit_body(
    ctx: &Ctx,
    obs: &mut Obs,
    body: Bytes,
    reading: Option<&mut AnswerReading>,
) -> Bytes {
    // ProviderFallback's reading of these bytes (made by the meter's reader), else the meter's own,
    // written in place.
    let mut read = Default::default();
    let found = reading.is_some_and(|r| read_into(r, &body, &mut read));
    if !found && !Top::parse_with_choices_into(&body, &mut read) {
        obs.content_bytes += body.len() as u64;
        return body;
    }
    // Read in place: the summary (with its wire usage) is not moved out of `read`.
    let (top, choices) = &mut read;
    if !ctx.success {
        // An error answer, read only to add its `openrouter_metadata`.
        return match metadata_edit(ctx, &body) {
            Some(e) => Bytes::from(json::apply(&body, &mut [e])),
            None => body,
        };
    }
    let wire = observe_body(obs, top, choices, !ctx.cfg.sinks.is_empty());
    content::record_body_output(&ctx.span, &body, ctx.cfg.content_limit);
    if !ctx.rewrite {
        return body;
    }
    // What the usage splice borrows: its cost members (or its re-serialised usage object).
    let mut members = None;
    let mut object = Vec::new();
    // At most six splices (id, model, provider, service tier, usage, metadata), on the stack.
    let mut splices: [json::Splice<'_>; 6] = Default::default();
    let mut n = 0;
    let mut push = |e: Option<_>| {
        if let Some(e) = e {
            splices[n] = e;
            n += 1;
        }
    };
    push(quoted(&body, top.id, &ctx.id));
    push(
        top.model
            .filter(|_| !ctx.model.is_empty())
            .and_then(|v| json::span(&body, v))
            .map(|r| model_splice(ctx, top, r)),
    );
    push(tier_splice(ctx, top, &body));
    let provider = top.provider.filter(|_| !ctx.provider_name.is_empty());
    push(quoted(&body, provider, &ctx.provider_name));
    if let (Some(u), Some(w)) = (top.usage, wire) {
        let held = (&mut members, &mut object);
        push(body_usage_splice(ctx, obs, (&body, u), w, held));
    }
    let metadata = metadata_edit(ctx, &body);
    push(metadata.as_ref().map(raw));
    Bytes::from(splice(&body, &mut splices[..n]))
}

/// The splice that replaces the value `v` (of `body`) by the JSON string `s`.
fn quoted<'c>(body: &[u8], v: Option<json::Raw<'_>>, s: &'c str) -> Option<json::Splice<'c>> {
    let r = json::span(body, v?)?;
    Some((r, Pieces::new([Piece::Quoted(s)])))
}

/// An [`Edit`] as a splice that borrows its bytes.
fn raw((r, v): &Edit) -> json::Splice<'_> {
    (r.clone(), Pieces::new([Piece::Raw(v)]))
}

/// The splice of `model`'s value at `r`: the pieces of [`model_value`].
fn model_splice<'c>(ctx: &'c Ctx, top: &Top<'_>, r: Range<usize>) -> json::Splice<'c> {
    let mut pieces = Pieces::new([Piece::Quoted(&ctx.model)]);
    if top.provider.is_none() && !ctx.provider_name.is_empty() {
        pieces.push(Piece::Raw(b",\"provider\":"));
        pieces.push(Piece::Quoted(&ctx.provider_name));
    }
    if let (None, Some(tier)) = (top.service_tier, &ctx.service_tier) {
        pieces.push(Piece::Raw(b",\"service_tier\":"));
        pieces.push(Piece::Raw(tier.as_bytes()));
    }
    (r, pieces)
}

/// Records what a non-streamed body says (upstream id — only when `recorded`: the generation
/// record alone keeps it —, error, finish reason, content bytes, usage); returns its wire usage,
/// if readable: the one in `choices` (read there now if the skimmer did not read it on the way),
/// borrowed rather than moved out.
fn observe_body<'c>(
    obs: &mut Obs,
    top: &Top<'_>,
    choices: &'c mut ChoicesSummary,
    recorded: bool,
) -> Option<&'c WireUsage> {
    if let Some(id) = top.id.filter(|_| recorded) {
        obs.upstream_id = id.string();
    }
    if top.error.is_some_and(|e| !e.is_null()) {
        obs.error = true;
    }
    obs.finish_reason = choices.finish_reason.take();
    obs.content_bytes += choices.content_bytes;
    if choices.usage.is_none() {
        choices.usage = Some(WireUsage::read(top.usage?.get())?);
    }
    let w = choices.usage.as_ref()?;
    if w.is_openai() {
        obs.usage = Some(w.to_usage());
    } else if w.has_counts() {
        let mut t = TokenUsage::default();
        w.merge_anthropic(&mut t);
        obs.anthropic = Some(t);
    }
    Some(w)
}

/// The splice of a non-streamed body's `usage` object: the cost added (OpenAI usage), or `cost`
/// added to an Anthropic message's usage (passed through for a Messages caller). The OpenAI
/// splice borrows the cost members it writes into `members`; a replaced usage object (an
/// upstream cost) or an Anthropic insertion borrows the bytes it writes into `object`.
fn body_usage_splice<'m>(
    ctx: &Ctx,
    obs: &mut Obs,
    (body, u): (&[u8], json::Raw<'_>),
    w: &WireUsage,
    (members, object): (&'m mut Option<json::CostMembers>, &'m mut Vec<u8>),
) -> Option<json::Splice<'m>> {
    if let Some(t) = obs.usage {
        let c = cost_of(ctx, obs, &t);
        let members = &*members.insert(json::CostMembers::new(&c));
        json::span(body, u).and_then(|r| json::usage_splice(body, r, w, members, object))
    } else if let Some(t) = obs.anthropic {
        let c = cost_of(ctx, obs, &t);
        let (r, v) =
            json::span(body, u).and_then(|r| json::anthropic_usage_edit(body, r, w, &t, &c))?;
        *object = v;
        let object: &'m [u8] = object;
        Some((r, Pieces::new([Piece::Raw(object)])))
    } else {
        None
    }
}

// ===== streams =====

/// The usage chunk `d` edited: the cost members in its usage object at `usage` (see
/// [`json::usage_splice`]) and, when the request asked for it, `openrouter_metadata` appended;
/// written in one allocation, the splices borrowing their bytes.
fn usage_chunk(
    ctx: &Ctx,
    d: &[u8],
    usage: Range<usize>,
    wire: &WireUsage,
    c: &Cost,
) -> Option<Vec<u8>> {
    let members = json::CostMembers::new(c);
    let mut object = Vec::new();
    let usage = json::usage_splice(d, usage, wire, &members, &mut object)?;
    Some(match &metadata_edit(ctx, d) {
        Some(m) => splice(d, &mut [usage, raw(m)]),
        None => splice(d, &mut [usage]),
    })
}

/// An event's top-level members, read by the skimmer when it can (serde otherwise): what
/// [`Top::parse`] reads, but for `choices`, which the stream path does not look at and the
/// skimmer passes over unread (the equality is `json.rs`'s `members_parse_is_parse_with_choices`
/// proptest); and its `usage` counts when the skimmer read them on the way (`None`: read them from
/// `Top::usage`).
fn event_top(d: &[u8]) -> Option<(Top<'_>, Option<WireUsage>)> {
    Top::parse_members_usage(d)
}

/// `usage`'s counts: `skimmed` if the skimmer read them, else read from `raw`.
fn wire_usage(skimmed: Option<WireUsage>, raw: json::Raw<'_>) -> Option<WireUsage> {
    skimmed.or_else(|| WireUsage::read(raw.get()))
}

/// A member of a stream's first event that a [`Rule`] rewrites: its key, its span from the key
/// (the value alone if the key is not found before it), where its value starts, and the new value.
type Learned<'c> = (
    &'static str,
    Range<usize>,
    usize,
    Pieces<'c, { json::PIECES }>,
);

/// The most [`Rule`]s a stream learns: one per member it rewrites (`id`, `model`, `provider`,
/// `service_tier`).
const MAX_RULES: usize = 4;

/// A byte-pattern replacement learned from the first event of a stream: the member as the
/// upstream wrote it (`"id":"…"`) and what replaces it, both in the stream's
/// [`StreamEdits::rule_bytes`] (one buffer for all its rules).
struct Rule {
    /// Where the member's bytes start in the buffer; the replacement's follow them.
    start: usize,
    /// The member's length.
    needle_len: usize,
    /// Where the replacement ends in the buffer.
    end: usize,
    /// Where the pattern was found in the previous event: chunks from one serializer put the
    /// member at the same offset, so a comparison there usually saves the search.
    hint: usize,
    /// The searcher of the member's quoted key, which the member starts with (shared by every
    /// stream: none is built per stream); `None` when the member is its value alone (a key
    /// written with escapes).
    key: Option<&'static Finder<'static>>,
}

impl Rule {
    /// The member's bytes, as the upstream wrote them (`bytes`: the rules' buffer).
    fn needle<'b>(&self, bytes: &'b [u8]) -> &'b [u8] {
        &bytes[self.start..self.start + self.needle_len]
    }

    /// What replaces the member (`bytes`: the rules' buffer).
    fn replacement<'b>(&self, bytes: &'b [u8]) -> &'b [u8] {
        &bytes[self.start + self.needle_len..self.end]
    }

    /// The length of [`Rule::replacement`].
    fn replacement_len(&self) -> usize {
        self.end - self.start - self.needle_len
    }

    /// The first occurrence of the member in `src` (`bytes`: the rules' buffer). The member
    /// starts with its quoted key: each occurrence of the key, in order (overlapping ones too),
    /// is compared with the member, the key's searcher being built once per process.
    fn find(&self, bytes: &[u8], src: &[u8]) -> Option<usize> {
        let needle = self.needle(bytes);
        if src.len() < needle.len() {
            // Too short to hold it (`[DONE]`, a template's suffix): not even a search.
            return None;
        }
        let Some(key) = self.key else {
            return memchr::memmem::find(src, needle);
        };
        let mut from = 0;
        while let Some(i) = key.find(&src[from..]) {
            let at = from + i;
            if src[at..].starts_with(needle) {
                return Some(at);
            }
            from = at + 1;
        }
        None
    }
}

/// The shape of an ordinary content chunk, learned from the first one: its bytes before the
/// content string and after it. Chunks from one serializer repeat both exactly, so a later event
/// that starts and ends with them and has a plain string in between is an ordinary content chunk
/// too: it is metered by its length and rewritten by copying, without being searched. (It can hold
/// no finish reason, usage or error, and each rewrite rule matches in the prefix or the suffix
/// alone; `learn_template` checks both on the learned chunk.)
struct Template {
    /// `data: ` and the prefix (the data payload up to and including the content string's
    /// opening quote), as the event's bytes start.
    raw_prefix: Vec<u8>,
    /// The suffix (the data payload from the content string's closing quote on) and the blank
    /// line, as the event's bytes end.
    raw_suffix: Vec<u8>,
    /// `raw_prefix` and `raw_suffix` with the rewrite rules applied.
    rewritten_prefix: Vec<u8>,
    rewritten_suffix: Vec<u8>,
    /// True when the rewrite rules leave `raw_prefix` as it is.
    prefix_kept: bool,
    /// True when the rewrite rules leave `raw_suffix` as it is.
    suffix_kept: bool,
    /// True when the prefix and suffix hold no CR or LF: a frame `raw_prefix content raw_suffix`
    /// is then one event of one `data:` line (see [`Template::frame_content`]).
    one_line: bool,
}

impl Template {
    /// The data payload up to and including the content string's opening quote.
    fn prefix(&self) -> &[u8] {
        &self.raw_prefix[b"data: ".len()..]
    }

    /// The data payload from the content string's closing quote on.
    fn suffix(&self) -> &[u8] {
        &self.raw_suffix[..self.raw_suffix.len() - b"\n\n".len()]
    }

    /// The content of `d` if `d` is `prefix`, a plain string (no quote, not ending in an escape),
    /// then `suffix`.
    fn content<'d>(d: &'d [u8], prefix: &[u8], suffix: &[u8]) -> Option<&'d [u8]> {
        if d.len() < prefix.len() + suffix.len() || !d.starts_with(prefix) || !d.ends_with(suffix) {
            return None;
        }
        let middle = &d[prefix.len()..d.len() - suffix.len()];
        (memchr::memchr(b'"', middle).is_none() && escapes_even(middle)).then_some(middle)
    }

    /// The content of the event at the start of `buf` (which may hold more after it) if the
    /// event is `raw_prefix`, a plain string on one line, then `raw_suffix`: what
    /// [`Template::frame_content`] takes, found by the content's closing quote.
    #[inline]
    fn event_content<'b>(&self, buf: &'b [u8]) -> Option<&'b [u8]> {
        let p = self.raw_prefix.len();
        if !self.one_line || !buf.starts_with(&self.raw_prefix) {
            return None;
        }
        // The suffix starts with the closing quote, and a plain content holds none.
        let n = memchr::memchr(b'"', &buf[p..])?;
        (buf[p + n..].starts_with(&self.raw_suffix) && plain_line(&buf[p..], n))
            .then(|| &buf[p..p + n])
    }

    /// The content of `frame` if it is exactly `raw_prefix`, a plain string on one line (no
    /// quote or control byte, not ending in an escape), then `raw_suffix`: one event of one `data:`
    /// line whose data [`Template::content`] takes for an ordinary chunk. The cheapest tests
    /// come first: the length, the suffix, the prefix.
    #[inline(always)]
    fn frame_content<'f>(&self, frame: &'f [u8]) -> Option<&'f [u8]> {
        if !self.one_line {
            return None;
        }
        let (p, s) = (&self.raw_prefix[..], &self.raw_suffix[..]);
        // Checked splits: the comparisons and the content then need no bounds checks (nor
        // panics) of their own.
        let (head, rest) = frame.split_at_checked(p.len())?;
        let n = rest.len().checked_sub(s.len())?;
        let (content, tail) = rest.split_at(n);
        (tail == s && head == p && plain_line(rest, n)).then_some(content)
    }
}

/// True if the first `n` bytes of `s` hold no `"` and no control byte (CR, LF, or any other,
/// which JSON strings never hold raw) and do not end in an escape (an odd run of backslashes).
/// The usual short token takes one or two 8-byte word tests, where memchr's setup costs more:
/// up to 8 bytes, the first word of `s` (read past the `n` bytes where `s` goes on); up to 16,
/// the first and the last 8 of the `n` bytes (overlapping).
#[inline(always)]
pub(super) fn plain_line(s: &[u8], n: usize) -> bool {
    let word = |w: &[u8]| u64::from_le_bytes(w.try_into().unwrap_or_default());
    // The last of the `n` bytes is taken from the word that holds it, where there is one.
    let (clean, last) = match s.get(..8) {
        // The lowest flagged byte is a true one: none among the first `n` bytes means none is
        // there (no mask needed for the bytes after them).
        Some(w) if n <= 8 => {
            let w = word(w);
            let clean = special_bytes(w).trailing_zeros() as usize >= 8 * n;
            (clean, n.checked_sub(1).map(|i| (w >> (8 * i)) as u8))
        }
        Some(w) if n <= 16 => {
            let end = word(&s[n - 8..n]);
            (
                special_bytes(word(w)) | special_bytes(end) == 0,
                Some((end >> 56) as u8),
            )
        }
        _ => (plain_long(s, n), n.checked_sub(1).map(|i| s[i])),
    };
    clean && (last != Some(b'\\') || escapes_even(&s[..n]))
}

/// True if `s` does not end in an escape: its final run of backslashes is even.
#[inline(never)]
fn escapes_even(s: &[u8]) -> bool {
    s.iter().rev().take_while(|b| **b == b'\\').count() % 2 == 0
}

/// [`plain_line`]'s test of the bytes, for a longer string (or one at the end of `s`).
#[inline(never)]
fn plain_long(s: &[u8], n: usize) -> bool {
    let mut words = s[..n].chunks_exact(8);
    words
        .by_ref()
        .all(|w| special_bytes(u64::from_le_bytes(w.try_into().unwrap_or_default())) == 0)
        && !words.remainder().iter().any(|b| *b == b'"' || *b < 0x20)
}

/// The top bit of each byte of `w` (little-endian) that may be a `"` or a control byte: the
/// lowest one set always is, a false one only follows a true one (a borrow), so masking the bits
/// of the bytes after a string leaves an exact "has one" answer.
///
/// One "byte below 0x21" test of `w ^ 0x02…`: flipping bit 1 takes `"` (0x22) to 0x20 and keeps
/// the control bytes below 0x20, while every other byte lands at 0x21 or above.
#[inline(always)]
fn special_bytes(w: u64) -> u64 {
    const ONES: u64 = u64::MAX / 255;
    let x = w ^ (ONES * 0x02);
    x.wrapping_sub(ONES * 0x21) & !x & (ONES << 7)
}

/// What the editing of one stream has learned so far, kept between frames.
#[derive(Default)]
pub(crate) struct StreamEdits {
    /// Replacements of the upstream's `id` / `model` / `provider` / `service_tier` members.
    rules: ArrayVec<Rule, MAX_RULES>,
    /// The rules' members and replacements, one after the other (see [`Rule`]).
    rule_bytes: Vec<u8>,
    /// True once the first JSON event was seen.
    learned: bool,
    /// True when the first JSON event was compact (no space after `:`).
    compact: bool,
    /// The ordinary content chunk's shape, once learned.
    template: Option<Template>,
    /// The content (address and length) of the event [`OnEvent::on_event`] last found to be an
    /// ordinary content chunk: its rewrite then needs no second match (see
    /// [`Handler::rewrite_ordinary`]).
    ordinary: Option<(usize, usize)>,
}

#[cfg(test)]
impl StreamEdits {
    /// Edits that never learn a content chunk's [`Template`] (one that no event matches stands in
    /// for it): every event is read by the scanners and rewritten by the rules alone, the
    /// reference that the template's copies must equal.
    pub(super) fn without_template() -> Self {
        let never = Template {
            raw_prefix: b"data: \0".to_vec(),
            raw_suffix: b"\n\n".to_vec(),
            rewritten_prefix: Vec::new(),
            rewritten_suffix: Vec::new(),
            prefix_kept: false,
            suffix_kept: false,
            one_line: false,
        };
        StreamEdits {
            template: Some(never),
            ..Default::default()
        }
    }
}

/// The SSE event observer and editor: the stream's [`StreamEdits`] over the request's context and
/// observations, for one frame.
pub(crate) struct Handler<'a> {
    ctx: &'a Ctx,
    obs: &'a mut Obs,
    st: &'a mut StreamEdits,
    /// The frame's arrival time, read from the clock on first use only.
    now: Option<Instant>,
}

#[derive(Deserialize)]
struct AnthropicMessage<'a> {
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(borrow, default)]
    id: Option<json::Raw<'a>>,
    #[serde(borrow, default)]
    model: Option<json::Raw<'a>>,
}

#[derive(Deserialize)]
struct AnthropicDelta<'a> {
    #[serde(borrow, default)]
    stop_reason: Option<std::borrow::Cow<'a, str>>,
}

impl<'a> Handler<'a> {
    pub(crate) fn new(ctx: &'a Ctx, obs: &'a mut Obs, st: &'a mut StreamEdits) -> Self {
        Handler {
            ctx,
            obs,
            st,
            now: None,
        }
    }
}

impl Handler<'_> {
    fn now(&mut self) -> Instant {
        *self.now.get_or_insert_with(|| self.ctx.cfg.clock.now())
    }

    /// Notes content: its bytes, and the time of the first.
    #[inline(always)]
    fn content(&mut self, n: u64) {
        if n > 0 {
            self.obs.content_bytes += n;
            if self.obs.first_content.is_none() {
                self.obs.first_content = Some(self.now());
            }
        }
    }

    /// Notes the content of a chunk of the learned [`Template`]'s shape, as [`Handler::content`]
    /// and [`Handler::capture`] do: the time of the first content is known already (the template
    /// was learned from a chunk with content), so only the count moves.
    #[inline(always)]
    fn template_content(&mut self, content: &[u8]) {
        debug_assert!(self.obs.first_content.is_some());
        self.obs.content_bytes += content.len() as u64;
        self.capture(content);
    }

    /// Keeps streamed content for the request span, when the operator records contents.
    #[inline(always)]
    fn capture(&mut self, raw: &[u8]) {
        let limit = self.ctx.cfg.content_limit;
        if limit > 0 {
            content::capture(&mut self.obs.output, raw, limit);
        }
    }

    /// Learns from the first JSON event: the upstream id, the rewrite rules, compactness.
    fn learn_first(&mut self, d: &[u8]) {
        self.st.learned = true;
        if self.ctx.rewrite {
            // The members only: the first event's choices are metered by the scanners.
            if let Some(top) = Top::parse_members(d) {
                if let Some(id) = top.id {
                    self.obs.upstream_id = id.string();
                }
                self.learn(&top, d);
            }
        }
        self.st.compact = !scan::spaced(d);
    }

    /// Learns the rewrite rules from the first JSON event `d` (read as `top`): the members it
    /// has that the answer rewrites, each with its replacement, written into the rules' one buffer
    /// in one allocation.
    fn learn(&mut self, top: &Top<'_>, d: &[u8]) {
        let ctx = self.ctx;
        // Each member found, in rule order: its key, its span from the key, where its value
        // starts, and the new value. At most `MAX_RULES`.
        let mut found: ArrayVec<Learned<'_>, MAX_RULES> = ArrayVec::new();
        let mut add = |key: &'static str, raw: Option<json::Raw<'_>>, value| {
            if let Some(v) = raw.and_then(|raw| json::span(d, raw)) {
                let m = json::member_span(d, key, v.clone());
                found.push((key, m, v.start, value));
            }
        };
        add("id", top.id, Pieces::new([Piece::Quoted(&ctx.id)]));
        if !ctx.model.is_empty() {
            add("model", top.model, model_splice(ctx, top, 0..0).1);
        }
        if !ctx.provider_name.is_empty() {
            let name = Pieces::new([Piece::Quoted(&ctx.provider_name)]);
            add("provider", top.provider, name);
        }
        if let Some(tier) = &ctx.service_tier {
            let tier = Pieces::new([Piece::Raw(tier.as_bytes())]);
            add("service_tier", top.service_tier, tier);
        }
        let st = &mut *self.st;
        let len = found
            .iter()
            .map(|(_, m, v, value)| m.len() + v - m.start + value.len());
        st.rule_bytes.reserve(len.sum());
        for (key, m, v, value) in found {
            // The member, then its key as written (`"id":`) and the new value.
            let start = st.rule_bytes.len();
            st.rule_bytes.extend_from_slice(&d[m.clone()]);
            st.rule_bytes.extend_from_slice(&d[m.start..v]);
            value.write(&mut st.rule_bytes);
            st.rules.push(Rule {
                start,
                needle_len: m.len(),
                end: st.rule_bytes.len(),
                // The event is rewritten next, from its bytes: `data: ` and `d`, usually.
                hint: m.start + b"data: ".len(),
                key: scan::member_key(key).filter(|k| d[m].starts_with(k.needle())),
            });
        }
    }

    /// Learns the [`Template`] from `d`, an event with no finish reason, usage or error whose
    /// content string is `n` bytes ending at `after` — if it is an ordinary content chunk whose
    /// shape cannot hide those in another chunk's content.
    fn learn_template(&mut self, d: &[u8], n: u64, after: usize) {
        let Ok(n) = usize::try_from(n) else { return };
        if n == 0 || d.get(after) != Some(&b'"') || after < n + 1 {
            return;
        }
        let (prefix, suffix) = (&d[..after - n], &d[after..]);
        // After the closing quote comes `}` or `,`, never `:` (which would turn a content of
        // `usage` or `finish_reason` into a member name).
        if trim_start(&suffix[1..]).starts_with(b":") {
            return;
        }
        let raw_prefix = [&b"data: "[..], prefix].concat();
        let raw_suffix = [suffix, b"\n\n"].concat();
        let (mut rewritten_prefix, mut rewritten_suffix) = (BytesMut::new(), BytesMut::new());
        if self.ctx.rewrite {
            // Room for every rule's replacement, allocated as a `Vec` is (no reservation of
            // `BytesMut`'s own): the rewrites then never reallocate.
            let added: usize = self.st.rules.iter().map(Rule::replacement_len).sum();
            rewritten_prefix = BytesMut::with_capacity(raw_prefix.len() + added);
            rewritten_suffix = BytesMut::with_capacity(raw_suffix.len() + added);
            let hints: ArrayVec<usize, MAX_RULES> = self.st.rules.iter().map(|r| r.hint).collect();
            let in_prefix = self.st.rewrite_by_rules(&raw_prefix, &mut rewritten_prefix);
            let in_suffix = self.st.rewrite_by_rules(&raw_suffix, &mut rewritten_suffix);
            // A rule found in both parts applies to the first occurrence only: not ordinary.
            // (None can match across the content, which has no quote.) The rules keep the hints
            // they had, as if these parts had not been rewritten.
            if in_prefix & in_suffix != 0 {
                for (r, hint) in self.st.rules.iter_mut().zip(hints) {
                    r.hint = hint;
                }
                return;
            }
        }
        let prefix_kept = rewritten_prefix[..] == raw_prefix[..];
        let suffix_kept = rewritten_suffix[..] == raw_suffix[..];
        self.st.template = Some(Template {
            raw_prefix,
            raw_suffix,
            rewritten_prefix: rewritten_prefix.into(),
            rewritten_suffix: rewritten_suffix.into(),
            prefix_kept,
            suffix_kept,
            one_line: memchr::memchr2(b'\r', b'\n', prefix).is_none()
                && memchr::memchr2(b'\r', b'\n', suffix).is_none(),
        });
    }

    /// True if `d` (an unnamed event) is an ordinary content chunk (see [`Template`]), which is
    /// then metered by its content's length.
    #[inline]
    fn ordinary_chunk(&mut self, d: &[u8]) -> bool {
        let Some(t) = self.st.template.as_ref() else {
            return false;
        };
        match Template::content(d, t.prefix(), t.suffix()) {
            Some(content) => {
                self.st.ordinary = Some((content.as_ptr() as usize, content.len()));
                self.content(content.len() as u64);
                self.capture(content);
                true
            }
            None => false,
        }
    }

    /// Meters the content of `d` and notes its finish reason; returns the content's length and
    /// the offset where it ends.
    fn observe_content(&mut self, d: &[u8]) -> (u64, usize) {
        let (n, after) = scan::content_len(d, &mut self.obs.content_hint, self.ctx.completions);
        self.content(n);
        if self.ctx.cfg.content_limit > 0 {
            if let Some(raw) = usize::try_from(n)
                .ok()
                .and_then(|n| d.get(after.checked_sub(n)?..after))
            {
                self.capture(raw);
            }
        }
        if self.obs.finish_reason.is_none() {
            // In OpenAI chunks `finish_reason` follows the delta: search after the content.
            if let Some(fr) = scan::finish_reason_around(d, after) {
                self.obs.finish_reason = Some(cost::finish_reason(String::from_utf8_lossy(fr)));
                // The last content arrives with (or just before) the finish reason: its time
                // ends the generation, without reading the clock for every event.
                self.obs.last_content = Some(self.now());
            }
        }
        (n, after)
    }

    /// An event that may carry usage or an error: parsed, observed, and edited if it has usage.
    fn parsed_event(&mut self, d: &[u8]) -> Option<Vec<u8>> {
        let (top, wire) = event_top(d)?;
        if top.error.is_some_and(|e| e.get() != "null") {
            self.obs.error = true;
            if top.kind.is_none() && top.usage.is_none() {
                return self.error_chunk(&top, d);
            }
        }
        match top.kind.as_deref() {
            Some("message_start") => self.message_start(&top, d),
            Some("message_delta") => self.message_delta(&top, wire, d),
            Some("error") => {
                self.obs.error = true;
                None
            }
            _ => self.openai_usage(&top, wire, d),
        }
    }

    /// A chat error chunk (the gateway's own, ending a failed stream): `id` and `model` set by
    /// their JSON spans, as in a non-streamed answer — its layout need not match the upstream
    /// chunks the byte-pattern rules were learned from.
    fn error_chunk(&mut self, top: &Top<'_>, d: &[u8]) -> Option<Vec<u8>> {
        if !self.ctx.rewrite {
            return None;
        }
        let mut edits = Vec::with_capacity(2);
        if let Some(r) = top.id.and_then(|v| json::span(d, v)) {
            edits.push((r, json::quote(&self.ctx.id).into_bytes()));
        }
        if let Some(r) = top
            .model
            .filter(|_| !self.ctx.model.is_empty())
            .and_then(|v| json::span(d, v))
        {
            edits.push((r, model_value(self.ctx, top)));
        }
        (!edits.is_empty()).then(|| json::apply(d, &mut edits))
    }

    /// Anthropic's `message_start`: input usage and the upstream id; a passed-through Messages
    /// stream's message gets the generation's id and the catalog's model, as a non-streamed
    /// answer does.
    fn message_start(&mut self, top: &Top<'_>, d: &[u8]) -> Option<Vec<u8>> {
        let m = top
            .message
            .and_then(|m| serde_json::from_str::<AnthropicMessage<'_>>(m.get()).ok())?;
        if let Some(u) = m.usage {
            u.merge_anthropic(self.obs.anthropic.get_or_insert_with(Default::default));
        }
        if self.obs.upstream_id.is_none() {
            self.obs.upstream_id = m.id.and_then(|s| serde_json::from_str(s.get()).ok());
        }
        if !self.ctx.rewrite {
            return None;
        }
        let mut edits = Vec::with_capacity(2);
        if let Some(r) = m.id.and_then(|v| json::span(d, v)) {
            edits.push((r, json::quote(&self.ctx.id).into_bytes()));
        }
        if let Some(r) = m
            .model
            .filter(|_| !self.ctx.model.is_empty())
            .and_then(|v| json::span(d, v))
        {
            edits.push((r, json::quote(&self.ctx.model).into_bytes()));
        }
        (!edits.is_empty()).then(|| json::apply(d, &mut edits))
    }

    /// Anthropic's `message_delta`: the stop reason and the cumulative usage, which gets the
    /// input side and the cost, as a translated stream's does. `wire`: the usage's counts if
    /// already read.
    fn message_delta(
        &mut self,
        top: &Top<'_>,
        wire: Option<WireUsage>,
        d: &[u8],
    ) -> Option<Vec<u8>> {
        if let Some(delta) = top
            .delta
            .and_then(|d| serde_json::from_str::<AnthropicDelta<'_>>(d.get()).ok())
        {
            if let Some(r) = delta.stop_reason {
                self.obs.finish_reason = Some(cost::finish_reason(r));
            }
        }
        let u = top.usage?;
        let wire = wire_usage(wire, u)?;
        let t = self.obs.anthropic.get_or_insert_with(Default::default);
        wire.merge_anthropic(t);
        let t = *t;
        if !self.ctx.rewrite {
            return None;
        }
        let c = cost_of(self.ctx, self.obs, &t);
        let edit =
            json::span(d, u).and_then(|r| json::anthropic_usage_edit(d, r, &wire, &t, &c))?;
        Some(json::apply(d, &mut [edit]))
    }

    /// An OpenAI usage chunk: the usage, and `cost` / `cost_details` inserted into it. `wire`:
    /// the usage's counts if already read.
    fn openai_usage(
        &mut self,
        top: &Top<'_>,
        wire: Option<WireUsage>,
        d: &[u8],
    ) -> Option<Vec<u8>> {
        let u = top.usage?;
        let wire = wire_usage(wire, u)?;
        if !wire.is_openai() {
            return None;
        }
        let t = wire.to_usage();
        self.obs.usage = Some(t);
        if !self.ctx.rewrite {
            return None;
        }
        let c = cost_of(self.ctx, self.obs, &t);
        usage_chunk(self.ctx, d, json::span(d, u)?, &wire, &c)
    }

    /// Appends `src` rewritten around its content if it is an ordinary content chunk (see
    /// [`Template`]); false if it is not one.
    #[inline]
    fn rewrite_ordinary(&self, src: &[u8], out: &mut BytesMut) -> bool {
        let Some(t) = self.st.template.as_ref() else {
            return false;
        };
        let known = self.st.ordinary.and_then(|(at, len)| {
            // The event's data, checked by `on_event`, is `prefix content suffix`: when it sits in
            // `src` as `data: ` + data + `\n\n`, `src` is `raw_prefix content raw_suffix`.
            let start = at.checked_sub(src.as_ptr() as usize)?;
            let fits = start == t.raw_prefix.len()
                && src.len() == start + len + t.raw_suffix.len()
                && src.starts_with(b"data: ")
                && src.ends_with(b"\n\n");
            fits.then(|| &src[start..start + len])
        });
        let Some(content) = known.or_else(|| Template::content(src, &t.raw_prefix, &t.raw_suffix))
        else {
            return false;
        };
        let n = t.rewritten_prefix.len() + content.len() + t.rewritten_suffix.len();
        out_reserve(out, n);
        out.extend_from_slice(&t.rewritten_prefix);
        out.extend_from_slice(content);
        out.extend_from_slice(&t.rewritten_suffix);
        true
    }
}

impl Handler<'_> {
    /// Meters a frame that is exactly one ordinary content chunk (see
    /// [`Template::frame_content`]) as [`Handler::ordinary_chunk`] does, and returns what to emit
    /// — the frame, or the rewritten prefix, content and suffix built in `out` — as
    /// [`Handler::rewrite_ordinary`] does (the same bytes); gives the frame back if it is not one.
    #[inline(always)]
    fn ordinary_frame(&mut self, frame: Bytes, out: &mut BytesMut) -> Result<Bytes, Bytes> {
        let Some(t) = self.st.template.as_ref() else {
            return Err(frame);
        };
        let Some(content) = t.frame_content(&frame) else {
            return Err(frame);
        };
        if self.st.rules.is_empty() || (t.prefix_kept && t.suffix_kept) {
            // Nothing to rewrite: the frame goes out as it is.
            self.template_content(content);
            return Ok(frame);
        }
        let p = t.raw_prefix.len();
        // The rules usually match on one side of the content only: the other side is copied
        // with the content, in one piece.
        let (a, b, c): (&[u8], &[u8], &[u8]) = match (t.prefix_kept, t.suffix_kept) {
            (true, _) => (&frame[..p + content.len()], &t.rewritten_suffix, &[]),
            (false, true) => (&t.rewritten_prefix, &frame[p..], &[]),
            (false, false) => (&t.rewritten_prefix, content, &t.rewritten_suffix),
        };
        out_reserve(out, a.len() + b.len() + c.len());
        out.extend_from_slice(a);
        out.extend_from_slice(b);
        if !c.is_empty() {
            out.extend_from_slice(c);
        }
        let emit = out.split().freeze();
        self.template_content(content);
        Ok(emit)
    }
}

impl OnEvent for Handler<'_> {
    fn on_event(&mut self, name: &[u8], data: &[u8]) -> Option<Vec<u8>> {
        self.st.ordinary = None;
        let d = trim_start(data);
        if d.first() != Some(&b'{') {
            return None;
        }
        if self.obs.first_data.is_none() {
            self.obs.first_data = Some(self.now());
        }
        if !self.st.learned {
            self.learn_first(d);
        }
        if name.is_empty() && self.ordinary_chunk(d) {
            return None;
        }
        let (n, after) = self.observe_content(d);
        let anthropic = name == b"message_start" || name == b"message_delta";
        if !(anthropic || scan::usage_or_error(d, self.st.compact)) {
            if self.st.template.is_none() && name.is_empty() && self.obs.finish_reason.is_none() {
                self.learn_template(d, n, after);
            }
            return None;
        }
        self.parsed_event(d)
    }

    fn rewrites(&self) -> bool {
        !self.st.rules.is_empty()
    }

    #[inline(always)]
    fn whole_event(&mut self, frame: Bytes, out: &mut BytesMut) -> Result<Bytes, Bytes> {
        self.ordinary_frame(frame, out)
    }

    /// An ordinary content chunk at the start of `buf` (see [`Template::event_content`]), metered
    /// as [`Handler::ordinary_chunk`] meters it.
    #[inline]
    fn known_event(&mut self, buf: &[u8]) -> Option<usize> {
        let t = self.st.template.as_ref()?;
        let content = t.event_content(buf)?;
        let n = t.raw_prefix.len() + content.len() + t.raw_suffix.len();
        self.st.ordinary = Some((content.as_ptr() as usize, content.len()));
        self.template_content(content);
        Some(n)
    }

    fn rewrite(&mut self, src: &[u8], out: &mut BytesMut) {
        if self.st.rules.is_empty() {
            out_put(out, src);
            return;
        }
        if !self.rewrite_ordinary(src, out) {
            self.st.rewrite_by_rules(src, out);
        }
    }
}

impl StreamEdits {
    /// Appends `src` with each rule applied once, at the member's hint or first occurrence;
    /// returns the rules whose member `src` holds (bit `i` for rule `i`).
    fn rewrite_by_rules(&mut self, src: &[u8], out: &mut BytesMut) -> u8 {
        let (rules, bytes) = (&mut self.rules, &self.rule_bytes[..]);
        let mut next: [Option<usize>; MAX_RULES] = [None; MAX_RULES];
        let mut found = 0;
        for (i, r) in rules.iter_mut().enumerate() {
            let needle = r.needle(bytes);
            let at_hint = r
                .hint
                .checked_add(needle.len())
                .and_then(|end| src.get(r.hint..end))
                == Some(needle);
            next[i] = if at_hint {
                Some(r.hint)
            } else {
                r.find(bytes, src)
            };
            if let Some(p) = next[i] {
                r.hint = p;
                found |= 1 << i;
            }
        }
        // One reservation for the whole event; the copies below then never reallocate.
        let longest = src.len() + rules.iter().map(Rule::replacement_len).sum::<usize>();
        out_reserve(out, longest);
        let mut at = 0;
        loop {
            let best = next[..rules.len()]
                .iter()
                .enumerate()
                .filter_map(|(i, p)| p.map(|p| (p, i)))
                .min();
            let Some((p, i)) = best else { break };
            out.extend_from_slice(&src[at..p]);
            out.extend_from_slice(rules[i].replacement(bytes));
            at = p + rules[i].needle_len;
            // A top-level member occurs once per JSON object: each rule applies once per event.
            next[i] = None;
            for (j, r) in rules.iter().enumerate() {
                if next[j].is_some_and(|q| q < at) {
                    next[j] = r.find(bytes, &src[at..]).map(|q| q + at);
                }
            }
        }
        out.extend_from_slice(&src[at..]);
        found
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A rule for `member` (`key`: the member's key, if it starts with it), alone in its buffer.
    fn rule(key: &str, member: &[u8]) -> (Rule, Vec<u8>) {
        let bytes = [member, b"\"new\""].concat();
        let rule = Rule {
            start: 0,
            needle_len: member.len(),
            end: bytes.len(),
            hint: 0,
            key: scan::member_key(key).filter(|k| member.starts_with(k.needle())),
        };
        (rule, bytes)
    }

    /// Events made of the pieces around a rule's member: its key alone, keys that overlap (a
    /// quote ends one and starts the next), the member itself and near misses, escaped quotes,
    /// and filler that takes the event past the short-haystack searches.
    fn event() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(&br#""id""#[..]),
            Just(&br#""id":"chatcmpl-abc""#[..]),
            Just(&br#""id": "chatcmpl-abc""#[..]),
            Just(&br#""id":"chatcmpl-ab""#[..]),
            Just(&br#""id"id":"chatcmpl-abc""#[..]),
            Just(&br#""x\"id":"chatcmpl-abc""#[..]),
            Just(&br#""chatcmpl-abc""#[..]),
            Just(&br#""model":"up/model""#[..]),
            Just(&br#""model""#[..]),
            Just(&br#"\""#[..]),
            Just(&br#"""#[..]),
            Just(&b"id"[..]),
            Just(&b":"[..]),
            Just(&b","[..]),
            Just(&br#"{"choices":[{"index":0,"delta":{"content":"lorem ipsum dolor"}}]}"#[..]),
        ];
        proptest::collection::vec(piece, 0..10).prop_map(|p| p.concat())
    }

    proptest! {
        #[test]
        fn rule_find_is_memmem(src in event(), which in 0usize..5) {
            let (key, member): (&str, &[u8]) = [
                ("id", &br#""id":"chatcmpl-abc""#[..]),
                ("id", br#""id": "chatcmpl-abc""#),
                ("model", br#""model":"up/model""#),
                // The value alone (a key written with escapes): no key search.
                ("id", br#""chatcmpl-abc""#),
                ("service_tier", br#""service_tier":"flex""#),
            ][which];
            let (rule, bytes) = rule(key, member);
            prop_assert_eq!(rule.key.is_some(), which != 3);
            prop_assert_eq!(rule.find(&bytes, &src), memchr::memmem::find(&src, member));
        }
    }
}
