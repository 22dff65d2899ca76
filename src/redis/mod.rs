//! Stores in Redis, so that several replicas of a gateway share one truth: budgets
//! ([`RedisLedger`]), rate-limit counters ([`RedisRateLimitStore`]), cached answers
//! ([`RedisCacheStore`]), sticky sessions ([`RedisStickyStore`]), endpoint health
//! ([`RedisHealth`]) and generation records ([`RedisGenerationStore`]). Feature `redis`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tower_ai_gateway::redis::RedisError> {
//! use tower_ai_gateway::redis::{RedisOptions, RedisStores};
//!
//! let stores = RedisStores::connect("redis://127.0.0.1:6379", RedisOptions::default()).await?;
//! let ledger = stores.ledger(); // a `Ledger` for UsageMeter
//! let limits = stores.rate_limit_store(); // a `RateLimitStore` for RateLimit
//! let cache = stores.cache_store(); // a `CacheStore` for ResponseCache
//! let sticky = stores.sticky_store(); // a `StickyStore` for ModelRouting
//! let generations = stores.generation_store(); // a `GenerationSink` for UsageMeter, and `get(id)`
//! let stats = tower_ai_gateway::Stats::default();
//! let health = stores.health(stats.clone()); // a `HealthSource` for `GatewayLayer::health`
//! health.start(); // syncs every second in the background
//! # Ok(()) }
//! ```
//!
//! # The client: the `redis` crate's `ConnectionManager`
//!
//! [`RedisStores`] holds one [`redis::aio::ConnectionManager`]: a single multiplexed connection
//! (concurrent calls are pipelined on it, no pool to size) that reconnects by itself after the
//! server goes away, shared by every store built from it. The `redis` crate is the most used Redis
//! client for Rust, maintained by the Redis organisation, and its script support
//! ([`redis::Script`]: `EVALSHA`, falling back to `EVAL` when the server lost its script cache,
//! as after a restart) is what the stores need; `fred` would also do, with a larger dependency
//! tree and a pool this crate does not need.
//!
//! # Every call is bounded
//!
//! Each call is one script (one round trip) and is given [`RedisOptions::call_timeout`]: a Redis
//! that is down or slow costs a request at most that long, never a hang. What happens then is
//! [`RedisOptions::fail_mode`]:
//!
//! * [`FailMode::Closed`] (the default): the ledger refuses the reservation and the rate-limit store
//!   refuses the request: nothing is let through that Redis did not count;
//! * [`FailMode::Open`]: the store answers from a local, in-process fallback (an
//!   [`InMemoryLedger`](crate::usage_meter::InMemoryLedger) with the same limits, an
//!   [`InMemoryRateLimitStore`](crate::rate_limit::InMemoryRateLimitStore)) and logs a warning:
//!   each replica then enforces the limits alone until Redis answers again. What is spent or
//!   counted locally stays local: it is not copied into Redis when it returns.
//!
//! Sticky sessions, the response cache, health and generation records never refuse a request:
//! when Redis does not answer they fall back to the replica's own state (see each type).
//!
//! When the server comes back, the next call reconnects; no restart is needed.
//!
//! # Keys
//!
//! Every key starts with [`RedisOptions::key_prefix`] and puts the caller key or bucket in a hash
//! tag (`gw:{alice}:ledger`), so that in Redis Cluster one script's keys share a slot.

mod cache;
mod codec;
mod generations;
mod health;
mod ledger;
mod rate_limit;
mod sticky;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub use cache::RedisCacheStore;
pub use generations::{RedisGenerationStore, StoredGeneration};
pub use health::RedisHealth;
pub use ledger::RedisLedger;
pub use rate_limit::RedisRateLimitStore;
pub use sticky::RedisStickyStore;

/// What to do when Redis does not answer within the call timeout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailMode {
    /// Refuse: budgets and rate limits let nothing through uncounted.
    #[default]
    Closed,
    /// Decide locally (per replica) and log a warning, until Redis answers again.
    Open,
}

