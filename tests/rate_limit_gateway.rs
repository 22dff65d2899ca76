//! The example gateway's rate limits over loopback: the demo's `:free` limits, `/api/v1/key`'s
//! full shape and `/api/v1/credits` for management keys.

#![allow(dead_code)]

#[path = "../examples/gateway/app.rs"]
mod app;
#[path = "../examples/gateway/config.rs"]
mod config;
mod support;

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use serde_json::{json, Value};
use support::{HttpClient, Reply};

const FREE: &str = "meta-llama/llama-3.3-70b-instruct:free";

struct Gateway {
    addr: SocketAddr,
    client: HttpClient,
}

async fn start() -> Gateway {
    let (router, _state) = app::build(config::demo(7, true));
    let (addr, client) = support::serve(router).await;
    Gateway { addr, client }
}

impl Gateway {
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        key: Option<&str>,
    ) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr))
            .header("content-type", "application/json");
        if let Some(k) = key {
            req = req.header("authorization", format!("Bearer {k}"));
        }
        let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        support::fetch(&self.client, req.body(Full::new(body)).unwrap()).await
    }

    async fn chat(&self, model: &str) -> Reply {
        let body = json!({"model": model, "messages": [{"role": "user", "content": "Hi"}]});
        self.send(Method::POST, "/api/v1/chat/completions", Some(body), None)
            .await
    }
}

fn ratelimit_headers(r: &Reply) -> Vec<&str> {
    r.headers
        .keys()
        .map(|k| k.as_str())
        .filter(|k| k.starts_with("x-ratelimit"))
        .collect()
}

#[tokio::test]
async fn a_burst_of_30_to_a_free_model_gets_429s_after_20() {
    let gw = start().await;
    let mut statuses = Vec::new();
    let mut first_429 = None;
    for _ in 0..30 {
        let r = gw.chat(FREE).await;
        statuses.push(r.status.as_u16());
        if r.status == 200 {
            assert!(ratelimit_headers(&r).is_empty(), "{:?}", r.headers);
        } else if first_429.is_none() {
            first_429 = Some(r);
        }
    }
    assert_eq!(statuses[..20], [200; 20], "{statuses:?}");
    assert_eq!(statuses[20..], [429; 10], "{statuses:?}");
    let r = first_429.unwrap();
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(r.headers["x-ratelimit-limit"], "20");
    assert_eq!(r.headers["x-ratelimit-remaining"], "0");
    assert!(r.headers.contains_key("x-ratelimit-reset"));
    let v = r.json();
    assert_eq!(v["error"]["code"], 429);
    assert_eq!(v["error"]["metadata"]["error_type"], "rate_limit_exceeded");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("Rate limit exceeded: free-models-per-min."));
    // Paid models are not limited in the demo.
    assert_eq!(
        gw.chat("meta-llama/llama-3.3-70b-instruct").await.status,
        200
    );

    // `/api/v1/key` counts today's `:free` requests (the 20 served).
    let key = gw.send(Method::GET, "/api/v1/key", None, None).await;
    assert_eq!(key.status, 200);
    let d = &key.json()["data"];
    assert_eq!(
        d["free_model_daily_requests"],
        json!({"limit": 50, "remaining": 30, "used": 20})
    );
}

#[tokio::test]
async fn key_reports_the_full_shape() {
    let gw = start().await;
    let r = gw
        .send(Method::GET, "/api/v1/key", None, Some(config::DEMO_KEY))
        .await;
    assert_eq!(r.status, 200);
    let d = &r.json()["data"];
    for field in [
        "label",
        "limit",
        "limit_remaining",
        "limit_reset",
        "usage",
        "usage_daily",
        "usage_weekly",
        "usage_monthly",
        "byok_usage",
        "include_byok_in_limit",
        "is_free_tier",
        "is_management_key",
        "rate_limit",
        "free_model_daily_requests",
        "budgets",
        "effective_budget",
    ] {
        assert!(d.get(field).is_some(), "missing {field}: {d}");
    }
    assert_eq!(d["label"], "demo-small-budget");
    assert_eq!(d["limit"], 0.1);
    assert_eq!(d["limit_reset"], "daily");
    assert_eq!(d["is_free_tier"], false);
    assert_eq!(d["is_management_key"], false);
    assert_eq!(d["rate_limit"]["requests"], -1);
    assert_eq!(
        d["free_model_daily_requests"],
        json!({"limit": 50, "remaining": 50, "used": 0})
    );
    let b = &d["budgets"][0];
    assert_eq!(b["scope"], "key_limit");
    assert_eq!(b["limit_usd"], 0.1);
    assert_eq!(b["remaining_usd"], 0.1);
    assert_eq!(b["reset_interval"], "daily");
    let resets = b["resets_at"].as_str().unwrap();
    assert!(resets.ends_with("T00:00:00Z"), "{resets}");
    assert_eq!(&d["effective_budget"], b);

    // The keyless loopback caller has no budget: a free-tier key with no budgets.
    let d = gw.send(Method::GET, "/api/v1/key", None, None).await.json();
    let d = &d["data"];
    assert_eq!(d["label"], "local");
    assert_eq!(d["is_free_tier"], true);
    assert_eq!(d["is_management_key"], true);
    assert_eq!(d["budgets"], json!([]));
    assert_eq!(d["effective_budget"], Value::Null);
}

#[tokio::test]
async fn credits_are_for_management_keys_only() {
    let gw = start().await;
    // The keyless demo: loopback callers count as management.
    let r = gw.send(Method::GET, "/api/v1/credits", None, None).await;
    assert_eq!(r.status, 200);
    let d = &r.json()["data"];
    assert_eq!(d["total_credits"], 0.1, "the demo key's daily budget");
    assert_eq!(d["total_usage"], 0.0);
    // The demo key is not a management key.
    let r = gw
        .send(Method::GET, "/api/v1/credits", None, Some(config::DEMO_KEY))
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json()["error"]["metadata"]["error_type"],
        "permission_denied"
    );
}
