//! The AVX-512F and AVX2 scans: a tile row (or a block of the fused kernel) read 16 or
//! 8 values at a time, mapped by the metric's column terms, compared with the selector's
//! threshold and the target, and only the lanes that pass visited.

use super::{Columns, RowScan, Segment, TopK};
use std::arch::x86_64::*;

pub(super) const RAW: u8 = 0;
pub(super) const SCALE: u8 = 1;
pub(super) const SHIFT: u8 = 2;
/// Columns of an AVX-512 micro-tile (three vectors).
pub(super) const W512: usize = 48;
/// Columns of an AVX2 block: two 6 x 16 micro-tiles side by side (four vectors).
pub(super) const W256: usize = 32;

/// Scan one AVX-512 micro-tile: `blk` holds `rows.len()` rows of [`W512`] raw scores
/// (columns `0..cols` are gallery rows `base..base + cols`, the rest padding), `c`
/// the [`W512`] column terms. Per row: the internal scores of the 48 lanes are
/// compared at once with the selector's threshold and the target; only the lanes
/// above the threshold are pushed (in increasing order), and the count adds the
/// lanes above the target plus, on an exact tie, those before the target's row.
///
/// # Safety
/// The CPU must have AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn block512<const OP: u8, const COUNT: bool>(
    blk: &[f32],
    c: &[f32],
    cols: usize,
    base: u32,
    rows: &mut [RowScan],
) {
    const L: usize = 16;
    assert!(blk.len() >= rows.len() * W512 && c.len() >= W512 && cols <= W512);
    let valid_cols: u64 = (1u64 << cols) - 1;
    // SAFETY: `c` holds W512 = 3 * 16 values (asserted).
    let cv = unsafe {
        [
            _mm512_loadu_ps(c.as_ptr()),
            _mm512_loadu_ps(c.as_ptr().add(L)),
            _mm512_loadu_ps(c.as_ptr().add(2 * L)),
        ]
    };
    for (r, st) in rows.iter_mut().enumerate() {
        let row = &blk[r * W512..(r + 1) * W512];
        let thr = _mm512_set1_ps(st.top.threshold);
        let s = st.target.map_or(f32::INFINITY, |(s, _)| s);
        let sv = _mm512_set1_ps(s);
        let (mut cand, mut gt, mut eq) = (0u64, 0u64, 0u64);
        for (v, &cvv) in cv.iter().enumerate() {
            // SAFETY: `row` holds 48 values.
            let x = unsafe { _mm512_loadu_ps(row.as_ptr().add(v * L)) };
            let x = match OP {
                SCALE => _mm512_mul_ps(x, cvv),
                SHIFT => _mm512_sub_ps(x, cvv),
                _ => x,
            };
            cand |= u64::from(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, thr)) << (v * L);
            if COUNT {
                gt |= u64::from(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, sv)) << (v * L);
                eq |= u64::from(_mm512_cmp_ps_mask::<_CMP_EQ_OQ>(x, sv)) << (v * L);
            }
        }
        finish_row::<OP, COUNT>(st, row, c, W512, valid_cols, base, [cand, gt, eq]);
    }
}

/// [`block512`] for an AVX2 block (two micro-tiles side by side): rows of [`W256`]
/// raw scores, 8 lanes per compare.
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn block256<const OP: u8, const COUNT: bool>(
    blk: &[f32],
    c: &[f32],
    cols: usize,
    base: u32,
    rows: &mut [RowScan],
) {
    const L: usize = 8;
    assert!(blk.len() >= rows.len() * W256 && c.len() >= W256 && cols <= W256);
    let valid_cols: u64 = (1u64 << cols) - 1;
    // SAFETY: `c` holds W256 = 4 * 8 values (asserted).
    let cv = unsafe {
        [
            _mm256_loadu_ps(c.as_ptr()),
            _mm256_loadu_ps(c.as_ptr().add(L)),
            _mm256_loadu_ps(c.as_ptr().add(2 * L)),
            _mm256_loadu_ps(c.as_ptr().add(3 * L)),
        ]
    };
    for (r, st) in rows.iter_mut().enumerate() {
        let row = &blk[r * W256..(r + 1) * W256];
        let thr = _mm256_set1_ps(st.top.threshold);
        let s = st.target.map_or(f32::INFINITY, |(s, _)| s);
        let sv = _mm256_set1_ps(s);
        let (mut cand, mut gt, mut eq) = (0u32, 0u32, 0u32);
        for (v, &cvv) in cv.iter().enumerate() {
            // SAFETY: `row` holds 32 values.
            let x = unsafe { _mm256_loadu_ps(row.as_ptr().add(v * L)) };
            let x = match OP {
                SCALE => _mm256_mul_ps(x, cvv),
                SHIFT => _mm256_sub_ps(x, cvv),
                _ => x,
            };
            cand |= bits(_mm256_cmp_ps::<_CMP_GT_OQ>(x, thr)) << (v * L);
            if COUNT {
                gt |= bits(_mm256_cmp_ps::<_CMP_GT_OQ>(x, sv)) << (v * L);
                eq |= bits(_mm256_cmp_ps::<_CMP_EQ_OQ>(x, sv)) << (v * L);
            }
        }
        let masks = [cand, gt, eq].map(u64::from);
        finish_row::<OP, COUNT>(st, row, c, W256, valid_cols, base, masks);
    }
}

