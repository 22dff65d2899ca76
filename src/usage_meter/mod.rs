//! Usage metering and budgets: [`UsageMeterLayer`].
//!
//! `UsageMeter` sits between the routing layers and the provider-fallback layer:
//!
//! ```text
//! ModelRouting → DataPolicy → PriceCap → PercentileDeprioritize → UsageMeter → ProviderFallback → client
//! ```
//!
//! so it sees the request with its [`Route`](crate::route::Route) in the extensions, and a response
//! whose extensions say which endpoint served it ([`ServedBy`](crate::route::ServedBy)). For each
//! request it
//!
//! 1. **reserves** a worst-case cost against the caller's budget when the request carries a
//!    [`CallerKey`] and the layer a [`Ledger`] — or answers **402 `payment_required`** at once;
//! 2. calls the inner service and wraps the response body in a [`ResponseBody`] that reads `usage`
//!    on the fly (JSON or SSE), prices it, adds `usage.cost` / `cost_details`, rewrites `id` to a
//!    generation id (also sent as `X-Generation-Id`), sets `model` to the served catalog model and
//!    adds `provider`;
//! 3. when the body finishes — end of stream, trailers, error, or drop — **exactly once**: settles
//!    the reservation with the metered cost, sends a [`GenerationRecord`] to the sinks and feeds
//!    [`Stats`](crate::Stats) with the endpoint's time to first token and throughput.
//!
//! Requests without a [`Route`](crate::route::Route) are metered too (tokens, timing) but cannot be
//! priced (cost 0) or budgeted; requests without a [`CallerKey`] are metered but not budgeted.
//!
//! # The response body
//!
//! * **Streams** (`Content-Type: text/event-stream`) are never buffered. Each frame is split into
//!   events at blank lines (`\n\n`, `\r\n\r\n`; comment lines such as `: keep-alive` are skipped;
//!   multi-line `data:` is joined) and the complete events go out at once. **Only the unfinished
//!   tail of the last event of a frame is held back** until its end arrives, so that an event can
//!   be edited whole; an upstream that frames one event per frame (all of them in practice) sees
//!   no delay at all. A final event without its blank line is emitted when the body ends.
//! * Per event the work is a few `memchr`/`memmem` scans: the event is parsed as JSON only when
//!   it contains `"usage"` or `"error"` (or is Anthropic's `message_start` / `message_delta`). The
//!   first JSON event is parsed once to learn the exact bytes of the upstream's `"id":"…"` and
//!   `"model":"…"` members, which every later chunk repeats; they are replaced by byte-pattern
//!   search, and `"provider":"<display name>"` is added after `model`.
//! * **Non-streamed bodies** are complete anyway. One whose exact
//!   [`size_hint`](http_body::Body::size_hint) is known and within
//!   [`UsageMeterLayer::json_limit`] (its default and meaning are documented there) — what
//!   `ProviderFallback`, which buffers the answer, sends, and what hyper's client gives for an
//!   answer with a `Content-Length` — is read whole by the response future before the response is
//!   returned (a body of one frame, the usual one, is edited as it came, without a second buffer),
//!   and the [`ResponseBody`] then reports its **exact** new length (hyper sets `Content-Length`
//!   from it). A body whose length is not known (chunked) is accumulated as it is read, up to the
//!   same limit, and edited at its end. Either way the top-level members are located without
//!   building a tree and edited by splicing byte ranges; the upstream's `Content-Length` is
//!   removed from the response head because the length changes. A body that fails while it is
//!   read whole is answered with its head and a body whose one frame is the error; one that sends
//!   more than its length is not read past the frame that went over it.
//! * Error responses (non-2xx) pass through untouched; their reservation is released and no
//!   generation is recorded.
//! * Anthropic-wire streams (`message_start` → `message.usage.input_tokens` plus cache fields,
//!   `message_delta` → `usage.output_tokens`) are read but not edited.
//!
//! The meter finishes at end of stream, on trailers, on a body error, when
//! [`is_end_stream`](http_body::Body::is_end_stream) turns true after a frame, or — if the client
//! drops the body first — from a `Drop` guard (recorded as `cancelled`). Finishing never panics.
//!
//! # Cost
//!
//! Tokens are priced at the endpoint that **served** the request (`ServedBy.endpoint` looked up in
//! the route's catalog; the route's first candidate when no `ServedBy` is present), with pricing
//! overrides chosen by the **reported** prompt tokens and the UTC time the request arrived, in
//! exact [`Usd`](crate::catalog::Usd):
//!
//! ```text
//! prompt     = (prompt − cached − cache_write) × prompt + cached × input_cache_read
//!              + cache_write × input_cache_write
//! completion = (completion − reasoning) × completion + reasoning × internal_reasoning
//! total      = (prompt + completion + request + images × image + web_searches × web_search)
//!              × (1 − discount)
//! ```
//!
//! * Reasoning tokens are **inside** `completion_tokens` (OpenAI's convention); they are billed at
//!   `internal_reasoning` when the endpoint has that price, else at `completion` (the effective
//!   pricing defaults to it). An upstream that reports more reasoning than completion tokens
//!   evidently counts them apart, and they are added.
//! * Cached and cache-written tokens are inside `prompt_tokens`; missing cache prices default to the
//!   prompt price. Images are counted in the request (`"image_url":` members).
//! * **Zero-completion insurance**
//!   (<https://openrouter.ai/docs/features/zero-completion-insurance>): no token charge when the upstream
//!   reports zero completion tokens and no finish reason, or the finish reason is `"error"`.
//!   The request fee, images and web searches are still charged (they are not token charges).
//! * **Missing usage** (no usage reported, stream truncated, cancelled before the usage chunk) is
//!   never recorded as free: the record has `usage_missing: true` and an estimate — the route's
//!   prompt estimate and a quarter of the content bytes seen as completion tokens — which is what
//!   the ledger is settled with. Insurance is applied to missing usage only for an `"error"` finish.
//!
//! `usage.cost` is a JSON number written from the exact decimal; `cost_details` carries
//! `upstream_inference_cost: null`, `upstream_inference_prompt_cost` and
//! `upstream_inference_completions_cost`.
//!
//! # Budgets
//!
//! The estimate reserved is, at the **dearest** candidate of the route: an upper bound on the
//! prompt's tokens ([`RequestView::prompt_bound`](crate::route::RequestView::prompt_bound): every
//! byte of the messages — tool calls and their arguments included — of `tools` and `prompt`
//! counts as a token, each image part 4,096 tokens, plus a chat-template allowance per message and
//! per request) at the prompt price, plus the output cap (`max_completion_tokens` / `max_tokens`, else the endpoint's
//! `max_completion_tokens`, else [`UsageMeterLayer::default_max_tokens`], 4096) at the larger of the
//! completion and reasoning prices, plus the request fee and images, discount applied. The
//! [`Ledger`] refuses when the reservation plus the period's spend plus outstanding reservations
//! would cross a limit, or when the reservation alone exceeds the per-request cap — both are a 402.
//! Reservation is atomic (check-and-add under one lock) and the reservation bounds what the
//! request can cost, so concurrent requests never overshoot a limit — unless a provider reports
//! more prompt tokens than the bound, and then by at most that excess, at the prompt price, for
//! each such request in flight. Settlement replaces the reservation by the metered cost;
//! a failed request (inner error, non-2xx response, or a future dropped before the response)
//! releases it.
//!
//! # Statistics
//!
//! With [`UsageMeterLayer::stats`], each complete streamed generation with reported usage gives
//! [`Stats::record_generation`](crate::Stats::record_generation) a TTFT and a throughput
//! (completion tokens over first content event → the event with the finish reason, which ends the
//! generation without reading the clock for every event). The TTFT is the serving endpoint's own
//! (`ServedBy::latency`, set by ProviderFallback, which excludes failed attempts before it), else
//! request start → first data event. Non-streamed latency is ProviderFallback's to report (at the
//! response head), so it is not recorded here — ProviderFallback's `stream_latency(false)` default
//! matches, and the two layers give one latency sample per request.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Full};
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_ai_gateway::catalog::{Catalog, Usd};
//! use tower_ai_gateway::clock::ManualClock;
//! use tower_ai_gateway::model_routing::ModelRoutingLayer;
//! use tower_ai_gateway::route::{Route, ServedBy};
//! use tower_ai_gateway::usage_meter::{
//!     CallerKey, GenerationStore, InMemoryLedger, Period, UsageMeterLayer,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let catalog = Catalog::from_json(br#"{
//!   "providers": [{"slug": "acme", "name": "Acme", "base_url": "https://api.acme.test/v1"}],
//!   "models": [{"id": "acme/chat-1", "name": "Acme Chat 1"}],
//!   "endpoints": {"acme/chat-1": [{"tag": "acme", "provider_model_id": "chat-1",
//!                                  "pricing": {"prompt": "0.000001", "completion": "0.000002"}}]}
//! }"#)?;
//!
//! // Stands in for ProviderFallback + the HTTP client.
//! async fn upstream(req: http::Request<Full<Bytes>>) -> Result<http::Response<Full<Bytes>>, Infallible> {
//!     let route = req.extensions().get::<Route>().expect("routed").clone();
//!     let c = route.candidates()[0];
//!     let mut res = http::Response::new(Full::new(Bytes::from_static(
//!         br#"{"id":"up-1","model":"chat-1","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1000,"completion_tokens":500,"total_tokens":1500}}"#,
//!     )));
//!     res.extensions_mut().insert(ServedBy::new(route.endpoint(&c).key().clone(), "Acme"));
//!     Ok(res)
//! }
//!
//! let store = GenerationStore::new(1000);
//! let clock = ManualClock::new(1_795_315_920_000); // 2026-11-22T02:52:00Z
//! let ledger = InMemoryLedger::new(clock.clone()).limit("team-a", Period::Day, Usd::parse("5")?);
//! let svc = ServiceBuilder::new()
//!     .layer(ModelRoutingLayer::new(catalog))
//!     .layer(UsageMeterLayer::new().clock(clock).ledger(ledger.clone()).sink(store.clone()))
//!     .service_fn(upstream);
//!
//! let mut req = http::Request::post("/v1/chat/completions").body(Full::new(Bytes::from_static(
//!     br#"{"model":"acme/chat-1","max_tokens":600,"messages":[{"role":"user","content":"hello"}]}"#,
//! )))?;
//! req.extensions_mut().insert(CallerKey::new("team-a"));
//! let res = svc.oneshot(req).await?;
//! let id = res.headers()["x-generation-id"].to_str()?.to_owned();
//! let json: serde_json::Value = serde_json::from_slice(&res.into_body().collect().await?.to_bytes())?;
//!
//! // 1000 × $0.000001 + 500 × $0.000002 = $0.002
//! assert_eq!(json["usage"]["cost"].to_string(), "0.002");
//! assert_eq!(json["id"], id.as_str());
//! assert_eq!(json["model"], "acme/chat-1");
//! assert_eq!(json["provider"], "Acme");
//! assert_eq!(store.get(&id).expect("recorded").cost, Usd::parse("0.002")?);
//! assert_eq!(ledger.usage_now(&CallerKey::new("team-a")).usage_daily, Usd::parse("0.002")?);
//! # Ok(())
//! # }
//! ```

