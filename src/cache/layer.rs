//! [`ResponseCacheLayer`]: the builder.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use super::inflight::Inflight;
use super::key::{DEFAULT_TTL, MAX_TTL_SECS, MIN_TTL_SECS};
use super::service::ResponseCache;
use super::store::{CacheStore, InMemoryStore};
use crate::clock::{system_clock, Clock, SharedClock};
use crate::usage_meter::CallerKey;

/// The default bound of the in-memory store: 64 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// The default largest answer cached: 1 MiB.
pub const DEFAULT_MAX_ENTRY_BYTES: usize = 1024 * 1024;

/// An operator rule: turns the cache on for requests without `X-OpenRouter-Cache` (like
/// OpenRouter's presets with `cache_enabled`), with the TTL to use when the request gives none.
///
/// `X-OpenRouter-Cache: false` still turns it off for one request. Implemented for closures
/// `Fn(&CallerKey, &str) -> Option<Duration>` (caller, requested model).
pub trait CacheRule: Send + Sync + 'static {
    /// `Some(default TTL)` to cache this caller's requests for `model`.
    fn ttl(&self, caller: &CallerKey, model: &str) -> Option<Duration>;
}

impl<F> CacheRule for F
where
    F: Fn(&CallerKey, &str) -> Option<Duration> + Send + Sync + 'static,
{
    fn ttl(&self, caller: &CallerKey, model: &str) -> Option<Duration> {
        self(caller, model)
    }
}

#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) store: Option<Arc<dyn CacheStore>>,
    pub(crate) clock: SharedClock,
    pub(crate) default_ttl: Duration,
    pub(crate) max_entry_bytes: usize,
    pub(crate) inflight: Option<Inflight>,
    pub(crate) rule: Option<Arc<dyn CacheRule>>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("enabled", &self.store.is_some())
            .field("default_ttl", &self.default_ttl)
            .field("max_entry_bytes", &self.max_entry_bytes)
            .field("coalesce", &self.inflight.is_some())
            .field("rule", &self.rule.is_some())
            .finish_non_exhaustive()
    }
}

/// Applies [`ResponseCache`] to a service: OpenRouter's response cache
/// (<https://openrouter.ai/docs/guides/features/response-caching>).
///
/// See the [module docs](super) for the behaviour and an example.
#[derive(Clone, Debug)]
#[must_use]
pub struct ResponseCacheLayer {
    config: Config,
}

impl Default for ResponseCacheLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl ResponseCacheLayer {
    /// A cache over an [`InMemoryStore`] of [`DEFAULT_MAX_BYTES`], default TTL 300 s, answers up to
    /// [`DEFAULT_MAX_ENTRY_BYTES`], no coalescing, no operator rule (requests opt in with
    /// `X-OpenRouter-Cache: true`).
    pub fn new() -> Self {
        ResponseCacheLayer {
            config: Config {
                store: Some(Arc::new(InMemoryStore::new(DEFAULT_MAX_BYTES))),
                clock: system_clock(),
                default_ttl: DEFAULT_TTL,
                max_entry_bytes: DEFAULT_MAX_ENTRY_BYTES,
                inflight: None,
                rule: None,
            },
        }
    }

    /// A layer that caches nothing: every request passes through untouched (no cache headers).
    pub fn disabled() -> Self {
        let mut layer = Self::new();
        layer.config.store = None;
        layer
    }

    /// Stores answers in `store` (shared by every clone of the layer).
    pub fn store(mut self, store: impl CacheStore) -> Self {
        self.config.store = Some(Arc::new(store));
        self
    }

    /// Stores answers in a new [`InMemoryStore`] of `max_bytes`.
    pub fn max_bytes(self, max_bytes: u64) -> Self {
        self.store(InMemoryStore::new(max_bytes))
    }

    /// The TTL when neither the request nor a rule gives one, clamped to 1–86,400 s.
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.config.default_ttl = clamp_ttl(ttl);
        self
    }

    /// Answers larger than this (body bytes) are not cached; recording stops at that size.
    pub fn max_entry_bytes(mut self, bytes: usize) -> Self {
        self.config.max_entry_bytes = bytes;
        self
    }

    /// With `true`, concurrent identical misses are coalesced: the first calls upstream, the
    /// others wait for its answer and are served it as HITs (they call upstream themselves if it
    /// turns out not cacheable). OpenRouter does not coalesce, so the default is `false`.
    pub fn coalesce(mut self, on: bool) -> Self {
        self.config.inflight = on.then(Inflight::default);
        self
    }

    /// Caches requests without `X-OpenRouter-Cache` that `rule` selects.
    pub fn rule(mut self, rule: impl CacheRule) -> Self {
        self.config.rule = Some(Arc::new(rule));
        self
    }

    /// The clock of TTLs, ages and `created` timestamps (default: the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.config.clock = Arc::new(clock);
        self
    }
}

/// A TTL within 1–86,400 s.
pub(crate) fn clamp_ttl(ttl: Duration) -> Duration {
    ttl.clamp(
        Duration::from_secs(MIN_TTL_SECS),
        Duration::from_secs(MAX_TTL_SECS),
    )
}

impl<S> Layer<S> for ResponseCacheLayer {
    type Service = ResponseCache<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ResponseCache {
            inner,
            config: Arc::new(self.config.clone()),
        }
    }
}

impl<S> ResponseCache<S> {
    /// Wraps `inner` with `layer`'s configuration.
    pub fn new(inner: S, layer: &ResponseCacheLayer) -> Self {
        layer.layer(inner)
    }

    /// A [`ResponseCacheLayer`] with its defaults.
    pub fn layer() -> ResponseCacheLayer {
        ResponseCacheLayer::new()
    }
}
