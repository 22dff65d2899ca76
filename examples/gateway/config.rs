//! Gateway configuration: the embedded demo default, or a TOML/JSON file with real providers.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use tower_ai_gateway::catalog::{AuthStyle, Catalog, CatalogFile, Credentials, Usd, WireFormat};
use tower_ai_gateway::data_policy::DataFloor;
use tower_ai_gateway::route::{MaxPrice, Presets};
use tower_ai_gateway::sim::{SimOutcome, SimProfile, SimulatedProvider};
use tower_ai_gateway::usage_meter::Period;

#[path = "limits.rs"]
pub mod limits;
// `[gateway.cache]` (a file of its own; a path, so the tests that include this file find it too).
#[path = "cache.rs"]
pub mod cache;

/// The demo catalog shipped with the crate's tests.
pub const DEMO_CATALOG: &[u8] = include_bytes!("../../tests/fixtures/catalog/demo-catalog.json");

/// A gateway API key.
#[derive(Clone, Debug, Deserialize)]
pub struct KeySpec {
    /// A name for logs, `/api/v1/key` and budgets (defaults to a redacted form of the key).
    #[serde(default)]
    pub name: Option<String>,
    /// The key itself…
    #[serde(default)]
    pub key: Option<String>,
    /// …or the environment variable holding it.
    #[serde(default)]
    pub key_env: Option<String>,
    /// Spending limit in USD for `period`.
    #[serde(default)]
    pub limit_usd: Option<String>,
    /// `day`, `week`, `month` or `total` (default).
    #[serde(default)]
    pub period: Option<String>,
    /// `rate_limit`, `class`, `free_requests_per_day`, `management`.
    #[serde(flatten)]
    pub rate: limits::KeyRateSpec,
}

/// The `[gateway]` section of a config file (everything else in the file is the catalog).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct GatewaySection {
    /// Listen address (overridden by `--listen`).
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// API keys. With none, every caller is let in (loopback or not) — say so loudly.
    #[serde(default)]
    pub keys: Vec<KeySpec>,
    /// Request body limit in bytes (default 10 MiB).
    #[serde(default)]
    pub body_limit: Option<usize>,
    /// Operator data floor: `"deny"` (no training or retaining providers) or `"zdr"`.
    #[serde(default)]
    pub data_floor: Option<String>,
    /// Operator price cap, in `max_price` units.
    #[serde(default)]
    pub max_price: Option<MaxPrice>,
    /// Per-attempt timeout in seconds (default 120).
    #[serde(default)]
    pub attempt_timeout_secs: Option<u64>,
    /// Redis URL for the shared stores (overridden by `--redis`).
    #[serde(default)]
    pub redis: Option<String>,
    /// Providers never used.
    #[serde(default)]
    pub ignore_providers: Vec<String>,
    /// `[gateway.rate_limits]`.
    #[serde(default)]
    pub rate_limits: limits::RateLimitsSection,
    /// `[gateway.cache]`: the response cache (on by default; requests opt in).
    #[serde(default)]
    pub cache: cache::CacheSection,
    /// `[gateway.server]`: limits for slow, idle and too many callers (`server.rs`).
    #[serde(default)]
    pub server: ServerSection,
    /// `[gateway.presets.NAME]`: named request configurations (`"model": "@preset/NAME"`).
    #[serde(default)]
    pub presets: std::collections::BTreeMap<String, tower_ai_gateway::model_routing::Preset>,
    /// A token that may scrape `/metrics` (and nothing else)…
    #[serde(default)]
    pub metrics_token: Option<String>,
    /// …or the environment variable holding it.
    #[serde(default)]
    pub metrics_token_env: Option<String>,
}

/// `[gateway.server]`: each unset field keeps the server's default.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Time allowed for a request head, in milliseconds (default 10,000).
    pub header_read_timeout_ms: Option<u64>,
    /// Time allowed for a request body, from its head, in milliseconds (default 30,000).
    pub body_read_timeout_ms: Option<u64>,
    /// Concurrent connections (default 10,000).
    pub max_connections: Option<usize>,
    /// Requests in flight (default 1,024).
    pub max_in_flight: Option<usize>,
}

