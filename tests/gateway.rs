//! The example gateway's router served in-process on 127.0.0.1:0 and driven by a real HTTP client
//! over loopback.

#![allow(dead_code)]

#[path = "../examples/gateway/app.rs"]
mod app;
#[path = "../examples/gateway/config.rs"]
mod config;
#[path = "../examples/shared/runtime.rs"]
mod runtime;
mod support;

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use support::{HttpClient, Reply};
use tower_ai_gateway::sim::{SimOutcome, SimulatedProvider};

struct Gateway {
    addr: SocketAddr,
    sim: SimulatedProvider,
    client: HttpClient,
}

async fn start(loopback_without_key: bool) -> Gateway {
    let mut cfg = config::demo(7, true);
    cfg.loopback_without_key = loopback_without_key;
    let sim = match &cfg.upstream {
        config::Upstream::Sim(s) => s.clone(),
        config::Upstream::Http => unreachable!(),
    };
    let (router, _state) = app::build(cfg);
    let (addr, client) = support::serve(router).await;
    Gateway { addr, sim, client }
}

impl Gateway {
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let req = req
            .header("content-type", "application/json")
            .body(Full::new(body))
            .unwrap();
        support::fetch(&self.client, req).await
    }

    async fn chat(&self, body: Value) -> Reply {
        self.send(Method::POST, "/api/v1/chat/completions", Some(body), &[])
            .await
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None, &[]).await
    }
}

fn hello(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Hello there"}]})
}

const LLAMA: &str = "meta-llama/llama-3.3-70b-instruct";

/// The example servers' runtime (`--threads N`): one thread is tokio's `current_thread` runtime,
/// on which the gateway serves answers and streams; more is the multi-threaded runtime with that
/// many workers.
#[test]
fn the_example_servers_runtime_has_the_threads_asked_for() {
    use tokio::runtime::RuntimeFlavor;
    let one = runtime::runtime(Some(1)).expect("runtime");
    assert_eq!(one.handle().runtime_flavor(), RuntimeFlavor::CurrentThread);
    one.block_on(async {
        let gw = start(true).await;
        assert_eq!(gw.chat(hello(LLAMA)).await.status, 200);
        let mut streamed = hello(LLAMA);
        streamed["stream"] = json!(true);
        let r = gw.chat(streamed).await;
        assert_eq!(r.status, 200);
        let text = String::from_utf8_lossy(&r.body);
        assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    });
    let three = runtime::runtime(Some(3)).expect("runtime");
    assert_eq!(three.handle().runtime_flavor(), RuntimeFlavor::MultiThread);
    assert_eq!(three.metrics().num_workers(), 3);
}

