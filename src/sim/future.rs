use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;

use super::body::SimBody;
use super::error::SimError;

type BoxFuture = Pin<Box<dyn Future<Output = Result<Response<SimBody>, SimError>> + Send>>;

/// Response future for [`SimulatedProvider`](super::SimulatedProvider).
///
/// Dropping it before it resolves counts as a cancellation in the profile's
/// [`SimStats`](super::SimStats) (once the request body has been read).
pub struct ResponseFuture {
    inner: BoxFuture,
}

impl ResponseFuture {
    pub(crate) fn new(inner: BoxFuture) -> Self {
        ResponseFuture { inner }
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<SimBody>, SimError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
