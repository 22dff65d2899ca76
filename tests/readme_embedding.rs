//! The README's "Embedding the layers" stack, built the same way and driven once: a budgeted caller
//! gets a metered answer, and the generation lands in the store.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tower::{ServiceBuilder, ServiceExt};
use tower_ai_gateway::catalog::{Catalog, Usd};
use tower_ai_gateway::clock::SystemClock;
use tower_ai_gateway::data_policy::DataPolicyLayer;
use tower_ai_gateway::fallback::ProviderFallbackLayer;
use tower_ai_gateway::model_routing::ModelRoutingLayer;
use tower_ai_gateway::percentile::PercentileDeprioritizeLayer;
use tower_ai_gateway::price_cap::PriceCapLayer;
use tower_ai_gateway::sim::{SimProfile, SimulatedProvider};
use tower_ai_gateway::usage_meter::{
    CallerKey, GenerationStore, InMemoryLedger, KeyLimits, Period, UsageMeterLayer,
};
use tower_ai_gateway::Stats;

#[tokio::test]
async fn the_readme_stack_serves_a_request() {
    let catalog = Catalog::from_path("examples/catalog.toml").unwrap();
    // Any `Service<http::Request<Full<Bytes>>>` works here; the simulator answers every host.
    let client = SimulatedProvider::builder(1)
        .default_profile(SimProfile::instant())
        .build();

    // As in the README.
    let stats = Stats::default();
    let generations = GenerationStore::new(10_000);
    let ledger = InMemoryLedger::new(SystemClock).limits(
        "team-a",
        KeyLimits::new().limit(Period::Day, Usd::parse("5").unwrap()),
    );
    let gateway = ServiceBuilder::new()
        .layer(ModelRoutingLayer::new(catalog).health(stats.clone()))
        .layer(DataPolicyLayer::new())
        .layer(PriceCapLayer::new())
        .layer(PercentileDeprioritizeLayer::new(stats.clone()))
        .layer(
            UsageMeterLayer::new()
                .ledger(ledger)
                .stats(stats.clone())
                .sink(generations.clone()),
        )
        .layer(ProviderFallbackLayer::new().stats(stats.clone()))
        .service(client);

    let body =
        r#"{"model":"fast","messages":[{"role":"user","content":"hi"}],"provider":{"zdr":true}}"#;
    let mut req = http::Request::post("http://gateway.local/api/v1/chat/completions")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    req.extensions_mut().insert(CallerKey::new("team-a"));

    let res = gateway.oneshot(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(json["model"], "meta-llama/llama-3.3-70b-instruct");
    assert!(json["usage"]["cost"].is_number(), "{json}");
    let id = json["id"].as_str().unwrap();
    assert!(generations.get(id).is_some());
}
