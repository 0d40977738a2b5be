//! Retrieval metrics: recall@k (In-shop top-k accuracy), precision@1, MAP@R and
//! R-precision.
//!
//! For a query with id `y`, the relevant gallery items are those with id `y` (minus the
//! query itself with `exclude_self`); `R` is their number. Queries with `R = 0` cannot
//! be scored: they are counted in [`Evaluation::n_queries_without_match`] and left out
//! of every average, as DeepFashion In-shop and pytorch-metric-learning do.
//!
//! - recall@k: fraction of queries with at least one relevant item in the top k.
//! - precision@1: fraction of queries whose top item is relevant.
//! - MAP@R (Musgrave et al., *A Metric Learning Reality Check*, 2020):
//!   `1/R * sum_{i<=R} P(i) * rel(i)` with `P(i)` the precision at rank i.
//! - R-precision: relevant items among the top R, divided by R.

use super::engine::{search, Request};
use super::targets::{ranks_pay, Relevant};
use super::topk::Neighbor;
use super::{validate, KnnOptions, Metric, RetrievalError};
use crate::runtime::Monitor;
use ndarray::ArrayView2;
use std::collections::HashMap;

/// Options of [`evaluate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalOptions {
    /// The k of recall@k (each at least 1).
    pub ks: Vec<usize>,
    /// Metric, leave-one-out (`exclude_self`) and tile shape of the search.
    pub knn: KnnOptions,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            ks: vec![1, 5, 10, 20, 50],
            knn: KnnOptions::default(),
        }
    }
}

/// Retrieval metrics averaged over the queries that have at least one relevant
/// gallery item. When no query has one, every average is NaN.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// `(k, recall@k)` for each requested k, in increasing k. A k larger than the
    /// number of gallery items counts the whole gallery.
    pub recall: Vec<(usize, f64)>,
    /// Fraction of queries whose first result is relevant.
    pub precision_at_1: f64,
    /// Mean average precision at R.
    pub map_at_r: f64,
    /// Mean R-precision.
    pub r_precision: f64,
    /// Number of queries.
    pub n_queries: usize,
    /// Queries whose id has no (other) item in the gallery, left out of the averages.
    pub n_queries_without_match: usize,
}

impl Evaluation {
    /// recall@k, when k was requested.
    pub fn recall_at(&self, k: usize) -> Option<f64> {
        self.recall.iter().find(|(kk, _)| *kk == k).map(|(_, r)| *r)
    }

    /// All values as `(name, value)` pairs: `recall@k`..., `precision@1`, `map@r`,
    /// `r_precision`, `n_queries`, `n_queries_without_match`.
    pub fn to_pairs(&self) -> Vec<(String, f64)> {
        let mut out: Vec<(String, f64)> = self
            .recall
            .iter()
            .map(|(k, r)| (format!("recall@{k}"), *r))
            .collect();
        out.push(("precision@1".to_string(), self.precision_at_1));
        out.push(("map@r".to_string(), self.map_at_r));
        out.push(("r_precision".to_string(), self.r_precision));
        out.push(("n_queries".to_string(), self.n_queries as f64));
        out.push((
            "n_queries_without_match".to_string(),
            self.n_queries_without_match as f64,
        ));
        out
    }
}

/// Scores of one query that has a match.
#[derive(Debug, Clone, Copy)]
struct QueryStats {
    /// Rank (0-based) of the first relevant item.
    first_hit: usize,
    /// Average precision at R.
    ap: f64,
    /// R-precision.
    rp: f64,
}

/// Stats of a query with `r >= 1` relevant items from its ranking (at least `r`
/// entries unless the whole gallery is shorter). `relevant(position)` tells whether
/// the gallery item at that rank is relevant.
fn query_stats(r: usize, len: usize, relevant: impl Fn(usize) -> bool) -> QueryStats {
    let mut first_hit = usize::MAX;
    let mut correct = 0usize;
    let mut ap = 0.0f64;
    for pos in 0..len {
        if relevant(pos) {
            if first_hit == usize::MAX {
                first_hit = pos;
            }
            if pos < r {
                correct += 1;
                ap += correct as f64 / (pos + 1) as f64;
            }
        }
        if pos + 1 >= r && first_hit != usize::MAX {
            break;
        }
    }
    QueryStats {
        first_hit,
        ap: ap / r as f64,
        rp: correct as f64 / r as f64,
    }
}

