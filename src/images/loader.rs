//! Batches of images assembled by worker threads on a bounded, ordered prefetch queue.
//!
//! An [`Epoch`] cuts the (shuffled) image order into batches; each worker takes the next
//! batch number, decodes and renders its images into one `Vec<f32>`, and files it under
//! its number; the consumer receives batches in order. Workers run at most `prefetch`
//! batches ahead of the consumer. Every random draw of image `i` in epoch `e` comes from
//! `Rng::derive(seed, e, i)` and the shuffle from `Rng::derive(seed, e, u64::MAX)`, so the
//! batches are the same for any number of workers.

use super::decode::{decode_file, Rgb8};
use super::transform::{plan, Augment, Plan, Renderer};
use super::{ImageError, IMAGENET_MEAN, IMAGENET_STD};
use crate::rng::Rng;
use crate::runtime::CancelToken;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Settings of an image loader.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoaderConfig {
    /// Output side in pixels.
    pub size: u32,
    /// Images per batch.
    pub batch_size: usize,
    /// Augmentation (`None`: resize the shorter side + centre crop).
    pub augment: Option<Augment>,
    /// Subtract the ImageNet mean and divide by its std (otherwise values in `[0, 1]`).
    pub normalize: bool,
    /// Largest `width × height` a header may claim.
    pub max_pixels: u64,
    /// Leave out images that fail (reported with the batch) instead of failing.
    pub skip_errors: bool,
    /// Drop the last, smaller batch.
    pub drop_last: bool,
    /// Reshuffle the order every epoch.
    pub shuffle: bool,
    /// Seed of shuffling and augmentation.
    pub seed: u64,
    /// Worker threads (at least 1).
    pub workers: usize,
    /// Batches the workers may run ahead of the consumer (at least 1).
    pub prefetch: usize,
}

impl LoaderConfig {
    /// `Err(ImageError::Config)` for settings out of range.
    pub fn check(&self) -> Result<(), ImageError> {
        let bad = |m: String| Err(ImageError::Config(m));
        if self.size == 0 || self.size > 16384 {
            return bad(format!(
                "image_size must lie in [1, 16384], got {}",
                self.size
            ));
        }
        if self.batch_size == 0 {
            return bad("batch_size must be at least 1".into());
        }
        if self.workers == 0 || self.prefetch == 0 {
            return bad("workers and prefetch must be at least 1".into());
        }
        if self.max_pixels == 0 {
            return bad("max_pixels must be at least 1".into());
        }
        if let Some(a) = &self.augment {
            let (s0, s1) = a.scale;
            let (r0, r1) = a.ratio;
            if !(s0 > 0.0 && s0 <= s1 && s1 <= 1.0) {
                return bad(format!(
                    "scale must satisfy 0 < low <= high <= 1, got {s0}, {s1}"
                ));
            }
            if !(r0 > 0.0 && r0 <= r1 && r1.is_finite()) {
                return bad(format!(
                    "ratio must satisfy 0 < low <= high, got {r0}, {r1}"
                ));
            }
            if !(0.0..=1.0).contains(&a.flip) {
                return bad(format!("flip must lie in [0, 1], got {}", a.flip));
            }
            if !(0.0..=1.0).contains(&a.erase) {
                return bad(format!("occlusion must lie in [0, 1], got {}", a.erase));
            }
            if !(0.0..=1.0).contains(&a.blur) {
                return bad(format!("blur must lie in [0, 1], got {}", a.blur));
            }
            let (t0, t1) = a.translate;
            if !((0.0..=1.0).contains(&t0) && (0.0..=1.0).contains(&t1)) {
                return bad(format!("translate must lie in [0, 1], got {t0}, {t1}"));
            }
            let (s0, s1) = a.affine_scale;
            if !(s0 > 0.0 && s0 <= s1 && s1.is_finite()) {
                return bad(format!(
                    "affine_scale must satisfy 0 < low <= high, got {s0}, {s1}"
                ));
            }
            let sh = a.shear;
            let ordered = |lo: f64, hi: f64| lo <= hi && lo > -90.0 && hi < 90.0;
            let (d0, d1) = a.degrees;
            if !(d0.is_finite() && d1.is_finite() && d0 <= d1) {
                return bad(format!(
                    "degrees must be finite with low <= high, got {d0}, {d1}"
                ));
            }
            if !(ordered(sh[0], sh[1]) && ordered(sh[2], sh[3])) {
                return bad(format!(
                    "shear ranges must satisfy -90 < low <= high < 90, got {sh:?}"
                ));
            }
            let (b0, b1) = a.blur_sigma;
            if !(b0 > 0.0 && b0 <= b1 && b1.is_finite()) {
                return bad(format!(
                    "blur_sigma must satisfy 0 < low <= high, got {b0}, {b1}"
                ));
            }
            if a.jitter.iter().any(|&j| !(0.0..=1.0).contains(&j)) {
                return bad(format!(
                    "jitter strengths must lie in [0, 1], got {:?}",
                    a.jitter
                ));
            }
        }
        Ok(())
    }

