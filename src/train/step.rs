//! One training step's loss: grids built over the batch (or stitched for the target
//! network), the similarity map, the loss with its autograd graph; the networks run in
//! the model's precision, the similarities and the loss in float32.

use super::precision::Autocast;
use super::proxies::Proxies;
use super::spec::TrainSpec;
use super::{GsnError, Model};
use crate::data::grid::{build_grids, Negatives};
use crate::rng::Rng;
use tch::{Device, Tensor};

/// One batch prepared for a step.
pub(super) struct StepBatch {
    pub(super) x: Tensor,
    pub(super) labels: Vec<i64>,
    pub(super) classes: Option<Vec<i64>>,
}

/// Loss of one step (with the autograd graph).
pub(super) fn step_loss(
    model: &Model,
    batch: &StepBatch,
    spec: &TrainSpec,
    proxies: Option<&Proxies>,
    rng: &mut Rng,
) -> Result<Tensor, GsnError> {
    let b = batch.labels.len() as i64;
    let dev = model.device;
    // The networks' forward passes run in the model's precision (an autocast region);
    // their outputs are L2-normalised in float32, and the similarity maps and the loss
    // are computed in float32 outside the region (small next to the networks, and
    // float16's range would overflow in the losses' masks and logarithms).
    let autocast = || Autocast::enter(model.precision, dev);
    let embed = |x: &Tensor| -> Result<Tensor, GsnError> {
        let _region = autocast()?;
        Ok(model.query.embed(x, true)?)
    };
    if let Some(p) = proxies {
        // a proxy loss: the ids' rows of the proxies are the classes
        let e = embed(&batch.x)?;
        let rows = p.rows(&batch.labels, dev)?;
        return Ok(spec.loss.pairs(&e, &rows, Some(&p.weights))?);
    }
    if spec.loss.needs_proxies() {
        return Err(GsnError::Config(format!(
            "the {} loss needs its class proxies",
            spec.loss.name()
        )));
    }
    if !spec.loss.is_grid() {
        let e = embed(&batch.x)?;
        let labels = Tensor::f_from_slice(&batch.labels)?.f_to_device(dev)?;
        return Ok(spec.loss.pairs(&e, &labels, None)?);
    }
    let cells = spec.grid.cells() as i64;
    let need_sim = matches!(spec.negatives, Negatives::Mined | Negatives::SemiHard)
        || (spec.negatives == Negatives::Hard && batch.classes.is_none());
    // The CPU copy of a batch's similarity matrix, for the negatives mined from it.
    let to_cpu = |s: &Tensor| -> Result<Vec<f32>, GsnError> {
        let s = s.f_detach()?.f_to_device(Device::Cpu)?;
        Ok(Vec::<f32>::try_from(s.f_flatten(0, -1)?)?)
    };
    // Cell indices (flat, `b·cells`) and their targets (`(b, cells)`) on the device.
    let mut grids = |sim: Option<Vec<f32>>| -> Result<(Tensor, Tensor), GsnError> {
        let (g, t) = build_grids(
            rng,
            &batch.labels,
            batch.classes.as_deref(),
            sim.as_deref(),
            spec.grid,
            spec.negatives,
        );
        let g = Tensor::f_from_slice(&g)?.f_to_device(dev)?;
        let t = Tensor::f_from_slice(&t)?
            .f_view([b, cells])?
            .f_to_device(dev)?;
        Ok((g, t))
    };
    match &model.target {
        None => {
            let e = embed(&batch.x)?;
            let full = e.f_matmul(&e.f_tr()?)?;
            let (g, t) = grids(need_sim.then(|| to_cpu(&full)).transpose()?)?;
            let sim = full.f_gather(1, &g.f_view([b, cells])?, false)?;
            Ok(spec.loss.grid(&sim, &t)?)
        }
        Some(target) => {
            let q = embed(&batch.x)?;
            let sim = if need_sim {
                let qd = q.f_detach()?;
                Some(to_cpu(&qd.f_matmul(&qd.f_tr()?)?)?)
            } else {
                None
            };
            let (g, t) = grids(sim)?;
            let stitched = stitch(
                &batch.x,
                &g,
                b,
                spec.grid.rows as i64,
                spec.grid.cols as i64,
            )?;
            let vol = {
                let _region = autocast()?;
                target.volume(
                    &stitched,
                    spec.grid.rows as i64,
                    spec.grid.cols as i64,
                    true,
                )?
            }; // (b, cells, d)
            let sim = vol.f_bmm(&q.f_unsqueeze(2)?)?.f_squeeze_dim(2)?;
            Ok(spec.loss.grid(&sim, &t)?)
        }
    }
}

/// Stitch grids: images `x` `(b, c, h, w)`, cell indices `g` `(b·rows·cols,)` into the
/// batch → `(b, c, rows·h, cols·w)` (cell `r·cols + k` at row `r`, column `k`).
pub fn stitch(
    x: &Tensor,
    g: &Tensor,
    b: i64,
    rows: i64,
    cols: i64,
) -> Result<Tensor, tch::TchError> {
    let s = x.size();
    let (c, h, w) = (s[1], s[2], s[3]);
    x.f_index_select(0, g)?
        .f_view([b, rows, cols, c, h, w])?
        .f_permute([0, 3, 1, 4, 2, 5])?
        .f_reshape([b, c, rows * h, cols * w])
}
