//! One-vs-one multiclass C-SVC with libsvm's (and scikit-learn's) model layout.
//!
//! Classes are `0..n_classes`. For every pair `a < b` (in the order `(0,1), (0,2), …,
//! (1,2), …`) a binary problem is solved with class `a` as `+1` and `b` as `-1`; the
//! problems run in parallel in the rayon pool. The model keeps:
//!
//! - `support`: training indices of the support vectors, grouped by class (ascending),
//!   in training order within a class (scikit-learn's `support_`);
//! - `dual_coef`: `(n_classes - 1) × n_sv`; for pair `(a, b)` the coefficients of the
//!   support vectors of class `a` are in row `b - 1`, those of class `b` in row `a`
//!   (scikit-learn's `dual_coef_` before its binary sign flip);
//! - `rho`: one bias per pair; the pair's decision value is `sum coef K - rho`
//!   (scikit-learn's `intercept_ = -rho`, before its binary sign flip).

use super::kernel::{Gram, Kernel};
use super::probability::{cv_permutations, pair_probability};
use super::solver::{solve_binary, BinarySolution, SolverParams};
use super::SvmError;
use crate::runtime::{Monitor, Progress};
use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fitted one-vs-one model (see the module docs for the layout).
#[derive(Debug, Clone, PartialEq)]
pub struct OvoModel {
    /// Number of classes (at least 2).
    pub n_classes: usize,
    /// Training indices of the support vectors.
    pub support: Vec<usize>,
    /// Number of support vectors of each class.
    pub n_support: Vec<usize>,
    /// `(n_classes - 1) × n_sv` dual coefficients `y_i alpha_i`.
    pub dual_coef: Array2<f64>,
    /// Bias of each pair.
    pub rho: Vec<f64>,
    /// SMO iterations of each pair.
    pub iterations: Vec<usize>,
    /// `false` when some pair stopped at the iteration limit.
    pub converged: bool,
    /// Platt sigmoid `A` of each pair (empty without a probability model).
    pub prob_a: Vec<f64>,
    /// Platt sigmoid `B` of each pair (empty without a probability model).
    pub prob_b: Vec<f64>,
}

/// The pairs `(a, b)`, `a < b`, in libsvm's order.
pub fn pairs(n_classes: usize) -> Vec<(usize, usize)> {
    let mut v = Vec::with_capacity(n_classes * n_classes.saturating_sub(1) / 2);
    for a in 0..n_classes {
        for b in a + 1..n_classes {
            v.push((a, b));
        }
    }
    v
}

/// Fit a one-vs-one C-SVC.
///
/// `y[i] < n_classes` is the class of training sample `i` of `gram`; `sample_c[i]` its
/// box bound (`C` times class and sample weights). Samples with a bound `<= 0` are left
/// out (as scikit-learn does for non-positive sample weights). The kernel-row cache
/// budget `params.cache_bytes` is shared by the binary problems running at once.
pub fn fit_ovo(
    gram: &dyn Gram,
    y: &[usize],
    n_classes: usize,
    sample_c: &[f64],
    params: &SolverParams,
    monitor: &Monitor<'_>,
) -> Result<OvoModel, SvmError> {
    fit_ovo_with(gram, y, n_classes, sample_c, params, None, monitor)
}

/// [`fit_ovo`], and with `probability = Some(seed)` also libsvm's probability model
/// (see [`crate::svm::probability`]): every pair's sigmoid from a 5-fold
/// cross-validation whose shuffles are drawn from `seed`.
pub fn fit_ovo_with(
    gram: &dyn Gram,
    y: &[usize],
    n_classes: usize,
    sample_c: &[f64],
    params: &SolverParams,
    probability: Option<u32>,
    monitor: &Monitor<'_>,
) -> Result<OvoModel, SvmError> {
    let n = gram.n();
    let members = group(n, y, n_classes, sample_c)?;
    let pairs = pairs(n_classes);
    let concurrent = rayon::current_num_threads().clamp(1, pairs.len());
    let sub = SolverParams {
        cache_bytes: params.cache_bytes / concurrent,
        ..*params
    };
    let perms = probability.map(|seed| permutations(seed, &pairs, &members));
    let order = largest_first(&pairs, &members);
    let done = AtomicUsize::new(0);
    let sols = order
        .par_iter()
        .map(|&p| {
            let (a, b) = pairs[p];
            let index: Vec<usize> = members[a].iter().chain(&members[b]).copied().collect();
            let na = members[a].len();
            let c: Vec<f64> = index.iter().map(|&i| sample_c[i]).collect();
            let sigmoid = match &perms {
                Some(perms) => Some(pair_probability(
                    gram, &index, na, &c, &perms[p], &sub, monitor,
                )?),
                None => None,
            };
            let sol = solve_pair_with_c(gram, &index, na, &c, &sub, monitor)?;
            report(monitor, &done, pairs.len(), &sol)?;
            Ok((p, sol, sigmoid))
        })
        .collect::<Result<Vec<_>, SvmError>>()?;
    Ok(assemble(n, n_classes, &members, &pairs, sols))
}

