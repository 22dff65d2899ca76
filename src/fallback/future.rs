//! The response future: a state machine in the shape of tower's `retry::future`, each state
//! owning its data.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::response::Parts;
use http::{Extensions, HeaderMap, Request, Response};
use http_body::Body;
use http_body_util::Full;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use super::body::ResponseBody;
use super::classify::{self, unix_now, Verdict};
use super::layer::Config;
use super::policy::{AttemptError, Decision};
use super::read::{Buffer, Prime, Primed, Received, MAX_ERROR_BODY};
use super::run::{Attempt, Run, Start};
use crate::error::GatewayError;
use crate::BoxError;

pin_project! {
    /// Response future for [`ProviderFallback`](super::ProviderFallback).
    pub struct ResponseFuture<S, F, B, RB> {
        #[pin]
        kind: Kind<S, F, B, RB>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<S, F, B, RB> {
        /// Answered without calling anyone (no route); the error is taken when polled.
        Rejected { error: Option<GatewayError> },
        /// Trying the candidates: the current state, the attempt's (or the overall) timer, and
        /// what the attempts share.
        Running {
            #[pin]
            state: State<F, B, RB>,
            #[pin]
            sleep: Timer,
            run: Run<S>,
        },
    }
}

pin_project! {
    #[project = StateProj]
    #[project_replace = StateOwn]
    enum State<F, B, RB> {
        /// Reading the request body the layer above sent: the bytes every attempt is built from.
        Receiving {
            #[pin]
            body: RB,
            received: Received,
        },
        /// Between attempts: choosing the next candidate and building its request.
        Next,
        /// A later attempt, waiting for the inner service to be ready again before sending.
        Waiting {
            attempt: Attempt,
            request: Request<Full<Bytes>>,
        },
        /// The inner service's response future for an attempt (timer: the attempt timeout).
        Calling {
            #[pin]
            future: F,
            attempt: Attempt,
        },
        /// Reading a non-streamed answer, or an error body, to its end or cap (timer: the attempt
        /// timeout).
        Buffering {
            #[pin]
            body: B,
            attempt: Attempt,
            head: Response<()>,
            buffer: Buffer,
        },
        /// Reading a stream until its first content-bearing event (timer: the first-token timeout).
        Priming {
            attempt: Attempt,
            head: Parts,
            prime: Prime<B>,
        },
        /// No candidate left, or the policy, the budget or the deadline stopped: answering with the
        /// failure.
        Exhausted,
        /// Answered.
        Done,
    }
}

impl<S, F, B, RB> ResponseFuture<S, F, B, RB> {
    pub(crate) fn rejected(error: GatewayError) -> Self {
        ResponseFuture {
            kind: Kind::Rejected { error: Some(error) },
        }
    }

    #[inline]
    /// Trying the candidates of a request whose extensions hold its [`Route`](crate::route::Route).
    pub(crate) fn new(svc: S, config: Arc<Config>, request: (HeaderMap, Extensions, RB)) -> Self {
        let (headers, extensions, body) = request;
        let start = Start::new(&config, &extensions);
        let sleep = Timer::new(start.deadline);
        ResponseFuture {
            kind: Kind::Running {
                state: State::Receiving {
                    body,
                    received: Received::new(config.max_buffer),
                },
                sleep,
                run: Run::new(svc, config, (headers, extensions), start),
            },
        }
    }
}

pin_project! {
    /// The attempt's (or the overall) timer, armed only when what it bounds is pending:
    /// `Sleep::reset` registers the timer with the runtime, which an attempt answered at once
    /// never needs. The deadlines are absolute, so arming one late changes nothing.
    struct Timer {
        #[pin]
        sleep: Sleep,
        // The deadline set since the timer was last armed.
        due: Option<Instant>,
    }
}

impl Timer {
    fn new(deadline: Instant) -> Self {
        Timer {
            sleep: tokio::time::sleep_until(deadline),
            due: None,
        }
    }

    /// The timer now fires at `at` (armed when next polled).
    fn reset(self: Pin<&mut Self>, at: Instant) {
        *self.project().due = Some(at);
    }

    /// Arms the timer at the deadline last set, if any, and polls it.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        if let Some(at) = this.due.take() {
            this.sleep.as_mut().reset(at);
        }
        this.sleep.poll(cx)
    }
}

