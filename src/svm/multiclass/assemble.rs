//! The model from the pair solutions: libsvm's `svm_train` bookkeeping of support
//! vectors (grouped by class), dual coefficients, biases and probability sigmoids.

use super::{OvoModel, PairFit};
use ndarray::Array2;

/// Build the model from the pair solutions (libsvm's `svm_train` bookkeeping).
pub(super) fn assemble(
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
