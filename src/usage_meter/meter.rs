//! The per-request meter: observations, edits, and the exactly-once finish.

use std::fmt;
use std::sync::{Arc, LazyLock};

use bytes::{Bytes, BytesMut};
use memchr::memmem::Finder;
use serde::Deserialize;
use tokio::time::Instant;

use super::cost::{self, Cost, TokenUsage, WireUsage};
use super::json::{self, Top};
use super::layer::Config;
use super::ledger::{CallerKey, Ledger, Reservation};
use super::record::GenerationRecord;
use super::sse::{out_put, out_reserve, OnEvent, SseScanner};
use crate::catalog::{Catalog, EndpointKey, Usd};
use crate::stats::Generation;

static USAGE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"usage\""));
static ERROR: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"error\""));
static FINISH: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"finish_reason\":"));
static OPEN_OBJECT: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\":{"));
static CONTENT: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"content\":"));

/// A reservation that is released if nobody settles it (the request failed or was dropped).
pub(crate) struct Hold {
    ledger: Arc<dyn Ledger>,
    reservation: Option<Reservation>,
}

impl Hold {
    pub(crate) fn new(ledger: Arc<dyn Ledger>, reservation: Reservation) -> Self {
        Hold {
            ledger,
            reservation: Some(reservation),
        }
    }

    fn settle(mut self, actual: Usd) {
        if let Some(r) = self.reservation.take() {
            self.ledger.settle(r, actual);
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if let Some(r) = self.reservation.take() {
            self.ledger.release(r);
        }
    }
}

impl fmt::Debug for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hold")
            .field("reservation", &self.reservation)
            .finish_non_exhaustive()
    }
}

/// What is known about a request before its response: set in `call`, completed when the response
/// head arrives.
pub(crate) struct Ctx {
    pub(crate) cfg: Arc<Config>,
    pub(crate) id: Arc<str>,
    pub(crate) created_ms: i64,
    pub(crate) start: Instant,
    pub(crate) key: Option<CallerKey>,
    pub(crate) requested_model: Option<String>,
    pub(crate) catalog: Option<Catalog>,
    /// Candidate endpoint indices, in order (the first stands in when no `ServedBy` arrives).
    pub(crate) candidates: Vec<usize>,
    pub(crate) request_ms: i64,
    pub(crate) prompt_estimate: u64,
    pub(crate) images: u64,
    pub(crate) hold: Option<Hold>,
    // Known once the response head arrived:
    pub(crate) endpoint: Option<usize>,
    pub(crate) endpoint_key: Option<EndpointKey>,
    pub(crate) model: String,
    pub(crate) provider_name: String,
    pub(crate) streamed: bool,
    pub(crate) success: bool,
    pub(crate) rewrite: bool,
    /// The serving endpoint's own time to first content, measured by the layer that called it
    /// (`ServedBy::latency`): excludes failed attempts before it.
    pub(crate) served_latency: Option<std::time::Duration>,
    /// Upstream attempts (`ServedBy::attempts` that were sent), at least 1.
    pub(crate) attempts: u32,
}

impl Ctx {
    /// Prices `usage` at the served endpoint (zero when it is unknown).
    fn price(&self, usage: &TokenUsage, insured: bool) -> Cost {
        let e = self
            .catalog
            .as_ref()
            .zip(self.endpoint)
            .and_then(|(c, i)| c.endpoint(i));
        match e {
            Some(e) => cost::price(&e.pricing, usage, self.request_ms, self.images, insured),
            None => Cost::default(),
        }
    }
}

/// What the body showed so far.
#[derive(Debug, Default)]
struct Obs {
    first_data: Option<Instant>,
    first_content: Option<Instant>,
    last_content: Option<Instant>,
    content_bytes: u64,
    usage: Option<TokenUsage>,
    anthropic: Option<TokenUsage>,
    finish_reason: Option<String>,
    error: bool,
    upstream_id: Option<String>,
    /// Offset of `"content":` in the previous event (chunks from one serializer repeat it).
    content_hint: usize,
    /// The last cost computed, and for what: the body's edit and the settlement price the same
    /// usage, so the second is a copy.
    priced: Option<(TokenUsage, bool, Cost)>,
}

