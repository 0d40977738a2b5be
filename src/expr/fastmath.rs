//! Branch-free `sin`, `cos` and `exp` for slices, written so that LLVM vectorises the
//! loops (the standard library calls libm one element at a time).
//!
//! Accuracy: a few ulp (relative error below 1e-14) on the fast path. `sin`/`cos` take
//! the fast path when every |input| of the slice is below 1e5 and fall back to the
//! standard library otherwise; `exp` is exact to the same accuracy on [-708, 709.78],
//! returns +inf above and 0 below that range (the true values are below 1e-307).

#![allow(clippy::excessive_precision)] // published fdlibm constants, kept verbatim

const MAGIC: f64 = 6_755_399_441_055_744.0; // 1.5 · 2^52: adding it rounds to an integer.
const FRAC_2_PI: f64 = std::f64::consts::FRAC_2_PI;
const PIO2_1: f64 = 1.570_796_326_734_125_614_17e+00;
const PIO2_2: f64 = 6.077_100_506_303_965_976_60e-11;
const PIO2_3: f64 = 2.022_266_248_711_166_455_80e-21;
const S1: f64 = -1.666_666_666_666_663_243_48e-01;
const S2: f64 = 8.333_333_333_322_489_461_24e-03;
const S3: f64 = -1.984_126_982_985_794_931_34e-04;
const S4: f64 = 2.755_731_370_707_006_767_89e-06;
const S5: f64 = -2.505_076_025_340_686_341_95e-08;
const S6: f64 = 1.589_690_995_211_550_102_21e-10;
const C1: f64 = 4.166_666_666_666_660_190_37e-02;
const C2: f64 = -1.388_888_888_887_410_957_49e-03;
const C3: f64 = 2.480_158_728_947_672_941_78e-05;
const C4: f64 = -2.755_731_435_139_066_330_35e-07;
const C5: f64 = 2.087_572_321_298_174_827_90e-09;
const C6: f64 = -1.135_964_755_778_819_482_65e-11;
const FAST_TRIG_LIMIT: f64 = 1e5;

#[inline(always)]
fn sin_cos_reduced(x: f64, shift: u64) -> f64 {
    let t = x * FRAC_2_PI + MAGIC;
    let k = t - MAGIC;
    let q = t.to_bits().wrapping_add(shift);
    let r = ((x - k * PIO2_1) - k * PIO2_2) - k * PIO2_3;
    let z = r * r;
    let s = r + r * z * (S1 + z * (S2 + z * (S3 + z * (S4 + z * (S5 + z * S6)))));
    let c = 1.0 - 0.5 * z + z * z * (C1 + z * (C2 + z * (C3 + z * (C4 + z * (C5 + z * C6)))));
    // Quadrant select with integer bit operations only (vectorises on plain SSE2).
    let swap = 0u64.wrapping_sub(q & 1);
    let bits = (s.to_bits() & !swap) | (c.to_bits() & swap);
    f64::from_bits(bits ^ ((q & 2) << 62))
}

/// Whether every entry is below the fast-path limit (NaN counts as not).
#[inline(always)]
#[allow(clippy::neg_cmp_op_on_partial_ord)] // NaN must count as not small
fn all_small(v: &[f64]) -> bool {
    v.iter()
        .fold(0u8, |acc, a| acc | u8::from(!(a.abs() < FAST_TRIG_LIMIT)))
        == 0
}

/// `v[i] = sin(v[i])`.
#[inline(always)]
pub fn sin_inplace(v: &mut [f64]) {
    // NaN fails the comparison and takes the exact path.
    if all_small(v) {
        for a in v.iter_mut() {
            *a = sin_cos_reduced(*a, 0);
        }
    } else {
        for a in v.iter_mut() {
            *a = a.sin();
        }
    }
}

/// `v[i] = cos(v[i])`.
#[inline(always)]
pub fn cos_inplace(v: &mut [f64]) {
    if all_small(v) {
        for a in v.iter_mut() {
            *a = sin_cos_reduced(*a, 1);
        }
    } else {
        for a in v.iter_mut() {
            *a = a.cos();
        }
    }
}

/// `sin(a)` for one number (same values as [`sin_inplace`]).
pub fn sin(a: f64) -> f64 {
    if a.abs() < FAST_TRIG_LIMIT {
        sin_cos_reduced(a, 0)
    } else {
        a.sin()
    }
}