/// The cross-validation shuffles of every pair (libsvm's draws, in pair order).
fn permutations(seed: u32, pairs: &[(usize, usize)], members: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let sizes: Vec<(usize, usize)> = pairs
        .iter()
        .map(|&(a, b)| (members[a].len(), members[b].len()))
        .collect();
    cv_permutations(seed, &sizes)
}

/// Fit a one-vs-one C-SVC on feature rows `x` with `kernel`, sharing kernel work
/// between the binary problems.
///
/// When the within-class kernel blocks plus the cross-class blocks of the problems
/// running at once fit in `params.cache_bytes`, every within-class block
/// `K(class a, class a)` is computed once (by [`Kernel::block`], a matrix product for
/// the built-in kernels) and shared by the `n_classes - 1` problems that need it; each
/// problem computes its cross block `K(a, b)` the same way; the solver's row cache
/// gets the rest of the budget. Otherwise it falls back to [`fit_ovo`] with kernel rows
/// computed on demand. Same results either way (up to float rounding).
pub fn fit_ovo_features(
    kernel: &dyn Kernel,
    x: ArrayView2<'_, f32>,
    y: &[usize],
    n_classes: usize,
    sample_c: &[f64],
    params: &SolverParams,
    monitor: &Monitor<'_>,
) -> Result<OvoModel, SvmError> {
    fit_ovo_features_with(kernel, x, y, n_classes, sample_c, params, None, monitor)
}

/// [`fit_ovo_features`], and with `probability = Some(seed)` also the probability
/// model (as [`fit_ovo_with`]; the cross-validation folds read the same shared blocks).
#[allow(clippy::too_many_arguments)]
pub fn fit_ovo_features_with(
    kernel: &dyn Kernel,
    x: ArrayView2<'_, f32>,
    y: &[usize],
    n_classes: usize,
    sample_c: &[f64],
    params: &SolverParams,
    probability: Option<u32>,
    monitor: &Monitor<'_>,
) -> Result<OvoModel, SvmError> {
    let n = x.nrows();
    let members = group(n, y, n_classes, sample_c)?;
    let pairs = pairs(n_classes);
    let f = std::mem::size_of::<f32>();
    let diag_bytes: usize = members.iter().map(|m| m.len() * m.len() * f).sum();
    let cross_bytes = pairs
        .iter()
        .map(|&(a, b)| members[a].len() * members[b].len() * f)
        .max()
        .unwrap_or(0);
    let threads = rayon::current_num_threads().clamp(1, pairs.len());
    let room = params.cache_bytes.saturating_sub(diag_bytes);
    let concurrent = room
        .checked_div(cross_bytes)
        .map_or(threads, |v| v.min(threads));
    if concurrent == 0 {
        let g = super::kernel::FeatureGram::new(kernel, x);
        return fit_ovo_with(&g, y, n_classes, sample_c, params, probability, monitor);
    }
    let sub = SolverParams {
        cache_bytes: (room - concurrent * cross_bytes) / concurrent,
        ..*params
    };
    let xs: Vec<Array2<f32>> = members.iter().map(|m| x.select(Axis(0), m)).collect();
    let mut diag = Vec::with_capacity(n_classes);
    for xk in &xs {
        monitor.check()?;
        let mut k = Array2::<f32>::zeros((xk.nrows(), xk.nrows()));
        kernel.block_symmetric(xk.view(), k.view_mut());
        diag.push(k);
    }
    let perms = probability.map(|seed| permutations(seed, &pairs, &members));
    let order = largest_first(&pairs, &members);
    let done = AtomicUsize::new(0);
    // `concurrent` workers take the pairs (largest first) from one queue: at most
    // `concurrent` cross blocks exist at once, and no worker waits for a slower pair
    // of a batch (as a batch barrier would make it).
    let next = AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicBool::new(false);
    let solve = |p: usize| -> Result<PairFit, SvmError> {
        monitor.check()?;
        let (a, b) = pairs[p];
        let mut ab = Array2::<f32>::zeros((xs[a].nrows(), xs[b].nrows()));
        kernel.block(xs[a].view(), xs[b].view(), ab.view_mut());
        let g = PairGram {
            aa: &diag[a],
            bb: &diag[b],
            ab: &ab,
        };
        let index: Vec<usize> = (0..g.n()).collect();
        let c: Vec<f64> = members[a]
            .iter()
            .chain(&members[b])
            .map(|&i| sample_c[i])
            .collect();
        let na = members[a].len();
        let sigmoid = match &perms {
            Some(perms) => Some(pair_probability(
                &g, &index, na, &c, &perms[p], &sub, monitor,
            )?),
            None => None,
        };
        let sol = solve_pair_with_c(&g, &index, na, &c, &sub, monitor)?;
        report(monitor, &done, pairs.len(), &sol)?;
        Ok((p, sol, sigmoid))
    };
    let parts = (0..concurrent)
        .into_par_iter()
        .map(|_| {
            let mut mine = Vec::new();
            while !failed.load(Ordering::Relaxed) {
                let t = next.fetch_add(1, Ordering::SeqCst);
                let Some(&p) = order.get(t) else { break };
                match solve(p) {
                    Ok(fit) => mine.push(fit),
                    Err(e) => {
                        failed.store(true, Ordering::Relaxed);
                        return Err(e);
                    }
                }
            }
            Ok(mine)
        })
        .collect::<Result<Vec<_>, SvmError>>()?;
    let sols: Vec<PairFit> = parts.into_iter().flatten().collect();
    Ok(assemble(n, n_classes, &members, &pairs, sols))
}