impl Obs {
    /// `usage` priced at the served endpoint, remembered for the next call with the same input.
    fn price(&mut self, ctx: &Ctx, usage: &TokenUsage, insured: bool) -> Cost {
        match self.priced {
            Some((u, i, c)) if u == *usage && i == insured => c,
            _ => {
                let c = ctx.price(usage, insured);
                self.priced = Some((*usage, insured, c));
                c
            }
        }
    }
}

/// How the response is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `text/event-stream`: scanned event by event, passed through at once.
    Sse,
    /// A complete JSON body: buffered (up to the configured limit), edited at its end.
    Json,
    /// Observed only (error responses, oversize bodies).
    Pass,
}

/// How the body ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    Complete,
    Error,
    Cancelled,
}

/// A byte-pattern replacement learned from the first event of a stream.
struct Rule {
    finder: Finder<'static>,
    replacement: Vec<u8>,
    /// Where the pattern was found in the previous event: chunks from one serializer put the
    /// member at the same offset, so a comparison there usually saves the search.
    hint: usize,
}

/// The meter of one response. Finishes exactly once: through [`Meter::finish`] or, if the body is
/// dropped first, in `Drop` (as cancelled).
pub(crate) struct Meter {
    core: Option<Box<Core>>,
}

struct Core {
    ctx: Ctx,
    obs: Obs,
    mode: Mode,
    sse: SseScanner,
    json: BytesMut,
    json_overflow: bool,
    rules: Vec<Rule>,
    learned: bool,
    compact: bool,
    template: Option<Template>,
}

/// The shape of an ordinary content chunk, learned from the first one: its bytes before the
/// content string and after it. Chunks from one serializer repeat both exactly, so a later event
/// that starts and ends with them and has a plain string in between is an ordinary content chunk
/// too: it is metered by its length and rewritten by copying, without being searched. (It can hold
/// no finish reason, usage or error, and each rewrite rule matches in the prefix or the suffix
/// alone; `learn_template` checks both on the learned chunk.)
struct Template {
    /// The data payload up to and including the content string's opening quote.
    prefix: Vec<u8>,
    /// The data payload from the content string's closing quote on.
    suffix: Vec<u8>,
    /// `data: ` and the prefix, as the event's bytes start.
    raw_prefix: Vec<u8>,
    /// The suffix and the blank line, as the event's bytes end.
    raw_suffix: Vec<u8>,
    /// `raw_prefix` and `raw_suffix` with the rewrite rules applied.
    rewritten_prefix: Vec<u8>,
    rewritten_suffix: Vec<u8>,
}

impl Template {
    /// The content of `d` if `d` is `prefix`, a plain string (no quote, not ending in an escape),
    /// then `suffix`.
    fn content<'d>(d: &'d [u8], prefix: &[u8], suffix: &[u8]) -> Option<&'d [u8]> {
        if d.len() < prefix.len() + suffix.len() || !d.starts_with(prefix) || !d.ends_with(suffix) {
            return None;
        }
        let middle = &d[prefix.len()..d.len() - suffix.len()];
        let escapes = middle.iter().rev().take_while(|b| **b == b'\\').count();
        (memchr::memchr(b'"', middle).is_none() && escapes % 2 == 0).then_some(middle)
    }
}

impl fmt::Debug for Meter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.core {
            Some(c) => f
                .debug_struct("Meter")
                .field("id", &c.ctx.id)
                .field("mode", &c.mode)
                .finish_non_exhaustive(),
            None => f.write_str("Meter(finished)"),
        }
    }
}

impl Meter {
    pub(crate) fn new(ctx: Ctx, mode: Mode) -> Self {
        Meter {
            core: Some(Box::new(Core {
                ctx,
                obs: Obs::default(),
                mode,
                sse: SseScanner::default(),
                json: BytesMut::new(),
                json_overflow: false,
                rules: Vec::new(),
                learned: false,
                compact: false,
                template: None,
            })),
        }
    }