    fn normalization(&self) -> Option<([f32; 3], [f32; 3])> {
        self.normalize.then_some((IMAGENET_MEAN, IMAGENET_STD))
    }
}

/// The image order of `epoch`: `0..n`, shuffled when `shuffle`.
pub fn epoch_order(n: usize, shuffle: bool, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    if shuffle {
        Rng::derive(seed, epoch, u64::MAX).shuffle(&mut order);
    }
    order
}

/// The plan of image `index` (its catalogue position) in `epoch`.
pub fn image_plan(cfg: &LoaderConfig, epoch: u64, index: usize, width: u32, height: u32) -> Plan {
    let mut rng = Rng::derive(cfg.seed, epoch, index as u64);
    plan(cfg.augment.as_ref(), &mut rng, width, height, cfg.size)
}

/// One batch: pixels `(n, 3, size, size)` channel-major, the catalogue positions of its
/// images, and the images left out (`skip_errors`) with their messages.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// `n · 3 · size²` floats.
    pub pixels: Vec<f32>,
    /// Catalogue positions of the `n` images, in batch order.
    pub indices: Vec<usize>,
    /// `(catalogue position, message naming the file)` of images left out.
    pub skipped: Vec<(usize, String)>,
}

struct State {
    next_take: usize,
    delivered: usize,
    ready: BTreeMap<usize, Result<Batch, ImageError>>,
}

struct Shared {
    paths: Arc<Vec<PathBuf>>,
    cfg: LoaderConfig,
    epoch: u64,
    order: Vec<usize>,
    n_batches: usize,
    state: Mutex<State>,
    cv: Condvar,
    cancel: CancelToken,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn batch_images(&self, k: usize) -> &[usize] {
        let b = self.cfg.batch_size;
        &self.order[k * b..((k + 1) * b).min(self.order.len())]
    }
}

/// What [`Epoch::next_timeout`] found.
#[derive(Debug)]
pub enum Next {
    /// The next batch (or the error that stopped it).
    Batch(Result<Batch, ImageError>),
    /// Every batch was delivered.
    Done,
    /// Not ready within the timeout.
    Pending,
}

/// One pass over the images, with its worker threads (stopped and joined on drop).
pub struct Epoch {
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<()>>,
}

