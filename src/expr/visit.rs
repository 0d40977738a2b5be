//! The static analysis of the sparse evaluator: in which classes of features (`A`: only
//! `y` nonzero, `B`: only `x` nonzero, `Z`: both zero) a kernel's summed terms can vary,
//! hence which features of a pair must be visited ([`visit_for`], [`Visit`]). See
//! [`super::sparse`] for the classes and the exactness argument.

use super::ast::{BinOp, Expr, Func};
use super::compile::Bin;
use super::fastmath::{Fused, Unfused};
use super::simd::{unary_inplace, unary_scalar};

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
pub(super) fn visit_word<const V: u8>(a: u64, b: u64) -> u64 {
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
