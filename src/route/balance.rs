//! The load balancer's first pick: [`BalancePolicy`] and its default, [`InverseSquarePrice`].
//!
//! It lives beside [`Route`](super::Route) because a route draws the first pick again when a filter
//! removes it ([`Route::retain`](super::Route::retain)); `ModelRouting`
//! re-exports it where users configure it.

use crate::catalog::{Catalog, Usd};

/// What a [`BalancePolicy`] sees: one model's stable endpoints, sorted by ascending price.
#[derive(Debug)]
#[non_exhaustive]
pub struct BalanceInput<'a> {
    /// The catalog the indices point into.
    pub catalog: &'a Catalog,
    /// Global endpoint indices (see [`Catalog::endpoint`]), cheapest first.
    pub endpoints: &'a [usize],
    /// Their prices in USD per token (prompt + completion, overrides for this request applied), in
    /// the same order.
    pub prices: &'a [Usd],
}

/// Chooses which stable endpoint is tried first when the request sets neither `order` nor `sort`.
///
/// The endpoints after the first pick follow by ascending price, and endpoints with recent outages go
/// last; only the first pick is the policy's to make. `random` is a uniformly distributed draw from
/// the layer's (seedable) generator. Returning an index out of range picks the last endpoint.
///
/// Closures `Fn(&BalanceInput<'_>, u64) -> usize` are policies too.
pub trait BalancePolicy: Send + Sync + 'static {
    /// The index (into `input.endpoints`) of the first pick.
    fn pick(&self, input: &BalanceInput<'_>, random: u64) -> usize;
}

impl<F> BalancePolicy for F
where
    F: Fn(&BalanceInput<'_>, u64) -> usize + Send + Sync + 'static,
{
    fn pick(&self, input: &BalanceInput<'_>, random: u64) -> usize {
        self(input, random)
    }
}

/// OpenRouter's documented default
/// ([load balancing](https://openrouter.ai/docs/features/provider-routing#price-based-load-balancing-default-strategy)):
/// the first pick is weighted by the
/// inverse square of the price, where the price is the endpoint's prompt + completion price per
/// token (with this request's pricing overrides applied; the discount is ignored, as for `sort`).
///
/// Free endpoints have infinite weight: when some endpoints are free, the pick is uniform among them.
#[derive(Clone, Copy, Debug, Default)]
pub struct InverseSquarePrice;

/// A uniform draw in `[0, 1)` from 53 random bits.
fn unit(random: u64) -> f64 {
    (random >> 11) as f64 / (1u64 << 53) as f64
}

impl BalancePolicy for InverseSquarePrice {
    fn pick(&self, input: &BalanceInput<'_>, random: u64) -> usize {
        let n = input.prices.len();
        if n <= 1 {
            return 0;
        }
        let free: Vec<usize> = (0..n).filter(|&i| input.prices[i].is_zero()).collect();
        if !free.is_empty() {
            let k = ((unit(random) * free.len() as f64) as usize).min(free.len() - 1);
            return free[k];
        }
        // Weights in (USD per million tokens)^-2 keep the numbers in a comfortable f64 range; they
        // are only weights, never money.
        let weights: Vec<f64> = input
            .prices
            .iter()
            .zip(input.endpoints)
            .map(|(p, &i)| {
                // The endpoint's cached f64 price when no override changed it for this request.
                let per_token = match input.catalog.endpoint(i) {
                    Some(e) if e.pricing.overrides.is_empty() => e.blended_f64,
                    _ => p.to_f64(),
                };
                let m = (per_token * 1e6).max(1e-12);
                1.0 / (m * m)
            })
            .collect();
        let total: f64 = weights.iter().sum();
        let mut target = unit(random) * total;
        for (i, w) in weights.iter().enumerate() {
            if target < *w {
                return i;
            }
            target -= w;
        }
        n - 1
    }
}
