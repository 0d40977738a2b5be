//! The C-SVC dual solver: SMO with libsvm's second-order working-set selection (WSS3),
//! shrinking with gradient reconstruction, an LRU cache of kernel rows, and libsvm's
//! `tau` rule for non-positive-semidefinite kernels.
//!
//! This follows libsvm 3.x `Solver` (as bundled by scikit-learn, with per-sample `C`)
//! step by step, so that solutions agree with scikit-learn's `SVC` to the tolerance.
//!
//! Problem: `min_a 1/2 a'Qa - e'a` s.t. `y'a = 0`, `0 <= a_i <= C_i`, with
//! `Q_ij = y_i y_j K_ij`.

use super::cache::RowCache;
use super::kernel::Gram;
use super::SvmError;
use crate::runtime::Monitor;

/// libsvm's `TAU`: the curvature used when `Q_ii + Q_jj - 2 Q_ij <= 0`.
pub const TAU: f64 = 1e-12;

/// How often (in iterations) the solver checks for cancellation.
const CHECK_EVERY: usize = 2000;

const LOWER: u8 = 0;
const UPPER: u8 = 1;
const FREE: u8 = 2;

/// Settings of one binary solve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SolverParams {
    /// Stopping tolerance on the maximal violating pair (libsvm's `eps`, sklearn's `tol`).
    pub tol: f64,
    /// Kernel-row cache budget in bytes.
    pub cache_bytes: usize,
    /// Iteration limit; `None` means libsvm's safety cap `max(10^7, 100 n)`.
    pub max_iter: Option<usize>,
    /// Whether to use shrinking (libsvm's `-h 1`, scikit-learn's default).
    pub shrinking: bool,
}

impl Default for SolverParams {
    fn default() -> Self {
        Self {
            tol: 1e-3,
            cache_bytes: 200 << 20,
            max_iter: None,
            shrinking: true,
        }
    }
}

/// Result of one binary solve.
#[derive(Debug, Clone, PartialEq)]
pub struct BinarySolution {
    /// `y_i a_i` for every sample of the problem (in the problem's order).
    pub coef: Vec<f64>,
    /// The bias term `rho` (the decision function is `sum coef_i K(x_i, x) - rho`).
    pub rho: f64,
    /// Dual objective value.
    pub objective: f64,
    /// SMO iterations done.
    pub iterations: usize,
    /// `false` when the iteration limit stopped the solver.
    pub converged: bool,
}

/// Solve a binary C-SVC problem over the samples `index` of `gram` (`index[t]` is the
/// gram index of problem sample `t`), labels `y` (`+1` / `-1`) and per-sample bounds `c`.
pub fn solve_binary(
    gram: &dyn Gram,
    index: &[usize],
    y: &[i8],
    c: &[f64],
    params: &SolverParams,
    monitor: &Monitor<'_>,
) -> Result<BinarySolution, SvmError> {
    let l = index.len();
    if y.len() != l || c.len() != l {
        return Err(SvmError::Shape(format!(
            "binary problem: {} samples, {} labels, {} bounds",
            l,
            y.len(),
            c.len()
        )));
    }
    if l == 0 {
        return Err(SvmError::Value("binary problem without samples".into()));
    }
    let mut s = Solver::new(gram, index, y, c, params);
    s.solve(monitor)
}

struct Solver<'a> {
    gram: &'a dyn Gram,
    l: usize,
    active_size: usize,
    /// Gram index of the sample at each (permuted) position.
    map: Vec<usize>,
    y: Vec<i8>,
    g: Vec<f64>,
    g_bar: Vec<f64>,
    alpha: Vec<f64>,
    alpha_status: Vec<u8>,
    c: Vec<f64>,
    qd: Vec<f64>,
    /// Original position of the sample at each permuted position.
    active_set: Vec<usize>,
    cache: RowCache,
    cols: Vec<usize>,
    eps: f64,
    unshrink: bool,
    shrinking: bool,
    max_iter: usize,
}

