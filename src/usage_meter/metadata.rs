//! `openrouter_metadata`: what the router did for a request, on its answer when the caller asks
//! (<https://openrouter.ai/docs/guides/features/router-metadata>).
//!
//! A request opts in with `X-OpenRouter-Metadata: enabled` (or the legacy
//! `X-OpenRouter-Experimental-Metadata`), matched case-insensitively; any other value, or none, is
//! `disabled`. Without it nothing here runs: the meter checks one header and keeps a `None`.
//!
//! With it, the meter builds a [`Plan`] from the request's [`Route`] when the request arrives
//! (requested model, strategy, the endpoints left after every filter and those removed, with the
//! rule that removed each) and completes it with the **same attempt records** the generation
//! record's `provider_responses` come from ([`ServedBy::attempts`](crate::route::ServedBy), or
//! [`Attempts`] on an error). The object is then spliced into the answer as its last member:
//!
//! * a JSON answer: top level;
//! * a stream: the chunk that carries `usage` (the last before `[DONE]`);
//! * an error answer from ProviderFallback (every attempt failed): top level, next to `error` —
//!   except a `500`. Answers made before any provider is tried (400, 401, 402, 404, 429) have
//!   none, and neither has a cache hit (the response cache does not serve or store a request that
//!   asks for metadata).
//!
//! Only chat completions (and embeddings) answers get it: a Messages or Responses caller reads a
//! translation that does not carry the member.
//!
//! Imports `route` and `catalog` only.

use std::time::Duration;

use http::{HeaderMap, HeaderName};
use serde_json::{json, Value};

use crate::catalog::{Catalog, EndpointKey};
use crate::route::{AttemptRecord, Attempts, Route};

/// The opt-in header.
pub const METADATA_HEADER: HeaderName = HeaderName::from_static("x-openrouter-metadata");
/// Its legacy name, still accepted.
pub const LEGACY_METADATA_HEADER: HeaderName =
    HeaderName::from_static("x-openrouter-experimental-metadata");

/// The router models whose strategy is not `direct` (kept as strings: the meter does not import
/// ModelRouting).
const AUTO: &str = "openrouter/auto";
const FREE: &str = "openrouter/free";

/// Whether the request asks for `openrouter_metadata`: one of the two headers is `enabled`, in
/// any case. The new header wins when both are sent.
pub fn metadata_requested(headers: &HeaderMap) -> bool {
    headers
        .get(METADATA_HEADER)
        .or_else(|| headers.get(LEGACY_METADATA_HEADER))
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"enabled"))
}

/// One endpoint as the metadata names it.
#[derive(Debug)]
struct Named {
    provider: String,
    model: String,
    key: EndpointKey,
}

/// What the metadata of one request says, built before its answer (see the [module docs](self)).
#[derive(Debug)]
pub(crate) struct Plan {
    requested: String,
    strategy: &'static str,
    available: Vec<Named>,
    /// Removed endpoints and the rule that removed each (`ExcludedBy::as_str`).
    excluded: Vec<(Named, &'static str)>,
    attempts: Vec<AttemptRecord>,
}

/// The routing strategy of OpenRouter's `RoutingStrategy` that the request's `model` / `models`
/// name: `auto` / `free` for the router models, `fallback` when several models are listed,
/// `latest` for a `~author/family-latest` alias, `alias` for an operator alias, else `direct`.
fn strategy(route: &Route, requested: &[&str]) -> &'static str {
    let first = requested.first().copied().unwrap_or("");
    if first == AUTO || first.starts_with("openrouter/auto") {
        "auto"
    } else if first == FREE {
        "free"
    } else if requested.len() > 1 {
        "fallback"
    } else if first.starts_with('~') {
        "latest"
    } else if route.catalog().alias(first).is_some() {
        "alias"
    } else {
        "direct"
    }
}

fn named(catalog: &Catalog, index: usize) -> Option<Named> {
    let e = catalog.endpoint(index)?;
    let provider = catalog
        .endpoint_provider(index)
        .map_or_else(|| e.provider_name.clone(), |p| p.name.clone());
    Some(Named {
        provider,
        model: e.model_id.clone(),
        key: e.key().clone(),
    })
}

impl Plan {
    /// The plan of a routed request, after every routing layer outside the meter.
    pub(crate) fn new(route: &Route) -> Box<Plan> {
        let requested = route.view().requested_models();
        let catalog = route.catalog();
        Box::new(Plan {
            requested: requested.first().copied().unwrap_or("").to_owned(),
            strategy: strategy(route, &requested),
            available: route
                .candidates()
                .iter()
                .filter_map(|c| named(catalog, c.index))
                .collect(),
            excluded: route
                .exclusions()
                .iter()
                .filter_map(|x| Some((named(catalog, x.index)?, x.by.as_str())))
                .collect(),
            attempts: Vec::new(),
        })
    }

