use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{EndpointKey, ParamSet, Pricing, Usd};

/// Quantization of an endpoint's weights (<https://openrouter.ai/docs/guides/routing/provider-selection>).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Quantization {
    /// `int4`
    Int4,
    /// `int8`
    Int8,
    /// `fp4` (as a filter it also admits `mxfp4` and `nvfp4`)
    Fp4,
    /// `mxfp4`
    Mxfp4,
    /// `nvfp4`
    Nvfp4,
    /// `fp6`
    Fp6,
    /// `fp8` (as a filter it also admits `mxfp8`)
    Fp8,
    /// `mxfp8`
    Mxfp8,
    /// `fp16`
    Fp16,
    /// `bf16`
    Bf16,
    /// `fp32`
    Fp32,
    /// `unknown` (also what an endpoint with `quantization: null` counts as)
    Unknown,
}

impl Quantization {
    /// Every level.
    pub const ALL: [Quantization; 12] = [
        Self::Int4,
        Self::Int8,
        Self::Fp4,
        Self::Mxfp4,
        Self::Nvfp4,
        Self::Fp6,
        Self::Fp8,
        Self::Mxfp8,
        Self::Fp16,
        Self::Bf16,
        Self::Fp32,
        Self::Unknown,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Int4 => "int4",
            Self::Int8 => "int8",
            Self::Fp4 => "fp4",
            Self::Mxfp4 => "mxfp4",
            Self::Nvfp4 => "nvfp4",
            Self::Fp6 => "fp6",
            Self::Fp8 => "fp8",
            Self::Mxfp8 => "mxfp8",
            Self::Fp16 => "fp16",
            Self::Bf16 => "bf16",
            Self::Fp32 => "fp32",
            Self::Unknown => "unknown",
        }
    }

    /// The level with this wire name.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|q| q.as_str() == s)
    }

    /// True if a filter listing `self` admits an endpoint quantized as `actual`.
    pub fn admits(self, actual: Quantization) -> bool {
        self == actual
            || (self == Self::Fp4 && matches!(actual, Self::Mxfp4 | Self::Nvfp4))
            || (self == Self::Fp8 && actual == Self::Mxfp8)
    }
}

/// A service tier an endpoint belongs to (<https://openrouter.ai/docs/guides/features/service-tiers>).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ServiceTier {
    /// Cheaper, slower, may be refused under load.
    Flex,
    /// Faster, dearer.
    Priority,
    /// Fastest.
    Ultrafast,
}

/// `{p50, p75, p90, p99}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PercentileStats {
    /// Median.
    pub p50: f64,
    /// 75th percentile.
    pub p75: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// A model offered by a provider: OpenRouter's `PublicEndpoint` (<https://openrouter.ai/docs/guides/overview/models>) plus the
/// provider's own model id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Endpoint {
    /// `"<provider name> | <canonical slug>"`.
    #[serde(default)]
    pub name: String,
    /// The model this endpoint serves (the catalog's model id).
    #[serde(default)]
    pub model_id: String,
    /// The model's display name.
    #[serde(default)]
    pub model_name: String,
    /// Display name of the provider.
    #[serde(default)]
    pub provider_name: String,
    /// Endpoint slug used in `order` / `only` / `ignore`: `"openai"`, `"deepinfra/turbo"`,
    /// `"openai/priority"`. Its part before the first `/` is the provider slug.
    pub tag: String,
    /// The id the provider itself knows the model by (spliced into the upstream body). Defaults to
    /// the catalog's model id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_model_id: Option<String>,
    /// Context window.
    #[serde(default)]
    pub context_length: u64,
    /// Output cap.
    #[serde(default)]
    pub max_completion_tokens: Option<u64>,
    /// Prompt cap.
    #[serde(default)]
    pub max_prompt_tokens: Option<u64>,
    /// Prices.
    #[serde(default)]
    pub pricing: Pricing,
    /// Weight quantization (`None` when not reported).
    #[serde(default)]
    pub quantization: Option<Quantization>,
    /// Supported request parameters, as listed.
    #[serde(default)]
    pub supported_parameters: Vec<String>,
    /// Status: 0 is normal, negative values are degraded (the meanings are undocumented; §22 row 23).
    #[serde(default)]
    pub status: i32,
    /// Tier endpoints are only used when asked for (§8).
    #[serde(default)]
    pub service_tier: Option<ServiceTier>,
    /// Uptime over 30 minutes as last reported by the source catalog (percent).
    #[serde(default)]
    pub uptime_last_30m: Option<f64>,
    /// Uptime over 5 minutes as last reported by the source catalog.
    #[serde(default)]
    pub uptime_last_5m: Option<f64>,
    /// Uptime over 1 day as last reported by the source catalog.
    #[serde(default)]
    pub uptime_last_1d: Option<f64>,
    /// Implicit prompt caching.
    #[serde(default)]
    pub supports_implicit_caching: bool,
    /// Time to first token in ms as last reported by the source catalog.
    #[serde(default)]
    pub latency_last_30m: Option<PercentileStats>,
    /// Tokens per second as last reported by the source catalog.
    #[serde(default)]
    pub throughput_last_30m: Option<PercentileStats>,
    /// Every other field, kept as it was read.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    #[serde(skip)]
    pub(crate) params: ParamSet,
    #[serde(skip, default = "placeholder_key")]
    pub(crate) key: EndpointKey,
    #[serde(skip)]
    pub(crate) blended: Usd,
    #[serde(skip)]
    pub(crate) blended_f64: f64,
}

