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
//!   with the catalogue. With [`CatalogueSource::skip_errors`], a file that cannot be
//!   read is left out for the rest of the run: its cell takes the next readable image
//!   of the same id (in catalogue order, wrapping around), rendered with the cell's own
//!   generator; which image that is depends only on which files are readable, so the
//!   batches stay the same for any number of threads.

use super::GsnError;
use crate::data::augment::{augment_batch, ImageShape};
use crate::images::decode::decode_file;
use crate::images::transform::{plan, Augment, Renderer};
use crate::images::ImageError;
use crate::rng::Rng;
use rayon::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

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
    /// Images left out so far as `(index, message naming the file)`, in index order,
    /// when the source skips unreadable images (`None`: it does not).
    fn skipped(&self) -> Option<Vec<(usize, String)>> {
        None
    }
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
            Pixels::F32(x) => augment_batch(x, self.shape, index, strength, seed, stream, false),
            Pixels::U8(x) => augment_batch(x, self.shape, index, strength, seed, stream, false),
        })
    }
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
    skip: Option<Arc<Skip>>,
}

/// What a source that skips unreadable images knows.
#[derive(Debug)]
struct Skip {
    /// The ids of the images.
    ids: Vec<i64>,
    /// The images of each id, in catalogue order.
    members: HashMap<i64, Vec<usize>>,
    /// Images found unreadable, with their messages.
    bad: Mutex<BTreeMap<usize, String>>,
}

impl Skip {
    fn bad(&self) -> std::sync::MutexGuard<'_, BTreeMap<usize, String>> {
        self.bad.lock().unwrap_or_else(|p| p.into_inner())
    }
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
            skip: None,
        })
    }

    /// This source, leaving out images that cannot be read (missing, truncated,
    /// undecodable, too large) instead of failing: a cell drawn on one takes the next
    /// readable image of the same id in `ids` (one id per path); when every image of an
    /// id is unreadable, [`ImageSource::gather`] fails naming them.
    pub fn skip_errors(mut self, ids: &[i64]) -> Result<Self, GsnError> {
        if ids.len() != self.paths.len() {
            return Err(GsnError::Shape(format!(
                "{} images but {} ids",
                self.paths.len(),
                ids.len()
            )));
        }
        let mut members: HashMap<i64, Vec<usize>> = HashMap::new();
        for (i, &id) in ids.iter().enumerate() {
            members.entry(id).or_default().push(i);
        }
        self.skip = Some(Arc::new(Skip {
            ids: ids.to_vec(),
            members,
            bad: Mutex::new(BTreeMap::new()),
        }));
        Ok(self)
    }

    /// Decode and render image `j` into `dst` with the generator of its cell.
    fn render_one(
        &self,
        renderer: &mut Renderer,
        j: usize,
        augment: Option<&Augment>,
        rng: &mut Rng,
        dst: &mut [f32],
    ) -> Result<(), ImageError> {
        let path = self
            .paths
            .get(j)
            .ok_or_else(|| ImageError::Config(format!("image index {j} out of range")))?;
        let img = decode_file(path, self.max_pixels)?;
        let p = plan(augment, rng, img.width, img.height, self.size);
        renderer
            .render(&img, &p, None, dst)
            .map_err(|m| ImageError::file(path, m))
    }

    /// Image `j` into `dst`, or (skipping) the next readable image of its id.
    fn render_cell(
        &self,
        renderer: &mut Renderer,
        j: usize,
        augment: Option<&Augment>,
        rng: Rng,
        dst: &mut [f32],
    ) -> Result<(), GsnError> {
        let Some(skip) = &self.skip else {
            let mut rng = rng;
            return Ok(self.render_one(renderer, j, augment, &mut rng, dst)?);
        };
        let id = *skip
            .ids
            .get(j)
            .ok_or_else(|| GsnError::Shape(format!("image index {j} out of range")))?;
        let group = skip.members.get(&id).map(Vec::as_slice).unwrap_or(&[]);
        let start = group.iter().position(|&i| i == j).unwrap_or(0);
        for &k in group[start..].iter().chain(&group[..start]) {
            if skip.bad().contains_key(&k) {
                continue;
            }
            let mut cell_rng = rng.clone();
            match self.render_one(renderer, k, augment, &mut cell_rng, dst) {
                Ok(()) => return Ok(()),
                Err(e @ ImageError::File { .. }) => {
                    skip.bad().insert(k, e.to_string());
                }
                Err(e) => return Err(e.into()),
            }
        }
        let bad = skip.bad();
        let first = group.first().copied().unwrap_or(j);
        Err(GsnError::Image(ImageError::file(
            self.paths
                .get(first)
                .map_or(std::path::Path::new(""), PathBuf::as_path),
            format!(
                "every image of this file's id ({} files) is unreadable, so on_error=\"skip\" \
                 has no image to put in its place (this file: {})",
                group.len(),
                bad.get(&first).map_or("", String::as_str)
            ),
        )))
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
                        if j >= self.paths.len() {
                            return Err(GsnError::Shape(format!("image index {j} out of range")));
                        }
                        let rng = Rng::derive(seed, CATALOGUE_STREAM ^ stream, cell as u64);
                        self.render_cell(renderer, j, augment, rng, dst)
                    },
                )
        })?;
        Ok(out)
    }

    fn skipped(&self) -> Option<Vec<(usize, String)>> {
        let skip = self.skip.as_ref()?;
        let bad = skip.bad();
        Some(bad.iter().map(|(&k, m)| (k, m.clone())).collect())
    }
}
