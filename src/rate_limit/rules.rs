//! What limits a request is subject to: [`Limits`], [`FreeLimits`], [`RateClass`] and the rules
//! that turn a request into the store's [`Check`]s.

use std::collections::HashMap;
use std::sync::Arc;

use http::Request;

use super::store::{Check, Window};
use crate::route::Route;
use crate::usage_meter::CallerKey;

/// Request and token limits. Unset limits do not apply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Requests in any 60 seconds.
    pub requests_per_minute: Option<u64>,
    /// Requests per UTC day.
    pub requests_per_day: Option<u64>,
    /// Tokens in any 60 seconds, estimated at admission (see the [module docs](super#tokens)).
    pub tokens_per_minute: Option<u64>,
}

impl Limits {
    /// No limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the requests per minute.
    #[must_use]
    pub fn requests_per_minute(mut self, n: u64) -> Self {
        self.requests_per_minute = Some(n);
        self
    }

    /// Sets the requests per UTC day.
    #[must_use]
    pub fn requests_per_day(mut self, n: u64) -> Self {
        self.requests_per_day = Some(n);
        self
    }

    /// Sets the tokens per minute.
    #[must_use]
    pub fn tokens_per_minute(mut self, n: u64) -> Self {
        self.tokens_per_minute = Some(n);
        self
    }

    /// True if no limit is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The limits of the `:free` model variant, per caller key
/// (<https://openrouter.ai/docs/api/reference/limits>).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FreeLimits {
    /// Requests to `:free` models in any 60 seconds (OpenRouter: 20).
    pub requests_per_minute: u64,
    /// Requests to `:free` models per UTC day, unless the key has its own (OpenRouter: 50, or 1,000
    /// for accounts that bought at least 10 credits).
    pub requests_per_day: u64,
}

impl FreeLimits {
    /// OpenRouter's daily free quota after buying 10 credits.
    pub const UNLOCKED_PER_DAY: u64 = 1000;

    /// OpenRouter's defaults: 20 requests per minute, 50 per day.
    pub fn openrouter() -> Self {
        FreeLimits {
            requests_per_minute: 20,
            requests_per_day: 50,
        }
    }

    /// Custom limits.
    pub fn new(requests_per_minute: u64, requests_per_day: u64) -> Self {
        FreeLimits {
            requests_per_minute,
            requests_per_day,
        }
    }
}

impl Default for FreeLimits {
    fn default() -> Self {
        Self::openrouter()
    }
}

/// An operator-defined class of callers (`"pro"`, `"trial"`), put in the request extensions by the
/// embedder's authentication, or assigned to keys with
/// [`RateLimitLayer::key_class`](super::RateLimitLayer::key_class). Each key of a class gets the
/// class's [`Limits`] for itself.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RateClass(pub Arc<str>);

impl RateClass {
    /// A class named `name`.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        RateClass(name.into())
    }
}

/// What a check limits, for the refusal's message (`"Rate limit exceeded: free-models-per-day"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    RequestsPerMinute,
    RequestsPerDay,
    TokensPerMinute,
    FreePerMinute,
    FreePerDay,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::RequestsPerMinute => "requests-per-minute",
            Kind::RequestsPerDay => "requests-per-day",
            Kind::TokensPerMinute => "tokens-per-minute",
            Kind::FreePerMinute => "free-models-per-min",
            Kind::FreePerDay => "free-models-per-day",
        }
    }
}

/// One check and what it is about (`scope`: `"key"`, `"model"`, `"endpoint"`).
#[derive(Clone, Debug)]
pub(crate) struct Labelled {
    pub(crate) check: Check,
    pub(crate) kind: Kind,
    pub(crate) scope: &'static str,
}

/// The configured rules (shared by every clone of the layer).
#[derive(Clone, Debug, Default)]
pub(crate) struct Rules {
    pub(crate) default: Limits,
    pub(crate) keys: HashMap<CallerKey, Limits>,
    pub(crate) classes: HashMap<Arc<str>, Limits>,
    pub(crate) key_class: HashMap<CallerKey, Arc<str>>,
    pub(crate) free: Option<FreeLimits>,
    pub(crate) free_per_day: HashMap<CallerKey, u64>,
    pub(crate) models: HashMap<String, Limits>,
    pub(crate) endpoints: HashMap<String, Limits>,
}

/// The caller a request without a [`CallerKey`] is counted as.
pub(crate) const ANONYMOUS: &str = "anonymous";

