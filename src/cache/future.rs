//! [`ResponseFuture`]: look up, wait for a coalesced miss, or call the inner service.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use pin_project_lite::pin_project;
use tower_service::Service;

use super::body::{Recorder, ResponseBody};
use super::entry::Rewrite;
use super::inflight::{Join, Lead, Wait};
use super::key::{CacheKey, CACHE_AGE, CACHE_SOURCE_ID, CACHE_STATUS, CACHE_TTL};
use super::layer::Config;
use super::store::{CachedResponse, StoreFuture};
use crate::usage_meter::generation_id;

const GENERATION_ID: &str = "x-generation-id";

/// Whether a response came from the cache; in the response extensions of every request the cache
/// handled (absent when it passed the request through).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheStatus {
    /// Served from the cache: nothing was sent upstream and nothing was charged.
    Hit,
    /// Not in the cache: served upstream (and stored if it is a complete `200`).
    Miss,
}

/// A cached request's context.
pub(crate) struct Ctx {
    pub(crate) cfg: Arc<Config>,
    pub(crate) key: CacheKey,
    pub(crate) ttl: Duration,
    pub(crate) lead: Option<Lead>,
}

pin_project! {
    /// Response future for [`ResponseCache`](super::ResponseCache): answers a HIT from the store,
    /// or calls the inner service (after waiting for an identical miss in flight, when coalescing)
    /// and records its answer.
    pub struct ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        kind: Kind<S, ReqBody, S::Future>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<S, ReqBody, F> {
        /// Not cached: the inner future, its answer untouched (and not marked).
        Pass { #[pin] future: F },
        /// Cached: looked up, then (on a miss) the inner future.
        Cached {
            #[pin]
            state: State<F>,
            // Boxed: a passed-through request's future is the inner one and a word, not the inner
            // one plus room for a service, a request and a context it never uses.
            cached: Option<Box<Cached<S, ReqBody>>>,
        },
    }
}

/// What a request the cache handles keeps until it is answered: the service and request to call
/// on a miss, and the context of its lookup.
struct Cached<S, ReqBody> {
    call: Option<(S, Request<ReqBody>)>,
    ctx: Ctx,
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Lookup { get: Option<StoreFuture> },
        Waiting { wait: Wait },
        Calling { #[pin] future: F },
    }
}

impl<S, ReqBody> ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    #[inline]
    pub(crate) fn passthrough(future: S::Future) -> Self {
        ResponseFuture {
            kind: Kind::Pass { future },
        }
    }

    /// Looks `ctx.key` up with `get` (`None`: `X-OpenRouter-Cache-Clear`, a miss by request).
    pub(crate) fn lookup(
        get: Option<StoreFuture>,
        svc: S,
        req: Request<ReqBody>,
        ctx: Ctx,
    ) -> Self {
        ResponseFuture {
            kind: Kind::Cached {
                state: State::Lookup { get },
                cached: Some(Box::new(Cached {
                    call: Some((svc, req)),
                    ctx,
                })),
            },
        }
    }
}

/// The HIT response for `entry`: its headers and frames, with a new generation id and `created`.
fn hit<B>(entry: &CachedResponse, cfg: &Config) -> Response<ResponseBody<B>> {
    let now_ms = cfg.clock.unix_millis();
    let id = generation_id(now_ms);
    let rewrite = Rewrite::new(
        entry.source_id.as_deref(),
        &id,
        entry.created,
        now_ms.div_euclid(1000),
    );
    let frames = entry.frames.iter().map(|f| rewrite.apply(f)).collect();
    let mut res = Response::new(ResponseBody::replay(frames));
    *res.headers_mut() = entry.headers.clone();
    let h = res.headers_mut();
    if let Some(v) = id.header_value() {
        h.insert(GENERATION_ID, v);
    }
    h.insert(CACHE_STATUS, HeaderValue::from_static("HIT"));
    h.insert(CACHE_AGE, HeaderValue::from(entry.age_secs(now_ms)));
    h.insert(CACHE_TTL, HeaderValue::from(entry.ttl.as_secs()));
    if let Some(v) = entry
        .source_id
        .as_deref()
        .and_then(|s| HeaderValue::from_str(s).ok())
    {
        h.insert(CACHE_SOURCE_ID, v);
    }
    *res.extensions_mut() = entry.extensions.clone();
    res.extensions_mut().insert(CacheStatus::Hit);
    res
}