/// Ids of the queries, their number of relevant gallery items, and the largest.
struct Relevance {
    r: Vec<usize>,
    max_r: usize,
}

fn relevance(ids_q: &[i64], ids_g: &[i64], exclude_self: bool) -> Relevance {
    let mut counts: HashMap<i64, usize> = HashMap::with_capacity(ids_g.len());
    for &id in ids_g {
        *counts.entry(id).or_insert(0) += 1;
    }
    let r: Vec<usize> = ids_q
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let c = counts.get(id).copied().unwrap_or(0);
            let own = exclude_self && ids_g.get(i) == Some(id);
            c - usize::from(own)
        })
        .collect();
    let max_r = r.iter().copied().max().unwrap_or(0);
    Relevance { r, max_r }
}

/// The gallery rows relevant to each query (`rows[start[i]..start[i + 1]]`, without the
/// query itself under `exclude_self`); `total` is their number.
fn relevant_rows(
    ids_q: &[i64],
    ids_g: &[i64],
    exclude_self: bool,
    total: usize,
) -> (Vec<u32>, Vec<usize>) {
    let mut by_id: HashMap<i64, Vec<u32>> = HashMap::new();
    for (j, &id) in ids_g.iter().enumerate() {
        // The gallery has at most u32::MAX rows (validated).
        by_id.entry(id).or_default().push(j as u32);
    }
    let mut rows = Vec::with_capacity(total);
    let mut start = Vec::with_capacity(ids_q.len() + 1);
    start.push(0);
    for (i, id) in ids_q.iter().enumerate() {
        if let Some(js) = by_id.get(id) {
            rows.extend(js.iter().filter(|&&j| !(exclude_self && j as usize == i)));
        }
        start.push(rows.len());
    }
    (rows, start)
}

fn check_ks(ks: &[usize]) -> Result<Vec<usize>, RetrievalError> {
    if ks.is_empty() {
        return Err(RetrievalError::InvalidParameter(
            "ks is empty: give at least one k for recall@k".to_string(),
        ));
    }
    if let Some(bad) = ks.iter().find(|&&k| k == 0) {
        return Err(RetrievalError::InvalidParameter(format!(
            "every k in ks must be >= 1, got {bad}"
        )));
    }
    let mut ks = ks.to_vec();
    ks.sort_unstable();
    ks.dedup();
    Ok(ks)
}

fn check_ids(what: &str, ids: &[i64], rows: usize) -> Result<(), RetrievalError> {
    if ids.len() != rows {
        return Err(RetrievalError::LengthMismatch {
            what: format!("{what} must have one id per embedding row"),
            expected: rows,
            got: ids.len(),
        });
    }
    Ok(())
}

fn aggregate(ks: &[usize], stats: &[Option<QueryStats>]) -> Evaluation {
    let scored: Vec<&QueryStats> = stats.iter().flatten().collect();
    let n = scored.len() as f64;
    let mean = |f: &dyn Fn(&QueryStats) -> f64| -> f64 {
        if scored.is_empty() {
            f64::NAN
        } else {
            scored.iter().map(|s| f(s)).sum::<f64>() / n
        }
    };
    Evaluation {
        recall: ks
            .iter()
            .map(|&k| (k, mean(&|s| f64::from(u8::from(s.first_hit < k)))))
            .collect(),
        precision_at_1: mean(&|s| f64::from(u8::from(s.first_hit == 0))),
        map_at_r: mean(&|s| s.ap),
        r_precision: mean(&|s| s.rp),
        n_queries: stats.len(),
        n_queries_without_match: stats.len() - scored.len(),
    }
}

