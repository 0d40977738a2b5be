//! Losses of the Grid Search Network and of the metric-learning baselines.
//!
//! Grid losses take a similarity map `sim` of shape `(queries, cells)` (cosine
//! similarities of each query with the cells of its grid) and a float `target` of the
//! same shape (1 for positive cells, 0 for negatives):
//!
//! - [`double_margin`]: the paper's loss,
//!   `Σ_cells y·max(hi − s, 0)² + (1 − y)·max(s − lo, 0)²`, averaged over queries; or,
//!   balanced, the mean of the positive hinges plus the mean of the negative hinges.
//! - [`grid_softmax`]: softmax over the cells with a temperature, cross-entropy towards
//!   the positive cells (uniform over them): multi-positive InfoNCE.
//!
//! Pair losses take L2-normalised embeddings `(n, dim)` and integer labels `(n,)`:
//!
//! - [`triplet_semihard`]: FaceNet's semi-hard mining on squared Euclidean distances.
//! - [`contrastive`]: Hadsell et al.'s contrastive loss over all pairs.
//! - [`ntxent`]: NT-Xent / supervised contrastive loss with a temperature.

use tch::{Kind, Tensor};

/// Which loss to train with, with its parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Loss {
    /// The paper's double-margin contrastive loss on the grid's similarity map.
    DoubleMargin {
        /// Positives are pushed above this similarity.
        hi: f64,
        /// Negatives are pushed below this similarity.
        lo: f64,
        /// `false`: the paper's sum over cells; `true`: mean over the positive cells
        /// plus mean over the negative cells (each side weighs the same).
        balance: bool,
    },
    /// Softmax over grid cells; all positive cells are targets.
    GridSoftmax {
        /// Softmax temperature.
        temperature: f64,
    },
    /// Triplet loss with semi-hard negative mining.
    Triplet {
        /// Margin on squared Euclidean distance.
        margin: f64,
    },
    /// Contrastive loss over all pairs of the batch.
    Contrastive {
        /// Negatives are pushed beyond this Euclidean distance.
        margin: f64,
    },
    /// NT-Xent (normalised temperature-scaled cross-entropy), multi-positive.
    NtXent {
        /// Softmax temperature.
        temperature: f64,
    },
}

impl Loss {
    /// The loss called `name` with its default parameters (`None` when unknown).
    ///
    /// `margin` and `temperature`, when given, override the defaults (`hi`/`lo` of the
    /// double-margin loss are given separately, as is its `balance`).
    pub fn from_name(
        name: &str,
        hi: f64,
        lo: f64,
        balance: bool,
        temperature: f64,
        margin: f64,
    ) -> Option<Self> {
        Some(match name {
            "double-margin" => Loss::DoubleMargin { hi, lo, balance },
            "grid-softmax" => Loss::GridSoftmax { temperature },
            "triplet" => Loss::Triplet { margin },
            "contrastive" => Loss::Contrastive { margin },
            "ntxent" => Loss::NtXent { temperature },
            _ => return None,
        })
    }

    /// Whether the loss works on grids (`true`) or on pairs of the batch (`false`).
    pub fn is_grid(&self) -> bool {
        matches!(self, Loss::DoubleMargin { .. } | Loss::GridSoftmax { .. })
    }

    /// Grid loss of `sim` against `target` (both `(queries, cells)`).
    pub fn grid(&self, sim: &Tensor, target: &Tensor) -> Result<Tensor, tch::TchError> {
        match *self {
            Loss::DoubleMargin { hi, lo, balance } => {
                if balance {
                    double_margin_balanced(sim, target, hi, lo)
                } else {
                    double_margin(sim, target, hi, lo)
                }
            }
            Loss::GridSoftmax { temperature } => grid_softmax(sim, target, temperature),
            _ => Err(tch::TchError::Kind(format!("{self:?} is not a grid loss"))),
        }
    }

