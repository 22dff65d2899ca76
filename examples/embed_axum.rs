//! The layers inside an axum handler of your own service.
//!
//! A service that already has its own routes, auth and state can call providers through the gateway
//! stack directly: build it once (`GatewayLayer` over an HTTP client), keep it in the state, and call
//! it from a handler with a chat-completions body of your making. Nothing leaves the process but the
//! provider call. With no argument the "providers" are a SimulatedProvider, so the example runs
//! offline; given a catalog file with real providers and keys, the client is the crate's
//! `tower_ai_gateway::client::HttpsClient` (feature `client`) and nothing else changes:
//!
//! ```text
//! cargo run --example embed_axum                       # offline, simulated providers
//! cargo run --example embed_axum -- my-catalog.toml    # real providers over HTTPS
//! curl -s localhost:3000/summarize -d 'Tower is a library of modular components for networking.'
//! ```

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};
use tower_ai_gateway::catalog::{Catalog, CatalogFile, Credentials, ProviderDataPolicy};
use tower_ai_gateway::client::HttpsClient;
use tower_ai_gateway::sim::{SimProfile, SimulatedProvider};
use tower_ai_gateway::{BoxError, GatewayLayer};

type Llm = BoxCloneSyncService<
    http::Request<Full<Bytes>>,
    http::Response<http_body_util::combinators::BoxBody<Bytes, BoxError>>,
    BoxError,
>;

/// Our own endpoint: summarise the posted text with the cheapest ZDR model the catalog offers.
async fn summarize(State(llm): State<Llm>, text: String) -> Result<String, (StatusCode, String)> {
    let body = json!({
        "models": ["openai/gpt-4o-mini", "google/gemini-2.5-flash"],
        "messages": [
            {"role": "system", "content": "Summarise in one sentence."},
            {"role": "user", "content": text},
        ],
        "max_tokens": 64,
        "provider": {"zdr": true, "sort": "price"},
    });
    let req = http::Request::post("/v1/chat/completions")
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let res = llm
        .oneshot(req)
        .await
        .map_err(|e| (StatusCode::BAD_GATEWAY, e.to_string()))?;
    let status = res.status();
    let bytes = res
        .into_body()
        .collect()
        .await
        .map_err(|e| (StatusCode::BAD_GATEWAY, e.to_string()))?
        .to_bytes();
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if !status.is_success() {
        // The gateway's errors are OpenRouter-shaped; pass the message on.
        let msg = v["error"]["message"]
            .as_str()
            .unwrap_or("upstream error")
            .to_string();
        return Err((
            StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY),
            msg,
        ));
    }
    Ok(format!(
        "{} (model {}, via {}, cost ${})\n",
        v["choices"][0]["message"]["content"].as_str().unwrap_or(""),
        v["model"],
        v["provider"],
        v["usage"]["cost"]
    ))
}

/// The gateway over `client`, its types erased for the state.
fn stack<S, B>(catalog: Catalog, client: S) -> Llm
where
    S: tower::Service<http::Request<Full<Bytes>>, Response = http::Response<B>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    let client = ServiceExt::<http::Request<Full<Bytes>>>::map_err(client, Into::into);
    let stack = ServiceBuilder::new()
        .layer(GatewayLayer::new(catalog))
        .service(client);
    // The stack's response bodies never fail (a failing upstream ends the stream with an in-band
    // error event instead); erase the types for the state.
    let stack = ServiceExt::<http::Request<Full<Bytes>>>::map_response(stack, |r| {
        r.map(|b| b.map_err(|never| match never {}).boxed())
    });
    BoxCloneSyncService::new(stack)
}

/// The demo catalog with every provider on the simulator (and ZDR, so the request's `zdr` passes).
fn demo() -> Result<Llm, BoxError> {
    let file = CatalogFile::from_json(include_bytes!(
        "../tests/fixtures/catalog/demo-catalog.json"
    ))?;
    let catalog: Catalog = file
        .apply(Catalog::builder(), None)?
        .map_providers(|p| {
            let policy = p.data_policy;
            let url = format!("http://{}.sim/v1", p.slug);
            p.base_url(url)
                .credentials(Credentials::key("sk-sim"))
                .data_policy(if policy == ProviderDataPolicy::UNKNOWN {
                    ProviderDataPolicy::ZDR
                } else {
                    policy
                })
        })
        .build()?;
    let sim = SimulatedProvider::builder(1)
        .default_profile(SimProfile::instant())
        .build();
    Ok(stack(catalog, sim))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let llm = match std::env::args().nth(1) {
        Some(path) => stack(Catalog::from_path(path)?, HttpsClient::new()),
        None => demo()?,
    };
    let app = Router::new()
        .route("/summarize", post(summarize))
        .with_state(llm);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://127.0.0.1:3000 — POST text to /summarize");
    axum::serve(listener, app).await?;
    Ok(())
}
