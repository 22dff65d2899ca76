//! The wire formats a caller or a provider speaks, and the translation between them.
//!
//! Two wires exist: OpenAI **chat completions** (the gateway's own format, see
//! <https://openrouter.ai/docs/api-reference/chat-completion> and
//! <https://platform.openai.com/docs/api-reference/chat>) and Anthropic **Messages** (the
//! [`messages`] submodule, which holds everything Anthropic-specific). The layers meet them
//! through one small interface:
//!
//! * **Marks** in the extensions say which wire a caller speaks:
//!   [`OriginalMessages`] on a request (the caller's Messages bytes, put there by `MessagesLayer`)
//!   and [`MessagesWire`] on a response (its body is on the Messages wire, passed through
//!   untranslated). They are plain data and exist in every build.
//! * [`Wire`] is the adapter [`ProviderFallback`](crate::fallback) chooses **once per attempt**
//!   from the provider's [`WireFormat`] and the caller's mark. It shapes the request (body and
//!   wire headers), reads a JSON answer, gives the stream reader, and marks the response; the
//!   fallback never asks "is this Anthropic" itself.
//! * A provider's event stream on another wire is read through a [`StreamReader`], which turns
//!   each frame into chat-completion chunks for the fallback's watch.
//! * The translation functions and SSE translators (chat ⇄ Messages requests, JSON answers and
//!   event streams) live in `messages`, compiled with the `anthropic` cargo feature, and are
//!   re-exported for users from `compat`.
//!
//! On the chat → chat path the adapter is [`Wire::Chat`], whose methods hand bytes through
//! untouched: no parsing, no allocation. Without the `anthropic` feature it is the only adapter:
//! [`Wire::choose`] has none for an Anthropic-wire provider, and the fallback records that
//! attempt as `UnsupportedWireFormat` (nothing is sent) and goes on.

mod marks;
#[cfg(feature = "anthropic")]
pub(crate) mod messages;
#[cfg(feature = "responses")]
pub(crate) mod responses;

use bytes::Bytes;
use http::{Extensions, HeaderMap, HeaderName, HeaderValue};

use crate::catalog::WireFormat;
pub(crate) use marks::{MessagesWire, OriginalMessages, GATEWAY_ONLY_MEMBERS};

/// A provider's event stream on a wire other than chat completions, read frame by frame on
/// behalf of the chat-completions reader.
pub(crate) trait StreamReader: Send + Sync {
    /// Reads one upstream frame.
    fn feed(&mut self, data: Bytes) -> Fed;
    /// Whether the provider's bytes are sent on as they are (only watched through the
    /// translation), rather than the translation's; a translated stream also drops upstream
    /// trailers (it has none of its own).
    fn passes_through(&self) -> bool;
    /// The wire's own error event for a stream that fails after content, or `None` when the
    /// stream ends with the chat in-band error chunk.
    fn error_event(&self, message: &str) -> Option<Bytes>;
}

/// What one upstream frame gives a [`StreamReader`].
pub(crate) struct Fed {
    /// The frame as chat-completion chunks (for the reader that watches the stream's progress).
    pub(crate) chat: Bytes,
    /// The bytes to send on (equal to `chat` unless passed through); may be empty.
    pub(crate) out: Bytes,
}

/// How one attempt talks to its provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wire {
    /// Chat completions out, chat completions back: bytes pass as they are.
    Chat,
    /// Anthropic Messages. With `passthrough` the caller spoke Messages too: its own bytes go out
    /// and the answer comes back untranslated (marked [`MessagesWire`]); otherwise the chat body
    /// is translated and so is the answer.
    #[cfg(feature = "anthropic")]
    Messages {
        /// The caller's Messages body is sent as it is.
        passthrough: bool,
    },
}

/// The caller headers some wire's [`Wire::forward_caller_headers`] reads besides the allow-list:
/// a request keeps their values for all its attempts.
#[cfg(feature = "anthropic")]
pub(crate) static CALLER_HEADERS_READ: [HeaderName; 1] =
    [HeaderName::from_static(messages::ANTHROPIC_BETA)];
