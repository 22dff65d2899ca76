//! Conformance suite for ModelRouting + DataPolicy + PriceCap + PercentileDeprioritize over the demo
//! catalog: one case per routing row of <https://openrouter.ai/docs/guides/routing/provider-selection> (at least), request in, candidate
//! order or error out.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_ai_gateway::catalog::{Catalog, EndpointKey};
use tower_ai_gateway::data_policy::{DataFloor, DataPolicyLayer};
use tower_ai_gateway::health::{HealthSource, Percentile};
use tower_ai_gateway::model_routing::ModelRoutingLayer;
use tower_ai_gateway::percentile::PercentileDeprioritizeLayer;
use tower_ai_gateway::price_cap::PriceCapLayer;
use tower_ai_gateway::route::{Route, ServedBy};

const DEMO: &[u8] = include_bytes!("fixtures/catalog/demo-catalog.json");

fn demo() -> Catalog {
    Catalog::from_json(DEMO).unwrap()
}

/// A health source scripted per endpoint key (`model@tag`).
#[derive(Clone, Default)]
struct Scripted {
    degraded: Arc<Mutex<Vec<String>>>,
    latency_ms: Arc<Mutex<HashMap<String, f64>>>,
    throughput: Arc<Mutex<HashMap<String, f64>>>,
}

impl HealthSource for Scripted {
    fn is_degraded(&self, key: &EndpointKey, _: Instant) -> bool {
        self.degraded.lock().unwrap().contains(&key.to_string())
    }
    fn latency_ms(&self, key: &EndpointKey, _: Percentile, _: Instant) -> Option<f64> {
        self.latency_ms
            .lock()
            .unwrap()
            .get(&key.to_string())
            .copied()
    }
    fn throughput(&self, key: &EndpointKey, _: Percentile, _: Instant) -> Option<f64> {
        self.throughput
            .lock()
            .unwrap()
            .get(&key.to_string())
            .copied()
    }
}

/// The inner service: answers with the route's candidates as `model@tag` strings, and says it was
/// served by the first one (so stickiness can be exercised).
async fn echo(req: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let route = req.extensions().get::<Route>().expect("routed");
    let cands: Vec<String> = route
        .candidates()
        .iter()
        .map(|c| route.endpoint(c).key().to_string())
        .collect();
    let mut res = Response::new(Full::new(Bytes::from(
        json!({ "candidates": cands }).to_string(),
    )));
    if let Some(c) = route.candidates().first() {
        let e = route.endpoint(c);
        res.extensions_mut().insert(ServedBy::new(
            e.key().clone(),
            route.provider(c).name.clone(),
        ));
    }
    Ok(res)
}

type Svc = tower::util::BoxCloneService<Request<Full<Bytes>>, Response<Value>, Infallible>;

fn stack(
    health: Scripted,
    seed: u64,
    routing: impl FnOnce(ModelRoutingLayer) -> ModelRoutingLayer,
) -> Svc {
    let svc = ServiceBuilder::new()
        .layer(routing(
            ModelRoutingLayer::new(demo())
                .seed(seed)
                .health(health.clone()),
        ))
        .layer(DataPolicyLayer::new())
        .layer(PriceCapLayer::new())
        .layer(PercentileDeprioritizeLayer::new(health))
        .service_fn(echo);
    let svc = ServiceExt::<Request<Full<Bytes>>>::map_response(svc, |res| {
        let (parts, body) = res.into_parts();
        let bytes = futures_collect(body);
        Response::from_parts(parts, bytes)
    });
    tower::util::BoxCloneService::new(svc)
}

fn futures_collect<B: http_body::Body<Data = Bytes>>(body: B) -> Value
where
    B::Error: std::fmt::Debug,
{
    // The bodies here are complete in memory: one poll is enough.
    let bytes = futures_now(body.collect()).unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

fn futures_now<F: std::future::Future>(f: F) -> F::Output {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("body not ready"),
    }
}

async fn call(svc: &mut Svc, body: Value) -> (u16, Value) {
    call_with(svc, body, &[]).await
}

async fn call_with(svc: &mut Svc, body: Value, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut req = Request::post("/api/v1/chat/completions");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::from(body.to_string()))).unwrap();
    let res = svc.ready().await.unwrap().call(req).await.unwrap();
    (res.status().as_u16(), res.into_body())
}

