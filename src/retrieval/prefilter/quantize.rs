//! The prefilter's operands: per-vector quantization ([`quantize`]: scale, norms and
//! residuals), the quantized gallery packed for the micro-kernel with its per-column
//! bound terms ([`Gallery`]), a query's bound factors ([`Query`]), and the directed
//! f64-to-f32 roundings the bound is computed with ([`up`], [`down`]).

use super::super::scan::Columns;
use super::{NR, OFFSET, QMAX_G, RANGE, U};
use rayon::prelude::*;

/// Per-vector quantization: scale `s`, `|x|_2`, `|x'|_1`, `sum(x')`, the residual
/// `|x - s x'|_2` and `|s x'|_2`.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Stats {
    pub(super) scale: f64,
    pub(super) l2: f64,
    pub(super) ql1: f64,
    pub(super) qsum: i32,
    pub(super) residual: f64,
    pub(super) ql2: f64,
}

/// Quantize `x` into `out` (`out.len() >= x.len()`, the rest left at zero), `None`
/// when a nonzero vector's largest magnitude is outside [`RANGE`].
pub(super) fn quantize(x: &[f32], qmax: f64, mut put: impl FnMut(usize, i32)) -> Option<Stats> {
    let max = x.iter().fold(0f64, |m, &v| m.max(f64::from(v).abs()));
    if max == 0.0 {
        return Some(Stats {
            scale: 1.0,
            ..Stats::default()
        });
    }
    if !(RANGE.0..=RANGE.1).contains(&max) {
        return None;
    }
    let scale = max / qmax;
    let mut st = Stats {
        scale,
        ..Stats::default()
    };
    let (mut l2, mut res, mut ql2) = (0f64, 0f64, 0f64);
    for (k, &v) in x.iter().enumerate() {
        let v = f64::from(v);
        // |v / scale| <= qmax up to rounding; the clamp keeps the error within scale / 2.
        let q = (v / scale).round().clamp(-qmax, qmax);
        put(k, q as i32);
        l2 += v * v;
        st.ql1 += q.abs();
        st.qsum += q as i32;
        res += (v - scale * q) * (v - scale * q);
        ql2 += q * q;
    }
    st.l2 = l2.sqrt();
    st.residual = res.sqrt();
    st.ql2 = scale * ql2.sqrt();
    Some(st)
}

/// The gallery, quantized and packed for the micro-kernel: panel `p` holds columns
/// `p * NR ..`, four dimensions at a time (`NR * 4` bytes per group), zero-padded.
pub(super) struct Gallery {
    pub(super) packed: Vec<i8>,
    /// Groups of four dimensions.
    pub(super) quads: usize,
    /// Per column (padded to panels; the internal score of a raw value `v` is
    /// `v * M - C`): `OFFSET * sum(g')`, the product's scale `s_g M`, `|g|_2 M` and
    /// `|g - s_g g'|_2 M` (both rounded up), and `C`.
    pub(super) offset: Vec<i32>,
    pub(super) scale: Vec<f32>,
    pub(super) norm: Vec<f32>,
    pub(super) residual: Vec<f32>,
    pub(super) shift: Vec<f32>,
    /// Maxima over the columns of `s_g M`, `|g|_2 M`, `|g - s_g g'|_2 M` and `|C|`.
    pub(super) max_scale: f64,
    pub(super) max_norm: f64,
    pub(super) max_residual: f64,
    pub(super) max_shift: f64,
}

