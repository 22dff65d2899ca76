use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::{header, Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use tower_service::Service;

use super::body::ResponseBody;
use super::ledger::{Ledger, LedgerFuture, Refusal, Reservation};
use super::metadata;
use super::meter::{Mode, Pending};
use super::settle::{Ctx, Hold};
use crate::catalog::{Catalog, ServiceTier, Usd};
use crate::error::{ErrorType, GatewayError};
use crate::route::ServedBy;
use crate::telemetry;
use tracing::Span;

/// The reservation estimate of a request (what a 402 explains).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Estimate {
    pub(crate) amount: Usd,
    pub(crate) max_output: u64,
    pub(crate) output_price: Usd,
    pub(crate) fixed: Usd,
}

pin_project! {
    /// Response future for [`UsageMeter`](super::UsageMeter): reserves the budget (when the
    /// request has a key and the layer a ledger), calls the inner service, and wraps the response
    /// body in a [`ResponseBody`] — or answers 402 at once.
    pub struct ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody, S::Future>,
        // The request's context, in the meter it starts when the response arrives.
        ctx: Option<Pending>,
        // The request's `gen_ai.request` span, entered while the layers below are polled.
        span: Span,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody, F> {
        Reserving {
            reserve: LedgerFuture<Result<Reservation, Refusal>>,
            ledger: Arc<dyn Ledger>,
            svc: Option<S>,
            req: Option<Request<ReqBody>>,
            estimate: Estimate,
        },
        Calling { #[pin] future: F },
        Rejected { error: Option<GatewayError> },
    }
}

impl<S, ReqBody> ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    #[inline]
    pub(crate) fn calling(future: S::Future, ctx: Pending, span: Span) -> Self {
        ResponseFuture {
            state: State::Calling { future },
            ctx: Some(ctx),
            span,
        }
    }

    /// The answer `error` (a refused reservation), given when polled.
    pub(crate) fn rejected(error: GatewayError, ctx: Pending, span: Span) -> Self {
        ResponseFuture {
            state: State::Rejected { error: Some(error) },
            ctx: Some(ctx),
            span,
        }
    }

    pub(crate) fn reserving(
        reserve: LedgerFuture<Result<Reservation, Refusal>>,
        ledger: Arc<dyn Ledger>,
        svc: S,
        req: Request<ReqBody>,
        estimate: Estimate,
        ctx: Pending,
        span: Span,
    ) -> Self {
        ResponseFuture {
            state: State::Reserving {
                reserve,
                ledger,
                svc: Some(svc),
                req: Some(req),
                estimate,
            },
            ctx: Some(ctx),
            span,
        }
    }
}

/// The answer to a refused reservation ([`refusal_error`]), its error type recorded on the
/// request's span.
pub(crate) fn refused(r: &Refusal, e: &Estimate, span: &Span) -> GatewayError {
    let error = refusal_error(r, e);
    telemetry::record_error(span, error.error_type().as_str());
    error
}