    /// Pair loss of embeddings `emb` `(n, dim)` with labels `(n,)`.
    pub fn pairs(&self, emb: &Tensor, labels: &Tensor) -> Result<Tensor, tch::TchError> {
        match *self {
            Loss::Triplet { margin } => triplet_semihard(emb, labels, margin),
            Loss::Contrastive { margin } => contrastive(emb, labels, margin),
            Loss::NtXent { temperature } => ntxent(emb, labels, temperature),
            _ => Err(tch::TchError::Kind(format!("{self:?} is not a pair loss"))),
        }
    }
}

/// The paper's double-margin loss: mean over queries of
/// `Σ_cells y·max(hi − s, 0)² + (1 − y)·max(s − lo, 0)²`.
pub fn double_margin(
    sim: &Tensor,
    target: &Tensor,
    hi: f64,
    lo: f64,
) -> Result<Tensor, tch::TchError> {
    let y = target.f_to_kind(sim.kind())?;
    let pos = sim.f_neg()?.f_add_scalar(hi)?.f_relu()?.f_square()?;
    let neg = sim.f_sub_scalar(lo)?.f_relu()?.f_square()?;
    let per_cell = y
        .f_mul(&pos)?
        .f_add(&y.f_neg()?.f_add_scalar(1.0)?.f_mul(&neg)?)?;
    per_cell
        .f_sum_dim_intlist([1i64].as_slice(), false, None::<Kind>)?
        .f_mean(None::<Kind>)
}

/// Balanced double-margin loss: mean over queries of
/// `Σ_c y·max(hi − s, 0)² / Σ_c y + Σ_c (1 − y)·max(s − lo, 0)² / Σ_c (1 − y)`
/// (each sum divided by its cell count, clamped to at least 1), so the positive and the
/// negative side weigh the same whatever the number of cells.
pub fn double_margin_balanced(
    sim: &Tensor,
    target: &Tensor,
    hi: f64,
    lo: f64,
) -> Result<Tensor, tch::TchError> {
    let y = target.f_to_kind(sim.kind())?;
    let not_y = y.f_neg()?.f_add_scalar(1.0)?;
    let pos = sim.f_neg()?.f_add_scalar(hi)?.f_relu()?.f_square()?;
    let neg = sim.f_sub_scalar(lo)?.f_relu()?.f_square()?;
    let side = |w: &Tensor, h: &Tensor| -> Result<Tensor, tch::TchError> {
        let n = w
            .f_sum_dim_intlist([1i64].as_slice(), false, None::<Kind>)?
            .f_clamp_min(1.0)?;
        w.f_mul(h)?
            .f_sum_dim_intlist([1i64].as_slice(), false, None::<Kind>)?
            .f_div(&n)
    };
    side(&y, &pos)?
        .f_add(&side(&not_y, &neg)?)?
        .f_mean(None::<Kind>)
}

/// Multi-positive InfoNCE over the grid: mean over queries of
/// `−Σ_c y_c·log softmax(s/τ)_c / Σ_c y_c`.
pub fn grid_softmax(
    sim: &Tensor,
    target: &Tensor,
    temperature: f64,
) -> Result<Tensor, tch::TchError> {
    let y = target.f_to_kind(sim.kind())?;
    let logp = sim
        .f_div_scalar(temperature)?
        .f_log_softmax(1, None::<Kind>)?;
    let npos = y
        .f_sum_dim_intlist([1i64].as_slice(), false, None::<Kind>)?
        .f_clamp_min(1.0)?;
    y.f_mul(&logp)?
        .f_sum_dim_intlist([1i64].as_slice(), false, None::<Kind>)?
        .f_div(&npos)?
        .f_neg()?
        .f_mean(None::<Kind>)
}

/// Masks `(n, n)` of same-label pairs (diagonal excluded) and different-label pairs.
fn label_masks(labels: &Tensor) -> Result<(Tensor, Tensor), tch::TchError> {
    let n = labels.size().first().copied().unwrap_or(0);
    let same = labels
        .f_unsqueeze(1)?
        .f_eq_tensor(&labels.f_unsqueeze(0)?)?;
    let eye = Tensor::f_eye(n, (Kind::Bool, labels.device()))?;
    let pos = same.f_logical_and(&eye.f_logical_not()?)?;
    let neg = same.f_logical_not()?;
    Ok((pos, neg))
}

