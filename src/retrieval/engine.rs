//! The CPU search engine: tiles of `queries x gallery` scores computed by the kernels of
//! [`super::kernel`] (single-threaded per tile; AVX-512 or AVX2 micro-kernels on packed
//! panels chosen at run time, else the `gemm` crate), each tile row scanned right away, in one
//! pass ([`super::scan`]), into per-query streaming top-k selectors. The gallery is packed once per search, each
//! chunk of queries once per task.
//!
//! Parallelism: one rayon task per chunk of query rows, each walking the whole gallery
//! (no synchronisation, no merging). When there are too few query chunks to keep the
//! threads busy, the gallery is also split into shards whose partial lists are merged.

use super::kernel::Kernel;
use super::prefilter;
use super::scan::{scan_fused, scan_row, Columns, RowScan};
use super::topk::{merge, rank_order, Neighbor, TopK};
use super::{standard, validate, validate_k, Blocks, KnnOptions, Metric, RetrievalError};
use crate::runtime::Monitor;
use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

/// The result of a k-nearest-neighbour search: `n_queries x k` scores and gallery
/// indices, best first (ties broken by the lower gallery index).
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbors {
    /// Cosine similarities / inner products (descending) or squared L2 distances
    /// (ascending).
    pub scores: Array2<f32>,
    /// Gallery row of each neighbour.
    pub indices: Array2<i64>,
}

/// Exact k nearest gallery rows of every query row, with default options (see
/// [`knn_with`]).
pub fn knn(
    queries: ArrayView2<'_, f32>,
    gallery: ArrayView2<'_, f32>,
    k: usize,
    metric: Metric,
) -> Result<Neighbors, RetrievalError> {
    knn_with(
        queries,
        gallery,
        k,
        &KnnOptions::new(metric),
        &Monitor::none(),
    )
}

/// Exact k nearest gallery rows of every query row.
///
/// Errors: empty inputs, dimension mismatch, NaN/inf values, `k` outside
/// `1..=gallery rows` (minus one with `exclude_self`), cancellation through `monitor`.
pub fn knn_with(
    queries: ArrayView2<'_, f32>,
    gallery: ArrayView2<'_, f32>,
    k: usize,
    options: &KnnOptions,
    monitor: &Monitor<'_>,
) -> Result<Neighbors, RetrievalError> {
    let available = validate(&queries, &gallery, options.exclude_self)?;
    validate_k(k, available, options.exclude_self)?;
    let lists = search(queries, gallery, k, None, options, monitor, |_, list, _| {
        list.to_vec()
    })?;
    let n = lists.len();
    let mut scores = Array2::<f32>::zeros((n, k));
    let mut indices = Array2::<i64>::zeros((n, k));
    for (i, list) in lists.iter().enumerate() {
        for (j, nb) in list.iter().enumerate() {
            scores[[i, j]] = nb.score;
            indices[[i, j]] = i64::from(nb.index);
        }
    }
    Ok(Neighbors { scores, indices })
}

/// Per-metric data: per-gallery-column transform applied to each tile row, and the
/// per-query conversion of internal scores (larger is better) to reported scores.
struct Prepared {
    metric: Metric,
    /// Cosine: 1/|g_j|; L2: |g_j|^2 / 2; inner product: empty.
    column: Vec<f32>,
    /// Cosine: 1/|q_i|; L2: |q_i|^2; inner product: empty.
    row: Vec<f32>,
}

/// Squared row norms, accumulated in f64.
fn squared_norms(a: &ArrayView2<'_, f32>) -> Vec<f64> {
    (0..a.nrows())
        .into_par_iter()
        .map(|i| {
            a.row(i)
                .iter()
                .map(|&v| f64::from(v) * f64::from(v))
                .sum::<f64>()
        })
        .collect()
}

fn inverse_norms(a: &ArrayView2<'_, f32>) -> Vec<f32> {
    squared_norms(a)
        .into_iter()
        .map(|s| {
            if s > 0.0 {
                (1.0 / s.sqrt()) as f32
            } else {
                0.0
            }
        })
        .collect()
}

impl Prepared {
    fn new(metric: Metric, q: &ArrayView2<'_, f32>, g: &ArrayView2<'_, f32>) -> Self {
        let (column, row) = match metric {
            Metric::InnerProduct => (vec![], vec![]),
            Metric::Cosine => (inverse_norms(g), inverse_norms(q)),
            Metric::L2 => (
                squared_norms(g)
                    .into_iter()
                    .map(|s| (0.5 * s) as f32)
                    .collect(),
                squared_norms(q).into_iter().map(|s| s as f32).collect(),
            ),
        };
        Prepared {
            metric,
            column,
            row,
        }
    }

    /// The map of the raw inner products of gallery rows `first..first + len` to
    /// internal scores.
    #[inline]
    fn columns(&self, first: usize, len: usize) -> Columns<'_> {
        match self.metric {
            Metric::InnerProduct => Columns::Raw,
            Metric::Cosine => Columns::Scale(&self.column[first..first + len]),
            Metric::L2 => Columns::Shift(&self.column[first..first + len]),
        }
    }

    /// The internal score of gallery row `j` from its raw inner product (the same
    /// operation as the map of [`Self::columns`]).
    #[inline]
    fn internal(&self, j: usize, v: f32) -> f32 {
        match self.metric {
            Metric::InnerProduct => v,
            Metric::Cosine => v * self.column[j],
            Metric::L2 => v - self.column[j],
        }
    }

    /// The reported score of query `i` from an internal score.
    #[inline]
    fn report(&self, i: usize, v: f32) -> f32 {
        match self.metric {
            Metric::InnerProduct => v,
            Metric::Cosine => v * self.row[i],
            Metric::L2 => (self.row[i] - 2.0 * v).max(0.0),
        }
    }
}

