//! Budgets: spend per caller key and period, with atomic reservations.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::catalog::Usd;
use crate::clock::{Clock, SharedClock};

/// The caller a request is billed to, inserted into the request extensions by the embedding service
/// (its authentication). Requests without one are metered but not budgeted.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallerKey(pub Arc<str>);

impl CallerKey {
    /// A key named `name`.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        CallerKey(name.into())
    }

    /// The key's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CallerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A budget period, calendar-aligned in UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Period {
    /// From 00:00 UTC.
    Day,
    /// From Monday 00:00 UTC.
    Week,
    /// From the 1st of the month, 00:00 UTC.
    Month,
    /// Since the key was created: never resets.
    Total,
}

impl Period {
    /// OpenRouter's `limit_reset` name (`"daily"`, `"weekly"`, `"monthly"`; `None` for [`Period::Total`]).
    pub fn reset_name(self) -> Option<&'static str> {
        match self {
            Period::Day => Some("daily"),
            Period::Week => Some("weekly"),
            Period::Month => Some("monthly"),
            Period::Total => None,
        }
    }

    /// The start (Unix milliseconds) of the period containing `unix_millis`.
    pub fn start(self, unix_millis: i64) -> i64 {
        const DAY: i64 = 86_400_000;
        let day = unix_millis.div_euclid(DAY);
        match self {
            Period::Day => day * DAY,
            // 1970-01-01 was a Thursday: Monday is 3 days before.
            Period::Week => (day - (day + 3).rem_euclid(7)) * DAY,
            Period::Month => {
                let (y, m, _) = civil_from_days(day);
                days_from_civil(y, m, 1) * DAY
            }
            Period::Total => i64::MIN,
        }
    }
}

/// (year, month 1..=12, day 1..=31) of a day count since 1970-01-01 (H. Hinnant's algorithm).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The limits of one key. Unset limits do not apply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyLimits {
    /// Limit per UTC day.
    pub day: Option<Usd>,
    /// Limit per UTC week (from Monday).
    pub week: Option<Usd>,
    /// Limit per UTC month.
    pub month: Option<Usd>,
    /// Limit over the key's lifetime.
    pub total: Option<Usd>,
    /// Largest reservation a single request may make.
    pub per_request: Option<Usd>,
}

impl KeyLimits {
    /// No limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the limit of `period`.
    #[must_use]
    pub fn limit(mut self, period: Period, amount: Usd) -> Self {
        *self.slot(period) = Some(amount);
        self
    }

    /// Sets the per-request cap.
    #[must_use]
    pub fn per_request(mut self, amount: Usd) -> Self {
        self.per_request = Some(amount);
        self
    }

    fn slot(&mut self, period: Period) -> &mut Option<Usd> {
        match period {
            Period::Day => &mut self.day,
            Period::Week => &mut self.week,
            Period::Month => &mut self.month,
            Period::Total => &mut self.total,
        }
    }

    pub(crate) fn get(&self, period: Period) -> Option<Usd> {
        match period {
            Period::Day => self.day,
            Period::Week => self.week,
            Period::Month => self.month,
            Period::Total => self.total,
        }
    }
}

/// An amount held against a key's limits until the request settles.
///
/// Hand it back exactly once, to [`Ledger::settle`] or [`Ledger::release`]; the meter does so even
/// when the response is dropped.
#[derive(Debug, PartialEq, Eq)]
pub struct Reservation {
    key: CallerKey,
    amount: Usd,
    unix_millis: i64,
    id: u64,
}

impl Reservation {
    /// A reservation of `amount` for `key`, made at `unix_millis`; `id` is the ledger's own handle
    /// (for ledgers implemented outside this crate).
    pub fn new(key: CallerKey, amount: Usd, unix_millis: i64, id: u64) -> Self {
        Reservation {
            key,
            amount,
            unix_millis,
            id,
        }
    }

    /// The key it was made for.
    pub fn key(&self) -> &CallerKey {
        &self.key
    }

    /// The amount held.
    pub fn amount(&self) -> Usd {
        self.amount
    }

    /// When it was made (Unix milliseconds); its spend counts in the periods containing this time.
    pub fn unix_millis(&self) -> i64 {
        self.unix_millis
    }

