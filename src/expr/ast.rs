//! Expression trees, their types and the canonical printer.

use std::fmt;
use std::hash::{Hash, Hasher};

/// Infix arithmetic operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinOp {
    /// `a + b`
    Add,
    /// `a - b`
    Sub,
    /// `a * b` (elementwise)
    Mul,
    /// `a / b` (elementwise)
    Div,
}

impl BinOp {
    fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
        }
    }

    fn precedence(self) -> u8 {
        match self {
            BinOp::Add | BinOp::Sub => 1,
            BinOp::Mul | BinOp::Div => 2,
        }
    }

    /// Apply to two numbers.
    #[inline(always)]
    pub fn apply(self, a: f64, b: f64) -> f64 {
        match self {
            BinOp::Add => a + b,
            BinOp::Sub => a - b,
            BinOp::Mul => a * b,
            BinOp::Div => a / b,
        }
    }
}

/// Named functions of the language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Func {
    /// `|a|`
    Abs,
    /// `a²`
    Square,
    /// `a³`
    Cube,
    /// `√|a|`
    SqrtAbs,
    /// `eᵃ`
    Exp,
    /// `sin a`
    Sin,
    /// `cos a`
    Cos,
    /// `sinh a`
    Sinh,
    /// `cosh a`
    Cosh,
    /// `tanh a`
    Tanh,
    /// `max(a, 0)`
    Relu,
    /// `min(a, 0)`
    Min0,
    /// `1 / (1 + e⁻ᵃ)`
    Sigmoid,
    /// `ln(1 + eᵃ)`
    Softplus,
    /// sign of `a` (−1, 0 or 1)
    Sign,
    /// elementwise `max(a, b)`
    Max,
    /// elementwise `min(a, b)`
    Min,
    /// `exp(−|a − b|)`
    ExpDiff,
    /// `γ Σ aᵢ bᵢ`
    Dot,
    /// `γ Σ |aᵢ − bᵢ|`
    L1Dist,
    /// `γ √Σ (aᵢ − bᵢ)²`
    L2Dist,
    /// `γ Σ |aᵢ|`
    L1,
    /// `γ √Σ aᵢ²`
    L2,
    /// `Σ |aᵢ|` (the kernel's final reduction, not scaled)
    Norm1,
}

/// Every function, in documentation order.
pub const ALL_FUNCS: [Func; 24] = [
    Func::Abs,
    Func::Square,
    Func::Cube,
    Func::SqrtAbs,
    Func::Exp,
    Func::Sin,
    Func::Cos,
    Func::Sinh,
    Func::Cosh,
    Func::Tanh,
    Func::Relu,
    Func::Min0,
    Func::Sigmoid,
    Func::Softplus,
    Func::Sign,
    Func::Max,
    Func::Min,
    Func::ExpDiff,
    Func::Dot,
    Func::L1Dist,
    Func::L2Dist,
    Func::L1,
    Func::L2,
    Func::Norm1,
];

