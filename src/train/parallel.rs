//! Data-parallel training: the setting [`super::fit_parallel`] takes, the shard of the
//! ids a rank trains on, and the collectives the loop runs through the caller's
//! transport (`torch.distributed` in the bindings; any implementation of [`SyncFn`]).
//!
//! Every rank runs the same loop on its own shard with the same seed: rank 0's variables
//! are broadcast before the first step; after each backward pass the gradients of the
//! trainable variables are averaged over the ranks (one flat bucket, variables sorted by
//! name, with one more value: whether this rank was asked to stop); the BatchNorm
//! statistics (buffers, a TorchScript backbone's included) are broadcast from rank 0
//! after every epoch and at the end, so every rank ends with the same model. Every rank
//! must call the same collectives in the same order, so every decision that changes the
//! sequence (steps per epoch, stopping early) is taken from values all ranks share.

use super::{GsnError, Model};
use tch::{Device, Kind, Tensor};

/// A collective operation, applied in place to every tensor handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collective {
    /// Overwrite each tensor with rank 0's values.
    Broadcast,
    /// Replace each tensor with its mean over the ranks.
    AllReduceMean,
}

impl Collective {
    /// The name the hook receives: `"broadcast"` or `"all_reduce_mean"`.
    pub fn name(self) -> &'static str {
        match self {
            Collective::Broadcast => "broadcast",
            Collective::AllReduceMean => "all_reduce_mean",
        }
    }
}

/// The transport: runs a collective over all ranks on the given tensors (in place, in
/// the given order); an `Err` names what failed.
pub type SyncFn<'a> = dyn Fn(Collective, &[Tensor]) -> Result<(), String> + Sync + 'a;

/// Train as rank `rank` of `world` processes that run the same `fit` on the same data.
pub struct DataParallel<'a> {
    /// This process's rank, `0..world`.
    pub rank: usize,
    /// Number of processes.
    pub world: usize,
    /// The collectives.
    pub sync: &'a SyncFn<'a>,
}

