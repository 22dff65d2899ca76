//! The README's "Running several replicas" recipe with the example gateway: two gateways started
//! with `redis` (as `--redis URL` does) share one Redis, so a key's spend on one is its spend on
//! the other, and the `:free` limit of 20 requests a minute counts across both.

#![allow(dead_code)]

#[path = "../examples/gateway/app.rs"]
mod app;
#[path = "../examples/gateway/config.rs"]
mod config;
#[path = "support/redis.rs"]
mod redis_server;
mod support;

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use redis_server::RedisServer;
use serde_json::{json, Value};
use support::{HttpClient, Reply};
use tower_ai_gateway::redis::{RedisOptions, RedisStores};

struct Gateway {
    addr: SocketAddr,
    client: HttpClient,
    /// Its connection: `flush` waits for its queued settles.
    stores: RedisStores,
    state: app::AppState,
}

/// The demo gateway (its $0.10/day demo key, OpenRouter's `:free` limits) on `server`'s Redis.
async fn start(server: &RedisServer) -> Gateway {
    let mut cfg = config::demo(7, true);
    let stores = RedisStores::connect(&server.url(), RedisOptions::default())
        .await
        .unwrap();
    cfg.use_redis(stores.clone());
    let (router, state) = app::build(cfg);
    let (addr, client) = support::serve(router).await;
    Gateway {
        addr,
        client,
        stores,
        state,
    }
}

impl Gateway {
    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let req = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr))
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {}", config::DEMO_KEY));
        let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        support::fetch(&self.client, req.body(Full::new(body)).unwrap()).await
    }

    async fn chat(&self, model: &str) -> Reply {
        let body = json!({"model": model, "max_tokens": 50,
                          "messages": [{"role": "user", "content": "Hi"}]});
        self.send(Method::POST, "/api/v1/chat/completions", Some(body))
            .await
    }

    async fn usage(&self) -> f64 {
        let key = self.send(Method::GET, "/api/v1/key", None).await;
        key.json()["data"]["usage"].as_f64().unwrap()
    }
}

#[tokio::test]
async fn two_gateways_share_budgets_and_free_limits_through_redis() {
    let server = RedisServer::start();
    let (a, b) = (start(&server).await, start(&server).await);

    let r = a.chat("meta-llama/llama-3.3-70b-instruct").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let cost = r.json()["usage"]["cost"].as_f64().unwrap();
    assert!(cost > 0.0);
    // Settles are queued off the response path: wait for A's queue.
    a.stores.flush().await;
    let seen = b.usage().await;
    assert!(
        (seen - cost).abs() < 1e-6,
        "B sees A's spend: {seen} vs {cost}"
    );

    // `:free`: 20 requests a minute per key, across both gateways.
    let free = "meta-llama/llama-3.3-70b-instruct:free";
    let mut statuses = Vec::new();
    for i in 0..24 {
        let gw = if i % 2 == 0 { &a } else { &b };
        statuses.push(gw.chat(free).await.status.as_u16());
    }
    assert_eq!(statuses[..20], [200; 20], "{statuses:?}");
    assert_eq!(statuses[20..], [429; 4], "{statuses:?}");
}

#[tokio::test]
async fn a_generation_made_on_one_gateway_is_served_by_the_other() {
    let server = RedisServer::start();
    let (a, b) = (start(&server).await, start(&server).await);
    let r = a.chat("meta-llama/llama-3.3-70b-instruct").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_owned();
    a.state.shared.flush().await;
    assert!(b.state.generations.get(&id).is_none(), "b never saw it");

    let path = format!("/api/v1/generation?id={id}");
    let got = b.send(Method::GET, &path, None).await;
    assert_eq!(got.status, 200, "{:?}", got.body);
    let mine = a.send(Method::GET, &path, None).await;
    assert_eq!(got.json(), mine.json(), "the same record on both");
    assert_eq!(got.json()["data"]["id"], id.as_str());
    let missing = b
        .send(Method::GET, "/api/v1/generation?id=gen-0-none", None)
        .await;
    assert_eq!(missing.status, 404);
}
