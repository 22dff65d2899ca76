use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::profile::{SimOutcome, SimProfile};
use super::request::RecordedRequest;

/// A snapshot of one profile's counters (see [`ProfileHandle::stats`](super::ProfileHandle::stats)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SimStats {
    /// Requests routed to the profile (counted once the request body has been read).
    pub requests: u64,
    /// Requests whose response is not finished yet.
    pub in_flight: u64,
    /// Requests the simulator finished: the answer was fully produced (an error status, a
    /// non-streamed body, a connection error) or the stream reached its end, error or truncation.
    pub completed: u64,
    /// Requests the caller gave up on: the response future or the streaming body was dropped
    /// before the simulator finished.
    pub cancelled: u64,
}

impl std::ops::Add for SimStats {
    type Output = SimStats;
    fn add(self, o: SimStats) -> SimStats {
        SimStats {
            requests: self.requests + o.requests,
            in_flight: self.in_flight + o.in_flight,
            completed: self.completed + o.completed,
            cancelled: self.cancelled + o.cancelled,
        }
    }
}

/// One configured profile with its live state.
pub(crate) struct Slot {
    pub(crate) index: u64,
    pub(crate) label: String,
    pub(crate) profile: SimProfile,
    requests: AtomicU64,
    in_flight: AtomicU64,
    completed: AtomicU64,
    cancelled: AtomicU64,
    script: Mutex<VecDeque<SimOutcome>>,
    last: Mutex<Option<RecordedRequest>>,
}

impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slot")
            .field("label", &self.label)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Slot {
    pub(crate) fn new(index: u64, label: String, profile: SimProfile) -> Self {
        let script = profile.script.iter().copied().collect();
        Slot {
            index,
            label,
            profile,
            requests: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            script: Mutex::new(script),
            last: Mutex::new(None),
        }
    }

    pub(crate) fn stats(&self) -> SimStats {
        SimStats {
            requests: self.requests.load(Ordering::Acquire),
            in_flight: self.in_flight.load(Ordering::Acquire),
            completed: self.completed.load(Ordering::Acquire),
            cancelled: self.cancelled.load(Ordering::Acquire),
        }
    }

    /// Registers a new request: its ordinal (for the RNG) and its in-flight guard.
    pub(crate) fn begin(self: &Arc<Self>) -> (u64, FlightGuard) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let n = self.requests.fetch_add(1, Ordering::AcqRel);
        (
            n,
            FlightGuard {
                slot: Some(self.clone()),
            },
        )
    }

    pub(crate) fn next_scripted(&self) -> Option<SimOutcome> {
        self.script
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front()
    }

    pub(crate) fn push_script(&self, outcomes: impl IntoIterator<Item = SimOutcome>) {
        self.script
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(outcomes);
    }

    pub(crate) fn script_len(&self) -> usize {
        self.script
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub(crate) fn record(&self, req: RecordedRequest) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(req);
    }

    pub(crate) fn last(&self) -> Option<RecordedRequest> {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Keeps a request "in flight" until [`FlightGuard::complete`]; dropping it first counts a
/// cancellation.
#[derive(Debug)]
pub(crate) struct FlightGuard {
    slot: Option<Arc<Slot>>,
}

impl FlightGuard {
    pub(crate) fn complete(mut self) {
        if let Some(slot) = self.slot.take() {
            slot.completed.fetch_add(1, Ordering::AcqRel);
            slot.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            slot.cancelled.fetch_add(1, Ordering::AcqRel);
            slot.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}
