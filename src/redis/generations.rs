//! [`RedisGenerationStore`]: generation records in Redis, so any replica answers
//! `GET /api/v1/generation?id=`.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use super::{RedisError, RedisStores};
use crate::usage_meter::{CallerKey, GenerationRecord, GenerationSink};

/// Records written per round trip (one pipeline) at most.
const BATCH: usize = 64;
/// The longest id looked up (longer ones are never stored: a miss without a call).
const MAX_ID: usize = 256;

/// A [`GenerationSink`] that keeps each record in Redis for a bounded time, and
/// [`get`](Self::get) to read one back from any replica.
///
/// * One record is one string key `{prefix}:gen:{<id>}` holding
///   `{"caller": <caller key or null>, "data": <GenerationRecord::to_openrouter_json>}`: the
///   object OpenRouter's `GET /api/v1/generation` serves under `data`
///   (<https://openrouter.ai/docs/api/reference/overview>), plus who may read it.
/// * **Retention**: `SET … PX` [`ttl`](Self::ttl), default 1 hour; Redis drops it after that.
/// * [`record`](GenerationSink::record) never waits: the record goes into a bounded channel
///   ([`queue_capacity`](Self::with_queue_capacity), default 10,000) drained by a background task
///   that writes up to 64 records per round trip (a pipeline). A full queue drops the record,
///   counted by [`dropped`](Self::dropped); a failed write is logged and counted there too
///   (never retried).
#[derive(Clone)]
pub struct RedisGenerationStore {
    stores: RedisStores,
    tx: mpsc::Sender<Msg>,
    ttl: Duration,
    dropped: Arc<AtomicU64>,
}

/// A generation record read back from Redis.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct StoredGeneration {
    /// The caller that made it, if the request carried a [`CallerKey`].
    pub caller: Option<CallerKey>,
    /// The record in OpenRouter's `/api/v1/generation` shape (the object under `data`).
    pub data: Value,
}

impl fmt::Debug for RedisGenerationStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisGenerationStore")
            .field("ttl", &self.ttl)
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

impl RedisGenerationStore {
    /// Default retention.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

    pub(super) fn new(stores: RedisStores, ttl: Duration, queue: usize) -> Self {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let ttl = ttl.max(Duration::from_millis(1));
        let dropped = Arc::new(AtomicU64::new(0));
        tokio::spawn(drain(stores.clone(), rx, ttl, dropped.clone()));
        RedisGenerationStore {
            stores,
            tx,
            ttl,
            dropped,
        }
    }

    /// A store with the same connection and `capacity` records of queue (a new background task).
    pub fn with_queue_capacity(&self, capacity: usize) -> Self {
        Self::new(self.stores.clone(), self.ttl, capacity)
    }

    /// The same store with records kept for `ttl` (a new background task).
    pub fn with_ttl(&self, ttl: Duration) -> Self {
        Self::new(self.stores.clone(), ttl, self.tx.max_capacity())
    }

    /// How long a record is kept.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Records lost: the queue was full, or their write failed.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The record `id`, if Redis still holds it; `Ok(None)` for an unknown id.
    pub async fn get(&self, id: &str) -> Result<Option<StoredGeneration>, RedisError> {
        if id.len() > MAX_ID {
            return Ok(None);
        }
        let raw: Option<Vec<u8>> = self
            .stores
            .query(redis::cmd("GET").arg(key(&self.stores, id)))
            .await?;
        Ok(raw.and_then(|raw| decode(&raw)))
    }

    /// Waits until every record queued so far has been written (or given up).
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// `{prefix}:gen:{<id>}`.
fn key(stores: &RedisStores, id: &str) -> String {
    format!("{}:gen:{{{id}}}", stores.options.key_prefix)
}

fn encode(record: &GenerationRecord) -> Vec<u8> {
    let caller = record.key.as_ref().map(|k| k.as_str());
    serde_json::to_vec(&json!({ "caller": caller, "data": record.to_openrouter_json() }))
        .unwrap_or_default()
}

fn decode(raw: &[u8]) -> Option<StoredGeneration> {
    let mut v: Value = serde_json::from_slice(raw).ok()?;
    let caller = v.get("caller")?.as_str().map(CallerKey::new);
    let data = v.get_mut("data")?.take();
    data.is_object()
        .then_some(StoredGeneration { caller, data })
}

/// What the queue carries: a record to write, or a flush to answer once everything before it
/// was written.
enum Msg {
    Record(Arc<GenerationRecord>),
    Flush(oneshot::Sender<()>),
}

/// The background writer: batches of up to [`BATCH`] records, one pipeline each.
async fn drain(
    stores: RedisStores,
    mut rx: mpsc::Receiver<Msg>,
    ttl: Duration,
    dropped: Arc<AtomicU64>,
) {
    let px = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let mut pipe = redis::pipe();
        let mut writes = 0u64;
        let mut flushes = Vec::new();
        for msg in batch.drain(..) {
            let r = match msg {
                Msg::Record(r) => r,
                Msg::Flush(reply) => {
                    flushes.push(reply);
                    continue;
                }
            };
            pipe.cmd("SET")
                .arg(key(&stores, &r.id))
                .arg(encode(&r))
                .arg("PX")
                .arg(px)
                .ignore();
            writes += 1;
        }
        if writes > 0 {
            let mut conn = stores.conn.clone();
            if let Err(e) = stores.bounded(pipe.query_async::<()>(&mut conn)).await {
                tracing::warn!(error = %e, records = writes, "redis generations: write lost");
                dropped.fetch_add(writes, Ordering::Relaxed);
            }
        }
        for reply in flushes {
            let _ = reply.send(());
        }
    }
}

impl GenerationSink for RedisGenerationStore {
    fn record(&self, record: &Arc<GenerationRecord>) {
        if self.tx.try_send(Msg::Record(record.clone())).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}
