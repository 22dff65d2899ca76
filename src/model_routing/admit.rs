//! The hard filters: one admission rule per preference, each answering the `excluded_by` reason that
//! removes an endpoint, or `None` to keep it. [`Admission::admit`] applies them in a fixed order and
//! the first reason wins; the two group rules ([`soft_parameters`], [`flex_only`]) then look at a
//! model's admitted endpoints together.

use std::borrow::Cow;

use smallvec::SmallVec;

use super::resolve::ModelPlan;
use crate::catalog::{Endpoint, ParamSet, Parameter, Provider, Quantization, ServiceTier};
use crate::error::{ExcludedBy, GatewayError};
use crate::route::{Exclusion, ProviderPrefs, RequestView};

/// An endpoint of the catalog with its global index and provider.
#[derive(Clone, Copy)]
pub(crate) struct Ep<'c> {
    pub(crate) index: usize,
    pub(crate) e: &'c Endpoint,
    pub(crate) p: &'c Provider,
}

/// A model's endpoints while they are admitted and ordered (inline: a model has a handful).
pub(crate) type Eps<'c> = SmallVec<[Ep<'c>; 8]>;

/// The service tiers a request asks for (`service_tier`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TierRequest {
    pub(crate) priority: bool,
    pub(crate) flex: bool,
    pub(crate) ultrafast: bool,
}

/// Reads `service_tier`: `auto`, `default` and `scale` ask for nothing special; `priority` (alias
/// `fast`), `flex` and `ultrafast` (which also admits priority endpoints) for a tier.
pub(crate) fn tier_request(view: &RequestView<'_>) -> Result<TierRequest, GatewayError> {
    let mut t = TierRequest::default();
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

/// True if `entry` (a slug, tag or display name from `order` / `only` / `ignore`) names `e`: a full
/// tag matches that endpoint; a base slug or the provider's display name matches every endpoint of
/// the provider except service-tier endpoints.
pub(crate) fn names(entry: &str, e: &Endpoint, p: &Provider) -> bool {
    if entry == e.tag {
        return true;
    }
    e.service_tier.is_none() && (entry == e.provider_slug() || entry.eq_ignore_ascii_case(&p.name))
}

fn names_exactly(list: Option<&[Cow<'_, str>]>, e: &Endpoint) -> bool {
    list.is_some_and(|l| l.iter().any(|x| *x == e.tag))
}

/// What one request asks of the per-endpoint rules, gathered once.
pub(crate) struct Admission<'a> {
    pub(crate) prefs: &'a ProviderPrefs<'static>,
    pub(crate) params: ParamSet,
    pub(crate) tiers: TierRequest,
    /// `order` is set: variants no longer admit tier endpoints.
    pub(crate) order_set: bool,
    /// The operator's allow-list.
    pub(crate) allow: Option<&'a [String]>,
    /// The operator's deny-list.
    pub(crate) deny: &'a [String],
    pub(crate) prompt_tokens: u64,
    pub(crate) max_out: Option<u64>,
    /// The request's context-compression choice (`RequestView::middle_out`).
    pub(crate) middle_out: Option<bool>,
}

impl Admission<'_> {
    /// The reason the first failing rule gives, or `None` if `e` passes every rule.
    #[inline]
    pub(crate) fn admit(&self, mp: &ModelPlan, e: &Endpoint, p: &Provider) -> Option<ExcludedBy> {
        let prefs = self.prefs;
        service_tier(e, self.tiers, mp, !self.order_set, prefs)
            .or_else(|| free_only(e, mp.free_only))
            .or_else(|| ignored(e, p, prefs.ignore.as_deref(), self.deny))
            .or_else(|| not_only(e, p, prefs.only.as_deref()))
            .or_else(|| not_allowed(e, p, self.allow))
            .or_else(|| quantization(e, prefs.quantizations.as_deref()))
            .or_else(|| require_parameters(e, prefs.require_parameters, self.params))
            .or_else(|| tools(e, self.params))
            .or_else(|| context_length(e, self.prompt_tokens, self.max_out, self.middle_out))
    }
}