    /// The ledger's handle.
    pub fn id(&self) -> u64 {
        self.id
    }
}

/// Why a reservation was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Refusal {
    /// The limit that would be crossed (`None`: the per-request cap).
    pub period: Option<Period>,
    /// That limit.
    pub limit: Usd,
    /// What remained of it (spent and outstanding reservations deducted).
    pub remaining: Usd,
    /// What the request asked to reserve.
    pub requested: Usd,
    /// Set when the ledger could not decide at all (its store is unreachable and fails closed):
    /// why. The meter answers 503 then, not 402.
    pub unavailable: Option<Arc<str>>,
}

impl Refusal {
    /// The refusal of a ledger that could not reach its store: nothing is let through uncounted.
    pub fn unavailable(requested: Usd, why: impl Into<Arc<str>>) -> Self {
        Refusal {
            period: None,
            limit: Usd::ZERO,
            remaining: Usd::ZERO,
            requested,
            unavailable: Some(why.into()),
        }
    }

    /// The refusal of a reservation over `limits`' per-request cap, if it is.
    pub(crate) fn over_per_request(limits: &KeyLimits, amount: Usd) -> Option<Self> {
        let cap = limits.per_request?;
        (amount > cap).then_some(Refusal {
            period: None,
            limit: cap,
            remaining: cap,
            requested: amount,
            unavailable: None,
        })
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(why) = &self.unavailable {
            return write!(f, "the budget ledger is unavailable: {why}");
        }
        match self.period {
            Some(p) => write!(
                f,
                "reserving {} would cross the {:?} limit of {} ({} remaining)",
                self.requested, p, self.limit, self.remaining
            ),
            None => write!(
                f,
                "reserving {} exceeds the per-request cap of {}",
                self.requested, self.limit
            ),
        }
    }
}

impl std::error::Error for Refusal {}

/// What `/api/v1/key` reports about a key (<https://openrouter.ai/docs/api/reference/limits>).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyUsage {
    /// The most restrictive configured limit (the one with the least remaining), if any.
    pub limit: Option<Usd>,
    /// What remains of it.
    pub limit_remaining: Option<Usd>,
    /// Its reset interval: `"daily"`, `"weekly"`, `"monthly"`, or `None` (lifetime limit or none).
    pub limit_reset: Option<&'static str>,
    /// Settled spend since the key was first seen.
    pub usage: Usd,
    /// Settled spend in the current UTC day.
    pub usage_daily: Usd,
    /// Settled spend in the current UTC week (from Monday).
    pub usage_weekly: Usd,
    /// Settled spend in the current UTC month.
    pub usage_monthly: Usd,
    /// Outstanding reservations.
    pub reserved: Usd,
}

