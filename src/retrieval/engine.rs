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
use super::prefilter::{self, Wanted};
use super::prepared::Prepared;
use super::scan::{scan_fused, scan_row, Panels, RowScan};
use super::targets::{best_relevant, Relevant, Target};
use super::topk::{merge, selector_bytes, Neighbor, TopK, SELECTOR_BYTES};
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
    let request = Request {
        queries,
        gallery,
        k,
        relevant: None,
        options,
    };
    let lists = search(&request, monitor, |_, list, _| list.to_vec())?;
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

/// What a search is asked: the queries and the gallery (validated), the list length
/// `k`, the relevant rows of every query when the metrics count ranks, and the options
/// (metric, `exclude_self`, tile shape).
pub(crate) struct Request<'a> {
    pub queries: ArrayView2<'a, f32>,
    pub gallery: ArrayView2<'a, f32>,
    pub k: usize,
    pub relevant: Option<&'a Relevant<'a>>,
    pub options: &'a KnnOptions,
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
    request: &Request<'_>,
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
    search_on(path, request, monitor, f)
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
fn search_on<T, F>(
    path: Path,
    request: &Request<'_>,
    monitor: &Monitor<'_>,
    f: F,
) -> Result<Vec<T>, RetrievalError>
where
    T: Send,
    F: Fn(usize, &[Neighbor], Option<usize>) -> T + Sync,
{
    let Request {
        queries,
        gallery,
        k,
        relevant,
        options,
    } = *request;
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
    let qb = qb.min((SELECTOR_BYTES / selector_bytes(k)).max(8)).min(n);
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
        let wanted = Wanted {
            targets: t,
            ks: &ks,
            rank_cap,
            exclude_self: options.exclude_self,
        };
        if let Some(pruned) = prefilter::lists(qs, gs, d, cols, &wanted, monitor)? {
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
            let panels = Panels {
                a: &a,
                m: qlen,
                b,
                n: glen,
                d,
            };
            if self.fused && scan_fused(self.kernel, panels, map, g0, &mut states) {
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
#[path = "engine_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "engine_prefilter_tests.rs"]
mod prefilter_tests;
