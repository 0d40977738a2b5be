//! Per-image geometry and colour: the plan (where to crop, whether to flip, how to
//! jitter) and its execution into a normalised `(3, size, size)` `f32` slot.
//!
//! With augmentation the plan is torchvision's `RandomResizedCrop` (area fraction in
//! `scale`, aspect ratio log-uniform in `ratio`, 10 tries then the centre fallback),
//! `RandomHorizontalFlip` and `ColorJitter` (brightness, contrast, saturation factors
//! uniform in `[max(0, 1 − s), 1 + s]`, applied in a random order, on `[0, 1]` floats
//! with torchvision's float formulas and grayscale weights 0.2989 / 0.587 / 0.114).
//! Without it, the shorter side is resized to `size` (the longer to
//! `⌊size · long / short⌋`) and the centre `size × size` is cut (top / left offsets
//! rounded half to even, as torchvision's `center_crop`) — done as one resampling of the
//! matching source box, which is the same arithmetic as resizing then cropping.
//!
//! Resampling is `fast_image_resize`'s bilinear convolution (Pillow's antialiased
//! bilinear filter, AVX2 / SSE4.1 / NEON).

use super::decode::Rgb8;
use crate::rng::Rng;
use fast_image_resize::images::{CroppedImage, Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use serde::{Deserialize, Serialize};

/// Augmentation strengths (torchvision's standard recipe by default).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Augment {
    /// Range of the crop's area as a fraction of the image's.
    pub scale: (f64, f64),
    /// Range of the crop's aspect ratio (width / height), drawn log-uniformly.
    pub ratio: (f64, f64),
    /// Probability of a horizontal flip.
    pub flip: f64,
    /// Colour jitter strengths: brightness, contrast, saturation.
    pub jitter: [f32; 3],
    /// Probability of an occlusion: torchvision's `RandomErasing` (area 2–33 %, aspect
    /// 0.3–3.3, value 0, after normalisation); 0 (the default) draws nothing.
    #[serde(default)]
    pub erase: f64,
}

impl Default for Augment {
    fn default() -> Self {
        Augment {
            scale: (0.08, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
            flip: 0.5,
            jitter: [0.4, 0.4, 0.4],
            erase: 0.0,
        }
    }
}

/// What to do with one image.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Plan {
    /// Source box `(left, top, width, height)` in source pixels.
    pub crop: [f64; 4],
    /// `true`: crop the (integer) box first, then resample it alone (random resized
    /// crop); `false`: resample the box out of the whole image (resize + centre crop).
    pub exclusive: bool,
    /// Mirror left–right.
    pub flip: bool,
    /// Brightness, contrast and saturation factors (1 = unchanged).
    pub factors: [f32; 3],
    /// The order the three jitter operations are applied in (0 brightness, 1 contrast,
    /// 2 saturation).
    pub order: [u8; 3],
    /// Occluded rectangle of the output `(left, top, width, height)`, set to 0.
    pub erase: Option<[u32; 4]>,
}

/// Python's `round` (half to even) as an integer.
fn round_even(x: f64) -> i64 {
    x.round_ties_even() as i64
}

/// torchvision's `RandomResizedCrop.get_params`: `(left, top, width, height)`.
pub fn random_resized_crop(
    rng: &mut Rng,
    width: u32,
    height: u32,
    scale: (f64, f64),
    ratio: (f64, f64),
) -> [u32; 4] {
    let (wf, hf) = (f64::from(width), f64::from(height));
    let area = wf * hf;
    let (lr0, lr1) = (ratio.0.ln(), ratio.1.ln());
    for _ in 0..10 {
        let target = area * rng.range(scale.0, scale.1);
        let aspect = rng.range(lr0, lr1).exp();
        let w = round_even((target * aspect).sqrt());
        let h = round_even((target / aspect).sqrt());
        if 0 < w && w <= i64::from(width) && 0 < h && h <= i64::from(height) {
            let top = rng.below((i64::from(height) - h + 1) as usize) as u32;
            let left = rng.below((i64::from(width) - w + 1) as usize) as u32;
            return [left, top, w as u32, h as u32];
        }
    }
    let in_ratio = wf / hf;
    let (lo, hi) = (ratio.0.min(ratio.1), ratio.0.max(ratio.1));
    let (w, h) = if in_ratio < lo {
        (width, (round_even(wf / lo).max(1) as u32).min(height))
    } else if in_ratio > hi {
        ((round_even(hf * hi).max(1) as u32).min(width), height)
    } else {
        (width, height)
    };
    [(width - w) / 2, (height - h) / 2, w, h]
}

