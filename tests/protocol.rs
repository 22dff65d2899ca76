//! The Tower protocol through every layer: readiness is the inner service's, one layer at a time
//! and through the whole stack (tower-test mocks; `allow(0)` makes the mock not ready).

use std::task::Poll;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use tower::Layer;
use tower_ai_gateway::catalog::Catalog;
use tower_ai_gateway::data_policy::DataPolicyLayer;
use tower_ai_gateway::fallback::ProviderFallbackLayer;
use tower_ai_gateway::health::NoStats;
use tower_ai_gateway::model_routing::ModelRoutingLayer;
use tower_ai_gateway::percentile::PercentileDeprioritizeLayer;
use tower_ai_gateway::price_cap::PriceCapLayer;
use tower_ai_gateway::usage_meter::UsageMeterLayer;
use tower_ai_gateway::GatewayLayer;
use tower_test::mock;

type Req = Request<Full<Bytes>>;
type Res = Response<Full<Bytes>>;

fn catalog() -> Catalog {
    Catalog::from_json(include_bytes!("fixtures/catalog/demo-catalog.json")).unwrap()
}

/// `layer` over a mock: not ready while the mock allows nothing, ready once it allows one call,
/// and not ready again after that call was made.
async fn readiness_is_forwarded<L>(name: &str, layer: L)
where
    L: Layer<mock::Mock<Req, Res>>,
    L::Service: tower::Service<Req>,
    <L::Service as tower::Service<Req>>::Error: std::fmt::Debug,
{
    let (mut svc, mut handle) = mock::spawn_layer::<Req, Res, _>(layer);
    handle.allow(0);
    assert!(
        svc.poll_ready().is_pending(),
        "{name}: ready although the inner service is not"
    );
    handle.allow(1);
    match svc.poll_ready() {
        Poll::Ready(Ok(())) => {}
        Poll::Ready(Err(e)) => panic!("{name}: poll_ready failed: {e:?}"),
        Poll::Pending => panic!("{name}: not ready although the inner service is"),
    }
}

#[tokio::test]
async fn model_routing_forwards_readiness() {
    readiness_is_forwarded("ModelRouting", ModelRoutingLayer::new(catalog())).await;
}

#[tokio::test]
async fn data_policy_forwards_readiness() {
    readiness_is_forwarded("DataPolicy", DataPolicyLayer::new()).await;
}

#[tokio::test]
async fn price_cap_forwards_readiness() {
    readiness_is_forwarded("PriceCap", PriceCapLayer::new()).await;
}

#[tokio::test]
async fn percentile_forwards_readiness() {
    readiness_is_forwarded(
        "PercentileDeprioritize",
        PercentileDeprioritizeLayer::new(NoStats),
    )
    .await;
}

#[tokio::test]
async fn usage_meter_forwards_readiness() {
    readiness_is_forwarded("UsageMeter", UsageMeterLayer::new()).await;
}

#[tokio::test]
async fn provider_fallback_forwards_readiness() {
    readiness_is_forwarded("ProviderFallback", ProviderFallbackLayer::new()).await;
}

#[tokio::test]
async fn the_whole_stack_forwards_readiness() {
    readiness_is_forwarded("GatewayLayer", GatewayLayer::new(catalog())).await;
}

#[tokio::test]
async fn messages_layer_forwards_readiness() {
    readiness_is_forwarded(
        "MessagesLayer",
        tower_ai_gateway::compat::MessagesLayer::new(),
    )
    .await;
}

#[tokio::test]
async fn rate_limit_forwards_readiness() {
    use tower_ai_gateway::rate_limit::{Limits, RateLimitLayer};
    readiness_is_forwarded("RateLimit (no limits)", RateLimitLayer::new()).await;
    readiness_is_forwarded(
        "RateLimit",
        RateLimitLayer::new().default_limits(Limits::new().requests_per_minute(1)),
    )
    .await;
}
