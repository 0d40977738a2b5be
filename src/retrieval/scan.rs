//! The scan of one row of a score tile, in one pass: each raw inner product becomes an
//! internal score (the metric's per-column map), is offered to the query's top-k
//! selector, and is compared with the query's target (its best relevant item) to count
//! the items ranked before it. With AVX-512F or AVX2 the row is read 16 or 8 values at a
//! time and only the lanes that beat the selector's threshold are visited; otherwise
//! (the portable kernel) the row is mapped in place and scanned by [`TopK::scan`].
//!
//! Every path computes the same f32 values (one multiply or subtract per element) and
//! offers the same candidates in increasing gallery order, so the results are
//! identical whatever the path.

use super::kernel::Kernel;
use super::topk::TopK;

/// The map from the raw inner products of one tile row to internal scores (larger is
/// better); the slices hold one value per column of the row.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Columns<'a> {
    /// The raw value (inner product).
    Raw,
    /// `raw * c` (cosine: `c = 1/|g|`).
    Scale(&'a [f32]),
    /// `raw - h` (L2: `h = |g|^2 / 2`).
    Shift(&'a [f32]),
}

impl<'a> Columns<'a> {
    /// The map restricted to columns `a..b`.
    fn part(self, a: usize, b: usize) -> Columns<'a> {
        match self {
            Columns::Raw => Columns::Raw,
            Columns::Scale(c) => Columns::Scale(&c[a..b]),
            Columns::Shift(c) => Columns::Shift(&c[a..b]),
        }
    }

    /// Map `row` in place.
    fn apply(self, row: &mut [f32]) {
        match self {
            Columns::Raw => {}
            Columns::Scale(c) => row.iter_mut().zip(c).for_each(|(x, s)| *x *= s),
            Columns::Shift(c) => row.iter_mut().zip(c).for_each(|(x, h)| *x -= h),
        }
    }
}

/// What the scan of one query row keeps from tile to tile.
#[derive(Debug, Clone)]
pub(crate) struct RowScan {
    /// The query's top-k selector.
    pub top: TopK,
    /// The query's target (internal score, gallery row), when ranks are counted.
    pub target: Option<(f32, u32)>,
    /// A gallery row never offered nor counted (the query itself with `exclude_self`).
    pub skip: Option<u32>,
    /// Items ranked before the target so far.
    pub before: usize,
}

/// The packed operands of one tile, as [`Kernel::tile`] and [`Kernel::blocks`] take
/// them: `m` query rows packed in `a` (panels of [`Kernel::mr`] rows), `n` gallery rows
/// packed in `b` (panels of [`Kernel::nr`] rows), `d` dimensions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Panels<'a> {
    pub a: &'a [f32],
    pub m: usize,
    pub b: &'a [f32],
    pub n: usize,
    pub d: usize,
}

/// Score gallery rows `first..first + n` (packed in `panels.b`) against the `m` query
/// rows packed in `panels.a` and scan them into `rows` (one [`RowScan`] per query row) without
/// storing the tile: each micro-tile of [`Kernel::blocks`] is scanned from L1 right
/// after the kernel writes it. Every score is the one [`Kernel::tile`] gives, and each
/// row's candidates are offered in increasing gallery order, so the selectors and
/// counts end as [`scan_row`] on the stored tile leaves them. `cols` maps the `n`
/// columns. Returns `false` (doing nothing) when `kernel` has no fused scan.
pub(crate) fn scan_fused(
    kernel: Kernel,
    panels: Panels<'_>,
    cols: Columns<'_>,
    first: usize,
    rows: &mut [RowScan],
) -> bool {
    assert!(rows.len() >= panels.m);
    match kernel {
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 | Kernel::Avx2 => {
            let count = rows[..panels.m].iter().any(|r| r.target.is_some());
            // The gallery has at most u32::MAX rows (validated).
            let first = first as u32;
            let (op, c) = x86::op_terms(cols);
            let f = match (op, count) {
                (x86::SCALE, false) => fused::<{ x86::SCALE }, false>,
                (x86::SCALE, true) => fused::<{ x86::SCALE }, true>,
                (x86::SHIFT, false) => fused::<{ x86::SHIFT }, false>,
                (x86::SHIFT, true) => fused::<{ x86::SHIFT }, true>,
                (_, false) => fused::<{ x86::RAW }, false>,
                (_, true) => fused::<{ x86::RAW }, true>,
            };
            f(kernel, panels, c, first, rows)
        }
        _ => false,
    }
}

