//! The shipped catalogs load, validation names the offending entry, and prices survive exactly.

use tower_ai_gateway::catalog::{
    Catalog, CatalogError, Credentials, Endpoint, LiteLlmPrices, Model, Pricing, Provider,
    Quantization, Usd,
};

const DEMO: &[u8] = include_bytes!("fixtures/catalog/demo-catalog.json");
const DUMP: &[u8] = include_bytes!("fixtures/catalog/openrouter-models.json");
const LITELLM: &[u8] = include_bytes!("fixtures/catalog/litellm-model-prices.json");

fn usd(s: &str) -> Usd {
    Usd::parse(s).unwrap()
}

#[test]
fn demo_catalog_loads() {
    let c = Catalog::from_json(DEMO).unwrap();
    assert_eq!(c.providers().len(), 14);
    assert_eq!(c.models().len(), 8);
    assert_eq!(c.all_endpoints().len(), 27);
    let llama = c.endpoints("meta-llama/llama-3.3-70b-instruct");
    let tags: Vec<_> = llama.iter().map(|e| e.tag.as_str()).collect();
    assert_eq!(
        tags,
        [
            "deepinfra/turbo",
            "deepinfra/fp8",
            "together",
            "fireworks",
            "groq"
        ]
    );
    assert_eq!(llama[0].quantization, Some(Quantization::Nvfp4));
    assert_eq!(
        llama[0]
            .pricing
            .prompt
            .per_million()
            .normalize()
            .to_string(),
        "0.038"
    );
    let chutes = c.provider("chutes").unwrap();
    assert!(chutes.data_policy.training);
    assert!(c.provider("azure").unwrap().data_policy.zdr);
    // Endpoints point back at their provider.
    let r = c.endpoint_range("openai/gpt-4o-mini").unwrap();
    assert_eq!(c.endpoint_provider(r.start).unwrap().slug, "openai");
    assert_eq!(c.endpoint(r.start + 1).unwrap().tag, "openai/priority");
    // Derived fields.
    assert!(llama[0]
        .params()
        .contains(tower_ai_gateway::catalog::Parameter::Tools));
    assert_eq!(
        llama[0].key().to_string(),
        "meta-llama/llama-3.3-70b-instruct@deepinfra/turbo"
    );
}

#[test]
fn openrouter_dump_loads_and_round_trips_prices_exactly() {
    let c = Catalog::from_openrouter_models(
        DUMP,
        Provider::new("openrouter", "OpenRouter").base_url("https://openrouter.ai/api/v1"),
    )
    .unwrap();
    assert_eq!(c.models().len(), 414);
    // Router models ("-1" prices) are kept as models but get no endpoint.
    assert!(c.model("openrouter/auto").unwrap().pricing.is_variable());
    assert!(c.endpoints("openrouter/auto").is_empty());
    assert_eq!(c.all_endpoints().len(), 414 - 5);

    let raw: serde_json::Value = serde_json::from_slice(DUMP).unwrap();
    for (m, src) in c.models().iter().zip(raw["data"].as_array().unwrap()) {
        assert_eq!(m.id, src["id"].as_str().unwrap());
        let back = serde_json::to_value(&m.pricing).unwrap();
        assert_eq!(back, src["pricing"], "pricing of {} changed", m.id);
        let again: Pricing = serde_json::from_value(back).unwrap();
        assert_eq!(again, m.pricing);
        // The whole model object round-trips too.
        assert_eq!(
            serde_json::to_value(m).unwrap(),
            *src,
            "model {} changed",
            m.id
        );
    }
    // 22 decimal places survive.
    let odd = c
        .models()
        .iter()
        .flat_map(|m| m.pricing.input_cache_write)
        .find(|p| p.to_string() == "0.0000000208333333333333");
    assert!(odd.is_some());
}

#[test]
fn litellm_prices_load() {
    let prices = LiteLlmPrices::from_json(LITELLM).unwrap();
    assert!(prices.len() > 4000);
    let mini = prices.get("openai/gpt-4o-mini").unwrap();
    assert_eq!(
        mini.pricing.prompt.per_million().normalize().to_string(),
        "0.15"
    );
    assert_eq!(
        mini.pricing
            .completion
            .per_million()
            .normalize()
            .to_string(),
        "0.6"
    );
    assert_eq!(mini.pricing.input_cache_read, Some(usd("0.000000075")));
    assert_eq!(mini.max_output_tokens, Some(16384));

    // As a pricing source for an unpriced endpoint.
    let mut ep = Endpoint::new("openai/gpt-4o-mini", "openai");
    ep.provider_model_id = Some("gpt-4o-mini".into());
    let c = Catalog::builder()
        .provider(Provider::new("openai", "OpenAI"))
        .model(Model::new("openai/gpt-4o-mini", "GPT-4o mini"))
        .endpoint(ep)
        .price_from(&prices)
        .build()
        .unwrap();
    let ep = &c.endpoints("openai/gpt-4o-mini")[0];
    assert_eq!(ep.pricing.prompt, usd("0.00000015"));
    assert_eq!(ep.context_length, 128000);
}

