//! The response body of [`UsageMeter`](super::UsageMeter): the inner body observed frame by frame
//! through its [`Meter`], or a non-streamed answer edited whole before the response was returned.
//!
//! Imports `meter` and `settle` (for [`End`]).

use std::fmt;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::meter::{Meter, Mode};
use super::settle::End;
use crate::route::AnswerReading;

pin_project! {
    /// Response body for [`UsageMeter`](super::UsageMeter): the upstream body, observed and edited
    /// on the way through (see the [module docs](super#the-response-body)), or a complete body the
    /// layer produced itself (a 402 rejection).
    ///
    /// Bounded by `B: Body` (like tower-http's `DecompressionBody`) because it may hold a frame or
    /// an error it read from `B` ahead of its consumer.
    pub struct ResponseBody<B>
    where
        B: Body,
    {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B>
    where
        B: Body,
    {
        // The inner body, observed and edited frame by frame.
        Metered {
            #[pin]
            inner: B,
            st: Metering,
        },
        // The inner body after the response future read its first frame (`first`, replayed
        // before the rest) without finding the whole answer in it; boxed because it was polled.
        Peeked {
            inner: Pin<Box<B>>,
            first: Option<Box<Polled<B::Error, B::Data>>>,
            st: Metering,
        },
        // A non-streamed answer that arrived whole and was edited before the response was
        // returned; the meter finishes when the consumer takes it (or drops it: cancelled).
        Edited {
            data: Option<Bytes>,
            meter: Meter,
        },
        // A body the layer produced itself.
        Full { data: Option<Bytes> },
    }
}

/// What polling a body gave: a frame, an error, or its end.
type Polled<E, D = Bytes> = Option<Result<Frame<D>, E>>;

/// The meter of a body read frame by frame, and what is left to emit after the inner body ended.
struct Metering {
    meter: Meter,
    trailers: Option<HeaderMap>,
    done: bool,
}

impl<B: Body<Data = Bytes>> ResponseBody<B> {
    /// The body of a response the meter reads: edited whole now if it is a non-streamed answer
    /// that comes in one frame covering its exact `size_hint` (with `answer`, the reading that came
    /// with it, if it is a reading of that frame), else read as it comes.
    pub(crate) fn new(
        inner: B,
        meter: Meter,
        cx: &mut Context<'_>,
        answer: Option<&mut AnswerReading>,
    ) -> Self {
        let whole = inner
            .size_hint()
            .exact()
            .filter(|&n| meter.mode() == Mode::Json && n > 0 && n <= meter.json_limit() as u64);
        match whole {
            Some(n) => Self::peek(inner, meter, (n, answer), cx),
            None => Self::metered(inner, meter),
        }
    }

    fn metered(inner: B, mut meter: Meter) -> Self {
        // An empty body ends before it starts: finish now, since nobody may poll it.
        let done = inner.is_end_stream() && meter.mode() != Mode::Json;
        if done {
            let _ = meter.finish(End::Complete);
        }
        let st = Metering {
            meter,
            trailers: None,
            done,
        };
        ResponseBody {
            kind: Kind::Metered { inner, st },
        }
    }

    /// Reads the first frame of `inner` (`n` bytes long by its `size_hint`): when it is the whole
    /// body, edits it in place — no second buffer — so that the response reports its exact length.
    fn peek(
        inner: B,
        mut meter: Meter,
        (n, answer): (u64, Option<&mut AnswerReading>),
        cx: &mut Context<'_>,
    ) -> Self {
        let mut inner = Box::pin(inner);
        let first = match inner.as_mut().poll_frame(cx) {
            Poll::Pending => None,
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) if data.len() as u64 == n && inner.is_end_stream() => {
                    // Done with the inner body: free it before the edit allocates.
                    drop(inner);
                    let data = meter.whole(data, answer);
                    if data.is_empty() {
                        let _ = meter.finish(End::Complete);
                    }
                    let data = (!data.is_empty()).then_some(data);
                    return ResponseBody {
                        kind: Kind::Edited { data, meter },
                    };
                }
                Ok(data) => Some(Box::new(Some(Ok(Frame::data(data))))),
                Err(frame) => Some(Box::new(Some(Ok(frame)))),
            },
            Poll::Ready(other) => Some(Box::new(other)),
        };
        let st = Metering {
            meter,
            trailers: None,
            done: false,
        };
        ResponseBody {
            kind: Kind::Peeked { inner, first, st },
        }
    }
}

impl<B: Body> ResponseBody<B> {
    pub(crate) fn full(data: Bytes) -> Self {
        ResponseBody {
            kind: Kind::Full {
                data: (!data.is_empty()).then_some(data),
            },
        }
    }
}

impl<B: Body> From<Bytes> for ResponseBody<B> {
    fn from(b: Bytes) -> Self {
        ResponseBody::full(b)
    }
}

