use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use std::future::Future;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::sse::{Phase, Watch};
use crate::catalog::EndpointKey;
use crate::stats::{Attempt, FailureKind, Outcome, Stats};
use crate::wire::StreamReader;
use crate::BoxError;

/// Response body for [`ProviderFallback`](super::ProviderFallback).
///
/// Either a complete body (a buffered non-streamed answer, or an OpenRouter-shaped error), or a
/// stream: the frames held while waiting for the first content, replayed in order, then the
/// upstream frames one by one, unbuffered. It never fails: an upstream failure after content
/// becomes an in-band error chunk (see the [module docs](super#streams)).
pub struct ResponseBody<B> {
    kind: Kind<B>,
}

enum Kind<B> {
    Full(Option<Bytes>),
    Stream(Box<StreamBody<B>>),
}

pub(crate) struct StreamBody<B> {
    pub(crate) body: Option<Pin<Box<B>>>,
    pub(crate) held: VecDeque<Bytes>,
    pub(crate) watch: Watch,
    pub(crate) provider_name: String,
    pub(crate) recorder: Recorder,
    pub(crate) ended: bool,
    /// Set for Anthropic-wire providers.
    pub(crate) translate: Option<Box<dyn StreamReader>>,
    pub(crate) idle: Idle,
}

/// The stream idle timeout: the time of the last upstream frame, and a timer armed only when the
/// upstream is pending (a busy stream never touches the timer wheel).
pub(crate) struct Idle {
    limit: Duration,
    last: Instant,
    timer: Option<Pin<Box<Sleep>>>,
}

impl Idle {
    pub(crate) fn new(limit: Duration) -> Self {
        Idle {
            limit,
            last: Instant::now(),
            timer: None,
        }
    }

    fn activity(&mut self) {
        self.last = Instant::now();
    }

    /// The upstream is pending: true if it has now been silent for too long (else the timer is
    /// armed to wake the task when it will have been).
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let deadline = self.last + self.limit;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        timer.as_mut().poll(cx).is_ready()
    }
}

/// Feeds a frame's data to the watch (translated first for an Anthropic-wire provider) and
/// returns the bytes to send on, which may be empty.
pub(crate) fn observe(
    translate: Option<&mut (dyn StreamReader + 'static)>,
    watch: &mut Watch,
    data: Bytes,
) -> Bytes {
    let Some(t) = translate else {
        watch.feed(&data);
        return data;
    };
    let fed = t.feed(data);
    watch.feed(&fed.chat);
    fed.out
}

/// Records the outcome of a stream's attempt in the stats exactly once: at its end, at a failure, or
/// (as a success: content was delivered) when the caller drops the body.
pub(crate) struct Recorder {
    pub(crate) stats: Option<Stats>,
    pub(crate) key: EndpointKey,
    pub(crate) latency: Option<Duration>,
    pub(crate) done: bool,
}

impl Recorder {
    pub(crate) fn finish(&mut self, outcome: Outcome) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        if let Some(stats) = &self.stats {
            let mut a = Attempt::new(outcome);
            if let Some(l) = self.latency {
                a = a.latency(l);
            }
            stats.record_attempt(&self.key, a, Instant::now());
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.finish(Outcome::Success);
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn full(data: Bytes) -> Self {
        ResponseBody {
            kind: Kind::Full((!data.is_empty()).then_some(data)),
        }
    }

    pub(crate) fn stream(s: StreamBody<B>) -> Self {
        ResponseBody {
            kind: Kind::Stream(Box::new(s)),
        }
    }
}

impl<B> From<Bytes> for ResponseBody<B> {
    fn from(b: Bytes) -> Self {
        ResponseBody::full(b)
    }
}

/// The in-band error chunk that ends a stream failing after content
/// (<https://openrouter.ai/docs/api-reference/errors>, "Error during streaming").
pub(crate) fn error_chunk(watch: &Watch, provider: &str, message: &str) -> Bytes {
    let v = serde_json::json!({
        "id": watch.id.as_deref().unwrap_or("gen-fallback"),
        "object": "chat.completion.chunk",
        "created": watch.created.unwrap_or(0),
        "model": watch.model.as_deref().unwrap_or(""),
        "provider": provider,
        "error": {
            "code": 502,
            "message": message,
            "metadata": {"error_type": "provider_unavailable"},
        },
        "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}],
    });
    let mut out = Vec::with_capacity(320);
    if watch.mid_event() {
        out.extend_from_slice(b"\n\n");
    }
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(v.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

impl<B> StreamBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    fn fail(&mut self, kind: FailureKind, message: &str) -> Bytes {
        self.body = None;
        self.ended = true;
        self.recorder.finish(Outcome::Failure(kind));
        tracing::debug!(
            endpoint = %self.recorder.key,
            reason = message,
            "stream failed after content; ending it with an error chunk"
        );
        match self
            .translate
            .as_deref()
            .and_then(|t| t.error_event(message))
        {
            Some(event) => event,
            None => error_chunk(&self.watch, &self.provider_name, message),
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(b) = self.held.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(b))));
        }
        if self.ended {
            return Poll::Ready(None);
        }
        let Some(body) = self.body.as_mut() else {
            self.ended = true;
            return Poll::Ready(None);
        };
        let polled = loop {
            match body.as_mut().poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        let out = observe(self.translate.as_deref_mut(), &mut self.watch, data);
                        if !out.is_empty() {
                            break Poll::Ready(Some(Ok(Frame::data(out))));
                        }
                    }
                    // Trailers of a translated stream are dropped.
                    Err(_) if self.translate.as_ref().is_some_and(|t| t.drops_trailers()) => {}
                    Err(trailers) => break Poll::Ready(Some(Ok(trailers))),
                },
                other => break other,
            }
        };
        match polled {
            Poll::Pending if self.idle.expired(cx) => {
                let chunk = self.fail(FailureKind::Timeout, "the provider's stream stalled");
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(frame))) => {
                self.idle.activity();
                if frame.is_data() {
                    match self.watch.phase {
                        Phase::Done => self.recorder.finish(Outcome::Success),
                        Phase::UpstreamError => {
                            // Passed through; the stream's end.
                            self.recorder
                                .finish(Outcome::Failure(FailureKind::InvalidResponse));
                            self.body = None;
                            self.ended = true;
                        }
                        _ => {}
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(_))) => {
                let chunk = self.fail(FailureKind::InvalidResponse, "the provider's stream failed");
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            Poll::Ready(None) => {
                self.watch.finish();
                if self.watch.phase == Phase::Done {
                    self.recorder.finish(Outcome::Success);
                    self.body = None;
                    self.ended = true;
                    Poll::Ready(None)
                } else if self.watch.phase == Phase::UpstreamError {
                    self.ended = true;
                    Poll::Ready(None)
                } else {
                    let chunk = self.fail(
                        FailureKind::InvalidResponse,
                        "the provider's stream ended before it was complete",
                    );
                    Poll::Ready(Some(Ok(Frame::data(chunk))))
                }
            }
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match &mut self.get_mut().kind {
            Kind::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Kind::Stream(s) => s.poll(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(data) => data.is_none(),
            Kind::Stream(s) => s.ended && s.held.is_empty(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            Kind::Stream(_) => SizeHint::default(),
        }
    }
}

impl<B> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Full(data) => f
                .debug_tuple("ResponseBody::Full")
                .field(&data.as_ref().map_or(0, Bytes::len))
                .finish(),
            Kind::Stream(s) => f
                .debug_struct("ResponseBody::Stream")
                .field("held", &s.held.len())
                .field("ended", &s.ended)
                .finish_non_exhaustive(),
        }
    }
}
