//! Compilation of expression trees to flat programs, and their evaluation over
//! matrices.
//!
//! Every vector-valued node gets a slot of `d` numbers in a per-thread scratch buffer;
//! since each node of a tree is used once, a consumed slot is reused in place, so a
//! program needs as many slots as the tree's register pressure (3 for the paper's
//! kernel). Scalars broadcast. A kernel matrix is evaluated pair by pair (rows in
//! parallel with rayon), never materialising an `n×m×d` array.

use super::ast::{max_nan, min_nan, BinOp, Expr, Func, ValueType};
use super::fastmath::{self, Fused, Madd, Unfused};
use super::ExprError;
use crate::runtime::CancelToken;
use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

/// Where an instruction reads a value.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Src {
    X,
    Y,
    Slot(usize),
    Sca(usize),
    Const(f64),
}

impl Src {
    fn is_vector(self) -> bool {
        matches!(self, Src::X | Src::Y | Src::Slot(_))
    }
}

/// Elementwise binary operations.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Bin {
    Op(BinOp),
    F(Func),
}

impl Bin {
    #[inline(always)]
    fn apply(self, a: f64, b: f64) -> f64 {
        match self {
            Bin::Op(o) => o.apply(a, b),
            Bin::F(f) => f.apply2(a, b),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Instr {
    /// `slot = f(slot)` (the input was copied or computed into `slot`).
    UnaryV { f: Option<Func>, slot: usize },
    /// `sca[out] = f(a)` for a scalar input.
    UnaryS { f: Option<Func>, a: Src, out: usize },
    /// `slot = copy of x or y`.
    Load { src: Src, slot: usize },
    /// `slot = f(slot, b)`.
    BinLeft { f: Bin, slot: usize, b: Src },
    /// `slot = f(a, slot)`.
    BinRight { f: Bin, a: Src, slot: usize },
    /// `sca[out] = f(a, b)` for scalar inputs.
    BinS { f: Bin, a: Src, b: Src, out: usize },
    /// `slot = f(a, b)` for operands that are not slots (saves copying `a` first).
    BinNew { f: Bin, a: Src, b: Src, slot: usize },
    /// `sca[out] = red(f(a, b))` for a one-operand reduction `red` (`norm1`, `l1`,
    /// `l2`) of an elementwise binary result, without storing that result.
    ReduceBin {
        red: Func,
        f: Bin,
        a: Src,
        b: Src,
        out: usize,
    },
    /// `sca[out] = reduction(a[, b])`.
    Reduce {
        f: Func,
        a: Src,
        b: Option<Src>,
        out: usize,
    },
}

/// A compiled expression.
#[derive(Debug, Clone)]
pub struct Program {
    instrs: Vec<Instr>,
    n_slots: usize,
    n_sca: usize,
    result: Src,
    uses_y: bool,
    value_type: ValueType,
    text: String,
}

struct Compiler {
    instrs: Vec<Instr>,
    free: Vec<usize>,
    n_slots: usize,
    n_sca: usize,
}

impl Compiler {
    fn slot(&mut self) -> usize {
        if let Some(s) = self.free.pop() {
            s
        } else {
            self.n_slots += 1;
            self.n_slots - 1
        }
    }

    fn sca(&mut self) -> usize {
        self.n_sca += 1;
        self.n_sca - 1
    }

    fn release(&mut self, s: Src) {
        if let Src::Slot(k) = s {
            self.free.push(k);
        }
    }

    /// A vector value in a slot we may overwrite.
    fn own(&mut self, s: Src) -> usize {
        match s {
            Src::Slot(k) => k,
            other => {
                let k = self.slot();
                self.instrs.push(Instr::Load {
                    src: other,
                    slot: k,
                });
                k
            }
        }
    }

    fn unary(&mut self, f: Option<Func>, a: Src) -> Src {
        if let Src::Const(c) = a {
            return Src::Const(match f {
                None => -c,
                Some(f) => f.apply1(c),
            });
        }
        if a.is_vector() {
            let slot = self.own(a);
            self.instrs.push(Instr::UnaryV { f, slot });
            Src::Slot(slot)
        } else {
            let out = self.sca();
            self.instrs.push(Instr::UnaryS { f, a, out });
            Src::Sca(out)
        }
    }

    fn binary(&mut self, f: Bin, a: Src, b: Src) -> Src {
        if let (Src::Const(x), Src::Const(y)) = (a, b) {
            return Src::Const(f.apply(x, y));
        }
        let is_slot = |s: Src| matches!(s, Src::Slot(_));
        if (a.is_vector() || b.is_vector()) && !is_slot(a) && !is_slot(b) {
            let slot = self.slot();
            self.instrs.push(Instr::BinNew { f, a, b, slot });
            return Src::Slot(slot);
        }
        match (a.is_vector(), b.is_vector()) {
            (false, false) => {
                let out = self.sca();
                self.instrs.push(Instr::BinS { f, a, b, out });
                Src::Sca(out)
            }
            (_, true) if matches!(b, Src::Slot(_)) && !matches!(a, Src::Slot(_)) => {
                let slot = self.own(b);
                self.instrs.push(Instr::BinRight { f, a, slot });
                Src::Slot(slot)
            }
            (true, _) => {
                let slot = self.own(a);
                self.instrs.push(Instr::BinLeft { f, slot, b });
                self.release(b);
                Src::Slot(slot)
            }
            (false, true) => {
                let slot = self.own(b);
                self.instrs.push(Instr::BinRight { f, a, slot });
                Src::Slot(slot)
            }
        }
    }

    fn node(&mut self, e: &Expr) -> Result<Src, ExprError> {
        Ok(match e {
            Expr::Var(0) => Src::X,
            Expr::Var(1) => Src::Y,
            Expr::Var(v) => {
                return Err(ExprError::Invalid(format!(
                    "unbound placeholder variable number {v}"
                )))
            }
            Expr::Const(c) => Src::Const(*c),
            Expr::Neg(a) => {
                let a = self.node(a)?;
                self.unary(None, a)
            }
            Expr::Bin(op, a, b) => {
                let a = self.node(a)?;
                let b = self.node(b)?;
                self.binary(Bin::Op(*op), a, b)
            }
            Expr::Call(f, args) => {
                let srcs = args
                    .iter()
                    .map(|a| self.node(a))
                    .collect::<Result<Vec<_>, _>>()?;
                match (f.is_reduction(), srcs.as_slice()) {
                    (true, [a]) => self.reduce(*f, *a, None),
                    (true, [a, b]) => self.reduce(*f, *a, Some(*b)),
                    (false, [a]) => self.unary(Some(*f), *a),
                    (false, [a, b]) => self.binary(Bin::F(*f), *a, *b),
                    _ => {
                        return Err(ExprError::Invalid(format!(
                            "{} takes {} argument(s), got {}",
                            f.name(),
                            f.arity(),
                            srcs.len()
                        )))
                    }
                }
            }
        })
    }

    fn reduce(&mut self, f: Func, a: Src, b: Option<Src>) -> Src {
        let out = self.sca();
        if let (Func::Norm1 | Func::L1 | Func::L2, Src::Slot(k), None) = (f, a, b) {
            // Fuse with the elementwise binary operation that produced the slot.
            let fused = match self.instrs.last() {
                Some(&Instr::BinLeft { f: g, slot, b }) if slot == k => Some((g, a, b)),
                Some(&Instr::BinRight { f: g, a: l, slot }) if slot == k => Some((g, l, a)),
                Some(&Instr::BinNew {
                    f: g,
                    a: l,
                    b: r,
                    slot,
                }) if slot == k => Some((g, l, r)),
                _ => None,
            };
            if let Some((g, l, r)) = fused {
                self.instrs.pop();
                self.instrs.push(Instr::ReduceBin {
                    red: f,
                    f: g,
                    a: l,
                    b: r,
                    out,
                });
                self.release(a);
                return Src::Sca(out);
            }
        }
        self.instrs.push(Instr::Reduce { f, a, b, out });
        self.release(a);
        if let Some(b) = b {
            self.release(b);
        }
        Src::Sca(out)
    }
}

/// A read-only view of an operand: a slice or a broadcast scalar.
#[derive(Clone, Copy)]
enum View<'a> {
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
fn unary_inplace<M: Madd>(f: Option<Func>, o: &mut [f64]) {
    unary_dispatch!(f, o, [Abs, Square, Cube, SqrtAbs, Relu, Min0, Sign]);
}

#[inline(always)]
fn unary_scalar<M: Madd>(f: Option<Func>, a: f64) -> f64 {
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
            Bin::Op(BinOp::Add) => $body($($args,)* |a, b| a + b),
            Bin::Op(BinOp::Sub) => $body($($args,)* |a, b| a - b),
            Bin::Op(BinOp::Mul) => $body($($args,)* |a, b| a * b),
            Bin::Op(BinOp::Div) => $body($($args,)* |a, b| a / b),
            Bin::F(Func::Max) => $body($($args,)* |a: f64, b| max_nan(a, b)),
            Bin::F(Func::Min) => $body($($args,)* |a: f64, b| min_nan(a, b)),
            Bin::F(Func::ExpDiff) => $body($($args,)* |a: f64, b: f64| fastmath::exp::<M>(-(a - b).abs())),
            Bin::F(_) => $body($($args,)* |_a, _b| f64::NAN),
        }
    };
}

#[inline(always)]
fn bin_left(o: &mut [f64], b: View<'_>, f: impl Fn(f64, f64) -> f64) {
    match b {
        View::V(b) => o.iter_mut().zip(b).for_each(|(v, &w)| *v = f(*v, w)),
        View::C(c) => o.iter_mut().for_each(|v| *v = f(*v, c)),
    }
}

#[inline(always)]
fn bin_new(o: &mut [f64], a: View<'_>, b: View<'_>, f: impl Fn(f64, f64) -> f64) {
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
fn sum_abs_of(a: View<'_>, b: View<'_>, d: usize, f: impl Fn(f64, f64) -> f64) -> f64 {
    sum2(a, b, d, |p, q| f(p, q).abs())
}

#[inline(always)]
fn sum_sq_of(a: View<'_>, b: View<'_>, d: usize, f: impl Fn(f64, f64) -> f64) -> f64 {
    sum2(a, b, d, |p, q| {
        let v = f(p, q);
        v * v
    })
}

/// `red(f(a, b))` for `red` in `norm1`, `l1`, `l2`.
#[inline(always)]
fn reduce_bin<M: Madd>(red: Func, f: Bin, a: View<'_>, b: View<'_>, d: usize) -> f64 {
    let gamma = 1.0 / d as f64;
    match red {
        Func::Norm1 => bin_dispatch!(f, sum_abs_of, a, b, d),
        Func::L1 => gamma * bin_dispatch!(f, sum_abs_of, a, b, d),
        Func::L2 => gamma * bin_dispatch!(f, sum_sq_of, a, b, d).sqrt(),
        _ => f64::NAN,
    }
}

#[inline(always)]
fn bin_right(o: &mut [f64], a: View<'_>, f: impl Fn(f64, f64) -> f64) {
    match a {
        View::V(a) => o.iter_mut().zip(a).for_each(|(v, &w)| *v = f(w, *v)),
        View::C(c) => o.iter_mut().for_each(|v| *v = f(c, *v)),
    }
}

/// Sum of 16 partial sums as four lanes of four (the order the AVX2 reductions use).
#[inline(always)]
fn fold16(s: &[f64; 16]) -> f64 {
    let mut l = [0.0f64; 4];
    for k in 0..4 {
        l[k] = (s[k] + s[4 + k]) + (s[8 + k] + s[12 + k]);
    }
    (l[0] + l[2]) + (l[1] + l[3])
}

/// Sum of `f(a[i])` with 16 independent accumulators (vectorisable without letting LLVM
/// reassociate).
#[inline(always)]
fn sum1(a: &[f64], f: impl Fn(f64) -> f64) -> f64 {
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
fn sum2(a: View<'_>, b: View<'_>, d: usize, f: impl Fn(f64, f64) -> f64) -> f64 {
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
mod avx {
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
fn reduce_avx2<M: Madd>(f: Func, a: View<'_>, b: Option<View<'_>>) -> Option<f64> {
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

#[inline(always)]
fn reduce<M: Madd>(f: Func, a: View<'_>, b: Option<View<'_>>, d: usize) -> f64 {
    let gamma = 1.0 / d as f64;
    if let Some(s) = reduce_avx2::<M>(f, a, b) {
        return match f {
            Func::Dot | Func::L1Dist | Func::L1 => gamma * s,
            Func::L2Dist | Func::L2 => gamma * s.sqrt(),
            _ => s,
        };
    }
    let b = b.unwrap_or(View::C(0.0));
    match f {
        Func::Dot => gamma * sum2(a, b, d, |p, q| p * q),
        Func::L1Dist => gamma * sum2(a, b, d, |p, q| (p - q).abs()),
        Func::L2Dist => gamma * sum2(a, b, d, |p, q| (p - q) * (p - q)).sqrt(),
        Func::L1 => gamma * sum2(a, b, d, |p, _| p.abs()),
        Func::L2 => gamma * sum2(a, b, d, |p, _| p * p).sqrt(),
        Func::Norm1 => sum2(a, b, d, |p, _| p.abs()),
        _ => f64::NAN,
    }
}

/// Per-thread evaluation state for one [`Program`] and feature count: scratch slots and
/// scalar registers, allocated once and reused for every pair.
pub struct PairEvaluator<'p> {
    prog: &'p Program,
    d: usize,
    slots: Vec<f64>,
    sca: Vec<f64>,
}

impl PairEvaluator<'_> {
    #[inline(always)]
    fn view<'a>(&'a self, s: Src, x: &'a [f64], y: &'a [f64], slots: &'a [f64]) -> View<'a> {
        match s {
            Src::X => View::V(x),
            Src::Y => View::V(y),
            Src::Slot(k) => View::V(&slots[k * self.d..(k + 1) * self.d]),
            Src::Sca(k) => View::C(self.sca[k]),
            Src::Const(c) => View::C(c),
        }
    }

    #[inline(always)]
    fn scalar(&self, s: Src) -> f64 {
        match s {
            Src::Sca(k) => self.sca[k],
            Src::Const(c) => c,
            _ => f64::NAN,
        }
    }

    /// Run the program on one pair; afterwards the result is in [`Self::result`].
    #[inline(always)]
    fn run<M: Madd>(&mut self, x: &[f64], y: &[f64]) {
        let d = self.d;
        let mut slots = std::mem::take(&mut self.slots);
        for ins in &self.prog.instrs {
            match *ins {
                Instr::Load { src, slot } => {
                    let from = if src == Src::Y { y } else { x };
                    slots[slot * d..(slot + 1) * d].copy_from_slice(from);
                }
                Instr::UnaryV { f, slot } => {
                    unary_inplace::<M>(f, &mut slots[slot * d..(slot + 1) * d])
                }
                Instr::UnaryS { f, a, out } => self.sca[out] = unary_scalar::<M>(f, self.scalar(a)),
                Instr::BinS { f, a, b, out } => {
                    self.sca[out] = f.apply(self.scalar(a), self.scalar(b));
                }
                Instr::BinLeft { f, slot, b } | Instr::BinRight { f, a: b, slot } => {
                    let left = matches!(ins, Instr::BinLeft { .. });
                    let (o, other): (&mut [f64], View<'_>) = match b {
                        Src::Slot(k) => {
                            let (o, other) = two_slots(&mut slots, d, slot, k);
                            (o, View::V(other))
                        }
                        Src::X => (&mut slots[slot * d..(slot + 1) * d], View::V(x)),
                        Src::Y => (&mut slots[slot * d..(slot + 1) * d], View::V(y)),
                        Src::Sca(k) => (&mut slots[slot * d..(slot + 1) * d], View::C(self.sca[k])),
                        Src::Const(c) => (&mut slots[slot * d..(slot + 1) * d], View::C(c)),
                    };
                    if left {
                        bin_dispatch!(f, bin_left, o, other);
                    } else {
                        bin_dispatch!(f, bin_right, o, other);
                    }
                }
                Instr::BinNew { f, a, b, slot } => {
                    // (The compiler never gives BinNew a slot operand: `slots` is borrowed
                    // mutably for the output here.)
                    let operand = |s: Src| match s {
                        Src::X => View::V(x),
                        Src::Y => View::V(y),
                        Src::Sca(k) => View::C(self.sca[k]),
                        Src::Const(c) => View::C(c),
                        Src::Slot(_) => View::C(f64::NAN),
                    };
                    let (va, vb) = (operand(a), operand(b));
                    let o = &mut slots[slot * d..(slot + 1) * d];
                    bin_dispatch!(f, bin_new, o, va, vb);
                }
                Instr::ReduceBin { red, f, a, b, out } => {
                    let va = self.view(a, x, y, &slots);
                    let vb = self.view(b, x, y, &slots);
                    self.sca[out] = reduce_bin::<M>(red, f, va, vb, d);
                }
                Instr::Reduce { f, a, b, out } => {
                    let va = self.view(a, x, y, &slots);
                    let vb = b.map(|b| self.view(b, x, y, &slots));
                    let r = reduce::<M>(f, va, vb, d);
                    self.sca[out] = r;
                }
            }
        }
        self.slots = slots;
    }

    /// Evaluate a scalar-valued program (a kernel) on one pair.
    #[inline(always)]
    fn kernel<M: Madd>(&mut self, x: &[f64], y: &[f64]) -> f64 {
        self.run::<M>(x, y);
        match self.prog.result {
            Src::Sca(k) => self.sca[k],
            Src::Const(c) => c,
            _ => f64::NAN,
        }
    }

    /// Evaluate a program on one row (`y` = `x`) into `out` (`d` values; a scalar
    /// result is broadcast).
    #[inline(always)]
    fn transform<M: Madd>(&mut self, x: &[f64], out: &mut [f64]) {
        self.run::<M>(x, x);
        match self.prog.result {
            Src::X | Src::Y => out.copy_from_slice(x),
            Src::Slot(k) => out.copy_from_slice(&self.slots[k * self.d..(k + 1) * self.d]),
            Src::Sca(k) => out.fill(self.sca[k]),
            Src::Const(c) => out.fill(c),
        }
    }
}

/// `row[j] = k(xi, y_j)` for `j >= from`.
#[inline(always)]
fn kernel_row_generic<M: Madd>(
    ev: &mut PairEvaluator<'_>,
    xi: &[f64],
    ys: &[f64],
    from: usize,
    row: &mut [f64],
) {
    let d = ev.d;
    for (j, o) in row.iter_mut().enumerate().skip(from) {
        *o = ev.kernel::<M>(xi, &ys[j * d..(j + 1) * d]);
    }
}

/// The same loop compiled for AVX2 and FMA (4 doubles per instruction, fused
/// multiply-adds in the polynomials).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_row_avx2(
    ev: &mut PairEvaluator<'_>,
    xi: &[f64],
    ys: &[f64],
    from: usize,
    row: &mut [f64],
) {
    kernel_row_generic::<Fused>(ev, xi, ys, from, row);
}

/// One row of a kernel matrix with the best instruction set of this CPU (AVX2 when
/// present; AVX-512 code generation crashed LLVM here, so it is not used).
fn kernel_row(ev: &mut PairEvaluator<'_>, xi: &[f64], ys: &[f64], from: usize, row: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx2_fma() {
            // SAFETY: AVX2 and FMA support was just checked.
            unsafe { kernel_row_avx2(ev, xi, ys, from, row) };
            return;
        }
    }
    kernel_row_generic::<Unfused>(ev, xi, ys, from, row);
}

#[cfg(target_arch = "x86_64")]
fn has_avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// Transform one row (AVX2 + FMA where present).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn transform_row_avx2(ev: &mut PairEvaluator<'_>, x: &[f64], out: &mut [f64]) {
    ev.transform::<Fused>(x, out);
}

