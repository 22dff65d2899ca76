//! OpenRouter's response cache: [`ResponseCacheLayer`]
//! (<https://openrouter.ai/docs/guides/features/response-caching>).
//!
//! # Where it sits
//!
//! ```text
//! ModelRouting → DataPolicy → PriceCap → PercentileDeprioritize → ResponseCache → UsageMeter → ProviderFallback → client
//! ```
//!
//! * **After the routing layers**, because it needs what ModelRouting put in the extensions: the
//!   buffered body and the parsed request ([`Route`](crate::route::Route)); a request the routing
//!   layers refuse (unknown model, no endpoint within the price cap or data policy) is refused the
//!   same way whether or not its answer is cached.
//! * **In front of UsageMeter**, so that a HIT stops before it: no budget reservation, no
//!   generation record, nothing charged to the [`Ledger`](crate::usage_meter::Ledger), no upstream
//!   call. A MISS passes through UsageMeter like any request and is charged normally; what the
//!   cache records is UsageMeter's output (generation id, `usage` with its `cost`).
//!
//! [`GatewayLayer`](crate::GatewayLayer) puts it there (disabled unless configured with
//! [`GatewayLayer::cache`](crate::GatewayLayer::cache)).
//!
//! # What is cached
//!
//! * **Opt-in**: a request is cached with `X-OpenRouter-Cache: true`, or when an operator
//!   [`CacheRule`] selects it (OpenRouter's presets with `cache_enabled`);
//!   `X-OpenRouter-Cache: false` turns a rule off for one request. The request also needs a
//!   [`CallerKey`](crate::usage_meter::CallerKey) (a caller's cache is never visible to another
//!   key, and requests without a key are not cached) and a `Route`.
//! * **Key**: caller key + requested model + endpoint (request path) + stream mode + SHA-256 of the
//!   body with JSON whitespace outside strings removed (member order counts) — [`CacheKey`].
//! * **TTL**: `X-OpenRouter-Cache-TTL` in seconds, read as OpenRouter does ([`parse_ttl`]: leading
//!   digits, decimals truncated, clamped to 1–86,400, ignored when unparsable), else the rule's,
//!   else [`ResponseCacheLayer::default_ttl`] (300 s). `X-OpenRouter-Cache-Clear: true` drops the
//!   entry and stores the fresh answer.
//! * **Only complete `200`s**: error statuses, bodies that fail or are dropped before their end,
//!   and answers over [`ResponseCacheLayer::max_entry_bytes`] are never stored.
//!
//! # MISS and HIT
//!
//! A MISS goes out as it comes, frame by frame — **a stream is never buffered**: each frame is
//! forwarded at once and a reference to it (no copy) is kept; when the body ends, the answer is
//! prepared once (every number of each `usage` object set to `0`) and stored. The response carries
//! `X-OpenRouter-Cache-Status: MISS` and `X-OpenRouter-Cache-TTL`.
//!
//! A HIT replays the stored head and frames — a stream as the same SSE frames — with a **new
//! generation id** (in `id` and `X-Generation-Id`), a new `created`, and every billable usage
//! counter `0`; headers `X-OpenRouter-Cache-Status: HIT`, `X-OpenRouter-Cache-Age` (seconds since
//! stored), `X-OpenRouter-Cache-TTL` and `X-OpenRouter-Cache-Source-Id` (the generation id of the
//! stored answer). The MISS's response extensions come back too (which endpoint served it; that a
//! Messages answer is already in Anthropic's wire format, so `compat::MessagesLayer` does not
//! translate it again), and every response the cache handled carries [`CacheStatus`] in its
//! extensions.
//!
//! # Store, memory, coalescing
//!
//! Entries live in a [`CacheStore`]: [`InMemoryStore`] by default, bounded by the total bytes of
//! its entries ([`ResponseCacheLayer::max_bytes`], 64 MiB by default). Reads are async and writes
//! synchronous, so a Redis store can implement it (see [`CacheStore`]). Freshness is decided by the
//! layer's [`Clock`](crate::clock::Clock) on every read. With
//! [`ResponseCacheLayer::coalesce`], concurrent identical misses make one upstream call.
//!
//! `poll_ready` is the inner service's. A request that may miss takes the service polled ready
//! (clone-and-swap), so a HIT drops it unused.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::sync::Arc;
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Full};
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use tower_ai_gateway::cache::ResponseCacheLayer;
//! use tower_ai_gateway::catalog::Catalog;
//! use tower_ai_gateway::model_routing::ModelRoutingLayer;
//! use tower_ai_gateway::usage_meter::{CallerKey, UsageMeterLayer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let catalog = Catalog::from_json(br#"{
//!   "providers": [{"slug": "acme", "base_url": "https://api.acme.test/v1"}],
//!   "models": [{"id": "acme/chat-1", "name": "Acme Chat 1"}],
//!   "endpoints": {"acme/chat-1": [{"tag": "acme", "provider_model_id": "chat-1",
//!                                  "pricing": {"prompt": "0.000001", "completion": "0.000002"}}]}
//! }"#)?;
//! let calls = Arc::new(AtomicUsize::new(0));
//! let upstream = {
//!     let calls = calls.clone();
//!     tower::service_fn(move |_req: http::Request<Full<Bytes>>| {
//!         calls.fetch_add(1, Ordering::SeqCst);
//!         async {
//!             Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(
//!                 br#"{"id":"up-1","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}}"#,
//!             ))))
//!         }
//!     })
//! };
//! let mut svc = ServiceBuilder::new()
//!     .layer(ModelRoutingLayer::new(catalog))
//!     .layer(ResponseCacheLayer::new())
//!     .layer(UsageMeterLayer::new())
//!     .service(upstream);
//!
//! let request = || {
//!     let mut req = http::Request::post("/api/v1/chat/completions")
//!         .header("x-openrouter-cache", "true")
//!         .body(Full::new(Bytes::from_static(br#"{"model":"acme/chat-1","messages":[{"role":"user","content":"hi"}]}"#)))
//!         .unwrap();
//!     req.extensions_mut().insert(CallerKey::new("team-a"));
//!     req
//! };
//! type Req = http::Request<Full<Bytes>>;
//! let miss = ServiceExt::<Req>::ready(&mut svc).await?.call(request()).await?;
//! assert_eq!(miss.headers()["x-openrouter-cache-status"], "MISS");
//! let source = miss.headers()["x-generation-id"].clone();
//! miss.into_body().collect().await?; // stored when the body ends
//!
//! let hit = ServiceExt::<Req>::ready(&mut svc).await?.call(request()).await?;
//! assert_eq!(hit.headers()["x-openrouter-cache-status"], "HIT");
//! assert_eq!(hit.headers()["x-openrouter-cache-source-id"], source);
//! assert_ne!(hit.headers()["x-generation-id"], source);
//! let json: serde_json::Value = serde_json::from_slice(&hit.into_body().collect().await?.to_bytes())?;
//! assert_eq!(json["usage"]["total_tokens"], 0);
//! assert_eq!(json["usage"]["cost"], 0);
//! assert_eq!(calls.load(Ordering::SeqCst), 1, "the HIT never reached upstream");
//! # Ok(())
//! # }
//! ```

// Module map: `layer` (builder, rules) → `service` (the decision) → `future` (lookup, wait, call,
// HIT and MISS responses) → `body` (record, replay) → `entry` (prepare, rewrite), `inflight`
// (coalescing) → `store` → `key`.

mod body;
mod entry;
mod future;
mod inflight;
mod key;
mod layer;
mod service;
mod store;

pub use body::ResponseBody;
pub use future::{CacheStatus, ResponseFuture};
pub use key::{
    parse_ttl, CacheKey, CACHE, CACHE_AGE, CACHE_CLEAR, CACHE_SOURCE_ID, CACHE_STATUS, CACHE_TTL,
    DEFAULT_TTL, MAX_TTL_SECS, MIN_TTL_SECS,
};
pub use layer::{CacheRule, ResponseCacheLayer, DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRY_BYTES};
pub use service::ResponseCache;
pub use store::{CacheStore, CachedResponse, InMemoryStore, StoreFuture};