    pub(crate) fn mode(&self) -> Mode {
        self.core.as_ref().map_or(Mode::Pass, |c| c.mode)
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.core.is_none()
    }

    /// Observes a data frame; returns what to emit now (may be empty).
    pub(crate) fn data(&mut self, data: Bytes) -> Bytes {
        let Some(core) = self.core.as_deref_mut() else {
            return data;
        };
        if core.obs.first_data.is_none() && !data.is_empty() && core.mode != Mode::Sse {
            core.obs.first_data = Some(core.ctx.cfg.clock.now());
        }
        match core.mode {
            Mode::Pass => data,
            Mode::Json => {
                if core.json_overflow {
                    core.obs.content_bytes += data.len() as u64;
                    return data;
                }
                if core.json.len() + data.len() > core.ctx.cfg.json_limit {
                    // Too big to edit: let it through untouched from here on.
                    core.json_overflow = true;
                    core.obs.content_bytes += (core.json.len() + data.len()) as u64;
                    let mut all = std::mem::take(&mut core.json);
                    all.extend_from_slice(&data);
                    return all.freeze();
                }
                core.json.extend_from_slice(&data);
                Bytes::new()
            }
            Mode::Sse => {
                let (sse, mut h) = core.sse_parts();
                sse.feed(data, &mut h)
            }
        }
    }

    /// Ends the body: returns the bytes still to emit (the edited JSON body, an unfinished last
    /// SSE event) and finishes the meter.
    pub(crate) fn finish(&mut self, end: End) -> Bytes {
        let Some(mut core) = self.core.take() else {
            return Bytes::new();
        };
        let out = if end == End::Cancelled {
            if core.mode == Mode::Json {
                core.obs.content_bytes += core.json.len() as u64;
            }
            Bytes::new()
        } else {
            core.flush()
        };
        core.settle(end);
        out
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        // Never panics: finishing only does arithmetic, a mutex-guarded ledger update and sinks.
        let _ = self.finish(End::Cancelled);
    }
}

impl Core {
    /// The SSE scanner and the event handler over the rest of the state (disjoint borrows).
    fn sse_parts(&mut self) -> (&mut SseScanner, Handler<'_>) {
        let Core {
            ctx,
            obs,
            sse,
            rules,
            learned,
            compact,
            template,
            ..
        } = self;
        let h = Handler {
            ctx,
            obs,
            rules,
            learned,
            compact,
            template,
            now: None,
        };
        (sse, h)
    }

    fn flush(&mut self) -> Bytes {
        match self.mode {
            Mode::Pass => Bytes::new(),
            Mode::Sse => {
                let (sse, mut h) = self.sse_parts();
                sse.finish(&mut h)
            }
            Mode::Json if self.json_overflow => Bytes::new(),
            Mode::Json => {
                let body = std::mem::take(&mut self.json).freeze();
                self.json_body(body)
            }
        }
    }

