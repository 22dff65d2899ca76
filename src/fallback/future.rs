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
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use super::body::{observe, Idle, Recorder, ResponseBody, StreamBody};
use super::classify::{self, error_type_of, stats_attempt, unix_now, was_sent, Verdict};
use super::exhausted::{History, LastFailure};
use super::layer::{Config, CooldownMode};
use super::policy::{AttemptError, Decision, Failure};
use super::sse::{Phase, Watch};
use super::upstream::{build_request, clean_response_headers};
use crate::catalog::Secret;
use crate::error::{ErrorType, GatewayError};
use crate::health::HealthSource;
use crate::route::{AttemptKind, AttemptRecord, Route, ServedBy};
use crate::stats::{Attempt, FailureKind, Outcome};
use crate::wire::messages::{MessagesStream, OriginalMessages};
use crate::wire::Wire;
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
        translate: Option<Box<MessagesStream>>,
    },
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
    /// The current attempt's wire adapter.
    wire: Wire,
    history: History,
    deadline: Instant,
    attempt_start: Instant,
    sent: u32,
    fresh: bool,
    stop: bool,
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
                wire: Wire::Chat,
                history: History::default(),
                deadline,
                attempt_start: now,
                sent: 0,
                fresh: true,
                stop: false,
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
    fn secret(&self) -> Option<&Secret> {
        let c = &self.route.candidates()[self.current];
        self.route.provider(c).credentials.secret()
    }

    /// Picks the next candidate and builds its request, or finishes.
    fn advance(&mut self) -> Step<B> {
        loop {
            if self.stop {
                return Step::Finish(self.history.answer(&self.route));
            }
            let Some(&(ci, cooling)) = self.order.get(self.next) else {
                return Step::Finish(self.history.answer(&self.route));
            };
            self.next += 1;
            self.current = ci;
            self.wire = Wire::choose(
                self.route
                    .provider(&self.route.candidates()[ci])
                    .wire_format,
                self.messages.as_ref(),
            );
            let c = self.route.candidates()[ci];
            if cooling && self.config.cooldown == CooldownMode::FailFast {
                let e = self.route.endpoint(&c);
                let p = self.route.provider(&c);
                self.history.records.push(AttemptRecord {
                    provider: p.name.clone(),
                    endpoint: e.key().clone(),
                    status: None,
                    error_type: Some(ErrorType::ProviderOverloaded),
                    kind: AttemptKind::Cooldown,
                    sent: false,
                    duration: Duration::ZERO,
                    retry_after: None,
                });
                continue;
            }
            let now = Instant::now();
            if now >= self.deadline {
                self.history.overall_expired = true;
                return Step::Finish(self.history.answer(&self.route));
            }
            let built = build_request(
                &self.route,
                &c,
                &self.headers,
                &self.config,
                self.wire,
                self.messages.as_ref(),
            );
            match built {
                Err(err) => {
                    self.attempt_start = now;
                    if self.fail(err, None, None, None) == Decision::Return {
                        return Step::Finish(self.history.answer(&self.route));
                    }
                }
                Ok(req) => {
                    if self.sent > 0 {
                        if let Some(b) = &self.config.budget {
                            if !b.withdraw() {
                                self.history.budget_exhausted = true;
                                tracing::debug!(
                                    "retry budget exhausted; not trying further providers"
                                );
                                return Step::Finish(self.history.answer(&self.route));
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

    /// The inner client failed before a response head: logged with the attempt, then recorded
    /// as a connect failure.
    fn client_failed(&mut self, error: &BoxError) {
        let c = self.route.candidates()[self.current];
        tracing::debug!(
            endpoint = %self.route.endpoint(&c).key(),
            provider = %self.route.provider(&c).slug,
            attempt = self.sent,
            %error,
            "the inner client failed"
        );
        self.fail(AttemptError::Connect, None, None, None);
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
        let sent = was_sent(error);
        let retry_after = retry_after.or_else(|| head.and_then(crate::stats::parse_retry_after));
        if let Some(stats) = self.config.stats.as_ref().filter(|_| sent) {
            let mut a = stats_attempt(error, head);
            if let Some(r) = retry_after {
                a = a.retry_after(r);
            }
            stats.record_attempt(e.key(), a, now);
        }
        tracing::debug!(
            endpoint = %e.key(),
            provider = %p.slug,
            kind = error.as_str(),
            status = error.status(),
            elapsed_ms = duration.as_millis() as u64,
            "provider attempt failed"
        );
        self.history.records.push(AttemptRecord {
            provider: p.name.clone(),
            endpoint: e.key().clone(),
            status: error.status(),
            error_type: Some(error_type_of(error)),
            kind: error.kind(),
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
        self.history.remember(LastFailure {
            error,
            sent,
            message,
            provider_name: p.name.clone(),
            decision,
        });
        if decision == Decision::Return {
            self.stop = true;
        }
        decision
    }

    /// Success: the served-by record, with this attempt last.
    fn served(&mut self, latency: Duration, streamed: bool) -> ServedBy {
        let c = self.route.candidates()[self.current];
        let e = self.route.endpoint(&c);
        let p = self.route.provider(&c);
        self.history.records.push(AttemptRecord {
            provider: p.name.clone(),
            endpoint: e.key().clone(),
            status: Some(200),
            error_type: None,
            kind: AttemptKind::Ok,
            sent: true,
            duration: latency,
            retry_after: None,
        });
        tracing::debug!(
            endpoint = %e.key(),
            provider = %p.slug,
            attempts = self.history.records.len(),
            elapsed_ms = latency.as_millis() as u64,
            "provider served the request"
        );
        let mut s = ServedBy::new(e.key().clone(), p.name.clone());
        s.provider_slug = p.slug.clone();
        s.upstream_model = e.upstream_model().to_string();
        s.streamed = streamed;
        s.latency = Some(latency);
        s.attempts = std::mem::take(&mut self.history.records);
        s
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
                        Err(e) => {
                            this.state.set(State::Next);
                            ctx.client_failed(&e.into());
                            continue;
                        }
                    };
                    let (head, body) = res.into_parts();
                    let body = Box::pin(body);
                    let stream = ctx.route.view().stream;
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
                            translate: ctx.wire.stream(unix_now()),
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
        ctx.history.overall_expired = true;
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
    let Some(Reading::Buffer { head, buf, .. }) = ctx.reading.take() else {
        return ReadStep::Next;
    };
    let bytes = match classify::buffered(head.status, buf.freeze(), broken, ctx.wire, ctx.secret())
    {
        Verdict::Answer(bytes) => bytes,
        Verdict::Failed { error, message } => {
            let head = error.status().map(|_| &head.headers);
            ctx.fail(error, head, None, message);
            return ReadStep::Next;
        }
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
    ctx.wire.mark(&mut head.extensions);
    ReadStep::Done(Response::from_parts(head, ResponseBody::full(bytes)))
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
    ctx.wire.mark(&mut head.extensions);
    ReadStep::Done(Response::from_parts(head, ResponseBody::stream(s)))
}
