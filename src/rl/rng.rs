//! A small seeded generator (SplitMix64) so that searches are reproducible without
//! touching libtorch's global generator.

/// SplitMix64 pseudo-random generator.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.uniform() * n as f64) as usize).min(n.saturating_sub(1))
    }

    /// Index drawn from the (unnormalised, non-negative) weights.
    #[allow(clippy::neg_cmp_op_on_partial_ord)] // NaN totals take the uniform path
    pub fn categorical(&mut self, weights: &[f32]) -> usize {
        let total: f64 = weights.iter().map(|&w| f64::from(w.max(0.0))).sum();
        if !(total > 0.0) || !total.is_finite() {
            return self.below(weights.len());
        }
        let mut u = self.uniform() * total;
        for (i, &w) in weights.iter().enumerate() {
            u -= f64::from(w.max(0.0));
            if u < 0.0 {
                return i;
            }
        }
        weights.len().saturating_sub(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categorical_frequencies() {
        let mut r = Rng::new(3);
        let w = [1.0f32, 0.0, 3.0];
        let mut c = [0usize; 3];
        for _ in 0..40000 {
            c[r.categorical(&w)] += 1;
        }
        assert_eq!(c[1], 0);
        let f = c[2] as f64 / 40000.0;
        assert!((f - 0.75).abs() < 0.01, "{f}");
        let mut a = Rng::new(9);
        let mut b = Rng::new(9);
        assert_eq!(a.next_u64(), b.next_u64());
    }
}
