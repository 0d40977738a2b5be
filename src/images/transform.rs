//! Per-image geometry and colour: the plan (where to crop, whether to flip, how to
//! jitter) and its execution into a normalised `(3, size, size)` `f32` slot.
//!
//! With augmentation the plan is torchvision's `RandomResizedCrop` (area fraction in
//! `scale`, aspect ratio log-uniform in `ratio`, 10 tries then the centre fallback),
//! `RandomHorizontalFlip` and `ColorJitter` (brightness, contrast, saturation factors
//! uniform in `[max(0, 1 − s), 1 + s]`, applied in a random order, on `[0, 1]` floats
//! with torchvision's float formulas and grayscale weights 0.2989 / 0.587 / 0.114),
//! optionally preceded by `RandomAffine` (angle, translation, scale and shear drawn as
//! torchvision does; bilinear, fill 0; applied to the flipped `[0, 1]` floats), then
//! optionally `GaussianBlur` (probability `blur`, σ uniform in `blur_sigma`, kernel
//! side [`blur_kernel`] of the output size, reflect padding, on the `[0, 1]` floats
//! before normalisation) and `RandomErasing` (after normalisation).
//! Without it, the shorter side is resized to `size` (the longer to
//! `⌊size · long / short⌋`) and the centre `size × size` is cut (top / left offsets
//! rounded half to even, as torchvision's `center_crop`) — done as one resampling of the
//! matching source box, which is the same arithmetic as resizing then cropping.
//!
//! Resampling is `fast_image_resize`'s bilinear convolution (Pillow's antialiased
//! bilinear filter, AVX2 / SSE4.1 / NEON).

use super::decode::Rgb8;
use crate::rng::Rng;
use gridmatch_resample::{Crop, Resampler};
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
    /// Probability of a Gaussian blur: torchvision's `GaussianBlur` with σ drawn
    /// uniformly in `blur_sigma` and a kernel of [`blur_kernel`]`(size)` pixels; 0 (the
    /// default) draws nothing.
    #[serde(default)]
    pub blur: f64,
    /// Range of the blur's σ in output pixels (torchvision's default `(0.1, 2.0)`).
    #[serde(default = "default_blur_sigma")]
    pub blur_sigma: (f64, f64),
    /// `RandomAffine`'s rotation range in degrees (`(0, 0)`, the default, with the other
    /// affine settings at their defaults: no affine warp).
    #[serde(default)]
    pub degrees: (f64, f64),
    /// `RandomAffine`'s largest translation as fractions of the width and height.
    #[serde(default)]
    pub translate: (f64, f64),
    /// `RandomAffine`'s scale range.
    #[serde(default = "unit_range")]
    pub affine_scale: (f64, f64),
    /// `RandomAffine`'s shear ranges in degrees: x low, x high, y low, y high.
    #[serde(default)]
    pub shear: [f64; 4],
}

fn unit_range() -> (f64, f64) {
    (1.0, 1.0)
}

impl Augment {
    /// Whether the settings draw an affine warp.
    pub fn has_affine(&self) -> bool {
        self.degrees != (0.0, 0.0)
            || self.translate != (0.0, 0.0)
            || self.affine_scale != (1.0, 1.0)
            || self.shear != [0.0; 4]
    }
}

fn default_blur_sigma() -> (f64, f64) {
    (0.1, 2.0)
}

/// Side of the Gaussian blur's kernel at output side `size`: the odd number
/// `2 · ⌊size / 20⌋ + 1` (about 10 % of the side: 23 at 224 px, as in SimCLR's recipe;
/// 1, no blur, below 20 px).
pub fn blur_kernel(size: u32) -> usize {
    2 * (size as usize / 20) + 1
}

