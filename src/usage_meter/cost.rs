//! Token usage as the upstream reports it, and its price.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, Visitor};
use serde::Deserialize;

use rust_decimal::Decimal;

use crate::catalog::{EffectivePricing, Pricing, Usd};
use crate::route::{skim, UsageCounts};

/// Token counts of one generation, normalised to OpenAI's meaning.
///
/// `prompt` includes `cached` and `cache_write`; `completion` includes `reasoning` (see the
/// [module docs](super#cost) for how upstreams that report them apart are read).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenUsage {
    /// Prompt tokens, cached and cache-written ones included.
    pub prompt: u64,
    /// Completion tokens, reasoning tokens included.
    pub completion: u64,
    /// Reasoning tokens (`completion_tokens_details.reasoning_tokens`).
    pub reasoning: u64,
    /// Prompt tokens read from the cache (`prompt_tokens_details.cached_tokens`).
    pub cached: u64,
    /// Prompt tokens written to the cache (`prompt_tokens_details.cache_write_tokens`).
    pub cache_write: u64,
    /// Web searches run (`server_tool_use_details.web_search_requests`).
    pub web_searches: u64,
}

impl TokenUsage {
    /// Usage of `prompt` and `completion` tokens and nothing else.
    pub fn new(prompt: u64, completion: u64) -> Self {
        TokenUsage {
            prompt,
            completion,
            ..Default::default()
        }
    }

    /// Sets the reasoning tokens (part of `completion`).
    #[must_use]
    pub fn reasoning(mut self, n: u64) -> Self {
        self.reasoning = n;
        self
    }

    /// Sets the cached (read) prompt tokens (part of `prompt`).
    #[must_use]
    pub fn cached(mut self, n: u64) -> Self {
        self.cached = n;
        self
    }

    /// Sets the cache-write prompt tokens (part of `prompt`).
    #[must_use]
    pub fn cache_write(mut self, n: u64) -> Self {
        self.cache_write = n;
        self
    }
}

/// The price of one generation, split as OpenRouter's `usage.cost_details`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Cost {
    /// Everything: prompt + completion + request fee + images + web searches, discount applied.
    pub total: Usd,
    /// Prompt tokens (uncached, cache reads, cache writes), discount applied.
    pub prompt: Usd,
    /// Completion and reasoning tokens, discount applied.
    pub completion: Usd,
}

/// Prices `usage` at `pricing` (the served endpoint's prices) for a request that arrived at
/// `unix_millis` with `images` input images.
///
/// Overrides are chosen by the *reported* prompt tokens. When `insured` (zero-completion insurance),
/// tokens are free and only the request fee, images and searches are charged.
pub fn price(
    pricing: &Pricing,
    usage: &TokenUsage,
    unix_millis: i64,
    images: u64,
    insured: bool,
) -> Cost {
    let p = pricing.effective(usage.prompt, unix_millis);
    price_effective(&p, usage, images, insured)
}

/// [`price`] at the effective prices `p`: by [`exact_price`] when it can, else in `Decimal`.
pub(crate) fn price_effective(
    p: &EffectivePricing,
    usage: &TokenUsage,
    images: u64,
    insured: bool,
) -> Cost {
    exact_price(p, usage, images, insured)
        .unwrap_or_else(|| decimal_price(p, usage, images, insured))
}

/// [`price_effective`] in integers ([`Exact`]), or `None` when [`decimal_price`] must decide: a
/// price or the multiplier is negative (or has a mantissa beyond 64 bits), or a sum or product
/// would not fit a `Decimal` unrounded (then `decimal_price` saturates or rounds).
///
/// The terms are the ones `decimal_price` adds, each at its price's scale, and every amount it
/// computes is a partial sum of non-negative terms at no larger scale than the final one: when
/// the final amounts fit a `Decimal`, every step of `decimal_price` is exact too, and both give
/// the same normalised cost. Zero terms are skipped, as `Decimal` ignores them (a product with a
/// zero is `0` at scale 0, and adding a zero gives the other operand as it is).
#[inline]
fn exact_price(
    p: &EffectivePricing,
    usage: &TokenUsage,
    images: u64,
    insured: bool,
) -> Option<Cost> {
    let (prompt, completion) = if insured {
        (Exact::ZERO, Exact::ZERO)
    } else {
        let special = usage.cached.saturating_add(usage.cache_write);
        let uncached = usage.prompt.saturating_sub(special);
        let reasoning = usage.reasoning.min(usage.completion);
        let prompt = Exact::ZERO
            .plus(p.prompt, uncached)?
            .plus(p.input_cache_read, usage.cached)?
            .plus(p.input_cache_write, usage.cache_write)?
            .fits()?;
        let completion = Exact::ZERO
            .plus(p.completion, usage.completion - reasoning)?
            .plus(p.internal_reasoning, reasoning)?
            .fits()?;
        (prompt, completion)
    };
    let fees = Exact::ZERO
        .plus(p.request, 1)?
        .plus(p.image, images)?
        .plus(p.web_search, usage.web_searches)?
        .fits()?;
    let multiplier = Exact::multiplier(p.multiplier)?;
    let prompt = prompt.mul(multiplier)?;
    let completion = completion.mul(multiplier)?;
    let total = prompt.add(completion)?.add(fees.mul(multiplier)?)?.fits()?;
    Some(Cost {
        total: total.usd(),
        prompt: prompt.usd(),
        completion: completion.usd(),
    })
}

