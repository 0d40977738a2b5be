//! The metrics' exact search with an integer prefilter.
//!
//! [`super::evaluate`] needs, per query, only the gallery items that could rank before
//! its worst relevant item: its best R items all score at least that item's score (the
//! query's *floor*; the R relevant items themselves do), and so do the items ranked
//! before its best relevant item. Every other item can be dropped unseen.
//!
//! Both operands are quantized per vector, the queries to integers in `-63..=63`, the
//! gallery to `-31..=31` (scale `max|x| / 63` or `/ 31`), and their integer inner
//! products are computed with AVX2's `vpmaddubsw` (32 multiply-adds per instruction;
//! 16-bit partial sums widened every 16 dimensions; the query side is stored as unsigned
//! `q' + 64` and the offset removed per column). For query `q` and gallery row `g` with
//! scales `s_q`, `s_g`, quantized vectors `q'`, `g'` and integer product `I = q'·g'`,
//! the exact f32 score `v` the kernels compute (one FMA chain over `d` dimensions)
//! satisfies, by Cauchy-Schwarz on `q·g - s_q q'·s_g g' = (q - s_q q')·g +
//! s_q q'·(g - s_g g')` and the chain's own rounding (`γ_d = d u / (1 - d u)`,
//! `u = 2^-24`),
//!
//! `|v - s_q s_g I| <= (|q - s_q q'|_2 + γ_d |q|_2) |g|_2 + |s_q q'|_2 |g - s_g g'|_2`.
//!
//! An item whose upper bound on the internal score (the metric's column map of `v`),
//! less a margin for the f32 rounding of the bound itself, stays below what the query
//! still needs cannot matter and is dropped. What a query needs: its best R items all
//! score at least its *floor* (the lowest score of its R relevant items) and at least the
//! k-th best score offered so far; the items ranked before its best relevant item score
//! at least that item's score. Every other item is scored by the exact FMA chain (eight
//! chains at a time, bit-identical to the kernels' tiles) and offered to the query's
//! selector and rank count exactly as the full scan offers it, in increasing gallery
//! order. The metrics are therefore identical to the full scan's; only the number of
//! f32 chains changes.
//!
//! The prefilter declines (the caller runs the full scan) without AVX2 + FMA, with
//! fewer than `8 x threads` queries (the full scan splits the gallery between threads
//! instead), for `d > 4096` (the integer products must stay exact in f32), and for values whose
//! magnitudes could make the f32 bound underflow or overflow.

use super::scan::Columns;
use super::targets::Target;
use super::topk::{selector_bytes, Neighbor, TopK, SELECTOR_BYTES};
use super::RetrievalError;
use crate::runtime::Monitor;
use quantize::{quantize, up, Gallery, Query};
use rayon::prelude::*;

mod quantize;
#[cfg(target_arch = "x86_64")]
mod x86;

/// Largest quantized magnitude of a query and of a gallery row.
const QMAX_Q: f64 = 63.0;
const QMAX_G: f64 = 31.0;
/// Offset of the unsigned query values (`q' + OFFSET` in `1..=127`).
const OFFSET: i32 = 64;
/// Query rows of the micro-kernel.
pub(crate) const MR: usize = 4;
/// Gallery columns of the micro-kernel (two vectors of eight 32-bit sums).
pub(crate) const NR: usize = 16;
/// Groups of four dimensions summed in 16 bits before widening: each `vpmaddubsw` lane
/// is at most `2 * 127 * 31 = 7874`, and 4 of them stay below `2^15`.
const WIDEN: usize = 4;
/// Largest dimension: `|I| <= 63 * 31 * d` must stay below `2^24`.
const MAX_D: usize = 4096;
/// Gallery columns per block (kept in L2 while a chunk of queries passes over it).
const BLOCK: usize = 1024;
/// Query rows per task (at most; a multiple of [`MR`]).
const CHUNK: usize = 64;
/// Magnitudes the bound's f32 arithmetic handles without underflow or overflow.
const RANGE: (f64, f64) = (1e-12, 1e12);
/// f32 unit roundoff.
const U: f64 = 1.0 / 16_777_216.0;

/// A query's list (internal scores, best first) and its rank count.
pub(crate) type Ranked = (Vec<Neighbor>, usize);

