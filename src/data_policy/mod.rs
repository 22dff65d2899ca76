//! `DataPolicy`: keep only endpoints whose provider's data policy the request (and the operator)
//! accepts.
//!
//! Reads the [`Route`] that ModelRouting put in the request extensions and
//! removes candidates:
//!
//! * `provider.data_collection: "deny"` removes providers that **train on prompts or retain them**
//!   beyond the request (`training || retains_prompts`). OpenRouter's wording ("only providers which
//!   do not collect user data"; `"allow"` means "providers which store user data non-transiently and
//!   may train on it") covers both, so we read `deny` as excluding both; a provider whose policy is not
//!   in the catalog counts as one that retains and trains. Reason: `data_policy:training`.
//! * `provider.zdr: true` keeps only zero-data-retention providers. Reason: `data_policy:zdr`.
//! * `provider.enforce_distillable_text: true` keeps only models whose catalog entry says
//!   `distillable: true`; a model without the flag counts as not distillable. Reason:
//!   `data_policy:distillable_text`.
//!
//! The layer carries an operator floor ([`DataFloor`]) that requests can tighten but never relax:
//! `zdr: false` or `data_collection: "allow"` in a request does nothing against a floor that says
//! otherwise.
//!
//! If the filter removes the last candidate the response is 404 `privacy_restricted` with
//! `excluded_by` and `requested_models`; the inner service is not called.
//!
//! The layer fails closed: used without ModelRouting in front (no `Route` in the extensions) it answers
//! 500 "DataPolicy needs a Route: put ModelRouting in front of it" and logs a `warn!`, instead of
//! letting through a request whose data policy it could not check.
//!
//! When the filter removes the load balancer's weighted first pick, the first pick is drawn again
//! among the survivors ([`Route::retain`](crate::route::Route::retain)).
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
//! use tower_ai_gateway::data_policy::{DataFloor, DataPolicyLayer};
//! use tower_ai_gateway::model_routing::ModelRoutingLayer;
//! use tower_ai_gateway::route::Route;
//!
//! async fn handle(req: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
//!     let route = req.extensions().get::<Route>().unwrap();
//!     let tags: Vec<_> = route.candidates().iter().map(|c| route.endpoint(c).tag.clone()).collect();
//!     Ok(Response::new(Full::new(Bytes::from(tags.join(",")))))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let catalog = Catalog::from_json(include_bytes!("../../tests/fixtures/catalog/demo-catalog.json"))?;
//! let svc = ServiceBuilder::new()
//!     .layer(ModelRoutingLayer::new(catalog))
//!     .layer(DataPolicyLayer::new().floor(DataFloor::deny_data_collection()))
//!     .service_fn(handle);
//! let body = r#"{"model":"mistralai/mistral-small-3.1-24b-instruct","messages":[{"role":"user","content":"hi"}]}"#;
//! let res = svc.oneshot(Request::post("/").body(Full::new(Bytes::from(body)))?).await?;
//! assert_eq!(res.status(), 200);
//! // `chutes` trains on prompts and `mistral` retains them: only DeepInfra is left.
//! # use http_body_util::BodyExt;
//! assert_eq!(res.into_body().collect().await?.to_bytes(), "deepinfra/bf16");
//! # Ok(())
//! # }
//! ```

use std::fmt;

use tower_layer::Layer;

use crate::error::{AvailabilityCode, ExcludedBy, GatewayError};
use crate::route::{DataCollection, Route, RouteStep};

pub use crate::route::RouteFuture as ResponseFuture;

/// The operator's minimum data policy, applied to every request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DataFloor {
    /// Always behave as if the request said `data_collection: "deny"`.
    pub deny_data_collection: bool,
    /// Always behave as if the request said `zdr: true`.
    pub zdr: bool,
    /// Always behave as if the request said `enforce_distillable_text: true`.
    pub enforce_distillable_text: bool,
}

impl DataFloor {
    /// No floor: requests decide.
    pub fn none() -> Self {
        DataFloor::default()
    }

    /// Never use providers that train on or retain prompts.
    pub fn deny_data_collection() -> Self {
        DataFloor {
            deny_data_collection: true,
            ..Default::default()
        }
    }

    /// Only zero-data-retention providers.
    pub fn zdr() -> Self {
        DataFloor {
            zdr: true,
            ..Default::default()
        }
    }
}

/// Layer that applies the [`DataPolicy`] middleware. See the [module docs](self) for an example.
#[derive(Clone, Copy, Debug, Default)]
#[must_use]
pub struct DataPolicyLayer {
    floor: DataFloor,
}

impl DataPolicyLayer {
    /// A layer with no floor.
    pub fn new() -> Self {
        DataPolicyLayer::default()
    }

    /// Sets the operator floor.
    pub fn floor(mut self, floor: DataFloor) -> Self {
        self.floor = floor;
        self
    }
}

impl RouteStep for DataPolicyLayer {
    fn apply(&self, route: &mut Route) -> Result<(), GatewayError> {
        let prefs = &route.view().provider;
        let deny =
            self.floor.deny_data_collection || prefs.data_collection == Some(DataCollection::Deny);
        let zdr = self.floor.zdr || prefs.zdr == Some(true);
        let distill =
            self.floor.enforce_distillable_text || prefs.enforce_distillable_text == Some(true);
        let mut removed = 0;
        if deny {
            removed += route.retain(ExcludedBy::DataPolicyTraining, |_, p| {
                !p.data_policy.training && !p.data_policy.retains_prompts
            });
        }
        if zdr {
            removed += route.retain(ExcludedBy::DataPolicyZdr, |_, p| p.data_policy.zdr);
        }
        if distill {
            let catalog = route.catalog().clone();
            removed += route.retain(ExcludedBy::DataPolicyDistillable, |e, _| {
                catalog
                    .model(&e.model_id)
                    .is_some_and(|m| m.distillable == Some(true))
            });
        }
        if removed > 0 && route.candidates().is_empty() {
            return Err(route.unavailable_as(Some(AvailabilityCode::PrivacyRestricted)));
        }
        Ok(())
    }
}

impl<S> Layer<S> for DataPolicyLayer {
    type Service = DataPolicy<S>;
    fn layer(&self, inner: S) -> Self::Service {
        DataPolicy {
            inner,
            layer: *self,
        }
    }
}

/// Middleware that removes candidates whose provider's data policy the request or the operator's floor
/// forbids. See the [module docs](self).
#[derive(Clone)]
pub struct DataPolicy<S> {
    inner: S,
    layer: DataPolicyLayer,
}

impl<S> DataPolicy<S> {
    /// Wraps `inner` with `floor`.
    pub fn new(inner: S, floor: DataFloor) -> Self {
        DataPolicyLayer::new().floor(floor).layer(inner)
    }

    /// A layer.
    pub fn layer() -> DataPolicyLayer {
        DataPolicyLayer::new()
    }

    define_inner_service_accessors!();
}

impl<S: fmt::Debug> fmt::Debug for DataPolicy<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataPolicy")
            .field("inner", &self.inner)
            .field("floor", &self.layer.floor)
            .finish()
    }
}

route_step_service!(DataPolicy);
