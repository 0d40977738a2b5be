//! Evaluation of compiled programs over matrices: the kernel-matrix, kernel-row and
//! transform drivers, which run the per-pair evaluator of [`super::pair`] row by row.
//!
//! A kernel matrix is evaluated pair by pair (rows in parallel with rayon), never
//! materialising an `n×m×d` array. On sparse data the drivers use the evaluator of
//! [`super::sparse`], which visits only the nonzero features that matter.

use super::ast::ValueType;
use super::compile::Program;
#[cfg(target_arch = "x86_64")]
use super::fastmath::has_avx2_fma;
use super::fastmath::{Fused, Madd, Unfused};
use super::nonzero::SparseRows;
use super::pair::PairEvaluator;
use super::sparse;
use super::ExprError;
use crate::runtime::CancelToken;
use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

/// `row[j] = k(xi, y_j)` for `j >= from`.
#[inline(always)]
fn kernel_row_generic<M: Madd>(
    ev: &mut PairEvaluator<'_>,
    xi: &[f64],
    ys: &[f64],
    from: usize,
    row: &mut [f64],
) {
    let d = ev.d;
    for (j, o) in row.iter_mut().enumerate().skip(from) {
        *o = ev.kernel::<M>(xi, &ys[j * d..(j + 1) * d]);
    }
}

/// The same loop compiled for AVX2 and FMA (4 doubles per instruction, fused
/// multiply-adds in the polynomials).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_row_avx2(
    ev: &mut PairEvaluator<'_>,
    xi: &[f64],
    ys: &[f64],
    from: usize,
    row: &mut [f64],
) {
    kernel_row_generic::<Fused>(ev, xi, ys, from, row);
}

/// One row of a kernel matrix with the best instruction set of this CPU (AVX2 when
/// present; AVX-512 code generation crashed LLVM here, so it is not used).
pub(super) fn kernel_row(
    ev: &mut PairEvaluator<'_>,
    xi: &[f64],
    ys: &[f64],
    from: usize,
    row: &mut [f64],
) {
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx2_fma() {
            // SAFETY: AVX2 and FMA support was just checked.
            unsafe { kernel_row_avx2(ev, xi, ys, from, row) };
            return;
        }
    }
    kernel_row_generic::<Unfused>(ev, xi, ys, from, row);
}

/// Transform one row (AVX2 + FMA where present).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn transform_row_avx2(ev: &mut PairEvaluator<'_>, x: &[f64], out: &mut [f64]) {
    ev.transform::<Fused>(x, out);
}

fn transform_row(ev: &mut PairEvaluator<'_>, x: &[f64], out: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx2_fma() {
            // SAFETY: AVX2 and FMA support was just checked.
            unsafe { transform_row_avx2(ev, x, out) };
            return;
        }
    }
    ev.transform::<Unfused>(x, out);
}

/// `out[t] = k(xi, ys[cols[t]])`.
#[inline(always)]
fn kernel_cols_generic<M: Madd>(
    ev: &mut PairEvaluator<'_>,
    xi: &[f64],
    ys: &[f64],
    cols: &[usize],
    out: &mut [f64],
) {
    let d = ev.d;
    for (o, &j) in out.iter_mut().zip(cols) {
        *o = ev.kernel::<M>(xi, &ys[j * d..(j + 1) * d]);
    }
}

/// [`kernel_cols_generic`] compiled for AVX2 and FMA.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_cols_avx2(
    ev: &mut PairEvaluator<'_>,
    xi: &[f64],
    ys: &[f64],
    cols: &[usize],
    out: &mut [f64],
) {
    kernel_cols_generic::<Fused>(ev, xi, ys, cols, out);
}

impl Program {
    /// Number of vector scratch slots.
    pub fn n_slots(&self) -> usize {
        self.n_slots
    }

    /// Number of instructions.
    pub fn len(&self) -> usize {
        self.instrs.len()
    }

    /// Whether the program has no instructions (a variable or a constant).
    pub fn is_empty(&self) -> bool {
        self.instrs.is_empty()
    }

