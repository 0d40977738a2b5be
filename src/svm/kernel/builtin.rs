//! The built-in kernels with scikit-learn's definitions ([`BuiltinKernel`]: linear,
//! polynomial, RBF, sigmoid): rows by SIMD dot products or squared distances, blocks by
//! a matrix product (one triangle, mirrored, for symmetric blocks), RBF's `exp` in
//! single precision.

use super::Kernel;
use ndarray::{ArrayView1, ArrayView2, ArrayViewMut2, Axis};
use rayon::prelude::*;

/// The built-in kernels, with scikit-learn's definitions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BuiltinKernel {
    /// `<x, y>`
    Linear,
    /// `(gamma <x, y> + coef0)^degree`
    Poly {
        /// Scale of the dot product.
        gamma: f64,
        /// Additive constant.
        coef0: f64,
        /// Integer degree.
        degree: i32,
    },
    /// `exp(-gamma ||x - y||^2)`
    Rbf {
        /// Inverse width.
        gamma: f64,
    },
    /// `tanh(gamma <x, y> + coef0)`
    Sigmoid {
        /// Scale of the dot product.
        gamma: f64,
        /// Additive constant.
        coef0: f64,
    },
}

impl BuiltinKernel {
    /// Map a dot product (or a squared distance for RBF) to the kernel value.
    #[inline(always)]
    fn finish(&self, v: f32) -> f32 {
        match *self {
            BuiltinKernel::Linear => v,
            BuiltinKernel::Poly {
                gamma,
                coef0,
                degree,
            } => (gamma * f64::from(v) + coef0).powi(degree) as f32,
            // exp in single precision: the value is stored as f32 anyway.
            BuiltinKernel::Rbf { gamma } => (-(gamma as f32) * v.max(0.0)).exp(),
            BuiltinKernel::Sigmoid { gamma, coef0 } => (gamma * f64::from(v) + coef0).tanh() as f32,
        }
    }

    fn is_rbf(&self) -> bool {
        matches!(self, BuiltinKernel::Rbf { .. })
    }
}

impl Kernel for BuiltinKernel {
    fn row(
        &self,
        a: ArrayView2<'_, f32>,
        i: usize,
        b: ArrayView2<'_, f32>,
        cols: &[usize],
        out: &mut [f32],
    ) {
        let xi = a.row(i);
        let xi_owned;
        let xi: &[f32] = match xi.as_slice() {
            Some(s) => s,
            None => {
                xi_owned = xi.to_vec();
                &xi_owned
            }
        };
        let rbf = self.is_rbf();
        let contiguous = b.as_slice().is_some();
        let d = b.ncols();
        if let (true, Some(bs)) = (contiguous, b.as_slice()) {
            simd::rows_reduce(xi, bs, d, cols, out, rbf);
        } else {
            for (o, &c) in out.iter_mut().zip(cols) {
                let r = b.row(c).to_vec();
                simd::rows_reduce(xi, &r, d, &[0], std::slice::from_mut(o), rbf);
            }
        }
        if let BuiltinKernel::Rbf { gamma } = *self {
            let g = -(gamma as f32);
            for o in out.iter_mut() {
                *o = g * o.max(0.0);
            }
            exp_in_place(out);
        } else {
            for o in out.iter_mut() {
                *o = self.finish(*o);
            }
        }
    }

    fn block(
        &self,
        a: ArrayView2<'_, f32>,
        b: ArrayView2<'_, f32>,
        mut out: ArrayViewMut2<'_, f32>,
    ) {
        // Row blocks of `a` in parallel, each a matrix product against `b`.
        const RB: usize = 256;
        let b_sq: Vec<f32> = if self.is_rbf() {
            b.axis_iter(Axis(0)).map(|r| r.dot(&r)).collect()
        } else {
            Vec::new()
        };
        out.axis_chunks_iter_mut(Axis(0), RB)
            .collect::<Vec<_>>()
            .into_par_iter()
            .enumerate()
            .for_each(|(blk, mut o)| self.block_rows(a, blk * RB, b, &b_sq, &mut o));
    }