/// Triplet loss with semi-hard mining (Schroff et al. 2015), on squared Euclidean
/// distances `d = 2 − 2·cos` of normalised embeddings. For every anchor–positive pair
/// the negative is the closest one farther than the positive; when none is, the
/// farthest negative. Mean of `max(d_ap − d_an + margin, 0)` over anchor–positive
/// pairs (anchors without negatives contribute 0).
pub fn triplet_semihard(
    emb: &Tensor,
    labels: &Tensor,
    margin: f64,
) -> Result<Tensor, tch::TchError> {
    let sim = emb.f_matmul(&emb.f_tr()?)?;
    let d = sim.f_mul_scalar(-2.0)?.f_add_scalar(2.0)?; // (a, x)
    let (pos, neg) = label_masks(labels)?;
    let d_ap = d.f_unsqueeze(2)?; // (a, p, 1)
    let d_an = d.f_unsqueeze(1)?; // (a, 1, n)
    let outside = neg
        .f_unsqueeze(1)?
        .f_logical_and(&d_an.f_gt_tensor(&d_ap)?)?; // (a, p, n)
    let big = Tensor::f_from_slice(&[1e9f32])?
        .f_to_kind(d.kind())?
        .f_to_device(d.device())?;
    let semi = d_an
        .f_where_self(&outside, &big)?
        .f_amin([2i64].as_slice(), false)?; // (a, p)
    let has_semi = outside.f_any_dim(2, false)?; // (a, p)
    let hardest = d
        .f_where_self(&neg, &big.f_neg()?)?
        .f_amax([1i64].as_slice(), true)?; // (a, 1)
    let has_neg = neg.f_any_dim(1, true)?; // (a, 1)
    let chosen = semi.f_where_self(&has_semi, &hardest.f_expand_as(&semi)?)?;
    let per = d
        .f_sub(&chosen)?
        .f_add_scalar(margin)?
        .f_relu()?
        .f_where_scalarother(&has_neg, 0.0)?;
    let mask = pos.f_to_kind(d.kind())?;
    let count = mask.f_sum(None::<Kind>)?.f_clamp_min(1.0)?;
    per.f_mul(&mask)?.f_sum(None::<Kind>)?.f_div(&count)
}

/// Contrastive loss over all pairs `i < j`: `y·d² + (1 − y)·max(margin − d, 0)²` with
/// Euclidean distance `d = sqrt(max(2 − 2·cos, 1e-12))`, averaged over pairs.
pub fn contrastive(emb: &Tensor, labels: &Tensor, margin: f64) -> Result<Tensor, tch::TchError> {
    let n = emb.size().first().copied().unwrap_or(0);
    let sim = emb.f_matmul(&emb.f_tr()?)?;
    let d2 = sim
        .f_mul_scalar(-2.0)?
        .f_add_scalar(2.0)?
        .f_clamp_min(1e-12)?;
    let d = d2.f_sqrt()?;
    let (pos, _) = label_masks(labels)?;
    let y = pos.f_to_kind(d.kind())?;
    let neg_term = d.f_neg()?.f_add_scalar(margin)?.f_relu()?.f_square()?;
    let per = y
        .f_mul(&d2)?
        .f_add(&y.f_neg()?.f_add_scalar(1.0)?.f_mul(&neg_term)?)?;
    let upper = Tensor::f_ones([n, n], (d.kind(), d.device()))?.f_triu(1)?;
    let count = upper.f_sum(None::<Kind>)?.f_clamp_min(1.0)?;
    per.f_mul(&upper)?.f_sum(None::<Kind>)?.f_div(&count)
}

