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

use super::ast::{BinOp, Expr, Func};
use super::compile::{Bin, Program};
use super::eval::PairEvaluator;
use super::fastmath::{Fused, Madd, Unfused};
use super::simd::{finish, reduce_bin_raw, reduce_raw, unary_inplace, unary_scalar, View};
use rayon::prelude::*;

/// Lanes appended for the classes not visited (at most `A`, `B`, `Z`), plus padding
/// to a multiple of [`PAD`] lanes.
pub(super) const EXTRA_LANES: usize = 3 + PAD;

/// The gathered vectors are padded to a multiple of this many lanes, so that the
/// elementwise loops (`sin` and `cos` in chunks of 16) never take their scalar tails;
/// the padding lanes are computed and never summed.
const PAD: usize = 16;

/// Largest expected fraction of visited features for which the sparse path is used
/// (measured: at this fraction the sparse and the dense paths take about as long; see
/// `sparse_threshold` in the tests).
const MAX_VISITED_FRACTION: f64 = 0.5;

/// The nonzero pattern of a row-major `n × d` matrix: one bit mask per row (bit set:
/// the entry is not `+0.0`), nonzero counts, the largest magnitude and whether every
/// entry is finite.
#[derive(Debug, Clone)]
pub struct SparseRows {
    d: usize,
    words: usize,
    masks: Vec<u64>,
    nnz: Vec<u32>,
    max_abs: f64,
    finite: bool,
    /// Fraction of rows in which each feature is nonzero.
    col_density: Vec<f64>,
}

impl SparseRows {
    /// Index the rows of `xs` (`n × d`, row-major; `d > 0`).
    pub fn new(xs: &[f64], d: usize) -> SparseRows {
        let d = d.max(1);
        let n = xs.len() / d;
        let words = d.div_ceil(64);
        let mut masks = vec![0u64; n * words];
        let mut nnz = vec![0u32; n];
        let (max_abs, finite) = masks
            .par_chunks_mut(words)
            .zip(nnz.par_iter_mut())
            .zip(xs.par_chunks(d))
            .map(|((m, c), row)| {
                let mut big = 0.0f64;
                let mut fin = true;
                for (k, &v) in row.iter().enumerate() {
                    if v.to_bits() != 0 {
                        m[k / 64] |= 1 << (k % 64);
                        *c += 1;
                    }
                    fin &= v.is_finite();
                    big = big.max(v.abs());
                }
                (big, fin)
            })
            .reduce(|| (0.0, true), |a, b| (a.0.max(b.0), a.1 && b.1));
        let mut counts = vec![0u32; d];
        for m in masks.chunks_exact(words) {
            for_each_bit(m, |k| counts[k] += 1);
        }
        let col_density = counts
            .iter()
            .map(|&c| f64::from(c) / n.max(1) as f64)
            .collect();
        SparseRows {
            d,
            words,
            masks,
            nnz,
            max_abs,
            finite,
            col_density,
        }
    }

    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.nnz.len()
    }

    /// Mean fraction of nonzero entries.
    pub fn density(&self) -> f64 {
        self.col_density.iter().sum::<f64>() / self.d as f64
    }

    fn mask(&self, i: usize) -> &[u64] {
        &self.masks[i * self.words..(i + 1) * self.words]
    }
}

#[inline(always)]
fn for_each_bit(mask: &[u64], mut f: impl FnMut(usize)) {
    for (w, &m) in mask.iter().enumerate() {
        let mut s = m;
        while s != 0 {
            f(w * 64 + s.trailing_zeros() as usize);
            s &= s - 1;
        }
    }
}

/// Which features of a pair the sparse evaluator visits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Visit {
    /// Where both are nonzero (every term is constant in `A`, `B` and `Z`).
    Both,
    /// Where `x` is nonzero (terms vary in `B`).
    X,
    /// Where `y` is nonzero (terms vary in `A`).
    Y,
    /// Where either is nonzero (terms vary in `A` and `B`).
    Either,
}

/// The visited features of one mask word for `V` = 0, 1, 2, 3 ([`Visit::Both`], `X`,
/// `Y`, `Either`; a constant, so that the gather loops are compiled per kind).
#[inline(always)]
fn visit_word<const V: u8>(a: u64, b: u64) -> u64 {
    match V {
        0 => a & b,
        1 => a,
        2 => b,
        _ => a | b,
    }
}

/// What the analysis knows of an elementwise value over the features of one class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Know {
    /// The same at every feature of the class, up to the sign of a zero.
    det: bool,
    /// Also the same sign of zero.
    exact: bool,
    /// A zero (+0 or -0).
    zero: bool,
}

const VARIES: Know = Know {
    det: false,
    exact: false,
    zero: false,
};
const FIXED: Know = Know {
    det: true,
    exact: true,
    zero: false,
};
const PLUS_ZERO: Know = Know {
    det: true,
    exact: true,
    zero: true,
};