/// torchvision's `RandomErasing.get_params` on a `size × size` image (scale (0.02, 0.33),
/// ratio (0.3, 3.3)): `(left, top, width, height)`, or `None` after 10 failed tries.
pub fn random_erasing(rng: &mut Rng, size: u32) -> Option<[u32; 4]> {
    let s = i64::from(size);
    let area = (s * s) as f64;
    let (lr0, lr1) = (0.3f64.ln(), 3.3f64.ln());
    for _ in 0..10 {
        let target = area * rng.range(0.02, 0.33);
        let aspect = rng.range(lr0, lr1).exp();
        let h = round_even((target * aspect).sqrt());
        let w = round_even((target / aspect).sqrt());
        if !(h < s && w < s) {
            continue;
        }
        let top = rng.below((s - h + 1) as usize) as u32;
        let left = rng.below((s - w + 1) as usize) as u32;
        return Some([left, top, w as u32, h as u32]);
    }
    None
}

/// The source box of "resize the shorter side to `size`, then centre-crop `size`".
pub fn centre_box(width: u32, height: u32, size: u32) -> [f64; 4] {
    let (wf, hf, s) = (f64::from(width), f64::from(height), f64::from(size));
    let (nw, nh) = if width <= height {
        (s, (s * hf / wf).floor())
    } else {
        ((s * wf / hf).floor(), s)
    };
    let left = round_even((nw - s) / 2.0) as f64;
    let top = round_even((nh - s) / 2.0) as f64;
    let (sx, sy) = (wf / nw, hf / nh);
    [left * sx, top * sy, s * sx, s * sy]
}

/// The plan for an image of `width × height` (`augment = None`: resize + centre crop).
pub fn plan(augment: Option<&Augment>, rng: &mut Rng, width: u32, height: u32, size: u32) -> Plan {
    match augment {
        None => Plan {
            crop: centre_box(width, height, size),
            exclusive: false,
            flip: false,
            factors: [1.0; 3],
            order: [0, 1, 2],
            erase: None,
        },
        Some(a) => {
            let c = random_resized_crop(rng, width, height, a.scale, a.ratio);
            let flip = rng.chance(a.flip);
            let mut factors = [1.0f32; 3];
            for (f, &s) in factors.iter_mut().zip(&a.jitter) {
                let s = f64::from(s);
                *f = rng.range((1.0 - s).max(0.0), 1.0 + s) as f32;
            }
            let mut order = [0u8, 1, 2];
            rng.shuffle(&mut order);
            let erase = (a.erase > 0.0 && rng.chance(a.erase))
                .then(|| random_erasing(rng, size))
                .flatten();
            Plan {
                crop: c.map(f64::from),
                exclusive: true,
                flip,
                factors,
                order,
                erase,
            }
        }
    }
}

/// Grayscale weights of torchvision's `rgb_to_grayscale`.
const GRAY: [f32; 3] = [0.2989, 0.587, 0.114];

/// Reusable buffers of one worker thread.
pub struct Renderer {
    resizer: Resizer,
    dst: Image<'static>,
    pixels: Vec<f32>,
    size: u32,
}

