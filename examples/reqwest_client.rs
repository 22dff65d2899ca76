//! The gateway stack around a `reqwest::Client`, through a small adapter.
//!
//! Any HTTP client works as the innermost service once it is a
//! `Service<http::Request<Full<Bytes>>, Response = http::Response<impl Body>>`. Here a reqwest client
//! is adapted and wrapped in [`GatewayLayer`]; the providers point at a local OpenAI-compatible server
//! (`--upstream`, default `http://127.0.0.1:8081/v1` — for example `cargo run --example gateway --
//! --bare --listen 127.0.0.1:8081`, which serves one simulated provider with no layers).
//!
//! ```text
//! cargo run --example gateway -- --bare --listen 127.0.0.1:8081 &
//! cargo run --example reqwest_client
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::TryStreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_ai_gateway::catalog::{Catalog, CatalogFile, Credentials, ProviderDataPolicy};
use tower_ai_gateway::{BoxError, GatewayLayer};

/// `reqwest::Client` as a tower `Service` over `http` types; the response body streams.
#[derive(Clone, Debug)]
struct Reqwest(reqwest::Client);

impl Service<http::Request<Full<Bytes>>> for Reqwest {
    type Response = http::Response<BoxBody<Bytes, BoxError>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Full<Bytes>>) -> Self::Future {
        let client = self.0.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let body = body.collect().await.map_err(BoxError::from)?.to_bytes();
            let req = http::Request::from_parts(parts, body);
            let res = client.execute(reqwest::Request::try_from(req)?).await?;
            let mut builder = http::Response::builder().status(res.status());
            for (k, v) in res.headers() {
                builder = builder.header(k, v);
            }
            let stream = res
                .bytes_stream()
                .map_ok(http_body::Frame::data)
                .map_err(|e| -> BoxError { Box::new(e) });
            Ok(builder.body(BoxBody::new(StreamBody::new(stream)))?)
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let upstream = std::env::args()
        .skip_while(|a| a != "--upstream")
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:8081/v1".into());
    // The demo catalog, every provider served by the one upstream.
    let file = CatalogFile::from_json(include_bytes!(
        "../tests/fixtures/catalog/demo-catalog.json"
    ))?;
    let catalog: Catalog = file
        .apply(Catalog::builder(), None)?
        .map_providers(|p| {
            p.base_url(upstream.clone())
                .credentials(Credentials::key("sk-local"))
                .data_policy(ProviderDataPolicy::ZDR)
        })
        .build()?;

    let svc = ServiceBuilder::new()
        .layer(GatewayLayer::new(catalog))
        .service(Reqwest(reqwest::Client::new()));

    let body = r#"{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"Hello"}],
                   "provider":{"sort":"price"}}"#;
    let req = http::Request::post("/api/v1/chat/completions").body(Full::new(Bytes::from(body)))?;
    let res = svc.oneshot(req).await?;
    println!("status: {}", res.status());
    let bytes = res.into_body().collect().await?.to_bytes();
    println!("{}", String::from_utf8_lossy(&bytes));
    Ok(())
}
