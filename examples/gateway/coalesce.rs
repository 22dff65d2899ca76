//! [`Coalesce`]: the server-edge body that hands on together the data frames that are ready
//! together.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

/// The most bytes held before they go out whatever comes next.
const MAX_HELD: usize = 64 * 1024;

/// Yields without new data after which held data goes out.
const IDLE_YIELDS: u8 = 2;

pin_project! {
    /// The gateway's response body: the data frames that are ready together go out as one frame,
    /// so that a burst of stream events costs one write to the socket, not one each.
    ///
    /// The first data frame goes out at once, with the response head: the time to the first token
    /// is what a caller of a stream waits for, and it does not wait for the rest of a burst.
    ///
    /// Nothing waits for data that is not there. When the inner body has given data and then has
    /// nothing ready, the data is held while the task yields (`tokio::task::yield_now`: to the
    /// back of the run queue) — other tasks run, among them the client connection that reads the
    /// upstream and decodes its next chunk — and whatever becomes ready meanwhile joins it; after
    /// two yields with nothing new, it goes out. A body that ends, fails or sends
    /// trailers first hands on what it holds; a non-streamed answer (one frame, then the end) goes
    /// out at once.
    ///
    /// Why: hyper's server writes (and flushes) what it has whenever the body is not ready, and an
    /// upstream's events reach the body one at a time through the client connection's task, so a
    /// burst of 22 SSE events went out in 22 `writev` calls. (A plain self-wake would not do: the
    /// multi-threaded runtime runs a task that wakes itself again at once, before the connection.)
    ///
    /// Bounded by `B: Body` (like tower-http's `DecompressionBody`) because it may hold the
    /// trailers or the error it read from `B` after data it still has to hand on.
    pub struct Coalesce<B, Y>
    where
        B: Body,
    {
        #[pin]
        inner: B,
        held: Held,
        // What the inner body gave after the held data: handed on at the next poll.
        next: Option<Next<B>>,
        // The yield in progress while data is held: kept in place, each yield where the last one
        // was (no allocation per yield).
        #[pin]
        yielding: Option<Y>,
        // Makes a yield (`tokio::task::yield_now`, whose future type has no name).
        yield_now: fn() -> Y,
        // Yields since the inner body last gave data.
        idle_yields: u8,
        // The inner body ended.
        ended: bool,
        // A data frame went out.
        started: bool,
    }
}

/// What a poll of the inner body gave after data that is still held.
type Next<B> = Result<Frame<Bytes>, <B as Body>::Error>;

/// Data frames gathered: one frame as it came (no copy), or several copied together. Held here
/// while they wait to go out; also what the server's [`ReadBody`](crate::server::ReadBody) reads a
/// request body into.
#[derive(Debug, Default)]
pub(crate) enum Held {
    #[default]
    Empty,
    One(Bytes),
    Many(BytesMut),
}

impl Held {
    pub(crate) fn len(&self) -> usize {
        match self {
            Held::Empty => 0,
            Held::One(b) => b.len(),
            Held::Many(b) => b.len(),
        }
    }

    pub(crate) fn push(&mut self, data: Bytes) {
        *self = match std::mem::take(self) {
            Held::Empty => Held::One(data),
            Held::One(first) => {
                let mut all = BytesMut::with_capacity((first.len() + data.len()).max(4096));
                all.extend_from_slice(&first);
                all.extend_from_slice(&data);
                Held::Many(all)
            }
            Held::Many(mut all) => {
                all.extend_from_slice(&data);
                Held::Many(all)
            }
        };
    }

    pub(crate) fn take(&mut self) -> Option<Bytes> {
        match std::mem::take(self) {
            Held::Empty => None,
            Held::One(b) => Some(b),
            Held::Many(b) => Some(b.freeze()),
        }
    }
}

impl<B: Body, Y> std::fmt::Debug for Coalesce<B, Y> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coalesce")
            .field("held", &self.held.len())
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

/// Wraps `inner` in a [`Coalesce`] that yields with `tokio::task::yield_now`.
pub fn coalesce<B: Body>(inner: B) -> Coalesce<B, impl Future<Output = ()> + Send> {
    Coalesce {
        inner,
        held: Held::Empty,
        next: None,
        yielding: None,
        yield_now: tokio::task::yield_now,
        idle_yields: 0,
        ended: false,
        started: false,
    }
}

impl<B, Y> Body for Coalesce<B, Y>
where
    B: Body,
    B::Data: Buf,
    Y: Future<Output = ()>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        if let Some(next) = this.next.take() {
            return Poll::Ready(Some(next));
        }
        loop {
            if *this.ended {
                return Poll::Ready(this.held.take().map(|d| Ok(Frame::data(d))));
            }
            let after = match this.inner.as_mut().poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(mut data) => {
                        let data = data.copy_to_bytes(data.remaining());
                        if !*this.started {
                            *this.started = true;
                            return Poll::Ready(Some(Ok(Frame::data(data))));
                        }
                        *this.idle_yields = 0;
                        this.held.push(data);
                        if this.held.len() >= MAX_HELD {
                            return Poll::Ready(this.held.take().map(|d| Ok(Frame::data(d))));
                        }
                        continue;
                    }
                    Err(frame) => Ok(frame.map_data(|mut d| d.copy_to_bytes(d.remaining()))),
                },
                Poll::Ready(Some(Err(e))) => Err(e),
                Poll::Ready(None) => {
                    *this.ended = true;
                    continue;
                }
                Poll::Pending => {
                    if this.held.len() == 0 {
                        return Poll::Pending;
                    }
                    // Let the producer run before the held data goes out: after the data it
                    // gave, the upstream connection's task takes two turns to hand on the next
                    // chunk it has already read.
                    if let Some(fut) = this.yielding.as_mut().as_pin_mut() {
                        if fut.poll(cx).is_pending() {
                            return Poll::Pending;
                        }
                        this.yielding.set(None);
                    }
                    if *this.idle_yields < IDLE_YIELDS {
                        *this.idle_yields += 1;
                        this.yielding.set(Some((this.yield_now)()));
                        if let Some(fut) = this.yielding.as_mut().as_pin_mut() {
                            if fut.poll(cx).is_pending() {
                                return Poll::Pending;
                            }
                        }
                        this.yielding.set(None);
                        continue;
                    }
                    *this.idle_yields = 0;
                    return Poll::Ready(this.held.take().map(|d| Ok(Frame::data(d))));
                }
            };
            // Trailers or an error: what is held goes first.
            return Poll::Ready(Some(match this.held.take() {
                Some(d) => {
                    *this.next = Some(after);
                    Ok(Frame::data(d))
                }
                None => after,
            }));
        }
    }

    fn is_end_stream(&self) -> bool {
        self.next.is_none() && self.held.len() == 0 && (self.ended || self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = if self.ended {
            SizeHint::with_exact(0)
        } else {
            self.inner.size_hint()
        };
        let held = self.held.len() as u64;
        if held > 0 {
            hint.set_lower(hint.lower() + held);
            if let Some(upper) = hint.upper() {
                hint.set_upper(upper + held);
            }
        }
        hint
    }
}
