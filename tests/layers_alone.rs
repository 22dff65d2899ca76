//! Each routing layer on its own over a tower-test mock that records what it was asked for.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use serde_json::json;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tower_ai_gateway::catalog::Catalog;
use tower_ai_gateway::catalog::Usd;
use tower_ai_gateway::data_policy::{DataFloor, DataPolicyLayer};
use tower_ai_gateway::health::NoStats;
use tower_ai_gateway::model_routing::ModelRoutingLayer;
use tower_ai_gateway::percentile::PercentileDeprioritizeLayer;
use tower_ai_gateway::price_cap::PriceCapLayer;
use tower_ai_gateway::route::{MaxPrice, Route};
use tower_test::mock;

type Req = Request<Full<Bytes>>;

/// The Route ModelRouting builds for `body` (captured by an inner service).
async fn route_for(body: serde_json::Value) -> Route {
    let slot = Arc::new(Mutex::new(None));
    let s = slot.clone();
    let catalog = Catalog::from_json(include_bytes!("fixtures/catalog/demo-catalog.json")).unwrap();
    let svc = ServiceBuilder::new()
        .layer(ModelRoutingLayer::new(catalog).seed(3))
        .service_fn(move |req: Req| {
            *s.lock().unwrap() = req.extensions().get::<Route>().cloned();
            async { Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::new()))) }
        });
    let req = Request::post("/")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let res = ServiceExt::<Req>::oneshot(svc, req).await.unwrap();
    assert_eq!(res.status(), 200);
    let route = slot.lock().unwrap().take().unwrap();
    route
}

fn tags(route: &Route) -> Vec<String> {
    route
        .candidates()
        .iter()
        .map(|c| route.endpoint(c).tag.clone())
        .collect()
}

fn with_route(route: Route) -> Req {
    let mut req = Request::post("/")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    req.extensions_mut().insert(route);
    req
}

#[tokio::test]
async fn data_policy_filters_the_route_it_is_given() {
    let (inner, mut handle) = mock::pair::<Req, Response<Full<Bytes>>>();
    let mut svc = DataPolicyLayer::new()
        .floor(DataFloor::deny_data_collection())
        .layer(inner);
    let route =
        route_for(json!({"model": "mistralai/mistral-small-3.1-24b-instruct", "messages": [{"role": "user", "content": "hi"}]}))
            .await;
    assert_eq!(route.candidates().len(), 3);
    handle.allow(1);
    ServiceExt::<Req>::ready(&mut svc).await.unwrap();
    let fut = svc.call(with_route(route));
    let (req, send) = handle.next_request().await.unwrap();
    let seen = req.extensions().get::<Route>().unwrap();
    assert_eq!(tags(seen), ["deepinfra/bf16"]);
    assert_eq!(seen.exclusions().len(), 2);
    send.send_response(Response::new(Full::new(Bytes::from_static(b"ok"))));
    assert_eq!(fut.await.unwrap().status(), 200);
}

#[tokio::test]
async fn data_policy_refuses_without_calling_the_inner_service() {
    let (inner, mut handle) = mock::pair::<Req, Response<Full<Bytes>>>();
    let mut svc = DataPolicyLayer::new().layer(inner);
    let route = route_for(json!({"model": "meta-llama/llama-3.3-70b-instruct:free", "messages": [{"role": "user", "content": "hi"}], "provider": {"zdr": true}})).await;
    handle.allow(1);
    ServiceExt::<Req>::ready(&mut svc).await.unwrap();
    let res = svc.call(with_route(route)).await.unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(
        res.extensions()
            .get::<tower_ai_gateway::GatewayError>()
            .unwrap()
            .availability()
            .unwrap()
            .code,
        tower_ai_gateway::AvailabilityCode::PrivacyRestricted
    );
    // The inner service saw nothing.
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(10), handle.next_request())
            .await
            .is_err()
    );
}

type Step = tower::util::BoxService<
    Req,
    Response<tower_ai_gateway::body::GatewayBody<Full<Bytes>>>,
    tower::BoxError,
>;
type Mock = mock::Handle<Req, Response<Full<Bytes>>>;

/// The three route-step layers, each over its own mock, by name.
fn route_steps() -> Vec<(&'static str, Step, Mock)> {
    let mut out = Vec::new();
    for name in ["DataPolicy", "PriceCap", "PercentileDeprioritize"] {
        let (mock_svc, handle) = mock::pair::<Req, Response<Full<Bytes>>>();
        let svc = match name {
            "DataPolicy" => tower::util::BoxService::new(
                DataPolicyLayer::new()
                    .floor(DataFloor::zdr())
                    .layer(mock_svc),
            ),
            "PriceCap" => tower::util::BoxService::new(
                PriceCapLayer::new()
                    .cap(MaxPrice {
                        prompt: Some(Usd::ZERO),
                        ..Default::default()
                    })
                    .layer(mock_svc),
            ),
            _ => tower::util::BoxService::new(
                PercentileDeprioritizeLayer::new(NoStats).layer(mock_svc),
            ),
        };
        out.push((name, svc, handle));
    }
    out
}