    /// Check that the program is a kernel (scalar-valued).
    pub fn check_kernel(&self) -> Result<(), ExprError> {
        if self.value_type != ValueType::Scalar {
            return Err(ExprError::Invalid(format!(
                "a kernel must be scalar-valued, but {} is a vector; wrap it in norm1(...)",
                self.text
            )));
        }
        Ok(())
    }

    /// Check that the program is a transform (uses `x` only).
    pub fn check_transform(&self) -> Result<(), ExprError> {
        if self.uses_y {
            return Err(ExprError::Invalid(format!(
                "a transform may only use x, but {} uses y",
                self.text
            )));
        }
        Ok(())
    }

    /// `out[t] = k(x_i, x_{cols[t]})` for the rows of a row-major `n × d` matrix `xs`
    /// (one kernel row on demand, for solvers that cache rows; single-threaded).
    /// Returns `false` if `d == 0`, `xs` is not `n × d`, an index is out of range or
    /// the program is not a kernel (then `out` is untouched).
    pub fn kernel_row_of(
        &self,
        xs: &[f64],
        d: usize,
        i: usize,
        cols: &[usize],
        out: &mut [f64],
    ) -> bool {
        self.kernel_row_indexed(xs, d, None, i, cols, out)
    }

    /// [`Program::kernel_row_of`] with the nonzero pattern of `xs` (built once with
    /// [`SparseRows::new`]), so that sparse data take the sparse evaluator.
    pub fn kernel_row_indexed(
        &self,
        xs: &[f64],
        d: usize,
        rows: Option<&SparseRows>,
        i: usize,
        cols: &[usize],
        out: &mut [f64],
    ) -> bool {
        let n = xs.len().checked_div(d).unwrap_or(0);
        if d == 0
            || self.value_type != ValueType::Scalar
            || xs.len() != n * d
            || i >= n
            || out.len() != cols.len()
            || cols.iter().any(|&j| j >= n)
            || rows.is_some_and(|r| r.n_rows() != n)
        {
            return false;
        }
        let mut ev = self.evaluator(d);
        if let Some(plan) = rows.and_then(|r| self.sparse_plan(r, r)) {
            sparse::kernel_row(&mut ev, &plan, xs, i, xs, sparse::Cols::List(cols), out);
            return true;
        }
        let xi = &xs[i * d..(i + 1) * d];
        #[cfg(target_arch = "x86_64")]
        {
            if has_avx2_fma() {
                // SAFETY: AVX2 and FMA support was just checked.
                unsafe { kernel_cols_avx2(&mut ev, xi, xs, cols, out) };
                return true;
            }
        }
        kernel_cols_generic::<Unfused>(&mut ev, xi, xs, cols, out);
        true
    }

    /// Kernel matrix `K[i, j] = k(x_i, y_j)`, rows in parallel (call inside
    /// [`crate::runtime::install`] to use gridmatch's pool). With `check_finite`, any
    /// NaN/inf entry is an [`ExprError::NonFinite`].
    pub fn gram(
        &self,
        x: ArrayView2<'_, f64>,
        y: ArrayView2<'_, f64>,
        token: &CancelToken,
        check_finite: bool,
    ) -> Result<Array2<f64>, ExprError> {
        self.check_kernel()?;
        let (n, d) = x.dim();
        let (m, d2) = y.dim();
        if d != d2 {
            return Err(ExprError::Shape(format!(
                "X has {d} features but Y has {d2}"
            )));
        }
        if d == 0 {
            return Err(ExprError::Shape("arrays have no features".into()));
        }
        let xs = contiguous(x);
        let ys = contiguous(y);
        let mut out = vec![0.0f64; n * m];
        if m > 0 && n > 0 {
            let (xr, yr) = (SparseRows::new(&xs, d), SparseRows::new(&ys, d));
            let plan = self.sparse_plan(&xr, &yr);
            out.par_chunks_mut(m).enumerate().for_each_init(
                || self.evaluator(d),
                |ev, (i, row)| {
                    if token.is_cancelled() {
                        return;
                    }
                    match &plan {
                        Some(p) => {
                            sparse::kernel_row(ev, p, &xs, i, &ys, sparse::Cols::From(0), row)
                        }
                        None => kernel_row(ev, &xs[i * d..(i + 1) * d], &ys, 0, row),
                    }
                },
            );
        }
        if token.is_cancelled() {
            return Err(ExprError::Cancelled);
        }
        if check_finite {
            check_all_finite(&out, m.max(1))?;
        }
        Array2::from_shape_vec((n, m), out).map_err(|e| ExprError::Shape(e.to_string()))
    }

