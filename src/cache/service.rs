//! [`ResponseCache`]: the request side (is this request cached, under which key, for how long).

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use super::body::ResponseBody;
use super::future::{Ctx, ResponseFuture};
use super::key::{flag, parse_ttl, CacheKey, CACHE_CLEAR_NAME, CACHE_NAME, CACHE_TTL_NAME};
use super::layer::Config;
use crate::route::Route;
use crate::usage_meter::{metadata_requested, CallerKey};

/// Middleware serving repeated identical requests from a cache, OpenRouter's way.
///
/// See the [module docs](super) for the behaviour and an example.
#[derive(Clone)]
pub struct ResponseCache<S> {
    pub(crate) inner: S,
    pub(crate) config: Arc<Config>,
}

impl<S> ResponseCache<S> {
    define_inner_service_accessors!();
}

impl<S: fmt::Debug> fmt::Debug for ResponseCache<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseCache")
            .field("inner", &self.inner)
            .field("config", &*self.config)
            .finish()
    }
}

/// What the cache does with one request: `None` to pass it through.
pub(crate) fn decide<B>(cfg: &Config, req: &Request<B>) -> Option<(CacheKey, Duration, bool)> {
    cfg.store.as_ref()?;
    let caller = req.extensions().get::<CallerKey>()?;
    let route = req.extensions().get::<Route>()?;
    let view = route.view();
    let model = view.model.as_deref().unwrap_or("");
    let headers = req.headers();
    // First what the usual request settles at once: no cache header and no operator rule.
    let rule_ttl = match flag(headers, CACHE_NAME) {
        Some(false) => return None,
        Some(true) => cfg.rule.as_ref().and_then(|r| r.ttl(caller, model)),
        None => Some(cfg.rule.as_ref()?.ttl(caller, model)?),
    };
    // `openrouter_metadata` describes this request's own routing and is never sent on a cache
    // hit: a request that asks for it neither reads nor fills the cache.
    if metadata_requested(headers) {
        return None;
    }
    let ttl = headers
        .get(CACHE_TTL_NAME)
        .and_then(|v| parse_ttl(v.as_bytes()))
        .or(rule_ttl.map(super::layer::clamp_ttl))
        .unwrap_or(cfg.default_ttl);
    let clear = flag(headers, CACHE_CLEAR_NAME) == Some(true);
    let key = CacheKey::new(
        caller.as_str(),
        model,
        req.uri().path(),
        view.stream,
        route.body(),
    );
    Some((key, ttl, clear))
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ResponseCache<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    ResBody: Body<Data = Bytes>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    // Not inlined: a call of its own lets the inner service build its (large) future right in
    // the one returned, where an inlined one costs a copy of it per layer.
    #[inline(never)]
    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        if self.config.store.is_none() {
            // Disabled: nothing to decide.
            return ResponseFuture::passthrough(self.inner.call(req));
        }
        self.cached(req)
    }
}

impl<S> ResponseCache<S> {
    /// Decides what the cache does with `req` and starts it: a lookup, or a pass-through.
    #[inline(never)]
    fn cached<ReqBody, ResBody>(&mut self, req: Request<ReqBody>) -> ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    {
        let Some((key, ttl, clear)) = decide(&self.config, &req) else {
            return ResponseFuture::passthrough(self.inner.call(req));
        };
        let cfg = self.config.clone();
        let get = match (&cfg.store, clear) {
            (Some(store), false) => Some(store.get(&key)),
            (Some(store), true) => {
                store.remove(&key);
                None
            }
            (None, _) => None,
        };
        // Clone-and-swap: the service that was polled ready is the one that is called (if the
        // lookup misses).
        let clone = self.inner.clone();
        let svc = std::mem::replace(&mut self.inner, clone);
        let ctx = Ctx {
            cfg,
            key,
            ttl,
            lead: None,
        };
        ResponseFuture::lookup(get, svc, req, ctx)
    }
}
