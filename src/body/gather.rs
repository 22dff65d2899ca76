//! Reading a body to its end under a size limit, without copying a body that arrives in one frame
//! (a `Full<Bytes>`, or a small body from hyper): ModelRouting reads the caller's request body
//! and ProviderFallback the body it is sent and the answers it buffers this way.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http_body::Body;

use crate::error::GatewayError;

/// The frames of a body read so far: the first kept as it is, later ones gathered into one buffer.
#[derive(Debug, Default)]
pub(crate) struct Frames {
    first: Option<Bytes>,
    more: Option<BytesMut>,
}

impl Frames {
    /// The bytes read so far.
    pub(crate) fn len(&self) -> usize {
        match (&self.more, &self.first) {
            (Some(m), _) => m.len(),
            (None, Some(f)) => f.len(),
            (None, None) => 0,
        }
    }

    /// Adds a frame's data.
    pub(crate) fn push(&mut self, data: Bytes) {
        match (&mut self.more, self.first.take()) {
            (Some(m), _) => m.extend_from_slice(&data),
            (None, None) => self.first = Some(data),
            (None, Some(first)) => {
                let mut m = BytesMut::with_capacity(first.len() + data.len());
                m.extend_from_slice(&first);
                m.extend_from_slice(&data);
                self.more = Some(m);
            }
        }
    }

    /// The whole body read so far (the first frame itself when there is only one).
    pub(crate) fn take(&mut self) -> Bytes {
        match (self.more.take(), self.first.take()) {
            (Some(m), _) => m.freeze(),
            (None, first) => first.unwrap_or_default(),
        }
    }
}

/// Why a body could not be gathered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GatherError {
    /// Its data went over the limit.
    TooLarge,
    /// The body failed.
    Failed,
}

impl GatherError {
    /// The error the caller gets: 413 over `limit`, else 400.
    pub(crate) fn into_error(self, limit: usize) -> GatewayError {
        match self {
            GatherError::TooLarge => GatewayError::payload_too_large(limit),
            GatherError::Failed => {
                GatewayError::invalid_request("", "the request body could not be read")
            }
        }
    }
}

/// A body being read to its end, up to `limit` bytes of data (trailers are skipped).
#[derive(Debug)]
pub(crate) struct Gather {
    frames: Frames,
    limit: usize,
}

impl Gather {
    pub(crate) fn new(limit: usize) -> Self {
        Gather {
            frames: Frames::default(),
            limit,
        }
    }

    /// Reads `body` to its end: all its data, or why not.
    pub(crate) fn poll<B: Body>(
        &mut self,
        mut body: Pin<&mut B>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Bytes, GatherError>> {
        loop {
            let mut data = match ready!(body.as_mut().poll_frame(cx)) {
                None => return Poll::Ready(Ok(self.frames.take())),
                Some(Err(_)) => return Poll::Ready(Err(GatherError::Failed)),
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => data,
                    Err(_) => continue,
                },
            };
            let n = data.remaining();
            if self.frames.len() + n > self.limit {
                return Poll::Ready(Err(GatherError::TooLarge));
            }
            // No copy for `Bytes` data.
            self.frames.push(data.copy_to_bytes(n));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Frame;
    use http_body_util::Full;
    use std::collections::VecDeque;

    /// A body of ready frames: data, or `Err` for a failure.
    struct Chunks(VecDeque<Result<&'static str, ()>>);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = ();

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, ()>>> {
            Poll::Ready(
                self.0
                    .pop_front()
                    .map(|r| r.map(|s| Frame::data(Bytes::from(s)))),
            )
        }
    }

    fn gather<B: Body + Unpin>(mut body: B, limit: usize) -> Result<Bytes, GatherError> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match Gather::new(limit).poll(Pin::new(&mut body), &mut cx) {
            Poll::Ready(r) => r,
            Poll::Pending => panic!("a ready body is read at once"),
        }
    }

    #[test]
    fn one_frame_is_kept_as_it_is() {
        let data = Bytes::from_static(b"{\"a\":1}");
        let got = gather(Full::new(data.clone()), 7).expect("within the limit");
        assert_eq!(got.as_ptr(), data.as_ptr());
        assert_eq!(gather(Full::new(data), 6), Err(GatherError::TooLarge));
    }

    #[test]
    fn frames_are_joined_and_failures_reported() {
        let frames = |v: &[Result<&'static str, ()>]| Chunks(v.iter().copied().collect());
        let body = frames(&[Ok("ab"), Ok(""), Ok("cd"), Ok("e")]);
        assert_eq!(gather(body, 5).expect("five bytes"), "abcde");
        let body = frames(&[Ok("ab"), Ok("cd"), Ok("e")]);
        assert_eq!(gather(body, 4), Err(GatherError::TooLarge));
        let body = frames(&[Ok("ab"), Err(())]);
        assert_eq!(gather(body, 5), Err(GatherError::Failed));
    }
}
