//! [`RedisRateLimitStore`]: rate-limit counters in Redis, shared by every replica.

use std::fmt;
use std::sync::{Arc, LazyLock};

use super::{FailMode, RedisError, RedisStores};
use crate::rate_limit::{
    Check, Decision, Grant, InMemoryRateLimitStore, RateLimitStore, Refused, StoreFuture, Window,
};

static ACQUIRE: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("rate_acquire.lua")));
static REFUND: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("rate_refund.lua")));
static USED: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("rate_used.lua")));

const DAY_MS: i64 = 86_400_000;

/// A [`RateLimitStore`] in Redis: a limit of 100 requests a minute is 100 across all replicas.
///
/// One [`acquire`](RateLimitStore::acquire) is one Lua script (`EVALSHA`, one round trip) over
/// every bucket of the request, as the trait asks: it drops the charges that left each sliding
/// window, checks every limit, and charges all of them or none.
///
/// * A **sliding** bucket is a sorted set of charge times (member and score: the Unix ms) and a
///   hash of units per time plus their `sum`; both expire (`PEXPIRE`) one window after the last
///   charge, so idle buckets cost no memory.
/// * A **UTC-day** bucket is one counter per day (`…:day:20414`), expiring a minute after the
///   next midnight (`PEXPIRE`, measured on the caller's clock, as every time the scripts use).
/// * Keys are `{prefix}:rl:{bucket}:{window ms}`. In Redis Cluster every bucket of one request
///   must hash to one slot: give the bucket names a common hash tag (`{alice}`); standalone
///   Redis and Sentinel need nothing.
/// * [`refund`](RateLimitStore::refund) does not block: it is queued for the background task of
///   [`RedisStores`] ([`RedisStores::flush`] waits for it). A refund is applied to the local
///   fallback's counters as well; they hold only what was charged while Redis was away.
/// * Redis unreachable within the call timeout: [`FailMode::Closed`] answers
///   [`Decision::Unavailable`] (the layer's 503); [`FailMode::Open`] decides with an
///   [`InMemoryRateLimitStore`] of this replica (each replica then allows the full limit).
#[derive(Clone)]
pub struct RedisRateLimitStore {
    stores: RedisStores,
    local: InMemoryRateLimitStore,
}

impl fmt::Debug for RedisRateLimitStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRateLimitStore")
            .field("stores", &self.stores)
            .finish_non_exhaustive()
    }
}

/// `(kind, the bucket's two keys)` of `check` charged at `at`.
fn keys_of(stores: &RedisStores, check: &Check, at: i64) -> (i64, [String; 2]) {
    let base = format!("{}:rl:{}", stores.options.key_prefix, check.bucket);
    match check.window {
        Window::UtcDay => {
            let day = format!("{base}:day:{}", at.div_euclid(DAY_MS));
            (1, [day.clone(), day])
        }
        window => {
            let ms = window.millis();
            (
                0,
                [format!("{base}:{ms}:log"), format!("{base}:{ms}:units")],
            )
        }
    }
}

fn units(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl RedisRateLimitStore {
    pub(super) fn new(stores: RedisStores) -> Self {
        RedisRateLimitStore {
            stores,
            local: InMemoryRateLimitStore::new(),
        }
    }

    /// Waits until every refund queued so far has been applied in Redis (or given up).
    pub async fn flush(&self) {
        self.stores.flush().await;
    }

    async fn acquire_now(self, checks: Vec<Check>, now: i64) -> Decision {
        let midnight = (now.div_euclid(DAY_MS) + 1) * DAY_MS;
        let mut keys = Vec::with_capacity(checks.len() * 2);
        let mut args = vec![now, units(checks.len() as u64), midnight];
        for c in &checks {
            let (kind, pair) = keys_of(&self.stores, c, now);
            keys.extend(pair);
            args.extend([kind, units(c.limit), c.window.millis(), units(c.cost)]);
        }
        let got: Result<Vec<i64>, RedisError> = self.stores.run(&ACQUIRE, &keys, &args).await;
        match got.as_deref() {
            Ok([1]) => Decision::Allowed(Grant {
                charged: checks.into_iter().map(|c| (c, now)).collect(),
            }),
            Ok(&[0, index, remaining, reset]) => Decision::Refused(Refused {
                index: usize::try_from(index).unwrap_or(0),
                limit: checks.get(index as usize).map_or(0, |c| c.limit),
                remaining: u64::try_from(remaining).unwrap_or(0),
                reset_unix_ms: reset,
            }),
            Ok(other) => self.unreachable(checks, now, &format!("unexpected reply {other:?}")),
            Err(e) => self.unreachable(checks, now, &e.to_string()),
        }
    }

    fn unreachable(&self, checks: Vec<Check>, now: i64, why: &str) -> Decision {
        match self.stores.options.fail_mode {
            FailMode::Closed => {
                tracing::warn!(error = why, "redis rate limits: refusing (fail closed)");
                Decision::Unavailable(Arc::from(why))
            }
            FailMode::Open => {
                tracing::warn!(
                    error = why,
                    "redis rate limits: deciding locally (fail open)"
                );
                self.local.decide(checks, now)
            }
        }
    }
}

impl RateLimitStore for RedisRateLimitStore {
    fn acquire(&self, checks: Vec<Check>, now_unix_ms: i64) -> StoreFuture<Decision> {
        Box::pin(self.clone().acquire_now(checks, now_unix_ms))
    }

    fn refund(&self, grant: Grant) {
        let stores = self.stores.clone();
        let local = self.local.clone();
        self.stores.enqueue(async move {
            for (check, at) in grant.charged {
                let (kind, keys) = keys_of(&stores, &check, at);
                let args = [kind, units(check.cost), at];
                // A refund is worth a few retries, not a long queue: the window moves on anyway.
                let give_up = stores.options.call_timeout * 4;
                stores.run_retrying(&REFUND, &keys, &args, give_up).await;
                // Charges made locally while Redis was away are given back there too.
                local.refund(Grant {
                    charged: vec![(check, at)],
                });
            }
        });
    }

    fn used(&self, check: &Check, now_unix_ms: i64) -> StoreFuture<u64> {
        let this = self.clone();
        let check = check.clone();
        Box::pin(async move {
            let (kind, keys) = keys_of(&this.stores, &check, now_unix_ms);
            let args = [now_unix_ms, kind, check.window.millis()];
            match this.stores.run::<i64>(&USED, &keys, &args).await {
                Ok(n) => u64::try_from(n).unwrap_or(0),
                Err(_) => this.local.used(&check, now_unix_ms).await,
            }
        })
    }
}