impl Func {
    /// The name used in expressions.
    pub fn name(self) -> &'static str {
        match self {
            Func::Abs => "abs",
            Func::Square => "square",
            Func::Cube => "cube",
            Func::SqrtAbs => "sqrt_abs",
            Func::Exp => "exp",
            Func::Sin => "sin",
            Func::Cos => "cos",
            Func::Sinh => "sinh",
            Func::Cosh => "cosh",
            Func::Tanh => "tanh",
            Func::Relu => "relu",
            Func::Min0 => "min0",
            Func::Sigmoid => "sigmoid",
            Func::Softplus => "softplus",
            Func::Sign => "sign",
            Func::Max => "max",
            Func::Min => "min",
            Func::ExpDiff => "expdiff",
            Func::Dot => "dot",
            Func::L1Dist => "l1dist",
            Func::L2Dist => "l2dist",
            Func::L1 => "l1",
            Func::L2 => "l2",
            Func::Norm1 => "norm1",
        }
    }

    /// Look a function up by name.
    pub fn from_name(name: &str) -> Option<Func> {
        ALL_FUNCS.iter().copied().find(|f| f.name() == name)
    }

    /// Number of arguments.
    pub fn arity(self) -> usize {
        match self {
            Func::Max | Func::Min | Func::ExpDiff | Func::Dot | Func::L1Dist | Func::L2Dist => 2,
            _ => 1,
        }
    }

    /// Whether the function reduces vectors to a scalar.
    pub fn is_reduction(self) -> bool {
        matches!(
            self,
            Func::Dot | Func::L1Dist | Func::L2Dist | Func::L1 | Func::L2 | Func::Norm1
        )
    }

    /// Apply an elementwise unary function to one number (reductions: not applicable,
    /// returns NaN).
    #[inline(always)]
    pub fn apply1(self, a: f64) -> f64 {
        match self {
            Func::Abs => a.abs(),
            Func::Square => a * a,
            Func::Cube => a * a * a,
            Func::SqrtAbs => a.abs().sqrt(),
            Func::Exp => a.exp(),
            Func::Sin => a.sin(),
            Func::Cos => a.cos(),
            Func::Sinh => a.sinh(),
            Func::Cosh => a.cosh(),
            Func::Tanh => a.tanh(),
            Func::Relu => max_nan(a, 0.0),
            Func::Min0 => min_nan(a, 0.0),
            Func::Sigmoid => 1.0 / (1.0 + (-a).exp()),
            Func::Softplus => {
                // ln(1 + eᵃ) without overflow.
                a.max(0.0) + (-a.abs()).exp().ln_1p()
            }
            Func::Sign => {
                if a > 0.0 {
                    1.0
                } else if a < 0.0 {
                    -1.0
                } else if a == 0.0 {
                    0.0
                } else {
                    a // NaN, as numpy's sign
                }
            }
            _ => f64::NAN,
        }
    }

    /// Apply an elementwise binary function to two numbers (others: NaN).
    #[inline(always)]
    pub fn apply2(self, a: f64, b: f64) -> f64 {
        match self {
            Func::Max => max_nan(a, b),
            Func::Min => min_nan(a, b),
            Func::ExpDiff => (-(a - b).abs()).exp(),
            _ => f64::NAN,
        }
    }
}

/// `min(a, b)` that propagates NaN like numpy's `minimum` (`f64::min` returns the other
/// operand, which would hide an invalid value); branch-free, so loops vectorise.
#[inline(always)]
pub fn min_nan(a: f64, b: f64) -> f64 {
    let m = if a < b { a } else { b }; // NaN in b: b; NaN in a: b, fixed below
    if a.is_nan() {
        a
    } else {
        m
    }
}

/// `max(a, b)` that propagates NaN like numpy's `maximum`.
#[inline(always)]
pub fn max_nan(a: f64, b: f64) -> f64 {
    let m = if a > b { a } else { b };
    if a.is_nan() {
        a
    } else {
        m
    }
}

/// The type of a value: a reduction gives a scalar, anything over a vector a vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueType {
    /// One number (broadcasts where a vector is expected).
    Scalar,
    /// One number per feature.
    Vector,
}

/// An expression tree.
///
/// Build trees with the parser or the helper constructors ([`Expr::neg`] folds a minus
/// into a constant, as the parser does), so that equal canonical forms mean equal trees.
#[derive(Debug)]
pub enum Expr {
    /// Variable number `i` (`0` = `x`, `1` = `y`; templates use their own names).
    Var(u8),
    /// A finite constant.
    Const(f64),
    /// Unary minus.
    Neg(Box<Expr>),
    /// Infix arithmetic.
    Bin(BinOp, Box<Expr>, Box<Expr>),
    /// A function call (argument count = [`Func::arity`]).
    Call(Func, Vec<Expr>),
}

/// Dropping a tree takes the children out onto a heap-allocated list instead of
/// recursing, so even the deepest accepted tree is dropped in constant stack.
impl Drop for Expr {
    fn drop(&mut self) {
        fn take(e: &mut Expr, out: &mut Vec<Expr>) {
            match e {
                Expr::Neg(a) => out.push(std::mem::replace(&mut **a, Expr::Const(0.0))),
                Expr::Bin(_, a, b) => {
                    out.push(std::mem::replace(&mut **a, Expr::Const(0.0)));
                    out.push(std::mem::replace(&mut **b, Expr::Const(0.0)));
                }
                Expr::Call(_, args) => out.append(args),
                Expr::Var(_) | Expr::Const(_) => {}
            }
        }
        if matches!(self, Expr::Var(_) | Expr::Const(_)) {
            return;
        }
        let mut pending = Vec::new();
        take(self, &mut pending);
        while let Some(mut e) = pending.pop() {
            take(&mut e, &mut pending);
        }
    }
}

impl Clone for Expr {
    fn clone(&self) -> Self {
        crate::expr::grow(|| match self {
            Expr::Var(v) => Expr::Var(*v),
            Expr::Const(c) => Expr::Const(*c),
            Expr::Neg(a) => Expr::Neg(a.clone()),
            Expr::Bin(o, a, b) => Expr::Bin(*o, a.clone(), b.clone()),
            Expr::Call(f, args) => Expr::Call(*f, args.clone()),
        })
    }
}