/// A boxed, `Send` future: what the async methods of [`Ledger`] return.
pub type LedgerFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A store of spend per caller key, checked before a request and settled after it.
///
/// # Async reservations, synchronous settlement
///
/// [`reserve`](Ledger::reserve) and [`usage`](Ledger::usage) return boxed futures so that a remote
/// store (Redis, a database) can implement them; the in-memory ledger returns ready futures. Boxed
/// futures keep the trait object-safe (the meter holds an `Arc<dyn Ledger>`) at the cost of one
/// allocation per request.
///
/// [`settle`](Ledger::settle) and [`release`](Ledger::release) are **synchronous and must not
/// block**: the meter calls them where the response body finishes — in `poll_frame`, or in a `Drop`
/// when the client goes away — and a `Drop` cannot `.await`. The in-memory ledger applies them
/// under its lock at once. A remote store should queue them (a channel drained by its own task)
/// and apply them asynchronously; the trade-off is that its reservations stay outstanding until the
/// queue is drained, so concurrent requests see a slightly *higher* spend than settled — they may be
/// refused early, never let through late.
///
/// Reservation must be atomic: check the limits and add the reservation under one lock (or one
/// script / compare-and-swap), never check and then charge.
pub trait Ledger: Send + Sync + 'static {
    /// Holds `amount` for `key` at `unix_millis`, or refuses when `amount` plus the spend and
    /// outstanding reservations of the current periods would cross a limit, or `amount` is over the
    /// key's per-request cap.
    ///
    /// The future may be dropped unpolled or mid-way (the request was cancelled): it must then
    /// hold nothing — reserve when polled, and release what it reserved if dropped before
    /// returning it.
    fn reserve(
        &self,
        key: &CallerKey,
        amount: Usd,
        unix_millis: i64,
    ) -> LedgerFuture<Result<Reservation, Refusal>>;

    /// Replaces `reservation` by the metered cost `actual`. Must not block.
    fn settle(&self, reservation: Reservation, actual: Usd);

    /// Drops `reservation` without charge (the request failed without output). Must not block.
    fn release(&self, reservation: Reservation);

    /// The key's spend and limits at `unix_millis`.
    fn usage(&self, key: &CallerKey, unix_millis: i64) -> LedgerFuture<KeyUsage>;

    /// What [`reserve`](Ledger::reserve) would answer, when the ledger can decide at once without
    /// waiting (an in-memory ledger); `None`, the default, when it cannot (a remote store), and the
    /// meter then awaits [`reserve`](Ledger::reserve).
    ///
    /// An answer here spares the meter a boxed future and a clone of the service below it. It must
    /// be the one `reserve` would give: the same checks, the same reservation.
    fn reserve_ready(
        &self,
        key: &CallerKey,
        amount: Usd,
        unix_millis: i64,
    ) -> Option<Result<Reservation, Refusal>> {
        let _ = (key, amount, unix_millis);
        None
    }
}

#[derive(Debug, Default)]
struct Bucket {
    start: i64,
    spent: Usd,
}

impl Bucket {
    fn spent_at(&self, start: i64) -> Usd {
        if self.start == start {
            self.spent
        } else {
            Usd::ZERO
        }
    }

    fn add(&mut self, start: i64, amount: Usd) {
        if start > self.start {
            self.start = start;
            self.spent = Usd::ZERO;
        }
        if start == self.start {
            self.spent = self.spent.add(amount);
        }
    }
}

#[derive(Debug, Default)]
struct KeyState {
    total: Usd,
    day: Bucket,
    week: Bucket,
    month: Bucket,
    reserved: Usd,
}

impl KeyState {
    fn spent(&self, period: Period, unix_millis: i64) -> Usd {
        let start = period.start(unix_millis);
        match period {
            Period::Day => self.day.spent_at(start),
            Period::Week => self.week.spent_at(start),
            Period::Month => self.month.spent_at(start),
            Period::Total => self.total,
        }
    }

    fn charge(&mut self, amount: Usd, unix_millis: i64) {
        self.total = self.total.add(amount);
        self.day.add(Period::Day.start(unix_millis), amount);
        self.week.add(Period::Week.start(unix_millis), amount);
        self.month.add(Period::Month.start(unix_millis), amount);
    }
}

/// The four periods, in the order reservations check them.
pub(crate) const PERIODS: [Period; 4] = [Period::Day, Period::Week, Period::Month, Period::Total];

impl KeyUsage {
    /// The report of a key with `limits`, whose settled spend in each period is `spent(period)` and
    /// whose outstanding reservations total `reserved`.
    pub(crate) fn from_spent(
        limits: &KeyLimits,
        spent: impl Fn(Period) -> Usd,
        reserved: Usd,
    ) -> Self {
        let mut out = KeyUsage {
            usage: spent(Period::Total),
            usage_daily: spent(Period::Day),
            usage_weekly: spent(Period::Week),
            usage_monthly: spent(Period::Month),
            reserved,
            ..KeyUsage::default()
        };
        for p in PERIODS {
            if let Some(limit) = limits.get(p) {
                let remaining = limit.sub(spent(p)).max(Usd::ZERO);
                if out.limit_remaining.is_none_or(|r| remaining < r) {
                    out.limit = Some(limit);
                    out.limit_remaining = Some(remaining);
                    out.limit_reset = p.reset_name();
                }
            }
        }
        out
    }
}

/// Limits per key, and the limits of keys without their own: what a ledger checks against.
#[derive(Debug, Default)]
pub(crate) struct LimitTable {
    own: Mutex<HashMap<Arc<str>, KeyLimits>>,
    default: Mutex<KeyLimits>,
}

