//! Branch-free `sin`, `cos` and `exp` for slices, written so that LLVM vectorises the
//! loops (the standard library calls libm one element at a time).
//!
//! Accuracy: a few ulp (relative error below 1e-14) on the fast path. `sin`/`cos` take
//! the fast path when every |input| of the slice is below 1e5 and fall back to the
//! standard library otherwise; `exp` is exact to the same accuracy on [-708, 709.78],
//! returns +inf above and 0 below that range (the true values are below 1e-307).

#![allow(clippy::excessive_precision)] // published fdlibm constants, kept verbatim

/// How `a * b + c` is computed: a fused multiply-add where the CPU has one (the
/// evaluation loops are compiled once per instruction set and pick the variant), two
/// roundings otherwise. `f64::mul_add` without hardware support would call libm.
pub trait Madd: Copy {
    /// Whether code using this variant runs only where AVX2 and FMA are present (then
    /// the reductions use AVX2 intrinsics).
    const AVX2: bool;
    /// `a * b + c`.
    fn madd(a: f64, b: f64, c: f64) -> f64;
}

/// Hardware FMA and AVX2. Only for code that runs inside a function compiled with the
/// `avx2` and `fma` target features (the dispatchers in `eval` check the CPU first).
#[derive(Clone, Copy)]
pub struct Fused;

/// Separate multiply and add.
#[derive(Clone, Copy)]
pub struct Unfused;

/// Whether this CPU has AVX2 and FMA (the dispatchers run the [`Fused`] variants only
/// then).
#[cfg(target_arch = "x86_64")]
pub(super) fn has_avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

impl Madd for Fused {
    const AVX2: bool = true;
    #[inline(always)]
    fn madd(a: f64, b: f64, c: f64) -> f64 {
        a.mul_add(b, c)
    }
}

impl Madd for Unfused {
    const AVX2: bool = false;
    #[inline(always)]
    fn madd(a: f64, b: f64, c: f64) -> f64 {
        a * b + c
    }
}

/// Evaluation of `c[0] z^(n-1) + ... + c[n-1]` as `K` (2 or 4) interleaved Horner
/// chains in `z^K` (`p = P0 + z P1` or `(P0 + z P1) + z^2 (P2 + z P3)`), so the
/// dependency chain is `K` times shorter than plain Horner's (the loops have constant
/// trip counts and unroll).
#[inline(always)]
fn poly<M: Madd, const K: usize, const N: usize>(z: f64, c: &[f64; N]) -> f64 {
    let z2 = z * z;
    let zk = if K == 4 { z2 * z2 } else { z2 };
    // Coefficient of z^i is c[N - 1 - i]; chain r sums the terms i = r mod K.
    let mut acc = [0.0f64; 4];
    let mut r = 0;
    while r < K {
        if r < N {
            let mut top = r;
            while top + K < N {
                top += K;
            }
            let mut p = c[N - 1 - top];
            while top >= r + K {
                top -= K;
                p = M::madd(p, zk, c[N - 1 - top]);
            }
            acc[r] = p;
        }
        r += 1;
    }
    if K == 4 {
        M::madd(M::madd(acc[3], z, acc[2]), z2, M::madd(acc[1], z, acc[0]))
    } else {
        M::madd(acc[1], z, acc[0])
    }
}

const MAGIC: f64 = 6_755_399_441_055_744.0; // 1.5 · 2^52: adding it rounds to an integer.
const FRAC_1_PI: f64 = std::f64::consts::FRAC_1_PI;
// π/2 in three parts (fdlibm's pio2_1, pio2_1t split); the first has 33 significant bits,
// so `m * PIO2_1` is exact for |m| < 2^20.
const PIO2_1: f64 = 1.570_796_326_734_125_614_17e+00;
const PIO2_2: f64 = 6.077_100_506_303_965_976_60e-11;
const PIO2_3: f64 = 2.022_266_248_711_166_455_80e-21;
/// Coefficients of `(sin r - r) / r^3` as a polynomial in `z = r^2`, highest first: a
/// minimax fit (Lawson's iteratively reweighted least squares in 50-digit arithmetic) of
/// the relative error of `sin r = r + r^3 P(r^2)` on |r| <= π/2. Approximation error
/// 1.5e-16 relative; evaluated in float64 the largest error seen is 1.5 ulp (Taylor's
/// series needs 10 terms for the same).
const SIN_MINIMAX: [f64; 7] = [
    -7.373343236184387e-13,
    1.6048095287478098e-10,
    -2.5051880269645696e-08,
    2.7557316600476755e-06,
    -0.00019841269825055546,
    0.008333333333285538,
    -0.16666666666666186,
];
/// Below this |x| the argument needs no reduction (`sin x = x + x^3 P(x^2)` directly;
/// the reduced path gives the same bits there, since it finds `m = 0`, `r = x`).
const SMALL_TRIG_LIMIT: f64 = 1.5;
const FAST_TRIG_LIMIT: f64 = 1e5;

