//! Rate limits of the example gateway (`[gateway.rate_limits]`, per-key `rate_limit`,
//! `free_requests_per_day`, `class`, `management`) and the JSON of `/api/v1/key` and
//! `/api/v1/credits`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::{json, Value};
use tower_ai_gateway::catalog::Usd;
use tower_ai_gateway::rate_limit::{FreeLimits, Limits, RateLimitLayer};
use tower_ai_gateway::usage_meter::{CallerKey, KeyUsage, Period};

/// Requests and tokens per key (or class, model, endpoint). Unset limits do not apply.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    #[serde(default)]
    pub requests_per_minute: Option<u64>,
    #[serde(default)]
    pub requests_per_day: Option<u64>,
    #[serde(default)]
    pub tokens_per_minute: Option<u64>,
}

impl LimitsSpec {
    fn limits(self) -> Limits {
        let mut l = Limits::new();
        l.requests_per_minute = self.requests_per_minute;
        l.requests_per_day = self.requests_per_day;
        l.tokens_per_minute = self.tokens_per_minute;
        l
    }
}

/// `[gateway.rate_limits]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitsSection {
    /// Every key's requests per minute, unless the key or its class has its own limits.
    #[serde(default)]
    pub requests_per_minute: Option<u64>,
    /// Every key's requests per UTC day (same rule).
    #[serde(default)]
    pub requests_per_day: Option<u64>,
    /// Every key's tokens per minute (same rule).
    #[serde(default)]
    pub tokens_per_minute: Option<u64>,
    /// `:free` models per key per minute (OpenRouter: 20; 0 turns the `:free` limits off).
    #[serde(default = "free_per_minute")]
    pub free_requests_per_minute: u64,
    /// `:free` models per key per UTC day (OpenRouter: 50; a key may have its own).
    #[serde(default = "free_per_day")]
    pub free_requests_per_day: u64,
    /// Named classes of keys (`class = "pro"` on a key).
    #[serde(default)]
    pub classes: BTreeMap<String, LimitsSpec>,
    /// Limits shared by all callers of a catalog model.
    #[serde(default)]
    pub models: BTreeMap<String, LimitsSpec>,
    /// Limits shared by all callers of an endpoint, `"<model>@<tag>"`.
    #[serde(default)]
    pub endpoints: BTreeMap<String, LimitsSpec>,
}

fn free_per_minute() -> u64 {
    FreeLimits::openrouter().requests_per_minute
}

fn free_per_day() -> u64 {
    FreeLimits::openrouter().requests_per_day
}

impl Default for RateLimitsSection {
    fn default() -> Self {
        RateLimitsSection {
            requests_per_minute: None,
            requests_per_day: None,
            tokens_per_minute: None,
            free_requests_per_minute: free_per_minute(),
            free_requests_per_day: free_per_day(),
            classes: BTreeMap::new(),
            models: BTreeMap::new(),
            endpoints: BTreeMap::new(),
        }
    }
}

/// The rate-limit settings of one key (`[[gateway.keys]]`).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct KeyRateSpec {
    /// The key's own limits.
    #[serde(default)]
    pub rate_limit: Option<LimitsSpec>,
    /// Its class (see `[gateway.rate_limits.classes]`).
    #[serde(default)]
    pub class: Option<String>,
    /// Its own daily quota of `:free` requests (OpenRouter: 50, or 1,000 after buying credits).
    #[serde(default)]
    pub free_requests_per_day: Option<u64>,
    /// May read `/api/v1/credits`.
    #[serde(default)]
    pub management: bool,
}

/// The rate limits of the app, and who is a management key.
#[derive(Clone, Debug)]
pub struct RateLimits {
    pub layer: RateLimitLayer,
    pub management: BTreeSet<String>,
}

impl RateLimits {
    /// From the `[gateway.rate_limits]` section and each key's `(name, settings)`.
    pub fn new(section: &RateLimitsSection, keys: &[(String, KeyRateSpec)]) -> Self {
        let default = LimitsSpec {
            requests_per_minute: section.requests_per_minute,
            requests_per_day: section.requests_per_day,
            tokens_per_minute: section.tokens_per_minute,
        };
        let mut layer = RateLimitLayer::new().default_limits(default.limits());
        if section.free_requests_per_minute > 0 {
            layer = layer.free(FreeLimits::new(
                section.free_requests_per_minute,
                section.free_requests_per_day,
            ));
        }
        for (name, spec) in &section.classes {
            layer = layer.class(name, spec.limits());
        }
        for (id, spec) in &section.models {
            layer = layer.model_limits(id, spec.limits());
        }
        for (ep, spec) in &section.endpoints {
            layer = layer.endpoint_limits(ep, spec.limits());
        }
        let mut management = BTreeSet::new();
        for (name, k) in keys {
            if let Some(l) = k.rate_limit {
                layer = layer.key_limits(name, l.limits());
            }
            if let Some(c) = &k.class {
                layer = layer.key_class(name, c);
            }
            if let Some(n) = k.free_requests_per_day {
                layer = layer.free_requests_per_day(name, n);
            }
            if k.management {
                management.insert(name.clone());
            }
        }
        RateLimits { layer, management }
    }
}

