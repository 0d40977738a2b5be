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
//!
//! Files: this one (the augmentation settings and the plan), `render` (the
//! [`Renderer`] that executes a plan, colour jitter included), `filters` (blur and
//! affine warp).

use crate::rng::Rng;
use serde::{Deserialize, Serialize};

mod filters;
mod render;

pub use filters::{affine, gaussian_blur};
pub use render::Renderer;

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
}