    /// Reads and edits a complete non-streamed body.
    fn json_body(&mut self, body: Bytes) -> Bytes {
        let Some((top, choices)) = Top::parse_with_choices(&body) else {
            self.obs.content_bytes += body.len() as u64;
            return body;
        };
        if let Some(id) = top.id {
            self.obs.upstream_id = serde_json::from_str(id.get()).ok();
        }
        if top.error.is_some_and(|e| e.get() != "null") {
            self.obs.error = true;
        }
        self.obs.finish_reason = choices.finish_reason;
        self.obs.content_bytes += choices.content_bytes;
        let mut wire = None;
        if let Some(u) = top.usage {
            if let Ok(w) = serde_json::from_str::<WireUsage>(u.get()) {
                if w.is_openai() {
                    self.obs.usage = Some(w.to_usage());
                } else if w.has_counts() {
                    let mut t = TokenUsage::default();
                    w.merge_anthropic(&mut t);
                    self.obs.anthropic = Some(t);
                }
                wire = Some(w);
            }
        }
        if !self.ctx.rewrite {
            return body;
        }
        let mut edits: Vec<(std::ops::Range<usize>, Vec<u8>)> = Vec::with_capacity(4);
        if let Some(r) = top.id.and_then(|v| json::span(&body, v)) {
            edits.push((r, json::quote(&self.ctx.id).into_bytes()));
        }
        if let Some(r) = top
            .model
            .filter(|_| !self.ctx.model.is_empty())
            .and_then(|v| json::span(&body, v))
        {
            let mut v = json::quote(&self.ctx.model).into_bytes();
            if top.provider.is_none() && !self.ctx.provider_name.is_empty() {
                v.extend_from_slice(b",\"provider\":");
                v.extend_from_slice(json::quote(&self.ctx.provider_name).as_bytes());
            }
            edits.push((r, v));
        }
        if let Some(r) = top
            .provider
            .filter(|_| !self.ctx.provider_name.is_empty())
            .and_then(|v| json::span(&body, v))
        {
            edits.push((r, json::quote(&self.ctx.provider_name).into_bytes()));
        }
        if let (Some(u), Some(w), Some(t)) = (top.usage, wire.as_ref(), self.obs.usage) {
            let insured = cost::insured(Some(&t), self.obs.finish_reason.as_deref());
            let c = self.obs.price(&self.ctx, &t, insured);
            if let Some(e) = json::span(&body, u).and_then(|r| json::usage_edit(&body, r, w, &c)) {
                edits.push(e);
            }
        } else if let (Some(u), Some(w), Some(t)) = (top.usage, wire.as_ref(), self.obs.anthropic) {
            // An Anthropic message (passed through for a Messages caller): `cost` is added.
            let insured = cost::insured(Some(&t), self.obs.finish_reason.as_deref());
            let c = self.obs.price(&self.ctx, &t, insured);
            if let Some(e) =
                json::span(&body, u).and_then(|r| json::anthropic_usage_edit(&body, r, w, &t, &c))
            {
                edits.push(e);
            }
        }
        Bytes::from(json::apply(&body, &mut edits))
    }

    fn settle(mut self: Box<Self>, end: End) {
        let ctx = &mut self.ctx;
        let obs = &mut self.obs;
        if !ctx.success {
            // An error response: nothing was generated, the reservation is released (by the
            // hold's drop) and no generation is recorded.
            drop(ctx.hold.take());
            return;
        }
        let now = ctx.cfg.clock.now();
        let reported = obs.usage.or(obs.anthropic);
        let usage_missing = reported.is_none();
        let tokens = reported
            .unwrap_or_else(|| TokenUsage::new(ctx.prompt_estimate, obs.content_bytes.div_ceil(4)));
        let insured = cost::insured(reported.as_ref(), obs.finish_reason.as_deref());
        let cost = obs.price(ctx, &tokens, insured);
        if let Some(hold) = ctx.hold.take() {
            hold.settle(cost.total);
        }
        let ttft = obs
            .first_data
            .map(|t| t.saturating_duration_since(ctx.start));
        let generation_time = obs
            .first_data
            .map_or(Default::default(), |t| now.saturating_duration_since(t));
        let content_time = match (obs.first_content, obs.last_content.or(Some(now))) {
            (Some(a), Some(b)) => b.saturating_duration_since(a),
            _ => Default::default(),
        };
        let generation = Generation::new(tokens.completion, content_time);
        let throughput = generation.tokens_per_second();
        if let (Some(stats), Some(key), Some(ttft)) = (
            &ctx.cfg.stats,
            &ctx.endpoint_key,
            ctx.served_latency.or(ttft),
        ) {
            if ctx.streamed && !usage_missing && end == End::Complete && !obs.error {
                stats.record_generation(key, generation.ttft(ttft), now);
            }
        }
        if ctx.cfg.sinks.is_empty() {
            return;
        }
        let record = Arc::new(GenerationRecord {
            id: ctx.id.clone(),
            created_unix_millis: ctx.created_ms,
            key: ctx.key.clone(),
            requested_model: ctx.requested_model.clone(),
            model: std::mem::take(&mut ctx.model),
            provider_name: std::mem::take(&mut ctx.provider_name),
            endpoint: ctx.endpoint_key.clone(),
            upstream_id: obs.upstream_id.clone(),
            tokens,
            cost: cost.total,
            prompt_cost: cost.prompt,
            completion_cost: cost.completion,
            latency: now.saturating_duration_since(ctx.start),
            ttft,
            generation_time,
            throughput,
            finish_reason: obs.finish_reason.clone(),
            streamed: ctx.streamed,
            cancelled: end == End::Cancelled,
            usage_missing,
            insured,
            error: end == End::Error || obs.error,
            attempts: ctx.attempts,
        });
        for s in &ctx.cfg.sinks {
            s.record(&record);
        }
    }
}