/// Upper bound on the memory of the top-k selectors of one task.
pub(crate) const SELECTOR_BYTES: usize = 64 << 20;

/// The relevant gallery rows of every query, for [`search`] on behalf of the metrics:
/// query `i`'s are `rows[start[i]..start[i + 1]]` (never `i` itself with `exclude_self`).
pub(crate) struct Relevant<'a> {
    /// Relevant gallery rows, query after query.
    pub rows: &'a [u32],
    /// `n_queries + 1` offsets into `rows`.
    pub start: &'a [usize],
    /// Ranks from this one on need not be exact: a rank reported at or above it may be
    /// smaller than the true rank (but the true rank is then at least this too).
    pub rank_cap: usize,
}

/// A query's best relevant item (its internal score and gallery row) and its floor:
/// the lowest internal score of its relevant items. Every item among the query's best
/// R, and every item ranked before its best relevant one, scores at least the floor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Target {
    pub score: f32,
    pub index: u32,
    pub floor: f32,
}

/// The target of every query that has a relevant item, computed exactly as the tiles
/// compute scores (the kernels' FMA chain); `None` when the kernel does not guarantee
/// that chain or the work would not pay.
fn best_relevant(
    kernel: Kernel,
    q: &[f32],
    g: &[f32],
    d: usize,
    prepared: &Prepared,
    rel: &Relevant<'_>,
) -> Option<Vec<Option<Target>>> {
    let n = rel.start.len() - 1;
    let m = g.len() / d;
    if kernel == Kernel::Portable || !fma_available() || !ranks_pay(rel.rows.len(), n, m) {
        return None;
    }
    Some(
        (0..n)
            .into_par_iter()
            .map(|i| {
                let qi = &q[i * d..(i + 1) * d];
                let mut best: Option<Neighbor> = None;
                let mut floor = f32::INFINITY;
                for &j in &rel.rows[rel.start[i]..rel.start[i + 1]] {
                    let ju = j as usize;
                    let v = prepared.internal(ju, fma_chain(qi, &g[ju * d..(ju + 1) * d]));
                    let nb = Neighbor {
                        score: v + 0.0,
                        index: j,
                    };
                    floor = floor.min(nb.score);
                    if best.is_none_or(|b| rank_order(&nb, &b).is_lt()) {
                        best = Some(nb);
                    }
                }
                best.map(|b| Target {
                    score: b.score,
                    index: b.index,
                    floor,
                })
            })
            .collect(),
    )
}

/// Whether scoring `total` (query, relevant row) pairs one by one is cheap next to the
/// `n x m` search: a scalar FMA chain costs about as much as 64 multiply-adds of the
/// GEMM.
pub(crate) fn ranks_pay(total: usize, n: usize, m: usize) -> bool {
    total.saturating_mul(64) <= n.saturating_mul(m)
}

fn fma_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `fold(0, |s, (x, y)| fma(x, y, s))`: the score of the kernels. Only called when
/// [`fma_available`].
fn fma_chain(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "fma")]
        fn chain(a: &[f32], b: &[f32]) -> f32 {
            a.iter().zip(b).fold(0.0f32, |s, (&x, &y)| x.mul_add(y, s))
        }
        // SAFETY: callers check fma_available().
        unsafe { chain(a, b) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        a.iter().zip(b).fold(0.0f32, |s, (&x, &y)| x.mul_add(y, s))
    }
}

/// Run the search and call `f(query, neighbours, rank)` for every query with its final,
/// ranked list (reported scores). Returns the values of `f` in query order. Inputs must
/// already be validated.
///
/// Without `relevant`, every list holds the `k` best. With `relevant`, when the kernel
/// allows it, query `i`'s list holds its best `max(R_i, 1)` only and `rank` is
/// `Some(number of gallery items ranked before its best relevant item)` (the 0-based
/// rank of its first hit, exact below `relevant.rank_cap`; `None` for a query without
/// relevant items, whose list may then be empty); otherwise the lists hold `k` items and
/// `rank` is `None`.
pub(crate) fn search<T, F>(
    queries: ArrayView2<'_, f32>,
    gallery: ArrayView2<'_, f32>,
    k: usize,
    relevant: Option<&Relevant<'_>>,
    options: &KnnOptions,
    monitor: &Monitor<'_>,
    f: F,
) -> Result<Vec<T>, RetrievalError>
where
    T: Send,
    F: Fn(usize, &[Neighbor], Option<usize>) -> T + Sync,
{
    let path = Path {
        kernel: Kernel::detect(),
        fused: true,
        prefilter: true,
    };
    search_on(path, queries, gallery, k, relevant, options, monitor, f)
}

