//! Candidate resolution: models → endpoints → hard filters → order.

use std::cmp::Ordering;

use bytes::Bytes;
use http::HeaderMap;
use tokio::time::Instant;

use super::resolve::{resolve, ModelPlan};
use super::sticky::sticky_key;
use super::Config;
use crate::catalog::{Catalog, Endpoint, Parameter, Provider, ServiceTier, Usd};
use crate::error::{ExcludedBy, GatewayError};
use crate::health::{HealthSource, Percentile};
use crate::route::{
    splitmix, BalanceInput, Candidate, Exclusion, Partition, Reason, RequestView, ResolvedModel,
    Route, RouteField, RouteParts, SortBy,
};

/// The conversation key for stickiness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Session {
    /// Body `session_id` or the `x-session-id` header: sticks on any success.
    Explicit(u64),
    /// `prompt_cache_key` or the first-messages hash: sticks only on cache-eligible endpoints.
    Implicit(u64),
}

impl Session {
    pub(crate) fn id(self) -> u64 {
        match self {
            Session::Explicit(k) | Session::Implicit(k) => k,
        }
    }
}

fn hash_str(s: &str) -> u64 {
    crate::hash::fast_hash(s)
}

/// The explicit or declared conversation key; the first-messages hash is computed separately, only
/// when some candidate could stick by it.
pub(crate) fn session_key(view: &RequestView<'_>, headers: &HeaderMap) -> Option<Session> {
    if let Some(s) = &view.session_id {
        return Some(Session::Explicit(hash_str(s)));
    }
    if let Some(s) = headers.get("x-session-id").and_then(|v| v.to_str().ok()) {
        if !s.is_empty() {
            return Some(Session::Explicit(hash_str(s)));
        }
    }
    view.prompt_cache_key
        .as_ref()
        .map(|s| Session::Implicit(hash_str(s)))
}

/// True if caching pays at `e`: its cache-read price is below its prompt price. Only such endpoints
/// stick without an explicit session.
pub(crate) fn cache_eligible(e: &Endpoint) -> bool {
    e.pricing
        .input_cache_read
        .is_some_and(|r| r < e.pricing.prompt)
}

/// True if `entry` (a slug, tag or display name from `order` / `only` / `ignore`) names `e`: a full
/// tag matches that endpoint; a base slug or the provider's display name matches every endpoint of
/// the provider except service-tier endpoints (shared/OPENROUTER.md §3.3).
pub(crate) fn names(entry: &str, e: &Endpoint, p: &Provider) -> bool {
    if entry == e.tag {
        return true;
    }
    e.service_tier.is_none() && (entry == e.provider_slug() || entry.eq_ignore_ascii_case(&p.name))
}

fn names_exactly(list: Option<&Vec<std::borrow::Cow<'_, str>>>, e: &Endpoint) -> bool {
    list.is_some_and(|l| l.iter().any(|x| *x == e.tag))
}

struct TierRequest {
    priority: bool,
    flex: bool,
    ultrafast: bool,
}

fn tier_request(view: &RequestView<'_>) -> Result<TierRequest, GatewayError> {
    let mut t = TierRequest {
        priority: false,
        flex: false,
        ultrafast: false,
    };
    match view.service_tier.as_deref() {
        None | Some("auto") | Some("default") | Some("scale") => {}
        Some("priority") | Some("fast") => t.priority = true,
        Some("flex") => t.flex = true,
        Some("ultrafast") => {
            t.ultrafast = true;
            t.priority = true;
        }
        Some(other) => {
            return Err(GatewayError::invalid_request(
                "service_tier",
                &format!(
                    "unknown service tier `{other}` (expected auto, default, fast, flex, priority, scale or ultrafast)"
                ),
            ))
        }
    }
    Ok(t)
}

/// A metric value for sorting: known values first (better first), unknown after.
fn metric(health: &dyn HealthSource, e: &Endpoint, by: SortBy, now: Instant) -> Option<f64> {
    let key = e.key();
    match by {
        SortBy::Price => None,
        SortBy::Throughput => health
            .throughput(key, Percentile::P50, now)
            .or(e.throughput_last_30m.map(|s| s.p50)),
        SortBy::Latency => health
            .latency_ms(key, Percentile::P50, now)
            .or(e.latency_last_30m.map(|s| s.p50)),
        SortBy::Exacto => health
            .success_rate(key, now)
            .or(e.uptime_last_30m.map(|u| u / 100.0)),
    }
}

