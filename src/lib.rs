//! tower-ai-gateway (work in progress).
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]

#[macro_use]
mod macros;

pub mod body;
pub mod catalog;
pub mod clock;
pub mod error;
pub mod fallback;
pub mod health;
pub mod model_routing;
pub mod route;
#[cfg(feature = "sim")]
pub mod sim;
pub mod stats;

pub use error::{Availability, AvailabilityCode, ErrorType, ExcludedBy, GatewayError};
pub use stats::{Stats, StatsConfig};

/// Alias for a type-erased error type.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
