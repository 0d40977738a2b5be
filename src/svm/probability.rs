//! Probability estimates of a C-SVC, libsvm's method (as bundled by scikit-learn):
//!
//! - at fit time, for every one-vs-one pair, **Platt scaling** of the pair's decision
//!   values: a sigmoid `P(first class | d) = 1 / (1 + exp(A d + B))` fitted by
//!   [`sigmoid_train`] (the Newton method with backtracking of Lin, Lin and Weng 2007,
//!   on Platt's prior-corrected targets) to decision values from an internal 5-fold
//!   cross-validation ([`pair_probability`], libsvm's `svm_binary_svc_probability`);
//! - at prediction time, **pairwise coupling** of the pair probabilities
//!   ([`multiclass_probability`], method 2 of Wu, Lin and Weng 2004) after clipping them
//!   to `[1e-7, 1 - 1e-7]` ([`predict_proba`], libsvm's `svm_predict_probability`).
//!
//! The cross-validation shuffles follow scikit-learn's libsvm draw for draw
//! ([`cv_permutations`]: a 32-bit Mersenne Twister seeded with the fit's seed, Lemire's
//! bounded integers, the generator re-seeded by every fold's inner training), so the
//! same `random_state` gives the same folds as `sklearn.svm.SVC(probability=True)`.
//! The folds of a pair are trained in parallel with the ordinary solver.

use super::kernel::Gram;
use super::solver::{solve_binary, SolverParams};
use super::SvmError;
use crate::runtime::Monitor;
use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;

/// Number of cross-validation folds (libsvm's fixed `nr_fold`).
pub const N_FOLDS: usize = 5;

/// Pair probabilities are clipped to `[MIN_PROB, 1 - MIN_PROB]` before coupling.
pub const MIN_PROB: f64 = 1e-7;

/// The 32-bit Mersenne Twister (`std::mt19937`), the generator of scikit-learn's libsvm.
#[derive(Clone)]
pub struct Mt19937 {
    mt: [u32; 624],
    idx: usize,
}

impl Mt19937 {
    /// `std::mt19937(seed)`.
    pub fn new(seed: u32) -> Self {
        let mut mt = [0u32; 624];
        mt[0] = seed;
        for i in 1..624 {
            mt[i] = 1_812_433_253u32
                .wrapping_mul(mt[i - 1] ^ (mt[i - 1] >> 30))
                .wrapping_add(i as u32);
        }
        Mt19937 { mt, idx: 624 }
    }