#[tokio::test]
async fn non_streamed_completion() {
    let gw = start(true).await;
    // The base URLs answer (Claude Code checks `HEAD {base}` first).
    for base in ["/", "/api", "/api/v1"] {
        let r = gw.send(Method::HEAD, base, None, &[]).await;
        assert_eq!(r.status, 200, "{base}");
    }
    let r = gw.chat(hello(LLAMA)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let v = r.json();
    let id = v["id"].as_str().unwrap();
    assert!(id.starts_with("gen-"), "{v}");
    assert_eq!(r.headers["x-generation-id"], id);
    // Sent whole, with its length (not chunked).
    assert_eq!(
        r.headers["content-length"],
        r.body.len().to_string().as_str()
    );
    assert!(r.headers.get("transfer-encoding").is_none());
    assert_eq!(v["model"], LLAMA);
    assert!(v["provider"].is_string(), "{v}");
    assert!(
        v.as_object().unwrap().contains_key("system_fingerprint"),
        "{v}"
    );
    assert!(v["usage"]["cost"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    assert!(!v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .is_empty());
    // Also on the OpenAI-style path.
    let r = gw
        .send(
            Method::POST,
            "/v1/chat/completions",
            Some(hello(LLAMA)),
            &[],
        )
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn streamed_completion() {
    let gw = start(true).await;
    let mut body = hello("openai/gpt-4o-mini");
    body["stream"] = json!(true);
    let r = gw.chat(body).await;
    assert_eq!(r.status, 200);
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let text = std::str::from_utf8(&r.body).unwrap();
    let events: Vec<&str> = text
        .split("\n\n")
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .collect();
    assert_eq!(*events.last().unwrap(), "[DONE]", "{text}");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(!content.is_empty());
    let usage = chunks
        .iter()
        .find(|c| c["usage"].is_object())
        .expect("a usage chunk");
    assert!(usage["usage"]["cost"].as_f64().unwrap() > 0.0, "{usage}");
    assert!(
        chunks.iter().all(|c| c["model"] == "openai/gpt-4o-mini"),
        "{text}"
    );
    let id = r.headers["x-generation-id"].to_str().unwrap();
    assert!(chunks.iter().all(|c| c["id"] == id));
}

#[tokio::test]
async fn routing_preferences_are_honoured() {
    let gw = start(true).await;
    let cases = [
        (
            json!({"order": ["groq"], "allow_fallbacks": false}),
            LLAMA,
            "Groq",
        ),
        (json!({"only": ["together"]}), LLAMA, "Together"),
        (
            json!({"data_collection": "deny"}),
            "mistralai/mistral-small-3.1-24b-instruct",
            "DeepInfra",
        ),
        (json!({"zdr": true}), "openai/gpt-4o-mini", "Azure"),
        (
            json!({"max_price": {"prompt": 0.3, "completion": 1.2}}),
            "deepseek/deepseek-chat",
            "DeepSeek",
        ),
        (json!({"quantizations": ["bf16"]}), LLAMA, "Groq"),
        (json!({"sort": "price"}), "qwen/qwen3-coder", "DeepInfra"),
    ];
    for (prefs, model, provider) in cases {
        let mut body = hello(model);
        body["provider"] = prefs.clone();
        let r = gw.chat(body).await;
        assert_eq!(r.status, 200, "{prefs} {:?}", r.body);
        assert_eq!(r.json()["provider"], provider, "{prefs}");
    }
    // A price cap that leaves nothing: 404 with availability.
    let mut body = hello("anthropic/claude-sonnet-4.5");
    body["provider"] = json!({"max_price": {"prompt": 1}});
    let r = gw.chat(body).await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json()["error"]["availability"]["excluded_by"],
        json!(["max_price"])
    );
    // Fallback models: the first is unknown to nobody but filtered out by ZDR, the second serves.
    let body = json!({"models": ["meta-llama/llama-3.3-70b-instruct:free", "openai/gpt-4o-mini"],
        "messages": [{"role": "user", "content": "hi"}], "provider": {"zdr": true}});
    let r = gw.chat(body).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.json()["model"], "openai/gpt-4o-mini");
}

#[tokio::test]
async fn failover_when_a_provider_fails() {
    let gw = start(true).await;
    let h = gw
        .sim
        .model_handle("deepinfra.sim", "meta-llama/llama-3.3-70b-instruct@turbo")
        .unwrap();
    h.push_script([SimOutcome::Status(503)]);
    let mut body = hello(LLAMA);
    body["provider"] = json!({"order": ["deepinfra/turbo", "groq"]});
    let r = gw.chat(body).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let v = r.json();
    assert_eq!(v["provider"], "Groq");
    // The generation record lists both attempts.
    let g = gw
        .get(&format!(
            "/api/v1/generation?id={}",
            v["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(g.status, 200, "{:?}", g.body);
    let g = g.json();
    assert_eq!(g["data"]["provider_name"], "Groq");
    // Everything fails: the caller gets the last provider's failure in OpenRouter's envelope.
    h.push_script([SimOutcome::Status(503)]);
    gw.sim
        .model_handle("groq.sim", LLAMA)
        .unwrap()
        .push_script([SimOutcome::Status(502)]);
    let mut body = hello(LLAMA);
    body["provider"] = json!({"order": ["deepinfra/turbo", "groq"], "allow_fallbacks": false});
    let r = gw.chat(body).await;
    assert!(r.status.is_server_error(), "{}", r.status);
    let v = r.json();
    assert!(v["error"]["metadata"]["provider_name"].is_string(), "{v}");
    assert!(
        !std::str::from_utf8(&r.body).unwrap().contains("sk-sim-"),
        "provider keys never leak"
    );
}

/// Every route that spends or reads a key's data refuses a request without a key (or with a wrong
/// one) before it reads anything else; the catalog and the banner stay open. (Authentication is
/// the handlers' `Authed` extractor: a route that forgot it fails here.)
#[tokio::test]
async fn every_keyed_route_needs_a_key() {
    let gw = start(false).await;
    let keyed = [
        (Method::POST, "/api/v1/chat/completions"),
        (Method::POST, "/v1/chat/completions"),
        (Method::POST, "/api/v1/responses"),
        (Method::POST, "/v1/responses"),
        (Method::POST, "/api/v1/embeddings"),
        (Method::POST, "/v1/embeddings"),
        (Method::POST, "/api/v1/completions"),
        (Method::POST, "/v1/completions"),
        (Method::POST, "/api/v1/messages"),
        (Method::POST, "/v1/messages"),
        (Method::POST, "/api/v1/messages/count_tokens"),
        (Method::POST, "/v1/messages/count_tokens"),
        (Method::GET, "/api/v1/generation?id=gen-1"),
        (Method::GET, "/api/v1/generation?bad=query"),
        (Method::GET, "/api/v1/key"),
        (Method::GET, "/api/v1/credits"),
    ];
    for (method, path) in keyed {
        let body = (method == Method::POST).then(|| hello(LLAMA));
        for headers in [&[][..], &[("authorization", "Bearer sk-wrong-key-123")][..]] {
            let r = gw.send(method.clone(), path, body.clone(), headers).await;
            assert_eq!(r.status, 401, "{method} {path} {headers:?}: {:?}", r.body);
        }
    }
    for path in ["/api/v1/models", "/v1/models", "/api/v1"] {
        let r = gw.send(Method::GET, path, None, &[]).await;
        assert_eq!(r.status, 200, "{path}");
    }
}

#[tokio::test]
async fn budgets_and_auth() {
    let gw = start(false).await;
    // No key from loopback when loopback access is off: 401.
    let r = gw.chat(hello(LLAMA)).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["code"], 401);
    // A wrong key: 401.
    let r = gw
        .send(
            Method::POST,
            "/api/v1/chat/completions",
            Some(hello(LLAMA)),
            &[("authorization", "Bearer sk-wrong-key-123")],
        )
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json()["error"]["metadata"]["error_type"],
        "authentication"
    );
    // The demo key works, with Bearer or x-api-key…
    let r = gw
        .send(
            Method::POST,
            "/api/v1/chat/completions",
            Some(hello(LLAMA)),
            &[("authorization", &format!("Bearer {}", config::DEMO_KEY))],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = gw
        .send(
            Method::POST,
            "/api/v1/chat/completions",
            Some(hello(LLAMA)),
            &[("x-api-key", config::DEMO_KEY)],
        )
        .await;
    assert_eq!(r.status, 200);
    // …until a request could cost more than what is left: 402.
    let mut big = hello("anthropic/claude-sonnet-4.5");
    big["max_tokens"] = json!(50_000);
    let r = gw
        .send(
            Method::POST,
            "/api/v1/chat/completions",
            Some(big),
            &[("x-api-key", config::DEMO_KEY)],
        )
        .await;
    assert_eq!(r.status, 402, "{:?}", r.body);
    assert_eq!(
        r.json()["error"]["metadata"]["error_type"],
        "payment_required"
    );
    // /key reports the key's limit and usage.
    let k = gw
        .send(
            Method::GET,
            "/api/v1/key",
            None,
            &[("x-api-key", config::DEMO_KEY)],
        )
        .await;
    assert_eq!(k.status, 200);
    let k = k.json();
    assert_eq!(k["data"]["limit"].as_f64(), Some(0.1));
    assert!(k["data"]["usage"].as_f64().unwrap() > 0.0, "{k}");
}

#[tokio::test]
async fn malformed_bodies_are_400() {
    let gw = start(true).await;
    for body in [&b"{"[..], b"[]", b"{\"model\": 5}", b"{\"messages\": []}"] {
        let req = Request::post(format!("http://{}/api/v1/chat/completions", gw.addr))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(body)))
            .unwrap();
        let res = gw.client.request(req).await.unwrap();
        assert_eq!(res.status(), 400);
        let v: Value =
            serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
        assert_eq!(v["error"]["code"], 400);
    }
    let r = gw.chat(hello("acme/unknown")).await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn models_and_endpoints() {
    let gw = start(true).await;
    let r = gw.get("/api/v1/models").await;
    let v = r.json();
    assert_eq!(v["total_count"], 8);
    assert_eq!(v["data"].as_array().unwrap().len(), 8);
    assert!(v["links"]["next"].is_null());
    let r = gw.get("/api/v1/models?offset=2&limit=3").await;
    let v = r.json();
    assert_eq!(v["data"].as_array().unwrap().len(), 3);
    assert_eq!(v["links"]["next"], "/api/v1/models?offset=5&limit=3");

    // Traffic to one endpoint shows up in /endpoints.
    for _ in 0..12 {
        let mut body = hello(LLAMA);
        body["provider"] = json!({"only": ["groq"]});
        assert_eq!(gw.chat(body).await.status, 200);
    }
    let r = gw
        .get("/api/v1/models/meta-llama/llama-3.3-70b-instruct/endpoints")
        .await;
    assert_eq!(r.status, 200);
    let v = r.json();
    let eps = v["data"]["endpoints"].as_array().unwrap();
    assert_eq!(eps.len(), 5);
    let groq = eps.iter().find(|e| e["tag"] == "groq").unwrap();
    // The simulated providers answer at once: the live p50 replaces the catalog's 180 ms.
    let p50 = groq["latency_last_30m"]["p50"].as_f64().unwrap();
    assert!(p50 < 100.0, "{groq}");
    assert!(groq["uptime_last_5m"].as_f64().unwrap() > 99.0, "{groq}");
    let r = gw.get("/api/v1/models/acme/nothing/endpoints").await;
    assert_eq!(r.status, 404);
    // Metrics mention the traffic.
    let m = gw.get("/metrics").await;
    let text = std::str::from_utf8(&m.body).unwrap();
    assert!(
        text.contains(
            "gateway_requests_total{route=\"/api/v1/chat/completions\",status=\"200\"} 12"
        ),
        "{text}"
    );
    assert!(
        text.contains("gen_ai_client_token_usage_count{gen_ai_operation_name=\"chat\",gen_ai_provider_name=\"groq\",gen_ai_response_model=\"meta-llama/llama-3.3-70b-instruct\",gen_ai_token_type=\"input\"}"),
        "{text}"
    );
    assert!(
        text.contains("gateway_attempts_total{gen_ai_provider_name=\"groq\",outcome=\"ok\"} 12"),
        "{text}"
    );
}

#[tokio::test]
async fn generation_lookup() {
    let gw = start(true).await;
    let r = gw.chat(hello("google/gemini-2.5-flash")).await;
    let v = r.json();
    let id = v["id"].as_str().unwrap();
    let g = gw.get(&format!("/api/v1/generation?id={id}")).await;
    assert_eq!(g.status, 200);
    let g = g.json();
    assert_eq!(g["data"]["id"], id);
    assert_eq!(g["data"]["model"], "google/gemini-2.5-flash");
    assert_eq!(g["data"]["tokens_prompt"], v["usage"]["prompt_tokens"]);
    assert_eq!(g["data"]["total_cost"], v["usage"]["cost"]);
    let g = gw.get("/api/v1/generation?id=gen-nope").await;
    assert_eq!(g.status, 404);
}

/// The demo's `anthropic` provider speaks the Anthropic Messages wire: chat completions and
/// Messages requests routed to it are translated on the way out and back.
#[tokio::test]
async fn anthropic_wire_provider_end_to_end() {
    let gw = start(true).await;
    // Chat completions → Anthropic-wire provider, JSON and streamed.
    let mut body = hello("anthropic/claude-sonnet-4.5");
    body["provider"] = json!({"only": ["anthropic"]});
    let r = gw.chat(body.clone()).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let v = r.json();
    assert_eq!(v["provider"], "Anthropic");
    assert_eq!(v["object"], "chat.completion");
    assert!(!v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .is_empty());
    assert!(v["usage"]["cost"].as_f64().unwrap() > 0.0, "{v}");
    let last = gw
        .sim
        .model_handle("anthropic.sim", "anthropic/claude-sonnet-4.5")
        .unwrap()
        .last_request();
    if let Some(last) = last {
        assert!(last.uri.to_string().ends_with("/messages"), "{}", last.uri);
    }
    body["stream"] = json!(true);
    let r = gw.chat(body).await;
    assert_eq!(r.status, 200);
    let text = std::str::from_utf8(&r.body).unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    assert!(text.contains("\"cost\""), "{text}");
    // Messages → Anthropic-wire provider.
    let m = json!({"model": "anthropic/claude-sonnet-4.5", "max_tokens": 256,
        "messages": [{"role": "user", "content": "Hello"}], "provider": {"only": ["anthropic"]}});
    let r = gw.send(Method::POST, "/v1/messages", Some(m), &[]).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let v = r.json();
    assert_eq!(v["type"], "message");
    assert_eq!(v["content"][0]["type"], "text");
    assert!(v["usage"]["output_tokens"].as_u64().unwrap() > 0);
}

/// Issue 17 item 15: `/api/v1/models` applies its documented query filters, and every bad query
/// is the JSON error envelope (it was axum's text/plain rejection).
#[tokio::test]
async fn item15_models_filters_and_json_errors() {
    let gw = start(true).await;
    let ids = |r: &Reply| -> Vec<String> {
        r.json()["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect()
    };
    let all = gw.get("/api/v1/models").await;
    let n = ids(&all).len();

    let r = gw.get("/api/v1/models?q=LLAMA").await;
    let found = ids(&r);
    assert!(!found.is_empty() && found.len() < n, "{found:?}");
    assert!(found.iter().all(|id| id.contains("llama")), "{found:?}");
    assert_eq!(r.json()["total_count"], found.len());

    let r = gw
        .get("/api/v1/models?supported_parameters=tools,temperature")
        .await;
    for m in r.json()["data"].as_array().unwrap() {
        let params = m["supported_parameters"].as_array().unwrap();
        assert!(params.contains(&json!("tools")) && params.contains(&json!("temperature")));
    }
    assert!(
        ids(&r).len() < n,
        "the filter must filter something in the demo catalog"
    );

    let r = gw.get("/api/v1/models?sort=pricing-low-to-high").await;
    let prices: Vec<f64> = r.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["pricing"]["prompt"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(prices.windows(2).all(|w| w[0] <= w[1]), "{prices:?}");

    for bad in [
        "/api/v1/models?offset=abc",
        "/api/v1/models?limit=-1",
        "/api/v1/models?category=programming",
        "/api/v1/models?sort=most-popular",
        "/api/v1/generation?id=a&id=b",
    ] {
        let r = gw.get(bad).await;
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(r.headers["content-type"], "application/json", "{bad}");
        assert_eq!(r.json()["error"]["code"], 400, "{bad}");
    }
    let r = gw.send(Method::DELETE, "/api/v1/models", None, &[]).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.json()["error"]["code"], 405);
}