/// The end of [`block512`]'s and [`block256`]'s work on one row of `width` raw
/// scores, from the lane masks of its vector compares: `cand` (above the selector's
/// threshold), `gt` and `eq` (above and equal to the target, when counting). Drops
/// the lanes outside `valid_cols` and the row's excluded gallery row, adds the
/// lanes ranked before the target (ties split at the target's row), and pushes the
/// candidate lanes in increasing order.
#[inline(always)]
fn finish_row<const OP: u8, const COUNT: bool>(
    st: &mut RowScan,
    row: &[f32],
    c: &[f32],
    width: usize,
    valid_cols: u64,
    base: u32,
    [cand, gt, eq]: [u64; 3],
) {
    let mut valid = valid_cols;
    if let Some(o) = st
        .skip
        .map(|j| j.wrapping_sub(base))
        .filter(|&o| (o as usize) < width)
    {
        valid &= !(1u64 << o);
    }
    if COUNT {
        let tj = st.target.map_or(0, |(_, j)| j);
        let mut n = (gt & valid).count_ones();
        let ties = eq & valid;
        if ties != 0 {
            // Lanes before the target's row rank before it on an equal score.
            let before = tj.saturating_sub(base).min(width as u32);
            n += (ties & ((1u64 << before) - 1)).count_ones();
        }
        st.before += n as usize;
    }
    let mut cand = cand & valid;
    while cand != 0 {
        let i = cand.trailing_zeros() as usize;
        cand &= cand - 1;
        // The threshold may have risen since the mask: push re-checks.
        st.top.push(map::<OP>(row[i], c, i), base + i as u32);
    }
}

/// The lane mask of an AVX comparison result.
#[inline]
#[target_feature(enable = "avx")]
fn bits(m: __m256) -> u32 {
    _mm256_movemask_ps(m) as u32
}

/// The column operation of `cols` (`RAW`, `SCALE` or `SHIFT`) and its terms.
pub(super) fn op_terms(cols: Columns<'_>) -> (u8, &[f32]) {
    match cols {
        Columns::Raw => (RAW, &[]),
        Columns::Scale(c) => (SCALE, c),
        Columns::Shift(c) => (SHIFT, c),
    }
}

/// No rank count (a value no comparison predicate has).
const NONE: i32 = -1;

/// Instantiate `$f::<OP, COUNT, CMP>` for the column map and the comparison of `$seg`.
macro_rules! dispatch {
    ($f:ident, $raw:expr, $cols:expr, $base:expr, $top:expr, $seg:expr) => {{
        let (raw, base, top, seg): (&[f32], u32, &mut TopK, &Segment) = ($raw, $base, $top, $seg);
        let s = seg.target.unwrap_or(0.0);
        let (op, c) = op_terms($cols);
        let cmp = match (seg.target, seg.ge) {
            (None, _) => NONE,
            (Some(_), true) => _CMP_GE_OQ,
            (Some(_), false) => _CMP_GT_OQ,
        };
        match (op, cmp) {
            (RAW, NONE) => $f::<RAW, false, _CMP_GT_OQ>(raw, c, base, top, s),
            (RAW, _CMP_GE_OQ) => $f::<RAW, true, _CMP_GE_OQ>(raw, c, base, top, s),
            (RAW, _) => $f::<RAW, true, _CMP_GT_OQ>(raw, c, base, top, s),
            (SCALE, NONE) => $f::<SCALE, false, _CMP_GT_OQ>(raw, c, base, top, s),
            (SCALE, _CMP_GE_OQ) => $f::<SCALE, true, _CMP_GE_OQ>(raw, c, base, top, s),
            (SCALE, _) => $f::<SCALE, true, _CMP_GT_OQ>(raw, c, base, top, s),
            (_, NONE) => $f::<SHIFT, false, _CMP_GT_OQ>(raw, c, base, top, s),
            (_, _CMP_GE_OQ) => $f::<SHIFT, true, _CMP_GE_OQ>(raw, c, base, top, s),
            (_, _) => $f::<SHIFT, true, _CMP_GT_OQ>(raw, c, base, top, s),
        }
    }};
}

/// The internal score of one raw value (the vector paths' operation, one lane).
#[inline(always)]
fn map<const OP: u8>(x: f32, c: &[f32], p: usize) -> f32 {
    match OP {
        SCALE => x * c[p],
        SHIFT => x - c[p],
        _ => x,
    }
}

