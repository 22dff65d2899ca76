//! The example gateway over loopback: the legacy `/api/v1/completions` (a `prompt`, routed by the
//! same layers, metered, answered by the simulator on its `/completions` path, JSON and SSE) and
//! presets (`@preset/NAME`, `preset`, `MODEL@preset/NAME`: merged into the request, the request
//! winning; unknown 404, malformed 400; `preset_id` in the generation record).

#![allow(dead_code)]

#[path = "../examples/gateway/app.rs"]
mod app;
#[path = "../examples/gateway/config.rs"]
mod config;
mod support;

use std::net::SocketAddr;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde_json::{json, Value};
use support::{HttpClient, Reply};
use tower_ai_gateway::catalog::Catalog;
use tower_ai_gateway::sim::{SimOutcome, SimulatedProvider};

const MINI: &str = "openai/gpt-4o-mini";

struct Gateway {
    addr: SocketAddr,
    client: HttpClient,
    sim: SimulatedProvider,
    catalog: Catalog,
}

async fn start() -> Gateway {
    let cfg = config::demo_recording(16, true, true);
    let config::Upstream::Sim(sim) = &cfg.upstream else {
        unreachable!("the demo is simulated")
    };
    let (sim, catalog) = (sim.clone(), cfg.catalog.clone());
    let (router, _state) = app::build(cfg);
    let (addr, client) = support::serve(router).await;
    Gateway {
        addr,
        client,
        sim,
        catalog,
    }
}

impl Gateway {
    async fn post(&self, path: &str, body: &Value) -> Reply {
        self.post_raw(path, &body.to_string()).await
    }

    async fn post_raw(&self, path: &str, body: &str) -> Reply {
        let req = Request::post(format!("http://{}{path}", self.addr))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        support::fetch(&self.client, req).await
    }

    async fn generation(&self, r: &Reply) -> Value {
        let id = r.headers["x-generation-id"].to_str().unwrap();
        let req = Request::get(format!("http://{}/api/v1/generation?id={id}", self.addr))
            .body(Full::new(Bytes::new()))
            .unwrap();
        support::fetch(&self.client, req).await.json()["data"].clone()
    }

    /// The body and path of the last request the simulator got for `model` (from any of its
    /// endpoints), when exactly one endpoint got any.
    fn upstream(&self, model: &str) -> (String, Value) {
        let seen: Vec<_> = self
            .catalog
            .endpoints(model)
            .iter()
            .filter_map(|e| {
                let host = format!("{}.sim", e.provider_slug());
                self.sim
                    .model_handle(&host, e.upstream_model())?
                    .last_request()
            })
            .collect();
        assert_eq!(seen.len(), 1, "one endpoint of {model} was called");
        (seen[0].uri.path().to_owned(), seen[0].json().unwrap())
    }
}

/// The SSE `data:` payloads of a stream, `[DONE]` included.
fn events(body: &[u8]) -> Vec<String> {
    std::str::from_utf8(body)
        .unwrap()
        .split("\n\n")
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(str::to_owned)
        .collect()
}

/// The endpoint's price per token of `model` at provider `slug`: (prompt, completion).
fn price(gw: &Gateway, model: &str, slug: &str) -> (f64, f64) {
    let e = gw
        .catalog
        .endpoints(model)
        .iter()
        .find(|e| e.provider_slug() == slug)
        .unwrap()
        .clone();
    (e.pricing.prompt.to_f64(), e.pricing.completion.to_f64())
}

// === Legacy completions ===

#[tokio::test]
async fn completions_json_is_routed_metered_and_sent_to_completions() {
    let gw = start().await;
    let body = json!({"model": MINI, "prompt": "Once upon a time", "max_tokens": 12,
        "provider": {"only": ["azure"]}});
    let r = gw.post("/api/v1/completions", &body).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let v = r.json();
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["model"], MINI);
    assert_eq!(v["provider"], "Azure");
    let text = v["choices"][0]["text"].as_str().unwrap();
    assert!(!text.is_empty(), "{v}");
    assert!(v["choices"][0].get("message").is_none());
    let (path, sent) = gw.upstream(MINI);
    assert_eq!(path, "/v1/completions");
    assert_eq!(sent["prompt"], "Once upon a time");
    assert!(
        sent.get("provider").is_none(),
        "gateway-only members stripped"
    );
    // Metered at the serving endpoint's prices, and recorded.
    let u = &v["usage"];
    let (p, c) = price(&gw, MINI, "azure");
    let (pt, ct) = (
        u["prompt_tokens"].as_u64().unwrap(),
        u["completion_tokens"].as_u64().unwrap(),
    );
    assert_eq!(pt, 4, "16 prompt bytes → 4 tokens: {u}");
    assert!(ct > 0 && ct <= 12, "{u}");
    let cost = u["cost"].as_f64().unwrap();
    assert!(
        (cost - (pt as f64 * p + ct as f64 * c)).abs() < 1e-12,
        "{u}"
    );
    let g = gw.generation(&r).await;
    assert_eq!(g["total_cost"], u["cost"], "{g}");
    assert_eq!(g["tokens_prompt"], pt);
    assert_eq!(g["tokens_completion"], ct);
    assert_eq!(g["provider_name"], "Azure");
    // The /v1 alias serves it too.
    let r = gw.post("/v1/completions", &body).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["object"], "text_completion");
}