/// The kernel of a search and whether the tiles are scanned in the kernel's blocks
/// ([`scan_fused`], when the kernel has that path) or stored and scanned row by row.
#[derive(Debug, Clone, Copy)]
struct Path {
    kernel: Kernel,
    fused: bool,
    /// Metrics searches (with targets) use [`prefilter::lists`] when it accepts.
    prefilter: bool,
}

/// [`search`] on a given path (tests compare the paths).
#[allow(clippy::too_many_arguments)]
fn search_on<T, F>(
    path: Path,
    queries: ArrayView2<'_, f32>,
    gallery: ArrayView2<'_, f32>,
    k: usize,
    relevant: Option<&Relevant<'_>>,
    options: &KnnOptions,
    monitor: &Monitor<'_>,
    f: F,
) -> Result<Vec<T>, RetrievalError>
where
    T: Send,
    F: Fn(usize, &[Neighbor], Option<usize>) -> T + Sync,
{
    let q = standard(queries);
    let g = standard(gallery);
    let (n, d) = q.dim();
    let m = g.nrows();
    let (Some(qs), Some(gs)) = (q.as_slice(), g.as_slice()) else {
        return Err(RetrievalError::InvalidParameter(
            "internal: inputs are not contiguous".to_string(),
        ));
    };
    let prepared = Prepared::new(options.metric, &q.view(), &g.view());
    let Blocks {
        queries: qb,
        gallery: gb,
    } = options.blocks;
    if qb == 0 || gb == 0 {
        return Err(RetrievalError::InvalidParameter(format!(
            "block sizes must be positive, got {qb}x{gb}"
        )));
    }
    let kernel = path.kernel;
    let targets = relevant.and_then(|rel| best_relevant(kernel, qs, gs, d, &prepared, rel));
    // List length of each query.
    let ks: Vec<usize> = match (&targets, relevant) {
        (Some(_), Some(rel)) => (0..n)
            .map(|i| (rel.start[i + 1] - rel.start[i]).max(1))
            .collect(),
        _ => vec![k; n],
    };
    let k = ks.iter().copied().max().unwrap_or(1);
    // Keep the selectors of one task within SELECTOR_BYTES.
    let qb = qb
        .min((SELECTOR_BYTES / prefilter::selector_bytes(k)).max(8))
        .min(n);
    // Gallery tiles start on panel boundaries: their width is a multiple of the
    // kernel's panel (unless one tile covers the whole gallery).
    let gb = (gb.div_ceil(kernel.nr()) * kernel.nr()).min(m);
    let finish = |q0: usize, lists: Vec<(Vec<Neighbor>, usize)>| -> Vec<T> {
        lists
            .into_iter()
            .enumerate()
            .map(|(r, (mut list, before))| {
                let i = q0 + r;
                for nb in &mut list {
                    nb.score = prepared.report(i, nb.score);
                }
                let rank = targets.as_ref().and_then(|t| t[i].map(|_| before));
                f(i, &list, rank)
            })
            .collect()
    };

    let rank_cap = relevant.map_or(usize::MAX, |r| r.rank_cap);
    if let (true, Some(t)) = (path.prefilter, targets.as_deref()) {
        let cols = prepared.columns(0, m);
        if let Some(pruned) = prefilter::lists(
            qs,
            gs,
            d,
            cols,
            t,
            &ks,
            rank_cap,
            options.exclude_self,
            monitor,
        )? {
            return Ok(finish(0, pruned.lists));
        }
    }
    let packed_gallery = Kernel::pack(gs, m, d, kernel.nr());

    let n_chunks = n.div_ceil(qb);
    let n_blocks = m.div_ceil(gb);
    let threads = rayon::current_num_threads().max(1);
    let shards = if n_chunks >= 2 * threads {
        1
    } else {
        (4 * threads).div_ceil(n_chunks).min(n_blocks).max(1)
    };
    let ctx = Ctx {
        q: qs,
        g: &packed_gallery,
        kernel,
        fused: path.fused,
        d,
        gb,
        ks: &ks,
        targets: targets.as_deref(),
        exclude_self: options.exclude_self,
        prepared: &prepared,
        monitor,
    };
    let chunk_range = |c: usize| c * qb..((c + 1) * qb).min(n);
    let shard_range = |s: usize| {
        let b0 = s * n_blocks / shards;
        let b1 = (s + 1) * n_blocks / shards;
        (b0 * gb).min(m)..(b1 * gb).min(m)
    };
    let per_chunk: Vec<Vec<T>> = if shards == 1 {
        (0..n_chunks)
            .into_par_iter()
            .map(|c| {
                let rows = chunk_range(c);
                let lists = ctx.run(rows.clone(), 0..m)?;
                Ok(finish(rows.start, lists))
            })
            .collect::<Result<_, RetrievalError>>()?
    } else {
        let parts: Vec<Vec<(Vec<Neighbor>, usize)>> = (0..n_chunks * shards)
            .into_par_iter()
            .map(|t| ctx.run(chunk_range(t / shards), shard_range(t % shards)))
            .collect::<Result<_, RetrievalError>>()?;
        parts
            .chunks(shards)
            .enumerate()
            .map(|(c, shard_lists)| {
                let rows = chunk_range(c);
                let lists = (0..rows.len())
                    .map(|r| {
                        let mine: Vec<Vec<Neighbor>> =
                            shard_lists.iter().map(|s| s[r].0.clone()).collect();
                        let before = shard_lists.iter().map(|s| s[r].1).sum();
                        (merge(&mine, ks[rows.start + r]), before)
                    })
                    .collect();
                finish(rows.start, lists)
            })
            .collect()
    };
    Ok(per_chunk.into_iter().flatten().collect())
}

