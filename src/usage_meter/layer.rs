use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use super::config::Config;
use super::ledger::Ledger;
use super::record::GenerationSink;
use super::service::UsageMeter;
use crate::clock::Clock;
use crate::stats::Stats;

/// Layer that applies the [`UsageMeter`] middleware.
///
/// See the [module docs](super) for an example.
#[derive(Clone)]
#[must_use]
pub struct UsageMeterLayer {
    pub(crate) config: Arc<Config>,
}

impl Default for UsageMeterLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl UsageMeterLayer {
    /// A meter without budgets, statistics or sinks, on the system clock: it prices responses,
    /// adds `usage.cost` and rewrites `id` / `model` / `provider`.
    pub fn new() -> Self {
        UsageMeterLayer {
            config: Arc::new(Config::default()),
        }
    }

    fn edit(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(Arc::make_mut(&mut self.config));
        self
    }

    /// Checks and charges budgets in `ledger` for requests carrying a
    /// [`CallerKey`](super::CallerKey).
    pub fn ledger(self, ledger: impl Ledger) -> Self {
        self.edit(|c| c.ledger = Some(Arc::new(ledger)))
    }

    /// Like [`UsageMeterLayer::ledger`], with a shared ledger.
    pub fn shared_ledger(self, ledger: Arc<dyn Ledger>) -> Self {
        self.edit(|c| c.ledger = Some(ledger))
    }

    /// Feeds the served endpoint's time to first token and throughput of streamed responses to
    /// `stats`.
    pub fn stats(self, stats: Stats) -> Self {
        self.edit(|c| c.stats = Some(stats))
    }

    /// Adds a sink for generation records (several may be added).
    pub fn sink(self, sink: impl GenerationSink) -> Self {
        self.edit(|c| c.sinks.push(Arc::new(sink)))
    }

    /// The clock for `created` times, budget periods and durations (default: the system clock).
    pub fn clock(self, clock: impl Clock) -> Self {
        self.edit(|c| c.clock = Arc::new(clock))
    }

    /// Output tokens assumed by the budget reservation when neither the request
    /// (`max_tokens` / `max_completion_tokens`) nor the endpoint (`max_completion_tokens`) caps
    /// them (default 4096).
    pub fn default_max_tokens(self, tokens: u64) -> Self {
        self.edit(|c| c.default_max_tokens = tokens)
    }

    /// Whether to edit responses (`usage.cost`, `id`, `model`, `provider`, `X-Generation-Id`);
    /// default true. Off, the meter only observes.
    pub fn rewrite(self, on: bool) -> Self {
        self.edit(|c| c.rewrite = on)
    }

    /// Records prompt and completion contents on the request's `gen_ai.request` span
    /// (`gen_ai.input.messages`, `gen_ai.output.messages` in the GenAI conventions' JSON shape),
    /// each cut to `max_bytes` of text. Off (0) by default: contents are never recorded unless the
    /// operator opts in, and nothing is read for them when no subscriber listens.
    pub fn trace_content(self, max_bytes: usize) -> Self {
        self.edit(|c| c.content_limit = max_bytes)
    }

    /// Largest non-streamed body edited (default 16 MiB); larger bodies pass through unedited and are recorded with `usage_missing`.
    ///
    /// A body whose exact [`size_hint`](http_body::Body::size_hint) is within this limit (what
    /// `ProviderFallback` sends, and hyper's client for an answer with a `Content-Length`) is
    /// read whole before the response is returned — one frame edited as it came, without a
    /// copy — and the edited body reports its exact length; a body of unknown length is
    /// accumulated up to this limit, then edited.
    pub fn json_limit(self, bytes: usize) -> Self {
        self.edit(|c| c.json_limit = bytes)
    }
}

// The service's constructors live here, beside the builder they use, so that `service` does not
// import `layer` (no module cycle).
impl<S> UsageMeter<S> {
    /// Wraps `inner` with the defaults of [`UsageMeterLayer::new`]; configure a meter with the
    /// builder and [`Layer::layer`] instead.
    pub fn new(inner: S) -> Self {
        UsageMeterLayer::new().layer(inner)
    }

    /// A [`UsageMeterLayer`] with the default configuration.
    pub fn layer() -> UsageMeterLayer {
        UsageMeterLayer::new()
    }
}

impl<S> Layer<S> for UsageMeterLayer {
    type Service = UsageMeter<S>;

    fn layer(&self, inner: S) -> Self::Service {
        UsageMeter {
            inner,
            config: self.config.clone(),
        }
    }
}

impl fmt::Debug for UsageMeterLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.config.fmt(f)
    }
}
