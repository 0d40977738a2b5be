//! The sparse evaluator: kernel values from the features where the inputs are nonzero.
//!
//! For a pair `(x, y)` every feature falls in one of four classes: `N` (both nonzero),
//! `A` (`x_i = 0`, `y_i ≠ 0`), `B` (`x_i ≠ 0`, `y_i = 0`) and `Z` (both zero). "Zero"
//! means the bits of `+0.0`; `-0.0` counts as nonzero. In class `Z` every elementwise
//! value is a function of the pair's scalars (the reductions) alone, so it is the same
//! at every such feature; in `A` and `B` that holds for some expressions (`x * y`,
//! `sin(x * y)`, `min(sin(x * y), s)`, ...) and not for others (`x + y`). A static
//! analysis of the tree ([`visit_for`]) decides, per reduction, in which classes the
//! summed term can vary; the evaluator then gathers only the features of the classes
//! that must be visited (bit masks of the nonzeros, one per row, built once per Gram
//! call), appends one representative lane per other non-empty class, and runs the
//! ordinary program on those short vectors with reductions that weight each
//! representative lane by the size of its class ([`Weights`]). The values are the
//! dense ones up to summation order.
//!
//! Exactness: the analysis tracks values "up to the sign of a zero" (sums, the only
//! consumers of the terms, start from `+0.0` and are blind to it), refuses a zero in a
//! divisor, and lets a zero factor annihilate the other one only when interval bounds
//! on the data (`|x|, |y| <= R`, all finite) prove that factor finite (`0 · inf` is
//! NaN). Data with NaN or inf take the dense path.

use super::compile::Program;
#[cfg(target_arch = "x86_64")]
use super::fastmath::has_avx2_fma;
use super::fastmath::{Fused, Madd, Unfused};
use super::nonzero::SparseRows;
use super::pair::PairEvaluator;
use super::visit::{visit_for, visit_word, Visit};
use super::weighted::{Weights, EXTRA_LANES, PAD};

/// Largest expected fraction of visited features for which the sparse path is used
/// (measured: at this fraction the sparse and the dense paths take about as long; see
/// `sparse_threshold` in the tests).
const MAX_VISITED_FRACTION: f64 = 0.5;

/// A sparse evaluation of `K(X, Y)`: what to visit and the rows' nonzero patterns.
pub(super) struct Plan<'a> {
    visit: Visit,
    /// A magnitude every entry is within (the representative nonzero of `A` and `B`).
    rep: f64,
    pub(super) xr: &'a SparseRows,
    pub(super) yr: &'a SparseRows,
}

impl Program {
    /// The sparse plan for `K(X, Y)` with these nonzero patterns, or `None` when the
    /// dense path is expected to be faster (or the data hold NaN / inf).
    pub(super) fn sparse_plan<'a>(
        &self,
        xr: &'a SparseRows,
        yr: &'a SparseRows,
    ) -> Option<Plan<'a>> {
        if !(xr.finite && yr.finite) || xr.d != yr.d || xr.col_density.is_empty() {
            return None;
        }
        let d = xr.d;
        let r = xr.max_abs.max(yr.max_abs);
        let visit = visit_for(&self.expr, r, d);
        let (px, py) = (&xr.col_density, &yr.col_density);
        let frac = px
            .iter()
            .zip(py)
            .map(|(&p, &q)| match visit {
                Visit::Both => p * q,
                Visit::X => p,
                Visit::Y => q,
                Visit::Either => p + q - p * q,
            })
            .sum::<f64>()
            / d as f64;
        (frac <= MAX_VISITED_FRACTION).then_some(Plan {
            visit,
            rep: if r > 0.0 { r } else { 1.0 },
            xr,
            yr,
        })
    }
}

/// Fraction of visited features above which a pair is evaluated densely.
const DENSE_PAIR_FRACTION: f64 = 0.7;

/// `k(x_i, y_j)` on the sparse path.
#[inline(always)]
fn pair<M: Madd, const V: u8>(
    ev: &mut PairEvaluator<'_>,
    plan: &Plan<'_>,
    xi: &[f64],
    i: usize,
    yj: &[f64],
    j: usize,
) -> f64 {
    let d = ev.d;
    let (mx, my) = (plan.xr.mask(i), plan.yr.mask(j));
    let mut inter = 0u32;
    let mut visited = 0u32;
    for (&a, &b) in mx.iter().zip(my) {
        inter += (a & b).count_ones();
        visited += visit_word::<V>(a, b).count_ones();
    }
    if f64::from(visited) > DENSE_PAIR_FRACTION * d as f64 {
        return kernel_once::<M>(ev, xi, yj);
    }
    let mut gx = std::mem::take(&mut ev.gx);
    let mut gy = std::mem::take(&mut ev.gy);
    if gx.len() < d + EXTRA_LANES {
        gx.resize(d + EXTRA_LANES, 0.0);
        gy.resize(d + EXTRA_LANES, 0.0);
    }
    let mut n = 0;
    for (w, (&a, &b)) in mx.iter().zip(my).enumerate() {
        let mut s = visit_word::<V>(a, b);
        while s != 0 {
            let k = w * 64 + s.trailing_zeros() as usize;
            gx[n] = xi[k];
            gy[n] = yj[k];
            n += 1;
            s &= s - 1;
        }
    }
    let (nx, ny) = (plan.xr.nnz[i], plan.yr.nnz[j]);
    let only_y = ny - inter; // class A
    let only_x = nx - inter; // class B
    let neither = d as u32 - (nx + ny - inter); // class Z
    let lanes: [(u32, f64, f64); 3] = [
        (only_y, 0.0, plan.rep),
        (only_x, plan.rep, 0.0),
        (neither, 0.0, 0.0),
    ];
    let visited_class = [
        matches!(plan.visit, Visit::Y | Visit::Either),
        matches!(plan.visit, Visit::X | Visit::Either),
        false,
    ];
    let mut w = Weights {
        n,
        w: [0.0; EXTRA_LANES],
        k: 0,
        d,
    };
    for (&(count, lx, ly), &seen) in lanes.iter().zip(&visited_class) {
        // (An empty class gets no lane: 0 · inf would be NaN.)
        if !seen && count > 0 {
            gx[n + w.k] = lx;
            gy[n + w.k] = ly;
            w.w[w.k] = f64::from(count);
            w.k += 1;
        }
    }
    let len = (n + w.k).next_multiple_of(PAD);
    gx[n + w.k..len].fill(0.0);
    gy[n + w.k..len].fill(0.0);
    ev.d = len;
    ev.wt = Some(w);
    let v = kernel_once::<M>(ev, &gx[..len], &gy[..len]);
    ev.d = d;
    ev.wt = None;
    ev.gx = gx;
    ev.gy = gy;
    v
}

