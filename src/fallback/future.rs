use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::response::Parts;
use http::{HeaderMap, Request, Response};
use http_body::Body;
use http_body_util::Full;
use pin_project_lite::pin_project;
use serde_json::Value;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use super::body::{observe, Idle, Recorder, ResponseBody, StreamBody, Translate};
use super::layer::{Config, CooldownMode};
use super::policy::{AttemptError, Decision, Failure};
use super::sse::{Phase, Watch};
use super::upstream::{build_request, clean_response_headers, safe_message};
use super::Attempts;
use crate::catalog::{Secret, WireFormat};
use crate::compat::{MessagesWire, OriginalMessages};
use crate::error::{Availability, AvailabilityCode, ErrorType, GatewayError};
use crate::health::HealthSource;
use crate::route::{AttemptRecord, Route, ServedBy};
use crate::stats::{Attempt, FailureKind, Outcome};
use crate::BoxError;

/// Cap on a buffered upstream error body (read only to take its message).
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Cap on what a stream may send before its first content.
const MAX_HELD: usize = 4 * 1024 * 1024;

pin_project! {
    /// Response future for [`ProviderFallback`](super::ProviderFallback).
    pub struct ResponseFuture<S, F, B> {
        #[pin]
        state: State<F>,
        #[pin]
        sleep: Sleep,
        ctx: Option<Ctx<S, B>>,
        rejected: Option<GatewayError>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Next,
        Ready,
        Calling { #[pin] future: F },
        Reading,
        Done,
    }
}

/// What an attempt's response body is being read for.
enum Reading<B> {
    /// A non-streamed 2xx (validated) or an error status (for its message).
    Buffer {
        head: Parts,
        body: Pin<Box<B>>,
        buf: BytesMut,
        limit: usize,
        success: bool,
    },
    /// A stream, until its first content-bearing event.
    Prime {
        head: Parts,
        body: Pin<Box<B>>,
        held: VecDeque<Bytes>,
        held_bytes: usize,
        watch: Watch,
        /// Anthropic-wire events → chat-completion chunks, for Anthropic-wire providers.
        translate: Option<Box<Translate>>,
    },
}

struct LastFailure {
    error: AttemptError,
    sent: bool,
    message: Option<String>,
    provider_name: String,
    decision: Decision,
}

struct Ctx<S, B> {
    svc: S,
    config: Arc<Config>,
    route: Route,
    headers: HeaderMap,
    /// The caller's Messages body, sent as it is to Anthropic-wire providers.
    messages: Option<OriginalMessages>,
    /// Indices into `route.candidates()`, with whether each is cooling down.
    order: Vec<(usize, bool)>,
    next: usize,
    current: usize,
    records: Vec<AttemptRecord>,
    last: Option<LastFailure>,
    deadline: Instant,
    attempt_start: Instant,
    sent: u32,
    fresh: bool,
    stop: bool,
    budget_exhausted: bool,
    overall_expired: bool,
    pending: Option<Request<Full<Bytes>>>,
    reading: Option<Reading<B>>,
}

enum Step<B> {
    Call,
    Finish(Response<ResponseBody<B>>),
}

impl<S, F, B> ResponseFuture<S, F, B> {
    pub(crate) fn rejected(error: GatewayError) -> Self {
        ResponseFuture {
            state: State::Done,
            sleep: tokio::time::sleep(Duration::ZERO),
            ctx: None,
            rejected: Some(error),
        }
    }

    pub(crate) fn new(
        svc: S,
        config: Arc<Config>,
        route: Route,
        headers: HeaderMap,
        messages: Option<OriginalMessages>,
    ) -> Self {
        let now = Instant::now();
        if let Some(b) = &config.budget {
            b.deposit();
        }
        let health: Option<&dyn HealthSource> = match (&config.health, &config.stats) {
            (Some(h), _) => Some(&*h.0),
            (None, Some(s)) => Some(s),
            _ => None,
        };
        let mut order: Vec<(usize, bool)> = (0..route.candidates().len())
            .map(|i| {
                let cooling = config.cooldown != CooldownMode::Ignore
                    && health.is_some_and(|h| {
                        h.in_cooldown(route.endpoint(&route.candidates()[i]).key(), now)
                    });
                (i, cooling)
            })
            .collect();
        if config.cooldown == CooldownMode::Defer {
            // Stable: cooling endpoints keep their relative order, after all the others.
            order.sort_by_key(|(_, cooling)| *cooling);
        }
        let deadline = now + config.overall_timeout;
        ResponseFuture {
            state: State::Next,
            sleep: tokio::time::sleep_until(deadline),
            ctx: Some(Ctx {
                svc,
                config,
                route,
                headers,
                messages,
                order,
                next: 0,
                current: 0,
                records: Vec::new(),
                last: None,
                deadline,
                attempt_start: now,
                sent: 0,
                fresh: true,
                stop: false,
                budget_exhausted: false,
                overall_expired: false,
                pending: None,
                reading: None,
            }),
            rejected: None,
        }
    }
}

impl<S, B> Ctx<S, B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    /// Whether the current candidate's provider speaks the Anthropic Messages wire.
    fn anthropic(&self) -> bool {
        let c = &self.route.candidates()[self.current];
        self.route.provider(c).wire_format == WireFormat::Anthropic
    }

    /// Whether the current attempt passes the caller's Messages body through (and its answer
    /// back) untranslated.
    fn passthrough(&self) -> bool {
        self.messages.is_some() && self.anthropic()
    }

    fn secret(&self) -> Option<&Secret> {
        let c = &self.route.candidates()[self.current];
        self.route.provider(c).credentials.secret()
    }

    /// Picks the next candidate and builds its request, or finishes.
    fn advance(&mut self) -> Step<B> {
        loop {
            if self.stop {
                return Step::Finish(self.exhausted());
            }
            let Some(&(ci, cooling)) = self.order.get(self.next) else {
                return Step::Finish(self.exhausted());
            };
            self.next += 1;
            self.current = ci;
            let c = self.route.candidates()[ci];
            if cooling && self.config.cooldown == CooldownMode::FailFast {
                let e = self.route.endpoint(&c);
                let p = self.route.provider(&c);
                self.records.push(AttemptRecord {
                    provider: p.name.clone(),
                    endpoint: e.key().clone(),
                    status: None,
                    error_type: Some(ErrorType::ProviderOverloaded),
                    kind: "cooldown",
                    sent: false,
                    duration: Duration::ZERO,
                    retry_after: None,
                });
                continue;
            }
            let now = Instant::now();
            if now >= self.deadline {
                self.overall_expired = true;
                return Step::Finish(self.exhausted());
            }
            let built = build_request(
                &self.route,
                &c,
                &self.headers,
                &self.config,
                self.messages.as_ref(),
            );
            match built {
                Err(err) => {
                    self.attempt_start = now;
                    if self.fail(err, None, None, None) == Decision::Return {
                        return Step::Finish(self.exhausted());
                    }
                }
                Ok(req) => {
                    if self.sent > 0 {
                        if let Some(b) = &self.config.budget {
                            if !b.withdraw() {
                                self.budget_exhausted = true;
                                tracing::debug!(
                                    "retry budget exhausted; not trying further providers"
                                );
                                return Step::Finish(self.exhausted());
                            }
                        }
                    }
                    self.sent += 1;
                    self.attempt_start = now;
                    self.pending = Some(req);
                    return Step::Call;
                }
            }
        }
    }

    /// Records a failed attempt (stats, attempts, trace) and asks the policy what next.
    fn fail(
        &mut self,
        error: AttemptError,
        head: Option<&HeaderMap>,
        retry_after: Option<Duration>,
        message: Option<String>,
    ) -> Decision {
        let now = Instant::now();
        let c = self.route.candidates()[self.current];
        let e = self.route.endpoint(&c);
        let p = self.route.provider(&c);
        let duration = now.saturating_duration_since(self.attempt_start);
        let sent = !matches!(
            error,
            AttemptError::NotCallable | AttemptError::UnsupportedWireFormat
        );
        let retry_after = retry_after.or_else(|| head.and_then(crate::stats::parse_retry_after));
        if sent {
            if let Some(stats) = &self.config.stats {
                let mut a = match (error, head) {
                    (AttemptError::Status(_), Some(h)) => {
                        let status = http::StatusCode::from_u16(error.status().unwrap_or(502))
                            .unwrap_or(http::StatusCode::BAD_GATEWAY);
                        Attempt::from_response(status, h)
                    }
                    (AttemptError::Connect, _) => {
                        Attempt::new(Outcome::Failure(FailureKind::Connect))
                    }
                    (AttemptError::Timeout | AttemptError::FirstTokenTimeout, _) => {
                        Attempt::new(Outcome::Failure(FailureKind::Timeout))
                    }
                    _ => Attempt::new(Outcome::Failure(FailureKind::InvalidResponse)),
                };
                if let Some(r) = retry_after {
                    a = a.retry_after(r);
                }
                stats.record_attempt(e.key(), a, now);
            }
        }
        tracing::debug!(
            endpoint = %e.key(),
            provider = %p.slug,
            kind = error.as_str(),
            status = error.status(),
            elapsed_ms = duration.as_millis() as u64,
            "provider attempt failed"
        );
        self.records.push(AttemptRecord {
            provider: p.name.clone(),
            endpoint: e.key().clone(),
            status: error.status(),
            error_type: Some(error_type_of(error)),
            kind: error.as_str(),
            sent,
            duration,
            retry_after,
        });
        let next = self
            .order
            .get(self.next)
            .map(|&(i, _)| self.route.candidates()[i]);
        let failure = Failure {
            error,
            retry_after,
            endpoint: e,
            provider: p,
            position: self.next - 1,
            next_is_other_model: next.is_some_and(|n| n.model != c.model),
            has_next: next.is_some(),
        };
        let decision = self.config.policy.on_failure(&failure);
        // The answer describes the last provider actually called, if any was.
        if sent || self.last.as_ref().is_none_or(|l| !l.sent) {
            self.last = Some(LastFailure {
                error,
                sent,
                message,
                provider_name: p.name.clone(),
                decision,
            });
        }
        if decision == Decision::Return {
            self.stop = true;
        }
        decision
    }

    /// The answer when no candidate served the request.
    fn exhausted(&mut self) -> Response<ResponseBody<B>> {
        let err = self.final_error();
        tracing::debug!(
            status = err.status().as_u16(),
            error_type = err.error_type().as_str(),
            attempts = self.records.len(),
            "no provider served the request"
        );
        let mut res: Response<ResponseBody<B>> = err.into_response();
        res.extensions_mut()
            .insert(Attempts(std::mem::take(&mut self.records)));
        res
    }

    fn final_error(&self) -> GatewayError {
        let requested: Vec<String> = self
            .route
            .models()
            .iter()
            .map(|m| m.requested.clone())
            .collect();
        let Some(last) = &self.last else {
            if self.records.is_empty() && !self.overall_expired {
                return self.route.unavailable();
            }
            let mut a = Availability::new(AvailabilityCode::TemporarilyUnavailable, requested);
            a.affected_providers = self.records.iter().map(|r| r.provider.clone()).collect();
            let msg = if self.overall_expired {
                "The request deadline passed before a provider could be tried."
            } else {
                "Every provider for this request is cooling down after recent failures."
            };
            return self.decorate(GatewayError::unavailable(msg, a), None);
        };
        let failed: Vec<&AttemptRecord> = self
            .records
            .iter()
            .filter(|r| r.sent && r.error_type.is_some())
            .collect();
        let err = match last.error {
            AttemptError::Status(s @ 400..=499)
                if last.decision == Decision::Return && s != 408 && s != 429 =>
            {
                let ty = match s {
                    402 => ErrorType::PaymentRequired,
                    401 => ErrorType::Authentication,
                    403 => ErrorType::PermissionDenied,
                    404 => ErrorType::NotFound,
                    412 => ErrorType::PreconditionFailed,
                    413 => ErrorType::PayloadTooLarge,
                    422 => ErrorType::Unprocessable,
                    _ => ErrorType::InvalidRequest,
                };
                let msg = last
                    .message
                    .clone()
                    .unwrap_or_else(|| "Provider returned error".to_string());
                let status = http::StatusCode::from_u16(s).unwrap_or(http::StatusCode::BAD_REQUEST);
                GatewayError::new(ty, msg).with_status(status)
            }
            _ if self.overall_expired => GatewayError::new(
                ErrorType::Timeout,
                "The request deadline passed before a provider answered.",
            )
            .with_status(http::StatusCode::REQUEST_TIMEOUT),
            _ if !failed.is_empty() && failed.iter().all(|r| r.status == Some(429)) => {
                let mut a = Availability::new(AvailabilityCode::CapacityExhausted, requested);
                a.affected_providers = providers(&failed);
                let hints: Vec<Duration> = failed.iter().filter_map(|r| r.retry_after).collect();
                if hints.len() == failed.len() {
                    a.retry_after = hints
                        .iter()
                        .min()
                        .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0));
                }
                GatewayError::unavailable("All providers for this request are rate limited.", a)
            }
            _ if !failed.is_empty() && failed.iter().all(|r| is_timeout(r.kind)) => {
                GatewayError::new(ErrorType::Timeout, "No provider responded in time.")
            }
            _ if !failed.is_empty() && failed.iter().all(|r| is_transient(r)) => {
                let mut a = Availability::new(AvailabilityCode::TemporarilyUnavailable, requested);
                a.affected_providers = providers(&failed);
                GatewayError::unavailable(
                    "All providers for this request are temporarily unavailable.",
                    a,
                )
            }
            _ => GatewayError::new(
                ErrorType::ProviderUnavailable,
                "No provider returned a valid response.",
            ),
        };
        self.decorate(err, Some(&last.provider_name))
    }

    fn decorate(&self, mut err: GatewayError, provider: Option<&str>) -> GatewayError {
        if let Some(p) = provider {
            err = err.with_metadata("provider_name", p);
        }
        let previous: Vec<Value> = self
            .records
            .iter()
            .map(|r| {
                serde_json::json!({
                    "provider": r.provider,
                    "endpoint": r.endpoint.tag(),
                    "code": r.kind,
                    "status": r.status,
                })
            })
            .collect();
        err = err.with_metadata("previous_errors", Value::Array(previous));
        if self.budget_exhausted {
            err = err.with_metadata("retry_budget_exhausted", true);
        }
        err
    }

    /// Success: the served-by record, with this attempt last.
    fn served(&mut self, latency: Duration, streamed: bool) -> ServedBy {
        let c = self.route.candidates()[self.current];
        let e = self.route.endpoint(&c);
        let p = self.route.provider(&c);
        self.records.push(AttemptRecord {
            provider: p.name.clone(),
            endpoint: e.key().clone(),
            status: Some(200),
            error_type: None,
            kind: "ok",
            sent: true,
            duration: latency,
            retry_after: None,
        });
        tracing::debug!(
            endpoint = %e.key(),
            provider = %p.slug,
            attempts = self.records.len(),
            elapsed_ms = latency.as_millis() as u64,
            "provider served the request"
        );
        let mut s = ServedBy::new(e.key().clone(), p.name.clone());
        s.provider_slug = p.slug.clone();
        s.upstream_model = e.upstream_model().to_string();
        s.streamed = streamed;
        s.latency = Some(latency);
        s.attempts = std::mem::take(&mut self.records);
        s
    }
}

