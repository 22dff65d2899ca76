//! Ordering a model's admitted endpoints, step by step: endpoints listed in `order` first; then a
//! `sort`, the cheapest only (`allow_fallbacks: false`), or the load balancer's weighted first pick
//! followed by ascending price; unstable endpoints last; priority-tier endpoints first when asked
//! for; the session's sticky endpoint first. With `partition: "none"` and a sort, one final step
//! sorts across models.

use std::borrow::Cow;
use std::cmp::Ordering;

use smallvec::SmallVec;
use tokio::time::Instant;

use super::admit::{names, Ep, Eps};
use super::plan::{cache_eligible, Planner, Session};
use super::resolve::ModelPlan;
use super::sticky::sticky_key;
use crate::catalog::{Endpoint, ServiceTier, Usd};
use crate::error::ExcludedBy;
use crate::health::{HealthSource, Percentile};
use crate::route::{
    splitmix, BalanceInput, Candidate, Candidates, Exclusion, Partition, Reason, SortBy,
};

/// An endpoint placed in the order, with the position of its model and why it is there.
#[derive(Clone, Copy)]
pub(super) struct Placed<'c> {
    pub(super) ep: Ep<'c>,
    pub(super) model: usize,
    pub(super) reason: Reason,
}

/// A model's endpoints in their order (inline, as [`Eps`]).
pub(super) type Order<'c> = SmallVec<[Placed<'c>; 8]>;

impl Placed<'_> {
    fn candidate(&self) -> Candidate {
        Candidate {
            index: self.ep.index,
            model: self.model,
            reason: self.reason,
        }
    }
}

/// Moves the endpoints named in `order` from `rest` to `ordered`, in list order.
fn listed_first<'c>(
    order: &[Cow<'_, str>],
    model: usize,
    rest: &mut Eps<'c>,
    ordered: &mut Order<'c>,
) {
    for entry in order {
        for &ep in rest.iter() {
            if names(entry, ep.e, ep.p) && !ordered.iter().any(|c| c.ep.index == ep.index) {
                let reason = Reason::Order;
                ordered.push(Placed { ep, model, reason });
            }
        }
    }
    rest.retain(|ep| !ordered.iter().any(|c| c.ep.index == ep.index));
}

impl<'a> Planner<'a> {
    /// Orders one model's admitted endpoints (`rest`, consumed) and appends them to `out`.
    pub(super) fn order_model(
        &mut self,
        model: usize,
        mp: &ModelPlan,
        rest: &mut Eps<'a>,
        out: &mut Candidates,
    ) {
        let mut ordered = Order::new();
        if let Some(order) = self
            .view
            .provider
            .order
            .as_deref()
            .filter(|o| !o.is_empty())
        {
            listed_first(order, model, rest, &mut ordered);
            if !self.allow_fallbacks {
                self.exclude(rest.iter(), ExcludedBy::AllowedProviders);
                out.extend(ordered.iter().map(Placed::candidate));
                return;
            }
        }
        let mut bad = Eps::new();
        self.split_stable(rest, &mut bad);
        let good = rest;
        let sort = self.view.provider.sort.map(|s| s.by).or(mp.sort);
        if let Some(by) = sort {
            self.sorted(by, good, model, &mut ordered);
        } else if !self.allow_fallbacks && !self.admission.order_set {
            self.cheapest_only(good, &bad, model, &mut ordered);
            out.extend(ordered.iter().map(Placed::candidate));
            return;
        } else {
            self.balanced(good, model, &mut ordered);
        }
        let reason = Reason::Unstable;
        // By reference: moving the (inline) list into its iterator would copy it.
        ordered.extend(bad.iter().map(|&ep| Placed { ep, model, reason }));
        self.priority_first(&mut ordered);
        self.stick(mp, &mut ordered);
        // Pushed one by one: for a handful, cheaper than extending by the mapped iterator.
        for c in &ordered {
            out.push(c.candidate());
        }
    }

    fn exclude<'e>(&mut self, eps: impl Iterator<Item = &'e Ep<'a>>, by: ExcludedBy)
    where
        'a: 'e,
    {
        let excluded = eps.map(|ep| Exclusion {
            index: ep.index,
            by,
        });
        self.exclusions.extend(excluded);
    }

    fn price(&self, e: &Endpoint) -> Usd {
        e.blended_price(self.prompt_tokens(), self.unix_millis)
    }

    /// Sorts by ascending price (ties keep catalog order), then moves the unstable endpoints out
    /// of `rest` (which keeps the stable ones) into `bad` (empty; filled in place, not returned:
    /// returning the inline list would copy it).
    fn split_stable(&self, rest: &mut Eps<'a>, bad: &mut Eps<'a>) {
        // By the f64 image of exact prices: equal decimals give equal f64s, and the order of
        // distinct prices is kept (catalog prices are far apart compared with f64 precision).
        let (tokens, millis) = (self.prompt_tokens(), self.unix_millis);
        let pf = |ep: &Ep<'_>| ep.e.blended_price_f64(tokens, millis);
        let order = |a: &Ep<'_>, b: &Ep<'_>| pf(a).total_cmp(&pf(b));
        // Often in price order already (a model's few endpoints): checking costs less than
        // sorting, and a stable sort of a sorted list leaves it as it is.
        if !rest.is_sorted_by(|a, b| order(a, b).is_le()) {
            rest.sort_by(order);
        }
        // In place: `rest` keeps the stable ones; the unstable (usually none) move out.
        rest.retain(|ep| {
            let stable = self.stable(ep.e);
            if !stable {
                bad.push(*ep);
            }
            stable
        });
    }

