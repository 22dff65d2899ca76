//! `openrouter_metadata` (opt-in with `X-OpenRouter-Metadata: enabled`): in JSON answers, in the
//! usage chunk of streams, next to `error` in a failed request's answer, built from the same
//! attempt records as the generation record; absent without the header.

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use tower::{ServiceBuilder, ServiceExt};
use tower_ai_gateway::cache::ResponseCacheLayer;
use tower_ai_gateway::catalog::{Catalog, Credentials, Endpoint, Model, Provider, Usd};
use tower_ai_gateway::fallback::ProviderFallbackLayer;
use tower_ai_gateway::model_routing::ModelRoutingLayer;
use tower_ai_gateway::sim::{SimOutcome, SimProfile, SimulatedProvider};
use tower_ai_gateway::usage_meter::{CallerKey, GenerationStore, UsageMeterLayer};

const MODEL: &str = "acme/chat";
const OTHER: &str = "acme/other";

fn catalog() -> Catalog {
    let mut b = Catalog::builder()
        .model(Model::new(MODEL, "Acme Chat"))
        .model(Model::new(OTHER, "Acme Other"))
        .alias("acme-default", MODEL);
    for slug in ["alpha", "beta", "gamma"] {
        b = b.provider(
            Provider::new(slug, slug.to_uppercase())
                .base_url(format!("http://{slug}.sim/v1"))
                .credentials(Credentials::key(format!("sk-{slug}"))),
        );
        for model in [MODEL, OTHER] {
            let mut e = Endpoint::new(model, slug);
            e.provider_model_id = Some(format!("{slug}-native"));
            e.pricing.prompt = Usd::from_micros(1);
            e.pricing.completion = Usd::from_micros(2);
            b = b.endpoint(e);
        }
    }
    b.build().unwrap()
}

/// alpha fails with `alpha` (one scripted outcome), beta with `beta`, gamma serves.
fn sim(alpha: SimOutcome, beta: SimOutcome) -> SimulatedProvider {
    SimulatedProvider::builder(3)
        .host(
            "http://alpha.sim/v1",
            SimProfile::instant().with_script([alpha]),
        )
        .host(
            "http://beta.sim/v1",
            SimProfile::instant().with_script([beta]),
        )
        .host("http://gamma.sim/v1", SimProfile::instant())
        .build()
}

fn request(body: &str, header: Option<(&str, &str)>) -> Request<Full<Bytes>> {
    let mut b = Request::post("/v1/chat/completions");
    if let Some((k, v)) = header {
        b = b.header(k, v);
    }
    let mut req = b.body(Full::new(Bytes::from(body.to_owned()))).unwrap();
    req.extensions_mut().insert(CallerKey::new("team"));
    req
}

/// A chat body for `model` tried in the order alpha, beta (gamma ignored unless `gamma`).
fn body(model_members: &str, stream: bool, gamma: bool) -> String {
    let ignore = if gamma { "[]" } else { r#"["gamma"]"# };
    format!(
        r#"{{{model_members},"messages":[{{"role":"user","content":"hello"}}],"stream":{stream},"max_tokens":8,"provider":{{"order":["alpha","beta","gamma"],"ignore":{ignore}}}}}"#
    )
}

async fn call(sim: SimulatedProvider, req: Request<Full<Bytes>>) -> (u16, String, GenerationStore) {
    let store = GenerationStore::new(10);
    let svc = ServiceBuilder::new()
        .layer(ModelRoutingLayer::new(catalog()).seed(1))
        .layer(UsageMeterLayer::new().sink(store.clone()))
        .layer(ProviderFallbackLayer::new().no_budget())
        .service(sim);
    let res = svc.oneshot(req).await.unwrap();
    let status = res.status().as_u16();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap(), store)
}