/// The kernel of one pair problem from shared blocks: samples `0..na` are class `a`,
/// the rest class `b`.
struct PairGram<'a> {
    aa: &'a Array2<f32>,
    bb: &'a Array2<f32>,
    /// `K(a, b)`; rows of class-`b` samples read its columns (the solver caches rows).
    ab: &'a Array2<f32>,
}

impl Gram for PairGram<'_> {
    fn n(&self) -> usize {
        self.aa.nrows() + self.bb.nrows()
    }
    fn diag(&self, i: usize) -> f64 {
        let na = self.aa.nrows();
        f64::from(if i < na {
            self.aa[[i, i]]
        } else {
            self.bb[[i - na, i - na]]
        })
    }
    fn row(&self, i: usize, cols: &[usize], out: &mut [f32]) {
        let na = self.aa.nrows();
        let (left, right) = if i < na {
            (self.aa.row(i), self.ab.row(i))
        } else {
            (self.ab.column(i - na), self.bb.row(i - na))
        };
        for (o, &c) in out.iter_mut().zip(cols) {
            *o = if c < na { left[c] } else { right[c - na] };
        }
    }
}

/// Samples of each class with a positive bound, after validating the inputs.
fn group(
    n: usize,
    y: &[usize],
    n_classes: usize,
    sample_c: &[f64],
) -> Result<Vec<Vec<usize>>, SvmError> {
    if y.len() != n || sample_c.len() != n {
        return Err(SvmError::Shape(format!(
            "{} samples in the kernel but {} labels and {} weights",
            n,
            y.len(),
            sample_c.len()
        )));
    }
    if n_classes < 2 {
        return Err(SvmError::Value(format!(
            "need at least 2 classes, got {n_classes}"
        )));
    }
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); n_classes];
    for (i, (&c, &w)) in y.iter().zip(sample_c).enumerate() {
        if c >= n_classes {
            return Err(SvmError::Value(format!(
                "label {c} of sample {i} is not below n_classes = {n_classes}"
            )));
        }
        if !w.is_finite() {
            return Err(SvmError::Value(format!(
                "weight of sample {i} is not finite"
            )));
        }
        if w > 0.0 {
            members[c].push(i);
        }
    }
    if let Some(k) = members.iter().position(Vec::is_empty) {
        return Err(SvmError::Value(format!(
            "class {k} has no sample with a positive weight"
        )));
    }
    Ok(members)
}

/// Pair indices, larger problems first (better load balance).
fn largest_first(pairs: &[(usize, usize)], members: &[Vec<usize>]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..pairs.len()).collect();
    order.sort_by_key(|&p| {
        let (a, b) = pairs[p];
        std::cmp::Reverse(members[a].len() + members[b].len())
    });
    order
}

