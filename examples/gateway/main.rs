//! An OpenRouter-compatible HTTP gateway built from the crate's layers.
//!
//! ```text
//! cargo run --release --example gateway                      # embedded demo: simulated providers, offline
//! cargo run --release --example gateway -- --config gw.toml  # real providers (keys from the environment)
//! ```
//!
//! Options: `--listen ADDR` (default 127.0.0.1:8080), `--config FILE`, `--seed N` (simulator seed),
//! `--redis URL` (budgets, rate limits and the cache in Redis, shared by replicas; feature `redis`),
//! `--zero-latency` (simulated providers answer at once: for load tests), `--bare` (serve one
//! zero-latency simulated provider over HTTP with no layers: the baseline for load tests),
//! `--otlp-endpoint URL` (feature `otel`: export the GenAI spans over OTLP/HTTP; the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` works too), `--trace-content` (record prompt and completion text
//! on the GenAI spans, up to 16 KiB each; off by default), `--threads N` (tokio worker threads;
//! default: the cores the process may run on; 1 runs everything on one thread).

mod app;
mod config;
#[cfg(feature = "otel")]
mod otel;
#[path = "../shared/runtime.rs"]
mod runtime;
mod server;

use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::net::TcpListener;

struct Args {
    listen: Option<SocketAddr>,
    config: Option<PathBuf>,
    seed: u64,
    zero_latency: bool,
    bare: bool,
    otlp_endpoint: Option<String>,
    redis: Option<String>,
    trace_content: bool,
    sim_tools: bool,
    /// Worker threads of the runtime (`--threads`); `None`: the cores the process may run on.
    threads: Option<usize>,
}

fn usage() -> ! {
    eprintln!(
        "usage: gateway [--listen ADDR] [--config FILE] [--seed N] [--zero-latency] [--bare] \
         [--otlp-endpoint URL] [--trace-content] [--sim-tools]\n\
         [--redis URL] [--threads N]\n\
         With no --config, serves the embedded demo catalog over simulated providers (offline);\n\
         --sim-tools makes them answer requests that offer tools with tool calls."
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        listen: None,
        config: None,
        seed: 1,
        zero_latency: false,
        bare: false,
        otlp_endpoint: None,
        redis: None,
        trace_content: false,
        sim_tools: false,
        threads: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--listen" => a.listen = it.next().and_then(|v| v.parse().ok()).or_else(|| usage()),
            "--config" => a.config = it.next().map(PathBuf::from).or_else(|| usage()),
            "--seed" => {
                a.seed = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            "--zero-latency" => a.zero_latency = true,
            "--bare" => a.bare = true,
            "--otlp-endpoint" => a.otlp_endpoint = it.next().or_else(|| usage()),
            "--redis" => a.redis = Some(it.next().unwrap_or_else(|| usage())),
            "--trace-content" => a.trace_content = true,
            "--sim-tools" => a.sim_tools = true,
            "--threads" => {
                a.threads = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|n| *n > 0)
                    .or_else(|| usage())
            }
            "-h" | "--help" => usage(),
            other => {
                eprintln!("unknown argument `{other}`");
                usage()
            }
        }
    }
    a
}

/// Logs to stderr (`RUST_LOG`, default `info`), and with feature `otel` the GenAI spans to an
/// OTLP collector when one is configured; returns the tracer provider to flush at exit.
#[cfg(feature = "otel")]
fn init_tracing(args: &Args) -> Option<opentelemetry_sdk::trace::SdkTracerProvider> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let wanted = args.otlp_endpoint.is_some() || otel::configured_by_env();
    let provider = match wanted.then(|| otel::provider(args.otlp_endpoint.as_deref())) {
        Some(Err(e)) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
        Some(Ok(p)) => Some(p),
        None => None,
    };
    tracing_subscriber::registry()
        .with(fmt_layer())
        .with(provider.as_ref().map(otel::layer))
        .init();
    provider
}

/// Logs to stderr (`RUST_LOG`, default `info`).
#[cfg(not(feature = "otel"))]
fn init_tracing(args: &Args) -> Option<std::convert::Infallible> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    if args.otlp_endpoint.is_some() {
        eprintln!("error: --otlp-endpoint needs the `otel` feature");
        std::process::exit(2);
    }
    tracing_subscriber::registry().with(fmt_layer()).init();
    None
}

fn fmt_layer<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use tracing_subscriber::Layer;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt::layer().with_filter(filter)
}

fn main() {
    let args = parse_args();
    let runtime = runtime::runtime(args.threads).unwrap_or_else(|e| {
        eprintln!("error: cannot start the tokio runtime: {e}");
        std::process::exit(1);
    });
    runtime.block_on(async {
        let tracer = init_tracing(&args);
        run(args).await;
        flush(tracer);
    });
}

/// Sends the spans still batched.
#[cfg(feature = "otel")]
fn flush(provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>) {
    if let Some(p) = provider {
        let _ = p.shutdown();
    }
}

#[cfg(not(feature = "otel"))]
fn flush(_: Option<std::convert::Infallible>) {}

