//! The gateway's HTTP surface: the layer stack behind OpenRouter-compatible routes.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, post_service};
use axum::Router;
use bytes::Bytes;
use futures_util::future::Either;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use serde::Deserialize;
use serde_json::{json, Value};
use tower::util::BoxCloneSyncService;
use tower::{Layer, ServiceBuilder, ServiceExt};
use tower_ai_gateway::catalog::{Catalog, CatalogHandle, Endpoint, Model, Usd};
use tower_ai_gateway::client::HttpsClient;
use tower_ai_gateway::compat::MessagesLayer;
use tower_ai_gateway::data_policy::DataPolicyLayer;
use tower_ai_gateway::model_routing::ModelRoutingLayer;
use tower_ai_gateway::price_cap::PriceCapLayer;
use tower_ai_gateway::usage_meter::{
    CallerKey, GenerationRecord, GenerationStore, InMemoryLedger, KeyLimits, KeyUsage, Ledger,
    Period,
};
use tower_ai_gateway::{BoxError, ErrorType, Gateway, GatewayError, GatewayLayer, Stats};

use crate::config::limits::{self, KeyReport, RateLimits};

#[path = "coalesce.rs"]
pub mod coalesce;
#[path = "embeddings.rs"]
mod embeddings;
#[path = "replicas.rs"]
pub mod replicas;
#[path = "responses.rs"]
mod responses;
use coalesce::coalesce;
pub use metrics::Metrics;
use tower_ai_gateway::fallback::Attempts;
use tower_ai_gateway::route::ServedBy;

#[path = "metrics.rs"]
pub mod metrics;
use crate::config::{Config, Upstream};

/// The upstream HTTP client, type-erased: a SimulatedProvider or a hyper-util client over rustls.
pub type Client = BoxCloneSyncService<
    http::Request<Full<Bytes>>,
    http::Response<BoxBody<Bytes, BoxError>>,
    BoxError,
>;

/// The whole stack as one service.
type Stack = BoxCloneSyncService<Request, Response, BoxError>;

/// The chat routes' stack, not type-erased: the gateway over the client, its answers' events
/// coalesced ([`coalesced`]). Named, so that a server can hold it ([`ChatRoutes`]).
pub type ChatStack = tower::util::MapResponse<Gateway<Client>, fn(GatewayResponse) -> Response>;

/// The gateway's answer over [`Client`].
type GatewayResponse = <Gateway<Client> as tower::Service<Request>>::Response;

/// The chat routes' answer: events that are ready together leave in one write (see `Coalesce`).
fn coalesced(res: GatewayResponse) -> Response {
    res.map(|b| Body::new(coalesce(b)))
}

/// Shared state of the app: one `Arc`, so that axum's per-request clones of the state (for the
/// `Authed` extractor and for each handler) cost one reference count, not a clone of both service
/// stacks and of every handle (which was about a tenth of the gateway's CPU per request).
#[derive(Clone)]
pub struct AppState(Arc<AppStateInner>);

impl std::ops::Deref for AppState {
    type Target = AppStateInner;

    fn deref(&self) -> &AppStateInner {
        &self.0
    }
}

/// The callers [`Authed`] names (see [`AppStateInner::callers`]).
pub struct Callers {
    pub keys: Vec<CallerKey>,
    pub local: CallerKey,
    pub anonymous: CallerKey,
}

/// What [`AppState`] shares.
pub struct AppStateInner {
    pub stack: Stack,
    /// The same stack, not type-erased: the chat routes' ([`ChatRoutes`]).
    pub chat: ChatStack,
    pub catalog: CatalogHandle,
    pub stats: Stats,
    pub generations: GenerationStore,
    /// Generation records shared with the other replicas (in Redis with `--redis`).
    pub shared: replicas::Shared,
    /// In memory, or in Redis with `--redis` (shared with the other replicas).
    pub ledger: Arc<dyn Ledger>,
    pub keys: Arc<Vec<crate::config::ApiKey>>,
    /// The caller of each of `keys` (same order), and the names of callers without a key, made
    /// once: [`Authed`] then hands each request a reference count, not a new string.
    pub callers: Callers,
    pub loopback_without_key: bool,
    pub metrics: Arc<Metrics>,
    /// `stack` behind [`MessagesLayer`]: serves the Anthropic Messages routes.
    pub messages: Stack,
    /// Request body limit in bytes.
    pub body_limit: usize,
    /// Rate limits (in the stack) and management keys.
    pub limits: Arc<RateLimits>,
    /// The token that may scrape `/metrics` (besides management keys).
    pub metrics_token: Option<Arc<str>>,
}

