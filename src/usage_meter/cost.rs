//! Token usage as the upstream reports it, and its price.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, Visitor};
use serde::Deserialize;

use crate::catalog::{EffectivePricing, Pricing, Usd};

/// Token counts of one generation, normalised to OpenAI's meaning.
///
/// `prompt` includes `cached` and `cache_write`; `completion` includes `reasoning` (see the
/// [module docs](super#cost) for how upstreams that report them apart are read).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenUsage {
    /// Prompt tokens, cached and cache-written ones included.
    pub prompt: u64,
    /// Completion tokens, reasoning tokens included.
    pub completion: u64,
    /// Reasoning tokens (`completion_tokens_details.reasoning_tokens`).
    pub reasoning: u64,
    /// Prompt tokens read from the cache (`prompt_tokens_details.cached_tokens`).
    pub cached: u64,
    /// Prompt tokens written to the cache (`prompt_tokens_details.cache_write_tokens`).
    pub cache_write: u64,
    /// Web searches run (`server_tool_use_details.web_search_requests`).
    pub web_searches: u64,
}

impl TokenUsage {
    /// Usage of `prompt` and `completion` tokens and nothing else.
    pub fn new(prompt: u64, completion: u64) -> Self {
        TokenUsage {
            prompt,
            completion,
            ..Default::default()
        }
    }

    /// Sets the reasoning tokens (part of `completion`).
    #[must_use]
    pub fn reasoning(mut self, n: u64) -> Self {
        self.reasoning = n;
        self
    }

    /// Sets the cached (read) prompt tokens (part of `prompt`).
    #[must_use]
    pub fn cached(mut self, n: u64) -> Self {
        self.cached = n;
        self
    }

    /// Sets the cache-write prompt tokens (part of `prompt`).
    #[must_use]
    pub fn cache_write(mut self, n: u64) -> Self {
        self.cache_write = n;
        self
    }
}

/// The price of one generation, split as OpenRouter's `usage.cost_details`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Cost {
    /// Everything: prompt + completion + request fee + images + web searches, discount applied.
    pub total: Usd,
    /// Prompt tokens (uncached, cache reads, cache writes), discount applied.
    pub prompt: Usd,
    /// Completion and reasoning tokens, discount applied.
    pub completion: Usd,
}

/// Prices `usage` at `pricing` (the served endpoint's prices) for a request that arrived at
/// `unix_millis` with `images` input images.
///
/// Overrides are chosen by the *reported* prompt tokens. When `insured` (zero-completion insurance),
/// tokens are free and only the request fee, images and searches are charged.
pub fn price(
    pricing: &Pricing,
    usage: &TokenUsage,
    unix_millis: i64,
    images: u64,
    insured: bool,
) -> Cost {
    let p = pricing.effective(usage.prompt, unix_millis);
    price_effective(&p, usage, images, insured)
}

pub(crate) fn price_effective(
    p: &EffectivePricing,
    usage: &TokenUsage,
    images: u64,
    insured: bool,
) -> Cost {
    let (prompt, completion) = if insured {
        (Usd::ZERO, Usd::ZERO)
    } else {
        let special = usage.cached.saturating_add(usage.cache_write);
        let uncached = usage.prompt.saturating_sub(special);
        let prompt = p
            .prompt
            .times(uncached)
            .add(p.input_cache_read.times(usage.cached))
            .add(p.input_cache_write.times(usage.cache_write));
        let reasoning = usage.reasoning.min(usage.completion);
        let completion = p
            .completion
            .times(usage.completion - reasoning)
            .add(p.internal_reasoning.times(reasoning));
        (prompt, completion)
    };
    let fees = p
        .request
        .add(p.image.times(images))
        .add(p.web_search.times(usage.web_searches));
    let prompt = prompt.scale(p.multiplier);
    let completion = completion.scale(p.multiplier);
    Cost {
        total: prompt
            .add(completion)
            .add(fees.scale(p.multiplier))
            .normalize(),
        prompt: prompt.normalize(),
        completion: completion.normalize(),
    }
}

/// Zero-completion insurance (<https://openrouter.ai/docs/features/zero-completion-insurance>):
/// true when the tokens are not charged.
pub(crate) fn insured(usage: Option<&TokenUsage>, finish_reason: Option<&str>) -> bool {
    if finish_reason == Some("error") {
        return true;
    }
    match usage {
        Some(u) => u.completion == 0 && finish_reason.is_none_or(str::is_empty),
        None => false,
    }
}

/// `usage` of the OpenAI wire and of Anthropic's (`input_tokens` …), read leniently.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct WireUsage {
    #[serde(default)]
    prompt_tokens: Option<Tokens>,
    #[serde(default)]
    completion_tokens: Option<Tokens>,
    #[serde(default)]
    prompt_tokens_details: Option<Lenient<PromptDetails>>,
    #[serde(default)]
    completion_tokens_details: Option<Lenient<CompletionDetails>>,
    #[serde(default)]
    server_tool_use_details: Option<Lenient<ServerTools>>,
    // Anthropic Messages.
    #[serde(default)]
    input_tokens: Option<Tokens>,
    #[serde(default)]
    output_tokens: Option<Tokens>,
    #[serde(default)]
    cache_read_input_tokens: Option<Tokens>,
    #[serde(default)]
    cache_creation_input_tokens: Option<Tokens>,
    #[serde(default)]
    pub(crate) cost: Option<IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<Tokens>,
    #[serde(default)]
    cache_write_tokens: Option<Tokens>,
}