/// The SSE event observer and editor.
struct Handler<'a> {
    ctx: &'a Ctx,
    obs: &'a mut Obs,
    rules: &'a mut Vec<Rule>,
    learned: &'a mut bool,
    /// True when the first JSON event was compact (no space after `:`).
    compact: &'a mut bool,
    template: &'a mut Option<Template>,
    /// The frame's arrival time, read from the clock on first use only.
    now: Option<Instant>,
}

#[derive(Deserialize)]
struct AnthropicMessage<'a> {
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(borrow, default)]
    id: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow, default)]
    model: Option<&'a serde_json::value::RawValue>,
}

#[derive(Deserialize)]
struct AnthropicDelta<'a> {
    #[serde(borrow, default)]
    stop_reason: Option<std::borrow::Cow<'a, str>>,
}

impl Handler<'_> {
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
        let mut raw_prefix = b"data: ".to_vec();
        raw_prefix.extend_from_slice(prefix);
        let mut raw_suffix = suffix.to_vec();
        raw_suffix.extend_from_slice(b"\n\n");
        let (mut rewritten_prefix, mut rewritten_suffix) = (BytesMut::new(), BytesMut::new());
        if self.ctx.rewrite {
            // A rule found in both parts applies to the first occurrence only: not ordinary.
            // (None can match across the content, which has no quote.)
            if self.rules.iter().any(|r| {
                r.finder.find(&raw_prefix).is_some() && r.finder.find(&raw_suffix).is_some()
            }) {
                return;
            }
            self.rewrite(&raw_prefix, &mut rewritten_prefix);
            self.rewrite(&raw_suffix, &mut rewritten_suffix);
        }
        *self.template = Some(Template {
            prefix: prefix.to_vec(),
            suffix: suffix.to_vec(),
            raw_prefix,
            raw_suffix,
            rewritten_prefix: rewritten_prefix.to_vec(),
            rewritten_suffix: rewritten_suffix.to_vec(),
        });
    }

    fn now(&mut self) -> Instant {
        *self.now.get_or_insert_with(|| self.ctx.cfg.clock.now())
    }

    fn learn(&mut self, top: &Top<'_>, d: &[u8]) {
        let mut add = |key: &str, raw: &serde_json::value::RawValue, value: Vec<u8>| {
            let Some(v) = json::span(d, raw) else { return };
            let m = json::member_span(d, key, v.clone());
            let mut replacement = d[m.start..v.start].to_vec();
            replacement.extend_from_slice(&value);
            self.rules.push(Rule {
                finder: Finder::new(&d[m]).into_owned(),
                replacement,
                hint: usize::MAX,
            });
        };
        if let Some(id) = top.id {
            add("id", id, json::quote(&self.ctx.id).into_bytes());
        }
        if let Some(m) = top.model.filter(|_| !self.ctx.model.is_empty()) {
            let mut v = json::quote(&self.ctx.model).into_bytes();
            if top.provider.is_none() && !self.ctx.provider_name.is_empty() {
                v.extend_from_slice(b",\"provider\":");
                v.extend_from_slice(json::quote(&self.ctx.provider_name).as_bytes());
            }
            add("model", m, v);
        }
        if let Some(p) = top.provider.filter(|_| !self.ctx.provider_name.is_empty()) {
            add(
                "provider",
                p,
                json::quote(&self.ctx.provider_name).into_bytes(),
            );
        }
    }
}

