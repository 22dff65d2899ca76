//! The wire formats a caller or a provider speaks, and the translation between them.
//!
//! Two wires exist: OpenAI **chat completions** (the gateway's own format, see
//! <https://openrouter.ai/docs/api-reference/chat-completion> and
//! <https://platform.openai.com/docs/api-reference/chat>) and Anthropic **Messages** (the
//! [`messages`] submodule, which holds everything Anthropic-specific). The layers meet them
//! through one small interface:
//!
//! * **Marks** in the extensions say which wire a caller speaks:
//!   [`OriginalMessages`](messages::OriginalMessages) on a request (the caller's Messages bytes,
//!   put there by [`MessagesLayer`](crate::compat::MessagesLayer)) and
//!   [`MessagesWire`](messages::MessagesWire) on a response (its body is on the Messages wire,
//!   passed through untranslated).
//! * [`Wire`] is the adapter [`ProviderFallback`](crate::fallback) chooses **once per attempt**
//!   from the provider's [`WireFormat`] and the caller's mark. It shapes the request (body and
//!   wire headers), reads a JSON answer, gives the stream reader, and marks the response; the
//!   fallback never asks "is this Anthropic" itself.
//! * The translation functions and SSE translators (chat ⇄ Messages requests, JSON answers and
//!   event streams) live in [`messages`] and are re-exported for users from
//!   [`compat`](crate::compat).
//!
//! On the chat → chat path the adapter is [`Wire::Chat`], whose methods hand bytes through
//! untouched: no parsing, no allocation.

pub(crate) mod messages;

use bytes::Bytes;
use http::{Extensions, HeaderMap, HeaderValue};

use crate::catalog::WireFormat;
use messages::{MessagesStream, MessagesWire, OriginalMessages};

/// How one attempt talks to its provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wire {
    /// Chat completions out, chat completions back: bytes pass as they are.
    Chat,
    /// Anthropic Messages. With `passthrough` the caller spoke Messages too: its own bytes go out
    /// and the answer comes back untranslated (marked [`MessagesWire`]); otherwise the chat body
    /// is translated and so is the answer.
    Messages {
        /// The caller's Messages body is sent as it is.
        passthrough: bool,
    },
}

impl Wire {
    /// The adapter for a provider speaking `format`, for a caller whose Messages body is
    /// `original` (if it spoke Messages).
    pub(crate) fn choose(format: WireFormat, original: Option<&OriginalMessages>) -> Wire {
        match format {
            WireFormat::Openai => Wire::Chat,
            WireFormat::Anthropic => Wire::Messages {
                passthrough: original.is_some(),
            },
        }
    }

    /// Whether the caller's Messages bytes are sent (and the answer returned) untranslated.
    pub(crate) fn passthrough(self) -> bool {
        matches!(self, Wire::Messages { passthrough: true })
    }

    /// The provider's body from the rewritten chat body (when not passed through): the same
    /// bytes for chat, the Messages translation otherwise (`None` if the chat body is not JSON).
    pub(crate) fn encode_chat(self, chat: Vec<u8>) -> Option<Vec<u8>> {
        match self {
            Wire::Chat => Some(chat),
            Wire::Messages { .. } => {
                let v: serde_json::Value = serde_json::from_slice(&chat).ok()?;
                Some(messages::chat_to_messages(&v).to_string().into_bytes())
            }
        }
    }

    /// Caller headers this wire forwards besides the allow-list (a passed-through Messages body
    /// keeps its `anthropic-beta` flags).
    pub(crate) fn forward_caller_headers(self, caller: &HeaderMap, out: &mut HeaderMap) {
        if self.passthrough() {
            for v in caller.get_all(messages::ANTHROPIC_BETA) {
                out.append(messages::ANTHROPIC_BETA, v.clone());
            }
        }
    }

    /// Headers the wire requires, unless already set (the Messages API version).
    pub(crate) fn required_headers(self, out: &mut HeaderMap) {
        if let Wire::Messages { .. } = self {
            let (name, value) = messages::ANTHROPIC_VERSION;
            if !out.contains_key(name) {
                out.insert(name, HeaderValue::from_static(value));
            }
        }
    }

    /// A successful JSON answer for the caller, or `None` if it is not this wire's answer.
    /// `is_message` says whether its top-level `type` is `"message"` (a Messages answer).
    pub(crate) fn decode_answer(
        self,
        body: Bytes,
        is_message: bool,
        created: u64,
    ) -> Option<Bytes> {
        match self {
            Wire::Chat => Some(body),
            Wire::Messages { .. } if !is_message => None,
            Wire::Messages { passthrough: true } => Some(body),
            Wire::Messages { passthrough: false } => {
                let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
                let chat = messages::message_to_chat(&v, created);
                Some(Bytes::from(chat.to_string().into_bytes()))
            }
        }
    }

    /// The reader of this wire's event stream, or `None` when the stream is read as it is.
    pub(crate) fn stream(self, created: u64) -> Option<Box<MessagesStream>> {
        match self {
            Wire::Chat => None,
            Wire::Messages { passthrough } => Some(MessagesStream::new(passthrough, created)),
        }
    }

    /// Marks a response whose body is on the caller's Messages wire.
    pub(crate) fn mark(self, extensions: &mut Extensions) {
        if self.passthrough() {
            extensions.insert(MessagesWire);
        }
    }
}
