//! A tiny, portable pseudo-random generator (SplitMix64).
//!
//! The simulator owns its generator instead of using `rand::rngs::SmallRng` because `SmallRng` is
//! documented as non-portable across platforms and `rand` versions; the simulator promises the same
//! output for the same seed everywhere. SplitMix64 is a few arithmetic operations per draw, which
//! keeps the zero-latency path cheap, and the state is one `u64`, so bodies carry it by value.

use std::f64::consts::TAU;

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// The SplitMix64 output function: a bijective 64-bit mixer.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SimRng(u64);

impl SimRng {
    pub(crate) fn new(seed: u64) -> Self {
        SimRng(seed)
    }

    /// An independent stream for request number `counter` of profile `profile` under `seed`.
    pub(crate) fn derive(seed: u64, profile: u64, counter: u64) -> Self {
        let a = mix(profile.wrapping_add(GOLDEN));
        let b = mix(counter ^ a.rotate_left(17));
        SimRng(mix(seed ^ b))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix(self.0)
    }

    /// Uniform in `[0, 1)` with 53 bits of precision.
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `0..n` (`0` when `n == 0`), by multiply-shift (bias below 2^-32 for small `n`).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A standard normal variate by the Box-Muller transform (always two draws).
    pub(crate) fn standard_normal(&mut self) -> f64 {
        // 1 - [0, 1) is (0, 1], so the logarithm is finite.
        let u1 = 1.0 - self.next_f64();
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (TAU * u2).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_moments() {
        let mut rng = SimRng::new(7);
        let n = 20_000;
        let (mut s, mut s2) = (0.0, 0.0);
        for _ in 0..n {
            let z = rng.standard_normal();
            assert!(z.is_finite());
            s += z;
            s2 += z * z;
        }
        let mean = s / f64::from(n);
        let var = s2 / f64::from(n) - mean * mean;
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "var {var}");
    }

    #[test]
    fn derive_differs() {
        assert_ne!(SimRng::derive(1, 0, 0), SimRng::derive(1, 0, 1));
        assert_ne!(SimRng::derive(1, 0, 0), SimRng::derive(2, 0, 0));
        assert_ne!(SimRng::derive(1, 0, 0), SimRng::derive(1, 1, 0));
        assert_eq!(SimRng::derive(1, 2, 3), SimRng::derive(1, 2, 3));
    }
}
