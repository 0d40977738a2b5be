//! Reinforcement-learning search over expressions (the paper's kernel and transform
//! search): search spaces as data ([`space`]), the GRU controller trained with
//! REINFORCE ([`controller`]), the search loop's steps with caching and invalid-candidate
//! accounting, for any evaluator ([`driver`]), the settings and records they share
//! ([`record`]), the in-process loop with parallel evaluation and progress reporting
//! ([`search`]), and the search spec that crosses the Python boundary and is stored with
//! results ([`spec`]).

pub mod controller;
pub mod driver;
pub mod record;
pub mod reward;
pub mod search;
pub mod space;
pub mod spec;

pub use controller::{ControllerConfig, ControllerKind};
pub use driver::{judge, Batch, Driver};
pub use record::{Candidate, EvalContext, SearchConfig, SearchOutcome, StepRecord};
pub use search::search;
pub use space::{Space, SpaceKind};
pub use spec::{SearchSpec, SpaceSpec};

/// Errors of the search area.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RlError {
    /// A search setting is invalid.
    #[error("{0}")]
    Config(String),
    /// A search space is invalid (no operations, a bad template, a wrong-kind result).
    #[error("{0}")]
    Space(String),
    /// An expression template of a space does not parse.
    #[error("{0}")]
    Expr(#[from] crate::expr::ExprError),
    /// libtorch failed in the controller.
    #[error("libtorch: {0}")]
    Torch(String),
    /// The search was cancelled before any step finished.
    #[error("interrupted")]
    Cancelled,
}

impl From<tch::TchError> for RlError {
    fn from(e: tch::TchError) -> Self {
        RlError::Torch(e.to_string())
    }
}
