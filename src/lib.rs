//! An in-process OpenRouter for Rust, built as [Tower] layers.
//!
//! `tower-ai-gateway` routes OpenAI-style chat-completion requests the way OpenRouter does — model
//! fallbacks, provider order and filters, price caps, data policies, latency and throughput
//! preferences, usage metering — inside your own process, in front of any HTTP client service
//! (`Service<http::Request<_>, Response = http::Response<_>>`). The stack is
//!
//! ```text
//! ModelRouting → DataPolicy → PriceCap → PercentileDeprioritize → RateLimit → KeepAlive
//!   → ResponseCache → UsageMeter → ProviderFallback → client
//! ```
//!
//! and [`GatewayLayer`] assembles all nine in that order. Each layer also works on its own.
//! OpenRouter's behaviour that the layers reproduce is documented at
//! <https://openrouter.ai/docs/guides/routing/provider-selection> (provider routing),
//! <https://openrouter.ai/docs/guides/routing/model-fallbacks> (model fallbacks),
//! <https://openrouter.ai/docs/api/reference/errors-and-debugging> (the error envelope) and
//! <https://openrouter.ai/docs/cookbook/administration/usage-accounting> (usage and cost).
//!
//! * [`model_routing`] — [`ModelRoutingLayer`](model_routing::ModelRoutingLayer): buffers the body
//!   once, resolves models and variants, applies the hard filters and orders the endpoints; puts a
//!   [`route::Route`] in the request extensions.
//! * [`data_policy`] — [`DataPolicyLayer`](data_policy::DataPolicyLayer): drops candidates whose
//!   provider's data policy the request or the operator's floor forbids.
//! * [`price_cap`] — [`PriceCapLayer`](price_cap::PriceCapLayer): drops candidates over `max_price`
//!   or the operator's cap.
//! * [`percentile`] — [`PercentileDeprioritizeLayer`](percentile::PercentileDeprioritizeLayer):
//!   moves candidates that miss the preferred latency or throughput to the back.
//! * [`rate_limit`] — [`RateLimitLayer`](rate_limit::RateLimitLayer): requests and tokens per
//!   minute and per UTC day per caller key, class, model or endpoint, and OpenRouter's `:free`
//!   limits; 429 with `Retry-After` and `X-RateLimit-*`.
//! * [`usage_meter`] — [`UsageMeterLayer`](usage_meter::UsageMeterLayer): reads usage from JSON
//!   and SSE responses on the fly, prices it exactly at the serving endpoint, adds `usage.cost`,
//!   records generations and enforces per-key budgets through a [`usage_meter::Ledger`].
//! * `compat` — `MessagesLayer`: serves Anthropic Messages requests (Claude Code, the
//!   `anthropic` SDKs) with a chat-completions service, translating requests, JSON and SSE
//!   responses and errors; Anthropic-wire providers are called in their own wire (feature
//!   `anthropic`, on by default).
//! * `responses` — `ResponsesLayer`: serves OpenAI Responses API requests (the `openai` SDKs'
//!   `responses.create`, Codex CLI) with a chat-completions service, translating requests, JSON
//!   answers and event streams (feature `responses`, on by default).
//! * [`cache`] — [`ResponseCacheLayer`](cache::ResponseCacheLayer): OpenRouter's response cache
//!   (`X-OpenRouter-Cache`), per caller key, with HITs that cost nothing.
//! * [`stats`] — [`Stats`], live per-endpoint latency, throughput, outages, cooldowns and uptime;
//!   implements [`health::HealthSource`].
//! * [`body`] — the response body type of the layers.
//! * [`catalog`] — providers, models, endpoints and exact prices ([`catalog::Usd`]); loaded from
//!   code, TOML/JSON catalog files, OpenRouter's `/models` and `/endpoints` responses, or priced
//!   from LiteLLM's cost map; validated when built; swapped atomically on reload
//!   ([`catalog::CatalogHandle`]).
//! * [`route`] — [`route::RequestView`], the routing fields of a chat-completions body, parsed once
//!   and borrowed from the body, the splice that rewrites the model for an upstream, and
//!   [`route::Route`], the ordered candidates the layers share through the request extensions.
//! * [`error`] — [`GatewayError`], OpenRouter's JSON error envelope (with the `availability` object
//!   for routing failures), returned as an HTTP response and attached to its extensions.
//! * [`health`] — [`health::HealthSource`], what routing may ask about an endpoint's recent
//!   behaviour.
//! * [`clock`] — injectable wall-clock time; monotonic time is tokio's, so paused-clock tests
//!   control it.
//! * `sim` — `SimulatedProvider`, an in-process OpenAI-compatible upstream with latency,
//!   throughput, failure modes and SSE streaming (feature `sim`).
//!
//! # Example
//!
//! Load a catalog, parse a request, and answer a bad one with an OpenRouter-shaped error:
//!
//! ```
//! use tower_ai_gateway::catalog::Catalog;
//! use tower_ai_gateway::route::RequestView;
//! use tower_ai_gateway::{ErrorType, GatewayError};
//!
//! let catalog = Catalog::from_json(br#"{
//!   "providers": [{"slug": "acme", "base_url": "https://api.acme.test/v1",
//!                  "data_policy": {"training": false, "retains_prompts": false, "zdr": true}}],
//!   "models": [{"id": "acme/chat-1", "name": "Acme Chat 1"}],
//!   "endpoints": {"acme/chat-1": [{"tag": "acme", "provider_model_id": "chat-1",
//!                                  "pricing": {"prompt": "0.0000005", "completion": "0.0000015"}}]}
//! }"#)?;
//!
//! // A well-formed request: only the routing fields are read, borrowing from the body.
//! let body = br#"{"model":"acme/chat-1","messages":[{"role":"user","content":"hi"}],
//!                 "provider":{"max_price":{"prompt":1}}}"#;
//! let view = RequestView::parse(body)?;
//! let endpoint = &catalog.endpoints(view.model.as_deref().unwrap())[0];
//! // Catalog prices are USD per token; `max_price` is USD per million tokens.
//! let cap = view.provider.max_price.as_ref().and_then(|m| m.prompt).unwrap();
//! assert!(endpoint.pricing.prompt.per_million() <= cap);
//! // The upstream body carries the provider's own model id.
//! let upstream = view.splice_model(body, endpoint.upstream_model());
//! assert!(upstream.starts_with(br#"{"model":"chat-1","#));
//!
//! // A malformed one becomes a 400 in OpenRouter's error envelope.
//! let err = RequestView::parse(br#"{"model":"acme/chat-1","provider":{"sort":"cheapest"}}"#)
//!     .unwrap_err();
//! assert_eq!(err.error_type(), ErrorType::InvalidRequest);
//! let res: http::Response<bytes::Bytes> = err.into_response();
//! assert_eq!(res.status(), 400);
//! let json: serde_json::Value = serde_json::from_slice(res.body())?;
//! assert_eq!(json["error"]["code"], 400);
//! assert_eq!(json["error"]["metadata"]["error_type"], "invalid_request");
//! assert!(res.extensions().get::<GatewayError>().is_some());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Feature flags
//!
//! | Feature | Default | Enables |
//! |---|---|---|
//! | `sim` | yes | the `sim` module: `SimulatedProvider` and its profiles |
//! | `toml` | yes | TOML catalog files (`Catalog::from_toml`, `.toml` in `Catalog::from_path`) |
//! | `client` | yes | the `client` module: `HttpsClient`, a pooled rustls client for providers |
//! | `anthropic` | yes | `compat` (Anthropic Messages callers) and Anthropic-wire providers |
//! | `responses` | yes | `responses`: the OpenAI Responses API in front of the stack |
//! | `native-roots` | no | `client` trusts the platform's root certificates instead of webpki's |
//!
//! An embedder that brings its own HTTP client and wants the layers alone uses
//! `default-features = false`.
//!
//! # Catalog files
//!
//! The TOML/JSON schema (every key of [`catalog::CatalogFile`] and [`catalog::ProviderSpec`]), the
//! money conventions and the error envelope are documented in the crate's `README.md`; the
//! repository's `examples/catalog.toml` is a complete, tested example.
//!
//! [Tower]: https://docs.rs/tower
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[macro_use]
mod macros;