/// 402 `payment_required` in OpenRouter's words
/// (<https://openrouter.ai/docs/api/reference/errors-and-debugging>): "This request requires more
/// credits, or fewer max_tokens. You requested up to N tokens, but can only afford M." — M being
/// what the remaining budget (or the per-request cap) pays for at the output price, after the
/// request's fixed part. Which limit refused, and its figures, are in `metadata`.
fn refusal_error(r: &Refusal, e: &Estimate) -> GatewayError {
    if let Some(why) = &r.unavailable {
        // Not the caller's budget: the ledger could not check it (503, retry later).
        return GatewayError::new(
            ErrorType::Server,
            format!("The budget ledger is unavailable, try again later ({why})."),
        )
        .with_status(http::StatusCode::SERVICE_UNAVAILABLE)
        .with_metadata("reason", "ledger_unavailable");
    }
    let afford = if e.output_price.is_zero() {
        0
    } else {
        use rust_decimal::prelude::ToPrimitive;
        let left = r.remaining.sub(e.fixed);
        if left.is_negative() {
            0
        } else {
            (left.as_decimal() / e.output_price.as_decimal())
                .floor()
                .to_u64()
                .unwrap_or(0)
        }
    };
    let msg = format!(
        "This request requires more credits, or fewer max_tokens. You requested up to {} \
         tokens, but can only afford {afford}.",
        e.max_output
    );
    let limit_reset = match r.period {
        None => "per_request",
        Some(p) => p.reset_name().unwrap_or("total"),
    };
    GatewayError::new(ErrorType::PaymentRequired, msg)
        .with_metadata("provider_name", serde_json::Value::Null)
        .with_metadata("limit", r.limit.to_f64())
        .with_metadata("limit_remaining", r.remaining.to_f64())
        .with_metadata("requested", e.amount.to_f64())
        .with_metadata("limit_reset", limit_reset)
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Body<Data = Bytes>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let _entered = this.span.enter();
        loop {
            match this.state.as_mut().project() {
                StateProj::Reserving {
                    reserve,
                    ledger,
                    svc,
                    req,
                    estimate,
                } => match ready!(reserve.as_mut().poll(cx)) {
                    Ok(reservation) => {
                        if let Some(ctx) = this.ctx.as_mut() {
                            ctx.ctx_mut().hold = Some(Hold::new(ledger.clone(), reservation));
                        } else {
                            ledger.release(reservation);
                        }
                        let (Some(mut svc), Some(req)) = (svc.take(), req.take()) else {
                            unreachable!("ResponseFuture polled after completion")
                        };
                        let future = svc.call(req);
                        this.state.set(State::Calling { future });
                    }
                    Err(refusal) => {
                        let error = refused(&refusal, estimate, this.span);
                        this.state.set(State::Rejected { error: Some(error) });
                    }
                },
                StateProj::Calling { future } => {
                    let res = ready!(future.poll(cx))?;
                    let ctx = this
                        .ctx
                        .take()
                        .expect("ResponseFuture polled after completion");
                    return Poll::Ready(Ok(wrap(res, ctx, cx)));
                }
                StateProj::Rejected { error } => {
                    let e = error
                        .take()
                        .expect("ResponseFuture polled after completion");
                    let mut res: Self::Output = Ok(e.into_response());
                    if let (Ok(res), Some(ctx)) = (res.as_mut(), this.ctx.as_ref()) {
                        generation_id_header(res.headers_mut(), ctx.ctx());
                    }
                    return Poll::Ready(res);
                }
            }
        }
    }
}

/// `X-Generation-Id` on every answer the meter returns (errors too: a caller can quote it), when
/// the layer rewrites ids.
/// `X-Generation-Id` (a constant: inserting a `&str` name parses it on every response).
const X_GENERATION_ID: http::HeaderName = http::HeaderName::from_static("x-generation-id");

fn generation_id_header(headers: &mut http::HeaderMap, ctx: &Ctx) {
    if ctx.rewrite {
        if let Some(v) = ctx.id.header_value() {
            headers.insert(X_GENERATION_ID, v);
        }
    }
}

/// The response with the meter's head edits and its body wrapped (a non-streamed answer that
/// is already complete is edited now, see [`ResponseBody::new`]).
fn wrap<B: Body<Data = Bytes>>(
    res: Response<B>,
    mut pending: Pending,
    cx: &mut Context<'_>,
) -> Response<ResponseBody<B>> {
    let (mut parts, body) = res.into_parts();
    let ctx = pending.ctx_mut();
    ctx.success = parts.status.is_success();
    ctx.streamed = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"));
    let served = parts.extensions.get::<ServedBy>();
    // The served model's position in the catalog and its shared id: one lookup for both.
    let served_model = served
        .and_then(|s| ctx.catalog.as_ref()?.model_entry(s.endpoint.model()))
        .map(|(m, id)| (m, id.clone()));
    if let Some(catalog) = ctx.catalog.as_ref() {
        let first = ctx.first_candidate.map(|i| i as usize);
        let index = match served {
            // An endpoint the route's catalog does not know (a reload in between) is priced as
            // the first candidate rather than for free.
            Some(s) => served_model
                .as_ref()
                .and_then(|&(m, _)| {
                    catalog.endpoint_range_at(m).find(|&i| {
                        catalog
                            .endpoint(i)
                            .is_some_and(|e| e.tag == s.endpoint.tag())
                    })
                })
                .or(first),
            None => first,
        };
        if let Some(i) = index {
            ctx.endpoint = u32::try_from(i).ok();
            ctx.service_tier = catalog
                .endpoint(i)
                .and_then(|e| e.service_tier)
                .and_then(|t| serde_json::to_string(&t).ok());
            // Named by the catalog unless `ServedBy` names it (below).
            if let Some(e) = catalog.endpoint(i).filter(|_| served.is_none()) {
                ctx.endpoint_key = Some(e.key().clone());
                ctx.model = shared_model_id(Some(catalog), &e.model_id);
                ctx.provider_name = catalog.endpoint_call(i).map_or_else(
                    || Arc::from(e.provider_name.as_str()),
                    |call| call.name.clone(),
                );
            }
        }
    }
    if let Some(s) = served {
        served_by(ctx, s, served_model.map(|(_, id)| id));
    }
    ctx.served_tier = served_tier(ctx);
    head_span(ctx, &parts, served);
    let mode = if !ctx.success {
        if metadata::for_error(&mut ctx.metadata, parts.status, &parts.extensions) {
            Mode::Json
        } else {
            Mode::Pass
        }
    } else if ctx.streamed {
        Mode::Sse
    } else {
        Mode::Json
    };
    generation_id_header(&mut parts.headers, ctx);
    if ctx.rewrite && mode == Mode::Json {
        // The edits change the length: the body's exact `size_hint` gives the new one when it is
        // known now (hyper then sets the header), else it is sent chunked.
        parts.headers.remove(header::CONTENT_LENGTH);
    }
    // ProviderFallback's reading of the answer, for a body edited whole now (below), read in place
    // (not moved); then cleared.
    let mut served = parts.extensions.get_mut::<ServedBy>();
    let answer = served.as_mut().and_then(|s| s.answer.as_mut());
    let body = ResponseBody::new(body, pending.start(mode), cx, answer);
    if let Some(s) = served {
        s.answer = None;
    }
    Response::from_parts(parts, body)
}