/// `cos(a)` for one number (same values as [`cos_inplace`]).
pub fn cos(a: f64) -> f64 {
    if a.abs() < FAST_TRIG_LIMIT {
        sin_cos_reduced(a, 1)
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
pub fn exp(x: f64) -> f64 {
    let xc = x.clamp(EXP_LO, EXP_HI);
    let t = xc * LOG2E + MAGIC;
    let k = t - MAGIC;
    let ki = (t.to_bits() as i64).wrapping_sub(MAGIC.to_bits() as i64);
    let r = (xc - k * LN2_HI) - k * LN2_LO;
    // Taylor series of e^r on |r| <= ln2/2, degree 12 (error < 1e-16), Horner form.
    let mut p = EXP_TAYLOR[0];
    for c in &EXP_TAYLOR[1..] {
        p = p * r + c;
    }
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
pub fn exp_inplace(v: &mut [f64]) {
    for a in v.iter_mut() {
        *a = exp(*a);
    }
}

/// `ln(1 + u)` for `u` in `[0, 1]`, branch-free and accurate for tiny `u`:
/// `1 + u = 2^m w` with `w` in `[1/√2, √2]`, `ln w = 2 atanh(s)` by its series with
/// `s = (w - 1) / (w + 1)` computed from `u` without cancellation.
#[inline(always)]
fn log1p_unit(u: f64) -> f64 {
    let big = u > std::f64::consts::SQRT_2 - 1.0;
    let s = if big {
        (u - 1.0) / (u + 3.0)
    } else {
        u / (2.0 + u)
    };
    let m = if big { std::f64::consts::LN_2 } else { 0.0 };
    let z = s * s;
    // 2 (s + s^3/3 + ... + s^23/23); z <= 0.0295, so z^12/25 < 1e-19.
    let mut p = 1.0 / 23.0;
    for k in (1..=10).rev() {
        p = p * z + 1.0 / (2 * k + 1) as f64;
    }
    p = p * z + 1.0;
    m + 2.0 * s * p
}

/// `ln(1 + e^a)` without overflow.
#[inline(always)]
pub fn softplus(a: f64) -> f64 {
    let r = a.max(0.0) + log1p_unit(exp(-a.abs()));
    if a.is_nan() {
        a
    } else {
        r
    }
}

/// `1 / (1 + e^-a)`.
#[inline(always)]
pub fn sigmoid(a: f64) -> f64 {
    1.0 / (1.0 + exp(-a))
}

/// `tanh(a)`; for |a| < 0.01 a series (relative error < 1e-15 either way).
#[inline(always)]
pub fn tanh(a: f64) -> f64 {
    let x = a.abs().min(40.0);
    let e = exp(2.0 * x);
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
pub fn sinh(a: f64) -> f64 {
    let e = exp(a.abs() - std::f64::consts::LN_2);
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
pub fn cosh(a: f64) -> f64 {
    let e = exp(a.abs() - std::f64::consts::LN_2);
    e + 0.25 / e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_to_std() {
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
            let (a, b) = (sin(x), x.sin());
            assert!(
                (a - b).abs() <= 1e-14 * b.abs().max(1e-300) + 1e-16,
                "sin {x}: {a} {b}"
            );
            let (a, b) = (cos(x), x.cos());
            assert!(
                (a - b).abs() <= 1e-14 * b.abs().max(1e-300) + 1e-16,
                "cos {x}: {a} {b}"
            );
        }
        for &x in &xs {
            let x = x * 7.0;
            let (a, b) = (exp(x), x.exp());
            assert!(a == b || (a - b).abs() <= 1e-14 * b, "exp {x}: {a} {b}");
        }
        assert_eq!(exp(710.0), 710f64.exp());
        assert!((exp(709.5) / 709.5f64.exp() - 1.0).abs() < 1e-14);
        assert_eq!(exp(1000.0), f64::INFINITY);
        assert_eq!(exp(-1000.0), 0.0);
        assert!(exp(f64::NAN).is_nan());
        for &x in &xs {
            let x = x * 0.3;
            for (name, a, b) in [
                (
                    "softplus",
                    softplus(x),
                    x.max(0.0) + (-x.abs()).exp().ln_1p(),
                ),
                ("sigmoid", sigmoid(x), 1.0 / (1.0 + (-x).exp())),
                ("tanh", tanh(x), x.tanh()),
                ("sinh", sinh(x), x.sinh()),
                ("cosh", cosh(x), x.cosh()),
            ] {
                let ok = a == b || (a - b).abs() <= 2e-14 * b.abs().max(1e-300);
                assert!(ok, "{name} {x}: {a} {b}");
            }
        }
        for x in [
            1e-9, -1e-9, 0.0, 1e-3, 0.009, 0.011, -700.0, 700.0, 1e5, -1e5,
        ] {
            for (a, b) in [
                (softplus(x), x.max(0.0) + (-x.abs()).exp().ln_1p()),
                (tanh(x), x.tanh()),
                (sinh(x), x.sinh()),
                (cosh(x), x.cosh()),
                (sigmoid(x), 1.0 / (1.0 + (-x).exp())),
            ] {
                // Large |x|: exp(|x| - ln 2) adds the rounding of |x| - ln 2 (~1e-13).
                assert!(a == b || (a - b).abs() <= 2e-13 * b.abs(), "{x}: {a} {b}");
            }
        }
        assert!(softplus(f64::NAN).is_nan() && tanh(f64::NAN).is_nan());
        let mut v = vec![1e6, 0.5];
        sin_inplace(&mut v);
        assert_eq!(v, vec![1e6f64.sin(), 0.5f64.sin()]);
    }
}