async fn run(args: Args) {
    if args.bare {
        let listen = args.listen.unwrap_or(([127, 0, 0, 1], 8081).into());
        let router = bare_router(args.seed);
        let limits = server::ServerLimits::default();
        serve(
            listen,
            router,
            None,
            limits,
            "bare simulated provider (no layers)",
        )
        .await;
        return;
    }

    let mut config = match &args.config {
        Some(path) => match config::from_file(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        },
        None if args.sim_tools => config::demo_with(args.seed, args.zero_latency, false, true),
        None => config::demo(args.seed, args.zero_latency),
    };
    if let Some(url) = args.redis {
        config.redis = Some(url);
    }
    if args.trace_content {
        config.trace_content = 16 * 1024;
    }
    connect_redis(&mut config).await;
    let listen = args.listen.unwrap_or(config.listen);
    let demo = config.demo;
    let no_keys = config.keys.is_empty();
    let models = config.catalog.models().len();
    let endpoints = config.catalog.all_endpoints().len();
    let limits = server::ServerLimits::from_config(&config.server, config.body_limit);
    let (router, state) = app::build(config);
    let chats = app::ChatRoutes::new(&state);
    banner(listen, demo, no_keys, models, endpoints);
    serve(listen, router, Some(chats), limits, "gateway").await;
}

/// With `redis` set: connects (or exits), and puts the rate limits and the cache in Redis; the app
/// puts the budgets there too.
async fn connect_redis(config: &mut config::Config) {
    let Some(url) = config.redis.clone() else {
        return;
    };
    #[cfg(feature = "redis")]
    {
        use tower_ai_gateway::redis::{RedisOptions, RedisStores};
        let stores = match RedisStores::connect(&url, RedisOptions::default()).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: redis {url}: {e}");
                std::process::exit(1);
            }
        };
        config.use_redis(stores);
        tracing::info!("budgets, rate limits and the response cache are in Redis");
    }
    #[cfg(not(feature = "redis"))]
    {
        eprintln!("error: redis {url}: build the example with `--features redis`");
        std::process::exit(1);
    }
}

/// One zero-latency simulated provider behind a plain axum route: the baseline for load tests.
fn bare_router(seed: u64) -> axum::Router {
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let sim = tower_ai_gateway::sim::SimulatedProvider::builder(seed)
        .default_profile(tower_ai_gateway::sim::SimProfile::instant())
        .record_requests(false)
        .build();
    let handler = move |req: axum::extract::Request| {
        let sim = sim.clone();
        async move {
            let (parts, body) = req.into_parts();
            let bytes = body
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            let req = http::Request::from_parts(parts, http_body_util::Full::new(bytes));
            match sim.oneshot(req).await {
                Ok(res) => res.map(Body::new),
                Err(e) => http::Response::builder()
                    .status(502)
                    .body(Body::from(e.to_string()))
                    .unwrap_or_default(),
            }
        }
    };
    axum::Router::new()
        .route(
            "/api/v1/chat/completions",
            axum::routing::post(handler.clone()),
        )
        .route("/v1/chat/completions", axum::routing::post(handler))
}

async fn serve(
    listen: SocketAddr,
    router: axum::Router,
    chats: Option<app::ChatRoutes>,
    limits: server::ServerLimits,
    what: &str,
) {
    let listener = match TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {listen}: {e}");
            std::process::exit(1);
        }
    };
    tracing::info!(%listen, "{what} listening");
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down: finishing requests in flight");
    };
    // Header and body read timeouts, caps on connections and requests in flight: see server.rs.
    server::serve(listener, router, chats, limits, shutdown).await;
}

fn banner(listen: SocketAddr, demo: bool, no_keys: bool, models: usize, endpoints: usize) {
    let url = format!("http://{listen}/api/v1");
    println!("tower-ai-gateway listening on http://{listen}");
    println!("  OpenRouter-compatible API: {url}   ({models} models, {endpoints} endpoints)");
    println!("  Anthropic Messages API:    {url}/messages (and /v1/messages, …/count_tokens)");
    if demo {
        println!("  Embedded demo: simulated providers, no network. Callers on loopback need no key (any");
        println!("  unknown key from loopback counts as none);");
        println!(
            "  the key `{}` has a ${} daily budget and shows the 402 path.",
            config::DEMO_KEY,
            config::DEMO_KEY_BUDGET
        );
    } else if no_keys {
        println!("  WARNING: no API keys configured: every caller is let in.");
    }
    println!(
        r#"
Try:
  curl -s {url}/chat/completions -H 'content-type: application/json' \
    -d '{{"model":"meta-llama/llama-3.3-70b-instruct","messages":[{{"role":"user","content":"Hello"}}]}}'

  # streamed, fallback models, provider preferences
  curl -sN {url}/chat/completions -H 'content-type: application/json' \
    -d '{{"models":["deepseek/deepseek-chat","openai/gpt-4o-mini"],"stream":true,
         "provider":{{"sort":"throughput","data_collection":"deny","max_price":{{"prompt":1}}}},
         "messages":[{{"role":"user","content":"Hello"}}]}}'

  curl -s {url}/models | head -c 300; echo
  curl -s {url}/models/meta-llama/llama-3.3-70b-instruct/endpoints
  curl -s http://{listen}/metrics

Python (openai SDK):
  from openai import OpenAI
  client = OpenAI(base_url="{url}", api_key="{key}")
  client.chat.completions.create(model="openai/gpt-4o-mini", messages=[{{"role":"user","content":"Hi"}}])

Claude Code (any catalog slug as the model):
  ANTHROPIC_BASE_URL=http://{listen} ANTHROPIC_AUTH_TOKEN={key} ANTHROPIC_API_KEY="" \
    ANTHROPIC_MODEL=deepseek/deepseek-chat claude
"#,
        key = if demo { "local" } else { "<your gateway key>" }
    );
}