/// What [`lists`] computed: every query's list and rank count, and how much work the
/// prefilter left (the engine keeps the lists; tests read the rest).
#[derive(Debug)]
pub(crate) struct Pruned {
    /// One per query, in query order.
    pub lists: Vec<Ranked>,
    /// (query, gallery item) pairs scored by the exact f32 chain: the items the prefilter
    /// could not drop (at most `n * m`). Only the tests read it.
    #[cfg_attr(not(test), allow(dead_code))]
    pub exact: u64,
    /// Queries per task (each task's top-k selectors stay within [`SELECTOR_BYTES`]).
    /// Only the tests read it.
    #[cfg_attr(not(test), allow(dead_code))]
    pub rows_per_task: usize,
}

/// Queries per task for `n` queries on `threads` threads with lists of at most `k_max`
/// items: enough tasks for the threads, at most [`CHUNK`], a multiple of [`MR`], and
/// (but for [`MR`] rows at least) within [`SELECTOR_BYTES`] of selectors, as the full
/// scan's tasks are.
fn task_rows(n: usize, threads: usize, k_max: usize) -> usize {
    let fit = (SELECTOR_BYTES / selector_bytes(k_max)).max(MR);
    (n / (2 * threads)).clamp(MR, CHUNK).min(fit) / MR * MR
}

/// Where one query stands during the scan.
struct RowState {
    top: TopK,
    before: usize,
    target: Target,
    /// The `k` best exact scores offered so far, best first (only for `k <= TRACK`).
    best: Vec<f32>,
    k: usize,
    /// The current f32 threshold on the bound.
    threshold: f32,
    /// Candidates of the current block, then their raw scores.
    cands: Vec<u32>,
    raw: Vec<f32>,
}

/// Lists up to this length keep their k-th best score exactly as the scan goes, so the
/// prefilter's threshold rises with it.
const TRACK: usize = 32;

impl RowState {
    /// The lowest internal score an item may have and still matter: it must reach the
    /// query's best `k` (at least the floor, and at least the k-th best offered so far)
    /// or rank before its best relevant item.
    fn needed(&self, rank_cap: usize) -> f32 {
        let kth = if self.best.len() == self.k {
            self.best[self.k - 1].max(self.top.threshold)
        } else {
            self.top.threshold
        };
        if self.before >= rank_cap {
            // The rank is known to be at least the cap: it need not grow exactly.
            return self.target.floor.max(kth);
        }
        self.target.floor.max(kth.min(self.target.score))
    }

    /// Offer the exact internal score `v` of gallery row `j` (rows in increasing order),
    /// as the full scan does.
    fn offer(&mut self, j: u32, v: f32) {
        let t = self.target;
        let ranks_before = if j < t.index {
            v >= t.score
        } else {
            v > t.score
        };
        self.before += usize::from(ranks_before);
        self.top.push(v, j);
        if self.k <= TRACK {
            let v = v + 0.0;
            // Ties keep the earlier row: insert after equal scores.
            let pos = self.best.partition_point(|&b| b >= v);
            if pos < self.k {
                if self.best.len() == self.k {
                    self.best.pop();
                }
                self.best.insert(pos, v);
            }
        }
    }
}

/// What the metrics search wants of every query's list: its target (best relevant item
/// and floor; `None`: no relevant item, an empty list), its length `ks[i]`, the rank
/// from which counts need not be exact, and whether the query's own row is left out.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Wanted<'a> {
    pub targets: &'a [Option<Target>],
    pub ks: &'a [usize],
    pub rank_cap: usize,
    pub exclude_self: bool,
}

