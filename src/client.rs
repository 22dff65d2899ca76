//! An HTTPS client for real providers (feature `client`): the `Service` to put under the stack.
//!
//! [`HttpsClient`] is hyper-util's pooled client over rustls, configured for calling LLM providers:
//!
//! * TLS with the webpki root certificates (or the platform's, with the `native-roots` feature),
//!   plain `http://` allowed for local providers (vLLM, Ollama, a mock);
//! * HTTP/1.1 and HTTP/2, chosen by ALPN;
//! * `TCP_NODELAY` on every connection: without it a request's HEADERS and DATA (HTTP/2), or the
//!   last small write of an exchange, wait ~40 ms for a delayed ACK;
//! * a connect timeout, an idle timeout and a cap on idle connections per host for the pool.
//!
//! | Setting | Default | Builder method |
//! |---|---|---|
//! | connect timeout | 10 s | [`connect_timeout`](ClientBuilder::connect_timeout) |
//! | pool idle timeout | 90 s | [`pool_idle_timeout`](ClientBuilder::pool_idle_timeout) |
//! | idle connections per host | 32 | [`pool_max_idle_per_host`](ClientBuilder::pool_max_idle_per_host) |
//! | `TCP_NODELAY` | on | [`nodelay`](ClientBuilder::nodelay) |
//! | plain `http://` | allowed | [`https_only`](ClientBuilder::https_only) |
//!
//! Errors are [`BoxError`]s whose source is hyper-util's error; they never contain request headers,
//! so provider keys do not leak through them.
//!
//! # Example
//!
//! ```
//! use tower::ServiceBuilder;
//! use tower_ai_gateway::catalog::{Catalog, Credentials, Endpoint, Model, Provider};
//! use tower_ai_gateway::client::HttpsClient;
//! use tower_ai_gateway::GatewayLayer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_ai_gateway::BoxError> {
//! let catalog = Catalog::builder()
//!     .provider(Provider::new("openai", "OpenAI")
//!         .base_url("https://api.openai.com/v1")
//!         .credentials(Credentials::key("sk-…")))
//!     .model(Model::new("openai/gpt-4o-mini", "GPT-4o mini"))
//!     .endpoint(Endpoint::new("openai/gpt-4o-mini", "openai"))
//!     .build()?;
//! let gateway = ServiceBuilder::new()
//!     .layer(GatewayLayer::new(catalog))
//!     .service(HttpsClient::new());
//! # drop(gateway);
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{self, Client};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::BoxError;

/// Default connect timeout: 10 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time an idle pooled connection is kept: 90 s.
pub const DEFAULT_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Default cap on idle pooled connections per host: 32.
pub const DEFAULT_POOL_MAX_IDLE_PER_HOST: usize = 32;

/// A pooled HTTPS client for providers. See the [module docs](self).
///
/// Clones share one connection pool, and a clone costs one reference count: the stack above it
/// is cloned per request (tower's `oneshot`), and hyper-util's `Client` holds several.
#[derive(Clone)]
pub struct HttpsClient {
    inner: Arc<Client<HttpsConnector<HttpConnector>, Full<Bytes>>>,
}

impl fmt::Debug for HttpsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpsClient").finish_non_exhaustive()
    }
}

impl Default for HttpsClient {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpsClient {
    /// A client with the defaults of the [module docs](self).
    ///
    /// # Panics
    ///
    /// With the `native-roots` feature, when the platform's certificate store cannot be read; use
    /// [`ClientBuilder::build`] to handle that as an error.
    pub fn new() -> Self {
        Self::builder()
            .build()
            .expect("the platform's root certificates load")
    }

    /// A builder, to change the defaults.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }
}

/// Builds an [`HttpsClient`]. See the [module docs](self) for the defaults.
#[derive(Clone, Debug)]
#[must_use]
pub struct ClientBuilder {
    connect_timeout: Option<Duration>,
    pool_idle_timeout: Option<Duration>,
    pool_max_idle_per_host: usize,
    nodelay: bool,
    https_only: bool,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            connect_timeout: Some(DEFAULT_CONNECT_TIMEOUT),
            pool_idle_timeout: Some(DEFAULT_POOL_IDLE_TIMEOUT),
            pool_max_idle_per_host: DEFAULT_POOL_MAX_IDLE_PER_HOST,
            nodelay: true,
            https_only: false,
        }
    }
}

impl ClientBuilder {
    /// Time allowed to open a TCP connection (`None`: the operating system's).
    pub fn connect_timeout(mut self, t: Option<Duration>) -> Self {
        self.connect_timeout = t;
        self
    }

    /// How long an idle pooled connection is kept (`None`: until the server closes it).
    pub fn pool_idle_timeout(mut self, t: Option<Duration>) -> Self {
        self.pool_idle_timeout = t;
        self
    }

    /// At most this many idle connections per host (0 disables pooling).
    pub fn pool_max_idle_per_host(mut self, n: usize) -> Self {
        self.pool_max_idle_per_host = n;
        self
    }

    /// `TCP_NODELAY` on new connections (on by default; see the [module docs](self)).
    pub fn nodelay(mut self, on: bool) -> Self {
        self.nodelay = on;
        self
    }

    /// Refuse plain `http://` URLs.
    pub fn https_only(mut self, on: bool) -> Self {
        self.https_only = on;
        self
    }

    /// The client. Fails only with the `native-roots` feature, when the platform's certificate
    /// store cannot be read.
    pub fn build(self) -> Result<HttpsClient, BoxError> {
        let mut http = HttpConnector::new();
        http.set_nodelay(self.nodelay);
        http.set_connect_timeout(self.connect_timeout);
        http.enforce_http(false);
        let roots = hyper_rustls::HttpsConnectorBuilder::new();
        #[cfg(feature = "native-roots")]
        let roots = roots.with_native_roots()?;
        #[cfg(not(feature = "native-roots"))]
        let roots = roots.with_webpki_roots();
        let schemes = if self.https_only {
            roots.https_only()
        } else {
            roots.https_or_http()
        };
        let https = schemes.enable_http1().enable_http2().wrap_connector(http);
        let inner = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(self.pool_idle_timeout)
            .pool_max_idle_per_host(self.pool_max_idle_per_host)
            .build(https);
        Ok(HttpsClient {
            inner: Arc::new(inner),
        })
    }
}

impl Service<Request<Full<Bytes>>> for HttpsClient {
    type Response = Response<Incoming>;
    type Error = BoxError;
    type Future = ResponseFuture;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // hyper-util serves `&Client` too: readiness needs no `&mut` (and is immediate).
        Service::<Request<Full<Bytes>>>::poll_ready(&mut &*self.inner, cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<Full<Bytes>>) -> Self::Future {
        ResponseFuture {
            inner: self.inner.request(req),
        }
    }
}

pin_project! {
    /// Response future of [`HttpsClient`].
    pub struct ResponseFuture {
        #[pin]
        inner: legacy::ResponseFuture,
    }
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResponseFuture")
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<Incoming>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(ready!(self.project().inner.poll(cx)).map_err(Into::into))
    }
}
