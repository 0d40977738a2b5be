//! Pixel filters on interleaved RGB `[0, 1]` floats, as torchvision computes them:
//! the Gaussian blur (reflect padding) and the affine warp (bilinear, fill 0).

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

#[cfg(test)]
mod tests {
    use super::super::blur_kernel;
    use super::*;

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
}
