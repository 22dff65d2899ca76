//! The catalog (work in progress).
mod money;
pub use money::{PriceError, Usd};
