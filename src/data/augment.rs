//! Seeded image distortions: the views of a product.
//!
//! One [`augment`] call applies, each with its own probability and with magnitudes
//! scaled by `strength`: a random affine warp (rotation, scale, shear, translation), a
//! random crop (zoom into a window), an elastic deformation (a smooth random
//! displacement field), an occlusion rectangle, a Gaussian blur, additive noise and a
//! contrast / brightness change. Images are planar `f32` `(channels, height, width)`
//! with values in `[0, 1]`; the warp is one bilinear resampling pass. The result
//! depends only on the image and the generator, so batches distorted in parallel are
//! reproducible for a seed whatever the thread count.

use crate::rng::Rng;
use rayon::prelude::*;

/// Shape of planar images: channels, height, width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageShape {
    /// Channels.
    pub c: usize,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
}

impl ImageShape {
    /// Number of values of one image.
    pub fn len(&self) -> usize {
        self.c * self.h * self.w
    }

    /// Whether the image has no pixels.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Side of the coarse grid of the elastic displacement field.
const ELASTIC_GRID: usize = 4;

/// Distort one image `src` into `dst` (both of `shape`) with magnitudes scaled by
/// `strength` (0: a copy; 1: the default training distortions).
pub fn augment(src: &[f32], dst: &mut [f32], shape: ImageShape, strength: f64, rng: &mut Rng) {
    let ImageShape { c, h, w } = shape;
    if strength <= 0.0 || src.len() != shape.len() || dst.len() != shape.len() {
        let n = dst.len().min(src.len());
        dst[..n].copy_from_slice(&src[..n]);
        return;
    }
    let s = strength;
    let (hf, wf) = (h as f64, w as f64);
    // Affine part (maps output coordinates, centred, to source coordinates).
    let (mut a, mut b, mut cc, mut d) = (1.0, 0.0, 0.0, 1.0);
    let (mut tx, mut ty) = (0.0, 0.0);
    if rng.chance(0.8) {
        let angle = rng.range(-15.0, 15.0).to_radians() * s;
        let scale = 1.0 + rng.range(-0.1, 0.1) * s;
        let shear = rng.range(-0.15, 0.15) * s;
        let (sn, cs) = angle.sin_cos();
        // inverse map: rotate by -angle, unshear, unscale
        a = cs / scale;
        b = (sn + shear * cs) / scale;
        cc = -sn / scale;
        d = (cs - shear * sn) / scale;
        tx = rng.range(-0.08, 0.08) * wf * s;
        ty = rng.range(-0.08, 0.08) * hf * s;
    }
    // Crop: zoom into a window of relative size z.
    let mut zoom = 1.0;
    let (mut cx, mut cy) = (0.0, 0.0);
    if rng.chance(0.5) {
        zoom = 1.0 - rng.range(0.0, 0.25) * s.min(2.0) * 0.5;
        cx = rng.range(-1.0, 1.0) * (1.0 - zoom) * wf * 0.5;
        cy = rng.range(-1.0, 1.0) * (1.0 - zoom) * hf * 0.5;
    }
    // Elastic: coarse random displacements, bilinearly interpolated.
    let mut field = [[0.0f64; 2]; ELASTIC_GRID * ELASTIC_GRID];
    let elastic = rng.chance(0.5);
    if elastic {
        let alpha = 1.5 * s * hf / 28.0;
        for f in field.iter_mut() {
            f[0] = rng.normal() * alpha;
            f[1] = rng.normal() * alpha;
        }
    }
    let (ox, oy) = ((wf - 1.0) / 2.0, (hf - 1.0) / 2.0);
    let plane = h * w;
    for y in 0..h {
        for x in 0..w {
            let (mut u, mut v) = (x as f64 - ox, y as f64 - oy);
            if elastic {
                let gx = x as f64 / (wf - 1.0).max(1.0) * (ELASTIC_GRID - 1) as f64;
                let gy = y as f64 / (hf - 1.0).max(1.0) * (ELASTIC_GRID - 1) as f64;
                let (x0, y0) = (
                    (gx.floor() as usize).min(ELASTIC_GRID - 2),
                    (gy.floor() as usize).min(ELASTIC_GRID - 2),
                );
                let (fx, fy) = (gx - x0 as f64, gy - y0 as f64);
                let at = |k: usize| {
                    field[y0 * ELASTIC_GRID + x0][k] * (1.0 - fx) * (1.0 - fy)
                        + field[y0 * ELASTIC_GRID + x0 + 1][k] * fx * (1.0 - fy)
                        + field[(y0 + 1) * ELASTIC_GRID + x0][k] * (1.0 - fx) * fy
                        + field[(y0 + 1) * ELASTIC_GRID + x0 + 1][k] * fx * fy
                };
                u += at(0);
                v += at(1);
            }
            let (u, v) = (u * zoom + cx, v * zoom + cy);
            let sx = a * u + b * v + ox - tx;
            let sy = cc * u + d * v + oy - ty;
            let (x0, y0) = (sx.floor(), sy.floor());
            let (fx, fy) = ((sx - x0) as f32, (sy - y0) as f32);
            let (x0, y0) = (x0 as isize, y0 as isize);
            for ch in 0..c {
                let img = &src[ch * plane..(ch + 1) * plane];
                let at = |yy: isize, xx: isize| -> f32 {
                    if yy < 0 || xx < 0 || yy >= h as isize || xx >= w as isize {
                        0.0
                    } else {
                        img[yy as usize * w + xx as usize]
                    }
                };
                let val = at(y0, x0) * (1.0 - fx) * (1.0 - fy)
                    + at(y0, x0 + 1) * fx * (1.0 - fy)
                    + at(y0 + 1, x0) * (1.0 - fx) * fy
                    + at(y0 + 1, x0 + 1) * fx * fy;
                dst[ch * plane + y * w + x] = val;
            }
        }
    }
    // Blur: separable 3-tap Gaussian.
    if rng.chance(0.3) {
        let sigma = rng.range(0.4, 1.0) * s.min(1.5);
        let k1 = (-1.0 / (2.0 * sigma * sigma)).exp();
        let (wk, wc) = (
            (k1 / (1.0 + 2.0 * k1)) as f32,
            (1.0 / (1.0 + 2.0 * k1)) as f32,
        );
        let mut tmp = vec![0.0f32; plane];
        for ch in 0..c {
            let img = &mut dst[ch * plane..(ch + 1) * plane];
            for y in 0..h {
                for x in 0..w {
                    let l = if x > 0 { img[y * w + x - 1] } else { 0.0 };
                    let r = if x + 1 < w { img[y * w + x + 1] } else { 0.0 };
                    tmp[y * w + x] = wc * img[y * w + x] + wk * (l + r);
                }
            }
            for y in 0..h {
                for x in 0..w {
                    let u = if y > 0 { tmp[(y - 1) * w + x] } else { 0.0 };
                    let dn = if y + 1 < h { tmp[(y + 1) * w + x] } else { 0.0 };
                    img[y * w + x] = wc * tmp[y * w + x] + wk * (u + dn);
                }
            }
        }
    }
    // Occlusion: a rectangle filled with a random grey level.
    if rng.chance(0.4) {
        let frac = (0.35 * s).min(0.6);
        let rh = ((rng.range(0.3, 1.0) * frac * hf) as usize).max(1);
        let rw = ((rng.range(0.3, 1.0) * frac * wf) as usize).max(1);
        let y0 = rng.below(h.saturating_sub(rh) + 1);
        let x0 = rng.below(w.saturating_sub(rw) + 1);
        let fill = rng.uniform() as f32;
        for ch in 0..c {
            for y in y0..(y0 + rh).min(h) {
                for x in x0..(x0 + rw).min(w) {
                    dst[ch * plane + y * w + x] = fill;
                }
            }
        }
    }
    // Contrast and brightness.
    if rng.chance(0.5) {
        let gain = (1.0 + rng.range(-0.4, 0.4) * s) as f32;
        let bias = (rng.range(-0.1, 0.1) * s) as f32;
        let mean = dst.iter().sum::<f32>() / dst.len().max(1) as f32;
        for v in dst.iter_mut() {
            *v = (*v - mean) * gain + mean + bias;
        }
    }
    // Noise.
    if rng.chance(0.5) {
        let sigma = rng.range(0.0, 0.06) * s;
        for v in dst.iter_mut() {
            *v += (rng.normal() * sigma) as f32;
        }
    }
    for v in dst.iter_mut() {
        *v = v.clamp(0.0, 1.0);
    }
}

/// The pixel types `augment_batch` reads from planar images: `[0, 1]` floats, or bytes
/// `0..=255` read as `v / 255` (the value numpy gives for `x.astype(float32) / 255.0`).
pub trait Pixel: Copy + Sync {
    /// Image `j` of `src` (`len` values in `[0, 1]`), borrowed or converted into
    /// `scratch`; `None` past the end.
    fn image<'a>(
        src: &'a [Self],
        j: usize,
        len: usize,
        scratch: &'a mut Vec<f32>,
    ) -> Option<&'a [f32]>;
}