    /// Symmetric kernel matrix `K[i, j] = k(x_i, x_j)` computing only `j >= i` and
    /// mirroring; valid when the kernel is symmetric (see [`Expr::is_symmetric`]).
    pub fn gram_symmetric(
        &self,
        x: ArrayView2<'_, f64>,
        token: &CancelToken,
        check_finite: bool,
    ) -> Result<Array2<f64>, ExprError> {
        self.check_kernel()?;
        let (n, d) = x.dim();
        if d == 0 {
            return Err(ExprError::Shape("arrays have no features".into()));
        }
        let xs = contiguous(x);
        let mut out = vec![0.0f64; n * n];
        if n > 0 {
            let xr = SparseRows::new(&xs, d);
            let plan = self.sparse_plan(&xr, &xr);
            out.par_chunks_mut(n).enumerate().for_each_init(
                || self.evaluator(d),
                |ev, (i, row)| {
                    if token.is_cancelled() {
                        return;
                    }
                    match &plan {
                        Some(p) => {
                            sparse::kernel_row(ev, p, &xs, i, &xs, sparse::Cols::From(i), row)
                        }
                        None => kernel_row(ev, &xs[i * d..(i + 1) * d], &xs, i, row),
                    }
                },
            );
        }
        if token.is_cancelled() {
            return Err(ExprError::Cancelled);
        }
        for i in 0..n {
            for j in 0..i {
                out[i * n + j] = out[j * n + i];
            }
        }
        if check_finite {
            check_all_finite(&out, n.max(1))?;
        }
        Array2::from_shape_vec((n, n), out).map_err(|e| ExprError::Shape(e.to_string()))
    }

    /// Apply a transform to every row of `x` (same shape out).
    pub fn apply(
        &self,
        x: ArrayView2<'_, f64>,
        token: &CancelToken,
        check_finite: bool,
    ) -> Result<Array2<f64>, ExprError> {
        self.check_transform()?;
        let (n, d) = x.dim();
        let xs = contiguous(x);
        let mut out = vec![0.0f64; n * d];
        if d > 0 {
            out.par_chunks_mut(d).enumerate().for_each_init(
                || self.evaluator(d),
                |ev, (i, row)| {
                    if !token.is_cancelled() {
                        transform_row(ev, &xs[i * d..(i + 1) * d], row);
                    }
                },
            );
        }
        if token.is_cancelled() {
            return Err(ExprError::Cancelled);
        }
        if check_finite {
            check_all_finite(&out, d.max(1))?;
        }
        Array2::from_shape_vec((n, d), out).map_err(|e| ExprError::Shape(e.to_string()))
    }
}

fn contiguous(a: ArrayView2<'_, f64>) -> std::borrow::Cow<'_, [f64]> {
    match a.to_slice() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(a.iter().copied().collect()),
    }
}

fn check_all_finite(out: &[f64], cols: usize) -> Result<(), ExprError> {
    let bad = out.iter().filter(|v| !v.is_finite()).count();
    if bad > 0 {
        let first = out.iter().position(|v| !v.is_finite()).unwrap_or(0);
        return Err(ExprError::NonFinite {
            count: bad,
            row: first / cols,
            col: first % cols,
        });
    }
    Ok(())
}

#[cfg(test)]
#[path = "eval_tests.rs"]
mod tests;
