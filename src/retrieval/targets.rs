//! What the metrics ask of a search beyond the top-k: the relevant rows of every query
//! ([`Relevant`]) and each query's best relevant item and floor ([`Target`],
//! [`best_relevant`]), scored exactly as the kernels' tiles score them (one FMA chain),
//! so that the scans can count the items ranked before it.

use super::kernel::Kernel;
use super::prepared::Prepared;
use super::topk::{rank_order, Neighbor};
use rayon::prelude::*;

/// The relevant gallery rows of every query, for [`super::engine::search`] on behalf of the
/// metrics:
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
pub(super) fn best_relevant(
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