/// Accepted connections with `TCP_NODELAY` set.
///
/// Without it, the last small write of a response (the chunked body's terminating `0\r\n\r\n`
/// after `data: [DONE]`) waits under Nagle's algorithm for the ACK of the write before it, which a
/// client that keeps the connection open delays by ~40 ms: every stream ended 40–44 ms after its
/// last event. `tests/tcp.rs` measures it. (The example's own server, `server.rs`, sets it on each
/// connection it accepts; the tests' loopback servers use this.)
#[allow(dead_code)]
pub fn nodelay(
    listener: tokio::net::TcpListener,
) -> axum::serve::TapIo<tokio::net::TcpListener, fn(&mut tokio::net::TcpStream)> {
    use axum::serve::ListenerExt;
    fn set(tcp: &mut tokio::net::TcpStream) {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "cannot set TCP_NODELAY on an accepted connection");
        }
    }
    listener.tap_io(set as fn(&mut tokio::net::TcpStream))
}

/// The upstream client for real providers: the crate's [`HttpsClient`] (rustls, HTTP/1.1 and
/// HTTP/2, `TCP_NODELAY`, pooled), type-erased.
pub fn http_client() -> Client {
    fn body(r: http::Response<hyper::body::Incoming>) -> http::Response<BoxBody<Bytes, BoxError>> {
        r.map(|b| b.map_err(|e| -> BoxError { Box::new(e) }).boxed())
    }
    BoxCloneSyncService::new(HttpsClient::new().map_response(body))
}

/// The simulator as the upstream client.
pub fn sim_client(sim: tower_ai_gateway::sim::SimulatedProvider) -> Client {
    type SimResponse = http::Response<tower_ai_gateway::sim::SimBody>;
    fn body(r: SimResponse) -> http::Response<BoxBody<Bytes, BoxError>> {
        r.map(|b| b.map_err(|e| -> BoxError { Box::new(e) }).boxed())
    }
    fn error(e: tower_ai_gateway::sim::SimError) -> BoxError {
        Box::new(e)
    }
    let svc = ServiceExt::<http::Request<Full<Bytes>>>::map_response(sim, body);
    BoxCloneSyncService::new(ServiceExt::<http::Request<Full<Bytes>>>::map_err(
        svc, error,
    ))
}

/// Builds the state and the router.
pub fn build(config: Config) -> (Router, AppState) {
    let client = match config.upstream {
        Upstream::Sim(sim) => sim_client(sim),
        Upstream::Http => http_client(),
    };
    let presets = config.presets;
    build_with_client(
        config.catalog.into(),
        client,
        config.keys,
        config.loopback_without_key,
        move |l| l.presets(presets),
        config.body_limit,
        config.floor,
        config.cap,
        config.attempt_timeout,
        config.ignore,
        config.rate_limits,
        config.cache,
        config.metrics_token,
        config.redis_stores,
        config.trace_content,
    )
}

/// The budgets of `keys`: in Redis when connected to one, else in memory.
fn ledger_for(
    keys: &[crate::config::ApiKey],
    redis: crate::config::SharedStores,
) -> Arc<dyn Ledger> {
    let limits = keys.iter().filter_map(|k| {
        let (period, amount) = k.limit?;
        Some((k.name.clone(), KeyLimits::new().limit(period, amount)))
    });
    #[cfg(feature = "redis")]
    if let Some(stores) = redis {
        let ledger = stores.ledger();
        for (name, l) in limits {
            ledger.set_limits(name, l);
        }
        return Arc::new(ledger);
    }
    #[cfg(not(feature = "redis"))]
    let _ = redis;
    let ledger = InMemoryLedger::new(tower_ai_gateway::clock::SystemClock);
    for (name, l) in limits {
        ledger.set_limits(name, l);
    }
    Arc::new(ledger)
}

/// `caller`'s usage now.
async fn usage_now(state: &AppState, caller: &CallerKey) -> KeyUsage {
    let now = tower_ai_gateway::clock::Clock::unix_millis(&tower_ai_gateway::clock::SystemClock);
    state.ledger.usage(caller, now).await
}