/// The lists and rank counts of [`super::engine`]'s metrics search, computed with the
/// prefilter: for every query, its `ks[i]` best (internal scores) and the number of
/// items ranked before its target, exactly as the full scan gives them (a count that
/// reaches `rank_cap` may be short of the full scan's, but stays at least `rank_cap`).
/// Queries without a target get an empty list. `Ok(None)` when the prefilter declines
/// (see the module documentation).
pub(crate) fn lists(
    q: &[f32],
    g: &[f32],
    d: usize,
    cols: Columns<'_>,
    wanted: &Wanted<'_>,
    monitor: &Monitor<'_>,
) -> Result<Option<Pruned>, RetrievalError> {
    let Wanted {
        targets,
        ks,
        rank_cap,
        exclude_self,
    } = *wanted;
    if !available() || d == 0 || d > MAX_D {
        return Ok(None);
    }
    let n = q.len() / d;
    let m = g.len() / d;
    // Tasks are chunks of queries: too few queries to keep every thread busy (the full
    // scan then splits the gallery instead).
    let threads = rayon::current_num_threads().max(1);
    if n.div_ceil(MR) < 2 * threads {
        return Ok(None);
    }
    let chunk = task_rows(n, threads, ks.iter().copied().max().unwrap_or(1));
    let Some(gal) = Gallery::new(g, m, d, cols) else {
        return Ok(None);
    };
    let stride = gal.quads * 4;
    // Queries padded to whole micro-kernel rows; padding rows are zeros (+ OFFSET).
    let rows_padded = n.div_ceil(MR) * MR;
    let mut qpacked = vec![OFFSET as u8; rows_padded * stride];
    let gamma = d as f64 * U / (1.0 - d as f64 * U);
    let queries: Vec<Option<Query>> = qpacked
        .par_chunks_mut(stride)
        .zip(q.par_chunks(d))
        .map(|(row, x)| {
            let st = quantize(x, QMAX_Q, |k, v| row[k] = (v + OFFSET) as u8)?;
            let slack = 1.0 + 1e-6;
            let a = up((st.residual + gamma * st.l2) * slack);
            let b = up(st.ql2 * slack);
            let scale = st.scale as f32;
            // The f32 evaluation of the bound: a few roundings of terms no larger than
            // these (|I| <= 31 |q'|_1).
            let terms = QMAX_G * st.ql1 * st.scale * gal.max_scale
                + f64::from(a) * gal.max_norm
                + f64::from(b) * gal.max_residual
                + gal.max_shift;
            let ok = a.is_finite() && b.is_finite() && scale.is_normal() && terms.is_finite();
            ok.then_some(Query {
                scale,
                a,
                b,
                margin: 16.0 * U * terms,
            })
        })
        .collect();
    let Some(queries) = queries.into_iter().collect::<Option<Vec<Query>>>() else {
        return Ok(None);
    };
    let panels = m.div_ceil(NR);
    let per_block = BLOCK / NR;
    let chunks: Vec<(Vec<Ranked>, u64)> = (0..n.div_ceil(chunk))
        .into_par_iter()
        .map(|c| {
            let rows = c * chunk..((c + 1) * chunk).min(n);
            let mut states: Vec<Option<RowState>> = rows
                .clone()
                .map(|i| {
                    targets[i].map(|target| {
                        let k = ks[i].max(1);
                        RowState {
                            top: TopK::new(k),
                            before: 0,
                            target,
                            best: Vec::new(),
                            k,
                            threshold: queries[i].threshold(target.floor),
                            cands: Vec::new(),
                            raw: Vec::new(),
                        }
                    })
                })
                .collect();
            let mut bits: Vec<u32> = Vec::with_capacity(MR * per_block);
            let mut exact = 0u64;
            // Blocks grow from 4 panels to `per_block`: the thresholds start at the
            // floors and rise after each block, so the first blocks are kept small.
            let (mut b0, mut size) = (0, 4.min(per_block));
            while b0 < panels {
                monitor.check()?;
                let b1 = (b0 + size).min(panels);
                for r0 in rows.clone().step_by(MR) {
                    let r1 = (r0 + MR).min(rows.end);
                    let group = &mut states[r0 - rows.start..r1 - rows.start];
                    if group.iter().all(Option::is_none) {
                        continue;
                    }
                    let a = &qpacked[r0 * stride..(r0 + MR) * stride];
                    let mut params = [[0.0, 0.0, 0.0, f32::INFINITY]; MR];
                    for (r, st) in group.iter().enumerate() {
                        if let Some(st) = st {
                            let qi = &queries[r0 + r];
                            params[r] = [qi.scale, qi.a, qi.b, st.threshold];
                        }
                    }
                    bits.clear();
                    bits.resize(MR * (b1 - b0), 0);
                    // SAFETY: `available()` checked AVX2 and FMA.
                    unsafe { x86::scan_block(a, stride, &gal, b0..b1, &params, &mut bits) };
                    for (pi, pb) in bits.chunks_exact(MR).enumerate() {
                        let j0 = (b0 + pi) * NR;
                        for (r, st) in group.iter_mut().enumerate() {
                            let Some(st) = st else { continue };
                            let mut bits = pb[r];
                            while bits != 0 {
                                let c = bits.trailing_zeros() as usize;
                                bits &= bits - 1;
                                let j = j0 + c;
                                if j < m && !(exclude_self && j == r0 + r) {
                                    // The gallery has at most u32::MAX rows (validated).
                                    st.cands.push(j as u32);
                                }
                            }
                        }
                    }
                    for (r, st) in group.iter_mut().enumerate() {
                        let Some(st) = st else { continue };
                        if st.cands.is_empty() {
                            continue;
                        }
                        let i = r0 + r;
                        exact += st.cands.len() as u64;
                        let mut raw = std::mem::take(&mut st.raw);
                        raw.clear();
                        // SAFETY: `available()` checked FMA.
                        unsafe { x86::chains(&q[i * d..(i + 1) * d], g, d, &st.cands, &mut raw) };
                        let cands = std::mem::take(&mut st.cands);
                        for (&j, &v) in cands.iter().zip(&raw) {
                            st.offer(j, internal(cols, j as usize, v));
                        }
                        st.cands = cands;
                        st.cands.clear();
                        st.raw = raw;
                        st.threshold = queries[i].threshold(st.needed(rank_cap));
                    }
                }
                b0 = b1;
                size = (2 * size).min(per_block);
            }
            let lists = states
                .into_iter()
                .map(|st| match st {
                    Some(mut st) => (st.top.finish(), st.before),
                    None => (Vec::new(), 0),
                })
                .collect();
            Ok((lists, exact))
        })
        .collect::<Result<_, RetrievalError>>()?;
    let exact = chunks.iter().map(|c| c.1).sum();
    Ok(Some(Pruned {
        lists: chunks.into_iter().flat_map(|c| c.0).collect(),
        exact,
        rows_per_task: chunk,
    }))
}

