use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use super::KeepAlive;

/// How long a streamed request waits for its answer before the head and a first comment are sent.
pub const DEFAULT_DELAY: Duration = Duration::from_secs(1);

/// The time between two comments after the first.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(3);

/// The comment sent, as OpenRouter sends it.
pub const KEEP_ALIVE_COMMENT: &[u8] = b": OPENROUTER PROCESSING\n\n";

/// Layer that keeps a streamed request's connection warm until its first content (see the
/// [module docs](super)).
#[derive(Clone)]
#[must_use]
pub struct KeepAliveLayer {
    pub(crate) config: Arc<Config>,
}

#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) enabled: bool,
    pub(crate) delay: Duration,
    pub(crate) interval: Duration,
}

impl KeepAliveLayer {
    /// Comments after [`DEFAULT_DELAY`], then every [`DEFAULT_INTERVAL`].
    pub fn new() -> Self {
        KeepAliveLayer {
            config: Arc::new(Config {
                enabled: true,
                delay: DEFAULT_DELAY,
                interval: DEFAULT_INTERVAL,
            }),
        }
    }

    /// A layer that only forwards: every answer waits for its first content.
    pub fn disabled() -> Self {
        let mut layer = Self::new();
        layer.edit(|c| c.enabled = false);
        layer
    }

    /// How long a streamed request waits for its answer before the head and the first comment go
    /// out (at least 1 ms).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.edit(|c| c.delay = delay.max(Duration::from_millis(1)));
        self
    }

    /// The time between two comments (at least 1 ms).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.edit(|c| c.interval = interval.max(Duration::from_millis(1)));
        self
    }

    fn edit(&mut self, f: impl FnOnce(&mut Config)) {
        let mut config = Config {
            enabled: self.config.enabled,
            delay: self.config.delay,
            interval: self.config.interval,
        };
        f(&mut config);
        self.config = Arc::new(config);
    }
}

impl Default for KeepAliveLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for KeepAliveLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeepAliveLayer")
            .field("enabled", &self.config.enabled)
            .field("delay", &self.config.delay)
            .field("interval", &self.config.interval)
            .finish()
    }
}

impl<S> Layer<S> for KeepAliveLayer {
    type Service = KeepAlive<S>;

    fn layer(&self, inner: S) -> Self::Service {
        KeepAlive {
            inner,
            config: self.config.clone(),
        }
    }
}