/// What every task needs.
struct Ctx<'a, 'm> {
    /// Queries, row-major.
    q: &'a [f32],
    /// Gallery, packed in panels of `kernel.nr()` rows.
    g: &'a [f32],
    kernel: Kernel,
    /// Scan in the kernel's blocks when it can ([`scan_fused`]).
    fused: bool,
    d: usize,
    gb: usize,
    /// List length of each query.
    ks: &'a [usize],
    /// Best relevant item of each query (internal score, row), when ranks are counted.
    targets: Option<&'a [Option<Target>]>,
    exclude_self: bool,
    prepared: &'a Prepared,
    monitor: &'a Monitor<'m>,
}

impl Ctx<'_, '_> {
    /// Top-k lists (internal scores) of query rows `rows` over gallery rows `cols`, and
    /// the number of those gallery rows ranked before each query's target (0 without).
    fn run(
        &self,
        rows: std::ops::Range<usize>,
        cols: std::ops::Range<usize>,
    ) -> Result<Vec<(Vec<Neighbor>, usize)>, RetrievalError> {
        let d = self.d;
        let qlen = rows.len();
        let a = Kernel::pack(
            &self.q[rows.start * d..rows.end * d],
            qlen,
            d,
            self.kernel.mr(),
        );
        let mut states: Vec<RowScan> = rows
            .clone()
            .map(|i| RowScan {
                top: TopK::new(self.ks[i]),
                target: self.targets.and_then(|t| t[i].map(|t| (t.score, t.index))),
                // The gallery has at most u32::MAX rows (validated).
                skip: self.exclude_self.then_some(i as u32),
                before: 0,
            })
            .collect();
        // The stored tile, only for kernels without a fused scan.
        let mut tile = Vec::new();
        let mut g0 = cols.start;
        while g0 < cols.end {
            self.monitor.check()?;
            let g1 = (g0 + self.gb).min(cols.end);
            let glen = g1 - g0;
            // g0 is a multiple of the panel width: its panel starts at row g0.
            let b = &self.g[g0 * d..];
            let map = self.prepared.columns(g0, glen);
            if self.fused && scan_fused(self.kernel, &a, qlen, b, glen, d, map, g0, &mut states) {
                g0 = g1;
                continue;
            }
            tile.resize(qlen * self.gb.min(cols.len()), 0f32);
            let tile = &mut tile[..qlen * glen];
            self.kernel.tile(tile, &a, qlen, b, glen, d);
            for (r, (row, st)) in tile.chunks_exact_mut(glen).zip(&mut states).enumerate() {
                let i = rows.start + r;
                let skip = (self.exclude_self && (g0..g1).contains(&i)).then(|| i - g0);
                st.before += scan_row(self.kernel, row, map, g0, skip, &mut st.top, st.target);
            }
            g0 = g1;
        }
        Ok(states
            .iter_mut()
            .map(|st| (st.top.finish(), st.before))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    /// Small deterministic pseudo-random integers in -3..=3 (exact arithmetic in f32).
    fn ints(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        Array2::from_shape_fn((rows, cols), |_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) % 7) as f32 - 3.0
        })
    }

    fn brute(
        q: &Array2<f32>,
        g: &Array2<f32>,
        k: usize,
        metric: Metric,
        excl: bool,
    ) -> Vec<Vec<(f64, i64)>> {
        q.outer_iter()
            .enumerate()
            .map(|(i, qi)| {
                let mut v: Vec<(f64, i64)> = g
                    .outer_iter()
                    .enumerate()
                    .filter(|(j, _)| !(excl && *j == i))
                    .map(|(j, gj)| {
                        let dot: f64 = qi
                            .iter()
                            .zip(gj)
                            .map(|(a, b)| f64::from(*a) * f64::from(*b))
                            .sum();
                        let qq: f64 = qi.iter().map(|a| f64::from(*a).powi(2)).sum();
                        let gg: f64 = gj.iter().map(|a| f64::from(*a).powi(2)).sum();
                        let key = match metric {
                            Metric::InnerProduct => dot,
                            Metric::L2 => -(qq + gg - 2.0 * dot),
                            Metric::Cosine => unreachable!(),
                        };
                        (key, j as i64)
                    })
                    .collect();
                v.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap().then(a.1.cmp(&b.1)));
                v.truncate(k);
                v
            })
            .collect()
    }

    #[test]
    fn exact_with_ties_all_tilings() {
        let q = ints(37, 5, 1);
        let mut g = ints(301, 5, 2);
        // Duplicate rows create exact ties.
        for j in (0..100).step_by(3) {
            let r = g.row(j).to_owned();
            g.row_mut(j + 150).assign(&r);
        }
        for metric in [Metric::InnerProduct, Metric::L2] {
            for k in [1, 7, 64, 301] {
                let want = brute(&q, &g, k, metric, false);
                for blocks in [
                    Blocks::default(),
                    Blocks {
                        queries: 4,
                        gallery: 9,
                    },
                    Blocks {
                        queries: 37,
                        gallery: 1,
                    },
                ] {
                    let opts = KnnOptions {
                        metric,
                        exclude_self: false,
                        blocks,
                    };
                    let got = knn_with(q.view(), g.view(), k, &opts, &Monitor::none()).unwrap();
                    for (i, w) in want.iter().enumerate() {
                        let idx: Vec<i64> = w.iter().map(|x| x.1).collect();
                        assert_eq!(
                            got.indices.row(i).to_vec(),
                            idx,
                            "{metric:?} k={k} {blocks:?} q={i}"
                        );
                        for (j, x) in w.iter().enumerate() {
                            let s = if metric == Metric::L2 { -x.0 } else { x.0 };
                            assert_eq!(f64::from(got.scores[[i, j]]), s);
                        }
                    }
                }
            }
        }
    }

    /// The fused scan (in the kernel's blocks) and the stored-tile scan give the same
    /// lists and ranks, on every kernel, metric, tile shape, with and without
    /// `exclude_self` and rank counting, on data full of exact ties.
    #[test]
    fn fused_scan_matches_stored_tiles() {
        // Square (exclude_self), large enough next to the relevant pairs for ranks to
        // be counted (`ranks_pay`).
        let n = 160;
        let q = ints(n, 7, 11);
        let mut g = ints(n, 7, 12);
        for j in (0..40).step_by(2) {
            let r = g.row(j).to_owned();
            g.row_mut(j + 90).assign(&r);
        }
        // Relevant rows: gallery rows with the query's id (i % 80), the query itself
        // left out under exclude_self.
        let relevant = |excl: bool| {
            let mut rows = vec![];
            let mut start = vec![0];
            for i in 0..n {
                rows.extend(
                    (0..n as u32)
                        .filter(|&j| j as usize % 80 == i % 80 && !(excl && j as usize == i)),
                );
                start.push(rows.len());
            }
            (rows, start)
        };
        let run = |path: Path, opts: &KnnOptions, k: usize, rel: Option<&Relevant<'_>>| {
            search_on(
                path,
                q.view(),
                g.view(),
                k,
                rel,
                opts,
                &Monitor::none(),
                |_, l, r| {
                    (
                        l.iter()
                            .map(|nb| (nb.score.to_bits(), nb.index))
                            .collect::<Vec<_>>(),
                        r,
                    )
                },
            )
            .unwrap()
        };
        let mut fused_runs = 0;
        for kernel in Kernel::supported() {
            for metric in [Metric::Cosine, Metric::InnerProduct, Metric::L2] {
                for excl in [false, true] {
                    let (rows, start) = relevant(excl);
                    let rel = Relevant {
                        rows: &rows,
                        start: &start,
                        rank_cap: usize::MAX,
                    };
                    for blocks in [
                        Blocks::default(),
                        Blocks {
                            queries: 5,
                            gallery: 1,
                        },
                        Blocks {
                            queries: 16,
                            gallery: 100,
                        },
                    ] {
                        let opts = KnnOptions {
                            metric,
                            exclude_self: excl,
                            blocks,
                        };
                        for (k, rel) in [(1, None), (9, None), (159, None), (3, Some(&rel))] {
                            let stored = Path {
                                kernel,
                                fused: false,
                                prefilter: false,
                            };
                            let fused = Path {
                                kernel,
                                fused: true,
                                prefilter: false,
                            };
                            let want = run(stored, &opts, k, rel);
                            let got = run(fused, &opts, k, rel);
                            assert_eq!(
                                got, want,
                                "{kernel:?} {metric:?} excl={excl} {blocks:?} k={k}"
                            );
                            if rel.is_some() && kernel != Kernel::Portable {
                                assert!(want.iter().all(|(_, r)| r.is_some()));
                            }
                            fused_runs += 1;
                        }
                    }
                }
            }
        }
        assert!(fused_runs > 0);
    }

    #[test]
    fn prefilter_matches_the_full_scan() {
        // Two threads: the prefilter needs 8 queries per thread.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        pool.install(prefilter_cases);
    }

    fn prefilter_cases() {
        // Clustered float data (the prefilter prunes most items) and small integers
        // (many exact ties on the floors and targets), every metric, with and without
        // exclude_self; ids so that some queries have no relevant item.
        let mut rng = crate::rng::Rng::new(5);
        let centres: Vec<f32> = (0..120 * 24).map(|_| rng.normal() as f32).collect();
        let cq = Array2::from_shape_fn((400, 24), |(i, k)| {
            centres[(i % 120) * 24 + k] + 0.6 * rng.normal() as f32
        });
        let cg = Array2::from_shape_fn((400, 24), |(j, k)| {
            centres[(j % 100) * 24 + k] + 0.6 * rng.normal() as f32
        });
        let datasets = [(cq, cg), (ints(400, 7, 21), ints(400, 7, 22))];
        for (q, g) in &datasets {
            let n = q.nrows();
            for metric in [Metric::Cosine, Metric::InnerProduct, Metric::L2] {
                for excl in [false, true] {
                    // Query i has id i % 120 (ids 100..120 are absent from the gallery),
                    // gallery row j id j % 100.
                    let mut rows = vec![];
                    let mut start = vec![0];
                    for i in 0..n {
                        rows.extend((0..n as u32).filter(|&j| {
                            j as usize % 100 == i % 120 && !(excl && j as usize == i)
                        }));
                        start.push(rows.len());
                    }
                    let rel = Relevant {
                        rows: &rows,
                        start: &start,
                        rank_cap: usize::MAX,
                    };
                    let opts = KnnOptions {
                        metric,
                        exclude_self: excl,
                        ..KnnOptions::default()
                    };
                    for kernel in Kernel::supported() {
                        if kernel == Kernel::Portable {
                            continue;
                        }
                        let run = |prefilter: bool, rel: &Relevant<'_>| {
                            let path = Path {
                                kernel,
                                fused: true,
                                prefilter,
                            };
                            search_on(
                                path,
                                q.view(),
                                g.view(),
                                5,
                                Some(rel),
                                &opts,
                                &Monitor::none(),
                                |_, l, r| {
                                    r.map(|r| {
                                        let l: Vec<_> = l
                                            .iter()
                                            .map(|nb| (nb.score.to_bits(), nb.index))
                                            .collect();
                                        (l, r)
                                    })
                                },
                            )
                            .unwrap()
                        };
                        let want = run(false, &rel);
                        let got = run(true, &rel);
                        assert_eq!(got, want, "{kernel:?} {metric:?} excl={excl}");
                        // With a cap on the ranks, a rank at or beyond it may be larger.
                        let capped = Relevant {
                            rows: &rows,
                            start: &start,
                            rank_cap: 2,
                        };
                        type Lists = Vec<Option<(Vec<(u32, u32)>, usize)>>;
                        let cap = |v: Lists| -> Lists {
                            v.into_iter()
                                .map(|x| x.map(|(l, r)| (l, r.min(2))))
                                .collect()
                        };
                        assert_eq!(cap(run(true, &capped)), cap(want.clone()));
                        assert!(want.iter().filter(|x| x.is_some()).count() > n / 2);
                        assert!(want.iter().any(|x| x.is_none()));
                    }
                    // The prefilter did run (it declines only without AVX2 + FMA).
                    let qs = q.as_slice().unwrap();
                    let gs = g.as_slice().unwrap();
                    let prepared = Prepared::new(metric, &q.view(), &g.view());
                    let kernel = Kernel::detect();
                    if let Some(t) = best_relevant(kernel, qs, gs, q.ncols(), &prepared, &rel) {
                        let ks = vec![5; n];
                        let cols = prepared.columns(0, n);
                        let got = prefilter::lists(
                            qs,
                            gs,
                            q.ncols(),
                            cols,
                            &t,
                            &ks,
                            usize::MAX,
                            excl,
                            &Monitor::none(),
                        )
                        .unwrap();
                        assert_eq!(got.is_some(), prefilter::available());
                    }
                }
            }
        }
    }

    /// Rows near `centres` (row `r` near centre `r % centres.nrows()`), spread 0.6.
    fn near(centres: &Array2<f32>, rows: usize, seed: u64) -> Array2<f32> {
        let mut rng = crate::rng::Rng::new(seed);
        let c = centres.nrows();
        Array2::from_shape_fn((rows, centres.ncols()), |(i, k)| {
            centres[[i % c, k]] + 0.6 * rng.normal() as f32
        })
    }

    fn normals(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
        let mut rng = crate::rng::Rng::new(seed);
        Array2::from_shape_fn((rows, cols), |_| rng.normal() as f32)
    }

    /// Relevant rows by ids: query `i`'s are the gallery rows `j` with `gid(j) ==
    /// qid(i)` (as `rows`, `start` of [`Relevant`]).
    fn by_ids(
        n: usize,
        m: usize,
        qid: impl Fn(usize) -> usize,
        gid: impl Fn(usize) -> usize,
    ) -> (Vec<u32>, Vec<usize>) {
        let mut rows = vec![];
        let mut start = vec![0];
        for i in 0..n {
            rows.extend((0..m as u32).filter(|&j| gid(j as usize) == qid(i)));
            start.push(rows.len());
        }
        (rows, start)
    }

    /// The metrics search with the prefilter allowed and with the full scan only: they
    /// must give bit-identical lists and ranks. Returns what the prefilter itself gives
    /// for the same search (`None` when it declines), on a pool of two threads.
    fn against_full_scan(
        q: &Array2<f32>,
        g: &Array2<f32>,
        (rows, start): &(Vec<u32>, Vec<usize>),
        metric: Metric,
    ) -> Option<prefilter::Pruned> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        pool.install(|| {
            let rel = Relevant {
                rows,
                start,
                rank_cap: usize::MAX,
            };
            let opts = KnnOptions {
                metric,
                ..KnnOptions::default()
            };
            let kernel = Kernel::detect();
            let run = |prefilter: bool| {
                let path = Path {
                    kernel,
                    fused: true,
                    prefilter,
                };
                search_on(
                    path,
                    q.view(),
                    g.view(),
                    1,
                    Some(&rel),
                    &opts,
                    &Monitor::none(),
                    |_, l, r| {
                        let l: Vec<_> = l.iter().map(|nb| (nb.score.to_bits(), nb.index)).collect();
                        (l, r)
                    },
                )
                .unwrap()
            };
            let want = run(false);
            assert_eq!(run(true), want, "{metric:?}: prefilter vs full scan");
            // Ranks were counted: the search is the one the prefilter serves.
            assert!(want.iter().all(|(_, r)| r.is_some()), "{metric:?}");
            let (qs, gs) = (q.as_slice().unwrap(), g.as_slice().unwrap());
            let (n, d) = q.dim();
            let prepared = Prepared::new(metric, &q.view(), &g.view());
            let t = best_relevant(kernel, qs, gs, d, &prepared, &rel).expect("targets");
            let ks: Vec<usize> = (0..n).map(|i| (start[i + 1] - start[i]).max(1)).collect();
            let cols = prepared.columns(0, g.nrows());
            let got = prefilter::lists(
                qs,
                gs,
                d,
                cols,
                &t,
                &ks,
                usize::MAX,
                false,
                &Monitor::none(),
            )
            .unwrap();
            if let Some(p) = &got {
                // The prefilter's own lists are the full scan's (internal scores).
                let lists: Vec<Vec<u32>> = p
                    .lists
                    .iter()
                    .map(|(l, _)| l.iter().map(|nb| nb.index).collect())
                    .collect();
                let full: Vec<Vec<u32>> = want
                    .iter()
                    .map(|(l, _)| l.iter().map(|x| x.1).collect())
                    .collect();
                assert_eq!(lists, full);
                let ranks: Vec<usize> = p.lists.iter().map(|x| x.1).collect();
                let full: Vec<usize> = want.iter().map(|x| x.1.unwrap()).collect();
                assert_eq!(ranks, full);
            }
            got
        })
    }

    const METRICS: [Metric; 3] = [Metric::Cosine, Metric::InnerProduct, Metric::L2];

    /// Relevant gallery items by query: `(items, offsets)`, as `by_ids` returns them.
    type Relevance = (Vec<u32>, Vec<usize>);

    /// Clustered queries and gallery (ids `i % 120` and `j % 100`, 400 x 24 each, as in
    /// [`prefilter_cases`]), every query with at least one relevant item.
    fn clustered_case(scale: f32) -> (Array2<f32>, Array2<f32>, Relevance) {
        let centres = normals(100, 24, 7);
        let q = near(&centres, 400, 8) * scale;
        let g = near(&centres, 400, 9) * scale;
        let rel = by_ids(400, 400, |i| i % 100, |j| j % 100);
        (q, g, rel)
    }

    #[test]
    fn prefilter_prunes_clustered_data() {
        if !prefilter::available() {
            return;
        }
        let (q, g, rel) = clustered_case(1.0);
        for metric in METRICS {
            let p = against_full_scan(&q, &g, &rel, metric).expect("the prefilter runs");
            // 160,000 pairs; a query's 4 relevant items and the few that rank among them.
            let all = (q.nrows() * g.nrows()) as u64;
            assert!(p.exact >= 400 * 4, "{metric:?}: {}", p.exact);
            assert!(
                p.exact * 10 < all,
                "{metric:?}: {} exact scores of {all}",
                p.exact
            );
        }
    }

    #[test]
    fn prefilter_zero_gallery_rows_do_not_widen_the_margins() {
        // A zero gallery row (an embedding of nothing) once made the bound's margin as
        // large as a row of scale 1 would: on small values, nothing was pruned.
        if !prefilter::available() {
            return;
        }
        let (q, mut g, rel) = clustered_case(1e-5);
        for j in (0..400).step_by(37) {
            g.row_mut(j).fill(0.0);
        }
        for metric in METRICS {
            let p = against_full_scan(&q, &g, &rel, metric).expect("the prefilter runs");
            let all = (q.nrows() * g.nrows()) as u64;
            assert!(
                p.exact * 10 < all,
                "{metric:?}: {} exact scores of {all}",
                p.exact
            );
        }
    }

    #[test]
    fn prefilter_rounds_subnormal_bound_terms_up() {
        // A gallery row on the quantization grid (residual 0) but for one subnormal
        // value: its residual term is subnormal in f32, and is rounded up to the
        // smallest normal number instead of turning the prefilter down.
        if !prefilter::available() {
            return;
        }
        let (q, mut g, rel) = clustered_case(1.0);
        for j in [5, 77] {
            let mut row = g.row_mut(j);
            row.fill(0.0);
            row[0] = 31.0;
            row[3] = -2.0;
            row[23] = f32::MIN_POSITIVE / 1024.0;
            assert!(row[23] > 0.0 && !row[23].is_normal());
        }
        for metric in METRICS {
            let p = against_full_scan(&q, &g, &rel, metric);
            assert!(p.is_some(), "{metric:?}: the prefilter declined");
        }
    }

    #[test]
    fn prefilter_dimension_limit() {
        if !prefilter::available() {
            return;
        }
        // Integer products stay exact in f32 up to d = 4096; beyond, the full scan.
        for d in [4096, 4097] {
            let centres = normals(8, d, 1);
            let q = near(&centres, 16, 2);
            let g = near(&centres, 128, 3);
            // One relevant item per query (the scan must pay for the ranks).
            let rel = by_ids(16, 128, |i| 3 * i, |j| j);
            for metric in METRICS {
                let p = against_full_scan(&q, &g, &rel, metric);
                assert_eq!(p.is_some(), d <= 4096, "d={d} {metric:?}");
            }
        }
    }

    #[test]
    fn prefilter_declines_magnitudes_out_of_range() {
        if !prefilter::available() {
            return;
        }
        // A vector whose largest magnitude lies outside 1e-12..1e12 could make the f32
        // bound underflow or overflow: the full scan serves the search.
        let (q0, g0, _) = clustered_case(1.0);
        let (q0, g0) = (
            q0.slice(ndarray::s![..64, ..]).to_owned(),
            g0.slice(ndarray::s![..200, ..]).to_owned(),
        );
        let rel = by_ids(64, 200, |i| i % 100, |j| j % 100);
        let with_max = |a: &Array2<f32>, row: usize, max: f64| {
            let mut a = a.clone();
            let m = a
                .row(row)
                .iter()
                .fold(0f64, |m, &v| m.max(f64::from(v).abs()));
            a.row_mut(row)
                .mapv_inplace(|v| (f64::from(v) * max / m) as f32);
            a
        };
        for (on_queries, max, accept) in [
            (false, 2e-12, true),
            (false, 5e11, true),
            (true, 2e-12, true),
            (true, 5e11, true),
            (false, 5e-13, false),
            (false, 2e12, false),
            (true, 5e-13, false),
            (true, 2e12, false),
        ] {
            let (q, g) = if on_queries {
                (with_max(&q0, 3, max), g0.clone())
            } else {
                (q0.clone(), with_max(&g0, 3, max))
            };
            for metric in METRICS {
                let p = against_full_scan(&q, &g, &rel, metric);
                assert_eq!(
                    p.is_some(),
                    accept,
                    "queries={on_queries} max={max} {metric:?}"
                );
            }
        }
    }

    #[test]
    // 128 x 150,000 scores and a 140,000-item list: seconds optimised, minutes in a
    // debug build (`make test`'s pure-core run); it runs in the optimised test run.
    fn prefilter_tasks_keep_their_selectors_within_the_cap() {
        // Query 0 has 140,000 relevant items (its list keeps its best 140,000): 32
        // queries a task (128 queries, two threads) would hold 32 selectors of 2.2 MB,
        // over the 64 MiB the full scan allows a task.
        if !prefilter::available() {
            return;
        }
        let (n, m, r0) = (128, 150_000, 140_000);
        let q = normals(n, 4, 11);
        let g = normals(m, 4, 12);
        let gid = |j: usize| if j < r0 { 0 } else { j - r0 + 1 };
        let rel = by_ids(n, m, |i| i, gid);
        assert_eq!(rel.1[1], r0);
        let p = against_full_scan(&q, &g, &rel, Metric::InnerProduct).expect("prefilter");
        assert!(p.rows_per_task >= prefilter::MR && p.rows_per_task < 32);
        assert!(p.rows_per_task * prefilter::selector_bytes(r0) <= SELECTOR_BYTES);
    }
    #[test]
    fn exclude_self_and_sharding() {
        let g = ints(120, 4, 3);
        let want = brute(&g, &g, 5, Metric::L2, true);
        crate::runtime::install(|| {
            let opts = KnnOptions {
                metric: Metric::L2,
                exclude_self: true,
                blocks: Blocks {
                    queries: 64,
                    gallery: 16,
                },
            };
            let got = knn_with(g.view(), g.view(), 5, &opts, &Monitor::none()).unwrap();
            for (i, w) in want.iter().enumerate() {
                let idx: Vec<i64> = w.iter().map(|x| x.1).collect();
                assert_eq!(got.indices.row(i).to_vec(), idx);
            }
        });
    }

    #[test]
    fn cosine_is_scale_invariant() {
        let q = ints(10, 6, 5);
        let g = ints(50, 6, 6);
        let a = knn(q.view(), g.view(), 5, Metric::Cosine).unwrap();
        let b = knn((&q * 3.0).view(), (&g * 0.5).view(), 5, Metric::Cosine).unwrap();
        for (x, y) in a.scores.iter().zip(b.scores.iter()) {
            assert!((x - y).abs() < 1e-5 && x.abs() <= 1.0 + 1e-6);
        }
    }

    #[test]
    fn errors() {
        let q = ints(3, 4, 1);
        let g = ints(5, 4, 2);
        let g3 = ints(5, 3, 2);
        let m = Metric::Cosine;
        assert!(matches!(
            knn(q.view(), g3.view(), 1, m),
            Err(RetrievalError::DimensionMismatch { .. })
        ));
        assert!(matches!(
            knn(q.view(), g.view(), 6, m),
            Err(RetrievalError::BadK { .. })
        ));
        assert!(matches!(
            knn(q.view(), g.view(), 0, m),
            Err(RetrievalError::BadK { .. })
        ));
        let e = Array2::<f32>::zeros((0, 4));
        assert!(matches!(
            knn(e.view(), g.view(), 1, m),
            Err(RetrievalError::Empty { .. })
        ));
        let mut bad = g.clone();
        bad[[2, 1]] = f32::NAN;
        assert_eq!(
            knn(q.view(), bad.view(), 1, m),
            Err(RetrievalError::NonFinite {
                what: "gallery",
                row: 2,
                col: 1
            })
        );
        let token = crate::runtime::CancelToken::new();
        token.cancel();
        let mon = Monitor::new(token, None);
        assert_eq!(
            knn_with(q.view(), g.view(), 1, &KnnOptions::default(), &mon),
            Err(RetrievalError::Cancelled)
        );
    }
}