pub(crate) struct Planned {
    pub(crate) route: Route,
    pub(crate) session: Option<Session>,
}

/// Resolves, filters and orders the candidates of a request.
pub(crate) fn plan(
    cfg: &Config,
    catalog: Catalog,
    body: Bytes,
    view: RequestView<'static>,
    headers: &HeaderMap,
    now: Instant,
) -> Result<Planned, GatewayError> {
    if view.models.len() > cfg.max_models {
        return Err(GatewayError::invalid_request(
            "models",
            &format!("'models' array must have {} items or fewer", cfg.max_models),
        ));
    }
    let tiers = tier_request(&view)?;
    let prefs = &view.provider;
    let mut plans: Vec<ModelPlan> = Vec::new();
    for name in view.requested_models() {
        let p = resolve(&catalog, name)?;
        if !plans
            .iter()
            .any(|q| q.id == p.id && q.free_only == p.free_only)
        {
            plans.push(p);
        }
    }

    let partition = match (prefs.sort.and_then(|s| s.partition), view.route) {
        (Some(p), _) => p,
        (None, Some(RouteField::Sort)) => Partition::None,
        _ => Partition::Model,
    };
    let order_set = prefs.order.as_ref().is_some_and(|o| !o.is_empty());
    let allow_fallbacks = prefs.allow_fallbacks.unwrap_or(true);
    let prompt_tokens = view.prompt_estimate();
    let max_out = view.max_output();
    let unix_millis = cfg.clock.unix_millis();
    let health: &dyn HealthSource = &*cfg.health.0;
    let mut rng = cfg.seed
        ^ cfg
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .wrapping_mul(0xD1B5_4A32_D192_ED03);
    let mut session = session_key(&view, headers);
    let mut hashed = false;

    let price_of = |e: &Endpoint| -> Usd { e.blended_price(prompt_tokens, unix_millis) };
    let stable = |e: &Endpoint| {
        e.status >= 0 && !health.is_degraded(e.key(), now) && !health.in_cooldown(e.key(), now)
    };

    let mut exclusions: Vec<Exclusion> = Vec::new();
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut global_sort: Option<SortBy> = None;

    for (mi, mp) in plans.iter().enumerate() {
        let range = catalog.endpoint_range(&mp.id).unwrap_or(0..0);
        let mut alive: Vec<usize> = Vec::with_capacity(range.len());
        let admit_variant_tiers = !order_set;
        for idx in range {
            let (Some(e), Some(p)) = (catalog.endpoint(idx), catalog.endpoint_provider(idx)) else {
                continue;
            };
            let mut exclude = |by| exclusions.push(Exclusion { index: idx, by });
            if let Some(tier) = e.service_tier {
                let admitted = match tier {
                    ServiceTier::Priority => {
                        tiers.priority || (admit_variant_tiers && mp.admit_priority)
                    }
                    ServiceTier::Flex => tiers.flex || (admit_variant_tiers && mp.admit_flex),
                    ServiceTier::Ultrafast => tiers.ultrafast,
                } || names_exactly(prefs.order.as_ref(), e)
                    || names_exactly(prefs.only.as_ref(), e);
                if !admitted {
                    exclude(ExcludedBy::ServiceTier);
                    continue;
                }
            }
            if mp.free_only && !e.pricing.is_free() {
                exclude(ExcludedBy::MaxPrice);
                continue;
            }
            let ignored = prefs
                .ignore
                .iter()
                .flatten()
                .map(|s| &**s)
                .chain(cfg.ignore.iter().map(String::as_str))
                .any(|s| names(s, e, p));
            if ignored {
                exclude(ExcludedBy::AllowedProviders);
                continue;
            }
            if let Some(only) = &prefs.only {
                if !only.iter().any(|s| names(s, e, p)) {
                    exclude(ExcludedBy::AllowedProviders);
                    continue;
                }
            }
            if let Some(allow) = &cfg.allow {
                if !allow.iter().any(|s| names(s, e, p)) {
                    exclude(ExcludedBy::AllowedProviders);
                    continue;
                }
            }
            if let Some(qs) = &prefs.quantizations {
                let q = e.quantization_or_unknown();
                if !qs.iter().any(|r| r.admits(q)) {
                    exclude(ExcludedBy::Quantization);
                    continue;
                }
            }
            if prefs.require_parameters == Some(true) && !e.params().is_superset(view.params) {
                exclude(ExcludedBy::RequireParameters);
                continue;
            }
            if view.params.contains(Parameter::Tools) && !e.params().contains(Parameter::Tools) {
                exclude(ExcludedBy::RequireParameters);
                continue;
            }
            let out = max_out.unwrap_or(0);
            let too_long = (e.context_length > 0
                && prompt_tokens.saturating_add(out) > e.context_length)
                || e.max_prompt_tokens.is_some_and(|m| prompt_tokens > m)
                || (max_out.is_some() && e.max_completion_tokens.is_some_and(|m| out > m));
            if too_long {
                exclude(ExcludedBy::ContextLength);
                continue;
            }
            alive.push(idx);
        }

        // Soft preferences: only if some endpoint supports the parameter.
        for p in [Parameter::ResponseFormat, Parameter::Verbosity] {
            if view.params.contains(p) {
                let supports =
                    |i: &usize| catalog.endpoint(*i).is_some_and(|e| e.params().contains(p));
                if alive.iter().any(supports) {
                    for &i in alive.iter().filter(|i| !supports(i)) {
                        exclusions.push(Exclusion {
                            index: i,
                            by: ExcludedBy::RequireParameters,
                        });
                    }
                    alive.retain(supports);
                }
            }
        }
        // `service_tier: "flex"`: only flex endpoints when the model has any.
        if tiers.flex {
            let is_flex = |i: &usize| {
                catalog
                    .endpoint(*i)
                    .is_some_and(|e| e.service_tier == Some(ServiceTier::Flex))
            };
            if alive.iter().any(is_flex) {
                for &i in alive.iter().filter(|i| !is_flex(i)) {
                    exclusions.push(Exclusion {
                        index: i,
                        by: ExcludedBy::ServiceTier,
                    });
                }
                alive.retain(is_flex);
            }
        }

        let ep = |i: usize| catalog.endpoint(i).unwrap_or_else(|| unreachable!());
        let push = |c: &mut Vec<Candidate>, idx: usize, reason| {
            c.push(Candidate {
                index: idx,
                model: mi,
                reason,
            })
        };
        let mut ordered: Vec<Candidate> = Vec::with_capacity(alive.len());

        // `order`: listed endpoints first, in list order.
        if let Some(order) = prefs.order.as_ref().filter(|o| !o.is_empty()) {
            for entry in order {
                for &idx in &alive {
                    let e = ep(idx);
                    let p = catalog
                        .endpoint_provider(idx)
                        .unwrap_or_else(|| unreachable!());
                    if names(entry, e, p) && !ordered.iter().any(|c| c.index == idx) {
                        push(&mut ordered, idx, Reason::Order);
                    }
                }
            }
            if !allow_fallbacks {
                for &idx in &alive {
                    if !ordered.iter().any(|c| c.index == idx) {
                        exclusions.push(Exclusion {
                            index: idx,
                            by: ExcludedBy::AllowedProviders,
                        });
                    }
                }
                candidates.extend(ordered);
                continue;
            }
            alive.retain(|i| !ordered.iter().any(|c| c.index == *i));
        }

        let sort = prefs.sort.map(|s| s.by).or(mp.sort);
        // Stable first; unstable last; both by ascending price (stable sort keeps catalog order on
        // ties).
        // Ordering by the f64 image of exact prices: equal decimals give equal f64s, and the order
        // of distinct prices is kept (catalog prices are far apart compared with f64 precision).
        let pf = |i: usize| ep(i).blended_price_f64(prompt_tokens, unix_millis);
        alive.sort_by(|&a, &b| pf(a).total_cmp(&pf(b)));
        let (mut good, bad): (Vec<usize>, Vec<usize>) = alive.iter().partition(|&&i| stable(ep(i)));

        if let Some(by) = sort {
            if partition == Partition::None && plans.len() > 1 {
                global_sort = Some(by);
            }
            if by != SortBy::Price {
                good.sort_by(|&a, &b| cmp_metric(health, ep(a), ep(b), by, now));
            }
            for i in good {
                push(&mut ordered, i, Reason::Sorted(by));
            }
        } else if !allow_fallbacks && !order_set {
            // Only the top (lowest-cost) provider.
            if let Some(&first) = good.first().or(bad.first()) {
                push(&mut ordered, first, Reason::ByPrice);
                for &i in good.iter().chain(bad.iter()).filter(|&&i| i != first) {
                    exclusions.push(Exclusion {
                        index: i,
                        by: ExcludedBy::AllowedProviders,
                    });
                }
            }
            candidates.extend(ordered);
            continue;
        } else if !good.is_empty() {
            let prices: Vec<Usd> = good.iter().map(|&i| price_of(ep(i))).collect();
            let draw = splitmix(&mut rng);
            let input = BalanceInput {
                catalog: &catalog,
                endpoints: &good,
                prices: &prices,
            };
            let pick = cfg.balance.pick(&input, draw).min(good.len() - 1);
            push(&mut ordered, good[pick], Reason::WeightedPick);
            for (k, &i) in good.iter().enumerate() {
                if k != pick {
                    push(&mut ordered, i, Reason::ByPrice);
                }
            }
        }
        for i in bad {
            push(&mut ordered, i, Reason::Unstable);
        }

        // `service_tier: "priority"`: priority endpoints first, by throughput.
        if tiers.priority && !order_set {
            let (mut pri, rest): (Vec<Candidate>, Vec<Candidate>) =
                ordered.into_iter().partition(|c| {
                    ep(c.index)
                        .service_tier
                        .is_some_and(|t| t != ServiceTier::Flex)
                });
            pri.sort_by(|a, b| {
                cmp_metric(health, ep(a.index), ep(b.index), SortBy::Throughput, now)
            });
            ordered = pri;
            ordered.extend(rest);
        }

        // Sticky session: the remembered endpoint goes first (never with `order`). The first-messages
        // hash is only worth computing when an endpoint could stick by it.
        if session.is_none()
            && !hashed
            && cfg.sticky_implicit
            && ordered.iter().any(|c| cache_eligible(ep(c.index)))
        {
            hashed = true;
            session = view.conversation_hash(&body).map(Session::Implicit);
        }
        if let (Some(s), false) = (session, order_set) {
            if let Some(key) = cfg
                .sticky
                .get(sticky_key(cfg.sticky.seed, s.id(), &mp.id), now)
            {
                if let Some(pos) = ordered.iter().position(|c| ep(c.index).key() == &key) {
                    let mut c = ordered.remove(pos);
                    c.reason = Reason::Sticky;
                    ordered.insert(0, c);
                }
            }
        }
        candidates.extend(ordered);
    }

    // `partition: "none"` with a sort: one order across all models.
    if let Some(by) = global_sort {
        let ep = |i: usize| catalog.endpoint(i).unwrap_or_else(|| unreachable!());
        let (mut head, tail): (Vec<Candidate>, Vec<Candidate>) = candidates
            .into_iter()
            .partition(|c| matches!(c.reason, Reason::Sorted(_)));
        head.sort_by(|a, b| {
            let (ea, eb) = (ep(a.index), ep(b.index));
            match by {
                SortBy::Price => price_of(ea).cmp(&price_of(eb)),
                _ => cmp_metric(health, ea, eb, by, now),
            }
        });
        head.extend(tail);
        candidates = head;
    }

    let route = Route::from_parts(RouteParts {
        body,
        view,
        catalog,
        models: plans
            .into_iter()
            .map(|p| ResolvedModel {
                requested: p.requested,
                id: p.id,
            })
            .collect(),
        candidates,
        exclusions,
        partition,
        prompt_tokens,
        unix_millis,
        rng,
        balance: cfg.balance.clone(),
    });
    if route.candidates().is_empty() {
        return Err(route.unavailable());
    }
    Ok(Planned { route, session })
}

fn cmp_metric(
    health: &dyn HealthSource,
    a: &Endpoint,
    b: &Endpoint,
    by: SortBy,
    now: Instant,
) -> Ordering {
    let (ma, mb) = (metric(health, a, by, now), metric(health, b, by, now));
    match (ma, mb) {
        (Some(x), Some(y)) => {
            let o = x.partial_cmp(&y).unwrap_or(Ordering::Equal);
            match by {
                SortBy::Latency => o,
                _ => o.reverse(),
            }
        }
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}
