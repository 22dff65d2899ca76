//! The parsed request and the routing decision.
//!
//! [`RequestView::parse`] reads a buffered chat-completions body once and extracts only what routing
//! needs — `model`, `models`, `route`, every field of `provider` in all its JSON forms, `stream`,
//! `max_tokens` / `max_completion_tokens`, `session_id`, `prompt_cache_key`, which parameters are
//! present, a prompt-size estimate and the byte span of the `model` value — borrowing strings from the
//! body. Everything else is skipped without building a DOM.
//!
//! Rewriting the model for an endpoint splices the provider's model id into the original bytes
//! ([`RequestView::splice_model`]); nothing is re-serialised.
//!
//! [`Route`] is the routing decision ModelRouting puts in the request extensions. Its fields are
//! private: the layers inside read it through accessors and change it only by removing candidates
//! with a reason ([`Route::retain`], which re-draws the load balancer's first pick through the
//! route's own [`BalancePolicy`]) or by permuting them ([`Route::move_to_back`],
//! [`Route::reorder_by_key`]), so candidates stay a subset of what ModelRouting admitted. This module
//! imports nothing from the ModelRouting layer.
//!
//! # Errors
//!
//! Bad input is a 400 `invalid_request` whose message and `metadata.field` name the field and what was
//! expected there. Non-UTF-8 input, nesting deeper than [`MAX_DEPTH`] levels anywhere in the body
//! (a byte scan of the values serde_json skips without its own limit) and numbers too large for their field are errors too,
//! never panics. The same pass validates what a provider would reject because of the caller's
//! input, so that it never counts against a provider: duplicate known members, message roles and
//! shapes, parameter types and ranges, `transforms` and `plugins` (see `validate.rs`; the table of
//! cases is the README's "Bad input" section).

mod answer;
mod balance;
mod fast;
mod middle_out;
#[macro_use]
mod future;
mod prefs;
mod preset;
mod request;
#[allow(clippy::module_inception)]
mod route;
mod served;
mod short;
pub(crate) mod skim;
mod splice;
mod strip;
mod validate;

use std::borrow::Cow;

use serde_json::value::RawValue;

pub(crate) use answer::{AnswerReader, AnswerReading, ByteSpan, ReadAnswer, UsageCounts};
pub use balance::{BalanceInput, BalancePolicy, InverseSquarePrice};
pub(crate) use future::missing_route;
pub use future::RouteFuture;
pub(crate) use future::RouteStep;
pub use middle_out::MIDDLE_OUT_DEFAULT_CONTEXT;
pub(crate) use middle_out::{compresses, middle_out_cuts};
pub(crate) use prefs::{span_of, Str};
pub use prefs::{
    Cutoffs, DataCollection, MaxPrice, Partition, ProviderPrefs, RouteField, Sort, SortBy,
};
pub use preset::{AppliedPreset, Preset, Presets};
#[cfg(test)]
pub(crate) use request::GATEWAY_ONLY;
pub use request::{
    AutoRouterPlugin, RequestView, IMAGE_TOKEN_BOUND, MESSAGE_TOKEN_OVERHEAD,
    REQUEST_TOKEN_OVERHEAD,
};
pub(crate) use route::splitmix;
pub use route::{Candidate, Exclusion, Reason, ResolvedModel, Route};
pub(crate) use route::{Candidates, Planned};
pub use served::{AttemptKind, AttemptRecord, Attempts, ServedBy};
pub use short::{ShortString, ViewStr, ID_INLINE, VIEW_INLINE};
pub(crate) use splice::{plain_json_str, splice, write_json_str, Piece, Pieces};
pub use validate::MAX_DEPTH;

/// The members of a JSON object, in order.
pub(crate) fn members(obj: &str) -> Option<Vec<(Cow<'_, str>, &RawValue)>> {
    let mut de = serde_json::Deserializer::from_str(obj);
    let v = serde::Deserializer::deserialize_map(&mut de, MembersVisitor).ok()?;
    de.end().ok()?;
    Some(v)
}

struct MembersVisitor;

impl<'de> serde::de::Visitor<'de> for MembersVisitor {
    type Value = Vec<(Cow<'de, str>, &'de RawValue)>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(k) = map.next_key::<Str<'de>>()? {
            let v: &'de RawValue = map.next_value()?;
            out.push((k.0, v));
        }
        Ok(out)
    }
}
