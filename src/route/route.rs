use std::fmt;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use smallvec::SmallVec;

use super::{Partition, RequestView, SortBy};
use crate::catalog::{Catalog, EffectivePricing, Endpoint, Provider};
use crate::error::{Availability, AvailabilityCode, ExcludedBy, GatewayError};

/// Why a candidate is where it is in the order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// Listed in `provider.order`.
    Order,
    /// The session's sticky endpoint.
    Sticky,
    /// Placed by `provider.sort` (or a `:nitro` / `:floor` / `:exacto` variant).
    Sorted(SortBy),
    /// The load balancer's weighted first pick (∝ 1/price²).
    WeightedPick,
    /// A stable endpoint after the first pick, by ascending price.
    ByPrice,
    /// An endpoint with a recent outage, a cooldown or a degraded status: tried last.
    Unstable,
    /// Moved to the end by `preferred_max_latency` / `preferred_min_throughput`.
    Deprioritized,
}

/// One endpoint the request may be sent to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Global endpoint index in [`Route::catalog`] (see [`Catalog::endpoint`]).
    pub index: usize,
    /// Position of its model in [`Route::models`].
    pub model: usize,
    /// Why it is here.
    pub reason: Reason,
}

/// An endpoint removed from the candidates, and the rule that removed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exclusion {
    /// Global endpoint index.
    pub index: usize,
    /// The rule.
    pub by: ExcludedBy,
}

/// A requested model after alias and variant resolution.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResolvedModel {
    /// As the request named it (`"meta-llama/llama-3.3-70b-instruct:nitro"`; the same allocation
    /// as `id` when the request named the model by its id).
    pub requested: Arc<str>,
    /// The catalog model that serves it (`"meta-llama/llama-3.3-70b-instruct"`), shared with the
    /// catalog.
    pub id: Arc<str>,
}

/// A route's candidates (inline: a request has a handful).
pub(crate) type Candidates = SmallVec<[Candidate; 8]>;

/// A route's models (inline: a request usually names one).
pub(crate) type Models = SmallVec<[ResolvedModel; 1]>;

/// The routing decision, inserted into the request extensions by ModelRouting and refined by the
/// layers inside it (DataPolicy and PriceCap remove candidates, PercentileDeprioritize reorders them,
/// ProviderFallback tries them in order).
#[derive(Clone)]
pub struct Route {
    body: Bytes,
    // Inline (one allocation with the route's own, in the extensions): the route is built where
    // it is kept (see `Route::begin`) and never moved whole after.
    view: RequestView<'static>,
    catalog: Catalog,
    models: Models,
    candidates: Candidates,
    exclusions: Vec<Exclusion>,
    partition: Partition,
    prompt_tokens: u64,
    unix_millis: i64,
    rng: u64,
    balance: Arc<dyn super::BalancePolicy>,
}

/// What ModelRouting's planning adds to a [`Route`] begun by [`Route::begin`], besides the
/// candidates it places in the route itself (see [`Route::plan_with`]).
pub(crate) struct Planned {
    pub(crate) models: Models,
    pub(crate) exclusions: Vec<Exclusion>,
    pub(crate) partition: Partition,
    pub(crate) prompt_tokens: u64,
    pub(crate) unix_millis: i64,
    /// The generator state for later re-draws of the first pick.
    pub(crate) rng: u64,
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cands: Vec<String> = self
            .candidates
            .iter()
            .filter_map(|c| self.catalog.endpoint(c.index))
            .map(|e| e.key().to_string())
            .collect();
        f.debug_struct("Route")
            .field("models", &self.models)
            .field("candidates", &cands)
            .field("exclusions", &self.exclusions.len())
            .finish()
    }
}

/// SplitMix64: a tiny, portable, seedable generator for the load balancer's draws.
pub(crate) fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What [`Route::endpoint`] and [`Route::provider`] answer for a candidate that does not index the
/// route's catalog (one taken from another route): an endpoint and a provider with empty names, no
/// prices and the unknown (retains and trains) data policy.
fn placeholder() -> &'static (Endpoint, Provider) {
    static PLACEHOLDER: OnceLock<(Endpoint, Provider)> = OnceLock::new();
    PLACEHOLDER.get_or_init(|| (Endpoint::new("", ""), Provider::new("", "")))
}