impl PartialEq for Expr {
    fn eq(&self, other: &Self) -> bool {
        crate::expr::grow(|| match (self, other) {
            (Expr::Var(a), Expr::Var(b)) => a == b,
            (Expr::Const(a), Expr::Const(b)) => a.to_bits() == b.to_bits(),
            (Expr::Neg(a), Expr::Neg(b)) => a == b,
            (Expr::Bin(o1, a1, b1), Expr::Bin(o2, a2, b2)) => o1 == o2 && a1 == a2 && b1 == b2,
            (Expr::Call(f1, a1), Expr::Call(f2, a2)) => f1 == f2 && a1 == a2,
            _ => false,
        })
    }
}

impl Eq for Expr {}

impl Hash for Expr {
    fn hash<H: Hasher>(&self, state: &mut H) {
        crate::expr::grow(|| {
            std::mem::discriminant(self).hash(state);
            match self {
                Expr::Var(v) => v.hash(state),
                Expr::Const(c) => c.to_bits().hash(state),
                Expr::Neg(a) => a.hash(state),
                Expr::Bin(o, a, b) => {
                    o.hash(state);
                    a.hash(state);
                    b.hash(state);
                }
                Expr::Call(f, args) => {
                    f.hash(state);
                    args.hash(state);
                }
            }
        })
    }
}

/// Names of the variables of kernel and transform expressions.
pub const VAR_NAMES: [&str; 2] = ["x", "y"];

impl Expr {
    /// The variable `x`.
    pub fn x() -> Expr {
        Expr::Var(0)
    }

    /// The variable `y`.
    pub fn y() -> Expr {
        Expr::Var(1)
    }

    /// `-e`, folded into the constant when `e` is one.
    #[allow(clippy::should_implement_trait)]
    pub fn neg(e: Expr) -> Expr {
        match e {
            Expr::Const(c) => Expr::Const(-c),
            other => Expr::Neg(Box::new(other)),
        }
    }

    /// `a op b`.
    pub fn bin(op: BinOp, a: Expr, b: Expr) -> Expr {
        Expr::Bin(op, Box::new(a), Box::new(b))
    }

    /// `f(args...)`; the caller guarantees the arity.
    pub fn call(f: Func, args: Vec<Expr>) -> Expr {
        Expr::Call(f, args)
    }

    /// The value type.
    pub fn value_type(&self) -> ValueType {
        crate::expr::grow(|| match self {
            Expr::Var(_) => ValueType::Vector,
            Expr::Const(_) => ValueType::Scalar,
            Expr::Neg(a) => a.value_type(),
            Expr::Bin(_, a, b) => join(a.value_type(), b.value_type()),
            Expr::Call(f, args) => {
                if f.is_reduction() {
                    ValueType::Scalar
                } else {
                    args.iter()
                        .map(Expr::value_type)
                        .fold(ValueType::Scalar, join)
                }
            }
        })
    }

    /// Whether variable `v` occurs.
    pub fn uses_var(&self, v: u8) -> bool {
        crate::expr::grow(|| match self {
            Expr::Var(w) => *w == v,
            Expr::Const(_) => false,
            Expr::Neg(a) => a.uses_var(v),
            Expr::Bin(_, a, b) => a.uses_var(v) || b.uses_var(v),
            Expr::Call(_, args) => args.iter().any(|a| a.uses_var(v)),
        })
    }

    /// Replace variable `i` by `args[i]` (variables beyond `args` stay).
    pub fn substitute(&self, args: &[Expr]) -> Expr {
        crate::expr::grow(|| match self {
            Expr::Var(v) => args.get(usize::from(*v)).cloned().unwrap_or(Expr::Var(*v)),
            Expr::Const(c) => Expr::Const(*c),
            Expr::Neg(a) => Expr::neg(a.substitute(args)),
            Expr::Bin(o, a, b) => Expr::bin(*o, a.substitute(args), b.substitute(args)),
            Expr::Call(f, a) => Expr::Call(*f, a.iter().map(|e| e.substitute(args)).collect()),
        })
    }

    /// Number of nodes.
    pub fn size(&self) -> usize {
        crate::expr::grow(|| match self {
            Expr::Var(_) | Expr::Const(_) => 1,
            Expr::Neg(a) => 1 + a.size(),
            Expr::Bin(_, a, b) => 1 + a.size() + b.size(),
            Expr::Call(_, args) => 1 + args.iter().map(Expr::size).sum::<usize>(),
        })
    }

