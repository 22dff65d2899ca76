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
        // A non-streamed answer that was read whole, and edited, before the response was
        // returned (see the response future's `Reading` state); the meter finishes when the
        // consumer takes it (or drops it: cancelled).
        Edited {
            data: Option<Bytes>,
            trailers: Option<HeaderMap>,
            meter: Meter,
        },
        // A non-streamed answer whose body failed while it was read whole: the error is the
        // body's first and last frame.
        Failed {
            error: Option<B::Error>,
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
    /// The body of a response the meter reads frame by frame.
    pub(crate) fn metered(inner: B, mut meter: Meter) -> Self {
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
}

impl<B: Body> ResponseBody<B> {
    /// A non-streamed answer read whole: `data` (edited, or passed as it came when it went over
    /// the meter's limit), then `trailers`. The meter finishes when the data is taken; at once
    /// if there is none.
    pub(crate) fn edited(data: Bytes, trailers: Option<HeaderMap>, mut meter: Meter) -> Self {
        if data.is_empty() {
            let _ = meter.finish(End::Complete);
        }
        let data = (!data.is_empty()).then_some(data);
        ResponseBody {
            kind: Kind::Edited {
                data,
                trailers,
                meter,
            },
        }
    }

    /// A non-streamed answer whose body failed with `error` while it was read whole.
    pub(crate) fn failed(error: B::Error, meter: Meter) -> Self {
        ResponseBody {
            kind: Kind::Failed {
                error: Some(error),
                meter,
            },
        }
    }

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
    /// Reads the inner body to its next output. (Inlined into the caller: the usual data frame
    /// in the middle of the body is handled here, all else out of line.)
    #[inline(always)]
    fn poll<I: Body<Data = Bytes>>(
        &mut self,
        mut inner: Pin<&mut I>,
        cx: &mut Context<'_>,
    ) -> Poll<Polled<I::Error>> {
        loop {
            if self.done {
                return Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))));
            }
            let polled = ready!(inner.as_mut().poll_frame(cx));
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
            KindProj::Edited {
                data,
                trailers,
                meter,
            } => {
                if let Some(d) = data.take() {
                    let _ = meter.finish(End::Complete);
                    return Poll::Ready(Some(Ok(Frame::data(d))));
                }
                Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(t))))
            }
            KindProj::Failed { error, meter } => {
                let _ = meter.finish(End::Error);
                Poll::Ready(error.take().map(Err))
            }
            KindProj::Metered { inner, st } => st.poll(inner, cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Metered { inner, st } => st.is_end_stream(inner.is_end_stream()),
            Kind::Edited { data, trailers, .. } => data.is_none() && trailers.is_none(),
            Kind::Failed { error, .. } => error.is_none(),
            Kind::Full { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Metered { inner, st } if st.meter.mode() == Mode::Pass => inner.size_hint(),
            // Edits change the length.
            Kind::Metered { .. } => SizeHint::default(),
            Kind::Edited { data, .. } | Kind::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Kind::Failed { .. } => SizeHint::default(),
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
            Kind::Metered { st, .. } => f
                .debug_struct("ResponseBody")
                .field("meter", &st.meter)
                .finish_non_exhaustive(),
            Kind::Edited { data, meter, .. } => f
                .debug_struct("ResponseBody::Edited")
                .field("len", &data.as_ref().map_or(0, Bytes::len))
                .field("meter", meter)
                .finish(),
            Kind::Failed { meter, .. } => f
                .debug_struct("ResponseBody::Failed")
                .field("meter", meter)
                .finish(),
            Kind::Full { data } => f
                .debug_tuple("ResponseBody::Full")
                .field(&data.as_ref().map_or(0, Bytes::len))
                .finish(),
        }
    }
}
