//! Class proxies of a proxy-based loss (ArcFace): one learned vector per training id,
//! trained with the head (its group and learning rate), all-reduced with the model's
//! gradients data-parallel. They exist for the run only: they are not part of the
//! model (retrieval uses the embeddings) and are not saved.

use super::{GsnError, Model, TrainSpec};
use crate::losses::arcface::init_proxies;
use std::collections::HashMap;
use tch::Tensor;

/// The proxies `(num_ids, dim)` and each id's row.
pub(super) struct Proxies {
    /// The trainable proxy vectors.
    pub(super) weights: Tensor,
    /// Row of each training id (the distinct ids sorted: the same on every rank).
    row: HashMap<i64, i64>,
}

impl Proxies {
    /// Proxies for every distinct id of `ids` when `spec`'s loss needs them, seeded by
    /// the spec's seed (so every rank draws the same), on the model's device.
    pub(super) fn for_run(
        ids: &[i64],
        model: &Model,
        spec: &TrainSpec,
    ) -> Result<Option<Proxies>, GsnError> {
        if !spec.loss.needs_proxies() {
            return Ok(None);
        }
        let mut distinct = ids.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        let row: HashMap<i64, i64> = distinct
            .iter()
            .enumerate()
            .map(|(i, &id)| (id, i as i64))
            .collect();
        let weights = init_proxies(
            distinct.len() as i64,
            model.spec.dim,
            spec.seed,
            model.device,
        )?
        .f_set_requires_grad(true)?;
        Ok(Some(Proxies { weights, row }))
    }

    /// The proxy rows of a batch's ids, on `device`.
    pub(super) fn rows(&self, ids: &[i64], device: tch::Device) -> Result<Tensor, GsnError> {
        let rows = ids
            .iter()
            .map(|id| {
                self.row.get(id).copied().ok_or_else(|| {
                    GsnError::Shape(format!("id {id} has no proxy (not a training id)"))
                })
            })
            .collect::<Result<Vec<i64>, GsnError>>()?;
        Ok(Tensor::f_from_slice(&rows)?.f_to_device(device)?)
    }
}