impl Renderer {
    /// Buffers for `size × size` outputs.
    pub fn new(size: u32) -> Self {
        Renderer {
            resizer: Resizer::new(),
            dst: Image::new(size, size, PixelType::U8x3),
            pixels: vec![0.0; 3 * (size as usize) * (size as usize)],
            size,
        }
    }

    /// Resample `plan`'s box of `img` to `size × size` RGB8 (no flip, no colour).
    pub fn resample(&mut self, img: &Rgb8, plan: &Plan) -> Result<&[u8], String> {
        let src = ImageRef::new(img.width, img.height, &img.data, PixelType::U8x3)
            .map_err(|e| format!("internal error: {e}"))?;
        let alg = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
        let [l, t, w, h] = plan.crop;
        let r = if plan.exclusive {
            let view = CroppedImage::new(&src, l as u32, t as u32, w as u32, h as u32)
                .map_err(|e| format!("internal error: crop {:?}: {e}", plan.crop))?;
            self.resizer.resize(&view, &mut self.dst, &alg)
        } else {
            self.resizer
                .resize(&src, &mut self.dst, &alg.crop(l, t, w, h))
        };
        r.map_err(|e| format!("internal error: resize: {e}"))?;
        Ok(self.dst.buffer())
    }

    /// The whole plan into `out` (`3 · size²` floats, channel-major): resample, flip,
    /// jitter, then `(x − mean) / std` per channel when `normalize` is given (otherwise
    /// `x / 255` in `[0, 1]`).
    pub fn render(
        &mut self,
        img: &Rgb8,
        plan: &Plan,
        normalize: Option<&([f32; 3], [f32; 3])>,
        out: &mut [f32],
    ) -> Result<(), String> {
        self.resample(img, plan)?;
        self.finish(plan, normalize, out);
        Ok(())
    }

    /// Flip, jitter and normalise the last resampled image into `out`.
    pub fn finish(
        &mut self,
        plan: &Plan,
        normalize: Option<&([f32; 3], [f32; 3])>,
        out: &mut [f32],
    ) {
        let s = self.size as usize;
        let src = self.dst.buffer();
        let px = &mut self.pixels;
        let lut = unit_lut();
        for y in 0..s {
            let row = &src[y * s * 3..(y + 1) * s * 3];
            let dst = &mut px[y * s * 3..(y + 1) * s * 3];
            if plan.flip {
                for (d, p) in dst.chunks_exact_mut(3).zip(row.chunks_exact(3).rev()) {
                    d[0] = lut[p[0] as usize];
                    d[1] = lut[p[1] as usize];
                    d[2] = lut[p[2] as usize];
                }
            } else {
                for (d, &p) in dst.iter_mut().zip(row) {
                    *d = lut[p as usize];
                }
            }
        }
        for &op in &plan.order {
            let f = plan.factors[op as usize];
            if f != 1.0 {
                match op {
                    0 => brightness(px, f),
                    1 => contrast(px, f),
                    _ => saturation(px, f),
                }
            }
        }
        let hw = s * s;
        let (o0, rest) = out.split_at_mut(hw);
        let (o1, o2) = rest.split_at_mut(hw);
        let chans = px.chunks_exact(3);
        match normalize {
            Some((mean, std)) => {
                for (((p, a), b), c) in chans.zip(o0.iter_mut()).zip(o1.iter_mut()).zip(o2) {
                    *a = (p[0] - mean[0]) / std[0];
                    *b = (p[1] - mean[1]) / std[1];
                    *c = (p[2] - mean[2]) / std[2];
                }
            }
            None => {
                for (((p, a), b), c) in chans.zip(o0.iter_mut()).zip(o1.iter_mut()).zip(o2) {
                    *a = p[0];
                    *b = p[1];
                    *c = p[2];
                }
            }
        }
        if let Some([l, t, w, h]) = plan.erase {
            let (l, t, w, h) = (l as usize, t as usize, w as usize, h as usize);
            for plane in out.chunks_exact_mut(hw) {
                for row in plane.chunks_exact_mut(s).skip(t).take(h) {
                    row[l..l + w].fill(0.0);
                }
            }
        }
    }
}