/// Builds the state and router around any upstream client.
#[allow(clippy::too_many_arguments)]
pub fn build_with_client(
    catalog: CatalogHandle,
    client: Client,
    keys: Vec<crate::config::ApiKey>,
    loopback_without_key: bool,
    routing: impl FnOnce(ModelRoutingLayer) -> ModelRoutingLayer,
    body_limit: usize,
    floor: tower_ai_gateway::data_policy::DataFloor,
    cap: tower_ai_gateway::route::MaxPrice,
    attempt_timeout: std::time::Duration,
    ignore: Vec<String>,
    rate_limits: RateLimits,
    cache: tower_ai_gateway::cache::ResponseCacheLayer,
    metrics_token: Option<String>,
    redis: crate::config::SharedStores,
    trace_content: usize,
) -> (Router, AppState) {
    let stats = Stats::default();
    let generations = GenerationStore::new(10_000);
    let metrics = Arc::new(Metrics::default());
    let ledger = ledger_for(&keys, redis.clone());
    let metrics_sink = metrics.clone();
    let gateway = GatewayLayer::with_stats(catalog.clone(), stats.clone())
        .routing(|r| routing(r.body_limit(body_limit).ignore_providers(ignore)))
        .data_policy(DataPolicyLayer::new().floor(floor))
        .price_cap(PriceCapLayer::new().cap(cap))
        .rate_limit(rate_limits.layer.clone())
        .cache(cache)
        .usage_meter(|u| {
            u.shared_ledger(ledger.clone())
                .trace_content(trace_content)
                .sink(generations.clone())
                .sink(move |r: &GenerationRecord| metrics_sink.record_generation(r))
        })
        .fallback(|f| f.attempt_timeout(attempt_timeout));
    let (gateway, shared) = replicas::Shared::wire(&redis, &stats, gateway);
    let stack = ServiceBuilder::new().layer(gateway).service(client);
    let chat: ChatStack = ServiceExt::<Request>::map_response(stack, coalesced as fn(_) -> _);
    let stack = Stack::new(chat.clone());

    let state = AppState(Arc::new(AppStateInner {
        stack: stack.clone(),
        chat: chat.clone(),
        catalog: catalog.clone(),
        stats,
        generations,
        shared,
        ledger,
        callers: Callers {
            keys: keys
                .iter()
                .map(|k| CallerKey::new(k.name.as_str()))
                .collect(),
            local: CallerKey::new("local"),
            anonymous: CallerKey::new("anonymous"),
        },
        keys: Arc::new(keys),
        loopback_without_key,
        metrics,
        messages: {
            // Claude Code asks for `max_tokens: 32000` whatever the model: clamp it to the largest
            // output limit among the model's endpoints, so models with smaller limits still serve.
            let handle = catalog.clone();
            let svc = MessagesLayer::new()
                .body_limit(body_limit)
                .max_tokens_cap(move |model| {
                    let catalog = handle.load();
                    let model = catalog.alias(model).unwrap_or(model).to_owned();
                    let limits = catalog
                        .endpoints(&model)
                        .iter()
                        .map(|e| e.max_completion_tokens);
                    // No cap when some endpoint has no limit (or the model is unknown).
                    limits.collect::<Option<Vec<u64>>>()?.into_iter().max()
                })
                .layer(stack.clone());
            Stack::new(ServiceExt::<Request>::map_response(svc, |res| {
                res.map(Body::new)
            }))
        },
        body_limit,
        limits: Arc::new(rate_limits),
        metrics_token: metrics_token.map(Arc::from),
    }));
    // Anthropic Messages (Claude Code, the anthropic SDKs): any query (`?beta=true`), Bearer or
    // `x-api-key`, `anthropic-version` / `anthropic-beta` ignored; every error in Anthropic's shape.
    let anthropic = Router::new()
        .route("/api/v1/messages", post(messages))
        .route("/v1/messages", post(messages))
        .route("/api/v1/messages/count_tokens", post(count_tokens))
        .route("/v1/messages/count_tokens", post(count_tokens))
        .layer(middleware::map_response(anthropic_errors));
    let authed = Router::new()
        .route(
            "/api/v1/chat/completions",
            post_service(Chat::new(&state, chat.clone(), "/api/v1/chat/completions")),
        )
        .route(
            "/v1/chat/completions",
            post_service(Chat::new(&state, chat, "/v1/chat/completions")),
        )
        .route("/api/v1/generation", get(generation))
        .route("/api/v1/key", get(key))
        .route("/api/v1/credits", get(credits));
    let router = Router::new()
        .merge(authed)
        .merge(anthropic)
        .merge(responses::routes(&state))
        .merge(embeddings::routes())
        .route("/api/v1/models", get(models))
        .route("/v1/models", get(models))
        .route("/api/v1/models/{author}/{slug}/endpoints", get(endpoints))
        .route("/metrics", get(metrics_text))
        // The base URLs clients are given (Claude Code sends `HEAD {base}` first).
        .route("/", get(banner))
        .route("/api", get(banner))
        .route("/api/v1", get(banner))
        .fallback(|| async {
            error_response(GatewayError::new(ErrorType::NotFound, "no such route"))
        })
        .method_not_allowed_fallback(|| async {
            let body = json!({"error": {"code": 405, "message": "method not allowed on this route",
                "metadata": {"error_type": "invalid_request"}}});
            (http::StatusCode::METHOD_NOT_ALLOWED, axum::Json(body)).into_response()
        })
        .with_state(state.clone());
    (router, state)
}

async fn banner() -> &'static str {
    "tower-ai-gateway: POST /api/v1/chat/completions, POST /api/v1/messages, POST /api/v1/responses\n"
}

fn error_response(e: GatewayError) -> Response {
    let res: http::Response<Bytes> = e.into_response();
    res.map(Body::from)
}

// === auth ===

/// Constant-time comparison: the time taken does not depend on where the inputs differ.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u64;
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= u64::from(x ^ y);
    }
    diff == 0
}