    /// The expression with `x` and `y` exchanged.
    pub fn swap_xy(&self) -> Expr {
        self.substitute(&[Expr::y(), Expr::x()])
    }

    /// A normal form modulo commutativity: the arguments of `+`, `*`, `max`, `min`,
    /// `expdiff`, `dot`, `l1dist` and `l2dist` sorted by their printed form.
    pub fn commutative_normal(&self) -> Expr {
        crate::expr::grow(|| {
            match self {
                Expr::Var(_) | Expr::Const(_) => self.clone(),
                Expr::Neg(a) => Expr::Neg(Box::new(a.commutative_normal())),
                Expr::Bin(o, a, b) => {
                    let (a, b) = (a.commutative_normal(), b.commutative_normal());
                    if matches!(o, BinOp::Add | BinOp::Mul) && a.to_string() > b.to_string() {
                        Expr::bin(*o, b, a)
                    } else {
                        Expr::bin(*o, a, b)
                    }
                }
                Expr::Call(f, args) => {
                    let mut args: Vec<Expr> = args.iter().map(Expr::commutative_normal).collect();
                    let commutes = matches!(
                        f,
                        Func::Max
                            | Func::Min
                            | Func::ExpDiff
                            | Func::Dot
                            | Func::L1Dist
                            | Func::L2Dist
                    );
                    if commutes {
                        args.sort_by_cached_key(|a| a.to_string());
                    }
                    // Even functions of a difference: f(a - b) = f(b - a) exactly, since
                    // a - b = -(b - a) in floating point.
                    let even = matches!(
                        f,
                        Func::Abs
                            | Func::Square
                            | Func::SqrtAbs
                            | Func::Cosh
                            | Func::L1
                            | Func::L2
                            | Func::Norm1
                    );
                    if even {
                        if let [Expr::Bin(BinOp::Sub, a, b)] = args.as_slice() {
                            if a.to_string() > b.to_string() {
                                args = vec![Expr::bin(BinOp::Sub, (**b).clone(), (**a).clone())];
                            }
                        }
                    }
                    Expr::Call(*f, args)
                }
            }
        })
    }

    /// Whether `k(x, y) = k(y, x)` follows from commutativity alone (a sufficient test:
    /// a kernel for which this is `false` may still be symmetric).
    pub fn is_symmetric(&self) -> bool {
        self.commutative_normal() == self.swap_xy().commutative_normal()
    }

    fn precedence(&self) -> u8 {
        match self {
            Expr::Bin(o, _, _) => o.precedence(),
            Expr::Neg(_) => 3,
            Expr::Const(c) if c.is_sign_negative() => 3,
            _ => 4,
        }
    }

    fn fmt_prec(&self, f: &mut fmt::Formatter<'_>, min_prec: u8) -> fmt::Result {
        crate::expr::grow(|| {
            let paren = self.precedence() < min_prec;
            if paren {
                f.write_str("(")?;
            }
            match self {
                Expr::Var(v) => match VAR_NAMES.get(usize::from(*v)) {
                    Some(name) => f.write_str(name)?,
                    None => write!(f, "v{v}")?,
                },
                Expr::Const(c) => write!(f, "{c}")?,
                Expr::Neg(a) => {
                    f.write_str("-")?;
                    a.fmt_prec(f, 3)?;
                }
                Expr::Bin(o, a, b) => {
                    let p = o.precedence();
                    a.fmt_prec(f, p)?;
                    write!(f, " {} ", o.symbol())?;
                    b.fmt_prec(f, p + 1)?;
                }
                Expr::Call(func, args) => {
                    f.write_str(func.name())?;
                    f.write_str("(")?;
                    for (i, a) in args.iter().enumerate() {
                        if i > 0 {
                            f.write_str(", ")?;
                        }
                        a.fmt_prec(f, 0)?;
                    }
                    f.write_str(")")?;
                }
            }
            if paren {
                f.write_str(")")?;
            }
            Ok(())
        })
    }
}

fn join(a: ValueType, b: ValueType) -> ValueType {
    if a == ValueType::Vector || b == ValueType::Vector {
        ValueType::Vector
    } else {
        ValueType::Scalar
    }
}

/// The canonical form: minimal parentheses, `", "` between arguments, `" op "` around
/// infix operators, constants in Rust's shortest round-trip notation.
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_prec(f, 0)
    }
}