fn providers(failed: &[&AttemptRecord]) -> Vec<String> {
    let mut v: Vec<String> = failed.iter().map(|r| r.provider.clone()).collect();
    v.dedup();
    v
}

fn is_timeout(kind: &str) -> bool {
    matches!(kind, "timeout" | "first_token_timeout")
}

fn is_transient(r: &AttemptRecord) -> bool {
    matches!(r.status, Some(408 | 429 | 500..=599))
        || matches!(r.kind, "timeout" | "first_token_timeout" | "connect")
}

fn error_type_of(e: AttemptError) -> ErrorType {
    match e {
        AttemptError::Status(429) => ErrorType::RateLimitExceeded,
        AttemptError::Status(401) => ErrorType::Authentication,
        AttemptError::Status(403) => ErrorType::PermissionDenied,
        AttemptError::Status(408) => ErrorType::Timeout,
        AttemptError::Status(503 | 529) => ErrorType::ProviderOverloaded,
        AttemptError::Status(504 | 524) => ErrorType::Timeout,
        AttemptError::Status(500..=599) => ErrorType::ProviderUnavailable,
        AttemptError::Status(_) => ErrorType::InvalidRequest,
        AttemptError::Timeout | AttemptError::FirstTokenTimeout => ErrorType::Timeout,
        _ => ErrorType::ProviderUnavailable,
    }
}

