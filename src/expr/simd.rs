//! The elementwise operations and reductions over operand slices that programs run
//! (portable loops LLVM vectorises, AVX2 intrinsics for the plain reductions).

use super::ast::Func;
use super::compile::Bin;
use super::fastmath::{self, Madd};

/// A read-only view of an operand: a slice or a broadcast scalar.
#[derive(Clone, Copy)]
pub(super) enum View<'a> {
    V(&'a [f64]),
    C(f64),
}

macro_rules! unary_dispatch {
    ($f:expr, $o:expr, [$($name:ident),*]) => {
        match $f {
            None => $o.iter_mut().for_each(|v| *v = -*v),
            Some(Func::Sin) => fastmath::sin_inplace::<M>($o),
            Some(Func::Cos) => fastmath::cos_inplace::<M>($o),
            Some(Func::Exp) => fastmath::exp_inplace::<M>($o),
            Some(Func::Sinh) => $o.iter_mut().for_each(|v| *v = fastmath::sinh::<M>(*v)),
            Some(Func::Cosh) => $o.iter_mut().for_each(|v| *v = fastmath::cosh::<M>(*v)),
            Some(Func::Tanh) => $o.iter_mut().for_each(|v| *v = fastmath::tanh::<M>(*v)),
            Some(Func::Sigmoid) => $o.iter_mut().for_each(|v| *v = fastmath::sigmoid::<M>(*v)),
            Some(Func::Softplus) => $o.iter_mut().for_each(|v| *v = fastmath::softplus::<M>(*v)),
            $(Some(Func::$name) => $o.iter_mut().for_each(|v| *v = Func::$name.apply1(*v)),)*
            Some(_) => $o.iter_mut().for_each(|v| *v = f64::NAN),
        }
    };
}

#[inline(always)]
pub(super) fn unary_inplace<M: Madd>(f: Option<Func>, o: &mut [f64]) {
    unary_dispatch!(f, o, [Abs, Square, Cube, SqrtAbs, Relu, Min0, Sign]);
}

#[inline(always)]
pub(super) fn unary_scalar<M: Madd>(f: Option<Func>, a: f64) -> f64 {
    match f {
        None => -a,
        Some(Func::Sin) => fastmath::sin::<M>(a),
        Some(Func::Cos) => fastmath::cos::<M>(a),
        Some(Func::Exp) => fastmath::exp::<M>(a),
        Some(Func::Sinh) => fastmath::sinh::<M>(a),
        Some(Func::Cosh) => fastmath::cosh::<M>(a),
        Some(Func::Tanh) => fastmath::tanh::<M>(a),
        Some(Func::Sigmoid) => fastmath::sigmoid::<M>(a),
        Some(Func::Softplus) => fastmath::softplus::<M>(a),
        Some(f) => f.apply1(a),
    }
}

macro_rules! bin_dispatch {
    ($f:expr, $body:ident, $($args:expr),*) => {
        match $f {
            $crate::expr::compile::Bin::Op($crate::expr::BinOp::Add) => $body($($args,)* |a, b| a + b),
            $crate::expr::compile::Bin::Op($crate::expr::BinOp::Sub) => $body($($args,)* |a, b| a - b),
            $crate::expr::compile::Bin::Op($crate::expr::BinOp::Mul) => $body($($args,)* |a, b| a * b),
            $crate::expr::compile::Bin::Op($crate::expr::BinOp::Div) => $body($($args,)* |a, b| a / b),
            $crate::expr::compile::Bin::F($crate::expr::Func::Max) => $body($($args,)* |a: f64, b| $crate::expr::ast::max_nan(a, b)),
            $crate::expr::compile::Bin::F($crate::expr::Func::Min) => $body($($args,)* |a: f64, b| $crate::expr::ast::min_nan(a, b)),
            $crate::expr::compile::Bin::F($crate::expr::Func::ExpDiff) => $body($($args,)* |a: f64, b: f64| $crate::expr::fastmath::exp::<M>(-(a - b).abs())),
            $crate::expr::compile::Bin::F(_) => $body($($args,)* |_a, _b| f64::NAN),
        }
    };
}
pub(super) use bin_dispatch;

#[inline(always)]
pub(super) fn bin_left(o: &mut [f64], b: View<'_>, f: impl Fn(f64, f64) -> f64) {
    match b {
        View::V(b) => o.iter_mut().zip(b).for_each(|(v, &w)| *v = f(*v, w)),
        View::C(c) => o.iter_mut().for_each(|v| *v = f(*v, c)),
    }
}

#[inline(always)]
pub(super) fn bin_new(o: &mut [f64], a: View<'_>, b: View<'_>, f: impl Fn(f64, f64) -> f64) {
    match (a, b) {
        (View::V(a), View::V(b)) => o
            .iter_mut()
            .zip(a.iter().zip(b))
            .for_each(|(v, (&p, &q))| *v = f(p, q)),
        (View::V(a), View::C(c)) => o.iter_mut().zip(a).for_each(|(v, &p)| *v = f(p, c)),
        (View::C(c), View::V(b)) => o.iter_mut().zip(b).for_each(|(v, &q)| *v = f(c, q)),
        (View::C(p), View::C(q)) => o.fill(f(p, q)),
    }
}

