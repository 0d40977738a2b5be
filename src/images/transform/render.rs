//! The execution of a [`Plan`] ([`Renderer`]): the crop resampled to `size × size`,
//! the flip, the affine warp, the colour jitter (brightness, contrast, saturation on
//! `[0, 1]` floats), the blur, the normalisation and the erasing, into a planar `f32`
//! slot, with per-thread buffers.

use super::filters::{affine, gaussian_blur};
use super::{blur_kernel, inside, Plan};
use crate::images::decode::Rgb8;
use gridmatch_resample::{Crop, Resampler};

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
    use super::super::{plan, Augment};
    use super::*;
    use crate::rng::Rng;

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