    fn block_symmetric(&self, a: ArrayView2<'_, f32>, mut out: ArrayViewMut2<'_, f32>) {
        // Row block `r` computes only its columns from `r * RB` on (the diagonal tile and
        // right of it), then the left part is copied from the transposed tiles. Every
        // value is the one `block(a, a)` computes: the same products accumulated in
        // the same order (`x_i . x_j` and `x_j . x_i` round alike), the same finish.
        const RB: usize = 256;
        let n = a.nrows();
        let a_sq: Vec<f32> = if self.is_rbf() {
            a.axis_iter(Axis(0)).map(|r| r.dot(&r)).collect()
        } else {
            Vec::new()
        };
        out.axis_chunks_iter_mut(Axis(0), RB)
            .collect::<Vec<_>>()
            .into_par_iter()
            .enumerate()
            .for_each(|(blk, o)| {
                let start = blk * RB;
                let bs = a.slice(ndarray::s![start..n, ..]);
                let sq = if a_sq.is_empty() {
                    &a_sq[..]
                } else {
                    &a_sq[start..]
                };
                let mut right = o.slice_move(ndarray::s![.., start..n]);
                self.block_rows(a, start, bs, sq, &mut right);
            });
        for i in 0..n {
            let tile = (i / RB) * RB;
            for j in 0..tile {
                out[[i, j]] = out[[j, i]];
            }
        }
    }
}

impl BuiltinKernel {
    /// Rows `start..start + o.nrows()` of the block of `a` against `b`, into `o`
    /// (`b_sq`: squared norms of `b`'s rows, for RBF).
    fn block_rows(
        &self,
        a: ArrayView2<'_, f32>,
        start: usize,
        b: ArrayView2<'_, f32>,
        b_sq: &[f32],
        o: &mut ArrayViewMut2<'_, f32>,
    ) {
        let ab = a.slice(ndarray::s![start..start + o.nrows(), ..]);
        ndarray::linalg::general_mat_mul(1.0, &ab, &b.t(), 0.0, o);
        if let BuiltinKernel::Rbf { gamma } = *self {
            let g = -(gamma as f32);
            for (p, mut row) in o.axis_iter_mut(Axis(0)).enumerate() {
                let ar = ab.row(p);
                let a_sq = ar.dot(&ar);
                match row.as_slice_mut() {
                    Some(r) => rbf_finish(r, ar, a_sq, b, b_sq, g),
                    None => {
                        let mut tmp: Vec<f32> = row.to_vec();
                        rbf_finish(&mut tmp, ar, a_sq, b, b_sq, g);
                        row.iter_mut().zip(&tmp).for_each(|(o, v)| *o = *v);
                    }
                }
            }
        } else {
            o.mapv_inplace(|v| self.finish(v));
        }
    }
}

/// Below this fraction of `|a|^2 + |b|^2`, a squared distance of the product form has
/// lost most of its digits to cancellation; it is then computed from the difference.
const CANCEL: f32 = 1.0 / 1024.0;

/// `row[q] = exp(g * max(a_sq + b_sq[q] - 2 row[q], 0))`: RBF values from the dot
/// products `row[q] = a . b_q`, except that the squared distances of close pairs (below
/// [`CANCEL`] of the squared norms: a sample and itself, duplicates, near neighbours)
/// are computed as `|a - b_q|^2`, as [`Kernel::row`] computes every distance. So a
/// sample's value with itself is exactly 1 at any `gamma`, as libsvm's is, in every
/// path (fit and prediction alike), and a large `gamma` does not amplify the product
/// form's rounding on the pairs whose kernel values are not negligible.
fn rbf_finish(
    row: &mut [f32],
    a: ArrayView1<'_, f32>,
    a_sq: f32,
    b: ArrayView2<'_, f32>,
    b_sq: &[f32],
    g: f32,
) {
    let mut close = false;
    for (v, &bq) in row.iter_mut().zip(b_sq) {
        *v = a_sq + bq - 2.0 * *v;
        close |= *v <= CANCEL * (a_sq + bq);
    }
    if close {
        for (q, (v, &bq)) in row.iter_mut().zip(b_sq).enumerate() {
            if *v <= CANCEL * (a_sq + bq) {
                *v = a.iter().zip(b.row(q)).map(|(x, y)| (x - y) * (x - y)).sum();
            }
        }
    }
    for v in row.iter_mut() {
        *v = exp1(g * v.max(0.0));
    }
}