#[inline(always)]
pub(super) fn sum_abs_of(a: View<'_>, b: View<'_>, d: usize, f: impl Fn(f64, f64) -> f64) -> f64 {
    sum2(a, b, d, |p, q| f(p, q).abs())
}

#[inline(always)]
pub(super) fn sum_sq_of(a: View<'_>, b: View<'_>, d: usize, f: impl Fn(f64, f64) -> f64) -> f64 {
    sum2(a, b, d, |p, q| {
        let v = f(p, q);
        v * v
    })
}

/// `red(f(a, b))` for `red` in `norm1`, `l1`, `l2`.
#[inline(always)]
pub(super) fn reduce_bin<M: Madd>(red: Func, f: Bin, a: View<'_>, b: View<'_>, d: usize) -> f64 {
    finish(red, reduce_bin_raw::<M>(red, f, a, b, d), d)
}

/// The sum that `red(f(a, b))` scales ([`finish`] turns it into the reduction):
/// `Σ |f(a, b)|` or `Σ f(a, b)²` (`d` counts a broadcast pair).
#[inline(always)]
pub(super) fn reduce_bin_raw<M: Madd>(
    red: Func,
    f: Bin,
    a: View<'_>,
    b: View<'_>,
    d: usize,
) -> f64 {
    match red {
        Func::Norm1 | Func::L1 => bin_dispatch!(f, sum_abs_of, a, b, d),
        Func::L2 => bin_dispatch!(f, sum_sq_of, a, b, d),
        _ => f64::NAN,
    }
}

#[inline(always)]
pub(super) fn bin_right(o: &mut [f64], a: View<'_>, f: impl Fn(f64, f64) -> f64) {
    match a {
        View::V(a) => o.iter_mut().zip(a).for_each(|(v, &w)| *v = f(w, *v)),
        View::C(c) => o.iter_mut().for_each(|v| *v = f(c, *v)),
    }
}

/// Sum of 16 partial sums as four lanes of four (the order the AVX2 reductions use).
#[inline(always)]
pub(super) fn fold16(s: &[f64; 16]) -> f64 {
    let mut l = [0.0f64; 4];
    for k in 0..4 {
        l[k] = (s[k] + s[4 + k]) + (s[8 + k] + s[12 + k]);
    }
    (l[0] + l[2]) + (l[1] + l[3])
}

/// Sum of `f(a[i])` with 16 independent accumulators (vectorisable without letting LLVM
/// reassociate).
#[inline(always)]
pub(super) fn sum1(a: &[f64], f: impl Fn(f64) -> f64) -> f64 {
    let mut s = [0.0f64; 16];
    let ca = a.chunks_exact(16);
    let ra = ca.remainder();
    for x in ca {
        for k in 0..16 {
            s[k] += f(x[k]);
        }
    }
    let mut t = fold16(&s);
    for x in ra {
        t += f(*x);
    }
    t
}

#[inline(always)]
pub(super) fn sum2(a: View<'_>, b: View<'_>, d: usize, f: impl Fn(f64, f64) -> f64) -> f64 {
    match (a, b) {
        (View::V(a), View::V(b)) => {
            let mut s = [0.0f64; 16];
            let ca = a.chunks_exact(16);
            let cb = b.chunks_exact(16);
            let (ra, rb) = (ca.remainder(), cb.remainder());
            for (x, y) in ca.zip(cb) {
                for k in 0..16 {
                    s[k] += f(x[k], y[k]);
                }
            }
            let mut t = fold16(&s);
            for (x, y) in ra.iter().zip(rb) {
                t += f(*x, *y);
            }
            t
        }
        (View::V(a), View::C(c)) => sum1(a, |v| f(v, c)),
        (View::C(c), View::V(b)) => sum1(b, |v| f(c, v)),
        (View::C(x), View::C(y)) => d as f64 * f(x, y),
    }
}

/// Reductions with AVX2 intrinsics: 16 doubles per iteration in 4 independent
/// accumulators.
#[cfg(target_arch = "x86_64")]
pub(super) mod avx {
    use std::arch::x86_64::*;

    /// What a reduction sums: `term(a, b)`.
    #[derive(Clone, Copy, PartialEq)]
    pub(super) enum Term {
        /// `a * b`
        Prod,
        /// `|a - b|`
        AbsDiff,
        /// `(a - b)^2`
        SqDiff,
        /// `|a|`
        Abs,
        /// `a^2`
        Sq,
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn term(t: Term, a: __m256d, b: __m256d, acc: __m256d, sign: __m256d) -> __m256d {
        match t {
            Term::Prod => _mm256_fmadd_pd(a, b, acc),
            Term::AbsDiff => _mm256_add_pd(acc, _mm256_andnot_pd(sign, _mm256_sub_pd(a, b))),
            Term::SqDiff => {
                let e = _mm256_sub_pd(a, b);
                _mm256_fmadd_pd(e, e, acc)
            }
            Term::Abs => _mm256_add_pd(acc, _mm256_andnot_pd(sign, a)),
            Term::Sq => _mm256_fmadd_pd(a, a, acc),
        }
    }