/// The caller headers some wire's [`Wire::forward_caller_headers`] reads besides the allow-list.
#[cfg(not(feature = "anthropic"))]
pub(crate) static CALLER_HEADERS_READ: [HeaderName; 0] = [];

impl Wire {
    /// The adapter for a provider speaking `format`, for a caller whose Messages body is
    /// `original` (if it spoke Messages); `None` when this build cannot speak `format`.
    pub(crate) fn choose(format: WireFormat, original: Option<&OriginalMessages>) -> Option<Wire> {
        let _ = original;
        match format {
            WireFormat::Openai => Some(Wire::Chat),
            #[cfg(feature = "anthropic")]
            WireFormat::Anthropic => Some(Wire::Messages {
                passthrough: original.is_some(),
            }),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// Whether the caller's Messages bytes are sent (and the answer returned) untranslated.
    pub(crate) fn passthrough(self) -> bool {
        match self {
            Wire::Chat => false,
            #[cfg(feature = "anthropic")]
            Wire::Messages { passthrough } => passthrough,
        }
    }

    /// The provider's body from the rewritten chat body (when not passed through): the same
    /// bytes for chat, the Messages translation otherwise (`None` if the chat body is not JSON).
    pub(crate) fn encode_chat(self, chat: Vec<u8>) -> Option<Vec<u8>> {
        match self {
            Wire::Chat => Some(chat),
            #[cfg(feature = "anthropic")]
            Wire::Messages { .. } => {
                let v: serde_json::Value = serde_json::from_slice(&chat).ok()?;
                Some(messages::chat_to_messages(&v).to_string().into_bytes())
            }
        }
    }

    /// Caller headers this wire forwards besides the allow-list (a passed-through Messages body
    /// keeps its `anthropic-beta` flags). `caller`: the caller's headers in its map's order, at
    /// least the values of the names in [`CALLER_HEADERS_READ`].
    pub(crate) fn forward_caller_headers<'a>(
        self,
        caller: impl Iterator<Item = (&'a HeaderName, &'a HeaderValue)>,
        out: &mut HeaderMap,
    ) {
        #[cfg(feature = "anthropic")]
        if self.passthrough() {
            for (_, v) in caller.filter(|(n, _)| *n == messages::ANTHROPIC_BETA) {
                out.append(messages::ANTHROPIC_BETA, v.clone());
            }
            return;
        }
        let _ = (caller, out);
    }

    /// Headers the wire requires, unless already set (the Messages API version).
    pub(crate) fn required_headers(self, out: &mut HeaderMap) {
        #[cfg(feature = "anthropic")]
        if let Wire::Messages { .. } = self {
            let (name, value) = messages::ANTHROPIC_VERSION;
            if !out.contains_key(name) {
                out.insert(name, HeaderValue::from_static(value));
            }
        }
        let _ = out;
    }

    /// A successful JSON answer for the caller, or `None` if it is not this wire's answer.
    /// `is_message` says whether its top-level `type` is `"message"` (a Messages answer).
    pub(crate) fn decode_answer(
        self,
        body: Bytes,
        is_message: bool,
        created: u64,
    ) -> Option<Bytes> {
        let _ = (is_message, created);
        match self {
            Wire::Chat => Some(body),
            #[cfg(feature = "anthropic")]
            Wire::Messages { .. } if !is_message => None,
            #[cfg(feature = "anthropic")]
            Wire::Messages { passthrough: true } => Some(body),
            #[cfg(feature = "anthropic")]
            Wire::Messages { passthrough: false } => {
                let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
                let chat = messages::message_to_chat(&v, created);
                Some(Bytes::from(chat.to_string().into_bytes()))
            }
        }
    }

    /// The reader of this wire's event stream, or `None` when the stream is read as it is.
    pub(crate) fn stream(self, created: u64) -> Option<Box<dyn StreamReader>> {
        let _ = created;
        match self {
            Wire::Chat => None,
            #[cfg(feature = "anthropic")]
            Wire::Messages { passthrough } => {
                Some(messages::MessagesStream::new(passthrough, created))
            }
        }
    }

    /// Marks a response whose body is on the caller's Messages wire.
    pub(crate) fn mark(self, extensions: &mut Extensions) {
        if self.passthrough() {
            extensions.insert(MessagesWire);
        }
    }
}