/// The state after a failed attempt.
fn after<F, B, RB>(decision: Decision) -> State<F, B, RB> {
    match decision {
        Decision::TryNext => State::Next,
        Decision::Return => State::Exhausted,
    }
}

/// Sends an attempt's request, arming the attempt timeout.
fn call<S, B, RB>(
    run: &mut Run<S>,
    sleep: Pin<&mut Timer>,
    attempt: Attempt,
    request: Request<Full<Bytes>>,
) -> State<S::Future, B, RB>
where
    S: Service<Request<Full<Bytes>>>,
{
    sleep.reset((attempt.start + run.config.attempt_timeout).min(run.deadline));
    State::Calling {
        future: run.svc.call(request),
        attempt,
    }
}

/// An answer's head arrived: prime a successful stream, buffer anything else.
fn read<S, F, B, RB>(
    run: &Run<S>,
    sleep: Pin<&mut Timer>,
    attempt: Attempt,
    res: Response<B>,
) -> State<F, B, RB>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let (head, body) = res.into_parts();
    let success = head.status.is_success();
    if success && run.stream() {
        let first_token = run
            .config
            .first_token_timeout
            .min(run.config.attempt_timeout);
        sleep.reset((attempt.start + first_token).min(run.deadline));
        let key = run.endpoint_key(attempt);
        let prime = Prime::new(body, attempt.wire, (unix_now(), attempt.start), key);
        return State::Priming {
            attempt: attempt.priming(),
            head,
            prime,
        };
    }
    let limit = if success {
        run.config.max_buffer
    } else {
        MAX_ERROR_BODY
    };
    State::Buffering {
        body,
        attempt,
        head: Response::from_parts(head, ()),
        buffer: Buffer::new(limit, success),
    }
}

/// A buffered body was read: the answer, or the policy's decision after the failure.
fn judged<S, B>(
    run: &mut Run<S>,
    attempt: Attempt,
    (head, buffer): (Response<()>, Buffer),
    broken: bool,
) -> Result<Response<ResponseBody<B>>, Decision> {
    let (head, ()) = head.into_parts();
    let secret = run.secret(attempt);
    let mut reading = None;
    match classify::buffered(
        head.status,
        buffer.into_bytes(),
        broken,
        (attempt.wire, run.config.reader, &mut reading),
        secret,
    ) {
        Verdict::Answer(bytes) => Ok(run.answered(attempt, head, (bytes, &mut reading))),
        Verdict::Failed { error, message } => {
            let headers = error.status().map(|_| &head.headers);
            Err(run.fail(attempt, error, headers, message))
        }
    }
}