#[derive(Deserialize)]
struct FileWithGateway {
    #[serde(default)]
    gateway: GatewaySection,
}

/// Where upstream requests go.
pub enum Upstream {
    /// Simulated providers (the embedded demo, load tests).
    Sim(SimulatedProvider),
    /// Real providers over HTTPS.
    Http,
}

/// A resolved gateway API key.
#[derive(Clone, Debug)]
pub struct ApiKey {
    pub name: String,
    pub secret: String,
    pub limit: Option<(Period, Usd)>,
}

/// Everything the app needs.
pub struct Config {
    pub catalog: Catalog,
    pub upstream: Upstream,
    pub keys: Vec<ApiKey>,
    /// Callers on 127.0.0.1/::1 without a key are let in as `local` (the embedded demo only).
    pub loopback_without_key: bool,
    pub listen: SocketAddr,
    pub body_limit: usize,
    pub floor: DataFloor,
    pub cap: MaxPrice,
    pub attempt_timeout: Duration,
    pub ignore: Vec<String>,
    pub cache: tower_ai_gateway::cache::ResponseCacheLayer,
    pub demo: bool,
    pub rate_limits: limits::RateLimits,
    /// `[gateway.server]` as written (the demo: all defaults).
    pub server: ServerSection,
    /// May scrape `/metrics`, besides management keys (and loopback callers in the demo).
    pub metrics_token: Option<String>,
    /// `[gateway] redis = "redis://…"` (or `--redis`): put budgets, rate limits and the cache in
    /// Redis, shared with the other replicas (feature `redis`).
    pub redis: Option<String>,
    /// The connection `main` made to `redis`; the app builds its ledger from it.
    pub redis_stores: SharedStores,
    /// `--trace-content`: bytes of prompt / completion text recorded on the request spans (0:
    /// none, the default).
    pub trace_content: usize,
    /// `[gateway.presets]` (the demo: [`DEMO_PRESETS`]).
    pub presets: Presets,
}

#[cfg(feature = "redis")]
impl Config {
    /// Puts the rate limits and the response cache in `stores`' Redis now, and the budgets when
    /// the app is built.
    pub fn use_redis(&mut self, stores: tower_ai_gateway::redis::RedisStores) {
        self.rate_limits.layer = self
            .rate_limits
            .layer
            .clone()
            .store(stores.rate_limit_store());
        self.cache = self.cache.clone().store(stores.cache_store());
        self.redis_stores = Some(stores);
    }
}

/// A connection to Redis (feature `redis`; never set without it).
#[cfg(feature = "redis")]
pub type SharedStores = Option<tower_ai_gateway::redis::RedisStores>;
/// A connection to Redis (feature `redis`; never set without it).
#[cfg(not(feature = "redis"))]
pub type SharedStores = Option<std::convert::Infallible>;

/// The demo key's daily budget: small enough that a few requests with a large `max_tokens` hit 402.
pub const DEMO_KEY: &str = "sk-demo-small-budget";
pub const DEMO_KEY_BUDGET: &str = "0.10";

fn parse_period(p: Option<&str>) -> Result<Period, String> {
    Ok(match p.unwrap_or("total") {
        "day" | "daily" => Period::Day,
        "week" | "weekly" => Period::Week,
        "month" | "monthly" => Period::Month,
        "total" => Period::Total,
        other => {
            return Err(format!(
                "unknown budget period `{other}` (day, week, month, total)"
            ))
        }
    })
}

