//! The example gateway's response cache over loopback: MISS then HIT with OpenRouter's headers, a
//! HIT that costs the key nothing and is not a recorded generation, streamed HITs, and the
//! `[gateway.cache]` section.

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
    async fn send(&self, method: Method, path: &str, body: Option<&Value>, cache: bool) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr))
            .header("content-type", "application/json");
        if cache {
            req = req.header("x-openrouter-cache", "true");
        }
        let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        support::fetch(&self.client, req.body(Full::new(body)).unwrap()).await
    }

    async fn chat(&self, body: &Value) -> Reply {
        self.send(Method::POST, "/api/v1/chat/completions", Some(body), true)
            .await
    }

    async fn spent_today(&self) -> f64 {
        let key = self.send(Method::GET, "/api/v1/key", None, false).await;
        key.json()["data"]["usage_daily"].as_f64().unwrap()
    }
}

fn header<'a>(r: &'a Reply, name: &str) -> Option<&'a str> {
    r.headers.get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn miss_then_hit_over_http() {
    let gw = start().await;
    let body = json!({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Cache me"}]});
    let miss = gw.chat(&body).await;
    assert_eq!(miss.status, 200, "{:?}", miss.body);
    assert_eq!(header(&miss, "x-openrouter-cache-status"), Some("MISS"));
    assert_eq!(header(&miss, "x-openrouter-cache-ttl"), Some("300"));
    let spent = gw.spent_today().await;
    assert!(spent > 0.0);

    let hit = gw.chat(&body).await;
    assert_eq!(hit.status, 200);
    assert_eq!(header(&hit, "x-openrouter-cache-status"), Some("HIT"));
    assert_eq!(header(&hit, "x-openrouter-cache-age"), Some("0"));
    let miss_id = miss.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        header(&hit, "x-openrouter-cache-source-id"),
        Some(miss_id.as_str())
    );
    let v = hit.json();
    assert_ne!(v["id"], miss_id.as_str());
    assert_eq!(header(&hit, "x-generation-id"), v["id"].as_str());
    assert_eq!(v["usage"]["total_tokens"], 0);
    assert_eq!(v["usage"]["cost"], 0);
    assert_eq!(v["choices"], miss.json()["choices"]);
    assert_eq!(
        header(&hit, "content-length"),
        Some(hit.body.len().to_string().as_str())
    );
    assert_eq!(gw.spent_today().await, spent, "the HIT was free");
    // The MISS is a recorded generation; the HIT is not (it cost nothing and called no one).
    let path = |id: &str| format!("/api/v1/generation?id={id}");
    let found = gw.send(Method::GET, &path(&miss_id), None, false).await;
    assert_eq!(found.status, 200);
    let id = v["id"].as_str().unwrap();
    assert_eq!(
        gw.send(Method::GET, &path(id), None, false).await.status,
        404
    );
    // Without the header: not cached.
    let plain = gw
        .send(Method::POST, "/api/v1/chat/completions", Some(&body), false)
        .await;
    assert_eq!(header(&plain, "x-openrouter-cache-status"), None);
}

#[tokio::test]
async fn streamed_hit_over_http() {
    let gw = start().await;
    let body = json!({"model": "openai/gpt-4o-mini", "stream": true,
                      "messages": [{"role": "user", "content": "Stream me"}]});
    let miss = gw.chat(&body).await;
    assert_eq!(header(&miss, "x-openrouter-cache-status"), Some("MISS"));
    let hit = gw.chat(&body).await;
    assert_eq!(header(&hit, "x-openrouter-cache-status"), Some("HIT"));
    assert_eq!(header(&hit, "content-type"), Some("text/event-stream"));
    let content = |r: &Reply| -> String {
        std::str::from_utf8(&r.body)
            .unwrap()
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .filter_map(|v| {
                v["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect()
    };
    assert!(!content(&miss).is_empty());
    assert_eq!(content(&hit), content(&miss));
    let new_id = header(&hit, "x-generation-id").unwrap();
    assert!(std::str::from_utf8(&hit.body).unwrap().contains(new_id));
}

#[test]
fn the_cache_section() {
    let parse = |s: &str| toml::from_str::<config::cache::CacheSection>(s);
    let section = parse(
        "max_bytes = 1000\ndefault_ttl_secs = 60\ncoalesce = true\nalways_for_keys = [\"ci\"]",
    )
    .unwrap();
    assert_eq!(section.max_bytes, Some(1000));
    assert!(section.layer().is_ok());
    assert!(parse("default_ttl_secs = 0").unwrap().layer().is_err());
    assert!(parse("default_ttl_secs = 86401").unwrap().layer().is_err());
    assert!(parse("max_byte = 1").is_err(), "unknown keys are refused");
    assert!(parse("enabled = false").unwrap().layer().is_ok());
}

#[tokio::test]
async fn anthropic_messages_hit_over_http() {
    let gw = start().await;
    // Anthropic's own endpoint speaks the Messages wire: the answer passes through untranslated,
    // marked in the response extensions, which a HIT must carry too.
    let body = json!({"model": "anthropic/claude-sonnet-4.5", "max_tokens": 40,
                      "provider": {"only": ["anthropic"]},
                      "messages": [{"role": "user", "content": "Cache me in Messages"}]});
    for stream in [false, true] {
        let mut body = body.clone();
        body["stream"] = json!(stream);
        let miss = gw
            .send(Method::POST, "/v1/messages", Some(&body), true)
            .await;
        assert_eq!(miss.status, 200, "{:?}", miss.body);
        assert_eq!(header(&miss, "x-openrouter-cache-status"), Some("MISS"));
        let hit = gw
            .send(Method::POST, "/v1/messages", Some(&body), true)
            .await;
        assert_eq!(header(&hit, "x-openrouter-cache-status"), Some("HIT"));
        let text = std::str::from_utf8(&hit.body).unwrap();
        let new_id = header(&hit, "x-generation-id").unwrap();
        if stream {
            assert!(text.starts_with("event: message_start"), "{text}");
            assert!(text.contains(new_id), "{text}");
            assert!(text.contains(r#""output_tokens":0"#), "{text}");
        } else {
            let v = hit.json();
            assert_eq!(v["type"], "message", "{v}");
            assert_eq!(v["id"], new_id);
            assert_eq!(v["usage"]["input_tokens"], 0, "{v}");
            assert_eq!(v["usage"]["output_tokens"], 0, "{v}");
            assert_eq!(v["content"], miss.json()["content"]);
        }
    }
}
