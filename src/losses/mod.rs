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
//! - [`multi_similarity`]: Wang et al.'s multi-similarity loss (CVPR 2019).
//!
//! A proxy loss also takes one learned vector per class (the *proxies*), and its labels
//! are class indices (`0..num_classes`):
//!
//! - [`arcface::arcface`]: ArcFace's additive angular margin (pytorch-metric-learning's
//!   `ArcFaceLoss`); [`arcface::init_proxies`] draws its initial proxies.
//!
//! A [`Loss`] is a typed spec: it crosses the Python boundary once, as JSON tagged by
//! the loss's name (`{"name": "double-margin", "hi": 0.9, "lo": 0.0, "balance": true}`),
//! and [`Loss::from_json`] checks every parameter.

pub mod arcface;

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// Which loss to train with, with its parameters (JSON: tagged by `name`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case", deny_unknown_fields)]
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
    #[serde(rename = "ntxent")]
    NtXent {
        /// Softmax temperature.
        temperature: f64,
    },
    /// Multi-similarity loss over all pairs of the batch (Wang et al. 2019).
    MultiSimilarity {
        /// Weight of the positive pairs' exponent.
        alpha: f64,
        /// Weight of the negative pairs' exponent.
        beta: f64,
        /// The similarity both exponents are centred on (λ).
        base: f64,
    },
    /// ArcFace: additive angular margin over learned class proxies (needs proxies).
    #[serde(rename = "arcface")]
    ArcFace {
        /// Angular margin in degrees, in `[0, 180)`.
        margin: f64,
        /// Scale of the logits (> 0).
        scale: f64,
    },
}

impl Loss {
    /// The names of every loss, as the specs and the Python layer spell them.
    pub const NAMES: [&'static str; 7] = [
        "double-margin",
        "grid-softmax",
        "triplet",
        "contrastive",
        "ntxent",
        "multi-similarity",
        "arcface",
    ];

    /// The loss named by a JSON spec, its parameters checked (the message names the
    /// parameter or the unknown name).
    pub fn from_json(spec: &str) -> Result<Self, String> {
        let loss: Loss = serde_json::from_str(spec).map_err(|e| {
            let msg = e.to_string();
            if msg.contains("unknown variant") {
                format!("unknown loss in {spec}: the losses are {:?}", Loss::NAMES)
            } else {
                format!("invalid loss spec {spec}: {msg}")
            }
        })?;
        loss.check()?;
        Ok(loss)
    }

