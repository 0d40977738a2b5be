//! `gridmatch::expr`'s tree and parser (`src/expr/ast.rs`, `src/expr/parse.rs`).

#[path = "../../src/expr/ast.rs"]
pub mod ast;
#[path = "../../src/expr/parse.rs"]
pub mod parse;

pub use ast::Expr;
pub use parse::parse;

/// The variants of `gridmatch::expr::ExprError` that the parser produces.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExprError {
    /// The text does not parse.
    #[error("{message} at position {position} in {text:?}")]
    Syntax {
        /// What is wrong.
        message: String,
        /// 0-based character offset.
        position: usize,
        /// The whole text.
        text: String,
    },
}