/// `x-api-key` (a constant: a lookup by `&str` parses the name every time).
const X_API_KEY: http::HeaderName = http::HeaderName::from_static("x-api-key");

fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        let token = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
            .unwrap_or(v)
            .trim();
        if !token.is_empty() {
            return Some(token);
        }
    }
    headers
        .get(X_API_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The caller of a route that needs a key: the key's caller, or `local` / `anonymous` as the
/// configuration allows; else a 401 with the JSON envelope.
///
/// An extractor, first among each authenticated handler's arguments (after `State`): it runs
/// before the handler reads anything else, and puts the caller in the request's extensions, where
/// the layers find it ([`CallerKey`]). It costs the handler's own future, where a `from_fn`
/// middleware costs a boxed future and a boxed route per request.
pub(crate) struct Authed(pub CallerKey);

impl FromRequestParts<AppState> for Authed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let caller =
            authenticate(state, &parts.headers, peer(&parts.extensions)).map_err(error_response)?;
        parts.extensions.insert(caller.clone());
        Ok(Authed(caller))
    }
}

/// The request's peer, from axum's `ConnectInfo` (the example's server inserts it).
fn peer(extensions: &http::Extensions) -> Option<SocketAddr> {
    extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0)
}

fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
) -> Result<CallerKey, GatewayError> {
    let loopback = peer.is_none_or(|p| p.ip().is_loopback());
    let Some(k) = presented_key(headers) else {
        return if state.loopback_without_key && loopback {
            Ok(state.callers.local.clone())
        } else if state.keys.is_empty() && !state.loopback_without_key {
            Ok(state.callers.anonymous.clone())
        } else {
            Err(GatewayError::new(
                ErrorType::Authentication,
                "Missing Authentication header: send `Authorization: Bearer <key>` or `x-api-key`",
            ))
        };
    };
    // Compare against every key, so timing says nothing about which (if any) matched.
    let mut found = None;
    for (key, caller) in state.keys.iter().zip(&state.callers.keys) {
        if ct_eq(k.as_bytes(), key.secret.as_bytes()) && found.is_none() {
            found = Some(caller.clone());
        }
    }
    match found {
        Some(caller) => Ok(caller),
        // The embedded demo lets loopback callers in without a key; SDKs insist on sending one,
        // so an unknown key from loopback counts as none.
        None if state.loopback_without_key && loopback => Ok(state.callers.local.clone()),
        None => Err(GatewayError::new(
            ErrorType::Authentication,
            "Invalid API key",
        )),
    }
}

// === chat ===

/// The two chat routes, `POST /api/v1/chat/completions` and `POST /v1/chat/completions`, for a
/// server that serves them ahead of the router (the example's `server::Gate`): the same [`Chat`]
/// services the router mounts, without axum's path lookup, the clone of its boxed route and the
/// boxed future of each call (`scripts/gateway-icount.sh` counted the difference; see the
/// README's benchmarks). Every other request, and these paths with another method, go to the
/// router.
#[derive(Clone)]
pub struct ChatRoutes(Arc<[Chat<ChatStack>; 2]>);

impl ChatRoutes {
    /// The chat routes of `state`'s stack.
    pub fn new(state: &AppState) -> Self {
        let chat = |route| Chat::new(state, state.chat.clone(), route);
        ChatRoutes(Arc::new([
            chat("/api/v1/chat/completions"),
            chat("/v1/chat/completions"),
        ]))
    }

    /// The service for a request to `path` with `method`, if it is one of the chat routes.
    pub fn route(&self, method: &http::Method, path: &str) -> Option<Chat<ChatStack>> {
        if method != http::Method::POST {
            return None;
        }
        self.0.iter().find(|c| c.route == path).cloned()
    }
}

/// `POST /api/v1/chat/completions` (and `/v1/…`): the caller authenticated as [`Authed`] does,
/// the request served by the stack, the answer counted in the metrics under `route`.
///
/// A tower service over the stack's own type rather than a handler calling the boxed [`Stack`]:
/// axum already boxes the route and clones it per request, so a handler added a clone of the
/// boxed stack, the stack's boxed future and the handler's own boxed future (allocations and
/// copies of large futures that `scripts/gateway-icount.sh` counts).
pub struct Chat<S> {
    state: AppState,
    stack: S,
    route: &'static str,
    /// The stack's error from `poll_ready`, answered by `call` after authentication (as the
    /// handler this replaces did: its extractors ran before the stack was polled).
    unready: Option<BoxError>,
}

impl<S: Clone> Clone for Chat<S> {
    fn clone(&self) -> Self {
        Chat {
            state: self.state.clone(),
            stack: self.stack.clone(),
            route: self.route,
            unready: None,
        }
    }
}

impl<S> Chat<S> {
    fn new(state: &AppState, stack: S, route: &'static str) -> Self {
        Chat {
            state: state.clone(),
            stack,
            route,
            unready: None,
        }
    }
}

