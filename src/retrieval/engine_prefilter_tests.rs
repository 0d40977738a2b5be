//! Tests of the metrics search with the integer prefilter against the full scan:
//! bit-identical lists and ranks, how much it prunes, and when it declines (a module of
//! `engine.rs`).

use super::tests::ints;
use super::*;
use ndarray::Array2;

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
                    rows.extend(
                        (0..n as u32)
                            .filter(|&j| j as usize % 100 == i % 120 && !(excl && j as usize == i)),
                    );
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
                        let request = Request {
                            queries: q.view(),
                            gallery: g.view(),
                            k: 5,
                            relevant: Some(rel),
                            options: &opts,
                        };
                        search_on(path, &request, &Monitor::none(), |_, l, r| {
                            r.map(|r| {
                                let l: Vec<_> =
                                    l.iter().map(|nb| (nb.score.to_bits(), nb.index)).collect();
                                (l, r)
                            })
                        })
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
                    let wanted = Wanted {
                        targets: &t,
                        ks: &ks,
                        rank_cap: usize::MAX,
                        exclude_self: excl,
                    };
                    let got = prefilter::lists(qs, gs, q.ncols(), cols, &wanted, &Monitor::none())
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
            let request = Request {
                queries: q.view(),
                gallery: g.view(),
                k: 1,
                relevant: Some(&rel),
                options: &opts,
            };
            search_on(path, &request, &Monitor::none(), |_, l, r| {
                let l: Vec<_> = l.iter().map(|nb| (nb.score.to_bits(), nb.index)).collect();
                (l, r)
            })
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
        let wanted = Wanted {
            targets: &t,
            ks: &ks,
            rank_cap: usize::MAX,
            exclude_self: false,
        };
        let got = prefilter::lists(qs, gs, d, cols, &wanted, &Monitor::none()).unwrap();
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
    assert!(p.rows_per_task * selector_bytes(r0) <= SELECTOR_BYTES);
}
