//! The counter store: [`RateLimitStore`] and what one decision takes and gives.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// Milliseconds in a UTC day.
pub(crate) const DAY_MS: i64 = 86_400_000;

/// How a limit counts time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Window {
    /// A sliding window of this length: at most `limit` units in **any** interval of this length.
    Sliding(Duration),
    /// The UTC calendar day: the count resets at 00:00 UTC (as OpenRouter's daily free-model quota).
    UtcDay,
}

impl Window {
    /// A sliding minute.
    pub const MINUTE: Window = Window::Sliding(Duration::from_secs(60));

    /// The window length in milliseconds (a day for [`Window::UtcDay`]).
    pub fn millis(self) -> i64 {
        match self {
            Window::Sliding(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1),
            Window::UtcDay => DAY_MS,
        }
    }
}

/// One limit a request must pass: `cost` more units in `bucket` must stay within `limit` per
/// `window`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// The counter's name (`"key:alice:rpm"`); distinct within one [`RateLimitStore::acquire`] call.
    pub bucket: Arc<str>,
    /// Units allowed per window.
    pub limit: u64,
    /// How time is counted.
    pub window: Window,
    /// Units this request takes (1 for a request count, the estimate for a token count).
    pub cost: u64,
}

/// The units a granted request took, to give back with [`RateLimitStore::refund`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grant {
    /// `(check, time it was charged at in Unix milliseconds)` for every check of the call.
    pub charged: Vec<(Check, i64)>,
}

/// Why a request was refused: the first check (in the order given) it did not pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    /// Position of the failing check in the call's list.
    pub index: usize,
    /// Its limit.
    pub limit: u64,
    /// Units still free in its window now (less than the request's cost).
    pub remaining: u64,
    /// When enough units will have freed for this request (Unix milliseconds); for a request
    /// that costs more than the whole limit, the end of the current window.
    pub reset_unix_ms: i64,
}

impl Refused {
    /// How long to wait from `now_unix_ms` (never negative).
    pub fn retry_after(&self, now_unix_ms: i64) -> Duration {
        Duration::from_millis(u64::try_from(self.reset_unix_ms - now_unix_ms).unwrap_or(0))
    }
}

/// The outcome of one [`RateLimitStore::acquire`] call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Every check passed and every one was charged.
    Allowed(Grant),
    /// A check failed; **nothing** was charged.
    Refused(Refused),
    /// The store could not decide (a remote store unreachable, failing closed): nothing was
    /// charged, and the layer answers 503 with this reason.
    Unavailable(Arc<str>),
}

/// A boxed, `Send` future: what the async methods of [`RateLimitStore`] return.
pub type StoreFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Where rate-limit counters live.
///
/// # One atomic call decides
///
/// [`acquire`](RateLimitStore::acquire) gets **every** limit a request is subject to and either
/// charges all of them or none, in one atomic step: a store must never read counters in one round
/// trip and write them in another. A Redis implementation is one Lua script (`EVALSHA`) over the
/// buckets' keys — a sorted set per sliding bucket (`ZREMRANGEBYSCORE` the expired members, sum
/// the rest, `ZADD` the new member, `PEXPIRE` the key by the window) and a counter per day bucket
/// (`INCRBY` + `PEXPIREAT` the next midnight) — given `now` as an argument; in Redis Cluster the
/// bucket names need a common hash tag (`{alice}`) so one script may touch them all.
///
/// The future returned by `acquire` must charge nothing if it is dropped before it is polled
/// (decide when polled, not when called). [`refund`](RateLimitStore::refund) is synchronous and
/// must not block (a remote store queues it), as the layer may call it from a response future.
pub trait RateLimitStore: Send + Sync + 'static {
    /// Checks `checks` at `now_unix_ms` and charges all of them, or none.
    fn acquire(&self, checks: Vec<Check>, now_unix_ms: i64) -> StoreFuture<Decision>;

    /// Gives back what `grant` charged (the request was refused further in). Must not block.
    fn refund(&self, grant: Grant);

    /// Units used in `check`'s bucket at `now_unix_ms` (for reports such as `/api/v1/key`).
    fn used(&self, check: &Check, now_unix_ms: i64) -> StoreFuture<u64>;
}

impl<T: RateLimitStore + ?Sized> RateLimitStore for Arc<T> {
    fn acquire(&self, checks: Vec<Check>, now_unix_ms: i64) -> StoreFuture<Decision> {
        (**self).acquire(checks, now_unix_ms)
    }

    fn refund(&self, grant: Grant) {
        (**self).refund(grant);
    }

    fn used(&self, check: &Check, now_unix_ms: i64) -> StoreFuture<u64> {
        (**self).used(check, now_unix_ms)
    }
}

/// The start (Unix milliseconds) of the next UTC day after `unix_ms`.
pub(crate) fn next_midnight(unix_ms: i64) -> i64 {
    (unix_ms.div_euclid(DAY_MS) + 1) * DAY_MS
}