impl Default for Augment {
    fn default() -> Self {
        Augment {
            scale: (0.08, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
            flip: 0.5,
            jitter: [0.4, 0.4, 0.4],
            erase: 0.0,
            blur: 0.0,
            blur_sigma: default_blur_sigma(),
            degrees: (0.0, 0.0),
            translate: (0.0, 0.0),
            affine_scale: unit_range(),
            shear: [0.0; 4],
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
    /// σ of the Gaussian blur, when one is applied.
    pub blur: Option<f32>,
    /// Affine warp `[angle°, tx px, ty px, scale, shear x°, shear y°]`, when one is applied.
    pub affine: Option<[f64; 6]>,
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

/// torchvision's `RandomAffine.get_params` on a `size × size` image: `[angle, tx, ty,
/// scale, shear x, shear y]` (translations rounded half to even to whole pixels).
pub fn random_affine(rng: &mut Rng, a: &Augment, size: u32) -> [f64; 6] {
    let angle = rng.range(a.degrees.0, a.degrees.1);
    let (mx, my) = (
        a.translate.0 * f64::from(size),
        a.translate.1 * f64::from(size),
    );
    let tx = round_even(rng.range(-mx, mx)) as f64;
    let ty = round_even(rng.range(-my, my)) as f64;
    let scale = rng.range(a.affine_scale.0, a.affine_scale.1);
    let shx = rng.range(a.shear[0], a.shear[1]);
    let shy = rng.range(a.shear[2], a.shear[3]);
    [angle, tx, ty, scale, shx, shy]
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
    inside([left * sx, top * sy, s * sx, s * sy], width, height)
}

/// `[left, top, width, height]` moved inside a `width × height` image: the products
/// that place a box in source pixels can overshoot the edge by an ulp or so (a 400×239
/// photo at 224 px: bottom edge 239.00000000000003), which the resampler refuses.
fn inside(b: [f64; 4], width: u32, height: u32) -> [f64; 4] {
    let (wf, hf) = (f64::from(width), f64::from(height));
    let l = b[0].clamp(0.0, wf);
    let t = b[1].clamp(0.0, hf);
    [l, t, b[2].min(wf - l), b[3].min(hf - t)]
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
            blur: None,
            affine: None,
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
            let blur = (a.blur > 0.0 && rng.chance(a.blur))
                .then(|| rng.range(a.blur_sigma.0, a.blur_sigma.1) as f32);
            let affine = a.has_affine().then(|| random_affine(rng, a, size));
            Plan {
                crop: c.map(f64::from),
                exclusive: true,
                flip,
                factors,
                order,
                erase,
                blur,
                affine,
            }
        }
    }
}

/// Grayscale weights of torchvision's `rgb_to_grayscale`.
const GRAY: [f32; 3] = [0.2989, 0.587, 0.114];

/// Reusable buffers of one worker thread.
pub struct Renderer {
    resampler: Resampler,
    pixels: Vec<f32>,
    scratch: Vec<f32>,
    size: u32,
}

impl Renderer {
    /// Buffers for `size × size` outputs.
    pub fn new(size: u32) -> Self {
        Renderer {
            resampler: Resampler::new(size),
            pixels: vec![0.0; 3 * (size as usize) * (size as usize)],
            scratch: Vec::new(),
            size,
        }
    }

    /// Resample `plan`'s box of `img` to `size × size` RGB8 (no flip, no colour).
    pub fn resample(&mut self, img: &Rgb8, plan: &Plan) -> Result<&[u8], String> {
        let [l, t, w, h] = plan.crop;
        let crop = if plan.exclusive {
            Crop::Pixels([l as u32, t as u32, w as u32, h as u32])
        } else {
            Crop::Box(inside([l, t, w, h], img.width, img.height))
        };
        self.resampler
            .resample(&img.data, img.width, img.height, crop)
            .map_err(|e| format!("internal error: {e} (plan {:?})", plan.crop))
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
        let src = self.resampler.last();
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
        if let Some(params) = plan.affine {
            affine(px, &mut self.scratch, s, params);
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
        if let Some(sigma) = plan.blur {
            gaussian_blur(px, &mut self.scratch, s, blur_kernel(self.size), sigma);
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

/// torchvision's `gaussian_blur` of an interleaved RGB `s × s` image in place: the
/// kernel `exp(−x² / 2σ²)` at `x = −k/2 … k/2`, normalised, applied along rows then
/// columns (separable: the same as torchvision's 2-D kernel up to `f32` rounding) with
/// reflect padding (`k` odd, `k / 2 < s`; `k = 1` leaves the image as it is).
pub fn gaussian_blur(px: &mut [f32], tmp: &mut Vec<f32>, s: usize, k: usize, sigma: f32) {
    let half = k / 2;
    if half == 0 || s <= half {
        return;
    }
    let mut w: Vec<f32> = (0..k)
        .map(|i| {
            let x = (i as f32 - half as f32) / sigma;
            (-0.5 * x * x).exp()
        })
        .collect();
    let sum: f32 = w.iter().sum();
    for v in &mut w {
        *v /= sum;
    }
    let reflect = |i: isize| -> usize {
        let n = s as isize;
        let i = if i < 0 { -i } else { i };
        (if i >= n { 2 * (n - 1) - i } else { i }) as usize
    };
    tmp.clear();
    tmp.resize(px.len(), 0.0);
    // rows: px -> tmp
    for y in 0..s {
        let row = &px[y * s * 3..(y + 1) * s * 3];
        let out = &mut tmp[y * s * 3..(y + 1) * s * 3];
        for x in 0..s {
            let mut acc = [0.0f32; 3];
            for (j, &wj) in w.iter().enumerate() {
                let src = reflect(x as isize + j as isize - half as isize) * 3;
                acc[0] += wj * row[src];
                acc[1] += wj * row[src + 1];
                acc[2] += wj * row[src + 2];
            }
            out[x * 3..x * 3 + 3].copy_from_slice(&acc);
        }
    }
    // columns: tmp -> px
    for y in 0..s {
        let out = &mut px[y * s * 3..(y + 1) * s * 3];
        out.fill(0.0);
        for (j, &wj) in w.iter().enumerate() {
            let src = reflect(y as isize + j as isize - half as isize);
            let row = &tmp[src * s * 3..(src + 1) * s * 3];
            for (o, &v) in out.iter_mut().zip(row) {
                *o += wj * v;
            }
        }
    }
}

/// torchvision's `affine` (bilinear, fill 0, centre of rotation the image centre) of an
/// interleaved RGB `s × s` image in place, `params = [angle°, tx, ty, scale, shear x°,
/// shear y°]`: the inverse matrix of `_get_inverse_affine_matrix`, the sampling grid of
/// `_gen_affine_grid` and `grid_sample(align_corners=False, padding_mode="zeros")`, each
/// value then multiplied by the in-image share of its bilinear weights (torchvision's
/// mask for a fill of 0).
pub fn affine(px: &mut [f32], tmp: &mut Vec<f32>, s: usize, params: [f64; 6]) {
    let [angle, tx, ty, scale, shx, shy] = params;
    let (rot, sx, sy) = (angle.to_radians(), shx.to_radians(), shy.to_radians());
    let a = (rot - sy).cos() / sy.cos();
    let b = -(rot - sy).cos() * sx.tan() / sy.cos() - rot.sin();
    let c = (rot - sy).sin() / sy.cos();
    let d = -(rot - sy).sin() * sx.tan() / sy.cos() + rot.cos();
    let mut m = [d, -b, 0.0, -c, a, 0.0].map(|v| v / scale);
    m[2] += m[0] * -tx + m[1] * -ty;
    m[5] += m[3] * -tx + m[4] * -ty;
    // the grid in image-centred pixel coordinates (float32, as torchvision computes it)
    let m = m.map(|v| v as f32);
    let n = s as f32;
    let half = 0.5 * n;
    tmp.clear();
    tmp.resize(px.len(), 0.0);
    for y in 0..s {
        let by = y as f32 - half + 0.5;
        for x in 0..s {
            let bx = x as f32 - half + 0.5;
            let gx = (bx * m[0] + by * m[1] + m[2]) / half;
            let gy = (bx * m[3] + by * m[4] + m[5]) / half;
            let ix = ((gx + 1.0) * n - 1.0) / 2.0;
            let iy = ((gy + 1.0) * n - 1.0) / 2.0;
            let (x0, y0) = (ix.floor(), iy.floor());
            let (fx, fy) = (ix - x0, iy - y0);
            let mut acc = [0.0f32; 3];
            let mut mask = 0.0f32;
            for (cy, wy) in [(y0, 1.0 - fy), (y0 + 1.0, fy)] {
                for (cx, wx) in [(x0, 1.0 - fx), (x0 + 1.0, fx)] {
                    if !((0.0..n).contains(&cx) && (0.0..n).contains(&cy)) {
                        continue;
                    }
                    let w = wx * wy;
                    let k = (cy as usize * s + cx as usize) * 3;
                    acc[0] += w * px[k];
                    acc[1] += w * px[k + 1];
                    acc[2] += w * px[k + 2];
                    mask += w;
                }
            }
            let o = (y * s + x) * 3;
            for (t, v) in tmp[o..o + 3].iter_mut().zip(acc) {
                *t = v * mask;
            }
        }
    }
    px.copy_from_slice(tmp);
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
    fn centre_box_stays_inside_every_size() {
        // Every source size from 1 to 2000 px a side (a stride through them, the
        // extreme aspect ratios and the sizes real photos broke on) × target sizes.
        let mut sides: Vec<u32> = (1..=2000).step_by(37).collect();
        sides.extend([1, 2, 3, 29, 70, 239, 400, 1999, 2000]);
        for &size in &[16u32, 28, 32, 64, 96, 128, 224, 256, 299, 384, 512] {
            for &w in &sides {
                for &h in &sides {
                    let [l, t, bw, bh] = centre_box(w, h, size);
                    assert!(
                        l >= 0.0 && t >= 0.0 && bw > 0.0 && bh > 0.0,
                        "{w}x{h}@{size}"
                    );
                    assert!(l + bw <= f64::from(w), "{w}x{h}@{size}: {l} + {bw}");
                    assert!(t + bh <= f64::from(h), "{w}x{h}@{size}: {t} + {bh}");
                }
            }
        }
        // The two real photos that failed at 224 px: the box now ends on the edge.
        let b = centre_box(400, 239, 224);
        assert!(b[1] + b[3] <= 239.0);
        assert!(centre_box(70, 29, 224)[1] + centre_box(70, 29, 224)[3] <= 29.0);
    }

    #[test]
    fn resampler_keeps_a_constant_image_and_checks_crops() {
        // gridmatch-resample's entry point (tested here: the debug-build test run
        // covers this crate only). A constant image resamples to the same constant at
        // any size and crop.
        use gridmatch_resample::{Crop, Resampler};
        let (w, h) = (37u32, 11u32);
        let data: Vec<u8> = (0..w * h).flat_map(|_| [10u8, 200, 77]).collect();
        let mut r = Resampler::new(16);
        for crop in [
            Crop::Pixels([2, 1, 30, 9]),
            Crop::Box([0.5, 0.25, 36.0, 10.5]),
        ] {
            let out = r.resample(&data, w, h, crop).expect("resample").to_vec();
            assert_eq!(out.len(), 3 * 16 * 16);
            assert!(out.chunks(3).all(|p| p == [10, 200, 77]), "{crop:?}");
            assert_eq!(r.last(), &out[..]);
        }
        assert!(r
            .resample(&data, w, h, Crop::Pixels([30, 0, 8, 1]))
            .is_err());
        assert!(r
            .resample(&data[1..], w, h, Crop::Pixels([0, 0, 1, 1]))
            .is_err());
    }

    #[test]
    fn resample_gives_the_exact_size_for_odd_sources() {
        let a = Augment::default();
        for &(w, h) in &[
            (400u32, 239u32),
            (70, 29),
            (1, 1),
            (1, 2000),
            (2000, 1),
            (3, 7),
        ] {
            let img = Rgb8 {
                width: w,
                height: h,
                data: (0..(w * h * 3) as usize).map(|i| (i % 251) as u8).collect(),
            };
            for &size in &[16u32, 224, 299] {
                let mut r = Renderer::new(size);
                for aug in [None, Some(&a)] {
                    let p = plan(aug, &mut Rng::new(3), w, h, size);
                    let out = r.resample(&img, &p).expect("resample");
                    assert_eq!(out.len(), (3 * size * size) as usize, "{w}x{h}@{size}");
                }
            }
        }
    }

    #[test]
    fn blur_hand_computed() {
        assert_eq!(
            (blur_kernel(224), blur_kernel(32), blur_kernel(19)),
            (23, 3, 1)
        );
        // 4×4 image, one bright pixel at (1, 1) in the red channel, kernel 3, σ = 1:
        // weights w = (e^{-1/2}, 1, e^{-1/2}) normalised; the 2-D result is the outer
        // product of the 1-D profile p: output 0 reads rows (1, 0, 1) under reflect
        // padding, so p = (w0 + w2, w1, w0, 0) (torchvision's gaussian_blur gives the
        // same to 1.5e-8)
        let mut px = vec![0.0f32; 4 * 4 * 3];
        px[(4 + 1) * 3] = 1.0;
        let mut tmp = Vec::new();
        gaussian_blur(&mut px, &mut tmp, 4, 3, 1.0);
        let e = (-0.5f32).exp();
        let w = [
            e / (1.0 + 2.0 * e),
            1.0 / (1.0 + 2.0 * e),
            e / (1.0 + 2.0 * e),
        ];
        let p = [w[0] + w[2], w[1], w[0], 0.0];
        for y in 0..4 {
            for x in 0..4 {
                let want = p[y] * p[x];
                assert!((px[(y * 4 + x) * 3] - want).abs() < 1e-6, "({y}, {x})");
                assert_eq!(px[(y * 4 + x) * 3 + 1], 0.0);
            }
        }
        // a bright pixel at (0, 0): output 0 reads rows (1, 0, 1), output 1 rows (0, 1, 2)
        let mut px = vec![0.0f32; 4 * 4 * 3];
        px[0] = 1.0;
        gaussian_blur(&mut px, &mut tmp, 4, 3, 1.0);
        assert!((px[(4 + 1) * 3] - w[0] * w[0]).abs() < 1e-6);
        assert!((px[0] - w[1] * w[1]).abs() < 1e-6);
    }

    #[test]
    fn affine_identity_and_quarter_turn() {
        let s = 5;
        let src: Vec<f32> = (0..s * s * 3).map(|i| i as f32 / 100.0).collect();
        let mut tmp = Vec::new();
        let mut px = src.clone();
        affine(&mut px, &mut tmp, s, [0.0, 0.0, 0.0, 1.0, 0.0, 0.0]);
        for (a, b) in px.iter().zip(&src) {
            assert!((a - b).abs() < 1e-5);
        }
        // 90°: output row y, column x reads source row s-1-x, column y (what
        // torchvision's affine gives; the rotation maps the pixel grid onto itself)
        let mut px = src.clone();
        affine(&mut px, &mut tmp, s, [90.0, 0.0, 0.0, 1.0, 0.0, 0.0]);
        for y in 0..s {
            for x in 0..s {
                let want = src[((s - 1 - x) * s + y) * 3];
                assert!((px[(y * s + x) * 3] - want).abs() < 1e-4, "({y}, {x})");
            }
        }
        // a translation by one pixel to the right: column 0 is the fill (0)
        let mut px = src.clone();
        affine(&mut px, &mut tmp, s, [0.0, 1.0, 0.0, 1.0, 0.0, 0.0]);
        assert!(px[0].abs() < 1e-6 && (px[3] - src[0]).abs() < 1e-5);
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
