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

#[cfg(target_arch = "x86_64")]
mod x86;

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
