//! The catalog: providers, models, endpoints and their prices.
//!
//! * [`Provider`] — where to send requests (base URL, credentials, auth style, extra headers, wire
//!   format) and what the provider does with prompts ([`ProviderDataPolicy`]).
//! * [`Model`] — OpenRouter's `Model` object (<https://openrouter.ai/docs/guides/overview/models>).
//! * [`Endpoint`] — a model offered by a provider, OpenRouter's `PublicEndpoint` (§15), plus the
//!   provider's own model id.
//! * [`Usd`] — exact decimal money; prices never touch `f64` arithmetic.
//!
//! A [`Catalog`] is built in code ([`CatalogBuilder`]), from a catalog file ([`CatalogFile`], JSON or
//! TOML), from OpenRouter's `/models` and `/endpoints` responses, and priced from LiteLLM's cost map
//! ([`LiteLlmPrices`]). It is validated when built (errors name the offending entry: [`CatalogError`]),
//! immutable afterwards and cheap to clone; a [`CatalogHandle`] swaps a whole new catalog in
//! atomically.
//!
//! ```
//! use tower_ai_gateway::catalog::{Catalog, CatalogHandle};
//!
//! let json = br#"{
//!   "providers": [{"slug": "acme", "name": "Acme", "base_url": "https://api.acme.test/v1",
//!                  "data_policy": {"training": false, "retains_prompts": false, "zdr": true}}],
//!   "models": [{"id": "acme/chat-1", "name": "Acme Chat 1"}],
//!   "endpoints": {"acme/chat-1": [{"tag": "acme", "context_length": 32000,
//!                                  "pricing": {"prompt": "0.000001", "completion": "0.000002"}}]}
//! }"#;
//! let catalog = Catalog::from_json(json)?;
//! let ep = &catalog.endpoints("acme/chat-1")[0];
//! assert_eq!(ep.pricing.prompt.per_million().normalize().to_string(), "1");
//!
//! let handle = CatalogHandle::new(catalog);
//! handle.store(Catalog::empty()); // reload: requests that start now see the new catalog
//! assert!(handle.load().model("acme/chat-1").is_none());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#[allow(clippy::module_inception)]
mod catalog;
mod endpoint;
mod file;
mod key;
mod litellm;
pub(crate) mod model;
mod money;
mod params;
mod pricing;
mod provider;

pub use catalog::{Catalog, CatalogBuilder, CatalogError, CatalogHandle};
pub use endpoint::{Endpoint, PercentileStats, Quantization, ServiceTier};
pub use file::{CatalogFile, EndpointsSpec, ProviderSpec};
pub use key::EndpointKey;
pub use litellm::{LiteLlmEntry, LiteLlmPrices};
pub use model::{split_variant, AliasTarget, Architecture, Model, TopProvider};
pub use money::{PriceError, Usd};
pub use params::{ParamSet, Parameter};
pub use pricing::{EffectivePricing, Pricing, PricingOverride};
pub(crate) use provider::ProviderCall;
pub use provider::{AuthStyle, Credentials, Provider, ProviderDataPolicy, Secret, WireFormat};