fn transform_row(ev: &mut PairEvaluator<'_>, x: &[f64], out: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx2_fma() {
            // SAFETY: AVX2 and FMA support was just checked.
            unsafe { transform_row_avx2(ev, x, out) };
            return;
        }
    }
    ev.transform::<Unfused>(x, out);
}

/// `out[t] = k(xi, ys[cols[t]])`.
#[inline(always)]
fn kernel_cols_generic<M: Madd>(
    ev: &mut PairEvaluator<'_>,
    xi: &[f64],
    ys: &[f64],
    cols: &[usize],
    out: &mut [f64],
) {
    let d = ev.d;
    for (o, &j) in out.iter_mut().zip(cols) {
        *o = ev.kernel::<M>(xi, &ys[j * d..(j + 1) * d]);
    }
}

/// [`kernel_cols_generic`] compiled for AVX2 and FMA.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_cols_avx2(
    ev: &mut PairEvaluator<'_>,
    xi: &[f64],
    ys: &[f64],
    cols: &[usize],
    out: &mut [f64],
) {
    kernel_cols_generic::<Fused>(ev, xi, ys, cols, out);
}

fn two_slots(buf: &mut [f64], d: usize, a: usize, b: usize) -> (&mut [f64], &[f64]) {
    if a < b {
        let (lo, hi) = buf.split_at_mut(b * d);
        (&mut lo[a * d..(a + 1) * d], &hi[..d])
    } else {
        let (lo, hi) = buf.split_at_mut(a * d);
        (&mut hi[..d], &lo[b * d..(b + 1) * d])
    }
}

