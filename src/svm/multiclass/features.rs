//! One-vs-one fitting on feature rows with a [`Kernel`] (or on sparse rows with a
//! built-in kernel), the kernel work shared between the binary problems: every
//! within-class block computed once, each pair's cross block once, when they fit in the
//! cache budget (else the rows on demand of [`super::fit_ovo_with`]).

use super::assemble::assemble;
use super::{
    fit_ovo_with, group, largest_first, pairs, permutations, report, solve_pair_with_c, Classes,
    OvoModel, PairFit,
};
use crate::runtime::Monitor;
use crate::svm::kernel::{sparse, BuiltinKernel, CsrRows, FeatureGram, Gram, Kernel, SparseGram};
use crate::svm::probability::{pair_probability, PairProblem};
use crate::svm::solver::SolverParams;
use crate::svm::SvmError;
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis};
use rayon::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};

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
    classes: &Classes<'_>,
    params: &SolverParams,
    monitor: &Monitor<'_>,
) -> Result<OvoModel, SvmError> {
    fit_ovo_features_with(kernel, x, classes, params, None, monitor)
}

/// [`fit_ovo_features`], and with `probability = Some(seed)` also the probability
/// model (as [`fit_ovo_with`]; the cross-validation folds read the same shared blocks).
pub fn fit_ovo_features_with(
    kernel: &dyn Kernel,
    x: ArrayView2<'_, f32>,
    classes: &Classes<'_>,
    params: &SolverParams,
    probability: Option<u32>,
    monitor: &Monitor<'_>,
) -> Result<OvoModel, SvmError> {
    let rows = DenseRows { kernel, x };
    fit_shared(&rows, classes, params, probability, monitor)
}

/// [`fit_ovo_features_with`] on sparse rows with a built-in kernel: the same sharing of
/// the kernel blocks (computed from sparse dot products, see [`SparseGram`]).
pub fn fit_ovo_sparse_with(
    kernel: BuiltinKernel,
    x: &CsrRows<'_>,
    classes: &Classes<'_>,
    params: &SolverParams,
    probability: Option<u32>,
    monitor: &Monitor<'_>,
) -> Result<OvoModel, SvmError> {
    let rows = SparseRows { kernel, x };
    fit_shared(&rows, classes, params, probability, monitor)
}

/// Feature rows whose kernel blocks the one-vs-one problems share: rows selected by
/// class ([`Rows::part`]) and the blocks between parts.
trait Rows: Sync {
    /// The rows of one class.
    type Part: Sync + Send;
    /// Number of training rows.
    fn n(&self) -> usize;
    /// The rows `members` (one class).
    fn part(&self, members: &[usize]) -> Self::Part;
    /// Rows in a part.
    fn len(part: &Self::Part) -> usize;
    /// `K(p, p)`.
    fn block_symmetric(&self, p: &Self::Part, out: ArrayViewMut2<'_, f32>);
    /// `K(a, b)`.
    fn block(&self, a: &Self::Part, b: &Self::Part, out: ArrayViewMut2<'_, f32>);
    /// The kernel with rows computed on demand (when the blocks do not fit the budget).
    fn on_demand(&self) -> Box<dyn Gram + '_>;
}

/// Dense float32 rows with any [`Kernel`].
struct DenseRows<'a> {
    kernel: &'a dyn Kernel,
    x: ArrayView2<'a, f32>,
}

impl Rows for DenseRows<'_> {
    type Part = Array2<f32>;
    fn n(&self) -> usize {
        self.x.nrows()
    }
    fn part(&self, members: &[usize]) -> Array2<f32> {
        self.x.select(Axis(0), members)
    }
    fn len(part: &Array2<f32>) -> usize {
        part.nrows()
    }
    fn block_symmetric(&self, p: &Array2<f32>, out: ArrayViewMut2<'_, f32>) {
        self.kernel.block_symmetric(p.view(), out);
    }
    fn block(&self, a: &Array2<f32>, b: &Array2<f32>, out: ArrayViewMut2<'_, f32>) {
        self.kernel.block(a.view(), b.view(), out);
    }
    fn on_demand(&self) -> Box<dyn Gram + '_> {
        Box::new(FeatureGram::new(self.kernel, self.x))
    }
}

/// Sparse rows with a built-in kernel; a part is the row indices (rows are read in
/// place, not copied).
struct SparseRows<'a> {
    kernel: BuiltinKernel,
    x: &'a CsrRows<'a>,
}

impl Rows for SparseRows<'_> {
    type Part = Vec<usize>;
    fn n(&self) -> usize {
        self.x.nrows()
    }
    fn part(&self, members: &[usize]) -> Vec<usize> {
        members.to_vec()
    }
    fn len(part: &Vec<usize>) -> usize {
        part.len()
    }
    fn block_symmetric(&self, p: &Vec<usize>, out: ArrayViewMut2<'_, f32>) {
        sparse::block_symmetric(&self.kernel, self.x, p, out);
    }
    fn block(&self, a: &Vec<usize>, b: &Vec<usize>, out: ArrayViewMut2<'_, f32>) {
        sparse::block(&self.kernel, self.x, a, b, out);
    }
    fn on_demand(&self) -> Box<dyn Gram + '_> {
        Box::new(SparseGram::new(self.kernel, self.x))
    }
}

/// The shared-block fit of [`fit_ovo_features_with`] on any [`Rows`].
fn fit_shared<R: Rows>(
    rows: &R,
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
    let n = rows.n();
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
        return fit_ovo_with(&*rows.on_demand(), classes, params, probability, monitor);
    }
    let sub = SolverParams {
        cache_bytes: (room - concurrent * cross_bytes) / concurrent,
        ..*params
    };
    let xs: Vec<R::Part> = members.iter().map(|m| rows.part(m)).collect();
    let mut diag = Vec::with_capacity(n_classes);
    for xk in &xs {
        monitor.check()?;
        let mut k = Array2::<f32>::zeros((R::len(xk), R::len(xk)));
        rows.block_symmetric(xk, k.view_mut());
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
        let mut ab = Array2::<f32>::zeros((R::len(&xs[a]), R::len(&xs[b])));
        rows.block(&xs[a], &xs[b], ab.view_mut());
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
        let problem = PairProblem {
            gram: &g,
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
