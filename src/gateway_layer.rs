//! The standard stack as one layer (see [`GatewayLayer`]).

use std::fmt;

use tower_layer::Layer;

use crate::cache::{ResponseCache, ResponseCacheLayer};
use crate::catalog::CatalogHandle;
use crate::data_policy::DataPolicyLayer;
use crate::error::GatewayError;
use crate::fallback::{ProviderFallback, ProviderFallbackLayer};
use crate::health::HealthSource;
use crate::keep_alive::{KeepAlive, KeepAliveLayer};
use crate::model_routing::{ModelRouting, ModelRoutingLayer};
use crate::percentile::PercentileDeprioritizeLayer;
use crate::price_cap::PriceCapLayer;
use crate::rate_limit::{RateLimit, RateLimitLayer};
use crate::route::{Route, RouteStep};
use crate::stats::Stats;
use crate::usage_meter::{UsageMeter, UsageMeterLayer};

/// `GatewayLayer`: the layers in their standard order, as one layer.
///
/// ```text
/// ModelRouting → DataPolicy → PriceCap → PercentileDeprioritize → RateLimit → KeepAlive
///   → ResponseCache → UsageMeter → ProviderFallback → client
/// ```
///
/// DataPolicy, PriceCap and PercentileDeprioritize refine the route ModelRouting has just planned
/// and call nothing themselves: here ModelRouting runs them, in this order, on the route it
/// planned, so that they add no service, future or body wrapper of their own (each is also a
/// layer of its own: [`DataPolicyLayer`], [`PriceCapLayer`], [`PercentileDeprioritizeLayer`]).
///
/// RateLimit has no limits by default (it then only forwards); set them with
/// [`rate_limit`](Self::rate_limit). The [`ResponseCache`] between RateLimit and UsageMeter
/// is disabled (a pass-through) unless [`cache`](Self::cache) configures it. [`KeepAlive`] sends a
/// slow stream's head and SSE comments after 1 s, then every 3 s, until its first content
/// ([`keep_alive`](Self::keep_alive) changes or disables it).
///
/// One [`Stats`] is shared by every layer that reads or writes it (routing health and sorting,
/// percentile preferences, the meter's time to first token and throughput, the fallback's attempt
/// outcomes). Each layer can be replaced by a configured one; the rest keep their defaults.
///
/// # Example
///
/// ```
/// use bytes::Bytes;
/// use http::Request;
/// use http_body_util::{BodyExt, Full};
/// use tower::{ServiceBuilder, ServiceExt};
/// use tower_ai_gateway::catalog::Catalog;
/// # #[cfg(feature = "sim")]
/// use tower_ai_gateway::sim::{SimProfile, SimulatedProvider};
/// use tower_ai_gateway::GatewayLayer;
///
/// # #[cfg(not(feature = "sim"))] fn main() {} // the example needs the `sim` feature
/// # #[cfg(feature = "sim")]
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_ai_gateway::BoxError> {
/// // The demo catalog, every provider pointed at one simulated upstream.
/// let catalog = Catalog::builder();
/// let file = tower_ai_gateway::catalog::CatalogFile::from_json(include_bytes!(
///     "../tests/fixtures/catalog/demo-catalog.json"
/// ))?;
/// let catalog = file
///     .apply(catalog, None)?
///     .map_providers(|p| p.base_url("http://sim.local/v1"))
///     .build()?;
/// let client = SimulatedProvider::builder(1).default_profile(SimProfile::instant()).build();
///
/// let gateway = GatewayLayer::new(catalog);
/// let stats = gateway.stats().clone();
/// let svc = ServiceBuilder::new().layer(gateway).service(client);
///
/// let body = r#"{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"Hi"}]}"#;
/// let res = svc.oneshot(Request::post("/api/v1/chat/completions").body(Full::new(Bytes::from(body)))?).await?;
/// assert_eq!(res.status(), 200);
/// let json: serde_json::Value = serde_json::from_slice(&res.into_body().collect().await?.to_bytes())?;
/// assert!(json["id"].as_str().unwrap().starts_with("gen-"));
/// assert!(json["usage"]["cost"].as_f64().unwrap() > 0.0);
/// assert!(!stats.keys().is_empty(), "the attempt was recorded");
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
#[must_use]
pub struct GatewayLayer {
    stats: Stats,
    routing: ModelRoutingLayer,
    data_policy: DataPolicyLayer,
    price_cap: PriceCapLayer,
    percentile: PercentileDeprioritizeLayer,
    rate_limit: RateLimitLayer,
    keep_alive: KeepAliveLayer,
    cache: ResponseCacheLayer,
    usage_meter: UsageMeterLayer,
    fallback: ProviderFallbackLayer,
}

/// The service a [`GatewayLayer`] produces around `S` (DataPolicy, PriceCap and
/// PercentileDeprioritize run inside ModelRouting).
pub type Gateway<S> =
    ModelRouting<RateLimit<KeepAlive<ResponseCache<UsageMeter<ProviderFallback<S>>>>>>;

/// The route steps of the standard stack, run by ModelRouting in their layers' order.
struct RouteSteps {
    data_policy: DataPolicyLayer,
    price_cap: PriceCapLayer,
    percentile: PercentileDeprioritizeLayer,
}

impl RouteStep for RouteSteps {
    fn apply(&self, route: &mut Route) -> Result<(), GatewayError> {
        self.data_policy.apply(route)?;
        self.price_cap.apply(route)?;
        self.percentile.apply(route)
    }
}

impl GatewayLayer {
    /// Every layer with its defaults, sharing a new [`Stats`].
    pub fn new(catalog: impl Into<CatalogHandle>) -> Self {
        Self::with_stats(catalog, Stats::default())
    }

    /// Every layer with its defaults, sharing `stats`.
    pub fn with_stats(catalog: impl Into<CatalogHandle>, stats: Stats) -> Self {
        GatewayLayer {
            routing: ModelRoutingLayer::new(catalog).health(stats.clone()),
            data_policy: DataPolicyLayer::new(),
            price_cap: PriceCapLayer::new(),
            percentile: PercentileDeprioritizeLayer::new(stats.clone()),
            rate_limit: RateLimitLayer::new(),
            keep_alive: KeepAliveLayer::new(),
            cache: ResponseCacheLayer::disabled(),
            usage_meter: UsageMeterLayer::new().stats(stats.clone()),
            fallback: ProviderFallbackLayer::new().stats(stats.clone()),
            stats,
        }
    }

    /// The shared statistics (for `/endpoints`-style reports).
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Reads endpoint health (degraded, cooldown) from `health` instead of the shared stats, in
    /// ModelRouting and ProviderFallback (which still record into the stats): e.g. a
    /// `redis::RedisHealth` over [`stats`](Self::stats), shared with other replicas.
    /// PercentileDeprioritize keeps reading the stats' percentiles.
    pub fn health(mut self, health: impl HealthSource + Clone) -> Self {
        self.routing = self.routing.health(health.clone());
        self.fallback = self.fallback.health(health);
        self
    }

    /// Reconfigures ModelRouting (it already reads the shared stats).
    pub fn routing(mut self, f: impl FnOnce(ModelRoutingLayer) -> ModelRoutingLayer) -> Self {
        self.routing = f(self.routing);
        self
    }

    /// Replaces the DataPolicy layer (e.g. with an operator floor).
    pub fn data_policy(mut self, layer: DataPolicyLayer) -> Self {
        self.data_policy = layer;
        self
    }

    /// Replaces the PriceCap layer (e.g. with an operator cap).
    pub fn price_cap(mut self, layer: PriceCapLayer) -> Self {
        self.price_cap = layer;
        self
    }

    /// Replaces the PercentileDeprioritize layer.
    pub fn percentile(mut self, layer: PercentileDeprioritizeLayer) -> Self {
        self.percentile = layer;
        self
    }

    /// Replaces the RateLimit layer (limits, store, clock).
    pub fn rate_limit(mut self, layer: RateLimitLayer) -> Self {
        self.rate_limit = layer;
        self
    }

    /// Replaces the KeepAlive layer ([`KeepAliveLayer::disabled`] turns it off: a stream's head
    /// then waits for its first content).
    pub fn keep_alive(mut self, layer: KeepAliveLayer) -> Self {
        self.keep_alive = layer;
        self
    }

    /// Replaces the (disabled) response cache, in front of UsageMeter so that a HIT costs nothing.
    pub fn cache(mut self, layer: ResponseCacheLayer) -> Self {
        self.cache = layer;
        self
    }

    /// Reconfigures UsageMeter (ledger, sinks, …); it already feeds the shared stats.
    pub fn usage_meter(mut self, f: impl FnOnce(UsageMeterLayer) -> UsageMeterLayer) -> Self {
        self.usage_meter = f(self.usage_meter);
        self
    }

    /// Reconfigures ProviderFallback (timeouts, budget, policy, …); it already records into the
    /// shared stats.
    pub fn fallback(
        mut self,
        f: impl FnOnce(ProviderFallbackLayer) -> ProviderFallbackLayer,
    ) -> Self {
        self.fallback = f(self.fallback);
        self
    }
}

impl<S> Layer<S> for GatewayLayer {
    type Service = Gateway<S>;

    fn layer(&self, inner: S) -> Self::Service {
        // The fallback judges answers with the meter's reader and hands the reading up: each
        // non-streamed answer is read once.
        let fallback = self
            .fallback
            .clone()
            .answer_reader(crate::usage_meter::answer_reader());
        let s = fallback.layer(inner);
        let s = self.usage_meter.layer(s);
        let s = self.cache.layer(s);
        let s = self.keep_alive.layer(s);
        let s = self.rate_limit.layer(s);
        let steps = RouteSteps {
            data_policy: self.data_policy,
            price_cap: self.price_cap,
            percentile: self.percentile.clone(),
        };
        self.routing.clone().route_steps(steps).layer(s)
    }
}

impl fmt::Debug for GatewayLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayLayer")
            .field("routing", &self.routing)
            .field("data_policy", &self.data_policy)
            .field("price_cap", &self.price_cap)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::time::Duration;

    use bytes::Bytes;
    use http::{Request, Response};
    use http_body_util::{BodyExt, Full};
    use proptest::prelude::*;
    use tower::{service_fn, ServiceBuilder, ServiceExt};

    use super::*;
    use crate::catalog::Catalog;
    use crate::data_policy::DataFloor;
    use crate::route::MaxPrice;
    use crate::stats::{Attempt, Outcome};

    const MODELS: [&str; 4] = [
        "meta-llama/llama-3.3-70b-instruct",
        "openai/gpt-4o-mini",
        "deepseek/deepseek-chat",
        "qwen/qwen3-coder",
    ];

    /// Provider preferences that each step acts on, alone or together.
    fn prefs() -> impl Strategy<Value = serde_json::Value> {
        let one = prop_oneof![
            Just(serde_json::json!({"data_collection": "deny"})),
            Just(serde_json::json!({"zdr": true})),
            Just(serde_json::json!({"max_price": {"prompt": 0.3, "completion": 1.0}})),
            Just(serde_json::json!({"max_price": {"prompt": 0.01}})),
            Just(serde_json::json!({"preferred_max_latency": 0.3})),
            Just(serde_json::json!({"preferred_min_throughput": {"p90": 80}})),
            Just(serde_json::json!({"sort": "price"})),
        ];
        proptest::collection::vec(one, 0..4).prop_map(|all| {
            let mut merged = serde_json::Map::new();
            for p in all {
                merged.extend(p.as_object().cloned().unwrap_or_default());
            }
            serde_json::Value::Object(merged)
        })
    }

    /// What the stack decided: the route the innermost service saw, or the refusal.
    async fn decided<S, B>(svc: S, body: &serde_json::Value) -> String
    where
        S: tower::Service<Request<Full<Bytes>>, Response = Response<B>, Error = Infallible>,
        B: http_body::Body,
        B::Error: std::fmt::Debug,
    {
        let req = Request::post("/v1/chat/completions")
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("request");
        let res = svc.oneshot(req).await.expect("infallible");
        let status = res.status();
        let bytes = res.into_body().collect().await.expect("body").to_bytes();
        format!("{status} {}", String::from_utf8_lossy(&bytes))
    }

    /// The route's candidates and exclusions, as the innermost service sees them.
    async fn seen(req: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
        let text = match req.extensions().get::<Route>() {
            Some(r) => format!("{:?} {:?}", r.candidates(), r.exclusions()),
            None => "no route".to_string(),
        };
        Ok(Response::new(Full::new(Bytes::from(text))))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The route steps run inside ModelRouting decide what the same steps as layers of their
        /// own decide (the same candidates, in the same order, the same exclusions, the same
        /// refusals), with and without operator floors and caps.
        #[test]
        fn route_steps_inside_routing_are_the_layers(
            model in 0..MODELS.len(),
            prefs in prefs(),
            floor in any::<bool>(),
            cap in any::<bool>(),
        ) {
            let catalog = Catalog::from_json(include_bytes!(
                "../tests/fixtures/catalog/demo-catalog.json"
            ))
            .expect("demo catalog");
            let stats = Stats::default();
            let now = tokio::time::Instant::now();
            for (i, e) in catalog.endpoints(MODELS[model]).iter().enumerate() {
                let ms = 100 + 200 * i as u64;
                for _ in 0..30 {
                    let a = Attempt::new(Outcome::Success).latency(Duration::from_millis(ms));
                    stats.record_attempt(e.key(), a, now);
                }
            }
            let data_policy = DataPolicyLayer::new().floor(if floor {
                DataFloor::deny_data_collection()
            } else {
                DataFloor::default()
            });
            let price_cap = PriceCapLayer::new().cap(if cap {
                MaxPrice { prompt: Some(crate::catalog::Usd::from_micros(500_000)), ..MaxPrice::default() }
            } else {
                MaxPrice::default()
            });
            let percentile = PercentileDeprioritizeLayer::new(stats.clone());
            // Two layers alike (each has its own draw counter): the same seed, the same draws.
            let routing = || ModelRoutingLayer::new(catalog.clone()).seed(7);
            let body = serde_json::json!({
                "model": MODELS[model],
                "messages": [{"role": "user", "content": "hi"}],
                "provider": prefs,
            });
            let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
            let layered = rt.block_on(decided(
                ServiceBuilder::new()
                    .layer(routing())
                    .layer(data_policy)
                    .layer(price_cap)
                    .layer(percentile.clone())
                    .service_fn(seen),
                &body,
            ));
            let steps = RouteSteps { data_policy, price_cap, percentile };
            let inside = rt.block_on(decided(
                routing().route_steps(steps).layer(service_fn(seen)),
                &body,
            ));
            prop_assert_eq!(inside, layered);
        }
    }
}