impl Program {
    /// Compile an expression.
    pub fn compile(e: &Expr) -> Result<Program, ExprError> {
        let mut c = Compiler {
            instrs: Vec::new(),
            free: Vec::new(),
            n_slots: 0,
            n_sca: 0,
        };
        let result = c.node(e)?;
        Ok(Program {
            instrs: c.instrs,
            n_slots: c.n_slots,
            n_sca: c.n_sca,
            result,
            uses_y: e.uses_var(1),
            value_type: e.value_type(),
            text: e.to_string(),
        })
    }

    /// Number of vector scratch slots.
    pub fn n_slots(&self) -> usize {
        self.n_slots
    }

    /// Number of instructions.
    pub fn len(&self) -> usize {
        self.instrs.len()
    }

    /// Whether the program has no instructions (a variable or a constant).
    pub fn is_empty(&self) -> bool {
        self.instrs.is_empty()
    }

    /// An evaluator for `d` features.
    pub fn evaluator(&self, d: usize) -> PairEvaluator<'_> {
        PairEvaluator {
            prog: self,
            d,
            slots: vec![0.0; self.n_slots * d],
            sca: vec![0.0; self.n_sca],
        }
    }

    /// Check that the program is a kernel (scalar-valued).
    pub fn check_kernel(&self) -> Result<(), ExprError> {
        if self.value_type != ValueType::Scalar {
            return Err(ExprError::Invalid(format!(
                "a kernel must be scalar-valued, but {} is a vector; wrap it in norm1(...)",
                self.text
            )));
        }
        Ok(())
    }

    /// Check that the program is a transform (uses `x` only).
    pub fn check_transform(&self) -> Result<(), ExprError> {
        if self.uses_y {
            return Err(ExprError::Invalid(format!(
                "a transform may only use x, but {} uses y",
                self.text
            )));
        }
        Ok(())
    }

    /// `out[t] = k(x_i, x_{cols[t]})` for the rows of a row-major `n × d` matrix `xs`
    /// (one kernel row on demand, for solvers that cache rows; single-threaded).
    /// Returns `false` if `d == 0`, `xs` is not `n × d`, an index is out of range or
    /// the program is not a kernel (then `out` is untouched).
    pub fn kernel_row_of(
        &self,
        xs: &[f64],
        d: usize,
        i: usize,
        cols: &[usize],
        out: &mut [f64],
    ) -> bool {
        let n = xs.len().checked_div(d).unwrap_or(0);
        if d == 0
            || self.value_type != ValueType::Scalar
            || xs.len() != n * d
            || i >= n
            || out.len() != cols.len()
            || cols.iter().any(|&j| j >= n)
        {
            return false;
        }
        let mut ev = self.evaluator(d);
        let xi = &xs[i * d..(i + 1) * d];
        #[cfg(target_arch = "x86_64")]
        {
            if has_avx2_fma() {
                // SAFETY: AVX2 and FMA support was just checked.
                unsafe { kernel_cols_avx2(&mut ev, xi, xs, cols, out) };
                return true;
            }
        }
        kernel_cols_generic::<Unfused>(&mut ev, xi, xs, cols, out);
        true
    }

    /// Kernel matrix `K[i, j] = k(x_i, y_j)`, rows in parallel (call inside
    /// [`crate::runtime::install`] to use gridmatch's pool). With `check_finite`, any
    /// NaN/inf entry is an [`ExprError::NonFinite`].
    pub fn gram(
        &self,
        x: ArrayView2<'_, f64>,
        y: ArrayView2<'_, f64>,
        token: &CancelToken,
        check_finite: bool,
    ) -> Result<Array2<f64>, ExprError> {
        self.check_kernel()?;
        let (n, d) = x.dim();
        let (m, d2) = y.dim();
        if d != d2 {
            return Err(ExprError::Shape(format!(
                "X has {d} features but Y has {d2}"
            )));
        }
        if d == 0 {
            return Err(ExprError::Shape("arrays have no features".into()));
        }
        let xs = contiguous(x);
        let ys = contiguous(y);
        let mut out = vec![0.0f64; n * m];
        if m > 0 {
            out.par_chunks_mut(m).enumerate().for_each_init(
                || self.evaluator(d),
                |ev, (i, row)| {
                    if token.is_cancelled() {
                        return;
                    }
                    kernel_row(ev, &xs[i * d..(i + 1) * d], &ys, 0, row);
                },
            );
        }
        if token.is_cancelled() {
            return Err(ExprError::Cancelled);
        }
        if check_finite {
            check_all_finite(&out, m.max(1))?;
        }
        Array2::from_shape_vec((n, m), out).map_err(|e| ExprError::Shape(e.to_string()))
    }

    /// Symmetric kernel matrix `K[i, j] = k(x_i, x_j)` computing only `j >= i` and
    /// mirroring; valid when the kernel is symmetric (see [`Expr::is_symmetric`]).
    pub fn gram_symmetric(
        &self,
        x: ArrayView2<'_, f64>,
        token: &CancelToken,
        check_finite: bool,
    ) -> Result<Array2<f64>, ExprError> {
        self.check_kernel()?;
        let (n, d) = x.dim();
        if d == 0 {
            return Err(ExprError::Shape("arrays have no features".into()));
        }
        let xs = contiguous(x);
        let mut out = vec![0.0f64; n * n];
        if n > 0 {
            out.par_chunks_mut(n).enumerate().for_each_init(
                || self.evaluator(d),
                |ev, (i, row)| {
                    if token.is_cancelled() {
                        return;
                    }
                    kernel_row(ev, &xs[i * d..(i + 1) * d], &xs, i, row);
                },
            );
        }
        if token.is_cancelled() {
            return Err(ExprError::Cancelled);
        }
        for i in 0..n {
            for j in 0..i {
                out[i * n + j] = out[j * n + i];
            }
        }
        if check_finite {
            check_all_finite(&out, n.max(1))?;
        }
        Array2::from_shape_vec((n, n), out).map_err(|e| ExprError::Shape(e.to_string()))
    }

    /// Apply a transform to every row of `x` (same shape out).
    pub fn apply(
        &self,
        x: ArrayView2<'_, f64>,
        token: &CancelToken,
        check_finite: bool,
    ) -> Result<Array2<f64>, ExprError> {
        self.check_transform()?;
        let (n, d) = x.dim();
        let xs = contiguous(x);
        let mut out = vec![0.0f64; n * d];
        if d > 0 {
            out.par_chunks_mut(d).enumerate().for_each_init(
                || self.evaluator(d),
                |ev, (i, row)| {
                    if !token.is_cancelled() {
                        transform_row(ev, &xs[i * d..(i + 1) * d], row);
                    }
                },
            );
        }
        if token.is_cancelled() {
            return Err(ExprError::Cancelled);
        }
        if check_finite {
            check_all_finite(&out, d.max(1))?;
        }
        Array2::from_shape_vec((n, d), out).map_err(|e| ExprError::Shape(e.to_string()))
    }
}

