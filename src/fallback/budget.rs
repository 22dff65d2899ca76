use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// A retry budget shared by every request through a layer (and its clones): the idea of tower's
/// `TpsBudget`, written here so the crate keeps `tower` out of its dependencies.
///
/// # Why budgets and not a maximum number of attempts?
///
/// A per-request cap (say, "at most 3 providers") still triples upstream load during an outage:
/// every request fails three times. A budget bounds retries *across* requests: each request
/// **deposits** one token, each retry **withdraws** one, and a retry is only made when the balance
/// allows. ([`ProviderFallback`](super::ProviderFallback) counts as retries only repeated attempts
/// at a provider the request already tried; see the [module docs](super#deadlines-budget-cooldowns).)
/// The balance over the sliding window
/// `ttl` is
///
/// ```text
/// min_per_sec × ttl  +  retry_ratio × requests in the window  −  retries in the window
/// ```
///
/// so in steady state retries are at most `retry_ratio` of requests plus `min_per_sec` retries per
/// second (which lets low-traffic services fail over at all).
///
/// The window is kept as 10 slots of `ttl / 10` on tokio time; the state is one small mutex.
///
/// ```
/// use std::time::Duration;
/// use tower_ai_gateway::fallback::RetryBudget;
///
/// let budget = RetryBudget::new(Duration::from_secs(10), 0, 0.5);
/// budget.deposit();
/// budget.deposit();
/// assert!(budget.withdraw()); // 2 requests × 0.5 = one retry
/// assert!(!budget.withdraw());
/// ```
#[derive(Clone)]
pub struct RetryBudget {
    shared: Arc<Shared>,
}

struct Shared {
    ttl: Duration,
    slot: Duration,
    reserve: i64,
    /// Thousandths of a retry earned per request.
    per_request: i64,
    state: Mutex<Window>,
}

const SLOTS: usize = 10;
const UNIT: i64 = 1000;

struct Window {
    /// Start of slot `current`.
    slot_start: Instant,
    /// `slot_start` plus a slot (`None` past the clock's range): before it the window need not
    /// move, which a comparison tells without measuring the time since `slot_start`.
    slot_end: Option<Instant>,
    current: usize,
    /// Per slot: deposits × per_request − withdrawals × UNIT.
    balance: [i64; SLOTS],
}

impl RetryBudget {
    /// A budget over a sliding window `ttl` (clamped to 1 s ..= 60 s), allowing `min_per_sec` retries
    /// per second regardless of traffic plus `retry_ratio` (clamped to 0 ..= 1000) retries per
    /// request.
    pub fn new(ttl: Duration, min_per_sec: u32, retry_ratio: f32) -> Self {
        let ttl = ttl.clamp(Duration::from_secs(1), Duration::from_secs(60));
        let ratio = if retry_ratio.is_finite() {
            retry_ratio.clamp(0.0, 1000.0)
        } else {
            0.0
        };
        let reserve = i64::from(min_per_sec)
            .saturating_mul(ttl.as_secs() as i64)
            .saturating_mul(UNIT);
        let slot = ttl / SLOTS as u32;
        let now = Instant::now();
        RetryBudget {
            shared: Arc::new(Shared {
                ttl,
                slot,
                reserve,
                per_request: (f64::from(ratio) * UNIT as f64).round() as i64,
                state: Mutex::new(Window {
                    slot_start: now,
                    slot_end: now.checked_add(slot),
                    current: 0,
                    balance: [0; SLOTS],
                }),
            }),
        }
    }

    /// Records a request (called once per request by the layer).
    pub fn deposit(&self) {
        self.deposit_at(Instant::now());
    }

    /// [`deposit`](Self::deposit) for a caller that has read the clock already.
    pub(crate) fn deposit_at(&self, now: Instant) {
        let s = &self.shared;
        self.with_at(now, |w| {
            w.balance[w.current] = w.balance[w.current].saturating_add(s.per_request);
        });
    }

