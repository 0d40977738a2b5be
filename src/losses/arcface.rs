//! ArcFace (Deng et al., CVPR 2019): additive angular margin over learned class proxies,
//! with pytorch-metric-learning's `ArcFaceLoss` semantics (version 2.9).
//!
//! With `x̂_i` the L2-normalised embeddings, `ŵ_c` the L2-normalised proxies (one row per
//! class), `cos θ_ic = x̂_i·ŵ_c`, `θ_i = acos(clamp(cos θ_iy_i, −1, 1))` the angle to the
//! sample's own class and `m` the margin in radians, the target logit is
//! `cos(θ_i + m)` while `θ_i ≤ π − m`, else `cos θ_i − m·sin m` (so that it keeps
//! decreasing in `θ_i`); the other logits are `cos θ_ic`; all are multiplied by `scale`
//! and the loss is the cross-entropy towards `y_i`, averaged over the batch (pml's
//! `MeanReducer`; no weight regulariser, no miner).
//!
//! Layout: the proxies are `(num_classes, dim)`, a row per class (pml's `W` is the
//! transpose, `(dim, num_classes)`). The margin is given in degrees, as pml takes it.
//!
//! One deliberate difference: `d acos(c)/dc` is infinite at `c = ±1` (an embedding on its
//! proxy), which makes pml's gradient NaN or infinite there, a known cause of NaN losses
//! once a dataset is fitted. Here the gradient of the angle is taken at `c` clamped to
//! `[−1 + ε, 1 − ε]` (`ε` = [`ACOS_GRAD_EPS`]): the same as pml's wherever
//! `|c| < 1 − ε`, zero beyond (as pml's is for `|c| > 1`). The loss's value is pml's
//! everywhere.

use tch::{Device, Kind, Reduction, TchError, Tensor};

/// The gradient of the angle to the target proxy is taken at cosines at most this
/// close to ±1 (see the module docs).
pub const ACOS_GRAD_EPS: f64 = 1e-7;

/// `x` with its rows L2-normalised as `torch.nn.functional.normalize` (norm clamped to
/// at least `1e-12`).
fn normalize_rows(x: &Tensor) -> Result<Tensor, TchError> {
    let norm = x
        .f_norm_scalaropt_dim(2, [1i64].as_slice(), true)?
        .f_clamp_min(1e-12)?;
    x.f_div(&norm)
}

/// Check the shapes, kinds and devices of ArcFace's inputs and that every label is a
/// class index in `0..num_classes` (one small device-to-host copy).
fn check_inputs(emb: &Tensor, labels: &Tensor, proxies: &Tensor) -> Result<(), TchError> {
    let bad = |m: String| Err(TchError::Shape(m));
    let (es, ps, ls) = (emb.size(), proxies.size(), labels.size());
    let (&[n, dim], &[classes, pdim]) = (es.as_slice(), ps.as_slice()) else {
        return bad(format!(
            "arcface: embeddings must be (n, dim) and proxies (num_classes, dim), got {es:?} and {ps:?}"
        ));
    };
    if n < 1 || classes < 1 || dim != pdim {
        return bad(format!(
            "arcface: embeddings {es:?} and proxies {ps:?} need n >= 1, num_classes >= 1 and \
             the same dim"
        ));
    }
    if ls != [n] || labels.kind() != Kind::Int64 {
        return bad(format!(
            "arcface: labels must be int64 class indices of shape ({n},), got {:?} {ls:?}",
            labels.kind()
        ));
    }
    if !emb.is_floating_point() || !proxies.is_floating_point() {
        return bad(format!(
            "arcface: embeddings and proxies must be floating point, got {:?} and {:?}",
            emb.kind(),
            proxies.kind()
        ));
    }
    if emb.device() != proxies.device() || emb.device() != labels.device() {
        return bad(format!(
            "arcface: embeddings, labels and proxies must be on one device, got {:?}, {:?} \
             and {:?}",
            emb.device(),
            labels.device(),
            proxies.device()
        ));
    }
    let lo = labels.f_min()?.f_int64_value(&[])?;
    let hi = labels.f_max()?.f_int64_value(&[])?;
    if lo < 0 || hi >= classes {
        return bad(format!(
            "arcface: labels must be class indices in 0..{classes}, got values in {lo}..={hi}"
        ));
    }
    Ok(())
}

