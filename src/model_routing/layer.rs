use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use super::routers::{AutoRouter, TieredRouter};
use super::sticky::StickyTable;
use super::sticky_store::StickyStore;
use super::ModelRouting;
use crate::catalog::CatalogHandle;
use crate::clock::{system_clock, Clock, SharedClock};
use crate::health::{HealthSource, SharedHealth};
use crate::route::{BalancePolicy, InverseSquarePrice, Presets, RouteStep};

/// Settings shared by every clone of the layer and its services.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) catalog: CatalogHandle,
    pub(crate) health: SharedHealth,
    pub(crate) balance: Arc<dyn BalancePolicy>,
    pub(crate) seed: u64,
    pub(crate) counter: Arc<AtomicU64>,
    pub(crate) body_limit: usize,
    pub(crate) max_models: usize,
    pub(crate) allow: Option<Vec<String>>,
    pub(crate) ignore: Vec<String>,
    pub(crate) sticky: Arc<StickyTable>,
    pub(crate) sticky_implicit: bool,
    /// Sticky sessions shared with other replicas, besides `sticky`.
    pub(crate) sticky_store: Option<Arc<dyn StickyStore>>,
    pub(crate) clock: SharedClock,
    /// Ranks models for `openrouter/auto`.
    pub(crate) auto_router: Arc<dyn AutoRouter>,
    /// Presets applied before the request is parsed (none by default).
    pub(crate) presets: Presets,
    /// The steps run on each planned route before the inner service is called (GatewayLayer's
    /// DataPolicy, PriceCap and PercentileDeprioritize; none by default).
    pub(crate) steps: Option<Arc<dyn RouteStep>>,
}

/// The default request body limit: 10 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 10 * 1024 * 1024;

/// Layer that applies the [`ModelRouting`] middleware. See the [module docs](super) for an example.
#[derive(Clone)]
#[must_use]
pub struct ModelRoutingLayer {
    pub(crate) config: Arc<Config>,
}

impl ModelRoutingLayer {
    /// Routes against `catalog` (a [`Catalog`](crate::catalog::Catalog) or a
    /// [`CatalogHandle`] for reloads) with the defaults: no stats, inverse-square-price balancing,
    /// a random seed, a 10 MiB body limit, at most 3 fallback `models`, 10-minute sticky sessions
    /// for up to 100,000 conversations.
    pub fn new(catalog: impl Into<CatalogHandle>) -> Self {
        ModelRoutingLayer {
            config: Arc::new(Config {
                catalog: catalog.into(),
                health: SharedHealth::default(),
                balance: Arc::new(InverseSquarePrice),
                seed: rand::random(),
                counter: Arc::new(AtomicU64::new(0)),
                body_limit: DEFAULT_BODY_LIMIT,
                max_models: 3,
                allow: None,
                ignore: Vec::new(),
                sticky: Arc::new(StickyTable::new(Duration::from_secs(600), 100_000)),
                sticky_implicit: true,
                sticky_store: None,
                clock: system_clock(),
                auto_router: Arc::new(TieredRouter::default()),
                presets: Presets::default(),
                steps: None,
            }),
        }
    }

    fn cfg(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// Runs `steps` on each planned route, in place of layers of their own behind this one.
    pub(crate) fn route_steps(mut self, steps: impl RouteStep) -> Self {
        self.cfg().steps = Some(Arc::new(steps));
        self
    }

    /// Reads endpoint health, latency and throughput from `health` (e.g. [`Stats`](crate::stats::Stats)).
    pub fn health(mut self, health: impl HealthSource) -> Self {
        self.cfg().health = SharedHealth(Arc::new(health));
        self
    }

    /// The [`AutoRouter`] behind `openrouter/auto` (default: [`TieredRouter`] without tiers: the
    /// cheapest capable models).
    pub fn auto_router(mut self, router: impl AutoRouter) -> Self {
        self.cfg().auto_router = Arc::new(router);
        self
    }

    /// The operator's [`Presets`]: a request naming one (`"model": "@preset/NAME"`,
    /// `"preset": "NAME"` or `"model": "AUTHOR/SLUG@preset/NAME"`) gets it merged in before it is
    /// parsed, the request's own members winning
    /// (<https://openrouter.ai/docs/guides/features/presets>); an unknown preset is a 404.
    pub fn presets(mut self, presets: Presets) -> Self {
        self.cfg().presets = presets;
        self
    }

    /// Replaces the default load-balancing policy.
    pub fn balance(mut self, policy: impl BalancePolicy) -> Self {
        self.cfg().balance = Arc::new(policy);
        self
    }

    /// Seeds the generator behind the weighted first pick: the same sequence of requests against the
    /// same catalog and stats then gives the same orders.
    pub fn seed(mut self, seed: u64) -> Self {
        let c = self.cfg();
        c.seed = seed;
        c.counter = Arc::new(AtomicU64::new(0));
        self
    }

    /// Request bodies larger than `bytes` are refused with 413 without being read further.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.cfg().body_limit = bytes;
        self
    }

    /// The largest accepted `models` list (default 3, as OpenRouter).
    pub fn max_models(mut self, n: usize) -> Self {
        self.cfg().max_models = n;
        self
    }

    /// Operator allow-list (provider slugs, tags or display names): the ceiling that a request's
    /// `only` narrows within.
    pub fn allow_providers<I: IntoIterator<Item = S>, S: Into<String>>(mut self, list: I) -> Self {
        self.cfg().allow = Some(list.into_iter().map(Into::into).collect());
        self
    }

    /// Operator deny-list, unioned with each request's `ignore`.
    pub fn ignore_providers<I: IntoIterator<Item = S>, S: Into<String>>(mut self, list: I) -> Self {
        self.cfg().ignore = list.into_iter().map(Into::into).collect();
        self
    }

    /// Also keeps sticky sessions in `store`, shared with other replicas (see [`StickyStore`]).
    pub fn sticky_store(mut self, store: impl StickyStore) -> Self {
        self.cfg().sticky_store = Some(Arc::new(store));
        self
    }

    /// Sticky-session idle TTL and capacity (defaults: 10 minutes, 100,000 conversations).
    pub fn sticky(mut self, ttl: Duration, capacity: usize) -> Self {
        self.cfg().sticky = Arc::new(StickyTable::new(ttl, capacity));
        self
    }

    /// Whether conversations without an explicit session (keyed by `prompt_cache_key` or by their
    /// first messages) stick to cache-eligible endpoints (default true).
    pub fn sticky_implicit(mut self, on: bool) -> Self {
        self.cfg().sticky_implicit = on;
        self
    }

    /// The wall clock used for UTC pricing windows.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.cfg().clock = Arc::new(clock);
        self
    }

    /// The catalog handle, e.g. to reload it.
    pub fn catalog(&self) -> &CatalogHandle {
        &self.config.catalog
    }
}

impl<S> Layer<S> for ModelRoutingLayer {
    type Service = ModelRouting<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ModelRouting {
            inner,
            config: self.config.clone(),
        }
    }
}

impl fmt::Debug for ModelRoutingLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelRoutingLayer")
            .field("catalog", &self.config.catalog)
            .field("body_limit", &self.config.body_limit)
            .field("max_models", &self.config.max_models)
            .finish_non_exhaustive()
    }
}
