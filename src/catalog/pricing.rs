use std::fmt;

use rust_decimal::Decimal;
use serde::de::{self, Deserializer, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

use super::Usd;
use crate::clock::utc_weekday_and_minute;

/// Prices of a model or endpoint, in OpenRouter's `PublicPricing` shape (<https://openrouter.ai/docs/guides/overview/models>).
///
/// Token prices are USD **per token**; `request`, `image` and `web_search` are USD per request, per
/// input image and per search. Every key that was present when the pricing was read is written back
/// unchanged (keys that were absent stay absent), so a catalog survives a load/serialise round trip
/// exactly.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Pricing {
    /// Per prompt token. `-1` marks a router model whose price varies.
    #[serde(default)]
    pub prompt: Usd,
    /// Per completion token.
    #[serde(default)]
    pub completion: Usd,
    /// Per request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Usd>,
    /// Per input image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Usd>,
    /// Per image token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_token: Option<Usd>,
    /// Per output image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_output: Option<Usd>,
    /// Per input audio unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<Usd>,
    /// Per output audio unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_output: Option<Usd>,
    /// Per cached input audio unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_audio_cache: Option<Usd>,
    /// Per cached prompt token read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_cache_read: Option<Usd>,
    /// Per prompt token written to the cache (5-minute TTL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_cache_write: Option<Usd>,
    /// Per prompt token written to the cache (1-hour TTL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_cache_write_1h: Option<Usd>,
    /// Per reasoning token (when billed apart from completion tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_reasoning: Option<Usd>,
    /// Per web search.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_search: Option<Usd>,
    /// Discount as a fraction: prices are multiplied by `1 - discount`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_discount",
        deserialize_with = "de_discount"
    )]
    pub discount: Option<Decimal>,
    /// Conditional prices (long prompts, UTC time windows).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<PricingOverride>,
}

/// A conditional price entry (`pricing.overrides[]`, <https://openrouter.ai/docs/guides/overview/models>).
///
/// An entry applies when all of its conditions hold; among applicable entries later ones win per key;
/// keys an entry lacks inherit the base price.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PricingOverride {
    /// Applies when the prompt has strictly more tokens than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_prompt_tokens: Option<u64>,
    /// Window start, inclusive, as HHMM UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utc_start: Option<u16>,
    /// Window end, exclusive, as HHMM UTC; the window may wrap midnight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utc_end: Option<u16>,
    /// Days of the week (`"monday"` … `"sunday"`) on which the entry applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utc_days: Option<Vec<String>>,
    /// Prompt price override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<Usd>,
    /// Completion price override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion: Option<Usd>,
    /// Cache-read price override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_cache_read: Option<Usd>,
    /// Cache-write (5 min) price override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_cache_write: Option<Usd>,
    /// Cache-write (1 h) price override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_cache_write_1h: Option<Usd>,
    /// Audio price override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<Usd>,
    /// Cached audio price override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_audio_cache: Option<Usd>,
}

const DAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

impl PricingOverride {
    /// True if the entry applies to a prompt of `prompt_tokens` at `unix_millis` (UTC).
    pub fn applies(&self, prompt_tokens: u64, unix_millis: i64) -> bool {
        if let Some(min) = self.min_prompt_tokens {
            if prompt_tokens <= min {
                return false;
            }
        }
        let (weekday, minute) = utc_weekday_and_minute(unix_millis);
        if let Some(days) = &self.utc_days {
            let today = DAYS[weekday as usize];
            if !days.iter().any(|d| d.eq_ignore_ascii_case(today)) {
                return false;
            }
        }
        if self.utc_start.is_some() || self.utc_end.is_some() {
            let to_min = |hhmm: u16| (hhmm / 100) * 60 + hhmm % 100;
            let start = self.utc_start.map_or(0, to_min);
            let end = self.utc_end.map_or(24 * 60, to_min);
            let inside = if start <= end {
                minute >= start && minute < end
            } else {
                minute >= start || minute < end
            };
            if !inside {
                return false;
            }
        }
        true
    }

