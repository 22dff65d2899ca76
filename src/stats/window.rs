//! Rotating windows: a ring of sub-window histograms with a running total, and a ring of counters.
//!
//! Time is in milliseconds since the owning [`Stats`](super::Stats) was created. A window of `n`
//! slots of `slot_ms` covers the current slot and the `n - 1` before it.

use super::histogram::Histogram;

/// The four routing percentiles as quantiles, for latency (`pXX` = XX % at or below).
const LATENCY_QS: [f64; 4] = [0.5, 0.75, 0.9, 0.99];
/// For throughput, `pXX` is the value that XX % of requests reach *at least*.
const THROUGHPUT_QS: [f64; 4] = [0.5, 0.25, 0.1, 0.01];

/// Which way percentiles are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Lower is better (latency): `pXX` is the XX-th percentile.
    AtMost,
    /// Higher is better (throughput): `pXX` is the (100 − XX)-th percentile.
    AtLeast,
}

/// A rolling histogram: `n` slot histograms plus their running sum, so a query reads one histogram
/// and rotation subtracts the expiring slot. The four percentiles are cached until the next change.
#[derive(Debug)]
pub(crate) struct HistogramWindow {
    slot_ms: u64,
    slots: Box<[Histogram]>,
    sum: Histogram,
    head: u64,
    direction: Direction,
    cache: Option<[f64; 4]>,
}

impl HistogramWindow {
    pub(crate) fn new(slot_ms: u64, slots: usize, direction: Direction) -> Self {
        let slots = slots.max(1);
        HistogramWindow {
            slot_ms: slot_ms.max(1),
            slots: (0..slots).map(|_| Histogram::new()).collect(),
            sum: Histogram::new(),
            head: 0,
            direction,
            cache: None,
        }
    }

    fn len(&self) -> u64 {
        self.slots.len() as u64
    }

    /// Moves the head to the slot of `t_ms`, expiring what falls out.
    fn advance(&mut self, t_ms: u64) {
        self.advance_to(t_ms / self.slot_ms);
    }

    /// Moves the head to `slot`, expiring what falls out.
    fn advance_to(&mut self, slot: u64) {
        if slot <= self.head {
            return;
        }
        let gap = slot - self.head;
        if gap >= self.len() {
            if self.sum.total() != 0 {
                self.slots.iter_mut().for_each(Histogram::clear);
                self.sum.clear();
                self.cache = None;
            }
        } else {
            let n = self.len();
            for s in self.head + 1..=slot {
                let h = &mut self.slots[(s % n) as usize];
                if h.total() != 0 {
                    self.sum.sub(h);
                    h.clear();
                    self.cache = None;
                }
            }
        }
        self.head = slot;
    }

    /// Records `value` at `t_ms`. Samples older than the window are dropped; NaN is ignored.
    #[cfg(test)]
    pub(crate) fn record(&mut self, t_ms: u64, value: f64) {
        if value.is_nan() {
            return;
        }
        self.record_bucket(t_ms, super::histogram::bucket_of(value));
    }

    /// Records a sample of bucket `b` (from `bucket_of`) at `t_ms`, dropped if older than the
    /// window: a value whose bucket was computed once for several windows.
    pub(crate) fn record_bucket(&mut self, t_ms: u64, b: usize) {
        let slot = t_ms / self.slot_ms;
        self.advance_to(slot);
        if slot + self.len() <= self.head {
            return;
        }
        let n = self.len();
        self.slots[(slot % n) as usize].record_bucket(b);
        self.sum.record_bucket(b);
        self.cache = None;
    }

    /// Number of samples in the window at `t_ms`.
    #[cfg(test)]
    pub(crate) fn count(&mut self, t_ms: u64) -> u64 {
        self.advance(t_ms);
        self.sum.total()
    }

    /// p50, p75, p90, p99 at `t_ms`, or `None` with fewer than `min_samples` (and at least one).
    pub(crate) fn percentiles(&mut self, t_ms: u64, min_samples: u64) -> Option<[f64; 4]> {
        self.advance(t_ms);
        if self.sum.total() < min_samples.max(1) {
            return None;
        }
        if let Some(c) = self.cache {
            return Some(c);
        }
        let qs = match self.direction {
            Direction::AtMost => LATENCY_QS,
            Direction::AtLeast => THROUGHPUT_QS,
        };
        let c = self.sum.quantiles(qs)?;
        self.cache = Some(c);
        Some(c)
    }
}

