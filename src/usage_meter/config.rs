//! The configuration a [`UsageMeterLayer`](super::UsageMeterLayer) builds and every request of its
//! services shares.
//!
//! Imports `ledger` and `record` only.

use std::fmt;
use std::sync::Arc;

use super::ledger::Ledger;
use super::record::GenerationSink;
use crate::clock::{SharedClock, SystemClock};
use crate::stats::Stats;

/// Default of [`UsageMeterLayer::json_limit`](super::UsageMeterLayer::json_limit) (documented there).
pub(crate) const DEFAULT_JSON_LIMIT: usize = 16 * 1024 * 1024;

/// The layer's configuration, shared by every request.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) ledger: Option<Arc<dyn Ledger>>,
    pub(crate) stats: Option<Stats>,
    pub(crate) sinks: Vec<Arc<dyn GenerationSink>>,
    pub(crate) clock: SharedClock,
    pub(crate) default_max_tokens: u64,
    pub(crate) rewrite: bool,
    pub(crate) json_limit: usize,
    /// Bytes of prompt / completion text recorded on the request span (0: none, the default).
    pub(crate) content_limit: usize,
}

impl Default for Config {
    /// No budgets, statistics or sinks, the system clock, 4096 output tokens assumed, rewriting on.
    fn default() -> Self {
        Config {
            ledger: None,
            stats: None,
            sinks: Vec::new(),
            clock: Arc::new(SystemClock),
            default_max_tokens: 4096,
            rewrite: true,
            json_limit: DEFAULT_JSON_LIMIT,
            content_limit: 0,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UsageMeterConfig")
            .field("ledger", &self.ledger.is_some())
            .field("stats", &self.stats.is_some())
            .field("sinks", &self.sinks.len())
            .field("default_max_tokens", &self.default_max_tokens)
            .field("rewrite", &self.rewrite)
            .field("json_limit", &self.json_limit)
            .field("content_limit", &self.content_limit)
            .finish()
    }
}
