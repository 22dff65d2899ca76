use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::body::ChunkContext;
use super::layer::Config;
use super::ResponseFuture;
use crate::route::{Route, ShortString};
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
        let routed = if self.config.enabled {
            streamed(&req)
        } else {
            None
        };
        match routed {
            Some(routed) => self.watch(req, routed),
            None => ResponseFuture::pass(self.inner.call(req)),
        }
    }
}

/// What a stream this layer keeps warm takes from its route (read once): when the route was made,
/// and the first requested model.
struct Routed {
    unix_millis: i64,
    model: ShortString,
}

/// The route's part of the answer's context, if the answer will be a stream this layer keeps warm.
#[inline]
fn streamed<B>(req: &Request<B>) -> Option<Routed> {
    let route = req
        .extensions()
        .get::<Route>()
        .filter(|r| r.view().stream)?;
    // A Messages caller may be answered on the Messages wire, passed through from an
    // Anthropic-wire provider: the layer cannot know that before the answer comes.
    if req.extensions().get::<OriginalMessages>().is_some() {
        return None;
    }
    Some(Routed {
        unix_millis: route.unix_millis(),
        model: route
            .view()
            .first_requested_model()
            .unwrap_or_default()
            .into(),
    })
}

impl<S> KeepAlive<S> {
    /// Calls the inner service for a stream, watching for its answer to come in time.
    #[inline(never)]
    fn watch<ReqBody, ResBody>(
        &mut self,
        mut req: Request<ReqBody>,
        routed: Routed,
    ) -> ResponseFuture<S::Future>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    {
        let id = match req.extensions().get::<GenerationId>() {
            Some(id) => *id,
            None => {
                let id = GenerationId::new(routed.unix_millis);
                req.extensions_mut().insert(id);
                id
            }
        };
        let context = ChunkContext::new(id, routed.unix_millis, routed.model);
        ResponseFuture::watch(self.inner.call(req), self.config.clone(), context)
    }
}
