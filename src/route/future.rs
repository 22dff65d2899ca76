use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::Response;
use pin_project_lite::pin_project;

use crate::body::GatewayBody;
use crate::error::GatewayError;

pin_project! {
    /// Response future of the layers that refine a [`Route`](super::Route) (DataPolicy, PriceCap,
    /// PercentileDeprioritize): either the inner service's future or an immediate rejection.
    pub struct RouteFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Inner { #[pin] future: F },
        Rejected { error: Option<GatewayError> },
    }
}

impl<F> RouteFuture<F> {
    pub(crate) fn inner(future: F) -> Self {
        RouteFuture {
            kind: Kind::Inner { future },
        }
    }

    pub(crate) fn rejected(error: GatewayError) -> Self {
        RouteFuture {
            kind: Kind::Rejected { error: Some(error) },
        }
    }
}

impl<F, B, E> Future for RouteFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<GatewayBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future } => {
                let res = ready!(future.poll(cx))?;
                Poll::Ready(Ok(res.map(GatewayBody::new)))
            }
            KindProj::Rejected { error } => {
                let e = error.take().expect("polled after completion");
                Poll::Ready(Ok(e.into_response()))
            }
        }
    }
}

impl<F> std::fmt::Debug for RouteFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RouteFuture(..)")
    }
}

/// The answer of a route-step layer that finds no [`Route`](super::Route) in the request: a 500 naming
/// the misordered layer, logged at `warn!`. Failing closed matters most for DataPolicy: a privacy
/// filter that silently let requests through would send prompts where the caller said not to.
#[cold]
pub(crate) fn missing_route(layer: &'static str) -> GatewayError {
    tracing::warn!(
        layer,
        "{layer} found no Route in the request extensions: ModelRouting must be in front of it"
    );
    GatewayError::new(
        crate::error::ErrorType::Server,
        format!("{layer} needs a Route: put ModelRouting in front of it"),
    )
}

/// A step that refines a [`Route`](super::Route) after ModelRouting has planned it: DataPolicy,
/// PriceCap and PercentileDeprioritize, each as its layer's configuration. As a layer of its own,
/// a step reads the route from the request extensions ([`route_step_service!`]); inside
/// [`GatewayLayer`](crate::GatewayLayer), ModelRouting runs the steps on the route it has just
/// planned, with no layer, future or body wrapper of their own.
pub(crate) trait RouteStep: Send + Sync + 'static {
    /// Refines `route`, or refuses the request.
    fn apply(&self, route: &mut super::Route) -> Result<(), GatewayError>;
}

/// Implements `Service` for a layer whose service holds its [`RouteStep`] in `layer`: the step
/// refines the route in the request extensions; a request without a route is refused
/// ([`missing_route`]) without calling the inner service.
macro_rules! route_step_service {
    ($svc:ident) => {
        impl<S, B, ResBody> tower_service::Service<http::Request<B>> for $svc<S>
        where
            S: tower_service::Service<http::Request<B>, Response = http::Response<ResBody>>,
        {
            type Response = http::Response<$crate::body::GatewayBody<ResBody>>;
            type Error = S::Error;
            type Future = $crate::route::RouteFuture<S::Future>;

            #[inline]
            fn poll_ready(
                &mut self,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Result<(), Self::Error>> {
                self.inner.poll_ready(cx)
            }

            fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
                let Some(route) = req.extensions_mut().get_mut::<$crate::route::Route>() else {
                    return $crate::route::RouteFuture::rejected($crate::route::missing_route(
                        stringify!($svc),
                    ));
                };
                if let Err(e) = $crate::route::RouteStep::apply(&self.layer, route) {
                    return $crate::route::RouteFuture::rejected(e);
                }
                $crate::route::RouteFuture::inner(self.inner.call(req))
            }
        }
    };
}
