//! Serving the router over TCP with limits for slow, idle and too many callers.
//!
//! - **Header read timeout** ([`ServerLimits::header_read_timeout`]): a connection that has not
//!   sent a whole request head within it is closed (HTTP/1.1 by hyper's own timer; the first
//!   request of a connection, including HTTP/2's preface, by the connection task).
//! - **Body read timeout** ([`ServerLimits::body_read_timeout`]): a request whose body has not
//!   arrived whole within it (counted from its head) is answered `408` with the JSON envelope
//!   (`error_type: timeout`).
//! - **Connections** ([`ServerLimits::max_connections`]): one more is answered `503` with the
//!   envelope and `Retry-After: 1`, then closed.
//! - **Requests in flight** ([`ServerLimits::max_in_flight`], a response counts until its body
//!   ends): one more is answered `503` with the envelope (`metadata.reason: "overloaded"`) and
//!   `Retry-After: 1`, never queued.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use std::convert::Infallible;

use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use axum::routing::future::RouteFuture;
use axum::Router;
use bytes::Bytes;
use futures_util::future::Either;
use futures_util::ready;
use http_body::Frame;
use http_body_util::{LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Timeout;
use tower::Service;
use tower_ai_gateway::{ErrorType, GatewayError};

use crate::app::coalesce::Held as Gathered;
use crate::app::{Chat, ChatFuture, ChatRoutes, ChatStack};

/// Limits of the example server (see the [module docs](self)).
#[derive(Clone, Debug)]
pub struct ServerLimits {
    /// Time allowed for a request head to arrive whole (default 10 s).
    pub header_read_timeout: Duration,
    /// Time allowed for a request body to arrive whole, from its head (default 30 s).
    pub body_read_timeout: Duration,
    /// Concurrent connections (default 10,000).
    pub max_connections: usize,
    /// Requests in flight, until their response bodies end (default 1,024).
    pub max_in_flight: usize,
    /// Request body limit in bytes: a larger body is a 413 (default 10 MiB).
    pub body_limit: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            max_in_flight: 1_024,
            body_limit: 10 * 1024 * 1024,
        }
    }
}

impl ServerLimits {
    /// The defaults, with what `[gateway.server]` sets and the gateway's body limit.
    pub fn from_config(section: &crate::config::ServerSection, body_limit: usize) -> Self {
        let d = ServerLimits::default();
        ServerLimits {
            header_read_timeout: section
                .header_read_timeout_ms
                .map_or(d.header_read_timeout, Duration::from_millis),
            body_read_timeout: section
                .body_read_timeout_ms
                .map_or(d.body_read_timeout, Duration::from_millis),
            max_connections: section.max_connections.unwrap_or(d.max_connections),
            max_in_flight: section.max_in_flight.unwrap_or(d.max_in_flight),
            body_limit,
        }
    }
}

/// The 503 answered when the server is at one of its limits.
fn overloaded(what: &str) -> GatewayError {
    GatewayError::new(
        ErrorType::Server,
        format!("the gateway is at its limit of {what}; retry shortly"),
    )
    .with_status(http::StatusCode::SERVICE_UNAVAILABLE)
    .with_metadata("reason", "overloaded")
    .with_retry_after(Duration::from_secs(1))
}

/// The error, and the connection closed after it: the request's body may be unread.
fn error_response(e: GatewayError) -> Response {
    let mut res: http::Response<Bytes> = e.into_response();
    res.headers_mut().insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    res.map(Body::from)
}

/// The router behind the body read timeout and the cap on requests in flight: takes an in-flight
/// slot (or answers 503), reads the body within the timeout (or answers 408; 413 over the body
/// limit), and holds the slot until the response body ends.
///
/// A tower service around the router rather than an axum `from_fn` middleware inside it: a
/// request costs no boxed future, no clone of a boxed route and no second boxed response body
/// (`scripts/gateway-icount.sh` counted the difference; see the README's benchmarks). It reads
/// hyper's body itself, so the body is boxed (as axum's `Body`) only once, whole.
///
/// The chat routes, when given ([`ChatRoutes`]), are served ahead of the router: the hot path
/// skips axum's routing and its boxed route and future.
#[derive(Clone)]
pub struct Gate {
    router: Router,
    chats: Option<ChatRoutes>,
    in_flight: Arc<Semaphore>,
    body_timeout: Duration,
    body_limit: usize,
}