fn tags(v: &Value) -> Vec<String> {
    v["candidates"]
        .as_array()
        .unwrap_or_else(|| panic!("no candidates in {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

const LLAMA: &str = "meta-llama/llama-3.3-70b-instruct";

fn msg(extra: Value) -> Value {
    let mut b = json!({"messages": [{"role": "user", "content": "Hello"}]});
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b
}

enum Expect {
    /// The candidates, exactly.
    Exact(&'static [&'static str]),
    /// The candidates start with these.
    Prefix(&'static [&'static str]),
    /// The candidates are exactly this set, in any order.
    Set(&'static [&'static str]),
    /// An error: status, availability code (or ""), excluded_by.
    Error(u16, &'static str, &'static [&'static str]),
}

fn k(model: &str, tag: &str) -> String {
    format!("{model}@{tag}")
}

#[tokio::test]
async fn conformance_table() {
    use Expect::*;
    let cases: Vec<(&str, Value, Expect)> = vec![
        // provider.order: listed first, in order, base slug matching every non-tier endpoint; then the
        // rest.
        (
            "order",
            msg(json!({"model": LLAMA, "provider": {"order": ["together", "deepinfra"]}})),
            Prefix(&["together", "deepinfra/turbo", "deepinfra/fp8"]),
        ),
        (
            "order skips providers that don't serve the model",
            msg(json!({"model": LLAMA, "provider": {"order": ["openai", "groq"]}})),
            Prefix(&["groq"]),
        ),
        (
            "allow_fallbacks false with order",
            msg(
                json!({"model": LLAMA, "provider": {"order": ["together", "deepinfra"], "allow_fallbacks": false}}),
            ),
            Exact(&["together", "deepinfra/turbo", "deepinfra/fp8"]),
        ),
        (
            "allow_fallbacks false alone: only the cheapest",
            msg(json!({"model": LLAMA, "provider": {"allow_fallbacks": false}})),
            Exact(&["deepinfra/turbo"]),
        ),
        (
            "only base slug",
            msg(json!({"model": LLAMA, "provider": {"only": ["deepinfra"], "sort": "price"}})),
            Exact(&["deepinfra/turbo", "deepinfra/fp8"]),
        ),
        (
            "only full tag",
            msg(json!({"model": LLAMA, "provider": {"only": ["deepinfra/turbo"]}})),
            Exact(&["deepinfra/turbo"]),
        ),
        (
            "only by display name",
            msg(json!({"model": LLAMA, "provider": {"only": ["Groq"]}})),
            Exact(&["groq"]),
        ),
        (
            "only leaves nothing",
            msg(json!({"model": LLAMA, "provider": {"only": ["openai"]}})),
            Error(404, "constraint_filtered", &["allowed_providers"]),
        ),
        (
            "ignore",
            msg(json!({"model": LLAMA, "provider": {"ignore": ["deepinfra"], "sort": "price"}})),
            Exact(&["groq", "together", "fireworks"]),
        ),
        (
            "ignore full tag",
            msg(
                json!({"model": LLAMA, "provider": {"ignore": ["deepinfra/turbo"], "sort": "price"}}),
            ),
            Exact(&["deepinfra/fp8", "groq", "together", "fireworks"]),
        ),
        (
            "base slug never matches a tier endpoint",
            msg(json!({"model": "openai/gpt-4o-mini", "provider": {"only": ["openai"]}})),
            Exact(&["openai"]),
        ),
        (
            "tier endpoint by its full tag",
            msg(json!({"model": "openai/gpt-4o-mini", "provider": {"order": ["openai/priority"]}})),
            Prefix(&["openai/priority"]),
        ),
        (
            "tier endpoints hidden by default",
            msg(json!({"model": "openai/gpt-4o-mini", "provider": {"sort": "price"}})),
            Exact(&["openai", "azure"]),
        ),
        (
            "service_tier priority: priority first",
            msg(json!({"model": "openai/gpt-4o-mini", "service_tier": "priority"})),
            Prefix(&["openai/priority"]),
        ),
        (
            "require_parameters",
            msg(
                json!({"model": "mistralai/mistral-small-3.1-24b-instruct", "top_k": 40, "provider": {"require_parameters": true}}),
            ),
            Exact(&["deepinfra/bf16"]),
        ),
        (
            "soft preference: response_format routes to supporting endpoints",
            msg(
                json!({"model": "mistralai/mistral-small-3.1-24b-instruct", "response_format": {"type": "json_object"}}),
            ),
            Exact(&["mistral"]),
        ),
        (
            "soft preference never removes a model",
            msg(
                json!({"model": "meta-llama/llama-3.3-70b-instruct:free", "response_format": {"type": "json_object"}, "provider": {"sort": "price"}}),
            ),
            Set(&["chutes", "together"]),
        ),
        (
            "tools only go to tool-capable endpoints",
            msg(
                json!({"model": "mistralai/mistral-small-3.1-24b-instruct", "tools": [{"type": "function", "function": {"name": "f"}}], "provider": {"sort": "price"}}),
            ),
            Exact(&["chutes", "mistral"]),
        ),
        (
            "tools on a model without tool endpoints",
            msg(
                json!({"model": "meta-llama/llama-3.3-70b-instruct:free", "tools": [{"type": "function", "function": {"name": "f"}}]}),
            ),
            Error(404, "constraint_filtered", &["require_parameters"]),
        ),
        (
            "max_tokens filter",
            msg(json!({"model": "meta-llama/llama-3.3-70b-instruct:free", "max_tokens": 3000})),
            Exact(&["chutes"]),
        ),
        (
            "max_tokens beyond every endpoint",
            msg(json!({"model": "meta-llama/llama-3.3-70b-instruct:free", "max_tokens": 5000})),
            Error(404, "constraint_filtered", &["context_length"]),
        ),
        (
            "data_collection deny: training and retaining providers removed",
            msg(
                json!({"model": "mistralai/mistral-small-3.1-24b-instruct", "provider": {"data_collection": "deny"}}),
            ),
            Exact(&["deepinfra/bf16"]),
        ),
        (
            "zdr",
            msg(json!({"model": "openai/gpt-4o-mini", "provider": {"zdr": true}})),
            Exact(&["azure"]),
        ),
        (
            "zdr leaves nothing: privacy_restricted",
            msg(
                json!({"model": "meta-llama/llama-3.3-70b-instruct:free", "provider": {"zdr": true}}),
            ),
            Error(404, "privacy_restricted", &["data_policy:zdr"]),
        ),
        (
            "enforce_distillable_text without the flag in the catalog",
            msg(json!({"model": LLAMA, "provider": {"enforce_distillable_text": true}})),
            Error(404, "privacy_restricted", &["data_policy:distillable_text"]),
        ),
        (
            "quantizations fp4 admits nvfp4",
            msg(json!({"model": LLAMA, "provider": {"quantizations": ["fp4"]}})),
            Exact(&["deepinfra/turbo"]),
        ),
        (
            "quantizations fp4 on deepseek",
            msg(json!({"model": "deepseek/deepseek-chat", "provider": {"quantizations": ["fp4"]}})),
            Exact(&["deepinfra/fp4"]),
        ),
        (
            "quantizations unknown matches null and unknown",
            msg(
                json!({"model": "openai/gpt-4o-mini", "provider": {"quantizations": ["unknown"], "sort": "price"}}),
            ),
            Exact(&["openai", "azure"]),
        ),
        (
            "quantizations leave nothing",
            msg(json!({"model": LLAMA, "provider": {"quantizations": ["int4"]}})),
            Error(404, "constraint_filtered", &["quantization"]),
        ),
        (
            "sort price",
            msg(json!({"model": "qwen/qwen3-coder", "provider": {"sort": "price"}})),
            Exact(&["deepinfra/fp8", "fireworks", "together", "alibaba"]),
        ),
        (
            "sort throughput (catalog figures while stats are empty)",
            msg(json!({"model": LLAMA, "provider": {"sort": "throughput"}})),
            Exact(&[
                "groq",
                "fireworks",
                "together",
                "deepinfra/turbo",
                "deepinfra/fp8",
            ]),
        ),
        (
            "sort latency",
            msg(json!({"model": LLAMA, "provider": {"sort": {"by": "latency"}}})),
            Exact(&[
                "groq",
                "fireworks",
                "together",
                "deepinfra/fp8",
                "deepinfra/turbo",
            ]),
        ),
        (
            "sort exacto (success rate)",
            msg(json!({"model": "qwen/qwen3-coder", "provider": {"sort": "exacto"}})),
            Exact(&["together", "fireworks", "deepinfra/fp8", "alibaba"]),
        ),
        (
            "unstable endpoints (negative status) go last",
            msg(json!({"model": "anthropic/claude-sonnet-4.5"})),
            Set(&[
                "anthropic",
                "amazon-bedrock",
                "google-vertex",
                "google-vertex/us-east5",
            ]),
        ),
        (
            "sort price: unstable last even when cheaper order says otherwise",
            msg(json!({"model": "anthropic/claude-sonnet-4.5", "provider": {"sort": "price"}})),
            Exact(&[
                "anthropic",
                "amazon-bedrock",
                "google-vertex",
                "google-vertex/us-east5",
            ]),
        ),
        (
            ":nitro sorts by throughput and admits priority endpoints",
            msg(json!({"model": "openai/gpt-4o-mini:nitro"})),
            Exact(&["openai/priority", "openai", "azure"]),
        ),
        (
            ":nitro with order: no tier admission",
            msg(json!({"model": "openai/gpt-4o-mini:nitro", "provider": {"order": ["azure"]}})),
            Prefix(&["azure", "openai"]),
        ),
        (
            ":floor sorts by price",
            msg(json!({"model": "qwen/qwen3-coder:floor"})),
            Exact(&["deepinfra/fp8", "fireworks", "together", "alibaba"]),
        ),
        (
            ":exacto",
            msg(json!({"model": "qwen/qwen3-coder:exacto"})),
            Exact(&["together", "fireworks", "deepinfra/fp8", "alibaba"]),
        ),
        (
            ":free uses the catalog's free model",
            msg(json!({"model": "meta-llama/llama-3.3-70b-instruct:free"})),
            Set(&["chutes", "together"]),
        ),
        (
            ":free on a model without free endpoints",
            msg(json!({"model": "deepseek/deepseek-chat:free"})),
            Error(404, "constraint_filtered", &["max_price"]),
        ),
        (
            ":thinking not in the catalog",
            msg(json!({"model": "deepseek/deepseek-chat:thinking"})),
            Error(400, "model_not_found", &[]),
        ),
        (
            "unknown variant",
            msg(json!({"model": "deepseek/deepseek-chat:turbo"})),
            Error(400, "", &[]),
        ),
        (
            "unknown model",
            msg(json!({"model": "acme/nothing"})),
            Error(400, "model_not_found", &[]),
        ),
        (
            "max_price",
            msg(
                json!({"model": "deepseek/deepseek-chat", "provider": {"max_price": {"prompt": 0.5}}}),
            ),
            Set(&["deepseek", "deepinfra/fp4"]),
        ),
        (
            "max_price as strings",
            msg(
                json!({"model": "deepseek/deepseek-chat", "provider": {"max_price": {"prompt": "0.3", "completion": "1.2"}}}),
            ),
            Exact(&["deepseek"]),
        ),
        (
            "max_price completion",
            msg(
                json!({"model": "deepseek/deepseek-chat", "provider": {"max_price": {"completion": 1}}, "sort": "price"}),
            ),
            Set(&["deepinfra/fp4", "fireworks"]),
        ),
        (
            "max_price leaves nothing",
            msg(
                json!({"model": "anthropic/claude-sonnet-4.5", "provider": {"max_price": {"prompt": 1}}}),
            ),
            Error(404, "constraint_filtered", &["max_price"]),
        ),
        (
            "max_price with a discount: together's qwen is $2/M × 0.9 = $1.8/M",
            msg(
                json!({"model": "qwen/qwen3-coder", "provider": {"max_price": {"prompt": 1.8, "completion": 1.8}, "sort": "price"}}),
            ),
            Exact(&["deepinfra/fp8", "fireworks", "together"]),
        ),
        (
            "models: fallback models after the primary's endpoints (partition model)",
            msg(
                json!({"models": ["deepseek/deepseek-chat", "mistralai/mistral-small-3.1-24b-instruct"], "provider": {"sort": "price"}}),
            ),
            Exact(&[
                "deepinfra/fp4",
                "deepseek",
                "fireworks",
                "together",
                "chutes",
                "deepinfra/bf16",
                "mistral",
            ]),
        ),
        (
            "model + models, de-duplicated",
            msg(
                json!({"model": "openai/gpt-4o-mini", "models": ["openai/gpt-4o-mini", "google/gemini-2.5-flash"], "provider": {"sort": "price"}}),
            ),
            Exact(&["openai", "azure", "google-vertex", "google-ai-studio"]),
        ),
        (
            "partition none sorts across models",
            msg(
                json!({"models": ["deepseek/deepseek-chat", "mistralai/mistral-small-3.1-24b-instruct"], "provider": {"sort": {"by": "price", "partition": "none"}}}),
            ),
            Exact(&[
                "chutes",
                "deepinfra/bf16",
                "mistral",
                "deepinfra/fp4",
                "deepseek",
                "fireworks",
                "together",
            ]),
        ),
        (
            "route: sort is partition none",
            msg(
                json!({"models": ["deepseek/deepseek-chat", "mistralai/mistral-small-3.1-24b-instruct"], "route": "sort", "provider": {"sort": "price"}}),
            ),
            Prefix(&["chutes", "deepinfra/bf16", "mistral"]),
        ),
        (
            "too many models",
            msg(json!({"models": ["a/a", "b/b", "c/c", "d/d"]})),
            Error(400, "", &[]),
        ),
        (
            "a data policy removes the primary model, the fallback model serves",
            msg(
                json!({"models": ["meta-llama/llama-3.3-70b-instruct:free", "openai/gpt-4o-mini"], "provider": {"zdr": true}}),
            ),
            Exact(&["azure"]),
        ),
    ];

    let mut failures = Vec::new();
    for (name, body, expect) in cases {
        let mut svc = stack(Scripted::default(), 1, |l| l);
        let (status, v) = call(&mut svc, body.clone()).await;
        let model_of = |t: &str| -> String {
            // Prefix every expected tag with whichever model the response names for it.
            tags(&v)
                .into_iter()
                .find(|c| c.ends_with(&format!("@{t}")))
                .unwrap_or_else(|| t.to_string())
        };
        let ok = match &expect {
            Exact(want) | Prefix(want) | Set(want) if status != 200 => {
                failures.push(format!("{name}: expected {want:?}, got {status} {v}"));
                continue;
            }
            Exact(want) => tags(&v) == want.iter().map(|t| model_of(t)).collect::<Vec<_>>(),
            Prefix(want) => {
                tags(&v).starts_with(&want.iter().map(|t| model_of(t)).collect::<Vec<_>>())
            }
            Set(want) => {
                let mut got = tags(&v);
                got.sort();
                let mut w: Vec<String> = want.iter().map(|t| model_of(t)).collect();
                w.sort();
                got == w
            }
            Error(code, avail, by) => {
                let e = &v["error"];
                status == *code
                    && e["code"] == *code
                    && (avail.is_empty() || e["availability"]["code"] == *avail)
                    && (by.is_empty()
                        || e["availability"]["excluded_by"]
                            .as_array()
                            .is_some_and(|a| {
                                a.iter().map(|x| x.as_str().unwrap()).collect::<Vec<_>>() == *by
                            }))
            }
        };
        if !ok {
            failures.push(format!("{name}: got {status} {v}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn context_length_and_pricing_overrides() {
    // ~90k tokens of prompt: DeepSeek's own endpoint (64k context) drops out.
    let big = "x".repeat(360_000);
    let mut svc = stack(Scripted::default(), 1, |l| l);
    let (s, v) = call(&mut svc, json!({"model": "deepseek/deepseek-chat", "messages": [{"role": "user", "content": big}], "provider": {"sort": "price"}})).await;
    assert_eq!(s, 200, "{v}");
    assert!(!tags(&v).iter().any(|t| t.ends_with("@deepseek")), "{v}");

    // > 200k prompt tokens on Claude: the long-context override doubles the prompt price to $6/M, the
    // 200k-context endpoints drop out on context, so a $5 cap leaves nothing.
    let huge = "x".repeat(880_000);
    let body = json!({"model": "anthropic/claude-sonnet-4.5", "messages": [{"role": "user", "content": huge}], "provider": {"max_price": {"prompt": 5}}});
    let (s, v) = call(&mut svc, body).await;
    assert_eq!(s, 404, "{v}");
    assert_eq!(
        v["error"]["availability"]["excluded_by"],
        json!(["max_price", "context_length"])
    );
    // The same cap with a short prompt passes.
    let (s, _) = call(&mut svc, json!({"model": "anthropic/claude-sonnet-4.5", "messages": [{"role": "user", "content": "hi"}], "provider": {"max_price": {"prompt": 5}}})).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn outage_goes_last_and_percentiles_deprioritize() {
    let health = Scripted::default();
    health
        .degraded
        .lock()
        .unwrap()
        .push(k(LLAMA, "deepinfra/turbo"));
    let mut svc = stack(health.clone(), 3, |l| l);
    for _ in 0..20 {
        let (_, v) = call(&mut svc, msg(json!({"model": LLAMA}))).await;
        assert_eq!(
            tags(&v).last().unwrap(),
            &k(LLAMA, "deepinfra/turbo"),
            "{v}"
        );
    }

    // Latency: groq and fireworks are slow now; they move to the back, in their existing order.
    let health = Scripted::default();
    {
        let mut l = health.latency_ms.lock().unwrap();
        l.insert(k(LLAMA, "groq"), 5_000.0);
        l.insert(k(LLAMA, "fireworks"), 4_000.0);
        l.insert(k(LLAMA, "together"), 900.0);
        // deepinfra endpoints: no samples → passing.
    }
    let mut svc = stack(health.clone(), 3, |l| l);
    let (_, v) = call(
        &mut svc,
        msg(json!({"model": LLAMA, "provider": {"sort": "price", "preferred_max_latency": 1}})),
    )
    .await;
    assert_eq!(
        tags(&v),
        [
            k(LLAMA, "deepinfra/turbo"),
            k(LLAMA, "deepinfra/fp8"),
            k(LLAMA, "together"),
            k(LLAMA, "groq"),
            k(LLAMA, "fireworks")
        ]
    );
    // Throughput object form: every cutoff must pass.
    health
        .throughput
        .lock()
        .unwrap()
        .insert(k(LLAMA, "deepinfra/turbo"), 10.0);
    let (_, v) = call(&mut svc, msg(json!({"model": LLAMA, "provider": {"sort": "price", "preferred_min_throughput": {"p50": 20, "p90": 5}}}))).await;
    assert_eq!(tags(&v).last().unwrap(), &k(LLAMA, "deepinfra/turbo"));
    // partition none: a fast fallback model overtakes the slow primary.
    let (_, v) = call(&mut svc, msg(json!({"models": [LLAMA, "qwen/qwen3-coder"], "provider": {"sort": {"by": "price", "partition": "none"}, "preferred_max_latency": 1}}))).await;
    let t = tags(&v);
    let groq = t.iter().position(|x| *x == k(LLAMA, "groq")).unwrap();
    let qwen = t.iter().position(|x| x.starts_with("qwen/")).unwrap();
    assert!(qwen < groq, "{t:?}");
    // partition model: the fallback model stays behind the primary.
    let (_, v) = call(&mut svc, msg(json!({"models": [LLAMA, "qwen/qwen3-coder"], "provider": {"sort": "price", "preferred_max_latency": 1}}))).await;
    let t = tags(&v);
    assert!(t[..5].iter().all(|x| x.starts_with(LLAMA)), "{t:?}");
}

#[tokio::test]
async fn operator_lists_and_floor() {
    let svc = ServiceBuilder::new()
        .layer(
            ModelRoutingLayer::new(demo())
                .seed(1)
                .allow_providers(["deepinfra", "groq", "together"])
                .ignore_providers(["groq"]),
        )
        .layer(DataPolicyLayer::new().floor(DataFloor::zdr()))
        .service_fn(echo);
    let svc = ServiceExt::<Request<Full<Bytes>>>::map_response(svc, |r| {
        let (p, b) = r.into_parts();
        Response::from_parts(p, futures_collect(b))
    });
    let mut svc = tower::util::BoxCloneService::new(svc);
    // The account allow-list is the ceiling; `only` narrows within it; deny-lists are unioned; the ZDR
    // floor can't be relaxed by `zdr: false`.
    let (_, v) = call(
        &mut svc,
        msg(json!({"model": LLAMA, "provider": {"sort": "price", "zdr": false}})),
    )
    .await;
    assert_eq!(
        tags(&v),
        [k(LLAMA, "deepinfra/turbo"), k(LLAMA, "deepinfra/fp8")]
    );
    let (s, v) = call(
        &mut svc,
        msg(json!({"model": LLAMA, "provider": {"only": ["fireworks"]}})),
    )
    .await;
    assert_eq!(s, 404, "{v}");
}

#[tokio::test(start_paused = true)]
async fn sticky_sessions_keep_their_endpoint_until_ttl_or_failure() {
    let mut svc = stack(Scripted::default(), 11, |l| l);
    let body = msg(json!({"model": LLAMA, "session_id": "conv-1"}));
    let (_, v) = call(&mut svc, body.clone()).await;
    let first = tags(&v)[0].clone();
    for _ in 0..50 {
        let (_, v) = call(&mut svc, body.clone()).await;
        assert_eq!(tags(&v)[0], first);
    }
    // The header works too, and another session is balanced independently.
    let (_, v) = call_with(
        &mut svc,
        msg(json!({"model": LLAMA})),
        &[("x-session-id", "conv-1")],
    )
    .await;
    assert_eq!(tags(&v)[0], first);
    // Idle past the TTL: the entry expires and the balancer decides again (over many sessions the pick
    // differs at least once).
    tokio::time::advance(std::time::Duration::from_secs(601)).await;
    let mut differs = false;
    for _ in 0..30 {
        let (_, v) = call(&mut svc, body.clone()).await;
        differs |= tags(&v)[0] != first;
        tokio::time::advance(std::time::Duration::from_secs(601)).await;
    }
    assert!(differs);
    // `order` disables stickiness.
    let (_, v) = call(
        &mut svc,
        msg(json!({"model": LLAMA, "session_id": "conv-1", "provider": {"order": ["groq"]}})),
    )
    .await;
    assert_eq!(tags(&v)[0], k(LLAMA, "groq"));
}

#[tokio::test]
async fn sticky_entry_follows_the_endpoint_that_succeeded() {
    // A service that "fails over": reports the second candidate as the one that served.
    async fn second(req: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
        let route = req.extensions().get::<Route>().unwrap();
        let c = route.candidates()[1];
        let mut res = Response::new(Full::new(Bytes::new()));
        res.extensions_mut()
            .insert(ServedBy::new(route.endpoint(&c).key().clone(), "x"));
        Ok(res)
    }
    let layer = ModelRoutingLayer::new(demo()).seed(5);
    let mut failing = ServiceBuilder::new()
        .layer(layer.clone())
        .service_fn(second);
    let body = msg(json!({"model": LLAMA, "session_id": "s"})).to_string();
    let req = || {
        Request::post("/")
            .body(Full::new(Bytes::from(body.clone())))
            .unwrap()
    };
    let _ = ServiceExt::<Request<Full<Bytes>>>::ready(&mut failing)
        .await
        .unwrap()
        .call(req())
        .await
        .unwrap();
    // The sticky entry now names the endpoint that served (the second candidate of that request).
    let mut probe = ServiceBuilder::new().layer(layer).service_fn(echo);
    let res = ServiceExt::<Request<Full<Bytes>>>::ready(&mut probe)
        .await
        .unwrap()
        .call(req())
        .await
        .unwrap();
    let v: Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    let t = tags(&v);
    let res = ServiceExt::<Request<Full<Bytes>>>::ready(&mut failing)
        .await
        .unwrap()
        .call(req())
        .await
        .unwrap();
    drop(res);
    assert_eq!(t.len(), 5);
    // Error responses never update the entry.
    async fn error(req: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
        let route = req.extensions().get::<Route>().unwrap();
        let c = route.candidates()[3];
        let mut res = Response::new(Full::new(Bytes::new()));
        *res.status_mut() = http::StatusCode::BAD_GATEWAY;
        res.extensions_mut()
            .insert(ServedBy::new(route.endpoint(&c).key().clone(), "x"));
        Ok(res)
    }
    let layer2 = ModelRoutingLayer::new(demo()).seed(5);
    let mut ok = ServiceBuilder::new().layer(layer2.clone()).service_fn(echo);
    let mut bad = ServiceBuilder::new()
        .layer(layer2.clone())
        .service_fn(error);
    let res = ServiceExt::<Request<Full<Bytes>>>::ready(&mut ok)
        .await
        .unwrap()
        .call(req())
        .await
        .unwrap();
    let v: Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    let stuck = tags(&v)[0].clone();
    let _ = ServiceExt::<Request<Full<Bytes>>>::ready(&mut bad)
        .await
        .unwrap()
        .call(req())
        .await
        .unwrap();
    let res = ServiceExt::<Request<Full<Bytes>>>::ready(&mut ok)
        .await
        .unwrap()
        .call(req())
        .await
        .unwrap();
    let v: Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(tags(&v)[0], stuck);
}

#[tokio::test]
async fn bad_bodies_and_limits() {
    let mut svc = stack(Scripted::default(), 1, |l| l.body_limit(1000));
    let (s, v) = call(
        &mut svc,
        json!({"model": LLAMA, "messages": [{"role": "user", "content": "x".repeat(2000)}]}),
    )
    .await;
    assert_eq!(s, 413, "{v}");
    assert_eq!(v["error"]["metadata"]["error_type"], "payload_too_large");
    let req = Request::post("/")
        .body(Full::new(Bytes::from_static(b"{nope")))
        .unwrap();
    let res = svc.ready().await.unwrap().call(req).await.unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.body()["error"]["metadata"]["error_type"],
        "invalid_request"
    );
    // Declared too large: refused before reading.
    let req = Request::post("/")
        .header("content-length", "5000")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let res = svc.ready().await.unwrap().call(req).await.unwrap();
    assert_eq!(res.status(), 413);
}

#[tokio::test]
async fn latest_aliases_resolve() {
    let dump = include_bytes!("fixtures/catalog/openrouter-models.json");
    let catalog = Catalog::from_openrouter_models(
        dump,
        tower_ai_gateway::catalog::Provider::new("openrouter", "OpenRouter"),
    )
    .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(ModelRoutingLayer::new(catalog).seed(1))
        .service_fn(echo);
    let body = msg(json!({"model": "~deepseek/deepseek-v4-flash-latest"})).to_string();
    let res = ServiceExt::<Request<Full<Bytes>>>::ready(&mut svc)
        .await
        .unwrap()
        .call(
            Request::post("/")
                .body(Full::new(Bytes::from(body)))
                .unwrap(),
        )
        .await
        .unwrap();
    let v: Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(tags(&v), ["deepseek/deepseek-v4-flash-0731@openrouter"]);
}

#[tokio::test]
async fn weighted_first_pick_follows_inverse_square_price() {
    let catalog = demo();
    let eps = catalog.endpoints(LLAMA);
    let weights: Vec<(String, f64)> = eps
        .iter()
        .map(|e| {
            let p = e.pricing.blended().per_million().to_f64();
            (e.key().to_string(), 1.0 / (p * p))
        })
        .collect();
    let total: f64 = weights.iter().map(|w| w.1).sum();
    let mut svc = stack(Scripted::default(), 42, |l| l);
    let n = 10_000;
    let mut counts: HashMap<String, u32> = HashMap::new();
    let body = msg(json!({"model": LLAMA}));
    for _ in 0..n {
        let (_, v) = call(&mut svc, body.clone()).await;
        let t = tags(&v);
        *counts.entry(t[0].clone()).or_default() += 1;
        // After the pick: the rest by ascending price.
        let rest: Vec<&String> = t[1..].iter().collect();
        let mut sorted = rest.clone();
        sorted.sort_by_key(|k| {
            eps.iter()
                .position(|e| e.key().to_string() == **k)
                .map(|i| eps[i].pricing.blended())
        });
        assert_eq!(rest, sorted);
    }
    for (key, w) in &weights {
        let expected = w / total;
        let got = *counts.get(key).unwrap_or(&0) as f64 / n as f64;
        let sigma = (expected * (1.0 - expected) / n as f64).sqrt();
        assert!(
            (got - expected).abs() <= 4.0 * sigma + 0.002,
            "{key}: expected {expected:.4}, got {got:.4}"
        );
    }
}

#[tokio::test]
async fn same_seed_same_orders() {
    let mut a = stack(Scripted::default(), 99, |l| l);
    let mut b = stack(Scripted::default(), 99, |l| l);
    for i in 0..50 {
        let body = msg(json!({"model": if i % 2 == 0 { LLAMA } else { "qwen/qwen3-coder" }}));
        assert_eq!(
            call(&mut a, body.clone()).await.1,
            call(&mut b, body).await.1
        );
    }
}

#[tokio::test]
async fn repick_after_filter_keeps_the_distribution_among_survivors() {
    // data_collection deny removes chutes, the cheapest (and so most likely first pick) of Mistral;
    // the first pick is then redrawn between mistral ($0.4/M) and ... only deepinfra/bf16 remains
    // eligible under deny, so every request must start with it.
    let mut svc = stack(Scripted::default(), 7, |l| l);
    for _ in 0..200 {
        let (_, v) = call(&mut svc, msg(json!({"model": "deepseek/deepseek-chat", "provider": {"max_price": {"prompt": 1}}}))).await;
        let t = tags(&v);
        assert!(!t.iter().any(|x| x.ends_with("@together")));
    }
    // With PriceCap removing the cheapest stable endpoint, the redraw is still weighted: over many
    // requests both survivors appear first, the cheaper one more often.
    let mut first: HashMap<String, u32> = HashMap::new();
    for _ in 0..4000 {
        let (_, v) = call(&mut svc, msg(json!({"model": "qwen/qwen3-coder", "provider": {"max_price": {"prompt": 1.5, "completion": 5}, "ignore": ["together"]}}))).await;
        *first.entry(tags(&v)[0].clone()).or_default() += 1;
    }
    // Survivors: deepinfra/fp8 ($2.0/M blended), fireworks ($2.25/M), alibaba excluded (prompt $1 ok,
    // completion $5 ok) — so three survive; check the ratio of the two cheapest follows 1/p².
    let d = first[&k("qwen/qwen3-coder", "deepinfra/fp8")] as f64;
    let f = first[&k("qwen/qwen3-coder", "fireworks")] as f64;
    let expected = (2.25f64 / 2.0).powi(2);
    assert!(
        (d / f - expected).abs() < 0.15,
        "ratio {} vs {}",
        d / f,
        expected
    );
}

/// A request body that never sends a byte, with a size hint.
struct Silent(http_body::SizeHint);

impl http_body::Body for Silent {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        std::task::Poll::Pending
    }
    fn size_hint(&self) -> http_body::SizeHint {
        self.0
    }
}

/// A body over the limit is refused before a byte of it is read: by its declared
/// `Content-Length`, or by its own size hint when that says it is at least that large.
#[tokio::test(start_paused = true)]
async fn over_the_limit_is_refused_before_reading() {
    use std::time::Duration;
    let layer = ModelRoutingLayer::new(demo()).seed(1).body_limit(1000);
    let refused = |hint: http_body::SizeHint, declared: Option<&str>| {
        let mut req = Request::post("/api/v1/chat/completions");
        if let Some(n) = declared {
            req = req.header("content-length", n);
        }
        let req = req.body(Silent(hint)).unwrap();
        let svc = ServiceBuilder::new().layer(layer.clone()).service_fn(echo);
        async move {
            let res = tokio::time::timeout(Duration::from_secs(5), svc.oneshot(req))
                .await
                .expect("refused at once, not waiting for the body")
                .unwrap();
            res.status().as_u16()
        }
    };
    assert_eq!(
        refused(http_body::SizeHint::with_exact(5000), None).await,
        413
    );
    assert_eq!(refused(http_body::SizeHint::new(), Some("5000")).await, 413);
    let mut at_least = http_body::SizeHint::new();
    at_least.set_lower(2000);
    assert_eq!(refused(at_least, None).await, 413);
}
