//! `[gateway.cache]`: the example gateway's response cache (OpenRouter's `X-OpenRouter-Cache`).
//!
//! ```toml
//! [gateway.cache]
//! enabled = true                 # default; `false` turns the cache off
//! max_bytes = 67108864           # total size of the in-memory store (64 MiB)
//! default_ttl_secs = 300         # when the request has no X-OpenRouter-Cache-TTL (1–86400)
//! max_entry_bytes = 1048576      # larger answers are not cached
//! coalesce = false               # concurrent identical misses make one upstream call
//! always_for_keys = ["ci-bot"]   # operator rule: these keys are cached without the header
//! always_for_models = []         # … and so are these models, for every key
//! ```

use std::time::Duration;

use serde::Deserialize;
use tower_ai_gateway::cache::{ResponseCacheLayer, DEFAULT_MAX_BYTES, MAX_TTL_SECS};

/// The `[gateway.cache]` section.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSection {
    /// `false` turns the cache off (default on: requests still opt in one by one).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Total bytes of the in-memory store (default 64 MiB).
    #[serde(default)]
    pub max_bytes: Option<u64>,
    /// Default TTL in seconds (default 300).
    #[serde(default)]
    pub default_ttl_secs: Option<u64>,
    /// Largest answer cached, in bytes (default 1 MiB).
    #[serde(default)]
    pub max_entry_bytes: Option<usize>,
    /// Coalesce concurrent identical misses (default off, as OpenRouter).
    #[serde(default)]
    pub coalesce: bool,
    /// Keys whose requests are cached without `X-OpenRouter-Cache: true` (by key name).
    #[serde(default)]
    pub always_for_keys: Vec<String>,
    /// Models whose requests are cached without the header, for every key.
    #[serde(default)]
    pub always_for_models: Vec<String>,
}

impl CacheSection {
    /// The layer this section configures.
    pub fn layer(&self) -> Result<ResponseCacheLayer, String> {
        if self.enabled == Some(false) {
            return Ok(ResponseCacheLayer::disabled());
        }
        let ttl = self.default_ttl_secs.unwrap_or(300);
        if !(1..=MAX_TTL_SECS).contains(&ttl) {
            return Err(format!(
                "gateway.cache.default_ttl_secs {ttl}: expected 1 to {MAX_TTL_SECS}"
            ));
        }
        let mut layer = ResponseCacheLayer::new()
            .max_bytes(self.max_bytes.unwrap_or(DEFAULT_MAX_BYTES))
            .default_ttl(Duration::from_secs(ttl))
            .coalesce(self.coalesce);
        if let Some(max) = self.max_entry_bytes {
            layer = layer.max_entry_bytes(max);
        }
        if !self.always_for_keys.is_empty() || !self.always_for_models.is_empty() {
            let keys = self.always_for_keys.clone();
            let models = self.always_for_models.clone();
            let ttl = Duration::from_secs(ttl);
            layer = layer.rule(
                move |key: &tower_ai_gateway::usage_meter::CallerKey, model: &str| {
                    let on =
                        keys.iter().any(|k| k == key.as_str()) || models.iter().any(|m| m == model);
                    on.then_some(ttl)
                },
            );
        }
        Ok(layer)
    }
}