fn placeholder_key() -> EndpointKey {
    EndpointKey::new("", "")
}

impl Endpoint {
    /// An endpoint of `model_id` tagged `tag`, with default (zero) pricing and limits.
    pub fn new(model_id: impl Into<String>, tag: impl Into<String>) -> Self {
        let model_id = model_id.into();
        let tag = tag.into();
        let key = EndpointKey::new(&model_id, &tag);
        Endpoint {
            name: String::new(),
            model_id,
            model_name: String::new(),
            provider_name: String::new(),
            tag,
            provider_model_id: None,
            context_length: 0,
            max_completion_tokens: None,
            max_prompt_tokens: None,
            pricing: Pricing::default(),
            quantization: None,
            supported_parameters: Vec::new(),
            status: 0,
            service_tier: None,
            uptime_last_30m: None,
            uptime_last_5m: None,
            uptime_last_1d: None,
            supports_implicit_caching: false,
            latency_last_30m: None,
            throughput_last_30m: None,
            extra: Map::new(),
            params: ParamSet::EMPTY,
            key,
            blended: Usd::ZERO,
            blended_f64: 0.0,
        }
    }

    /// The provider slug: the tag up to its first `/`.
    pub fn provider_slug(&self) -> &str {
        // A byte search: `split` sets up a searcher that costs more than scanning a short tag.
        match self.tag.bytes().position(|b| b == b'/') {
            Some(slash) => &self.tag[..slash],
            None => &self.tag,
        }
    }

    /// The stable identity used by stats and stickiness.
    pub fn key(&self) -> &EndpointKey {
        &self.key
    }

    /// The supported parameters as a set.
    pub fn params(&self) -> ParamSet {
        self.params
    }

    /// The model id to send upstream.
    pub fn upstream_model(&self) -> &str {
        self.provider_model_id.as_deref().unwrap_or(&self.model_id)
    }

    /// The quantization a filter sees (`null` counts as `unknown`).
    pub fn quantization_or_unknown(&self) -> Quantization {
        self.quantization.unwrap_or(Quantization::Unknown)
    }

    /// Sets derived fields after loading (parameter set, key).
    pub(crate) fn finish(&mut self) {
        self.params = ParamSet::from_names(self.supported_parameters.iter().map(String::as_str));
        self.key = EndpointKey::new(&self.model_id, &self.tag);
        self.blended = self.pricing.blended();
        self.blended_f64 = self.blended.to_f64();
    }

    /// [`Endpoint::blended_price`] as an `f64`, for ordering and weights only (never for money).
    pub fn blended_price_f64(&self, prompt_tokens: u64, unix_millis: i64) -> f64 {
        if self.pricing.overrides.is_empty() {
            self.blended_f64
        } else {
            self.blended_price(prompt_tokens, unix_millis).to_f64()
        }
    }

    /// Prompt + completion price per token for a prompt of `prompt_tokens` at `unix_millis` (UTC):
    /// the price that load balancing and `sort: "price"` compare. Precomputed unless the endpoint has
    /// pricing overrides.
    pub fn blended_price(&self, prompt_tokens: u64, unix_millis: i64) -> Usd {
        if self.pricing.overrides.is_empty() {
            self.blended
        } else {
            let p = self.pricing.effective(prompt_tokens, unix_millis);
            p.prompt.add(p.completion)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantization_families() {
        assert!(Quantization::Fp4.admits(Quantization::Nvfp4));
        assert!(Quantization::Fp4.admits(Quantization::Mxfp4));
        assert!(Quantization::Fp8.admits(Quantization::Mxfp8));
        assert!(!Quantization::Fp8.admits(Quantization::Fp4));
        assert!(!Quantization::Nvfp4.admits(Quantization::Fp4));
    }

    proptest::proptest! {
        /// The byte search finds what `split('/')` finds, in any tag (slashes, multi-byte
        /// characters, empty parts).
        #[test]
        fn provider_slug_is_the_tag_up_to_its_first_slash(tag in "[a-z/é\\-]{0,12}") {
            let e = Endpoint::new("m", tag.clone());
            proptest::prop_assert_eq!(e.provider_slug(), tag.split('/').next().unwrap());
        }
    }
}