impl LimitTable {
    /// Replaces `key`'s limits.
    pub(crate) fn set(&self, key: Arc<str>, limits: KeyLimits) {
        if let Ok(mut l) = self.own.lock() {
            l.insert(key, limits);
        }
    }

    /// Sets `key`'s limit of `period`.
    pub(crate) fn set_one(&self, key: Arc<str>, period: Period, amount: Usd) {
        if let Ok(mut l) = self.own.lock() {
            *l.entry(key).or_default().slot(period) = Some(amount);
        }
    }

    /// Replaces the limits of keys without their own.
    pub(crate) fn set_default(&self, limits: KeyLimits) {
        if let Ok(mut d) = self.default.lock() {
            *d = limits;
        }
    }

    /// `key`'s limits (its own, else the default ones).
    pub(crate) fn of(&self, key: &str) -> KeyLimits {
        let own = self.own.lock().ok().and_then(|l| l.get(key).cloned());
        own.unwrap_or_else(|| self.default.lock().map(|d| d.clone()).unwrap_or_default())
    }
}

/// The default [`Ledger`]: spend in memory, one mutex held for O(1) work per call.
///
/// ```
/// use tower_ai_gateway::catalog::Usd;
/// use tower_ai_gateway::clock::ManualClock;
/// use tower_ai_gateway::usage_meter::{InMemoryLedger, KeyLimits, Period};
///
/// let ledger = InMemoryLedger::new(ManualClock::new(0))
///     .limit("team-a", Period::Day, Usd::parse("5")?)
///     .limits("team-b", KeyLimits::new().limit(Period::Month, Usd::parse("100")?)
///                                        .per_request(Usd::parse("0.5")?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct InMemoryLedger {
    shared: Arc<Shared>,
}

struct Shared {
    clock: SharedClock,
    limits: LimitTable,
    state: Mutex<Keys>,
    next_id: AtomicU64,
}

/// The low bits of an in-memory reservation's id: the slot of its key's state in [`Keys`].
const SLOT_BITS: u64 = 0xFFFF_FFFF;

/// The spend of every key seen: each key's state in a slot that never moves, found by name once
/// per reservation. The reservation's id carries the slot, so settling it hashes nothing.
#[derive(Default)]
struct Keys {
    slots: HashMap<Arc<str>, usize>,
    states: Vec<(Arc<str>, KeyState)>,
}

impl Keys {
    /// The slot of `key`'s state, made empty when the key is new.
    fn slot(&mut self, key: &Arc<str>) -> usize {
        if let Some(&i) = self.slots.get(key) {
            return i;
        }
        self.states.push((key.clone(), KeyState::default()));
        self.slots.insert(key.clone(), self.states.len() - 1);
        self.states.len() - 1
    }

    /// The state of the key `r` was made for: at the slot its id names when that slot is the
    /// key's (a reservation made by this ledger), else looked up by name.
    fn of(&mut self, r: &Reservation) -> &mut KeyState {
        let at = usize::try_from(r.id & SLOT_BITS).unwrap_or(usize::MAX);
        let i = match self.states.get(at) {
            Some((k, _)) if **k == *r.key.0 => at,
            _ => self.slot(&r.key.0),
        };
        &mut self.states[i].1
    }

    /// `key`'s state, if it was seen.
    fn get(&self, key: &str) -> Option<&KeyState> {
        self.slots.get(key).map(|&i| &self.states[i].1)
    }
}

impl fmt::Debug for InMemoryLedger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = self.shared.state.lock().map_or(0, |s| s.states.len());
        f.debug_struct("InMemoryLedger")
            .field("keys", &keys)
            .finish_non_exhaustive()
    }
}

impl InMemoryLedger {
    /// An empty ledger without limits; `clock` dates [`KeyUsage`] queries made through
    /// [`InMemoryLedger::usage_now`].
    pub fn new(clock: impl Clock) -> Self {
        InMemoryLedger {
            shared: Arc::new(Shared {
                clock: Arc::new(clock),
                limits: LimitTable::default(),
                state: Mutex::new(Keys::default()),
                next_id: AtomicU64::new(1),
            }),
        }
    }

