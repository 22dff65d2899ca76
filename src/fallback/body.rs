use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use std::future::Future;

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use super::sse::{Phase, Watch};
use crate::catalog::EndpointKey;
use crate::stats::{Attempt, FailureKind, Outcome, Stats};
use crate::telemetry;
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
    Stream(Pin<Box<StreamBody<B>>>),
}

pin_project! {
    /// A stream's answer, boxed once: the upstream body, pinned in place (dropped when the stream
    /// ends, which cancels the upstream request), and the state of reading it.
    pub(crate) struct StreamBody<B> {
        #[pin]
        pub(crate) upstream: Option<B>,
        pub(crate) state: StreamState,
    }
}

/// What reading a stream keeps, beside its upstream body.
pub(crate) struct StreamState {
    pub(crate) held: Held,
    pub(crate) watch: Watch,
    /// The serving provider's name, for the error chunk (shared with the catalog: no copy); set
    /// when the stream starts.
    pub(crate) provider_name: Option<Arc<str>>,
    pub(crate) recorder: Recorder,
    pub(crate) ended: bool,
    /// Set for Anthropic-wire providers.
    pub(crate) translate: Option<Box<dyn StreamReader>>,
    pub(crate) framer: Framer,
    pub(crate) idle: Idle,
}

/// The frames held while a stream waited for its first content, then error chunks queued: most
/// often the one frame that had it, kept without a queue's allocation.
#[derive(Default)]
pub(crate) struct Held {
    first: Option<Bytes>,
    rest: VecDeque<Bytes>,
}

impl Held {
    /// Holds `b` after the others.
    #[inline]
    pub(crate) fn push_back(&mut self, b: Bytes) {
        if self.first.is_none() && self.rest.is_empty() {
            self.first = Some(b);
        } else {
            self.rest.push_back(b);
        }
    }

    /// The first frame held, taken.
    #[inline]
    pub(crate) fn pop_front(&mut self) -> Option<Bytes> {
        self.first.take().or_else(|| self.rest.pop_front())
    }

    /// True if nothing is held.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.first.is_none() && self.rest.is_empty()
    }

    /// How many frames are held.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }
}

/// The stream idle timeout: when the upstream's silence began, and a timer armed only when the
/// upstream is pending (a busy stream never touches the timer wheel).
///
/// The silence begins at the first poll that finds the upstream pending after a frame: a frame
/// only sets a flag, and the clock is read at that poll (a stream whose frames come in bursts
/// reads it once per burst, not once per frame).
pub(crate) struct Idle {
    limit: Duration,
    /// When the silence began, as last read (the start of the stream at first).
    last: Instant,
    /// A frame came since `last` was read: the silence begins at the next pending poll.
    active: bool,
    timer: Option<Pin<Box<Sleep>>>,
    /// The waker the timer was last polled pending with: until it fires (and wakes that waker),
    /// another poll with it would find the timer pending again.
    waiting: Option<Waker>,
}

impl Idle {
    /// The timeout `limit`, counted from `last`.
    pub(crate) fn since(limit: Duration, last: Instant) -> Self {
        Idle {
            limit,
            last,
            active: false,
            timer: None,
            waiting: None,
        }
    }

    /// An upstream frame came: the silence, if any, begins again at the next pending poll.
    fn activity(&mut self) {
        self.active = true;
    }

    /// The upstream is pending: true if it has now been silent for too long (else the timer is
    /// armed to wake the task when it will have been).
    ///
    /// The deadline moves with the silence's start, but the timer is not moved with it: a timer
    /// set before the deadline fires early, and is only then set again, so a busy stream re-arms
    /// it about once per `limit`, not at every burst (each reset is a trip through the timer
    /// wheel). The deadline never moves earlier (the silence's start only moves later).
    ///
    /// A timer polled pending with the task's waker is not polled again until it has fired (an
    /// atomic load): it wakes the task when it does.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        if std::mem::take(&mut self.active) {
            self.last = Instant::now();
        }
        let timer = match &mut self.timer {
            Some(timer) => {
                let armed = |w: &Waker| w.will_wake(cx.waker());
                if self.waiting.as_ref().is_some_and(armed) && !timer.is_elapsed() {
                    return false;
                }
                timer
            }
            None => self
                .timer
                .insert(Box::pin(tokio::time::sleep_until(self.last + self.limit))),
        };
        let deadline = self.last + self.limit;
        loop {
            if timer.as_mut().poll(cx).is_pending() {
                self.waiting = Some(cx.waker().clone());
                return false;
            }
            self.waiting = None;
            if timer.deadline() >= deadline {
                return true;
            }
            timer.as_mut().reset(deadline);
        }
    }
}

