//! [`ResponseFuture`] of [`RateLimit`](super::RateLimit) and the 429 it answers.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::{HeaderName, HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use serde_json::{json, Value};
use tower_service::Service;

use super::rules::{Kind, Labelled};
use super::store::{Decision, Grant, RateLimitStore, Refused, StoreFuture};
use crate::body::GatewayBody;
use crate::error::{ErrorType, GatewayError};
use crate::fallback::Attempts;

/// `X-RateLimit-Limit`.
pub const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
/// `X-RateLimit-Remaining`.
pub const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
/// `X-RateLimit-Reset` (Unix milliseconds).
pub const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

pin_project! {
    /// Response future for [`RateLimit`](super::RateLimit): asks the store, then calls the inner
    /// service — or answers 429 at once.
    pub struct ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody, S::Future>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody, F> {
        /// Nothing to limit: the inner future, its answer untouched.
        Pass { #[pin] future: F },
        /// Waiting for the store's decision.
        Checking {
            decision: StoreFuture<Decision>,
            svc: Option<S>,
            req: Option<Request<ReqBody>>,
            checks: Vec<Labelled>,
            now: i64,
            store: Option<Arc<dyn RateLimitStore>>,
        },
        /// Admitted: the inner future, and what to refund if a layer further in refuses.
        Calling {
            #[pin]
            future: F,
            grant: Option<Grant>,
            store: Arc<dyn RateLimitStore>,
        },
    }
}

impl<S, ReqBody> ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    /// Passes the request through: nothing limits it.
    #[inline]
    pub(crate) fn pass(future: S::Future) -> Self {
        ResponseFuture {
            state: State::Pass { future },
        }
    }

    pub(crate) fn checking(
        decision: StoreFuture<Decision>,
        svc: S,
        req: Request<ReqBody>,
        checks: Vec<Labelled>,
        now: i64,
        store: Arc<dyn RateLimitStore>,
    ) -> Self {
        ResponseFuture {
            state: State::Checking {
                decision,
                svc: Some(svc),
                req: Some(req),
                checks,
                now,
                store: Some(store),
            },
        }
    }
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Output = Result<Response<GatewayBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Pass { future } => {
                    return future.poll(cx).map_ok(|res| res.map(GatewayBody::new));
                }
                StateProj::Checking {
                    decision,
                    svc,
                    req,
                    checks,
                    now,
                    store,
                } => match ready!(decision.as_mut().poll(cx)) {
                    Decision::Allowed(grant) => {
                        let store = store.take().expect("polled after completion");
                        let mut svc = svc.take().expect("polled after completion");
                        let req = req.take().expect("polled after completion");
                        let future = svc.call(req);
                        state.set(State::Calling {
                            future,
                            grant: Some(grant),
                            store,
                        });
                    }
                    Decision::Refused(r) => {
                        let error = refusal(&checks[r.index.min(checks.len() - 1)], &r, *now);
                        return Poll::Ready(Ok(response(error, &r)));
                    }
                    Decision::Unavailable(why) => {
                        return Poll::Ready(Ok(unavailable(&why).into_response()));
                    }
                },
                StateProj::Calling {
                    future,
                    grant,
                    store,
                } => {
                    let res = ready!(future.poll(cx))?;
                    if refused_further_in(&res) {
                        if let Some(grant) = grant.take() {
                            store.refund(grant);
                        }
                    }
                    return Poll::Ready(Ok(res.map(GatewayBody::new)));
                }
            }
        }
    }
}

/// A refusal by a layer further in (a budget 402, a 404 after filtering…) before any upstream
/// attempt: the gateway's error without the fallback's [`Attempts`].
fn refused_further_in<B>(res: &Response<B>) -> bool {
    res.extensions().get::<GatewayError>().is_some() && res.extensions().get::<Attempts>().is_none()
}

/// 429 `rate_limit_exceeded` naming the limit, with OpenRouter's `metadata.headers`.
fn refusal(l: &Labelled, r: &Refused, now: i64) -> GatewayError {
    let retry = r.retry_after(now);
    let (unit, per) = match l.kind {
        Kind::RequestsPerMinute | Kind::FreePerMinute => ("requests", "minute"),
        Kind::RequestsPerDay | Kind::FreePerDay => ("requests", "UTC day"),
        Kind::TokensPerMinute => ("tokens", "minute"),
    };
    let whose = match l.scope {
        "model" => "this model, for all callers",
        "endpoint" => "this provider endpoint, for all callers",
        "free" => "`:free` models, for this key",
        _ => "this key",
    };
    let msg = format!(
        "Rate limit exceeded: {}. The limit is {} {unit} per {per} on {whose}; retry in {} s.",
        l.kind.name(),
        r.limit,
        retry.as_secs() + u64::from(retry.subsec_nanos() > 0),
    );
    let headers = json!({
        "X-RateLimit-Limit": r.limit.to_string(),
        "X-RateLimit-Remaining": r.remaining.to_string(),
        "X-RateLimit-Reset": r.reset_unix_ms.to_string(),
    });
    GatewayError::new(ErrorType::RateLimitExceeded, msg)
        .with_metadata("headers", headers)
        .with_metadata("provider_name", Value::Null)
        .with_retry_after(retry.max(std::time::Duration::from_secs(1)))
}

/// 503: the counters could not be read (their store is unreachable and fails closed).
fn unavailable(why: &str) -> GatewayError {
    GatewayError::new(
        ErrorType::Server,
        format!("The rate-limit store is unavailable, try again later ({why})."),
    )
    .with_status(http::StatusCode::SERVICE_UNAVAILABLE)
    .with_metadata("reason", "rate_limit_store_unavailable")
}

fn response<B>(error: GatewayError, r: &Refused) -> Response<GatewayBody<B>> {
    let mut res: Response<GatewayBody<B>> = error.into_response();
    let h = res.headers_mut();
    h.insert(X_RATELIMIT_LIMIT, HeaderValue::from(r.limit));
    h.insert(X_RATELIMIT_REMAINING, HeaderValue::from(r.remaining));
    h.insert(X_RATELIMIT_RESET, HeaderValue::from(r.reset_unix_ms));
    res
}

impl<S, ReqBody> fmt::Debug for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResponseFuture(..)")
    }
}