impl Metering {
    /// Reads the inner body to its next output: `first` (a frame read ahead) is handled before
    /// the inner body is polled again. (Inlined into the caller without `first`, where it then
    /// costs nothing; the usual data frame in the middle of the body is handled here, all else
    /// out of line.)
    #[inline(always)]
    fn poll<I: Body<Data = Bytes>>(
        &mut self,
        mut inner: Pin<&mut I>,
        mut first: Option<&mut Option<Box<Polled<I::Error>>>>,
        cx: &mut Context<'_>,
    ) -> Poll<Polled<I::Error>> {
        loop {
            if self.done {
                return Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))));
            }
            let polled = match first.as_mut().and_then(|f| f.take()) {
                Some(p) => *p,
                None => ready!(inner.as_mut().poll_frame(cx)),
            };
            let data = match polled {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => data,
                    Err(frame) => return Poll::Ready(self.on_trailers(frame).map(Ok)),
                },
                Some(Err(e)) => return Poll::Ready(self.on_end(Some(e))),
                None => return Poll::Ready(self.on_end(None)),
            };
            let out = self.meter.data(data);
            if inner.is_end_stream() {
                return Poll::Ready(self.last_data(out).map(Ok));
            }
            if !out.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(out))));
            }
        }
    }

    /// The output of the inner body's last data frame: the consumer may not poll again (exact
    /// Content-Length), so the body ends here.
    #[inline(never)]
    fn last_data(&mut self, out: Bytes) -> Option<Frame<Bytes>> {
        self.done = true;
        let rest = self.meter.finish(End::Complete);
        non_empty(concat(out, rest))
    }

    /// The inner body ended, or failed with `error`.
    #[cold]
    #[inline(never)]
    fn on_end<E>(&mut self, error: Option<E>) -> Polled<E> {
        self.done = true;
        match error {
            Some(e) => {
                let _ = self.meter.finish(End::Error);
                Some(Err(e))
            }
            None => non_empty(self.meter.finish(End::Complete)).map(Ok),
        }
    }

    /// [`Metering::poll`] for a body read ahead, out of line: the usual body (not read ahead)
    /// then has the only inlined copy.
    #[inline(never)]
    fn poll_peeked<I: Body<Data = Bytes>>(
        &mut self,
        inner: Pin<&mut I>,
        first: &mut Option<Box<Polled<I::Error>>>,
        cx: &mut Context<'_>,
    ) -> Poll<Polled<I::Error>> {
        self.poll(inner, Some(first), cx)
    }

    /// A frame that is not data (trailers) ends the body: what is still to emit goes first.
    #[inline(never)]
    fn on_trailers(&mut self, frame: Frame<Bytes>) -> Option<Frame<Bytes>> {
        self.done = true;
        let rest = self.meter.finish(End::Complete);
        match frame.into_trailers() {
            Ok(t) if rest.is_empty() => Some(Frame::trailers(t)),
            Ok(t) => {
                self.trailers = Some(t);
                Some(Frame::data(rest))
            }
            // Neither data nor trailers: nothing to forward.
            Err(_) => non_empty(rest),
        }
    }

    fn is_end_stream(&self, inner_ended: bool) -> bool {
        if self.done {
            self.trailers.is_none()
        } else {
            inner_ended && self.meter.is_finished()
        }
    }
}

fn non_empty(b: Bytes) -> Option<Frame<Bytes>> {
    (!b.is_empty()).then(|| Frame::data(b))
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.project().kind.project() {
            KindProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            KindProj::Edited { data, meter } => {
                let out = data.take().map(|d| Ok(Frame::data(d)));
                let _ = meter.finish(End::Complete);
                Poll::Ready(out)
            }
            KindProj::Metered { inner, st } => st.poll(inner, None, cx),
            KindProj::Peeked { inner, first, st } => st.poll_peeked(inner.as_mut(), first, cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Metered { inner, st } => st.is_end_stream(inner.is_end_stream()),
            Kind::Peeked { inner, first, st } => {
                first.is_none() && st.is_end_stream(inner.is_end_stream())
            }
            Kind::Edited { data, .. } | Kind::Full { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Metered { inner, st } if st.meter.mode() == Mode::Pass => inner.size_hint(),
            // Edits change the length.
            Kind::Metered { .. } | Kind::Peeked { .. } => SizeHint::default(),
            Kind::Edited { data, .. } | Kind::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}

fn concat(a: Bytes, b: Bytes) -> Bytes {
    if a.is_empty() {
        b
    } else if b.is_empty() {
        a
    } else {
        let mut v = Vec::with_capacity(a.len() + b.len());
        v.extend_from_slice(&a);
        v.extend_from_slice(&b);
        Bytes::from(v)
    }
}

impl<B: Body> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Metered { st, .. } | Kind::Peeked { st, .. } => f
                .debug_struct("ResponseBody")
                .field("meter", &st.meter)
                .finish_non_exhaustive(),
            Kind::Edited { data, meter } => f
                .debug_struct("ResponseBody::Edited")
                .field("len", &data.as_ref().map_or(0, Bytes::len))
                .field("meter", meter)
                .finish(),
            Kind::Full { data } => f
                .debug_tuple("ResponseBody::Full")
                .field(&data.as_ref().map_or(0, Bytes::len))
                .finish(),
        }
    }
}
