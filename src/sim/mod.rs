//! A simulated OpenAI-compatible provider: [`SimulatedProvider`].
//!
//! `SimulatedProvider` is a [`Service<http::Request<B>>`](tower_service::Service) that answers
//! `POST …/chat/completions` the way a real upstream does — JSON completions, SSE streams, HTTP
//! errors, rate limits, slow heads, broken streams — without a network. It stands in for the HTTP
//! client under the gateway stack in tests, benchmarks and the demo gateway, and is cheap enough
//! for load tests: a zero-latency request costs one boxed future, one JSON parse that borrows from
//! the body, and the response bytes.
//!
//! # What a request gets
//!
//! * **Routing.** The profile is chosen by the request URI's authority (`host[:port]`, or the
//!   `Host` header for relative URIs), refined by the body's `model`
//!   ([`SimulatedProviderBuilder::host_model`]); otherwise the host's profile
//!   ([`SimulatedProviderBuilder::host`]); otherwise the default profile. With no match the answer
//!   is a **404** with an OpenAI-style error body — a visible configuration mistake rather than a
//!   connection error that a fallback layer would silently route around.
//! * **Paths.** Only `POST` to a path ending in `/chat/completions` (OpenAI wire), `/messages`
//!   (Anthropic Messages wire, see below) or `/embeddings` is served; anything else is a 404
//!   `{"error":{"message","type","param","code"}}`. A body that is not JSON, or lacks `model`
//!   or `messages`, is a 400 of the same shape.
//! * **Embeddings** (`/embeddings`) are answered at once, without latency or scripted outcomes:
//!   one unit vector per input (a string, strings or token arrays) drawn from a generator seeded
//!   by a hash of the input's text, so the same text always gets the same vector; `dimensions`
//!   (default 16, at most 4096), `encoding_format` `float` or `base64` (little-endian `f32`s);
//!   `usage.prompt_tokens` is `ceil(bytes / 4)` per string (the token count for token arrays).
//! * **Non-streamed answers** are `{"id":"chatcmpl-…","object":"chat.completion","created",
//!   "model",<the request's model>,"system_fingerprint":null,"choices":[{"index":0,"message":
//!   {"role":"assistant","content":"…"},"finish_reason":"stop"|"length"}],"usage":{…}}`, delivered
//!   after the whole generation time (time to first token + the remaining tokens at the profile's
//!   throughput).
//! * **Streamed answers** (`"stream": true`) are `text/event-stream`: the head at once; optional
//!   `: keep-alive` comments while waiting for the first token
//!   ([`SimProfile::with_keep_alive`]); at the first-token time a role chunk
//!   (`delta: {"role":"assistant","content":""}`); content chunks (`object:
//!   "chat.completion.chunk"`, `choices[0].delta.content`) paced at `1 / throughput` per token —
//!   several tokens per event when tokens come faster than
//!   [`SimProfile::with_min_event_interval`]; a chunk with `finish_reason`; a usage chunk with
//!   `choices: []`; then `data: [DONE]`.
//!
//! # The Anthropic Messages wire
//!
//! A request to a path ending in `/messages` gets the same seeded outcome, content and token
//! counts as on the OpenAI wire, in the Messages shape:
//!
//! * **Non-streamed**: `{"id":"msg_…","type":"message","role":"assistant","model","content":
//!   [{"type":"text","text":"…"}],"stop_reason":"end_turn"|"max_tokens","stop_sequence":null,
//!   "usage":{"input_tokens","output_tokens"}}`.
//! * **Streamed**: SSE with `event:` lines — `message_start` (`message.usage.input_tokens`),
//!   `ping` and `content_block_start` at the first-token time, `content_block_delta` events with
//!   `text_delta`s paced like the chunks above, then `content_block_stop`, `message_delta`
//!   (`delta.stop_reason`, `usage.output_tokens`) and `message_stop`; no `[DONE]`. A mid-stream
//!   failure is an `event: error` with `{"type":"error","error":{"type":"api_error",…}}`.
//! * **Errors** are `{"type":"error","error":{"type","message"}}`. The top-level `system` (a
//!   string or text blocks) counts towards the prompt tokens.
//!
//! # Tool calls
//!
//! With [`SimProfile::with_tool_calls`], a chat request (`/chat/completions`) that offers
//! function `tools` is answered with a call to one of them instead of text: `message.content`
//! `null`, one `tool_calls` entry (`id` `call_…`, `type` `function`, `function.name`,
//! `function.arguments` as a JSON string) and `finish_reason: "tool_calls"`. The function is the
//! one `tool_choice` names, else the first offered; its arguments hold every `required` property
//! of its JSON-schema `parameters` — strings `"hello"` (or the first `enum` value), numbers `1`,
//! booleans `false`, objects recursively, arrays one item — except a property named `command`
//! or `cmd`, which gets `["echo","hello"]` as an array or `"echo hello"` as a string (what Codex's
//! `exec_command` and `shell` tools run). Streamed, the call comes at the first-token time as providers send it:
//! the id, type and name in the first `tool_calls` delta (with the role), the arguments in
//! pieces, then the finish chunk, the usage chunk and `[DONE]`. `completion_tokens` is
//! `ceil((name + arguments bytes) / 4)`. The answer is text as usual when `tool_choice` is
//! `"none"`, when the last message is a tool result (`role: "tool"`, so an agent's loop ends) or
//! when the outcome is a failure.
//!
//! # Token accounting
//!
//! * `prompt_tokens` = `ceil(b / 4)`, at least 1, where `b` is the byte length of every message's
//!   `content` (a string, or the `text` of its parts).
//! * The content is made of words from a small vocabulary; **one word is one completion token**.
//!   `completion_tokens` = `min(cap, L)` where `L` is drawn from the profile's
//!   [`SimOutputLength`] and `cap` is the smaller of `max_tokens` / `max_completion_tokens` when
//!   given. `finish_reason` is `"length"` when the cap cut the answer, `"stop"` otherwise.
//! * `total_tokens` = prompt + completion.
//!
//! # Determinism
//!
//! Every random choice of a request comes from a generator seeded by (provider seed, profile,
//! the profile's request counter), drawn in a fixed order whatever the outcome or the `stream`
//! flag. So request number *n* of a profile gets the same outcome, latency, length and content in
//! every run with the same seed — and the streamed and non-streamed answers to the same request
//! agree on content (the concatenated deltas) and usage. The generator is a self-contained
//! SplitMix64, portable across platforms and `rand` versions. `created` is a constant
//! ([`SimulatedProviderBuilder::created`]).
//!
//! All waiting is on tokio time ([`tokio::time::sleep`]), so tests on a paused clock
//! (`#[tokio::test(start_paused = true)]`) run instantly and reproducibly. A zero-latency profile
//! ([`SimProfile::instant`]) never touches a timer.
//!
//! # Profiles
//!
//! A [`SimProfile`] sets the time to first token ([`SimLatency`]: fixed or lognormal from p50 and
//! p99), the throughput in tokens per second, the output length, failure rates, a failure script,
//! keep-alives and the `Retry-After` of 429s. [`SimProfile::from_observed`] builds one from an
//! endpoint's catalog statistics (latency p50/p99 in ms, throughput p50 in tokens/s).
//!
//! # Failure modes
//!
//! Each request's [`SimOutcome`] is the next entry of the profile's script if any is left
//! ([`SimProfile::with_script`], [`ProfileHandle::push_script`]), else drawn from the failure rates
//! ([`SimProfile::with_failure`]):
//!
//! | Outcome | Non-streamed | Streamed |
//! |---|---|---|
//! | [`Status(code)`](SimOutcome::Status) | status at once, body `{"error":{"message","type","param":null,"code"}}`; 429 adds `Retry-After` (and `retry-after-ms` if enabled) | same |
//! | [`ConnectError`](SimOutcome::ConnectError) | the future fails at once with [`SimError::is_connect`] | same |
//! | [`Stall`](SimOutcome::Stall) | the head never arrives | same |
//! | [`StallBody`](SimOutcome::StallBody) | 200 head, body never yields | role chunk and the first tokens, then nothing |
//! | [`Timeout`](SimOutcome::Timeout) | head after the timeout delay (+ generation), then normal | head after the timeout delay, then normal |
//! | [`MalformedJson`](SimOutcome::MalformedJson) | 200 with a body that is not JSON | one invalid `data:` line at the failure point, otherwise normal |
//! | [`Truncated`](SimOutcome::Truncated) | 200 with the first half of the JSON | content up to the failure point, then the body ends: no `finish_reason`, usage or `[DONE]` |
//! | [`MidStreamError`](SimOutcome::MidStreamError) | 200 with partial content, `finish_reason: "error"` and `choices[0].error` | content, then `{"error":{"code":502,…},"choices":[{…,"finish_reason":"error"}]}` and the end |
//! | [`BodyError`](SimOutcome::BodyError) | 200 head, the body returns `Err` | content, then an `Err` frame |
//!
//! The failure point is half the completion tokens unless set with
//! [`SimProfile::with_fail_after_tokens`].
//!
//! # Counters and recorded requests
//!
//! [`ProfileHandle`]s (from [`SimulatedProvider::handle`], [`model_handle`](SimulatedProvider::model_handle),
//! [`default_handle`](SimulatedProvider::default_handle) or [`route`](SimulatedProvider::route))
//! expose each profile's [`SimStats`] — requests, in flight, completed, cancelled — and its last
//! request ([`RecordedRequest`]: method, URI, headers, body), so gateway tests can check that
//! provider credentials were applied, the model was rewritten, and that dropping a response future
//! or a streaming body cancels the upstream request.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Full};
//! use tower::ServiceExt;
//! use tower_ai_gateway::sim::{SimProfile, SimulatedProvider};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let sim = SimulatedProvider::builder(42)
//!     .host("http://deepinfra.sim/v1", SimProfile::instant())
//!     .build();
//!
//! let body = r#"{"model":"meta-llama/Llama-3.3-70B-Instruct","max_tokens":5,
//!                "messages":[{"role":"user","content":"Say hello"}]}"#;
//! let req = http::Request::post("http://deepinfra.sim/v1/chat/completions")
//!     .header("authorization", "Bearer sk-deepinfra")
//!     .body(Full::new(Bytes::from(body)))?;
//! let res = sim.clone().oneshot(req).await?;
//! assert_eq!(res.status(), 200);
//!
//! let bytes = res.into_body().collect().await?.to_bytes();
//! let json: serde_json::Value = serde_json::from_slice(&bytes)?;
//! assert_eq!(json["object"], "chat.completion");
//! assert_eq!(json["model"], "meta-llama/Llama-3.3-70B-Instruct");
//! assert_eq!(json["usage"]["completion_tokens"], 5);
//! assert_eq!(json["choices"][0]["finish_reason"], "length");
//!
//! let deepinfra = sim.handle("deepinfra.sim").expect("registered");
//! assert_eq!(deepinfra.stats().requests, 1);
//! assert_eq!(deepinfra.last_request().expect("recorded").bearer(), Some("sk-deepinfra"));
//! # Ok(())
//! # }
//! ```

mod body;
mod embeddings;
mod error;
mod future;
mod profile;
mod request;
mod response;
mod rng;
mod service;
mod stats;
mod tools;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tools_tests;

pub use body::SimBody;
pub use error::SimError;
pub use future::ResponseFuture;
pub use profile::{SimLatency, SimOutcome, SimOutputLength, SimProfile};
pub use request::RecordedRequest;
pub use service::{ProfileHandle, SimulatedProvider, SimulatedProviderBuilder};
pub use stats::SimStats;
