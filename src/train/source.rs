//! Where the training loop reads its images: an [`ImageSource`] gathers the images of
//! one step by index, already distorted, as planar `f32` values in `[0, 1]`.
//!
//! - [`ArraySource`]: images in memory (`f32` in `[0, 1]`, or `u8` scaled by `1/255`
//!   per gathered image, so a `u8` array is never converted whole), distorted with the
//!   GSN's own float augmentations ([`crate::data::augment`]).
//! - [`CatalogueSource`]: image files decoded and rendered by the image pipeline
//!   ([`crate::images`]) for every step: torchvision's random resized crop, flip and
//!   colour jitter when augmenting, else resize + centre crop; the cells of a step are
//!   rendered in parallel on the source's own thread pool (the batch-preparation thread
//!   cannot use gridmatch's pool: the training loop holds one of its threads), each
//!   with the generator of `(seed, step, cell)`, so the result does not depend on the
//!   number of threads. Only the step's images are ever decoded: memory does not grow
//!   with the catalogue.

use super::GsnError;
use crate::data::augment::{augment, ImageShape};
use crate::images::decode::decode_file;
use crate::images::transform::{plan, Augment, Renderer};
use crate::images::ImageError;
use crate::rng::Rng;
use rayon::prelude::*;
use std::path::PathBuf;
use std::sync::Arc;

/// Images the training loop reads by index.
pub trait ImageSource: Sync {
    /// Number of images.
    fn len(&self) -> usize;
    /// Whether there are no images.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Shape of one gathered image.
    fn shape(&self) -> ImageShape;
    /// Images `index` (in this order) for training step `stream` (seeded by `seed`),
    /// distorted at `strength` (`0`: none): `index.len() · shape().len()` floats.
    fn gather(
        &self,
        index: &[usize],
        strength: f64,
        seed: u64,
        stream: u64,
    ) -> Result<Vec<f32>, GsnError>;
}

/// Pixels of images held in memory, planar `(n, c, h, w)`.
#[derive(Debug, Clone, Copy)]
pub enum Pixels<'a> {
    /// Values in `[0, 1]`.
    F32(&'a [f32]),
    /// Values `0..=255`, read as `v / 255`.
    U8(&'a [u8]),
}

/// Images in memory.
#[derive(Debug, Clone, Copy)]
pub struct ArraySource<'a> {
    /// The pixels.
    pub pixels: Pixels<'a>,
    /// Shape of one image.
    pub shape: ImageShape,
}

impl<'a> ArraySource<'a> {
    /// A source over `f32` images in `[0, 1]`.
    pub fn f32(x: &'a [f32], shape: ImageShape) -> Self {
        ArraySource {
            pixels: Pixels::F32(x),
            shape,
        }
    }
}

impl ImageSource for ArraySource<'_> {
    fn len(&self) -> usize {
        let total = match self.pixels {
            Pixels::F32(x) => x.len(),
            Pixels::U8(x) => x.len(),
        };
        total.checked_div(self.shape.len()).unwrap_or(0)
    }

    fn shape(&self) -> ImageShape {
        self.shape
    }

    fn gather(
        &self,
        index: &[usize],
        strength: f64,
        seed: u64,
        stream: u64,
    ) -> Result<Vec<f32>, GsnError> {
        Ok(match self.pixels {
            Pixels::F32(x) => augment_seq(x, self.shape, index, strength, seed, stream),
            Pixels::U8(x) => {
                let len = self.shape.len();
                let mut out = vec![0.0f32; index.len() * len];
                let mut img = vec![0.0f32; len];
                for (i, (dst, &j)) in out.chunks_mut(len.max(1)).zip(index).enumerate() {
                    let Some(src) = x.get(j * len..(j + 1) * len) else {
                        continue;
                    };
                    // the same value numpy gives for `x.astype(float32) / 255.0`
                    for (d, &v) in img.iter_mut().zip(src) {
                        *d = f32::from(v) / 255.0;
                    }
                    let mut rng = Rng::derive(seed, stream, i as u64);
                    augment(&img, dst, self.shape, strength, &mut rng);
                }
                out
            }
        })
    }
}

/// Distort images `index` of `src` sequentially (one generator per output slot, as in
/// [`crate::data::augment::augment_batch`], so both give the same result).
pub(super) fn augment_seq(
    src: &[f32],
    shape: ImageShape,
    index: &[usize],
    strength: f64,
    seed: u64,
    stream: u64,
) -> Vec<f32> {
    let len = shape.len();
    let mut out = vec![0.0f32; index.len() * len];
    if len == 0 {
        return out;
    }
    for (i, (dst, &j)) in out.chunks_mut(len).zip(index).enumerate() {
        let mut rng = Rng::derive(seed, stream, i as u64);
        match src.get(j * len..(j + 1) * len) {
            Some(img) => augment(img, dst, shape, strength, &mut rng),
            None => dst.fill(0.0),
        }
    }
    out
}

/// Image files rendered by the image pipeline at every step (RGB, `size × size`).
#[derive(Debug, Clone)]
pub struct CatalogueSource {
    /// The files.
    pub paths: Vec<PathBuf>,
    /// Output side in pixels.
    pub size: u32,
    /// The pipeline's augmentation, used when the step's strength is above 0.
    pub augment: Augment,
    /// Largest `width × height` a header may claim.
    pub max_pixels: u64,
    pool: Arc<rayon::ThreadPool>,
}

impl CatalogueSource {
    /// A source over `paths` rendering on `threads` threads of its own (at least 1).
    pub fn new(
        paths: Vec<PathBuf>,
        size: u32,
        augment: Augment,
        max_pixels: u64,
        threads: usize,
    ) -> Result<Self, GsnError> {
        let pool = crate::runtime::pool_builder(threads.max(1))
            .thread_name(|i| format!("gm-train-images-{i}"))
            .build()
            .map_err(|e| GsnError::Config(format!("cannot start image threads: {e}")))?;
        Ok(CatalogueSource {
            paths,
            size,
            augment,
            max_pixels,
            pool: Arc::new(pool),
        })
    }
}

/// Stream of the catalogue's generators (apart from the array augmentations' streams).
const CATALOGUE_STREAM: u64 = 0xCA7A_0000_0000_0000;

impl ImageSource for CatalogueSource {
    fn len(&self) -> usize {
        self.paths.len()
    }

    fn shape(&self) -> ImageShape {
        ImageShape {
            c: 3,
            h: self.size as usize,
            w: self.size as usize,
        }
    }

    fn gather(
        &self,
        index: &[usize],
        strength: f64,
        seed: u64,
        stream: u64,
    ) -> Result<Vec<f32>, GsnError> {
        let len = self.shape().len();
        let mut out = vec![0.0f32; index.len() * len];
        let augment = (strength > 0.0).then_some(&self.augment);
        self.pool.install(|| {
            out.par_chunks_mut(len.max(1))
                .zip(index.par_iter())
                .enumerate()
                .try_for_each_init(
                    || Renderer::new(self.size),
                    |renderer, (cell, (dst, &j))| -> Result<(), GsnError> {
                        let path = self.paths.get(j).ok_or_else(|| {
                            GsnError::Shape(format!("image index {j} out of range"))
                        })?;
                        let img = decode_file(path, self.max_pixels)?;
                        let mut rng = Rng::derive(seed, CATALOGUE_STREAM ^ stream, cell as u64);
                        let p = plan(augment, &mut rng, img.width, img.height, self.size);
                        renderer
                            .render(&img, &p, None, dst)
                            .map_err(|m| GsnError::Image(ImageError::file(path, m)))
                    },
                )
        })?;
        Ok(out)
    }
}
