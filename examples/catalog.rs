//! Prints the shipped catalogs as model → endpoint tables.
//!
//! ```text
//! cargo run --example catalog                      # demo catalog, examples/catalog.toml, dump summary
//! cargo run --example catalog -- --all             # … and every model of the 414-model dump
//! cargo run --example catalog -- my-catalog.toml   # just this file (TOML or JSON)
//! ```
//!
//! Prices are shown in USD per million tokens (prompt / completion); the files store USD per token.
//! Everything runs offline. A catalog that does not load is reported (`error: …`) with exit code 1.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tower_ai_gateway::catalog::{
    Catalog, CatalogError, LiteLlmPrices, Provider, ProviderDataPolicy, Usd,
};

const USAGE: &str = "usage: catalog [--all] [CATALOG_FILE]

  CATALOG_FILE  a catalog file (.toml, otherwise JSON) to print instead of the shipped ones
  --all         also print every model of the 414-model OpenRouter dump";

fn main() -> ExitCode {
    let mut all = false;
    let mut file = None;
    for arg in std::env::args_os().skip(1) {
        match arg.to_str() {
            Some("--all") => all = true,
            Some("-h" | "--help") => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            Some(s) if s.starts_with('-') => {
                eprintln!("unknown option `{s}`\n\n{USAGE}");
                return ExitCode::from(2);
            }
            _ if file.is_none() => file = Some(PathBuf::from(arg)),
            _ => {
                eprintln!("only one catalog file, please\n\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let result = match file {
        Some(path) => print_file(&path),
        None => print_shipped(all),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A path inside this crate, so the example works from any working directory.
fn shipped(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(path: &Path) -> Result<Vec<u8>, CatalogError> {
    std::fs::read(path).map_err(|e| CatalogError::Parse {
        source_name: path.display().to_string(),
        path: String::new(),
        message: e.to_string(),
    })
}

fn print_file(path: &Path) -> Result<(), CatalogError> {
    let catalog = Catalog::from_path(path)?;
    print_catalog(&path.display().to_string(), &catalog);
    Ok(())
}

fn print_shipped_file(rel: &str) -> Result<(), CatalogError> {
    let catalog = Catalog::from_path(shipped(rel))?;
    print_catalog(rel, &catalog);
    Ok(())
}

fn print_shipped(all: bool) -> Result<(), CatalogError> {
    print_shipped_file("tests/fixtures/catalog/demo-catalog.json")?;
    print_shipped_file("examples/catalog.toml")?;

    // OpenRouter's model list has no endpoints: serve every model through one `openrouter` provider.
    // Its data policy is left unknown, which the gateway treats as "trains and retains".
    let dump_rel = "tests/fixtures/catalog/openrouter-models.json";
    let openrouter =
        Provider::new("openrouter", "OpenRouter").base_url("https://openrouter.ai/api/v1");
    let dump = Catalog::from_openrouter_models(&read(&shipped(dump_rel))?, openrouter)?;
    if all {
        print_catalog(dump_rel, &dump);
    } else {
        print_dump_summary(&dump);
    }

    let litellm_rel = "tests/fixtures/catalog/litellm-model-prices.json";
    let prices = LiteLlmPrices::from_json(&read(&shipped(litellm_rel))?)?;
    println!("{litellm_rel}: LiteLLM cost map, {} entries", prices.len());
    for name in [
        "openai/gpt-4o-mini",
        "claude-sonnet-4-5",
        "deepseek/deepseek-chat",
    ] {
        match prices.get(name) {
            Some(e) => println!(
                "  {name:<24} {:>9} / {:<9} $/M   max input {:>9}   max output {:>7}",
                per_million(e.pricing.prompt),
                per_million(e.pricing.completion),
                opt(e.max_input_tokens),
                opt(e.max_output_tokens),
            ),
            None => println!("  {name:<24} not in the map"),
        }
    }
    Ok(())
}

fn print_catalog(source: &str, catalog: &Catalog) {
    println!(
        "{source}: {} providers, {} models, {} endpoints",
        catalog.providers().len(),
        catalog.models().len(),
        catalog.all_endpoints().len()
    );
    println!();
    for model in catalog.models() {
        println!("{}  ({})", model.id, model.name);
        let Some(range) = catalog.endpoint_range(&model.id) else {
            continue;
        };
        if range.is_empty() {
            let why = if model.pricing.is_variable() {
                "variable price"
            } else {
                "none listed"
            };
            println!("  no endpoints ({why})");
            println!();
            continue;
        }
        println!(
            "  {:<24} {:>9} {:>9}  {:<8} {:>9} {:>8}  {:<9} {:>6}  data policy",
            "endpoint", "$/M in", "$/M out", "quant", "context", "max out", "tier", "status"
        );
        for i in range {
            let (Some(ep), Some(provider)) = (catalog.endpoint(i), catalog.endpoint_provider(i))
            else {
                continue;
            };
            let quant = ep.quantization.map_or("-", |q| q.as_str());
            let tier = match ep.service_tier {
                Some(t) => format!("{t:?}").to_lowercase(),
                None => "-".into(),
            };
            println!(
                "  {:<24} {:>9} {:>9}  {:<8} {:>9} {:>8}  {:<9} {:>6}  {}",
                ep.tag,
                per_million(ep.pricing.prompt),
                per_million(ep.pricing.completion),
                quant,
                ep.context_length,
                opt(ep.max_completion_tokens),
                tier,
                ep.status,
                policy(&provider.data_policy),
            );
        }
        println!();
    }
}

fn print_dump_summary(dump: &Catalog) {
    let variable = dump
        .models()
        .iter()
        .filter(|m| m.pricing.is_variable())
        .count();
    println!(
        "OpenRouter /models dump: {} models, {} endpoints on `openrouter` ({} router models with \
         variable prices get none; --all prints them all)",
        dump.models().len(),
        dump.all_endpoints().len(),
        variable
    );
    let mut paid: Vec<_> = dump
        .all_endpoints()
        .iter()
        .filter(|e| !e.pricing.is_free())
        .collect();
    paid.sort_by_key(|e| e.pricing.blended());
    println!("  5 cheapest paid (prompt + completion):");
    for e in paid.iter().take(5) {
        println!(
            "  {:<48} {:>9} / {:<9} $/M   context {:>9}",
            e.model_id,
            per_million(e.pricing.prompt),
            per_million(e.pricing.completion),
            e.context_length
        );
    }
    println!();
}

/// USD per token → a short USD per million tokens string.
fn per_million(price: Usd) -> String {
    price.per_million().normalize().to_string()
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

fn policy(p: &ProviderDataPolicy) -> String {
    if p.zdr {
        return "ZDR".into();
    }
    let mut parts = Vec::new();
    if p.training {
        parts.push("training".to_string());
    }
    match (p.retains_prompts, p.retention_days) {
        (true, Some(days)) => parts.push(format!("retains {days} days")),
        (true, None) => parts.push("retains".into()),
        (false, _) => parts.push("no retention".into()),
    }
    parts.join(", ")
}