    fn problems(&self) -> impl Iterator<Item = (&'static str, Usd)> + '_ {
        [
            ("prompt", self.prompt),
            ("completion", self.completion),
            ("input_cache_read", self.input_cache_read),
            ("input_cache_write", self.input_cache_write),
            ("input_cache_write_1h", self.input_cache_write_1h),
            ("audio", self.audio),
            ("input_audio_cache", self.input_audio_cache),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
    }
}

/// Prices in force for one request: overrides applied, discount not yet applied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EffectivePricing {
    /// Per prompt token.
    pub prompt: Usd,
    /// Per completion token.
    pub completion: Usd,
    /// Per request.
    pub request: Usd,
    /// Per input image.
    pub image: Usd,
    /// Per input audio unit.
    pub audio: Usd,
    /// Per cached prompt token read (defaults to the prompt price when the endpoint has none).
    pub input_cache_read: Usd,
    /// Per prompt token written to the cache (defaults to the prompt price).
    pub input_cache_write: Usd,
    /// Per reasoning token (defaults to the completion price).
    pub internal_reasoning: Usd,
    /// Per web search.
    pub web_search: Usd,
    /// `1 - discount`.
    pub multiplier: Decimal,
}

impl Pricing {
    /// True if this is a router model's "variable price" (`"-1"`).
    pub fn is_variable(&self) -> bool {
        self.prompt == Usd::from_int(-1) || self.completion == Usd::from_int(-1)
    }

    /// True if prompt and completion cost nothing.
    pub fn is_free(&self) -> bool {
        self.prompt.is_zero() && self.completion.is_zero()
    }

    /// Prompt + completion price per token: the price that load balancing and `sort: "price"` use.
    pub fn blended(&self) -> Usd {
        self.prompt.add(self.completion)
    }

    /// The prices in force for a prompt of `prompt_tokens` at `unix_millis` (UTC).
    #[inline]
    pub fn effective(&self, prompt_tokens: u64, unix_millis: i64) -> EffectivePricing {
        let mut p = self.prompt;
        let mut c = self.completion;
        let mut read = self.input_cache_read;
        let mut write = self.input_cache_write;
        let mut audio = self.audio;
        for o in &self.overrides {
            if o.applies(prompt_tokens, unix_millis) {
                p = o.prompt.unwrap_or(p);
                c = o.completion.unwrap_or(c);
                read = o.input_cache_read.or(read);
                write = o.input_cache_write.or(write);
                audio = o.audio.or(audio);
            }
        }
        // `1 - 0` is `1` to the bit: no subtraction without a discount.
        let multiplier = match self.discount {
            None => Decimal::ONE,
            Some(d) => Decimal::ONE - d,
        };
        EffectivePricing {
            prompt: p,
            completion: c,
            request: self.request.unwrap_or_default(),
            image: self.image.unwrap_or_default(),
            audio: audio.unwrap_or_default(),
            input_cache_read: read.unwrap_or(p),
            input_cache_write: write.unwrap_or(p),
            internal_reasoning: self.internal_reasoning.unwrap_or(c),
            web_search: self.web_search.unwrap_or_default(),
            multiplier,
        }
    }

