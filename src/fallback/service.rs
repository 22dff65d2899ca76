use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use tower_service::Service;

use super::body::ResponseBody;
use super::future::ResponseFuture;
use super::layer::{Config, ProviderFallbackLayer};
use crate::error::GatewayError;
use crate::route::Route;
use crate::BoxError;

/// Middleware that sends a routed request to its candidate endpoints in order until one answers.
/// See the [module docs](super) for an example.
#[derive(Clone)]
pub struct ProviderFallback<S> {
    pub(crate) inner: S,
    pub(crate) config: Arc<Config>,
}

impl<S> ProviderFallback<S> {
    /// Wraps `inner` with the defaults of [`ProviderFallbackLayer::new`].
    pub fn new(inner: S) -> Self {
        ProviderFallback {
            inner,
            config: ProviderFallbackLayer::new().config,
        }
    }

    /// A layer with the defaults.
    pub fn layer() -> ProviderFallbackLayer {
        ProviderFallbackLayer::new()
    }

    define_inner_service_accessors!();
}

impl<S: fmt::Debug> fmt::Debug for ProviderFallback<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderFallback")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, B, ResBody> Service<Request<B>> for ProviderFallback<S>
where
    S: Service<Request<Full<Bytes>>, Response = Response<ResBody>> + Clone,
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
    S::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = BoxError;
    type Future = ResponseFuture<S, S::Future, ResBody, B>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let (parts, body) = req.into_parts();
        if parts.extensions.get::<Route>().is_none() {
            return ResponseFuture::rejected(GatewayError::invalid_request(
                "",
                "no route: put ModelRouting in front of ProviderFallback",
            ));
        }
        // The ready service goes into the future; a fresh clone stays here.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        // None of the request's extensions goes upstream; the route (and the caller's Messages
        // body) are read from the map in place.
        let request = (parts.headers, parts.extensions, body);
        ResponseFuture::new(inner, self.config.clone(), request)
    }
}
