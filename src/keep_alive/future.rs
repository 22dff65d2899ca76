use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::{header, HeaderValue, Response};
use pin_project_lite::pin_project;
use tokio::time::Sleep;

use super::body::{ChunkContext, KeepAliveBody};
use super::layer::Config;

pin_project! {
    /// Response future of [`KeepAlive`](super::KeepAlive).
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        /// Not a stream (or the layer is disabled): the inner future, its answer untouched.
        Pass { #[pin] future: F },
        /// A stream: the inner future (boxed, so that the body can own it once the head has gone
        /// out) and the delay before that.
        Watch {
            future: Option<Pin<Box<F>>>,
            #[pin]
            delay: Sleep,
            config: Arc<Config>,
            context: Option<ChunkContext>,
        },
    }
}

impl<F> ResponseFuture<F> {
    #[inline]
    pub(crate) fn pass(future: F) -> Self {
        ResponseFuture {
            kind: Kind::Pass { future },
        }
    }

    pub(crate) fn watch(future: F, config: Arc<Config>, context: ChunkContext) -> Self {
        ResponseFuture {
            kind: Kind::Watch {
                future: Some(Box::pin(future)),
                delay: tokio::time::sleep(config.delay),
                config,
                context: Some(context),
            },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<KeepAliveBody<F, B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Pass { future } => {
                future.poll(cx).map_ok(|res| res.map(KeepAliveBody::inner))
            }
            KindProj::Watch {
                future,
                delay,
                config,
                context,
            } => watch(future, delay, config, context, cx),
        }
    }
}

/// Polls a stream's inner future; once `delay` has passed without its answer, answers with the
/// early head.
#[inline(never)]
fn watch<F, B, E>(
    future: &mut Option<Pin<Box<F>>>,
    delay: Pin<&mut Sleep>,
    config: &Config,
    context: &mut Option<ChunkContext>,
    cx: &mut Context<'_>,
) -> Poll<Result<Response<KeepAliveBody<F, B>>, E>>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    let Some(inner) = future.as_mut() else {
        panic!("keep_alive::ResponseFuture polled after completion");
    };
    if let Poll::Ready(res) = inner.as_mut().poll(cx) {
        *future = None;
        return Poll::Ready(Ok(res?.map(KeepAliveBody::inner)));
    }
    ready!(delay.poll(cx));
    let (Some(inner), Some(context)) = (future.take(), context.take()) else {
        panic!("keep_alive::ResponseFuture polled after completion");
    };
    Poll::Ready(Ok(early_head(inner, config, context)))
}

/// The `200` event-stream head sent before the inner answer, with a body that comments until it
/// comes.
fn early_head<F, B>(
    future: Pin<Box<F>>,
    config: &Config,
    context: ChunkContext,
) -> Response<KeepAliveBody<F, B>> {
    let id = HeaderValue::from_str(context.id.as_str()).ok();
    let mut res = Response::new(KeepAliveBody::waiting(future, config.interval, context));
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Some(id) = id {
        headers.insert("x-generation-id", id);
    }
    res
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
