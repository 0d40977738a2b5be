//! The crate's one seeded generator (SplitMix64, Steele, Lea & Flood 2014): small,
//! platform-independent and reproducible for a seed, used wherever results must repeat
//! — grid sampling, augmentations and distorted views, the RL controller's actions and
//! the searches' random candidates — without touching libtorch's global generator.
//!
//! Two constructors: [`Rng::new`] mixes the seed and discards one output (sampling,
//! augmentation, training); [`Rng::raw`] starts SplitMix64 at `seed ^ GOLDEN` without
//! that first draw, the stream the kernel and transform searches have always used, so
//! their seeded histories stay those of earlier releases.

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64 generator.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        let mut r = Rng(seed ^ GOLDEN);
        r.next_u64();
        r
    }

    /// SplitMix64 started at `seed ^ GOLDEN` (no discarded first output): the stream of
    /// [`Rng::new`]`(seed)` is this one's from its second draw on.
    pub fn raw(seed: u64) -> Self {
        Rng(seed ^ GOLDEN)
    }

    /// An independent generator for the stream `(seed, a, b)` (e.g. step and image).
    pub fn derive(seed: u64, a: u64, b: u64) -> Self {
        let mut r = Rng::new(seed);
        let x = r.next_u64() ^ a.wrapping_mul(0xD1B5_4A32_D192_ED03);
        let mut r = Rng::new(x);
        let y = r.next_u64() ^ b.wrapping_mul(0x8CB9_2BA7_2F3D_8DD7);
        Rng::new(y)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// Uniform integer in `0..n` (`0` when `n == 0`).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            ((self.next_u64() as u128 * n as u128) >> 64) as usize
        }
    }

    /// `true` with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Shuffle `xs` in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            let j = self.below(i + 1);
            xs.swap(i, j);
        }
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
    fn reproducible_and_uniformish() {
        let a: Vec<u64> = (0..5).map(|_| Rng::new(7).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let mut r = Rng::new(1);
        let mean = (0..10000).map(|_| r.uniform()).sum::<f64>() / 10000.0;
        assert!((mean - 0.5).abs() < 0.02);
        let mut counts = [0usize; 4];
        for _ in 0..4000 {
            counts[r.below(4)] += 1;
        }
        assert!(counts.iter().all(|&c| c > 850 && c < 1150), "{counts:?}");
        assert_ne!(
            Rng::derive(1, 2, 3).next_u64(),
            Rng::derive(1, 3, 2).next_u64()
        );
    }

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

    #[test]
    fn raw_is_new_one_draw_earlier() {
        let mut a = Rng::raw(12345);
        a.next_u64();
        let mut b = Rng::new(12345);
        for _ in 0..10 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
    }
}