impl<S, F, B> Future for ResponseFuture<S, F, B>
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>, Future = F>,
    S::Error: Into<BoxError>,
    F: Future<Output = Result<Response<B>, S::Error>>,
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response<ResponseBody<B>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Some(err) = this.rejected.take() {
            return Poll::Ready(Ok(err.into_response()));
        }
        let Some(ctx) = this.ctx.as_mut() else {
            return Poll::Ready(Err(
                "fallback::ResponseFuture polled after completion".into()
            ));
        };
        loop {
            match this.state.as_mut().project() {
                StateProj::Next => match ctx.advance() {
                    Step::Finish(res) => {
                        this.state.set(State::Done);
                        *this.ctx = None;
                        return Poll::Ready(Ok(res));
                    }
                    Step::Call => this.state.set(State::Ready),
                },
                StateProj::Ready => {
                    if !ctx.fresh {
                        ready!(ctx.svc.poll_ready(cx)).map_err(Into::into)?;
                    }
                    ctx.fresh = false;
                    let Some(req) = ctx.pending.take() else {
                        return Poll::Ready(Err("fallback: no request to send".into()));
                    };
                    let until = (ctx.attempt_start + ctx.config.attempt_timeout).min(ctx.deadline);
                    this.sleep.as_mut().reset(until);
                    let future = ctx.svc.call(req);
                    this.state.set(State::Calling { future });
                }
                StateProj::Calling { future } => {
                    let res = match future.poll(cx) {
                        Poll::Ready(r) => r,
                        Poll::Pending => {
                            ready!(this.sleep.as_mut().poll(cx));
                            // Drop the attempt first: that cancels the upstream request.
                            this.state.set(State::Next);
                            timed_out(ctx, AttemptError::Timeout);
                            continue;
                        }
                    };
                    let res = match res {
                        Ok(res) => res,
                        Err(_) => {
                            this.state.set(State::Next);
                            ctx.fail(AttemptError::Connect, None, None, None);
                            continue;
                        }
                    };
                    let (head, body) = res.into_parts();
                    let body = Box::pin(body);
                    let stream = ctx.route.view().stream;
                    let anthropic = ctx.anthropic();
                    let passthrough = ctx.passthrough();
                    if head.status.is_success() && stream {
                        let until =
                            (ctx.attempt_start + ctx.config.first_token_timeout).min(ctx.deadline);
                        this.sleep.as_mut().reset(until);
                        ctx.reading = Some(Reading::Prime {
                            head,
                            body,
                            held: VecDeque::new(),
                            held_bytes: 0,
                            watch: Watch::new(),
                            translate: anthropic.then(|| Translate::new(passthrough, unix_now())),
                        });
                    } else {
                        let success = head.status.is_success();
                        let limit = if success {
                            ctx.config.max_buffer
                        } else {
                            MAX_ERROR_BODY
                        };
                        ctx.reading = Some(Reading::Buffer {
                            head,
                            body,
                            buf: BytesMut::new(),
                            limit,
                            success,
                        });
                    }
                    this.state.set(State::Reading);
                }
                StateProj::Reading => {
                    let step = match ctx.reading.as_mut() {
                        Some(Reading::Buffer { .. }) => poll_buffer(ctx, cx),
                        Some(Reading::Prime { .. }) => poll_prime(ctx, cx),
                        None => ReadStep::Next,
                    };
                    match step {
                        ReadStep::Pending => {
                            ready!(this.sleep.as_mut().poll(cx));
                            let error = match ctx.reading.take() {
                                Some(Reading::Prime { .. }) => AttemptError::FirstTokenTimeout,
                                _ => AttemptError::Timeout,
                            };
                            this.state.set(State::Next);
                            timed_out(ctx, error);
                        }
                        ReadStep::Next => this.state.set(State::Next),
                        ReadStep::Done(res) => {
                            this.state.set(State::Done);
                            *this.ctx = None;
                            return Poll::Ready(Ok(res));
                        }
                    }
                }
                StateProj::Done => {
                    return Poll::Ready(Err(
                        "fallback::ResponseFuture polled after completion".into()
                    ))
                }
            }
        }
    }
}

