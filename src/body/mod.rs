//! The response body of this crate's layers.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

mod gather;
mod lines;
#[cfg(any(feature = "anthropic", feature = "responses"))]
mod translated;

pub(crate) use gather::{Frames, Gather};
pub(crate) use lines::{line_end, SseLines};

#[cfg(any(feature = "anthropic", feature = "responses"))]
pub(crate) use translated::pass_comment;
#[cfg(any(feature = "anthropic", feature = "responses"))]
pub use translated::{SseTranslate, TranslatedBody, TranslatedSse};

pin_project! {
    /// Either the inner service's body, untouched, or a complete body the layer produced itself (an
    /// OpenRouter-shaped error).
    pub struct GatewayBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Full { data: Option<Bytes> },
    }
}

impl<B> GatewayBody<B> {
    /// Wraps the inner service's body.
    pub fn new(body: B) -> Self {
        GatewayBody {
            kind: Kind::Inner { body },
        }
    }

    /// A complete body of `data`.
    pub fn full(data: Bytes) -> Self {
        GatewayBody {
            kind: Kind::Full {
                data: (!data.is_empty()).then_some(data),
            },
        }
    }

    /// The inner body, unless this is a body the layer produced.
    pub fn into_inner(self) -> Option<B> {
        match self.kind {
            Kind::Inner { body } => Some(body),
            Kind::Full { .. } => None,
        }
    }
}

impl<B> From<Bytes> for GatewayBody<B> {
    fn from(b: Bytes) -> Self {
        GatewayBody::full(b)
    }
}

impl<B: Body<Data = Bytes>> Body for GatewayBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Full { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}

impl<B> fmt::Debug for GatewayBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Inner { .. } => f.write_str("GatewayBody::Inner(..)"),
            Kind::Full { data } => f
                .debug_tuple("GatewayBody::Full")
                .field(&data.as_ref().map_or(0, Bytes::len))
                .finish(),
        }
    }
}