/// Cuts the bytes sent on at event boundaries, so that an event reaches the caller whole or not
/// at all: a bad event (an in-band error, a garbled payload) is then dropped entirely, even when
/// it began in an earlier frame. A frame that ends on a boundary (the usual case) is sent on as it
/// is; only the tail of an event split across frames waits here for its end.
///
/// An event longer than [`MAX_EVENT`] bytes is taken as invalid rather than held.
#[derive(Default)]
pub(crate) struct Framer {
    pending: BytesMut,
}

impl Framer {
    /// The bytes of `data` (after what is pending) to send on now, as the watch that has just
    /// read `data` says.
    fn cut(&mut self, data: Bytes, watch: &mut Watch) -> Bytes {
        let end = watch.take_end(data.len());
        if end == Some(data.len()) && self.pending.is_empty() {
            // The usual frame: whole events, nothing held before them. Sent on as it is (what
            // the cases below give too, whatever the phase).
            return data;
        }
        if watch.bad() || watch.phase == Phase::Done {
            // What follows the last good event belongs to the bad one, or comes after `[DONE]`:
            // dropped.
            let out = end.map_or_else(Bytes::new, |e| self.join(data.slice(..e)));
            self.pending.clear();
            return out;
        }
        match end {
            None => {
                self.hold(&data, watch);
                Bytes::new()
            }
            Some(e) => {
                let out = self.join(data.slice(..e));
                self.hold(&data[e..], watch);
                out
            }
        }
    }

    /// Keeps the start of an unfinished event; one longer than [`MAX_EVENT`] makes the stream
    /// invalid.
    fn hold(&mut self, tail: &[u8], watch: &mut Watch) {
        if self.pending.len() + tail.len() > MAX_EVENT {
            self.pending = BytesMut::new();
            watch.too_long();
            return;
        }
        self.pending.extend_from_slice(tail);
    }

    /// `head` after what is pending.
    fn join(&mut self, head: Bytes) -> Bytes {
        if self.pending.is_empty() {
            return head;
        }
        self.pending.extend_from_slice(&head);
        self.pending.split().freeze()
    }

    /// At the end of the body, after [`Watch::finish`]: a last event that lacked its blank line,
    /// completed, if it was good.
    pub(crate) fn flush(&mut self, watch: &Watch) -> Bytes {
        if self.pending.is_empty() || watch.bad() {
            self.pending.clear();
            return Bytes::new();
        }
        self.pending.extend_from_slice(b"\n\n");
        self.pending.split().freeze()
    }
}

/// The longest SSE event a stream may send: 4 MiB (a chunk of a chat completion is rarely over a
/// few kilobytes).
pub(crate) const MAX_EVENT: usize = 4 << 20;

