//! The search with libtorch ops, for tensors on a CUDA device (it also runs on the CPU,
//! which is how it is tested on machines without a GPU).
//!
//! Same blocking as the CPU engine — a block of queries against successive blocks of the
//! gallery — with the score tile computed by `matmul` on the device, then a *stable*
//! descending sort of each tile row: among equal scores the lower gallery index stays
//! first. The running best `k` of earlier blocks (all of lower indices) is concatenated
//! in front of the new block's best `k` and stably sorted again, so ties keep resolving
//! to the lower gallery index, as on the CPU.
//!
//! Call it from a single thread (libtorch parallelises each op itself).

use super::metrics::{metrics_from_ranking, EvalOptions, Evaluation};
use super::{Blocks, Device, KnnOptions, Metric, RetrievalError};
use crate::runtime::Monitor;
use ndarray::Array2;
use std::collections::HashMap;
use tch::{Kind, Tensor};

/// Default block shape on a GPU: larger than on the CPU (the tile lives in device
/// memory: `queries * gallery * 12` bytes with the sort's indices).
pub const CUDA_BLOCKS: Blocks = Blocks {
    queries: 1024,
    gallery: 16384,
};

/// The libtorch device for `device`, or [`RetrievalError::Device`] when it is not
/// available.
pub fn torch_device(device: Device) -> Result<tch::Device, RetrievalError> {
    match device {
        Device::Cpu => Ok(tch::Device::Cpu),
        Device::Cuda(i) => {
            let count = tch::Cuda::device_count();
            if !tch::Cuda::is_available() || count <= 0 {
                Err(RetrievalError::Device(
                    "device \"cuda\" requested but CUDA is not available (no GPU or a CPU-only \
                     torch); use device=\"cpu\""
                        .to_string(),
                ))
            } else if i64::try_from(i).map_or(true, |i| i >= count) {
                Err(RetrievalError::Device(format!(
                    "device \"cuda:{i}\" requested but only {count} CUDA device(s) are present"
                )))
            } else {
                Ok(tch::Device::Cuda(i))
            }
        }
    }
}

fn size2(t: &Tensor, what: &'static str) -> Result<(i64, i64), RetrievalError> {
    let s = t.size();
    if s.len() != 2 {
        return Err(RetrievalError::InvalidParameter(format!(
            "{what} must be 2-D (rows x dim), got {} dimension(s)",
            s.len()
        )));
    }
    if s[0] == 0 || s[1] == 0 {
        return Err(RetrievalError::Empty {
            what,
            rows: s[0] as usize,
            cols: s[1] as usize,
        });
    }
    Ok((s[0], s[1]))
}

fn check_finite(t: &Tensor, what: &'static str) -> Result<(), RetrievalError> {
    let bad = t.f_isfinite()?.f_logical_not()?;
    let any = bad.f_any()?.f_int64_value(&[])?;
    if any != 0 {
        // First offending position, for the message.
        let pos = bad
            .f_nonzero()?
            .f_narrow(0, 0, 1)?
            .f_to_device(tch::Device::Cpu)?;
        let row = pos.f_int64_value(&[0, 0])? as usize;
        let col = pos.f_int64_value(&[0, 1])? as usize;
        return Err(RetrievalError::NonFinite { what, row, col });
    }
    Ok(())
}

/// Squared row norms (f32, computed in f64).
fn squared_norms(t: &Tensor) -> Result<Tensor, RetrievalError> {
    Ok(t.f_to_kind(Kind::Double)?
        .f_square()?
        .f_sum_dim_intlist([1i64].as_slice(), false, Kind::Double)?
        .f_to_kind(Kind::Float)?)
}

/// 1/|row| (0 for a zero row).
fn inverse_norms(t: &Tensor) -> Result<Tensor, RetrievalError> {
    let s = t.f_to_kind(Kind::Double)?.f_square()?.f_sum_dim_intlist(
        [1i64].as_slice(),
        false,
        Kind::Double,
    )?;
    let inv = s.f_rsqrt()?.f_nan_to_num(0.0, 0.0, 0.0)?;
    Ok(inv.f_to_kind(Kind::Float)?)
}