    /// Sets `key`'s limit for `period`.
    #[must_use]
    pub fn limit(self, key: impl Into<Arc<str>>, period: Period, amount: Usd) -> Self {
        self.set_limit(key, period, amount);
        self
    }

    /// Replaces all of `key`'s limits.
    #[must_use]
    pub fn limits(self, key: impl Into<Arc<str>>, limits: KeyLimits) -> Self {
        self.set_limits(key, limits);
        self
    }

    /// Limits for keys that have none of their own.
    #[must_use]
    pub fn default_limits(self, limits: KeyLimits) -> Self {
        self.shared.limits.set_default(limits);
        self
    }

    /// Sets `key`'s limit for `period` at run time.
    pub fn set_limit(&self, key: impl Into<Arc<str>>, period: Period, amount: Usd) {
        self.shared.limits.set_one(key.into(), period, amount);
    }

    /// Replaces `key`'s limits at run time.
    pub fn set_limits(&self, key: impl Into<Arc<str>>, limits: KeyLimits) {
        self.shared.limits.set(key.into(), limits);
    }

    pub(crate) fn limits_of(&self, key: &str) -> KeyLimits {
        self.shared.limits.of(key)
    }

    /// Synchronous [`Ledger::reserve`].
    pub fn try_reserve(
        &self,
        key: &CallerKey,
        amount: Usd,
        unix_millis: i64,
    ) -> Result<Reservation, Refusal> {
        let limits = self.limits_of(key.as_str());
        if let Some(refusal) = Refusal::over_per_request(&limits, amount) {
            return Err(refusal);
        }
        let Ok(mut state) = self.shared.state.lock() else {
            // A poisoned lock: refuse rather than let spend through unchecked.
            return Err(Refusal::unavailable(amount, "ledger lock poisoned"));
        };
        let slot = state.slot(&key.0);
        let s = &mut state.states[slot].1;
        for p in PERIODS {
            if let Some(limit) = limits.get(p) {
                let used = s.spent(p, unix_millis).add(s.reserved);
                if used.add(amount) > limit {
                    return Err(Refusal {
                        period: Some(p),
                        limit,
                        remaining: limit.sub(used).max(Usd::ZERO),
                        requested: amount,
                        unavailable: None,
                    });
                }
            }
        }
        s.reserved = s.reserved.add(amount);
        // A sequence number above the slot; bit 63 stays clear (`RedisLedger` marks its local
        // reservations with it).
        let seq = self.shared.next_id.fetch_add(1, Ordering::Relaxed) & 0x7FFF_FFFF;
        let id = seq << 32 | (slot as u64 & SLOT_BITS);
        Ok(Reservation::new(key.clone(), amount, unix_millis, id))
    }

    /// [`Ledger::usage`] at the ledger clock's now, synchronously.
    pub fn usage_now(&self, key: &CallerKey) -> KeyUsage {
        self.usage_at(key, self.shared.clock.unix_millis())
    }

    /// Synchronous [`Ledger::usage`].
    pub fn usage_at(&self, key: &CallerKey, unix_millis: i64) -> KeyUsage {
        let limits = self.limits_of(key.as_str());
        let Ok(state) = self.shared.state.lock() else {
            return KeyUsage::default();
        };
        let empty = KeyState::default();
        let s = state.get(key.as_str()).unwrap_or(&empty);
        KeyUsage::from_spent(&limits, |p| s.spent(p, unix_millis), s.reserved)
    }

    fn finish(&self, r: Reservation, actual: Option<Usd>) {
        let Ok(mut state) = self.shared.state.lock() else {
            return;
        };
        let s = state.of(&r);
        s.reserved = s.reserved.sub(r.amount).max(Usd::ZERO);
        if let Some(actual) = actual {
            s.charge(actual.max(Usd::ZERO), r.unix_millis);
        }
    }
}

