//! Signs of life before the first token: [`KeepAliveLayer`].
//!
//! A streamed request is answered only once its first content arrives: the fallback below holds
//! the head back until then, so that a provider failing before any content can still be replaced
//! by the next one. With a slow provider that is seconds of silence, and proxies, load balancers
//! and impatient clients may close the connection. OpenRouter keeps it warm: once a stream is
//! under way it sends the status, the headers and SSE comments (`: OPENROUTER PROCESSING`) that
//! every SSE parser ignores (<https://openrouter.ai/docs/api-reference/streaming>).
//!
//! `KeepAlive` does the same. For a request with `"stream": true` whose answer has not come within
//! [`delay`](KeepAliveLayer::delay) (1 s by default), it answers `200` with
//! `Content-Type: text/event-stream` and a comment, then another comment every
//! [`interval`](KeepAliveLayer::interval) (3 s) until the inner answer arrives:
//!
//! * a stream: its frames follow the comments, untouched;
//! * an error (every candidate failed, a budget, a timeout): the status has already been sent, so
//!   the error becomes the in-band error chunk OpenRouter sends mid-stream
//!   (<https://openrouter.ai/docs/api-reference/errors>, "Error during streaming"): a
//!   `chat.completion.chunk` with the error's `code`, `message` and `metadata` at the top level
//!   and `finish_reason: "error"`, after which the stream ends.
//!
//! Answers that come in time, and requests that are not streamed, pass through untouched (the
//! layer then costs a branch). Pre-content failover keeps working: the comments come from this
//! layer, not from a provider, so the fallback below still tries the next candidate while they
//! are sent.
//!
//! # Where it goes
//!
//! ```text
//! ModelRouting → … → RateLimit → KeepAlive → ResponseCache → UsageMeter → ProviderFallback
//! ```
//!
//! Below the routing layers, whose refusals are immediate and keep their HTTP status, and which
//! put the [`Route`](crate::route::Route) that says whether the request streams; above
//! [`UsageMeter`](crate::usage_meter), so that the meter still reads who served the request from
//! the answer's head. The early head carries `X-Generation-Id`: the layer picks the id and hands it
//! to the meter in the request's extensions ([`GenerationId`](crate::usage_meter::GenerationId)).
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use tower_ai_gateway::keep_alive::KeepAliveLayer;
//!
//! let layer = KeepAliveLayer::new()
//!     .delay(Duration::from_millis(500))
//!     .interval(Duration::from_secs(5));
//! # let _ = layer;
//! ```

mod body;
mod future;
mod layer;
mod service;

pub use body::KeepAliveBody;
pub use future::ResponseFuture;
pub use layer::{KeepAliveLayer, DEFAULT_DELAY, DEFAULT_INTERVAL, KEEP_ALIVE_COMMENT};
pub use service::KeepAlive;

#[cfg(test)]
mod tests;
