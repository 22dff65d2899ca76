//! `examples/gateway.toml`, the README's config for real providers, loads through the example
//! gateway's own `config::from_file` and means what its comments say.
//!
//! The file reads provider and gateway keys from environment variables, which a test cannot rely
//! on (and must not set: the environment is shared by every test thread). So the test loads a copy
//! in which every `api_key_env = "…"` became `api_key = "sk-test"`, every `key_env = "…"` a literal
//! key, and the relative `openrouter_models` path an absolute one.

#![allow(dead_code)]

#[path = "../examples/gateway/config.rs"]
mod config;

use std::path::{Path, PathBuf};

use tower_ai_gateway::catalog::{ProviderDataPolicy, Usd};
use tower_ai_gateway::data_policy::DataFloor;
use tower_ai_gateway::rate_limit::FreeLimits;
use tower_ai_gateway::usage_meter::{CallerKey, Period};

const EXAMPLE: &str = include_str!("../examples/gateway.toml");

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// Replaces `<name> = "<value>"` wherever it appears with `f(value)`.
fn replace_assignments(text: &str, name: &str, f: impl Fn(&str) -> String) -> String {
    let pattern = format!("{name} = \"");
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(&pattern) {
        // Only whole names: `key_env` must not match inside `api_key_env`.
        let whole = rest[..i]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        let value_start = i + pattern.len();
        let value_len = rest[value_start..].find('"').expect("closing quote");
        let value = &rest[value_start..value_start + value_len];
        out.push_str(&rest[..i]);
        if whole {
            out.push_str(&f(value));
        } else {
            out.push_str(&rest[i..value_start + value_len + 1]);
        }
        rest = &rest[value_start + value_len + 1..];
    }
    out.push_str(rest);
    out
}

