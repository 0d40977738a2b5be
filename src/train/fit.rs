//! The training loop: configuration, batches prepared one step ahead on a helper
//! thread, per-epoch validation, progress and checkpoints.

use super::groups::Groups;
use super::parallel::{shard, DataParallel};
use super::precision::{LossScaler, MIN_SCALE};
use super::proxies::Proxies;
use super::source::ImageSource;
use super::step::{step_loss, StepBatch};
use super::{GsnError, Model, TrainSpec};
use crate::data::grid::plan_batch;
use crate::rng::Rng;
use crate::runtime::{Monitor, Progress};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;
use tch::{Device, Tensor};

/// Training parameters.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// Every setting of the run.
    pub spec: TrainSpec,
    /// Folder for per-epoch checkpoints (weights + `checkpoint_config`).
    pub checkpoint_dir: Option<PathBuf>,
    /// JSON written beside checkpoint weights.
    pub checkpoint_config: String,
}

/// Training images with their ids (and optional classes for hard negatives).
pub struct TrainData<'a> {
    /// The images, read by index at every step (an array or image files).
    pub source: &'a dyn ImageSource,
    /// Id of each image.
    pub ids: &'a [i64],
    /// Class of each image.
    pub classes: Option<&'a [i64]>,
}

/// Validation images with ids: leave-one-out recall@1/@10 and MAP@R are reported per
/// epoch.
pub struct ValData<'a> {
    /// Planar images.
    pub x: &'a [f32],
    /// Id of each image.
    pub ids: &'a [i64],
}

/// One epoch's record.
#[derive(Debug, Clone)]
pub struct EpochRecord {
    /// Epoch number (1-based).
    pub epoch: usize,
    /// Named values: loss, lr, seconds, validation metrics.
    pub metrics: Vec<(String, f64)>,
}

/// Leave-one-out retrieval metrics of embeddings `e` `(n, d)` (CPU) with ids, by
/// [`crate::retrieval::evaluate`] (cosine, each image a query against all the others):
/// `val_recall@1`, `val_recall@10`, `val_map@r`. Queries whose id occurs once are
/// left out of the averages.
pub fn validation_metrics(e: &Tensor, ids: &[i64]) -> Result<Vec<(String, f64)>, GsnError> {
    use crate::retrieval::{evaluate, EvalOptions, KnnOptions, Metric};
    let n = ids.len();
    let dim = e.size().get(1).copied().unwrap_or(0) as usize;
    let values = Vec::<f32>::try_from(
        e.f_to_device(Device::Cpu)?
            .f_contiguous()?
            .f_flatten(0, -1)?,
    )?;
    let view = ndarray::ArrayView2::from_shape((n, dim), &values)
        .map_err(|err| GsnError::Shape(format!("validation embeddings: {err}")))?;
    let ks: Vec<usize> = [1usize, 10].into_iter().filter(|&k| k < n).collect();
    let options = EvalOptions {
        ks: if ks.is_empty() { vec![1] } else { ks },
        knn: KnnOptions {
            exclude_self: true,
            ..KnnOptions::new(Metric::Cosine)
        },
    };
    let ev = evaluate(view, ids, view, ids, &options, &Monitor::none())
        .map_err(|err| GsnError::Shape(format!("validation metrics: {err}")))?;
    let mut out: Vec<(String, f64)> = ev
        .recall
        .iter()
        .map(|&(k, r)| (format!("val_recall@{k}"), r))
        .collect();
    out.push(("val_map@r".to_string(), ev.map_at_r));
    Ok(out)
}

/// Train `model` on `data`, its forward passes in `model.precision`. Reports one
/// [`Progress`] per epoch (metrics `loss`, `lr` (the rate of the epoch's last step),
/// `seconds`, `val_recall@1`, `val_recall@10`, `val_map@r` when `val` is given,
/// `skipped`, the number of images the source has left out up to the epoch's last batch,
/// when it skips unreadable files, and for float16 `loss_scale` (the scaler's scale
/// after the epoch) and `overflow_steps` (the epoch's steps skipped because their
/// gradients overflowed)); stops early, keeping the weights, when the monitor is
/// cancelled. Returns the epoch records.
pub fn fit(
    model: &mut Model,
    data: &TrainData<'_>,
    val: Option<&ValData<'_>>,
    cfg: &TrainConfig,
    monitor: &Monitor<'_>,
) -> Result<Vec<EpochRecord>, GsnError> {
    fit_parallel(model, data, val, cfg, None, monitor)
}