/// ArcFace loss (scalar, with autograd to `emb` and `proxies`; see the module docs).
///
/// - `emb`: embeddings `(n, dim)`, floating point (normalised here);
/// - `labels`: class indices `(n,)`, int64, each in `0..num_classes`;
/// - `proxies`: one learned vector per class, `(num_classes, dim)` (normalised here;
///   cast to `emb`'s kind, as pml casts `W`);
/// - `margin`: the additive angular margin in **degrees** (pml's default 28.6 ≈ 0.5 rad);
/// - `scale`: the logits' scale (pml's default 64).
///
/// Bad shapes, kinds, devices or labels are a [`TchError::Shape`] naming them.
pub fn arcface(
    emb: &Tensor,
    labels: &Tensor,
    proxies: &Tensor,
    margin: f64,
    scale: f64,
) -> Result<Tensor, TchError> {
    check_inputs(emb, labels, proxies)?;
    let m = margin.to_radians();
    let e = normalize_rows(emb)?;
    let w = normalize_rows(&proxies.f_to_kind(emb.kind())?)?;
    let cosine = e.f_matmul(&w.f_tr()?)?; // (n, classes)
    let target = labels.f_unsqueeze(1)?;
    let cos_t = cosine.f_gather(1, &target, false)?; // (n, 1)
                                                     // θ = acos(clamp(c, −1, 1)) in value; its gradient taken at c clamped to ±(1 − ε).
    let angle_of = |lim: f64| cos_t.f_clamp(-lim, lim)?.f_acos();
    let exact = angle_of(1.0)?;
    let smooth = angle_of(1.0 - ACOS_GRAD_EPS)?;
    let angles = smooth.f_add(&exact.f_sub(&smooth)?.f_detach()?)?;
    let within = angles.f_le(std::f64::consts::PI - m)?;
    let plus_margin = angles.f_add_scalar(m)?.f_cos()?;
    let past = angles.f_cos()?.f_sub_scalar(m * m.sin())?;
    let modified = plus_margin.f_where_self(&within, &past)?;
    let one_hot = cosine.f_zeros_like()?.f_scatter_value(1, &target, 1.0)?;
    let logits = cosine
        .f_add(&one_hot.f_mul(&modified.f_sub(&cos_t)?)?)?
        .f_mul_scalar(scale)?;
    logits.f_cross_entropy_loss::<Tensor>(labels, None, Reduction::Mean, -100, 0.0)
}

