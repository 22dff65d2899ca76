//! The OpenAI Responses API wire (<https://platform.openai.com/docs/api-reference/responses>,
//! served stateless as OpenRouter does: <https://openrouter.ai/docs/api-reference/responses-api/overview>)
//! and its translation to and from chat completions. Everything Responses-specific lives here,
//! behind the `responses` cargo feature; the public items are re-exported from
//! [`responses`](crate::responses).

mod request;
mod response;
mod sse;
#[cfg(test)]
mod tests;

pub use request::responses_to_chat;
pub use response::{
    chat_to_response, echo_fields, response_to_chat, usage_to_chat, usage_to_responses,
};
pub use sse::{ResponsesSseBody, ResponsesSseTranslator};
