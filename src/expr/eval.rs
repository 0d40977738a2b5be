//! Compilation of expression trees to flat programs, and their evaluation over
//! matrices.
//!
//! Every vector-valued node gets a slot of `d` numbers in a per-thread scratch buffer;
//! since each node of a tree is used once, a consumed slot is reused in place, so a
//! program needs as many slots as the tree's register pressure (3 for the paper's
//! kernel). Scalars broadcast. A kernel matrix is evaluated pair by pair (rows in
//! parallel with rayon), never materialising an `n×m×d` array.

use super::ast::{BinOp, Expr, Func, ValueType};
use super::fastmath;
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
            Some(Func::Sin) => fastmath::sin_inplace($o),
            Some(Func::Cos) => fastmath::cos_inplace($o),
            Some(Func::Exp) => fastmath::exp_inplace($o),
            Some(Func::Sinh) => $o.iter_mut().for_each(|v| *v = fastmath::sinh(*v)),
            Some(Func::Cosh) => $o.iter_mut().for_each(|v| *v = fastmath::cosh(*v)),
            Some(Func::Tanh) => $o.iter_mut().for_each(|v| *v = fastmath::tanh(*v)),
            Some(Func::Sigmoid) => $o.iter_mut().for_each(|v| *v = fastmath::sigmoid(*v)),
            Some(Func::Softplus) => $o.iter_mut().for_each(|v| *v = fastmath::softplus(*v)),
            $(Some(Func::$name) => $o.iter_mut().for_each(|v| *v = Func::$name.apply1(*v)),)*
            Some(_) => $o.iter_mut().for_each(|v| *v = f64::NAN),
        }
    };
}

#[inline(always)]
fn unary_inplace(f: Option<Func>, o: &mut [f64]) {
    unary_dispatch!(f, o, [Abs, Square, Cube, SqrtAbs, Relu, Min0, Sign]);
}

