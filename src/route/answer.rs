//! Reading a non-streamed answer once: a reader that the layer metering answers (UsageMeter)
//! lends to the layer that judges them (ProviderFallback, configured so by `GatewayLayer`).
//!
//! ProviderFallback must read every `2xx` answer before it returns it (an invalid one falls over to
//! the next candidate), and UsageMeter reads the same bytes again to edit them. With a reader, the
//! fallback judges the answer by what the meter's reader found and hands the reading
//! ([`AnswerReading`]) on in its [`ServedBy`](super::ServedBy) (not in an extension of its own:
//! one allocation less), from which the meter takes it; the meter uses it when it is the reading
//! of the very bytes it receives (an answer translated from another wire is not), and reads them
//! itself otherwise. Neither layer names the other's types: this module is what both may import.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

/// Reads a complete JSON answer: `None` when the reader does not take it (not a JSON object, or a
/// shape it leaves to the judge's own reading).
#[derive(Clone, Copy)]
pub(crate) struct AnswerReader(pub(crate) fn(&Bytes) -> Option<ReadAnswer>);

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
    /// The reading itself, for the layer that lent the reader.
    pub(crate) reading: AnswerReading,
}

/// A reading of an answer, passed on in [`ServedBy`](super::ServedBy); only the layer that made
/// it knows its type. Two readings are equal when they are the same reading.
#[derive(Clone)]
pub(crate) struct AnswerReading(pub(crate) Arc<dyn Any + Send + Sync>);

impl PartialEq for AnswerReading {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for AnswerReading {}

impl fmt::Debug for AnswerReading {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AnswerReading")
    }
}
