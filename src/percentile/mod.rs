//! `PercentileDeprioritize`: move endpoints that miss the preferred latency or throughput to the back.
//!
//! `provider.preferred_max_latency` (seconds) and `provider.preferred_min_throughput` (tokens per
//! second) take a number, meaning p50, or an object with any of `p50`, `p75`, `p90`, `p99`, all of
//! which must pass
//! ([performance thresholds](https://openrouter.ai/docs/features/provider-routing)). Latency is time to first token. An endpoint passes a
//! latency cutoff when its pXX latency is at most the cutoff, and a throughput cutoff when its pXX
//! throughput is at least the cutoff ("pXX throughput = XX % of requests achieve at least it").
//!
//! Endpoints that miss any cutoff are moved to the end in their existing order (a stable partition)
//! and marked [`Reason::Deprioritized`](crate::route::Reason::Deprioritized); they are **never
//! removed**, so these preferences never make a request fail. With `partition: "model"` (the default)
//! the partition happens within each model's group, so fallback models stay fallbacks; with
//! `partition: "none"` it spans models, so a fast fallback model can overtake a slow primary.
//!
//! Figures come from a [`HealthSource`] — normally [`Stats`](crate::stats::Stats) over its rolling
//! 5-minute routing window. While the source has too few samples for an endpoint (it answers `None`;
//! `Stats` needs `min_samples`, 5 by default), the catalog's published figures for that endpoint
//! (`latency_last_30m` in milliseconds, `throughput_last_30m` in tokens per second, as in
//! OpenRouter's endpoints API) stand in as the prior, so the preferences work on a cold gateway.
//! An endpoint with neither counts as **passing**: without evidence we do not demote.
//!
//! The layer also takes operator defaults, used for requests that set neither preference (a request
//! that sets one replaces the default of that preference).
//!
//! Like the other route-step layers it needs ModelRouting in front: a request without a `Route` in its
//! extensions gets a 500 naming the layer (and a `warn!`) rather than passing unordered.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_ai_gateway::catalog::Catalog;
//! use tower_ai_gateway::model_routing::ModelRoutingLayer;
//! use tower_ai_gateway::percentile::PercentileDeprioritizeLayer;
//! use tower_ai_gateway::Stats;
//!
//! async fn handle(_: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
//!     Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let catalog = Catalog::from_json(include_bytes!("../../tests/fixtures/catalog/demo-catalog.json"))?;
//! let stats = Stats::default();
//! let svc = ServiceBuilder::new()
//!     .layer(ModelRoutingLayer::new(catalog).health(stats.clone()))
//!     .layer(PercentileDeprioritizeLayer::new(stats))
//!     .service_fn(handle);
//! let body = r#"{"model":"deepseek/deepseek-chat","messages":[{"role":"user","content":"hi"}],
//!               "provider":{"preferred_max_latency":{"p90":2},"preferred_min_throughput":50}}"#;
//! let res = svc.oneshot(Request::post("/").body(Full::new(Bytes::from(body)))?).await?;
//! assert_eq!(res.status(), 200);
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::sync::Arc;

use tokio::time::Instant;
use tower_layer::Layer;

use crate::catalog::PercentileStats;
use crate::error::GatewayError;
use crate::health::{HealthSource, Percentile, SharedHealth};
use crate::route::{Cutoffs, Route, RouteStep};

pub use crate::route::RouteFuture as ResponseFuture;

/// Layer that applies the [`PercentileDeprioritize`] middleware. See the [module docs](self).
#[derive(Clone, Debug)]
#[must_use]
pub struct PercentileDeprioritizeLayer {
    health: SharedHealth,
    max_latency: Option<Cutoffs>,
    min_throughput: Option<Cutoffs>,
}

impl PercentileDeprioritizeLayer {
    /// Reads percentiles from `health`.
    pub fn new(health: impl HealthSource) -> Self {
        PercentileDeprioritizeLayer {
            health: SharedHealth(Arc::new(health)),
            max_latency: None,
            min_throughput: None,
        }
    }

    /// Operator default for `preferred_max_latency` (seconds).
    pub fn default_max_latency(mut self, cutoffs: Cutoffs) -> Self {
        self.max_latency = Some(cutoffs);
        self
    }

    /// Operator default for `preferred_min_throughput` (tokens per second).
    pub fn default_min_throughput(mut self, cutoffs: Cutoffs) -> Self {
        self.min_throughput = Some(cutoffs);
        self
    }
}

impl RouteStep for PercentileDeprioritizeLayer {
    fn apply(&self, route: &mut Route) -> Result<(), GatewayError> {
        let prefs = &route.view().provider;
        // Copied (out of the route, which is reordered below) only when set.
        let latency = (prefs.preferred_max_latency.as_deref())
            .or(self.max_latency.as_ref())
            .filter(|c| !c.is_empty())
            .copied();
        let throughput = (prefs.preferred_min_throughput.as_deref())
            .or(self.min_throughput.as_ref())
            .filter(|c| !c.is_empty())
            .copied();
        if latency.is_none() && throughput.is_none() {
            return Ok(());
        }
        let health = &*self.health.0;
        let now = Instant::now();
        route.move_to_back(|_, e, _| {
            let key = e.key();
            let lat_ok = latency.is_none_or(|cut| {
                cut.iter().all(|(pct, secs)| {
                    health
                        .latency_ms(key, pct, now)
                        .or_else(|| published(e.latency_last_30m, pct))
                        .is_none_or(|ms| ms <= secs * 1000.0)
                })
            });
            let thr_ok = throughput.is_none_or(|cut| {
                cut.iter().all(|(pct, min)| {
                    health
                        .throughput(key, pct, now)
                        .or_else(|| published(e.throughput_last_30m, pct))
                        .is_none_or(|t| t >= min)
                })
            });
            !(lat_ok && thr_ok)
        });
        Ok(())
    }
}

impl<S> Layer<S> for PercentileDeprioritizeLayer {
    type Service = PercentileDeprioritize<S>;
    fn layer(&self, inner: S) -> Self::Service {
        PercentileDeprioritize {
            inner,
            layer: self.clone(),
        }
    }
}

/// Middleware that moves endpoints missing the preferred percentiles to the back. See the
/// [module docs](self).
#[derive(Clone)]
pub struct PercentileDeprioritize<S> {
    inner: S,
    layer: PercentileDeprioritizeLayer,
}

impl<S> PercentileDeprioritize<S> {
    /// Wraps `inner`, reading percentiles from `health`.
    pub fn new(inner: S, health: impl HealthSource) -> Self {
        PercentileDeprioritizeLayer::new(health).layer(inner)
    }

    /// A layer.
    pub fn layer(health: impl HealthSource) -> PercentileDeprioritizeLayer {
        PercentileDeprioritizeLayer::new(health)
    }

    define_inner_service_accessors!();
}

/// The catalog's published figure at `pct`, if the catalog has the endpoint's percentiles.
fn published(stats: Option<PercentileStats>, pct: Percentile) -> Option<f64> {
    let s = stats?;
    let v = match pct {
        Percentile::P50 => s.p50,
        Percentile::P75 => s.p75,
        Percentile::P90 => s.p90,
        Percentile::P99 => s.p99,
    };
    v.is_finite().then_some(v)
}

impl<S: fmt::Debug> fmt::Debug for PercentileDeprioritize<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PercentileDeprioritize")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

route_step_service!(PercentileDeprioritize);