/// Feeds a frame's data to the watch (translated first for an Anthropic-wire provider) and
/// returns the bytes to send on, cut at event boundaries by `framer`; may be empty. A
/// passed-through Messages stream is sent on as it comes (its bytes are not the ones watched).
pub(crate) fn observe(
    translate: Option<&mut (dyn StreamReader + 'static)>,
    watch: &mut Watch,
    framer: &mut Framer,
    data: Bytes,
) -> Bytes {
    let Some(t) = translate else {
        if framer.pending.is_empty() && watch.usual_frame(&data) {
            // The usual frame: one whole good event, nothing held before it. Sent on as it is,
            // as `cut` would.
            return data;
        }
        watch.feed(&data);
        return framer.cut(data, watch);
    };
    let fed = t.feed(data);
    watch.feed(&fed.chat);
    if t.passes_through() {
        return fed.out;
    }
    framer.cut(fed.out, watch)
}

/// Records the outcome of a stream's attempt in the stats exactly once: at its end, at a failure, or
/// (as a success: content was delivered) when the caller drops the body.
pub(crate) struct Recorder {
    pub(crate) stats: Option<Stats>,
    pub(crate) key: EndpointKey,
    pub(crate) latency: Option<Duration>,
    pub(crate) done: bool,
    /// The serving attempt's `gen_ai.attempt` span, closed when the stream ends.
    pub(crate) span: tracing::Span,
}

impl Recorder {
    /// A recorder for the endpoint `key` that records nothing until [`arm`](Self::arm)ed (a
    /// stream that fails before its first content is recorded by the fallback instead).
    pub(crate) fn disarmed(key: EndpointKey) -> Self {
        Recorder {
            stats: None,
            key,
            latency: None,
            done: true,
            span: tracing::Span::none(),
        }
    }

    /// The stream started: its outcome will be recorded in `stats`, with `latency`, and `span`
    /// closed.
    pub(crate) fn arm(
        &mut self,
        stats: Option<Stats>,
        latency: Option<Duration>,
        span: tracing::Span,
    ) {
        self.stats = stats;
        self.latency = latency;
        self.span = span;
        self.done = false;
    }

    pub(crate) fn finish(&mut self, outcome: Outcome) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let span = std::mem::replace(&mut self.span, tracing::Span::none());
        if let Outcome::Failure(kind) = outcome {
            telemetry::record_error(&span, kind.as_str());
        }
        drop(span);
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

    pub(crate) fn stream(s: Pin<Box<StreamBody<B>>>) -> Self {
        ResponseBody {
            kind: Kind::Stream(s),
        }
    }
}

impl<B> From<Bytes> for ResponseBody<B> {
    fn from(b: Bytes) -> Self {
        ResponseBody::full(b)
    }
}

/// The in-band error chunk that ends a stream failing after content
/// (<https://openrouter.ai/docs/api-reference/errors>, "Error during streaming"). Its message is
/// the gateway's own; of the provider's error only its `code` (a number or a lowercase word) is
/// kept, as `metadata.provider_code`. `id` and `model` are the stream's, which
/// [`UsageMeter`](crate::usage_meter) rewrites like every other chunk.
pub(crate) fn error_chunk(watch: &Watch, provider: &str, message: &str) -> Bytes {
    let mut metadata = serde_json::json!({
        "error_type": "provider_unavailable",
        "provider_name": provider,
    });
    if let Some(code) = &watch.upstream_code {
        metadata["provider_code"] = code.clone();
    }
    let v = serde_json::json!({
        "id": watch.id().unwrap_or("gen-fallback"),
        "object": "chat.completion.chunk",
        "created": watch.created.unwrap_or(0),
        "model": watch.model().unwrap_or(""),
        "provider": provider,
        "error": {"code": 502, "message": message, "metadata": metadata},
        "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}],
    });
    let mut out = Vec::with_capacity(320);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(v.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

impl StreamState {
    /// Ends the stream after content: records the attempt's failure and gives the closing error
    /// (the chat error chunk, or the wire's own error event), always with the gateway's message.
    /// (The caller drops the upstream body of a stream that has ended.)
    fn fail(&mut self, kind: FailureKind, message: &str) -> Bytes {
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
            None => error_chunk(
                &self.watch,
                self.provider_name.as_deref().unwrap_or(""),
                message,
            ),
        }
    }

    /// Ends the stream after a bad event (an in-band error or an invalid payload): `out`, the good
    /// bytes before it, then the gateway's error chunk.
    fn bad_event(&mut self, out: Bytes) -> Bytes {
        let message = match self.watch.phase {
            Phase::UpstreamError => "the provider reported an error after the stream started",
            _ => "the provider sent an invalid event",
        };
        let chunk = self.fail(FailureKind::InvalidResponse, message);
        concat(out, chunk)
    }

    /// The upstream body ended: its last event, completed if good, then the end of the stream
    /// (after `[DONE]`) or the error chunk (the stream stopped short).
    fn upstream_ended(&mut self) -> Bytes {
        self.watch.finish();
        let out = self.framer.flush(&self.watch);
        if self.watch.bad() {
            return self.bad_event(out);
        }
        if self.watch.phase == Phase::Done {
            self.recorder.finish(Outcome::Success);
            self.ended = true;
            return out;
        }
        let chunk = self.fail(
            FailureKind::InvalidResponse,
            "the provider's stream ended before it was complete",
        );
        concat(out, chunk)
    }
}

impl<B> StreamBody<B> {
    /// A stream handed over from priming whose last held frame ended with a bad event: the error
    /// chunk is queued after the held frames, and the upstream body dropped.
    pub(crate) fn end_bad(self: Pin<&mut Self>) {
        let mut this = self.project();
        let chunk = this.state.bad_event(Bytes::new());
        this.state.held.push_back(chunk);
        this.upstream.set(None);
    }
}

impl<B> StreamBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.project();
        let state = this.state;
        if let Some(b) = state.held.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(b))));
        }
        if state.ended {
            return Poll::Ready(None);
        }
        state.read(this.upstream, cx)
    }
}

