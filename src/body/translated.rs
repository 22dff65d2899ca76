//! Bodies of the translating layers: a chat-completions event stream turned into another wire's
//! events frame by frame ([`TranslatedSse`]), and the body those layers answer with
//! ([`TranslatedBody`]).

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::BoxError;

/// What turns a chat-completions event stream into another wire's events, frame by frame: the
/// Anthropic Messages translator (`compat::SseTranslator`) and the Responses one
/// (`responses::ResponsesSseTranslator`). [`TranslatedSse`] drives it.
pub trait SseTranslate {
    /// Takes the next bytes of the chat-completions stream; returns the events to write (often
    /// none: an event may span frames).
    fn feed(&mut self, bytes: &[u8]) -> Bytes;
    /// The stream failed before its end: the events that report `message` to the caller.
    fn fail(&mut self, message: &str) -> Bytes;
    /// The stream ended: whatever closes the translated stream.
    fn finish(&mut self) -> Bytes;
}

pin_project! {
    /// A body that translates a chat-completions SSE body into another wire's events with a
    /// [`SseTranslate`]. After the translator's terminal event the inner body is still drained, so
    /// the layers below see its end, but nothing more is written.
    pub struct TranslatedSse<B, T> {
        #[pin]
        inner: B,
        translator: T,
        done: bool,
    }
}

impl<B, T> TranslatedSse<B, T> {
    /// Wraps `inner`, a chat-completions SSE body.
    pub fn new(inner: B, translator: T) -> Self {
        TranslatedSse {
            inner,
            translator,
            done: false,
        }
    }
}

impl<B, T> Body for TranslatedSse<B, T>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
    T: SseTranslate,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        loop {
            if *this.done {
                return Poll::Ready(None);
            }
            let out = match std::task::ready!(this.inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => this.translator.feed(&data),
                    Err(_) => continue, // trailers
                },
                Some(Err(e)) => {
                    *this.done = true;
                    let e: BoxError = e.into();
                    this.translator
                        .fail(&format!("upstream stream failed: {e}"))
                }
                None => {
                    *this.done = true;
                    this.translator.finish()
                }
            };
            if !out.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(out))));
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

impl<B, T> fmt::Debug for TranslatedSse<B, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TranslatedSse")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

pin_project! {
    /// The response body of a translating layer (`MessagesLayer`, `ResponsesLayer`): a complete
    /// body it built (a translated JSON answer or an error), a translated event stream, or the inner
    /// body passed through (an answer already on the caller's wire).
    pub struct TranslatedBody<B, T> {
        #[pin]
        kind: TranslatedKind<B, T>,
    }
}

pin_project! {
    #[project = TranslatedKindProj]
    enum TranslatedKind<B, T> {
        Full { data: Option<Bytes> },
        Sse { #[pin] body: TranslatedSse<B, T> },
        Pass { #[pin] body: B },
    }
}

impl<B, T> TranslatedBody<B, T> {
    /// A complete body of `data`.
    pub fn full(data: Bytes) -> Self {
        TranslatedBody {
            kind: TranslatedKind::Full { data: Some(data) },
        }
    }

    /// `inner`, a chat-completions event stream, translated by `translator`.
    pub fn translated(inner: B, translator: T) -> Self {
        TranslatedBody {
            kind: TranslatedKind::Sse {
                body: TranslatedSse::new(inner, translator),
            },
        }
    }

    /// `inner`, passed through untouched.
    pub fn pass(inner: B) -> Self {
        TranslatedBody {
            kind: TranslatedKind::Pass { body: inner },
        }
    }
}

impl<B, T> From<Bytes> for TranslatedBody<B, T> {
    fn from(data: Bytes) -> Self {
        TranslatedBody::full(data)
    }
}

impl<B, T> Body for TranslatedBody<B, T>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
    T: SseTranslate,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project().kind.project() {
            TranslatedKindProj::Full { data } => {
                Poll::Ready(data.take().map(|d| Ok(Frame::data(d))))
            }
            TranslatedKindProj::Sse { body } => body.poll_frame(cx),
            TranslatedKindProj::Pass { body } => body.poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            TranslatedKind::Full { data } => data.is_none(),
            TranslatedKind::Sse { body } => body.is_end_stream(),
            TranslatedKind::Pass { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            TranslatedKind::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            TranslatedKind::Sse { .. } => SizeHint::default(),
            TranslatedKind::Pass { body } => body.size_hint(),
        }
    }
}

impl<B, T> fmt::Debug for TranslatedBody<B, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            TranslatedKind::Full { .. } => "Full",
            TranslatedKind::Sse { .. } => "Sse",
            TranslatedKind::Pass { .. } => "Pass",
        };
        f.debug_tuple("TranslatedBody").field(&kind).finish()
    }
}

/// A comment line (`:`…: the gateway's keep-alive before the first token, or a provider's) is
/// written to `out` as it came, as every SSE parser ignores it, so the caller's connection stays
/// warm too. True when `line` was one.
pub(crate) fn pass_comment(line: &[u8], out: &mut BytesMut) -> bool {
    if !line.starts_with(b":") {
        return false;
    }
    out.extend_from_slice(line);
    out.extend_from_slice(b"\n\n");
    true
}