/// [`scan_fused`] for one column map and count setting (AVX-512 or AVX2).
#[cfg(target_arch = "x86_64")]
fn fused<const OP: u8, const COUNT: bool>(
    kernel: Kernel,
    panels: Panels<'_>,
    c: &[f32],
    first: u32,
    rows: &mut [RowScan],
) -> bool {
    let Panels { a, m, b, n, d } = panels;
    let w = kernel.block_width();
    assert!(w == x86::W512 || w == x86::W256);
    assert!(OP == x86::RAW || c.len() >= n);
    let mut scan = |r0: usize, c0: usize, nrows: usize, ncols: usize, blk: &[f32]| {
        // The column terms of the block, zero-padded to the panel width at the end.
        let mut pad = [0f32; x86::W512];
        let terms: &[f32] = if OP == x86::RAW {
            &pad[..w]
        } else if c0 + w <= c.len() {
            &c[c0..c0 + w]
        } else {
            pad[..ncols].copy_from_slice(&c[c0..c0 + ncols]);
            &pad[..w]
        };
        let base = first + c0 as u32;
        let rows = &mut rows[r0..r0 + nrows];
        if kernel == Kernel::Avx512 {
            // SAFETY: `scan_fused` is called with Avx512 only when the CPU has AVX-512F.
            unsafe { x86::block512::<OP, COUNT>(blk, terms, ncols, base, rows) }
        } else {
            // SAFETY: Kernel::detect returns Avx2 only when the CPU has AVX2 and FMA.
            unsafe { x86::block256::<OP, COUNT>(blk, terms, ncols, base, rows) }
        }
    };
    kernel.blocks(a, m, b, n, d, &mut scan)
}

/// Scan one tile row: `raw[p]` is the raw inner product with gallery row `first + p`
/// (`raw` may be overwritten). Offers the internal score of every position but `skip`
/// to `top`, and returns the number of those items ranked before `target` (internal
/// score, gallery row): a higher score, or the same score and a lower row; 0 without
/// a target.
pub(crate) fn scan_row(
    kernel: Kernel,
    raw: &mut [f32],
    cols: Columns<'_>,
    first: usize,
    skip: Option<usize>,
    top: &mut TopK,
    target: Option<(f32, u32)>,
) -> usize {
    let len = raw.len();
    // Positions before `split` rank before the target on an equal score.
    let split = target.map_or(len, |(_, j)| (j as usize).saturating_sub(first).min(len));
    let pieces = match skip.filter(|&p| p < len) {
        Some(p) => [(0, p), (p + 1, len)],
        None => [(0, len), (len, len)],
    };
    let score = target.map(|(s, _)| s);
    let mut count = 0;
    for (a, b) in pieces {
        let mid = split.clamp(a, b);
        for (lo, hi, ge) in [(a, mid, true), (mid, b, false)] {
            if lo < hi {
                let seg = Segment {
                    first: first + lo,
                    target: score,
                    ge,
                };
                count += seg.run(kernel, &mut raw[lo..hi], cols.part(lo, hi), top);
            }
        }
    }
    count
}

/// A run of consecutive columns of a row with one comparison against the target.
struct Segment {
    /// Gallery row of the first column.
    first: usize,
    /// The target's internal score, when ranks are counted.
    target: Option<f32>,
    /// Whether an equal score counts (the columns precede the target's row).
    ge: bool,
}