#[tokio::test]
async fn completions_stream_has_text_chunks_usage_and_done() {
    let gw = start().await;
    let body = json!({"model": MINI, "prompt": ["Roses are red,", "violets"], "stream": true,
        "max_tokens": 8, "provider": {"only": ["openai"]}});
    let r = gw.post("/api/v1/completions", &body).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.headers["content-type"], "text/event-stream");
    let ev = events(&r.body);
    assert_eq!(ev.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = ev[..ev.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"].get(0)?["text"].as_str().map(str::to_owned))
        .collect();
    assert!(!text.is_empty());
    for c in &chunks {
        assert_eq!(c["object"], "text_completion", "{c}");
        assert!(
            c["choices"]
                .get(0)
                .is_none_or(|ch| ch.get("delta").is_none()),
            "{c}"
        );
    }
    let last = chunks.last().unwrap();
    let u = &last["usage"];
    // 14 + 7 prompt bytes → 6 tokens.
    assert_eq!(u["prompt_tokens"], 6, "{last}");
    let (p, c) = price(&gw, MINI, "openai");
    let ct = u["completion_tokens"].as_u64().unwrap();
    let cost = u["cost"].as_f64().unwrap();
    assert!((cost - (6.0 * p + ct as f64 * c)).abs() < 1e-12, "{u}");
    assert_eq!(last["provider"], "OpenAI");
    let (path, sent) = gw.upstream(MINI);
    assert_eq!(path, "/v1/completions");
    assert_eq!(sent["stream"], true);
    let g = gw.generation(&r).await;
    assert_eq!(g["streamed"], true, "{g}");
    assert_eq!(g["total_cost"], u["cost"], "{g}");
}

#[tokio::test]
async fn completions_without_usage_are_estimated_from_prompt_and_text() {
    let gw = start().await;
    let e = gw
        .catalog
        .endpoints(MINI)
        .iter()
        .find(|e| e.provider_slug() == "azure")
        .unwrap()
        .clone();
    // A stream that ends after some text, without usage.
    gw.sim
        .model_handle("azure.sim", e.upstream_model())
        .unwrap()
        .push_script([SimOutcome::Truncated]);
    let body = json!({"model": MINI, "prompt": "Once upon a time", "stream": true,
        "max_tokens": 40, "provider": {"only": ["azure"]}});
    let r = gw.post("/api/v1/completions", &body).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let text: usize = events(&r.body)
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|c| c["choices"].get(0)?["text"].as_str().map(str::len))
        .sum();
    assert!(text > 0, "some text came before the cut");
    let g = gw.generation(&r).await;
    assert_eq!(g["usage_missing"], true, "{g}");
    // The prompt from its bytes (`"Once upon a time"`, quotes included: 18 → 5 tokens), the
    // completion from the text's bytes (a quarter, rounded up).
    assert_eq!(g["tokens_prompt"], 5, "{g}");
    assert_eq!(g["tokens_completion"], text.div_ceil(4) as u64, "{g}");
    // The gateway ended the cut stream with an error: insured, so free
    // (<https://openrouter.ai/docs/guides/features/zero-completion-insurance>).
    assert_eq!(g["finish_reason"], "error", "{g}");
    assert_eq!(g["total_cost"], 0, "{g}");
}