    /// `sort` (or a sorting variant): the stable endpoints by price or by a metric.
    fn sorted(&mut self, by: SortBy, good: &mut Eps<'a>, model: usize, out: &mut Order<'a>) {
        if self.partition == Partition::None && self.models > 1 {
            self.global_sort = Some(by);
        }
        if by != SortBy::Price {
            good.sort_by(|a, b| cmp_metric(self.health, a.e, b.e, by, self.now));
        }
        let reason = Reason::Sorted(by);
        out.extend(good.iter().map(|&ep| Placed { ep, model, reason }));
    }

    /// `allow_fallbacks: false` without `order`: only the cheapest (stable if any) endpoint.
    fn cheapest_only(
        &mut self,
        good: &[Ep<'a>],
        bad: &[Ep<'a>],
        model: usize,
        out: &mut Order<'a>,
    ) {
        let Some(&first) = good.first().or(bad.first()) else {
            return;
        };
        let reason = Reason::ByPrice;
        out.push(Placed {
            ep: first,
            model,
            reason,
        });
        let others = good.iter().chain(bad).filter(|ep| ep.index != first.index);
        self.exclude(others, ExcludedBy::AllowedProviders);
    }

    /// The default: the balancer's weighted first pick, then the other stable endpoints by price.
    fn balanced(&mut self, good: &[Ep<'a>], model: usize, out: &mut Order<'a>) {
        if good.is_empty() {
            return;
        }
        let prices: SmallVec<[Usd; 8]> = good.iter().map(|ep| self.price(ep.e)).collect();
        let endpoints: SmallVec<[usize; 8]> = good.iter().map(|ep| ep.index).collect();
        let draw = splitmix(&mut self.rng);
        let input = BalanceInput {
            catalog: self.catalog,
            endpoints: &endpoints,
            prices: &prices,
        };
        let pick = self.cfg.balance.pick(&input, draw).min(good.len() - 1);
        let (ep, reason) = (good[pick], Reason::WeightedPick);
        out.push(Placed { ep, model, reason });
        let reason = Reason::ByPrice;
        for (k, &ep) in good.iter().enumerate() {
            if k != pick {
                out.push(Placed { ep, model, reason });
            }
        }
    }

    /// `service_tier: "priority"` (without `order`): priority endpoints first, by throughput.
    fn priority_first(&self, ordered: &mut Order<'a>) {
        if !self.admission.tiers.priority || self.admission.order_set {
            return;
        }
        let is_priority =
            |c: &Placed<'_>| c.ep.e.service_tier.is_some_and(|t| t != ServiceTier::Flex);
        let (mut first, rest): (Order<'a>, Order<'a>) = ordered.drain(..).partition(is_priority);
        let by = SortBy::Throughput;
        first.sort_by(|a, b| cmp_metric(self.health, a.ep.e, b.ep.e, by, self.now));
        first.extend(rest);
        *ordered = first;
    }

    /// Sticky session: the remembered endpoint goes first (never with `order`). The first-messages
    /// hash is only worth computing when an endpoint could stick by it.
    fn stick(&mut self, mp: &ModelPlan, ordered: &mut [Placed<'a>]) {
        if self.session.is_none()
            && !self.hashed
            && self.cfg.sticky_implicit
            && ordered.iter().any(|c| cache_eligible(c.ep.e))
        {
            self.hashed = true;
            self.session = self
                .view
                .conversation_hash(self.body)
                .map(Session::Implicit);
        }
        let (Some(s), false) = (self.session, self.admission.order_set) else {
            return;
        };
        let sticky = &self.cfg.sticky;
        let Some(key) = sticky.get(sticky_key(sticky.seed, s.id(), &mp.id), self.now) else {
            return;
        };
        if let Some(pos) = ordered.iter().position(|c| c.ep.e.key() == &key) {
            ordered[..=pos].rotate_right(1);
            ordered[0].reason = Reason::Sticky;
        }
    }

    /// `partition: "none"` with a sort: the sorted candidates of every model in one order, the
    /// others after them.
    pub(super) fn sort_across_models(&self, by: SortBy, candidates: &mut Candidates) {
        let catalog = self.catalog;
        let (mut head, tail): (Candidates, Candidates) = candidates
            .drain(..)
            .partition(|c| matches!(c.reason, Reason::Sorted(_)));
        head.sort_by(|a, b| {
            let (Some(ea), Some(eb)) = (catalog.endpoint(a.index), catalog.endpoint(b.index))
            else {
                return Ordering::Equal;
            };
            match by {
                SortBy::Price => self.price(ea).cmp(&self.price(eb)),
                _ => cmp_metric(self.health, ea, eb, by, self.now),
            }
        });
        head.extend(tail);
        *candidates = head;
    }
}

/// A metric value for sorting: the health source's figure, else the catalog's; `None` when neither
/// has one (and for price, which is not a metric).
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

/// Better first (lowest latency, highest throughput or success rate); endpoints without a figure
/// after those with one.
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