impl<'a> Solver<'a> {
    fn new(gram: &'a dyn Gram, index: &[usize], y: &[i8], c: &[f64], p: &SolverParams) -> Self {
        let l = index.len();
        let qd: Vec<f64> = index.iter().map(|&i| gram.diag(i)).collect();
        let max_iter = p
            .max_iter
            .unwrap_or_else(|| 10_000_000usize.max(l.saturating_mul(100)));
        Solver {
            gram,
            l,
            active_size: l,
            map: index.to_vec(),
            y: y.to_vec(),
            g: vec![-1.0; l],
            g_bar: vec![0.0; l],
            alpha: vec![0.0; l],
            alpha_status: vec![LOWER; l],
            c: c.to_vec(),
            qd,
            active_set: (0..l).collect(),
            cache: RowCache::new(l, p.cache_bytes),
            cols: Vec::with_capacity(l),
            eps: p.tol,
            unshrink: false,
            shrinking: p.shrinking,
            max_iter,
        }
    }

    #[inline]
    fn is_upper(&self, i: usize) -> bool {
        self.alpha_status[i] == UPPER
    }
    #[inline]
    fn is_lower(&self, i: usize) -> bool {
        self.alpha_status[i] == LOWER
    }
    #[inline]
    fn is_free(&self, i: usize) -> bool {
        self.alpha_status[i] == FREE
    }

    fn update_alpha_status(&mut self, i: usize) {
        self.alpha_status[i] = if self.alpha[i] >= self.c[i] {
            UPPER
        } else if self.alpha[i] <= 0.0 {
            LOWER
        } else {
            FREE
        };
    }

    /// Make sure row `i` of `Q` holds at least `len` values (computing what is missing).
    fn fill_q(&mut self, i: usize, len: usize) {
        let start = self.cache.prepare(i, len);
        if start >= len {
            return;
        }
        self.cols.clear();
        self.cols.extend_from_slice(&self.map[start..len]);

        let row = self.cache.row_mut(i);
        let out = &mut row[start..len];
        self.gram.row(self.map[i], &self.cols, out);
        let yi = self.y[i];
        for (o, &yj) in out.iter_mut().zip(&self.y[start..len]) {
            if yi != yj {
                *o = -*o;
            }
        }
    }

    fn swap_index(&mut self, i: usize, j: usize) {
        if i == j {
            return;
        }
        self.cache.swap_index(i, j);
        self.map.swap(i, j);
        self.y.swap(i, j);
        self.g.swap(i, j);
        self.g_bar.swap(i, j);
        self.alpha.swap(i, j);
        self.alpha_status.swap(i, j);
        self.c.swap(i, j);
        self.qd.swap(i, j);
        self.active_set.swap(i, j);
    }

    #[allow(clippy::needless_range_loop)] // libsvm's index loops, kept for fidelity
    fn reconstruct_gradient(&mut self) {
        if self.active_size == self.l {
            return;
        }
        let (act, l) = (self.active_size, self.l);
        for j in act..l {
            self.g[j] = self.g_bar[j] - 1.0;
        }
        let nr_free = (0..act).filter(|&j| self.is_free(j)).count();
        if nr_free * l > 2 * act * (l - act) {
            for i in act..l {
                self.fill_q(i, act);
                let qi = self.cache.row(i);
                let mut s = 0.0;
                for j in 0..act {
                    if self.alpha_status[j] == FREE {
                        s += self.alpha[j] * f64::from(qi[j]);
                    }
                }
                self.g[i] += s;
            }
        } else {
            for i in 0..act {
                if !self.is_free(i) {
                    continue;
                }
                self.fill_q(i, l);
                let qi = self.cache.row(i);
                let ai = self.alpha[i];
                for j in act..l {
                    self.g[j] += ai * f64::from(qi[j]);
                }
            }
        }
    }

    fn solve(&mut self, monitor: &Monitor<'_>) -> Result<BinarySolution, SvmError> {
        // alpha starts at 0: G = p = -1, G_bar = 0 (nothing to initialise).
        let mut iter = 0usize;
        let mut counter = self.l.min(1000) + 1;
        while iter < self.max_iter {
            counter -= 1;
            if counter == 0 {
                counter = self.l.min(1000);
                if self.shrinking {
                    self.do_shrinking();
                }
            }
            if iter.is_multiple_of(CHECK_EVERY) {
                monitor.check()?;
            }
            let (i, j) = match self.select_working_set() {
                Some(p) => p,
                None => {
                    self.reconstruct_gradient();
                    self.active_size = self.l;
                    match self.select_working_set() {
                        Some(p) => {
                            counter = 1;
                            p
                        }
                        None => break,
                    }
                }
            };
            iter += 1;
            self.take_step(i, j);
        }
        let converged = iter < self.max_iter;

        if !converged && self.active_size < self.l {
            self.reconstruct_gradient();
            self.active_size = self.l;
        }
        let rho = self.calculate_rho();
        let mut objective = 0.0;
        for i in 0..self.l {
            objective += self.alpha[i] * (self.g[i] - 1.0);
        }
        objective /= 2.0;
        let mut coef = vec![0.0; self.l];
        for i in 0..self.l {
            coef[self.active_set[i]] = self.alpha[i] * f64::from(self.y[i]);
        }
        Ok(BinarySolution {
            coef,
            rho,
            objective,
            iterations: iter,
            converged,
        })
    }