#[tokio::test]
async fn completions_errors_and_routing_limits() {
    let gw = start().await;
    // No prompt: a 400 naming it, before any upstream.
    let r = gw
        .post(
            "/api/v1/completions",
            &json!({"model": MINI, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    let e = r.json();
    assert_eq!(e["error"]["code"], 400);
    assert_eq!(e["error"]["metadata"]["field"], "prompt", "{e}");
    for bad in [json!(5), json!([1, 2]), json!({"a": "b"})] {
        let r = gw
            .post(
                "/api/v1/completions",
                &json!({"model": MINI, "prompt": bad}),
            )
            .await;
        assert_eq!(r.status, 400, "{bad}: {:?}", r.body);
        assert_eq!(r.json()["error"]["metadata"]["field"], "prompt");
    }
    assert_eq!(gw.sim.total_stats().requests, 0, "nothing went upstream");
    // The price cap applies: no endpoint of the model under $0.01 per million prompt tokens.
    let r = gw
        .post(
            "/api/v1/completions",
            &json!({"model": MINI, "prompt": "x", "provider": {"max_price": {"prompt": 0.01}}}),
        )
        .await;
    assert!(r.status.is_client_error(), "{:?}", r.body);
    assert_eq!(gw.sim.total_stats().requests, 0);
    // Fallback models: the first has no endpoint at the only provider allowed, the second serves.
    let r = gw
        .post(
            "/api/v1/completions",
            &json!({"models": [MINI, "deepseek/deepseek-chat"], "prompt": "x",
                    "provider": {"only": ["deepseek"]}}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.json()["model"], "deepseek/deepseek-chat");
}

// === Presets ===

#[tokio::test]
async fn model_reference_applies_the_whole_preset() {
    let gw = start().await;
    let r = gw
        .post(
            "/api/v1/chat/completions",
            &json!({"model": "@preset/support",
                    "messages": [{"role": "user", "content": "My order is late"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let v = r.json();
    assert_eq!(v["model"], MINI);
    let (path, sent) = gw.upstream(MINI);
    assert_eq!(path, "/v1/chat/completions");
    assert_eq!(sent["temperature"], 0.2, "{sent}");
    assert_eq!(sent["max_tokens"], 200);
    assert_eq!(sent["messages"][0]["role"], "system");
    assert_eq!(
        sent["messages"][0]["content"],
        "You are a support agent. Answer in two sentences."
    );
    assert_eq!(sent["messages"][1]["content"], "My order is late");
    assert!(sent.get("preset").is_none() && sent.get("provider").is_none());
    let g = gw.generation(&r).await;
    assert_eq!(g["preset_id"], "support", "{g}");
}

#[tokio::test]
async fn request_fields_win_over_the_preset() {
    let gw = start().await;
    // `preset` beside an explicit model: the model, temperature and provider sent win; the
    // preset's max_tokens and system prompt fill in.
    let r = gw
        .post(
            "/api/v1/chat/completions",
            &json!({"model": "deepseek/deepseek-chat", "preset": "support", "temperature": 1.1,
                    "provider": {"only": ["deepseek"]},
                    "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.json()["model"], "deepseek/deepseek-chat");
    let (_, sent) = gw.upstream("deepseek/deepseek-chat");
    assert_eq!(sent["temperature"], 1.1);
    assert_eq!(sent["max_tokens"], 200);
    assert_eq!(sent["messages"][0]["role"], "system");
    // Combined form: the model before `@preset/`, the preset's `models` as fallbacks, its
    // `top_p`, and its provider preferences (no data-collecting provider).
    let r = gw
        .post(
            "/api/v1/chat/completions",
            &json!({"model": "qwen/qwen3-coder@preset/open-weights",
                    "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.json()["model"], "qwen/qwen3-coder");
    let (_, sent) = gw.upstream("qwen/qwen3-coder");
    assert_eq!(sent["top_p"], 0.9);
    assert_eq!(gw.generation(&r).await["preset_id"], "open-weights");
}

/// A preset is found however the body spells it: an escaped `preset` key, or `@preset/` with an
/// escape in the model, are the same JSON as the plain ones.
#[tokio::test]
async fn escaped_preset_names_are_presets_too() {
    let gw = start().await;
    for body in [
        r#"{"model":"@pre\u0073et/support","messages":[{"role":"user","content":"hi"}]}"#,
        r#"{"model":"deepseek/deepseek-chat","pre\u0073et":"support","messages":[{"role":"user","content":"hi"}]}"#,
    ] {
        let r = gw.post_raw("/api/v1/chat/completions", body).await;
        assert_eq!(r.status, 200, "{body}: {:?}", r.body);
        assert_eq!(gw.generation(&r).await["preset_id"], "support", "{body}");
    }
}

#[tokio::test]
async fn unknown_and_malformed_presets() {
    let gw = start().await;
    let user = json!([{"role": "user", "content": "hi"}]);
    let r = gw
        .post(
            "/api/v1/chat/completions",
            &json!({"model": "@preset/nope", "messages": user}),
        )
        .await;
    assert_eq!(r.status, 404, "{:?}", r.body);
    let e = r.json();
    assert_eq!(e["error"]["code"], 404);
    assert_eq!(e["error"]["metadata"]["preset"], "nope", "{e}");
    for bad in [
        json!({"model": MINI, "preset": 7, "messages": user}),
        json!({"model": "@preset/", "messages": user}),
        json!({"model": "@preset/support", "preset": "open-weights", "messages": user}),
    ] {
        let r = gw.post("/api/v1/chat/completions", &bad).await;
        assert_eq!(r.status, 400, "{bad}: {:?}", r.body);
    }
    assert_eq!(gw.sim.total_stats().requests, 0, "nothing went upstream");
}

#[tokio::test]
async fn presets_serve_completions_and_responses() {
    let gw = start().await;
    // A legacy completion: the preset's model and parameters, no system message.
    let r = gw
        .post(
            "/api/v1/completions",
            &json!({"model": "@preset/support", "prompt": "Dear customer,"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.json()["object"], "text_completion");
    let (path, sent) = gw.upstream(MINI);
    assert_eq!(path, "/v1/completions");
    assert_eq!(sent["temperature"], 0.2);
    assert!(sent.get("messages").is_none());
    // The Responses API shares the `model` field: the preset applies behind its translation.
    let gw = start().await;
    let r = gw
        .post(
            "/api/v1/responses",
            &json!({"model": "@preset/support", "input": "Where is my parcel?"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.json()["model"], MINI);
    let (_, sent) = gw.upstream(MINI);
    assert_eq!(sent["max_tokens"], 200, "{sent}");
    assert_eq!(sent["messages"][0]["role"], "system");
}
