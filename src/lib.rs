//! gridmatch: Grid Search Network embeddings, RL-searched transforms and SVM kernels.
//!
//! The crate is a pure-Rust core (no Python types outside [`python`]) plus the pyo3
//! bindings that the `gridmatch` Python package loads as `gridmatch._core`.
//!
//! Areas:
//! - [`data`]: dataset readers (IDX), augmentations, the GSN grid sampler.
//! - [`images`]: the streaming photo pipeline (decode, crop / resize, augment, batches).
//! - [`losses`], [`nets`], [`train`]: the Grid Search Network.
//! - [`expr`]: the expression language of kernel / transform search.
//! - [`rl`]: the RL controller and the kernel / transform search loop.
//! - [`retrieval`]: exact kNN (blocked GEMM + top-k) and retrieval metrics.
//! - [`rng`]: the one seeded generator (SplitMix64) of sampling, augmentation and search.
//! - [`store`]: model files (checksummed safetensors + metadata, atomic writes).
//! - [`runtime`]: thread pools, cancellation and progress reporting shared by every
//!   long-running computation.
//!
//! Cargo features: `torch` (default) builds the areas on libtorch ([`losses`], [`nets`],
//! [`train`], [`rl`], the CUDA retrieval backend), `python` (default) the bindings;
//! `cargo test --no-default-features --lib` builds and tests the pure core without
//! libtorch or Python.

#![deny(unsafe_op_in_unsafe_fn)]

pub mod data;
pub mod expr;
pub mod images;
#[cfg(feature = "torch")]
pub mod losses;
#[cfg(feature = "torch")]
pub mod nets;
pub mod retrieval;
#[cfg(feature = "torch")]
pub mod rl;
pub mod rng;
pub mod runtime;
pub mod store;
pub mod svm;
#[cfg(feature = "torch")]
pub mod train;

#[cfg(feature = "python")]
mod python;
