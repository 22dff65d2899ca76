//! The Anthropic Messages wire (<https://docs.anthropic.com/en/api/messages>,
//! <https://docs.anthropic.com/en/api/messages-streaming>) and its translation to and from chat
//! completions. Everything Anthropic-specific lives here, so that it can be gated behind a cargo
//! feature; the public items are re-exported from [`compat`](crate::compat).

mod request;
mod response;
mod reverse;
mod reverse_sse;
mod sse;
#[cfg(test)]
mod tests;
mod upstream;

pub use super::marks::{MessagesWire, OriginalMessages, GATEWAY_ONLY_MEMBERS};
pub(crate) use request::{chat_body, split_tools};
pub use request::{count_tokens, count_tokens_json, messages_to_chat, MAX_FALLBACKS};
pub use response::{anthropic_error_type, anthropic_status, chat_to_message, error_to_anthropic};
#[allow(unused_imports)]
pub(crate) use response::{stop_reason, thinking_signature, tool_input, usage_to_anthropic};
pub use reverse::{chat_to_messages, message_to_chat, DEFAULT_MAX_TOKENS};
#[allow(unused_imports)]
pub(crate) use reverse::{finish_reason, usage_to_chat};
pub use reverse_sse::ChatSseTranslator;
pub use sse::{MessagesSseBody, SseTranslator};
pub(crate) use upstream::MessagesStream;

/// The Messages API version sent to Anthropic-wire providers (unless their extra headers set it).
pub(crate) const ANTHROPIC_VERSION: (&str, &str) = ("anthropic-version", "2023-06-01");

/// The caller's Anthropic beta flags, forwarded with a passed-through Messages body (the body may
/// use what they enable).
pub(crate) const ANTHROPIC_BETA: &str = "anthropic-beta";
