//! One image file → upright RGB8 pixels.
//!
//! The format is guessed from the content (JPEG, PNG, WebP). The header's dimensions are
//! checked against a pixel limit before anything is decoded (a 100-byte PNG can claim
//! 50000 × 50000 pixels). The EXIF orientation is applied (as
//! `ImageCatalogue.load`'s PIL path does); transparency is composited onto white,
//! grayscale becomes RGB and 16-bit samples are scaled to 8 bits. A JPEG whose last scan
//! has no end-of-image marker is refused as truncated (zune-jpeg would otherwise pad the
//! missing rows silently).

use super::ImageError;
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};
use std::io::Cursor;
use std::path::Path;

/// An RGB8 image, rows top to bottom, `width * height * 3` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rgb8 {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Interleaved RGB samples.
    pub data: Vec<u8>,
}

/// Read and decode `path` (see the module docs). Every failure names the file.
pub fn decode_file(path: &Path, max_pixels: u64) -> Result<Rgb8, ImageError> {
    let bytes = std::fs::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            ImageError::file(path, "no such image file")
        } else {
            ImageError::file(path, format!("cannot read image file: {e}"))
        }
    })?;
    decode_bytes(&bytes, max_pixels).map_err(|m| ImageError::file(path, m))
}

/// The image's `(width, height)` from its header, without decoding the pixels.
pub fn header_size(bytes: &[u8]) -> Result<(u32, u32), String> {
    let reader = reader(bytes)?;
    let dec = reader
        .into_decoder()
        .map_err(|e| format!("cannot read image: {e}"))?;
    Ok(dec.dimensions())
}

fn reader(bytes: &[u8]) -> Result<ImageReader<Cursor<&[u8]>>, String> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("cannot read image: {e}"))?;
    if reader.format().is_none() {
        return Err(if bytes.is_empty() {
            "empty file, not an image".to_string()
        } else {
            "not a JPEG, PNG or WebP image (unknown format)".to_string()
        });
    }
    // Our own limit (pixels, from the header) replaces the crate's allocation limit.
    reader.no_limits();
    Ok(reader)
}

/// Decode an in-memory image file (see the module docs); errors are messages without the
/// file name.
pub fn decode_bytes(bytes: &[u8], max_pixels: u64) -> Result<Rgb8, String> {
    let reader = reader(bytes)?;
    let format = reader.format();
    let mut dec = reader.into_decoder().map_err(|e| {
        let e = e.to_string();
        let e = e.trim_end();
        if format == Some(ImageFormat::Jpeg) && !jpeg_complete(bytes) {
            // cut inside its header: say so, not only what the decoder missed
            format!("cannot read image: truncated JPEG ({e})")
        } else {
            format!("cannot read image: {e}")
        }
    })?;
    let (w, h) = dec.dimensions();
    let pixels = u64::from(w) * u64::from(h);
    if pixels > max_pixels {
        return Err(format!(
            "header says {w}×{h} = {pixels} pixels, over max_pixels={max_pixels}; not decoded \
             (decompression-bomb guard)"
        ));
    }
    if pixels == 0 {
        return Err(format!("empty image ({w}×{h})"));
    }
    if format == Some(ImageFormat::Jpeg) && !jpeg_complete(bytes) {
        return Err(
            "cannot decode image: truncated JPEG (no end-of-image marker after the last \
                    scan)"
                .to_string(),
        );
    }
    let orientation = dec.orientation().unwrap_or(Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(dec)
        .map_err(|e| format!("cannot decode image: {}", e.to_string().trim_end()))?;
    img.apply_orientation(orientation);
    Ok(to_rgb8_on_white(img))
}

/// Whether a JPEG stream has an end-of-image marker (`FF D9`) after its last
/// start-of-scan marker (`FF DA`); entropy-coded data never holds either (an `FF` byte
/// there is followed by `00` or a restart marker).
fn jpeg_complete(bytes: &[u8]) -> bool {
    let last = |m: u8| bytes.windows(2).rposition(|w| w[0] == 0xFF && w[1] == m);
    match (last(0xDA), last(0xD9)) {
        (Some(sos), Some(eoi)) => eoi > sos,
        _ => false,
    }
}

/// RGB8 with any alpha channel composited onto white (`(c·a + 255·(255 − a)) / 255`,
/// rounded).
fn to_rgb8_on_white(img: DynamicImage) -> Rgb8 {
    let (width, height) = (img.width(), img.height());
    let data = if img.color().has_alpha() {
        let rgba = img.into_rgba8().into_raw();
        let mut out = Vec::with_capacity(rgba.len() / 4 * 3);
        for p in rgba.chunks_exact(4) {
            let a = u32::from(p[3]);
            for &c in &p[..3] {
                out.push(((u32::from(c) * a + 255 * (255 - a) + 127) / 255) as u8);
            }
        }
        out
    } else {
        img.into_rgb8().into_raw()
    };
    Rgb8 {
        width,
        height,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_end_marker() {
        assert!(jpeg_complete(&[0xFF, 0xD8, 0xFF, 0xDA, 1, 2, 0xFF, 0xD9]));
        assert!(!jpeg_complete(&[0xFF, 0xD8, 0xFF, 0xDA, 1, 2, 3]));
        // An end marker before the last scan (e.g. an EXIF thumbnail's) does not count.
        assert!(!jpeg_complete(&[0xFF, 0xD9, 0xFF, 0xDA, 1, 2]));
    }

    #[test]
    fn unknown_and_empty_files_are_refused() {
        assert!(decode_bytes(b"", 100).unwrap_err().contains("empty file"));
        assert!(decode_bytes(b"hello world", 100)
            .unwrap_err()
            .contains("unknown format"));
    }
}