/// [`fit`], data-parallel when `parallel` is given (see [`super::parallel`]): every rank
/// calls it with the same `data` and `cfg`, and trains on its shard of the ids (the
/// distinct ids sorted, those whose ordinal `% world == rank`; so one process given
/// exactly a shard's images samples the same batches as that rank). Steps per epoch
/// come from the whole data: `ceil(n / (batch_size · world))` unless `steps_per_epoch`
/// is set. The reported `loss` is the mean over the ranks; validation and checkpoints
/// run where `val` and `cfg.checkpoint_dir` are given (the caller gives them to one
/// rank). A stop (monitor cancelled, progress sink returning `false`) on any rank stops
/// every rank at the same step (mid-epoch) or after the same epoch. All ranks end with
/// rank 0's buffers and the same parameters.
///
/// The head trains at `lr`, the backbone at `finetune.backbone_lr` after its frozen
/// epochs, with `finetune.freeze_bn` its BatchNorm layers fixed (see [`Groups`]); the
/// model's variables require gradients again afterwards.
pub fn fit_parallel(
    model: &mut Model,
    data: &TrainData<'_>,
    val: Option<&ValData<'_>>,
    cfg: &TrainConfig,
    parallel: Option<&DataParallel<'_>>,
    monitor: &Monitor<'_>,
) -> Result<Vec<EpochRecord>, GsnError> {
    if let Some(p) = parallel {
        p.check()?;
    }
    let proxies = Proxies::for_run(data.ids, model, &cfg.spec)?;
    let groups = Groups::new(model, &cfg.spec, proxies.as_ref().map(|p| &p.weights))?;
    let trained = fit_groups(
        model,
        &groups,
        proxies.as_ref(),
        data,
        val,
        cfg,
        parallel,
        monitor,
    );
    groups.release(model)?;
    trained
}