fn model(m: &str) -> String {
    format!(r#""model":"{m}""#)
}

#[tokio::test(start_paused = true)]
async fn a_json_answer_after_a_fallback_carries_the_routing_and_both_attempts() {
    let req = request(
        &body(&model(MODEL), false, false),
        Some(("x-openrouter-metadata", "enabled")),
    );
    let (status, text, store) = call(sim(SimOutcome::Status(503), SimOutcome::Ok), req).await;
    assert_eq!(status, 200, "{text}");
    let json: Value = serde_json::from_str(&text).unwrap();
    let m = &json["openrouter_metadata"];
    assert_eq!(m["requested"], MODEL);
    assert_eq!(m["strategy"], "direct");
    assert_eq!(m["region"], Value::Null);
    assert_eq!(m["is_byok"], false);
    assert_eq!(m["attempt"], 2, "{m}");
    // gamma was removed by `provider.ignore`, and the metadata says so.
    assert_eq!(m["endpoints"]["total"], 3);
    let available = m["endpoints"]["available"].as_array().unwrap();
    let names: Vec<(&str, bool)> = available
        .iter()
        .map(|e| (e["provider"].as_str().unwrap(), e["selected"] == true))
        .collect();
    assert_eq!(names, [("ALPHA", false), ("BETA", true)]);
    assert_eq!(available[1]["model"], MODEL);
    assert_eq!(m["endpoints"]["excluded"][0]["provider"], "GAMMA");
    assert_eq!(m["endpoints"]["excluded"][0]["reason"], "allowed_providers");
    assert_eq!(
        m["summary"],
        "available=2, excluded=1 (allowed_providers), attempts=2, selected=BETA"
    );
    assert!(m["generation_time"].is_u64(), "{m}");

    // One source of truth: the attempts are the generation record's `provider_responses`.
    let id = json["id"].as_str().unwrap();
    let rec = store.get(id).unwrap().to_openrouter_json();
    let pr = rec["provider_responses"].as_array().unwrap();
    let attempts = m["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), pr.len());
    for (a, p) in attempts.iter().zip(pr) {
        assert_eq!(a["provider"], p["provider_name"]);
        assert_eq!(a["status"], p["status"]);
        assert_eq!(a["outcome"], p["error_class"]);
    }
    assert_eq!(attempts[0]["status"], 503);
    assert_eq!(attempts[1]["status"], 200);
    // The rest of the answer is untouched: it ends with the metadata member.
    assert!(text.trim_end().ends_with("}}"), "{text}");
    assert_eq!(json["provider"], "BETA");
}

#[tokio::test(start_paused = true)]
async fn without_the_header_or_with_another_value_there_is_none() {
    for header in [
        None,
        Some(("x-openrouter-metadata", "disabled")),
        Some(("x-openrouter-metadata", "yes")),
        Some(("x-openrouter-metadata", "")),
    ] {
        let req = request(&body(&model(MODEL), false, false), header);
        let (status, text, _) = call(sim(SimOutcome::Ok, SimOutcome::Ok), req).await;
        assert_eq!(status, 200);
        assert!(!text.contains("openrouter_metadata"), "{header:?}: {text}");
    }
    // The legacy header, in any case, opts in.
    let req = request(
        &body(&model(MODEL), false, false),
        Some(("x-openrouter-experimental-metadata", "ENABLED")),
    );
    let (_, text, _) = call(sim(SimOutcome::Ok, SimOutcome::Ok), req).await;
    let json: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["openrouter_metadata"]["attempt"], 1);
}

#[tokio::test(start_paused = true)]
async fn a_stream_carries_it_in_the_usage_chunk_only() {
    let req = request(
        &body(&model(MODEL), true, false),
        Some(("x-openrouter-metadata", "Enabled")),
    );
    let (status, text, _) = call(sim(SimOutcome::Status(429), SimOutcome::Ok), req).await;
    assert_eq!(status, 200);
    let events: Vec<&str> = text
        .split("\n\n")
        .filter_map(|e| e.trim().strip_prefix("data: "))
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"), "{text}");
    let with: Vec<Value> = events
        .iter()
        .filter(|e| e.contains("openrouter_metadata"))
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert_eq!(with.len(), 1, "{text}");
    let chunk = &with[0];
    assert!(
        chunk["usage"]["cost"].is_number(),
        "the usage chunk: {chunk}"
    );
    let m = &chunk["openrouter_metadata"];
    assert_eq!(m["attempt"], 2);
    assert_eq!(m["attempts"][0]["status"], 429);
    assert_eq!(m["attempts"][0]["outcome"], "rate_limited");
}

#[tokio::test(start_paused = true)]
async fn a_request_no_provider_served_has_it_next_to_the_error() {
    let req = request(
        &body(&model(MODEL), false, false),
        Some(("x-openrouter-metadata", "enabled")),
    );
    let (status, text, _) = call(sim(SimOutcome::Status(503), SimOutcome::Status(502)), req).await;
    assert!(status > 500, "{status} {text}");
    let json: Value = serde_json::from_str(&text).unwrap();
    assert!(json["error"]["message"].is_string(), "{json}");
    let m = &json["openrouter_metadata"];
    assert_eq!(m["attempt"], 0, "{json}");
    assert_eq!(m["attempts"].as_array().unwrap().len(), 2);
    assert!(m["endpoints"]["available"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["selected"] == false));
    assert!(m.get("generation_time").is_none());
    assert!(m["summary"].as_str().unwrap().ends_with("selected=none"));
}

#[tokio::test(start_paused = true)]
async fn the_strategy_follows_the_model_fields() {
    let cases = [
        (model(MODEL), "direct"),
        (format!(r#""models":["{MODEL}","{OTHER}"]"#), "fallback"),
        (model("acme-default"), "alias"),
    ];
    for (members, strategy) in cases {
        let req = request(
            &body(&members, false, true),
            Some(("x-openrouter-metadata", "enabled")),
        );
        let (status, text, _) = call(sim(SimOutcome::Ok, SimOutcome::Ok), req).await;
        assert_eq!(status, 200, "{text}");
        let json: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            json["openrouter_metadata"]["strategy"], strategy,
            "{members}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_request_asking_for_metadata_bypasses_the_response_cache() {
    let store = GenerationStore::new(10);
    let svc = ServiceBuilder::new()
        .layer(ModelRoutingLayer::new(catalog()).seed(1))
        .layer(ResponseCacheLayer::new())
        .layer(UsageMeterLayer::new().sink(store.clone()))
        .layer(ProviderFallbackLayer::new().no_budget())
        .service(sim(SimOutcome::Ok, SimOutcome::Ok));
    let cached = |meta: bool| {
        let mut req = request(
            &body(&model(MODEL), false, false),
            meta.then_some(("x-openrouter-metadata", "enabled")),
        );
        req.headers_mut()
            .insert("x-openrouter-cache", http::HeaderValue::from_static("true"));
        req
    };
    // With metadata: not stored, so the next request (without) is a miss, and is stored.
    for (meta, expect_hit) in [(true, false), (false, false), (true, false), (false, true)] {
        let res = svc.clone().oneshot(cached(meta)).await.unwrap();
        let hit = res
            .headers()
            .get("x-openrouter-cache-status")
            .is_some_and(|v| v == "HIT");
        let text = res.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&text);
        assert_eq!(hit, expect_hit, "meta {meta}: {text}");
        assert_eq!(text.contains("openrouter_metadata"), meta, "{text}");
    }
}