/// Evaluate retrieval of `gallery` items for `queries` with the given ids.
///
/// Searches the top `K = max(max(ks), max R)` items of each query (bounded by the
/// gallery) with the exact engine and scores each query as soon as its list is ready:
/// memory is that of the search tiles, never `n x K`. When the relevant items are few
/// next to the gallery, each query keeps only its best R and counts the items ranked
/// before its best relevant one; on CPUs with AVX2 that search runs behind an exact
/// integer prefilter (`prefilter.rs`), with results identical to the full scan's.
pub fn evaluate(
    queries: ArrayView2<'_, f32>,
    ids_q: &[i64],
    gallery: ArrayView2<'_, f32>,
    ids_g: &[i64],
    options: &EvalOptions,
    monitor: &Monitor<'_>,
) -> Result<Evaluation, RetrievalError> {
    let ks = check_ks(&options.ks)?;
    let excl = options.knn.exclude_self;
    let available = validate(&queries, &gallery, excl)?;
    check_ids("ids_q", ids_q, queries.nrows())?;
    check_ids("ids_g", ids_g, gallery.nrows())?;
    let rel = relevance(ids_q, ids_g, excl);
    let k_search = ks
        .last()
        .copied()
        .unwrap_or(1)
        .max(rel.max_r)
        .min(available);
    if rel.max_r == 0 || k_search == 0 {
        return Ok(aggregate(&ks, &vec![None; ids_q.len()]));
    }
    // The relevant rows of each query, when counting the rank of the first hit pays:
    // then each query's list needs only its R best, not max(ks).
    let total: usize = rel.r.iter().sum();
    let lists = ranks_pay(total, queries.nrows(), gallery.nrows())
        .then(|| relevant_rows(ids_q, ids_g, excl, total));
    // recall@k and precision@1 compare the rank of the first hit with the ks only.
    let rank_cap = ks.last().copied().unwrap_or(1);
    let relevant = lists.as_ref().map(|(rows, start)| Relevant {
        rows,
        start,
        rank_cap,
    });
    let request = Request {
        queries,
        gallery,
        k: k_search,
        relevant: relevant.as_ref(),
        options: &options.knn,
    };
    let stats = search(
        &request,
        monitor,
        |i, list: &[Neighbor], rank: Option<usize>| {
            let r = rel.r[i];
            (r > 0).then(|| {
                let id = ids_q[i];
                let mut s = query_stats(r, list.len(), |p| ids_g[list[p].index as usize] == id);
                if let Some(rank) = rank {
                    s.first_hit = rank;
                }
                s
            })
        },
    )?;
    Ok(aggregate(&ks, &stats))
}

/// The metrics of precomputed rankings: row `i` of `indices` lists gallery rows, best
/// first, for query `i` — at least `min(max(R), gallery size)` of them for exact
/// MAP@R / R-precision (for example from [`super::torch_backend::knn_tensors`]).
/// recall@k for a k beyond the listed columns counts the listed ones only.
pub fn metrics_from_ranking(
    indices: ArrayView2<'_, i64>,
    ids_q: &[i64],
    ids_g: &[i64],
    ks: &[usize],
    exclude_self: bool,
) -> Result<Evaluation, RetrievalError> {
    let ks = check_ks(ks)?;
    check_ids("ids_q", ids_q, indices.nrows())?;
    if exclude_self && ids_q.len() != ids_g.len() {
        return Err(RetrievalError::LengthMismatch {
            what: "exclude_self needs queries and gallery of the same length".to_string(),
            expected: ids_g.len(),
            got: ids_q.len(),
        });
    }
    let rel = relevance(ids_q, ids_g, exclude_self);
    let mut stats = Vec::with_capacity(ids_q.len());
    for (i, row) in indices.outer_iter().enumerate() {
        let r = rel.r[i];
        if r == 0 {
            stats.push(None);
            continue;
        }
        let mut ranked = Vec::with_capacity(row.len());
        for &j in row.iter() {
            match usize::try_from(j).ok().filter(|&j| j < ids_g.len()) {
                Some(j) => ranked.push(j),
                None => {
                    return Err(RetrievalError::InvalidParameter(format!(
                        "ranking of query {i} holds index {j}, outside the gallery of {} items",
                        ids_g.len()
                    )))
                }
            }
        }
        let id = ids_q[i];
        stats.push(Some(query_stats(r, ranked.len(), |p| {
            ids_g[ranked[p]] == id
        })));
    }
    Ok(aggregate(&ks, &stats))
}