fn report(
    monitor: &Monitor<'_>,
    done: &AtomicUsize,
    total: usize,
    sol: &BinarySolution,
) -> Result<(), SvmError> {
    let step = done.fetch_add(1, Ordering::SeqCst) + 1;
    let keep = monitor.report(&Progress {
        step,
        total: Some(total),
        metrics: vec![("iterations".to_string(), sol.iterations as f64)],
    });
    if keep {
        Ok(())
    } else {
        Err(SvmError::Cancelled(crate::runtime::Cancelled))
    }
}

fn solve_pair_with_c(
    gram: &dyn Gram,
    index: &[usize],
    na: usize,
    c: &[f64],
    params: &SolverParams,
    monitor: &Monitor<'_>,
) -> Result<BinarySolution, SvmError> {
    let y: Vec<i8> = (0..index.len())
        .map(|t| if t < na { 1 } else { -1 })
        .collect();
    solve_binary(gram, index, &y, c, params, monitor)
}

/// One fitted pair: its index, its solution and (with a probability model) its sigmoid.
type PairFit = (usize, BinarySolution, Option<(f64, f64)>);

/// Build the model from the pair solutions (libsvm's `svm_train` bookkeeping).
fn assemble(
    n: usize,
    n_classes: usize,
    members: &[Vec<usize>],
    pairs: &[(usize, usize)],
    mut sols: Vec<PairFit>,
) -> OvoModel {
    sols.sort_by_key(|(p, _, _)| *p);
    let total = pairs.len();
    let mut nonzero = vec![false; n];
    for (p, sol, _) in &sols {
        let (a, b) = pairs[*p];
        for (&i, &c) in members[a].iter().chain(&members[b]).zip(&sol.coef) {
            if c != 0.0 {
                nonzero[i] = true;
            }
        }
    }
    let mut support = Vec::new();
    let mut n_support = vec![0usize; n_classes];
    let mut pos = vec![usize::MAX; n];
    for (k, m) in members.iter().enumerate() {
        for &i in m {
            if nonzero[i] {
                pos[i] = support.len();
                support.push(i);
                n_support[k] += 1;
            }
        }
    }
    let mut dual_coef = Array2::<f64>::zeros((n_classes - 1, support.len()));
    let mut rho = vec![0.0; total];
    let mut iterations = vec![0; total];
    let mut converged = true;
    for (p, sol, _) in &sols {
        let (a, b) = pairs[*p];
        let (ma, mb) = (&members[a], &members[b]);
        for (t, &i) in ma.iter().enumerate() {
            if nonzero[i] {
                dual_coef[[b - 1, pos[i]]] = sol.coef[t];
            }
        }
        for (t, &i) in mb.iter().enumerate() {
            if nonzero[i] {
                dual_coef[[a, pos[i]]] = sol.coef[ma.len() + t];
            }
        }
        rho[*p] = sol.rho;
        iterations[*p] = sol.iterations;
        converged &= sol.converged;
    }
    let (prob_a, prob_b) = sols.iter().filter_map(|(_, _, s)| *s).unzip();
    OvoModel {
        n_classes,
        support,
        n_support,
        dual_coef,
        rho,
        iterations,
        converged,
        prob_a,
        prob_b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::svm::kernel::{BuiltinKernel, FeatureGram, PrecomputedGram};
    use ndarray::array;

    #[test]
    fn three_classes_on_a_line_layout_and_votes() {
        // Classes at x = 0, 5, 10 (two points each), linear-separable pairwise.
        let x = array![[0.0f32], [10.0], [5.0], [0.5], [10.5], [5.5]];
        let y = [0, 2, 1, 0, 2, 1];
        let k = BuiltinKernel::Rbf { gamma: 0.1 };
        let g = FeatureGram::new(&k, x.view());
        let m = fit_ovo(
            &g,
            &y,
            3,
            &[10.0; 6],
            &SolverParams::default(),
            &Monitor::none(),
        )
        .unwrap();
        m.validate().unwrap();
        // Support vectors grouped by class, training order within a class.
        let classes: Vec<usize> = m.support.iter().map(|&i| y[i]).collect();
        let mut sorted = classes.clone();
        sorted.sort();
        assert_eq!(classes, sorted);
        assert_eq!(m.n_support.iter().sum::<usize>(), m.support.len());
        let sv = x.select(Axis(0), &m.support);
        let pred = m.predict(&k, sv.view(), x.view()).unwrap();
        assert_eq!(pred, y.to_vec());
        // Pair (0, 1) coefficients: class 0 SVs in row 0 (b - 1), class 1 SVs in row 0 (a).
        let col_sum: f64 = m
            .dual_coef
            .row(0)
            .iter()
            .take(m.n_support[0] + m.n_support[1])
            .sum();
        assert!(
            col_sum.abs() < 1e-9,
            "pair (0,1) coefficients sum to {col_sum}"
        );
    }

    #[test]
    fn shared_blocks_match_on_demand_rows() {
        // 3 classes of 2-d points on a grid; tiny cache forces the on-demand fallback.
        let n = 60;
        let x = Array2::from_shape_fn((n, 2), |(i, k)| {
            ((i * (3 + k) * 7) % 13) as f32 / 4.0 + (i % 3) as f32 * (k as f32)
        });
        let y: Vec<usize> = (0..n).map(|i| i % 3).collect();
        let k = BuiltinKernel::Rbf { gamma: 0.5 };
        let c = vec![1.0; n];
        let p = SolverParams {
            tol: 1e-6,
            ..SolverParams::default()
        };
        let shared = fit_ovo_features(&k, x.view(), &y, 3, &c, &p, &Monitor::none()).unwrap();
        let tiny = SolverParams {
            cache_bytes: 16,
            ..p
        };
        let rows = fit_ovo_features(&k, x.view(), &y, 3, &c, &tiny, &Monitor::none()).unwrap();
        assert_eq!(shared.support, rows.support);
        for (a, b) in shared.dual_coef.iter().zip(rows.dual_coef.iter()) {
            assert!((a - b).abs() < 1e-4);
        }
        for (a, b) in shared.rho.iter().zip(&rows.rho) {
            assert!((a - b).abs() < 1e-4);
        }
    }

    #[test]
    fn zero_weight_samples_are_left_out_and_errors_are_reported() {
        let k = array![[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
        let g = PrecomputedGram::new(k.view()).unwrap();
        let m = fit_ovo(
            &g,
            &[0, 1, 1],
            2,
            &[1.0, 1.0, 0.0],
            &SolverParams::default(),
            &Monitor::none(),
        )
        .unwrap();
        assert_eq!(m.support, vec![0, 1]);
        let e = fit_ovo(
            &g,
            &[0, 1, 1],
            2,
            &[0.0, 1.0, 1.0],
            &SolverParams::default(),
            &Monitor::none(),
        );
        assert!(matches!(e, Err(SvmError::Value(_))));
        let e = fit_ovo(
            &g,
            &[0, 1],
            2,
            &[1.0; 2],
            &SolverParams::default(),
            &Monitor::none(),
        );
        assert!(matches!(e, Err(SvmError::Shape(_))));
        let e = fit_ovo(
            &g,
            &[0, 1, 3],
            2,
            &[1.0; 3],
            &SolverParams::default(),
            &Monitor::none(),
        );
        assert!(matches!(e, Err(SvmError::Value(_))));
    }

    #[test]
    fn builtin_kernel_row_and_block_agree_with_formulas() {
        let a = array![[0.1f32, 0.2, 0.3], [1.0, -1.0, 0.5]];
        let b = array![[0.3f32, 0.1, -0.2], [0.0, 0.0, 1.0], [2.0, 1.0, 0.0]];
        let kernels = [
            BuiltinKernel::Linear,
            BuiltinKernel::Rbf { gamma: 0.7 },
            BuiltinKernel::Poly {
                gamma: 0.5,
                coef0: 1.0,
                degree: 3,
            },
            BuiltinKernel::Sigmoid {
                gamma: 0.3,
                coef0: -0.2,
            },
        ];
        for k in kernels {
            let mut blk = Array2::<f32>::zeros((2, 3));
            k.block(a.view(), b.view(), blk.view_mut());
            for p in 0..2 {
                let mut row = [0f32; 3];
                k.row(a.view(), p, b.view(), &[0, 1, 2], &mut row);
                for q in 0..3 {
                    let (u, v) = (a.row(p), b.row(q));
                    let dot = f64::from(u.dot(&v));
                    let d2: f64 = u
                        .iter()
                        .zip(v.iter())
                        .map(|(x, y)| f64::from(x - y).powi(2))
                        .sum();
                    let want = match k {
                        BuiltinKernel::Linear => dot,
                        BuiltinKernel::Rbf { gamma } => (-gamma * d2).exp(),
                        BuiltinKernel::Poly {
                            gamma,
                            coef0,
                            degree,
                        } => (gamma * dot + coef0).powi(degree),
                        BuiltinKernel::Sigmoid { gamma, coef0 } => (gamma * dot + coef0).tanh(),
                    };
                    assert!((f64::from(row[q]) - want).abs() < 1e-5, "{k:?} row");
                    assert!((f64::from(blk[[p, q]]) - want).abs() < 1e-5, "{k:?} block");
                }
            }
        }
    }
}