impl<S> tower::Service<Request> for Chat<S>
where
    S: tower::Service<Request, Response = Response, Error = BoxError>,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = ChatFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.unready = ready!(self.stack.poll_ready(cx)).err();
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request) -> ChatFuture<S::Future> {
        let caller = match authenticate(&self.state, req.headers(), peer(req.extensions())) {
            Ok(caller) => caller,
            Err(e) => {
                return ChatFuture::Refused {
                    res: Some(error_response(e)),
                }
            }
        };
        req.extensions_mut().insert(caller);
        let call = match self.unready.take() {
            None => Either::Left(self.stack.call(req)),
            Some(e) => Either::Right(std::future::ready(Err(e))),
        };
        ChatFuture::Serving {
            call,
            state: self.state.clone(),
            route: self.route,
            start: std::time::Instant::now(),
        }
    }
}

pin_project_lite::pin_project! {
    /// [`Chat`]'s future: the stack's answer (counted in the metrics), or the 401.
    #[project = ChatProj]
    pub enum ChatFuture<F> {
        Serving {
            #[pin]
            call: Either<F, std::future::Ready<Result<Response, BoxError>>>,
            state: AppState,
            route: &'static str,
            start: std::time::Instant,
        },
        Refused {
            res: Option<Response>,
        },
    }
}

impl<F: Future<Output = Result<Response, BoxError>>> Future for ChatFuture<F> {
    type Output = Result<Response, std::convert::Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            ChatProj::Serving {
                call,
                state,
                route,
                start,
            } => {
                let res = answer(ready!(call.poll(cx)));
                record_answer(state, route, &res, start.elapsed());
                Poll::Ready(Ok(res))
            }
            // Polled again after its answer (a caller's bug): a masked 500, not a panic.
            ChatProj::Refused { res } => Poll::Ready(Ok(res
                .take()
                .unwrap_or_else(|| answer(Err("Chat's future polled after completion".into()))))),
        }
    }
}

/// Calls `stack` and counts the response under `route`.
async fn serve_on(state: &AppState, stack: Stack, route: &'static str, req: Request) -> Response {
    let start = std::time::Instant::now();
    let res = answer(stack.oneshot(req).await);
    record_answer(state, route, &res, start.elapsed());
    res
}

/// The stack's answer; a stack error becomes a masked 500.
///
/// A non-streamed answer goes out with `Content-Length` (not chunked): the layers that edit it
/// report its exact `size_hint`, from which hyper sets the header.
fn answer(res: Result<Response, BoxError>) -> Response {
    res.unwrap_or_else(|e| {
        tracing::error!(error = %e, "gateway stack failed");
        error_response(GatewayError::new(ErrorType::Server, "internal error"))
    })
}

/// Counts an answer in the metrics: its status, its attempts, and its error type.
fn record_answer(state: &AppState, route: &'static str, res: &Response, elapsed: Duration) {
    let ext = res.extensions();
    let attempts = match (ext.get::<ServedBy>(), ext.get::<Attempts>()) {
        (Some(s), _) => &s.attempts[..],
        (None, Some(a)) => &a.0[..],
        (None, None) => &[],
    };
    let error_type = if res.status().is_success() {
        None
    } else {
        // `_OTHER`: the GenAI conventions' value for an error without a known type.
        Some(
            ext.get::<GatewayError>()
                .map_or("_OTHER", |e| e.error_type().as_str()),
        )
    };
    let status = res.status().as_u16();
    state
        .metrics
        .record_answer(route, status, attempts, error_type, elapsed);
}

// === Anthropic Messages ===

async fn messages(State(state): State<AppState>, _: Authed, req: Request) -> Response {
    let route = if req.uri().path().starts_with("/api/") {
        "/api/v1/messages"
    } else {
        "/v1/messages"
    };
    let stack = state.messages.clone();
    serve_on(&state, stack, route, req).await
}

/// `count_tokens`: a local estimate (see `tower_ai_gateway::compat::count_tokens`), no upstream call.
async fn count_tokens(State(state): State<AppState>, _: Authed, req: Request) -> Response {
    let bytes = match axum::body::to_bytes(req.into_body(), state.body_limit).await {
        Ok(b) => b,
        Err(_) => return error_response(GatewayError::payload_too_large(state.body_limit)),
    };
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(v) if v.is_object() => {
            if let Err(e) = known_model(&state, v.get("model")) {
                return error_response(e);
            }
            axum::Json(tower_ai_gateway::compat::count_tokens_json(&v)).into_response()
        }
        _ => error_response(GatewayError::new(
            ErrorType::InvalidRequest,
            "the request body must be a JSON object",
        )),
    }
}