//! # Module map
//!
//! `layer` (the builder, and `UsageMeter::new` / `UsageMeter::layer`) → `service` (the request
//! side: estimate, reservation) → `future` (reserve, call, wrap the response) → `body` (the
//! response body) → `meter` (one response's reader and its exactly-once finish) → `edit` (what is
//! changed in JSON bodies and SSE events) → `settle` (request context, observations, settlement,
//! record, statistics) → `config` → `record` → `ledger`, and `json` → `cost`, `scan` (byte
//! scanners), `sse` (event splitter); `metadata` (`openrouter_metadata`) and `content` (prompt and
//! completion text on the span, opt-in) are read by `service`, `future`, `edit` and `settle`
//! and import nothing of the meter. A file imports only files to its right: no cycles.

mod body;
mod config;
mod content;
mod cost;
mod edit;
mod future;
mod json;
mod layer;
mod ledger;
mod metadata;
mod meter;
mod reading;
mod record;
mod scan;
mod service;
mod settle;
mod sse;
#[cfg(test)]
mod sse_fast_tests;

pub use body::ResponseBody;
pub use cost::{price, Cost, TokenUsage};
pub use future::ResponseFuture;
pub use layer::UsageMeterLayer;
pub use ledger::{
    CallerKey, InMemoryLedger, KeyLimits, KeyUsage, Ledger, LedgerFuture, Period, Refusal,
    Reservation,
};
pub use metadata::{metadata_requested, LEGACY_METADATA_HEADER, METADATA_HEADER};
pub(crate) use reading::reader as answer_reader;
pub use record::{
    App, ChannelSink, GenerationId, GenerationRecord, GenerationSink, GenerationStore, TracingSink,
};
pub(crate) use service::generation_id;
pub use service::UsageMeter;