fn unary_scalar(f: Option<Func>, a: f64) -> f64 {
    match f {
        None => -a,
        Some(Func::Sin) => fastmath::sin(a),
        Some(Func::Cos) => fastmath::cos(a),
        Some(Func::Exp) => fastmath::exp(a),
        Some(Func::Sinh) => fastmath::sinh(a),
        Some(Func::Cosh) => fastmath::cosh(a),
        Some(Func::Tanh) => fastmath::tanh(a),
        Some(Func::Sigmoid) => fastmath::sigmoid(a),
        Some(Func::Softplus) => fastmath::softplus(a),
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
            Bin::F(Func::Max) => $body($($args,)* |a: f64, b| a.max(b)),
            Bin::F(Func::Min) => $body($($args,)* |a: f64, b| a.min(b)),
            Bin::F(Func::ExpDiff) => $body($($args,)* |a: f64, b: f64| fastmath::exp(-(a - b).abs())),
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
fn bin_right(o: &mut [f64], a: View<'_>, f: impl Fn(f64, f64) -> f64) {
    match a {
        View::V(a) => o.iter_mut().zip(a).for_each(|(v, &w)| *v = f(w, *v)),
        View::C(c) => o.iter_mut().for_each(|v| *v = f(c, *v)),
    }
}

/// Sum of `f(a[i])` with 8 independent accumulators (vectorisable without letting LLVM
/// reassociate).
#[inline(always)]
fn sum1(a: &[f64], f: impl Fn(f64) -> f64) -> f64 {
    let mut s = [0.0f64; 8];
    let ca = a.chunks_exact(8);
    let ra = ca.remainder();
    for x in ca {
        for k in 0..8 {
            s[k] += f(x[k]);
        }
    }
    let mut t = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    for x in ra {
        t += f(*x);
    }
    t
}

#[inline(always)]
fn sum2(a: View<'_>, b: View<'_>, d: usize, f: impl Fn(f64, f64) -> f64) -> f64 {
    match (a, b) {
        (View::V(a), View::V(b)) => {
            let mut s = [0.0f64; 8];
            let ca = a.chunks_exact(8);
            let cb = b.chunks_exact(8);
            let (ra, rb) = (ca.remainder(), cb.remainder());
            for (x, y) in ca.zip(cb) {
                for k in 0..8 {
                    s[k] += f(x[k], y[k]);
                }
            }
            let mut t = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
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

#[inline(always)]
fn reduce(f: Func, a: View<'_>, b: Option<View<'_>>, d: usize) -> f64 {
    let gamma = 1.0 / d as f64;
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
    fn run(&mut self, x: &[f64], y: &[f64]) {
        let d = self.d;
        let mut slots = std::mem::take(&mut self.slots);
        for ins in &self.prog.instrs {
            match *ins {
                Instr::Load { src, slot } => {
                    let from = if src == Src::Y { y } else { x };
                    slots[slot * d..(slot + 1) * d].copy_from_slice(from);
                }
                Instr::UnaryV { f, slot } => unary_inplace(f, &mut slots[slot * d..(slot + 1) * d]),
                Instr::UnaryS { f, a, out } => self.sca[out] = unary_scalar(f, self.scalar(a)),
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
                Instr::Reduce { f, a, b, out } => {
                    let va = self.view(a, x, y, &slots);
                    let vb = b.map(|b| self.view(b, x, y, &slots));
                    let r = reduce(f, va, vb, d);
                    self.sca[out] = r;
                }
            }
        }
        self.slots = slots;
    }

    /// Evaluate a scalar-valued program (a kernel) on one pair.
    #[inline(always)]
    pub fn kernel(&mut self, x: &[f64], y: &[f64]) -> f64 {
        self.run(x, y);
        match self.prog.result {
            Src::Sca(k) => self.sca[k],
            Src::Const(c) => c,
            _ => f64::NAN,
        }
    }

    /// Evaluate a program on one row (`y` = `x`) into `out` (`d` values; a scalar
    /// result is broadcast).
    pub fn transform(&mut self, x: &[f64], out: &mut [f64]) {
        self.run(x, x);
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
fn kernel_row_generic(
    ev: &mut PairEvaluator<'_>,
    xi: &[f64],
    ys: &[f64],
    from: usize,
    row: &mut [f64],
) {
    let d = ev.d;
    for (j, o) in row.iter_mut().enumerate().skip(from) {
        *o = ev.kernel(xi, &ys[j * d..(j + 1) * d]);
    }
}

/// The same loop compiled for AVX2 (4 doubles per instruction).
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn kernel_row_avx2(
    ev: &mut PairEvaluator<'_>,
    xi: &[f64],
    ys: &[f64],
    from: usize,
    row: &mut [f64],
) {
    kernel_row_generic(ev, xi, ys, from, row);
}

/// One row of a kernel matrix with the best instruction set of this CPU (AVX2 when
/// present; AVX-512 code generation crashed LLVM here, so it is not used).
fn kernel_row(ev: &mut PairEvaluator<'_>, xi: &[f64], ys: &[f64], from: usize, row: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 support was just checked.
            unsafe { kernel_row_avx2(ev, xi, ys, from, row) };
            return;
        }
    }
    kernel_row_generic(ev, xi, ys, from, row);
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
                        ev.transform(&xs[i * d..(i + 1) * d], row);
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
        ] {
            let e = parse(text).unwrap();
            assert!(e.is_symmetric(), "{text}");
            let p = Program::compile(&e).unwrap();
            let full = p.gram(x.view(), x.view(), &tok, true).unwrap();
            let sym = p.gram_symmetric(x.view(), &tok, true).unwrap();
            assert_eq!(full, sym);
        }
        assert!(!parse("norm1(x - y)").unwrap().is_symmetric());
        assert!(!parse("dot(x, x) - dot(y, y)").unwrap().is_symmetric());
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