/// `sin(x)` (`ODD = false`) or `cos(x)` (`ODD = true`) for |x| < 1e5: `x = m π/2 + r`
/// with `m` even for sin (`m = 2k`) and odd for cos (`m = 2k + 1`), |r| <= π/2, then
/// `sin(x) = (-1)^k sin(r)` and `cos(x) = (-1)^(k+1) sin(r)`: one polynomial, no
/// quadrant select.
#[inline(always)]
fn sin_cos_reduced<M: Madd, const COS: bool>(x: f64) -> f64 {
    // (Adding 0.5 to MAGIC would round away: shift first, then round.)
    let t = if COS {
        M::madd(x, FRAC_1_PI, -0.5) + MAGIC
    } else {
        M::madd(x, FRAC_1_PI, MAGIC)
    };
    let k = t - MAGIC;
    let q = t.to_bits();
    let m = if COS { 2.0 * k + 1.0 } else { 2.0 * k };
    let r = M::madd(-m, PIO2_3, M::madd(-m, PIO2_2, M::madd(-m, PIO2_1, x)));
    let s = sin_small::<M>(r);
    let flip = if COS { !q & 1 } else { q & 1 };
    f64::from_bits(s.to_bits() ^ (flip << 63))
}

/// `sin(r)` for |r| <= π/2, no reduction.
#[inline(always)]
fn sin_small<M: Madd>(r: f64) -> f64 {
    let z = r * r;
    M::madd(r * z, poly::<M, 2, 7>(z, &SIN_MINIMAX), r)
}

/// Whether every entry's magnitude is below `limit` (NaN counts as not).
#[inline(always)]
#[allow(clippy::neg_cmp_op_on_partial_ord)] // NaN must count as not small
fn all_below(v: &[f64; TRIG_CHUNK], limit: f64) -> bool {
    v.iter()
        .fold(0u8, |acc, a| acc | u8::from(!(a.abs() < limit)))
        == 0
}

/// Entries per fast-path check: the check and the polynomial run in one pass.
const TRIG_CHUNK: usize = 16;

#[inline(always)]
fn trig_inplace<M: Madd, const COS: bool>(v: &mut [f64]) {
    let mut chunks = v.chunks_exact_mut(TRIG_CHUNK);
    for c in &mut chunks {
        let c: &mut [f64; TRIG_CHUNK] = match c.try_into() {
            Ok(c) => c,
            // (Unreachable: `chunks_exact_mut` yields full chunks.)
            Err(_) => continue,
        };
        // NaN fails the comparisons and takes the exact path.
        if !COS && all_below(c, SMALL_TRIG_LIMIT) {
            for a in c.iter_mut() {
                *a = sin_small::<M>(*a);
            }
        } else if all_below(c, FAST_TRIG_LIMIT) {
            for a in c.iter_mut() {
                *a = sin_cos_reduced::<M, COS>(*a);
            }
        } else {
            for a in c.iter_mut() {
                *a = if COS { a.cos() } else { a.sin() };
            }
        }
    }
    for a in chunks.into_remainder() {
        *a = if COS { cos::<M>(*a) } else { sin::<M>(*a) };
    }
}

/// `v[i] = sin(v[i])`.
#[inline(always)]
pub fn sin_inplace<M: Madd>(v: &mut [f64]) {
    trig_inplace::<M, false>(v);
}

