//! Exact k-nearest-neighbour search and retrieval metrics.
//!
//! - [`knn`]: exact top-k gallery items for every query, by a blocked matrix product
//!   (AVX-512 / AVX2 f32 micro-kernels chosen at run time, else the `gemm` crate; one
//!   tile per rayon task) fused with a streaming
//!   top-k selection. Memory stays bounded by the tile shape ([`Blocks`]): the full
//!   query × gallery score matrix is never formed.
//! - [`evaluate`]: recall@k (DeepFashion In-shop's top-k accuracy), precision@1, MAP@R
//!   and R-precision (*A Metric Learning Reality Check*), computed query by query while
//!   the search streams, so even MAP@R with large R needs no n × R matrix. With AVX2,
//!   an integer prefilter with a rigorous error bound skips the items that cannot
//!   change any metric; the others are scored exactly, so the metrics are unchanged.
//! - [`torch_backend`]: the same search with libtorch ops, for `device = cuda`.
//!
//! Scores: cosine similarity and inner product are ranked largest first; squared L2
//! distance smallest first. Ties are broken by the lower gallery index, so results are
//! deterministic whatever the number of threads or the tile shape.
//!
//! All functions run their parallel work in the current rayon pool; call them inside
//! [`crate::runtime::install`] to use gridmatch's pool.

mod engine;
mod kernel;
mod metrics;
mod prefilter;
mod prepared;
mod scan;
pub mod spec;
mod targets;
mod topk;
#[cfg(feature = "torch")]
pub mod torch_backend;

pub use engine::{knn, knn_with, Neighbors};
pub use metrics::{evaluate, metrics_from_ranking, recall_at_k, EvalOptions, Evaluation};
pub use spec::RetrievalSpec;
pub use topk::Neighbor;

use crate::runtime::Cancelled;
use ndarray::{ArrayView2, CowArray, Ix2};
use std::str::FromStr;

/// Errors of the retrieval area.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RetrievalError {
    /// An input has no rows or no columns.
    #[error("{what} is empty (shape {rows}x{cols})")]
    Empty {
        /// Which input (`queries`, `gallery`, ...).
        what: &'static str,
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
    },
    /// Queries and gallery have different embedding dimensions.
    #[error("dimension mismatch: queries have {queries} columns, gallery has {gallery}")]
    DimensionMismatch {
        /// Query dimension.
        queries: usize,
        /// Gallery dimension.
        gallery: usize,
    },
    /// `k` is zero or larger than the number of gallery items that can be returned.
    #[error("k={k} is out of range: must be between 1 and {available} ({why})")]
    BadK {
        /// The requested k.
        k: usize,
        /// The largest k possible.
        available: usize,
        /// Why `available` is what it is.
        why: String,
    },
    /// An input holds NaN or infinity.
    #[error("{what} contains a non-finite value (NaN or inf) at row {row}, column {col}")]
    NonFinite {
        /// Which input.
        what: &'static str,
        /// Row of the first non-finite value.
        row: usize,
        /// Column of the first non-finite value.
        col: usize,
    },
    /// Two inputs that must have the same length do not.
    #[error("{what}: expected length {expected}, got {got}")]
    LengthMismatch {
        /// What is compared.
        what: String,
        /// Expected length.
        expected: usize,
        /// Actual length.
        got: usize,
    },
    /// An option has an invalid value (unknown metric, empty `ks`, ...).
    #[error("{0}")]
    InvalidParameter(String),
    /// The requested device is not available.
    #[error("{0}")]
    Device(String),
    /// libtorch failed.
    #[error("libtorch: {0}")]
    Backend(String),
    /// The work was cancelled.
    #[error("interrupted")]
    Cancelled,
}

impl From<Cancelled> for RetrievalError {
    fn from(_: Cancelled) -> Self {
        RetrievalError::Cancelled
    }
}

#[cfg(feature = "torch")]
impl From<tch::TchError> for RetrievalError {
    fn from(e: tch::TchError) -> Self {
        RetrievalError::Backend(e.to_string())
    }
}

/// Similarity or distance used to rank the gallery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Cosine similarity `<q, g> / (|q| |g|)`, largest first (a zero vector has
    /// similarity 0 with everything).
    Cosine,
    /// Inner product `<q, g>`, largest first.
    InnerProduct,
    /// Squared Euclidean distance `|q - g|^2`, smallest first.
    L2,
}

impl Metric {
    /// The name used by the Python API: `"cosine"`, `"ip"` or `"l2"`.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Cosine => "cosine",
            Metric::InnerProduct => "ip",
            Metric::L2 => "l2",
        }
    }

    /// Whether smaller scores rank first (distances).
    pub fn smaller_is_better(self) -> bool {
        matches!(self, Metric::L2)
    }
}

impl Metric {
    /// The metrics' names (aliases aside).
    pub const NAMES: &'static [&'static str] = &["cosine", "ip", "l2"];
}

impl FromStr for Metric {
    type Err = RetrievalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cosine" | "cos" => Ok(Metric::Cosine),
            "ip" | "inner_product" | "dot" => Ok(Metric::InnerProduct),
            "l2" | "sqeuclidean" => Ok(Metric::L2),
            other => Err(RetrievalError::InvalidParameter(format!(
                "unknown metric {other:?}: expected \"cosine\", \"ip\" or \"l2\""
            ))),
        }
    }
}