impl<S, F, B, RB> Future for ResponseFuture<S, F, B, RB>
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>, Future = F>,
    S::Error: Into<BoxError>,
    F: Future<Output = Result<Response<B>, S::Error>>,
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
    RB: Body<Data = Bytes>,
    RB::Error: Into<BoxError>,
{
    type Output = Result<Response<ResponseBody<B>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let (mut state, mut sleep, run) = match self.project().kind.project() {
            KindProj::Rejected { error } => {
                return Poll::Ready(
                    error
                        .take()
                        .map(GatewayError::into_response)
                        .ok_or_else(polled_after_completion),
                )
            }
            KindProj::Running { state, sleep, run } => (state, sleep, run),
        };
        loop {
            let next = match state.as_mut().project() {
                StateProj::Receiving { body, received } => {
                    match ready!(received.poll(body, cx)).and_then(|b| run.receive(b)) {
                        Ok(()) => {
                            // Set in place: through `next`, the whole state would be copied.
                            state.set(State::Next);
                            continue;
                        }
                        Err(e) => return done(state, e.into_response()),
                    }
                }
                StateProj::Next => match run.advance() {
                    None => State::Exhausted,
                    // The first request uses the readiness `poll_ready` gave before `call`.
                    Some((a, request)) if a.number == 1 => call(run, sleep.as_mut(), a, request),
                    Some((attempt, request)) => State::Waiting { attempt, request },
                },
                StateProj::Waiting { attempt, request } => {
                    ready!(run.svc.poll_ready(cx)).map_err(Into::into)?;
                    let request = std::mem::take(request);
                    call(run, sleep.as_mut(), *attempt, request)
                }
                StateProj::Calling { future, attempt } => {
                    let attempt = *attempt;
                    match future.poll(cx) {
                        Poll::Ready(Ok(res)) => read(run, sleep.as_mut(), attempt, res),
                        Poll::Ready(Err(e)) => after(run.client_failed(attempt, e.into())),
                        Poll::Pending => after(ready!(expired(sleep.as_mut(), cx, run, attempt))),
                    }
                }
                StateProj::Buffering {
                    body,
                    attempt,
                    head,
                    buffer,
                } => {
                    let attempt = *attempt;
                    match buffer.poll(body, cx) {
                        Poll::Pending => after(ready!(expired(sleep.as_mut(), cx, run, attempt))),
                        Poll::Ready(broken) => {
                            let read = (std::mem::take(head), std::mem::take(buffer));
                            state.set(State::Next); // drops the upstream body
                            match judged(run, attempt, read, broken) {
                                Ok(res) => return done(state, res),
                                Err(decision) => after(decision),
                            }
                        }
                    }
                }
                StateProj::Priming { attempt, prime, .. } => {
                    let attempt = *attempt;
                    match prime.poll(cx) {
                        Poll::Ready(Primed::Started) => return started(state, run),
                        Poll::Ready(Primed::Failed) => {
                            after(run.fail(attempt, AttemptError::StreamFailed, None, None))
                        }
                        Poll::Pending => after(ready!(expired(sleep.as_mut(), cx, run, attempt))),
                    }
                }
                StateProj::Exhausted => {
                    let res = run.exhausted();
                    return done(state, res);
                }
                StateProj::Done => return Poll::Ready(Err(polled_after_completion())),
            };
            // Leaving a state drops what it owned: an abandoned attempt's future or body goes
            // first, which cancels the upstream request.
            state.set(next);
        }
    }
}

/// Answers, leaving the future done.
fn done<F, B, RB, T>(mut state: Pin<&mut State<F, B, RB>>, res: T) -> Poll<Result<T, BoxError>> {
    state.set(State::Done);
    Poll::Ready(Ok(res))
}

/// The attempt's timer, when it fires: a timeout (first-token timeout while priming) recorded,
/// and the policy's decision.
fn expired<S>(
    sleep: Pin<&mut Timer>,
    cx: &mut Context<'_>,
    run: &mut Run<S>,
    attempt: Attempt,
) -> Poll<Decision> {
    ready!(sleep.poll(cx));
    let error = if attempt.priming {
        AttemptError::FirstTokenTimeout
    } else {
        AttemptError::Timeout
    };
    Poll::Ready(run.timed_out(attempt, error))
}

/// A stream's first content arrived: the stream response, from the `Priming` state's data.
fn started<S, F, B, RB>(
    mut state: Pin<&mut State<F, B, RB>>,
    run: &mut Run<S>,
) -> Poll<Result<Response<ResponseBody<B>>, BoxError>>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    match state.as_mut().project_replace(State::Done) {
        StateOwn::Priming {
            attempt,
            head,
            prime,
        } => Poll::Ready(Ok(run.streamed(attempt, head, prime))),
        // Only called from the `Priming` state.
        _ => Poll::Ready(Err(polled_after_completion())),
    }
}

fn polled_after_completion() -> BoxError {
    "fallback::ResponseFuture polled after completion".into()
}

impl<S, F, B, RB> std::fmt::Debug for ResponseFuture<S, F, B, RB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stack's future, which ModelRouting boxes, holds this one: it must stay well under the
    /// 1,032 bytes glibc's allocator serves on its fast path (the route and the stream's state
    /// stay in boxes they already have; failures are boxed when they happen). 784 bytes when
    /// written, about 1,500 before.
    #[test]
    fn future_stays_small() {
        type Inner = std::future::Ready<Result<Response<Full<Bytes>>, BoxError>>;
        type Future = ResponseFuture<(), Inner, Full<Bytes>, Full<Bytes>>;
        let size = std::mem::size_of::<Future>();
        assert!(size <= 832, "fallback::ResponseFuture is {size} bytes");
    }
}