fn trim_start(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
    &b[n..]
}

/// True if `d` has the member `finder` looks for (`"usage"`) with a value other than `null`.
fn non_null(finder: &Finder<'_>, d: &[u8]) -> bool {
    let mut from = 0;
    while let Some(i) = finder.find(&d[from..]) {
        let at = from + i + finder.needle().len();
        let rest = trim_start(&d[at..]);
        if let Some(v) = rest.strip_prefix(b":") {
            if !trim_start(v).starts_with(b"null") {
                return true;
            }
        }
        from = at;
    }
    false
}

/// The string value after the first `"finish_reason":` of `d`, if it is a string.
fn finish_reason(d: &[u8]) -> Option<&[u8]> {
    let i = FINISH.find(d)?;
    string_at(&d[i + FINISH.needle().len()..])
}

/// The string that `rest` starts with (after whitespace), without its quotes.
fn string_at(rest: &[u8]) -> Option<&[u8]> {
    let rest = trim_start(rest).strip_prefix(b"\"")?;
    let end = memchr::memchr(b'"', rest)?;
    Some(&rest[..end])
}

/// The finish reason of an event whose content string ends at `after`: the first one after the
/// content (where OpenAI chunks put it), else the first one before it.
///
/// Same result as `finish_reason(&d[after..]).or_else(|| finish_reason(&d[..after]))`, in one
/// search of the whole event in the usual case: when the first occurrence in `d` is past `after`,
/// it is also the first one of `d[after..]` and `d[..after]` has none.
fn finish_reason_around(d: &[u8], after: usize) -> Option<&[u8]> {
    let first = FINISH.find(d)?;
    if first >= after {
        return string_at(&d[first + FINISH.needle().len()..]);
    }
    finish_reason(&d[after..]).or_else(|| finish_reason(&d[..after]))
}

/// True if compact JSON `d` has a `"usage":{` or `"error":{` member. An ordinary chunk has one
/// `":{` (`"delta":{`), so this is about one search of the event.
fn usage_or_error_compact(d: &[u8]) -> bool {
    OPEN_OBJECT.find_iter(d).any(|i| {
        // `d[..=i]` ends with the member's closing quote.
        let key = &d[..=i];
        key.ends_with(b"\"usage\"") || key.ends_with(b"\"error\"")
    })
}

/// Bytes of the string value after `"content":` (escapes counted as written), and the offset
/// where the scan stopped.
fn content_len(d: &[u8], hint: &mut usize) -> (u64, usize) {
    let needle = CONTENT.needle();
    let at_hint = hint
        .checked_add(needle.len())
        .and_then(|end| d.get(*hint..end))
        == Some(needle);
    let i = if at_hint {
        *hint
    } else {
        let Some(i) = CONTENT.find(d) else {
            return (0, 0);
        };
        *hint = i;
        i
    };
    let start = i + CONTENT.needle().len();
    let rest = trim_start(&d[start..]);
    let base = d.len() - rest.len() + 1;
    let Some(s) = rest.strip_prefix(b"\"") else {
        return (0, start);
    };
    let mut at = 0;
    while let Some(j) = memchr::memchr2(b'"', b'\\', &s[at..]) {
        if s[at + j] == b'\\' {
            at += j + 2;
            if at >= s.len() {
                return (s.len() as u64, d.len());
            }
        } else {
            return ((at + j) as u64, base + at + j);
        }
    }
    (s.len() as u64, d.len())
}

