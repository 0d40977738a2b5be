//! Kernels: the [`Kernel`] trait (a function of two sets of feature vectors), the
//! built-in kernels with scikit-learn's semantics, and the [`Gram`] trait through which
//! the solver reads kernel values of the training set by index.
//!
//! Two ways to give the solver a kernel:
//!
//! - a [`Kernel`] over feature rows, bound to the training matrix with [`FeatureGram`]
//!   (rows of the Gram matrix are computed on demand and cached by the solver);
//! - a full Gram matrix with [`PrecomputedGram`] (a borrowed `n × n` view, no copy).
//!
//! External kernels (for example expression kernels) implement [`Kernel`]; only
//! [`Kernel::row`] is required, [`Kernel::block`] has a parallel default.

use ndarray::{ArrayView2, ArrayViewMut2, Axis};
use rayon::prelude::*;

/// A kernel function `k(a, b)` over feature vectors (rows of `f32` matrices).
///
/// Implementations must be pure functions of their inputs (the solver calls them from
/// several threads at once and may call them again for the same entries).
pub trait Kernel: Send + Sync {
    /// Fill `out[t] = k(a.row(i), b.row(cols[t]))` for every `t`.
    ///
    /// `out.len() == cols.len()`; `i < a.nrows()` and every `cols[t] < b.nrows()`
    /// (callers guarantee both).
    fn row(
        &self,
        a: ArrayView2<'_, f32>,
        i: usize,
        b: ArrayView2<'_, f32>,
        cols: &[usize],
        out: &mut [f32],
    );

    /// Fill `out` (`a.nrows() × b.nrows()`) with `k(a.row(p), b.row(q))`.
    ///
    /// The default computes rows in parallel through [`Kernel::row`]; kernels with a
    /// matrix-product form override it.
    fn block(
        &self,
        a: ArrayView2<'_, f32>,
        b: ArrayView2<'_, f32>,
        mut out: ArrayViewMut2<'_, f32>,
    ) {
        let cols: Vec<usize> = (0..b.nrows()).collect();
        out.axis_iter_mut(Axis(0))
            .collect::<Vec<_>>()
            .into_par_iter()
            .enumerate()
            .for_each(|(p, mut row)| match row.as_slice_mut() {
                Some(s) => self.row(a, p, b, &cols, s),
                None => {
                    let mut tmp = vec![0f32; cols.len()];
                    self.row(a, p, b, &cols, &mut tmp);
                    row.iter_mut().zip(&tmp).for_each(|(o, v)| *o = *v);
                }
            });
    }

    /// Fill `out` (`a.nrows() × a.nrows()`) with `k(a.row(p), a.row(q))`, the kernel
    /// matrix of `a` with itself. The default is [`Kernel::block`]`(a, a, out)`; a
    /// symmetric kernel may compute one triangle and mirror it (the built-in kernels
    /// do, with values bit-identical to [`Kernel::block`]'s).
    fn block_symmetric(&self, a: ArrayView2<'_, f32>, out: ArrayViewMut2<'_, f32>) {
        self.block(a, a, out);
    }

    /// `k(a.row(i), a.row(i))`.
    fn diag(&self, a: ArrayView2<'_, f32>, i: usize) -> f64 {
        let mut out = [0f32];
        self.row(a, i, a, &[i], &mut out);
        f64::from(out[0])
    }
}

/// The solver's view of a kernel on the training set: kernel values by sample index.
pub trait Gram: Sync {
    /// Number of training samples.
    fn n(&self) -> usize;
    /// `K[i, i]`.
    fn diag(&self, i: usize) -> f64;
    /// Fill `out[t] = K[i, cols[t]]`.
    fn row(&self, i: usize, cols: &[usize], out: &mut [f32]);
}

/// A [`Kernel`] bound to the training matrix `x` (borrowed).
pub struct FeatureGram<'a, K: Kernel + ?Sized> {
    kernel: &'a K,
    x: ArrayView2<'a, f32>,
}

impl<'a, K: Kernel + ?Sized> FeatureGram<'a, K> {
    /// Bind `kernel` to the training samples `x` (rows are samples).
    pub fn new(kernel: &'a K, x: ArrayView2<'a, f32>) -> Self {
        Self { kernel, x }
    }
}

impl<K: Kernel + ?Sized> Gram for FeatureGram<'_, K> {
    fn n(&self) -> usize {
        self.x.nrows()
    }
    fn diag(&self, i: usize) -> f64 {
        self.kernel.diag(self.x, i)
    }
    fn row(&self, i: usize, cols: &[usize], out: &mut [f32]) {
        // Long rows are split across the pool (the binary problems of a multiclass fit
        // already run in parallel; rayon balances both levels).
        const CHUNK: usize = 1024;
        if cols.len() <= CHUNK {
            self.kernel.row(self.x, i, self.x, cols, out);
        } else {
            out.par_chunks_mut(CHUNK)
                .zip(cols.par_chunks(CHUNK))
                .for_each(|(o, c)| self.kernel.row(self.x, i, self.x, c, o));
        }
    }
}

