//! [`RedisLedger`]: budgets in Redis, shared by every replica.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};

use super::{FailMode, RedisError, RedisStores};
use crate::catalog::Usd;
use crate::clock::ManualClock;
use crate::usage_meter::{
    CallerKey, InMemoryLedger, KeyLimits, KeyUsage, Ledger, LedgerFuture, Period, Refusal,
    Reservation,
};

static RESERVE: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("ledger_reserve.lua")));
static FINISH: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("ledger_finish.lua")));
static USAGE: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("ledger_usage.lua")));

/// Ids of reservations the local fallback made ([`FailMode::Open`]) have this bit set.
const LOCAL: u64 = 1 << 63;
const PERIODS: [Period; 4] = [Period::Day, Period::Week, Period::Month, Period::Total];

/// A [`Ledger`] in Redis: every replica that shares the Redis shares the budgets.
///
/// * **Atomic.** A reservation is one Lua script (`EVALSHA`): it releases the key's expired
///   reservations, checks every period's limit against settled spend plus outstanding
///   reservations, and holds the amount — or refuses and holds nothing. Settling and releasing
///   are one script each.
/// * **Integers.** Amounts are stored as whole micro-dollars (10⁻⁶ USD): a reservation is rounded
///   *up* to the micro-dollar (never under-reserved), a settled cost to the *nearest* one (half
///   away from zero). Lua's numbers are doubles: exact to 2⁵³ micro-dollars (about $9 billion).
/// * **Crashed replicas.** A reservation lives in a sorted set scored by its expiry,
///   [`RedisOptions::reservation_ttl`](super::RedisOptions::reservation_ttl) (default 10 minutes)
///   after the time it was made at; the next call on the key releases it when that has passed. A
///   settle arriving later still charges the cost.
/// * **Settling never blocks.** [`settle`](Ledger::settle) and [`release`](Ledger::release) queue
///   the script for the background task of [`RedisStores`] (spawned by
///   [`RedisStores::connect`]), which retries it while Redis is away (up to the reservation
///   TTL); until it has run, the amount stays reserved, so other requests may be refused early,
///   never let through late. [`flush`](RedisLedger::flush) waits for the queue.
/// * **Cancellation.** The id is chosen before the script is sent; a reservation future dropped
///   (or timed out) after sending queues a release of that id, so nothing stays held.
///
/// Limits are configuration, held by each replica (give every replica the same), as on
/// [`InMemoryLedger`]; the spend is in Redis.
#[derive(Clone)]
pub struct RedisLedger {
    inner: Arc<Inner>,
}

struct Inner {
    stores: RedisStores,
    /// Holds the limits, and decides while Redis is away in [`FailMode::Open`].
    local: InMemoryLedger,
    next_id: AtomicU64,
}

impl fmt::Debug for RedisLedger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLedger")
            .field("stores", &self.inner.stores)
            .finish_non_exhaustive()
    }
}

/// Whole micro-dollars of `amount`, rounded with `strategy`.
fn micros(amount: Usd, strategy: RoundingStrategy) -> i64 {
    let m = amount.as_decimal() * Decimal::from(1_000_000);
    m.round_dp_with_strategy(0, strategy)
        .to_i64()
        .unwrap_or(i64::MAX)
        .max(0)
}

/// The starts of the day, week and month containing `unix_millis`.
fn starts(unix_millis: i64) -> [i64; 3] {
    [
        Period::Day.start(unix_millis),
        Period::Week.start(unix_millis),
        Period::Month.start(unix_millis),
    ]
}

impl RedisLedger {
    pub(super) fn new(stores: RedisStores) -> Self {
        let seed = rand::random::<u64>() & !LOCAL & !0xFFFF_FFFF;
        RedisLedger {
            inner: Arc::new(Inner {
                stores,
                local: InMemoryLedger::new(ManualClock::new(0)),
                next_id: AtomicU64::new(seed),
            }),
        }
    }

    /// Sets `key`'s limit for `period`.
    #[must_use]
    pub fn limit(self, key: impl Into<Arc<str>>, period: Period, amount: Usd) -> Self {
        self.inner.local.set_limit(key, period, amount);
        self
    }

    /// Replaces all of `key`'s limits.
    #[must_use]
    pub fn limits(self, key: impl Into<Arc<str>>, limits: KeyLimits) -> Self {
        self.inner.local.set_limits(key, limits);
        self
    }

    /// Limits for keys that have none of their own.
    #[must_use]
    pub fn default_limits(self, limits: KeyLimits) -> Self {
        // The local ledger shares its state with its clones: this sets the limits of `self`'s.
        let _ = self.inner.local.clone().default_limits(limits);
        self
    }

    /// Sets `key`'s limit for `period` at run time.
    pub fn set_limit(&self, key: impl Into<Arc<str>>, period: Period, amount: Usd) {
        self.inner.local.set_limit(key, period, amount);
    }

    /// Replaces `key`'s limits at run time.
    pub fn set_limits(&self, key: impl Into<Arc<str>>, limits: KeyLimits) {
        self.inner.local.set_limits(key, limits);
    }

    /// Waits until every settle and release queued so far has been applied in Redis (or given up).
    pub async fn flush(&self) {
        self.inner.stores.flush().await;
    }

    fn keys(&self, key: &CallerKey) -> [String; 3] {
        let s = &self.inner.stores;
        [
            s.key(key.as_str(), "ledger"),
            s.key(key.as_str(), "held"),
            s.key(key.as_str(), "amounts"),
        ]
    }