impl OnEvent for Handler<'_> {
    fn on_event(&mut self, name: &[u8], data: &[u8]) -> Option<Vec<u8>> {
        let d = trim_start(data);
        if d.first() != Some(&b'{') {
            return None;
        }
        if self.obs.first_data.is_none() {
            self.obs.first_data = Some(self.now());
        }
        if !*self.learned {
            *self.learned = true;
            if self.ctx.rewrite {
                if let Some(top) = Top::parse(d) {
                    if let Some(id) = top.id {
                        self.obs.upstream_id = serde_json::from_str(id.get()).ok();
                    }
                    self.learn(&top, d);
                }
            }
            *self.compact = memchr::memmem::find(d, b"\": ").is_none();
        }
        if let Some(t) = self.template.as_ref().filter(|_| name.is_empty()) {
            if let Some(content) = Template::content(d, &t.prefix, &t.suffix) {
                // An ordinary content chunk (see `Template`).
                if !content.is_empty() {
                    self.obs.content_bytes += content.len() as u64;
                    if self.obs.first_content.is_none() {
                        self.obs.first_content = Some(self.now());
                    }
                }
                return None;
            }
        }
        let (n, after) = content_len(d, &mut self.obs.content_hint);
        if n > 0 {
            self.obs.content_bytes += n;
            if self.obs.first_content.is_none() {
                self.obs.first_content = Some(self.now());
            }
        }
        if self.obs.finish_reason.is_none() {
            // In OpenAI chunks `finish_reason` follows the delta: search after the content.
            let fr = finish_reason_around(d, after);
            if let Some(fr) = fr {
                self.obs.finish_reason = Some(String::from_utf8_lossy(fr).into_owned());
                // The last content arrives with (or just before) the finish reason: its time
                // ends the generation, without reading the clock for every event.
                self.obs.last_content = Some(self.now());
            }
        }
        let anthropic = name == b"message_start" || name == b"message_delta";
        let flagged = if *self.compact {
            usage_or_error_compact(d)
        } else {
            non_null(&USAGE, d) || non_null(&ERROR, d)
        };
        if !(anthropic || flagged) {
            if self.template.is_none() && name.is_empty() && self.obs.finish_reason.is_none() {
                self.learn_template(d, n, after);
            }
            return None;
        }
        let top = Top::parse(d)?;
        if top.error.is_some_and(|e| e.get() != "null") {
            self.obs.error = true;
        }
        match top.kind.as_deref() {
            Some("message_start") => {
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
                // A passed-through Messages stream: the message gets the generation's id and the
                // catalog's model, as a non-streamed answer does.
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
                return (!edits.is_empty()).then(|| json::apply(d, &mut edits));
            }
            Some("message_delta") => {
                if let Some(d) = top
                    .delta
                    .and_then(|d| serde_json::from_str::<AnthropicDelta<'_>>(d.get()).ok())
                {
                    if let Some(r) = d.stop_reason {
                        self.obs.finish_reason = Some(r.into_owned());
                    }
                }
                let u = top.usage?;
                let wire = serde_json::from_str::<WireUsage>(u.get()).ok()?;
                let t = self.obs.anthropic.get_or_insert_with(Default::default);
                wire.merge_anthropic(t);
                let t = *t;
                if !self.ctx.rewrite {
                    return None;
                }
                // The usage is cumulative: it gets the input side and the cost, as a translated
                // stream's does.
                let insured = cost::insured(Some(&t), self.obs.finish_reason.as_deref());
                let c = self.obs.price(self.ctx, &t, insured);
                let edit = json::span(d, u)
                    .and_then(|r| json::anthropic_usage_edit(d, r, &wire, &t, &c))?;
                return Some(json::apply(d, &mut [edit]));
            }
            Some("error") => {
                self.obs.error = true;
                return None;
            }
            _ => {}
        }
        let u = top.usage?;
        let wire: WireUsage = serde_json::from_str(u.get()).ok()?;
        if !wire.is_openai() {
            return None;
        }
        let t = wire.to_usage();
        self.obs.usage = Some(t);
        if !self.ctx.rewrite {
            return None;
        }
        let insured = cost::insured(Some(&t), self.obs.finish_reason.as_deref());
        let c = self.obs.price(self.ctx, &t, insured);
        let edit = json::span(d, u).and_then(|r| json::usage_edit(d, r, &wire, &c))?;
        Some(json::apply(d, &mut [edit]))
    }

    fn rewrites(&self) -> bool {
        !self.rules.is_empty()
    }

    fn rewrite(&mut self, src: &[u8], out: &mut BytesMut) {
        if self.rules.is_empty() {
            out_put(out, src);
            return;
        }
        if let Some(t) = self.template.as_ref() {
            if let Some(content) = Template::content(src, &t.raw_prefix, &t.raw_suffix) {
                // An ordinary content chunk (see `Template`): rewritten around its content.
                let n = t.rewritten_prefix.len() + content.len() + t.rewritten_suffix.len();
                out_reserve(out, n);
                out.extend_from_slice(&t.rewritten_prefix);
                out.extend_from_slice(content);
                out.extend_from_slice(&t.rewritten_suffix);
                return;
            }
        }
        let mut next: [Option<usize>; 4] = [None; 4];
        let len = self.rules.len().min(4);
        for (i, r) in self.rules[..len].iter_mut().enumerate() {
            let needle = r.finder.needle();
            let at_hint = r
                .hint
                .checked_add(needle.len())
                .and_then(|end| src.get(r.hint..end))
                == Some(needle);
            next[i] = if at_hint {
                Some(r.hint)
            } else {
                r.finder.find(src)
            };
            if let Some(p) = next[i] {
                r.hint = p;
            }
        }
        let rules = &self.rules[..len];
        // One reservation for the whole event; the copies below then never reallocate.
        let longest = src.len() + rules.iter().map(|r| r.replacement.len()).sum::<usize>();
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
            out.extend_from_slice(&rules[i].replacement);
            at = p + rules[i].finder.needle().len();
            // A top-level member occurs once per JSON object: each rule applies once per event.
            next[i] = None;
            for (j, r) in rules.iter().enumerate() {
                if next[j].is_some_and(|q| q < at) {
                    next[j] = r.finder.find(&src[at..]).map(|q| q + at);
                }
            }
        }
        out.extend_from_slice(&src[at..]);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Events made of the pieces the scanners look for, in any order and in any number.
    fn event() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(&b"\"finish_reason\":"[..]),
            Just(&b"\"finish_reason\": \"stop\""[..]),
            Just(&b"\"finish_reason\":null"[..]),
            Just(&b"\"usage\":{"[..]),
            Just(&b"\"error\":{"[..]),
            Just(&b"\"usage\":"[..]),
            Just(&b"\":{"[..]),
            Just(&b"\"content\":\"a\\\"b\""[..]),
            Just(&b"{\"delta\":{"[..]),
            Just(&b"\""[..]),
            Just(&b"usage"[..]),
            Just(&b"}]}"[..]),
            Just(&b","[..]),
            Just(&b" "[..]),
        ];
        proptest::collection::vec(piece, 0..12).prop_map(|p| p.concat())
    }

    /// The compact check as first written: every `{`, looking back for the member's key.
    fn usage_or_error_compact_slow(d: &[u8]) -> bool {
        memchr::memchr_iter(b'{', d).any(|i| {
            let before = &d[..i];
            before.ends_with(b"\"usage\":") || before.ends_with(b"\"error\":")
        })
    }

    proptest! {
        #[test]
        fn finish_reason_around_is_the_two_searches(d in event(), cut in any::<prop::sample::Index>()) {
            let after = cut.index(d.len() + 1);
            let slow = finish_reason(&d[after..]).or_else(|| finish_reason(&d[..after]));
            prop_assert_eq!(finish_reason_around(&d, after), slow);
        }

        #[test]
        fn compact_check_is_the_brace_scan(d in event()) {
            prop_assert_eq!(usage_or_error_compact(&d), usage_or_error_compact_slow(&d));
        }
    }
}