/// `v / 255` for every byte `v` (the same `f32` division, looked up).
fn unit_lut() -> &'static [f32; 256] {
    static LUT: std::sync::OnceLock<[f32; 256]> = std::sync::OnceLock::new();
    LUT.get_or_init(|| std::array::from_fn(|v| v as f32 / 255.0))
}

fn brightness(px: &mut [f32], f: f32) {
    for v in px {
        *v = (*v * f).clamp(0.0, 1.0);
    }
}

fn contrast(px: &mut [f32], f: f32) {
    let n = (px.len() / 3).max(1);
    let sum: f64 = px
        .chunks_exact(3)
        .map(|p| f64::from(GRAY[0] * p[0] + GRAY[1] * p[1] + GRAY[2] * p[2]))
        .sum();
    let mean = (sum / n as f64) as f32;
    let add = (1.0 - f) * mean;
    for v in px {
        *v = (f * *v + add).clamp(0.0, 1.0);
    }
}

fn saturation(px: &mut [f32], f: f32) {
    for p in px.chunks_exact_mut(3) {
        let g = (1.0 - f) * (GRAY[0] * p[0] + GRAY[1] * p[1] + GRAY[2] * p[2]);
        for v in p {
            *v = (f * *v + g).clamp(0.0, 1.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_stays_inside_and_follows_the_area_range() {
        let a = Augment::default();
        for i in 0..2000 {
            let mut rng = Rng::derive(3, 0, i);
            let (w, h) = (40 + (i % 50) as u32, 30 + (i % 70) as u32);
            let [l, t, cw, ch] = random_resized_crop(&mut rng, w, h, a.scale, a.ratio);
            assert!(cw >= 1 && ch >= 1 && l + cw <= w && t + ch <= h);
        }
        // A 1×1 image: the crop is the image.
        let mut rng = Rng::new(1);
        assert_eq!(
            random_resized_crop(&mut rng, 1, 1, a.scale, a.ratio),
            [0, 0, 1, 1]
        );
        // A very wide image falls back to the centre crop of ratio 4/3 at full height.
        let mut rng = Rng::new(1);
        let c = random_resized_crop(&mut rng, 1000, 10, (0.99, 1.0), a.ratio);
        assert_eq!(c, [(1000 - 13) / 2, 0, 13, 10]);
    }

    #[test]
    fn centre_box_hand_computed() {
        // 300×200 → 336×224 (shorter side 224), crop left round(112/2) = 56.
        let b = centre_box(300, 200, 224);
        let s = 300.0 / 336.0;
        assert_eq!(b, [56.0 * s, 0.0, 224.0 * s, 224.0 * 200.0 / 224.0]);
        // Odd excess: (225 - 224) / 2 = 0.5 rounds to 0 (half to even).
        let b = centre_box(224, 225, 224);
        assert_eq!(b[1], 0.0);
    }

    #[test]
    fn jitter_formulas() {
        let mut px = vec![0.5, 0.25, 1.0];
        brightness(&mut px, 1.5);
        assert_eq!(px, vec![0.75, 0.375, 1.0]);
        let mut px = vec![0.2, 0.4, 0.6, 0.6, 0.4, 0.2];
        saturation(&mut px, 0.0);
        let g0 = GRAY[0] * 0.2 + GRAY[1] * 0.4 + GRAY[2] * 0.6;
        assert!((px[0] - g0).abs() < 1e-6 && (px[2] - g0).abs() < 1e-6);
        let mut px = vec![0.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        contrast(&mut px, 0.0);
        let m = 0.5 * (GRAY[0] + GRAY[1] + GRAY[2]);
        assert!(px.iter().all(|&v| (v - m).abs() < 1e-6));
    }
}
