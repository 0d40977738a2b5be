//! Kernel support vector classification (C-SVC), libsvm's algorithm in pure Rust.
//!
//! - [`kernel`]: the [`Kernel`] trait, built-in kernels, and the [`Gram`] view the
//!   solver reads (on-demand rows of a [`Kernel`] over a training matrix, or a
//!   precomputed Gram matrix).
//! - [`solver`]: SMO with WSS3 working-set selection, shrinking and a row cache.
//! - [`multiclass`]: one-vs-one training (binary problems in parallel) with libsvm's /
//!   scikit-learn's model layout, decision values and voting. [`fit_ovo`] takes any
//!   [`Gram`]; [`fit_ovo_features`] takes a [`Kernel`] and feature rows and shares the
//!   within-class kernel blocks between the problems when they fit the cache budget.
//!   [`fit_ovo_with`] / [`fit_ovo_features_with`] also fit libsvm's probability model.
//! - [`predict`]: decision values and votes of a fitted model (built-in, expression or
//!   precomputed kernels).
//! - [`spec`]: the kernel and fit settings as typed specs (JSON across the boundary).
//! - [`probability`]: Platt scaling on 5-fold cross-validation decision values, and
//!   pairwise coupling of the pair probabilities ([`predict_proba`]).
//!
//! Fitting a multiclass model on a precomputed Gram matrix and scoring it:
//!
//! ```
//! use gridmatch::runtime::Monitor;
//! use gridmatch::svm::{fit_ovo, Classes, PrecomputedGram, SolverParams};
//! use ndarray::array;
//! let k = array![[1.0, 0.9, 0.1, 0.0], [0.9, 1.0, 0.0, 0.1], [0.1, 0.0, 1.0, 0.9], [0.0, 0.1, 0.9, 1.0]];
//! let gram = PrecomputedGram::new(k.view()).unwrap();
//! let y = [0, 0, 1, 1];
//! let model = fit_ovo(&gram, &Classes::new(&y, 2, &[1.0; 4]), &SolverParams::default(), &Monitor::none()).unwrap();
//! let pred = model.predict_precomputed(k.view()).unwrap();
//! assert_eq!(pred, vec![0, 0, 1, 1]);
//! ```

pub(crate) mod cache;
pub mod kernel;
pub mod multiclass;
pub mod predict;
pub mod probability;
pub mod solver;
pub mod spec;

pub use kernel::{
    BuiltinKernel, CsrRows, ExprGram, FeatureGram, Gram, Kernel, PrecomputedGram, ShiftedKernel,
    SparseGram,
};
pub use multiclass::{
    fit_ovo, fit_ovo_features, fit_ovo_features_with, fit_ovo_sparse_with, fit_ovo_with, Classes,
    OvoModel,
};
pub use predict::predict_from_decision;
pub use probability::predict_proba;
pub use solver::{solve_binary, BinarySolution, SolverParams};
pub use spec::{KernelSpec, SvmSpec, KERNEL_NAMES};

use crate::runtime::Cancelled;

/// Errors of the SVM area.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SvmError {
    /// Inputs of inconsistent or wrong shape.
    #[error("{0}")]
    Shape(String),
    /// Invalid values (labels, weights, parameters).
    #[error("{0}")]
    Value(String),
    /// An expression kernel failed (non-finite values, not a kernel).
    #[error("{0}")]
    Expr(#[from] crate::expr::ExprError),
    /// The fit was cancelled (Ctrl-C or a progress callback).
    #[error("interrupted")]
    Cancelled(#[from] Cancelled),
}