/// What `ServedBy` tells the context: the serving endpoint and the attempts. `model` is the
/// catalog's shared id of the served model, if the catalog has it.
fn served_by(ctx: &mut Ctx, s: &ServedBy, model: Option<Arc<str>>) {
    ctx.endpoint_key = Some(s.endpoint.clone());
    ctx.model = model.unwrap_or_else(|| Arc::from(s.endpoint.model()));
    ctx.provider_name = s.provider_name.clone();
    ctx.served_latency = s.latency;
    let sent = s.attempts.iter().filter(|a| a.sent).count();
    ctx.attempts = u32::try_from(sent.max(1)).unwrap_or(u32::MAX);
    ctx.upstream_request_id = s.upstream_request_id.clone();
    if !ctx.cfg.sinks.is_empty() {
        ctx.provider_responses = s.attempts.clone();
    }
    if let Some(m) = ctx.metadata.as_mut() {
        m.set_attempts(&s.attempts);
    }
}

/// The model id `id`, shared with the catalog when it has the model (cloning allocates nothing).
fn shared_model_id(catalog: Option<&Catalog>, id: &str) -> Arc<str> {
    catalog
        .and_then(|c| c.model_id(id))
        .cloned()
        .unwrap_or_else(|| Arc::from(id))
}

/// The service tier of the serving endpoint: its own, else `default`.
fn served_tier(ctx: &Ctx) -> Option<&'static str> {
    let e = ctx.catalog.as_ref()?.endpoint(ctx.endpoint? as usize)?;
    Some(match e.service_tier {
        None => "default",
        Some(ServiceTier::Flex) => "flex",
        Some(ServiceTier::Priority) => "priority",
        Some(ServiceTier::Ultrafast) => "ultrafast",
    })
}

/// What the response head tells the request's span: who served it, or why it failed.
fn head_span(ctx: &Ctx, parts: &http::response::Parts, served: Option<&ServedBy>) {
    let span = &ctx.span;
    if span.is_disabled() {
        return;
    }
    if let Some(s) = served.filter(|s| !s.provider_slug.is_empty()) {
        span.record("gen_ai.provider.name", &*s.provider_slug);
    } else if !ctx.provider_name.is_empty() {
        span.record("gen_ai.provider.name", &*ctx.provider_name);
    }
    if !ctx.model.is_empty() {
        span.record("gen_ai.response.model", &*ctx.model);
    }
    if parts.status.is_success() {
        span.record("gen_ai.response.id", ctx.id.as_str());
    } else {
        match parts.extensions.get::<GatewayError>() {
            Some(e) => telemetry::record_error(span, e.error_type().as_str()),
            None => telemetry::record_error(span, parts.status.as_str()),
        }
    }
}

impl<S, ReqBody> fmt::Debug for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("usage_meter::ResponseFuture(..)")
    }
}
