//! LiteLLM's cost map as a pricing source.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::file::parse_json;
use super::{CatalogBuilder, CatalogError, Pricing, PricingOverride, Usd};

/// One model of LiteLLM's `model_prices_and_context_window.json`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct LiteLlmEntry {
    /// Prices converted to OpenRouter's per-token pricing (the `*_above_200k_tokens` prices become a
    /// `min_prompt_tokens: 200000` override).
    pub pricing: Pricing,
    /// `max_input_tokens`.
    pub max_input_tokens: Option<u64>,
    /// `max_output_tokens`.
    pub max_output_tokens: Option<u64>,
    /// `litellm_provider`.
    pub provider: Option<String>,
    /// `mode` (`chat`, `embedding`, …).
    pub mode: Option<String>,
}

/// LiteLLM's cost map, keyed by model name.
#[derive(Clone, Debug, Default)]
pub struct LiteLlmPrices {
    entries: HashMap<String, LiteLlmEntry>,
}

fn price(obj: &Map<String, Value>, key: &str) -> Result<Option<Usd>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            let u = if let Some(i) = n.as_i64() {
                Usd::from_int(i)
            } else {
                Usd::from_f64(n.as_f64().unwrap_or(f64::NAN)).map_err(|e| e.to_string())?
            };
            if u.is_negative() {
                return Err(format!("`{key}` is negative"));
            }
            Ok(Some(u))
        }
        Some(Value::String(s)) => Usd::parse(s).map(Some).map_err(|e| e.to_string()),
        Some(_) => Err(format!("`{key}` is not a number")),
    }
}

fn count(obj: &Map<String, Value>, key: &str) -> Option<u64> {
    obj.get(key).and_then(|v| {
        v.as_u64()
            .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
    })
}

impl LiteLlmPrices {
    /// Parses the cost map. Entries without token prices (e.g. `sample_spec`, image-only models) are
    /// kept with zero prices; an entry whose price is present but unreadable or negative is an error
    /// naming it.
    pub fn from_json(json: &[u8]) -> Result<Self, CatalogError> {
        let map: Map<String, Value> = parse_json("LiteLLM cost map", json)?;
        let mut entries = HashMap::with_capacity(map.len());
        for (name, v) in map {
            if name == "sample_spec" {
                continue;
            }
            let Value::Object(obj) = v else { continue };
            let bad = |msg: String| CatalogError::InvalidPrice {
                entry: format!("LiteLLM `{name}`"),
                field: msg,
                value: String::new(),
            };
            let mut p = Pricing {
                prompt: price(&obj, "input_cost_per_token")
                    .map_err(bad)?
                    .unwrap_or_default(),
                completion: price(&obj, "output_cost_per_token")
                    .map_err(bad)?
                    .unwrap_or_default(),
                ..Pricing::default()
            };
            p.input_cache_read = price(&obj, "cache_read_input_token_cost").map_err(bad)?;
            p.input_cache_write = price(&obj, "cache_creation_input_token_cost").map_err(bad)?;
            p.input_cache_write_1h =
                price(&obj, "cache_creation_input_token_cost_above_1hr").map_err(bad)?;
            p.internal_reasoning = price(&obj, "output_cost_per_reasoning_token").map_err(bad)?;
            p.image = price(&obj, "input_cost_per_image").map_err(bad)?;
            p.audio = price(&obj, "input_cost_per_audio_token").map_err(bad)?;
            p.request = price(&obj, "input_cost_per_request").map_err(bad)?;
            let long_in = price(&obj, "input_cost_per_token_above_200k_tokens").map_err(bad)?;
            let long_out = price(&obj, "output_cost_per_token_above_200k_tokens").map_err(bad)?;
            if long_in.is_some() || long_out.is_some() {
                p.overrides.push(PricingOverride {
                    min_prompt_tokens: Some(200_000),
                    prompt: long_in,
                    completion: long_out,
                    ..Default::default()
                });
            }
            let entry = LiteLlmEntry {
                pricing: p,
                max_input_tokens: count(&obj, "max_input_tokens"),
                max_output_tokens: count(&obj, "max_output_tokens"),
                provider: obj
                    .get("litellm_provider")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                mode: obj.get("mode").and_then(Value::as_str).map(str::to_string),
            };
            entries.insert(name, entry);
        }
        Ok(LiteLlmPrices { entries })
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Looks a model up by exact name, then without an `author/` prefix (`openai/gpt-4o-mini` →
    /// `gpt-4o-mini`), then without a `:variant` suffix.
    pub fn get(&self, name: &str) -> Option<&LiteLlmEntry> {
        if let Some(e) = self.entries.get(name) {
            return Some(e);
        }
        let (base, _) = super::model::split_variant(name);
        if base != name {
            if let Some(e) = self.entries.get(base) {
                return Some(e);
            }
        }
        let short = base.rsplit('/').next().unwrap_or(base);
        self.entries.get(short)
    }
}

impl CatalogBuilder {
    /// Prices every endpoint that has no token prices (prompt and completion both zero and no other
    /// price) from `prices`, looked up by the provider's model id and then by the model id. Endpoints
    /// of `:free` models are left free.
    pub fn price_from(mut self, prices: &LiteLlmPrices) -> Self {
        for e in &mut self.endpoints {
            if !e.pricing.is_free() || e.model_id.ends_with(":free") {
                continue;
            }
            let found = e
                .provider_model_id
                .as_deref()
                .and_then(|id| prices.get(id))
                .or_else(|| prices.get(&e.model_id));
            if let Some(entry) = found {
                e.pricing = entry.pricing.clone();
                if e.context_length == 0 {
                    e.context_length = entry.max_input_tokens.unwrap_or(0);
                }
                if e.max_completion_tokens.is_none() {
                    e.max_completion_tokens = entry.max_output_tokens;
                }
            }
        }
        self
    }
}