fn timed_out<S, B>(ctx: &mut Ctx<S, B>, error: AttemptError)
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    if Instant::now() >= ctx.deadline {
        ctx.overall_expired = true;
    }
    ctx.fail(error, None, None, None);
}

enum ReadStep<B> {
    Pending,
    Next,
    Done(Response<ResponseBody<B>>),
}

/// Reads a buffered body to its end (or cap), then judges it.
fn poll_buffer<S, B>(ctx: &mut Ctx<S, B>, cx: &mut Context<'_>) -> ReadStep<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let Some(Reading::Buffer {
        body,
        buf,
        limit,
        success,
        ..
    }) = ctx.reading.as_mut()
    else {
        return ReadStep::Next;
    };
    let mut broken = false;
    loop {
        match body.as_mut().poll_frame(cx) {
            Poll::Pending => return ReadStep::Pending,
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    if buf.len() + d.len() > *limit {
                        if *success {
                            broken = true;
                            break;
                        }
                        // An error body: its start is enough.
                        let room = limit.saturating_sub(buf.len());
                        buf.extend_from_slice(&d[..room.min(d.len())]);
                        break;
                    }
                    buf.extend_from_slice(d);
                }
            }
            Poll::Ready(Some(Err(_))) => {
                broken = true;
                break;
            }
            Poll::Ready(None) => break,
        }
    }
    let Some(Reading::Buffer {
        head, buf, success, ..
    }) = ctx.reading.take()
    else {
        return ReadStep::Next;
    };
    let bytes = buf.freeze();
    let judged = match (success, broken) {
        (false, _) => Judged::Error(head.status.as_u16()),
        (true, true) => Judged::Invalid,
        (true, false) => judge(&bytes),
    };
    match judged {
        Judged::Invalid => {
            ctx.fail(AttemptError::InvalidResponse, None, None, None);
            return ReadStep::Next;
        }
        Judged::Error(status) => {
            // An error status, or a `2xx` whose body is an error (some providers send that).
            let message = if broken {
                None
            } else {
                safe_message(&bytes, ctx.secret())
            };
            ctx.fail(
                AttemptError::Status(status),
                Some(&head.headers),
                None,
                message,
            );
            return ReadStep::Next;
        }
        Judged::Answer { .. } if !ctx.anthropic() => {}
        // The Messages wire answers a `message`; anything else is not an answer.
        Judged::Answer { message: false } => {
            ctx.fail(AttemptError::InvalidResponse, None, None, None);
            return ReadStep::Next;
        }
        Judged::Answer { message: true } => {}
    }
    let passthrough = ctx.passthrough();
    let bytes = if ctx.anthropic() && !passthrough {
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(message) => Bytes::from(
                crate::compat::message_to_chat(&message, unix_now())
                    .to_string()
                    .into_bytes(),
            ),
            Err(_) => {
                ctx.fail(AttemptError::InvalidResponse, None, None, None);
                return ReadStep::Next;
            }
        }
    } else {
        bytes
    };
    let latency = Instant::now().saturating_duration_since(ctx.attempt_start);
    let key = ctx
        .route
        .endpoint(&ctx.route.candidates()[ctx.current])
        .key()
        .clone();
    if let Some(stats) = &ctx.config.stats {
        stats.record_attempt(
            &key,
            Attempt::new(Outcome::Success).latency(latency),
            Instant::now(),
        );
    }
    let served = ctx.served(latency, false);
    let mut head = head;
    clean_response_headers(&mut head.headers, ctx.secret());
    head.extensions.insert(served);
    if passthrough {
        head.extensions.insert(MessagesWire);
    }
    ReadStep::Done(Response::from_parts(head, ResponseBody::full(bytes)))
}