/// `f(+0)` and `f(-0)` as every implementation the evaluator may use computes them.
fn at_zero(f: Option<Func>) -> Vec<f64> {
    let mut out = Vec::new();
    for z in [0.0f64, -0.0] {
        out.push(unary_scalar::<Unfused>(f, z));
        // (`Fused` is correct anywhere: `mul_add` falls back to software.)
        out.push(unary_scalar::<Fused>(f, z));
        out.push(match f {
            None => -z,
            Some(g) => g.apply1(z),
        });
        for len in [1usize, 16, 20] {
            let mut v = vec![z; len];
            unary_inplace::<Unfused>(f, &mut v);
            out.extend_from_slice(&v);
            let mut v = vec![z; len];
            unary_inplace::<Fused>(f, &mut v);
            out.extend_from_slice(&v);
        }
    }
    out
}

fn same_mod_zero_sign(v: &[f64]) -> bool {
    let key = |a: f64| if a == 0.0 { 0u64 } else { a.to_bits() };
    let nan = v.iter().all(|a| a.is_nan());
    nan || (v.iter().all(|a| !a.is_nan()) && v.iter().all(|&a| key(a) == key(v[0])))
}

fn unary_know(f: Option<Func>, a: Know) -> Know {
    if !a.det {
        return VARIES;
    }
    let z = at_zero(f);
    let zero_stable = same_mod_zero_sign(&z);
    if a.zero {
        let exact = z.iter().all(|v| v.to_bits() == z[0].to_bits());
        Know {
            det: zero_stable,
            exact: zero_stable && exact,
            zero: zero_stable && z.iter().all(|&v| v == 0.0),
        }
    } else if a.exact {
        FIXED
    } else if zero_stable {
        Know {
            det: true,
            exact: false,
            zero: false,
        }
    } else {
        VARIES
    }
}

/// A bound on the magnitude of a value when every input entry is finite and at most
/// `r` in magnitude (`inf`: none known).
fn bound(e: &Expr, r: f64, d: usize) -> f64 {
    crate::expr::grow(|| {
        let b = match e {
            Expr::Var(_) => r,
            Expr::Const(c) => c.abs(),
            Expr::Neg(a) => bound(a, r, d),
            Expr::Bin(op, a, b) => {
                let (p, q) = (bound(a, r, d), bound(b, r, d));
                match op {
                    BinOp::Add | BinOp::Sub => p + q,
                    BinOp::Mul => p * q,
                    BinOp::Div => f64::INFINITY,
                }
            }
            Expr::Call(f, args) => {
                let bs: Vec<f64> = args.iter().map(|a| bound(a, r, d)).collect();
                if bs.iter().any(|v| !v.is_finite()) {
                    return f64::INFINITY;
                }
                let p = bs[0];
                let q = bs.get(1).copied().unwrap_or(0.0);
                match f {
                    Func::Abs | Func::Relu | Func::Min0 | Func::L1 | Func::L2 => p,
                    Func::Square => p * p,
                    Func::Cube => p * p * p,
                    Func::SqrtAbs => p.sqrt(),
                    Func::Exp => p.exp(),
                    Func::Sin | Func::Cos | Func::Tanh | Func::Sigmoid | Func::Sign => 1.0,
                    Func::ExpDiff => 1.0,
                    Func::Sinh | Func::Cosh => p.cosh(),
                    Func::Softplus => p + 1.0,
                    Func::Max | Func::Min => p.max(q),
                    Func::Dot => p * q,
                    Func::L1Dist | Func::L2Dist => p + q,
                    Func::Norm1 => d as f64 * p,
                }
            }
        };
        // A wide margin for rounding.
        if b.is_finite() && b < 1e300 {
            b
        } else {
            f64::INFINITY
        }
    })
}

/// The knowledge of a binary operation's value from its operands'.
fn binary_know(f: Bin, a: (Know, f64), b: (Know, f64)) -> Know {
    let ((ka, ba), (kb, bb)) = (a, b);
    if f == Bin::Op(BinOp::Mul) && ((ka.zero && bb.is_finite()) || (kb.zero && ba.is_finite())) {
        // ±0 times a finite number.
        return Know {
            det: true,
            exact: false,
            zero: true,
        };
    }
    if !ka.det || !kb.det {
        return VARIES;
    }
    // Every operation is blind to the sign of a zero operand up to the sign of a zero
    // result, except a divisor: c / ±0 = ±inf.
    if f == Bin::Op(BinOp::Div) && !kb.exact {
        return VARIES;
    }
    let closed = matches!(
        f,
        Bin::Op(BinOp::Add | BinOp::Sub | BinOp::Mul) | Bin::F(Func::Max | Func::Min)
    );
    Know {
        det: true,
        exact: ka.exact && kb.exact,
        zero: ka.zero && kb.zero && closed,
    }
}

