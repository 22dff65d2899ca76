//! `PriceCap`: remove candidates priced above the request's `max_price` or the operator's cap.
//!
//! `max_price` is in USD per **million** tokens for `prompt` and `completion` and USD per unit for
//! `request`, `image` and `audio`
//! ([max price](https://openrouter.ai/docs/features/provider-routing#maximum-price)); catalog prices are USD per token. The
//! comparison converts the catalog price exactly (`× 10⁶` in decimal, never `f64`) and uses the price
//! this request would pay: pricing overrides for its prompt size and arrival time applied
//! (`min_prompt_tokens`, UTC windows) and the endpoint's `discount` taken off. A price the
//! endpoint does not charge (absent key) passes every cap.
//!
//! The operator's cap ([`PriceCapLayer::cap`]) applies to every request; when both set a field, the
//! lower cap wins. Nothing left → 404 `constraint_filtered` with `excluded_by: ["max_price"]` (plus any
//! constraint ModelRouting applied before). Without a `Route` in the extensions (no ModelRouting in
//! front) the layer fails closed: a 500 naming it and a `warn!`, never an unchecked request.
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
//! use tower_ai_gateway::price_cap::PriceCapLayer;
//!
//! async fn handle(_: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
//!     Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let catalog = Catalog::from_json(include_bytes!("../../tests/fixtures/catalog/demo-catalog.json"))?;
//! let svc = ServiceBuilder::new()
//!     .layer(ModelRoutingLayer::new(catalog))
//!     .layer(PriceCapLayer::new())
//!     .service_fn(handle);
//! // Claude costs $3/M prompt tokens everywhere: a $1 cap leaves nothing.
//! let body = r#"{"model":"anthropic/claude-sonnet-4.5","messages":[{"role":"user","content":"hi"}],"provider":{"max_price":{"prompt":1}}}"#;
//! let res = svc.oneshot(Request::post("/").body(Full::new(Bytes::from(body)))?).await?;
//! assert_eq!(res.status(), 404);
//! # Ok(())
//! # }
//! ```

use std::fmt;

use tower_layer::Layer;

use crate::catalog::Usd;
use crate::error::{ExcludedBy, GatewayError};
use crate::route::{MaxPrice, Route, RouteStep};

pub use crate::route::RouteFuture as ResponseFuture;

/// Layer that applies the [`PriceCap`] middleware. See the [module docs](self) for an example.
#[derive(Clone, Copy, Debug, Default)]
#[must_use]
pub struct PriceCapLayer {
    cap: MaxPrice,
}

impl PriceCapLayer {
    /// A layer with no operator cap (only requests' `max_price` applies).
    pub fn new() -> Self {
        PriceCapLayer::default()
    }

    /// The operator's cap, in `max_price` units (USD per million tokens for prompt and completion).
    pub fn cap(mut self, cap: MaxPrice) -> Self {
        self.cap = cap;
        self
    }
}

impl RouteStep for PriceCapLayer {
    fn apply(&self, route: &mut Route) -> Result<(), GatewayError> {
        let req = match route.view().provider.max_price.as_deref() {
            Some(&req) => req,
            // No cap at all (the usual case): nothing to compare.
            None if self.cap.is_empty() => return Ok(()),
            None => MaxPrice::default(),
        };
        self.apply_cap(route, req)
    }
}

impl PriceCapLayer {
    /// Removes the candidates priced above the lower of `req` and the operator's cap.
    fn apply_cap(&self, route: &mut Route, req: MaxPrice) -> Result<(), GatewayError> {
        let cap = MaxPrice {
            prompt: lower(req.prompt, self.cap.prompt),
            completion: lower(req.completion, self.cap.completion),
            request: lower(req.request, self.cap.request),
            image: lower(req.image, self.cap.image),
            audio: lower(req.audio, self.cap.audio),
        };
        if cap.is_empty() {
            return Ok(());
        }
        let prompt_tokens = route.prompt_tokens();
        let unix_millis = route.unix_millis();
        // Token caps converted to USD per token once, exactly, instead of converting every price.
        let prompt_cap = cap.prompt.map(Usd::from_per_million);
        let completion_cap = cap.completion.map(Usd::from_per_million);
        let removed = route.retain(ExcludedBy::MaxPrice, |e, _| {
            // Common case: no overrides, no discount: compare the catalog prices as they are.
            let simple =
                e.pricing.overrides.is_empty() && e.pricing.discount.is_none_or(|d| d.is_zero());
            if simple {
                let pr = &e.pricing;
                let ok = |price: Option<Usd>, cap: Option<Usd>| {
                    cap.is_none_or(|c| price.unwrap_or_default() <= c)
                };
                return ok(Some(pr.prompt), prompt_cap)
                    && ok(Some(pr.completion), completion_cap)
                    && ok(pr.request, cap.request)
                    && ok(pr.image, cap.image)
                    && ok(pr.audio, cap.audio);
            }
            let p = e.pricing.effective(prompt_tokens, unix_millis);
            let discounted = p.multiplier != rust_decimal::Decimal::ONE;
            let within = |price: Usd, cap: Option<Usd>| {
                cap.is_none_or(|c| {
                    let paid = if discounted {
                        price.scale(p.multiplier)
                    } else {
                        price
                    };
                    paid <= c
                })
            };
            within(p.prompt, prompt_cap)
                && within(p.completion, completion_cap)
                && within(p.request, cap.request)
                && within(p.image, cap.image)
                && within(p.audio, cap.audio)
        });
        if removed > 0 && route.candidates().is_empty() {
            return Err(route.unavailable());
        }
        Ok(())
    }
}

impl<S> Layer<S> for PriceCapLayer {
    type Service = PriceCap<S>;
    fn layer(&self, inner: S) -> Self::Service {
        PriceCap {
            inner,
            layer: *self,
        }
    }
}

/// Middleware that removes candidates over the price caps. See the [module docs](self).
#[derive(Clone)]
pub struct PriceCap<S> {
    inner: S,
    layer: PriceCapLayer,
}

fn lower(a: Option<Usd>, b: Option<Usd>) -> Option<Usd> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

impl<S> PriceCap<S> {
    /// Wraps `inner` with an operator cap.
    pub fn new(inner: S, cap: MaxPrice) -> Self {
        PriceCapLayer::new().cap(cap).layer(inner)
    }

    /// A layer.
    pub fn layer() -> PriceCapLayer {
        PriceCapLayer::new()
    }

    define_inner_service_accessors!();
}

impl<S: fmt::Debug> fmt::Debug for PriceCap<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PriceCap")
            .field("inner", &self.inner)
            .field("cap", &self.layer.cap)
            .finish()
    }
}

route_step_service!(PriceCap);
