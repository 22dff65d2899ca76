//! Messages in, Messages out: the extensions that let an Anthropic Messages request reach an
//! Anthropic-wire provider unchanged.
//!
//! Public through `compat` with the `anthropic` feature; without it the fallback still reads the
//! (then never set) request mark, so the items stay, crate-private in effect.
#![cfg_attr(not(feature = "anthropic"), allow(unreachable_pub, dead_code))]

use bytes::Bytes;

/// The caller's Anthropic Messages request body, as it arrived.
///
/// [`MessagesLayer`](crate::compat::MessagesLayer) puts it in the extensions of the chat-completions
/// request it sends inward. When [`ProviderFallback`](crate::fallback) then calls a provider whose
/// wire format is [`WireFormat::Anthropic`](crate::catalog::WireFormat::Anthropic), it sends these
/// bytes instead of translating the chat body back: the body passes through byte for byte
/// apart from
///
/// - `model`, set to the endpoint's provider model id,
/// - `max_tokens`, when [`MessagesLayer::max_tokens_cap`](crate::compat::MessagesLayer::max_tokens_cap)
///   lowered it,
/// - the gateway-only members ([`GATEWAY_ONLY_MEMBERS`]), which are removed.
///
/// So prompt-cache prefixes (`cache_control` and the exact bytes before them), thinking blocks
/// with their signatures, and fields the translation does not know (`context_management`,
/// `output_config`, …) reach the provider as the client wrote them. The caller's `anthropic-beta`
/// header is forwarded with it. The answer comes back untranslated too, marked with
/// [`MessagesWire`]. Requests routed to OpenAI-wire providers are unaffected: they get the
/// translated chat body.
#[derive(Clone, Debug)]
pub struct OriginalMessages {
    body: Bytes,
    max_tokens: Option<u64>,
}

/// Top-level members of a Messages request that only the gateway reads; they are removed from a
/// passed-through body (Anthropic rejects unknown members).
pub const GATEWAY_ONLY_MEMBERS: &[&str] = &[
    "provider",
    "models",
    "fallbacks",
    "session_id",
    "route",
    "transforms",
    "plugins",
    "usage",
    "user",
    "preset",
    "debug",
    "trace",
];

impl OriginalMessages {
    /// The request body as the caller sent it.
    pub fn new(body: Bytes) -> Self {
        OriginalMessages {
            body,
            max_tokens: None,
        }
    }

    /// Sends `max_tokens` instead of the caller's value.
    #[must_use]
    pub fn with_max_tokens(mut self, max_tokens: u64) -> Self {
        self.max_tokens = Some(max_tokens);
        self
    }

    /// The body as the caller sent it.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The `max_tokens` that replaces the caller's, if any.
    pub fn max_tokens(&self) -> Option<u64> {
        self.max_tokens
    }
}

/// Response extension: the body is on the Anthropic Messages wire (a `message` object or its
/// event stream), passed through from an Anthropic-wire provider for an [`OriginalMessages`]
/// request. [`MessagesLayer`](crate::compat::MessagesLayer) forwards such a body as it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MessagesWire;