/// `exp` of every value, vectorisable (relative error about 2e-7; inputs below -87
/// give exactly 0, float32's subnormals flushed, so that a kernel value far below
/// float32's range is 0 as float64's `exp` gives it: a point far from every support
/// vector gets the intercept alone, and its ties are libsvm's).
fn exp_in_place(v: &mut [f32]) {
    for x in v.iter_mut() {
        *x = exp1(*x);
    }
}

/// One value of [`exp_in_place`] (inlined into vectorisable loops).
#[inline(always)]
fn exp1(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 * 2^23: adding and subtracting it rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let t = x.clamp(-87.0, 88.0);
    let k = (t * LOG2E + ROUND) - ROUND;
    let r = t - k * LN2_HI - k * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    let scale = f32::from_bits(((k as i32 + 127) as u32) << 23);
    if x < -87.0 {
        0.0
    } else {
        p * scale
    }
}

/// Dot products and squared distances with runtime SIMD dispatch.
pub(crate) mod simd {
    /// For each `t`: `out[t] = <x, b_row(cols[t])>` (or `||x - b_row||^2` when `sqdist`),
    /// where `b` is a contiguous row-major matrix with `d` columns.
    pub fn rows_reduce(
        x: &[f32],
        b: &[f32],
        d: usize,
        cols: &[usize],
        out: &mut [f32],
        sqdist: bool,
    ) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: the CPU supports avx2 and fma (checked just above).
                unsafe { rows_reduce_avx2(x, b, d, cols, out, sqdist) };
                return;
            }
        }
        rows_reduce_generic::<false>(x, b, d, cols, out, sqdist);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn rows_reduce_avx2(
        x: &[f32],
        b: &[f32],
        d: usize,
        cols: &[usize],
        out: &mut [f32],
        sqdist: bool,
    ) {
        rows_reduce_generic::<true>(x, b, d, cols, out, sqdist);
    }

    #[inline(always)]
    fn rows_reduce_generic<const FMA: bool>(
        x: &[f32],
        b: &[f32],
        d: usize,
        cols: &[usize],
        out: &mut [f32],
        sqdist: bool,
    ) {
        let x = &x[..d.min(x.len())];
        for (o, &c) in out.iter_mut().zip(cols) {
            let start = c * d;
            let row = &b[start..start + x.len()];
            *o = if sqdist {
                reduce::<FMA, true>(x, row)
            } else {
                reduce::<FMA, false>(x, row)
            };
        }
    }

    #[inline(always)]
    fn fmadd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
        if FMA {
            a.mul_add(b, c)
        } else {
            a * b + c
        }
    }

    /// `<x, y>` or `||x - y||^2` with 32 independent accumulators (vectorised).
    #[inline(always)]
    fn reduce<const FMA: bool, const SQ: bool>(x: &[f32], y: &[f32]) -> f32 {
        const W: usize = 32;
        let mut acc = [0f32; W];
        let cx = x.chunks_exact(W);
        let cy = y.chunks_exact(W);
        let (rx, ry) = (cx.remainder(), cy.remainder());
        for (a, b) in cx.zip(cy) {
            for k in 0..W {
                if SQ {
                    let t = a[k] - b[k];
                    acc[k] = fmadd::<FMA>(t, t, acc[k]);
                } else {
                    acc[k] = fmadd::<FMA>(a[k], b[k], acc[k]);
                }
            }
        }
        let mut tail = 0f32;
        for (a, b) in rx.iter().zip(ry) {
            if SQ {
                let t = a - b;
                tail += t * t;
            } else {
                tail += a * b;
            }
        }
        let mut s = [0f32; 8];
        for k in 0..W {
            s[k % 8] += acc[k];
        }
        (s[0] + s[4]) + (s[1] + s[5]) + (s[2] + s[6]) + (s[3] + s[7]) + tail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simd_reductions_match_naive_sums() {
        let d = 101; // exercises the 32-wide body and the tail
        let b: Vec<f32> = (0..3 * d)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0)
            .collect();
        let x: Vec<f32> = (0..d).map(|i| ((i * 13 % 17) as f32 - 8.0) / 5.0).collect();
        let mut out = [0f32; 3];
        for sq in [false, true] {
            simd::rows_reduce(&x, &b, d, &[2, 0, 1], &mut out, sq);
            for (t, &c) in [2usize, 0, 1].iter().enumerate() {
                let row = &b[c * d..(c + 1) * d];
                let want: f64 = x
                    .iter()
                    .zip(row)
                    .map(|(&u, &v)| {
                        if sq {
                            f64::from(u - v).powi(2)
                        } else {
                            f64::from(u) * f64::from(v)
                        }
                    })
                    .sum();
                assert!((f64::from(out[t]) - want).abs() < 1e-3 * want.abs().max(1.0));
            }
        }
    }

    #[test]
    fn symmetric_blocks_are_bit_identical_to_full_blocks() {
        // 600 rows: three row tiles of 256, so the mirrored part spans tiles.
        let a = ndarray::Array2::from_shape_fn((600, 37), |(i, k)| {
            (((i * 31 + k * 17) % 97) as f32 - 48.0) / 29.0
        });
        for k in [
            BuiltinKernel::Rbf { gamma: 0.05 },
            BuiltinKernel::Linear,
            BuiltinKernel::Poly {
                gamma: 0.1,
                coef0: 1.0,
                degree: 2,
            },
        ] {
            let mut full = ndarray::Array2::<f32>::zeros((600, 600));
            k.block(a.view(), a.view(), full.view_mut());
            let mut sym = ndarray::Array2::<f32>::zeros((600, 600));
            k.block_symmetric(a.view(), sym.view_mut());
            let same = full
                .iter()
                .zip(sym.iter())
                .all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(same, "{k:?}");
        }
    }

    /// Every path of a [`ShiftedKernel`] (row, block, symmetric block, diag) on
    /// centred rows `xc` (`n × d`).

    #[test]
    fn rbf_blocks_are_exact_on_close_pairs_at_large_gamma() {
        // Rows far from the origin (|x|^2 ~ 1e4): the product form's rounding (~1e-3)
        // times gamma = 1e4 would move K(x, x) far from 1; close pairs are computed
        // from the difference, as `row` computes them.
        let a = ndarray::Array2::from_shape_fn((40, 6), |(i, k)| {
            40.0 + (((i * 13 + k * 7) % 17) as f32) / 5.0 + if i % 2 == 1 { 1e-3 } else { 0.0 }
        });
        let k = BuiltinKernel::Rbf { gamma: 1e4 };
        let mut blk = ndarray::Array2::<f32>::zeros((40, 40));
        k.block(a.view(), a.view(), blk.view_mut());
        let cols: Vec<usize> = (0..40).collect();
        for i in 0..40 {
            assert_eq!(blk[[i, i]], 1.0);
            let mut row = vec![0f32; 40];
            k.row(a.view(), i, a.view(), &cols, &mut row);
            for j in 0..40 {
                assert!(
                    (row[j] - blk[[i, j]]).abs() <= 1e-5,
                    "{i} {j}: {} {}",
                    row[j],
                    blk[[i, j]]
                );
            }
        }
    }

    #[test]
    fn fast_exp_is_accurate() {
        let mut xs: Vec<f32> = (0..2000).map(|i| -90.0 + i as f32 * 0.0455).collect();
        let want: Vec<f64> = xs.iter().map(|&x| f64::from(x).exp()).collect();
        exp_in_place(&mut xs);
        for (got, w) in xs.iter().zip(&want) {
            if *w > 1e-37 {
                assert!((f64::from(*got) - w).abs() <= 1e-6 * w, "{got} vs {w}");
            } else {
                assert!(f64::from(*got) < 1e-37);
            }
            if *w < (-87.0f64).exp() {
                assert_eq!(*got, 0.0, "{w}");
            }
        }
    }
}
