//! Pillow-style antialiased bilinear resampling of RGB8 images (SIMD: AVX2 / SSE4.1 /
//! NEON, chosen at run time), through `fast_image_resize`.
//!
//! The entry point is deliberately non-generic: callers instantiate nothing of
//! `fast_image_resize`, whose generic convolution code is compiled here, once.

use fast_image_resize::images::{CroppedImage, Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

/// A reusable resampler to `size × size` RGB8 outputs (its buffers are kept between
/// calls; one per worker thread).
pub struct Resampler {
    resizer: Resizer,
    dst: Image<'static>,
}

/// Which part of the source is resampled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Crop {
    /// Whole pixels `[left, top, width, height]` (integers), cut out first.
    Pixels([u32; 4]),
    /// A box `[left, top, width, height]` in source pixels, fractional edges allowed;
    /// it must lie inside the image.
    Box([f64; 4]),
}

impl Resampler {
    /// Buffers for `size × size` outputs.
    pub fn new(size: u32) -> Self {
        Resampler {
            resizer: Resizer::new(),
            dst: Image::new(size, size, PixelType::U8x3),
        }
    }

    /// Resample `crop` of the RGB8 image `data` (`width × height`, rows packed) to the
    /// output size; the result is `3 · size²` bytes, row-major RGB.
    ///
    /// # Errors
    /// A message when `data` does not hold `width × height` pixels or the crop is not
    /// inside the image.
    pub fn resample(
        &mut self,
        data: &[u8],
        width: u32,
        height: u32,
        crop: Crop,
    ) -> Result<&[u8], String> {
        let src = ImageRef::new(width, height, data, PixelType::U8x3).map_err(|e| e.to_string())?;
        let alg = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
        let r = match crop {
            Crop::Pixels([l, t, w, h]) => {
                let view = CroppedImage::new(&src, l, t, w, h)
                    .map_err(|e| format!("crop {:?}: {e}", [l, t, w, h]))?;
                self.resizer.resize(&view, &mut self.dst, &alg)
            }
            Crop::Box([l, t, w, h]) => {
                self.resizer
                    .resize(&src, &mut self.dst, &alg.crop(l, t, w, h))
            }
        };
        r.map_err(|e| format!("resize: {e}"))?;
        Ok(self.dst.buffer())
    }

    /// The last resampled image (`3 · size²` bytes; zeros before the first).
    pub fn last(&self) -> &[u8] {
        self.dst.buffer()
    }
}