/// Tile shape of the blocked search: `queries` rows of queries times `gallery` rows of
/// the gallery are scored at once by one task. The memory of the score tiles is
/// `threads * queries * gallery * 4` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocks {
    /// Query rows per tile (at least 1).
    pub queries: usize,
    /// Gallery rows per tile (at least 1; rounded up to a multiple of the kernel's
    /// panel width, 48 rows with AVX-512, 16 with AVX2).
    pub gallery: usize,
}

impl Default for Blocks {
    fn default() -> Self {
        Blocks {
            queries: 256,
            gallery: 2048,
        }
    }
}

/// Where the search runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    /// The pure-Rust engine on the CPU (rayon + f32 micro-kernels).
    #[default]
    Cpu,
    /// libtorch on a CUDA device (ordinal).
    Cuda(usize),
}

impl FromStr for Device {
    type Err = RetrievalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(i)) => Ok(Device::Cuda(i)),
                _ => Err(RetrievalError::InvalidParameter(format!(
                    "unknown device {other:?}: expected \"cpu\", \"cuda\" or \"cuda:N\""
                ))),
            },
        }
    }
}

/// Options of [`knn_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnnOptions {
    /// Similarity or distance.
    pub metric: Metric,
    /// Leave-one-out: query `i` never returns gallery item `i` (queries and gallery are
    /// the same set; requires as many queries as gallery items).
    pub exclude_self: bool,
    /// Tile shape (CPU) or block shape (CUDA).
    pub blocks: Blocks,
}

impl Default for KnnOptions {
    fn default() -> Self {
        KnnOptions {
            metric: Metric::Cosine,
            exclude_self: false,
            blocks: Blocks::default(),
        }
    }
}

impl KnnOptions {
    /// Default options with the given metric.
    pub fn new(metric: Metric) -> Self {
        KnnOptions {
            metric,
            ..Self::default()
        }
    }
}

/// A row-major, contiguous view of a matrix (a copy only when the input view is not
/// in standard layout).
pub(crate) fn standard<'a>(a: ArrayView2<'a, f32>) -> CowArray<'a, f32, Ix2> {
    if a.is_standard_layout() {
        CowArray::from(a)
    } else {
        CowArray::from(a.as_standard_layout().into_owned())
    }
}

/// Check the shapes and values shared by every search; returns the number of gallery
/// items a query can be matched with.
pub(crate) fn validate(
    queries: &ArrayView2<'_, f32>,
    gallery: &ArrayView2<'_, f32>,
    exclude_self: bool,
) -> Result<usize, RetrievalError> {
    for (what, a) in [("queries", queries), ("gallery", gallery)] {
        if a.nrows() == 0 || a.ncols() == 0 {
            return Err(RetrievalError::Empty {
                what,
                rows: a.nrows(),
                cols: a.ncols(),
            });
        }
    }
    if queries.ncols() != gallery.ncols() {
        return Err(RetrievalError::DimensionMismatch {
            queries: queries.ncols(),
            gallery: gallery.ncols(),
        });
    }
    if gallery.nrows() > u32::MAX as usize {
        return Err(RetrievalError::InvalidParameter(format!(
            "gallery has {} rows; at most {} are supported",
            gallery.nrows(),
            u32::MAX
        )));
    }
    if exclude_self && queries.nrows() != gallery.nrows() {
        return Err(RetrievalError::LengthMismatch {
            what: "exclude_self needs queries and gallery of the same length (the same set)"
                .to_string(),
            expected: gallery.nrows(),
            got: queries.nrows(),
        });
    }
    check_finite("queries", queries)?;
    check_finite("gallery", gallery)?;
    Ok(gallery.nrows() - usize::from(exclude_self))
}

/// Check `1 <= k <= available`.
pub(crate) fn validate_k(
    k: usize,
    available: usize,
    exclude_self: bool,
) -> Result<(), RetrievalError> {
    if k == 0 || k > available {
        let why = if exclude_self {
            "the gallery size minus the query itself".to_string()
        } else {
            "the gallery size".to_string()
        };
        return Err(RetrievalError::BadK { k, available, why });
    }
    Ok(())
}

fn check_finite(what: &'static str, a: &ArrayView2<'_, f32>) -> Result<(), RetrievalError> {
    use rayon::prelude::*;
    let bad = (0..a.nrows())
        .into_par_iter()
        .find_first(|&i| a.row(i).iter().any(|v| !v.is_finite()));
    match bad {
        Some(row) => {
            let col = a.row(row).iter().position(|v| !v.is_finite()).unwrap_or(0);
            Err(RetrievalError::NonFinite { what, row, col })
        }
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_metric_and_device() {
        assert_eq!("cosine".parse::<Metric>(), Ok(Metric::Cosine));
        assert_eq!("ip".parse::<Metric>(), Ok(Metric::InnerProduct));
        assert_eq!("l2".parse::<Metric>(), Ok(Metric::L2));
        assert!("euclid".parse::<Metric>().is_err());
        assert_eq!("cuda:1".parse::<Device>(), Ok(Device::Cuda(1)));
        assert_eq!("cpu".parse::<Device>(), Ok(Device::Cpu));
        assert!("cuda:x".parse::<Device>().is_err());
    }
}
