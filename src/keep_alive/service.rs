use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::layer::Config;
use super::ResponseFuture;
use crate::route::Route;
use crate::usage_meter::GenerationId;
use crate::wire::OriginalMessages;

/// Middleware that keeps a streamed request's connection warm until its first content (see the
/// [module docs](super)).
#[derive(Clone)]
pub struct KeepAlive<S> {
    pub(crate) inner: S,
    pub(crate) config: Arc<Config>,
}

impl<S: fmt::Debug> fmt::Debug for KeepAlive<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeepAlive")
            .field("inner", &self.inner)
            .field("config", &*self.config)
            .finish()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for KeepAlive<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<super::KeepAliveBody<S::Future, ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    // Not inlined: a call of its own lets the inner service build its (large) future right in
    // the one returned, where an inlined one costs a copy of it per layer.
    #[inline(never)]
    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        if self.config.enabled && streamed(&req) {
            self.watch(req)
        } else {
            ResponseFuture::pass(self.inner.call(req))
        }
    }
}

/// Whether the answer will be a stream this layer keeps warm.
#[inline]
fn streamed<B>(req: &Request<B>) -> bool {
    req.extensions()
        .get::<Route>()
        .is_some_and(|r| r.view().stream)
        // A Messages caller may be answered on the Messages wire, passed through from an
        // Anthropic-wire provider: the layer cannot know that before the answer comes.
        && req.extensions().get::<OriginalMessages>().is_none()
}

impl<S> KeepAlive<S> {
    /// Calls the inner service for a stream, watching for its answer to come in time.
    #[inline(never)]
    fn watch<ReqBody, ResBody>(&mut self, mut req: Request<ReqBody>) -> ResponseFuture<S::Future>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    {
        let id = match req.extensions().get::<GenerationId>() {
            Some(id) => *id,
            None => {
                let unix_millis = req
                    .extensions()
                    .get::<Route>()
                    .map_or(0, Route::unix_millis);
                let id = GenerationId::new(unix_millis);
                req.extensions_mut().insert(id);
                id
            }
        };
        let context = super::body::ChunkContext::of(&req, id);
        ResponseFuture::watch(self.inner.call(req), self.config.clone(), context)
    }
}