    fn take_step(&mut self, i: usize, j: usize) {
        let act = self.active_size;
        self.fill_q(i, act);
        self.fill_q(j, act);
        let (ci, cj) = (self.c[i], self.c[j]);
        let (old_ai, old_aj) = (self.alpha[i], self.alpha[j]);
        let qij = f64::from(self.cache.row(i)[j]);
        let (mut ai, mut aj) = (old_ai, old_aj);
        if self.y[i] != self.y[j] {
            let mut quad = self.qd[i] + self.qd[j] + 2.0 * qij;
            if quad <= 0.0 {
                quad = TAU;
            }
            let delta = (-self.g[i] - self.g[j]) / quad;
            let diff = ai - aj;
            ai += delta;
            aj += delta;
            if diff > 0.0 {
                if aj < 0.0 {
                    aj = 0.0;
                    ai = diff;
                }
            } else if ai < 0.0 {
                ai = 0.0;
                aj = -diff;
            }
            if diff > ci - cj {
                if ai > ci {
                    ai = ci;
                    aj = ci - diff;
                }
            } else if aj > cj {
                aj = cj;
                ai = cj + diff;
            }
        } else {
            let mut quad = self.qd[i] + self.qd[j] - 2.0 * qij;
            if quad <= 0.0 {
                quad = TAU;
            }
            let delta = (self.g[i] - self.g[j]) / quad;
            let sum = ai + aj;
            ai -= delta;
            aj += delta;
            if sum > ci {
                if ai > ci {
                    ai = ci;
                    aj = sum - ci;
                }
            } else if aj < 0.0 {
                aj = 0.0;
                ai = sum;
            }
            if sum > cj {
                if aj > cj {
                    aj = cj;
                    ai = sum - cj;
                }
            } else if ai < 0.0 {
                ai = 0.0;
                aj = sum;
            }
        }
        self.alpha[i] = ai;
        self.alpha[j] = aj;
        let dai = ai - old_ai;
        let daj = aj - old_aj;
        {
            let qi = self.cache.row(i);
            let qj = self.cache.row(j);
            for ((g, &a), &b) in self.g[..act].iter_mut().zip(&qi[..act]).zip(&qj[..act]) {
                *g += f64::from(a) * dai + f64::from(b) * daj;
            }
        }
        let ui = self.is_upper(i);
        let uj = self.is_upper(j);
        self.update_alpha_status(i);
        self.update_alpha_status(j);
        let l = self.l;
        for (k, was_upper) in [(i, ui), (j, uj)] {
            if was_upper != self.is_upper(k) {
                self.fill_q(k, l);
                let ck = self.c[k];
                let qk = self.cache.row(k);
                let sign = if was_upper { -ck } else { ck };
                for (gb, &q) in self.g_bar.iter_mut().zip(&qk[..l]) {
                    *gb += sign * f64::from(q);
                }
            }
        }
    }