fn contiguous(a: ArrayView2<'_, f64>) -> std::borrow::Cow<'_, [f64]> {
    match a.to_slice() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(a.iter().copied().collect()),
    }
}

fn check_all_finite(out: &[f64], cols: usize) -> Result<(), ExprError> {
    let bad = out.iter().filter(|v| !v.is_finite()).count();
    if bad > 0 {
        let first = out.iter().position(|v| !v.is_finite()).unwrap_or(0);
        return Err(ExprError::NonFinite {
            count: bad,
            row: first / cols,
            col: first % cols,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;
    use ndarray::Array2;

    fn data(n: usize, d: usize, seed: u64) -> Array2<f64> {
        let mut s = seed;
        Array2::from_shape_fn((n, d), |_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
    }

    fn gram(text: &str, x: &Array2<f64>, y: &Array2<f64>) -> Array2<f64> {
        let p = Program::compile(&parse(text).unwrap()).unwrap();
        p.gram(x.view(), y.view(), &CancelToken::new(), true)
            .unwrap()
    }

    #[test]
    fn paper_kernel_matches_direct_formula() {
        let x = data(5, 13, 1);
        let y = data(4, 13, 2);
        let k = gram("norm1(min(sin(x * y), sin(dot(x, y))))", &x, &y);
        for i in 0..5 {
            for j in 0..4 {
                let d = 13.0;
                let dot: f64 = (0..13).map(|f| x[[i, f]] * y[[j, f]]).sum::<f64>() / d;
                let want: f64 = (0..13)
                    .map(|f| (x[[i, f]] * y[[j, f]]).sin().min(dot.sin()).abs())
                    .sum();
                assert!((k[[i, j]] - want).abs() < 1e-12 * want.abs().max(1.0));
            }
        }
        let p =
            Program::compile(&parse("norm1(min(sin(x * y), sin(dot(x, y))))").unwrap()).unwrap();
        assert_eq!(p.n_slots(), 1);
    }

    #[test]
    fn broadcasting_and_slots() {
        let x = data(3, 6, 3);
        let y = data(2, 6, 4);
        // Deep tree: several live slots.
        let k = gram(
            "norm1((x - y) * (x + y) - (square(x) - square(y)) + 2)",
            &x,
            &y,
        );
        for v in k.iter() {
            assert!((v - 12.0).abs() < 1e-12, "{v}");
        }
        let k = gram("l1(dot(x, y))", &x, &y);
        let k2 = gram("abs(dot(x, y))", &x, &y);
        assert!((&k - &k2).iter().all(|v| v.abs() < 1e-14));
        let k = gram("norm1(3)", &x, &y);
        assert!(k.iter().all(|&v| (v - 18.0).abs() < 1e-12));
        let k = gram("l2(2)", &x, &y);
        assert!(k.iter().all(|&v| (v - 2.0 / 6f64.sqrt()).abs() < 1e-12));
    }

    #[test]
    fn errors() {
        let x = data(3, 4, 5);
        let tok = CancelToken::new();
        let p = Program::compile(&parse("x * y").unwrap()).unwrap();
        assert!(matches!(
            p.gram(x.view(), x.view(), &tok, true),
            Err(ExprError::Invalid(_))
        ));
        let p = Program::compile(&parse("norm1(x / (x - x))").unwrap()).unwrap();
        assert!(matches!(
            p.gram(x.view(), x.view(), &tok, true),
            Err(ExprError::NonFinite { count: 9, .. })
        ));
        let p = Program::compile(&parse("x + y").unwrap()).unwrap();
        assert!(matches!(
            p.apply(x.view(), &tok, true),
            Err(ExprError::Invalid(_))
        ));
        let tok = CancelToken::new();
        tok.cancel();
        let p = Program::compile(&parse("dot(x, y)").unwrap()).unwrap();
        assert_eq!(
            p.gram(x.view(), x.view(), &tok, true),
            Err(ExprError::Cancelled)
        );
    }

    #[test]
    fn symmetric_gram() {
        let x = data(7, 5, 11);
        let tok = CancelToken::new();
        for text in [
            "norm1(min(sin(x * y), sin(dot(x, y))))",
            "norm1(expdiff(x, y) + x * y) - l2dist(y, x)",
            "norm1(abs(x - y)) + l1(y - x) + l2(x - y)",
            "norm1(min(sin(abs(square(x) - square(y))), sqrt_abs(x + y)))",
            "norm1(cosh(y - x) * square(x - y) + sqrt_abs(x - y))",
        ] {
            let e = parse(text).unwrap();
            assert!(e.is_symmetric(), "{text}");
            let p = Program::compile(&e).unwrap();
            let full = p.gram(x.view(), x.view(), &tok, true).unwrap();
            let sym = p.gram_symmetric(x.view(), &tok, true).unwrap();
            assert_eq!(full, sym);
        }
        assert!(parse("norm1(x - y)").unwrap().is_symmetric());
        assert!(!parse("norm1(x - y + 1)").unwrap().is_symmetric());
        assert!(!parse("norm1(sin(x - y))").unwrap().is_symmetric());
        assert!(!parse("norm1(abs(x - 2 * y))").unwrap().is_symmetric());
        assert!(!parse("dot(x, x) - dot(y, y)").unwrap().is_symmetric());
    }

    /// The AVX2 + FMA code path (dispatched on this CPU when present) and the portable
    /// one agree to rounding for every operation, including the fused instructions
    /// (`BinNew`, `ReduceBin`) and the AVX2 reductions.
    #[test]
    fn simd_and_portable_paths_agree() {
        let x = data(6, 37, 21);
        let y = data(5, 37, 22);
        let texts = [
            "norm1(min(sin(x * y), sin(dot(x, y))))",
            "norm1(cos(3 * x + y)) + l1dist(x, y) + l2dist(x, y) + l1(x) + l2(y)",
            "norm1(exp(x) - sinh(y) + cosh(x * y) + tanh(x - y))",
            "norm1(sigmoid(x) * softplus(4 * y) / (2 + sqrt_abs(x)))",
            "norm1(max(x, y) - min(x, 0.5) + expdiff(x, y) + relu(y) + min0(x))",
            "l2(square(x) - cube(y) + abs(x) * sign(y)) + l1(x + y) + norm1(x - 0.25)",
            "dot(x, y) + l2(-x) + norm1(y / 3)",
        ];
        for text in texts {
            let p = Program::compile(&parse(text).unwrap()).unwrap();
            let d = x.ncols();
            let mut ev = p.evaluator(d);
            let xs = x.as_slice().unwrap();
            let ys = y.as_slice().unwrap();
            for i in 0..x.nrows() {
                let mut fast = vec![0.0; y.nrows()];
                let mut portable = vec![0.0; y.nrows()];
                kernel_row(&mut ev, &xs[i * d..(i + 1) * d], ys, 0, &mut fast);
                kernel_row_generic::<Unfused>(
                    &mut ev,
                    &xs[i * d..(i + 1) * d],
                    ys,
                    0,
                    &mut portable,
                );
                for (a, b) in fast.iter().zip(&portable) {
                    assert!(
                        (a - b).abs() <= 1e-12 * b.abs().max(1.0),
                        "{text}: {a} vs {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn transform_rows() {
        let x = data(4, 5, 7);
        let p = Program::compile(&parse("x / l2(x) + sigmoid(x) * 0.5").unwrap()).unwrap();
        let t = p.apply(x.view(), &CancelToken::new(), true).unwrap();
        for i in 0..4 {
            let n: f64 = (0..5).map(|f| x[[i, f]].powi(2)).sum::<f64>().sqrt() / 5.0;
            for f in 0..5 {
                let v = x[[i, f]];
                let want = v / n + 0.5 / (1.0 + (-v).exp());
                assert!((t[[i, f]] - want).abs() < 1e-12);
            }
        }
    }
}