    /// The next 32-bit output.
    pub fn next_u32(&mut self) -> u32 {
        if self.idx >= 624 {
            for i in 0..624 {
                let y = (self.mt[i] & 0x8000_0000) | (self.mt[(i + 1) % 624] & 0x7fff_ffff);
                let mut v = self.mt[(i + 397) % 624] ^ (y >> 1);
                if y & 1 != 0 {
                    v ^= 0x9908_b0df;
                }
                self.mt[i] = v;
            }
            self.idx = 0;
        }
        let mut y = self.mt[self.idx];
        self.idx += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// A uniform integer in `0..range` (`range >= 1`): scikit-learn's
    /// `bounded_rand_int`, Lemire's multiply-shift with rejection.
    pub fn bounded(&mut self, range: u32) -> u32 {
        let mut m = u64::from(self.next_u32()) * u64::from(range);
        let mut l = m as u32;
        if l < range {
            let mut t = range.wrapping_neg();
            if t >= range {
                t -= range;
                if t >= range {
                    t %= range;
                }
            }
            while l < t {
                m = u64::from(self.next_u32()) * u64::from(range);
                l = m as u32;
            }
        }
        (m >> 32) as u32
    }
}

/// Fold `f` of `l` shuffled samples is positions `begin..end` of the permutation.
pub fn fold_bounds(l: usize, f: usize) -> (usize, usize) {
    (f * l / N_FOLDS, (f + 1) * l / N_FOLDS)
}

/// Whether the training part of fold `f` (all but the fold) holds both classes, i.e.
/// whether libsvm trains a model on it. `positive(t)`: sample `t` is of the first class.
fn fold_trains(perm: &[usize], f: usize, positive: impl Fn(usize) -> bool) -> bool {
    let (begin, end) = fold_bounds(perm.len(), f);
    let rest = perm[..begin].iter().chain(&perm[end..]);
    let (mut p, mut n) = (false, false);
    for &t in rest {
        if positive(t) {
            p = true;
        } else {
            n = true;
        }
    }
    p && n
}

/// The cross-validation permutations of every pair problem, drawn as scikit-learn's
/// libsvm draws them: `sizes[p] = (na, nb)` are the class sizes of pair `p` (its
/// samples `0..na` are the first class). The generator starts from `seed`; every
/// fold model libsvm trains re-seeds it (its inner `svm_train` calls `set_seed`), so a
/// pair's shuffle continues the previous pair's stream only when that pair trained no
/// fold at all.
pub fn cv_permutations(seed: u32, sizes: &[(usize, usize)]) -> Vec<Vec<usize>> {
    let mut rng = Mt19937::new(seed);
    sizes
        .iter()
        .map(|&(na, nb)| {
            let l = na + nb;
            let mut perm: Vec<usize> = (0..l).collect();
            for i in 0..l {
                // l - i >= 1 and l fits in u32 for any problem libsvm could hold.
                let j = i + rng.bounded((l - i) as u32) as usize;
                perm.swap(i, j);
            }
            if (0..N_FOLDS).any(|f| fold_trains(&perm, f, |t| t < na)) {
                rng = Mt19937::new(seed);
            }
            perm
        })
        .collect()
}

/// Platt's sigmoid fit: `(A, B)` minimising the cross-entropy between the targets and
/// `1 / (1 + exp(A d + B))` over the decision values `dec` (`positive[i]`: sample `i`
/// is of the first class). libsvm's `sigmoid_train`: targets `(N+ + 1) / (N+ + 2)` and
/// `1 / (N- + 2)`, Newton steps on the Hessian plus `1e-12 I`, backtracking line search
/// (sufficient decrease `1e-4`, smallest step `1e-10`), at most 100 iterations, stop
/// when both gradient entries are below `1e-5`.
pub fn sigmoid_train(dec: &[f64], positive: &[bool]) -> (f64, f64) {
    let prior1 = positive.iter().filter(|&&p| p).count() as f64;
    let prior0 = positive.len() as f64 - prior1;
    const MAX_ITER: usize = 100;
    const MIN_STEP: f64 = 1e-10;
    const SIGMA: f64 = 1e-12;
    const EPS: f64 = 1e-5;
    let hi = (prior1 + 1.0) / (prior1 + 2.0);
    let lo = 1.0 / (prior0 + 2.0);
    let t: Vec<f64> = positive.iter().map(|&p| if p { hi } else { lo }).collect();
    let objective = |a: f64, b: f64| -> f64 {
        dec.iter()
            .zip(&t)
            .map(|(&d, &ti)| {
                let f = d * a + b;
                if f >= 0.0 {
                    ti * f + (-f).exp().ln_1p()
                } else {
                    (ti - 1.0) * f + f.exp().ln_1p()
                }
            })
            .sum()
    };
    let (mut a, mut b) = (0.0, ((prior0 + 1.0) / (prior1 + 1.0)).ln());
    let mut fval = objective(a, b);
    for _ in 0..MAX_ITER {
        let (mut h11, mut h22, mut h21, mut g1, mut g2) = (SIGMA, SIGMA, 0.0, 0.0, 0.0);
        for (&d, &ti) in dec.iter().zip(&t) {
            let f = d * a + b;
            let (p, q) = if f >= 0.0 {
                let e = (-f).exp();
                (e / (1.0 + e), 1.0 / (1.0 + e))
            } else {
                let e = f.exp();
                (1.0 / (1.0 + e), e / (1.0 + e))
            };
            let d2 = p * q;
            h11 += d * d * d2;
            h22 += d2;
            h21 += d * d2;
            let d1 = ti - p;
            g1 += d * d1;
            g2 += d1;
        }
        if g1.abs() < EPS && g2.abs() < EPS {
            break;
        }
        let det = h11 * h22 - h21 * h21;
        let da = -(h22 * g1 - h21 * g2) / det;
        let db = -(-h21 * g1 + h11 * g2) / det;
        let gd = g1 * da + g2 * db;
        let mut step = 1.0;
        while step >= MIN_STEP {
            let (na, nb) = (a + step * da, b + step * db);
            let nf = objective(na, nb);
            if nf < fval + 1e-4 * step * gd {
                a = na;
                b = nb;
                fval = nf;
                break;
            }
            step /= 2.0;
        }
        if step < MIN_STEP {
            break; // line search failed (libsvm stops too)
        }
    }
    (a, b)
}

/// `P(first class | d) = 1 / (1 + exp(A d + B))`, computed without overflow.
pub fn sigmoid_predict(d: f64, a: f64, b: f64) -> f64 {
    let f = d * a + b;
    if f >= 0.0 {
        let e = (-f).exp();
        e / (1.0 + e)
    } else {
        1.0 / (1.0 + f.exp())
    }
}

/// Pairwise coupling (Wu, Lin and Weng 2004, method 2; libsvm's
/// `multiclass_probability`): class probabilities from the `k × k` matrix `r` of pair
/// probabilities (`r[i][j]` estimates `P(i | i or j)`, `r[j][i] = 1 - r[i][j]`).
/// At most `max(100, k)` sweeps; stops when `max_t |(Qp)_t - p'Qp| < 0.005 / k`.
#[allow(clippy::needless_range_loop)] // libsvm's index loops, kept for fidelity
pub fn multiclass_probability(r: ArrayView2<'_, f64>) -> Vec<f64> {
    let k = r.nrows();
    let max_iter = 100.max(k);
    let eps = 0.005 / k as f64;
    let mut q = Array2::<f64>::zeros((k, k));
    for t in 0..k {
        for j in 0..t {
            q[[t, t]] += r[[j, t]] * r[[j, t]];
            q[[t, j]] = q[[j, t]];
        }
        for j in t + 1..k {
            q[[t, t]] += r[[j, t]] * r[[j, t]];
            q[[t, j]] = -r[[j, t]] * r[[t, j]];
        }
    }
    let mut p = vec![1.0 / k as f64; k];
    let mut qp = vec![0.0; k];
    for _ in 0..max_iter {
        let mut pqp = 0.0;
        for t in 0..k {
            qp[t] = (0..k).map(|j| q[[t, j]] * p[j]).sum();
            pqp += p[t] * qp[t];
        }
        let max_error = qp.iter().map(|&v| (v - pqp).abs()).fold(0.0, f64::max);
        if max_error < eps {
            break;
        }
        for t in 0..k {
            let diff = (-qp[t] + pqp) / q[[t, t]];
            p[t] += diff;
            pqp = (pqp + diff * (diff * q[[t, t]] + 2.0 * qp[t])) / (1.0 + diff) / (1.0 + diff);
            for j in 0..k {
                qp[j] = (qp[j] + diff * q[[t, j]]) / (1.0 + diff);
                p[j] /= 1.0 + diff;
            }
        }
    }
    p
}

/// Class probabilities (`n × n_classes`) from pair decision values `dec` (`n × n_pairs`,
/// libsvm's sign: positive favours the first class of the pair) and the pairs' sigmoid
/// parameters (libsvm's `svm_predict_probability`).
pub fn predict_proba(
    dec: ArrayView2<'_, f64>,
    prob_a: &[f64],
    prob_b: &[f64],
    n_classes: usize,
) -> Result<Array2<f64>, SvmError> {
    let n_pairs = n_classes * n_classes.saturating_sub(1) / 2;
    if n_classes < 2 || dec.ncols() != n_pairs || prob_a.len() != n_pairs || prob_b.len() != n_pairs
    {
        return Err(SvmError::Shape(format!(
            "probabilities of {n_classes} classes need {n_pairs} decision values and sigmoid \
             parameters per sample; got {} decision values, {} A and {} B",
            dec.ncols(),
            prob_a.len(),
            prob_b.len()
        )));
    }
    let rows: Vec<Vec<f64>> = (0..dec.nrows())
        .into_par_iter()
        .map_init(
            || Array2::<f64>::zeros((n_classes, n_classes)),
            |r, row| {
                let d = dec.row(row);
                let mut p = 0;
                for i in 0..n_classes {
                    for j in i + 1..n_classes {
                        let v = sigmoid_predict(d[p], prob_a[p], prob_b[p])
                            .clamp(MIN_PROB, 1.0 - MIN_PROB);
                        r[[i, j]] = v;
                        r[[j, i]] = 1.0 - v;
                        p += 1;
                    }
                }
                multiclass_probability(r.view())
            },
        )
        .collect();
    let mut out = Array2::<f64>::zeros((dec.nrows(), n_classes));
    for (mut o, v) in out.axis_iter_mut(Axis(0)).zip(rows) {
        o.iter_mut().zip(v).for_each(|(dst, x)| *dst = x);
    }
    Ok(out)
}

/// One pair's binary problem: the samples `index` of `gram` (gram indices; the first
/// `na` are the first class, the rest the second) with box bounds `c`.
#[derive(Clone, Copy)]
pub struct PairProblem<'a> {
    /// The kernel values, read by gram index.
    pub gram: &'a dyn Gram,
    /// Gram indices of the pair's samples, first class first.
    pub index: &'a [usize],
    /// Number of samples of the first class.
    pub na: usize,
    /// Box bound of each sample (in `index` order).
    pub c: &'a [f64],
}