impl Epoch {
    /// Start the workers of `epoch` over `paths`.
    pub fn start(
        paths: Arc<Vec<PathBuf>>,
        cfg: &LoaderConfig,
        epoch: u64,
    ) -> Result<Epoch, ImageError> {
        cfg.check()?;
        if paths.is_empty() {
            return Err(ImageError::Config(
                "no images to load (the catalogue is empty)".into(),
            ));
        }
        let order = epoch_order(paths.len(), cfg.shuffle, cfg.seed, epoch);
        let n = order.len();
        let n_batches = if cfg.drop_last {
            n / cfg.batch_size
        } else {
            n.div_ceil(cfg.batch_size)
        };
        let shared = Arc::new(Shared {
            paths,
            cfg: cfg.clone(),
            epoch,
            order,
            n_batches,
            state: Mutex::new(State {
                next_take: 0,
                delivered: 0,
                ready: BTreeMap::new(),
            }),
            cv: Condvar::new(),
            cancel: CancelToken::new(),
        });
        let mut handles = Vec::new();
        for w in 0..cfg.workers.min(n_batches.max(1)) {
            let sh = Arc::clone(&shared);
            let spawned = std::thread::Builder::new()
                .name(format!("gm-images-{w}"))
                .spawn(move || {
                    crate::runtime::block_interrupt_signal();
                    worker(&sh)
                });
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    let mut ep = Epoch { shared, handles };
                    ep.stop();
                    return Err(ImageError::Config(format!(
                        "cannot start a worker thread: {e}"
                    )));
                }
            }
        }
        Ok(Epoch { shared, handles })
    }

    /// Number of batches of this epoch.
    pub fn len(&self) -> usize {
        self.shared.n_batches
    }

    /// Whether the epoch has no batches (fewer images than a batch with `drop_last`).
    pub fn is_empty(&self) -> bool {
        self.shared.n_batches == 0
    }

    /// The next batch in order, waiting at most `timeout`.
    pub fn next_timeout(&self, timeout: Duration) -> Next {
        let sh = &self.shared;
        let deadline = Instant::now() + timeout;
        let mut st = sh.lock();
        loop {
            if st.delivered >= sh.n_batches {
                return Next::Done;
            }
            let k = st.delivered;
            if let Some(r) = st.ready.remove(&k) {
                st.delivered += 1;
                sh.cv.notify_all();
                return Next::Batch(r);
            }
            let now = Instant::now();
            if now >= deadline {
                return Next::Pending;
            }
            st = sh
                .cv
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// The next batch in order, blocking (`None` once all were delivered).
    pub fn next_blocking(&self) -> Option<Result<Batch, ImageError>> {
        loop {
            match self.next_timeout(Duration::from_secs(3600)) {
                Next::Batch(b) => return Some(b),
                Next::Done => return None,
                Next::Pending => {}
            }
        }
    }

    /// Stop the workers (they finish the image at hand) and join them.
    pub fn stop(&mut self) {
        self.shared.cancel.cancel();
        {
            let _st = self.shared.lock();
            self.shared.cv.notify_all();
        }
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

impl Drop for Epoch {
    fn drop(&mut self) {
        self.stop();
    }
}

fn worker(sh: &Shared) {
    let mut renderer = Renderer::new(sh.cfg.size);
    loop {
        let k = {
            let mut st = sh.lock();
            loop {
                if sh.cancel.is_cancelled() || st.next_take >= sh.n_batches {
                    return;
                }
                if st.next_take < st.delivered + sh.cfg.prefetch {
                    break;
                }
                st = sh.cv.wait(st).unwrap_or_else(|p| p.into_inner());
            }
            st.next_take += 1;
            st.next_take - 1
        };
        let result = catch_unwind(AssertUnwindSafe(|| build_batch(sh, k, &mut renderer)))
            .unwrap_or_else(|_| {
                Err(ImageError::Config(
                    "internal error (please report): an image worker panicked".into(),
                ))
            });
        let mut st = sh.lock();
        st.ready.insert(k, result);
        sh.cv.notify_all();
    }
}

/// Decode and render image `index` of `epoch` into `out` (`3 · size²` floats).
pub fn load_image(
    paths: &[PathBuf],
    cfg: &LoaderConfig,
    epoch: u64,
    index: usize,
    renderer: &mut Renderer,
    out: &mut [f32],
) -> Result<(), ImageError> {
    let path = &paths[index];
    let img: Rgb8 = decode_file(path, cfg.max_pixels)?;
    let p = image_plan(cfg, epoch, index, img.width, img.height);
    renderer
        .render(&img, &p, cfg.normalization().as_ref(), out)
        .map_err(|m| ImageError::file(path, m))
}

fn build_batch(sh: &Shared, k: usize, renderer: &mut Renderer) -> Result<Batch, ImageError> {
    let images = sh.batch_images(k);
    let per = 3 * (sh.cfg.size as usize).pow(2);
    let mut pixels = vec![0.0f32; images.len() * per];
    let mut indices = Vec::with_capacity(images.len());
    let mut skipped = Vec::new();
    for &i in images {
        if sh.cancel.is_cancelled() {
            return Err(ImageError::Cancelled);
        }
        let j = indices.len();
        let slot = &mut pixels[j * per..(j + 1) * per];
        match load_image(&sh.paths, &sh.cfg, sh.epoch, i, renderer, slot) {
            Ok(()) => indices.push(i),
            Err(e) if sh.cfg.skip_errors => skipped.push((i, e.to_string())),
            Err(e) => return Err(e),
        }
    }
    pixels.truncate(indices.len() * per);
    Ok(Batch {
        pixels,
        indices,
        skipped,
    })
}

/// Seconds spent per stage over `paths` on the calling thread: `decode`, `resample`
/// (`fast_image_resize`), `finish` (flip, jitter, normalise), and for comparison
/// `image_resize` (the `image` crate's own bilinear `resize` of the same box).
pub fn profile_stages(
    paths: &[PathBuf],
    cfg: &LoaderConfig,
) -> Result<Vec<(&'static str, f64)>, ImageError> {
    cfg.check()?;
    let mut renderer = Renderer::new(cfg.size);
    let mut out = vec![0.0f32; 3 * (cfg.size as usize).pow(2)];
    let (mut t_dec, mut t_res, mut t_fin, mut t_img) = (0.0, 0.0, 0.0, 0.0);
    let norm = cfg.normalization();
    for (i, path) in paths.iter().enumerate() {
        let t = Instant::now();
        let img = decode_file(path, cfg.max_pixels)?;
        t_dec += t.elapsed().as_secs_f64();
        let p = image_plan(cfg, 0, i, img.width, img.height);
        let t = Instant::now();
        renderer
            .resample(&img, &p)
            .map_err(|m| ImageError::file(path, m))?;
        t_res += t.elapsed().as_secs_f64();
        let t = Instant::now();
        renderer.finish(&p, norm.as_ref(), &mut out);
        t_fin += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let buf = image::RgbImage::from_raw(img.width, img.height, img.data.clone())
            .ok_or_else(|| ImageError::file(path, "internal error: buffer size"))?;
        let [l, tp, w, h] = p.crop.map(|v| v as u32);
        let view = image::imageops::crop_imm(&buf, l, tp, w.max(1), h.max(1)).to_image();
        let r = image::imageops::resize(
            &view,
            cfg.size,
            cfg.size,
            image::imageops::FilterType::Triangle,
        );
        std::hint::black_box(r);
        t_img += t.elapsed().as_secs_f64();
    }
    Ok(vec![
        ("decode", t_dec),
        ("resample", t_res),
        ("finish", t_fin),
        ("image_resize", t_img),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_a_seeded_permutation() {
        let a = epoch_order(100, true, 5, 0);
        let mut s = a.clone();
        s.sort_unstable();
        assert_eq!(s, (0..100).collect::<Vec<_>>());
        assert_eq!(a, epoch_order(100, true, 5, 0));
        assert_ne!(a, epoch_order(100, true, 5, 1));
        assert_eq!(epoch_order(5, false, 5, 3), vec![0, 1, 2, 3, 4]);
    }
}
