//! The catalog (work in progress).
mod key;
mod money;
pub use key::EndpointKey;
pub use money::{PriceError, Usd};
