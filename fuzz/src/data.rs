//! `gridmatch::data::idx` (`src/data/idx.rs`), the IDX reader.

use std::path::PathBuf;

#[path = "../../src/data/idx.rs"]
pub mod idx;

/// `gridmatch::data::DataError`.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The content does not follow the format.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Two files disagree.
    #[error("{0}")]
    Mismatch(String),
}