/// Claude model ids the demo serves with `anthropic/claude-sonnet-4.5`: Anthropic's own ids (what
/// Claude Code and the anthropic SDKs send when no model is configured; Claude Code 2.1 defaults to
/// `claude-opus-4-8`, its haiku tier to `claude-haiku-4-5`) and OpenRouter's `anthropic/…` slugs.
pub const CLAUDE_ALIASES: &[&str] = &[
    "anthropic/claude-sonnet-4",
    "anthropic/claude-sonnet-4-5",
    "anthropic/claude-sonnet-4.6",
    "anthropic/claude-sonnet-5",
    "anthropic/claude-opus-4",
    "anthropic/claude-opus-4.1",
    "anthropic/claude-opus-4.5",
    "anthropic/claude-opus-4.6",
    "anthropic/claude-opus-4.7",
    "anthropic/claude-opus-4.8",
    "anthropic/claude-haiku-4.5",
    "anthropic/claude-3.5-haiku",
    "anthropic/claude-3.7-sonnet",
    "claude-sonnet-5",
    "claude-sonnet-4-6",
    "claude-sonnet-4-5",
    "claude-sonnet-4-5-20250929",
    "claude-sonnet-4-0",
    "claude-sonnet-4-20250514",
    "claude-opus-4-8",
    "claude-opus-4-7",
    "claude-opus-4-6",
    "claude-opus-4-5",
    "claude-opus-4-5-20251101",
    "claude-opus-4-1",
    "claude-opus-4-1-20250805",
    "claude-opus-4-0",
    "claude-opus-4-20250514",
    "claude-haiku-4-5",
    "claude-haiku-4-5-20251001",
    "claude-3-7-sonnet-latest",
    "claude-3-7-sonnet-20250219",
    "claude-3-5-haiku-latest",
    "claude-3-5-haiku-20241022",
];

/// Embedding models of the demo (their output modality is `embeddings`, so `/models` lists them
/// only when asked with `output_modalities=embeddings`), on the demo's providers.
pub const DEMO_EMBEDDINGS: &[u8] = br#"{
  "models": [
    {"id": "openai/text-embedding-3-small", "name": "OpenAI: Text Embedding 3 Small",
     "context_length": 8192, "description": "Demo fixture: an embedding model.",
     "architecture": {"modality": "text->embeddings", "input_modalities": ["text"],
                      "output_modalities": ["embeddings"]},
     "pricing": {"prompt": "0.00000002", "completion": "0"}},
    {"id": "qwen/qwen3-embedding-8b", "name": "Qwen: Qwen3 Embedding 8B",
     "context_length": 32000, "description": "Demo fixture: an open embedding model on two providers.",
     "architecture": {"modality": "text->embeddings", "input_modalities": ["text"],
                      "output_modalities": ["embeddings"]},
     "pricing": {"prompt": "0.00000001", "completion": "0"}}
  ],
  "endpoints": {
    "openai/text-embedding-3-small": [
      {"tag": "openai", "provider_name": "OpenAI", "context_length": 8192,
       "pricing": {"prompt": "0.00000002", "completion": "0"}}
    ],
    "qwen/qwen3-embedding-8b": [
      {"tag": "deepinfra", "provider_name": "DeepInfra", "context_length": 32000,
       "pricing": {"prompt": "0.00000001", "completion": "0"}},
      {"tag": "together", "provider_name": "Together", "context_length": 32000,
       "pricing": {"prompt": "0.00000002", "completion": "0"}}
    ]
  }
}"#;

/// The demo's presets (`"model": "@preset/NAME"`, `"preset": "NAME"`,
/// `"model": "AUTHOR/SLUG@preset/NAME"`).
pub const DEMO_PRESETS: &[u8] = br#"{
  "support": {"model": "openai/gpt-4o-mini", "temperature": 0.2, "max_tokens": 200,
              "system_prompt": "You are a support agent. Answer in two sentences.",
              "provider": {"sort": "price"}},
  "open-weights": {"models": ["meta-llama/llama-3.3-70b-instruct", "deepseek/deepseek-chat"],
                   "provider": {"data_collection": "deny"}, "top_p": 0.9}
}"#;

/// The embedded default: the demo catalog over simulated providers with varied prices, latencies,
/// failure rates and data policies.
pub fn demo(seed: u64, zero_latency: bool) -> Config {
    demo_recording(seed, zero_latency, false)
}

/// [`demo`], with the simulator keeping the last request of each provider when `record` is set
/// (tests read them; the server does not, to save a header-map copy per request).
pub fn demo_recording(seed: u64, zero_latency: bool, record: bool) -> Config {
    demo_with(seed, zero_latency, record, false)
}