/// Seconds since the Unix epoch (the `created` of translated Anthropic answers).
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What a non-streamed `2xx` body is.
enum Judged {
    /// Empty, not JSON, or not an object.
    Invalid,
    /// An error object and no `choices`: the status in its `code` (4xx/5xx), else 502.
    Error(u16),
    /// Anything else; `message` when its `type` is `"message"` (the Anthropic wire's answer).
    Answer { message: bool },
}

/// Judges a non-streamed `2xx` body in one pass that skips everything but `error`.
fn judge(b: &[u8]) -> Judged {
    #[derive(serde::Deserialize)]
    struct Shape<'a> {
        #[serde(borrow, default)]
        error: Option<&'a serde_json::value::RawValue>,
        #[serde(default)]
        choices: Option<serde::de::IgnoredAny>,
        #[serde(borrow, default, rename = "type")]
        kind: Option<&'a serde_json::value::RawValue>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorCode {
        #[serde(default)]
        code: Option<Value>,
    }
    let Ok(shape) = serde_json::from_slice::<Shape<'_>>(b) else {
        return Judged::Invalid;
    };
    match shape.error {
        Some(e) if shape.choices.is_none() && e.get() != "null" => {
            let code = serde_json::from_str::<ErrorCode>(e.get())
                .ok()
                .and_then(|e| e.code)
                .and_then(|c| c.as_u64())
                .and_then(|c| u16::try_from(c).ok())
                .filter(|c| (400..600).contains(c));
            Judged::Error(code.unwrap_or(502))
        }
        _ => Judged::Answer {
            message: shape.kind.is_some_and(|k| k.get() == r#""message""#),
        },
    }
}

