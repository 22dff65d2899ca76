//! Reading bodies: the request body from the layer above, a buffered answer, and a stream up to
//! its first content. Each reader is the data of one state of the
//! [`ResponseFuture`](super::ResponseFuture).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::Body;
use tokio::time::Instant;

use super::body::{observe, Framer, Held, Idle, Recorder, StreamBody, StreamState};
use super::sse::{Phase, Watch};
use crate::body::{Frames, Gather};
use crate::catalog::EndpointKey;
use crate::error::GatewayError;
use crate::wire::Wire;
use crate::BoxError;

/// Cap on a buffered upstream error body (read only to take its message).
pub(crate) const MAX_ERROR_BODY: usize = 64 * 1024;
/// Cap on what a stream may send before its first content.
const MAX_HELD: usize = 4 * 1024 * 1024;

/// The request body read so far.
pub(crate) struct Received {
    gather: Gather,
    limit: usize,
}

impl Received {
    pub(crate) fn new(limit: usize) -> Self {
        Received {
            gather: Gather::new(limit),
            limit,
        }
    }

    /// Reads the body to its end: its bytes, or 413 over the limit, or 400 if it fails.
    pub(crate) fn poll<RB>(
        &mut self,
        body: Pin<&mut RB>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Bytes, GatewayError>>
    where
        RB: Body<Data = Bytes>,
        RB::Error: Into<BoxError>,
    {
        let gathered = std::task::ready!(self.gather.poll(body, cx));
        Poll::Ready(gathered.map_err(|e| e.into_error(self.limit)))
    }
}

/// A non-streamed answer (or an error body, for its message) being read to its end or cap.
#[derive(Default)]
pub(crate) struct Buffer {
    frames: Frames,
    limit: usize,
    success: bool,
}

impl Buffer {
    /// `success`: a `2xx`, read up to `limit` (over it is broken); else an error body, whose
    /// first `limit` bytes are enough.
    pub(crate) fn new(limit: usize, success: bool) -> Self {
        Buffer {
            frames: Frames::default(),
            limit,
            success,
        }
    }

    /// Reads to the end; `true` when the body failed or a `2xx` went over the cap.
    pub(crate) fn poll<B>(&mut self, mut body: Pin<&mut B>, cx: &mut Context<'_>) -> Poll<bool>
    where
        B: Body<Data = Bytes>,
    {
        loop {
            match std::task::ready!(body.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => {
                    let Ok(d) = frame.into_data() else { continue };
                    let len = self.frames.len();
                    if len + d.len() > self.limit {
                        if self.success {
                            return Poll::Ready(true);
                        }
                        let room = self.limit.saturating_sub(len);
                        self.frames.push(d.slice(..room.min(d.len())));
                        return Poll::Ready(false);
                    }
                    self.frames.push(d);
                }
                Some(Err(_)) => return Poll::Ready(true),
                None => return Poll::Ready(false),
            }
        }
    }

    pub(crate) fn into_bytes(mut self) -> Bytes {
        self.frames.take()
    }
}

/// A stream being read until its first content-bearing event; what it sent is held. It is read
/// into the [`StreamBody`] its answer will have, allocated at once: moved into the future (which
/// ModelRouting boxes) instead, the stream's state would make that box larger.
pub(crate) struct Prime<B> {
    /// The stream's body, its recorder [`disarmed`](Recorder::disarmed) until the stream starts.
    pub(crate) stream: Pin<Box<StreamBody<B>>>,
    held_bytes: usize,
}

/// How priming a stream ended.
pub(crate) enum Primed {
    /// Content arrived (or the stream is done, or passed an upstream error through).
    Started,
    /// The stream failed before content.
    Failed,
}

impl<B> Prime<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    /// Priming `body`, an answer on `wire` from the endpoint `key`, made at `start` (the stream's
    /// idle timeout is counted from there until it starts).
    pub(crate) fn new(
        body: B,
        wire: Wire,
        (created, start): (u64, Instant),
        key: EndpointKey,
    ) -> Self {
        let stream = StreamBody {
            upstream: Some(body),
            state: StreamState {
                held: Held::default(),
                watch: Watch::new(),
                provider_name: None,
                recorder: Recorder::disarmed(key),
                ended: false,
                translate: wire.stream(created),
                framer: Framer::default(),
                idle: Idle::since(Duration::ZERO, start),
            },
        };
        Prime {
            stream: Box::pin(stream),
            held_bytes: 0,
        }
    }

    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Primed> {
        loop {
            let this = self.stream.as_mut().project();
            let s = this.state;
            let Some(body) = this.upstream.as_pin_mut() else {
                return Poll::Ready(Primed::Failed);
            };
            let frame = match std::task::ready!(body.poll_frame(cx)) {
                Some(Ok(frame)) => frame,
                Some(Err(_)) => return Poll::Ready(Primed::Failed),
                None => {
                    s.watch.finish();
                    return Poll::Ready(self.verdict().unwrap_or(Primed::Failed));
                }
            };
            let Ok(data) = frame.into_data() else {
                continue; // trailers before content: ignored
            };
            let translate = s.translate.as_deref_mut();
            let data = observe(translate, &mut s.watch, &mut s.framer, data);
            self.held_bytes += data.len();
            if !data.is_empty() {
                s.held.push_back(data);
            }
            if let Some(v) = self.verdict() {
                return Poll::Ready(v);
            }
        }
    }

    /// What the stream's phase says, or `None` to keep reading.
    fn verdict(&self) -> Option<Primed> {
        match self.stream.state.watch.phase {
            Phase::Started | Phase::Done | Phase::UpstreamError | Phase::Invalid => {
                Some(Primed::Started)
            }
            Phase::Failed => Some(Primed::Failed),
            Phase::Waiting if self.held_bytes > MAX_HELD => Some(Primed::Failed),
            Phase::Waiting => None,
        }
    }
}