/// recall@k of `queries` against `gallery` (convenience for callers that optimise
/// one number, such as the transform search).
pub fn recall_at_k(
    queries: ArrayView2<'_, f32>,
    ids_q: &[i64],
    gallery: ArrayView2<'_, f32>,
    ids_g: &[i64],
    k: usize,
    metric: Metric,
) -> Result<f64, RetrievalError> {
    let options = EvalOptions {
        ks: vec![k],
        knn: KnnOptions::new(metric),
    };
    let ev = evaluate(queries, ids_q, gallery, ids_g, &options, &Monitor::none())?;
    Ok(ev.recall_at(k).unwrap_or(f64::NAN))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, Array2};

    #[test]
    fn hand_computed_map_at_r() {
        // One query, gallery ids ranked [a, b, a, a, b]: R = 3 relevant (id a).
        // Top R = 3 has relevant at ranks 1 and 3: AP@R = (1/1 + 2/3) / 3; RP = 2/3.
        let ranking = array![[0i64, 1, 2, 3, 4]];
        let ids_g = [7, 8, 7, 7, 8];
        let ev = metrics_from_ranking(ranking.view(), &[7], &ids_g, &[1, 2, 5], false).unwrap();
        assert!((ev.map_at_r - (1.0 + 2.0 / 3.0) / 3.0).abs() < 1e-15);
        assert!((ev.r_precision - 2.0 / 3.0).abs() < 1e-15);
        assert_eq!(ev.precision_at_1, 1.0);
        assert_eq!(ev.recall, vec![(1, 1.0), (2, 1.0), (5, 1.0)]);
    }

    #[test]
    fn unmatched_queries_are_excluded() {
        // Embeddings on a line; query 0 (id 1) nearest to gallery 0 (id 2), then 1 (id 1).
        let q = array![[1.0f32, 0.0], [0.0, 1.0]];
        let g = array![[1.0f32, 0.1], [1.0, 0.5], [0.0, 1.0]];
        let opts = EvalOptions {
            ks: vec![1, 2],
            knn: KnnOptions::new(Metric::Cosine),
        };
        let ev = evaluate(
            q.view(),
            &[1, 99],
            g.view(),
            &[2, 1, 3],
            &opts,
            &Monitor::none(),
        )
        .unwrap();
        assert_eq!(ev.n_queries, 2);
        assert_eq!(ev.n_queries_without_match, 1);
        assert_eq!(ev.recall, vec![(1, 0.0), (2, 1.0)]);
        assert_eq!(ev.precision_at_1, 0.0);
        assert!((ev.map_at_r - 0.0).abs() < 1e-15); // R = 1, first relevant at rank 2
        let none = evaluate(
            q.view(),
            &[5, 6],
            g.view(),
            &[2, 1, 3],
            &opts,
            &Monitor::none(),
        )
        .unwrap();
        assert!(none.map_at_r.is_nan() && none.n_queries_without_match == 2);
    }

    #[test]
    fn exclude_self_leave_one_out() {
        let e = Array2::from_shape_fn((6, 2), |(i, j)| (i / 2) as f32 * 10.0 + (i % 2 + j) as f32);
        let ids = [0, 0, 1, 1, 2, 2];
        let opts = EvalOptions {
            ks: vec![1],
            knn: KnnOptions {
                metric: Metric::L2,
                exclude_self: true,
                ..KnnOptions::default()
            },
        };
        let ev = evaluate(e.view(), &ids, e.view(), &ids, &opts, &Monitor::none()).unwrap();
        assert_eq!(ev.recall, vec![(1, 1.0)]);
        assert_eq!(ev.map_at_r, 1.0);
        assert_eq!(ev.n_queries_without_match, 0);
        let r = recall_at_k(e.view(), &ids, e.view(), &ids, 1, Metric::L2).unwrap();
        assert_eq!(r, 1.0); // without exclusion the query finds itself
    }

    #[test]
    fn errors() {
        let e = Array2::<f32>::ones((3, 2));
        let opts = EvalOptions::default();
        let m = Monitor::none();
        assert!(matches!(
            evaluate(e.view(), &[1, 2], e.view(), &[1, 2, 3], &opts, &m),
            Err(RetrievalError::LengthMismatch { .. })
        ));
        let bad = EvalOptions {
            ks: vec![],
            ..EvalOptions::default()
        };
        assert!(matches!(
            evaluate(e.view(), &[1, 2, 3], e.view(), &[1, 2, 3], &bad, &m),
            Err(RetrievalError::InvalidParameter(_))
        ));
    }
}
