//! Reading a non-streamed answer once: a reader that the layer metering answers (UsageMeter)
//! lends to the layer that judges them (ProviderFallback, configured so by `GatewayLayer`).
//!
//! ProviderFallback must read every `2xx` answer before it returns it (an invalid one falls over to
//! the next candidate), and UsageMeter reads the same bytes again to edit them. With a reader, the
//! fallback judges the answer by what the meter's reader found and hands the reading
//! ([`AnswerReading`], plain data held by value) on in its [`ServedBy`](super::ServedBy) (not in
//! an extension or an allocation of its own), from which the meter takes it; the meter uses it
//! when it is the reading of the very bytes it receives (an answer translated from another wire
//! is not), and reads them itself otherwise. Neither layer names the other's types: this module
//! is what both may import.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use bytes::Bytes;

/// Reads a complete JSON answer, writing its reading into the slot it is given (in place: the
/// reading is not moved from hand to hand): `None` when the reader does not take it (not a JSON
/// object, or a shape it leaves to the judge's own reading).
#[derive(Clone, Copy)]
pub(crate) struct AnswerReader(
    pub(crate) fn(&Bytes, &mut Option<AnswerReading>) -> Option<ReadAnswer>,
);

impl fmt::Debug for AnswerReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AnswerReader")
    }
}

/// What an [`AnswerReader`] found.
pub(crate) struct ReadAnswer {
    /// The answer has an `error` member that is not `null`.
    pub(crate) error: bool,
    /// Its top-level `type` is `"message"` (an Anthropic Messages answer).
    pub(crate) message: bool,
}

/// The meter's reading of an answer, passed on by value in [`ServedBy`](super::ServedBy): plain
/// data that the meter fills (from its parse of the answer) and reads back, so that neither layer
/// names the other's types and the reading costs no allocation of its own. It applies to the bytes
/// it was made of only ([`AnswerReading::at`]); the meter checks that before using it. Small (it
/// is copied with the `ServedBy` that carries it): spans as `u32` pairs, counts in one array.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct AnswerReading {
    /// The body read (address and length): a reading applies to these very bytes only.
    pub(crate) at: (usize, usize),
    /// Byte ranges of the body's `id`, `model`, `provider`, `service_tier`, `usage`, `choices`,
    /// `error`, `message` and `delta` values, and of the top-level `type`'s text (between its
    /// quotes: a `type` with escapes is not read).
    pub(crate) spans: [ByteSpan; 10],
    /// The first choice's finish reason.
    pub(crate) finish_reason: Option<Cow<'static, str>>,
    /// The bytes of content in `choices`.
    pub(crate) content_bytes: u64,
    /// The `usage` object's counts, when they were read with the body.
    pub(crate) usage: Option<UsageCounts>,
}

/// A byte range of a body, in `u32` offsets (a body of 4 GiB or more is not read), or none
/// ([`ByteSpan::ABSENT`], the default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ByteSpan(u32, u32);

impl ByteSpan {
    /// No range: a start no value of a body under 4 GiB has.
    pub(crate) const ABSENT: ByteSpan = ByteSpan(u32::MAX, u32::MAX);

    /// `r`, or [`ByteSpan::ABSENT`] for `None`; `r` must lie within a body under 4 GiB.
    pub(crate) fn of(r: Option<Range<usize>>) -> ByteSpan {
        r.map_or(ByteSpan::ABSENT, |r| ByteSpan(r.start as u32, r.end as u32))
    }

    /// The range, `None` when absent.
    pub(crate) fn get(self) -> Option<Range<usize>> {
        (self != ByteSpan::ABSENT).then_some(self.0 as usize..self.1 as usize)
    }
}

impl Default for ByteSpan {
    fn default() -> Self {
        ByteSpan::ABSENT
    }
}

/// The counts of a `usage` object (OpenAI's and Anthropic's members), as read: each count in
/// [`UsageCounts::counts`] at its index ([`UsageCounts::PROMPT`], …), present when its bit of
/// [`UsageCounts::present`] is set (absent or `null` otherwise, its count then 0); the bits above
/// the counts' say which details objects were there and whether a `cost` was.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct UsageCounts {
    /// The counts, by index.
    pub(crate) counts: [u64; 10],
    /// Bit `i` for `counts[i]`, then [`UsageCounts::PROMPT_DETAILS`] and the other flags.
    pub(crate) present: u16,
}

impl UsageCounts {
    /// `prompt_tokens`.
    pub(crate) const PROMPT: usize = 0;
    /// `completion_tokens`.
    pub(crate) const COMPLETION: usize = 1;
    /// `prompt_tokens_details.cached_tokens`.
    pub(crate) const CACHED: usize = 2;
    /// `prompt_tokens_details.cache_write_tokens`.
    pub(crate) const CACHE_WRITE: usize = 3;
    /// `completion_tokens_details.reasoning_tokens`.
    pub(crate) const REASONING: usize = 4;
    /// `server_tool_use_details.web_search_requests`.
    pub(crate) const WEB_SEARCH: usize = 5;
    /// Anthropic's `input_tokens`.
    pub(crate) const INPUT: usize = 6;
    /// Anthropic's `output_tokens`.
    pub(crate) const OUTPUT: usize = 7;
    /// Anthropic's `cache_read_input_tokens`.
    pub(crate) const CACHE_READ: usize = 8;
    /// Anthropic's `cache_creation_input_tokens`.
    pub(crate) const CACHE_CREATION: usize = 9;
    /// The flag of a `prompt_tokens_details` object.
    pub(crate) const PROMPT_DETAILS: u16 = 1 << 10;
    /// The flag of a `completion_tokens_details` object.
    pub(crate) const COMPLETION_DETAILS: u16 = 1 << 11;
    /// The flag of a `server_tool_use_details` object.
    pub(crate) const SERVER_TOOLS: u16 = 1 << 12;
    /// The flag of a `cost` member that is not `null`.
    pub(crate) const COST: u16 = 1 << 13;

    /// The count at index `i`, `None` when absent.
    pub(crate) fn get(&self, i: usize) -> Option<u64> {
        (self.present & (1 << i) != 0).then_some(self.counts[i])
    }

    /// Sets the count at index `i` when `n` is one (an absent one is left absent).
    pub(crate) fn set(&mut self, i: usize, n: Option<u64>) {
        if let Some(n) = n {
            self.counts[i] = n;
            self.present |= 1 << i;
        }
    }

    /// Whether `flag` ([`UsageCounts::PROMPT_DETAILS`], …) is set.
    pub(crate) fn has(&self, flag: u16) -> bool {
        self.present & flag != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reading is copied with the `ServedBy` that carries it: it stays small (it was 352 B
    /// with `Option` spans and counts).
    #[test]
    fn a_reading_is_small() {
        let size = std::mem::size_of::<Option<AnswerReading>>();
        assert!(size <= 224, "Option<AnswerReading> {size} B");
    }

    /// A count is present only once set; the flags are apart from the counts.
    #[test]
    fn counts_and_flags() {
        let mut c = UsageCounts::default();
        c.set(UsageCounts::CACHE_CREATION, Some(0));
        c.set(UsageCounts::PROMPT, None);
        c.present |= UsageCounts::COST;
        assert_eq!(c.get(UsageCounts::CACHE_CREATION), Some(0));
        assert_eq!(c.get(UsageCounts::PROMPT), None);
        assert!(c.has(UsageCounts::COST) && !c.has(UsageCounts::PROMPT_DETAILS));
        assert_eq!(ByteSpan::of(None).get(), None);
        assert_eq!(ByteSpan::of(Some(3..7)).get(), Some(3..7));
    }
}