/// [`price_effective`] in `Decimal` arithmetic (saturating).
fn decimal_price(p: &EffectivePricing, usage: &TokenUsage, images: u64, insured: bool) -> Cost {
    let (prompt, completion) = if insured {
        (Usd::ZERO, Usd::ZERO)
    } else {
        let special = usage.cached.saturating_add(usage.cache_write);
        let uncached = usage.prompt.saturating_sub(special);
        let prompt = p
            .prompt
            .times(uncached)
            .add(p.input_cache_read.times(usage.cached))
            .add(p.input_cache_write.times(usage.cache_write));
        let reasoning = usage.reasoning.min(usage.completion);
        let completion = p
            .completion
            .times(usage.completion - reasoning)
            .add(p.internal_reasoning.times(reasoning));
        (prompt, completion)
    };
    let fees = p
        .request
        .add(p.image.times(images))
        .add(p.web_search.times(usage.web_searches));
    let prompt = prompt.scale(p.multiplier);
    let completion = completion.scale(p.multiplier);
    Cost {
        total: prompt
            .add(completion)
            .add(fees.scale(p.multiplier))
            .normalize(),
        prompt: prompt.normalize(),
        completion: completion.normalize(),
    }
}

/// `10^k` for every difference of two scales a `Decimal` may have.
const POW10: [u128; 29] = {
    let mut p = [1u128; 29];
    let mut k = 1;
    while k < 29 {
        p[k] = p[k - 1] * 10;
        k += 1;
    }
    p
};

/// A non-negative decimal as an integer and a scale (`m / 10^scale`). Sums and products are
/// exact in `u128` (or `None`); [`Exact::fits`] says whether a `Decimal` holds the result.
#[derive(Clone, Copy, Debug)]
struct Exact {
    m: u128,
    scale: u32,
}

impl Exact {
    const ZERO: Exact = Exact { m: 0, scale: 0 };
    /// The largest mantissa of a `Decimal`.
    const MAX: u128 = (1 << 96) - 1;

    /// `self + price × n`, at the larger scale; nothing added when `n` or the price is zero.
    /// `None` for a negative price or one whose mantissa needs more than 64 bits.
    #[inline]
    fn plus(self, price: Usd, n: u64) -> Option<Exact> {
        let d = price.as_decimal();
        if n == 0 || d.is_zero() {
            return Some(self);
        }
        if d.is_sign_negative() {
            return None;
        }
        let m = u64::try_from(d.mantissa()).ok()?;
        // 64 × 64 bits: the product cannot overflow 128 bits.
        let term = Exact {
            m: u128::from(m) * u128::from(n),
            scale: d.scale(),
        };
        self.add(term)
    }

    /// `self + other`, at the larger scale (as `Decimal` adds); a zero gives the other as it is.
    #[inline]
    fn add(self, other: Exact) -> Option<Exact> {
        if self.m == 0 {
            return Some(other);
        }
        if other.m == 0 {
            return Some(self);
        }
        let (low, high) = if self.scale <= other.scale {
            (self, other)
        } else {
            (other, self)
        };
        let up = match high.scale - low.scale {
            0 => low.m,
            k => low.m.checked_mul(POW10[k as usize])?,
        };
        Some(Exact {
            m: up.checked_add(high.m)?,
            scale: high.scale,
        })
    }

    /// `self`, if a `Decimal` holds it unrounded.
    #[inline]
    fn fits(self) -> Option<Exact> {
        (self.m <= Exact::MAX && self.scale <= Decimal::MAX_SCALE).then_some(self)
    }

    /// The multiplier `d` (`1 - discount`), unless it is negative.
    #[inline]
    fn multiplier(d: Decimal) -> Option<Exact> {
        let m = u128::try_from(d.mantissa()).ok()?;
        (!d.is_sign_negative()).then_some(Exact {
            m,
            scale: d.scale(),
        })
    }

    /// `self × other`, at the sum of the scales (as `Decimal` multiplies), if a `Decimal` holds it.
    #[inline]
    fn mul(self, other: Exact) -> Option<Exact> {
        // A multiplier of exactly 1 (no discount) changes nothing: `self` already fits.
        if other.m == 1 && other.scale == 0 {
            return Some(self);
        }
        // A zero product is `Decimal`'s zero, at scale 0.
        if self.m == 0 || other.m == 0 {
            return Some(Exact::ZERO);
        }
        Exact {
            m: self.m.checked_mul(other.m)?,
            scale: self.scale + other.scale,
        }
        .fits()
    }

    /// The amount, normalised (trailing zeros removed). `self` fits a `Decimal`.
    #[inline]
    fn usd(self) -> Usd {
        let Ok(mut m) = u64::try_from(self.m) else {
            return Usd::from_decimal(Exact::decimal(self.m, self.scale)).normalize();
        };
        if m == 0 {
            return Usd::ZERO;
        }
        let mut scale = self.scale;
        while scale > 0 && m % 10 == 0 {
            m /= 10;
            scale -= 1;
        }
        Usd::from_decimal(Exact::decimal(u128::from(m), scale))
    }

    /// The `Decimal` of mantissa `m` (at most [`Exact::MAX`]) and `scale` (at most 28).
    fn decimal(m: u128, scale: u32) -> Decimal {
        // The three 32-bit words of the 96-bit mantissa.
        let word = |k: u32| (m >> (32 * k)) as u32;
        Decimal::from_parts(word(0), word(1), word(2), false, scale)
    }
}

/// A finish reason as the meter keeps it: the usual ones borrowed from [`FINISH_REASONS`], others
/// owned. Only the generation record needs a `String` of it (made when there is one).
pub(crate) type FinishReason = Cow<'static, str>;

/// The finish reasons kept without an allocation: OpenAI's and Anthropic's.
const FINISH_REASONS: [&str; 10] = [
    "stop",
    "length",
    "tool_calls",
    "content_filter",
    "function_call",
    "error",
    "end_turn",
    "max_tokens",
    "stop_sequence",
    "tool_use",
];

/// The one of [`FINISH_REASONS`] whose bytes are `s`, if any.
fn known_reason(s: &[u8]) -> Option<&'static str> {
    FINISH_REASONS.iter().find(|r| r.as_bytes() == s).copied()
}

/// `s` as a [`FinishReason`]: borrowed when it is one of [`FINISH_REASONS`], else owned.
pub(crate) fn finish_reason(s: Cow<'_, str>) -> FinishReason {
    match known_reason(s.as_bytes()) {
        Some(r) => Cow::Borrowed(r),
        None => Cow::Owned(s.into_owned()),
    }
}

