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
use super::meter::{Meter, Mode, Pending};
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
    /// body in a [`ResponseBody`] — or answers 402 at once. A non-streamed answer whose length
    /// the body tells exactly is read whole before the response is returned, so that its edit
    /// goes out with its exact length.
    pub struct ResponseFuture<S, ReqBody, ResBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody, S::Future, ResBody>,
        // The request's context, in the meter it starts when the response arrives.
        ctx: Option<Pending>,
        // The request's `gen_ai.request` span, entered while the layers below are polled.
        span: Span,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody, F, B> {
        Reserving {
            reserve: LedgerFuture<Result<Reservation, Refusal>>,
            ledger: Arc<dyn Ledger>,
            svc: Option<S>,
            req: Option<Request<ReqBody>>,
            estimate: Estimate,
        },
        Calling { #[pin] future: F },
        // The answer's body read to its end, pinned here (polling it in place costs no box),
        // then dropped where it lies.
        Reading { #[pin] body: B, whole: Option<Whole> },
        Rejected { error: Option<GatewayError> },
        Done,
    }
}

/// A non-streamed answer being read whole: the response head, the body's exact length, its
/// first frame (kept as it came: the usual answer is one frame; held here rather than in the
/// meter's block, which stays within the allocator's fast-path size), and the meter, which
/// accumulates the frames when there are more.
struct Whole {
    parts: http::response::Parts,
    len: u64,
    first: Option<Bytes>,
    meter: Meter,
}

/// How reading a whole answer ended.
enum Read<E> {
    /// The body ended (with these trailers, if any): its data is the first frame kept, or in
    /// the meter.
    Complete(Option<http::HeaderMap>),
    /// It went over the meter's limit: passed on as it came, unedited.
    Passed(Bytes),
    /// It failed.
    Failed(E),
}

impl<S, ReqBody, ResBody> ResponseFuture<S, ReqBody, ResBody>
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

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody, ResBody>
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
                    match wrap(res, ctx) {
                        Wrapped::Ready(res) => return Poll::Ready(Ok(res)),
                        Wrapped::Whole(body, whole) => this.state.set(State::Reading {
                            body,
                            whole: Some(whole),
                        }),
                    }
                }
                StateProj::Reading { mut body, whole } => {
                    let read = {
                        let w = whole
                            .as_mut()
                            .expect("ResponseFuture polled after completion");
                        ready!(read_whole(body.as_mut(), w, cx))
                    };
                    let whole = whole
                        .take()
                        .expect("ResponseFuture polled after completion");
                    // Done with the inner body: dropped where it lies, before the edit allocates.
                    this.state.set(State::Done);
                    return Poll::Ready(Ok(whole.finish(read)));
                }
                StateProj::Done => panic!("ResponseFuture polled after completion"),
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

/// What the meter makes of the response head.
enum Wrapped<B: Body> {
    /// The response, its body wrapped to be read frame by frame.
    Ready(Response<ResponseBody<B>>),
    /// A non-streamed answer of a known length, within the meter's limit: to be read whole
    /// first ([`read_whole`]).
    Whole(B, Whole),
}

/// The response with the meter's head edits, and its body wrapped or to be read whole.
fn wrap<B: Body<Data = Bytes>>(res: Response<B>, mut pending: Pending) -> Wrapped<B> {
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
    let meter = pending.start(mode);
    let whole = body
        .size_hint()
        .exact()
        .filter(|&n| mode == Mode::Json && n > 0 && n <= meter.json_limit() as u64);
    match whole {
        Some(len) => Wrapped::Whole(
            body,
            Whole {
                parts,
                len,
                first: None,
                meter,
            },
        ),
        None => Wrapped::Ready(Response::from_parts(
            parts,
            ResponseBody::metered(body, meter),
        )),
    }
}

/// Reads a non-streamed answer to its end. Stops early, keeping what it read, when the body
/// sends more than its exact length (a broken body: the rest is not read).
fn read_whole<B: Body<Data = Bytes>>(
    mut body: Pin<&mut B>,
    w: &mut Whole,
    cx: &mut Context<'_>,
) -> Poll<Read<B::Error>> {
    loop {
        let read = match ready!(body.as_mut().poll_frame(cx)) {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => match w.push(data) {
                    Some(out) => Read::Passed(out),
                    None if body.is_end_stream() || w.read() > w.len => Read::Complete(None),
                    None => continue,
                },
                Err(frame) => Read::Complete(frame.into_trailers().ok()),
            },
            Some(Err(e)) => Read::Failed(e),
            None => Read::Complete(None),
        };
        return Poll::Ready(read);
    }
}

impl Whole {
    /// Takes a data frame: the first is kept, later ones go to the meter (the first with them).
    /// Returns the bytes to pass on unedited if they went over the meter's limit.
    fn push(&mut self, data: Bytes) -> Option<Bytes> {
        if self.first.is_none() && self.meter.accumulated() == 0 {
            self.first = Some(data);
            return None;
        }
        if let Some(first) = self.first.take() {
            // Within the limit: a second frame is read only while no more than `len` (itself
            // within the limit) has come.
            let out = self.meter.data(first);
            debug_assert!(out.is_empty());
        }
        let out = self.meter.data(data);
        (!out.is_empty()).then_some(out)
    }

    /// The bytes read so far.
    fn read(&self) -> u64 {
        (self.first.as_ref().map_or(0, Bytes::len) + self.meter.accumulated()) as u64
    }

    /// The response, once its body was read: edited (with ProviderFallback's reading of the
    /// answer, read in place, when it is a reading of these bytes; then cleared), passed on, or
    /// failing with the body's error.
    fn finish<B: Body>(self, read: Read<B::Error>) -> Response<ResponseBody<B>> {
        let Whole {
            mut parts,
            first,
            mut meter,
            ..
        } = self;
        let mut served = parts.extensions.get_mut::<ServedBy>();
        let body = match read {
            Read::Complete(trailers) => {
                let answer = served.as_mut().and_then(|s| s.answer.as_mut());
                let data = meter.whole(first, answer);
                ResponseBody::edited(data, trailers, meter)
            }
            Read::Passed(data) => ResponseBody::edited(data, None, meter),
            Read::Failed(e) => ResponseBody::failed(e, meter),
        };
        if let Some(s) = served {
            s.answer = None;
        }
        Response::from_parts(parts, body)
    }
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

impl<S, ReqBody, ResBody> fmt::Debug for ResponseFuture<S, ReqBody, ResBody>
where
    S: Service<Request<ReqBody>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("usage_meter::ResponseFuture(..)")
    }
}