    /// Takes one retry from the budget; false (and nothing taken) when it is empty.
    pub fn withdraw(&self) -> bool {
        let reserve = self.shared.reserve;
        self.with(|w| {
            let sum: i64 = w.balance.iter().sum();
            if reserve.saturating_add(sum) >= UNIT {
                w.balance[w.current] -= UNIT;
                true
            } else {
                false
            }
        })
    }

    /// Retries that could be withdrawn now.
    pub fn available(&self) -> u64 {
        let reserve = self.shared.reserve;
        self.with(|w| {
            let sum: i64 = w.balance.iter().sum();
            u64::try_from(reserve.saturating_add(sum) / UNIT).unwrap_or(0)
        })
    }

    fn with<R>(&self, f: impl FnOnce(&mut Window) -> R) -> R {
        self.with_at(Instant::now(), f)
    }

    /// Runs `f` on the window, its slots moved on to `now`.
    fn with_at<R>(&self, now: Instant, f: impl FnOnce(&mut Window) -> R) -> R {
        let mut w = self
            .shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // `now - slot_start >= slot` exactly when `now >= slot_start + slot` (when that exists).
        if w.slot_end.is_some_and(|end| now >= end) {
            let elapsed = now.saturating_duration_since(w.slot_start);
            let steps = (elapsed.as_nanos() / self.shared.slot.as_nanos().max(1)) as usize;
            for i in 1..=steps.min(SLOTS) {
                let at = (w.current + i) % SLOTS;
                w.balance[at] = 0;
            }
            w.current = (w.current + steps) % SLOTS;
            w.slot_start += self.shared.slot * steps.min(u32::MAX as usize) as u32;
            w.slot_end = w.slot_start.checked_add(self.shared.slot);
        }
        f(&mut w)
    }
}

impl Default for RetryBudget {
    /// 10 s window, 10 retries per second, 20 % of requests — tower's `TpsBudget` defaults.
    fn default() -> Self {
        RetryBudget::new(Duration::from_secs(10), 10, 0.2)
    }
}

impl fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBudget")
            .field("ttl", &self.shared.ttl)
            .field("available", &self.available())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn window_expires() {
        let b = RetryBudget::new(Duration::from_secs(10), 0, 1.0);
        for _ in 0..3 {
            b.deposit();
        }
        assert!(b.withdraw());
        assert_eq!(b.available(), 2);
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(b.available(), 0);
        assert!(!b.withdraw());
    }

    #[tokio::test(start_paused = true)]
    async fn reserve_refills() {
        let b = RetryBudget::new(Duration::from_secs(1), 2, 0.0);
        assert!(b.withdraw());
        assert!(b.withdraw());
        assert!(!b.withdraw());
        tokio::time::advance(Duration::from_millis(1100)).await;
        assert!(b.withdraw());
    }

    /// A deposit stays in the window until exactly `ttl` after its slot began, to the nanosecond
    /// (the window moves when a slot's end is reached, not a nanosecond later or earlier).
    #[tokio::test(start_paused = true)]
    async fn slot_boundaries_exact() {
        let b = RetryBudget::new(Duration::from_secs(10), 0, 1.0);
        b.deposit();
        tokio::time::advance(Duration::from_millis(999)).await;
        b.deposit();
        tokio::time::advance(Duration::from_millis(1)).await;
        // Slot 1 began: the second slot's first deposit.
        b.deposit();
        assert_eq!(b.available(), 3);
        tokio::time::advance(Duration::from_secs(9) - Duration::from_nanos(1)).await;
        assert_eq!(b.available(), 3);
        tokio::time::advance(Duration::from_nanos(1)).await;
        // 10 s after the start: slot 0 (two deposits) expired, slot 1's stays.
        assert_eq!(b.available(), 1);
        tokio::time::advance(Duration::from_secs(1) - Duration::from_nanos(1)).await;
        assert_eq!(b.available(), 1);
        tokio::time::advance(Duration::from_nanos(1)).await;
        assert_eq!(b.available(), 0);
    }
}