/// Initial proxies `(num_classes, dim)`, float32 on `device`, as pml initialises `W`:
/// every entry drawn from the standard normal (`torch.nn.init.normal_`, mean 0, std 1).
///
/// Drawn on the CPU from libtorch's generator seeded with `seed` (the same values on
/// every device), in pml's `(dim, num_classes)` order and transposed: the result is
/// `W.T` of `torch.manual_seed(seed); ArcFaceLoss(num_classes, dim)`. The tensor does
/// not require gradients: make it a parameter (`set_requires_grad(true)`, or copy it
/// into a `VarStore`) to train it.
pub fn init_proxies(
    num_classes: i64,
    dim: i64,
    seed: u64,
    device: Device,
) -> Result<Tensor, TchError> {
    if num_classes < 1 || dim < 1 {
        return Err(TchError::Shape(format!(
            "arcface proxies need num_classes >= 1 and dim >= 1, got {num_classes} and {dim}"
        )));
    }
    let w = {
        let _rng = crate::runtime::seed_torch_rng(seed);
        Tensor::f_randn([dim, num_classes], (Kind::Float, Device::Cpu))?
    };
    w.f_tr()?.f_contiguous()?.f_to_device(device)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(t: &Tensor) -> f64 {
        t.double_value(&[])
    }

    #[test]
    fn by_hand_in_two_dimensions() {
        // one embedding at 30° from its class's proxy (0°) and 60° from the other's
        let e = Tensor::from_slice(&[30f64.to_radians().cos(), 30f64.to_radians().sin()])
            .reshape([1, 2])
            * 3.0;
        let w = Tensor::from_slice(&[
            2.0f64,
            0.0,
            90f64.to_radians().cos(),
            90f64.to_radians().sin(),
        ])
        .reshape([2, 2]);
        let labels = Tensor::from_slice(&[0i64]);
        let (m, s) = (20.0f64, 10.0f64);
        let got = value(&arcface(&e, &labels, &w, m, s).unwrap());
        let target = s * (30.0 + m).to_radians().cos();
        let other = s * 60f64.to_radians().cos();
        let want = -(target - (target.exp() + other.exp()).ln());
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        // past π − m the target logit is cos θ − m·sin m
        let labels = Tensor::from_slice(&[1i64]);
        let got = value(&arcface(&e, &labels, &w, 150.0, s).unwrap());
        let mr = 150f64.to_radians();
        let target = s * (60f64.to_radians().cos() - mr * mr.sin());
        let other = s * 30f64.to_radians().cos();
        let want = -(target - (target.exp() + other.exp()).ln());
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
    }

    #[test]
    fn gradients_reach_both_inputs_and_stay_finite_on_the_proxy() {
        let w = init_proxies(3, 4, 7, Device::Cpu).unwrap();
        // the first embedding lies exactly on its proxy: cos = 1, pml's gradient is NaN
        let e = Tensor::cat(&[w.narrow(0, 0, 1), w.narrow(0, 1, 2) + 0.3], 0)
            .detach()
            .set_requires_grad(true);
        let w = w.set_requires_grad(true);
        let labels = Tensor::from_slice(&[0i64, 1, 2]);
        let l = arcface(&e, &labels, &w, 28.6, 64.0).unwrap();
        l.backward();
        for g in [e.grad(), w.grad()] {
            assert!(g.isfinite().all().int64_value(&[]) == 1, "{g}");
            assert!(g.abs().sum(Kind::Double).double_value(&[]) > 0.0);
        }
    }

    #[test]
    fn bad_inputs_are_errors() {
        let w = init_proxies(3, 4, 0, Device::Cpu).unwrap();
        let e = Tensor::ones([2, 4], (Kind::Float, Device::Cpu));
        let ok = Tensor::from_slice(&[0i64, 2]);
        assert!(arcface(&e, &ok, &w, 28.6, 64.0).is_ok());
        for (labels, what) in [
            (Tensor::from_slice(&[0i64, 3]), "0..3"),
            (Tensor::from_slice(&[-1i64, 0]), "0..3"),
            (Tensor::from_slice(&[0i64]), "shape (2,)"),
            (Tensor::from_slice(&[0i32, 1]), "int64"),
        ] {
            let msg = arcface(&e, &labels, &w, 28.6, 64.0)
                .unwrap_err()
                .to_string();
            assert!(msg.contains(what), "{msg}");
        }
        let narrow = Tensor::ones([2, 3], (Kind::Float, Device::Cpu));
        let msg = arcface(&narrow, &ok, &w, 28.6, 64.0)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("same dim"), "{msg}");
        assert!(init_proxies(0, 4, 0, Device::Cpu).is_err());
    }

    #[test]
    fn the_loss_spec_is_checked_and_dispatches_with_proxies() {
        use crate::losses::Loss;
        let spec = r#"{"name": "arcface", "margin": 28.6, "scale": 64}"#;
        let loss = Loss::from_json(spec).unwrap();
        assert!(loss.needs_proxies() && !loss.is_grid());
        assert!(!Loss::Triplet { margin: 0.2 }.needs_proxies());
        for (bad, what) in [
            (
                r#"{"name": "arcface", "margin": 180, "scale": 64}"#,
                "margin",
            ),
            (
                r#"{"name": "arcface", "margin": -1, "scale": 64}"#,
                "margin",
            ),
            (
                r#"{"name": "arcface", "margin": 28.6, "scale": 0}"#,
                "scale",
            ),
        ] {
            assert!(Loss::from_json(bad).unwrap_err().contains(what), "{bad}");
        }
        let w = init_proxies(3, 4, 1, Device::Cpu).unwrap();
        let e = Tensor::ones([2, 4], (Kind::Float, Device::Cpu));
        let labels = Tensor::from_slice(&[0i64, 2]);
        let direct = arcface(&e, &labels, &w, 28.6, 64.0).unwrap();
        let via = loss.pairs(&e, &labels, Some(&w)).unwrap();
        assert_eq!(value(&via), value(&direct));
        let msg = loss.pairs(&e, &labels, None).unwrap_err().to_string();
        assert!(msg.contains("needs class proxies"), "{msg}");
        let triplet = Loss::Triplet { margin: 0.2 };
        let msg = triplet
            .pairs(&e, &labels, Some(&w))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("takes no proxies"), "{msg}");
    }

    #[test]
    fn proxies_are_seeded_standard_normal() {
        let a = init_proxies(200, 64, 3, Device::Cpu).unwrap();
        assert_eq!(a.size(), [200, 64]);
        assert_eq!(a.kind(), Kind::Float);
        assert!(a.equal(&init_proxies(200, 64, 3, Device::Cpu).unwrap()));
        assert!(!a.equal(&init_proxies(200, 64, 4, Device::Cpu).unwrap()));
        let mean = value(&a.mean(Kind::Double));
        let std = value(&a.std(true).to_kind(Kind::Double));
        // 12 800 draws: the mean's standard error is 0.009, the std's 0.006
        assert!(
            mean.abs() < 0.04 && (std - 1.0).abs() < 0.03,
            "{mean} {std}"
        );
    }
}