/// One pair through the interpreter, compiled once per variant rather than inlined
/// into each of `pair`'s two call sites in each of the eight row loops (four visit
/// modes, two column kinds): inlined there, LLVM's loop passes spent ~8 CPU-minutes
/// on each of `kernel_row` and `row_avx2` (-Zllvm-time-trace), most of the crate's
/// optimised compile. One call per pair costs nothing next to the program it runs.
#[inline(never)]
fn kernel_once<M: Madd>(ev: &mut PairEvaluator<'_>, x: &[f64], y: &[f64]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        if M::AVX2 {
            // SAFETY: `M::AVX2` variants run only where AVX2 and FMA were checked
            // (`kernel_row`'s dispatch).
            return unsafe { kernel_avx2(ev, x, y) };
        }
    }
    ev.kernel::<M>(x, y)
}

/// [`PairEvaluator::kernel`] compiled for AVX2 and FMA.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline(never)]
unsafe fn kernel_avx2(ev: &mut PairEvaluator<'_>, x: &[f64], y: &[f64]) -> f64 {
    ev.kernel::<Fused>(x, y)
}

/// The columns of a kernel row: `j >= from`, or a list.
#[derive(Clone, Copy)]
pub(super) enum Cols<'a> {
    From(usize),
    List(&'a [usize]),
}

#[inline(always)]
fn row_generic<M: Madd>(
    ev: &mut PairEvaluator<'_>,
    plan: &Plan<'_>,
    xs: &[f64],
    i: usize,
    ys: &[f64],
    cols: Cols<'_>,
    out: &mut [f64],
) {
    match plan.visit {
        Visit::Both => row_visit::<M, 0>(ev, plan, xs, i, ys, cols, out),
        Visit::X => row_visit::<M, 1>(ev, plan, xs, i, ys, cols, out),
        Visit::Y => row_visit::<M, 2>(ev, plan, xs, i, ys, cols, out),
        Visit::Either => row_visit::<M, 3>(ev, plan, xs, i, ys, cols, out),
    }
}

#[inline(always)]
fn row_visit<M: Madd, const V: u8>(
    ev: &mut PairEvaluator<'_>,
    plan: &Plan<'_>,
    xs: &[f64],
    i: usize,
    ys: &[f64],
    cols: Cols<'_>,
    out: &mut [f64],
) {
    let d = ev.d;
    let xi = &xs[i * d..(i + 1) * d];
    match cols {
        Cols::From(from) => {
            for (j, o) in out.iter_mut().enumerate().skip(from) {
                *o = pair::<M, V>(ev, plan, xi, i, &ys[j * d..(j + 1) * d], j);
            }
        }
        Cols::List(js) => {
            for (o, &j) in out.iter_mut().zip(js) {
                *o = pair::<M, V>(ev, plan, xi, i, &ys[j * d..(j + 1) * d], j);
            }
        }
    }
}

/// [`row_generic`] compiled for AVX2 and FMA.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn row_avx2(
    ev: &mut PairEvaluator<'_>,
    plan: &Plan<'_>,
    xs: &[f64],
    i: usize,
    ys: &[f64],
    cols: Cols<'_>,
    out: &mut [f64],
) {
    row_generic::<Fused>(ev, plan, xs, i, ys, cols, out);
}

/// Kernel values of row `i` of `X` (`xs`) against rows of `Y` (`ys`) on the sparse
/// path, with the best instruction set of this CPU.
pub(super) fn kernel_row(
    ev: &mut PairEvaluator<'_>,
    plan: &Plan<'_>,
    xs: &[f64],
    i: usize,
    ys: &[f64],
    cols: Cols<'_>,
    out: &mut [f64],
) {
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx2_fma() {
            // SAFETY: AVX2 and FMA support was just checked.
            unsafe { row_avx2(ev, plan, xs, i, ys, cols, out) };
            return;
        }
    }
    row_generic::<Unfused>(ev, plan, xs, i, ys, cols, out);
}

/// The portable sparse row (tests compare it with the AVX2 one).
#[cfg(test)]
pub(super) fn kernel_row_portable(
    ev: &mut PairEvaluator<'_>,
    plan: &Plan<'_>,
    xs: &[f64],
    i: usize,
    ys: &[f64],
    cols: Cols<'_>,
    out: &mut [f64],
) {
    row_generic::<Unfused>(ev, plan, xs, i, ys, cols, out);
}

#[cfg(test)]
#[path = "sparse_tests.rs"]
mod tests;