/// `count_tokens` names a model as `/messages` does: missing is a 400, unknown (after aliases and
/// without a `:variant` suffix) a 404.
fn known_model(state: &AppState, model: Option<&Value>) -> Result<(), GatewayError> {
    let Some(name) = model.and_then(Value::as_str).filter(|s| !s.is_empty()) else {
        return Err(GatewayError::invalid_request(
            "model",
            "a model id is required",
        ));
    };
    let catalog = state.catalog.load();
    let base = name.split_once(':').map_or(name, |(b, _)| b);
    let known = |n: &str| catalog.model(catalog.alias(n).unwrap_or(n)).is_some();
    if known(name) || known(base) {
        Ok(())
    } else {
        Err(GatewayError::new(
            ErrorType::NotFound,
            format!("model `{name}` not found"),
        ))
    }
}

/// Rewrites OpenRouter-shaped error bodies (auth, routing, limits) into Anthropic's error shape.
async fn anthropic_errors(res: Response) -> Response {
    if res.status().is_success() {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let v = serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null);
    if v.get("type").and_then(Value::as_str) == Some("error") {
        return Response::from_parts(parts, Body::from(bytes));
    }
    let out = tower_ai_gateway::compat::error_to_anthropic(parts.status.as_u16(), &v).to_string();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(out))
}

// === generation / key ===

#[derive(Deserialize)]
struct IdQuery {
    id: Option<String>,
}

/// `GET /api/v1/generation?id=`: a record is visible to the key that made it and to management
/// keys; to any other key it does not exist (404, never 403: ids are not confirmed to strangers).
async fn generation(
    State(state): State<AppState>,
    Authed(caller): Authed,
    q: Result<Query<IdQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return query_error(e),
    };
    let Some(id) = q.id.filter(|s| !s.is_empty()) else {
        return error_response(GatewayError::invalid_request(
            "id",
            "a generation id (`gen-…`)",
        ));
    };
    let management = is_management(&state, &caller);
    let found = match state.shared.generation(&id).await {
        Some(shared) => shared.filter(|(key, _)| key.as_ref() == Some(&caller) || management),
        None => None,
    };
    let found = found.map(|(_, data)| data).or_else(|| {
        let r = state.generations.get(&id)?;
        (r.key.as_ref() == Some(&caller) || management).then(|| r.to_openrouter_json())
    });
    match found {
        Some(data) => axum::Json(json!({ "data": data })).into_response(),
        None => error_response(GatewayError::new(
            ErrorType::NotFound,
            format!("generation `{id}` not found"),
        )),
    }
}

/// A configured management key, or (keyless demo) a loopback caller.
fn is_management(state: &AppState, caller: &CallerKey) -> bool {
    state.limits.management.contains(caller.as_str())
        || (state.loopback_without_key && caller.as_str() == "local")
}

fn spending_limit(state: &AppState, caller: &CallerKey) -> Option<(Period, Usd)> {
    let key = state.keys.iter().find(|k| k.name == caller.as_str())?;
    key.limit
}

async fn key(State(state): State<AppState>, Authed(caller): Authed) -> Response {
    let report = KeyReport {
        caller: &caller,
        usage: usage_now(&state, &caller).await,
        limit: spending_limit(&state, &caller),
        free_today: state.limits.layer.free_requests_today(&caller).await,
        management: is_management(&state, &caller),
        now_unix_ms: tower_ai_gateway::clock::Clock::unix_millis(
            &tower_ai_gateway::clock::SystemClock,
        ),
    };
    axum::Json(limits::key_json(&report, &state.limits.layer)).into_response()
}

/// `GET /api/v1/credits`: management keys only (403 otherwise).
async fn credits(State(state): State<AppState>, Authed(caller): Authed) -> Response {
    if !is_management(&state, &caller) {
        return error_response(GatewayError::new(
            ErrorType::PermissionDenied,
            "Only management keys can read /api/v1/credits",
        ));
    }
    let mut names: Vec<&str> = state.keys.iter().map(|k| k.name.as_str()).collect();
    names.extend(["local", "anonymous"]);
    let mut usages = Vec::with_capacity(names.len());
    for n in names {
        let k = CallerKey::new(n);
        usages.push((usage_now(&state, &k).await, spending_limit(&state, &k)));
    }
    axum::Json(limits::credits_json(&usages)).into_response()
}

// === models / endpoints ===

/// The query of `/api/v1/models` (<https://openrouter.ai/docs/api/api-reference/models/get-models>).
/// Filters the catalog cannot answer (`category`, `region`, `zdr`, popularity sorts, …) are a 400,
/// never silently ignored.
#[derive(Deserialize, Default)]
struct ModelsQuery {
    offset: Option<usize>,
    limit: Option<usize>,
    /// Comma-separated; every one must be supported.
    supported_parameters: Option<String>,
    /// Case-insensitive substring of the id, name or description.
    q: Option<String>,
    /// `text` (the default), a comma list, or `all`.
    output_modalities: Option<String>,
    /// Comma list; every one must be accepted.
    input_modalities: Option<String>,
    /// Minimum context length.
    context: Option<u64>,
    /// Prompt price bounds in USD per million tokens.
    min_price: Option<f64>,
    max_price: Option<f64>,
    /// Completion price bounds in USD per million tokens.
    min_output_price: Option<f64>,
    max_output_price: Option<f64>,
    /// Comma list of authors (the id's prefix).
    model_authors: Option<String>,
    /// Comma list of provider slugs: models with an endpoint at one of them.
    providers: Option<String>,
    /// Tokenizer (`architecture.tokenizer`), case-insensitive.
    arch: Option<String>,
    distillable: Option<bool>,
    /// `pricing-low-to-high`, `pricing-high-to-low`, `context-high-to-low` or `newest`.
    sort: Option<String>,
    category: Option<String>,
    region: Option<String>,
    zdr: Option<String>,
    use_rss: Option<String>,
}