/// The sigmoid `(A, B)` of one pair problem from 5-fold cross-validation decision
/// values (libsvm's `svm_binary_svc_probability`).
///
/// `perm` is the shuffle of `problem` from [`cv_permutations`]. Fold `f` holds out
/// positions `fold_bounds(l, f)` of `perm` and trains on the rest with the same bounds
/// (grouped as libsvm groups them: second class first); the held-out samples get that
/// model's decision values (sign: positive for the first class). A training part with
/// one class only gives its held-out samples `+1` (first class) or `-1`, an empty one
/// `0`, as libsvm does. The folds run in parallel, each solver with
/// `params.cache_bytes / N_FOLDS` of row cache.
pub fn pair_probability(
    problem: &PairProblem<'_>,
    perm: &[usize],
    params: &SolverParams,
    monitor: &Monitor<'_>,
) -> Result<(f64, f64), SvmError> {
    let PairProblem { index, na, c, .. } = *problem;
    let l = index.len();
    if c.len() != l || perm.len() != l || na > l {
        return Err(SvmError::Shape(format!(
            "probability fit: {l} samples, {} bounds, a permutation of {}, {na} positives",
            c.len(),
            perm.len()
        )));
    }
    let sub = SolverParams {
        cache_bytes: params.cache_bytes / N_FOLDS,
        ..*params
    };
    let folds = (0..N_FOLDS)
        .into_par_iter()
        .map(|f| fold_decisions(problem, perm, f, &sub, monitor))
        .collect::<Result<Vec<_>, SvmError>>()?;
    let mut dec = vec![0.0; l];
    for fold in folds {
        for (t, v) in fold {
            dec[t] = v;
        }
    }
    let positive: Vec<bool> = (0..l).map(|t| t < na).collect();
    Ok(sigmoid_train(&dec, &positive))
}

