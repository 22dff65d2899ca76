//! Injectable time.
//!
//! Monotonic time in this crate is [`tokio::time::Instant`], so tests that pause tokio's clock
//! (`#[tokio::test(start_paused = true)]`) control every timeout, window and TTL without real sleeps.
//! Wall-clock time (UTC calendar periods for budgets, UTC windows of pricing overrides) comes from a
//! [`Clock`], which tests replace with a [`ManualClock`].

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// A source of monotonic and wall-clock time.
pub trait Clock: Send + Sync + 'static {
    /// Monotonic now (tokio's clock, so it honours paused time).
    fn now(&self) -> Instant {
        Instant::now()
    }

    /// Wall-clock now as milliseconds since the Unix epoch (UTC).
    fn unix_millis(&self) -> i64;
}

/// The real clock: tokio's `Instant` and the system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn unix_millis(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// A wall clock that only moves when told to (monotonic time still follows tokio's clock).
#[derive(Clone, Default)]
pub struct ManualClock {
    millis: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock set to `unix_millis`.
    pub fn new(unix_millis: i64) -> Self {
        Self {
            millis: Arc::new(AtomicI64::new(unix_millis)),
        }
    }

    /// Moves the wall clock forward.
    pub fn advance(&self, by: Duration) {
        self.millis
            .fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }

    /// Sets the wall clock.
    pub fn set(&self, unix_millis: i64) {
        self.millis.store(unix_millis, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn unix_millis(&self) -> i64 {
        self.millis.load(Ordering::SeqCst)
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("unix_millis", &self.unix_millis())
            .finish()
    }
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// The default shared clock.
pub fn system_clock() -> SharedClock {
    Arc::new(SystemClock)
}

/// Splits Unix milliseconds into (weekday 0 = Monday, minutes since UTC midnight).
pub fn utc_weekday_and_minute(unix_millis: i64) -> (u8, u16) {
    let secs = unix_millis.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // 1970-01-01 was a Thursday (weekday 3 when Monday = 0).
    let weekday = ((days + 3).rem_euclid(7)) as u8;
    (weekday, (sod / 60) as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekday_of_known_dates() {
        // 2026-11-22 00:00 UTC is a Sunday.
        assert_eq!(utc_weekday_and_minute(1_795_305_600_000), (6, 0));
        // 1970-01-01 12:34 is a Thursday.
        assert_eq!(
            utc_weekday_and_minute((12 * 3600 + 34 * 60) * 1000),
            (3, 754)
        );
    }
}