    /// The attempts, as ProviderFallback reported them.
    pub(crate) fn set_attempts(&mut self, attempts: &[AttemptRecord]) {
        self.attempts = attempts.to_vec();
    }

    fn sent(&self) -> impl Iterator<Item = &AttemptRecord> {
        self.attempts.iter().filter(|a| a.sent)
    }

    /// The position (1-based) of the attempt that served among those sent; 0 when none did.
    fn attempt(&self, served: Option<&EndpointKey>) -> usize {
        let Some(key) = served else { return 0 };
        self.sent()
            .position(|a| a.error_type.is_none() && a.endpoint == *key)
            .map_or(0, |i| i + 1)
    }

    /// A one-line summary: `available=2, excluded=1 (max_price), attempts=2, selected=Acme`.
    fn summary(&self, served: Option<&Named>) -> String {
        let mut s = format!("available={}", self.available.len());
        if !self.excluded.is_empty() {
            let mut why: Vec<&str> = self.excluded.iter().map(|(_, r)| *r).collect();
            why.dedup();
            s.push_str(&format!(
                ", excluded={} ({})",
                self.excluded.len(),
                why.join(", ")
            ));
        }
        let skipped = self.attempts.iter().filter(|a| !a.sent).count();
        if skipped > 0 {
            s.push_str(&format!(", skipped={skipped}"));
        }
        s.push_str(&format!(", attempts={}", self.sent().count()));
        match served {
            Some(n) => s.push_str(&format!(", selected={}", n.provider)),
            None => s.push_str(", selected=none"),
        }
        s
    }

    /// The `openrouter_metadata` object. `served` is the endpoint that answered (none for an
    /// error); `elapsed` is the time since the request reached the meter.
    pub(crate) fn to_json(&self, served: Option<&EndpointKey>, elapsed: Duration) -> Value {
        let selected = served.and_then(|k| self.available.iter().find(|n| n.key == *k));
        let available: Vec<Value> = self
            .available
            .iter()
            .map(|n| json!({"provider": n.provider, "model": n.model, "selected": Some(&n.key) == served}))
            .collect();
        let excluded: Vec<Value> = self
            .excluded
            .iter()
            .map(|(n, why)| json!({"provider": n.provider, "model": n.model, "reason": why}))
            .collect();
        let attempts: Vec<Value> = self
            .attempts
            .iter()
            .map(|a| {
                json!({
                    "provider": &*a.provider,
                    "model": a.endpoint.model(),
                    "status": a.status,
                    "outcome": a.kind.as_str(),
                    "sent": a.sent,
                })
            })
            .collect();
        let mut out = json!({
            "requested": self.requested,
            "strategy": self.strategy,
            "region": null,
            "summary": self.summary(selected),
            "attempt": self.attempt(served),
            "is_byok": false,
            "endpoints": {
                "total": self.available.len() + self.excluded.len(),
                "available": available,
                "excluded": excluded,
            },
            "attempts": attempts,
        });
        if served.is_some() {
            // From dispatching the serving attempt (the failed attempts before it taken off) to
            // the answer.
            let failed: Duration = self
                .sent()
                .filter(|a| a.error_type.is_some())
                .map(|a| a.duration)
                .sum();
            let ms = elapsed.saturating_sub(failed).as_millis();
            out["generation_time"] = json!(u64::try_from(ms).unwrap_or(u64::MAX));
        }
        out
    }
}

/// The edit that adds `"openrouter_metadata":{…}` as the last member of the JSON object `d`
/// (an insertion before its closing brace); `None` if `d` does not end an object.
pub(crate) fn insertion(
    plan: &Plan,
    d: &[u8],
    served: Option<&EndpointKey>,
    elapsed: Duration,
) -> Option<(std::ops::Range<usize>, Vec<u8>)> {
    let close = d.iter().rposition(|b| !b.is_ascii_whitespace())?;
    if d[close] != b'}' {
        return None;
    }
    let empty = d[..close]
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .is_some_and(|i| d[i] == b'{');
    let mut v = Vec::with_capacity(512);
    if !empty {
        v.push(b',');
    }
    v.extend_from_slice(b"\"openrouter_metadata\":");
    serde_json::to_writer(&mut v, &plan.to_json(served, elapsed)).ok()?;
    Some((close..close, v))
}

/// Whether an error answer gets the metadata (`plan` is then completed with its attempts, else
/// dropped): one ProviderFallback made after trying providers (it carries [`Attempts`]), unless
/// it is a `500` (whose details are masked).
pub(crate) fn for_error(
    plan: &mut Option<Box<Plan>>,
    status: http::StatusCode,
    ext: &http::Extensions,
) -> bool {
    let Some(p) = plan.as_mut() else { return false };
    match ext.get::<Attempts>() {
        Some(a) if status != http::StatusCode::INTERNAL_SERVER_ERROR => {
            p.set_attempts(&a.0);
            true
        }
        _ => {
            *plan = None;
            false
        }
    }
}
