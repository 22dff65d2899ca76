//! OpenAI Responses API compatibility: the `openai` SDKs' `responses.create` and Codex CLI in
//! front of any chat-completions service (feature `responses`, on by default).
//!
//! [`ResponsesLayer`] sits in front of a chat-completions service (typically the whole gateway
//! stack, so every routing layer — `provider`, `models`, budgets, metering — applies). It buffers
//! the request (over the limit: 413), translates it with [`responses_to_chat`], calls the inner
//! service with the chat JSON, and translates the answer: a completion with
//! [`chat_to_response`], an SSE stream incrementally with [`ResponsesSseTranslator`] (frame by
//! frame, never buffering the stream). Errors keep OpenRouter's envelope
//! (`{"error":{"code","message","metadata"}}`), which the `openai` SDKs read as they read
//! OpenAI's. The API is served stateless, as OpenRouter serves it
//! (<https://openrouter.ai/docs/api-reference/responses-api/overview>): `previous_response_id`,
//! `conversation` and `item_reference` are a 400.
//!
//! # Request mapping
//!
//! | Responses | chat completions |
//! | --- | --- |
//! | `instructions` | a first `system` message |
//! | `input` string | one `user` message |
//! | `message` items (`user` / `system` / `developer` / `assistant`; parts `input_text`, `output_text`, `refusal`, `input_image` URL, `input_file` data, `input_audio`) | messages with text or content parts (an assistant's text joined) |
//! | `function_call` items | `tool_calls` of an assistant message (consecutive calls share one) |
//! | `function_call_output` items | `role: "tool"` messages with `tool_call_id` |
//! | `reasoning` items (summary or content texts) | `reasoning` of the assistant message that follows |
//! | `tools` of type `function` | `tools[].function` (hosted tool types are dropped) |
//! | `tool_choice` `auto` / `none` / `required` / `{type: function, name}` | the same / `{type: function, function: {name}}` |
//! | `reasoning.effort` (`max_tokens`, `exclude`, `enabled`) | `reasoning` (`summary` dropped) |
//! | `text.format` `json_schema` / `json_object` / `text`; `text.verbosity` | `response_format`; `verbosity` |
//! | `max_output_tokens` | `max_tokens` |
//! | `stream: true` | `stream: true`, `stream_options.include_usage: true` |
//! | `model`, `models`, `provider`, `temperature`, `top_p`, `user`, `parallel_tool_calls`, … | the same |
//! | `previous_response_id`, `conversation`, `item_reference` | 400 `invalid_request` |
//!
//! # Response mapping
//!
//! The response `id` is the gateway's generation id (`gen-…`, as in `X-Generation-Id`); the
//! output is a `reasoning` item (when the model reasoned), a `message` item with one
//! `output_text` part, then a `function_call` item per tool call (`call_id` = the tool call's
//! id). `finish_reason` `length` / `content_filter` make the status `incomplete` (with
//! `incomplete_details.reason` `max_output_tokens` / `content_filter`), else `completed`.
//! `usage` is `input_tokens` (`input_tokens_details.cached_tokens`), `output_tokens`
//! (`output_tokens_details.reasoning_tokens`), `total_tokens` and the gateway's `cost`. The
//! request's `instructions`, `tools`, `tool_choice`, `text`, `reasoning`, … are echoed;
//! `store` is `false`. Streams follow OpenAI's event sequence (see [`ResponsesSseTranslator`]).
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Full};
//! use serde_json::{json, Value};
//! use tower::{service_fn, Layer, ServiceExt};
//! use tower_ai_gateway::responses::ResponsesLayer;
//!
//! # tokio_test_block_on(async {
//! // A chat-completions "provider" that checks what it is sent and calls a tool.
//! let chat = service_fn(|req: http::Request<Full<Bytes>>| async move {
//!     let body = req.into_body().collect().await?.to_bytes();
//!     let v: Value = serde_json::from_slice(&body)?;
//!     assert_eq!(v["messages"][0], json!({"role": "system", "content": "Be brief."}));
//!     assert_eq!(v["tools"][0]["function"]["name"], "get_weather");
//!     assert_eq!(v["max_tokens"], 100);
//!     let answer = json!({"id": "gen-1", "model": "acme/chat-1", "created": 1,
//!         "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant",
//!             "content": null, "tool_calls": [{"id": "call_1", "type": "function",
//!             "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]}}],
//!         "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11, "cost": 0.00002}});
//!     Ok::<_, tower_ai_gateway::BoxError>(http::Response::new(Full::new(Bytes::from(answer.to_string()))))
//! });
//! let responses = ResponsesLayer::new().layer(chat);
//! let req = http::Request::post("/v1/responses")
//!     .body(Full::new(Bytes::from(json!({
//!         "model": "acme/chat-1", "instructions": "Be brief.", "input": "Weather in Paris?",
//!         "max_output_tokens": 100,
//!         "tools": [{"type": "function", "name": "get_weather",
//!                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}],
//!     }).to_string())))
//!     .unwrap();
//! let res = responses.oneshot(req).await.unwrap();
//! let v: Value = serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
//! assert_eq!(v["object"], "response");
//! assert_eq!(v["status"], "completed");
//! assert_eq!(v["output"][0]["type"], "function_call");
//! assert_eq!(v["output"][0]["call_id"], "call_1");
//! assert_eq!(v["usage"]["input_tokens"], 9);
//! assert_eq!(v["usage"]["cost"], 0.00002);
//! # });
//! # fn tokio_test_block_on(f: impl std::future::Future<Output = ()>) {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```

mod layer;

pub use crate::wire::responses::{
    chat_to_response, echo_fields, response_to_chat, responses_to_chat, usage_to_chat,
    usage_to_responses, ResponsesSseBody, ResponsesSseTranslator,
};
pub use layer::{
    Responses, ResponsesBody, ResponsesFuture, ResponsesLayer, DEFAULT_RESPONSES_BODY_LIMIT,
};
