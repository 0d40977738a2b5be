//! The Grid Search Network training loop: device selection, model construction,
//! optimiser and learning-rate schedule, seeded augmentation of views, grid sampling,
//! the loss, per-epoch validation and progress, checkpoints.
//!
//! A step: [`plan_batch`] picks `batch/views` ids and `views = positives + 1` images of
//! each; every image is distorted with [`augment_batch`] (seeded per step and slot);
//! then, for a grid loss, every image is a query and its grid indexes into the batch
//! (`mode = batch`: embed each image once, similarity map = gathered dot products) or
//! is stitched into one image for the target network (`mode = stitched`: the paper's
//! single pass, similarity map = correlation of the query vector with the target
//! network's `rows×cols×dim` volume). Pair losses use the batch embeddings and ids.
//!
//! Files: `device` (device names), `model` (networks, weights files, embedding),
//! `schedule` (optimiser, learning-rate schedule), `spec` (the training spec that crosses
//! the Python boundary), `fit` (configuration and the loop), `parallel` (data-parallel
//! training: shards, collectives through the caller's transport),
//! `step` (one step's loss, grid stitching), `proxies` (a proxy loss's class vectors), `groups` (the optimiser's parameter
//! groups: head and backbone rates, frozen backbone and BatchNorm, warm-up), `precision` (autocast regions and the
//! float16 loss scaler), `cpu_cache` (the pool of libtorch CPU blocks that training and
//! embedding on the CPU keep for their next batch).

mod cpu_cache;
mod device;
mod fit;
mod groups;
mod model;
mod parallel;
mod precision;
mod proxies;
mod schedule;
mod source;
mod spec;
mod step;

pub use cpu_cache::{CpuCache, CpuCacheStats};
pub use device::resolve_device;
pub use fit::{
    fit, fit_parallel, validation_metrics, EpochRecord, TrainConfig, TrainData, ValData,
};
pub use model::{Model, ModelSpec, ScriptSource, SCRIPT_FILE};
pub use parallel::{Collective, DataParallel, SyncFn};
pub use precision::{Autocast, LossScaler, Precision, PRECISIONS};
pub use schedule::{Optim, Schedule};
pub use source::{ArraySource, CatalogueSource, ImageSource, Pixels};
pub use spec::{FineTune, TrainSpec};
pub use step::stitch;

use std::path::PathBuf;