/// [`demo_recording`], with the simulated providers answering requests that offer tools with
/// tool calls when `tool_calls` is set (`--sim-tools`), so agents such as Codex run a tool.
pub fn demo_with(seed: u64, zero_latency: bool, record: bool, tool_calls: bool) -> Config {
    let file = CatalogFile::from_json(DEMO_CATALOG).expect("the demo catalog parses");
    let mut builder = file
        .apply(Catalog::builder(), None)
        .expect("the demo catalog is valid");
    builder = CatalogFile::from_json(DEMO_EMBEDDINGS)
        .expect("the demo embedding models parse")
        .apply(builder, None)
        .expect("the demo embedding models are valid");
    // Every provider answers at http://<slug>.sim/v1 with its own key; variant endpoints
    // (`deepinfra/turbo`, `google-vertex/us-east5`) get their own upstream model id so that the
    // simulator can give them their own profile.
    builder = builder.map_providers(|p| {
        let url = format!("http://{}.sim/v1", p.slug);
        let key = format!("sk-sim-{}-demo", p.slug);
        // Anthropic's own endpoint speaks the Anthropic Messages wire (as the real one does), with
        // its key in `x-api-key`: chat-completions requests routed there are translated both ways.
        let p = if p.slug == "anthropic" {
            p.wire_format(WireFormat::Anthropic).auth(AuthStyle::Header(
                http::HeaderName::from_static("x-api-key"),
            ))
        } else {
            p
        };
        p.base_url(url).credentials(Credentials::key(key))
    });
    builder = builder.map_endpoints(|e| {
        if let Some((_, variant)) = e.tag.split_once('/') {
            e.provider_model_id = Some(format!("{}@{variant}", e.model_id));
        }
    });
    // Claude model ids (what Claude Code and the anthropic SDKs send by default) are served by the
    // demo's Claude model. `ANTHROPIC_MODEL` may name any catalog slug instead.
    for alias in CLAUDE_ALIASES {
        builder = builder.alias(*alias, "anthropic/claude-sonnet-4.5");
    }
    let catalog = builder.build().expect("the demo catalog is valid");

    let mut sim = SimulatedProvider::builder(seed);
    for e in catalog.all_endpoints() {
        let host = format!("{}.sim", e.provider_slug());
        let mut profile = if zero_latency {
            SimProfile::instant()
        } else {
            match (e.latency_last_30m, e.throughput_last_30m) {
                (Some(l), Some(t)) => {
                    SimProfile::from_observed(l.p50, l.p99.max(l.p50 * 1.5), t.p50)
                }
                _ => SimProfile::default(),
            }
        };
        if !zero_latency {
            // Varied reliability, so fallbacks, cooldowns and /endpoints uptimes have something to show.
            profile = match e.tag.as_str() {
                "google-vertex/us-east5" => profile.with_failure(SimOutcome::Status(502), 0.3),
                "chutes" => profile.with_failure(SimOutcome::Status(503), 0.05),
                "groq" => profile
                    .with_failure(SimOutcome::Status(429), 0.05)
                    .with_retry_after(Duration::from_secs(2)),
                "together" => profile.with_failure(SimOutcome::Status(500), 0.02),
                "deepseek" => profile.with_failure(SimOutcome::Truncated, 0.02),
                "fireworks" => profile.with_failure(SimOutcome::ConnectError, 0.02),
                _ => profile,
            };
        }
        let profile = profile.with_tool_calls(tool_calls);
        sim = sim.host_model(&host, e.upstream_model(), profile);
    }
    Config {
        catalog,
        upstream: Upstream::Sim(sim.record_requests(record).build()),
        keys: vec![ApiKey {
            name: "demo-small-budget".into(),
            secret: DEMO_KEY.into(),
            limit: Some((Period::Day, Usd::parse(DEMO_KEY_BUDGET).expect("a decimal"))),
        }],
        loopback_without_key: true,
        listen: ([127, 0, 0, 1], 8080).into(),
        body_limit: tower_ai_gateway::model_routing::DEFAULT_BODY_LIMIT,
        floor: DataFloor::none(),
        cap: MaxPrice::default(),
        attempt_timeout: Duration::from_secs(120),
        ignore: Vec::new(),
        cache: tower_ai_gateway::cache::ResponseCacheLayer::new(),
        metrics_token: None,
        demo: true,
        // OpenRouter's `:free` limits (20/min, 50/day per key) and nothing else.
        rate_limits: limits::RateLimits::new(&limits::RateLimitsSection::default(), &[]),
        server: ServerSection::default(),
        redis: None,
        redis_stores: None,
        trace_content: 0,
        presets: Presets::from_json(DEMO_PRESETS).expect("the demo presets are valid"),
    }
}