impl Gate {
    /// `router` (and `chats` ahead of it) behind the limits' body read timeout, body limit and cap
    /// on requests in flight.
    pub fn new(router: Router, chats: Option<ChatRoutes>, limits: &ServerLimits) -> Self {
        Gate {
            router,
            chats,
            in_flight: Arc::new(Semaphore::new(limits.max_in_flight.max(1))),
            body_timeout: limits.body_read_timeout,
            body_limit: limits.body_limit,
        }
    }
}

/// What serves a request once its body is read: one of the chat routes, or the router.
enum Target {
    Chat(Chat<ChatStack>),
    Router(Router),
}

impl tower::Service<http::Request<Incoming>> for Gate {
    type Response = http::Response<Held>;
    type Error = Infallible;
    type Future = GateFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The router is always ready; the slot is taken in `call`, so that a request over the cap
        // is answered at once instead of queued.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Incoming>) -> GateFuture {
        self.serve(req)
    }
}

impl Gate {
    /// [`Service::call`] without the `&mut` (the gate is always ready, and nothing in it changes
    /// per request): the connection task serves each request with its one gate, where a clone
    /// and a `Oneshot` per request cost 0.4k instructions (`scripts/gateway-icount.sh`).
    pub fn serve(&self, req: http::Request<Incoming>) -> GateFuture {
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            return GateFuture::Answered {
                res: Some(error_response(overloaded("requests in flight"))),
            };
        };
        let (parts, body) = req.into_parts();
        let target = match self.chats.as_ref() {
            Some(chats) => chats
                .route(&parts.method, parts.uri.path())
                .map(Target::Chat),
            None => None,
        };
        let read = ReadBody {
            body: Limited::new(body, self.body_limit),
            data: Gathered::Empty,
        };
        GateFuture::Reading {
            read: tokio::time::timeout(self.body_timeout, read),
            parts: Some(parts),
            target: Some(target.unwrap_or_else(|| Target::Router(self.router.clone()))),
            permit: Some(permit),
            gate: (self.body_timeout, self.body_limit),
        }
    }
}

pin_project_lite::pin_project! {
    /// [`Gate`]'s future: the body read, then the router's answer.
    #[project = GateProj]
    pub enum GateFuture {
        Reading {
            #[pin]
            read: Timeout<ReadBody>,
            parts: Option<http::request::Parts>,
            target: Option<Target>,
            permit: Option<OwnedSemaphorePermit>,
            // The body timeout and limit, for the errors.
            gate: (Duration, usize),
        },
        // A chat route's service, until it is ready for the request.
        Readying {
            chat: Chat<ChatStack>,
            req: Option<Request>,
            permit: Option<OwnedSemaphorePermit>,
        },
        Calling {
            #[pin]
            call: Either<ChatFuture<<ChatStack as Service<Request>>::Future>, RouteFuture<Infallible>>,
            permit: Option<OwnedSemaphorePermit>,
        },
        Answered {
            res: Option<Response>,
        },
    }
}

