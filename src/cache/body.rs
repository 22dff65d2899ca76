//! The cache's response body: the inner body, recorded on its way out, or a cached answer replayed.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::entry::prepare;
use super::inflight::Lead;
use super::key::CacheKey;
use super::store::{CacheStore, CachedResponse};
use crate::clock::SharedClock;

/// Records the frames of a cacheable answer while they pass, and stores the answer when it ends.
pub(crate) struct Recorder {
    pub(crate) key: CacheKey,
    pub(crate) ttl: Duration,
    pub(crate) headers: HeaderMap,
    pub(crate) extensions: http::Extensions,
    pub(crate) streamed: bool,
    pub(crate) max_bytes: usize,
    pub(crate) store: Arc<dyn CacheStore>,
    pub(crate) clock: SharedClock,
    pub(crate) lead: Option<Lead>,
    pub(crate) frames: Vec<Bytes>,
    pub(crate) bytes: usize,
}

impl Recorder {
    /// Keeps a reference to `data` (no copy); gives up on an answer over the size limit.
    /// `false` once given up.
    fn record(&mut self, data: &Bytes) -> bool {
        self.bytes = self.bytes.saturating_add(data.len());
        if self.bytes > self.max_bytes {
            return false;
        }
        self.frames.push(data.clone());
        true
    }

    /// Stores the complete answer and hands it to the coalesced followers.
    fn finish(mut self: Box<Self>) {
        let frames = std::mem::take(&mut self.frames);
        let outcome = prepare(frames, self.streamed).map(|p| {
            let entry = Arc::new(CachedResponse {
                headers: std::mem::take(&mut self.headers),
                frames: p.frames,
                source_id: p.source_id.map(Arc::from),
                created: p.created,
                stored_at_ms: self.clock.unix_millis(),
                ttl: self.ttl,
                streamed: self.streamed,
                extensions: std::mem::take(&mut self.extensions),
            });
            self.store.put(self.key.clone(), entry.clone());
            entry
        });
        if let Some(lead) = self.lead.take() {
            lead.finish(outcome);
        }
    }
}

pin_project! {
    /// Response body of [`ResponseCache`](super::ResponseCache): the inner body, forwarded frame by
    /// frame (and recorded when the answer is cacheable), or the frames of a cached answer.
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        // The recorder is boxed: a body that is not recorded (the cache disabled, a request not
        // cached) is the inner body and a word.
        Live { #[pin] body: B, recorder: Option<Box<Recorder>> },
        Replay { frames: VecDeque<Bytes>, remaining: u64 },
    }
}

impl<B: Body<Data = Bytes>> ResponseBody<B> {
    /// The inner body, recorded into the cache when `recorder` is given.
    pub(crate) fn live(body: B, recorder: Option<Box<Recorder>>) -> Self {
        let recorder = match recorder {
            // An empty body is complete already.
            Some(r) if body.is_end_stream() => {
                r.finish();
                None
            }
            r => r,
        };
        ResponseBody {
            kind: Kind::Live { body, recorder },
        }
    }
}

impl<B> ResponseBody<B> {
    /// A cached answer's frames.
    pub(crate) fn replay(frames: Vec<Bytes>) -> Self {
        let remaining = frames.iter().map(|f| f.len() as u64).sum();
        ResponseBody {
            kind: Kind::Replay {
                frames: frames.into_iter().filter(|f| !f.is_empty()).collect(),
                remaining,
            },
        }
    }
}

impl<B: Body<Data = Bytes>> Body for ResponseBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.project().kind.project() {
            KindProj::Live { mut body, recorder } => {
                if recorder.is_none() {
                    // Not recorded (or no longer): the inner body's frames as they come.
                    return body.poll_frame(cx);
                }
                let polled = std::task::ready!(body.as_mut().poll_frame(cx));
                let end = match &polled {
                    Some(Ok(frame)) => match (frame.data_ref(), recorder.as_mut()) {
                        (Some(data), Some(r)) => {
                            if !r.record(data) {
                                *recorder = None;
                            }
                            body.is_end_stream()
                        }
                        // Trailers end the answer.
                        (None, _) => true,
                        (Some(_), None) => false,
                    },
                    // A failed answer is never cached.
                    Some(Err(_)) => {
                        *recorder = None;
                        false
                    }
                    None => true,
                };
                if end {
                    if let Some(r) = recorder.take() {
                        r.finish();
                    }
                }
                Poll::Ready(polled)
            }
            KindProj::Replay { frames, remaining } => Poll::Ready(frames.pop_front().map(|f| {
                *remaining -= f.len() as u64;
                Ok(Frame::data(f))
            })),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Live { body, .. } => body.is_end_stream(),
            Kind::Replay { frames, .. } => frames.is_empty(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Live { body, .. } => body.size_hint(),
            Kind::Replay { remaining, .. } => SizeHint::with_exact(*remaining),
        }
    }
}

impl<B> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Live { recorder, .. } => f
                .debug_struct("ResponseBody::Live")
                .field("recording", &recorder.is_some())
                .finish(),
            Kind::Replay { frames, remaining } => f
                .debug_struct("ResponseBody::Replay")
                .field("frames", &frames.len())
                .field("remaining", remaining)
                .finish(),
        }
    }
}
