//! Anthropic Messages compatibility: Claude Code and the `anthropic` SDKs in front of any
//! OpenAI-wire (chat-completions) provider.
//!
//! [`MessagesLayer`] sits in front of a chat-completions service (typically the whole gateway
//! stack). It buffers the Messages request (up to a limit; larger bodies get 413), translates it
//! with [`messages_to_chat`] (the tool schemas, most of a Claude Code request, are copied as raw
//! JSON rather than parsed and re-serialised, with the same result), calls the inner service with the new JSON body and
//! `content-type: application/json` (the same body type as the request's, built with
//! `From<Bytes>`), and translates the answer back: a JSON completion with
//! [`chat_to_message`], an SSE stream incrementally with [`SseTranslator`] (frame by frame, never
//! buffering the stream), an OpenRouter error with [`error_to_anthropic`]. It depends on `http`
//! and `tower` only, not on a web framework. [`count_tokens`] is the estimate for
//! `/v1/messages/count_tokens`.
//!
//! # Request mapping
//!
//! | Messages | chat completions |
//! | --- | --- |
//! | `system` (string or text blocks, joined by blank lines) | a first `system` message |
//! | `role: "system"` messages inside `messages` (Claude Code sends them) | `system` messages in place |
//! | `text` blocks | text (a string when every part is text, else content parts) |
//! | `image` blocks (`base64` / `url`) | `image_url` parts (data URL / URL) |
//! | assistant `tool_use` | `tool_calls` with the `input` as a JSON-string `arguments` |
//! | `tool_result` (string or text/image blocks) | a `role: "tool"` message with `tool_call_id`; `is_error: true` prefixes the text with `[tool error] `; images go in a user message right after |
//! | assistant `thinking` | the assistant message's `reasoning` (the signature is dropped) |
//! | `redacted_thinking`, `document` and other blocks | dropped |
//! | `cache_control` anywhere | dropped: this path serves OpenAI-wire providers, which cache on their own (an Anthropic-wire provider gets the caller's bytes, breakpoints included: see [Passthrough](#passthrough)) |
//! | `tools` (`input_schema`) | `tools[].function.parameters`; server tools without a schema are dropped |
//! | `tool_choice` `auto` / `any` / `tool` / `none` | `"auto"` / `"required"` / `{"type":"function",…}` / `"none"`; `disable_parallel_tool_use` → `parallel_tool_calls: false` |
//! | `stop_sequences`, `temperature`, `top_p`, `top_k`, `max_tokens` | `stop`, the same names |
//! | `metadata.user_id` | `user` |
//! | `thinking` `enabled` (`budget_tokens`) / `adaptive` / `disabled` | `reasoning: {max_tokens}` / `reasoning: {effort}` (from `output_config.effort`, default `"medium"`) / none |
//! | `stream: true` | `stream: true` and `stream_options.include_usage: true` |
//! | `provider`, `models`, `session_id`, `user`, `plugins`, `transforms` | passed through |
//! | `fallbacks` (≤ 3 `{model}` entries) | `models`; with `models` too, or more than 3 → 400 |
//! | anything else (`context_management`, `output_config`, `service_tier`, …), beta headers | ignored |
//!
//! # Response mapping
//!
//! `id` (the gateway's `gen-…` id), `model` and `provider` are kept; `reasoning` becomes a
//! `thinking` block whose `signature` is a stable, non-secret FNV-1a hash
//! of the text (clients echo it back and it is ignored), then a `text` block, then `tool_use`
//! blocks whose `input` is the parsed `arguments` (invalid JSON becomes
//! `{"_raw_arguments": "<the string>"}`). `finish_reason` `stop` / `length` / `tool_calls` /
//! `content_filter` becomes `stop_reason` `end_turn` / `max_tokens` / `tool_use` / `refusal`
//! (missing → `end_turn`); `stop_sequence` is always `null`. Usage becomes `input_tokens` (prompt
//! tokens less cache reads and writes), `output_tokens`, `cache_read_input_tokens`,
//! `cache_creation_input_tokens`, plus `cost` when the gateway priced it.
//!
//! Streams become `message_start` (with `input_tokens` when the first chunk carries usage, else 0),
//! `ping`, content blocks (`text_delta`, `input_json_delta`, `thinking_delta` then a
//! `signature_delta`), `message_delta` (`stop_reason` and usage, including `input_tokens`) and
//! `message_stop`. A stream that ends without a `finish_reason` is closed with `end_turn`; an
//! in-band error chunk (or a failing upstream body) becomes `event: error` with
//! `{"type":"error","error":{"type":"api_error",…}}`.
//!
//! Errors keep their HTTP status and become `{"type":"error","error":{"type","message",
//! "error_type"},"request_id":…}` with [`anthropic_error_type`]'s mapping; `request_id` is the
//! generation id (`X-Generation-Id`) when the error happened after routing, else `null`. The one
//! exception is an unknown model: OpenRouter's 400 (`model_not_found`) becomes Anthropic's 404
//! `not_found_error` ([`anthropic_status`]), so the SDKs raise `NotFoundError` and Claude Code
//! shows its "issue with the selected model" hint.
//!
//! # The reverse direction
//!
//! For providers whose own wire format is Anthropic Messages, [`chat_to_messages`] translates a
//! chat-completions request into a Messages request (keeping OpenRouter-style `cache_control`
//! breakpoints on content parts, the system prompt becoming text blocks when one has one) and [`message_to_chat`] a Messages answer back
//! into a chat completion; [`ChatSseTranslator`] turns a
//! Messages event stream into chat-completion chunks incrementally. The
//! [`SimulatedProvider`](crate::sim::SimulatedProvider) answers the Messages wire on paths ending
//! in `/messages`.
//!
//! [`ProviderFallback`](crate::fallback) uses them to speak to Anthropic-wire providers, so a
//! chat-completions caller can be served by one.
//!
//! The translations and the wire marks are defined in the crate's internal `wire` module (which
//! also holds the per-attempt wire adapter of ProviderFallback); this module is the Messages front
//! end and re-exports them.
//!
//! # Passthrough
//!
//! When the caller speaks Messages and the provider does too, nothing is translated.
//! [`MessagesLayer`] puts the caller's bytes in the request extensions as [`OriginalMessages`];
//! for an Anthropic-wire candidate, ProviderFallback sends them with only `model` (the provider's
//! model id), a clamped `max_tokens` and the [`GATEWAY_ONLY_MEMBERS`] changed, forwards the
//! caller's `anthropic-beta` header, and marks the answer [`MessagesWire`], which
//! [`MessagesLayer`] then forwards as it is. Prompt-cache prefixes, thinking signatures and fields
//! this module does not know survive. Candidates on the OpenAI wire in the same route still get
//! the translated body.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Full};
//! use serde_json::{json, Value};
//! use tower::{service_fn, Layer, ServiceExt};
//! use tower_ai_gateway::compat::MessagesLayer;
//!
//! # tokio_test_block_on(async {
//! // A chat-completions "provider" that checks what it is sent and answers with a completion.
//! let chat = service_fn(|req: http::Request<Full<Bytes>>| async move {
//!     let body = req.into_body().collect().await?.to_bytes();
//!     let v: Value = serde_json::from_slice(&body)?;
//!     assert_eq!(v["messages"][0], json!({"role": "system", "content": "Be brief."}));
//!     assert_eq!(v["reasoning"], json!({"max_tokens": 1024}));
//!     let answer = json!({"id": "gen-1", "model": "acme/chat-1",
//!         "choices": [{"index": 0, "finish_reason": "stop",
//!                      "message": {"role": "assistant", "content": "Hi!"}}],
//!         "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}});
//!     Ok::<_, tower_ai_gateway::BoxError>(http::Response::new(Full::new(Bytes::from(answer.to_string()))))
//! });
//! let messages = MessagesLayer::new().layer(chat);
//! let req = http::Request::post("/v1/messages?beta=true")
//!     .body(Full::new(Bytes::from(json!({
//!         "model": "acme/chat-1", "max_tokens": 4096, "system": "Be brief.",
//!         "thinking": {"type": "enabled", "budget_tokens": 1024},
//!         "messages": [{"role": "user", "content": [{"type": "text", "text": "hello"}]}],
//!     }).to_string())))
//!     .unwrap();
//! let res = messages.oneshot(req).await.unwrap();
//! let v: Value = serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
//! assert_eq!(v["type"], "message");
//! assert_eq!(v["content"], json!([{"type": "text", "text": "Hi!"}]));
//! assert_eq!(v["stop_reason"], "end_turn");
//! assert_eq!(v["usage"]["input_tokens"], 9);
//! # });
//! # fn tokio_test_block_on(f: impl std::future::Future<Output = ()>) {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```

mod layer;

pub use crate::wire::messages::{
    anthropic_error_type, anthropic_status, chat_to_message, chat_to_messages, count_tokens,
    count_tokens_json, error_to_anthropic, message_to_chat, messages_to_chat, ChatSseTranslator,
    MessagesSseBody, MessagesWire, OriginalMessages, SseTranslator, DEFAULT_MAX_TOKENS,
    GATEWAY_ONLY_MEMBERS, MAX_FALLBACKS,
};
pub use layer::{
    anthropic_error_response, Messages, MessagesBody, MessagesFuture, MessagesLayer,
    DEFAULT_MESSAGES_BODY_LIMIT,
};