/// `metrics_token` or `metrics_token_env` (at most one; at least 16 characters).
fn metrics_token(g: &GatewaySection) -> Result<Option<String>, String> {
    let token = match (&g.metrics_token, &g.metrics_token_env) {
        (None, None) => return Ok(None),
        (Some(t), None) => t.clone(),
        (None, Some(var)) => std::env::var(var)
            .map_err(|_| format!("metrics_token_env: environment variable `{var}` is not set"))?,
        _ => return Err("set at most one of `metrics_token` and `metrics_token_env`".into()),
    };
    if token.len() < 16 {
        return Err("metrics_token: at least 16 characters".into());
    }
    Ok(Some(token))
}

/// A config file: the catalog (see the README's catalog schema) plus a `[gateway]` section.
pub fn from_file(path: &Path) -> Result<Config, String> {
    let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let is_toml = path.extension().is_some_and(|e| e == "toml");
    let gateway: GatewaySection = if is_toml {
        let s = std::str::from_utf8(&text).map_err(|e| e.to_string())?;
        toml::from_str::<FileWithGateway>(s)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .gateway
    } else {
        serde_json::from_slice::<FileWithGateway>(&text)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .gateway
    };
    let catalog = Catalog::from_path(path).map_err(|e| e.to_string())?;
    let mut keys = Vec::new();
    let mut key_rates = Vec::new();
    for (i, k) in gateway.keys.iter().enumerate() {
        let secret = match (&k.key, &k.key_env) {
            (Some(s), None) => s.clone(),
            (None, Some(var)) => std::env::var(var).map_err(|_| {
                format!("gateway key #{i}: environment variable `{var}` is not set")
            })?,
            _ => {
                return Err(format!(
                    "gateway key #{i}: set exactly one of `key` and `key_env`"
                ))
            }
        };
        if secret.len() < 8 {
            return Err(format!(
                "gateway key #{i}: keys must be at least 8 characters"
            ));
        }
        let limit = match &k.limit_usd {
            Some(l) => Some((
                parse_period(k.period.as_deref())?,
                Usd::parse(l).map_err(|e| format!("gateway key #{i}: {e}"))?,
            )),
            None => None,
        };
        let name = k
            .name
            .clone()
            .unwrap_or_else(|| format!("key-{}…", &secret[..4]));
        key_rates.push((name.clone(), k.rate.clone()));
        keys.push(ApiKey {
            name,
            secret,
            limit,
        });
    }
    let floor = match gateway.data_floor.as_deref() {
        None | Some("none") => DataFloor::none(),
        Some("deny") => DataFloor::deny_data_collection(),
        Some("zdr") => DataFloor::zdr(),
        Some(other) => return Err(format!("data_floor `{other}`: expected none, deny or zdr")),
    };
    let metrics_token = metrics_token(&gateway)?;
    Ok(Config {
        catalog,
        upstream: Upstream::Http,
        keys,
        loopback_without_key: false,
        listen: gateway.listen.unwrap_or(([127, 0, 0, 1], 8080).into()),
        body_limit: gateway
            .body_limit
            .unwrap_or(tower_ai_gateway::model_routing::DEFAULT_BODY_LIMIT),
        floor,
        cap: gateway.max_price.unwrap_or_default(),
        attempt_timeout: Duration::from_secs(gateway.attempt_timeout_secs.unwrap_or(120)),
        ignore: gateway.ignore_providers,
        cache: gateway.cache.layer()?,
        metrics_token,
        demo: false,
        rate_limits: limits::RateLimits::new(&gateway.rate_limits, &key_rates),
        server: gateway.server,
        redis: gateway.redis,
        redis_stores: None,
        trace_content: 0,
        presets: Presets::new(gateway.presets).map_err(|e| format!("[gateway.presets]: {e}"))?,
    })
}