impl Future for GateFuture {
    type Output = Result<http::Response<Held>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let next = match self.as_mut().project() {
                GateProj::Reading {
                    read,
                    parts,
                    target,
                    permit,
                    gate: (timeout, limit),
                } => {
                    let body = match ready!(read.poll(cx)) {
                        Ok(Ok(body)) => body,
                        Ok(Err(e)) => return Poll::Ready(Ok(held(unread(&*e, *limit), None))),
                        Err(_) => return Poll::Ready(Ok(held(timed_out(*timeout), None))),
                    };
                    let parts = parts.take().expect("GateFuture polled after completion");
                    let req = Request::from_parts(parts, Body::from(body));
                    match target.take().expect("GateFuture polled after completion") {
                        Target::Chat(chat) => GateFuture::Readying {
                            chat,
                            req: Some(req),
                            permit: permit.take(),
                        },
                        // The router is always ready.
                        Target::Router(mut router) => GateFuture::Calling {
                            call: Either::Right(router.call(req)),
                            permit: permit.take(),
                        },
                    }
                }
                GateProj::Readying { chat, req, permit } => {
                    let Ok(()) = ready!(chat.poll_ready(cx));
                    let req = req.take().expect("GateFuture polled after completion");
                    GateFuture::Calling {
                        call: Either::Left(chat.call(req)),
                        permit: permit.take(),
                    }
                }
                GateProj::Calling { call, permit } => {
                    let Ok(res) = ready!(call.poll(cx));
                    return Poll::Ready(Ok(held(res, permit.take())));
                }
                GateProj::Answered { res } => {
                    let res = res.take().expect("GateFuture polled after completion");
                    return Poll::Ready(Ok(held(res, None)));
                }
            };
            self.set(next);
        }
    }
}

pin_project_lite::pin_project! {
    /// Reads a request body whole: the usual body, one data frame, is kept as it came (no
    /// queue of frames to allocate, no copy), and its end is taken from the frame itself when the
    /// body knows its length (no further poll); a body of several frames is copied together.
    pub struct ReadBody {
        #[pin]
        body: Limited<Incoming>,
        data: Gathered,
    }
}

impl Future for ReadBody {
    type Output = Result<Bytes, Box<dyn std::error::Error + Send + Sync>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        use http_body::Body as _;
        let mut this = self.project();
        loop {
            if this.body.is_end_stream() {
                break;
            }
            match ready!(this.body.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => {
                    // Trailers, which a request to these routes has no use for, are dropped.
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    this.data.push(data);
                }
                Some(Err(e)) => return Poll::Ready(Err(e)),
                None => break,
            }
        }
        Poll::Ready(Ok(this.data.take().unwrap_or_default()))
    }
}

/// The answer to a body that could not be read: 413 over the limit, else 400.
fn unread(e: &(dyn std::error::Error + 'static), limit: usize) -> Response {
    if e.is::<LengthLimitError>() {
        error_response(GatewayError::payload_too_large(limit))
    } else {
        error_response(GatewayError::new(
            ErrorType::InvalidRequest,
            "the request body could not be read",
        ))
    }
}

/// The 408 answered when the body did not arrive within `timeout`.
fn timed_out(timeout: Duration) -> Response {
    let e = GatewayError::new(
        ErrorType::Timeout,
        format!(
            "the request body did not arrive within {} ms",
            timeout.as_millis()
        ),
    )
    .with_status(http::StatusCode::REQUEST_TIMEOUT);
    error_response(e)
}

/// `res` with its body holding `permit` (if any) until it ends.
fn held(res: Response, permit: Option<OwnedSemaphorePermit>) -> http::Response<Held> {
    res.map(|body| Held {
        body,
        _permit: permit,
    })
}

pin_project_lite::pin_project! {
    /// A response body holding an in-flight slot (if it took one) until it ends or is dropped.
    pub struct Held {
        #[pin]
        body: Body,
        _permit: Option<OwnedSemaphorePermit>,
    }
}

impl http_body::Body for Held {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Serves `router` (behind a [`Gate`], with `chats` ahead of it) on `listener` until `shutdown`
/// resolves, then lets the open connections finish their requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    chats: Option<ChatRoutes>,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) {
    let gate = Gate::new(router, chats, &limits);
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let _anchor = AbortOnDrop(tokio::spawn(timer_anchor()));
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "cannot set TCP_NODELAY on an accepted connection");
        }
        match connections.clone().try_acquire_owned() {
            Ok(permit) => {
                let conn = connection(tcp, peer, gate.clone(), limits.clone(), stopped.clone());
                tokio::spawn(async move {
                    conn.await;
                    drop(permit);
                });
            }
            Err(_) => {
                tokio::spawn(refuse(tcp));
            }
        }
    }
    let _ = stop.send(true);
    // Every connection holds a permit until it ends.
    let all = u32::try_from(limits.max_connections.max(1)).unwrap_or(u32::MAX);
    let _ = connections.acquire_many(all).await;
}

