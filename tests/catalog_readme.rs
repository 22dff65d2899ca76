//! The catalog file shown in the README (`examples/catalog.toml`) loads and means what the README
//! says it means; the README's other catalog snippets load too.

use tower_ai_gateway::catalog::{
    AuthStyle, Catalog, CatalogError, Credentials, ProviderDataPolicy, Quantization, Usd,
    WireFormat,
};
use tower_ai_gateway::{Availability, AvailabilityCode, ExcludedBy, GatewayError};

const EXAMPLE: &str = include_str!("../examples/catalog.toml");
const README: &str = include_str!("../README.md");

fn per_million(u: Usd) -> String {
    u.per_million().normalize().to_string()
}

/// The text between the line after `marker` and the next closing fence.
fn readme_block(marker: &str) -> &'static str {
    let start = README
        .find(marker)
        .unwrap_or_else(|| panic!("README has no `{marker}`"));
    let rest = &README[start..];
    let body = &rest[rest.find('\n').expect("fence line") + 1..];
    &body[..body.find("\n```").expect("closing fence") + 1]
}

#[test]
fn readme_shows_the_example_file_verbatim() {
    assert_eq!(
        readme_block("```toml\n# An example catalog file"),
        EXAMPLE,
        "the README's complete example must be a copy of examples/catalog.toml"
    );
}

#[test]
fn example_catalog_loads_from_path_and_from_text() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/catalog.toml");
    let from_path = Catalog::from_path(path).unwrap();
    let from_text = Catalog::from_toml(EXAMPLE).unwrap();
    for c in [&from_path, &from_text] {
        assert_eq!(c.providers().len(), 3);
        assert_eq!(c.models().len(), 3);
        assert_eq!(c.all_endpoints().len(), 4);
    }
}

#[test]
fn example_catalog_means_what_it_says() {
    let c = Catalog::from_toml(EXAMPLE).unwrap();

    let local = c.provider("local").unwrap();
    assert_eq!(local.base_url.as_deref(), Some("http://127.0.0.1:8000/v1"));
    assert_eq!(
        local.credentials.secret().map(|s| s.expose()),
        Some("local-dev-token")
    );
    assert_eq!(local.auth, AuthStyle::Bearer);
    assert_eq!(local.data_policy, ProviderDataPolicy::ZDR);

    let deepinfra = c.provider("deepinfra").unwrap();
    assert_eq!(deepinfra.credentials, Credentials::None);
    assert_eq!(deepinfra.wire_format, WireFormat::Openai);

    let anthropic = c.provider("anthropic").unwrap();
    assert_eq!(anthropic.wire_format, WireFormat::Anthropic);
    assert_eq!(
        anthropic.auth,
        AuthStyle::Header("x-api-key".parse().unwrap())
    );
    assert_eq!(anthropic.extra_headers.len(), 1);
    assert_eq!(anthropic.extra_headers[0].0, "anthropic-version");
    assert_eq!(anthropic.data_policy.retention_days, Some(30));
    assert!(anthropic.data_policy.retains_prompts && !anthropic.data_policy.zdr);

    let llama = c.endpoints("meta-llama/llama-3.3-70b-instruct");
    let tags: Vec<_> = llama.iter().map(|e| e.tag.as_str()).collect();
    assert_eq!(tags, ["deepinfra/turbo", "local"]);
    assert_eq!(llama[0].quantization, Some(Quantization::Nvfp4));
    assert_eq!(
        llama[0].upstream_model(),
        "meta-llama/Llama-3.3-70B-Instruct-Turbo"
    );
    assert_eq!(per_million(llama[0].pricing.prompt), "0.038");
    assert_eq!(per_million(llama[0].pricing.completion), "0.12");
    assert_eq!(llama[0].provider_name, "DeepInfra");

    let claude = &c.endpoints("anthropic/claude-sonnet-4.5")[0];
    assert_eq!(per_million(claude.pricing.prompt), "3");
    assert_eq!(claude.pricing.overrides.len(), 1);
    let long = claude.pricing.effective(250_000, 0);
    assert_eq!(per_million(long.prompt), "6");
    assert_eq!(per_million(long.completion), "22.5");
    let short = claude.pricing.effective(1_000, 0);
    assert_eq!(per_million(short.input_cache_read), "0.3");

    // `default_provider` gave the endpoint-less model one endpoint on `local`.
    let coder = c.endpoints("qwen/qwen3-coder");
    assert_eq!(coder.len(), 1);
    assert_eq!(coder[0].tag, "local");
    assert_eq!(coder[0].context_length, 262144);
    assert_eq!(coder[0].max_completion_tokens, Some(65536));

    assert_eq!(c.alias("fast"), Some("meta-llama/llama-3.3-70b-instruct"));
    assert_eq!(c.alias("coder"), Some("qwen/qwen3-coder"));
}