/// [`finish_reason`] of a string's raw bytes (`None` if they are not UTF-8): a known reason is
/// found without checking the bytes as text.
pub(crate) fn finish_reason_bytes(s: &[u8]) -> Option<FinishReason> {
    match known_reason(s) {
        Some(r) => Some(Cow::Borrowed(r)),
        None => Some(Cow::Owned(std::str::from_utf8(s).ok()?.to_owned())),
    }
}

/// Zero-completion insurance (<https://openrouter.ai/docs/features/zero-completion-insurance>):
/// true when the tokens are not charged.
pub(crate) fn insured(usage: Option<&TokenUsage>, finish_reason: Option<&str>) -> bool {
    if finish_reason == Some("error") {
        return true;
    }
    match usage {
        Some(u) => u.completion == 0 && finish_reason.is_none_or(str::is_empty),
        None => false,
    }
}

/// `usage` of the OpenAI wire and of Anthropic's (`input_tokens` …), read leniently.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct WireUsage {
    #[serde(default)]
    prompt_tokens: Option<Tokens>,
    #[serde(default)]
    completion_tokens: Option<Tokens>,
    #[serde(default)]
    prompt_tokens_details: Option<Lenient<PromptDetails>>,
    #[serde(default)]
    completion_tokens_details: Option<Lenient<CompletionDetails>>,
    #[serde(default)]
    server_tool_use_details: Option<Lenient<ServerTools>>,
    // Anthropic Messages.
    #[serde(default)]
    input_tokens: Option<Tokens>,
    #[serde(default)]
    output_tokens: Option<Tokens>,
    #[serde(default)]
    cache_read_input_tokens: Option<Tokens>,
    #[serde(default)]
    cache_creation_input_tokens: Option<Tokens>,
    #[serde(default)]
    pub(crate) cost: Option<IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<Tokens>,
    #[serde(default)]
    cache_write_tokens: Option<Tokens>,
}

#[derive(Debug, Default, Deserialize)]
struct CompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<Tokens>,
}

#[derive(Debug, Default, Deserialize)]
struct ServerTools {
    #[serde(default)]
    web_search_requests: Option<Tokens>,
}

fn get(t: &Option<Tokens>) -> u64 {
    t.as_ref().map_or(0, |t| t.0)
}

impl WireUsage {
    /// True if this carries OpenAI-style counts.
    pub(crate) fn is_openai(&self) -> bool {
        self.prompt_tokens.is_some() || self.completion_tokens.is_some()
    }

    /// True if this carries any count at all.
    pub(crate) fn has_counts(&self) -> bool {
        self.is_openai()
            || self.input_tokens.is_some()
            || self.output_tokens.is_some()
            || self.cache_read_input_tokens.is_some()
    }

    /// Normalised counts of an OpenAI-wire usage object.
    pub(crate) fn to_usage(&self) -> TokenUsage {
        let pd = self.prompt_tokens_details.as_ref().map(|d| &d.0);
        let cd = self.completion_tokens_details.as_ref().map(|d| &d.0);
        let mut completion = get(&self.completion_tokens);
        let reasoning = cd.map_or(0, |d| get(&d.reasoning_tokens));
        // OpenAI counts reasoning inside completion_tokens. An upstream reporting more reasoning
        // than completion tokens evidently counts them apart: add them.
        if reasoning > completion {
            completion = completion.saturating_add(reasoning);
        }
        TokenUsage {
            prompt: get(&self.prompt_tokens),
            completion,
            reasoning,
            cached: pd.map_or(0, |d| get(&d.cached_tokens)),
            cache_write: pd.map_or(0, |d| get(&d.cache_write_tokens)),
            web_searches: self
                .server_tool_use_details
                .as_ref()
                .map_or(0, |s| get(&s.0.web_search_requests)),
        }
    }

    /// Which Anthropic input-side counts were sent: `input_tokens`, `cache_read_input_tokens`,
    /// `cache_creation_input_tokens`.
    pub(crate) fn anthropic_input(&self) -> (Option<u64>, Option<u64>, Option<u64>) {
        (
            self.input_tokens.map(|t| t.0),
            self.cache_read_input_tokens.map(|t| t.0),
            self.cache_creation_input_tokens.map(|t| t.0),
        )
    }

    /// Merges Anthropic-wire counts into `into` (`message_start` gives the input side,
    /// `message_delta` the output side; Anthropic's `input_tokens` excludes cache reads and writes).
    pub(crate) fn merge_anthropic(&self, into: &mut TokenUsage) {
        let read = get(&self.cache_read_input_tokens);
        let write = get(&self.cache_creation_input_tokens);
        if self.input_tokens.is_some() || read > 0 || write > 0 {
            into.prompt = get(&self.input_tokens)
                .saturating_add(read)
                .saturating_add(write);
            into.cached = read;
            into.cache_write = write;
        }
        if self.output_tokens.is_some() {
            into.completion = get(&self.output_tokens);
        }
    }
}

impl WireUsage {
    /// Reads the usage object `raw` (JSON text), as serde reads it: by [`WireUsage::skim`] when
    /// it can, else by serde_json. `None` if it is not an object of this shape.
    pub(crate) fn read(raw: &str) -> Option<WireUsage> {
        WireUsage::skim(raw).or_else(|| serde_json::from_str(raw).ok())
    }

    /// [`WireUsage`] read from `raw` without serde: `None` (serde decides) unless `raw` is an
    /// object without repeated members whose counts are all plain integers (or `null`) and whose
    /// details are objects of such counts (or `null`).
    fn skim(raw: &str) -> Option<WireUsage> {
        let b = raw.as_bytes();
        let mut w = WireUsage::default();
        let end = WireUsage::skim_into(b, 0, 0, &mut w)?;
        (end == b.len()).then_some(w)
    }