/// The routing decision, read side: what every layer may look at.
impl Route {
    /// A route for `body` with a default view and no candidates yet: ModelRouting puts it into
    /// the request extensions, then reads the view into it ([`Route::view_mut`]) and plans it
    /// ([`Route::plan_with`]) there, so that the (large) route is not moved on the way.
    pub(crate) fn begin(
        body: Bytes,
        catalog: Catalog,
        balance: Arc<dyn super::BalancePolicy>,
    ) -> Self {
        Route {
            body,
            view: RequestView::default(),
            catalog,
            models: Models::new(),
            candidates: Candidates::new(),
            exclusions: Vec::new(),
            partition: Partition::default(),
            prompt_tokens: 0,
            unix_millis: 0,
            rng: 0,
            balance,
        }
    }

    /// The view, to be read into (by ModelRouting, before planning).
    pub(crate) fn view_mut(&mut self) -> &mut RequestView<'static> {
        &mut self.view
    }

    /// Replaces the catalog snapshot (by ModelRouting, before planning: the current one).
    pub(crate) fn set_catalog(&mut self, catalog: Catalog) {
        self.catalog = catalog;
    }

    /// Plans the route where it lies: `plan` reads its body, view and catalog and places the
    /// candidates (empty on entry; they must index the route's catalog) straight into it, where
    /// returning them would move them (inline, they are large) on the way; the rest of what it
    /// decides is set. On an error the route has no candidates.
    pub(crate) fn plan_with<T, E>(
        &mut self,
        plan: impl FnOnce(
            &Bytes,
            &RequestView<'static>,
            &Catalog,
            &mut Candidates,
        ) -> Result<(Planned, T), E>,
    ) -> Result<T, E> {
        self.candidates.clear();
        match plan(&self.body, &self.view, &self.catalog, &mut self.candidates) {
            Ok((planned, out)) => {
                self.set_planned(planned);
                Ok(out)
            }
            Err(e) => {
                self.candidates.clear();
                Err(e)
            }
        }
    }

    /// Sets what planning decided besides the candidates.
    fn set_planned(&mut self, planned: Planned) {
        let Planned {
            models,
            exclusions,
            partition,
            prompt_tokens,
            unix_millis,
            rng,
        } = planned;
        self.models = models;
        self.exclusions = exclusions;
        self.partition = partition;
        self.prompt_tokens = prompt_tokens;
        self.unix_millis = unix_millis;
        self.rng = rng;
    }

    /// The buffered request body, exactly as received.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The parsed routing view of the body.
    pub fn view(&self) -> &RequestView<'static> {
        &self.view
    }

    /// The catalog snapshot this request is routed against.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The requested models, resolved, in priority order.
    pub fn models(&self) -> &[ResolvedModel] {
        &self.models
    }

    /// The candidates, in the order they are to be tried.
    pub fn candidates(&self) -> &[Candidate] {
        &self.candidates
    }

    /// Endpoints removed so far, with the rule that removed each.
    pub fn exclusions(&self) -> &[Exclusion] {
        &self.exclusions
    }

    /// How models are grouped when ordering (`partition`, or the deprecated `route`).
    pub fn partition(&self) -> Partition {
        self.partition
    }

    /// The prompt-size estimate used for context checks and pricing overrides.
    pub fn prompt_tokens(&self) -> u64 {
        self.prompt_tokens
    }

    /// When the request arrived (Unix milliseconds, from ModelRouting's clock): the time at which
    /// UTC pricing windows are evaluated.
    pub fn unix_millis(&self) -> i64 {
        self.unix_millis
    }

    /// The endpoint of a candidate, or `None` if `c` does not index this route's catalog.
    pub fn get_endpoint(&self, c: &Candidate) -> Option<&Endpoint> {
        self.catalog.endpoint(c.index)
    }

    /// The provider of a candidate, or `None` if `c` does not index this route's catalog.
    pub fn get_provider(&self, c: &Candidate) -> Option<&Provider> {
        self.catalog.endpoint_provider(c.index)
    }

    /// What every request to a candidate's provider carries (`None` for a candidate of another
    /// route, as for [`Route::get_provider`]).
    pub(crate) fn call(&self, c: &Candidate) -> Option<&crate::catalog::ProviderCall> {
        self.catalog.endpoint_call(c.index)
    }

    /// A candidate's provider name and slug and its upstream model id, shared with the catalog
    /// (made for a candidate of another route).
    pub(crate) fn names(&self, c: &Candidate) -> Names {
        let shared = self
            .call(c)
            .zip(self.catalog.endpoint_upstream_model(c.index));
        match shared {
            Some((call, model)) => Names {
                provider_name: call.name.clone(),
                provider_slug: call.slug.clone(),
                upstream_model: model.clone(),
            },
            None => {
                let p = self.provider(c);
                Names {
                    provider_name: Arc::from(p.name.as_str()),
                    provider_slug: Arc::from(p.slug.as_str()),
                    upstream_model: Arc::from(self.endpoint(c).upstream_model()),
                }
            }
        }
    }

    /// The endpoint of a candidate. Every candidate of this route indexes its catalog; for one taken
    /// from another route that does not, this is a placeholder with an empty tag and no prices (use
    /// [`Route::get_endpoint`] to tell).
    pub fn endpoint(&self, c: &Candidate) -> &Endpoint {
        self.get_endpoint(c).unwrap_or(&placeholder().0)
    }

    /// The provider of a candidate (a placeholder for a candidate of another route, as for
    /// [`Route::endpoint`]).
    pub fn provider(&self, c: &Candidate) -> &Provider {
        self.get_provider(c).unwrap_or(&placeholder().1)
    }

    /// The prices in force for this request at an endpoint (overrides for the prompt size and the
    /// time the request arrived applied).
    pub fn pricing(&self, e: &Endpoint) -> EffectivePricing {
        e.pricing.effective(self.prompt_tokens, self.unix_millis)
    }
}

