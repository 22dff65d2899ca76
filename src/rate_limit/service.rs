//! `Service` for [`RateLimit`].

use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::future::ResponseFuture;
use super::layer::RateLimit;
use crate::body::GatewayBody;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RateLimit<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
{
    type Response = Response<GatewayBody<ResBody>>;
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
        if self.limited {
            self.limit(req)
        } else {
            ResponseFuture::pass(self.inner.call(req))
        }
    }
}

impl<S> RateLimit<S> {
    /// The request's checks, in one store call; the inner service is called once they pass.
    #[inline(never)]
    fn limit<ReqBody, ResBody>(&mut self, req: Request<ReqBody>) -> ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    {
        let checks = self.layer.rules.checks(&req);
        if checks.is_empty() {
            return ResponseFuture::pass(self.inner.call(req));
        }
        let now = self.layer.clock.unix_millis();
        let store = self.layer.store.clone();
        let decision = store.acquire(checks.iter().map(|l| l.check.clone()).collect(), now);
        // Clone-and-swap: the service that was polled ready is the one that is called.
        let clone = self.inner.clone();
        let svc = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::checking(decision, svc, req, checks, now, store)
    }
}
