//! Router models (issue 16): `openrouter/auto` through the `AutoRouter`, with the `auto-router`
//! plugin's patterns, and `openrouter/free`.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use tower::{ServiceBuilder, ServiceExt};
use tower_ai_gateway::catalog::Catalog;
use tower_ai_gateway::model_routing::{ModelRoutingLayer, Tier, TieredRouter};
use tower_ai_gateway::route::Route;

const DEMO: &[u8] = include_bytes!("fixtures/catalog/demo-catalog.json");

fn demo() -> Catalog {
    tower_ai_gateway::catalog::CatalogFile::from_json(DEMO)
        .unwrap()
        .apply(Catalog::builder(), None)
        .unwrap()
        .map_providers(|p| p.base_url("http://sim.local/v1"))
        .build()
        .unwrap()
}

/// Routes `body` and returns the models of the route (ids, in order), or the error's status and
/// JSON.
async fn route(layer: ModelRoutingLayer, body: Value) -> Result<Vec<String>, (u16, Value)> {
    let seen: Arc<Mutex<Option<Route>>> = Arc::default();
    let s = seen.clone();
    let svc = ServiceBuilder::new()
        .layer(layer)
        .service(tower::service_fn(move |req: Request<Full<Bytes>>| {
            *s.lock().unwrap() = req.extensions().get::<Route>().cloned();
            async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"{}")))) }
        }));
    let res = svc
        .oneshot(
            Request::post("/")
                .body(Full::new(Bytes::from(body.to_string())))
                .unwrap(),
        )
        .await
        .unwrap();
    if res.status() != 200 {
        let status = res.status().as_u16();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        return Err((status, serde_json::from_slice(&bytes).unwrap()));
    }
    let route = seen.lock().unwrap().take().expect("a route");
    Ok(route.models().iter().map(|m| m.id.to_string()).collect())
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Hello"}]})
}

#[tokio::test]
async fn auto_without_tiers_routes_to_the_cheapest_capable_models() {
    let models = route(
        ModelRoutingLayer::new(demo()).seed(1),
        chat("openrouter/auto"),
    )
    .await
    .unwrap();
    // Cheapest first by prompt + completion price, up to three; the free model is the cheapest.
    assert_eq!(
        models,
        [
            "meta-llama/llama-3.3-70b-instruct:free",
            "mistralai/mistral-small-3.1-24b-instruct",
            "meta-llama/llama-3.3-70b-instruct"
        ]
    );
}

#[tokio::test]
async fn auto_honours_what_the_request_needs() {
    let mut body = chat("openrouter/auto");
    body["tools"] = json!([{"type": "function", "function": {"name": "f", "parameters": {}}}]);
    let models = route(ModelRoutingLayer::new(demo()).seed(1), body)
        .await
        .unwrap();
    assert!(
        !models.iter().any(|m| m.ends_with(":free")),
        "{models:?}: the free one has no tools"
    );
    let mut body = chat("openrouter/auto");
    body["messages"][0]["content"] = json!([
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    ]);
    let models = route(ModelRoutingLayer::new(demo()).seed(1), body)
        .await
        .unwrap();
    assert_eq!(
        models[0], "mistralai/mistral-small-3.1-24b-instruct",
        "{models:?}"
    );
    assert!(
        !models.iter().any(|m| m.starts_with("meta-llama")),
        "{models:?}: text only"
    );
}

#[tokio::test]
async fn auto_router_plugin_patterns_restrict_the_choice() {
    let mut body = chat("openrouter/auto");
    body["plugins"] = json!([{"id": "auto-router",
        "allowed_models": ["anthropic/*", "openai/*"], "excluded_models": ["openai/*"]}]);
    let models = route(ModelRoutingLayer::new(demo()).seed(1), body)
        .await
        .unwrap();
    assert_eq!(
        models,
        ["anthropic/claude-sonnet-4.5"],
        "excluded wins over allowed"
    );

    let mut body = chat("openrouter/auto");
    body["plugins"] = json!([{"id": "auto-router", "allowed_models": ["nobody/*"]}]);
    let (status, err) = route(ModelRoutingLayer::new(demo()), body)
        .await
        .unwrap_err();
    assert_eq!(status, 404, "{err}");
    assert_eq!(
        err["error"]["message"],
        "No models match your request and model restrictions"
    );

    let mut body = chat("openrouter/auto");
    let many: Vec<String> = (0..1025).map(|i| format!("m{i}/*")).collect();
    body["plugins"] = json!([{"id": "auto-router", "allowed_models": many}]);
    let (status, err) = route(ModelRoutingLayer::new(demo()), body)
        .await
        .unwrap_err();
    assert_eq!(status, 400, "{err}");
}

#[tokio::test]
async fn auto_uses_the_operators_tiers_first() {
    let router = TieredRouter::new(vec![
        Tier {
            max_prompt_tokens: Some(1000),
            models: vec!["deepseek/deepseek-chat".into(), "qwen/qwen3-coder".into()],
            ..Tier::default()
        },
        Tier {
            tools: true,
            reasoning: true,
            models: vec!["anthropic/claude-sonnet-4.5".into()],
            ..Tier::default()
        },
    ]);
    let layer = ModelRoutingLayer::new(demo()).seed(1).auto_router(router);
    let models = route(layer.clone(), chat("openrouter/auto")).await.unwrap();
    assert_eq!(models[..2], ["deepseek/deepseek-chat", "qwen/qwen3-coder"]);
    // A long prompt skips the small tier.
    let mut body = chat("openrouter/auto");
    body["messages"][0]["content"] = json!("x".repeat(8000));
    let models = route(layer, body).await.unwrap();
    assert_eq!(models[0], "anthropic/claude-sonnet-4.5");
}

#[tokio::test]
async fn free_picks_a_free_model_that_fits() {
    let models = route(
        ModelRoutingLayer::new(demo()).seed(7),
        chat("openrouter/free"),
    )
    .await
    .unwrap();
    assert_eq!(models, ["meta-llama/llama-3.3-70b-instruct:free"]);
    // No free model takes tools: nothing matches.
    let mut body = chat("openrouter/free");
    body["tools"] = json!([{"type": "function", "function": {"name": "f", "parameters": {}}}]);
    let (status, err) = route(ModelRoutingLayer::new(demo()), body)
        .await
        .unwrap_err();
    assert_eq!(status, 404, "{err}");
}
