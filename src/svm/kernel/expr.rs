//! Expression kernels in the solver ([`ExprGram`]): kernel rows of a compiled
//! [`crate::expr::Program`] on the training matrix, computed on demand.

use super::Gram;
use rayon::prelude::*;

/// An expression kernel ([`crate::expr::Program`]) on the training matrix `x` (`n × d`
/// row-major float64): rows are computed on demand, so the solver's row cache bounds
/// the memory (no `n × n` matrix). Non-finite kernel values are recorded (see
/// [`ExprGram::saw_non_finite`]) and stored as 0 for the solver.
pub struct ExprGram<'a> {
    prog: &'a crate::expr::Program,
    x: &'a [f64],
    n: usize,
    d: usize,
    /// The nonzero pattern of `x`, built once (sparse data take the sparse evaluator).
    rows: crate::expr::SparseRows,
    non_finite: std::sync::atomic::AtomicBool,
}

impl<'a> ExprGram<'a> {
    /// Bind a compiled kernel expression to `x` (`n × d`, row-major). `None` when the
    /// shapes disagree, `d == 0` or the program is not a kernel.
    pub fn new(prog: &'a crate::expr::Program, x: &'a [f64], n: usize, d: usize) -> Option<Self> {
        let ok = d > 0 && x.len() == n * d && prog.check_kernel().is_ok();
        ok.then(|| Self {
            prog,
            x,
            n,
            d,
            rows: crate::expr::SparseRows::new(x, d),
            non_finite: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Whether any kernel value computed so far was NaN or infinite.
    pub fn saw_non_finite(&self) -> bool {
        self.non_finite.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn fill(&self, i: usize, cols: &[usize], out: &mut [f32]) {
        let mut tmp = vec![0f64; cols.len()];
        if !self
            .prog
            .kernel_row_indexed(self.x, self.d, Some(&self.rows), i, cols, &mut tmp)
        {
            tmp.fill(f64::NAN);
        }
        let mut bad = false;
        for (o, v) in out.iter_mut().zip(&tmp) {
            if v.is_finite() {
                *o = *v as f32;
            } else {
                bad = true;
                *o = 0.0;
            }
        }
        if bad {
            self.non_finite
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

impl Gram for ExprGram<'_> {
    fn n(&self) -> usize {
        self.n
    }
    fn diag(&self, i: usize) -> f64 {
        // In float64, as a precomputed matrix's diagonal is.
        let mut out = [f64::NAN];
        self.prog
            .kernel_row_indexed(self.x, self.d, Some(&self.rows), i, &[i], &mut out);
        if out[0].is_finite() {
            out[0]
        } else {
            self.non_finite
                .store(true, std::sync::atomic::Ordering::Relaxed);
            0.0
        }
    }
    fn row(&self, i: usize, cols: &[usize], out: &mut [f32]) {
        // Long rows are split across the pool, as for feature kernels.
        const CHUNK: usize = 256;
        if cols.len() <= CHUNK {
            self.fill(i, cols, out);
        } else {
            out.par_chunks_mut(CHUNK)
                .zip(cols.par_chunks(CHUNK))
                .for_each(|(o, c)| self.fill(i, c, o));
        }
    }
}
