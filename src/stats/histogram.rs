//! A fixed-size, log-bucketed histogram with a relative error bound (DDSketch-style mapping).

/// Relative accuracy: every reported quantile is within this fraction of some sample value whose
/// rank is the requested rank.
pub(crate) const RELATIVE_ACCURACY: f64 = 0.02;

/// Smallest value with its own bucket; smaller values (including zero) land in bucket 0.
pub(crate) const MIN_VALUE: f64 = 0.1;

/// Largest value with its own bucket; larger values land in the last bucket.
#[cfg(test)]
pub(crate) const MAX_VALUE: f64 = 1.0e6;

/// `(1 + a) / (1 - a)` for `a` = [`RELATIVE_ACCURACY`].
const GAMMA: f64 = (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY);

/// `1 / ln(GAMMA)`, written out because `f64::ln` is not `const` (checked by a test).
const INV_LN_GAMMA: f64 = 24.996_666_311_036_567;

/// Bucket 0 plus `ceil(ln(MAX/MIN) / ln(GAMMA))` log buckets (checked by a test).
pub(crate) const BUCKETS: usize = 404;

/// Maps a value to its bucket. Bucket `i >= 1` holds `(MIN·γ^(i-1), MIN·γ^i]`.
///
/// Callers filter NaN; anything not above `MIN_VALUE` maps to 0, `+inf` to the last bucket.
#[inline]
pub(crate) fn bucket_of(value: f64) -> usize {
    if value.is_nan() || value <= MIN_VALUE {
        return 0;
    }
    let i = ((value / MIN_VALUE).ln() * INV_LN_GAMMA).ceil();
    if i >= (BUCKETS - 1) as f64 {
        BUCKETS - 1
    } else if i >= 1.0 {
        i as usize
    } else {
        1
    }
}

/// The value reported for bucket `i`: the point whose relative distance to both bucket edges is
/// `RELATIVE_ACCURACY`.
#[inline]
pub(crate) fn value_of(bucket: usize) -> f64 {
    if bucket == 0 {
        return MIN_VALUE;
    }
    let exp = i32::try_from(bucket).unwrap_or(i32::MAX);
    MIN_VALUE * GAMMA.powi(exp) * 2.0 / (1.0 + GAMMA)
}

/// Counts per bucket. Arithmetic wraps, so `add` followed by `sub` of the same histogram always
/// restores the previous state, even in the (unrealistic) case of overflow.
#[derive(Clone)]
pub(crate) struct Histogram {
    counts: Box<[u32]>,
    /// Sums of `GROUP` consecutive buckets, so a quantile walk skips empty stretches.
    groups: Box<[u32]>,
    total: u64,
}

/// Buckets per group of the two-level walk.
const GROUP: usize = 16;
const GROUPS: usize = BUCKETS.div_ceil(GROUP);

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("total", &self.total)
            .finish_non_exhaustive()
    }
}

