//! [`RateLimitLayer`] and [`RateLimit`].

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use super::memory::InMemoryRateLimitStore;
use super::rules::{FreeLimits, Limits, Rules};
use super::store::{Check, RateLimitStore};
use crate::clock::{system_clock, Clock, SharedClock};
use crate::usage_meter::CallerKey;

/// Layer that applies the [`RateLimit`] middleware. See the [module docs](super) for the rules.
///
/// With no limit configured, the layer passes every request through without looking at it.
#[derive(Clone)]
#[must_use]
pub struct RateLimitLayer {
    pub(crate) rules: Arc<Rules>,
    pub(crate) store: Arc<dyn RateLimitStore>,
    pub(crate) clock: SharedClock,
}

impl RateLimitLayer {
    /// No limits, an [`InMemoryRateLimitStore`], the system clock.
    pub fn new() -> Self {
        RateLimitLayer {
            rules: Arc::default(),
            store: Arc::new(InMemoryRateLimitStore::new()),
            clock: system_clock(),
        }
    }

    fn rules(&mut self) -> &mut Rules {
        Arc::make_mut(&mut self.rules)
    }

    /// Limits of every key that has neither its own nor a class's.
    pub fn default_limits(mut self, limits: Limits) -> Self {
        self.rules().default = limits;
        self
    }

    /// Limits of `key` (replacing its class's and the default).
    pub fn key_limits(mut self, key: &str, limits: Limits) -> Self {
        self.rules().keys.insert(CallerKey::new(key), limits);
        self
    }

    /// Limits of each key of the class `name` (see [`RateClass`](super::RateClass)).
    pub fn class(mut self, name: &str, limits: Limits) -> Self {
        self.rules().classes.insert(name.into(), limits);
        self
    }

    /// Puts `key` in the class `name` (a [`RateClass`](super::RateClass) extension on the request
    /// takes precedence).
    pub fn key_class(mut self, key: &str, name: &str) -> Self {
        self.rules()
            .key_class
            .insert(CallerKey::new(key), name.into());
        self
    }

    /// Applies `limits` to requests for `:free` models, per key.
    pub fn free(mut self, limits: FreeLimits) -> Self {
        self.rules().free = Some(limits);
        self
    }

    /// `key`'s own daily quota of `:free` requests (OpenRouter: 50, or
    /// [`FreeLimits::UNLOCKED_PER_DAY`]).
    pub fn free_requests_per_day(mut self, key: &str, n: u64) -> Self {
        self.rules().free_per_day.insert(CallerKey::new(key), n);
        self
    }

    /// Limits shared by every caller of the catalog model `id` (the route's first model).
    pub fn model_limits(mut self, id: &str, limits: Limits) -> Self {
        self.rules().models.insert(id.to_owned(), limits);
        self
    }

    /// Limits shared by every caller of the endpoint `"<model>@<tag>"` (the route's first
    /// candidate), to protect an upstream quota.
    pub fn endpoint_limits(mut self, endpoint: &str, limits: Limits) -> Self {
        self.rules().endpoints.insert(endpoint.to_owned(), limits);
        self
    }

    /// Keeps the counters in `store` (shared with whoever else holds it).
    pub fn store(mut self, store: impl RateLimitStore) -> Self {
        self.store = Arc::new(store);
        self
    }

    /// Keeps the counters in a shared `store`.
    pub fn shared_store(mut self, store: Arc<dyn RateLimitStore>) -> Self {
        self.store = store;
        self
    }

    /// Reads wall-clock time from `clock` (windows are counted in Unix milliseconds).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The free-variant limits of `key`, if `:free` requests are limited.
    pub fn free_limits_of(&self, key: &CallerKey) -> Option<FreeLimits> {
        self.rules.free_limits(key)
    }

    /// The per-key limits of `key` (its own, its class's from
    /// [`key_class`](Self::key_class), or the default).
    pub fn limits_of(&self, key: &CallerKey) -> Limits {
        self.rules.key_limits(key, None)
    }

    /// `:free` requests `key` made today (UTC) and its daily quota: `(used, limit)`.
    pub async fn free_requests_today(&self, key: &CallerKey) -> Option<(u64, u64)> {
        let check: Check = self.rules.free_day_check(key)?;
        let used = self
            .store
            .used(&check, self.clock.unix_millis())
            .await
            .min(check.limit);
        Some((used, check.limit))
    }
}

impl Default for RateLimitLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit::new(inner, self.clone())
    }
}

/// Middleware that refuses requests over their rate limits with 429. See the [module docs](super).
#[derive(Clone)]
pub struct RateLimit<S> {
    pub(crate) inner: S,
    pub(crate) layer: RateLimitLayer,
    /// False when the layer has no limit at all: every request is then passed through without
    /// looking at it.
    pub(crate) limited: bool,
}

impl<S> RateLimit<S> {
    /// Wraps `inner` with the rules of `layer`.
    pub fn new(inner: S, layer: RateLimitLayer) -> Self {
        let limited = !layer.rules.is_empty();
        RateLimit {
            inner,
            layer,
            limited,
        }
    }

    /// A layer with no limits (configure it with its builder methods).
    pub fn layer() -> RateLimitLayer {
        RateLimitLayer::new()
    }

    define_inner_service_accessors!();
}

impl<S: fmt::Debug> fmt::Debug for RateLimit<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}