/// Exact k nearest gallery rows of every query row, on the device of `queries` (both
/// tensors must be on the same device; any floating dtype, computed in float32).
/// Returns `(scores, indices)`: `n x k` float32 and int64 tensors on that device, best
/// first, ties broken by the lower gallery index.
pub fn knn_tensors(
    queries: &Tensor,
    gallery: &Tensor,
    k: usize,
    options: &KnnOptions,
    monitor: &Monitor<'_>,
) -> Result<(Tensor, Tensor), RetrievalError> {
    let _guard = tch::no_grad_guard();
    let (n, d) = size2(queries, "queries")?;
    let (m, dg) = size2(gallery, "gallery")?;
    if d != dg {
        return Err(RetrievalError::DimensionMismatch {
            queries: d as usize,
            gallery: dg as usize,
        });
    }
    if queries.device() != gallery.device() {
        return Err(RetrievalError::InvalidParameter(format!(
            "queries are on {:?} but gallery is on {:?}",
            queries.device(),
            gallery.device()
        )));
    }
    let excl = options.exclude_self;
    if excl && n != m {
        return Err(RetrievalError::LengthMismatch {
            what: "exclude_self needs queries and gallery of the same length (the same set)"
                .to_string(),
            expected: m as usize,
            got: n as usize,
        });
    }
    let available = m as usize - usize::from(excl);
    super::validate_k(k, available, excl)?;
    let q = queries.f_to_kind(Kind::Float)?.f_contiguous()?;
    let g = gallery.f_to_kind(Kind::Float)?.f_contiguous()?;
    check_finite(&q, "queries")?;
    check_finite(&g, "gallery")?;
    let dev = q.device();

    let (col, row) = match options.metric {
        Metric::InnerProduct => (None, None),
        Metric::Cosine => (Some(inverse_norms(&g)?), Some(inverse_norms(&q)?)),
        Metric::L2 => (
            Some(squared_norms(&g)?.f_mul_scalar(0.5)?),
            Some(squared_norms(&q)?),
        ),
    };
    let Blocks {
        queries: qb,
        gallery: gb,
    } = options.blocks;
    if qb == 0 || gb == 0 {
        return Err(RetrievalError::InvalidParameter(format!(
            "block sizes must be positive, got {qb}x{gb}"
        )));
    }
    let (qb, gb) = (qb as i64, gb as i64);
    let k = k as i64;
    let mut out_scores = Vec::new();
    let mut out_indices = Vec::new();
    let mut q0 = 0i64;
    while q0 < n {
        let qlen = qb.min(n - q0);
        let qblk = q.f_narrow(0, q0, qlen)?;
        let mut best: Option<(Tensor, Tensor)> = None;
        let mut g0 = 0i64;
        while g0 < m {
            monitor.check()?;
            let glen = gb.min(m - g0);
            let gblk = g.f_narrow(0, g0, glen)?;
            let mut tile = qblk.f_matmul(&gblk.f_tr()?)?;
            match (options.metric, &col) {
                (Metric::Cosine, Some(c)) => tile = tile.f_mul(&c.f_narrow(0, g0, glen)?)?,
                (Metric::L2, Some(c)) => tile = tile.f_sub(&c.f_narrow(0, g0, glen)?)?,
                _ => {}
            }
            if excl {
                // Query q0 + r is gallery row q0 + r: mask it where it falls in this block.
                let lo = q0.max(g0);
                let hi = (q0 + qlen).min(g0 + glen);
                if lo < hi {
                    let opts = (Kind::Int64, dev);
                    let r = Tensor::f_arange_start(lo - q0, hi - q0, opts)?;
                    let c = Tensor::f_arange_start(lo - g0, hi - g0, opts)?;
                    let ninf = Tensor::f_from_slice(&[f32::NEG_INFINITY])?.f_to_device(dev)?;
                    let _ = tile.f_index_put_(&[Some(r), Some(c)], &ninf, false)?;
                }
            }
            let kk = k.min(glen);
            let (vals, pos) = tile.f_sort_stable(true, 1, true)?;
            let vals = vals.f_narrow(1, 0, kk)?;
            let idx = pos.f_narrow(1, 0, kk)?.f_add_scalar(g0)?;
            best = Some(match best {
                None => (vals, idx),
                Some((bv, bi)) => {
                    let v = Tensor::f_cat(&[bv, vals], 1)?;
                    let i = Tensor::f_cat(&[bi, idx], 1)?;
                    let (sv, order) = v.f_sort_stable(true, 1, true)?;
                    let keep = k.min(sv.size()[1]);
                    let order = order.f_narrow(1, 0, keep)?;
                    (sv.f_narrow(1, 0, keep)?, i.f_gather(1, &order, false)?)
                }
            });
            g0 += glen;
        }
        let Some((vals, idx)) = best else {
            return Err(RetrievalError::InvalidParameter(
                "empty gallery".to_string(),
            ));
        };
        let scores = match (options.metric, &row) {
            (Metric::Cosine, Some(r)) => vals.f_mul(&r.f_narrow(0, q0, qlen)?.f_unsqueeze(1)?)?,
            (Metric::L2, Some(r)) => r
                .f_narrow(0, q0, qlen)?
                .f_unsqueeze(1)?
                .f_sub(&vals.f_mul_scalar(2.0)?)?
                .f_clamp_min(0.0)?,
            _ => vals,
        };
        out_scores.push(scores);
        out_indices.push(idx);
        q0 += qlen;
    }
    Ok((
        Tensor::f_cat(&out_scores, 0)?,
        Tensor::f_cat(&out_indices, 0)?,
    ))
}

