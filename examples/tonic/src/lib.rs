//! A gRPC chat service whose handlers call the gateway stack in process.
//!
//! [`ChatService`] holds a [`GatewayLayer`] stack over an HTTP client (here the simulator, so it
//! runs offline; with real providers, `tower_ai_gateway::client::HttpsClient` and a catalog with
//! their keys). `Complete` sends one chat completion through the stack and answers with its
//! content, the model and provider that served it, and the metered usage and cost; `Stream` asks
//! for a stream and forwards each content delta as it arrives, the usage on the last chunk.

use std::pin::Pin;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};
use tower_ai_gateway::catalog::{Catalog, CatalogFile};
use tower_ai_gateway::sim::{SimProfile, SimulatedProvider};
use tower_ai_gateway::{BoxError, GatewayLayer};

/// The generated protocol types, service and client.
pub mod pb {
    tonic::include_proto!("gateway.v1");
}

use pb::chat_server::Chat;
use pb::{ChatChunk, ChatReply, ChatRequest, Usage};

/// The gateway stack, its types erased.
type Stack = BoxCloneSyncService<
    http::Request<Full<Bytes>>,
    http::Response<http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>>,
    BoxError,
>;

/// The gRPC service.
#[derive(Clone)]
pub struct ChatService {
    stack: Stack,
}

impl ChatService {
    /// The service over the demo catalog with every provider simulated (seeded, instant).
    pub fn demo() -> Result<Self, BoxError> {
        let file = CatalogFile::from_json(include_bytes!(
            "../../../tests/fixtures/catalog/demo-catalog.json"
        ))?;
        let catalog: Catalog = file
            .apply(Catalog::builder(), None)?
            .map_providers(|p| p.base_url("http://sim.local/v1"))
            .build()?;
        let sim = SimulatedProvider::builder(1)
            .default_profile(SimProfile::instant())
            .build();
        let stack = ServiceBuilder::new()
            .layer(GatewayLayer::new(catalog))
            .service(sim);
        let stack = ServiceExt::<http::Request<Full<Bytes>>>::map_response(stack, |r| {
            r.map(|b| b.map_err(|never| match never {}).boxed_unsync())
        });
        let stack = ServiceExt::<http::Request<Full<Bytes>>>::map_err(stack, Into::into);
        Ok(ChatService {
            stack: BoxCloneSyncService::new(stack),
        })
    }

    /// Sends `req` through the stack as a chat completion; the response's status and body.
    async fn call(
        &self,
        req: &ChatRequest,
        stream: bool,
    ) -> Result<http::Response<http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>>, Status>
    {
        let mut body = json!({
            "model": req.model,
            "stream": stream,
            "messages": [{"role": "user", "content": req.prompt}],
        });
        if req.max_tokens > 0 {
            body["max_tokens"] = json!(req.max_tokens);
        }
        let http_req = http::Request::post("/api/v1/chat/completions")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| Status::internal(e.to_string()))?;
        let res = self
            .stack
            .clone()
            .oneshot(http_req)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        if res.status().is_success() {
            return Ok(res);
        }
        // The gateway's errors are OpenRouter-shaped: their message becomes the gRPC status.
        let code = res.status().as_u16();
        let bytes = res
            .into_body()
            .collect()
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .to_bytes();
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let msg = v["error"]["message"]
            .as_str()
            .unwrap_or("gateway error")
            .to_string();
        Err(match code {
            400 | 413 => Status::invalid_argument(msg),
            401 => Status::unauthenticated(msg),
            402 | 403 => Status::permission_denied(msg),
            404 => Status::not_found(msg),
            408 => Status::deadline_exceeded(msg),
            429 => Status::resource_exhausted(msg),
            _ => Status::unavailable(msg),
        })
    }
}

/// The usage object of a chat answer or chunk.
fn usage(v: &Value) -> Option<Usage> {
    let u = v.get("usage").filter(|u| u.is_object())?;
    Some(Usage {
        prompt_tokens: u["prompt_tokens"].as_u64().unwrap_or(0),
        completion_tokens: u["completion_tokens"].as_u64().unwrap_or(0),
        cost: u["cost"].as_f64().unwrap_or(0.0),
    })
}

/// The chunks of a chat stream's `data:` events in `text`, and what is left unfinished.
fn events(text: &str) -> (Vec<Value>, &str) {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(end) = rest.find("\n\n") {
        let event = &rest[..end];
        rest = &rest[end + 2..];
        for data in event.lines().filter_map(|l| l.strip_prefix("data: ")) {
            if let Ok(v) = serde_json::from_str::<Value>(data) {
                out.push(v);
            }
        }
    }
    (out, rest)
}

type ChunkStream = Pin<Box<dyn Stream<Item = Result<ChatChunk, Status>> + Send>>;

#[tonic::async_trait]
impl Chat for ChatService {
    async fn complete(&self, req: Request<ChatRequest>) -> Result<Response<ChatReply>, Status> {
        let res = self.call(req.get_ref(), false).await?;
        let bytes = res
            .into_body()
            .collect()
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .to_bytes();
        let v: Value =
            serde_json::from_slice(&bytes).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(ChatReply {
            id: v["id"].as_str().unwrap_or_default().to_string(),
            model: v["model"].as_str().unwrap_or_default().to_string(),
            provider: v["provider"].as_str().unwrap_or_default().to_string(),
            content: v["choices"][0]["message"]["content"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            usage: usage(&v),
        }))
    }

    type StreamStream = ChunkStream;

    async fn stream(&self, req: Request<ChatRequest>) -> Result<Response<ChunkStream>, Status> {
        let mut body = self.call(req.get_ref(), true).await?.into_body();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            let mut pending = String::new();
            while let Some(frame) = body.frame().await {
                let Ok(data) = frame.map(|f| f.into_data().unwrap_or_default()) else {
                    let _ = tx.send(Err(Status::unavailable("the stream failed"))).await;
                    return;
                };
                pending.push_str(&String::from_utf8_lossy(&data));
                let (chunks, rest) = events(&pending);
                pending = rest.to_string();
                for v in chunks {
                    if v.get("error").is_some_and(|e| !e.is_null()) {
                        let msg = v["error"]["message"].as_str().unwrap_or("provider error");
                        let _ = tx.send(Err(Status::unavailable(msg))).await;
                        return;
                    }
                    let content = v["choices"][0]["delta"]["content"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    let usage = usage(&v);
                    if (content.is_empty() && usage.is_none())
                        || tx.send(Ok(ChatChunk { content, usage })).await.is_err()
                    {
                        continue;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}