#[test]
#[cfg(feature = "toml")]
fn toml_catalog_file() {
    let toml = r#"
        default_provider = "local"
        [[providers]]
        slug = "local"
        name = "Local vLLM"
        base_url = "http://127.0.0.1:8000/v1/"
        auth = "x-api-key"
        api_key = "sk-local"
        headers = { "x-team" = "ml" }
        data_policy = { training = false, retains_prompts = false, zdr = true }

        [[models]]
        id = "qwen/qwen3-8b"
        name = "Qwen3 8B"
        context_length = 32768
        pricing = { prompt = "0", completion = "0" }

        [aliases]
        small = "qwen/qwen3-8b"
    "#;
    let c = Catalog::from_toml(toml).unwrap();
    let p = c.provider("local").unwrap();
    assert_eq!(p.base_url.as_deref(), Some("http://127.0.0.1:8000/v1"));
    assert_eq!(p.credentials.secret().unwrap().expose(), "sk-local");
    assert_eq!(c.endpoints("qwen/qwen3-8b")[0].context_length, 32768);
    assert_eq!(c.alias("small"), Some("qwen/qwen3-8b"));
}

fn base() -> tower_ai_gateway::catalog::CatalogBuilder {
    Catalog::builder()
        .provider(Provider::new("acme", "Acme"))
        .model(Model::new("acme/m", "M"))
}

#[test]
fn validation_duplicate_model() {
    let e = base()
        .model(Model::new("acme/m", "again"))
        .build()
        .unwrap_err();
    assert_eq!(e, CatalogError::DuplicateModel("acme/m".into()));
    assert!(e.to_string().contains("acme/m"));
}

#[test]
fn validation_duplicate_provider() {
    let e = base()
        .provider(Provider::new("acme", "Acme 2"))
        .build()
        .unwrap_err();
    assert_eq!(e, CatalogError::DuplicateProvider("acme".into()));
}

#[test]
fn validation_duplicate_endpoint() {
    let e = base()
        .endpoint(Endpoint::new("acme/m", "acme"))
        .endpoint(Endpoint::new("acme/m", "acme"))
        .build()
        .unwrap_err();
    assert!(matches!(e, CatalogError::DuplicateEndpoint { ref tag, .. } if tag == "acme"));
}

#[test]
fn validation_endpoint_of_unknown_model() {
    let e = base()
        .endpoint(Endpoint::new("acme/nope", "acme"))
        .build()
        .unwrap_err();
    assert!(matches!(e, CatalogError::UnknownModel { ref model, .. } if model == "acme/nope"));
    assert!(e.to_string().contains("acme/nope"), "{e}");
}

#[test]
fn validation_tag_base_slug_not_a_provider() {
    let e = base()
        .endpoint(Endpoint::new("acme/m", "ghost/turbo"))
        .build()
        .unwrap_err();
    assert_eq!(
        e,
        CatalogError::UnknownProvider {
            model: "acme/m".into(),
            tag: "ghost/turbo".into()
        }
    );
    assert!(e.to_string().contains("`ghost`"), "{e}");
}

#[test]
fn validation_negative_price() {
    let mut ep = Endpoint::new("acme/m", "acme");
    ep.pricing.completion = usd("-0.000001");
    let e = base().endpoint(ep).build().unwrap_err();
    assert!(
        matches!(e, CatalogError::InvalidPrice { ref field, ref entry, .. } if field == "completion" && entry.contains("acme/m@acme")),
        "{e}"
    );
    // The router marker "-1" is refused on endpoints.
    let mut ep = Endpoint::new("acme/m", "acme");
    ep.pricing.prompt = usd("-1");
    assert!(base().endpoint(ep).build().is_err());
}

#[test]
fn validation_unparseable_price_names_the_path() {
    let json = br#"{"providers":[{"slug":"acme"}],"models":[{"id":"acme/m","pricing":{"prompt":"cheap","completion":"0"}}]}"#;
    let e = Catalog::from_json(json).unwrap_err();
    match &e {
        CatalogError::Parse { path, .. } => assert_eq!(path, "models[0].pricing.prompt"),
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("cheap"), "{e}");
}

#[test]
fn validation_unknown_alias_target_and_missing_env() {
    let e = base().alias("fast", "acme/zzz").build().unwrap_err();
    assert!(e.to_string().contains("alias `fast`"), "{e}");
    let e = Catalog::builder()
        .provider(
            Provider::new("acme", "Acme")
                .credentials(Credentials::env("TOWER_AI_GATEWAY_TEST_SURELY_UNSET")),
        )
        .build()
        .unwrap_err();
    assert!(matches!(e, CatalogError::MissingCredential { .. }));
}

#[test]
fn handle_swaps_atomically() {
    let a = Catalog::from_json(DEMO).unwrap();
    let h = tower_ai_gateway::catalog::CatalogHandle::new(a.clone());
    let held = h.load();
    h.store(Catalog::empty());
    assert!(
        held.ptr_eq(&a),
        "a request keeps the catalog it started with"
    );
    assert!(h.load().models().is_empty());
}
