//! A built-in kernel on data centred by a shift kept in float64 ([`ShiftedKernel`]),
//! with the first-order terms of the offset removed analytically, so that float32
//! features far from the origin keep their information.

use super::{BuiltinKernel, Kernel};
use ndarray::{ArrayView2, ArrayViewMut2, Axis};
use rayon::prelude::*;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