/// Errors of the GSN area.
#[derive(Debug, thiserror::Error)]
pub enum GsnError {
    /// A libtorch operation failed.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// Arrays of inconsistent shapes or lengths.
    #[error("{0}")]
    Shape(String),
    /// An invalid setting (parameter, spec, backbone name).
    #[error("{0}")]
    Config(String),
    /// The requested device is not available.
    #[error("{0}")]
    Device(String),
    /// The computation was interrupted (Ctrl-C or callback) before it had a result.
    #[error("interrupted")]
    Interrupted,
    /// An image file of the training data is missing, unreadable or undecodable.
    #[error("{0}")]
    Image(#[from] crate::images::ImageError),
    /// A collective of data-parallel training failed (the message names it).
    #[error("{0}")]
    Distributed(String),
    /// A model file does not fit the network (missing, extra or mismatched variables)
    /// or cannot be parsed.
    #[error("{0}")]
    ModelFile(String),
    /// Reading or writing a model file failed.
    #[error("cannot write or read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::augment::ImageShape;
    use crate::data::grid::{GridSpec, Negatives};
    use crate::losses::Loss;
    use crate::runtime::Monitor;
    use tch::{Device, Kind, Tensor};

    fn toy(n_ids: usize, per: usize) -> (Vec<f32>, Vec<i64>) {
        // each id: a bright square at its own position
        let mut x = vec![0.0f32; n_ids * per * 784];
        let mut ids = Vec::new();
        for k in 0..n_ids {
            for v in 0..per {
                let img = &mut x[(k * per + v) * 784..(k * per + v + 1) * 784];
                let (r0, c0) = ((k * 5) % 20, (k * 7) % 20);
                for y in r0..r0 + 8 {
                    for xx in c0..c0 + 8 {
                        img[y * 28 + xx] = 1.0;
                    }
                }
                ids.push(k as i64);
            }
        }
        (x, ids)
    }

    fn cfg(loss: Loss, epochs: usize) -> TrainConfig {
        TrainConfig {
            spec: TrainSpec {
                loss,
                grid: GridSpec {
                    rows: 2,
                    cols: 2,
                    positives: 1,
                },
                negatives: Negatives::Random,
                epochs,
                steps_per_epoch: Some(4),
                batch_size: 16,
                lr: 1e-3,
                optimizer: Optim::Adam,
                schedule: Schedule::Constant,
                weight_decay: 0.0,
                augment: 0.5,
                seed: 0,
                finetune: Default::default(),
            },
            checkpoint_dir: None,
            checkpoint_config: "{}".into(),
        }
    }

    #[test]
    fn training_is_deterministic_and_runs_every_loss() {
        let (x, ids) = toy(8, 1);
        let src = ArraySource::f32(&x, ImageShape { c: 1, h: 28, w: 28 });
        let data = TrainData {
            source: &src,
            ids: &ids,
            classes: None,
        };
        let spec = ModelSpec {
            backbone: "convnet".into(),
            in_channels: 1,
            dim: 8,
            stitched: false,
            seed: 1,
            normalize: crate::nets::Normalize::Auto,
        };
        let run = |loss| {
            let mut m = Model::new(spec.clone(), Device::Cpu).unwrap();
            let h = fit(&mut m, &data, None, &cfg(loss, 1), &Monitor::none()).unwrap();
            h[0].metrics[0].1
        };
        let dm = Loss::DoubleMargin {
            hi: 0.9,
            lo: 0.0,
            balance: false,
        };
        assert_eq!(run(dm), run(dm));
        for loss in [
            Loss::GridSoftmax { temperature: 0.1 },
            Loss::Triplet { margin: 0.2 },
            Loss::Contrastive { margin: 1.0 },
            Loss::NtXent { temperature: 0.1 },
        ] {
            assert!(run(loss).is_finite());
        }
        let mut st = spec.clone();
        st.stitched = true;
        let mut m = Model::new(st, Device::Cpu).unwrap();
        let h = fit(&mut m, &data, None, &cfg(dm, 1), &Monitor::none()).unwrap();
        assert!(h[0].metrics[0].1.is_finite());
    }

    /// An in-memory transport for ranks on threads: each rank deposits its tensors'
    /// values, waits for the others, and takes rank 0's values or the mean.
    struct Threads {
        world: usize,
        slots: std::sync::Mutex<Vec<Vec<Vec<f64>>>>,
        barrier: std::sync::Barrier,
    }

    impl Threads {
        fn run(&self, rank: usize, op: Collective, ts: &[Tensor]) -> Result<(), String> {
            let values =
                |t: &Tensor| Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap();
            self.slots.lock().unwrap()[rank] = ts.iter().map(values).collect();
            self.barrier.wait();
            let out: Vec<Vec<f64>> = {
                let slots = self.slots.lock().unwrap();
                (0..ts.len())
                    .map(|i| match op {
                        Collective::Broadcast => slots[0][i].clone(),
                        Collective::AllReduceMean => (0..slots[0][i].len())
                            .map(|j| {
                                (0..self.world).map(|r| slots[r][i][j]).sum::<f64>()
                                    / self.world as f64
                            })
                            .collect(),
                    })
                    .collect()
            };
            self.barrier.wait();
            for (t, v) in ts.iter().zip(out) {
                let src = Tensor::from_slice(&v)
                    .to_kind(t.kind())
                    .view(t.size().as_slice());
                t.shallow_clone().copy_(&src);
            }
            Ok(())
        }
    }

    /// A rank's variables (sorted by name) and epoch losses.
    type RankOutcome = (Vec<(String, Tensor)>, Vec<f64>);

    #[test]
    fn data_parallel_ranks_end_equal() {
        let (x, ids) = toy(16, 2);
        let world = 2;
        let net = Threads {
            world,
            slots: std::sync::Mutex::new(vec![Vec::new(); world]),
            barrier: std::sync::Barrier::new(world),
        };
        let results: Vec<RankOutcome> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..world)
                .map(|rank| {
                    let (net, x, ids) = (&net, &x, &ids);
                    s.spawn(move || {
                        let src = ArraySource::f32(x, ImageShape { c: 1, h: 28, w: 28 });
                        let data = TrainData {
                            source: &src,
                            ids,
                            classes: None,
                        };
                        // Other initial weights on rank 1: the broadcast must replace them.
                        let spec = ModelSpec {
                            backbone: "convnet".into(),
                            in_channels: 1,
                            dim: 8,
                            stitched: false,
                            seed: 1 + rank as u64,
                            normalize: crate::nets::Normalize::Auto,
                        };
                        let mut m = Model::new(spec, Device::Cpu).unwrap();
                        let sync = |op: Collective, ts: &[Tensor]| net.run(rank, op, ts);
                        let dp = DataParallel {
                            rank,
                            world,
                            sync: &sync,
                        };
                        let c = cfg(Loss::GridSoftmax { temperature: 0.1 }, 2);
                        let h = fit_parallel(&mut m, &data, None, &c, Some(&dp), &Monitor::none())
                            .unwrap();
                        let mut vars: Vec<(String, Tensor)> =
                            m.vs.variables().into_iter().collect();
                        vars.sort_by(|a, b| a.0.cmp(&b.0));
                        (vars, h.iter().map(|r| r.metrics[0].1).collect())
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let (v0, l0) = &results[0];
        let (v1, l1) = &results[1];
        assert_eq!(l0, l1); // the loss is the mean over the ranks
        assert_eq!(v0.len(), v1.len());
        for ((n0, t0), (n1, t1)) in v0.iter().zip(v1) {
            assert_eq!(n0, n1);
            assert!(t0.equal(t1), "{n0} differs between the ranks");
        }
    }

    #[test]
    fn sequential_and_parallel_augmentation_agree() {
        let (x, _) = toy(3, 1);
        let shape = ImageShape { c: 1, h: 28, w: 28 };
        let idx = [2usize, 0, 1, 2];
        let par = crate::data::augment::augment_batch(&x, shape, &idx, 1.0, 7, 3, true);
        let seq = crate::data::augment::augment_batch(&x, shape, &idx, 1.0, 7, 3, false);
        assert_eq!(seq, par);
    }

    #[test]
    fn stitch_places_cells() {
        let x = Tensor::arange(4, (Kind::Float, Device::Cpu))
            .view([4, 1, 1, 1])
            .expand([4, 1, 2, 2], false)
            .contiguous();
        let g = Tensor::from_slice(&[3i64, 2, 1, 0, 0, 1]);
        let s = stitch(&x, &g, 1, 2, 3).unwrap();
        assert_eq!(s.size(), vec![1, 1, 4, 6]);
        let v = Vec::<f32>::try_from(s.flatten(0, -1)).unwrap();
        assert_eq!(&v[..6], &[3., 3., 2., 2., 1., 1.]);
        assert_eq!(&v[12..18], &[0., 0., 0., 0., 1., 1.]);
    }

    #[test]
    fn cuda_request_without_gpu_is_an_error() {
        if !tch::Cuda::is_available() {
            assert!(matches!(resolve_device("cuda"), Err(GsnError::Device(_))));
            assert_eq!(resolve_device("auto").unwrap(), Device::Cpu);
        }
        assert!(resolve_device("tpu").is_err());
    }
}
