//! Rewards of the two searches: validation accuracy of an SVM with the candidate kernel
//! (kernel search) and recall@1 of retrieval with transformed embeddings (transform
//! search).

use super::record::EvalContext;
use crate::expr::{Expr, ExprError, Program};
use crate::retrieval::{recall_at_k, Metric};
use crate::runtime::{CancelToken, Monitor};
use crate::svm::{fit_ovo, Classes, PrecomputedGram, SolverParams};
use ndarray::{Array2, ArrayView2, Axis};

fn expr_msg(e: ExprError) -> String {
    e.to_string()
}

/// Rows scaled to unit L2 norm (zero rows stay zero), as `f32` for the retrieval engine.
fn unit_rows_f32(m: ArrayView2<'_, f64>) -> Array2<f32> {
    let mut out = Array2::<f32>::zeros(m.dim());
    for (src, mut dst) in m.axis_iter(Axis(0)).zip(out.axis_iter_mut(Axis(0))) {
        let n = src.iter().map(|v| v * v).sum::<f64>().sqrt();
        let s = if n > 0.0 && n.is_finite() {
            1.0 / n
        } else {
            0.0
        };
        dst.iter_mut()
            .zip(src)
            .for_each(|(d, v)| *d = (v * s) as f32);
    }
    out
}

/// Recall@1 by cosine similarity (gridmatch's retrieval engine; ties: the lower gallery
/// index).
pub fn recall_at_1(
    query: ArrayView2<'_, f64>,
    ids_query: &[i64],
    gallery: ArrayView2<'_, f64>,
    ids_gallery: &[i64],
) -> Result<f64, String> {
    let q = unit_rows_f32(query);
    let g = unit_rows_f32(gallery);
    recall_at_k(
        q.view(),
        ids_query,
        g.view(),
        ids_gallery,
        1,
        Metric::Cosine,
    )
    .map_err(|e| e.to_string())
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
    recall_at_1(q.view(), ids_query, g.view(), ids_gallery)
}

/// The data of a kernel search: training and validation sets (rows are samples) with
/// class indices, and the SVM settings.
pub struct KernelTask<'a> {
    /// Training samples.
    pub x_train: ArrayView2<'a, f64>,
    /// Training classes `0..n_classes`.
    pub y_train: &'a [usize],
    /// Validation samples.
    pub x_val: ArrayView2<'a, f64>,
    /// Validation classes (`None`: a class absent from training, never right).
    pub y_val: &'a [Option<usize>],
    /// Number of classes.
    pub n_classes: usize,
    /// SVM regularisation `C`.
    pub c: f64,
    /// Solver settings.
    pub params: SolverParams,
}

/// Kernel-search reward: validation accuracy of an SVM trained with the candidate
/// kernel. The training Gram matrix is computed once (half of it when the kernel is
/// symmetric by commutativity), the validation kernel only against the support
/// vectors. Non-finite kernel values, solver failures and timeouts are errors (the
/// candidate is invalid).
pub fn kernel_reward(
    e: &Expr,
    task: &KernelTask<'_>,
    ctx: &EvalContext<'_>,
) -> Result<f64, String> {
    let prog = Program::compile(e).map_err(expr_msg)?;
    prog.check_kernel().map_err(expr_msg)?;
    let tok = child_token(ctx);
    let k_train = if e.is_symmetric() {
        prog.gram_symmetric(task.x_train, &tok, true)
    } else {
        prog.gram(task.x_train, task.x_train, &tok, true)
    }
    .map_err(expr_msg)?;
    if ctx.expired() {
        return Err("timed out".into());
    }
    let gram = PrecomputedGram::new(k_train.view()).ok_or("training kernel is not square")?;
    let bounds = vec![task.c; task.y_train.len()];
    let mon = Monitor::new(tok.clone(), None);
    let model = fit_ovo(
        &gram,
        &Classes::new(task.y_train, task.n_classes, &bounds),
        &task.params,
        &mon,
    )
    .map_err(|e| format!("SVM failed: {e}"))?;
    if ctx.expired() {
        return Err("timed out".into());
    }
    let n = task.x_train.nrows();
    let sv = &model.support;
    let x_sv = task.x_train.select(Axis(0), sv);
    let k_sv = prog
        .gram(task.x_val, x_sv.view(), &tok, true)
        .map_err(expr_msg)?;
    // The decision function reads only the support columns.
    let mut k_val = Array2::<f64>::zeros((task.x_val.nrows(), n));
    for (t, &j) in sv.iter().enumerate() {
        k_val.column_mut(j).assign(&k_sv.column(t));
    }
    let pred = model
        .predict_precomputed(k_val.view())
        .map_err(|e| format!("SVM failed: {e}"))?;
    if pred.is_empty() {
        return Ok(0.0);
    }
    let right = pred
        .iter()
        .zip(task.y_val)
        .filter(|(p, y)| Some(**p) == **y)
        .count();
    Ok(right as f64 / pred.len() as f64)
}

/// A token for one evaluation: cancelled when the search is or when the candidate's
/// deadline passes (the Gram loops and the SVM solver check it, so a slow candidate
/// stops mid-way instead of at the end of a phase).
pub fn child_token(ctx: &EvalContext<'_>) -> CancelToken {
    match ctx.deadline {
        Some(d) => ctx.token.with_deadline(d),
        None => ctx.token.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn kernel_reward_separable_data() {
        // Two classes separated along the first feature: a linear kernel is perfect.
        let x = ndarray::Array2::from_shape_fn((40, 3), |(i, j)| {
            let c = if i % 2 == 0 { 1.0 } else { -1.0 };
            if j == 0 {
                c * (1.0 + (i % 7) as f64 * 0.1)
            } else {
                ((i * 7 + j * 3) % 11) as f64 / 11.0 - 0.5
            }
        });
        let y: Vec<usize> = (0..40).map(|i| i % 2).collect();
        let (xt, xv) = (
            x.slice(ndarray::s![..30, ..]),
            x.slice(ndarray::s![30.., ..]),
        );
        let yv: Vec<Option<usize>> = y[30..].iter().map(|&c| Some(c)).collect();
        let task = KernelTask {
            x_train: xt,
            y_train: &y[..30],
            x_val: xv,
            y_val: &yv,
            n_classes: 2,
            c: 1.0,
            params: SolverParams::default(),
        };
        let tok = CancelToken::new();
        let ctx = EvalContext {
            token: &tok,
            deadline: None,
        };
        let acc = kernel_reward(&crate::expr::parse("dot(x, y)").unwrap(), &task, &ctx).unwrap();
        assert_eq!(acc, 1.0);
        let bad = kernel_reward(
            &crate::expr::parse("norm1(x / (x - y))").unwrap(),
            &task,
            &ctx,
        );
        assert!(bad.unwrap_err().contains("non-finite"));
    }

    #[test]
    fn recall_by_hand() {
        let q = array![[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]];
        let g = array![[2.0, 0.1], [0.1, 3.0], [-1.0, -1.0]];
        assert_eq!(
            recall_at_1(q.view(), &[0, 1, 2], g.view(), &[0, 1, 2]),
            Ok(2.0 / 3.0)
        );
        assert_eq!(
            recall_at_1(q.view(), &[0, 1, 0], g.view(), &[0, 1, 2]),
            Ok(1.0)
        );
    }
}