/// Settings of [`RedisStores`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RedisOptions {
    /// Longest wait for one call (connection included); default 1 s. It counts from the moment
    /// the call is made, so it includes the time a busy runtime takes to get back to the answer:
    /// under heavy load a timeout shorter than the runtime's scheduling delay refuses requests
    /// that Redis answered in time.
    pub call_timeout: Duration,
    /// Longest wait for the first connection in [`RedisStores::connect`]; default 2 s.
    pub connect_timeout: Duration,
    /// Prefix of every key; default `"gw"`.
    pub key_prefix: Arc<str>,
    /// How long a budget reservation that was never settled (its replica crashed) stays held
    /// before it is released; default 10 minutes. Longer than any request may last.
    pub reservation_ttl: Duration,
    /// What to do when Redis is unreachable; default [`FailMode::Closed`].
    pub fail_mode: FailMode,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            call_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(2),
            key_prefix: "gw".into(),
            reservation_ttl: Duration::from_secs(600),
            fail_mode: FailMode::Closed,
        }
    }
}

impl RedisOptions {
    /// Sets [`call_timeout`](Self::call_timeout).
    #[must_use]
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// Sets [`key_prefix`](Self::key_prefix).
    #[must_use]
    pub fn key_prefix(mut self, prefix: impl Into<Arc<str>>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Sets [`reservation_ttl`](Self::reservation_ttl).
    #[must_use]
    pub fn reservation_ttl(mut self, ttl: Duration) -> Self {
        self.reservation_ttl = ttl;
        self
    }

    /// Sets [`fail_mode`](Self::fail_mode).
    #[must_use]
    pub fn fail_mode(mut self, mode: FailMode) -> Self {
        self.fail_mode = mode;
        self
    }
}

/// Why a Redis call failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum RedisError {
    /// The server's or the client's error (connection refused, bad URL, script error…).
    Redis(redis::RedisError),
    /// No answer within the call (or connect) timeout.
    Timeout(Duration),
}

impl fmt::Display for RedisError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisError::Redis(e) => write!(f, "redis: {e}"),
            RedisError::Timeout(d) => write!(f, "redis: no answer within {} ms", d.as_millis()),
        }
    }
}

impl std::error::Error for RedisError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RedisError::Redis(e) => Some(e),
            RedisError::Timeout(_) => None,
        }
    }
}

impl From<redis::RedisError> for RedisError {
    fn from(e: redis::RedisError) -> Self {
        RedisError::Redis(e)
    }
}

/// One connection to Redis, shared by every store built from it. Cheap to clone.
#[derive(Clone)]
pub struct RedisStores {
    conn: ConnectionManager,
    options: Arc<RedisOptions>,
    /// Writes that must not block their caller (settles, releases, refunds), run in order by one
    /// task on the runtime `connect` ran on.
    jobs: mpsc::UnboundedSender<Job>,
}

/// A queued write.
type Job = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