    /// WSS3: `i` maximises the violation, `j` the second-order objective decrease.
    #[allow(clippy::needless_range_loop)]
    fn select_working_set(&mut self) -> Option<(usize, usize)> {
        let act = self.active_size;
        let mut gmax = f64::NEG_INFINITY;
        let mut gmax2 = f64::NEG_INFINITY;
        let mut gmax_idx: Option<usize> = None;
        let mut gmin_idx: Option<usize> = None;
        let mut obj_diff_min = f64::INFINITY;
        for t in 0..act {
            if self.y[t] == 1 {
                if !self.is_upper(t) && -self.g[t] >= gmax {
                    gmax = -self.g[t];
                    gmax_idx = Some(t);
                }
            } else if !self.is_lower(t) && self.g[t] >= gmax {
                gmax = self.g[t];
                gmax_idx = Some(t);
            }
        }
        // No candidate for i: nothing violates the optimality conditions.
        let i = gmax_idx?;
        self.fill_q(i, act);
        let qi: &[f32] = self.cache.row(i);
        let (yi, qdi) = (f64::from(self.y[i]), self.qd[i]);
        for j in 0..act {
            if self.y[j] == 1 {
                if self.alpha_status[j] != LOWER {
                    let grad_diff = gmax + self.g[j];
                    if self.g[j] >= gmax2 {
                        gmax2 = self.g[j];
                    }
                    if grad_diff > 0.0 {
                        let quad = qdi + self.qd[j] - 2.0 * yi * f64::from(qi[j]);
                        let obj_diff = if quad > 0.0 {
                            -(grad_diff * grad_diff) / quad
                        } else {
                            -(grad_diff * grad_diff) / TAU
                        };
                        if obj_diff <= obj_diff_min {
                            gmin_idx = Some(j);
                            obj_diff_min = obj_diff;
                        }
                    }
                }
            } else if self.alpha_status[j] != UPPER {
                let grad_diff = gmax - self.g[j];
                if -self.g[j] >= gmax2 {
                    gmax2 = -self.g[j];
                }
                if grad_diff > 0.0 {
                    let quad = qdi + self.qd[j] + 2.0 * yi * f64::from(qi[j]);
                    let obj_diff = if quad > 0.0 {
                        -(grad_diff * grad_diff) / quad
                    } else {
                        -(grad_diff * grad_diff) / TAU
                    };
                    if obj_diff <= obj_diff_min {
                        gmin_idx = Some(j);
                        obj_diff_min = obj_diff;
                    }
                }
            }
        }
        if gmax + gmax2 < self.eps {
            return None;
        }
        gmin_idx.map(|j| (i, j))
    }

    fn be_shrunk(&self, i: usize, gmax1: f64, gmax2: f64) -> bool {
        if self.is_upper(i) {
            if self.y[i] == 1 {
                -self.g[i] > gmax1
            } else {
                -self.g[i] > gmax2
            }
        } else if self.is_lower(i) {
            if self.y[i] == 1 {
                self.g[i] > gmax2
            } else {
                self.g[i] > gmax1
            }
        } else {
            false
        }
    }

    fn do_shrinking(&mut self) {
        let mut gmax1 = f64::NEG_INFINITY;
        let mut gmax2 = f64::NEG_INFINITY;
        for i in 0..self.active_size {
            let g = self.g[i];
            if self.y[i] == 1 {
                if !self.is_upper(i) && -g >= gmax1 {
                    gmax1 = -g;
                }
                if !self.is_lower(i) && g >= gmax2 {
                    gmax2 = g;
                }
            } else {
                if !self.is_upper(i) && -g >= gmax2 {
                    gmax2 = -g;
                }
                if !self.is_lower(i) && g >= gmax1 {
                    gmax1 = g;
                }
            }
        }
        if !self.unshrink && gmax1 + gmax2 <= self.eps * 10.0 {
            self.unshrink = true;
            self.reconstruct_gradient();
            self.active_size = self.l;
        }
        let mut i = 0;
        while i < self.active_size {
            if self.be_shrunk(i, gmax1, gmax2) {
                self.active_size -= 1;
                while self.active_size > i {
                    if !self.be_shrunk(self.active_size, gmax1, gmax2) {
                        self.swap_index(i, self.active_size);
                        break;
                    }
                    self.active_size -= 1;
                }
            }
            i += 1;
        }
    }

    fn calculate_rho(&self) -> f64 {
        let mut nr_free = 0usize;
        let mut ub = f64::INFINITY;
        let mut lb = f64::NEG_INFINITY;
        let mut sum_free = 0.0;
        for i in 0..self.active_size {
            let yg = f64::from(self.y[i]) * self.g[i];
            if self.is_upper(i) {
                if self.y[i] == -1 {
                    ub = ub.min(yg);
                } else {
                    lb = lb.max(yg);
                }
            } else if self.is_lower(i) {
                if self.y[i] == 1 {
                    ub = ub.min(yg);
                } else {
                    lb = lb.max(yg);
                }
            } else {
                nr_free += 1;
                sum_free += yg;
            }
        }
        if nr_free > 0 {
            sum_free / nr_free as f64
        } else {
            (ub + lb) / 2.0
        }
    }
}

#[cfg(test)]
#[path = "solver_tests.rs"]
mod tests;
