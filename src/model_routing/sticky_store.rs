//! [`StickyStore`]: sticky sessions shared beyond one process (e.g. in Redis).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::catalog::EndpointKey;

/// What a [`StickyStore`] answers for a session: its remembered endpoints (one per model).
pub type StickyLoad = Pin<Box<dyn Future<Output = Vec<EndpointKey>> + Send + 'static>>;

/// A sticky-session table shared by several replicas, consulted by
/// [`ModelRouting`](super::ModelRouting) in addition to its in-memory table
/// ([`ModelRoutingLayer::sticky_store`](super::ModelRoutingLayer::sticky_store)).
///
/// Only requests that name a session (body `session_id`, the `x-session-id` header, or
/// `prompt_cache_key`) use it: before routing, one [`load`](Self::load) of the session's endpoints
/// (which then take precedence over the local table's); after a success, one
/// [`save`](Self::save). Stickiness by the first messages' hash stays in the local table.
/// `session` is the 64-bit hash of the session id the local table keys on too (the same on every
/// replica).
pub trait StickyStore: Send + Sync + 'static {
    /// The endpoints remembered for `session`. Must finish within a bounded time and answer
    /// nothing (an empty list) on failure: routing then uses the local table.
    fn load(&self, session: u64) -> StickyLoad;

    /// Remembers that `endpoint` served `session` (for `endpoint`'s model) and restarts the
    /// session's idle timer of `ttl`. Called where the response head arrives: must not block.
    fn save(&self, session: u64, endpoint: &EndpointKey, ttl: Duration);
}
