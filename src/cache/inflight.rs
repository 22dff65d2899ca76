//! Coalescing of concurrent identical misses: the first one calls upstream, the others wait for
//! its answer.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use super::key::CacheKey;
use super::store::CachedResponse;

/// What a waiting request gets: the leader's stored answer, or `None` (not cacheable, failed,
/// dropped) and it calls upstream itself.
pub(crate) type Outcome = Option<Arc<CachedResponse>>;

/// A boxed wait for the leader.
pub(crate) type Wait = Pin<Box<dyn Future<Output = Outcome> + Send + 'static>>;

/// The misses in flight, by key.
#[derive(Clone, Default)]
pub(crate) struct Inflight {
    map: Arc<Mutex<HashMap<CacheKey, watch::Receiver<Outcome>>>>,
}

/// Joining the misses in flight.
pub(crate) enum Join {
    /// No identical miss is in flight: this one calls upstream.
    Leader(Lead),
    /// One is: wait for it.
    Follower(Wait),
}

impl Inflight {
    fn lock(&self) -> MutexGuard<'_, HashMap<CacheKey, watch::Receiver<Outcome>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Leads the miss of `key`, or follows the one in flight.
    pub(crate) fn join(&self, key: &CacheKey) -> Join {
        let mut map = self.lock();
        if let Some(rx) = map.get(key) {
            let mut rx = rx.clone();
            return Join::Follower(Box::pin(async move {
                rx.wait_for(Option::is_some)
                    .await
                    .ok()
                    .and_then(|v| v.clone())
            }));
        }
        let (tx, rx) = watch::channel(None);
        map.insert(key.clone(), rx);
        Join::Leader(Lead {
            inflight: self.clone(),
            key: key.clone(),
            tx: Some(tx),
        })
    }

    /// The number of misses in flight.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// The leading miss of a key. Finishing it (or dropping it) releases the followers.
pub(crate) struct Lead {
    inflight: Inflight,
    key: CacheKey,
    tx: Option<watch::Sender<Outcome>>,
}

impl Lead {
    /// Hands `outcome` to the followers.
    pub(crate) fn finish(mut self, outcome: Outcome) {
        self.release(outcome);
    }

    fn release(&mut self, outcome: Outcome) {
        if let Some(tx) = self.tx.take() {
            // Out of the map first: a request arriving from now on reads the store instead.
            self.inflight.lock().remove(&self.key);
            if outcome.is_some() {
                let _ = tx.send(outcome);
            }
        }
    }
}

impl Drop for Lead {
    fn drop(&mut self) {
        self.release(None);
    }
}

impl fmt::Debug for Lead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lead").field("key", &self.key).finish()
    }
}

impl fmt::Debug for Inflight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inflight")
            .field("keys", &self.lock().len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn followers_get_the_leaders_answer_or_go_on() {
        let inflight = Inflight::default();
        let key = CacheKey::new("k", "m", "/e", false, b"{}");
        let Join::Leader(lead) = inflight.join(&key) else {
            panic!("first is the leader")
        };
        let Join::Follower(wait) = inflight.join(&key) else {
            panic!("second follows")
        };
        drop(lead);
        assert!(
            wait.await.is_none(),
            "a dropped leader releases with nothing"
        );
        assert_eq!(inflight.len(), 0);

        let Join::Leader(lead) = inflight.join(&key) else {
            panic!("leader again")
        };
        let Join::Follower(wait) = inflight.join(&key) else {
            panic!("follower")
        };
        let entry = Arc::new(CachedResponse {
            headers: http::HeaderMap::new(),
            frames: vec![],
            source_id: None,
            created: None,
            stored_at_ms: 0,
            ttl: std::time::Duration::from_secs(1),
            streamed: false,
            extensions: http::Extensions::new(),
        });
        lead.finish(Some(entry.clone()));
        assert!(Arc::ptr_eq(&wait.await.unwrap(), &entry));
        assert_eq!(inflight.len(), 0);
    }
}
