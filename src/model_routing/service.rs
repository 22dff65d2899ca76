use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::Full;
use tower_service::Service;

use super::future::ResponseFuture;
use super::layer::{Config, ModelRoutingLayer};
use crate::body::GatewayBody;
use crate::catalog::CatalogHandle;
use crate::error::GatewayError;
use crate::BoxError;

/// Middleware that buffers and parses the request once, resolves the requested models into ordered
/// candidate endpoints and puts the [`Route`](crate::route::Route) into the request extensions.
/// See the [module docs](super) for an example.
#[derive(Clone)]
pub struct ModelRouting<S> {
    pub(crate) inner: S,
    pub(crate) config: Arc<Config>,
}

impl<S> ModelRouting<S> {
    /// Wraps `inner`, routing against `catalog` with the defaults of [`ModelRoutingLayer::new`].
    pub fn new(inner: S, catalog: impl Into<CatalogHandle>) -> Self {
        ModelRoutingLayer::new(catalog).layer_inner(inner)
    }

    /// A layer.
    pub fn layer(catalog: impl Into<CatalogHandle>) -> ModelRoutingLayer {
        ModelRoutingLayer::new(catalog)
    }

    define_inner_service_accessors!();
}

impl ModelRoutingLayer {
    fn layer_inner<S>(&self, inner: S) -> ModelRouting<S> {
        ModelRouting {
            inner,
            config: self.config.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for ModelRouting<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelRouting")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, B, ResBody> Service<Request<B>> for ModelRouting<S>
where
    S: Service<Request<Full<Bytes>>, Response = Response<ResBody>> + Clone,
    B: Body,
    B::Error: Into<BoxError>,
{
    type Response = Response<GatewayBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<B, S, S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let limit = self.config.body_limit;
        // Declared too large, or known to be by the body itself (at least its size hint's lower
        // bound): refused before a byte is read.
        let declared = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let known = req.body().size_hint().lower();
        if declared.is_some_and(|n| n > limit as u64) || known > limit as u64 {
            return ResponseFuture::rejected(GatewayError::payload_too_large(limit));
        }
        // The ready service goes into the future; a fresh clone stays here.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let (parts, body) = req.into_parts();
        ResponseFuture::collecting(body, parts, inner, self.config.clone())
    }
}