/// Analysis of one class: `zero_x` / `zero_y` say which variables are `+0` there.
/// Returns the knowledge and magnitude bound of `e`; sets `*varies` when some
/// reduction's term is not constant over the class.
fn know(e: &Expr, zero: [bool; 2], r: f64, d: usize, varies: &mut bool) -> (Know, f64) {
    crate::expr::grow(|| {
        let kb = |k: Know| (k, bound(e, r, d));
        match e {
            Expr::Var(v) => kb(if zero.get(usize::from(*v)).copied().unwrap_or(false) {
                PLUS_ZERO
            } else {
                VARIES
            }),
            Expr::Const(c) => kb(Know {
                det: true,
                exact: true,
                zero: *c == 0.0,
            }),
            Expr::Neg(a) => {
                let (k, _) = know(a, zero, r, d, varies);
                kb(unary_know(None, k))
            }
            Expr::Bin(op, a, b) => {
                let ka = know(a, zero, r, d, varies);
                let kb2 = know(b, zero, r, d, varies);
                kb(binary_know(Bin::Op(*op), ka, kb2))
            }
            Expr::Call(f, args) => {
                let ks: Vec<(Know, f64)> =
                    args.iter().map(|a| know(a, zero, r, d, varies)).collect();
                if f.is_reduction() {
                    let term_det = match (f, ks.as_slice()) {
                        (Func::Dot, [a, b]) => binary_know(Bin::Op(BinOp::Mul), *a, *b).det,
                        (Func::L1Dist | Func::L2Dist, [a, b]) => {
                            binary_know(Bin::Op(BinOp::Sub), *a, *b).det
                        }
                        (_, [a]) => a.0.det,
                        _ => false,
                    };
                    *varies |= !term_det;
                    kb(FIXED)
                } else {
                    match ks.as_slice() {
                        [a] => kb(unary_know(Some(*f), a.0)),
                        [a, b] => kb(binary_know(Bin::F(*f), *a, *b)),
                        _ => kb(VARIES),
                    }
                }
            }
        }
    })
}

/// The features the sparse evaluator must visit for `e` on data bounded by `r`.
pub(super) fn visit_for(e: &Expr, r: f64, d: usize) -> Visit {
    let mut vary_a = false;
    let mut vary_b = false;
    know(e, [true, false], r, d, &mut vary_a);
    know(e, [false, true], r, d, &mut vary_b);
    match (vary_a, vary_b) {
        (false, false) => Visit::Both,
        (false, true) => Visit::X,
        (true, false) => Visit::Y,
        (true, true) => Visit::Either,
    }
}

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

/// How the reductions of a sparse run weight the lanes: the first `n` count once, lane
/// `n + e` stands for `w[e]` features (`k` such lanes); `d` is the feature count.
#[derive(Debug, Clone, Copy)]
pub(super) struct Weights {
    n: usize,
    w: [f64; EXTRA_LANES],
    k: usize,
    d: usize,
}

#[inline(always)]
fn sub(v: View<'_>, from: usize, len: usize) -> View<'_> {
    match v {
        View::V(s) => View::V(&s[from..from + len]),
        c => c,
    }
}

#[inline(always)]
fn weighted(
    a: View<'_>,
    b: View<'_>,
    w: &Weights,
    raw: impl Fn(View<'_>, View<'_>, usize) -> f64,
) -> f64 {
    if let (View::C(_), View::C(_)) = (a, b) {
        return raw(a, b, w.d);
    }
    let mut s = raw(sub(a, 0, w.n), sub(b, 0, w.n), w.n);
    for e in 0..w.k {
        s += w.w[e] * raw(sub(a, w.n + e, 1), sub(b, w.n + e, 1), 1);
    }
    s
}

/// [`super::simd::reduce`] over weighted lanes.
#[inline(always)]
pub(super) fn reduce_weighted<M: Madd>(
    f: Func,
    a: View<'_>,
    b: Option<View<'_>>,
    w: &Weights,
) -> f64 {
    let b = b.unwrap_or(View::C(0.0));
    let s = weighted(a, b, w, |a, b, len| reduce_raw::<M>(f, a, Some(b), len));
    finish(f, s, w.d)
}

/// [`super::simd::reduce_bin`] over weighted lanes.
#[inline(always)]
pub(super) fn reduce_bin_weighted<M: Madd>(
    red: Func,
    f: Bin,
    a: View<'_>,
    b: View<'_>,
    w: &Weights,
) -> f64 {
    let s = weighted(a, b, w, |a, b, len| reduce_bin_raw::<M>(red, f, a, b, len));
    finish(red, s, w.d)
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
        if super::eval::has_avx2_fma() {
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
