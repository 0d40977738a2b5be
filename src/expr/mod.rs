//! The expression language of kernel and transform search.
//!
//! Expressions are over vectors: the variables `x` and `y` (kernels; transforms use `x`
//! only), numeric constants, infix `+ - * /`, unary minus, elementwise functions
//! (`abs, square, cube, sqrt_abs, exp, sin, cos, sinh, cosh, tanh, relu, min0, sigmoid,
//! softplus, sign`), elementwise binary functions (`max, min, expdiff`), the γ-scaled
//! reductions (`dot, l1dist, l2dist, l1, l2`, γ = 1/n_features) and the kernel's final
//! reduction `norm1`.
//!
//! Values are typed: a reduction produces a *scalar*, everything else over a vector is
//! a *vector*. A scalar used where a vector is expected broadcasts, i.e. it stands for
//! the vector with every entry equal to it (so `l1(s) = |s|` and `norm1(s) = d·|s|`).
//!
//! [`parse`] turns text into an [`Expr`]; `Display` prints the canonical form, which
//! parses back to an equal [`Expr`]. [`Program`] compiles an expression to a flat list of
//! instructions and evaluates kernel matrices ([`Program::gram`]) and transforms
//! ([`Program::apply`]) without any `n×m×d` intermediate.

mod ast;
mod compile;
mod eval;
mod fastmath;
mod nonzero;
mod pair;
mod parse;
mod simd;
mod sparse;
mod visit;
mod weighted;

pub use ast::{BinOp, Expr, Func, ValueType, ALL_FUNCS, VAR_NAMES};
pub use compile::Program;
pub use nonzero::SparseRows;
pub use pair::PairEvaluator;
pub use parse::{parse, parse_with_vars, MAX_DEPTH};

/// Runs one level of a recursion over an expression tree (parsing, compiling, printing,
/// comparing, bounding) with at least 64 KiB of stack left: when the calling thread's
/// stack is nearly used up (a small worker-thread stack, a debug build's large frames), the
/// rest of the recursion continues on a fresh 1 MiB segment allocated on the heap
/// (`stacker`, as rustc does), so a deep expression is [`parse::MAX_DEPTH`]'s syntax
/// error, never a stack overflow, on any thread.
#[inline]
pub(crate) fn grow<R>(f: impl FnOnce() -> R) -> R {
    stacker::maybe_grow(64 * 1024, 1024 * 1024, f)
}

/// Errors of the expression language.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExprError {
    /// The text does not parse; `position` is the 0-based character offset.
    #[error("{message} at position {position} in {text:?}")]
    Syntax {
        /// What is wrong.
        message: String,
        /// 0-based character offset of the problem.
        position: usize,
        /// The whole expression text.
        text: String,
    },
    /// An expression is not usable for the requested evaluation (a kernel that is not
    /// scalar-valued, a transform that uses `y`, a placeholder left in a template, ...).
    #[error("{0}")]
    Invalid(String),
    /// Input arrays have incompatible shapes.
    #[error("{0}")]
    Shape(String),
    /// The evaluation produced NaN or infinite values.
    #[error("expression produced {count} non-finite value(s) (first at row {row}, column {col})")]
    NonFinite {
        /// Number of non-finite entries.
        count: usize,
        /// Row of the first one.
        row: usize,
        /// Column of the first one.
        col: usize,
    },
    /// The evaluation was cancelled.
    #[error("interrupted")]
    Cancelled,
}

impl From<crate::runtime::Cancelled> for ExprError {
    fn from(_: crate::runtime::Cancelled) -> Self {
        ExprError::Cancelled
    }
}
