//! Rate limits per caller key, per class, for `:free` models and per model or endpoint:
//! [`RateLimitLayer`].
//!
//! OpenRouter limits requests per key and, for the `:free` variant, to 20 requests per minute and
//! 50 (or 1,000) per day (<https://openrouter.ai/docs/api/reference/limits>). `RateLimit` does the
//! same in front of your own providers, and lets an operator add limits of their own:
//!
//! | Limit | Counted per | Configured by |
//! |---|---|---|
//! | requests per minute / per UTC day, tokens per minute | caller key ([`CallerKey`](crate::usage_meter::CallerKey); `anonymous` without one) | [`key_limits`](RateLimitLayer::key_limits), else the key's [class](RateClass), else [`default_limits`](RateLimitLayer::default_limits) |
//! | `:free` requests per minute / per UTC day | caller key | [`free`](RateLimitLayer::free), [`free_requests_per_day`](RateLimitLayer::free_requests_per_day) |
//! | requests / tokens of one catalog model | the model, for all callers | [`model_limits`](RateLimitLayer::model_limits) |
//! | requests / tokens of one provider endpoint | the endpoint, for all callers | [`endpoint_limits`](RateLimitLayer::endpoint_limits) |
//!
//! A request is `:free` when one of its route's models is (`…:free` as requested, or a catalog
//! model whose id ends in `:free`); the model limit applies to the route's first model, the
//! endpoint limit to its first candidate (the one tried first; fallback attempts to later
//! candidates are not counted).
//!
//! # Where it goes, and the order of checks
//!
//! ```text
//! ModelRouting → DataPolicy → PriceCap → PercentileDeprioritize → RateLimit → KeepAlive
//!   → ResponseCache → UsageMeter → ProviderFallback
//! ```
//!
//! After the routing layers, so it sees the resolved models and candidates in the
//! [`Route`](crate::route::Route) (a request without a route is limited per key only), and before
//! UsageMeter, so a refused request never reserves budget nor reaches an upstream. The checks run
//! in this order, and a request is charged a slot only if it passes them all:
//!
//! 1. routing, data policy, price cap (outer layers): a 400/404 there never reaches this layer,
//!    so it costs no slot;
//! 2. **this layer**: every limit of the request in one atomic store call (per-key, `:free`,
//!    model, endpoint — the first one that fails names the 429); all are charged, or none;
//! 3. the budget (UsageMeter, further in): if it refuses (402), or any other layer further in
//!    answers with its own error before an upstream attempt (a [`GatewayError`](crate::GatewayError)
//!    without the fallback's [`Attempts`](crate::fallback::Attempts)), the slots are **refunded**;
//! 4. upstream attempts: a request that reached an upstream keeps its slot whatever the answer.
//!    Upstream 429s are the fallback's business (they make it try the next candidate); they
//!    never become this layer's 429. A service error (`Err`) keeps the slot as well.
//!
//! # The algorithm: sliding-window log
//!
//! Each per-minute limit is an exact **sliding window**: a bucket of limit `n` admits a request
//! only if the units charged in the last 60 s plus this request's stay within `n`, so **no
//! interval of 60 s ever holds more than `n`** — not even under 1,000 concurrent requests (the
//! decision is one atomic store call; a test drives exactly that). GCRA was the alternative: one
//! timestamp per bucket instead of a log, but with a burst tolerance of `n` it admits up to
//! `2n − 1` requests in some 60-second interval (`n` at once, then one per `60/n` s), which is a
//! burst beyond the configured limit. The log costs memory proportional to the limit (entries of
//! the same millisecond are merged, so at most `n` entries per bucket), which is small for the
//! limits that matter here (20/min for `:free`). The time to wait is exact too: when enough of
//! the oldest entries leave the window.
//!
//! Per-day limits count the **UTC calendar day** (one counter, reset at 00:00 UTC), as
//! OpenRouter's daily free-model quota does.
//!
//! # Tokens
//!
//! A tokens-per-minute limit is charged **at admission** with an estimate: the route's prompt
//! estimate (ModelRouting's, from the request's bytes) plus the requested `max_tokens` /
//! `max_completion_tokens` (0 if unset). It is not corrected when the answer's real usage is
//! known: a limit that must not be crossed has to be decided before the request goes out. A
//! request without a route is not token-limited.
//!
//! # The refusal
//!
//! 429 in OpenRouter's envelope, `error_type` `rate_limit_exceeded`, the message naming the limit
//! (`Rate limit exceeded: free-models-per-min. …`), `Retry-After` in whole seconds (rounded up,
//! at least 1), and `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` (Unix
//! milliseconds when enough units are free again) — also repeated in `error.metadata.headers`,
//! as OpenRouter does. Successful answers carry no `X-RateLimit-*` headers.
//!
//! # Store
//!
//! Counters live in a [`RateLimitStore`] ([`InMemoryRateLimitStore`] by default): one call
//! decides every limit of a request atomically, so a Redis implementation is one Lua script (see
//! the trait). Time is the layer's [`Clock`](crate::clock::Clock)'s Unix milliseconds, so several
//! processes sharing a store agree, and tests use a [`ManualClock`](crate::clock::ManualClock).
//!
//! # Readiness
//!
//! `poll_ready` is the inner service's; the service that was polled ready is the one called.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use tower_ai_gateway::rate_limit::{Limits, RateLimitLayer};
//! use tower_ai_gateway::usage_meter::CallerKey;
//!
//! async fn handle(_: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
//!     Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut svc = ServiceBuilder::new()
//!     .layer(RateLimitLayer::new().default_limits(Limits::new().requests_per_minute(2)))
//!     .service_fn(handle);
//! let mut statuses = Vec::new();
//! for _ in 0..3 {
//!     let mut req = Request::post("/").body(Full::new(Bytes::new()))?;
//!     req.extensions_mut().insert(CallerKey::new("alice"));
//!     let res = svc.ready().await?.call(req).await?;
//!     statuses.push(res.status().as_u16());
//!     if res.status() == 429 {
//!         assert_eq!(res.headers()["x-ratelimit-limit"], "2");
//!         assert_eq!(res.headers()["retry-after"], "60");
//!     }
//! }
//! assert_eq!(statuses, [200, 200, 429]);
//! # Ok(())
//! # }
//! ```

mod future;
mod layer;
mod memory;
mod rules;
mod service;
mod store;

pub use future::{ResponseFuture, X_RATELIMIT_LIMIT, X_RATELIMIT_REMAINING, X_RATELIMIT_RESET};
pub use layer::{RateLimit, RateLimitLayer};
pub use memory::{InMemoryRateLimitStore, DEFAULT_MAX_BUCKETS, DEFAULT_SHARDS};
pub use rules::{FreeLimits, Limits, RateClass};
pub use store::{Check, Decision, Grant, RateLimitStore, Refused, StoreFuture, Window};