impl DataParallel<'_> {
    /// `world >= 1` and `rank < world`.
    pub(super) fn check(&self) -> Result<(), GsnError> {
        if self.world == 0 || self.rank >= self.world {
            return Err(GsnError::Config(format!(
                "data-parallel rank {} is not in 0..{} (world size)",
                self.rank, self.world
            )));
        }
        Ok(())
    }

    /// Run `op` on `tensors`; a failure names the collective and the rank.
    pub(super) fn run(&self, op: Collective, tensors: &[Tensor]) -> Result<(), GsnError> {
        (self.sync)(op, tensors).map_err(|m| {
            GsnError::Distributed(format!(
                "{} failed on rank {} of {}: {m}",
                op.name(),
                self.rank,
                self.world
            ))
        })
    }

    /// The mean over the ranks of `values` (one all-reduce of a float64 tensor on
    /// `device`).
    pub(super) fn mean(&self, values: &[f64], device: Device) -> Result<Vec<f64>, GsnError> {
        let t = Tensor::f_from_slice(values)?.f_to_device(device)?;
        self.run(Collective::AllReduceMean, std::slice::from_ref(&t))?;
        Ok(Vec::<f64>::try_from(t.f_to_device(Device::Cpu)?)?)
    }

    /// Check that every rank holds the same values (counts, checksums: what fixes the
    /// sequence of collectives): rank 0's values are broadcast, each rank compares them
    /// with its own, and the verdicts are averaged, so every rank fails or none does.
    /// Exact for integers below 2^53.
    pub(super) fn agree(&self, what: &[(&str, f64)], device: Device) -> Result<(), GsnError> {
        let own: Vec<f64> = what.iter().map(|&(_, x)| x).collect();
        let t = Tensor::f_from_slice(&own)?.f_to_device(device)?;
        self.run(Collective::Broadcast, std::slice::from_ref(&t))?;
        let first = Vec::<f64>::try_from(t.f_to_device(Device::Cpu)?)?;
        let differ: Vec<&str> = (0..what.len())
            .filter(|&i| first[i] != own[i])
            .map(|i| what[i].0)
            .collect();
        let any = self.mean(&[if differ.is_empty() { 0.0 } else { 1.0 }], device)?[0];
        if any == 0.0 {
            return Ok(());
        }
        let which = if differ.is_empty() {
            "another rank was given different data or settings than rank 0".to_string()
        } else {
            format!(
                "rank {} was given different {} than rank 0",
                self.rank,
                differ.join(", ")
            )
        };
        Err(GsnError::Config(format!(
            "data-parallel training: {which} (every rank must call fit with the same \
             images, ids and settings)"
        )))
    }

    /// Broadcast from rank 0 every variable of `model` (sorted by name), or only the
    /// ones without a gradient (the BatchNorm running statistics) when `buffers_only`;
    /// then a TorchScript backbone's buffers, which live in its module, not in the store
    /// (the same list on every rank: each loaded the same module).
    pub(super) fn broadcast_vars(&self, model: &Model, buffers_only: bool) -> Result<(), GsnError> {
        let mut vars: Vec<(String, Tensor)> = model
            .vs
            .variables()
            .into_iter()
            .filter(|(_, v)| !buffers_only || !v.requires_grad())
            .collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let vars: Vec<Tensor> = vars.into_iter().map(|(_, v)| v).collect();
        self.broadcast_in_place(&vars)?;
        self.broadcast_in_place(&model.script_buffers()?)
    }

    /// Overwrite `tensors` with rank 0's values (no collective when there are none).
    fn broadcast_in_place(&self, tensors: &[Tensor]) -> Result<(), GsnError> {
        if tensors.is_empty() {
            return Ok(());
        }
        let _guard = tch::no_grad_guard();
        // Shared with the tensor when it is contiguous (the broadcast writes into it);
        // a contiguous copy otherwise (channels-last weights), copied back.
        let bufs: Vec<Tensor> = tensors
            .iter()
            .map(|v| v.f_detach()?.f_contiguous())
            .collect::<Result<_, tch::TchError>>()?;
        self.run(Collective::Broadcast, &bufs)?;
        for (v, b) in tensors.iter().zip(&bufs) {
            if b.data_ptr() != v.data_ptr() {
                v.f_detach()?.f_copy_(b)?;
            }
        }
        Ok(())
    }

    /// Average the gradients of `vars` (the trainable variables, in an order every rank
    /// shares) over the ranks, in one flat bucket whose last value is `stop` (1 when
    /// this rank was asked to stop); returns the mean of `stop` (> 0: some rank stops).
    /// A variable without a gradient gets a zero gradient first, so every rank's bucket
    /// has the same layout.
    pub(super) fn all_reduce_grads(&self, vars: &[Tensor], stop: bool) -> Result<f64, GsnError> {
        let mut grads = Vec::with_capacity(vars.len());
        for v in vars {
            let mut g = v.grad();
            if !g.defined() {
                v.f_sum(None::<Kind>)?.f_mul_scalar(0.0)?.f_backward()?;
                g = v.grad();
            }
            grads.push(g);
        }
        let _guard = tch::no_grad_guard();
        let (kind, device) = match vars.first() {
            Some(v) => (v.kind(), v.device()),
            None => (Kind::Float, Device::Cpu),
        };
        let mut parts: Vec<Tensor> = grads
            .iter()
            .map(|g| g.f_reshape([-1]))
            .collect::<Result<_, tch::TchError>>()?;
        parts.push(Tensor::f_full(
            [1],
            if stop { 1.0 } else { 0.0 },
            (kind, device),
        )?);
        let bucket = Tensor::f_cat(&parts, 0)?;
        self.run(Collective::AllReduceMean, std::slice::from_ref(&bucket))?;
        let mut offset = 0i64;
        for g in &grads {
            let n = g.numel() as i64;
            let mut g = g.shallow_clone();
            g.f_copy_(&bucket.f_narrow(0, offset, n)?.f_view(g.size().as_slice())?)?;
            offset += n;
        }
        Ok(bucket.f_double_value(&[offset])?)
    }
}

/// The images (indices into `ids`) of `rank`'s shard: the distinct ids sorted, those
/// whose ordinal `% world == rank`. Fails, naming the fix, when any rank's shard would
/// hold fewer than 2 ids (every rank computes the same verdict from the same ids).
pub(super) fn shard(ids: &[i64], rank: usize, world: usize) -> Result<Vec<usize>, GsnError> {
    let mut distinct: Vec<i64> = ids.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    let smallest = distinct.len() / world; // rank world-1 gets the fewest
    if smallest < 2 {
        return Err(GsnError::Config(format!(
            "data-parallel training over {world} ranks needs at least 2 distinct ids per \
             rank ({} in all), the data hold {}; use fewer ranks or more ids",
            2 * world,
            distinct.len()
        )));
    }
    Ok(ids
        .iter()
        .enumerate()
        .filter(|(_, id)| {
            // `distinct` holds every id, so the search succeeds.
            distinct.binary_search(id).unwrap_or(0) % world == rank
        })
        .map(|(i, _)| i)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::shard;

    #[test]
    fn shards_split_the_sorted_ids() {
        let ids = [7i64, 3, 5, 3, 9, 1, 7];
        // sorted distinct ids 1 3 5 7 9: rank 0 keeps 1 5 9, rank 1 keeps 3 7
        assert_eq!(shard(&ids, 0, 2).unwrap(), vec![2, 4, 5]);
        assert_eq!(shard(&ids, 1, 2).unwrap(), vec![0, 1, 3, 6]);
        assert_eq!(shard(&ids, 0, 1).unwrap(), (0..7).collect::<Vec<_>>());
        assert!(shard(&ids, 0, 3).is_err()); // 5 ids: rank 2 would hold one
    }
}