/// `v[i] = cos(v[i])`.
#[inline(always)]
pub fn cos_inplace<M: Madd>(v: &mut [f64]) {
    trig_inplace::<M, true>(v);
}

/// `sin(a)` for one number (same values as [`sin_inplace`]).
#[inline(always)]
pub fn sin<M: Madd>(a: f64) -> f64 {
    if a.abs() < FAST_TRIG_LIMIT {
        sin_cos_reduced::<M, false>(a)
    } else {
        a.sin()
    }
}

/// `cos(a)` for one number (same values as [`cos_inplace`]).
#[inline(always)]
pub fn cos<M: Madd>(a: f64) -> f64 {
    if a.abs() < FAST_TRIG_LIMIT {
        sin_cos_reduced::<M, true>(a)
    } else {
        a.cos()
    }
}

const LOG2E: f64 = std::f64::consts::LOG2_E;
const LN2_HI: f64 = 6.931_471_803_691_238_164_90e-01;
const LN2_LO: f64 = 1.908_214_929_270_587_700_02e-10;
const EXP_HI: f64 = 709.782_712_893_384;
const EXP_LO: f64 = -708.0;
/// 1/k! for k = 12 down to 0.
const EXP_TAYLOR: [f64; 13] = [
    1.0 / 479_001_600.0,
    1.0 / 39_916_800.0,
    1.0 / 3_628_800.0,
    1.0 / 362_880.0,
    1.0 / 40_320.0,
    1.0 / 5_040.0,
    1.0 / 720.0,
    1.0 / 120.0,
    1.0 / 24.0,
    1.0 / 6.0,
    0.5,
    1.0,
    1.0,
];

/// `exp(x)`, branch-free.
#[inline(always)]
pub fn exp<M: Madd>(x: f64) -> f64 {
    let xc = x.clamp(EXP_LO, EXP_HI);
    let t = M::madd(xc, LOG2E, MAGIC);
    let k = t - MAGIC;
    let ki = (t.to_bits() as i64).wrapping_sub(MAGIC.to_bits() as i64);
    let r = M::madd(-k, LN2_LO, M::madd(-k, LN2_HI, xc));
    // Taylor series of e^r on |r| <= ln2/2, degree 12 (error < 1e-16), Horner form.
    let p = poly::<M, 4, 13>(r, &EXP_TAYLOR);
    // 2^(k-1) · 2: k reaches 1024 just below the overflow threshold.
    let scale = f64::from_bits((ki.wrapping_add(1022) as u64) << 52);
    let y = p * scale * 2.0;
    let y = if x > EXP_HI { f64::INFINITY } else { y };
    let y = if x < EXP_LO { 0.0 } else { y };
    if x.is_nan() {
        x
    } else {
        y
    }
}

/// `v[i] = exp(v[i])`.
#[inline(always)]
pub fn exp_inplace<M: Madd>(v: &mut [f64]) {
    for a in v.iter_mut() {
        *a = exp::<M>(*a);
    }
}

/// `1/(2k+1)` for k = 11 down to 0: the series `atanh(s)/s` in `z = s^2`.
const ATANH_SERIES: [f64; 12] = [
    1.0 / 23.0,
    1.0 / 21.0,
    1.0 / 19.0,
    1.0 / 17.0,
    1.0 / 15.0,
    1.0 / 13.0,
    1.0 / 11.0,
    1.0 / 9.0,
    1.0 / 7.0,
    1.0 / 5.0,
    1.0 / 3.0,
    1.0,
];

/// `ln(1 + u)` for `u` in `[0, 1]`, branch-free and accurate for tiny `u`:
/// `1 + u = 2^m w` with `w` in `[1/√2, √2]`, `ln w = 2 atanh(s)` by its series with
/// `s = (w - 1) / (w + 1)` computed from `u` without cancellation.
#[inline(always)]
fn log1p_unit<M: Madd>(u: f64) -> f64 {
    let big = u > std::f64::consts::SQRT_2 - 1.0;
    // One division: s = num / den with the numerator and denominator selected first.
    let num = if big { u - 1.0 } else { u };
    let den = if big { u + 3.0 } else { 2.0 + u };
    let s = num / den;
    let m = if big { std::f64::consts::LN_2 } else { 0.0 };
    let z = s * s;
    // 2 (s + s^3/3 + ... + s^23/23); z <= 0.0295, so z^12/25 < 1e-19.
    let p = poly::<M, 2, 12>(z, &ATANH_SERIES);
    M::madd(2.0 * s, p, m)
}