/// A timer that is always due within a second, so that the per-request timers never wake
/// tokio's driver through its eventfd.
///
/// tokio (up to 1.54 at least, tokio-rs/tokio#5207) wakes its I/O driver whenever a timer is
/// registered with a deadline earlier than the one the driver last went to sleep until, even from
/// the runtime's own thread while it is running tasks: a `write` to its eventfd, then an
/// `epoll_wait` that returns only that. Every request did it: while the gateway waits for the
/// upstream the earliest timer is ProviderFallback's attempt timeout (30 s), and when the
/// response is written hyper registers a new header read timer (10 s) for the connection's next
/// request. With this ticker the driver never sleeps past the next second, so neither timer is
/// earlier: one wake per second replaces one per request (`strace -c`, 1,000 requests over one
/// connection: 1,017 `write`s and 3,005 `epoll_wait`s without it, none and 2,009 with it; the
/// test `the_example_server_wakes_no_driver_per_request` in tests/tcp.rs).
async fn timer_anchor() {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
    }
}

/// A spawned task, aborted when this is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Answers a connection over the cap with a 503 and closes it.
async fn refuse(mut tcp: TcpStream) {
    let body = overloaded("connections").to_bytes();
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let write = async {
        tcp.write_all(head.as_bytes()).await?;
        tcp.write_all(&body).await?;
        tcp.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}

/// One connection: HTTP/1.1 or HTTP/2, the header read timeout, graceful shutdown.
///
/// The connection task wakes at every event of a streamed answer, so what each of its polls
/// costs beyond hyper's own work counts. The first request's deadline is polled only until a
/// request has started (then its timer is dropped), and the stop signal only once to register for
/// it, then again when its version has changed (an atomic load; a poll of `changed()` takes the
/// channel's lock each time). A `tokio::select!` over the three polled them all at every wake:
/// 300–400 instructions per event of a stream, by the profile.
async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    gate: Gate,
    limits: ServerLimits,
    stopped: tokio::sync::watch::Receiver<bool>,
) {
    let started = Arc::new(AtomicBool::new(false));
    let seen = started.clone();
    let svc = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
        seen.store(true, Ordering::Relaxed);
        req.extensions_mut().insert(ConnectInfo(peer));
        gate.serve(req)
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(tcp), svc);
    let mut conn = std::pin::pin!(conn);
    // hyper's HTTP/1.1 timer does not cover the bytes read to tell HTTP/1.1 from HTTP/2: a
    // connection with no request started by the deadline is closed here.
    let mut first = std::pin::pin!(Some(tokio::time::sleep(limits.header_read_timeout)));
    let mut changes = stopped.clone();
    let mut stop = std::pin::pin!(async move { changes.changed().await.is_ok() });
    let (mut registered, mut stop_seen) = (false, false);
    std::future::poll_fn(|cx| {
        if let Some(deadline) = first.as_mut().as_pin_mut() {
            if started.load(Ordering::Relaxed) {
                first.set(None);
            } else if deadline.poll(cx).is_ready() {
                return Poll::Ready(());
            }
        }
        // `has_changed` fails once the server's sender is gone: the signal is then read (and,
        // not being a stop, ends the watching).
        if !stop_seen && (!registered || stopped.has_changed().unwrap_or(true)) {
            registered = true;
            if let Poll::Ready(stopping) = stop.as_mut().poll(cx) {
                stop_seen = true;
                if stopping {
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
        conn.as_mut().poll(cx).map(|_| ())
    })
    .await;
}