impl Segment {
    fn run(&self, kernel: Kernel, raw: &mut [f32], cols: Columns<'_>, top: &mut TopK) -> usize {
        // The gallery has at most u32::MAX rows (validated).
        let base = self.first as u32;
        match kernel {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: Kernel::detect returns Avx512 only when the CPU has AVX-512F.
            Kernel::Avx512 => unsafe { x86::segment_avx512(raw, cols, base, top, self) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: Kernel::detect returns Avx2 only when the CPU has AVX2 and FMA.
            Kernel::Avx2 => unsafe { x86::segment_avx2(raw, cols, base, top, self) },
            _ => {
                cols.apply(raw);
                top.scan(raw, base);
                self.count(raw)
            }
        }
    }

    /// The number of internal scores in `row` ranked before the target.
    fn count(&self, row: &[f32]) -> usize {
        let Some(s) = self.target else { return 0 };
        let n: u32 = if self.ge {
            row.iter().map(|&v| u32::from(v >= s)).sum()
        } else {
            row.iter().map(|&v| u32::from(v > s)).sum()
        };
        n as usize
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
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
            let (raw, base, top, seg): (&[f32], u32, &mut TopK, &Segment) =
                ($raw, $base, $top, $seg);
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retrieval::topk::rank_order;
    use crate::retrieval::Neighbor;

    /// Small integers (many exact ties), a few of them -0.0.
    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(7);
        (0..len)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                match (s >> 33) % 9 {
                    8 => -0.0,
                    v => v as f32 - 4.0,
                }
            })
            .collect()
    }

    /// One test row: raw scores, column terms, first gallery row, skipped position.
    type Row = (Vec<f32>, Vec<f32>, usize, Option<usize>);

    /// The k best internal scores of the rows (gallery rows `first..` each, position
    /// `skip` left out) by sorting, and the items ranked before the target.
    fn reference(
        rows: &[Row],
        op: u8,
        k: usize,
        target: Option<(f32, u32)>,
    ) -> (Vec<(f32, u32)>, usize) {
        let mut all = vec![];
        for (raw, c, first, skip) in rows {
            for (p, (&x, &cc)) in raw.iter().zip(c).enumerate() {
                if Some(p) == *skip {
                    continue;
                }
                let v = match op {
                    1 => x * cc,
                    2 => x - cc,
                    _ => x,
                };
                all.push(Neighbor {
                    score: v + 0.0,
                    index: (first + p) as u32,
                });
            }
        }
        let before = target.map_or(0, |(s, j)| {
            let t = Neighbor { score: s, index: j };
            all.iter().filter(|nb| rank_order(nb, &t).is_lt()).count()
        });
        all.sort_by(rank_order);
        all.truncate(k);
        (all.iter().map(|n| (n.score, n.index)).collect(), before)
    }

    #[test]
    fn every_path_matches_sorting() {
        for kernel in Kernel::supported() {
            for (case, &len) in [0usize, 1, 7, 8, 15, 16, 17, 33, 100].iter().enumerate() {
                let seed = case as u64;
                for op in 0..3u8 {
                    let c: Vec<f32> = values(2 * len, seed + 50)
                        .iter()
                        .map(|v| if op == 1 { v.abs() * 0.5 } else { *v })
                        .collect();
                    let skips = [None, Some(0), Some(len / 2), Some(len.saturating_sub(1))];
                    // Targets before, inside and after the rows; scores tied with many.
                    let targets = [
                        None,
                        Some((1.0, 0)),
                        Some((0.0, len as u32)),
                        Some((2.0, 3)),
                    ];
                    for (skip, target) in skips.into_iter().zip(targets) {
                        for k in [1, 3, 70] {
                            // Two consecutive rows (gallery rows 0..len, len..2 len) into
                            // one selector: the threshold carries over.
                            let rows = [
                                (values(len, seed), c[..len].to_vec(), 0, skip),
                                (values(len, seed + 9), c[len..].to_vec(), len, None),
                            ];
                            let mut top = TopK::new(k);
                            let mut before = 0;
                            for (raw, cr, first, sk) in &rows {
                                let cols = match op {
                                    1 => Columns::Scale(cr),
                                    2 => Columns::Shift(cr),
                                    _ => Columns::Raw,
                                };
                                let mut row = raw.clone();
                                before +=
                                    scan_row(kernel, &mut row, cols, *first, *sk, &mut top, target);
                            }
                            let got: Vec<(f32, u32)> =
                                top.finish().iter().map(|n| (n.score, n.index)).collect();
                            let (want, want_before) = reference(&rows, op, k, target);
                            let what = format!("{kernel:?} len={len} op={op} {skip:?} {target:?}");
                            assert_eq!(got.len(), want.len(), "{what} k={k}");
                            for (g, w) in got.iter().zip(&want) {
                                assert_eq!((g.0.to_bits(), g.1), (w.0.to_bits(), w.1), "{what}");
                            }
                            assert_eq!(before, want_before, "{what} k={k}");
                        }
                    }
                }
            }
        }
    }
}
