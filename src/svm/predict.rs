//! Prediction with a fitted one-vs-one model: decision values from a built-in kernel
//! on feature rows, from an expression kernel evaluated against the support vectors
//! (rows computed block by block in Rust, never an `n × n_SV` matrix in Python), or
//! from precomputed kernel values; libsvm's vote.

use super::kernel::{sparse, BuiltinKernel, CsrRows, Kernel};
use super::multiclass::{pairs, OvoModel};
use super::SvmError;
use crate::expr::{ExprError, Program};
use crate::runtime::CancelToken;
use ndarray::{s, Array2, ArrayView2, Axis};
use rayon::prelude::*;
use std::sync::Mutex;

impl OvoModel {
    /// Check the model's arrays agree with each other.
    pub fn validate(&self) -> Result<(), SvmError> {
        let n_sv: usize = self.n_support.iter().sum();
        let n_pairs = self.n_classes * self.n_classes.saturating_sub(1) / 2;
        if self.n_classes < 2
            || self.n_support.len() != self.n_classes
            || self.support.len() != n_sv
            || self.dual_coef.dim() != (self.n_classes - 1, n_sv)
            || self.rho.len() != n_pairs
            || self.prob_a.len() != self.prob_b.len()
            || (!self.prob_a.is_empty() && self.prob_a.len() != n_pairs)
        {
            return Err(SvmError::Shape(format!(
                "inconsistent model: {} classes, n_support {:?}, {} support indices, dual_coef {:?}, {} biases, {} / {} sigmoid parameters",
                self.n_classes,
                self.n_support,
                self.support.len(),
                self.dual_coef.dim(),
                self.rho.len(),
                self.prob_a.len(),
                self.prob_b.len()
            )));
        }
        Ok(())
    }

    /// The `n_sv × n_pairs` weight matrix: decision values are `K_sv · W - rho`.
    fn pair_weights(&self) -> Array2<f32> {
        let pairs = pairs(self.n_classes);
        let mut start = vec![0usize; self.n_classes + 1];
        for k in 0..self.n_classes {
            start[k + 1] = start[k] + self.n_support[k];
        }
        let mut w = Array2::<f32>::zeros((self.support.len(), pairs.len()));
        for (p, &(a, b)) in pairs.iter().enumerate() {
            for sv in start[a]..start[a + 1] {
                w[[sv, p]] = self.dual_coef[[b - 1, sv]] as f32;
            }
            for sv in start[b]..start[b + 1] {
                w[[sv, p]] = self.dual_coef[[a, sv]] as f32;
            }
        }
        w
    }

    /// Decision values (`n × n_pairs`, libsvm's sign: positive favours the first class
    /// of the pair) from kernel values against the support vectors, produced block by
    /// block by `fill(rows, out)` for test rows `rows` into `out` (`rows.len() × n_sv`).
    fn decision_blocks(
        &self,
        n: usize,
        fill: &(dyn Fn(std::ops::Range<usize>, ndarray::ArrayViewMut2<'_, f32>) + Sync),
    ) -> Result<Array2<f64>, SvmError> {
        self.validate()?;
        const RB: usize = 256;
        let w = self.pair_weights();
        let n_sv = self.support.len();
        let n_pairs = self.rho.len();
        let mut out = Array2::<f64>::zeros((n, n_pairs));
        out.axis_chunks_iter_mut(Axis(0), RB)
            .collect::<Vec<_>>()
            .into_par_iter()
            .enumerate()
            .for_each(|(blk, mut o)| {
                let start = blk * RB;
                let rows = o.nrows();
                let mut k = Array2::<f32>::zeros((rows, n_sv));
                fill(start..start + rows, k.view_mut());
                let mut d = Array2::<f32>::zeros((rows, n_pairs));
                ndarray::linalg::general_mat_mul(1.0, &k, &w, 0.0, &mut d);
                for ((dst, &src), p) in o.iter_mut().zip(d.iter()).zip((0..n_pairs).cycle()) {
                    *dst = f64::from(src) - self.rho[p];
                }
            });
        Ok(out)
    }

    /// Decision values for feature rows `x` given the model's support vectors `sv`
    /// (`n_sv × d`, rows in `support` order) and the kernel used to fit.
    pub fn decision_function(
        &self,
        kernel: &dyn Kernel,
        sv: ArrayView2<'_, f32>,
        x: ArrayView2<'_, f32>,
    ) -> Result<Array2<f64>, SvmError> {
        self.check_sv_shape(sv.nrows(), sv.ncols(), x.ncols())?;
        self.decision_blocks(x.nrows(), &|rows, out| {
            kernel.block(x.slice(s![rows, ..]), sv, out);
        })
    }

    /// Decision values for sparse rows `x` given the model's sparse support vectors `sv`
    /// (rows in `support` order) and the built-in kernel used to fit.
    pub fn decision_sparse(
        &self,
        kernel: &BuiltinKernel,
        sv: &CsrRows<'_>,
        x: &CsrRows<'_>,
    ) -> Result<Array2<f64>, SvmError> {
        self.check_sv_shape(sv.nrows(), sv.ncols(), x.ncols())?;
        let columns = sparse::SupportColumns::new(sv);
        self.decision_blocks(x.nrows(), &|rows, out| {
            sparse::kernel_block(kernel, x, rows.start, &columns, out);
        })
    }

    /// Decision values for float64 feature rows `x` with the expression kernel `prog`,
    /// evaluated in Rust against the support vectors `sv` (`n_sv × d`, rows in
    /// `support` order) one block of rows at a time, so memory stays at a block of
    /// kernel rows. A NaN or infinite kernel value is an error, as in training.
    pub fn decision_expression(
        &self,
        prog: &Program,
        sv: ArrayView2<'_, f64>,
        x: ArrayView2<'_, f64>,
        token: &CancelToken,
    ) -> Result<Array2<f64>, SvmError> {
        self.check_sv_shape(sv.nrows(), sv.ncols(), x.ncols())?;
        prog.check_kernel()?;
        if x.ncols() == 0 {
            return Err(SvmError::Shape("X has no features".into()));
        }
        // (count, first (row, col)) of non-finite values; the first error otherwise.
        let bad: Mutex<(usize, Option<(usize, usize)>)> = Mutex::new((0, None));
        let failed: Mutex<Option<ExprError>> = Mutex::new(None);
        let out = self.decision_blocks(x.nrows(), &|rows, mut out| {
            let start = rows.start;
            match prog.gram(x.slice(s![rows, ..]), sv, token, false) {
                Ok(k) => {
                    let mut count = 0;
                    let mut first = None;
                    for (((r, c), &v), o) in k.indexed_iter().zip(out.iter_mut()) {
                        if v.is_finite() {
                            *o = v as f32;
                        } else {
                            *o = 0.0;
                            count += 1;
                            first.get_or_insert((start + r, c));
                        }
                    }
                    if count > 0 {
                        let mut b = bad.lock().unwrap_or_else(|p| p.into_inner());
                        b.0 += count;
                        b.1 = match (b.1, first) {
                            (Some(a), Some(f)) => Some(a.min(f)),
                            (a, f) => a.or(f),
                        };
                    }
                }
                Err(e) => {
                    let mut f = failed.lock().unwrap_or_else(|p| p.into_inner());
                    f.get_or_insert(e);
                }
            }
        })?;
        if let Some(e) = failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(e.into());
        }
        if token.is_cancelled() {
            return Err(SvmError::Cancelled(crate::runtime::Cancelled));
        }
        if let (count, Some((row, col))) = bad.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(ExprError::NonFinite { count, row, col }.into());
        }
        Ok(out)
    }