/// A query-string rejection as the JSON error envelope.
fn query_error(e: axum::extract::rejection::QueryRejection) -> Response {
    error_response(GatewayError::invalid_request("", &e.body_text()))
}

fn list(s: &Option<String>) -> Option<Vec<&str>> {
    s.as_deref().map(|s| {
        s.split(',')
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .collect()
    })
}

impl ModelsQuery {
    /// A 400 for a filter this gateway cannot answer or a bad value.
    fn check(&self) -> Result<(), GatewayError> {
        for (name, v) in [
            ("category", &self.category),
            ("region", &self.region),
            ("zdr", &self.zdr),
            ("use_rss", &self.use_rss),
        ] {
            if v.is_some() {
                return Err(GatewayError::invalid_request(
                    name,
                    "this filter is not supported by this gateway (its catalog has no such data)",
                ));
            }
        }
        match self.sort.as_deref() {
            None
            | Some(
                "pricing-low-to-high" | "pricing-high-to-low" | "context-high-to-low" | "newest",
            ) => Ok(()),
            Some(_) => Err(GatewayError::invalid_request(
                "sort",
                "one of pricing-low-to-high, pricing-high-to-low, context-high-to-low, newest",
            )),
        }
    }

    fn matches(&self, catalog: &Catalog, m: &Model) -> bool {
        let has_all = |have: &[String], want: Option<Vec<&str>>| {
            want.is_none_or(|w| w.iter().all(|x| have.iter().any(|h| h == x)))
        };
        let per_m = |u: Usd| u.per_million().to_f64();
        let within = |v: f64, lo: Option<f64>, hi: Option<f64>| {
            lo.is_none_or(|lo| v >= lo) && hi.is_none_or(|hi| v <= hi)
        };
        let out = match list(&self.output_modalities) {
            Some(w) if w.contains(&"all") => true,
            Some(w) => has_all(&m.architecture.output_modalities, Some(w)),
            // The default, `text`; a model that lists no output modalities counts as text.
            None => {
                let o = &m.architecture.output_modalities;
                o.is_empty() || o.iter().any(|x| x == "text")
            }
        };
        let text = |s: &str| {
            s.to_lowercase()
                .contains(&self.q.as_deref().unwrap_or("").to_lowercase())
        };
        out && has_all(&m.supported_parameters, list(&self.supported_parameters))
            && has_all(
                &m.architecture.input_modalities,
                list(&self.input_modalities),
            )
            && (self.q.is_none()
                || text(&m.id)
                || text(&m.name)
                || m.description.as_deref().is_some_and(text))
            && self
                .context
                .is_none_or(|c| m.context_length.unwrap_or(0) >= c)
            && within(per_m(m.pricing.prompt), self.min_price, self.max_price)
            && within(
                per_m(m.pricing.completion),
                self.min_output_price,
                self.max_output_price,
            )
            && list(&self.model_authors).is_none_or(|a| a.contains(&m.author()))
            && list(&self.providers).is_none_or(|p| {
                catalog
                    .endpoints(&m.id)
                    .iter()
                    .any(|e| p.contains(&e.provider_slug()))
            })
            && self.arch.as_deref().is_none_or(|a| {
                m.architecture
                    .tokenizer
                    .as_deref()
                    .is_some_and(|t| t.eq_ignore_ascii_case(a))
            })
            && self.distillable.is_none_or(|d| m.distillable == Some(d))
    }

    fn sort(&self, models: &mut [&Model]) {
        let price = |m: &&Model| m.pricing.prompt;
        match self.sort.as_deref() {
            Some("pricing-low-to-high") => models.sort_by_key(price),
            Some("pricing-high-to-low") => models.sort_by_key(|m| std::cmp::Reverse(price(m))),
            Some("context-high-to-low") => {
                models.sort_by_key(|m| std::cmp::Reverse(m.context_length.unwrap_or(0)))
            }
            Some("newest") => models.sort_by_key(|m| std::cmp::Reverse(m.created)),
            _ => {}
        }
    }
}