/// Start of the period after the one containing `now` (Unix ms).
fn next_start(period: Period, now: i64) -> Option<i64> {
    const DAY: i64 = 86_400_000;
    let start = period.start(now);
    Some(match period {
        Period::Day => start + DAY,
        Period::Week => start + 7 * DAY,
        Period::Month => Period::Month.start(start + 32 * DAY),
        _ => return None,
    })
}

fn rfc3339(unix_ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(u64::try_from(unix_ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()
}

fn usd(u: Usd) -> Value {
    json!(u.to_f64())
}

/// OpenRouter's `KeyBudget` for the key's spending limit (`scope: "key_limit"`), if it has one.
fn budget(limit: Option<(Period, Usd)>, u: &KeyUsage, now: i64) -> Option<Value> {
    let (period, amount) = limit?;
    let remaining = u.limit_remaining.unwrap_or(amount);
    Some(json!({
        "scope": "key_limit",
        "limit_usd": usd(amount),
        "spend_usd": usd(amount.sub(remaining)),
        "remaining_usd": usd(remaining),
        "reset_interval": period.reset_name(),
        "resets_at": next_start(period, now).map(rfc3339),
        "include_byok": false,
        "budget_id": null,
        "guardrail_id": null,
    }))
}

/// What `/api/v1/key` says about `caller`.
pub struct KeyReport<'a> {
    pub caller: &'a CallerKey,
    pub usage: KeyUsage,
    pub limit: Option<(Period, Usd)>,
    /// `:free` requests today and the daily quota, if `:free` models are limited.
    pub free_today: Option<(u64, u64)>,
    pub management: bool,
    pub now_unix_ms: i64,
}

/// `GET /api/v1/key`: OpenRouter's full shape (<https://openrouter.ai/docs/api/reference/limits>).
pub fn key_json(r: &KeyReport<'_>, layer: &RateLimitLayer) -> Value {
    let u = &r.usage;
    let budgets: Vec<Value> = budget(r.limit, u, r.now_unix_ms).into_iter().collect();
    let free = r.free_today.map(|(used, limit)| {
        json!({"limit": limit, "remaining": limit.saturating_sub(used), "used": used})
    });
    let rpm = layer.limits_of(r.caller).requests_per_minute;
    json!({"data": {
        "label": r.caller.as_str(),
        "limit": u.limit.map(usd),
        "limit_remaining": u.limit_remaining.map(usd),
        "limit_reset": u.limit_reset,
        "usage": usd(u.usage),
        "usage_daily": usd(u.usage_daily),
        "usage_weekly": usd(u.usage_weekly),
        "usage_monthly": usd(u.usage_monthly),
        "byok_usage": 0, "byok_usage_daily": 0, "byok_usage_weekly": 0, "byok_usage_monthly": 0,
        "include_byok_in_limit": false,
        // OpenRouter's free tier: a key that has paid for nothing. Here: no spending limit.
        "is_free_tier": r.limit.is_none() && u.usage.is_zero(),
        "is_management_key": r.management,
        "is_provisioning_key": false,
        "rate_limit": {
            "requests": rpm.map_or(-1, |n| n as i64),
            "interval": "1m",
            "note": "requests per minute for this key (-1: none); limited answers are 429 with Retry-After",
        },
        "free_model_daily_requests": free,
        "effective_budget": budgets.first().cloned(),
        "budgets": budgets,
        "allowed_data_regions": ["global"],
        "creator_user_id": null, "organization_id": null, "workspace_id": null, "expires_at": null,
    }})
}

/// `GET /api/v1/credits`: the configured spending limits and the spend of every known key.
pub fn credits_json(usages: &[(KeyUsage, Option<(Period, Usd)>)]) -> Value {
    let credits = usages
        .iter()
        .filter_map(|(_, l)| l.map(|(_, a)| a))
        .fold(Usd::ZERO, Usd::add);
    let usage = usages
        .iter()
        .map(|(u, _)| u.usage)
        .fold(Usd::ZERO, Usd::add);
    json!({"data": {"total_credits": usd(credits), "total_usage": usd(usage)}})
}
