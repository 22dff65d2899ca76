//! The example gateway's `/api/v1/embeddings` over loopback: routed by the same layers (provider
//! order, price cap), metered (the generation record agrees with `usage.cost`), answered
//! deterministically by the simulator in floats or base64.

#![allow(dead_code)]

#[path = "../examples/gateway/app.rs"]
mod app;
#[path = "../examples/gateway/config.rs"]
mod config;
mod support;

use std::net::SocketAddr;

use base64::Engine;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde_json::{json, Value};
use support::{HttpClient, Reply};

const SMALL: &str = "openai/text-embedding-3-small";
const QWEN: &str = "qwen/qwen3-embedding-8b";

struct Gateway {
    addr: SocketAddr,
    client: HttpClient,
}

async fn start() -> Gateway {
    let (router, _state) = app::build(config::demo_recording(16, true, false));
    let (addr, client) = support::serve(router).await;
    Gateway { addr, client }
}

impl Gateway {
    async fn post(&self, body: &Value) -> Reply {
        let req = Request::post(format!("http://{}/api/v1/embeddings", self.addr))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        support::fetch(&self.client, req).await
    }

    async fn get(&self, path: &str) -> Value {
        let req = Request::get(format!("http://{}{path}", self.addr))
            .body(Full::new(Bytes::new()))
            .unwrap();
        support::fetch(&self.client, req).await.json()
    }
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[tokio::test]
async fn float_vectors_are_deterministic_unit_vectors_and_metered() {
    let gw = start().await;
    let body = json!({"model": SMALL, "input": ["hello", "world", "hello"], "dimensions": 8});
    let r = gw.post(&body).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let v = r.json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], SMALL);
    assert_eq!(v["provider"], "OpenAI");
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    let vecs: Vec<Vec<f64>> = data.iter().map(|d| floats(&d["embedding"])).collect();
    for (i, e) in vecs.iter().enumerate() {
        assert_eq!(data[i]["index"], i);
        assert_eq!(e.len(), 8);
        let norm: f64 = e.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
    }
    assert_eq!(vecs[0], vecs[2]);
    assert_ne!(vecs[0], vecs[1]);
    // The same input in another request: the same vector.
    let again = gw
        .post(&json!({"model": SMALL, "input": "hello", "dimensions": 8}))
        .await
        .json();
    assert_eq!(floats(&again["data"][0]["embedding"]), vecs[0]);
    // Metered at the endpoint's prompt price ($0.02 per million tokens).
    let usage = &v["usage"];
    let tokens = usage["prompt_tokens"].as_u64().unwrap();
    assert!(tokens > 0);
    let cost = usage["cost"].as_f64().unwrap();
    assert!((cost - tokens as f64 * 2e-8).abs() < 1e-15, "{usage}");
    let id = r.headers["x-generation-id"].to_str().unwrap();
    let g = gw.get(&format!("/api/v1/generation?id={id}")).await;
    assert_eq!(g["data"]["total_cost"], usage["cost"], "{g}");
    assert_eq!(g["data"]["tokens_prompt"], tokens, "{g}");
    assert_eq!(g["data"]["model"], SMALL, "{g}");
}

#[tokio::test]
async fn base64_encodes_little_endian_f32s() {
    let gw = start().await;
    let float = gw
        .post(&json!({"model": SMALL, "input": "abc", "dimensions": 5}))
        .await
        .json();
    let b64 = gw
        .post(
            &json!({"model": SMALL, "input": "abc", "dimensions": 5, "encoding_format": "base64"}),
        )
        .await
        .json();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f64> = bytes
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
        .collect();
    assert_eq!(decoded, floats(&float["data"][0]["embedding"]));
}

#[tokio::test]
async fn routing_layers_apply() {
    let gw = start().await;
    let mut body = json!({"model": QWEN, "input": "hi", "provider": {"order": ["together"]}});
    assert_eq!(gw.post(&body).await.json()["provider"], "Together");
    // Together costs $0.02/M, DeepInfra $0.01/M: a cap of $0.015/M leaves DeepInfra.
    body["provider"] = json!({"order": ["together"], "max_price": {"prompt": 0.015}});
    assert_eq!(gw.post(&body).await.json()["provider"], "DeepInfra");
    body["provider"] = json!({"max_price": {"prompt": 0.001}});
    let r = gw.post(&body).await;
    assert_eq!(r.status, 404, "{:?}", r.body);
    assert!(r.json()["error"]["message"].is_string());
    // Embedding models are listed on request, not among the text models.
    let all = gw.get("/api/v1/models").await;
    assert!(!all["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["id"] == SMALL));
    let emb = gw.get("/api/v1/models?output_modalities=embeddings").await;
    let ids: Vec<&str> = emb["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
}

#[tokio::test]
async fn bad_requests_are_400s() {
    let gw = start().await;
    for (body, field) in [
        (
            json!({"model": SMALL, "input": "x", "encoding_format": "hex"}),
            "encoding_format",
        ),
        (
            json!({"model": SMALL, "input": "x", "dimensions": 0}),
            "dimensions",
        ),
        (
            json!({"model": SMALL, "input": "x", "dimensions": "8"}),
            "dimensions",
        ),
        (json!({"model": SMALL}), "messages"),
        // A chat model cannot embed.
        (
            json!({"model": "openai/gpt-4o-mini", "input": "x"}),
            "model",
        ),
        (
            json!({"model": "nobody/x", "models": [SMALL, "deepseek/deepseek-chat"], "input": "x"}),
            "model",
        ),
    ] {
        let r = gw.post(&body).await;
        assert_eq!(r.status, 400, "{body}: {:?}", r.body);
        let v = r.json();
        assert_eq!(
            v["error"]["metadata"]["error_type"], "invalid_request",
            "{v}"
        );
        assert_eq!(v["error"]["metadata"]["field"], field, "{v}");
    }
}

#[tokio::test]
async fn embedding_models_do_not_chat() {
    let gw = start().await;
    let req = Request::post(format!("http://{}/api/v1/chat/completions", gw.addr))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            json!({"model": SMALL, "messages": [{"role": "user", "content": "hi"}]}).to_string(),
        )))
        .unwrap();
    let r = support::fetch(&gw.client, req).await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    let v = r.json();
    assert_eq!(v["error"]["metadata"]["field"], "model", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("embedding model"),
        "{v}"
    );
}
