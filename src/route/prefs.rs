use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::catalog::{Quantization, Usd};
use crate::health::Percentile;

/// A string that borrows from the request body when it has no escapes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Str<'a>(pub(crate) Cow<'a, str>);

impl<'de> Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A list of strings (provider slugs or model ids); `null` is unset.
pub(crate) fn str_list<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<Cow<'de, str>>>, D::Error> {
    let v: Option<Vec<Str<'de>>> = Deserialize::deserialize(d)?;
    Ok(v.map(|v| v.into_iter().map(|s| s.0).collect()))
}

/// `provider.sort.by` (<https://openrouter.ai/docs/guides/routing/provider-selection>).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SortBy {
    /// Cheapest first.
    Price,
    /// Highest tokens/s first.
    Throughput,
    /// Lowest time to first token first.
    Latency,
    /// Most reliable first (our local analog of OpenRouter's quality signals: observed success rate).
    Exacto,
}

/// `provider.sort.partition`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Partition {
    /// Sort within each model; fallback models stay fallbacks (the default).
    #[default]
    Model,
    /// Sort all models' endpoints together.
    None,
}

/// `provider.sort` as a string or `{by, partition}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Sort {
    /// The metric.
    pub by: SortBy,
    /// How models are grouped; `None` when the request did not say.
    pub partition: Option<Partition>,
}

impl<'de> Deserialize<'de> for Sort {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Sort;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "one of \"price\", \"throughput\", \"latency\", \"exacto\", or {\"by\", \"partition\"}",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Sort, E> {
                let by = SortBy::deserialize(de::value::StrDeserializer::<E>::new(v))?;
                Ok(Sort {
                    by,
                    partition: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Sort, A::Error> {
                let mut by = None;
                let mut partition = None;
                while let Some(k) = map.next_key::<Str<'de>>()? {
                    match &*k.0 {
                        "by" => by = map.next_value::<Option<SortBy>>()?,
                        "partition" => partition = map.next_value::<Option<Partition>>()?,
                        _ => {
                            map.next_value::<de::IgnoredAny>()?;
                        }
                    }
                }
                let by = by.ok_or_else(|| de::Error::missing_field("by"))?;
                Ok(Sort { by, partition })
            }
        }
        d.deserialize_any(V)
    }
}

/// `data_collection`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataCollection {
    /// Providers that store or train on prompts are allowed (the default).
    #[default]
    Allow,
    /// Only providers that neither train on nor retain prompts.
    Deny,
}

/// A latency or throughput cutoff: a number means p50; an object names any of p50/p75/p90/p99, all of
/// which must pass.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cutoffs {
    /// p50 cutoff.
    pub p50: Option<f64>,
    /// p75 cutoff.
    pub p75: Option<f64>,
    /// p90 cutoff.
    pub p90: Option<f64>,
    /// p99 cutoff.
    pub p99: Option<f64>,
}

impl Cutoffs {
    /// The cutoffs that are set.
    pub fn iter(&self) -> impl Iterator<Item = (Percentile, f64)> + '_ {
        [
            (Percentile::P50, self.p50),
            (Percentile::P75, self.p75),
            (Percentile::P90, self.p90),
            (Percentile::P99, self.p99),
        ]
        .into_iter()
        .filter_map(|(p, v)| v.map(|v| (p, v)))
    }

    /// True if no cutoff is set.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}

fn cutoff<E: de::Error>(v: f64) -> Result<f64, E> {
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(E::custom(format_args!(
            "expected a non-negative number, got {v}"
        )))
    }
}

impl<'de> Deserialize<'de> for Cutoffs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Cutoffs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative number or an object with p50, p75, p90, p99")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Cutoffs, E> {
                Ok(Cutoffs {
                    p50: Some(cutoff(v)?),
                    ..Default::default()
                })
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Cutoffs, E> {
                self.visit_f64(v as f64)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Cutoffs, E> {
                self.visit_f64(v as f64)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Cutoffs, A::Error> {
                let mut c = Cutoffs::default();
                while let Some(k) = map.next_key::<Str<'de>>()? {
                    let slot = match &*k.0 {
                        "p50" => &mut c.p50,
                        "p75" => &mut c.p75,
                        "p90" => &mut c.p90,
                        "p99" => &mut c.p99,
                        other => {
                            return Err(de::Error::unknown_field(
                                other,
                                &["p50", "p75", "p90", "p99"],
                            ))
                        }
                    };
                    *slot = match map.next_value::<Option<f64>>()? {
                        Some(v) => Some(cutoff(v)?),
                        None => None,
                    };
                }
                Ok(c)
            }
        }
        d.deserialize_any(V)
    }
}

fn price<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Usd>, D::Error> {
    let v: Option<Usd> = Deserialize::deserialize(d)?;
    match v {
        Some(p) if p.is_negative() => Err(de::Error::custom(format_args!(
            "expected a non-negative price, got {p}"
        ))),
        v => Ok(v),
    }
}

/// `max_price`: USD per **million** tokens for `prompt` and `completion`, USD per request, per image
/// and per audio unit for the others. Values may be numbers or numeric strings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct MaxPrice {
    /// USD per million prompt tokens.
    #[serde(default, deserialize_with = "price")]
    pub prompt: Option<Usd>,
    /// USD per million completion tokens.
    #[serde(default, deserialize_with = "price")]
    pub completion: Option<Usd>,
    /// USD per request.
    #[serde(default, deserialize_with = "price")]
    pub request: Option<Usd>,
    /// USD per image.
    #[serde(default, deserialize_with = "price")]
    pub image: Option<Usd>,
    /// USD per audio unit.
    #[serde(default, deserialize_with = "price")]
    pub audio: Option<Usd>,
}