/// [`fit_parallel`] with the optimiser's groups made.
#[allow(clippy::too_many_arguments)] // fit_parallel's arguments and what it made of them
fn fit_groups(
    model: &mut Model,
    pgroups: &Groups,
    proxies: Option<&Proxies>,
    data: &TrainData<'_>,
    val: Option<&ValData<'_>>,
    cfg: &TrainConfig,
    parallel: Option<&DataParallel<'_>>,
    monitor: &Monitor<'_>,
) -> Result<Vec<EpochRecord>, GsnError> {
    let n = data.source.len();
    if n == 0 || data.ids.len() != n {
        return Err(GsnError::Shape(format!(
            "{n} images but {} ids",
            data.ids.len()
        )));
    }
    if let Some(c) = data.classes {
        if c.len() != n {
            return Err(GsnError::Shape(format!(
                "{n} images but {} classes",
                c.len()
            )));
        }
    }
    let cells = cfg.spec.grid.cells();
    if cfg.spec.grid.positives < 1 || cfg.spec.grid.positives >= cells {
        return Err(GsnError::Config(format!(
            "positives must be in 1..{cells} for a {}x{} grid, got {}",
            cfg.spec.grid.rows, cfg.spec.grid.cols, cfg.spec.grid.positives
        )));
    }
    let views = cfg.spec.grid.positives + 1;
    let groups = cfg.spec.batch_size / views;
    if groups < 2 {
        return Err(GsnError::Config(format!(
            "batch_size {} holds fewer than 2 ids of {views} views each",
            cfg.spec.batch_size
        )));
    }
    if cfg.spec.loss.is_grid() && model.spec.stitched != model.target.is_some() {
        return Err(GsnError::Config("model mode does not match".into()));
    }
    // Group images by id (this rank's shard of them), in order of first appearance.
    let kept: Vec<usize> = match parallel {
        Some(p) => shard(data.ids, p.rank, p.world)?,
        None => (0..n).collect(),
    };
    let mut by_id: HashMap<i64, usize> = HashMap::new();
    let mut members: Vec<Vec<usize>> = Vec::new();
    let mut id_of_group: Vec<i64> = Vec::new();
    for i in kept {
        let id = data.ids[i];
        let k = *by_id.entry(id).or_insert_with(|| {
            members.push(Vec::new());
            id_of_group.push(id);
            members.len() - 1
        });
        members[k].push(i);
    }
    if members.len() < 2 {
        return Err(GsnError::Config(
            "training needs at least 2 distinct ids".into(),
        ));
    }
    let steps = cfg
        .spec
        .steps_per_epoch
        .unwrap_or_else(|| n.div_ceil(cfg.spec.batch_size * parallel.map_or(1, |p| p.world)))
        .max(1);
    let total_steps = steps * cfg.spec.epochs;
    if let Some(p) = parallel {
        // Everything that fixes the sequence of collectives must be the same on every
        // rank (else the ranks would wait for each other forever), a TorchScript
        // backbone's buffers included (broadcast with the store's, see broadcast_vars).
        let script_buffers: usize = model.script_buffers()?.iter().map(|t| t.numel()).sum();
        let checksum = data.ids.iter().fold(0u64, |h, &id| {
            (h ^ id as u64).wrapping_mul(0x0000_0100_0000_01B3)
        }) % (1 << 52);
        p.agree(
            &[
                ("numbers of images", n as f64),
                ("ids", checksum as f64),
                ("numbers of epochs", cfg.spec.epochs as f64),
                ("numbers of steps per epoch", steps as f64),
                ("numbers of trainable variables", pgroups.len() as f64),
                ("sizes of the backbone's buffers", script_buffers as f64),
            ],
            model.device,
        )?;
        p.broadcast_vars(model, false)?;
    }
    let mut opt = pgroups.optimizer(&cfg.spec)?;
    // Batches (ids, views, augmentations) are prepared one step ahead on a helper
    // thread while libtorch computes the current step; grids (which may mine the
    // current embeddings) are built on the training thread. Both streams are seeded, so
    // results do not depend on timing.
    let mut rng = Rng::new(cfg.spec.seed);
    let mut scaler = model.precision.scales_loss().then(LossScaler::default);
    let mut skipped_total = 0usize; // float16 steps skipped in the whole run
    let shape = data.source.shape();
    let dims = [shape.c as i64, shape.h as i64, shape.w as i64];
    let mut history = Vec::new();
    let mut step_no = 0usize;
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Prepared, GsnError>>(2);
    let members = &members;
    let id_of_group = &id_of_group;
    let producer = move || {
        let mut rng = Rng::derive(cfg.spec.seed, 0xBA7C, 0);
        let (mut order, mut cursor) = (Vec::new(), 0usize);
        for step in 0..total_steps {
            let (idx, groups_of) =
                plan_batch(&mut rng, members, &mut order, &mut cursor, groups, views);
            let labels: Vec<i64> = groups_of.iter().map(|&k| id_of_group[k as usize]).collect();
            let classes = data
                .classes
                .map(|c| idx.iter().map(|&i| c[i]).collect::<Vec<_>>());
            let prepared = data
                .source
                .gather(&idx, cfg.spec.augment, cfg.spec.seed, step as u64 + 1)
                .map(|pixels| Prepared {
                    pixels,
                    labels,
                    classes,
                    skipped: data.source.skipped().map(|s| s.len()),
                });
            let failed = prepared.is_err();
            if tx.send(prepared).is_err() || failed {
                break;
            }
        }
    };
    // On the CPU, freed activation blocks are kept for the next step (see CpuCache).
    let _cache = super::CpuCache::for_device(model.device);
    std::thread::scope(|scope| -> Result<(), GsnError> {
        scope.spawn(move || {
            crate::runtime::block_interrupt_signal();
            producer()
        });
        let rx = rx;
        'epochs: for epoch in 1..=cfg.spec.epochs {
            let t0 = Instant::now();
            let mut loss_acc: Option<Tensor> = None;
            // float16: steps skipped because their gradients overflowed.
            let mut overflowed = 0usize;
            let mut loss_n = 0usize;
            // The rates of the epoch's last step (reported in the epoch's metrics).
            let mut epoch_lr = Groups::rates(&cfg.spec, step_no, total_steps);
            let backbone_trains = Groups::backbone_trains(&cfg.spec, epoch);
            pgroups.set_backbone_trainable(backbone_trains)?;
            // What receives gradients this epoch (all-reduced, unscaled).
            let trainable = pgroups.training_now();
            // Images left out up to the epoch's last batch (sources that skip).
            let mut skipped = None;
            for _ in 0..steps {
                // Data-parallel: a stop is decided with the step's gradients, together.
                if parallel.is_none() && monitor.is_cancelled() {
                    break 'epochs;
                }
                epoch_lr = pgroups.set_rates(&mut opt, &cfg.spec, step_no, total_steps)?;
                let prep = match rx.recv() {
                    Ok(prep) => prep?,
                    Err(_) => {
                        return Err(GsnError::Config(
                            "the batch preparation thread stopped".into(),
                        ))
                    }
                };
                skipped = prep.skipped;
                let b = prep.labels.len() as i64;
                let x = Tensor::f_from_slice(&prep.pixels)?
                    .f_view([b, dims[0], dims[1], dims[2]])?
                    .f_to_device(model.device)?;
                let batch = StepBatch {
                    x,
                    labels: prep.labels,
                    classes: prep.classes,
                };
                let loss = step_loss(model, &batch, &cfg.spec, proxies, &mut rng)?; // float32
                opt.zero_grad()?;
                match &scaler {
                    Some(s) => s.scaled(&loss)?.f_backward()?,
                    None => loss.f_backward()?,
                }
                let stop = match parallel {
                    Some(p) => p.all_reduce_grads(&trainable, monitor.is_cancelled())? > 0.0,
                    None => false,
                };
                // float16: gradients unscaled (the same on every rank after the
                // all-reduce, so the ranks skip the same steps).
                let finite = match &scaler {
                    Some(s) => s.unscale(&trainable)?,
                    None => true,
                };
                if finite {
                    opt.step()?;
                }
                if let Some(s) = scaler.as_mut() {
                    s.update(finite);
                    overflowed += usize::from(!finite);
                    skipped_total += usize::from(!finite);
                    if s.scale() < MIN_SCALE {
                        return Err(GsnError::Config(format!(
                            "precision=\"fp16\": the gradients overflowed float16 at every \
                             loss scale down to {MIN_SCALE:e} ({skipped_total} steps skipped): \
                             the network overflows float16 in its forward pass; use \
                             precision=\"bf16\" or \"fp32\""
                        )));
                    }
                }
                let l = loss.f_detach()?;
                loss_acc = Some(match loss_acc {
                    Some(acc) => acc.f_add(&l)?,
                    None => l,
                });
                loss_n += 1;
                step_no += 1;
                if stop {
                    monitor.token().cancel(); // another rank's stop is this one's too
                    break 'epochs;
                }
            }
            let loss_sum = match &loss_acc {
                Some(t) => t.f_double_value(&[])?,
                None => f64::NAN,
            };
            let mut loss_mean = loss_sum / loss_n.max(1) as f64;
            if let Some(p) = parallel {
                loss_mean = p.mean(&[loss_mean], model.device)?[0];
                p.broadcast_vars(model, true)?;
            }
            let mut metrics = vec![
                ("loss".to_string(), loss_mean),
                ("lr".to_string(), epoch_lr.0),
            ];
            if cfg.spec.finetune != Default::default() {
                // the backbone's rate (0 in its frozen epochs)
                let b = if backbone_trains { epoch_lr.1 } else { 0.0 };
                metrics.push(("backbone_lr".to_string(), b));
            }
            if let Some(v) = val {
                let e = model.embed(v.x, shape, 512, &Monitor::none())?;
                metrics.extend(validation_metrics(&e, v.ids)?);
            }
            if let Some(k) = skipped {
                metrics.push(("skipped".to_string(), k as f64));
            }
            if let Some(s) = &scaler {
                metrics.push(("loss_scale".to_string(), s.scale()));
                metrics.push(("overflow_steps".to_string(), overflowed as f64));
            }
            metrics.push(("seconds".to_string(), t0.elapsed().as_secs_f64()));
            if let Some(dir) = &cfg.checkpoint_dir {
                // saved as after training: nothing frozen (a TorchScript backbone's file
                // keeps its parameters' requires_grad flags)
                pgroups
                    .while_released(backbone_trains, || model.save(dir, &cfg.checkpoint_config))?;
            }
            let rec = EpochRecord { epoch, metrics };
            history.push(rec.clone());
            let mut keep_going = monitor.report(&Progress {
                step: epoch,
                total: Some(cfg.spec.epochs),
                metrics: rec.metrics,
            });
            if let Some(p) = parallel {
                let stop = !keep_going || monitor.is_cancelled();
                keep_going = p.mean(&[if stop { 1.0 } else { 0.0 }], model.device)?[0] == 0.0;
                if !keep_going {
                    monitor.token().cancel(); // another rank's stop is this one's too
                }
            }
            if !keep_going || loss_n < steps {
                break;
            }
        }
        drop(rx);
        Ok(())
    })?;
    if let Some(p) = parallel {
        p.broadcast_vars(model, true)?;
    }
    Ok(history)
}

/// A batch prepared by the helper thread.
struct Prepared {
    pixels: Vec<f32>,
    labels: Vec<i64>,
    classes: Option<Vec<i64>>,
    /// Images the source has left out so far (after this batch), when it skips.
    skipped: Option<usize>,
}