/// Positions `p..raw.len()` one by one; returns the count.
#[inline(always)]
fn tail<const OP: u8, const COUNT: bool, const CMP: i32>(
    raw: &[f32],
    c: &[f32],
    p: usize,
    base: u32,
    top: &mut TopK,
    s: f32,
) -> u32 {
    let mut count = 0;
    for (q, &v) in raw.iter().enumerate().skip(p) {
        let x = map::<OP>(v, c, q);
        top.push(x, base + q as u32);
        if COUNT {
            count += u32::from(if CMP == _CMP_GE_OQ { x >= s } else { x > s });
        }
    }
    count
}

/// # Safety
/// The CPU must have AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn segment_avx512(
    raw: &mut [f32],
    cols: Columns<'_>,
    base: u32,
    top: &mut TopK,
    seg: &Segment,
) -> usize {
    dispatch!(seg512, raw, cols, base, top, seg) as usize
}

#[target_feature(enable = "avx512f")]
fn seg512<const OP: u8, const COUNT: bool, const CMP: i32>(
    raw: &[f32],
    c: &[f32],
    base: u32,
    top: &mut TopK,
    s: f32,
) -> u32 {
    const L: usize = 16;
    let n = raw.len();
    assert!(OP == RAW || c.len() >= n);
    let sv = _mm512_set1_ps(s);
    let one = _mm512_set1_epi32(1);
    let mut counts = _mm512_setzero_si512();
    let mut p = 0;
    while p + L <= n {
        // SAFETY: p + 16 <= n <= raw.len(), c.len() (asserted).
        let x = unsafe {
            let x = _mm512_loadu_ps(raw.as_ptr().add(p));
            match OP {
                SCALE => _mm512_mul_ps(x, _mm512_loadu_ps(c.as_ptr().add(p))),
                SHIFT => _mm512_sub_ps(x, _mm512_loadu_ps(c.as_ptr().add(p))),
                _ => x,
            }
        };
        if COUNT {
            let before = _mm512_cmp_ps_mask::<CMP>(x, sv);
            counts = _mm512_mask_add_epi32(counts, before, counts, one);
        }
        let mut mask = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, _mm512_set1_ps(top.threshold));
        if mask != 0 {
            let mut lanes = [0f32; L];
            // SAFETY: `lanes` holds 16 values.
            unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), x) };
            while mask != 0 {
                let i = mask.trailing_zeros() as usize;
                mask &= mask - 1;
                // The threshold may have risen since the mask: push re-checks.
                top.push(lanes[i], base + (p + i) as u32);
            }
        }
        p += L;
    }
    let counted = _mm512_reduce_add_epi32(counts) as u32;
    counted + tail::<OP, COUNT, CMP>(raw, c, p, base, top, s)
}

/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn segment_avx2(
    raw: &mut [f32],
    cols: Columns<'_>,
    base: u32,
    top: &mut TopK,
    seg: &Segment,
) -> usize {
    dispatch!(seg256, raw, cols, base, top, seg) as usize
}

#[target_feature(enable = "avx2")]
fn seg256<const OP: u8, const COUNT: bool, const CMP: i32>(
    raw: &[f32],
    c: &[f32],
    base: u32,
    top: &mut TopK,
    s: f32,
) -> u32 {
    const L: usize = 8;
    let n = raw.len();
    assert!(OP == RAW || c.len() >= n);
    let sv = _mm256_set1_ps(s);
    // Each lane counts down by one (a true comparison is all ones, -1).
    let mut counts = _mm256_setzero_si256();
    let mut p = 0;
    while p + L <= n {
        // SAFETY: p + 8 <= n <= raw.len(), c.len() (asserted).
        let x = unsafe {
            let x = _mm256_loadu_ps(raw.as_ptr().add(p));
            match OP {
                SCALE => _mm256_mul_ps(x, _mm256_loadu_ps(c.as_ptr().add(p))),
                SHIFT => _mm256_sub_ps(x, _mm256_loadu_ps(c.as_ptr().add(p))),
                _ => x,
            }
        };
        if COUNT {
            let before = _mm256_castps_si256(_mm256_cmp_ps::<CMP>(x, sv));
            counts = _mm256_add_epi32(counts, before);
        }
        let gt = _mm256_cmp_ps::<_CMP_GT_OQ>(x, _mm256_set1_ps(top.threshold));
        let mut mask = _mm256_movemask_ps(gt) as u32;
        if mask != 0 {
            let mut lanes = [0f32; L];
            // SAFETY: `lanes` holds 8 values.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), x) };
            while mask != 0 {
                let i = mask.trailing_zeros() as usize;
                mask &= mask - 1;
                top.push(lanes[i], base + (p + i) as u32);
            }
        }
        p += L;
    }
    let mut lanes = [0i32; L];
    // SAFETY: `lanes` holds 8 values.
    unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), counts) };
    let counted = lanes.iter().map(|&v| v.unsigned_abs()).sum::<u32>();
    counted + tail::<OP, COUNT, CMP>(raw, c, p, base, top, s)
}