/// [`super::evaluate`] with the search done by [`knn_tensors`] on the tensors' device;
/// the metrics are computed on the CPU from the rankings (an `n x K` index matrix,
/// `K = max(max(ks), max R)`).
pub fn evaluate_tensors(
    queries: &Tensor,
    ids_q: &[i64],
    gallery: &Tensor,
    ids_g: &[i64],
    options: &EvalOptions,
    monitor: &Monitor<'_>,
) -> Result<Evaluation, RetrievalError> {
    let (n, _) = size2(queries, "queries")?;
    let (m, _) = size2(gallery, "gallery")?;
    for (what, ids, rows) in [("ids_q", ids_q, n), ("ids_g", ids_g, m)] {
        if ids.len() != rows as usize {
            return Err(RetrievalError::LengthMismatch {
                what: format!("{what} must have one id per embedding row"),
                expected: rows as usize,
                got: ids.len(),
            });
        }
    }
    let excl = options.knn.exclude_self;
    let mut counts: HashMap<i64, usize> = HashMap::new();
    for &id in ids_g {
        *counts.entry(id).or_insert(0) += 1;
    }
    let max_r = ids_q
        .iter()
        .enumerate()
        .map(|(i, id)| {
            counts.get(id).copied().unwrap_or(0) - usize::from(excl && ids_g.get(i) == Some(id))
        })
        .max()
        .unwrap_or(0);
    let max_k = options.ks.iter().copied().max().unwrap_or(1);
    let available = (m as usize).saturating_sub(usize::from(excl)).max(1);
    let k = max_k.max(max_r).min(available);
    let (_, idx) = knn_tensors(queries, gallery, k, &options.knn, monitor)?;
    let idx = idx.f_to_device(tch::Device::Cpu)?.f_contiguous()?;
    let flat = Vec::<i64>::try_from(idx.f_flatten(0, -1)?)?;
    let ranking = Array2::from_shape_vec((n as usize, k), flat)
        .map_err(|e| RetrievalError::Backend(e.to_string()))?;
    metrics_from_ranking(ranking.view(), ids_q, ids_g, &options.ks, excl)
}

#[cfg(test)]
mod tests {
    use super::super::{knn_with, Neighbors};
    use super::*;
    use ndarray::Array2;

    fn ints(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
        let mut s = seed;
        Array2::from_shape_fn((rows, cols), |_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) % 5) as f32 - 2.0
        })
    }

    fn to_tensor(a: &Array2<f32>) -> Tensor {
        Tensor::from_slice(a.as_slice().unwrap()).reshape([a.nrows() as i64, a.ncols() as i64])
    }

    #[test]
    fn same_as_cpu_engine_with_ties() {
        let q = ints(23, 4, 11);
        let g = ints(97, 4, 12);
        for metric in [Metric::InnerProduct, Metric::L2, Metric::Cosine] {
            for excl in [false, true] {
                let qq = if excl { &g } else { &q };
                let opts = KnnOptions {
                    metric,
                    exclude_self: excl,
                    blocks: Blocks {
                        queries: 10,
                        gallery: 13,
                    },
                };
                let Neighbors { indices, .. } =
                    knn_with(qq.view(), g.view(), 9, &opts, &Monitor::none()).unwrap();
                let (_, ti) =
                    knn_tensors(&to_tensor(qq), &to_tensor(&g), 9, &opts, &Monitor::none())
                        .unwrap();
                let ti = Vec::<i64>::try_from(ti.flatten(0, -1)).unwrap();
                if metric == Metric::Cosine {
                    // Cosine scores are rounded differently: compare rank sets loosely.
                    let same = ti
                        .iter()
                        .zip(indices.iter())
                        .filter(|(a, b)| a == b)
                        .count();
                    assert!(same * 10 >= ti.len() * 8, "{metric:?}");
                } else {
                    assert_eq!(
                        ti,
                        indices.iter().copied().collect::<Vec<_>>(),
                        "{metric:?} excl={excl}"
                    );
                }
            }
        }
    }

    #[test]
    fn cuda_unavailable_is_a_device_error() {
        if !tch::Cuda::is_available() {
            assert!(matches!(
                torch_device(Device::Cuda(0)),
                Err(RetrievalError::Device(_))
            ));
        }
        assert_eq!(torch_device(Device::Cpu), Ok(tch::Device::Cpu));
    }
}