/// The routing decision, write side: candidates can be removed (with a reason) and reordered, never
/// added, so whatever the layers do, the candidates stay a subset of what ModelRouting admitted.
impl Route {
    /// Removes the candidates for which `keep` is false, recording `by` as the reason.
    ///
    /// If the load balancer's weighted first pick of a model is removed, a new first pick is drawn
    /// among that model's remaining stable endpoints, so the 1/price² distribution holds among the
    /// endpoints that survive every filter. Returns how many were removed.
    pub fn retain(
        &mut self,
        by: ExcludedBy,
        mut keep: impl FnMut(&Endpoint, &Provider) -> bool,
    ) -> usize {
        // In place, without allocating unless something is removed.
        let mut removed_pick: Vec<usize> = Vec::new();
        let before = self.candidates.len();
        let catalog = &self.catalog;
        let exclusions = &mut self.exclusions;
        self.candidates.retain(|c| {
            let kept = match (
                catalog.endpoint(c.index),
                catalog.endpoint_provider(c.index),
            ) {
                (Some(e), Some(p)) => keep(e, p),
                _ => false,
            };
            if kept {
                return true;
            }
            if c.reason == Reason::WeightedPick {
                removed_pick.push(c.model);
            }
            exclusions.push(Exclusion { index: c.index, by });
            false
        });
        for model in removed_pick {
            self.repick(model);
        }
        before - self.candidates.len()
    }

    /// Moves the candidates for which `back` is true behind the others of their group and marks them
    /// [`Reason::Deprioritized`]; both sides keep their relative order. A group is one model's run of
    /// candidates, or the whole list with `partition: "none"`, so fallback models stay fallbacks unless
    /// the request merged them. Returns how many were marked.
    pub fn move_to_back(
        &mut self,
        mut back: impl FnMut(&Candidate, &Endpoint, &Provider) -> bool,
    ) -> usize {
        let flags: SmallVec<[bool; 16]> = self
            .candidates
            .iter()
            .map(|c| match (self.get_endpoint(c), self.get_provider(c)) {
                (Some(e), Some(p)) => back(c, e, p),
                _ => false,
            })
            .collect();
        let moved = flags.iter().filter(|b| **b).count();
        if moved == 0 {
            return 0;
        }
        let whole = self.partition == Partition::None;
        let cands = &self.candidates;
        let mut out = Candidates::with_capacity(cands.len());
        let mut slow = Candidates::new();
        let mut start = 0;
        while start < cands.len() {
            let model = cands[start].model;
            let len = if whole {
                cands.len() - start
            } else {
                cands[start..]
                    .iter()
                    .take_while(|c| c.model == model)
                    .count()
            };
            let end = start + len;
            for (c, &b) in cands[start..end].iter().zip(&flags[start..end]) {
                if b {
                    slow.push(Candidate {
                        reason: Reason::Deprioritized,
                        ..*c
                    });
                } else {
                    out.push(*c);
                }
            }
            out.append(&mut slow);
            start = end;
        }
        self.candidates = out;
        moved
    }

    /// Reorders the candidates by ascending `key`; equal keys keep their order. It only permutes:
    /// nothing is added, removed or relabelled. The key sees the candidate (put `c.model` first in it
    /// to keep each model's candidates together) and its endpoint.
    pub fn reorder_by_key<K: Ord>(&mut self, mut key: impl FnMut(&Candidate, &Endpoint) -> K) {
        let catalog = &self.catalog;
        self.candidates.sort_by_cached_key(|c| {
            let e = catalog.endpoint(c.index).unwrap_or(&placeholder().0);
            key(c, e)
        });
    }

