use std::fmt;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::meter::{End, Meter, Mode};

pin_project! {
    /// Response body for [`UsageMeter`](super::UsageMeter): the upstream body, observed and edited
    /// on the way through (see the [module docs](super#the-response-body)), or a complete body the
    /// layer produced itself (a 402 rejection).
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Metered {
            #[pin]
            inner: B,
            meter: Meter,
            trailers: Option<HeaderMap>,
            done: bool,
        },
        Full { data: Option<Bytes> },
    }
}

impl<B: Body> ResponseBody<B> {
    pub(crate) fn metered(inner: B, mut meter: Meter) -> Self {
        // An empty body ends before it starts: finish now, since nobody may poll it.
        let done = inner.is_end_stream() && meter.mode() != Mode::Json;
        if done {
            let _ = meter.finish(End::Complete);
        }
        ResponseBody {
            kind: Kind::Metered {
                inner,
                meter,
                trailers: None,
                done,
            },
        }
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn full(data: Bytes) -> Self {
        ResponseBody {
            kind: Kind::Full {
                data: (!data.is_empty()).then_some(data),
            },
        }
    }
}

impl<B> From<Bytes> for ResponseBody<B> {
    fn from(b: Bytes) -> Self {
        ResponseBody::full(b)
    }
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
        let (mut inner, meter, trailers, done) = match self.project().kind.project() {
            KindProj::Full { data } => {
                return Poll::Ready(data.take().map(|d| Ok(Frame::data(d))));
            }
            KindProj::Metered {
                inner,
                meter,
                trailers,
                done,
            } => (inner, meter, trailers, done),
        };
        loop {
            if *done {
                return Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(t))));
            }
            match ready!(inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        let out = meter.data(data);
                        if inner.is_end_stream() {
                            // The consumer may not poll again (exact Content-Length): end here.
                            *done = true;
                            let rest = meter.finish(End::Complete);
                            let out = concat(out, rest);
                            if out.is_empty() {
                                return Poll::Ready(None);
                            }
                            return Poll::Ready(Some(Ok(Frame::data(out))));
                        }
                        if !out.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(out))));
                        }
                    }
                    Err(frame) => {
                        *done = true;
                        let rest = meter.finish(End::Complete);
                        match frame.into_trailers() {
                            Ok(t) if rest.is_empty() => {
                                return Poll::Ready(Some(Ok(Frame::trailers(t))));
                            }
                            Ok(t) => {
                                *trailers = Some(t);
                                return Poll::Ready(Some(Ok(Frame::data(rest))));
                            }
                            // Neither data nor trailers: nothing to forward.
                            Err(_) if rest.is_empty() => return Poll::Ready(None),
                            Err(_) => return Poll::Ready(Some(Ok(Frame::data(rest)))),
                        }
                    }
                },
                Some(Err(e)) => {
                    *done = true;
                    let _ = meter.finish(End::Error);
                    return Poll::Ready(Some(Err(e)));
                }
                None => {
                    *done = true;
                    let rest = meter.finish(End::Complete);
                    if rest.is_empty() {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(rest))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Metered {
                inner,
                meter,
                trailers,
                done,
            } => {
                if *done {
                    trailers.is_none()
                } else {
                    inner.is_end_stream() && meter.is_finished()
                }
            }
            Kind::Full { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Metered { inner, meter, .. } => {
                if meter.mode() == Mode::Pass {
                    inner.size_hint()
                } else {
                    // Edits change the length.
                    SizeHint::default()
                }
            }
            Kind::Full { data } => {
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

impl<B> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Metered { meter, .. } => f
                .debug_struct("ResponseBody")
                .field("meter", meter)
                .finish_non_exhaustive(),
            Kind::Full { data } => f
                .debug_tuple("ResponseBody::Full")
                .field(&data.as_ref().map_or(0, Bytes::len))
                .finish(),
        }
    }
}