    #[inline(always)]
    fn term1(t: Term, a: f64, b: f64) -> f64 {
        match t {
            Term::Prod => a * b,
            Term::AbsDiff => (a - b).abs(),
            Term::SqDiff => (a - b) * (a - b),
            Term::Abs => a.abs(),
            Term::Sq => a * a,
        }
    }

    /// `sum_i term(a[i], b[i])` (`b` is ignored by the one-operand terms and may be
    /// `a`).
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA; `b.len() >= a.len()`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn sum(t: Term, a: &[f64], b: &[f64]) -> f64 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let sign = _mm256_set1_pd(-0.0);
        let mut acc = [_mm256_setzero_pd(); 4];
        let mut i = 0;
        while i + 16 <= n {
            for (k, s) in acc.iter_mut().enumerate() {
                // SAFETY: i + 16 <= n, within both slices.
                let (va, vb) = unsafe {
                    (
                        _mm256_loadu_pd(pa.add(i + 4 * k)),
                        _mm256_loadu_pd(pb.add(i + 4 * k)),
                    )
                };
                *s = term(t, va, vb, *s, sign);
            }
            i += 16;
        }
        while i + 4 <= n {
            // SAFETY: i + 4 <= n, within both slices.
            let (va, vb) = unsafe { (_mm256_loadu_pd(pa.add(i)), _mm256_loadu_pd(pb.add(i))) };
            acc[0] = term(t, va, vb, acc[0], sign);
            i += 4;
        }
        let s = _mm256_add_pd(_mm256_add_pd(acc[0], acc[1]), _mm256_add_pd(acc[2], acc[3]));
        let lo = _mm256_castpd256_pd128(s);
        let hi = _mm256_extractf128_pd(s, 1);
        let h = _mm_add_pd(lo, hi);
        let mut total = _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
        while i < n {
            total += term1(t, a[i], b[i]);
            i += 1;
        }
        total
    }
}

/// The AVX2 reduction of `f` over vector operands, when there is one.
#[inline(always)]
pub(super) fn reduce_avx2<M: Madd>(f: Func, a: View<'_>, b: Option<View<'_>>) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        use avx::Term;
        if !M::AVX2 {
            return None;
        }
        let (t, a, b) = match (f, a, b) {
            (Func::Dot, View::V(a), Some(View::V(b))) => (Term::Prod, a, b),
            (Func::L1Dist, View::V(a), Some(View::V(b))) => (Term::AbsDiff, a, b),
            (Func::L2Dist, View::V(a), Some(View::V(b))) => (Term::SqDiff, a, b),
            (Func::L1 | Func::Norm1, View::V(a), _) => (Term::Abs, a, a),
            (Func::L2, View::V(a), _) => (Term::Sq, a, a),
            _ => return None,
        };
        if b.len() < a.len() {
            return None;
        }
        // SAFETY: `M::AVX2` is only true inside code compiled for (and dispatched to
        // after checking) AVX2 and FMA; the lengths were checked.
        Some(unsafe { avx::sum(t, a, b) })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (f, a, b);
        None
    }
}

/// A reduction from its sum of terms: `γ s`, `γ √s` or `s` (`norm1`).
#[inline(always)]
pub(super) fn finish(f: Func, s: f64, d: usize) -> f64 {
    let gamma = 1.0 / d as f64;
    match f {
        Func::Dot | Func::L1Dist | Func::L1 => gamma * s,
        Func::L2Dist | Func::L2 => gamma * s.sqrt(),
        Func::Norm1 => s,
        _ => f64::NAN,
    }
}

#[inline(always)]
pub(super) fn reduce<M: Madd>(f: Func, a: View<'_>, b: Option<View<'_>>, d: usize) -> f64 {
    finish(f, reduce_raw::<M>(f, a, b, d), d)
}

/// The sum of terms of a reduction (`a b`, `|a − b|`, `(a − b)²`, `|a|` or `a²`), that
/// [`finish`] scales; `d` counts a broadcast pair.
#[inline(always)]
pub(super) fn reduce_raw<M: Madd>(f: Func, a: View<'_>, b: Option<View<'_>>, d: usize) -> f64 {
    if let Some(s) = reduce_avx2::<M>(f, a, b) {
        return s;
    }
    let b = b.unwrap_or(View::C(0.0));
    match f {
        Func::Dot => sum2(a, b, d, |p, q| p * q),
        Func::L1Dist => sum2(a, b, d, |p, q| (p - q).abs()),
        Func::L2Dist => sum2(a, b, d, |p, q| (p - q) * (p - q)),
        Func::L1 | Func::Norm1 => sum2(a, b, d, |p, _| p.abs()),
        Func::L2 => sum2(a, b, d, |p, _| p * p),
        _ => f64::NAN,
    }
}