    fn repick(&mut self, model: usize) {
        let pool: Vec<usize> = self
            .candidates
            .iter()
            .enumerate()
            .filter(|(_, c)| c.model == model && c.reason == Reason::ByPrice)
            .map(|(i, _)| i)
            .collect();
        let Some(&first) = pool.first() else {
            return;
        };
        let indices: Vec<usize> = pool.iter().map(|&i| self.candidates[i].index).collect();
        let prices: Vec<_> = indices
            .iter()
            .map(|&i| {
                self.catalog
                    .endpoint(i)
                    .map_or(crate::catalog::Usd::ZERO, |e| {
                        e.blended_price(self.prompt_tokens, self.unix_millis)
                    })
            })
            .collect();
        let draw = splitmix(&mut self.rng);
        let input = super::BalanceInput {
            catalog: &self.catalog,
            endpoints: &indices,
            prices: &prices,
        };
        let pick = self.balance.pick(&input, draw).min(pool.len() - 1);
        let mut c = self.candidates.remove(pool[pick]);
        c.reason = Reason::WeightedPick;
        self.candidates.insert(first, c);
    }
}

/// The routing decision, failure side.
impl Route {
    /// The error for a request left without candidates: 404 `no_endpoints` if the models have no
    /// endpoints at all, `privacy_restricted` if only data policies removed them, otherwise
    /// `constraint_filtered`, with `excluded_by` and `requested_models`
    /// ([provider routing](https://openrouter.ai/docs/features/provider-routing)).
    pub fn unavailable(&self) -> GatewayError {
        self.unavailable_as(None)
    }

    /// Like [`Route::unavailable`], with the availability code chosen by the caller (a layer that knows
    /// its own filter removed the last candidates).
    pub fn unavailable_as(&self, code: Option<AvailabilityCode>) -> GatewayError {
        let requested: Vec<String> = self
            .models
            .iter()
            .map(|m| m.requested.to_string())
            .collect();
        // Tier endpoints that were not asked for are invisible, not a constraint the caller set.
        let mut by: Vec<ExcludedBy> = self
            .exclusions
            .iter()
            .map(|e| e.by)
            .filter(|b| *b != ExcludedBy::ServiceTier)
            .collect();
        by.sort();
        by.dedup();
        let mut providers: Vec<String> = self
            .exclusions
            .iter()
            .filter_map(|e| self.catalog.endpoint(e.index))
            .map(|e| e.provider_slug().to_string())
            .collect();
        providers.sort();
        providers.dedup();
        let names = requested.join(", ");
        let (code, message) = if code == Some(AvailabilityCode::PrivacyRestricted)
            || (code.is_none() && !by.is_empty() && by.iter().all(|b| b.is_privacy()))
        {
            (
                AvailabilityCode::PrivacyRestricted,
                format!(
                    "No endpoints found for {names} that match your data policy ({}).",
                    join(&by)
                ),
            )
        } else if by.is_empty() && code.is_none() {
            (
                AvailabilityCode::NoEndpoints,
                format!("No endpoints found for {names}."),
            )
        } else {
            (
                AvailabilityCode::ConstraintFiltered,
                format!(
                    "No endpoints found for {names} that satisfy your routing constraints ({}).",
                    join(&by)
                ),
            )
        };
        let mut a = Availability::new(code, requested);
        a.excluded_by = by;
        a.affected_providers = providers;
        GatewayError::unavailable(message, a)
    }
}

fn join(by: &[ExcludedBy]) -> String {
    by.iter().map(|b| b.as_str()).collect::<Vec<_>>().join(", ")
}

/// The names of a candidate's record ([`Route::names`]).
pub(crate) struct Names {
    pub(crate) provider_name: Arc<str>,
    pub(crate) provider_slug: Arc<str>,
    pub(crate) upstream_model: Arc<str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ModelRouting allocates the route (its view inline) once per request, in the extensions:
    /// it must stay within glibc's per-thread cache (requests of up to 1,032 bytes), or every
    /// request takes malloc's slow path (1,008 B when written: a field or two more at most).
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn route_fits_the_malloc_fast_path() {
        let (route, view) = (size_of::<Route>(), size_of::<RequestView<'static>>());
        assert!(route <= 1032, "Route {route} B (its view {view} B)");
    }
}