impl Histogram {
    pub(crate) fn new() -> Self {
        Histogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            groups: vec![0; GROUPS].into_boxed_slice(),
            total: 0,
        }
    }

    #[inline]
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    #[inline]
    pub(crate) fn record_bucket(&mut self, bucket: usize) {
        if let (Some(c), Some(g)) = (
            self.counts.get_mut(bucket),
            self.groups.get_mut(bucket / GROUP),
        ) {
            *c = c.wrapping_add(1);
            *g = g.wrapping_add(1);
            self.total = self.total.wrapping_add(1);
        }
    }

    #[cfg(test)]
    pub(crate) fn add(&mut self, other: &Histogram) {
        if other.total == 0 {
            return;
        }
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a = a.wrapping_add(*b);
        }
        for (a, b) in self.groups.iter_mut().zip(other.groups.iter()) {
            *a = a.wrapping_add(*b);
        }
        self.total = self.total.wrapping_add(other.total);
    }

    pub(crate) fn sub(&mut self, other: &Histogram) {
        if other.total == 0 {
            return;
        }
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a = a.wrapping_sub(*b);
        }
        for (a, b) in self.groups.iter_mut().zip(other.groups.iter()) {
            *a = a.wrapping_sub(*b);
        }
        self.total = self.total.wrapping_sub(other.total);
    }

    pub(crate) fn clear(&mut self) {
        if self.total != 0 {
            self.counts.iter_mut().for_each(|c| *c = 0);
            self.groups.iter_mut().for_each(|c| *c = 0);
            self.total = 0;
        }
    }

    /// Nearest-rank quantiles for `qs` (each in `0..=1`, any order) in one pass over the buckets.
    /// Returns `None` when empty.
    pub(crate) fn quantiles<const N: usize>(&self, qs: [f64; N]) -> Option<[f64; N]> {
        if self.total == 0 {
            return None;
        }
        let mut out = [value_of(BUCKETS - 1); N];
        if N == 0 {
            return Some(out);
        }
        let n = self.total as f64;
        // Target ranks (1-based), then visit them in ascending order.
        let mut ranks = [0u64; N];
        let mut order = [0usize; N];
        for (i, q) in qs.iter().enumerate() {
            let q = if q.is_nan() { 0.5 } else { q.clamp(0.0, 1.0) };
            ranks[i] = ((q * n).ceil() as u64).clamp(1, self.total);
            order[i] = i;
        }
        order.sort_unstable_by_key(|&i| ranks[i]);
        let mut next = 0;
        let mut seen = 0u64;
        for (gi, &gc) in self.groups.iter().enumerate() {
            if gc == 0 {
                continue;
            }
            let group_end = seen + u64::from(gc);
            if ranks[order[next]] > group_end {
                seen = group_end;
                continue;
            }
            let start = gi * GROUP;
            let end = (start + GROUP).min(BUCKETS);
            for bucket in start..end {
                let c = self.counts[bucket];
                if c == 0 {
                    continue;
                }
                seen += u64::from(c);
                while next < N && ranks[order[next]] <= seen {
                    out[order[next]] = value_of(bucket);
                    next += 1;
                }
                if next == N {
                    return Some(out);
                }
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_match_their_definition() {
        assert!((INV_LN_GAMMA - 1.0 / GAMMA.ln()).abs() < 1e-9);
        let needed = ((MAX_VALUE / MIN_VALUE).ln() / GAMMA.ln()).ceil() as usize + 1;
        assert_eq!(BUCKETS, needed);
    }

    #[test]
    fn every_value_is_within_the_relative_error() {
        let mut x = MIN_VALUE * 1.0001;
        while x < MAX_VALUE {
            let v = value_of(bucket_of(x));
            assert!(
                (v - x).abs() <= RELATIVE_ACCURACY * x * 1.000_001,
                "x={x} v={v}"
            );
            x *= 1.013;
        }
    }

    #[test]
    fn odd_values_do_not_panic() {
        for v in [
            0.0,
            -1.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MAX,
            1e300,
        ] {
            let b = bucket_of(v);
            assert!(b < BUCKETS);
        }
        assert_eq!(bucket_of(f64::INFINITY), BUCKETS - 1);
        assert_eq!(bucket_of(0.0), 0);
    }

    #[test]
    fn uniform_quantiles() {
        let mut h = Histogram::new();
        for v in 1..=1000 {
            h.record_bucket(bucket_of(f64::from(v)));
        }
        let q = h.quantiles([0.5, 0.99, 0.0, 1.0]).unwrap_or_default();
        for (got, want) in q.iter().zip([500.0, 990.0, 1.0, 1000.0]) {
            assert!(
                (got - want).abs() <= want * RELATIVE_ACCURACY,
                "got {got}, want {want}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn quantiles_match_exact_nearest_rank(
            mut xs in proptest::collection::vec(0.1f64..1.0e6, 1..400),
            q in 0.0f64..=1.0,
        ) {
            let mut h = Histogram::new();
            for &x in &xs {
                h.record_bucket(bucket_of(x));
            }
            xs.sort_by(f64::total_cmp);
            let rank = ((q * xs.len() as f64).ceil() as usize).clamp(1, xs.len());
            let exact = xs[rank - 1];
            let got = h.quantiles([q, 0.5, 0.99]).map(|a| a[0]).unwrap_or(f64::NAN);
            proptest::prop_assert!(
                (got - exact).abs() <= exact * RELATIVE_ACCURACY * 1.000_001 + 1e-9,
                "q={} exact={} got={}", q, exact, got
            );
        }
    }

    #[test]
    fn add_sub_roundtrip() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        a.record_bucket(3);
        b.record_bucket(7);
        b.record_bucket(7);
        a.add(&b);
        assert_eq!(a.total(), 3);
        a.sub(&b);
        assert_eq!(a.total(), 1);
        assert_eq!(a.quantiles([0.5]), Some([value_of(3)]));
        a.clear();
        assert_eq!(a.quantiles([0.5]), None);
    }
}