/// An expression kernel ([`crate::expr::Program`]) on the training matrix `x` (`n × d`
/// row-major float64): rows are computed on demand, so the solver's row cache bounds
/// the memory (no `n × n` matrix). Non-finite kernel values are recorded (see
/// [`ExprGram::saw_non_finite`]) and stored as 0 for the solver.
pub struct ExprGram<'a> {
    prog: &'a crate::expr::Program,
    x: &'a [f64],
    n: usize,
    d: usize,
    /// The nonzero pattern of `x`, built once (sparse data take the sparse evaluator).
    rows: crate::expr::SparseRows,
    non_finite: std::sync::atomic::AtomicBool,
}

impl<'a> ExprGram<'a> {
    /// Bind a compiled kernel expression to `x` (`n × d`, row-major). `None` when the
    /// shapes disagree, `d == 0` or the program is not a kernel.
    pub fn new(prog: &'a crate::expr::Program, x: &'a [f64], n: usize, d: usize) -> Option<Self> {
        let ok = d > 0 && x.len() == n * d && prog.check_kernel().is_ok();
        ok.then(|| Self {
            prog,
            x,
            n,
            d,
            rows: crate::expr::SparseRows::new(x, d),
            non_finite: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Whether any kernel value computed so far was NaN or infinite.
    pub fn saw_non_finite(&self) -> bool {
        self.non_finite.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn fill(&self, i: usize, cols: &[usize], out: &mut [f32]) {
        let mut tmp = vec![0f64; cols.len()];
        if !self
            .prog
            .kernel_row_indexed(self.x, self.d, Some(&self.rows), i, cols, &mut tmp)
        {
            tmp.fill(f64::NAN);
        }
        let mut bad = false;
        for (o, v) in out.iter_mut().zip(&tmp) {
            if v.is_finite() {
                *o = *v as f32;
            } else {
                bad = true;
                *o = 0.0;
            }
        }
        if bad {
            self.non_finite
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

impl Gram for ExprGram<'_> {
    fn n(&self) -> usize {
        self.n
    }
    fn diag(&self, i: usize) -> f64 {
        // In float64, as a precomputed matrix's diagonal is.
        let mut out = [f64::NAN];
        self.prog
            .kernel_row_indexed(self.x, self.d, Some(&self.rows), i, &[i], &mut out);
        if out[0].is_finite() {
            out[0]
        } else {
            self.non_finite
                .store(true, std::sync::atomic::Ordering::Relaxed);
            0.0
        }
    }
    fn row(&self, i: usize, cols: &[usize], out: &mut [f32]) {
        // Long rows are split across the pool, as for feature kernels.
        const CHUNK: usize = 256;
        if cols.len() <= CHUNK {
            self.fill(i, cols, out);
        } else {
            out.par_chunks_mut(CHUNK)
                .zip(cols.par_chunks(CHUNK))
                .for_each(|(o, c)| self.fill(i, c, o));
        }
    }
}

/// A user-supplied Gram matrix (`n × n`, borrowed, any strides).
pub struct PrecomputedGram<'a> {
    k: ArrayView2<'a, f64>,
}

impl<'a> PrecomputedGram<'a> {
    /// Wrap a square Gram matrix. Returns `None` when it is not square.
    pub fn new(k: ArrayView2<'a, f64>) -> Option<Self> {
        (k.nrows() == k.ncols()).then_some(Self { k })
    }
}

impl Gram for PrecomputedGram<'_> {
    fn n(&self) -> usize {
        self.k.nrows()
    }
    fn diag(&self, i: usize) -> f64 {
        self.k[[i, i]]
    }
    fn row(&self, i: usize, cols: &[usize], out: &mut [f32]) {
        let r = self.k.row(i);
        for (o, &c) in out.iter_mut().zip(cols) {
            *o = r[c] as f32;
        }
    }
}

/// The built-in kernels, with scikit-learn's definitions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BuiltinKernel {
    /// `<x, y>`
    Linear,
    /// `(gamma <x, y> + coef0)^degree`
    Poly {
        /// Scale of the dot product.
        gamma: f64,
        /// Additive constant.
        coef0: f64,
        /// Integer degree.
        degree: i32,
    },
    /// `exp(-gamma ||x - y||^2)`
    Rbf {
        /// Inverse width.
        gamma: f64,
    },
    /// `tanh(gamma <x, y> + coef0)`
    Sigmoid {
        /// Scale of the dot product.
        gamma: f64,
        /// Additive constant.
        coef0: f64,
    },
}

impl BuiltinKernel {
    /// Map a dot product (or a squared distance for RBF) to the kernel value.
    #[inline(always)]
    fn finish(&self, v: f32) -> f32 {
        match *self {
            BuiltinKernel::Linear => v,
            BuiltinKernel::Poly {
                gamma,
                coef0,
                degree,
            } => (gamma * f64::from(v) + coef0).powi(degree) as f32,
            // exp in single precision: the value is stored as f32 anyway.
            BuiltinKernel::Rbf { gamma } => (-(gamma as f32) * v.max(0.0)).exp(),
            BuiltinKernel::Sigmoid { gamma, coef0 } => (gamma * f64::from(v) + coef0).tanh() as f32,
        }
    }

    fn is_rbf(&self) -> bool {
        matches!(self, BuiltinKernel::Rbf { .. })
    }
}

impl Kernel for BuiltinKernel {
    fn row(
        &self,
        a: ArrayView2<'_, f32>,
        i: usize,
        b: ArrayView2<'_, f32>,
        cols: &[usize],
        out: &mut [f32],
    ) {
        let xi = a.row(i);
        let xi_owned;
        let xi: &[f32] = match xi.as_slice() {
            Some(s) => s,
            None => {
                xi_owned = xi.to_vec();
                &xi_owned
            }
        };
        let rbf = self.is_rbf();
        let contiguous = b.as_slice().is_some();
        let d = b.ncols();
        if let (true, Some(bs)) = (contiguous, b.as_slice()) {
            simd::rows_reduce(xi, bs, d, cols, out, rbf);
        } else {
            for (o, &c) in out.iter_mut().zip(cols) {
                let r = b.row(c).to_vec();
                simd::rows_reduce(xi, &r, d, &[0], std::slice::from_mut(o), rbf);
            }
        }
        if let BuiltinKernel::Rbf { gamma } = *self {
            let g = -(gamma as f32);
            for o in out.iter_mut() {
                *o = g * o.max(0.0);
            }
            exp_in_place(out);
        } else {
            for o in out.iter_mut() {
                *o = self.finish(*o);
            }
        }
    }

    fn block(
        &self,
        a: ArrayView2<'_, f32>,
        b: ArrayView2<'_, f32>,
        mut out: ArrayViewMut2<'_, f32>,
    ) {
        // Row blocks of `a` in parallel, each a matrix product against `b`.
        const RB: usize = 256;
        let b_sq: Vec<f32> = if self.is_rbf() {
            b.axis_iter(Axis(0)).map(|r| r.dot(&r)).collect()
        } else {
            Vec::new()
        };
        out.axis_chunks_iter_mut(Axis(0), RB)
            .collect::<Vec<_>>()
            .into_par_iter()
            .enumerate()
            .for_each(|(blk, mut o)| self.block_rows(a, blk * RB, b, &b_sq, &mut o));
    }

    fn block_symmetric(&self, a: ArrayView2<'_, f32>, mut out: ArrayViewMut2<'_, f32>) {
        // Row block `r` computes only its columns from `r * RB` on (the diagonal tile and
        // right of it), then the left part is copied from the transposed tiles. Every
        // value is the one `block(a, a)` computes: the same products accumulated in
        // the same order (`x_i . x_j` and `x_j . x_i` round alike), the same finish.
        const RB: usize = 256;
        let n = a.nrows();
        let a_sq: Vec<f32> = if self.is_rbf() {
            a.axis_iter(Axis(0)).map(|r| r.dot(&r)).collect()
        } else {
            Vec::new()
        };
        out.axis_chunks_iter_mut(Axis(0), RB)
            .collect::<Vec<_>>()
            .into_par_iter()
            .enumerate()
            .for_each(|(blk, o)| {
                let start = blk * RB;
                let bs = a.slice(ndarray::s![start..n, ..]);
                let sq = if a_sq.is_empty() {
                    &a_sq[..]
                } else {
                    &a_sq[start..]
                };
                let mut right = o.slice_move(ndarray::s![.., start..n]);
                self.block_rows(a, start, bs, sq, &mut right);
            });
        for i in 0..n {
            let tile = (i / RB) * RB;
            for j in 0..tile {
                out[[i, j]] = out[[j, i]];
            }
        }
    }
}

impl BuiltinKernel {
    /// Rows `start..start + o.nrows()` of the block of `a` against `b`, into `o`
    /// (`b_sq`: squared norms of `b`'s rows, for RBF).
    fn block_rows(
        &self,
        a: ArrayView2<'_, f32>,
        start: usize,
        b: ArrayView2<'_, f32>,
        b_sq: &[f32],
        o: &mut ArrayViewMut2<'_, f32>,
    ) {
        let ab = a.slice(ndarray::s![start..start + o.nrows(), ..]);
        ndarray::linalg::general_mat_mul(1.0, &ab, &b.t(), 0.0, o);
        if let BuiltinKernel::Rbf { gamma } = *self {
            let g = -(gamma as f32);
            for (p, mut row) in o.axis_iter_mut(Axis(0)).enumerate() {
                let ar = ab.row(p);
                let a_sq = ar.dot(&ar);
                match row.as_slice_mut() {
                    Some(r) => rbf_finish(r, a_sq, b_sq, g),
                    None => {
                        let mut tmp: Vec<f32> = row.to_vec();
                        rbf_finish(&mut tmp, a_sq, b_sq, g);
                        row.iter_mut().zip(&tmp).for_each(|(o, v)| *o = *v);
                    }
                }
            }
        } else {
            o.mapv_inplace(|v| self.finish(v));
        }
    }
}

/// A built-in kernel on data centred by a shift `m`: rows passed to it are `x - m`
/// (float32), the shift itself is kept in float64.
///
/// Float32 features far from the origin (an offset much larger than the spread) lose
/// their information twice: in the cast itself and in the cancellation of
/// `||a||^2 + ||b||^2 - 2 a.b` or of `a.b` against a kernel value dominated by the
/// offset. Centring in float64 before the cast avoids the first; this kernel avoids
/// the second.
///
/// - `rbf` is shift-invariant: the base kernel on centred rows, unchanged.
/// - `linear`, `poly`, `sigmoid` are functions `F(a.b)` with
///   `a.b = u + p_a + p_b + m.m`, `u = (a-m).(b-m)` (float32 product) and
///   `p_a = m.(a-m)` (float64, per row). The kernel returns
///   `K'(a, b) = F(a.b) - F(m.m) - F'(m.m) (p_a + p_b)`, evaluated without the
///   cancellation (the first-order term is removed analytically). `K'` differs from
///   `K` by `f(a) + f(b) + c` with `f(a) = F'(m.m) p_a`, `c = F(m.m)`; on the
///   solver's feasible set (`sum y_i alpha_i = 0`) such terms change neither the dual
///   objective nor the step sizes, only the bias: a model fitted with `K'` has the
///   same dual coefficients and decision values, with `rho = rho' + F'(m.m) sum_j
///   coef_j p_j` in the raw kernel's convention ([`ShiftedKernel::slope`] is
///   `F'(m.m)`).
#[derive(Debug, Clone)]
pub struct ShiftedKernel {
    base: BuiltinKernel,
    shift: Vec<f64>,
    form: ShiftedForm,
}

#[derive(Debug, Clone)]
enum ShiftedForm {
    /// The base kernel on the centred rows (rbf, linear).
    Base,
    /// `K' = deg B^(deg-1) g u + sum_{k>=2} C(deg, k) B^(deg-k) D^k`, `B = g m.m + c0`,
    /// `D = g (u + p_a + p_b)`; `high[k - 2] = C(deg, k) B^(deg-k)`.
    Poly {
        gamma: f64,
        lin: f64,
        high: Vec<f64>,
    },
    /// `K' = sech^2(B) (tanh(D) / (1 + tanh(B) tanh(D)) - g (p_a + p_b))`.
    Sigmoid { gamma: f64, t: f64, sech2: f64 },
}

impl ShiftedKernel {
    /// `base` on rows centred by `shift` (one value per feature).
    pub fn new(base: BuiltinKernel, shift: Vec<f64>) -> Self {
        let mm: f64 = shift.iter().map(|v| v * v).sum();
        let form = match base {
            BuiltinKernel::Rbf { .. } | BuiltinKernel::Linear => ShiftedForm::Base,
            BuiltinKernel::Poly {
                gamma,
                coef0,
                degree,
            } => {
                let b = gamma * mm + coef0;
                let deg = degree.max(0);
                let lin = if deg >= 1 {
                    f64::from(deg) * b.powi(deg - 1) * gamma
                } else {
                    0.0
                };
                let mut high = Vec::new();
                let mut binom = 1.0f64; // C(deg, k), updated from k - 1
                for k in 1..=deg {
                    binom = binom * f64::from(deg - k + 1) / f64::from(k);
                    if k >= 2 {
                        high.push(binom * b.powi(deg - k));
                    }
                }
                ShiftedForm::Poly { gamma, lin, high }
            }
            BuiltinKernel::Sigmoid { gamma, coef0 } => {
                let b = gamma * mm + coef0;
                let c = b.cosh();
                ShiftedForm::Sigmoid {
                    gamma,
                    t: b.tanh(),
                    sech2: 1.0 / (c * c),
                }
            }
        };
        Self { base, shift, form }
    }

    /// `F'(m.m)`: the raw kernel's bias is `rho' + slope * sum_j coef_j m.(sv_j - m)`
    /// (0 for rbf, 1 for linear).
    pub fn slope(&self) -> f64 {
        match (&self.base, &self.form) {
            (BuiltinKernel::Linear, _) => 1.0,
            (_, ShiftedForm::Poly { lin, .. }) => *lin,
            (_, ShiftedForm::Sigmoid { gamma, sech2, .. }) => gamma * sech2,
            _ => 0.0,
        }
    }

    /// The shift `m`.
    pub fn shift(&self) -> &[f64] {
        &self.shift
    }

    /// `m . row` in float64.
    #[inline]
    fn p<'a>(&self, row: impl IntoIterator<Item = &'a f32>) -> f64 {
        self.shift
            .iter()
            .zip(row)
            .map(|(m, &v)| m * f64::from(v))
            .sum()
    }

    /// `K'` from `u = (a-m).(b-m)` and `p_a + p_b`.
    #[inline(always)]
    fn finish(&self, u: f32, pp: f64) -> f32 {
        let u = f64::from(u);
        match &self.form {
            ShiftedForm::Base => u as f32,
            ShiftedForm::Poly { gamma, lin, high } => {
                let d = gamma * (u + pp);
                let mut h = 0.0;
                for c in high.iter().rev() {
                    h = h * d + c;
                }
                (lin * u + h * d * d) as f32
            }
            ShiftedForm::Sigmoid { gamma, t, sech2 } => {
                let th = (gamma * (u + pp)).tanh();
                (sech2 * (th / (1.0 + t * th) - gamma * pp)) as f32
            }
        }
    }
}

impl Kernel for ShiftedKernel {
    fn row(
        &self,
        a: ArrayView2<'_, f32>,
        i: usize,
        b: ArrayView2<'_, f32>,
        cols: &[usize],
        out: &mut [f32],
    ) {
        if let ShiftedForm::Base = self.form {
            return self.base.row(a, i, b, cols, out);
        }
        BuiltinKernel::Linear.row(a, i, b, cols, out);
        let pa = self.p(a.row(i));
        for (o, &c) in out.iter_mut().zip(cols) {
            *o = self.finish(*o, pa + self.p(b.row(c)));
        }
    }

    fn block(
        &self,
        a: ArrayView2<'_, f32>,
        b: ArrayView2<'_, f32>,
        mut out: ArrayViewMut2<'_, f32>,
    ) {
        if let ShiftedForm::Base = self.form {
            return self.base.block(a, b, out);
        }
        // The dot products of the centred rows by the linear kernel's blocks, then K'.
        BuiltinKernel::Linear.block(a, b, out.view_mut());
        self.finish_block(a, b, out);
    }

    fn block_symmetric(&self, a: ArrayView2<'_, f32>, mut out: ArrayViewMut2<'_, f32>) {
        if let ShiftedForm::Base = self.form {
            return self.base.block_symmetric(a, out);
        }
        // One triangle of products, mirrored (the values `block(a, a)` gives).
        BuiltinKernel::Linear.block_symmetric(a, out.view_mut());
        self.finish_block(a, a, out);
    }
}

impl ShiftedKernel {
    /// `out[i, j] = K'` from the dot products `out[i, j] = (a_i - m).(b_j - m)`.
    fn finish_block(
        &self,
        a: ArrayView2<'_, f32>,
        b: ArrayView2<'_, f32>,
        mut out: ArrayViewMut2<'_, f32>,
    ) {
        let pa: Vec<f64> = a.axis_iter(Axis(0)).map(|r| self.p(r)).collect();
        let pb: Vec<f64> = b.axis_iter(Axis(0)).map(|r| self.p(r)).collect();
        out.axis_iter_mut(Axis(0))
            .collect::<Vec<_>>()
            .into_par_iter()
            .zip(pa)
            .for_each(|(mut row, pp)| {
                for (v, q) in row.iter_mut().zip(&pb) {
                    *v = self.finish(*v, pp + q);
                }
            });
    }
}

/// `row[q] = exp(g * max(a_sq + b_sq[q] - 2 row[q], 0))`: RBF values from dot products.
fn rbf_finish(row: &mut [f32], a_sq: f32, b_sq: &[f32], g: f32) {
    for (v, &bq) in row.iter_mut().zip(b_sq) {
        *v = g * (a_sq + bq - 2.0 * *v).max(0.0);
    }
    exp_in_place(row);
}

/// `exp` of every value, vectorisable (relative error about 2e-7, inputs below -87
/// give about 1e-38 instead of a subnormal).
fn exp_in_place(v: &mut [f32]) {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 * 2^23: adding and subtracting it rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    for x in v.iter_mut() {
        let t = x.clamp(-87.0, 88.0);
        let k = (t * LOG2E + ROUND) - ROUND;
        let r = t - k * LN2_HI - k * LN2_LO;
        let p = 1.0
            + r * (1.0
                + r * (0.5
                    + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
        let scale = f32::from_bits(((k as i32 + 127) as u32) << 23);
        *x = p * scale;
    }
}

/// Dot products and squared distances with runtime SIMD dispatch.
pub(crate) mod simd {
    /// For each `t`: `out[t] = <x, b_row(cols[t])>` (or `||x - b_row||^2` when `sqdist`),
    /// where `b` is a contiguous row-major matrix with `d` columns.
    pub fn rows_reduce(
        x: &[f32],
        b: &[f32],
        d: usize,
        cols: &[usize],
        out: &mut [f32],
        sqdist: bool,
    ) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: the CPU supports avx2 and fma (checked just above).
                unsafe { rows_reduce_avx2(x, b, d, cols, out, sqdist) };
                return;
            }
        }
        rows_reduce_generic::<false>(x, b, d, cols, out, sqdist);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn rows_reduce_avx2(
        x: &[f32],
        b: &[f32],
        d: usize,
        cols: &[usize],
        out: &mut [f32],
        sqdist: bool,
    ) {
        rows_reduce_generic::<true>(x, b, d, cols, out, sqdist);
    }

    #[inline(always)]
    fn rows_reduce_generic<const FMA: bool>(
        x: &[f32],
        b: &[f32],
        d: usize,
        cols: &[usize],
        out: &mut [f32],
        sqdist: bool,
    ) {
        let x = &x[..d.min(x.len())];
        for (o, &c) in out.iter_mut().zip(cols) {
            let start = c * d;
            let row = &b[start..start + x.len()];
            *o = if sqdist {
                reduce::<FMA, true>(x, row)
            } else {
                reduce::<FMA, false>(x, row)
            };
        }
    }

    #[inline(always)]
    fn fmadd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
        if FMA {
            a.mul_add(b, c)
        } else {
            a * b + c
        }
    }

    /// `<x, y>` or `||x - y||^2` with 32 independent accumulators (vectorised).
    #[inline(always)]
    fn reduce<const FMA: bool, const SQ: bool>(x: &[f32], y: &[f32]) -> f32 {
        const W: usize = 32;
        let mut acc = [0f32; W];
        let cx = x.chunks_exact(W);
        let cy = y.chunks_exact(W);
        let (rx, ry) = (cx.remainder(), cy.remainder());
        for (a, b) in cx.zip(cy) {
            for k in 0..W {
                if SQ {
                    let t = a[k] - b[k];
                    acc[k] = fmadd::<FMA>(t, t, acc[k]);
                } else {
                    acc[k] = fmadd::<FMA>(a[k], b[k], acc[k]);
                }
            }
        }
        let mut tail = 0f32;
        for (a, b) in rx.iter().zip(ry) {
            if SQ {
                let t = a - b;
                tail += t * t;
            } else {
                tail += a * b;
            }
        }
        let mut s = [0f32; 8];
        for k in 0..W {
            s[k % 8] += acc[k];
        }
        (s[0] + s[4]) + (s[1] + s[5]) + (s[2] + s[6]) + (s[3] + s[7]) + tail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simd_reductions_match_naive_sums() {
        let d = 101; // exercises the 32-wide body and the tail
        let b: Vec<f32> = (0..3 * d)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0)
            .collect();
        let x: Vec<f32> = (0..d).map(|i| ((i * 13 % 17) as f32 - 8.0) / 5.0).collect();
        let mut out = [0f32; 3];
        for sq in [false, true] {
            simd::rows_reduce(&x, &b, d, &[2, 0, 1], &mut out, sq);
            for (t, &c) in [2usize, 0, 1].iter().enumerate() {
                let row = &b[c * d..(c + 1) * d];
                let want: f64 = x
                    .iter()
                    .zip(row)
                    .map(|(&u, &v)| {
                        if sq {
                            f64::from(u - v).powi(2)
                        } else {
                            f64::from(u) * f64::from(v)
                        }
                    })
                    .sum();
                assert!((f64::from(out[t]) - want).abs() < 1e-3 * want.abs().max(1.0));
            }
        }
    }

    #[test]
    fn symmetric_blocks_are_bit_identical_to_full_blocks() {
        // 600 rows: three row tiles of 256, so the mirrored part spans tiles.
        let a = ndarray::Array2::from_shape_fn((600, 37), |(i, k)| {
            (((i * 31 + k * 17) % 97) as f32 - 48.0) / 29.0
        });
        for k in [
            BuiltinKernel::Rbf { gamma: 0.05 },
            BuiltinKernel::Linear,
            BuiltinKernel::Poly {
                gamma: 0.1,
                coef0: 1.0,
                degree: 2,
            },
        ] {
            let mut full = ndarray::Array2::<f32>::zeros((600, 600));
            k.block(a.view(), a.view(), full.view_mut());
            let mut sym = ndarray::Array2::<f32>::zeros((600, 600));
            k.block_symmetric(a.view(), sym.view_mut());
            let same = full
                .iter()
                .zip(sym.iter())
                .all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(same, "{k:?}");
        }
    }

    /// Every path of a [`ShiftedKernel`] (row, block, symmetric block, diag) on
    /// centred rows `xc` (`n × d`).
    fn shifted_values(k: &ShiftedKernel, xc: &ndarray::Array2<f32>) -> ndarray::Array2<f32> {
        let n = xc.nrows();
        let mut blk = ndarray::Array2::<f32>::zeros((n, n));
        k.block(xc.view(), xc.view(), blk.view_mut());
        let mut sym = ndarray::Array2::<f32>::zeros((n, n));
        k.block_symmetric(xc.view(), sym.view_mut());
        let cols: Vec<usize> = (0..n).collect();
        for i in 0..n {
            let mut row = vec![0f32; n];
            k.row(xc.view(), i, xc.view(), &cols, &mut row);
            // The products are summed in another order: compare at the row's scale.
            let top = row.iter().fold(0f64, |t, v| t.max(f64::from(v.abs())));
            for j in 0..n {
                let (r, b) = (f64::from(row[j]), f64::from(blk[[i, j]]));
                assert!((r - b).abs() <= 1e-5 * top, "{k:?} row {r} block {b}");
                assert_eq!(blk[[i, j]].to_bits(), sym[[i, j]].to_bits());
            }
            assert_eq!(k.diag(xc.view(), i), f64::from(row[i]));
        }
        blk
    }

    #[test]
    fn shifted_kernels_match_the_raw_kernel_minus_separable_terms() {
        // Offset 3 with unit spread: the raw kernel in float64 is accurate enough to
        // be the reference for K' = K(a, b) - F(m.m) - F'(m.m) (p_a + p_b).
        let (n, d) = (40, 5);
        let m: Vec<f64> = (0..d).map(|k| 3.0 - 0.5 * k as f64).collect();
        let xc = ndarray::Array2::from_shape_fn((n, d), |(i, k)| {
            (((i * 37 + k * 11) % 23) as f32 - 11.0) / 9.0
        });
        let raw = |i: usize| -> Vec<f64> { (0..d).map(|k| m[k] + f64::from(xc[[i, k]])).collect() };
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(u, v)| u * v).sum::<f64>();
        let mm = dot(&m, &m);
        let p = |i: usize| -> f64 { (0..d).map(|k| m[k] * f64::from(xc[[i, k]])).sum() };
        let mut kernels = vec![BuiltinKernel::Linear, BuiltinKernel::Rbf { gamma: 0.3 }];
        for degree in 0..5 {
            kernels.push(BuiltinKernel::Poly {
                gamma: 0.05,
                coef0: 0.7,
                degree,
            });
        }
        kernels.push(BuiltinKernel::Sigmoid {
            gamma: 0.02,
            coef0: -0.3,
        });
        for base in kernels {
            let k = ShiftedKernel::new(base, m.clone());
            let f = |s: f64| match base {
                BuiltinKernel::Linear => s,
                BuiltinKernel::Poly {
                    gamma,
                    coef0,
                    degree,
                } => (gamma * s + coef0).powi(degree),
                BuiltinKernel::Sigmoid { gamma, coef0 } => (gamma * s + coef0).tanh(),
                BuiltinKernel::Rbf { .. } => 0.0,
            };
            let got = shifted_values(&k, &xc);
            for i in 0..n {
                for j in 0..n {
                    let (a, b) = (raw(i), raw(j));
                    let want = match base {
                        BuiltinKernel::Rbf { gamma } => {
                            let d2: f64 = a.iter().zip(&b).map(|(u, v)| (u - v).powi(2)).sum();
                            (-gamma * d2).exp()
                        }
                        _ => f(dot(&a, &b)) - f(mm) - k.slope() * (p(i) + p(j)),
                    };
                    let scale = match base {
                        BuiltinKernel::Poly { degree, .. } => {
                            f(mm).abs().max(1.0) * 1e-6 * f64::from(degree.max(1))
                        }
                        _ => 1e-5,
                    };
                    let g = f64::from(got[[i, j]]);
                    assert!(
                        (g - want).abs() <= scale,
                        "{base:?} ({i}, {j}): {g} vs {want}"
                    );
                }
            }
        }
        // slope = F'(m.m): finite differences of F at m.m.
        let poly = BuiltinKernel::Poly {
            gamma: 0.05,
            coef0: 0.7,
            degree: 3,
        };
        let want = 3.0 * 0.05 * (0.05 * mm + 0.7f64).powi(2);
        assert!((ShiftedKernel::new(poly, m.clone()).slope() - want).abs() < 1e-12 * want);
        assert_eq!(
            ShiftedKernel::new(BuiltinKernel::Linear, m.clone()).slope(),
            1.0
        );
        assert_eq!(
            ShiftedKernel::new(BuiltinKernel::Rbf { gamma: 1.0 }, m).slope(),
            0.0
        );
    }

