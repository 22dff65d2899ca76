//! `ModelRouting`: from a request body to an ordered list of candidate endpoints.
//!
//! The layer buffers the request body once (over the limit → 413, without reading further), parses
//! the routing fields ([`RequestView`](crate::route::RequestView)), resolves the requested models and
//! orders their endpoints, then calls the inner service with the buffered body and a
//! [`Route`](crate::route::Route) in the request extensions. Nothing is sent anywhere: the layers
//! inside (DataPolicy, PriceCap, PercentileDeprioritize, UsageMeter, ProviderFallback) read the
//! `Route`.
//!
//! # Models
//!
//! `model` then `models` (de-duplicated; more than [`max_models`](ModelRoutingLayer::max_models) in
//! `models` is a 400, as on OpenRouter). The deprecated `route: "fallback" | "sort"` maps to
//! `partition: "model" | "none"`. Resolution, in order: operator aliases from the catalog; an exact
//! catalog id (so a catalog that lists `:free` or `:thinking` models serves them); `~author/family-latest`
//! through the model's `alias_target`, else the newest `created` model whose id starts with the family;
//! then variant suffixes:
//!
//! | suffix | effect |
//! |---|---|
//! | `:free` | the catalog's `…:free` model when it has one (exact id), else only the free endpoints of the base model |
//! | `:nitro` | `sort: throughput`; admits `priority`-tier endpoints (unless `order` is set) |
//! | `:floor` | `sort: price`; admits `flex`-tier endpoints (unless `order` is set) |
//! | `:exacto` | `sort: exacto`: highest observed success rate first (our local analog of OpenRouter's quality signals) |
//! | `:thinking`, `:extended` | the catalog's model with that exact id; 400 `model_not_found` when there is none |
//! | `:online` | 400: web search is not offered by this gateway |
//! | anything else | 400 naming the suffix |
//!
//! An unknown model is a 400 with `availability.code = "model_not_found"`, never a 5xx.
//!
//! # Router models
//!
//! `openrouter/auto` and `openrouter/free` are expanded before resolution
//! (<https://openrouter.ai/docs/guides/routing/routers/auto-router>). `openrouter/auto` asks the
//! layer's [`AutoRouter`] ([`auto_router`](ModelRoutingLayer::auto_router); default
//! [`TieredRouter`]: the operator's tiers, then every capable model cheapest first) for models
//! that meet the request's [`Needs`] (tools, images, structured output, reasoning, context);
//! the `auto-router` plugin's `allowed_models` / `excluded_models` patterns (`*` wildcards,
//! excluded wins, at most 1,024 patterns per list) filter them, and the first [`AUTO_MODELS`]
//! are tried in order. `openrouter/free` shuffles the capable free models with the layer's seed.
//! Nothing left is a 404 "No models match your request and model restrictions". The request is
//! priced as the model that served it; `max_price` and every other preference apply as usual.
//!
//! # Hard filters
//!
//! Applied per endpoint, each removal recorded with its reason (the `excluded_by` vocabulary):
//! service-tier endpoints unless asked for (`service_tier`, `:nitro`/`:floor`, or their full tag in
//! `order`/`only`); `ignore` ∪ the operator's deny-list; `only` ∩ the operator's allow-list (a base slug
//! or display name matches every non-tier endpoint of the provider, a full tag matches one endpoint);
//! `quantizations` (`fp4` admits `mxfp4`/`nvfp4`, `fp8` admits `mxfp8`; an endpoint that reports no
//! quantization counts as `unknown`); `require_parameters` against `supported_parameters`; `tools`
//! (a request with tools only goes to endpoints that support tools — OpenRouter's observed behaviour,
//! <https://openrouter.ai/docs/api/reference/errors-and-debugging>); the soft preference for `response_format` and `verbosity` (only
//! applied when some endpoint of the model supports the parameter); context length ≥ prompt estimate +
//! requested output, prompt estimate ≤ `max_prompt_tokens`, requested output ≤
//! `max_completion_tokens`.
//!
//! # Order
//!
//! * `order`: the listed endpoints first, in list order; then, unless `allow_fallbacks: false`, the
//!   rest in the default order. Stickiness is off.
//! * `sort` (or a sorting variant): by price (prompt + completion per token, with this request's pricing
//!   overrides), throughput (p50, highest first), latency (p50 time to first token, lowest first) or
//!   exacto (success rate). Metrics come from the [`HealthSource`](crate::health::HealthSource) and,
//!   while it has no data, from the catalog's reported `throughput_last_30m` / `latency_last_30m` /
//!   `uptime_last_30m`; endpoints with no figure at all go after those with one. With
//!   `partition: "none"` all models' endpoints are sorted together.
//! * Otherwise the default load balancing (§4.1): *unstable* endpoints — a significant recent outage
//!   or a cooldown according to the health source, or a negative catalog `status` (§22 row 23) — go
//!   last; the first pick among the stable ones is drawn by a [`BalancePolicy`], by default
//!   [`InverseSquarePrice`] (weight ∝ 1/price², price = prompt + completion per token); the other
//!   stable endpoints follow by ascending price. `allow_fallbacks: false` keeps only the cheapest.
//! * `service_tier: "priority"` puts priority endpoints first (by throughput); `"flex"` keeps only flex
//!   endpoints when the model has any.
//! * Sticky sessions (§9.1) move the session's endpoint to the front. The key is body `session_id` >
//!   `x-session-id` header > `prompt_cache_key` > a hash of the first system and first non-system
//!   message, per model, with a 10-minute idle TTL and bounded memory. An explicit session sticks on any
//!   successful response; an implicit key sticks only to endpoints whose cache-read price is below
//!   their prompt price (we cannot see cache hits at this layer, so this is our reading of "activates
//!   after a cache hit"). Only a 2xx response carrying [`ServedBy`](crate::route::ServedBy) updates
//!   the entry, so a failing endpoint is never remembered. With a [`StickyStore`]
//!   ([`ModelRoutingLayer::sticky_store`], e.g. `redis::RedisStickyStore`) the table is shared
//!   with other replicas: a request with a declared session (not the first-messages hash) loads
//!   the session's endpoints before routing and saves the serving one after a success.
//!
//! When DataPolicy or PriceCap later remove the weighted first pick, the first pick is drawn again
//! among the survivors, so the 1/price² distribution holds over the endpoints that pass every filter.
//!
//! # Errors
//!
//! Nothing left → 404 with `availability`: `no_endpoints` (the models have no endpoints),
//! `constraint_filtered` with `excluded_by` and `requested_models`. Invalid bodies → 400 naming the
//! field; bodies over the limit → 413.
//!
//! # Backpressure
//!
//! `poll_ready` forwards to the inner service; `call` moves the ready service into the response
//! future (and leaves a clone behind), which first buffers the body, then calls it. The inner service
//! must therefore be `Clone`, like the inner service of tower's `Retry`.
//!
//! # Determinism
//!
//! The draw for the weighted first pick comes from a counter-based generator:
//! [`seed`](ModelRoutingLayer::seed) it and the same sequence of requests against the same catalog and
//! health data gives the same orders.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_ai_gateway::catalog::Catalog;
//! use tower_ai_gateway::model_routing::ModelRoutingLayer;
//! use tower_ai_gateway::route::Route;
//!
//! async fn handle(req: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
//!     let route = req.extensions().get::<Route>().expect("routed");
//!     let first = route.endpoint(&route.candidates()[0]);
//!     Ok(Response::new(Full::new(Bytes::from(first.tag.clone()))))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let catalog = Catalog::from_json(include_bytes!("../../tests/fixtures/catalog/demo-catalog.json"))?;
//! let svc = ServiceBuilder::new()
//!     .layer(ModelRoutingLayer::new(catalog).seed(7))
//!     .service_fn(handle);
//!
//! let body = r#"{"model":"meta-llama/llama-3.3-70b-instruct","messages":[{"role":"user","content":"hi"}],
//!               "provider":{"sort":"price"}}"#;
//! let req = Request::post("/v1/chat/completions").body(Full::new(Bytes::from(body)))?;
//! let res = svc.oneshot(req).await?;
//! let tag = res.into_body().collect().await?.to_bytes();
//! assert_eq!(tag, "deepinfra/turbo"); // the cheapest endpoint
//! # Ok(())
//! # }
//! ```

mod admit;
mod future;
mod layer;
mod order;
mod plan;
mod resolve;
mod routers;
mod service;
mod sticky;
mod sticky_store;

pub use crate::route::{
    AppliedPreset, BalanceInput, BalancePolicy, InverseSquarePrice, Preset, Presets,
};
pub use future::ResponseFuture;
pub(crate) use layer::Config;
pub use layer::{ModelRoutingLayer, DEFAULT_BODY_LIMIT};
pub use routers::{AutoRouter, Needs, Tier, TieredRouter, AUTO, AUTO_MODELS, FREE};
pub use service::ModelRouting;
pub use sticky_store::{StickyLoad, StickyStore};
