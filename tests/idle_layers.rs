//! RateLimit, KeepAlive and ResponseCache with nothing to do take a pass-through path of their
//! own: its answer must be exactly the one the same layer gives when it looks at the request and
//! lets it through (limits that are never reached, keep-alive turned off, a cache the request
//! bypasses).

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use tower::{Layer, Service, ServiceExt};
use tower_ai_gateway::cache::{CacheStatus, ResponseCacheLayer};
use tower_ai_gateway::keep_alive::KeepAliveLayer;
use tower_ai_gateway::rate_limit::{Limits, RateLimitLayer};
use tower_ai_gateway::usage_meter::CallerKey;

/// A marker the inner service puts in its answer's extensions.
#[derive(Clone, Debug, PartialEq)]
struct Marker(u32);

/// An answer with a status, headers, extensions and a body that all have to come through.
async fn inner(_: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut res = Response::new(Full::new(Bytes::from_static(b"{\"id\":\"gen-1\"}")));
    *res.status_mut() = StatusCode::ACCEPTED;
    res.headers_mut()
        .insert("x-upstream", http::HeaderValue::from_static("kept"));
    res.extensions_mut().insert(Marker(7));
    Ok(res)
}

fn request() -> Request<Full<Bytes>> {
    let mut req = Request::post("/api/v1/chat/completions")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    req.extensions_mut().insert(CallerKey::new("alice"));
    req
}

/// What a client sees of an answer, and whether the cache marked it.
#[derive(Debug, PartialEq)]
struct Seen {
    status: StatusCode,
    headers: HeaderMap,
    marker: Option<Marker>,
    cache: Option<CacheStatus>,
    body: Bytes,
}

async fn seen<S, B>(svc: S) -> Seen
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>, Error = Infallible>,
    B: Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let res = svc.oneshot(request()).await.unwrap();
    let (parts, body) = res.into_parts();
    Seen {
        status: parts.status,
        headers: parts.headers,
        marker: parts.extensions.get::<Marker>().cloned(),
        cache: parts.extensions.get::<CacheStatus>().copied(),
        body: body.collect().await.unwrap().to_bytes(),
    }
}

#[tokio::test]
async fn each_idle_layer_answers_as_its_slow_path_does() {
    let direct = seen(tower::service_fn(inner)).await;
    assert_eq!(direct.marker, Some(Marker(7)));

    // RateLimit: no limits at all, and limits that are never reached.
    let idle = seen(RateLimitLayer::new().layer(tower::service_fn(inner))).await;
    let checked = seen(
        RateLimitLayer::new()
            .default_limits(Limits::new().requests_per_minute(u64::MAX))
            .layer(tower::service_fn(inner)),
    )
    .await;
    assert_eq!(idle, direct);
    assert_eq!(checked, idle);

    // KeepAlive: on (the request is not a stream) and off.
    let idle = seen(KeepAliveLayer::new().layer(tower::service_fn(inner))).await;
    let off = seen(KeepAliveLayer::disabled().layer(tower::service_fn(inner))).await;
    assert_eq!(idle, direct);
    assert_eq!(off, idle);

    // ResponseCache: disabled, and enabled for a request that bypasses it (it has no route).
    let idle = seen(ResponseCacheLayer::disabled().layer(tower::service_fn(inner))).await;
    let bypassed = seen(ResponseCacheLayer::new().layer(tower::service_fn(inner))).await;
    assert_eq!(idle, direct);
    assert_eq!(bypassed, idle);
}