impl Gallery {
    pub(super) fn new(g: &[f32], m: usize, d: usize, cols: Columns<'_>) -> Option<Gallery> {
        let quads = d.div_ceil(4);
        let panels = m.div_ceil(NR);
        let panel_bytes = quads * 4 * NR;
        let mut packed = vec![0i8; panels * panel_bytes];
        let stats: Vec<Option<Stats>> = packed
            .par_chunks_mut(panel_bytes)
            .enumerate()
            .flat_map_iter(|(p, panel)| {
                let rows = p * NR..((p + 1) * NR).min(m);
                let mut out = Vec::with_capacity(NR);
                for (c, j) in rows.enumerate() {
                    out.push(quantize(&g[j * d..(j + 1) * d], QMAX_G, |k, q| {
                        panel[(k / 4) * 4 * NR + c * 4 + k % 4] = q as i8;
                    }));
                }
                out
            })
            .collect();
        let stats: Vec<Stats> = stats.into_iter().collect::<Option<_>>()?;
        let width = panels * NR;
        let mut gal = Gallery {
            packed,
            quads,
            offset: vec![0; width],
            scale: vec![0.0; width],
            norm: vec![0.0; width],
            residual: vec![0.0; width],
            shift: vec![0.0; width],
            max_scale: 0.0,
            max_norm: 0.0,
            max_residual: 0.0,
            max_shift: 0.0,
        };
        for (j, st) in stats.iter().enumerate() {
            let (mj, cj) = match cols {
                Columns::Raw => (1.0, 0.0f32),
                Columns::Scale(c) => (f64::from(c[j]), 0.0),
                Columns::Shift(h) => (1.0, h[j]),
            };
            gal.offset[j] = OFFSET * st.qsum;
            // A zero row's quantized values are all zero: its scale does not matter.
            let sg = if st.l2 == 0.0 { 0.0 } else { st.scale };
            gal.scale[j] = (sg * mj) as f32;
            gal.norm[j] = up(st.l2 * mj * (1.0 + 1e-9));
            gal.residual[j] = up(st.residual * mj * (1.0 + 1e-9));
            gal.shift[j] = cj;
            gal.max_scale = gal.max_scale.max(sg * mj);
            gal.max_norm = gal.max_norm.max(f64::from(gal.norm[j]));
            gal.max_residual = gal.max_residual.max(f64::from(gal.residual[j]));
            gal.max_shift = gal.max_shift.max(f64::from(cj).abs());
        }
        // The f32 terms must stay normal numbers (or exact zeros).
        let normal = |v: &f32| *v == 0.0 || v.is_normal();
        let all = [&gal.scale, &gal.norm, &gal.residual, &gal.shift];
        all.iter().all(|v| v.iter().all(normal)).then_some(gal)
    }

    #[inline]
    pub(super) fn panel(&self, p: usize) -> &[i8] {
        let bytes = self.quads * 4 * NR;
        &self.packed[p * bytes..(p + 1) * bytes]
    }
}

/// One query's prefilter: its scale, the factors of the error bound (rounded up:
/// `|v - s_q s_g I| <= a |g|_2 + b |g - s_g g'|_2`) and the rounding margin.
#[derive(Debug, Clone, Copy)]
pub(super) struct Query {
    pub(super) scale: f32,
    pub(super) a: f32,
    pub(super) b: f32,
    /// The margin for the f32 evaluation of the bound.
    pub(super) margin: f64,
}

impl Query {
    /// The f32 threshold on the computed bound below which an item's internal score is
    /// below `floor`.
    #[inline]
    pub(super) fn threshold(&self, floor: f32) -> f32 {
        let f = f64::from(floor);
        down(f - U * f.abs() - self.margin)
    }
}

/// The smallest f32 at least `x`.
/// (A positive value below the normal range becomes the smallest normal f32, so that
/// the bound's arithmetic stays within normal numbers.)
#[inline]
pub(super) fn up(x: f64) -> f32 {
    let f = x as f32;
    let f = if f64::from(f) < x { f.next_up() } else { f };
    if f > 0.0 && f < f32::MIN_POSITIVE {
        f32::MIN_POSITIVE
    } else {
        f
    }
}

/// The largest f32 at most `x`.
#[inline]
pub(super) fn down(x: f64) -> f32 {
    let f = x as f32;
    if f64::from(f) > x {
        f.next_down()
    } else {
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_rounds_up_to_normal_numbers() {
        assert_eq!(up(0.0), 0.0);
        assert_eq!(up(1.0), 1.0);
        assert_eq!(up(1e-40), f32::MIN_POSITIVE);
        assert_eq!(up(1e-300), f32::MIN_POSITIVE);
        assert_eq!(up(f64::from(f32::MIN_POSITIVE)), f32::MIN_POSITIVE);
        for x in [0.1, 1e-30, 3.7e20, 1.0 + 1e-12] {
            let f = up(x);
            assert!(f64::from(f) >= x && f64::from(f.next_down()) < x, "{x}");
        }
    }
}