    /// The loss's name (as in [`Loss::NAMES`] and the specs).
    pub fn name(&self) -> &'static str {
        match self {
            Loss::DoubleMargin { .. } => "double-margin",
            Loss::GridSoftmax { .. } => "grid-softmax",
            Loss::Triplet { .. } => "triplet",
            Loss::Contrastive { .. } => "contrastive",
            Loss::NtXent { .. } => "ntxent",
            Loss::MultiSimilarity { .. } => "multi-similarity",
            Loss::ArcFace { .. } => "arcface",
        }
    }

    /// The spec as JSON (what [`Loss::from_json`] reads).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Check the parameters' ranges.
    pub fn check(&self) -> Result<(), String> {
        let finite = |name: &str, v: f64| -> Result<f64, String> {
            if v.is_finite() {
                Ok(v)
            } else {
                Err(format!("{name} must be finite, got {v}"))
            }
        };
        let positive = |name: &str, v: f64| -> Result<(), String> {
            if finite(name, v)? > 0.0 {
                Ok(())
            } else {
                Err(format!("{name} must be > 0, got {v}"))
            }
        };
        match *self {
            Loss::DoubleMargin { hi, lo, .. } => {
                if finite("hi", hi)? <= finite("lo", lo)? {
                    return Err(format!(
                        "hi must be greater than lo for the double-margin loss, got {hi} <= {lo}"
                    ));
                }
            }
            Loss::GridSoftmax { temperature } | Loss::NtXent { temperature } => {
                positive("temperature", temperature)?
            }
            Loss::Triplet { margin } | Loss::Contrastive { margin } => {
                if finite("margin", margin)? < 0.0 {
                    return Err(format!("margin must be >= 0, got {margin}"));
                }
            }
            Loss::MultiSimilarity { alpha, beta, base } => {
                positive("alpha", alpha)?;
                positive("beta", beta)?;
                finite("base", base)?;
            }
            Loss::ArcFace { margin, scale } => {
                if !(0.0..180.0).contains(&finite("margin", margin)?) {
                    return Err(format!(
                        "margin must be in [0, 180) degrees for the arcface loss, got {margin}"
                    ));
                }
                positive("scale", scale)?;
            }
        }
        Ok(())
    }

    /// The loss called `name` with its default parameters (`None` when unknown).
    ///
    /// `margin` and `temperature`, when given, override the defaults (`hi`/`lo` of the
    /// double-margin loss are given separately, as is its `balance`); ArcFace's margin is
    /// an angle, so it always takes its own defaults (28.6 degrees, scale 64).
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
            "multi-similarity" => Loss::MultiSimilarity {
                alpha: 2.0,
                beta: 50.0,
                base: 0.5,
            },
            "arcface" => Loss::ArcFace {
                margin: 28.6,
                scale: 64.0,
            },
            _ => return None,
        })
    }

    /// Whether the loss works on grids (`true`) or on pairs of the batch (`false`).
    pub fn is_grid(&self) -> bool {
        matches!(self, Loss::DoubleMargin { .. } | Loss::GridSoftmax { .. })
    }

    /// Whether the loss needs class proxies (one learned vector per class, passed to
    /// [`Loss::pairs`], its labels then class indices `0..num_classes`).
    pub fn needs_proxies(&self) -> bool {
        matches!(self, Loss::ArcFace { .. })
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

    /// Pair loss of embeddings `emb` `(n, dim)` with labels `(n,)`; a proxy loss
    /// ([`Loss::needs_proxies`]) takes `proxies` `(num_classes, dim)` and class indices
    /// as labels, the others take no proxies (either mistake is an error).
    pub fn pairs(
        &self,
        emb: &Tensor,
        labels: &Tensor,
        proxies: Option<&Tensor>,
    ) -> Result<Tensor, tch::TchError> {
        if let Loss::ArcFace { margin, scale } = *self {
            let p = proxies.ok_or_else(|| {
                tch::TchError::Kind("the arcface loss needs class proxies".into())
            })?;
            return arcface::arcface(emb, labels, p, margin, scale);
        }
        if proxies.is_some() {
            let msg = format!("the {} loss takes no proxies", self.name());
            return Err(tch::TchError::Kind(msg));
        }
        match *self {
            Loss::Triplet { margin } => triplet_semihard(emb, labels, margin),
            Loss::Contrastive { margin } => contrastive(emb, labels, margin),
            Loss::NtXent { temperature } => ntxent(emb, labels, temperature),
            Loss::MultiSimilarity { alpha, beta, base } => {
                multi_similarity(emb, labels, alpha, beta, base)
            }
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

/// `log(1 + Σ_{j: mask_ij} exp(x_ij))` for every row `i` (0 for a row without entries).
fn log1p_sum_exp(x: &Tensor, mask: &Tensor) -> Result<Tensor, tch::TchError> {
    let n = x.size().first().copied().unwrap_or(0);
    let filled = x.f_masked_fill(&mask.f_logical_not()?, f64::NEG_INFINITY)?;
    let one = Tensor::f_zeros([n, 1], (x.kind(), x.device()))?; // exp(0) = the "1 +"
    Tensor::f_cat(&[filled, one], 1)?.f_logsumexp([1i64].as_slice(), false)
}

/// Multi-similarity loss (Wang et al., CVPR 2019) over all pairs of the batch, on cosine
/// similarities `S` of normalised embeddings: mean over anchors `i` of
/// `1/α log(1 + Σ_{p∈P(i)} exp(−α (S_ip − λ))) + 1/β log(1 + Σ_{n∈N(i)} exp(β (S_in − λ)))`
/// (`λ = base`; an anchor without positives or negatives contributes 0 for that side),
/// as pytorch-metric-learning's `MultiSimilarityLoss` without a miner.
pub fn multi_similarity(
    emb: &Tensor,
    labels: &Tensor,
    alpha: f64,
    beta: f64,
    base: f64,
) -> Result<Tensor, tch::TchError> {
    let sim = emb.f_matmul(&emb.f_tr()?)?;
    let (pos, neg) = label_masks(labels)?;
    let pos_term = log1p_sum_exp(&sim.f_neg()?.f_add_scalar(base)?.f_mul_scalar(alpha)?, &pos)?
        .f_div_scalar(alpha)?;
    let neg_term =
        log1p_sum_exp(&sim.f_sub_scalar(base)?.f_mul_scalar(beta)?, &neg)?.f_div_scalar(beta)?;
    pos_term.f_add(&neg_term)?.f_mean(None::<Kind>)
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
        let rng = crate::runtime::seed_torch_rng(0);
        let e = Tensor::randn([8, 4], (Kind::Float, tch::Device::Cpu));
        drop(rng);
        let e = &e / e.norm_scalaropt_dim(2, [1i64].as_slice(), true);
        let labels = Tensor::from_slice(&[0i64, 0, 1, 1, 2, 2, 3, 3]);
        for loss in [
            Loss::Triplet { margin: 0.2 },
            Loss::Contrastive { margin: 1.0 },
            Loss::NtXent { temperature: 0.1 },
            Loss::MultiSimilarity {
                alpha: 2.0,
                beta: 50.0,
                base: 0.5,
            },
        ] {
            let v = loss.pairs(&e, &labels, None).unwrap().double_value(&[]);
            assert!(v.is_finite() && v >= 0.0, "{loss:?}: {v}");
        }
    }

    #[test]
    fn specs_round_trip_and_are_checked() {
        for name in Loss::NAMES {
            let loss = Loss::from_name(name, 0.9, 0.0, true, 0.1, 0.2).unwrap();
            assert_eq!(Loss::from_json(&loss.to_json()).unwrap(), loss, "{name}");
            assert!(loss.to_json().contains(&format!("\"name\":\"{name}\"")));
        }
        let dm = r#"{"name": "double-margin", "hi": 0.9, "lo": 0.0, "balance": true}"#;
        assert!(Loss::from_json(dm).is_ok());
        let bad = r#"{"name": "double-margin", "hi": 0.1, "lo": 0.5, "balance": true}"#;
        assert!(Loss::from_json(bad)
            .unwrap_err()
            .contains("hi must be greater than lo"));
        let unknown = r#"{"name": "hinge"}"#;
        assert!(Loss::from_json(unknown)
            .unwrap_err()
            .contains("unknown loss"));
        let extra = r#"{"name": "triplet", "margin": 0.2, "hi": 1}"#;
        assert!(Loss::from_json(extra).is_err());
        let missing = r#"{"name": "triplet"}"#;
        assert!(Loss::from_json(missing).unwrap_err().contains("margin"));
        let t0 = r#"{"name": "ntxent", "temperature": 0}"#;
        assert!(Loss::from_json(t0)
            .unwrap_err()
            .contains("temperature must be > 0"));
        let ms = r#"{"name": "multi-similarity", "alpha": 2, "beta": -1, "base": 0.5}"#;
        assert!(Loss::from_json(ms)
            .unwrap_err()
            .contains("beta must be > 0"));
    }

    #[test]
    fn multi_similarity_by_hand() {
        // two anchors of one label and one of another, unit vectors in 2-D
        let e = Tensor::from_slice(&[1.0f64, 0.0, 0.6, 0.8, 0.0, 1.0]).reshape([3, 2]);
        let labels = Tensor::from_slice(&[0i64, 0, 1]);
        let (a, b, l) = (2.0f64, 50.0f64, 0.5f64);
        let s = [[1.0, 0.6, 0.0], [0.6, 1.0, 0.8], [0.0, 0.8, 1.0]];
        let pos = |x: f64| (1.0 + (-a * (x - l)).exp()).ln() / a;
        let neg = |xs: &[f64]| (1.0 + xs.iter().map(|x| (b * (x - l)).exp()).sum::<f64>()).ln() / b;
        let want = (pos(s[0][1])
            + neg(&[s[0][2]])
            + pos(s[1][0])
            + neg(&[s[1][2]])
            + neg(&[s[2][0], s[2][1]]))
            / 3.0;
        let got = multi_similarity(&e, &labels, a, b, l)
            .unwrap()
            .double_value(&[]);
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
    }
}
