//! [`RedisHealth`]: endpoint health shared by every replica through periodic snapshots.

use std::fmt;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::time::Instant;

use super::{RedisError, RedisStores};
use crate::catalog::EndpointKey;
use crate::hash::FastMap;
use crate::health::{HealthSource, Percentile};
use crate::stats::Stats;

static SYNC: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("health_sync.lua")));

/// Endpoint health shared by the replicas: this replica's [`Stats`], plus what the other
/// replicas reported at the last sync.
///
/// # How it is shared: periodic snapshots, never on the request path
///
/// Every [`sync_interval`](Self::sync_interval) (default 1 s) a background task (started by
/// [`start`](Self::start)) makes **one** script call: it writes this replica's *verdicts* — the
/// endpoints its own statistics find degraded (an outage, see [`Stats`]) or cooling down, with the
/// cooldown's remaining time — into one field of the hash `{prefix}:health`, and reads the other
/// replicas' fields back into a local snapshot. An entry counts for 3 × `sync_interval` after it
/// was written (Redis's clock, so replicas need no synchronised clocks), which also retires the
/// entries of replicas that stopped.
///
/// Routing reads [`HealthSource`] as usual and never waits for Redis: an endpoint is degraded
/// (or in cooldown) when the local statistics **or** any other replica's last verdict say so;
/// latency, throughput and success rate are the local ones.
///
/// **Delay.** A failure seen by replica A is in A's verdicts at A's next sync, and every other
/// replica reads it at its own next sync: the others demote the endpoint at most
/// `2 × sync_interval + call_timeout` after A's statistics did (3 s with the defaults), and stop
/// demoting it as late after A's statistics recover.
///
/// **What is shared** is each replica's verdict, not its counters: an endpoint that fails a little
/// on every replica, under each replica's own threshold, is not demoted anywhere.
///
/// **Redis away.** A failed sync empties the remote snapshot (local health only), logs one warning
/// until a sync succeeds again (then one "recovered" line), and the next tick tries again; a
/// snapshot older than `2 × sync_interval + call_timeout` is ignored even if the task stalls.
#[derive(Clone)]
pub struct RedisHealth {
    inner: Arc<Inner>,
}

struct Inner {
    stores: RedisStores,
    local: Stats,
    replica: Arc<str>,
    interval: Duration,
    key: String,
    remote: ArcSwap<Remote>,
    failing: AtomicBool,
}

/// What the other replicas said at the last sync.
#[derive(Default)]
struct Remote {
    /// Ignore the snapshot from then on.
    valid_until: Option<Instant>,
    marks: FastMap<EndpointKey, Mark>,
}

#[derive(Clone, Copy, Default)]
struct Mark {
    degraded: bool,
    cooldown_until: Option<Instant>,
}

impl fmt::Debug for RedisHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisHealth")
            .field("replica", &self.inner.replica)
            .field("sync_interval", &self.inner.interval)
            .field("remote_marks", &self.inner.remote.load().marks.len())
            .finish()
    }
}

impl RedisHealth {
    pub(super) fn new(stores: RedisStores, local: Stats) -> Self {
        let key = format!("{}:health", stores.options.key_prefix);
        let replica = format!("{:016x}", rand::random::<u64>());
        RedisHealth {
            inner: Arc::new(Inner {
                stores,
                local,
                replica: replica.into(),
                interval: Duration::from_secs(1),
                key,
                remote: ArcSwap::from_pointee(Remote::default()),
                failing: AtomicBool::new(false),
            }),
        }
    }