    /// [`WireUsage::skim`] of the value at `at` in `b`, `depth` containers deep (as
    /// [`skim::value`] counts), into `w` (a default one, read in place rather than moved):
    /// where the usage object ends. `w` is left partly read when this gives up.
    pub(crate) fn skim_into(b: &[u8], at: usize, depth: usize, w: &mut WireUsage) -> Option<usize> {
        if b.get(at) != Some(&b'{') {
            return None;
        }
        let usual = usual_start(b, at, depth);
        let mut seen = 0u16;
        if let Some((prompt, completion, _)) = usual {
            w.prompt_tokens = prompt;
            w.completion_tokens = completion;
            seen = 0b11;
        }
        let member = |key: &[u8], at: usize| {
            let Some(k) = usage_key(key) else {
                return skim::value(b, at, depth + 1);
            };
            if seen & (1 << k) != 0 {
                return None;
            }
            seen |= 1 << k;
            let slot = match k {
                0 => &mut w.prompt_tokens,
                1 => &mut w.completion_tokens,
                2 => &mut w.input_tokens,
                3 => &mut w.output_tokens,
                4 => &mut w.cache_read_input_tokens,
                5 => &mut w.cache_creation_input_tokens,
                6 => return skim_details(b, at, depth + 1, &mut w.prompt_tokens_details),
                7 => return skim_details(b, at, depth + 1, &mut w.completion_tokens_details),
                8 => return skim_details(b, at, depth + 1, &mut w.server_tool_use_details),
                _ => {
                    let end = skim::value(b, at, depth + 1)?;
                    w.cost = (&b[at..end] != b"null").then_some(IgnoredAny);
                    return Some(end);
                }
            };
            let (count, end) = skim_count(b, at)?;
            *slot = count;
            Some(end)
        };
        let resume = match usual {
            Some((_, _, end)) if b[end] == b'}' => return Some(end + 1),
            Some((_, _, comma)) => Some(comma + 1),
            None => None,
        };
        skim::resume_members(b, at, depth, resume, member)
    }
}

/// [`WireUsage`] as the plain [`UsageCounts`] of the layers' shared reading (the meter's
/// reading travels in `ServedBy`, which may not name the meter's types), and back: the same
/// counts both ways.
impl WireUsage {
    /// The counts, as plain data.
    pub(crate) fn to_counts(&self) -> UsageCounts {
        let n = |t: &Option<Tokens>| t.map(|t| t.0);
        let mut c = UsageCounts::default();
        c.set(UsageCounts::PROMPT, n(&self.prompt_tokens));
        c.set(UsageCounts::COMPLETION, n(&self.completion_tokens));
        if let Some(d) = &self.prompt_tokens_details {
            c.present |= UsageCounts::PROMPT_DETAILS;
            c.set(UsageCounts::CACHED, n(&d.0.cached_tokens));
            c.set(UsageCounts::CACHE_WRITE, n(&d.0.cache_write_tokens));
        }
        if let Some(d) = &self.completion_tokens_details {
            c.present |= UsageCounts::COMPLETION_DETAILS;
            c.set(UsageCounts::REASONING, n(&d.0.reasoning_tokens));
        }
        if let Some(d) = &self.server_tool_use_details {
            c.present |= UsageCounts::SERVER_TOOLS;
            c.set(UsageCounts::WEB_SEARCH, n(&d.0.web_search_requests));
        }
        c.set(UsageCounts::INPUT, n(&self.input_tokens));
        c.set(UsageCounts::OUTPUT, n(&self.output_tokens));
        c.set(UsageCounts::CACHE_READ, n(&self.cache_read_input_tokens));
        c.set(
            UsageCounts::CACHE_CREATION,
            n(&self.cache_creation_input_tokens),
        );
        if self.cost.is_some() {
            c.present |= UsageCounts::COST;
        }
        c
    }

    /// The counts of [`WireUsage::to_counts`], back.
    pub(crate) fn from_counts(c: &UsageCounts) -> WireUsage {
        let t = |i: usize| c.get(i).map(Tokens);
        WireUsage {
            prompt_tokens: t(UsageCounts::PROMPT),
            completion_tokens: t(UsageCounts::COMPLETION),
            prompt_tokens_details: c.has(UsageCounts::PROMPT_DETAILS).then(|| {
                Lenient(PromptDetails {
                    cached_tokens: t(UsageCounts::CACHED),
                    cache_write_tokens: t(UsageCounts::CACHE_WRITE),
                })
            }),
            completion_tokens_details: c.has(UsageCounts::COMPLETION_DETAILS).then(|| {
                Lenient(CompletionDetails {
                    reasoning_tokens: t(UsageCounts::REASONING),
                })
            }),
            server_tool_use_details: c.has(UsageCounts::SERVER_TOOLS).then(|| {
                Lenient(ServerTools {
                    web_search_requests: t(UsageCounts::WEB_SEARCH),
                })
            }),
            input_tokens: t(UsageCounts::INPUT),
            output_tokens: t(UsageCounts::OUTPUT),
            cache_read_input_tokens: t(UsageCounts::CACHE_READ),
            cache_creation_input_tokens: t(UsageCounts::CACHE_CREATION),
            cost: c.has(UsageCounts::COST).then_some(IgnoredAny),
        }
    }
}

/// How the usual OpenAI usage object starts, compact: its first two members.
const USUAL_PROMPT: &[u8] = b"{\"prompt_tokens\":";
/// The second of [`USUAL_PROMPT`]'s members.
const USUAL_COMPLETION: &[u8] = b",\"completion_tokens\":";

/// The usual start of a usage object at `at` in `b`, `depth` deep: `{"prompt_tokens":N,
/// "completion_tokens":N` (no whitespace; counts as [`skim_count`] reads them) followed by a
/// comma or the closing brace. Its two counts and where that comma or brace is; `None` for any
/// other start (the member-by-member reading decides, which reads these bytes the same way).
#[inline]
fn usual_start(
    b: &[u8],
    at: usize,
    depth: usize,
) -> Option<(Option<Tokens>, Option<Tokens>, usize)> {
    if depth >= skim::MAX_DEPTH || !b.get(at..)?.starts_with(USUAL_PROMPT) {
        return None;
    }
    let (prompt, i) = skim_count(b, at + USUAL_PROMPT.len())?;
    if !b.get(i..)?.starts_with(USUAL_COMPLETION) {
        return None;
    }
    let (completion, end) = skim_count(b, i + USUAL_COMPLETION.len())?;
    matches!(b.get(end), Some(b',' | b'}')).then_some((prompt, completion, end))
}