impl Ledger for InMemoryLedger {
    fn reserve(
        &self,
        key: &CallerKey,
        amount: Usd,
        unix_millis: i64,
    ) -> LedgerFuture<Result<Reservation, Refusal>> {
        // Lazy: nothing is reserved unless the future is polled, so dropping it unpolled (a
        // cancelled request) cannot leak a reservation.
        let this = self.clone();
        let key = key.clone();
        Box::pin(async move { this.try_reserve(&key, amount, unix_millis) })
    }

    fn settle(&self, reservation: Reservation, actual: Usd) {
        self.finish(reservation, Some(actual));
    }

    fn release(&self, reservation: Reservation) {
        self.finish(reservation, None);
    }

    fn usage(&self, key: &CallerKey, unix_millis: i64) -> LedgerFuture<KeyUsage> {
        Box::pin(std::future::ready(self.usage_at(key, unix_millis)))
    }

    fn reserve_ready(
        &self,
        key: &CallerKey,
        amount: Usd,
        unix_millis: i64,
    ) -> Option<Result<Reservation, Refusal>> {
        Some(self.try_reserve(key, amount, unix_millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_roll_over_and_reservations_are_atomic() {
        let day = 86_400_000;
        let t = 1_795_315_920_000; // Sunday 2026-11-22 02:52 UTC
        let l = InMemoryLedger::new(crate::clock::ManualClock::new(t))
            .limit("k", Period::Day, Usd::from_int(1))
            .limit("k", Period::Week, Usd::from_int(3));
        let k = CallerKey::new("k");
        let r = l.try_reserve(&k, Usd::from_int(1), t).unwrap();
        // The outstanding reservation counts: a second one is refused.
        let refused = l
            .try_reserve(&k, Usd::parse("0.01").unwrap(), t)
            .unwrap_err();
        assert_eq!(refused.period, Some(Period::Day));
        l.settle(r, Usd::parse("0.75").unwrap());
        assert_eq!(l.usage_at(&k, t).usage_daily, Usd::parse("0.75").unwrap());
        // Next day (Monday): the day resets, and so does the week.
        let monday = t + day;
        assert_eq!(l.usage_at(&k, monday).usage_daily, Usd::ZERO);
        assert_eq!(l.usage_at(&k, monday).usage_weekly, Usd::ZERO);
        assert_eq!(l.usage_at(&k, monday).usage, Usd::parse("0.75").unwrap());
        let r = l.try_reserve(&k, Usd::from_int(1), monday).unwrap();
        l.release(r);
        assert_eq!(l.usage_at(&k, monday).reserved, Usd::ZERO);
        assert_eq!(l.usage_at(&k, monday).usage, Usd::parse("0.75").unwrap());
    }

    /// A reservation whose id names another key's slot, or none (made by hand, or by another
    /// ledger), settles on its own key all the same.
    #[test]
    fn settling_finds_the_key_whatever_the_id() {
        let l = InMemoryLedger::new(crate::clock::ManualClock::new(0));
        let (a, b) = (CallerKey::new("a"), CallerKey::new("b"));
        let ra = l.try_reserve(&a, Usd::from_int(1), 0).unwrap();
        let rb = l.try_reserve(&b, Usd::from_int(2), 0).unwrap();
        l.settle(
            Reservation::new(b.clone(), rb.amount(), 0, ra.id()),
            Usd::from_int(2),
        );
        let rb = l.try_reserve(&b, Usd::from_int(3), 0).unwrap();
        l.release(Reservation::new(b.clone(), rb.amount(), 0, u64::MAX));
        l.settle(ra, Usd::from_int(1));
        let (ua, ub) = (l.usage_at(&a, 0), l.usage_at(&b, 0));
        assert_eq!((ua.usage, ua.reserved), (Usd::from_int(1), Usd::ZERO));
        assert_eq!((ub.usage, ub.reserved), (Usd::from_int(2), Usd::ZERO));
    }

    #[test]
    fn period_starts() {
        // 2026-11-22 02:52 UTC is a Sunday.
        let t = 1_795_315_920_000;
        assert_eq!(Period::Day.start(t), 1_795_305_600_000); // 2026-11-22 00:00
        assert_eq!(Period::Week.start(t), 1_794_787_200_000); // Mon 2026-11-16
        assert_eq!(Period::Month.start(t), 1_793_491_200_000); // 2026-11-01
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }
}