pub mod body;
pub mod cache;
pub mod catalog;
#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub mod client;
pub mod clock;
#[cfg(feature = "anthropic")]
#[cfg_attr(docsrs, doc(cfg(feature = "anthropic")))]
pub mod compat;
pub mod error;
pub mod fallback;
mod gateway_layer;
mod hash;
pub mod health;
pub mod keep_alive;
pub mod model_routing;
mod wire;
#[macro_use]
pub mod route;
pub mod data_policy;
pub mod percentile;
pub mod price_cap;
pub mod rate_limit;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;
#[cfg(feature = "responses")]
#[cfg_attr(docsrs, doc(cfg(feature = "responses")))]
pub mod responses;
#[cfg(feature = "sim")]
#[cfg_attr(docsrs, doc(cfg(feature = "sim")))]
pub mod sim;
pub mod stats;
pub mod telemetry;
pub mod usage_meter;

pub use error::{Availability, AvailabilityCode, ErrorType, ExcludedBy, GatewayError};
pub use gateway_layer::{Gateway, GatewayLayer};
pub use stats::{Stats, StatsConfig};

/// Alias for a type-erased error type.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The README's Rust examples, compiled (and run, unless marked `no_run`) as doc tests.
#[cfg(all(doctest, feature = "client", feature = "toml"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