/// Decision values `(position in the pair problem, value)` of the samples held out by
/// fold `f`.
fn fold_decisions(
    problem: &PairProblem<'_>,
    perm: &[usize],
    f: usize,
    params: &SolverParams,
    monitor: &Monitor<'_>,
) -> Result<Vec<(usize, f64)>, SvmError> {
    let PairProblem { gram, index, na, c } = *problem;
    let (begin, end) = fold_bounds(perm.len(), f);
    let held = &perm[begin..end];
    let rest: Vec<usize> = perm[..begin].iter().chain(&perm[end..]).copied().collect();
    // libsvm's inner svm_train sorts the labels (-1 < +1): the second class comes
    // first and is the solver's +1 class.
    let mut train: Vec<usize> = rest.iter().copied().filter(|&t| t >= na).collect();
    let n_second = train.len();
    train.extend(rest.iter().copied().filter(|&t| t < na));
    let n_first = train.len() - n_second;
    let constant = match (n_first > 0, n_second > 0) {
        (true, true) => None,
        (true, false) => Some(1.0),
        (false, true) => Some(-1.0),
        (false, false) => Some(0.0),
    };
    if let Some(v) = constant {
        return Ok(held.iter().map(|&t| (t, v)).collect());
    }
    monitor.check()?;
    let sub_index: Vec<usize> = train.iter().map(|&t| index[t]).collect();
    let y: Vec<i8> = (0..train.len())
        .map(|s| if s < n_second { 1 } else { -1 })
        .collect();
    let sub_c: Vec<f64> = train.iter().map(|&t| c[t]).collect();
    let sol = solve_binary(gram, &sub_index, &y, &sub_c, params, monitor)?;
    let (sv_cols, sv_coef): (Vec<usize>, Vec<f64>) = sol
        .coef
        .iter()
        .zip(&sub_index)
        .filter(|(&a, _)| a != 0.0)
        .map(|(&a, &g)| (g, a))
        .unzip();
    let mut row = vec![0f32; sv_cols.len()];
    let mut out = Vec::with_capacity(held.len());
    for &t in held {
        gram.row(index[t], &sv_cols, &mut row);
        let s: f64 = row
            .iter()
            .zip(&sv_coef)
            .map(|(&k, &a)| f64::from(k) * a)
            .sum();
        // The solver's +1 is the second class: flip to "positive = first class".
        out.push((t, -(s - sol.rho)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::svm::kernel::{BuiltinKernel, FeatureGram};

    #[test]
    fn mt19937_matches_the_cpp_standard() {
        // The C++ standard requires the 10000th output of a default-constructed
        // std::mt19937 (seed 5489) to be 4123659995.
        let mut g = Mt19937::new(5489);
        assert_eq!(g.next_u32(), 3_499_211_612);
        for _ in 1..9999 {
            g.next_u32();
        }
        assert_eq!(g.next_u32(), 4_123_659_995);
    }

    #[test]
    fn bounded_is_in_range_and_roughly_uniform() {
        let mut g = Mt19937::new(7);
        let mut counts = [0usize; 7];
        for _ in 0..70_000 {
            counts[g.bounded(7) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (9_000..11_000).contains(&c)),
            "{counts:?}"
        );
        assert_eq!(g.bounded(1), 0);
    }

    #[test]
    fn permutations_are_permutations_and_seeded() {
        let sizes = [(3, 4), (10, 2), (1, 1)];
        let a = cv_permutations(3, &sizes);
        let b = cv_permutations(3, &sizes);
        let c = cv_permutations(4, &sizes);
        assert_eq!(a, b);
        assert_ne!(a, c);
        for (p, &(na, nb)) in a.iter().zip(&sizes) {
            let mut s = p.clone();
            s.sort_unstable();
            assert_eq!(s, (0..na + nb).collect::<Vec<_>>());
        }
        // The first pair trains folds, so the second starts from the seed again: its
        // shuffle is the one a fresh generator gives for 12 samples.
        let fresh = cv_permutations(3, &[(10, 2)]);
        assert_eq!(a[1], fresh[0]);
        // (1, 1): fold 0 holds out nothing (0 * 2 / 5 .. 1 * 2 / 5), so it trains on
        // both samples; one class alone never trains.
        assert!(fold_trains(&a[2], 0, |t| t < 1));
        assert!(!(0..N_FOLDS).any(|f| fold_trains(&[0, 1, 2], f, |_| true)));
    }

    /// The objective of `sigmoid_train`, for checking optimality by finite differences.
    fn platt_objective(dec: &[f64], pos: &[bool], a: f64, b: f64) -> f64 {
        let p1 = pos.iter().filter(|&&p| p).count() as f64;
        let p0 = pos.len() as f64 - p1;
        dec.iter()
            .zip(pos)
            .map(|(&d, &p)| {
                let t = if p {
                    (p1 + 1.0) / (p1 + 2.0)
                } else {
                    1.0 / (p0 + 2.0)
                };
                let q = sigmoid_predict(d, a, b); // P(positive)
                -(t * q.ln() + (1.0 - t) * (1.0 - q).ln())
            })
            .sum()
    }

    #[test]
    fn sigmoid_train_minimises_the_platt_objective() {
        let dec = [
            -2.1, -1.3, -0.8, -0.2, 0.1, 0.4, 0.9, 1.5, 2.2, -0.5, 0.7, 1.1,
        ];
        let pos = [
            false, false, false, true, false, true, true, true, true, false, false, true,
        ];
        let (a, b) = sigmoid_train(&dec, &pos);
        assert!(
            a < 0.0,
            "positive decision values mean the first class: A = {a}"
        );
        let f0 = platt_objective(&dec, &pos, a, b);
        let h = 1e-4;
        for (da, db) in [(h, 0.0), (-h, 0.0), (0.0, h), (0.0, -h), (h, h), (-h, h)] {
            assert!(platt_objective(&dec, &pos, a + da, b + db) >= f0 - 1e-12);
        }
    }

    #[test]
    fn coupling_of_consistent_pairs_recovers_the_probabilities() {
        // r_ij = p_i / (p_i + p_j) for a true p: method 2 returns p (to its tolerance).
        let p = [0.5, 0.3, 0.15, 0.05];
        let k = p.len();
        let mut r = Array2::<f64>::zeros((k, k));
        for i in 0..k {
            for j in 0..k {
                if i != j {
                    r[[i, j]] = p[i] / (p[i] + p[j]);
                }
            }
        }
        let got = multiclass_probability(r.view());
        let sum: f64 = got.iter().sum();
        assert!((sum - 1.0).abs() < 1e-9);
        for (g, w) in got.iter().zip(&p) {
            assert!((g - w).abs() < 1e-3, "{got:?}");
        }
    }

    #[test]
    fn predict_proba_rows_sum_to_one_and_shapes_are_checked() {
        let dec = ndarray::array![[1.0, -0.5, 0.2], [-3.0, 2.0, 0.0]];
        let a = [-1.5, -2.0, -0.7];
        let b = [0.1, -0.2, 0.0];
        let p = predict_proba(dec.view(), &a, &b, 3).unwrap();
        for row in p.axis_iter(Axis(0)) {
            assert!((row.sum() - 1.0).abs() < 1e-9);
        }
        assert!(p[[0, 0]] > p[[0, 1]]);
        assert!(predict_proba(dec.view(), &a[..2], &b, 3).is_err());
        assert!(predict_proba(dec.view(), &a, &b, 2).is_err());
    }

    #[test]
    fn pair_probability_on_separated_blobs_is_confident() {
        let n = 40;
        let x = Array2::from_shape_fn((n, 2), |(i, k)| {
            let off = if i < 20 { 0.0 } else { 3.0 };
            off + ((i * 7 + k * 3) % 11) as f32 / 10.0
        });
        let k = BuiltinKernel::Rbf { gamma: 0.5 };
        let g = FeatureGram::new(&k, x.view());
        let index: Vec<usize> = (0..n).collect();
        let perm = cv_permutations(0, &[(20, 20)]).remove(0);
        let c = vec![1.0; n];
        let problem = PairProblem {
            gram: &g,
            index: &index,
            na: 20,
            c: &c,
        };
        let (a, b) =
            pair_probability(&problem, &perm, &SolverParams::default(), &Monitor::none()).unwrap();
        assert!(a < -1.0 && b.abs() < 1.0, "A = {a}, B = {b}");
        assert!(sigmoid_predict(1.0, a, b) > 0.8);
    }
}