/// NT-Xent with several positives (supervised contrastive form): for each anchor `i`
/// with positives `P(i)`, `−1/|P(i)| Σ_p log softmax_{a≠i}(s_ia/τ)_p`, averaged over
/// anchors that have positives. With two views per label this is SimCLR's NT-Xent.
pub fn ntxent(emb: &Tensor, labels: &Tensor, temperature: f64) -> Result<Tensor, tch::TchError> {
    let n = emb.size().first().copied().unwrap_or(0);
    let sim = emb.f_matmul(&emb.f_tr()?)?.f_div_scalar(temperature)?;
    let eye = Tensor::f_eye(n, (sim.kind(), sim.device()))?;
    let logits = sim.f_sub(&eye.f_mul_scalar(1e9)?)?;
    let logp = logits.f_log_softmax(1, None::<Kind>)?;
    let (pos, _) = label_masks(labels)?;
    let y = pos.f_to_kind(sim.kind())?;
    let npos = y.f_sum_dim_intlist([1i64].as_slice(), false, None::<Kind>)?;
    let has = npos.f_gt(0.0)?.f_to_kind(sim.kind())?;
    let per = y
        .f_mul(&logp)?
        .f_sum_dim_intlist([1i64].as_slice(), false, None::<Kind>)?
        .f_div(&npos.f_clamp_min(1.0)?)?
        .f_neg()?;
    let count = has.f_sum(None::<Kind>)?.f_clamp_min(1.0)?;
    per.f_mul(&has)?.f_sum(None::<Kind>)?.f_div(&count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn double_margin_by_hand() {
        let sim = Tensor::from_slice(&[0.95f32, 0.5, 0.2, -0.1]).reshape([1, 4]);
        let y = Tensor::from_slice(&[1.0f32, 1.0, 0.0, 0.0]).reshape([1, 4]);
        let l = double_margin(&sim, &y, 0.9, 0.0).unwrap().double_value(&[]);
        let want = (0.9f64 - 0.5).powi(2) + 0.2f64.powi(2);
        assert!((l - want).abs() < 1e-6, "{l} vs {want}");
    }

    #[test]
    fn balanced_double_margin_by_hand() {
        let sim = Tensor::from_slice(&[0.5f32, 0.7, 0.2, -0.1, 0.4]).reshape([1, 5]);
        let y = Tensor::from_slice(&[1.0f32, 1.0, 0.0, 0.0, 0.0]).reshape([1, 5]);
        let l = Loss::DoubleMargin {
            hi: 0.9,
            lo: 0.0,
            balance: true,
        }
        .grid(&sim, &y)
        .unwrap()
        .double_value(&[]);
        let want =
            (0.4f64.powi(2) + 0.2f64.powi(2)) / 2.0 + (0.2f64.powi(2) + 0.4f64.powi(2)) / 3.0;
        assert!((l - want).abs() < 1e-6, "{l} vs {want}");
    }

    #[test]
    fn grid_softmax_uniform_is_log_cells() {
        let sim = Tensor::zeros([2, 9], (Kind::Float, tch::Device::Cpu));
        let y = Tensor::zeros([2, 9], (Kind::Float, tch::Device::Cpu));
        let _ = y.narrow(1, 0, 1).fill_(1.0);
        let l = grid_softmax(&sim, &y, 0.1).unwrap().double_value(&[]);
        assert!((l - 9f64.ln()).abs() < 1e-5);
    }

    #[test]
    fn pair_losses_are_zero_or_positive_and_finite() {
        tch::manual_seed(0);
        let e = Tensor::randn([8, 4], (Kind::Float, tch::Device::Cpu));
        let e = &e / e.norm_scalaropt_dim(2, [1i64].as_slice(), true);
        let labels = Tensor::from_slice(&[0i64, 0, 1, 1, 2, 2, 3, 3]);
        for loss in [
            Loss::Triplet { margin: 0.2 },
            Loss::Contrastive { margin: 1.0 },
            Loss::NtXent { temperature: 0.1 },
        ] {
            let v = loss.pairs(&e, &labels).unwrap().double_value(&[]);
            assert!(v.is_finite() && v >= 0.0, "{loss:?}: {v}");
        }
    }
}