    /// Every price with its key, overrides included, for validation.
    pub(crate) fn all_prices(&self) -> Vec<(String, Usd)> {
        let mut v: Vec<(String, Usd)> = [
            ("prompt", Some(self.prompt)),
            ("completion", Some(self.completion)),
            ("request", self.request),
            ("image", self.image),
            ("image_token", self.image_token),
            ("image_output", self.image_output),
            ("audio", self.audio),
            ("audio_output", self.audio_output),
            ("input_audio_cache", self.input_audio_cache),
            ("input_cache_read", self.input_cache_read),
            ("input_cache_write", self.input_cache_write),
            ("input_cache_write_1h", self.input_cache_write_1h),
            ("internal_reasoning", self.internal_reasoning),
            ("web_search", self.web_search),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
        .collect();
        for (i, o) in self.overrides.iter().enumerate() {
            v.extend(
                o.problems()
                    .map(|(k, p)| (format!("overrides[{i}].{k}"), p)),
            );
        }
        v
    }

    /// The first invalid price: negative (other than the variable-price marker when `allow_variable`)
    /// or a discount outside `0..=1`.
    pub(crate) fn invalid(&self, allow_variable: bool) -> Option<(String, String)> {
        if let Some(d) = self.discount {
            if d.is_sign_negative() && !d.is_zero() || d > Decimal::ONE {
                return Some(("discount".into(), d.to_string()));
            }
        }
        let variable = allow_variable && self.is_variable();
        self.all_prices()
            .into_iter()
            .find(|(k, p)| {
                p.is_negative()
                    && !(variable
                        && (k == "prompt" || k == "completion")
                        && *p == Usd::from_int(-1))
            })
            .map(|(k, p)| (k, p.to_string()))
    }
}

fn ser_discount<S: Serializer>(d: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        None => s.serialize_none(),
        Some(d) if d.fract().is_zero() => {
            use rust_decimal::prelude::ToPrimitive;
            s.serialize_i64(d.to_i64().unwrap_or(0))
        }
        Some(d) => {
            use rust_decimal::prelude::ToPrimitive;
            s.serialize_f64(d.to_f64().unwrap_or(0.0))
        }
    }
}

fn de_discount<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = Option<Decimal>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a discount fraction as a number or decimal string")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Usd::parse(v)
                .map(|u| Some(u.as_decimal()))
                .map_err(E::custom)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(Decimal::from(v)))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(Decimal::from(v)))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Usd::from_f64(v)
                .map(|u| Some(u.as_decimal()))
                .map_err(E::custom)
        }
    }
    d.deserialize_any(V)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(s: &str) -> Usd {
        Usd::parse(s).unwrap()
    }

    #[test]
    fn overrides_by_prompt_size() {
        let p: Pricing = serde_json::from_str(
            r#"{"prompt":"0.000003","completion":"0.000015","input_cache_read":"0.0000003",
                "overrides":[{"min_prompt_tokens":200000,"prompt":"0.000006","completion":"0.0000225"}],
                "discount":0}"#,
        )
        .unwrap();
        let small = p.effective(200_000, 0);
        assert_eq!(small.prompt, usd("0.000003"));
        let big = p.effective(200_001, 0);
        assert_eq!(big.prompt, usd("0.000006"));
        assert_eq!(big.completion, usd("0.0000225"));
        assert_eq!(big.input_cache_read, usd("0.0000003"));
        assert_eq!(big.multiplier, Decimal::ONE);
    }

    #[test]
    fn utc_windows_wrap_midnight() {
        let o = PricingOverride {
            utc_start: Some(1000),
            utc_end: Some(100),
            ..Default::default()
        };
        let at = |h: i64, m: i64| (h * 3600 + m * 60) * 1000;
        assert!(o.applies(0, at(10, 0)));
        assert!(o.applies(0, at(23, 59)));
        assert!(o.applies(0, at(0, 59)));
        assert!(!o.applies(0, at(1, 0)));
        assert!(!o.applies(0, at(9, 59)));
    }

    #[test]
    fn round_trip_keeps_keys() {
        let src =
            r#"{"prompt":"0.0000003","completion":"0.0000025","image":"0.001238","discount":0.1}"#;
        let p: Pricing = serde_json::from_str(src).unwrap();
        assert_eq!(serde_json::to_string(&p).unwrap(), src);
    }

    #[test]
    fn validation() {
        let p: Pricing = serde_json::from_str(r#"{"prompt":"-1","completion":"-1"}"#).unwrap();
        assert!(p.is_variable());
        assert!(p.invalid(true).is_none());
        assert_eq!(p.invalid(false).unwrap().0, "prompt");
        let p: Pricing =
            serde_json::from_str(r#"{"prompt":"0.1","completion":"0.1","discount":2}"#).unwrap();
        assert_eq!(p.invalid(true).unwrap().0, "discount");
    }
}