/// The head a HIT replays: the MISS's, less what each response sets itself.
fn stored_headers(headers: &HeaderMap) -> HeaderMap {
    let mut h = headers.clone();
    for name in [CONTENT_LENGTH, TRANSFER_ENCODING] {
        h.remove(name);
    }
    for name in [
        GENERATION_ID,
        CACHE_STATUS,
        CACHE_AGE,
        CACHE_TTL,
        CACHE_SOURCE_ID,
    ] {
        h.remove(name);
    }
    h
}

fn is_sse(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
}

/// Marks a MISS and wraps its body, recording it when it is a `200`.
fn miss<B: Body<Data = Bytes>>(res: Response<B>, mut ctx: Ctx) -> Response<ResponseBody<B>> {
    let (mut parts, body) = res.into_parts();
    let recorder = match &ctx.cfg.store {
        Some(store) if parts.status == StatusCode::OK => Some(Box::new(Recorder {
            key: ctx.key,
            ttl: ctx.ttl,
            headers: stored_headers(&parts.headers),
            extensions: parts.extensions.clone(),
            streamed: is_sse(&parts.headers),
            max_bytes: ctx.cfg.max_entry_bytes,
            store: store.clone(),
            clock: ctx.cfg.clock.clone(),
            lead: ctx.lead.take(),
            frames: Vec::new(),
            bytes: 0,
        })),
        // Not a 200: the followers of a coalesced miss go on by themselves (`ctx.lead` drops).
        _ => None,
    };
    parts
        .headers
        .insert(CACHE_STATUS, HeaderValue::from_static("MISS"));
    parts
        .headers
        .insert(CACHE_TTL, HeaderValue::from(ctx.ttl.as_secs()));
    parts.extensions.insert(CacheStatus::Miss);
    Response::from_parts(parts, ResponseBody::live(body, recorder))
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Body<Data = Bytes>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Pass { future } => future
                .poll(cx)
                .map_ok(|res| res.map(|b| ResponseBody::live(b, None))),
            KindProj::Cached { state, cached } => poll_cached(state, cached, cx),
        }
    }
}

/// Polls a cached request: its lookup, the identical miss it waits for, or its own call.
#[inline(never)]
fn poll_cached<S, ReqBody, ResBody>(
    mut state: Pin<&mut State<S::Future>>,
    cached: &mut Option<Box<Cached<S, ReqBody>>>,
    cx: &mut Context<'_>,
) -> Poll<Result<Response<ResponseBody<ResBody>>, S::Error>>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Body<Data = Bytes>,
{
    loop {
        match state.as_mut().project() {
            StateProj::Lookup { get } => {
                let found = match get.as_mut() {
                    Some(f) => ready!(Pin::new(f).poll(cx)),
                    None => None,
                };
                let ctx = &mut cached.as_mut().expect("polled after completion").ctx;
                let now_ms = ctx.cfg.clock.unix_millis();
                if let Some(entry) = found.as_ref().filter(|e| e.is_fresh(now_ms)) {
                    let done = cached.take().expect("context");
                    return Poll::Ready(Ok(hit(entry, &done.ctx.cfg)));
                }
                if found.is_some() {
                    // Expired: make room now rather than at the store's own expiry.
                    if let Some(store) = &ctx.cfg.store {
                        store.remove(&ctx.key);
                    }
                }
                match ctx.cfg.inflight.as_ref().map(|i| i.join(&ctx.key)) {
                    Some(Join::Follower(wait)) => {
                        state.set(State::Waiting { wait });
                        continue;
                    }
                    Some(Join::Leader(lead)) => ctx.lead = Some(lead),
                    None => {}
                }
            }
            StateProj::Waiting { wait } => {
                if let Some(entry) = ready!(wait.as_mut().poll(cx)) {
                    let done = cached.take().expect("context");
                    return Poll::Ready(Ok(hit(&entry, &done.ctx.cfg)));
                }
            }
            StateProj::Calling { future } => {
                let res = ready!(future.poll(cx))?;
                let done = cached.take().expect("polled after completion");
                return Poll::Ready(Ok(miss(res, done.ctx)));
            }
        }
        // A miss: call the inner service.
        let (mut svc, req) = cached
            .as_mut()
            .and_then(|c| c.call.take())
            .expect("polled after completion");
        state.set(State::Calling {
            future: svc.call(req),
        });
    }
}

impl<S, ReqBody> fmt::Debug for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("cached", &matches!(self.kind, Kind::Cached { .. }))
            .finish_non_exhaustive()
    }
}
