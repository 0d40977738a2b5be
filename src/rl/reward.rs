//! Rewards of the two searches: validation accuracy of an SVM with the candidate kernel
//! (kernel search) and recall@1 of retrieval with transformed embeddings (transform
//! search).

use super::search::EvalContext;
use crate::expr::{Expr, ExprError, Program};
use crate::runtime::CancelToken;
use ndarray::{ArrayView2, Axis};
use rayon::prelude::*;

fn expr_msg(e: ExprError) -> String {
    e.to_string()
}

/// Recall@1 of `query` against `gallery` by cosine similarity: the fraction of queries
/// whose most similar gallery item has the query's id (ties: the lower index).
pub fn recall_at_1(
    query: ArrayView2<'_, f64>,
    ids_query: &[i64],
    gallery: ArrayView2<'_, f64>,
    ids_gallery: &[i64],
) -> f64 {
    let normalise = |m: ArrayView2<'_, f64>| -> Vec<Vec<f64>> {
        m.axis_iter(Axis(0))
            .map(|r| {
                let n = r.iter().map(|v| v * v).sum::<f64>().sqrt();
                let s = if n > 0.0 { 1.0 / n } else { 0.0 };
                r.iter().map(|v| v * s).collect()
            })
            .collect()
    };
    let q = normalise(query);
    let g = normalise(gallery);
    if q.is_empty() {
        return 0.0;
    }
    let hits: usize = q
        .par_iter()
        .zip(ids_query.par_iter())
        .map(|(qv, qid)| {
            let mut best = f64::NEG_INFINITY;
            let mut arg = usize::MAX;
            for (j, gv) in g.iter().enumerate() {
                let s: f64 = qv.iter().zip(gv).map(|(a, b)| a * b).sum();
                if s > best {
                    best = s;
                    arg = j;
                }
            }
            usize::from(arg != usize::MAX && ids_gallery[arg] == *qid)
        })
        .sum();
    hits as f64 / q.len() as f64
}

/// Transform-search reward: recall@1 after applying `e` to both sets. Non-finite
/// transformed values make the candidate invalid.
pub fn transform_reward(
    e: &Expr,
    query: ArrayView2<'_, f64>,
    ids_query: &[i64],
    gallery: ArrayView2<'_, f64>,
    ids_gallery: &[i64],
    ctx: &EvalContext<'_>,
) -> Result<f64, String> {
    let prog = Program::compile(e).map_err(expr_msg)?;
    let tok = child_token(ctx);
    let q = prog.apply(query, &tok, true).map_err(expr_msg)?;
    let g = prog.apply(gallery, &tok, true).map_err(expr_msg)?;
    if ctx.expired() {
        return Err("timed out".into());
    }
    Ok(recall_at_1(q.view(), ids_query, g.view(), ids_gallery))
}

/// A token for one evaluation: cancelled when the search is.
pub fn child_token(ctx: &EvalContext<'_>) -> CancelToken {
    ctx.token.clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn recall_by_hand() {
        let q = array![[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]];
        let g = array![[2.0, 0.1], [0.1, 3.0], [-1.0, -1.0]];
        assert_eq!(
            recall_at_1(q.view(), &[0, 1, 2], g.view(), &[0, 1, 2]),
            2.0 / 3.0
        );
        assert_eq!(recall_at_1(q.view(), &[0, 1, 0], g.view(), &[0, 1, 2]), 1.0);
    }
}