/// The members of [`WireUsage`] that [`WireUsage::skim`] reads, by index: six counts, three
/// details objects, `cost`.
fn usage_key(key: &[u8]) -> Option<u32> {
    Some(match key {
        b"prompt_tokens" => 0,
        b"completion_tokens" => 1,
        b"input_tokens" => 2,
        b"output_tokens" => 3,
        b"cache_read_input_tokens" => 4,
        b"cache_creation_input_tokens" => 5,
        b"prompt_tokens_details" => 6,
        b"completion_tokens_details" => 7,
        b"server_tool_use_details" => 8,
        b"cost" => 9,
        _ => return None,
    })
}

/// A count at `at` in `b` as an `Option<Tokens>` member reads it, and where it ends: `null`, or
/// a plain integer of at most 19 digits (anything else — a sign, a fraction, an exponent, a
/// string — gives up).
fn skim_count(b: &[u8], at: usize) -> Option<(Option<Tokens>, usize)> {
    if b.get(at..at + 4) == Some(b"null") {
        return Some((None, at + 4));
    }
    // The digits read as they are found (wrapping: more than 19 of them give up below).
    let (mut end, mut n) = (at, 0u64);
    while let Some(c) = b.get(end).filter(|c| c.is_ascii_digit()) {
        n = n.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
        end += 1;
    }
    let digits = end - at;
    let plain = (1..=19).contains(&digits) && (digits == 1 || b[at] != b'0');
    if !plain || matches!(b.get(end), Some(b'.' | b'e' | b'E')) {
        return None;
    }
    Some((Some(Tokens(n)), end))
}

/// The counts a details object of [`WireUsage`] may hold.
trait Details: Default {
    /// The count member named `key`, if this object has one.
    fn count(&mut self, key: &[u8]) -> Option<&mut Option<Tokens>>;
}

impl Details for PromptDetails {
    fn count(&mut self, key: &[u8]) -> Option<&mut Option<Tokens>> {
        match key {
            b"cached_tokens" => Some(&mut self.cached_tokens),
            b"cache_write_tokens" => Some(&mut self.cache_write_tokens),
            _ => None,
        }
    }
}

impl Details for CompletionDetails {
    fn count(&mut self, key: &[u8]) -> Option<&mut Option<Tokens>> {
        (key == b"reasoning_tokens").then_some(&mut self.reasoning_tokens)
    }
}

impl Details for ServerTools {
    fn count(&mut self, key: &[u8]) -> Option<&mut Option<Tokens>> {
        (key == b"web_search_requests").then_some(&mut self.web_search_requests)
    }
}

/// A details member at `at` in `b`, `depth` deep (`null`, or an object of counts, none repeated)
/// into `slot`; where it ends, `None` to give up.
fn skim_details<T: Details>(
    b: &[u8],
    at: usize,
    depth: usize,
    slot: &mut Option<Lenient<T>>,
) -> Option<usize> {
    if b.get(at..at + 4) == Some(b"null") {
        *slot = None;
        return Some(at + 4);
    }
    if b.get(at) != Some(&b'{') {
        return None;
    }
    let mut d = T::default();
    // The counts read so far (a details object has at most two).
    let mut seen: [&[u8]; 2] = [b""; 2];
    let mut n = 0;
    let end = skim::members(b, at, depth, |key, i| {
        let Some(count) = d.count(key) else {
            return skim::value(b, i, depth + 1);
        };
        if seen[..n].contains(&key) {
            return None;
        }
        *seen.get_mut(n)? = key;
        n += 1;
        let (c, end) = skim_count(b, i)?;
        *count = c;
        Some(end)
    })?;
    *slot = Some(Lenient(d));
    Some(end)
}

/// A token count that never fails to parse: negative, fractional, huge or non-numeric values read
/// as 0 (negative, non-numeric), truncated (fractions) or saturated (huge).
#[derive(Debug, Default, Clone, Copy)]
struct Tokens(u64);