impl fmt::Debug for RedisStores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStores")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl RedisStores {
    /// Connects to `url` (`redis://host:port/db`, `rediss://` needs the `redis` crate's TLS
    /// features), waiting at most [`RedisOptions::connect_timeout`]. Must run inside a tokio
    /// runtime.
    pub async fn connect(url: &str, options: RedisOptions) -> Result<Self, RedisError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.call_timeout.min(options.connect_timeout)))
            .set_response_timeout(Some(options.call_timeout))
            // Reconnect attempts are made by the next call; each call is bounded by the timeout.
            .set_number_of_retries(1)
            .set_max_delay(options.call_timeout);
        let connect = ConnectionManager::new_with_config(client, config);
        let conn = tokio::time::timeout(options.connect_timeout, connect)
            .await
            .map_err(|_| RedisError::Timeout(options.connect_timeout))??;
        let (jobs, mut queue) = mpsc::unbounded_channel::<Job>();
        tokio::spawn(async move {
            while let Some(job) = queue.recv().await {
                job.await;
            }
        });
        Ok(RedisStores {
            conn,
            options: Arc::new(options),
            jobs,
        })
    }

    /// The options it was connected with.
    pub fn options(&self) -> &RedisOptions {
        &self.options
    }

    /// A budget ledger over this connection (no limits yet: set them as on an
    /// [`InMemoryLedger`](crate::usage_meter::InMemoryLedger)).
    pub fn ledger(&self) -> RedisLedger {
        RedisLedger::new(self.clone())
    }

    /// A rate-limit counter store over this connection.
    pub fn rate_limit_store(&self) -> RedisRateLimitStore {
        RedisRateLimitStore::new(self.clone())
    }

    /// Waits until every settle, release and refund queued so far (by any store of this
    /// connection) has been applied in Redis, or given up.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        self.enqueue(async move {
            let _ = tx.send(());
        });
        let _ = rx.await;
    }

    /// Queues `job` for the background task (in order; never blocks).
    pub(crate) fn enqueue(&self, job: impl Future<Output = ()> + Send + 'static) {
        if self.jobs.send(Box::pin(job)).is_err() {
            tracing::error!("redis stores: background queue closed; a write was dropped");
        }
    }

    /// A response-cache store over this connection.
    pub fn cache_store(&self) -> RedisCacheStore {
        RedisCacheStore::new(self.clone())
    }

    /// Generation records in Redis, kept [`RedisGenerationStore::DEFAULT_TTL`] (1 hour; see
    /// [`RedisGenerationStore::with_ttl`]). Starts its writer task: must run inside a tokio
    /// runtime.
    pub fn generation_store(&self) -> RedisGenerationStore {
        RedisGenerationStore::new(self.clone(), RedisGenerationStore::DEFAULT_TTL, 10_000)
    }

    /// Sticky sessions over this connection, for
    /// [`ModelRoutingLayer::sticky_store`](crate::model_routing::ModelRoutingLayer::sticky_store).
    pub fn sticky_store(&self) -> RedisStickyStore {
        RedisStickyStore::new(self.clone())
    }

    /// Endpoint health shared with the other replicas: `local` combined with their verdicts
    /// (see [`RedisHealth`]; call [`RedisHealth::start`] to sync in the background).
    pub fn health(&self, local: crate::stats::Stats) -> RedisHealth {
        RedisHealth::new(self.clone(), local)
    }

    /// Sends `cmd`, bounded by the call timeout.
    pub(crate) async fn query<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> Result<T, RedisError> {
        let mut conn = self.conn.clone();
        self.bounded(cmd.query_async(&mut conn)).await
    }

    /// `call`, given at most the call timeout; the client's own timeouts reported as ours.
    async fn bounded<T>(
        &self,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, RedisError> {
        let timeout = self.options.call_timeout;
        tokio::time::timeout(timeout, call)
            .await
            .map_err(|_| RedisError::Timeout(timeout))?
            .map_err(|e| {
                if e.is_timeout() {
                    RedisError::Timeout(timeout)
                } else {
                    RedisError::Redis(e)
                }
            })
    }

    /// Runs `script` until it succeeds, pausing a call timeout between tries, for at most
    /// `give_up_after`; logs what it gives up. For queued writes.
    pub(crate) async fn run_retrying(
        &self,
        script: &redis::Script,
        keys: &[String],
        args: &[i64],
        give_up_after: Duration,
    ) {
        let pause = self.options.call_timeout.max(Duration::from_millis(50));
        let deadline = tokio::time::Instant::now() + give_up_after;
        loop {
            match self.run::<redis::Value>(script, keys, args).await {
                Ok(_) => return,
                Err(e) if tokio::time::Instant::now() + pause < deadline => {
                    tracing::warn!(error = %e, "redis: queued write failed, retrying");
                    tokio::time::sleep(pause).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, keys = ?keys, "redis: queued write given up");
                    return;
                }
            }
        }
    }

    /// Runs `script` with `keys` and `args`, bounded by the call timeout.
    pub(crate) async fn run<T: redis::FromRedisValue>(
        &self,
        script: &redis::Script,
        keys: &[String],
        args: &[i64],
    ) -> Result<T, RedisError> {
        let mut invocation = script.prepare_invoke();
        for k in keys {
            invocation.key(k);
        }
        for a in args {
            invocation.arg(*a);
        }
        let mut conn = self.conn.clone();
        self.bounded(invocation.invoke_async(&mut conn)).await
    }

    /// `prefix:{tag}:name`.
    pub(crate) fn key(&self, tag: &str, name: &str) -> String {
        format!("{}:{{{}}}:{}", self.options.key_prefix, tag, name)
    }
}