/// `ln(1 + e^a)` without overflow.
#[inline(always)]
pub fn softplus<M: Madd>(a: f64) -> f64 {
    let r = a.max(0.0) + log1p_unit::<M>(exp::<M>(-a.abs()));
    if a.is_nan() {
        a
    } else {
        r
    }
}

/// `1 / (1 + e^-a)`.
#[inline(always)]
pub fn sigmoid<M: Madd>(a: f64) -> f64 {
    1.0 / (1.0 + exp::<M>(-a))
}

/// `tanh(a)`; for |a| < 0.01 a series (relative error < 1e-15 either way).
#[inline(always)]
pub fn tanh<M: Madd>(a: f64) -> f64 {
    let x = a.abs().min(40.0);
    let e = exp::<M>(2.0 * x);
    let t = 1.0 - 2.0 / (e + 1.0);
    let z = a * a;
    let small = a * (1.0 - z * (1.0 / 3.0 - z * (2.0 / 15.0 - z * (17.0 / 315.0))));
    let r = if a < 0.0 { -t } else { t };
    let r = if a.abs() < 0.01 { small } else { r };
    if a.is_nan() {
        a
    } else {
        r
    }
}

/// `sinh(a)`; for |a| < 0.01 a series.
#[inline(always)]
pub fn sinh<M: Madd>(a: f64) -> f64 {
    let e = exp::<M>(a.abs() - std::f64::consts::LN_2);
    // (e^|a| - e^-|a|) / 2 = e^|a|/2 - 1/(4 e^|a|/2)
    let big = e - 0.25 / e;
    let z = a * a;
    let small = a * (1.0 + z * (1.0 / 6.0 + z * (1.0 / 120.0 + z * (1.0 / 5040.0))));
    let r = if a < 0.0 { -big } else { big };
    let r = if a.abs() < 0.01 { small } else { r };
    if a.is_nan() {
        a
    } else {
        r
    }
}