fn push(out: &mut Vec<Labelled>, scope: &'static str, name: &str, limits: &Limits, tokens: u64) {
    let mut add = |kind: Kind, suffix: &str, limit: Option<u64>, window, cost| {
        if let Some(limit) = limit {
            out.push(Labelled {
                check: Check {
                    bucket: format!("{scope}:{name}:{suffix}").into(),
                    limit,
                    window,
                    cost,
                },
                kind,
                scope,
            });
        }
    };
    add(
        Kind::RequestsPerMinute,
        "rpm",
        limits.requests_per_minute,
        Window::MINUTE,
        1,
    );
    add(
        Kind::RequestsPerDay,
        "rpd",
        limits.requests_per_day,
        Window::UtcDay,
        1,
    );
    if tokens > 0 {
        add(
            Kind::TokensPerMinute,
            "tpm",
            limits.tokens_per_minute,
            Window::MINUTE,
            tokens,
        );
    }
}

/// True if the route asks for a `:free` model.
pub(crate) fn is_free(route: &Route) -> bool {
    route
        .models()
        .iter()
        .any(|m| m.requested.ends_with(":free") || m.id.ends_with(":free"))
}

impl Rules {
    /// True if nothing is limited (the layer then only forwards).
    pub(crate) fn is_empty(&self) -> bool {
        self.default.is_empty()
            && self.keys.is_empty()
            && self.classes.is_empty()
            && self.free.is_none()
            && self.models.is_empty()
            && self.endpoints.is_empty()
    }

    /// The per-key limits of `key`: its own, else its class's, else the default.
    pub(crate) fn key_limits(&self, key: &CallerKey, class: Option<&RateClass>) -> Limits {
        if let Some(l) = self.keys.get(key) {
            return *l;
        }
        let class = class
            .map(|c| &c.0)
            .or_else(|| self.key_class.get(key))
            .and_then(|c| self.classes.get(c));
        class.copied().unwrap_or(self.default)
    }

    /// The free-variant limits of `key` (its own daily quota if set).
    pub(crate) fn free_limits(&self, key: &CallerKey) -> Option<FreeLimits> {
        let mut free = self.free?;
        if let Some(day) = self.free_per_day.get(key) {
            free.requests_per_day = *day;
        }
        Some(free)
    }

    /// The free-variant day check of `key` (for `/api/v1/key`-style reports).
    pub(crate) fn free_day_check(&self, key: &CallerKey) -> Option<Check> {
        let free = self.free_limits(key)?;
        Some(Check {
            bucket: format!("free:{key}:rpd").into(),
            limit: free.requests_per_day,
            window: Window::UtcDay,
            cost: 1,
        })
    }

    /// Every check `req` must pass, in the order they are decided: key, `:free`, model, endpoint.
    pub(crate) fn checks<B>(&self, req: &Request<B>) -> Vec<Labelled> {
        let anonymous;
        let key = match req.extensions().get::<CallerKey>() {
            Some(k) => k,
            None => {
                anonymous = CallerKey::new(ANONYMOUS);
                &anonymous
            }
        };
        let route = req.extensions().get::<Route>();
        let tokens = route.map_or(0, |r| {
            r.prompt_tokens()
                .saturating_add(r.view().max_output().unwrap_or(0))
                .max(1)
        });
        let mut out = Vec::new();
        let limits = self.key_limits(key, req.extensions().get::<RateClass>());
        push(&mut out, "key", key.as_str(), &limits, tokens);
        let Some(route) = route else { return out };
        if let Some(free) = self.free_limits(key).filter(|_| is_free(route)) {
            let limits = Limits::new()
                .requests_per_minute(free.requests_per_minute)
                .requests_per_day(free.requests_per_day);
            let before = out.len();
            push(&mut out, "free", key.as_str(), &limits, 0);
            out[before].kind = Kind::FreePerMinute;
            out[before + 1].kind = Kind::FreePerDay;
        }
        if let Some(m) = route.models().first() {
            if let Some(l) = self.models.get(&*m.id) {
                push(&mut out, "model", &m.id, l, tokens);
            }
        }
        // The endpoint's name is formatted only when some endpoint has limits.
        if let Some(c) = route
            .candidates()
            .first()
            .filter(|_| !self.endpoints.is_empty())
        {
            if let Some(e) = route.get_endpoint(c) {
                let name = e.key().to_string();
                if let Some(l) = self.endpoints.get(&name) {
                    push(&mut out, "endpoint", &name, l, tokens);
                }
            }
        }
        out
    }
}