/// Without ModelRouting in front there is nothing to filter, and passing the request on would skip
/// a filter (a privacy one, for DataPolicy) the operator put there: each layer answers a 500 naming
/// itself, and the inner service sees nothing.
#[tokio::test]
async fn layers_without_a_route_fail_closed() {
    for (name, mut svc, mut handle) in route_steps() {
        handle.allow(1);
        let req = Request::post("/x")
            .header("x-probe", "1")
            .body(Full::new(Bytes::from_static(b"raw")))
            .unwrap();
        svc.ready().await.unwrap();
        let res = svc.call(req).await.unwrap();
        assert_eq!(res.status(), 500, "{name}");
        let err = res
            .extensions()
            .get::<tower_ai_gateway::GatewayError>()
            .unwrap()
            .clone();
        assert_eq!(err.error_type(), tower_ai_gateway::ErrorType::Server);
        assert_eq!(
            err.message(),
            format!("{name} needs a Route: put ModelRouting in front of it")
        );
        let body = http_body_util::BodyExt::collect(res.into_body())
            .await
            .unwrap()
            .to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], 500, "{name}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains(name));
        assert_eq!(v["error"]["metadata"]["error_type"], "server");
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(10), handle.next_request())
                .await
                .is_err(),
            "{name} called its inner service"
        );
    }
}

/// A `Vec<u8>` writer shared with a tracing subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn layers_without_a_route_warn() {
    for (name, mut svc, _handle) in route_steps() {
        let out = Captured::default();
        let w = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || w.clone())
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .finish();
        let req = Request::post("/")
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap();
        // The refusal is decided in `call`, so the warning is emitted there.
        let fut = tracing::subscriber::with_default(subscriber, || svc.call(req));
        assert_eq!(fut.await.unwrap().status(), 500);
        let log = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert!(log.contains("WARN"), "{name}: {log}");
        assert!(
            log.contains(&format!("{name} found no Route")),
            "{name}: {log}"
        );
    }
}

#[tokio::test]
async fn price_cap_operator_cap_and_request_cap_take_the_lower() {
    let (inner, mut handle) = mock::pair::<Req, Response<Full<Bytes>>>();
    let mut svc = PriceCapLayer::new()
        .cap(MaxPrice {
            prompt: Some(Usd::parse("0.3").unwrap()),
            ..Default::default()
        })
        .layer(inner);
    // The request allows $1/M, the operator only $0.30/M: DeepSeek's $0.27 endpoint is left.
    let route = route_for(json!({"model": "deepseek/deepseek-chat", "messages": [{"role": "user", "content": "hi"}], "provider": {"max_price": {"prompt": 1}}})).await;
    handle.allow(1);
    ServiceExt::<Req>::ready(&mut svc).await.unwrap();
    let fut = svc.call(with_route(route));
    let (req, send) = handle.next_request().await.unwrap();
    assert_eq!(tags(req.extensions().get::<Route>().unwrap()), ["deepseek"]);
    send.send_response(Response::new(Full::new(Bytes::new())));
    fut.await.unwrap();
}

#[tokio::test]
async fn model_routing_hands_the_buffered_body_on() {
    let catalog = Catalog::from_json(include_bytes!("fixtures/catalog/demo-catalog.json")).unwrap();
    let (inner, mut handle) = mock::pair::<Req, Response<Full<Bytes>>>();
    let mut svc = ModelRoutingLayer::new(catalog).layer(inner);
    let body =
        json!({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
            .to_string();
    handle.allow(1);
    ServiceExt::<Req>::ready(&mut svc).await.unwrap();
    // ModelRouting calls the inner service from its future (after buffering the body): drive it.
    let fut = tokio::spawn(
        svc.call(
            Request::post("/v1/chat/completions")
                .header("x-test", "y")
                .body(Full::new(Bytes::from(body.clone())))
                .unwrap(),
        ),
    );
    let (req, send) = handle.next_request().await.unwrap();
    assert_eq!(req.headers()["x-test"], "y");
    let route = req.extensions().get::<Route>().unwrap();
    assert_eq!(route.body(), &Bytes::from(body));
    assert_eq!(&*route.models()[0].id, "openai/gpt-4o-mini");
    send.send_response(Response::new(Full::new(Bytes::new())));
    fut.await.unwrap().unwrap();
}
