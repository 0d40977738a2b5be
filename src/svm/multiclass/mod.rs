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
//!
//! Files: this one (the model, the labels, fitting on any [`Gram`]), `features`
//! ([`fit_ovo_features`]: shared kernel blocks), `assemble` (the model from the pair
//! solutions).

use super::kernel::Gram;
use super::probability::{cv_permutations, pair_probability, PairProblem};
use super::solver::{solve_binary, BinarySolution, SolverParams};
use super::SvmError;
use crate::runtime::{Monitor, Progress};
use ndarray::Array2;
use rayon::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};

mod assemble;
mod features;

use assemble::assemble;
pub use features::{fit_ovo_features, fit_ovo_features_with, fit_ovo_sparse_with};

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

/// The training labels of a multiclass problem: the class of every sample (`y[i] <
/// n_classes`) and its box bound (`C` times class and sample weights; a sample with a
/// bound `<= 0` is left out).
#[derive(Debug, Clone, Copy)]
pub struct Classes<'a> {
    /// Class of each training sample.
    pub y: &'a [usize],
    /// Number of classes.
    pub n_classes: usize,
    /// Box bound of each training sample.
    pub sample_c: &'a [f64],
}

impl<'a> Classes<'a> {
    /// Labels `y` in `0..n_classes` with box bounds `sample_c`.
    pub fn new(y: &'a [usize], n_classes: usize, sample_c: &'a [f64]) -> Self {
        Classes {
            y,
            n_classes,
            sample_c,
        }
    }
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
/// `classes.y[i] < n_classes` is the class of training sample `i` of `gram`;
/// `classes.sample_c[i]` its box bound (`C` times class and sample weights). Samples
/// with a bound `<= 0` are left out (as scikit-learn does for non-positive sample
/// weights). The kernel-row cache budget `params.cache_bytes` is shared by the binary
/// problems running at once.
pub fn fit_ovo(
    gram: &dyn Gram,
    classes: &Classes<'_>,
    params: &SolverParams,
    monitor: &Monitor<'_>,
) -> Result<OvoModel, SvmError> {
    fit_ovo_with(gram, classes, params, None, monitor)
}

/// [`fit_ovo`], and with `probability = Some(seed)` also libsvm's probability model
/// (see [`crate::svm::probability`]): every pair's sigmoid from a 5-fold
/// cross-validation whose shuffles are drawn from `seed`.
pub fn fit_ovo_with(
    gram: &dyn Gram,
    classes: &Classes<'_>,
    params: &SolverParams,
    probability: Option<u32>,
    monitor: &Monitor<'_>,
) -> Result<OvoModel, SvmError> {
    let Classes {
        y,
        n_classes,
        sample_c,
    } = *classes;
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
            let problem = PairProblem {
                gram,
                index: &index,
                na,
                c: &c,
            };
            let sigmoid = match &perms {
                Some(perms) => Some(pair_probability(&problem, &perms[p], &sub, monitor)?),
                None => None,
            };
            let sol = solve_pair_with_c(&problem, &sub, monitor)?;
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
        // `+inf` is a hard margin (`C = inf`); NaN and `-inf` are refused.
        if w.is_nan() || w == f64::NEG_INFINITY {
            return Err(SvmError::Value(format!(
                "weight of sample {i} is NaN or -inf"
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
    problem: &PairProblem<'_>,
    params: &SolverParams,
    monitor: &Monitor<'_>,
) -> Result<BinarySolution, SvmError> {
    let PairProblem { gram, index, na, c } = *problem;
    let y: Vec<i8> = (0..index.len())
        .map(|t| if t < na { 1 } else { -1 })
        .collect();
    solve_binary(gram, index, &y, c, params, monitor)
}

/// One fitted pair: its index, its solution and (with a probability model) its sigmoid.
type PairFit = (usize, BinarySolution, Option<(f64, f64)>);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::svm::kernel::{BuiltinKernel, FeatureGram, Kernel, PrecomputedGram};
    use ndarray::{array, Axis};

    #[test]
    fn three_classes_on_a_line_layout_and_votes() {
        // Classes at x = 0, 5, 10 (two points each), linear-separable pairwise.
        let x = array![[0.0f32], [10.0], [5.0], [0.5], [10.5], [5.5]];
        let y = [0, 2, 1, 0, 2, 1];
        let k = BuiltinKernel::Rbf { gamma: 0.1 };
        let g = FeatureGram::new(&k, x.view());
        let m = fit_ovo(
            &g,
            &Classes::new(&y, 3, &[10.0; 6]),
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
        let shared =
            fit_ovo_features(&k, x.view(), &Classes::new(&y, 3, &c), &p, &Monitor::none()).unwrap();
        let tiny = SolverParams {
            cache_bytes: 16,
            ..p
        };
        let rows = fit_ovo_features(
            &k,
            x.view(),
            &Classes::new(&y, 3, &c),
            &tiny,
            &Monitor::none(),
        )
        .unwrap();
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
            &Classes::new(&[0, 1, 1], 2, &[1.0, 1.0, 0.0]),
            &SolverParams::default(),
            &Monitor::none(),
        )
        .unwrap();
        assert_eq!(m.support, vec![0, 1]);
        let e = fit_ovo(
            &g,
            &Classes::new(&[0, 1, 1], 2, &[0.0, 1.0, 1.0]),
            &SolverParams::default(),
            &Monitor::none(),
        );
        assert!(matches!(e, Err(SvmError::Value(_))));
        let e = fit_ovo(
            &g,
            &Classes::new(&[0, 1], 2, &[1.0; 2]),
            &SolverParams::default(),
            &Monitor::none(),
        );
        assert!(matches!(e, Err(SvmError::Shape(_))));
        let e = fit_ovo(
            &g,
            &Classes::new(&[0, 1, 3], 2, &[1.0; 3]),
            &SolverParams::default(),
            &Monitor::none(),
        );
        assert!(matches!(e, Err(SvmError::Value(_))));
        // +inf is a hard margin (C = inf); NaN and -inf are refused
        let m = fit_ovo(
            &g,
            &Classes::new(&[0, 1, 1], 2, &[f64::INFINITY; 3]),
            &SolverParams::default(),
            &Monitor::none(),
        )
        .unwrap();
        assert!(m.converged && m.dual_coef.iter().all(|v| v.is_finite()));
        for bad in [f64::NAN, f64::NEG_INFINITY] {
            let e = fit_ovo(
                &g,
                &Classes::new(&[0, 1, 1], 2, &[1.0, bad, 1.0]),
                &SolverParams::default(),
                &Monitor::none(),
            );
            assert!(matches!(e, Err(SvmError::Value(_))), "{bad}");
        }
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