/// The example with literal keys and an absolute model-list path, written to a temporary file.
fn testable_copy(name: &str) -> PathBuf {
    let text = replace_assignments(EXAMPLE, "api_key_env", |_| "api_key = \"sk-test\"".into());
    let text = replace_assignments(&text, "key_env", |var| {
        format!("key = \"test-key-{}\"", var.to_lowercase())
    });
    let text = replace_assignments(&text, "openrouter_models", |path| {
        let full = examples_dir().join(path);
        format!("openrouter_models = {:?}", full.display().to_string())
    });
    assert!(!text.contains("key_env"), "{text}");
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_substitution_touches_only_what_it_should() {
    let s = "api_key_env = \"A\"\nkey_env = \"B\"\nx = { key_env = \"C\" }\n";
    let s = replace_assignments(s, "api_key_env", |_| "api_key = \"k\"".into());
    assert_eq!(
        s,
        "api_key = \"k\"\nkey_env = \"B\"\nx = { key_env = \"C\" }\n"
    );
    let s = replace_assignments(&s, "key_env", |v| format!("key = \"{v}\""));
    assert_eq!(s, "api_key = \"k\"\nkey = \"B\"\nx = { key = \"C\" }\n");
}

#[test]
fn example_config_loads() {
    let path = testable_copy("gateway-example.toml");
    let cfg = config::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(!cfg.demo);
    assert!(!cfg.loopback_without_key);
    assert!(matches!(cfg.upstream, config::Upstream::Http));
    assert_eq!(cfg.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(cfg.body_limit, 10 * 1024 * 1024);
    assert_eq!(cfg.floor, DataFloor::none());
    assert_eq!(cfg.cap.prompt, Some(Usd::parse("20").unwrap()));
    assert_eq!(cfg.cap.completion, Some(Usd::parse("80").unwrap()));
    assert_eq!(cfg.attempt_timeout.as_secs(), 120);
    assert!(cfg.ignore.is_empty());

    // Two gateway keys with their budgets.
    let keys: Vec<_> = cfg
        .keys
        .iter()
        .map(|k| (k.name.as_str(), k.secret.as_str(), k.limit))
        .collect();
    assert_eq!(
        keys,
        [
            (
                "backend",
                "test-key-gateway_key_backend",
                Some((Period::Month, Usd::parse("50").unwrap()))
            ),
            (
                "notebooks",
                "test-key-gateway_key_notebooks",
                Some((Period::Day, Usd::parse("2").unwrap()))
            ),
        ]
    );

    // Rate limits: `backend` in the `batch` class (and a management key), `notebooks` with its
    // own limits and a larger `:free` quota, everyone else the defaults.
    let rl = &cfg.rate_limits;
    let key = |n: &str| CallerKey::new(n);
    assert_eq!(rl.management.iter().collect::<Vec<_>>(), ["backend"]);
    let batch = rl.layer.limits_of(&key("backend"));
    assert_eq!(batch.requests_per_minute, Some(600));
    assert_eq!(batch.tokens_per_minute, Some(2_000_000));
    assert_eq!(
        rl.layer.limits_of(&key("notebooks")).requests_per_minute,
        Some(10)
    );
    assert_eq!(
        rl.layer.limits_of(&key("other")).requests_per_minute,
        Some(60)
    );
    assert_eq!(
        rl.layer.free_limits_of(&key("notebooks")),
        Some(FreeLimits::new(20, 1000))
    );
    assert_eq!(
        rl.layer.free_limits_of(&key("backend")),
        Some(FreeLimits::new(20, 50))
    );

    // The preset, as its comment says.
    let p = cfg.presets.get("reviewer").expect("the reviewer preset");
    assert_eq!(p.model.as_deref(), Some("local/qwen2.5-coder-7b"));
    assert_eq!(p.models, Some(vec!["openai/gpt-4o-mini".to_owned()]));
    assert_eq!(
        p.provider,
        Some(serde_json::json!({"data_collection": "deny"}))
    );
    assert_eq!(p.parameters["temperature"], 0.1);
    assert_eq!(p.parameters["max_tokens"], 800);
    assert!(p
        .system_prompt
        .as_deref()
        .unwrap()
        .starts_with("You review code."));
}

#[test]
fn example_config_catalog_means_what_it_says() {
    let path = testable_copy("gateway-example-catalog.toml");
    let c = config::from_file(&path)
        .unwrap_or_else(|e| panic!("{e}"))
        .catalog;

    let slugs: Vec<_> = c.providers().iter().map(|p| p.slug.as_str()).collect();
    assert_eq!(slugs, ["openai", "local", "openrouter"]);
    for slug in ["openai", "openrouter"] {
        let p = c.provider(slug).unwrap();
        assert_eq!(p.credentials.secret().map(|s| s.expose()), Some("sk-test"));
    }
    assert_eq!(
        c.provider("local").unwrap().data_policy,
        ProviderDataPolicy::ZDR
    );
    assert_eq!(
        c.provider("openrouter").unwrap().base_url.as_deref(),
        Some("https://openrouter.ai/api/v1")
    );

    // The OpenRouter list plus the local model.
    assert!(c.models().len() > 400, "{}", c.models().len());
    assert_eq!(c.alias("coder"), Some("local/qwen2.5-coder-7b"));
    assert_eq!(c.alias("fast"), Some("openai/gpt-4o-mini"));
    let local: Vec<_> = c
        .endpoints("local/qwen2.5-coder-7b")
        .iter()
        .map(|e| (e.tag.as_str(), e.upstream_model()))
        .collect();
    assert_eq!(local, [("local", "Qwen/Qwen2.5-Coder-7B-Instruct")]);

    // GPT-4o mini: OpenAI directly and through OpenRouter, nothing synthesized on top.
    let mini: Vec<_> = c
        .endpoints("openai/gpt-4o-mini")
        .iter()
        .map(|e| (e.tag.as_str(), e.upstream_model()))
        .collect();
    assert_eq!(
        mini,
        [
            ("openai", "gpt-4o-mini"),
            ("openrouter", "openai/gpt-4o-mini")
        ]
    );

    // Everything else from the list goes through OpenRouter under its own id.
    let deepseek = c.endpoints("deepseek/deepseek-chat");
    assert_eq!(deepseek.len(), 1);
    assert_eq!(deepseek[0].tag, "openrouter");
    assert_eq!(deepseek[0].upstream_model(), "deepseek/deepseek-chat");
}

#[test]
fn readme_shows_the_example_config_verbatim() {
    let readme = include_str!("../README.md");
    let start = readme
        .find("```toml\n# A config file for the example gateway")
        .expect("README shows examples/gateway.toml");
    let body = &readme[start + "```toml\n".len()..];
    let body = &body[..body.find("\n```").expect("closing fence") + 1];
    assert_eq!(
        body, EXAMPLE,
        "the README's config must be a copy of examples/gateway.toml"
    );
}
