//! The metric's maps ([`Prepared`]): the per-gallery-column transform of raw inner
//! products into internal scores (larger is better) that the scans apply, and the
//! per-query conversion of internal scores into reported ones.

use super::scan::Columns;
use super::Metric;
use ndarray::ArrayView2;
use rayon::prelude::*;

/// Per-metric data: per-gallery-column transform applied to each tile row, and the
/// per-query conversion of internal scores (larger is better) to reported scores.
pub(super) struct Prepared {
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
    pub(super) fn new(metric: Metric, q: &ArrayView2<'_, f32>, g: &ArrayView2<'_, f32>) -> Self {
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
    pub(super) fn columns(&self, first: usize, len: usize) -> Columns<'_> {
        match self.metric {
            Metric::InnerProduct => Columns::Raw,
            Metric::Cosine => Columns::Scale(&self.column[first..first + len]),
            Metric::L2 => Columns::Shift(&self.column[first..first + len]),
        }
    }

    /// The internal score of gallery row `j` from its raw inner product (the same
    /// operation as the map of [`Self::columns`]).
    #[inline]
    pub(super) fn internal(&self, j: usize, v: f32) -> f32 {
        match self.metric {
            Metric::InnerProduct => v,
            Metric::Cosine => v * self.column[j],
            Metric::L2 => v - self.column[j],
        }
    }

    /// The reported score of query `i` from an internal score.
    #[inline]
    pub(super) fn report(&self, i: usize, v: f32) -> f32 {
        match self.metric {
            Metric::InnerProduct => v,
            Metric::Cosine => v * self.row[i],
            Metric::L2 => (self.row[i] - 2.0 * v).max(0.0),
        }
    }
}
