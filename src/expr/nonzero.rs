//! The nonzero pattern of a matrix ([`SparseRows`]): per-row bit masks of the entries
//! that are not `+0.0`, the nonzero counts, the largest magnitude and per-feature
//! densities, which the sparse evaluator ([`super::sparse`]) plans and gathers with.

use rayon::prelude::*;

/// The nonzero pattern of a row-major `n × d` matrix: one bit mask per row (bit set:
/// the entry is not `+0.0`), nonzero counts, the largest magnitude and whether every
/// entry is finite.
#[derive(Debug, Clone)]
pub struct SparseRows {
    pub(super) d: usize,
    pub(super) words: usize,
    pub(super) masks: Vec<u64>,
    pub(super) nnz: Vec<u32>,
    pub(super) max_abs: f64,
    pub(super) finite: bool,
    /// Fraction of rows in which each feature is nonzero.
    pub(super) col_density: Vec<f64>,
}

impl SparseRows {
    /// Index the rows of `xs` (`n × d`, row-major; `d > 0`).
    pub fn new(xs: &[f64], d: usize) -> SparseRows {
        let d = d.max(1);
        let n = xs.len() / d;
        let words = d.div_ceil(64);
        let mut masks = vec![0u64; n * words];
        let mut nnz = vec![0u32; n];
        let (max_abs, finite) = masks
            .par_chunks_mut(words)
            .zip(nnz.par_iter_mut())
            .zip(xs.par_chunks(d))
            .map(|((m, c), row)| {
                let mut big = 0.0f64;
                let mut fin = true;
                for (k, &v) in row.iter().enumerate() {
                    if v.to_bits() != 0 {
                        m[k / 64] |= 1 << (k % 64);
                        *c += 1;
                    }
                    fin &= v.is_finite();
                    big = big.max(v.abs());
                }
                (big, fin)
            })
            .reduce(|| (0.0, true), |a, b| (a.0.max(b.0), a.1 && b.1));
        let mut counts = vec![0u32; d];
        for m in masks.chunks_exact(words) {
            for_each_bit(m, |k| counts[k] += 1);
        }
        let col_density = counts
            .iter()
            .map(|&c| f64::from(c) / n.max(1) as f64)
            .collect();
        SparseRows {
            d,
            words,
            masks,
            nnz,
            max_abs,
            finite,
            col_density,
        }
    }

    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.nnz.len()
    }

    /// Mean fraction of nonzero entries.
    pub fn density(&self) -> f64 {
        self.col_density.iter().sum::<f64>() / self.d as f64
    }

    pub(super) fn mask(&self, i: usize) -> &[u64] {
        &self.masks[i * self.words..(i + 1) * self.words]
    }
}

#[inline(always)]
pub(super) fn for_each_bit(mask: &[u64], mut f: impl FnMut(usize)) {
    for (w, &m) in mask.iter().enumerate() {
        let mut s = m;
        while s != 0 {
            f(w * 64 + s.trailing_zeros() as usize);
            s &= s - 1;
        }
    }
}