impl MaxPrice {
    /// True if no cap is set.
    pub fn is_empty(&self) -> bool {
        self.prompt.is_none()
            && self.completion.is_none()
            && self.request.is_none()
            && self.image.is_none()
            && self.audio.is_none()
    }
}

fn quantizations<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Quantization>>, D::Error> {
    Deserialize::deserialize(d)
}

fn options_span<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<&'de serde_json::value::RawValue>, D::Error> {
    let raw: &'de serde_json::value::RawValue = Deserialize::deserialize(d)?;
    let s = raw.get();
    if s == "null" {
        return Ok(None);
    }
    if !s.starts_with('{') {
        return Err(de::Error::custom(
            "expected an object keyed by provider slug",
        ));
    }
    Ok(Some(raw))
}

/// The `provider` object (<https://openrouter.ai/docs/guides/routing/provider-selection>), every field in all its JSON forms; `null` means
/// unset everywhere.
#[derive(Clone, Debug, Default, Deserialize)]
#[non_exhaustive]
pub struct ProviderPrefs<'a> {
    /// Providers to try first, in order.
    #[serde(default, borrow, deserialize_with = "str_list")]
    pub order: Option<Vec<Cow<'a, str>>>,
    /// `false`: only the top provider (or only the `order` list).
    #[serde(default)]
    pub allow_fallbacks: Option<bool>,
    /// Exclude endpoints that lack any parameter the request uses.
    #[serde(default)]
    pub require_parameters: Option<bool>,
    /// `allow` or `deny`.
    #[serde(default)]
    pub data_collection: Option<DataCollection>,
    /// Only zero-data-retention endpoints.
    #[serde(default)]
    pub zdr: Option<bool>,
    /// Only models whose author allows text distillation.
    #[serde(default)]
    pub enforce_distillable_text: Option<bool>,
    /// Allow-list of provider slugs or endpoint tags.
    #[serde(default, borrow, deserialize_with = "str_list")]
    pub only: Option<Vec<Cow<'a, str>>>,
    /// Deny-list of provider slugs or endpoint tags.
    #[serde(default, borrow, deserialize_with = "str_list")]
    pub ignore: Option<Vec<Cow<'a, str>>>,
    /// Allowed quantizations.
    #[serde(default, deserialize_with = "quantizations")]
    pub quantizations: Option<Vec<Quantization>>,
    /// Deterministic ordering.
    #[serde(default)]
    pub sort: Option<Sort>,
    /// Throughput cutoffs (tokens/s). Boxed, as the other rarely given preferences: the usual
    /// request carries a null pointer, and the view (inline in the [`Route`](super::Route)) stays
    /// small.
    #[serde(default)]
    pub preferred_min_throughput: Option<Box<Cutoffs>>,
    /// Latency cutoffs (seconds). Boxed (rarely given).
    #[serde(default)]
    pub preferred_max_latency: Option<Box<Cutoffs>>,
    /// Price caps. Boxed (rarely given).
    #[serde(default)]
    pub max_price: Option<Box<MaxPrice>>,
    /// Per-provider options, raw (`{"openai": {…}}`).
    #[serde(default, borrow, deserialize_with = "options_span")]
    pub options: Option<&'a serde_json::value::RawValue>,
}

/// A list of names that owns its strings.
pub(super) fn own_list(v: Option<Vec<Cow<'_, str>>>) -> Option<Vec<Cow<'static, str>>> {
    v.map(|v| v.into_iter().map(|c| Cow::Owned(c.into_owned())).collect())
}

impl ProviderPrefs<'_> {
    /// Moves these preferences into `dst`, owning their strings (`options`, a borrowed raw value,
    /// is not kept: its span in the body is); these are left emptied. See
    /// [`RequestView::own_into`](super::RequestView).
    pub(crate) fn own_into(&mut self, dst: &mut ProviderPrefs<'static>) {
        // Destructured whole: a preference added must be handled here.
        let ProviderPrefs {
            order,
            allow_fallbacks,
            require_parameters,
            data_collection,
            zdr,
            enforce_distillable_text,
            only,
            ignore,
            quantizations,
            sort,
            preferred_min_throughput,
            preferred_max_latency,
            max_price,
            options: _,
        } = self;
        dst.order = own_list(order.take());
        dst.allow_fallbacks = allow_fallbacks.take();
        dst.require_parameters = require_parameters.take();
        dst.data_collection = data_collection.take();
        dst.zdr = zdr.take();
        dst.enforce_distillable_text = enforce_distillable_text.take();
        dst.only = own_list(only.take());
        dst.ignore = own_list(ignore.take());
        dst.quantizations = quantizations.take();
        dst.sort = sort.take();
        dst.preferred_min_throughput = preferred_min_throughput.take();
        dst.preferred_max_latency = preferred_max_latency.take();
        dst.max_price = max_price.take();
        dst.options = None;
    }
}

/// The deprecated `route` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteField {
    /// `"fallback"` ≡ `partition: "model"`.
    Fallback,
    /// `"sort"` ≡ `partition: "none"`.
    Sort,
}

/// Byte range of `inner` within `outer`, when `inner` is a sub-slice of it.
pub(crate) fn span_of(outer: &[u8], inner: &str) -> Option<Range<usize>> {
    let o = outer.as_ptr() as usize;
    let i = inner.as_ptr() as usize;
    if i >= o && i + inner.len() <= o + outer.len() {
        Some(i - o..i - o + inner.len())
    } else {
        None
    }
}
