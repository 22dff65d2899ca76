//! The example gateway's `/metrics`: scraped over loopback and parsed with a Prometheus text
//! parser; who may scrape it (issue 17 F); the generation record's attempts over HTTP.

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
use prometheus_parse::{Sample, Scrape, Value as PromValue};
use serde_json::{json, Value};
use support::{HttpClient, Reply};
use tower_ai_gateway::sim::{SimOutcome, SimulatedProvider};

const LLAMA: &str = "meta-llama/llama-3.3-70b-instruct";
const TOKEN: &str = "metrics-token-0123456789";
const ADMIN: &str = "sk-admin-management-key";

struct Gateway {
    addr: SocketAddr,
    sim: SimulatedProvider,
    client: HttpClient,
}

async fn start(cfg: config::Config) -> Gateway {
    let sim = match &cfg.upstream {
        config::Upstream::Sim(s) => s.clone(),
        config::Upstream::Http => unreachable!(),
    };
    let (router, _state) = app::build(cfg);
    let (addr, client) = support::serve(router).await;
    Gateway { addr, sim, client }
}

impl Gateway {
    async fn send(&self, method: Method, path: &str, body: Option<Value>, key: &str) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr))
            .header("content-type", "application/json");
        if !key.is_empty() {
            req = req.header("authorization", format!("Bearer {key}"));
        }
        let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        support::fetch(&self.client, req.body(Full::new(body)).unwrap()).await
    }

    async fn scrape(&self, key: &str) -> (Reply, Scrape) {
        let r = self.send(Method::GET, "/metrics", None, key).await;
        let text = String::from_utf8(r.body.to_vec()).unwrap();
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        let scrape = Scrape::parse(lines).unwrap_or_else(|e| panic!("{e}: {text}"));
        (r, scrape)
    }
}

fn hello(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Hello there"}]})
}

/// The samples of `metric` whose labels include every pair of `labels`.
fn find<'s>(s: &'s Scrape, metric: &str, labels: &[(&str, &str)]) -> Vec<&'s Sample> {
    s.samples
        .iter()
        .filter(|x| x.metric == metric)
        .filter(|x| labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .collect()
}

fn counter(s: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    find(s, metric, labels)
        .iter()
        .map(|x| match x.value {
            PromValue::Counter(v) | PromValue::Untyped(v) | PromValue::Gauge(v) => v,
            _ => 0.0,
        })
        .sum()
}

fn histogram_count(s: &Scrape, metric: &str, labels: &[(&str, &str)]) -> u64 {
    find(s, metric, labels)
        .iter()
        .map(|x| match &x.value {
            PromValue::Histogram(buckets) => buckets.last().map_or(0, |b| b.count as u64),
            _ => 0,
        })
        .sum()
}

/// A demo gateway with a management key, a metrics token, and keys required.
fn guarded() -> config::Config {
    let mut cfg = config::demo(7, true);
    cfg.loopback_without_key = false;
    cfg.metrics_token = Some(TOKEN.into());
    cfg.keys.push(config::ApiKey {
        name: "admin".into(),
        secret: ADMIN.into(),
        limit: None,
    });
    cfg.rate_limits.management.insert("admin".into());
    cfg
}