#[test]
fn readme_endpoint_list_form_loads() {
    let c = Catalog::from_toml(readme_block("```toml\n# Endpoints as a list")).unwrap();
    let eps = c.endpoints("openai/gpt-4o-mini");
    assert_eq!(eps.len(), 1);
    assert_eq!(per_million(eps[0].pricing.prompt), "0.15");
}

#[test]
fn readme_json_example_loads() {
    let c = Catalog::from_json(readme_block("```json\n{\n  \"providers\"").as_bytes())
        .unwrap_or_else(|e| {
            panic!("{e}");
        });
    assert_eq!(c.endpoints("acme/chat-1").len(), 1);
}

#[test]
fn readme_openrouter_import_snippet_loads() {
    let dump = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/catalog/openrouter-models.json"
    );
    let text = readme_block("```toml\n# Serve OpenRouter's whole model list")
        .replace("\"openrouter-models.json\"", &format!("{dump:?}"));
    match Catalog::from_toml(&text) {
        Ok(c) => assert_eq!(c.models().len(), 414),
        Err(CatalogError::MissingCredential { var, .. }) => {
            assert_eq!(var, "OPENROUTER_API_KEY");
            let without_key: String = text
                .lines()
                .filter(|l| !l.starts_with("api_key_env"))
                .map(|l| format!("{l}\n"))
                .collect();
            let c = Catalog::from_toml(&without_key).unwrap();
            assert_eq!(c.models().len(), 414);
            assert_eq!(c.all_endpoints().len(), 409);
            assert_eq!(c.endpoints("openai/gpt-4o-mini")[0].tag, "openrouter");
        }
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn readme_error_envelopes_are_what_the_code_emits() {
    let shown: serde_json::Value =
        serde_json::from_str(readme_block("```json\n{\"error\": {\"code\": 400")).unwrap();
    let err =
        GatewayError::invalid_request("provider.sort", "one of price, throughput, latency, exacto");
    assert_eq!(shown, err.to_json());

    let shown: serde_json::Value =
        serde_json::from_str(readme_block("```json\n{\"error\": {\n  \"code\": 404")).unwrap();
    let mut a = Availability::new(
        AvailabilityCode::ConstraintFiltered,
        vec!["openai/gpt-4o-mini".into()],
    );
    a.affected_providers = vec!["openai".into(), "azure".into()];
    a.excluded_by = vec![ExcludedBy::MaxPrice];
    let err = GatewayError::unavailable(
        "No endpoints found for openai/gpt-4o-mini that match max_price",
        a,
    );
    assert_eq!(shown, err.to_json());
}

/// A copy of the README's "Reading a catalog in code" snippet.
#[test]
fn readme_usage_snippet_runs() -> Result<(), Box<dyn std::error::Error>> {
    use tower_ai_gateway::route::RequestView;

    let catalog = Catalog::from_path("examples/catalog.toml")?;
    let body = br#"{"model":"fast","messages":[{"role":"user","content":"hi"}],
               "provider":{"sort":"price","zdr":true}}"#;
    let view = RequestView::parse(body)?; // 400 GatewayError on bad input
    let model = view.model.as_deref().unwrap_or_default();
    let model = catalog.alias(model).unwrap_or(model); // "meta-llama/llama-3.3-70b-instruct"
    let mut seen = Vec::new();
    for ep in catalog.endpoints(model) {
        println!("{} {}", ep.tag, ep.pricing.prompt.per_million());
        seen.push(ep.tag.clone());
    }
    assert_eq!(model, "meta-llama/llama-3.3-70b-instruct");
    assert_eq!(seen, ["deepinfra/turbo", "local"]);
    assert_eq!(view.provider.zdr, Some(true));
    Ok(())
}
