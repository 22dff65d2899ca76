//! `ProviderFallback`: send a routed request to its candidate endpoints, in order, until one answers.
//!
//! The layer sits at the bottom of the stack, right above the HTTP client. It reads the
//! [`Route`](crate::route::Route) that [`ModelRouting`](crate::model_routing) put in the request
//! extensions, reads the request body it is given (once, up to
//! [`max_buffer`](ProviderFallbackLayer::max_buffer); over it is a 413), and for each candidate in
//! order builds the upstream request from that body, calls the inner client, classifies the
//! outcome, records it in [`Stats`](crate::stats), and either answers or moves on. A request
//! without a `Route` is answered with 400 `invalid_request` "no route: put ModelRouting in front
//! of ProviderFallback".
//!
//! The body is normally the route's own bytes ([`Route::body`](crate::route::Route::body)), whose
//! parsed spans are reused. A layer between ModelRouting and ProviderFallback may edit it: the
//! edited bytes are parsed again with [`RequestView::parse`](crate::route::RequestView::parse)
//! (a 400 if they no longer parse) and sent instead. Routing is not redone: the candidates are the
//! route's.
//!
//! Every provider failure becomes an OpenRouter-shaped response; the service error
//! ([`BoxError`](crate::BoxError)) is only used when the inner service's `poll_ready` fails.
//!
//! # The upstream request
//!
//! * `POST {provider.base_url}{wire_format.path()}` (a trailing `/` on the base URL is ignored). A
//!   provider without a (valid) base URL is skipped and recorded as `not_callable`.
//! * **The wire** is chosen once per attempt from the provider's
//!   [`WireFormat`](crate::catalog::WireFormat) and the caller's wire (the crate's internal `wire`
//!   module). For **Anthropic-wire providers** ([`WireFormat::Anthropic`](crate::catalog::WireFormat))
//!   the rewritten chat body below is translated to a Messages request and sent to
//!   `{base_url}/messages` with `anthropic-version: 2023-06-01` (unless the provider's extra
//!   headers set it) and the configured credentials. The answer is translated back, so callers and
//!   the layers above always see chat completions: a JSON message as a chat completion (a `2xx`
//!   that is not a Messages `message` is an invalid response), a stream event by event (ending
//!   with a usage chunk and `data: [DONE]`), before the stream checks below. Error bodies are read
//!   as they are. A caller that spoke Messages itself (through
//!   [`MessagesLayer`](super::compat::MessagesLayer)) gets its own bytes passed through instead;
//!   see [compat's Passthrough](super::compat#passthrough).
//! * **Body**: one splice pass over the caller's bytes, never a
//!   re-serialisation: `model` becomes the endpoint's
//!   [`upstream_model`](crate::catalog::Endpoint::upstream_model) (inserted in place of `models`
//!   when the request had only `models`); the gateway-only members (`provider`, `models`, `route`,
//!   `session_id`, `usage`, `transforms`, `plugins`, `debug`, `trace`, `preset`) are removed with
//!   exactly the commas that keep the object valid; so are the parameters the endpoint does not
//!   list in its `supported_parameters` and unknown members, when it lists any
//!   ([`RequestView::unsupported_spans`](crate::route::RequestView::unsupported_spans)); with
//!   middle-out compression on for the endpoint, messages are cut from the middle of `messages`
//!   until the prompt fits its context
//!   ([`RequestView::compresses_for`](crate::route::RequestView::compresses_for)); the members of `provider.options[<provider slug>]` are merged into
//!   the top-level object — **the options win** over body members of the same name (they are the
//!   caller's explicit per-provider override), except `model` and `stream`, which are the gateway's
//!   to decide and are ignored in options. Other providers never see another provider's options.
//! * **Credentials** are applied last, in the provider's [`AuthStyle`](crate::catalog::AuthStyle)
//!   (`Authorization: Bearer <key>` or the named header), marked sensitive.
//!
//! ## Headers
//!
//! Caller headers are forwarded by **allow-list** only: by default `user-agent`, `accept`,
//! `x-request-id`, `traceparent`, `tracestate` ([`forward_header`](ProviderFallbackLayer::forward_header)
//! adds more, [`forward_no_headers`](ProviderFallbackLayer::forward_no_headers) clears the list).
//! Whatever the configuration, the caller's `authorization`, `proxy-authorization`, `x-api-key`,
//! `api-key`, cookies and hop-by-hop headers (`connection`, `keep-alive`, `proxy-*`, `te`,
//! `trailer`, `transfer-encoding`, `upgrade`, `host`, `content-length`) never reach a provider.
//! Then come the provider's extra headers, `content-type: application/json`, and the credentials.
//! Response headers lose hop-by-hop headers, `content-length`, `set-cookie`, and any header whose
//! value contains the provider's key.
//!
//! # When to move on: [`FallbackPolicy`]
//!
//! After each failed attempt the policy decides between [`Decision::TryNext`] and
//! [`Decision::Return`]. [`DefaultPolicy`] moves on after connect / I/O errors, timeouts, `408`,
//! `429`, any `5xx` (`500`, `502`, `503`, `504`, `524`, `529`…), `401` / `402` / `403` (the provider
//! rejected *our* key or account: recorded, never echoed), and a non-streamed `2xx` whose body is
//! empty or not a JSON object; it returns the caller's own errors (`400`, `404`, `413`, `422`, …) —
//! except that moving on to a fallback **model** (a candidate whose `model` differs) happens after
//! any error, as OpenRouter does (<https://openrouter.ai/docs/features/model-routing>). A non-streamed `2xx` whose body is an
//! error object (`{"error":{…}}` without `choices`, which some providers send) is judged as the
//! status in its `error.code` when that is a 4xx/5xx number, else as a `502`.
//!
//! Judging a non-streamed `2xx` needs its body, so **non-streamed answers are buffered** once (up
//! to [`max_buffer`](ProviderFallbackLayer::max_buffer), [`DEFAULT_MAX_BUFFER`] = 32 MiB by
//! default; over it is an invalid response) and returned as **one data frame whose
//! [`size_hint`](http_body::Body::size_hint) is exact**, so a server can set `Content-Length`
//! without collecting it again. Streams are never buffered beyond their first content.
//!
//! # Streams
//!
//! For `"stream": true` the response is handed back only once the first **content-bearing** event
//! has arrived: a `data:` event whose `choices[].delta` has non-empty `content`, `reasoning`,
//! `refusal` or `tool_calls`, or whose choice has a `finish_reason`, or which carries `usage`.
//! Comment lines (`: keep-alive`), the role-only chunk (`delta: {"role":"assistant","content":""}`)
//! and other empty events do not count. Frames seen before that are held and replayed in order,
//! then the rest streams through frame by frame. The scanner accepts events split at any byte and
//! LF or CRLF line ends, keeping only the unfinished line.
//!
//! Before content, a failing status, an `Err` frame, the end of the body, `data: [DONE]`, an
//! in-band `error` event, an invalid `data:` payload, or the first-token deadline are failures of
//! the attempt, and the next candidate is tried. **After content there is no failover**: an `Err`
//! frame, an end without `data: [DONE]`, a silence longer than the stream idle timeout, an
//! upstream in-band `error` event or a `data:` payload that is not JSON ends the stream with the
//! gateway's in-band error chunk (<https://openrouter.ai/docs/api-reference/errors>, "Error
//! during streaming")
//!
//! ```text
//! data: {"id":…,"object":"chat.completion.chunk","provider":…,"error":{"code":502,"message":…,
//!        "metadata":{"error_type":"provider_unavailable","provider_name":…}},"choices":[{"index":0,
//!        "delta":{"content":""},"finish_reason":"error"}]}
//! ```
//!
//! and then the body ends, **without** `data: [DONE]` (as OpenRouter ends the stream after the
//! error chunk) — never a clean end that could pass for success. The provider's own error event
//! and an invalid event are **not** passed on: their text may quote a credential, and an SDK
//! cannot decode a garbled event. Only the provider's error `code`, when it is a number or a
//! lowercase word, is kept (`metadata.provider_code`). To make that possible, the stream is
//! forwarded in whole events: a frame that ends on an event boundary (the usual case) goes on as
//! it is, and only the tail of an event split across frames waits for the rest of it (an event
//! over 4 MiB counts as invalid).
//!
//! A streamed request to an OpenAI-wire provider always asks for usage
//! (`stream_options.include_usage: true`, spliced in): such providers report a stream's usage only
//! when asked, and OpenRouter always reports it, so the stream is metered exactly.
//!
//! # Deadlines, budget, cooldowns
//!
//! * [`attempt_timeout`](ProviderFallbackLayer::attempt_timeout) (120 s): to the response head for
//!   streams, to the complete body otherwise; [`first_token_timeout`](ProviderFallbackLayer::first_token_timeout)
//!   (60 s, and never more than the attempt timeout): streams, from sending to the first content
//!   event; [`stream_idle_timeout`](ProviderFallbackLayer::stream_idle_timeout) (60 s): streams, the
//!   longest silence after the first content (then the stream ends with the in-band error chunk);
//!   [`overall_timeout`](ProviderFallbackLayer::overall_timeout) (300 s): the whole request, so the
//!   last attempt gets what remains. All on tokio time.
//! * A [`RetryBudget`] shared by all requests (deposit per request, withdraw per retry, a minimum
//!   per second, a sliding window) keeps retry storms off providers. **The rule:** a request's
//!   first attempt at each distinct provider is free — OpenRouter's contract is that fallbacks are
//!   tried, so a request always reaches every provider it may use once; only a *repeated* attempt
//!   at a provider it already tried (another of that provider's endpoints, e.g. for a fallback
//!   model) draws on the budget. In an outage it is the cooldowns below that keep load off the
//!   failing providers. When the budget refuses, no further candidate is called and the answer
//!   says so: 503 with `error_type` `retry_budget_exhausted`, `metadata.providers_tried` and
//!   `metadata.providers_not_tried`. Skipped candidates cost nothing.
//! * Endpoints in cooldown ([`HealthSource::in_cooldown`](crate::health::HealthSource::in_cooldown),
//!   read from the stats or [`health`](ProviderFallbackLayer::health)) are tried after all the
//!   others ([`CooldownMode::Defer`], default), never ([`CooldownMode::FailFast`]: 503 if nothing
//!   else is left), or as if healthy ([`CooldownMode::Ignore`]).
//!
//! # What is recorded
//!
//! Each call's outcome goes to [`Stats::record_attempt`](crate::stats::Stats::record_attempt),
//! following the stats docs: non-streamed attempts with their latency (time to the response head…
//! measured here to the complete body, which is when we know it succeeded); a successful stream is
//! recorded once, when it ends (success at `[DONE]` or when the caller drops it, failure on an
//! error or truncation), **without** a latency sample unless
//! [`stream_latency`](ProviderFallbackLayer::stream_latency) is on, because the usage meter reports
//! the time to first token. Skipped candidates are not recorded in the stats.
//!
//! A successful response carries [`ServedBy`](crate::route::ServedBy) in its extensions (endpoint,
//! provider name and slug, upstream model, latency — time to the first content event for streams —
//! and every [`AttemptRecord`]); ModelRouting reads it for sticky
//! sessions, the usage meter for pricing. A failed one carries the
//! [`GatewayError`](crate::GatewayError) and [`Attempts`].
//!
//! # When everything fails
//!
//! | Situation | Answer |
//! |---|---|
//! | the policy returned a caller error (`4xx`) | that status, typed (`invalid_request`, `not_found`, `payload_too_large`, `unprocessable`…), with the provider's `error.message` only if it is a short string that contains no part of the provider's key, else "Provider returned error" |
//! | every attempt was a `429` | 429 `rate_limit_exceeded`, `availability.code = capacity_exhausted`, `retry_after` = the smallest hint (when every attempt sent one) and a `Retry-After` header |
//! | every attempt timed out | 504 `timeout` |
//! | the overall deadline passed | 408 `timeout` |
//! | every attempt failed transiently (`408`, `429`, `5xx`, timeouts, connect errors) | 503 `provider_overloaded`, `availability.code = temporarily_unavailable` |
//! | otherwise (invalid responses, rejected keys, uncallable providers…) | 502 `provider_unavailable` |
//! | no candidates at all | ModelRouting's 404 ([`Route::unavailable`](crate::route::Route::unavailable)) |
//!
//! with `metadata.provider_name` (the last provider tried) and `metadata.previous_errors:
//! [{provider, endpoint, code, status}]` — never raw upstream bodies.
//!
//! # Secrets and cancellation
//!
//! Provider keys never appear in a response (status, headers, body) or in the `tracing` events this
//! layer emits (endpoint, provider slug, attempt number, kind, status, timings, and the inner
//! client's error message when it fails). Dropping the response
//! future or the body drops the inner future or body, which cancels the upstream request; nothing
//! is spawned.
//!
//! # Backpressure
//!
//! `poll_ready` forwards to the inner service; `call` moves the ready service into the future (a
//! clone stays behind) and uses it for the first attempt; later attempts `poll_ready` it again.
//! A stream's upstream body is boxed (one allocation per streamed attempt) so that, once primed,
//! it can move from the future into the response body; buffered bodies are read in place.
//!
//! # Inside
//!
//! [`ResponseFuture`] is a state machine in the shape of tower's `retry::future`: receiving the
//! body → choosing the next candidate → waiting for readiness (later attempts) → calling →
//! buffering an answer or priming a stream → answering, or back to choosing; each state owns its
//! data (`future.rs`). What the attempts share is in `run.rs`, the body readers in `read.rs`,
//! judging an answer in `classify.rs`, the "everything failed" answer in `exhausted.rs`, the
//! upstream request in `upstream.rs` / `rewrite.rs`. The wire of each attempt (chat or Anthropic
//! Messages) is an adapter chosen once per attempt in the crate's `wire` module.
//!
//! # Cost
//!
//! `benches/stack.rs` (release, loaded 2-core machine, 1 KB non-streamed request, zero-delay inner
//! service): bare service ~1.1 µs, with ModelRouting ~7 µs, with ModelRouting + ProviderFallback
//! ~10.5–13.5 µs — the fallback layer adds ~3.5–6 µs per request (body splice, request and header
//! building, response JSON validation, `ServedBy`).
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_ai_gateway::catalog::{Catalog, Credentials, Endpoint, Model, Provider};
//! use tower_ai_gateway::fallback::ProviderFallbackLayer;
//! use tower_ai_gateway::model_routing::ModelRoutingLayer;
//! use tower_ai_gateway::route::ServedBy;
//!
//! // The HTTP client: here, a provider that always answers.
//! async fn client(req: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
//!     assert_eq!(req.uri(), "https://api.acme.test/v1/chat/completions");
//!     assert_eq!(req.headers()["authorization"], "Bearer sk-acme");
//!     let body = r#"{"id":"1","object":"chat.completion","choices":[]}"#;
//!     Ok(Response::new(Full::new(Bytes::from(body))))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let catalog = Catalog::builder()
//!     .provider(Provider::new("acme", "Acme")
//!         .base_url("https://api.acme.test/v1")
//!         .credentials(Credentials::key("sk-acme")))
//!     .model(Model::new("acme/chat", "Acme Chat"))
//!     .endpoint(Endpoint::new("acme/chat", "acme"))
//!     .build()?;
//! let svc = ServiceBuilder::new()
//!     .layer(ModelRoutingLayer::new(catalog))
//!     .layer(ProviderFallbackLayer::new())
//!     .service_fn(client);
//!
//! let body = r#"{"model":"acme/chat","messages":[{"role":"user","content":"hi"}]}"#;
//! let res = svc.oneshot(Request::post("/v1/chat/completions").body(Full::new(Bytes::from(body)))?).await?;
//! assert_eq!(res.status(), 200);
//! assert_eq!(&*res.extensions().get::<ServedBy>().unwrap().provider_name, "Acme");
//! # Ok(())
//! # }
//! ```

mod body;
mod budget;
mod classify;
mod exhausted;
mod future;
mod layer;
mod policy;
mod read;
mod rewrite;
mod run;
mod service;
mod sse;
mod upstream;

pub use body::ResponseBody;
pub use budget::RetryBudget;
pub use future::ResponseFuture;
pub use layer::{
    CooldownMode, ProviderFallbackLayer, DEFAULT_ATTEMPT_TIMEOUT, DEFAULT_FIRST_TOKEN_TIMEOUT,
    DEFAULT_MAX_BUFFER, DEFAULT_OVERALL_TIMEOUT, DEFAULT_STREAM_IDLE_TIMEOUT,
};
pub use policy::{AttemptError, Decision, DefaultPolicy, Failure, FallbackPolicy};
pub use service::ProviderFallback;

pub use crate::route::{AttemptRecord, Attempts};
