//! Feature `otel`: the gateway's GenAI spans (`tower_ai_gateway::telemetry`) exported over
//! OTLP/HTTP (protobuf) through `tracing-opentelemetry`.
//!
//! On when `--otlp-endpoint URL` is given (the collector's base URL, e.g.
//! `http://127.0.0.1:4318`; `/v1/traces` is added unless present) or when the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` variables are set (read by
//! the exporter itself, as are `OTEL_EXPORTER_OTLP_HEADERS` and the other standard variables).
//! Only the spans of target `tower_ai_gateway::gen_ai` are exported; spans are batched and sent
//! from the exporter's own thread, and flushed at shutdown. The exporter speaks plain HTTP: put
//! a local collector in front of a TLS endpoint.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The OTLP traces URL for `--otlp-endpoint`: the base URL with `/v1/traces`.
pub fn traces_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    }
}

/// Whether the standard environment asks for OTLP export.
pub fn configured_by_env() -> bool {
    [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
}

/// A tracer provider exporting to `endpoint` (else to what the environment says).
pub fn provider(endpoint: Option<&str>) -> Result<SdkTracerProvider, String> {
    let mut builder = opentelemetry_otlp::SpanExporter::builder().with_http();
    if let Some(e) = endpoint {
        builder = builder.with_endpoint(traces_url(e));
    }
    let exporter = builder.build().map_err(|e| format!("OTLP exporter: {e}"))?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name("tower-ai-gateway")
                .build(),
        )
        .build())
}

/// The `tracing` layer that hands the gateway's GenAI spans to `provider`.
pub fn layer<S>(provider: &SdkTracerProvider) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    let tracer = provider.tracer("tower-ai-gateway");
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(
            Targets::new().with_target(tower_ai_gateway::telemetry::TARGET, tracing::Level::INFO),
        )
}