    #[test]
    fn shifted_poly_is_exact_at_a_large_offset() {
        // Integer data at offset 1e4: a.b, K = (a.b + c0)^3, F(m.m), F'(m.m) and p are
        // exact integers (i128), so K' has an exact reference. The raw kernel is
        // ~5e26 and its informative part ~1e18: float64 on raw values (and float32
        // all the more) cannot resolve it; the shifted kernel must, to float32's
        // relative precision.
        let (n, d) = (12, 8);
        let m: Vec<f64> = vec![10_000.0; d];
        let xc =
            ndarray::Array2::from_shape_fn((n, d), |(i, k)| ((i * 7 + k * 3) % 7) as f32 - 3.0);
        let mi: Vec<i128> = vec![10_000; d];
        let row = |i: usize| -> Vec<i128> { (0..d).map(|k| xc[[i, k]] as i128).collect() };
        let dot = |a: &[i128], b: &[i128]| a.iter().zip(b).map(|(u, v)| u * v).sum::<i128>();
        let (c0, deg) = (5i128, 3);
        let k = ShiftedKernel::new(
            BuiltinKernel::Poly {
                gamma: 1.0,
                coef0: c0 as f64,
                degree: deg,
            },
            m,
        );
        let b = dot(&mi, &mi) + c0;
        assert!((k.slope() / (3 * b * b) as f64 - 1.0).abs() < 1e-15);
        let got = shifted_values(&k, &xc);
        let mut worst = 0f64;
        for i in 0..n {
            for j in 0..n {
                let (ri, rj) = (row(i), row(j));
                let ai: Vec<i128> = ri.iter().zip(&mi).map(|(u, v)| u + v).collect();
                let aj: Vec<i128> = rj.iter().zip(&mi).map(|(u, v)| u + v).collect();
                let kk = (dot(&ai, &aj) + c0).pow(3);
                let want = kk - b.pow(3) - 3 * b * b * (dot(&mi, &ri) + dot(&mi, &rj));
                // The size of the expansion's terms 3 B^2 u, 3 B D^2, D^3 (D = a.b - B + c0).
                let (u, dd) = (dot(&ri, &rj), dot(&ai, &aj) - dot(&mi, &mi));
                let size = (3 * b * b * u).abs() + (3 * b * dd * dd).abs() + (dd.pow(3)).abs();
                let rel = (f64::from(got[[i, j]]) - want as f64).abs() / (size as f64).max(1.0);
                worst = worst.max(rel);
            }
        }
        assert!(worst < 1e-6, "worst relative error {worst}");
    }

    #[test]
    fn fast_exp_is_accurate() {
        let mut xs: Vec<f32> = (0..2000).map(|i| -90.0 + i as f32 * 0.0455).collect();
        let want: Vec<f64> = xs.iter().map(|&x| f64::from(x).exp()).collect();
        exp_in_place(&mut xs);
        for (got, w) in xs.iter().zip(&want) {
            if *w > 1e-37 {
                assert!((f64::from(*got) - w).abs() <= 1e-6 * w, "{got} vs {w}");
            } else {
                assert!(f64::from(*got) < 1e-37);
            }
        }
    }

    #[test]
    fn precomputed_gram_requires_square_and_reads_rows() {
        let k = ndarray::array![[1.0, 2.0], [2.0, 5.0]];
        let g = PrecomputedGram::new(k.view()).unwrap();
        let mut out = [0f32; 2];
        g.row(1, &[1, 0], &mut out);
        assert_eq!(out, [5.0, 2.0]);
        assert_eq!(g.diag(0), 1.0);
        let r = ndarray::Array2::<f64>::zeros((2, 3));
        assert!(PrecomputedGram::new(r.view()).is_none());
    }
}
