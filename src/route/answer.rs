//! Reading a non-streamed answer once: a reader that the layer metering answers (UsageMeter)
//! lends to the layer that judges them (ProviderFallback, configured so by `GatewayLayer`).
//!
//! ProviderFallback must read every `2xx` answer before it returns it (an invalid one falls over to
//! the next candidate), and UsageMeter reads the same bytes again to edit them. With a reader, the
//! fallback judges the answer by what the meter's reader found and hands the reading
//! ([`AnswerReading`], plain data held by value) on in its [`ServedBy`](super::ServedBy) (not in
//! an extension or an allocation of its own), from which the meter takes it; the meter uses it when it is the reading
//! of the very bytes it receives (an answer translated from another wire is not), and reads them
//! itself otherwise. Neither layer names the other's types: this module is what both may import.

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
/// it was made of only ([`AnswerReading::at`]); the meter checks that before using it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct AnswerReading {
    /// The body read (address and length): a reading applies to these very bytes only.
    pub(crate) at: (usize, usize),
    /// Byte ranges of the body's `id`, `model`, `provider`, `service_tier`, `usage`, `choices`,
    /// `error`, `message` and `delta` values (`u32` offsets: a body of 4 GiB or more is not read).
    pub(crate) spans: [Option<Range<u32>>; 9],
    /// The top-level `type`.
    pub(crate) kind: Option<String>,
    /// The first choice's finish reason.
    pub(crate) finish_reason: Option<Cow<'static, str>>,
    /// The bytes of content in `choices`.
    pub(crate) content_bytes: u64,
    /// The `usage` object's counts, when they were read with the body.
    pub(crate) usage: Option<UsageCounts>,
}

/// The counts of a `usage` object (OpenAI's and Anthropic's members), as read: `None` for a
/// member that is absent (or `null`); a details object as `Some` of its counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct UsageCounts {
    /// `prompt_tokens`.
    pub(crate) prompt_tokens: Option<u64>,
    /// `completion_tokens`.
    pub(crate) completion_tokens: Option<u64>,
    /// `prompt_tokens_details`: its `cached_tokens` and `cache_write_tokens`.
    pub(crate) prompt_tokens_details: Option<(Option<u64>, Option<u64>)>,
    /// `completion_tokens_details`: its `reasoning_tokens`.
    pub(crate) completion_tokens_details: Option<Option<u64>>,
    /// `server_tool_use_details`: its `web_search_requests`.
    pub(crate) server_tool_use_details: Option<Option<u64>>,
    /// Anthropic's `input_tokens`.
    pub(crate) input_tokens: Option<u64>,
    /// Anthropic's `output_tokens`.
    pub(crate) output_tokens: Option<u64>,
    /// Anthropic's `cache_read_input_tokens`.
    pub(crate) cache_read_input_tokens: Option<u64>,
    /// Anthropic's `cache_creation_input_tokens`.
    pub(crate) cache_creation_input_tokens: Option<u64>,
    /// Whether the object has a `cost` member that is not `null`.
    pub(crate) cost: bool,
}