/// Per-slot counters of counted attempts (successes plus endpoint-caused failures).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) attempts: u32,
    pub(crate) successes: u32,
}

impl Tally {
    pub(crate) fn failures(self) -> u32 {
        self.attempts.saturating_sub(self.successes)
    }
}

/// A ring of `n` counters, each covering `slot_ms`.
#[derive(Debug)]
pub(crate) struct TallyRing {
    slot_ms: u64,
    slots: Box<[Tally]>,
    head: u64,
}

impl TallyRing {
    pub(crate) fn new(slot_ms: u64, slots: usize) -> Self {
        TallyRing {
            slot_ms: slot_ms.max(1),
            slots: vec![Tally::default(); slots.max(1)].into_boxed_slice(),
            head: 0,
        }
    }

    fn len(&self) -> u64 {
        self.slots.len() as u64
    }

    fn advance(&mut self, slot: u64) {
        if slot <= self.head {
            return;
        }
        let gap = slot - self.head;
        if gap >= self.len() {
            self.slots.iter_mut().for_each(|t| *t = Tally::default());
        } else {
            let n = self.len();
            for s in self.head + 1..=slot {
                self.slots[(s % n) as usize] = Tally::default();
            }
        }
        self.head = slot;
    }

    /// Counts one attempt at `t_ms` (dropped if older than the ring).
    pub(crate) fn record(&mut self, t_ms: u64, success: bool) {
        let slot = t_ms / self.slot_ms;
        self.advance(slot);
        if slot + self.len() <= self.head {
            return;
        }
        let n = self.len();
        let t = &mut self.slots[(slot % n) as usize];
        t.attempts = t.attempts.saturating_add(1);
        if success {
            t.successes = t.successes.saturating_add(1);
        }
    }

    /// The tallies of the current slot (at `t_ms`) and up to `count - 1` slots before it, newest first.
    pub(crate) fn recent(&mut self, t_ms: u64, count: usize) -> impl Iterator<Item = Tally> + '_ {
        self.advance(t_ms / self.slot_ms);
        let n = self.len();
        let head = self.head;
        let count = (count as u64).min(n).min(head + 1);
        (0..count).map(move |back| self.slots[((head - back) % n) as usize])
    }

    /// The sum over the whole ring at `t_ms`.
    pub(crate) fn sum(&mut self, t_ms: u64) -> Tally {
        let n = self.slots.len();
        self.recent(t_ms, n).fold(Tally::default(), |a, t| Tally {
            attempts: a.attempts.saturating_add(t.attempts),
            successes: a.successes.saturating_add(t.successes),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_window_expires_slots() {
        let mut w = HistogramWindow::new(1000, 5, Direction::AtMost);
        w.record(0, 10.0);
        w.record(2500, 20.0);
        assert_eq!(w.count(4999), 2);
        assert_eq!(w.count(5000), 1); // slot 0 left
        assert_eq!(w.count(6999), 1);
        assert_eq!(w.count(7000), 0);
        // far jump clears everything
        w.record(9000, 30.0);
        assert_eq!(w.count(1_000_000), 0);
        // samples older than the window are dropped
        w.record(1_000_000 - 10_000, 1.0);
        assert_eq!(w.count(1_000_000), 0);
    }

    #[test]
    fn tally_ring_sums_recent() {
        let mut r = TallyRing::new(10, 3);
        r.record(0, true);
        r.record(15, false);
        r.record(25, true);
        assert_eq!(
            r.sum(29),
            Tally {
                attempts: 3,
                successes: 2
            }
        );
        assert_eq!(
            r.sum(30),
            Tally {
                attempts: 2,
                successes: 1
            }
        );
        let recent: Vec<_> = r.recent(30, 2).collect();
        assert_eq!(recent.len(), 2);
        assert_eq!(recent[0], Tally::default());
        assert_eq!(r.sum(10_000), Tally::default());
    }
}