#[tokio::test]
async fn metrics_are_genai_named_and_parse_as_prometheus_text() {
    let gw = start(config::demo(7, true)).await;
    // One request that falls back once (deepinfra 503 → groq)…
    gw.sim
        .model_handle("deepinfra.sim", "meta-llama/llama-3.3-70b-instruct@turbo")
        .unwrap()
        .push_script([SimOutcome::Status(503)]);
    let mut body = hello(LLAMA);
    body["provider"] = json!({"order": ["deepinfra/turbo", "groq"]});
    let r = gw
        .send(Method::POST, "/api/v1/chat/completions", Some(body), "")
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_owned();
    // …a streamed one…
    let mut body = hello(LLAMA);
    body["stream"] = json!(true);
    body["provider"] = json!({"order": ["groq"]});
    let r = gw
        .send(Method::POST, "/api/v1/chat/completions", Some(body), "")
        .await;
    assert_eq!(r.status, 200);
    // …and a budget refusal.
    let mut big = hello("anthropic/claude-sonnet-4.5");
    big["max_tokens"] = json!(50_000);
    let r = gw
        .send(
            Method::POST,
            "/api/v1/chat/completions",
            Some(big),
            config::DEMO_KEY,
        )
        .await;
    assert_eq!(r.status, 402, "{:?}", r.body);

    let (reply, s) = gw.scrape("").await;
    assert_eq!(reply.status, 200);
    let ct = reply.headers["content-type"].to_str().unwrap();
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");

    let groq = [("gen_ai_provider_name", "groq")];
    let deepinfra_failed = [
        ("gen_ai_provider_name", "deepinfra"),
        ("outcome", "server_error"),
    ];
    assert_eq!(
        counter(&s, "gateway_attempts_total", &deepinfra_failed),
        1.0
    );
    let groq_ok = [("gen_ai_provider_name", "groq"), ("outcome", "ok")];
    assert_eq!(counter(&s, "gateway_attempts_total", &groq_ok), 2.0);
    assert_eq!(counter(&s, "gateway_fallbacks_total", &[]), 1.0);
    assert_eq!(counter(&s, "gateway_budget_refusals_total", &[]), 1.0);
    let ok = [("route", "/api/v1/chat/completions"), ("status", "200")];
    assert_eq!(counter(&s, "gateway_requests_total", &ok), 2.0);
    let duration = "gen_ai_client_operation_duration_seconds";
    let served = [
        ("gen_ai_provider_name", "groq"),
        ("gen_ai_response_model", LLAMA),
        ("gen_ai_operation_name", "chat"),
        ("error_type", ""),
    ];
    assert_eq!(histogram_count(&s, duration, &served), 2);
    let refused = [("error_type", "payment_required")];
    assert_eq!(histogram_count(&s, duration, &refused), 1);
    for kind in ["input", "output"] {
        let labels = [groq[0], ("gen_ai_token_type", kind)];
        assert_eq!(
            histogram_count(&s, "gen_ai_client_token_usage", &labels),
            2,
            "{kind}"
        );
    }
    let ttft = "gen_ai_server_time_to_first_token_seconds";
    assert_eq!(histogram_count(&s, ttft, &groq), 2);
    assert!(counter(&s, "gateway_cost_usd_total", &groq) > 0.0);

    // The generation record lists both attempts, in OpenRouter's shape.
    let g = gw
        .send(
            Method::GET,
            &format!("/api/v1/generation?id={id}"),
            None,
            "",
        )
        .await;
    let pr = g.json()["data"]["provider_responses"].clone();
    let statuses: Vec<&Value> = pr
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["status"])
        .collect();
    assert_eq!(statuses, [&json!(503), &json!(200)], "{pr}");
}

#[tokio::test]
async fn metrics_need_the_token_or_a_management_key() {
    let gw = start(guarded()).await;
    let (r, _) = gw.scrape("").await;
    assert_eq!(r.status, 401, "no key");
    let (r, _) = gw.scrape("not-a-key-at-all").await;
    assert_eq!(r.status, 401, "unknown key");
    assert_eq!(r.json()["error"]["code"], 401);
    let (r, _) = gw.scrape(config::DEMO_KEY).await;
    assert_eq!(r.status, 403, "a key without the right");
    assert_eq!(r.json()["error"]["code"], 403);
    let (r, s) = gw.scrape(TOKEN).await;
    assert_eq!(r.status, 200, "the metrics token");
    assert!(s.docs.contains_key("gateway_fallbacks"), "{:?}", s.docs);
    let (r, _) = gw.scrape(ADMIN).await;
    assert_eq!(r.status, 200, "a management key");
    // The metrics token opens nothing else.
    let r = gw
        .send(
            Method::POST,
            "/api/v1/chat/completions",
            Some(hello(LLAMA)),
            TOKEN,
        )
        .await;
    assert_eq!(r.status, 401);
}