    fn check_sv_shape(&self, n_sv: usize, sv_dim: usize, x_dim: usize) -> Result<(), SvmError> {
        if n_sv != self.support.len() {
            return Err(SvmError::Shape(format!(
                "{n_sv} support vectors given, the model has {}",
                self.support.len()
            )));
        }
        if sv_dim != x_dim {
            return Err(SvmError::Shape(format!(
                "X has {x_dim} features, the support vectors have {sv_dim}"
            )));
        }
        Ok(())
    }

    /// Decision values from a precomputed kernel `k` (`n × n_train`) between test
    /// samples and all training samples (only the support columns are read).
    pub fn decision_precomputed(&self, k: ArrayView2<'_, f64>) -> Result<Array2<f64>, SvmError> {
        if let Some(&m) = self.support.iter().max() {
            if m >= k.ncols() {
                return Err(SvmError::Shape(format!(
                    "the kernel matrix has {} columns but support vector index {m} was used in training",
                    k.ncols()
                )));
            }
        }
        self.decision_blocks(k.nrows(), &|rows, mut out| {
            for (r, mut o) in rows.zip(out.axis_iter_mut(Axis(0))) {
                let kr = k.row(r);
                for (v, &c) in o.iter_mut().zip(&self.support) {
                    *v = kr[c] as f32;
                }
            }
        })
    }

    /// Predicted classes (votes of the pairs) for feature rows `x`.
    pub fn predict(
        &self,
        kernel: &dyn Kernel,
        sv: ArrayView2<'_, f32>,
        x: ArrayView2<'_, f32>,
    ) -> Result<Vec<usize>, SvmError> {
        let dec = self.decision_function(kernel, sv, x)?;
        Ok(predict_from_decision(dec.view(), self.n_classes))
    }

    /// Predicted classes from a precomputed test-versus-train kernel.
    pub fn predict_precomputed(&self, k: ArrayView2<'_, f64>) -> Result<Vec<usize>, SvmError> {
        let dec = self.decision_precomputed(k)?;
        Ok(predict_from_decision(dec.view(), self.n_classes))
    }
}

/// libsvm's one-vs-one vote: pair `(a, b)` votes `a` when its decision value is
/// positive, else `b`; ties go to the lowest class.
pub fn predict_from_decision(dec: ArrayView2<'_, f64>, n_classes: usize) -> Vec<usize> {
    let pairs = pairs(n_classes);
    dec.axis_iter(Axis(0))
        .map(|row| {
            let mut votes = vec![0usize; n_classes];
            for (&(a, b), &d) in pairs.iter().zip(row.iter()) {
                if d > 0.0 {
                    votes[a] += 1;
                } else {
                    votes[b] += 1;
                }
            }
            let mut best = 0;
            for k in 1..n_classes {
                if votes[k] > votes[best] {
                    best = k;
                }
            }
            best
        })
        .collect()
}
