use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use serde_json::{json, Value};
use sync_wrapper::SyncWrapper;
use tokio::time::{Instant, Sleep};

use super::layer::KEEP_ALIVE_COMMENT;
use crate::route::ShortString;
use crate::usage_meter::GenerationId;
use crate::BoxError;

/// The most of an inner error body read to build the in-band error chunk.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// What the in-band error chunk needs to look like the stream's other chunks.
#[derive(Clone, Debug)]
pub(crate) struct ChunkContext {
    pub(crate) id: GenerationId,
    created: i64,
    /// The first requested model: inline up to 40 bytes (no allocation per stream).
    model: ShortString,
}

impl ChunkContext {
    /// The context of a stream whose route was read at `unix_millis`, asking for `model` first,
    /// answered as generation `id`.
    pub(crate) fn new(id: GenerationId, unix_millis: i64, model: ShortString) -> Self {
        ChunkContext {
            id,
            created: unix_millis.div_euclid(1000),
            model,
        }
    }

    /// The in-band error chunk for `error` (an OpenRouter error object), with the router
    /// metadata the error answer carried.
    fn error_chunk(&self, error: Value, metadata: Option<Value>) -> Bytes {
        let mut chunk = json!({
            "id": self.id.as_str(),
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "error": error,
            "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}],
        });
        if let Some(metadata) = metadata {
            chunk["openrouter_metadata"] = metadata;
        }
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(chunk.to_string().as_bytes());
        out.extend_from_slice(b"\n\n");
        Bytes::from(out)
    }
}

/// The error object of an inner error answer (its `error` member when it is OpenRouter-shaped,
/// else one built from the status) and its `openrouter_metadata`, if any.
fn error_object(status: StatusCode, body: &[u8]) -> (Value, Option<Value>) {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(mut o)) if o.get("error").is_some_and(Value::is_object) => (
            o.remove("error").unwrap_or(Value::Null),
            o.remove("openrouter_metadata"),
        ),
        _ => (
            json!({
                "code": status.as_u16(),
                "message": status.canonical_reason().unwrap_or("upstream error"),
            }),
            None,
        ),
    }
}

/// What the in-band error chunk of a failed inner answer is made from (boxed: this rare state
/// would otherwise make every body of the layer that much larger, and every move of it dearer).
struct Failed {
    status: StatusCode,
    read: Vec<u8>,
    context: ChunkContext,
}

pin_project! {
    /// Response body of [`KeepAlive`](super::KeepAlive): the inner body untouched, or, after an
    /// early head, comments until the inner answer comes and then its stream (or its error as an
    /// in-band chunk).
    pub struct KeepAliveBody<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project! {
    /// Head sent, inner answer awaited: a comment at once, then one per `interval` (boxed, as
    /// [`Failed`] is: every body of the layer is then the inner body and a word).
    #[project = WaitingProj]
    struct Waiting<F> {
        future: SyncWrapper<Pin<Box<F>>>,
        #[pin]
        tick: Sleep,
        interval: Duration,
        first: bool,
        context: ChunkContext,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        /// The inner body.
        Inner { #[pin] body: B },
        /// Head sent, inner answer awaited.
        Waiting { waiting: Pin<Box<Waiting<F>>> },
        /// Head sent, the inner answer is an error: reading it to send it in-band.
        Failing {
            #[pin]
            body: B,
            failed: Box<Failed>,
        },
        /// Ended.
        Done,
    }
}

impl<F, B> KeepAliveBody<F, B> {
    #[inline]
    pub(crate) fn inner(body: B) -> Self {
        KeepAliveBody {
            state: State::Inner { body },
        }
    }

    pub(crate) fn waiting(future: Pin<Box<F>>, interval: Duration, context: ChunkContext) -> Self {
        KeepAliveBody {
            state: State::Waiting {
                waiting: Box::pin(Waiting {
                    future: SyncWrapper::new(future),
                    tick: tokio::time::sleep(interval),
                    interval,
                    first: true,
                    context,
                }),
            },
        }
    }
}

impl<F, B, E> KeepAliveBody<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
    B: Body<Data = Bytes>,
{
    /// After an early head: the comments, then the inner answer's stream or its in-band error.
    #[inline(never)]
    fn poll_kept(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        loop {
            let mut state = self.as_mut().project().state;
            let next = match state.as_mut().project() {
                StateProj::Inner { body } => return body.poll_frame(cx),
                StateProj::Waiting { waiting } => {
                    let WaitingProj {
                        future,
                        mut tick,
                        interval,
                        first,
                        context,
                    } = waiting.as_mut().project();
                    if std::mem::take(first) {
                        return data(Bytes::from_static(KEEP_ALIVE_COMMENT));
                    }
                    match future.get_mut().as_mut().poll(cx) {
                        Poll::Ready(Ok(res)) => answered(res, context),
                        Poll::Ready(Err(e)) => {
                            let e: BoxError = e.into();
                            tracing::debug!(error = %e, "the inner service failed after the keep-alive head");
                            let chunk = context.error_chunk(
                                json!({
                                    "code": 502,
                                    "message": "the gateway failed before the stream started",
                                }),
                                None,
                            );
                            state.set(State::Done);
                            return data(chunk);
                        }
                        Poll::Pending => {
                            ready!(tick.as_mut().poll(cx));
                            tick.reset(Instant::now() + *interval);
                            return data(Bytes::from_static(KEEP_ALIVE_COMMENT));
                        }
                    }
                }
                StateProj::Failing { body, failed } => match ready!(body.poll_frame(cx)) {
                    Some(Ok(frame)) => {
                        if let Ok(d) = frame.into_data() {
                            let room = MAX_ERROR_BODY.saturating_sub(failed.read.len());
                            failed.read.extend_from_slice(&d[..d.len().min(room)]);
                        }
                        continue;
                    }
                    Some(Err(_)) | None => {
                        let (error, metadata) = error_object(failed.status, &failed.read);
                        let chunk = failed.context.error_chunk(error, metadata);
                        state.set(State::Done);
                        return data(chunk);
                    }
                },
                StateProj::Done => return Poll::Ready(None),
            };
            state.set(next);
        }
    }
}

fn data<E>(bytes: Bytes) -> Poll<Option<Result<Frame<Bytes>, E>>> {
    Poll::Ready(Some(Ok(Frame::data(bytes))))
}

impl<F, B, E> Body for KeepAliveBody<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        if let StateProj::Inner { body } = self.as_mut().project().state.project() {
            return body.poll_frame(cx);
        }
        self.poll_kept(cx)
    }

    fn is_end_stream(&self) -> bool {
        match &self.state {
            State::Inner { body } => body.is_end_stream(),
            State::Done => true,
            State::Waiting { .. } | State::Failing { .. } => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.state {
            State::Inner { body } => body.size_hint(),
            _ => SizeHint::default(),
        }
    }
}

/// The inner answer after the early head: its stream follows, or its error is read to be sent
/// in-band.
fn answered<F, B>(res: Response<B>, context: &ChunkContext) -> State<F, B> {
    let (parts, body) = res.into_parts();
    if parts.status.is_success() {
        State::Inner { body }
    } else {
        State::Failing {
            body,
            failed: Box::new(Failed {
                status: parts.status,
                read: Vec::new(),
                context: context.clone(),
            }),
        }
    }
}

impl<F, B> fmt::Debug for KeepAliveBody<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Inner { .. } => "Inner",
            State::Waiting { .. } => "Waiting",
            State::Failing { .. } => "Failing",
            State::Done => "Done",
        };
        f.debug_tuple("KeepAliveBody").field(&state).finish()
    }
}
