//! Kernels: the [`Kernel`] trait (a function of two sets of feature vectors), the
//! built-in kernels with scikit-learn's semantics, and the [`Gram`] trait through which
//! the solver reads kernel values of the training set by index.
//!
//! Two ways to give the solver a kernel:
//!
//! - a [`Kernel`] over feature rows, bound to the training matrix with [`FeatureGram`]
//!   (rows of the Gram matrix are computed on demand and cached by the solver);
//! - a full Gram matrix with [`PrecomputedGram`] (a borrowed `n × n` view, no copy).
//!
//! External kernels (for example expression kernels) implement [`Kernel`]; only
//! [`Kernel::row`] is required, [`Kernel::block`] has a parallel default.
//!
//! Files: `builtin` ([`BuiltinKernel`]), `shifted` ([`ShiftedKernel`], a built-in kernel
//! on centred data), `sparse` ([`SparseGram`]: the built-in kernels on CSR rows),
//! `expr` ([`ExprGram`], expression kernels on demand).

use ndarray::{ArrayView2, ArrayViewMut2, Axis};
use rayon::prelude::*;

mod builtin;
mod expr;
mod shifted;
pub mod sparse;

pub use builtin::BuiltinKernel;
pub use expr::ExprGram;
pub use shifted::ShiftedKernel;
pub use sparse::{CsrRows, SparseGram};

/// A kernel function `k(a, b)` over feature vectors (rows of `f32` matrices).
///
/// Implementations must be pure functions of their inputs (the solver calls them from
/// several threads at once and may call them again for the same entries).
pub trait Kernel: Send + Sync {
    /// Fill `out[t] = k(a.row(i), b.row(cols[t]))` for every `t`.
    ///
    /// `out.len() == cols.len()`; `i < a.nrows()` and every `cols[t] < b.nrows()`
    /// (callers guarantee both).
    fn row(
        &self,
        a: ArrayView2<'_, f32>,
        i: usize,
        b: ArrayView2<'_, f32>,
        cols: &[usize],
        out: &mut [f32],
    );

    /// Fill `out` (`a.nrows() × b.nrows()`) with `k(a.row(p), b.row(q))`.
    ///
    /// The default computes rows in parallel through [`Kernel::row`]; kernels with a
    /// matrix-product form override it.
    fn block(
        &self,
        a: ArrayView2<'_, f32>,
        b: ArrayView2<'_, f32>,
        mut out: ArrayViewMut2<'_, f32>,
    ) {
        let cols: Vec<usize> = (0..b.nrows()).collect();
        out.axis_iter_mut(Axis(0))
            .collect::<Vec<_>>()
            .into_par_iter()
            .enumerate()
            .for_each(|(p, mut row)| match row.as_slice_mut() {
                Some(s) => self.row(a, p, b, &cols, s),
                None => {
                    let mut tmp = vec![0f32; cols.len()];
                    self.row(a, p, b, &cols, &mut tmp);
                    row.iter_mut().zip(&tmp).for_each(|(o, v)| *o = *v);
                }
            });
    }

    /// Fill `out` (`a.nrows() × a.nrows()`) with `k(a.row(p), a.row(q))`, the kernel
    /// matrix of `a` with itself. The default is [`Kernel::block`]`(a, a, out)`; a
    /// symmetric kernel may compute one triangle and mirror it (the built-in kernels
    /// do, with values bit-identical to [`Kernel::block`]'s).
    fn block_symmetric(&self, a: ArrayView2<'_, f32>, out: ArrayViewMut2<'_, f32>) {
        self.block(a, a, out);
    }

    /// `k(a.row(i), a.row(i))`.
    fn diag(&self, a: ArrayView2<'_, f32>, i: usize) -> f64 {
        let mut out = [0f32];
        self.row(a, i, a, &[i], &mut out);
        f64::from(out[0])
    }
}

/// The solver's view of a kernel on the training set: kernel values by sample index.
pub trait Gram: Sync {
    /// Number of training samples.
    fn n(&self) -> usize;
    /// `K[i, i]`.
    fn diag(&self, i: usize) -> f64;
    /// Fill `out[t] = K[i, cols[t]]`.
    fn row(&self, i: usize, cols: &[usize], out: &mut [f32]);
}

/// A [`Kernel`] bound to the training matrix `x` (borrowed).
pub struct FeatureGram<'a, K: Kernel + ?Sized> {
    kernel: &'a K,
    x: ArrayView2<'a, f32>,
}

impl<'a, K: Kernel + ?Sized> FeatureGram<'a, K> {
    /// Bind `kernel` to the training samples `x` (rows are samples).
    pub fn new(kernel: &'a K, x: ArrayView2<'a, f32>) -> Self {
        Self { kernel, x }
    }
}

impl<K: Kernel + ?Sized> Gram for FeatureGram<'_, K> {
    fn n(&self) -> usize {
        self.x.nrows()
    }
    fn diag(&self, i: usize) -> f64 {
        self.kernel.diag(self.x, i)
    }
    fn row(&self, i: usize, cols: &[usize], out: &mut [f32]) {
        // Long rows are split across the pool (the binary problems of a multiclass fit
        // already run in parallel; rayon balances both levels).
        const CHUNK: usize = 1024;
        if cols.len() <= CHUNK {
            self.kernel.row(self.x, i, self.x, cols, out);
        } else {
            out.par_chunks_mut(CHUNK)
                .zip(cols.par_chunks(CHUNK))
                .for_each(|(o, c)| self.kernel.row(self.x, i, self.x, c, o));
        }
    }
}

/// A user-supplied Gram matrix (`n × n`, borrowed, any strides).
pub struct PrecomputedGram<'a> {
    k: ArrayView2<'a, f64>,
}

impl<'a> PrecomputedGram<'a> {
    /// Wrap a square Gram matrix. Returns `None` when it is not square.
    pub fn new(k: ArrayView2<'a, f64>) -> Option<Self> {
        (k.nrows() == k.ncols()).then_some(Self { k })
    }
}

impl Gram for PrecomputedGram<'_> {
    fn n(&self) -> usize {
        self.k.nrows()
    }
    fn diag(&self, i: usize) -> f64 {
        self.k[[i, i]]
    }
    fn row(&self, i: usize, cols: &[usize], out: &mut [f32]) {
        let r = self.k.row(i);
        for (o, &c) in out.iter_mut().zip(cols) {
            *o = r[c] as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precomputed_gram_requires_square_and_reads_rows() {
        let k = ndarray::array![[1.0, 2.0], [2.0, 5.0]];
        let g = PrecomputedGram::new(k.view()).unwrap();
        let mut out = [0f32; 2];
        g.row(1, &[1, 0], &mut out);
        assert_eq!(out, [5.0, 2.0]);
        assert_eq!(g.diag(0), 1.0);
        let r = ndarray::Array2::<f64>::zeros((2, 3));
        assert!(PrecomputedGram::new(r.view()).is_none());
    }
}