    /// Queues the settle (`actual`) or release (`None`) of reservation `id`; retried while Redis
    /// is away, for at most the reservation TTL.
    fn enqueue(&self, key: &CallerKey, id: u64, actual: Option<i64>, unix_millis: i64) {
        let [day, week, month] = starts(unix_millis);
        let args = [id as i64, actual.unwrap_or(-1), day, week, month];
        let keys = self.keys(key);
        let stores = self.inner.stores.clone();
        let give_up = stores.options.reservation_ttl;
        self.inner.stores.enqueue(async move {
            stores.run_retrying(&FINISH, &keys, &args, give_up).await;
        });
    }

    async fn reserve_now(
        self,
        key: CallerKey,
        amount: Usd,
        now: i64,
    ) -> Result<Reservation, Refusal> {
        let limits = self.inner.local.limits_of(key.as_str());
        if let Some(refusal) = Refusal::over_per_request(&limits, amount) {
            return Err(refusal);
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed) & !LOCAL;
        let ttl = i64::try_from(self.inner.stores.options.reservation_ttl.as_millis())
            .unwrap_or(i64::MAX / 2);
        let [day, week, month] = starts(now);
        let mut args = vec![
            now,
            micros(amount, RoundingStrategy::AwayFromZero),
            ttl,
            id as i64,
            day,
            week,
            month,
        ];
        args.extend(PERIODS.map(|p| {
            limits
                .get(p)
                .map_or(-1, |l| micros(l, RoundingStrategy::ToZero))
        }));
        let mut guard = ReleaseOnDrop {
            ledger: &self,
            key: &key,
            id,
            now,
            armed: true,
        };
        let keys = self.keys(&key);
        let outcome: Result<(i64, i64, i64), RedisError> =
            self.inner.stores.run(&RESERVE, &keys, &args).await;
        match outcome {
            Ok((1, _, _)) => {
                guard.armed = false;
                Ok(Reservation::new(key.clone(), amount, now, id))
            }
            Ok((_, index, remaining)) => {
                guard.armed = false;
                let period = PERIODS[usize::try_from(index).unwrap_or(3).min(3)];
                Err(Refusal {
                    period: Some(period),
                    limit: limits.get(period).unwrap_or(Usd::ZERO),
                    remaining: Usd::from_micros(remaining),
                    requested: amount,
                    unavailable: None,
                })
            }
            Err(e) => {
                drop(guard);
                self.unreachable(&key, amount, now, &e)
            }
        }
    }

    fn unreachable(
        &self,
        key: &CallerKey,
        amount: Usd,
        now: i64,
        e: &RedisError,
    ) -> Result<Reservation, Refusal> {
        match self.inner.stores.options.fail_mode {
            FailMode::Closed => {
                tracing::warn!(error = %e, "redis ledger: refusing (fail closed)");
                Err(Refusal::unavailable(amount, e.to_string()))
            }
            FailMode::Open => {
                tracing::warn!(error = %e, "redis ledger: deciding locally (fail open)");
                let r = self.inner.local.try_reserve(key, amount, now)?;
                Ok(Reservation::new(key.clone(), amount, now, r.id() | LOCAL))
            }
        }
    }

    async fn usage_now(self, key: CallerKey, now: i64) -> KeyUsage {
        let limits = self.inner.local.limits_of(key.as_str());
        let [day, week, month] = starts(now);
        let keys = self.keys(&key);
        let got: Result<(i64, i64, i64, i64, i64), _> = self
            .inner
            .stores
            .run(&USAGE, &keys, &[now, day, week, month])
            .await;
        match got {
            Ok((total, d, w, m, reserved)) => {
                let spent = |p: Period| {
                    Usd::from_micros(match p {
                        Period::Day => d,
                        Period::Week => w,
                        Period::Month => m,
                        _ => total,
                    })
                };
                KeyUsage::from_spent(&limits, spent, Usd::from_micros(reserved))
            }
            Err(e) => {
                tracing::warn!(error = %e, "redis ledger: usage from the local fallback");
                self.inner.local.usage_at(&key, now)
            }
        }
    }

    fn finish(&self, r: Reservation, actual: Option<Usd>) {
        if r.id() & LOCAL != 0 {
            let local = Reservation::new(
                r.key().clone(),
                r.amount(),
                r.unix_millis(),
                r.id() & !LOCAL,
            );
            match actual {
                Some(a) => self.inner.local.settle(local, a),
                None => self.inner.local.release(local),
            }
            return;
        }
        let actual = actual.map(|a| micros(a, RoundingStrategy::MidpointAwayFromZero));
        self.enqueue(r.key(), r.id(), actual, r.unix_millis());
    }
}

/// Releases a reservation whose script may have run but whose answer never came back.
struct ReleaseOnDrop<'a> {
    ledger: &'a RedisLedger,
    key: &'a CallerKey,
    id: u64,
    now: i64,
    armed: bool,
}

impl Drop for ReleaseOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.ledger.enqueue(self.key, self.id, None, self.now);
        }
    }
}

impl Ledger for RedisLedger {
    fn reserve(
        &self,
        key: &CallerKey,
        amount: Usd,
        unix_millis: i64,
    ) -> LedgerFuture<Result<Reservation, Refusal>> {
        Box::pin(self.clone().reserve_now(key.clone(), amount, unix_millis))
    }

    fn settle(&self, reservation: Reservation, actual: Usd) {
        self.finish(reservation, Some(actual));
    }

    fn release(&self, reservation: Reservation) {
        self.finish(reservation, None);
    }

    fn usage(&self, key: &CallerKey, unix_millis: i64) -> LedgerFuture<KeyUsage> {
        Box::pin(self.clone().usage_now(key.clone(), unix_millis))
    }
}