async fn models(
    State(state): State<AppState>,
    q: Result<Query<ModelsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let p = match q {
        Ok(Query(p)) => p,
        Err(e) => return query_error(e),
    };
    if let Err(e) = p.check() {
        return error_response(e);
    }
    let catalog = state.catalog.load();
    let mut all: Vec<&Model> = catalog
        .models()
        .iter()
        .filter(|m| p.matches(&catalog, m))
        .collect();
    p.sort(&mut all);
    let total = all.len();
    let (data, next) = if p.offset.is_none() && p.limit.is_none() {
        (all, None)
    } else {
        let offset = p.offset.unwrap_or(0).min(total);
        let limit = p.limit.unwrap_or(500).clamp(1, 1000);
        let end = (offset + limit).min(total);
        let next = (end < total).then(|| format!("/api/v1/models?offset={end}&limit={limit}"));
        (all[offset..end].to_vec(), next)
    };
    axum::Json(json!({"data": data, "total_count": total, "links": {"next": next}})).into_response()
}

fn percentiles(p: Option<tower_ai_gateway::catalog::PercentileStats>) -> Value {
    p.map_or(
        Value::Null,
        |p| json!({"p50": p.p50, "p75": p.p75, "p90": p.p90, "p99": p.p99}),
    )
}

fn endpoint_json(state: &AppState, e: &Endpoint) -> Value {
    let mut v = serde_json::to_value(e).unwrap_or(Value::Null);
    let snap = state.stats.snapshot(e.key(), tokio::time::Instant::now());
    let live = serde_json::to_value(&snap).unwrap_or(Value::Null);
    if let (Value::Object(obj), Value::Object(live)) = (&mut v, live) {
        // Live figures from traffic through this gateway replace the catalog's, field by field,
        // once the gateway has any.
        for k in [
            "uptime_last_5m",
            "uptime_last_30m",
            "uptime_last_1d",
            "latency_last_30m",
            "throughput_last_30m",
        ] {
            if let Some(x) = live.get(k).filter(|x| !x.is_null()) {
                obj.insert(k.into(), x.clone());
            }
        }
        obj.remove("provider_model_id");
        if obj.get("latency_last_30m").is_none() {
            obj.insert("latency_last_30m".into(), percentiles(e.latency_last_30m));
        }
    }
    v
}

async fn endpoints(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, axum::extract::rejection::PathRejection>,
) -> Response {
    let Ok(Path((author, slug))) = path else {
        return error_response(GatewayError::invalid_request(
            "",
            "invalid model id in the path",
        ));
    };
    let catalog = state.catalog.load();
    let id = format!("{author}/{slug}");
    let Some(m) = catalog.model(&id) else {
        return error_response(GatewayError::new(
            ErrorType::NotFound,
            format!("model `{id}` not found"),
        ));
    };
    let eps: Vec<Value> = catalog
        .endpoints(&id)
        .iter()
        .map(|e| endpoint_json(&state, e))
        .collect();
    axum::Json(json!({"data": {
        "id": m.id, "name": m.name, "created": m.created, "description": m.description,
        "architecture": m.architecture, "endpoints": eps,
    }}))
    .into_response()
}

// === metrics ===

/// Who may scrape `/metrics` (issue 17 F: it reveals traffic, models, providers and spend): a
/// caller presenting the configured metrics token (`[gateway] metrics_token` / `metrics_token_env`,
/// for a Prometheus scraper that should read nothing else), a management key, or — in the keyless
/// demo — a loopback caller. Anyone else gets 401 (no or unknown key) or 403 (a key without the
/// right).
fn metrics_access(state: &AppState, req: &Request) -> Result<(), GatewayError> {
    let loopback = peer(req.extensions()).is_none_or(|p| p.ip().is_loopback());
    let Some(presented) = presented_key(req.headers()) else {
        if state.loopback_without_key && loopback {
            return Ok(());
        }
        return Err(GatewayError::new(
            ErrorType::Authentication,
            "/metrics needs the metrics token or a management key",
        ));
    };
    let token_ok = state
        .metrics_token
        .as_deref()
        .is_some_and(|t| ct_eq(presented.as_bytes(), t.as_bytes()));
    let mut key = None;
    for k in state.keys.iter() {
        if ct_eq(presented.as_bytes(), k.secret.as_bytes()) && key.is_none() {
            key = Some(k.name.as_str());
        }
    }
    match key {
        _ if token_ok => Ok(()),
        Some(name) if state.limits.management.contains(name) => Ok(()),
        Some(_) => Err(GatewayError::new(
            ErrorType::PermissionDenied,
            "/metrics needs the metrics token or a management key",
        )),
        None if state.loopback_without_key && loopback => Ok(()),
        None => Err(GatewayError::new(
            ErrorType::Authentication,
            "Invalid API key",
        )),
    }
}

async fn metrics_text(State(state): State<AppState>, req: Request) -> Response {
    if let Err(e) = metrics_access(&state, &req) {
        return error_response(e);
    }
    let mut res = state.metrics.render().into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    res
}
