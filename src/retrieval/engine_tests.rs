//! Tests of the CPU search engine: exact lists on data full of ties, every tiling,
//! kernel and scan path, `exclude_self`, sharding, errors (a module of `engine.rs`).

use super::*;
use ndarray::Array2;

/// Small deterministic pseudo-random integers in -3..=3 (exact arithmetic in f32).
pub(super) fn ints(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
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
                (0..n as u32).filter(|&j| j as usize % 80 == i % 80 && !(excl && j as usize == i)),
            );
            start.push(rows.len());
        }
        (rows, start)
    };
    let run = |path: Path, opts: &KnnOptions, k: usize, rel: Option<&Relevant<'_>>| {
        let request = Request {
            queries: q.view(),
            gallery: g.view(),
            k,
            relevant: rel,
            options: opts,
        };
        search_on(path, &request, &Monitor::none(), |_, l, r| {
            (
                l.iter()
                    .map(|nb| (nb.score.to_bits(), nb.index))
                    .collect::<Vec<_>>(),
                r,
            )
        })
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