/// The internal score of gallery row `j` from its raw inner product (the map of
/// [`Columns`], as the scans apply it).
#[inline]
fn internal(cols: Columns<'_>, j: usize, v: f32) -> f32 {
    match cols {
        Columns::Raw => v,
        Columns::Scale(c) => v * c[j],
        Columns::Shift(h) => v - h[j],
    }
}

/// Whether the CPU has the prefilter's instructions (and the FMA of the exact chain).
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod x86 {
    //! Never called: [`super::available`] is false off x86_64.
    use super::quantize::Gallery;
    use super::MR;

    pub(super) unsafe fn scan_block(
        _: &[u8],
        _: usize,
        _: &Gallery,
        _: std::ops::Range<usize>,
        _: &[[f32; 4]; MR],
        _: &mut [u32],
    ) {
        unreachable!("the prefilter is only used on x86_64")
    }

    pub(super) unsafe fn chains(_: &[f32], _: &[f32], _: usize, _: &[u32], _: &mut Vec<f32>) {
        unreachable!("the prefilter is only used on x86_64")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_rows_keep_the_selectors_within_the_cap() {
        for threads in [1, 2, 16] {
            for n in [8, 100, 10_000] {
                for k in [1, 100, 65_536, 140_000, 1_000_000, 100_000_000] {
                    let rows = task_rows(n, threads, k);
                    assert!(
                        rows >= MR && rows.is_multiple_of(MR) && rows <= CHUNK,
                        "{n} {threads} {k}"
                    );
                    // Only a task of the fewest rows (MR) may exceed the cap.
                    let bytes = rows * selector_bytes(k);
                    assert!(
                        rows == MR || bytes <= SELECTOR_BYTES,
                        "{n} {threads} {k}: {bytes}"
                    );
                }
            }
        }
        // Short lists: as many rows as keep the threads busy, at most CHUNK.
        assert_eq!(task_rows(10_000, 2, 5), CHUNK);
        assert_eq!(task_rows(64, 2, 5), 16);
        // 140,000 items a list: 2.24 MB a selector, 29 fit in 64 MiB, 28 rows.
        assert_eq!(task_rows(10_000, 2, 140_000), 28);
    }
}