/// Reads a stream until its first content-bearing event.
fn poll_prime<S, B>(ctx: &mut Ctx<S, B>, cx: &mut Context<'_>) -> ReadStep<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let Some(Reading::Prime {
        body,
        held,
        held_bytes,
        watch,
        translate,
        ..
    }) = ctx.reading.as_mut()
    else {
        return ReadStep::Next;
    };
    loop {
        match body.as_mut().poll_frame(cx) {
            Poll::Pending => return ReadStep::Pending,
            Poll::Ready(Some(Ok(frame))) => {
                let Ok(data) = frame.into_data() else {
                    continue; // trailers before content: ignored
                };
                let data = observe(translate.as_deref_mut(), watch, data);
                if data.is_empty() {
                    continue;
                }
                *held_bytes += data.len();
                held.push_back(data);
                match watch.phase {
                    Phase::Waiting if *held_bytes > MAX_HELD => break,
                    Phase::Waiting => {}
                    Phase::Failed => break,
                    Phase::Started | Phase::Done | Phase::UpstreamError => {
                        return started(ctx);
                    }
                }
            }
            Poll::Ready(Some(Err(_))) => break,
            Poll::Ready(None) => {
                watch.finish();
                if matches!(
                    watch.phase,
                    Phase::Started | Phase::Done | Phase::UpstreamError
                ) {
                    return started(ctx);
                }
                break;
            }
        }
    }
    ctx.reading = None;
    ctx.fail(AttemptError::StreamFailed, None, None, None);
    ReadStep::Next
}

