//! Planning a request: models → endpoints → hard filters ([`admit`](super::admit)) → order
//! ([`order`](super::order): `order`, sort or load balancing, unstable last, service tiers,
//! stickiness) → a [`Route`].

use bytes::Bytes;
use http::{Extensions, HeaderMap, HeaderValue};
use smallvec::SmallVec;
use tokio::time::Instant;

use super::admit::{flex_only, soft_parameters, tier_request, Admission, Ep, Eps, TierRequest};
use super::resolve::{resolve, ModelPlan};
use super::routers::expand;
use super::Config;
use crate::catalog::{Catalog, Endpoint};
use crate::error::GatewayError;
use crate::health::HealthSource;
use crate::route::{
    Candidates, Exclusion, Partition, Planned, RequestView, ResolvedModel, Route, RouteField,
    SortBy,
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

/// `X-Session-Id` (a constant: looking a `&str` name up parses it on every request).
const X_SESSION_ID: http::HeaderName = http::HeaderName::from_static("x-session-id");

/// The first `X-Session-Id` value, as [`HeaderMap::get`] answers it. A request carries a few
/// headers: comparing their names (most are standard ones, told apart from a custom name by
/// their tag) costs less than hashing the name for the map's index, which a larger map uses.
fn session_header(headers: &HeaderMap) -> Option<&HeaderValue> {
    const SCANNED: usize = 8;
    if headers.keys_len() > SCANNED {
        return headers.get(&X_SESSION_ID);
    }
    headers
        .iter()
        .find_map(|(name, value)| (*name == X_SESSION_ID).then_some(value))
}

/// The explicit or declared conversation key; the first-messages hash is computed separately, only
/// when some candidate could stick by it.
pub(crate) fn session_key(view: &RequestView<'_>, headers: &HeaderMap) -> Option<Session> {
    if let Some(s) = &view.session_id {
        return Some(Session::Explicit(hash_str(s)));
    }
    if let Some(s) = session_header(headers).and_then(|v| v.to_str().ok()) {
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

/// One request's planning: what every step reads, and what they accumulate (exclusions, the
/// generator, the session key).
pub(super) struct Planner<'a> {
    pub(super) cfg: &'a Config,
    pub(super) catalog: &'a Catalog,
    pub(super) view: &'a RequestView<'static>,
    pub(super) body: &'a Bytes,
    pub(super) health: &'a dyn HealthSource,
    pub(super) now: Instant,
    pub(super) admission: Admission<'a>,
    pub(super) allow_fallbacks: bool,
    pub(super) partition: Partition,
    pub(super) unix_millis: i64,
    /// How many models the request resolved to.
    pub(super) models: usize,
    pub(super) rng: u64,
    pub(super) session: Option<Session>,
    /// Whether the first-messages hash was computed already.
    pub(super) hashed: bool,
    pub(super) exclusions: Vec<Exclusion>,
    /// `partition: "none"` with a sort over several models: one order across all of them.
    pub(super) global_sort: Option<SortBy>,
}

impl<'a> Planner<'a> {
    pub(super) fn new(
        cfg: &'a Config,
        catalog: &'a Catalog,
        body: &'a Bytes,
        view: &'a RequestView<'static>,
        headers: &HeaderMap,
        now: Instant,
        tiers: TierRequest,
    ) -> Self {
        let prefs = &view.provider;
        let partition = match (prefs.sort.and_then(|s| s.partition), view.route) {
            (Some(p), _) => p,
            (None, Some(RouteField::Sort)) => Partition::None,
            _ => Partition::Model,
        };
        let admission = Admission {
            prefs,
            params: view.params,
            tiers,
            order_set: prefs.order.as_ref().is_some_and(|o| !o.is_empty()),
            allow: cfg.allow.as_deref(),
            deny: &cfg.ignore,
            prompt_tokens: view.prompt_estimate(),
            max_out: view.max_output(),
            middle_out: view.middle_out,
        };
        let draws = cfg
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Planner {
            cfg,
            catalog,
            view,
            body,
            health: &*cfg.health.0,
            now,
            admission,
            allow_fallbacks: prefs.allow_fallbacks.unwrap_or(true),
            partition,
            unix_millis: cfg.clock.unix_millis(),
            models: 0,
            rng: cfg.seed ^ draws.wrapping_mul(0xD1B5_4A32_D192_ED03),
            session: session_key(view, headers),
            hashed: false,
            exclusions: Vec::new(),
            global_sort: None,
        }
    }

    pub(super) fn prompt_tokens(&self) -> u64 {
        self.admission.prompt_tokens
    }

    /// Not degraded, not in cooldown, and not taken out of service by the catalog.
    pub(super) fn stable(&self, e: &Endpoint) -> bool {
        let key = e.key();
        e.status >= 0 && !self.health.is_unstable(key, self.now)
    }

    /// A model's endpoints that pass every hard filter, in catalog order, into `alive` (empty); the
    /// others are recorded as exclusions.
    fn admitted(&mut self, mp: &ModelPlan, alive: &mut Eps<'a>) {
        let catalog = self.catalog;
        for index in catalog.endpoint_range_at(mp.index) {
            let (Some(e), Some(p)) = (catalog.endpoint(index), catalog.endpoint_provider(index))
            else {
                continue;
            };
            match self.admission.admit(mp, e, p) {
                Some(by) => self.exclusions.push(Exclusion { index, by }),
                None => alive.push(Ep { index, e, p }),
            }
        }
        soft_parameters(alive, self.view.params, &mut self.exclusions);
        flex_only(alive, self.admission.tiers, &mut self.exclusions);
    }

    /// Every model's candidates, model after model (or sorted across models).
    /// Places the endpoints of every model of `plans` into `placed` (empty), in their order.
    fn place_all(&mut self, plans: &[ModelPlan], placed: &mut Candidates) {
        self.models = plans.len();
        // One buffer for every model's endpoints, filled and ordered in place (not moved).
        let mut alive = Eps::new();
        for (mi, mp) in plans.iter().enumerate() {
            alive.clear();
            self.admitted(mp, &mut alive);
            self.order_model(mi, mp, &mut alive, placed);
        }
        if let Some(by) = self.global_sort {
            self.sort_across_models(by, placed);
        }
    }
}

/// A request's model plans (inline: a request usually names one model).
type Plans = SmallVec<[ModelPlan; 1]>;

/// The requested models, router models expanded, resolved and de-duplicated, in request order.
fn resolve_all(
    cfg: &Config,
    catalog: &Catalog,
    view: &RequestView<'_>,
) -> Result<Plans, GatewayError> {
    let mut plans = Plans::new();
    let mut push = |p: ModelPlan| {
        if !plans
            .iter()
            .any(|q| q.index == p.index && q.free_only == p.free_only)
        {
            plans.push(p);
        }
    };
    let mut resolve_one = |name: &str| -> Result<(), GatewayError> {
        let draw = cfg.seed ^ cfg.counter.load(std::sync::atomic::Ordering::Relaxed);
        match expand(name, view, catalog, &*cfg.auto_router, draw) {
            Some(ids) => {
                for id in ids? {
                    let mut p = resolve(catalog, &id)?;
                    p.requested = std::sync::Arc::from(name);
                    push(p);
                }
            }
            None => push(resolve(catalog, name)?),
        }
        Ok(())
    };
    // The usual request names one `model` and no `models`: that one alone is what
    // `requested` would answer, without its de-duplicating walk.
    if view.models.is_empty() {
        view.model.as_deref().map_or(Ok(()), &mut resolve_one)?;
    } else {
        view.requested().try_for_each(resolve_one)?;
    }
    Ok(plans)
}

/// An embeddings request (`input`) names embedding models only, and a chat request none: a
/// model whose `architecture.output_modalities` lists `embeddings` is an embedding model.
fn check_kind(
    catalog: &Catalog,
    view: &RequestView<'static>,
    plans: &[ModelPlan],
) -> Result<(), GatewayError> {
    for p in plans {
        let embeds = catalog.model_at(p.index).is_some_and(|m| {
            m.architecture
                .output_modalities
                .iter()
                .any(|o| o == "embeddings")
        });
        if embeds != view.embeddings {
            let expected = if view.embeddings {
                format!("`{}` is not an embedding model", p.requested)
            } else {
                format!(
                    "`{}` is an embedding model: call /embeddings with an `input`",
                    p.requested
                )
            };
            return Err(GatewayError::invalid_request("model", &expected));
        }
    }
    Ok(())
}

/// Resolves, filters and orders the candidates of a request into its [`Route`], begun in
/// `extensions` (planned in place there, not moved: it is large); answers the session key.
pub(crate) fn plan(
    cfg: &Config,
    headers: &HeaderMap,
    now: Instant,
    extensions: &mut Extensions,
) -> Result<Option<Session>, GatewayError> {
    let Some(route) = extensions.get_mut::<Route>() else {
        unreachable!("ModelRouting begins the route before planning it");
    };
    let session = route.plan_with(|body, view, catalog, candidates| {
        decide(cfg, (body, view, catalog), headers, now, candidates)
    })?;
    if route.candidates().is_empty() {
        return Err(route.unavailable());
    }
    if let Some(steps) = &cfg.steps {
        steps.apply(route)?;
    }
    Ok(session)
}

/// The plan of a begun route (its body, view and catalog), its candidates placed into
/// `candidates` (empty), and its session key.
fn decide(
    cfg: &Config,
    (body, view, catalog): (&Bytes, &RequestView<'static>, &Catalog),
    headers: &HeaderMap,
    now: Instant,
    candidates: &mut Candidates,
) -> Result<(Planned, Option<Session>), GatewayError> {
    if view.models.len() > cfg.max_models {
        return Err(GatewayError::invalid_request(
            "models",
            &format!("'models' array must have {} items or fewer", cfg.max_models),
        ));
    }
    let tiers = tier_request(view)?;
    let plans = resolve_all(cfg, catalog, view)?;
    check_kind(catalog, view, &plans)?;
    // The generator's counter advances only for requests that get this far.
    let mut planner = Planner::new(cfg, catalog, body, view, headers, now, tiers);
    planner.place_all(&plans, candidates);
    let Planner {
        exclusions,
        rng,
        session,
        partition,
        unix_millis,
        admission,
        ..
    } = planner;
    let models = plans
        .into_iter()
        .map(|p| ResolvedModel {
            requested: p.requested,
            id: p.id,
        })
        .collect();
    let planned = Planned {
        models,
        exclusions,
        partition,
        prompt_tokens: admission.prompt_tokens,
        unix_millis,
        rng,
    };
    Ok((planned, session))
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderName, HeaderValue};
    use proptest::prelude::*;

    use super::{session_header, X_SESSION_ID};

    proptest! {
        /// The scan of a small map finds what the map's index finds: the first value of the
        /// first `x-session-id`, among standard and custom names, repeated or not.
        #[test]
        fn session_header_is_the_maps(
            headers in proptest::collection::vec((0usize..5, "[a-z0-9]{0,6}"), 0..14),
        ) {
            let names = [
                http::header::AUTHORIZATION,
                http::header::CONTENT_TYPE,
                X_SESSION_ID,
                HeaderName::from_static("x-session"),
                HeaderName::from_static("x-session-idx"),
            ];
            let mut map = HeaderMap::new();
            for (name, value) in &headers {
                map.append(names[*name].clone(), HeaderValue::from_str(value).unwrap());
            }
            prop_assert_eq!(session_header(&map), map.get(&X_SESSION_ID));
        }
    }
}