    fn edit(mut self, f: impl FnOnce(&mut Inner)) -> Self {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => f(inner),
            None => tracing::warn!("RedisHealth: settings changed after cloning are ignored"),
        }
        self
    }

    /// How often to sync (default 1 s, at least 10 ms). Set before cloning or [`start`](Self::start).
    #[must_use]
    pub fn sync_interval(self, interval: Duration) -> Self {
        self.edit(|i| i.interval = interval.max(Duration::from_millis(10)))
    }

    /// This replica's name in the shared hash (default: random). Two replicas must not share it.
    #[must_use]
    pub fn replica_id(self, id: impl Into<Arc<str>>) -> Self {
        let id = id.into();
        self.edit(|i| i.replica = id)
    }

    /// The local statistics it combines with the others' verdicts.
    pub fn local(&self) -> &Stats {
        &self.inner.local
    }

    /// Spawns the task that syncs every `sync_interval` (the first sync at once). The task ends
    /// when the last clone of this `RedisHealth` is dropped. Must run inside a tokio runtime.
    pub fn start(&self) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let interval = self.inner.interval;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let _ = RedisHealth { inner }.sync_now().await;
            }
        })
    }

    /// One sync now: publishes this replica's verdicts and reads the others'. Returns how many
    /// endpoints the other replicas mark. On failure the remote snapshot is emptied.
    pub async fn sync_now(&self) -> Result<usize, RedisError> {
        let inner = &self.inner;
        let verdicts = self.verdicts(Instant::now());
        let life = i64::try_from(inner.interval.as_millis().saturating_mul(3)).unwrap_or(i64::MAX);
        let mut invocation = SYNC.prepare_invoke();
        invocation
            .key(&inner.key)
            .arg(&*inner.replica)
            .arg(verdicts)
            .arg(life);
        let mut conn = inner.stores.conn.clone();
        let got: Result<Vec<(i64, String)>, _> = inner
            .stores
            .bounded(invocation.invoke_async(&mut conn))
            .await;
        match got {
            Ok(entries) => {
                let remote = self.merge(&entries, Instant::now());
                let n = remote.marks.len();
                inner.remote.store(Arc::new(remote));
                if inner.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("redis health: sync recovered");
                }
                Ok(n)
            }
            Err(e) => {
                inner.remote.store(Arc::new(Remote::default()));
                if !inner.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "redis health: sync failed, local health only");
                }
                Err(e)
            }
        }
    }

    /// This replica's verdicts: one line `degraded cooldown_ms model tag` per endpoint that is
    /// degraded or cooling down.
    fn verdicts(&self, now: Instant) -> String {
        let local = &self.inner.local;
        let mut out = String::new();
        for key in local.keys() {
            let degraded = local.is_degraded(&key, now);
            let cooldown = local.cooldown_remaining(&key, now).unwrap_or_default();
            if degraded || !cooldown.is_zero() {
                let _ = writeln!(
                    out,
                    "{} {} {}",
                    u8::from(degraded),
                    cooldown.as_millis(),
                    key.as_str()
                );
            }
        }
        out
    }

    /// The others' entries (`(age_ms, verdicts)`) as one snapshot taken at `now`.
    fn merge(&self, entries: &[(i64, String)], now: Instant) -> Remote {
        let mut marks: FastMap<EndpointKey, Mark> = FastMap::default();
        for (age, lines) in entries {
            let age = Duration::from_millis(u64::try_from(*age).unwrap_or(0));
            for line in lines.lines() {
                let Some((degraded, cooldown, key)) = parse_verdict(line) else {
                    continue;
                };
                let mark = marks.entry(key).or_default();
                mark.degraded |= degraded;
                if let Some(left) = cooldown.checked_sub(age).filter(|d| !d.is_zero()) {
                    let until = now + left;
                    mark.cooldown_until = Some(mark.cooldown_until.map_or(until, |u| u.max(until)));
                }
            }
        }
        let stale_after = self.inner.interval * 2 + self.inner.stores.options.call_timeout;
        Remote {
            valid_until: Some(now + stale_after),
            marks,
        }
    }

    /// The other replicas' mark on `key`, if the snapshot is fresh.
    fn mark(&self, key: &EndpointKey, now: Instant) -> Option<Mark> {
        let remote = self.inner.remote.load();
        if remote.marks.is_empty() || remote.valid_until.is_none_or(|v| now >= v) {
            return None;
        }
        remote.marks.get(key).copied()
    }
}

/// `degraded cooldown_ms model tag`.
fn parse_verdict(line: &str) -> Option<(bool, Duration, EndpointKey)> {
    let mut parts = line.split(' ');
    let degraded = parts.next()? == "1";
    let cooldown = Duration::from_millis(parts.next()?.parse().ok()?);
    let (model, tag) = (parts.next()?, parts.next()?);
    if parts.next().is_some() || model.is_empty() || tag.is_empty() {
        return None;
    }
    Some((degraded, cooldown, EndpointKey::new(model, tag)))
}

impl HealthSource for RedisHealth {
    fn is_degraded(&self, key: &EndpointKey, now: Instant) -> bool {
        self.inner.local.is_degraded(key, now) || self.mark(key, now).is_some_and(|m| m.degraded)
    }

    fn in_cooldown(&self, key: &EndpointKey, now: Instant) -> bool {
        self.inner.local.in_cooldown(key, now)
            || self
                .mark(key, now)
                .and_then(|m| m.cooldown_until)
                .is_some_and(|until| now < until)
    }

    fn latency_ms(&self, key: &EndpointKey, pct: Percentile, now: Instant) -> Option<f64> {
        self.inner.local.latency_ms(key, pct, now)
    }

    fn throughput(&self, key: &EndpointKey, pct: Percentile, now: Instant) -> Option<f64> {
        self.inner.local.throughput(key, pct, now)
    }

    fn success_rate(&self, key: &EndpointKey, now: Instant) -> Option<f64> {
        self.inner.local.success_rate(key, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_lines_parse_strictly() {
        let (d, c, k) = parse_verdict("1 2500 acme/chat sim/fast").unwrap();
        assert!(d);
        assert_eq!(c, Duration::from_millis(2500));
        assert_eq!(k, EndpointKey::new("acme/chat", "sim/fast"));
        assert!(parse_verdict("0 x a b").is_none());
        assert!(parse_verdict("0 1 a").is_none());
        assert!(parse_verdict("0 1 a b c").is_none());
        assert!(parse_verdict("").is_none());
    }
}