impl StreamState {
    /// Reads the `upstream` body until it gives bytes to send on, ends, fails or is pending; the
    /// body is dropped once the stream has ended.
    fn read<B>(
        &mut self,
        mut upstream: Pin<&mut Option<B>>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let Some(mut body) = upstream.as_mut().as_pin_mut() else {
            self.ended = true;
            return Poll::Ready(None);
        };
        let step = loop {
            match body.as_mut().poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        let translate = self.translate.as_deref_mut();
                        let out = observe(translate, &mut self.watch, &mut self.framer, data);
                        if !out.is_empty() || self.watch.bad() {
                            break Step::Data(out);
                        }
                    }
                    // Trailers of a translated stream are dropped.
                    Err(_) if self.translate.as_ref().is_some_and(|t| !t.passes_through()) => {}
                    Err(trailers) => break Step::Trailers(trailers),
                },
                Poll::Ready(Some(Err(_))) => break Step::Failed,
                Poll::Ready(None) => break Step::End,
                Poll::Pending => break Step::Pending,
            }
        };
        let data = match step {
            Step::Pending if self.idle.expired(cx) => {
                self.fail(FailureKind::Timeout, "the provider's stream stalled")
            }
            Step::Pending => return Poll::Pending,
            Step::Trailers(t) => return Poll::Ready(Some(Ok(t))),
            Step::Failed => self.fail(FailureKind::InvalidResponse, "the provider's stream failed"),
            Step::End => self.upstream_ended(),
            Step::Data(out) if self.watch.bad() => {
                self.idle.activity();
                self.bad_event(out)
            }
            Step::Data(out) => {
                self.idle.activity();
                if self.watch.phase != Phase::Done {
                    // The usual frame (never empty: see the loop above); the stream goes on.
                    return Poll::Ready(Some(Ok(Frame::data(out))));
                }
                // The stream is complete: nothing the provider sends after `[DONE]` is read.
                self.recorder.finish(Outcome::Success);
                self.ended = true;
                out
            }
        };
        // The stream has ended (every arm above that did not return ended it): the upstream
        // body is dropped.
        debug_assert!(self.ended, "the stream goes on");
        upstream.set(None);
        if data.is_empty() {
            // Only when the stream has ended: nothing was left to send.
            return Poll::Ready(None);
        }
        Poll::Ready(Some(Ok(Frame::data(data))))
    }
}

/// What one poll of the upstream body gave.
enum Step {
    Data(Bytes),
    Trailers(Frame<Bytes>),
    Failed,
    End,
    Pending,
}

/// `a` then `b`, copying only when both have bytes.
fn concat(a: Bytes, b: Bytes) -> Bytes {
    if a.is_empty() {
        return b;
    }
    let mut out = BytesMut::with_capacity(a.len() + b.len());
    out.extend_from_slice(&a);
    out.extend_from_slice(&b);
    out.freeze()
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
            Kind::Stream(s) => s.as_mut().poll(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(data) => data.is_none(),
            Kind::Stream(s) => s.state.ended && s.state.held.is_empty(),
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
                .field("held", &s.state.held.len())
                .field("ended", &s.state.ended)
                .finish_non_exhaustive(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn expired(idle: &mut Idle) -> bool {
        std::future::poll_fn(|cx| Poll::Ready(idle.expired(cx))).await
    }

    /// Frames that keep coming never expire the stream; the silence after the last one does,
    /// exactly `limit` after it, though the timer was armed long before that frame.
    #[tokio::test(start_paused = true)]
    async fn idle_counts_from_the_last_frame() {
        let mut idle = Idle::since(Duration::from_secs(5), Instant::now());
        for _ in 0..10 {
            assert!(!expired(&mut idle).await);
            tokio::time::advance(Duration::from_secs(3)).await;
            idle.activity();
        }
        assert_eq!(until_expired(&mut idle).await, Duration::from_secs(5));
    }

    /// Polls `idle` until it expires; the time it took.
    async fn until_expired(idle: &mut Idle) -> Duration {
        let start = Instant::now();
        std::future::poll_fn(|cx| {
            if idle.expired(cx) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
        start.elapsed()
    }

    /// A frame just before the armed timer fires moves the deadline: the timer, firing early, is
    /// set again, and the silence is counted in full from the poll after that frame.
    #[tokio::test(start_paused = true)]
    async fn a_frame_just_before_the_timer_fires_restarts_the_count() {
        let mut idle = Idle::since(Duration::from_secs(5), Instant::now());
        assert!(!expired(&mut idle).await, "the timer is armed");
        tokio::time::advance(Duration::from_millis(4_999)).await;
        idle.activity();
        assert!(!expired(&mut idle).await);
        assert_eq!(until_expired(&mut idle).await, Duration::from_secs(5));
    }

    /// A stream with no frame at all times out `limit` after its start; frames that come in a
    /// burst, with no pending poll between them, count as one: the silence begins at the pending
    /// poll after the last.
    #[tokio::test(start_paused = true)]
    async fn the_silence_begins_at_the_first_pending_poll_after_frames() {
        let mut idle = Idle::since(Duration::from_secs(5), Instant::now());
        assert_eq!(until_expired(&mut idle).await, Duration::from_secs(5));

        let mut idle = Idle::since(Duration::from_secs(5), Instant::now());
        assert!(!expired(&mut idle).await);
        tokio::time::advance(Duration::from_secs(2)).await;
        idle.activity();
        tokio::time::advance(Duration::from_secs(1)).await;
        idle.activity();
        assert_eq!(until_expired(&mut idle).await, Duration::from_secs(5));
    }
}