/// `cosh(a)`.
#[inline(always)]
pub fn cosh<M: Madd>(a: f64) -> f64 {
    let e = exp::<M>(a.abs() - std::f64::consts::LN_2);
    e + 0.25 / e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_to_std() {
        close_to_std_with::<Unfused>();
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("fma") {
                // SAFETY: FMA support was just checked.
                unsafe { close_to_std_fma() };
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "fma")]
    unsafe fn close_to_std_fma() {
        close_to_std_with::<Fused>();
    }

    fn close_to_std_with<M: Madd>() {
        let mut xs = Vec::new();
        let mut s = 12345u64;
        for _ in 0..20000 {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let u = (s >> 11) as f64 / (1u64 << 53) as f64;
            xs.push((u - 0.5) * 200.0);
        }
        xs.extend([0.0, -0.0, 1e-300, 3.0, 99999.0, -99999.0]);
        for &x in &xs {
            let (a, b) = (sin::<M>(x), x.sin());
            assert!(
                (a - b).abs() <= 1e-14 * b.abs().max(1e-300) + 1e-16,
                "sin {x}: {a} {b}"
            );
            let (a, b) = (cos::<M>(x), x.cos());
            assert!(
                (a - b).abs() <= 1e-14 * b.abs().max(1e-300) + 1e-16,
                "cos {x}: {a} {b}"
            );
        }
        for &x in &xs {
            let x = x * 7.0;
            let (a, b) = (exp::<M>(x), x.exp());
            assert!(a == b || (a - b).abs() <= 1e-14 * b, "exp {x}: {a} {b}");
        }
        assert_eq!(exp::<M>(710.0), 710f64.exp());
        assert!((exp::<M>(709.5) / 709.5f64.exp() - 1.0).abs() < 1e-14);
        assert_eq!(exp::<M>(1000.0), f64::INFINITY);
        assert_eq!(exp::<M>(-1000.0), 0.0);
        assert!(exp::<M>(f64::NAN).is_nan());
        for &x in &xs {
            let x = x * 0.3;
            for (name, a, b) in [
                (
                    "softplus",
                    softplus::<M>(x),
                    x.max(0.0) + (-x.abs()).exp().ln_1p(),
                ),
                ("sigmoid", sigmoid::<M>(x), 1.0 / (1.0 + (-x).exp())),
                ("tanh", tanh::<M>(x), x.tanh()),
                ("sinh", sinh::<M>(x), x.sinh()),
                ("cosh", cosh::<M>(x), x.cosh()),
            ] {
                let ok = a == b || (a - b).abs() <= 2e-14 * b.abs().max(1e-300);
                assert!(ok, "{name} {x}: {a} {b}");
            }
        }
        for x in [
            1e-9, -1e-9, 0.0, 1e-3, 0.009, 0.011, -700.0, 700.0, 1e5, -1e5,
        ] {
            for (a, b) in [
                (softplus::<M>(x), x.max(0.0) + (-x.abs()).exp().ln_1p()),
                (tanh::<M>(x), x.tanh()),
                (sinh::<M>(x), x.sinh()),
                (cosh::<M>(x), x.cosh()),
                (sigmoid::<M>(x), 1.0 / (1.0 + (-x).exp())),
            ] {
                // Large |x|: exp::<M>(|x| - ln 2) adds the rounding of |x| - ln 2 (~1e-13).
                assert!(a == b || (a - b).abs() <= 2e-13 * b.abs(), "{x}: {a} {b}");
            }
        }
        assert!(softplus::<M>(f64::NAN).is_nan() && tanh::<M>(f64::NAN).is_nan());
        // Near the multiples of π/2 (the reduction's hard cases) and up to the limit.
        for k in [1.0, 2.0, 3.0, 7.0, 100.0, 1e3, 1e4, 6e4] {
            for dx in [-1e-9, 0.0, 1e-9, 1e-5] {
                let x = k * std::f64::consts::FRAC_PI_2 + dx;
                for (a, b) in [(sin::<M>(x), x.sin()), (cos::<M>(x), x.cos())] {
                    assert!((a - b).abs() <= 1e-14 * b.abs() + 1e-16, "{x}: {a} vs {b}");
                }
            }
        }
        // Slices longer than a check chunk, with and without a large entry.
        let mut v: Vec<f64> = (0..37).map(|i| i as f64 * 0.7 - 11.0).collect();
        let want: Vec<f64> = v.iter().map(|a| a.sin()).collect();
        sin_inplace::<M>(&mut v);
        for (a, b) in v.iter().zip(&want) {
            assert!((a - b).abs() <= 1e-14 * b.abs() + 1e-16);
        }
        let mut v: Vec<f64> = (0..37).map(|i| i as f64 * 0.7 - 11.0).collect();
        v[20] = 3e7;
        let want: Vec<f64> = v.iter().map(|a| a.cos()).collect();
        cos_inplace::<M>(&mut v);
        for (a, b) in v.iter().zip(&want) {
            assert!((a - b).abs() <= 1e-14 * b.abs() + 1e-16);
        }
        // The unreduced small-argument path gives the reduced path's bits, and both stay
        // within 2 ulp of libm on |x| < 1.5.
        let small: Vec<f64> = xs.iter().map(|x| x / 200.0 * 2.999).collect();
        let mut v = small.clone();
        sin_inplace::<M>(&mut v);
        for (a, x) in v.iter().zip(&small) {
            assert_eq!(a.to_bits(), sin::<M>(*x).to_bits(), "sin {x}");
            let b = x.sin();
            assert!(
                (a - b).abs() <= 2.0 * f64::EPSILON * b.abs(),
                "sin {x}: {a} {b}"
            );
        }
        let mut v = vec![1e6, 0.5];
        sin_inplace::<M>(&mut v);
        assert_eq!(v[0], 1e6f64.sin());
        assert!((v[1] - 0.5f64.sin()).abs() <= 2.0 * f64::EPSILON * 0.5f64.sin());
    }
}