/// Tier endpoints only when asked for: by `service_tier`, by a variant (`:nitro` admits priority,
/// `:floor` flex; not with `order`), or by their full tag in `order` / `only`.
#[inline]
pub(crate) fn service_tier(
    e: &Endpoint,
    tiers: TierRequest,
    mp: &ModelPlan,
    variants_admit: bool,
    prefs: &ProviderPrefs<'_>,
) -> Option<ExcludedBy> {
    let tier = e.service_tier?;
    let admitted = match tier {
        ServiceTier::Priority => tiers.priority || (variants_admit && mp.admit_priority),
        ServiceTier::Flex => tiers.flex || (variants_admit && mp.admit_flex),
        ServiceTier::Ultrafast => tiers.ultrafast,
    } || names_exactly(prefs.order.as_deref(), e)
        || names_exactly(prefs.only.as_deref(), e);
    (!admitted).then_some(ExcludedBy::ServiceTier)
}

/// `:free` on a model without a free twin: only free endpoints.
pub(crate) fn free_only(e: &Endpoint, free_only: bool) -> Option<ExcludedBy> {
    (free_only && !e.pricing.is_free()).then_some(ExcludedBy::MaxPrice)
}

/// `ignore` and the operator's deny-list.
pub(crate) fn ignored(
    e: &Endpoint,
    p: &Provider,
    ignore: Option<&[Cow<'_, str>]>,
    deny: &[String],
) -> Option<ExcludedBy> {
    // The usual case (neither list) without walking an empty chain.
    if ignore.is_none() && deny.is_empty() {
        return None;
    }
    let hit = ignore
        .into_iter()
        .flatten()
        .map(|s| &**s)
        .chain(deny.iter().map(String::as_str))
        .any(|s| names(s, e, p));
    hit.then_some(ExcludedBy::AllowedProviders)
}

/// `only`: the endpoint must be named in it.
pub(crate) fn not_only(
    e: &Endpoint,
    p: &Provider,
    only: Option<&[Cow<'_, str>]>,
) -> Option<ExcludedBy> {
    only.filter(|l| !l.iter().any(|s| names(s, e, p)))
        .map(|_| ExcludedBy::AllowedProviders)
}

/// The operator's allow-list: the endpoint must be named in it.
pub(crate) fn not_allowed(
    e: &Endpoint,
    p: &Provider,
    allow: Option<&[String]>,
) -> Option<ExcludedBy> {
    allow
        .filter(|l| !l.iter().any(|s| names(s, e, p)))
        .map(|_| ExcludedBy::AllowedProviders)
}

/// `quantizations` (an endpoint that reports none counts as `unknown`; `fp4` admits `mxfp4`, …).
pub(crate) fn quantization(e: &Endpoint, wanted: Option<&[Quantization]>) -> Option<ExcludedBy> {
    let wanted = wanted?;
    let q = e.quantization_or_unknown();
    (!wanted.iter().any(|r| r.admits(q))).then_some(ExcludedBy::Quantization)
}

/// `require_parameters: true`: the endpoint supports every parameter the request uses.
pub(crate) fn require_parameters(
    e: &Endpoint,
    required: Option<bool>,
    params: ParamSet,
) -> Option<ExcludedBy> {
    (required == Some(true) && !e.params().is_superset(params))
        .then_some(ExcludedBy::RequireParameters)
}

/// A request with tools only goes to endpoints that support tools (OpenRouter's observed behaviour).
pub(crate) fn tools(e: &Endpoint, params: ParamSet) -> Option<ExcludedBy> {
    (params.contains(Parameter::Tools) && !e.params().contains(Parameter::Tools))
        .then_some(ExcludedBy::RequireParameters)
}

/// Context length ≥ prompt estimate + requested output (half of it when middle-out compression is
/// on for the endpoint: `crate::route::compresses`); prompt estimate ≤ `max_prompt_tokens`;
/// requested output ≤ `max_completion_tokens`.
pub(crate) fn context_length(
    e: &Endpoint,
    prompt_tokens: u64,
    max_out: Option<u64>,
    middle_out: Option<bool>,
) -> Option<ExcludedBy> {
    let out = max_out.unwrap_or(0);
    let mut needed = prompt_tokens.saturating_add(out);
    if crate::route::compresses(middle_out, e.context_length) {
        needed = needed.div_ceil(2);
    }
    let too_long = (e.context_length > 0 && needed > e.context_length)
        || e.max_prompt_tokens.is_some_and(|m| prompt_tokens > m)
        || (max_out.is_some() && e.max_completion_tokens.is_some_and(|m| out > m));
    too_long.then_some(ExcludedBy::ContextLength)
}

/// Keeps only the endpoints `pred` accepts, excluding the others `by`, if at least one is accepted.
fn keep_if_any(
    alive: &mut Eps<'_>,
    by: ExcludedBy,
    excluded: &mut Vec<Exclusion>,
    pred: impl Fn(&Endpoint) -> bool,
) {
    if !alive.iter().any(|x| pred(x.e)) {
        return;
    }
    alive.retain(|x| {
        let keep = pred(x.e);
        if !keep {
            excluded.push(Exclusion { index: x.index, by });
        }
        keep
    });
}

/// The soft preference for `response_format` and `verbosity`: applied only when some endpoint of the
/// model supports the parameter.
pub(crate) fn soft_parameters(
    alive: &mut Eps<'_>,
    params: ParamSet,
    excluded: &mut Vec<Exclusion>,
) {
    for p in [Parameter::ResponseFormat, Parameter::Verbosity] {
        if params.contains(p) {
            let by = ExcludedBy::RequireParameters;
            keep_if_any(alive, by, excluded, |e| e.params().contains(p));
        }
    }
}

/// `service_tier: "flex"`: only flex endpoints when the model has any.
pub(crate) fn flex_only(alive: &mut Eps<'_>, tiers: TierRequest, excluded: &mut Vec<Exclusion>) {
    if tiers.flex {
        keep_if_any(alive, ExcludedBy::ServiceTier, excluded, |e| {
            e.service_tier == Some(ServiceTier::Flex)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Usd;

    fn endpoint(tag: &str) -> Endpoint {
        let mut e = Endpoint::new("acme/chat", tag);
        e.pricing.prompt = Usd::parse("0.000001").unwrap();
        e.finish();
        e
    }

    fn with_params(tag: &str, params: &[&str]) -> Endpoint {
        let mut e = endpoint(tag);
        e.supported_parameters = params.iter().map(|s| s.to_string()).collect();
        e.finish();
        e
    }

    fn tiered(tag: &str, tier: ServiceTier) -> Endpoint {
        let mut e = endpoint(tag);
        e.service_tier = Some(tier);
        e
    }

    fn provider() -> Provider {
        Provider::new("deepinfra", "DeepInfra")
    }

    fn model() -> ModelPlan {
        ModelPlan {
            requested: "acme/chat".into(),
            id: "acme/chat".into(),
            index: 0,
            free_only: false,
            sort: None,
            admit_priority: false,
            admit_flex: false,
        }
    }

    fn params(names: &[&str]) -> ParamSet {
        ParamSet::from_names(names.iter().copied())
    }

    fn list(items: &[&'static str]) -> Vec<Cow<'static, str>> {
        items.iter().map(|s| Cow::Borrowed(*s)).collect()
    }

    #[test]
    fn names_matches_tag_slug_and_display_name_but_slug_skips_tiers() {
        let p = provider();
        let e = endpoint("deepinfra/turbo");
        assert!(names("deepinfra/turbo", &e, &p));
        assert!(names("deepinfra", &e, &p));
        assert!(names("deepINFRA", &e, &p));
        assert!(!names("together", &e, &p));
        let t = tiered("deepinfra/priority", ServiceTier::Priority);
        assert!(!names("deepinfra", &t, &p));
        assert!(names("deepinfra/priority", &t, &p));
    }

    #[test]
    fn tier_request_reads_every_spelling_and_refuses_others() {
        let tiers = |s: &str| {
            let body = format!(
                r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}}],"service_tier":"{s}"}}"#
            );
            tier_request(&RequestView::parse(body.as_bytes()).unwrap())
        };
        assert_eq!(tiers("auto").unwrap(), TierRequest::default());
        assert!(tiers("fast").unwrap().priority);
        assert!(tiers("flex").unwrap().flex);
        let u = tiers("ultrafast").unwrap();
        assert!(u.ultrafast && u.priority);
        assert_eq!(tiers("turbo").unwrap_err().status(), 400);
    }

    #[test]
    fn service_tier_rule() {
        let prefs = ProviderPrefs::default();
        let none = TierRequest::default();
        let plain = endpoint("deepinfra");
        assert_eq!(service_tier(&plain, none, &model(), true, &prefs), None);
        let pri = tiered("deepinfra/priority", ServiceTier::Priority);
        let by = Some(ExcludedBy::ServiceTier);
        assert_eq!(service_tier(&pri, none, &model(), true, &prefs), by);
        let asked = TierRequest {
            priority: true,
            ..none
        };
        assert_eq!(service_tier(&pri, asked, &model(), true, &prefs), None);
        // `:nitro` admits priority endpoints, unless `order` is set.
        let nitro = ModelPlan {
            admit_priority: true,
            ..model()
        };
        assert_eq!(service_tier(&pri, none, &nitro, true, &prefs), None);
        assert_eq!(service_tier(&pri, none, &nitro, false, &prefs), by);
        // Ultrafast only by `service_tier: "ultrafast"`.
        let ultra = tiered("deepinfra/ultrafast", ServiceTier::Ultrafast);
        assert_eq!(service_tier(&ultra, asked, &nitro, true, &prefs), by);
        // A full tag in `only` admits it.
        let only = ProviderPrefs {
            only: Some(list(&["deepinfra/priority"])),
            ..Default::default()
        };
        assert_eq!(service_tier(&pri, none, &model(), true, &only), None);
    }

    #[test]
    fn free_only_rule() {
        let mut free = endpoint("a");
        free.pricing.prompt = Usd::ZERO;
        assert_eq!(free_only(&free, true), None);
        assert_eq!(free_only(&endpoint("b"), false), None);
        assert_eq!(free_only(&endpoint("b"), true), Some(ExcludedBy::MaxPrice));
    }

    #[test]
    fn ignore_rule_unions_request_and_operator() {
        let (e, p) = (endpoint("deepinfra/turbo"), provider());
        let by = Some(ExcludedBy::AllowedProviders);
        assert_eq!(ignored(&e, &p, None, &[]), None);
        assert_eq!(ignored(&e, &p, Some(&list(&["deepinfra"])), &[]), by);
        assert_eq!(ignored(&e, &p, None, &["DeepInfra".to_string()]), by);
        assert_eq!(ignored(&e, &p, Some(&list(&["together"])), &[]), None);
    }

    #[test]
    fn only_rule() {
        let (e, p) = (endpoint("deepinfra/turbo"), provider());
        assert_eq!(not_only(&e, &p, None), None);
        assert_eq!(not_only(&e, &p, Some(&list(&["deepinfra/turbo"]))), None);
        assert_eq!(
            not_only(&e, &p, Some(&list(&["together"]))),
            Some(ExcludedBy::AllowedProviders)
        );
    }

    #[test]
    fn operator_allow_list_rule() {
        let (e, p) = (endpoint("deepinfra/turbo"), provider());
        assert_eq!(not_allowed(&e, &p, None), None);
        assert_eq!(not_allowed(&e, &p, Some(&["deepinfra".into()])), None);
        assert_eq!(
            not_allowed(&e, &p, Some(&["together".into()])),
            Some(ExcludedBy::AllowedProviders)
        );
    }

    #[test]
    fn quantization_rule() {
        let mut e = endpoint("a");
        let by = Some(ExcludedBy::Quantization);
        assert_eq!(quantization(&e, None), None);
        // No quantization reported counts as `unknown`.
        assert_eq!(quantization(&e, Some(&[Quantization::Fp8])), by);
        assert_eq!(quantization(&e, Some(&[Quantization::Unknown])), None);
        e.quantization = Some(Quantization::Mxfp4);
        assert_eq!(quantization(&e, Some(&[Quantization::Fp4])), None);
        assert_eq!(quantization(&e, Some(&[Quantization::Int8])), by);
    }

    #[test]
    fn require_parameters_rule() {
        let e = with_params("a", &["temperature", "max_tokens"]);
        let asked = params(&["temperature", "seed"]);
        let by = Some(ExcludedBy::RequireParameters);
        assert_eq!(require_parameters(&e, None, asked), None);
        assert_eq!(require_parameters(&e, Some(false), asked), None);
        assert_eq!(require_parameters(&e, Some(true), asked), by);
        assert_eq!(
            require_parameters(&e, Some(true), params(&["temperature"])),
            None
        );
    }

    #[test]
    fn tools_rule() {
        let with = with_params("a", &["tools"]);
        let without = with_params("b", &["temperature"]);
        let asked = params(&["tools"]);
        assert_eq!(tools(&with, asked), None);
        assert_eq!(tools(&without, asked), Some(ExcludedBy::RequireParameters));
        assert_eq!(tools(&without, ParamSet::EMPTY), None);
    }

    #[test]
    fn context_length_rule() {
        let mut e = endpoint("a");
        let by = Some(ExcludedBy::ContextLength);
        // 0 means unknown: no limit.
        assert_eq!(context_length(&e, 1_000_000, None, Some(false)), None);
        e.context_length = 1000;
        assert_eq!(context_length(&e, 900, Some(100), Some(false)), None);
        assert_eq!(context_length(&e, 900, Some(101), Some(false)), by);
        e.max_prompt_tokens = Some(500);
        assert_eq!(context_length(&e, 501, None, Some(false)), by);
        e.max_prompt_tokens = None;
        e.max_completion_tokens = Some(50);
        assert_eq!(context_length(&e, 10, Some(51), Some(false)), by);
        assert_eq!(context_length(&e, 10, None, Some(false)), None);
    }

    /// Item 8 of issue 17: with middle-out (asked for, or by default at ≤ 8k context) half the
    /// context needed is enough.
    #[test]
    fn item8_middle_out_admits_half_the_context() {
        let mut e = endpoint("a");
        let by = Some(ExcludedBy::ContextLength);
        e.context_length = 1000;
        assert_eq!(context_length(&e, 1900, Some(100), None), None);
        assert_eq!(context_length(&e, 1900, Some(101), None), by);
        assert_eq!(context_length(&e, 1900, Some(100), Some(false)), by);
        e.context_length = 10_000;
        assert_eq!(context_length(&e, 19_000, None, None), by);
        assert_eq!(context_length(&e, 19_000, None, Some(true)), None);
    }

    #[test]
    fn admit_applies_the_rules_in_order() {
        let prefs = ProviderPrefs {
            ignore: Some(list(&["deepinfra"])),
            quantizations: Some(vec![Quantization::Fp8]),
            ..Default::default()
        };
        let a = Admission {
            prefs: &prefs,
            params: ParamSet::EMPTY,
            tiers: TierRequest::default(),
            order_set: false,
            allow: None,
            deny: &[],
            prompt_tokens: 10,
            max_out: None,
            middle_out: None,
        };
        let p = provider();
        // Ignored and of the wrong quantization: the earlier rule's reason is recorded.
        let e = endpoint("deepinfra/turbo");
        assert_eq!(
            a.admit(&model(), &e, &p),
            Some(ExcludedBy::AllowedProviders)
        );
        let other = Provider::new("together", "Together");
        let mut e = endpoint("together");
        assert_eq!(
            a.admit(&model(), &e, &other),
            Some(ExcludedBy::Quantization)
        );
        e.quantization = Some(Quantization::Fp8);
        assert_eq!(a.admit(&model(), &e, &other), None);
    }

    fn eps<'c>(es: &'c [Endpoint], p: &'c Provider) -> Eps<'c> {
        es.iter()
            .enumerate()
            .map(|(index, e)| Ep { index, e, p })
            .collect()
    }

    #[test]
    fn soft_parameters_apply_only_when_some_endpoint_supports_them() {
        let p = provider();
        let es = [
            with_params("a", &["response_format"]),
            with_params("b", &[]),
        ];
        let asked = params(&["response_format"]);
        let mut alive = eps(&es, &p);
        let mut excluded = Vec::new();
        soft_parameters(&mut alive, asked, &mut excluded);
        assert_eq!(alive.len(), 1);
        assert_eq!(alive[0].index, 0);
        assert_eq!(excluded[0].by, ExcludedBy::RequireParameters);
        // Nobody supports it: nothing is removed.
        let mut alive = eps(&es[1..], &p);
        let mut excluded = Vec::new();
        soft_parameters(&mut alive, asked, &mut excluded);
        assert_eq!((alive.len(), excluded.len()), (1, 0));
    }

    #[test]
    fn flex_only_keeps_flex_endpoints_when_there_are_some() {
        let p = provider();
        let es = [endpoint("a"), tiered("a/flex", ServiceTier::Flex)];
        let flex = TierRequest {
            flex: true,
            ..Default::default()
        };
        let mut alive = eps(&es, &p);
        let mut excluded = Vec::new();
        flex_only(&mut alive, TierRequest::default(), &mut excluded);
        assert_eq!(alive.len(), 2);
        flex_only(&mut alive, flex, &mut excluded);
        assert_eq!(alive.len(), 1);
        assert_eq!(alive[0].index, 1);
        assert_eq!(excluded[0].by, ExcludedBy::ServiceTier);
        let mut alive = eps(&es[..1], &p);
        flex_only(&mut alive, flex, &mut excluded);
        assert_eq!(alive.len(), 1);
    }
}