#[derive(Debug, Default, Deserialize)]
struct CompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<Tokens>,
}

#[derive(Debug, Default, Deserialize)]
struct ServerTools {
    #[serde(default)]
    web_search_requests: Option<Tokens>,
}

fn get(t: &Option<Tokens>) -> u64 {
    t.as_ref().map_or(0, |t| t.0)
}

impl WireUsage {
    /// True if this carries OpenAI-style counts.
    pub(crate) fn is_openai(&self) -> bool {
        self.prompt_tokens.is_some() || self.completion_tokens.is_some()
    }

    /// True if this carries any count at all.
    pub(crate) fn has_counts(&self) -> bool {
        self.is_openai()
            || self.input_tokens.is_some()
            || self.output_tokens.is_some()
            || self.cache_read_input_tokens.is_some()
    }

    /// Normalised counts of an OpenAI-wire usage object.
    pub(crate) fn to_usage(&self) -> TokenUsage {
        let pd = self.prompt_tokens_details.as_ref().map(|d| &d.0);
        let cd = self.completion_tokens_details.as_ref().map(|d| &d.0);
        let mut completion = get(&self.completion_tokens);
        let reasoning = cd.map_or(0, |d| get(&d.reasoning_tokens));
        // OpenAI counts reasoning inside completion_tokens. An upstream reporting more reasoning
        // than completion tokens evidently counts them apart: add them.
        if reasoning > completion {
            completion = completion.saturating_add(reasoning);
        }
        TokenUsage {
            prompt: get(&self.prompt_tokens),
            completion,
            reasoning,
            cached: pd.map_or(0, |d| get(&d.cached_tokens)),
            cache_write: pd.map_or(0, |d| get(&d.cache_write_tokens)),
            web_searches: self
                .server_tool_use_details
                .as_ref()
                .map_or(0, |s| get(&s.0.web_search_requests)),
        }
    }

    /// Which Anthropic input-side counts were sent: `input_tokens`, `cache_read_input_tokens`,
    /// `cache_creation_input_tokens`.
    pub(crate) fn anthropic_input(&self) -> (Option<u64>, Option<u64>, Option<u64>) {
        (
            self.input_tokens.map(|t| t.0),
            self.cache_read_input_tokens.map(|t| t.0),
            self.cache_creation_input_tokens.map(|t| t.0),
        )
    }

    /// Merges Anthropic-wire counts into `into` (`message_start` gives the input side,
    /// `message_delta` the output side; Anthropic's `input_tokens` excludes cache reads and writes).
    pub(crate) fn merge_anthropic(&self, into: &mut TokenUsage) {
        let read = get(&self.cache_read_input_tokens);
        let write = get(&self.cache_creation_input_tokens);
        if self.input_tokens.is_some() || read > 0 || write > 0 {
            into.prompt = get(&self.input_tokens)
                .saturating_add(read)
                .saturating_add(write);
            into.cached = read;
            into.cache_write = write;
        }
        if self.output_tokens.is_some() {
            into.completion = get(&self.output_tokens);
        }
    }
}

/// A token count that never fails to parse: negative, fractional, huge or non-numeric values read
/// as 0 (negative, non-numeric), truncated (fractions) or saturated (huge).
#[derive(Debug, Default, Clone, Copy)]
struct Tokens(u64);

impl<'de> Deserialize<'de> for Tokens {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Tokens;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a token count")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Tokens, E> {
                Ok(Tokens(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Tokens, E> {
                Ok(Tokens(u64::try_from(v).unwrap_or(0)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Tokens, E> {
                Ok(Tokens(if v.is_finite() && v > 0.0 {
                    // `as` saturates at u64::MAX.
                    v as u64
                } else {
                    0
                }))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Tokens, E> {
                Ok(Tokens(v.trim().parse().unwrap_or(0)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Tokens, E> {
                Ok(Tokens(0))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Tokens, E> {
                Ok(Tokens(0))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<Tokens, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Tokens(0))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut a: A) -> Result<Tokens, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Tokens(0))
            }
        }
        d.deserialize_any(V)
    }
}

/// An object that reads as its default when it has the wrong shape.
#[derive(Debug, Default)]
struct Lenient<T>(T);

impl<'de, T: Deserialize<'de> + Default> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        Ok(Lenient(T::deserialize(v).unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_counts() {
        let u: WireUsage = serde_json::from_str(
            r#"{"prompt_tokens":-5,"completion_tokens":1e300,"prompt_tokens_details":"x",
                "completion_tokens_details":{"reasoning_tokens":"7"}}"#,
        )
        .unwrap();
        let t = u.to_usage();
        assert_eq!(t.prompt, 0);
        assert_eq!(t.completion, u64::MAX);
        assert_eq!(t.reasoning, 7);
    }

    #[test]
    fn insurance() {
        let zero = TokenUsage::new(10, 0);
        assert!(insured(Some(&zero), None));
        assert!(!insured(Some(&zero), Some("stop")));
        assert!(insured(Some(&TokenUsage::new(10, 5)), Some("error")));
        assert!(!insured(None, None));
    }
}
