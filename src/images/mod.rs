//! The streaming image pipeline: photos on disk → normalised `f32` batches.
//!
//! - [`decode`]: one file → upright RGB8 pixels (JPEG, PNG, WebP through the `image`
//!   crate, zune-jpeg for JPEG), with a decompression-bomb guard read from the header.
//! - [`transform`]: the per-image plan (torchvision's random resized crop, horizontal
//!   flip, colour jitter; or resize + centre crop), SIMD resampling with
//!   `fast_image_resize`, jitter and ImageNet normalisation into a `(3, h, w)` slot.
//! - [`loader`]: batches assembled by worker threads on a bounded, ordered prefetch
//!   queue; every random draw comes from [`crate::rng::Rng::derive`]`(seed, epoch,
//!   image)`, so batches do not depend on the number of threads.
//!
//! Pure Rust (no Python, no libtorch): the bindings turn the `Vec<f32>` batches into
//! torch tensors without a copy.

pub mod decode;
pub mod loader;
pub mod transform;

use std::path::{Path, PathBuf};

/// Errors of the image pipeline.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ImageError {
    /// A file is missing, unreadable, truncated, undecodable or too large (names it).
    #[error("{}: {message}", path.display())]
    File {
        /// The image file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A bad setting (batch size 0, an empty catalogue, a scale range out of order, ...).
    #[error("{0}")]
    Config(String),
    /// The work was cancelled (Ctrl-C or the consumer went away).
    #[error("interrupted")]
    Cancelled,
}

impl ImageError {
    pub(crate) fn file(path: &Path, message: impl Into<String>) -> Self {
        ImageError::File {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

/// ImageNet channel means (RGB) of pixel values in `[0, 1]`.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (RGB) of pixel values in `[0, 1]`.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];