impl Pixel for f32 {
    fn image<'a>(src: &'a [f32], j: usize, len: usize, _: &'a mut Vec<f32>) -> Option<&'a [f32]> {
        src.get(j * len..(j + 1) * len)
    }
}

impl Pixel for u8 {
    fn image<'a>(
        src: &'a [u8],
        j: usize,
        len: usize,
        scratch: &'a mut Vec<f32>,
    ) -> Option<&'a [f32]> {
        let img = src.get(j * len..(j + 1) * len)?;
        scratch.clear();
        scratch.extend(img.iter().map(|&v| f32::from(v) / 255.0));
        Some(scratch)
    }
}

/// Distort images: output `i` is `src` image `index[i]` distorted with the generator
/// `Rng::derive(seed, stream, i)` (an index past `src` gives zeros), on rayon's pool
/// when `parallel` (the result does not depend on it). Returns the `(index.len(),
/// shape)` values.
pub fn augment_batch<T: Pixel>(
    src: &[T],
    shape: ImageShape,
    index: &[usize],
    strength: f64,
    seed: u64,
    stream: u64,
    parallel: bool,
) -> Vec<f32> {
    let len = shape.len();
    let mut out = vec![0.0f32; index.len() * len];
    if len == 0 {
        return out;
    }
    let slot = |(i, (dst, &j)): (usize, (&mut [f32], &usize))| {
        let mut scratch = Vec::new();
        match T::image(src, j, len, &mut scratch) {
            Some(img) => {
                let mut rng = Rng::derive(seed, stream, i as u64);
                augment(img, dst, shape, strength, &mut rng);
            }
            None => dst.fill(0.0),
        }
    };
    if parallel {
        out.par_chunks_mut(len)
            .zip(index.par_iter())
            .enumerate()
            .for_each(slot);
    } else {
        out.chunks_mut(len).zip(index).enumerate().for_each(slot);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob() -> Vec<f32> {
        let mut img = vec![0.0f32; 28 * 28];
        for y in 8..20 {
            for x in 10..18 {
                img[y * 28 + x] = 0.8;
            }
        }
        img
    }

    #[test]
    fn zero_strength_copies_and_seed_reproduces() {
        let img = blob();
        let shape = ImageShape { c: 1, h: 28, w: 28 };
        let mut out = vec![0.0; 784];
        augment(&img, &mut out, shape, 0.0, &mut Rng::new(1));
        assert_eq!(out, img);
        let a = augment_batch(&img, shape, &[0, 0, 0], 1.0, 5, 0, true);
        let b = augment_batch(&img, shape, &[0, 0, 0], 1.0, 5, 0, true);
        assert_eq!(a, b);
        assert_ne!(a[..784], a[784..1568]);
        assert!(a.iter().all(|v| (0.0..=1.0).contains(v)));
        // still mostly the same picture
        let diff: f32 = a[..784]
            .iter()
            .zip(&img)
            .map(|(x, y)| (x - y).abs())
            .sum::<f32>()
            / 784.0;
        assert!(diff < 0.3, "{diff}");
    }
}