fn started<S, B>(ctx: &mut Ctx<S, B>) -> ReadStep<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let Some(Reading::Prime {
        mut head,
        body,
        held,
        watch,
        translate,
        ..
    }) = ctx.reading.take()
    else {
        return ReadStep::Next;
    };
    let latency = Instant::now().saturating_duration_since(ctx.attempt_start);
    let c = ctx.route.candidates()[ctx.current];
    let key = ctx.route.endpoint(&c).key().clone();
    let provider_name = ctx.route.provider(&c).name.clone();
    let mut recorder = Recorder {
        stats: ctx.config.stats.clone(),
        key,
        latency: ctx.config.stream_latency.then_some(latency),
        done: false,
    };
    let ended = watch.phase == Phase::UpstreamError;
    if ended {
        recorder.finish(Outcome::Failure(FailureKind::InvalidResponse));
    }
    let s = StreamBody {
        body: (!ended).then_some(body),
        held,
        watch,
        provider_name,
        recorder,
        ended,
        translate,
        idle: Idle::new(ctx.config.stream_idle_timeout),
    };
    let served = ctx.served(latency, true);
    clean_response_headers(&mut head.headers, ctx.secret());
    head.extensions.insert(served);
    if ctx.passthrough() {
        head.extensions.insert(MessagesWire);
    }
    ReadStep::Done(Response::from_parts(head, ResponseBody::stream(s)))
}