impl<'de> Deserialize<'de> for Tokens {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Tokens;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a token count")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Tokens, E> {
                Ok(Tokens(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Tokens, E> {
                Ok(Tokens(u64::try_from(v).unwrap_or(0)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Tokens, E> {
                Ok(Tokens(if v.is_finite() && v > 0.0 {
                    // `as` saturates at u64::MAX.
                    v as u64
                } else {
                    0
                }))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Tokens, E> {
                Ok(Tokens(v.trim().parse().unwrap_or(0)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Tokens, E> {
                Ok(Tokens(0))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Tokens, E> {
                Ok(Tokens(0))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<Tokens, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Tokens(0))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut a: A) -> Result<Tokens, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Tokens(0))
            }
        }
        d.deserialize_any(V)
    }
}

/// An object that reads as its default when it has the wrong shape.
#[derive(Debug, Default)]
struct Lenient<T>(T);

impl<'de, T: Deserialize<'de> + Default> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        Ok(Lenient(T::deserialize(v).unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// A kept finish reason is the text it was made of, borrowed (no allocation) exactly when
        /// it is one of the usual ones.
        #[test]
        fn finish_reasons_keep_their_text(
            s in prop_oneof![
                proptest::sample::select(FINISH_REASONS.to_vec()).prop_map(str::to_owned),
                "[a-z_]{0,15}",
                "\\PC{0,8}",
            ],
            owned in any::<bool>(),
        ) {
            let input = if owned { Cow::Owned(s.clone()) } else { Cow::Borrowed(s.as_str()) };
            let kept = finish_reason(input);
            prop_assert_eq!(&*kept, s.as_str());
            prop_assert_eq!(
                matches!(kept, Cow::Borrowed(_)),
                FINISH_REASONS.contains(&s.as_str())
            );
            // Read from the bytes, the same reason, borrowed alike.
            let from_bytes = finish_reason_bytes(s.as_bytes()).expect("UTF-8");
            prop_assert_eq!(&*from_bytes, s.as_str());
            prop_assert_eq!(matches!(from_bytes, Cow::Borrowed(_)), matches!(kept, Cow::Borrowed(_)));
        }
    }

    /// Usage objects, mostly well-formed, with what the hand reader must read as serde does or
    /// give up on: floats, negatives, huge numbers, nulls, strings, duplicates, escapes, details
    /// of every shape.
    fn usage() -> impl Strategy<Value = String> {
        let count = prop_oneof![
            Just("0"),
            Just("7"),
            Just("120"),
            Just("18446744073709551615"),
            Just("18446744073709551616"),
            Just("99999999999999999999999"),
            Just("-5"),
            Just("-0"),
            Just("1.5"),
            Just("2e3"),
            Just("1E+2"),
            Just("null"),
            Just("\"12\""),
            Just("true"),
            Just("[3]"),
            Just("{\"a\":1}"),
            Just("01"),
            Just(" 42 "),
        ];
        let detail_key = prop_oneof![
            Just("cached_tokens"),
            Just("cache_write_tokens"),
            Just("reasoning_tokens"),
            Just("web_search_requests"),
            Just("audio_tokens"),
            Just("cached_\\u0074okens"),
        ];
        let details = prop_oneof![
            proptest::collection::vec((detail_key, count.clone()), 0..4).prop_map(|m| {
                let m: Vec<_> = m.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                format!("{{{}}}", m.join(","))
            }),
            Just("null".to_string()),
            Just("\"x\"".to_string()),
            Just("[1,2]".to_string()),
        ];
        let key = prop_oneof![
            Just("prompt_tokens"),
            Just("completion_tokens"),
            Just("total_tokens"),
            Just("input_tokens"),
            Just("output_tokens"),
            Just("cache_read_input_tokens"),
            Just("cache_creation_input_tokens"),
            Just("cost"),
            Just("prompt_\\u0074okens"),
        ];
        let member = prop_oneof![
            (key, count.clone(), any::<bool>()).prop_map(|(k, v, compact)| {
                if compact {
                    format!("\"{k}\":{v}")
                } else {
                    format!("\"{k}\" : {v}")
                }
            }),
            (
                prop_oneof![
                    Just("prompt_tokens_details"),
                    Just("completion_tokens_details"),
                    Just("server_tool_use_details"),
                ],
                details
            )
                .prop_map(|(k, v)| format!("\"{k}\":{v}")),
            Just("\"cost\":0.00012".to_string()),
        ];
        let members = proptest::collection::vec(member, 0..6);
        // The usual compact start (see `usual_start`), with what may follow it.
        let usual =
            (count.clone(), count, members.clone(), 0..4usize).prop_map(|(p, c, m, end)| {
                let rest = match end {
                    0 => "}".to_string(),
                    1 => format!(",{}}}", m.join(",")),
                    2 => format!(" ,{}}}", m.join(",")),
                    _ => format!(",{}", m.join(",")),
                };
                format!("{{\"prompt_tokens\":{p},\"completion_tokens\":{c}{rest}")
            });
        prop_oneof![
            8 => members.prop_map(|m| format!("{{{}}}", m.join(","))),
            4 => usual,
            1 => Just("null".to_string()),
            1 => Just("[1]".to_string()),
            1 => Just("{\"prompt_tokens\":1".to_string()),
        ]
    }

    proptest! {
        /// The hand reader reads what serde reads, or gives up.
        #[test]
        fn skimmed_usage_is_serde(raw in usage()) {
            let serde = serde_json::from_str::<WireUsage>(&raw).ok();
            if let Some(w) = WireUsage::skim(&raw) {
                prop_assert_eq!(format!("{w:?}"), format!("{:?}", serde.as_ref().expect("serde reads it")));
            }
            prop_assert_eq!(format!("{:?}", WireUsage::read(&raw)), format!("{serde:?}"));
        }
    }

    /// Prices as the catalog has them (small and long decimals), and some that make a step
    /// overflow or round (huge mantissas, 28 places) or that are negative.
    fn usd() -> impl Strategy<Value = Usd> {
        prop_oneof![
            (0i64..1_000_000, 0u32..=12).prop_map(|(m, s)| Usd::from_decimal(Decimal::new(m, s))),
            (any::<i64>(), 0u32..=28).prop_map(|(m, s)| Usd::from_decimal(Decimal::new(m, s))),
            Just(Usd::parse("0.0000000208333333333333").unwrap()),
            Just(Usd::from_decimal(Decimal::MAX)),
            Just(Usd::ZERO),
            Just(Usd::from_int(-1)),
        ]
    }

    /// The token counts of `counts` (prompt, completion, reasoning, cached, cache writes, web
    /// searches; a seventh, the images, is the caller's).
    fn usage_of(counts: &[u64]) -> TokenUsage {
        TokenUsage {
            prompt: counts[0],
            completion: counts[1],
            reasoning: counts[2],
            cached: counts[3],
            cache_write: counts[4],
            web_searches: counts[5],
        }
    }

    fn tokens() -> impl Strategy<Value = u64> {
        prop_oneof![0u64..1_000_000, any::<u64>(), Just(0), Just(u64::MAX)]
    }

    proptest! {
        /// An integer sum is the `Decimal` one, value and scale (zeros of any scale too).
        #[test]
        fn exact_add_is_decimal_add(
            a in (prop_oneof![Just(0u64), Just(1), 0u64..1_000, any::<u64>()], 0u32..=28),
            b in (prop_oneof![Just(0u64), Just(1), 0u64..1_000, any::<u64>()], 0u32..=28),
        ) {
            let d = |(m, s): (u64, u32)| Decimal::from_i128_with_scale(i128::from(m), s);
            let e = |(m, s): (u64, u32)| Exact { m: u128::from(m), scale: s };
            if let Some(sum) = e(a).add(e(b)).and_then(Exact::fits) {
                let exact = d(a).checked_add(d(b)).expect("it fits");
                let got = Exact::decimal(sum.m, sum.scale);
                prop_assert_eq!((got, got.scale()), (exact, exact.scale()));
            }
        }

        /// The integer price is the `Decimal` one, to the digit.
        #[test]
        fn exact_price_is_decimal_price(
            prices in proptest::collection::vec(usd(), 9),
            counts in proptest::collection::vec(tokens(), 7),
            discount in prop_oneof![Just(None), (0i64..100, 0u32..=3).prop_map(|(m, s)| Some(Decimal::new(m, s)))],
            insured in any::<bool>(),
        ) {
            let p = EffectivePricing {
                prompt: prices[0],
                completion: prices[1],
                request: prices[2],
                image: prices[3],
                audio: prices[4],
                input_cache_read: prices[5],
                input_cache_write: prices[6],
                internal_reasoning: prices[7],
                web_search: prices[8],
                multiplier: Decimal::ONE - discount.unwrap_or(Decimal::ZERO),
            };
            let usage = usage_of(&counts);
            let images = counts[6];
            let slow = decimal_price(&p, &usage, images, insured);
            if let Some(fast) = exact_price(&p, &usage, images, insured) {
                for (f, s) in [(fast.total, slow.total), (fast.prompt, slow.prompt), (fast.completion, slow.completion)] {
                    prop_assert_eq!(f.to_string(), s.to_string());
                    prop_assert_eq!(f.as_decimal().serialize(), s.as_decimal().serialize());
                }
            }
        }
    }

    /// Prices as a catalog holds them: per token (from per-million prices, sub-micro-dollar ones
    /// with long decimals too), per request, image or search, zeros of any scale.
    fn catalog_usd() -> impl Strategy<Value = Usd> {
        prop_oneof![
            4 => (0i64..100_000_000, 6u32..=14).prop_map(|(m, s)| Usd::from_decimal(Decimal::new(m, s))),
            2 => (0i64..1_000_000, 0u32..=6).prop_map(|(m, s)| Usd::from_decimal(Decimal::new(m, s))),
            1 => (0u32..=28).prop_map(|s| Usd::from_decimal(Decimal::new(0, s))),
            1 => prop_oneof![
                Just("0.0000000208333333333333"),
                Just("0.000000075"),
                Just("0.00000003"),
                Just("0.004"),
                Just("0.01"),
                Just("0.000001"),
                Just("15"),
            ]
            .prop_map(|s| Usd::parse(s).unwrap()),
        ]
    }

    proptest! {
        /// The integer price is the `Decimal` one byte for byte (and as text), at catalog prices,
        /// token counts up to `u32::MAX`, any discount, insured or not.
        #[test]
        fn catalog_price_is_decimal_price(
            prices in proptest::collection::vec(catalog_usd(), 9),
            counts in proptest::collection::vec(prop_oneof![0u64..=4_096, 0u64..=u64::from(u32::MAX)], 7),
            discount in prop_oneof![Just(None), (0i64..=10_000, 0u32..=4).prop_map(|(m, s)| Some(Decimal::new(m, s)))],
            insured in any::<bool>(),
        ) {
            let pricing = Pricing {
                prompt: prices[0],
                completion: prices[1],
                request: Some(prices[2]),
                image: Some(prices[3]),
                audio: Some(prices[4]),
                input_cache_read: Some(prices[5]),
                input_cache_write: Some(prices[6]),
                internal_reasoning: Some(prices[7]),
                web_search: Some(prices[8]),
                discount: discount.filter(|d| *d <= Decimal::ONE),
                ..Default::default()
            };
            let usage = usage_of(&counts);
            let slow = decimal_price(&pricing.effective(usage.prompt, 0), &usage, counts[6], insured);
            let fast = price(&pricing, &usage, 0, counts[6], insured);
            for (f, s) in [(fast.total, slow.total), (fast.prompt, slow.prompt), (fast.completion, slow.completion)] {
                prop_assert_eq!(f.to_string(), s.to_string());
                prop_assert_eq!(f.as_decimal().serialize(), s.as_decimal().serialize());
            }
        }
    }

    /// [`Pricing::effective`] written out the long way (every override looked at, the discount
    /// always subtracted): the reference for [`price`].
    fn effective_by_hand(
        pricing: &Pricing,
        prompt_tokens: u64,
        unix_millis: i64,
    ) -> EffectivePricing {
        let applying: Vec<_> = pricing
            .overrides
            .iter()
            .filter(|o| o.applies(prompt_tokens, unix_millis))
            .collect();
        let last = |f: &dyn Fn(&crate::catalog::PricingOverride) -> Option<Usd>,
                    base: Option<Usd>| {
            applying.iter().rev().find_map(|o| f(o)).or(base)
        };
        let prompt = last(&|o| o.prompt, Some(pricing.prompt)).unwrap_or_default();
        let completion = last(&|o| o.completion, Some(pricing.completion)).unwrap_or_default();
        EffectivePricing {
            prompt,
            completion,
            request: pricing.request.unwrap_or_default(),
            image: pricing.image.unwrap_or_default(),
            audio: last(&|o| o.audio, pricing.audio).unwrap_or_default(),
            input_cache_read: last(&|o| o.input_cache_read, pricing.input_cache_read)
                .unwrap_or(prompt),
            input_cache_write: last(&|o| o.input_cache_write, pricing.input_cache_write)
                .unwrap_or(prompt),
            internal_reasoning: pricing.internal_reasoning.unwrap_or(completion),
            web_search: pricing.web_search.unwrap_or_default(),
            multiplier: Decimal::ONE - pricing.discount.unwrap_or(Decimal::ZERO),
        }
    }

    /// Pricing as a catalog may have it: optional prices, a discount or none (zero of any
    /// scale too), overrides by prompt size and by time.
    fn pricing() -> impl Strategy<Value = Pricing> {
        let opt = || proptest::option::of(usd());
        let discount = prop_oneof![
            Just(None),
            Just(Some(Decimal::ZERO)),
            Just(Some(Decimal::new(0, 2))),
            Just(Some(Decimal::new(9, 1))),
            Just(Some(Decimal::new(99, 2))),
            (0i64..100, 0u32..=3).prop_map(|(m, s)| Some(Decimal::new(m, s))),
        ];
        let o = (
            proptest::option::of(0u64..2_000),
            proptest::option::of((0u16..24, 0u16..60).prop_map(|(h, m)| h * 100 + m)),
            proptest::option::of(usd()),
            proptest::option::of(usd()),
            proptest::option::of(usd()),
            proptest::option::of(usd()),
        )
            .prop_map(|(min, start, prompt, completion, read, write)| {
                crate::catalog::PricingOverride {
                    min_prompt_tokens: min,
                    utc_start: start,
                    prompt,
                    completion,
                    input_cache_read: read,
                    input_cache_write: write,
                    ..Default::default()
                }
            });
        (
            (usd(), usd(), opt(), opt(), opt(), opt()),
            (opt(), opt(), opt(), discount),
            proptest::collection::vec(o, 0..3),
        )
            .prop_map(
                |(
                    (p, c, req, img, audio, read),
                    (write, reasoning, search, discount),
                    overrides,
                )| {
                    Pricing {
                        prompt: p,
                        completion: c,
                        request: req,
                        image: img,
                        audio,
                        input_cache_read: read,
                        input_cache_write: write,
                        internal_reasoning: reasoning,
                        web_search: search,
                        discount,
                        overrides,
                        ..Default::default()
                    }
                },
            )
    }

    proptest! {
        /// A price is the `Decimal` computation at the prices written out by hand, to the digit:
        /// overrides, discounts (or none), cache and reasoning prices, fees, insured or not.
        #[test]
        fn price_is_the_long_way(
            pricing in pricing(),
            counts in proptest::collection::vec(prop_oneof![0u64..3_000, tokens()], 7),
            unix_millis in 0i64..1_000_000_000_000,
            insured in any::<bool>(),
        ) {
            let usage = usage_of(&counts);
            let images = counts[6];
            let by_hand = effective_by_hand(&pricing, usage.prompt, unix_millis);
            prop_assert_eq!(pricing.effective(usage.prompt, unix_millis), by_hand);
            let slow = decimal_price(&by_hand, &usage, images, insured);
            let fast = price(&pricing, &usage, unix_millis, images, insured);
            for (f, s) in [(fast.total, slow.total), (fast.prompt, slow.prompt), (fast.completion, slow.completion)] {
                prop_assert_eq!(f.as_decimal().serialize(), s.as_decimal().serialize());
            }
        }
    }

    #[test]
    fn usual_price_is_exact() {
        let price = |s: &str| Usd::parse(s).unwrap();
        let p = EffectivePricing {
            prompt: price("0.0000003"),
            completion: price("0.0000012"),
            request: Usd::ZERO,
            image: Usd::ZERO,
            audio: Usd::ZERO,
            input_cache_read: price("0.00000003"),
            input_cache_write: price("0.0000003"),
            internal_reasoning: price("0.0000012"),
            web_search: price("0.004"),
            multiplier: Decimal::ONE,
        };
        let usage = TokenUsage::new(120, 180).cached(20);
        let c = exact_price(&p, &usage, 0, false).expect("in integers");
        assert_eq!(c.total.to_string(), "0.0002466");
        assert_eq!(c, decimal_price(&p, &usage, 0, false));
    }

    #[test]
    fn usual_usage_is_skimmed() {
        let w = WireUsage::skim(
            r#"{"prompt_tokens":120,"completion_tokens":180,"total_tokens":300,
                "prompt_tokens_details":{"cached_tokens":20,"audio_tokens":0},
                "completion_tokens_details":{"reasoning_tokens":5}}"#,
        )
        .expect("the hand reader reads it");
        assert_eq!(
            w.to_usage(),
            TokenUsage::new(120, 180).reasoning(5).cached(20)
        );
        assert!(WireUsage::skim(r#"{"prompt_tokens":1,"prompt_tokens":2}"#).is_none());
        assert!(WireUsage::skim(r#"{"prompt_tokens":1.0}"#).is_none());
        // The usual start read at once, then the members after it one by one.
        let w = WireUsage::skim(r#"{"prompt_tokens":7,"completion_tokens":null,"input_tokens":3}"#)
            .expect("the usual start");
        assert_eq!(
            (w.to_usage(), w.anthropic_input().0),
            (TokenUsage::new(7, 0), Some(3))
        );
        assert!(
            WireUsage::skim(r#"{"prompt_tokens":1,"completion_tokens":2,"prompt_tokens":3}"#)
                .is_none()
        );
        assert!(WireUsage::skim(r#"{"prompt_tokens":1,"completion_tokens":2,}"#).is_none());
    }

    #[test]
    fn lenient_counts() {
        let u: WireUsage = serde_json::from_str(
            r#"{"prompt_tokens":-5,"completion_tokens":1e300,"prompt_tokens_details":"x",
                "completion_tokens_details":{"reasoning_tokens":"7"}}"#,
        )
        .unwrap();
        let t = u.to_usage();
        assert_eq!(t.prompt, 0);
        assert_eq!(t.completion, u64::MAX);
        assert_eq!(t.reasoning, 7);
    }

    #[test]
    fn insurance() {
        let zero = TokenUsage::new(10, 0);
        assert!(insured(Some(&zero), None));
        assert!(!insured(Some(&zero), Some("stop")));
        assert!(insured(Some(&TokenUsage::new(10, 5)), Some("error")));
        assert!(!insured(None, None));
    }
}
