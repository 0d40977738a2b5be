//! The reductions of the sparse path: sums over the gathered lanes where each extra
//! lane stands for a whole class of features ([`Weights`]); the per-pair evaluator
//! ([`super::pair`]) runs them instead of the dense reductions when its weights are set.

use super::ast::Func;
use super::compile::Bin;
use super::fastmath::Madd;
use super::simd::{finish, reduce_bin_raw, reduce_raw, View};

/// Lanes appended for the classes not visited (at most `A`, `B`, `Z`), plus padding
/// to a multiple of [`PAD`] lanes.
pub(super) const EXTRA_LANES: usize = 3 + PAD;

/// The gathered vectors are padded to a multiple of this many lanes, so that the
/// elementwise loops (`sin` and `cos` in chunks of 16) never take their scalar tails;
/// the padding lanes are computed and never summed.
pub(super) const PAD: usize = 16;

/// How the reductions of a sparse run weight the lanes: the first `n` count once, lane
/// `n + e` stands for `w[e]` features (`k` such lanes); `d` is the feature count.
#[derive(Debug, Clone, Copy)]
pub(super) struct Weights {
    pub(super) n: usize,
    pub(super) w: [f64; EXTRA_LANES],
    pub(super) k: usize,
    pub(super) d: usize,
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
