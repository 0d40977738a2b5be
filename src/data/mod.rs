//! Dataset readers.
//!
//! - [`idx`]: the IDX format of MNIST and Fashion-MNIST (gzip or raw).
//! - [`augment`]: seeded image distortions (views).
//! - [`grid`]: the Grid Search Network's grid sampler.

pub mod augment;
pub mod grid;
pub mod idx;

use std::path::PathBuf;

/// Errors of the data area. Each variant maps to `gridmatch.DataError` in Python.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file's content does not follow the expected format.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Two files that belong together disagree (for example images and labels counts).
    #[error("{0}")]
    Mismatch(String),
}
