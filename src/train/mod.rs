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

use crate::data::augment::{augment, ImageShape};
use crate::data::grid::{build_grids, plan_batch, GridSpec, Negatives};
use crate::data::rng::Rng;
use crate::losses::Loss;
use crate::nets::Net;
use crate::runtime::{Monitor, Progress};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::nn::{self, OptimizerConfig};
use tch::{Device, Kind, Tensor};

/// Errors of the GSN area.
#[derive(Debug, thiserror::Error)]
pub enum GsnError {
    /// A libtorch operation failed.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// Inconsistent shapes or parameters.
    #[error("{0}")]
    Config(String),
    /// The requested device is not available.
    #[error("{0}")]
    Device(String),
    /// The computation was interrupted (Ctrl-C or callback) before it had a result.
    #[error("interrupted")]
    Interrupted,
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

/// Resolve `"auto" | "cpu" | "cuda" | "cuda:N"` to a device.
pub fn resolve_device(name: &str) -> Result<Device, GsnError> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "auto" => Ok(if tch::Cuda::is_available() {
            Device::Cuda(0)
        } else {
            Device::Cpu
        }),
        _ => {
            let idx = match name.strip_prefix("cuda") {
                Some("") => 0,
                Some(rest) => rest
                    .strip_prefix(':')
                    .and_then(|s| s.parse::<usize>().ok())
                    .ok_or_else(|| {
                        GsnError::Device(format!(
                            "unknown device {name:?}; use 'auto', 'cpu', 'cuda' or 'cuda:N'"
                        ))
                    })?,
                None => {
                    return Err(GsnError::Device(format!(
                        "unknown device {name:?}; use 'auto', 'cpu', 'cuda' or 'cuda:N'"
                    )))
                }
            };
            let n = tch::Cuda::device_count().max(0) as usize;
            if !tch::Cuda::is_available() || idx >= n {
                Err(GsnError::Device(format!(
                    "device {name:?} requested but CUDA is not available ({n} CUDA devices visible to libtorch)"
                )))
            } else {
                Ok(Device::Cuda(idx))
            }
        }
    }
}

/// What a model is: everything needed to rebuild it before loading weights.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    /// Backbone name (see [`crate::nets::BACKBONES`]).
    pub backbone: String,
    /// Input channels.
    pub in_channels: i64,
    /// Embedding size.
    pub dim: i64,
    /// Whether a separate target network is built (stitched mode).
    pub stitched: bool,
    /// Seed of the weight initialisation.
    pub seed: u64,
}

/// A query network (used for retrieval) and, in stitched mode, a target network.
pub struct Model {
    /// What the model is.
    pub spec: ModelSpec,
    /// Device of the weights.
    pub device: Device,
    /// All variables (both networks).
    pub vs: nn::VarStore,
    query: Net,
    target: Option<Net>,
}

/// Model files are written as the store writes its files (temporary file, flush, rename).
impl From<crate::store::StoreError> for GsnError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match e {
            StoreError::Write { path, source } | StoreError::Read { path, source } => {
                GsnError::Io { path, source }
            }
            StoreError::Format(m) => GsnError::ModelFile(m),
        }
    }
}

impl Model {
    /// Build and initialise a model on `device` (initialisation seeded by `spec.seed`).
    pub fn new(spec: ModelSpec, device: Device) -> Result<Model, GsnError> {
        if spec.dim < 1 {
            return Err(GsnError::Config(format!(
                "dim must be >= 1, got {}",
                spec.dim
            )));
        }
        tch::manual_seed(spec.seed as i64);
        // Initialise on the CPU, whatever the device: the CPU generator makes a seed give
        // the same initial network on CPU and CUDA (CUDA's generator draws other numbers).
        let mut vs = nn::VarStore::new(Device::Cpu);
        let unknown = || {
            GsnError::Config(format!(
                "unknown backbone {:?}; available: {:?}",
                spec.backbone,
                crate::nets::BACKBONES
            ))
        };
        let query = Net::new(
            &(vs.root() / "query"),
            &spec.backbone,
            spec.in_channels,
            spec.dim,
        )
        .ok_or_else(unknown)?;
        let target = if spec.stitched {
            Some(
                Net::new(
                    &(vs.root() / "target"),
                    &spec.backbone,
                    spec.in_channels,
                    spec.dim,
                )
                .ok_or_else(unknown)?,
            )
        } else {
            None
        };
        if device != Device::Cpu {
            for (_, mut var) in vs.variables() {
                let moved = var.f_to_device(device)?;
                var.f_set_data(&moved)?;
            }
            vs.set_device(device); // records the device; the tensors are already there
        }
        Ok(Model {
            spec,
            device,
            vs,
            query,
            target,
        })
    }

    /// Load backbone weights (torchvision naming) from a safetensors file into the
    /// query (and target) network; returns the number of tensors loaded.
    pub fn load_backbone(&self, path: &Path) -> Result<usize, GsnError> {
        let mut n = Net::load_backbone(&self.vs, "query", path)?;
        if self.target.is_some() {
            n += Net::load_backbone(&self.vs, "target", path)?;
        }
        if n == 0 {
            return Err(GsnError::Config(format!(
                "{}: no tensor matches the backbone's variables",
                path.display()
            )));
        }
        Ok(n)
    }

    /// Embeddings `(n, dim)` (float32, CPU, L2-normalised) of images `x` (`n` planar
    /// images of `shape`, values in `[0, 1]`), computed in batches of `batch`.
    pub fn embed(
        &self,
        x: &[f32],
        shape: ImageShape,
        batch: usize,
        monitor: &Monitor<'_>,
    ) -> Result<Tensor, GsnError> {
        let len = shape.len().max(1);
        let n = x.len() / len;
        let batch = batch.max(1);
        let mut parts = Vec::new();
        let _guard = tch::no_grad_guard();
        for start in (0..n).step_by(batch) {
            if monitor.is_cancelled() {
                return Err(GsnError::Interrupted);
            }
            let end = (start + batch).min(n);
            let xb = Tensor::f_from_slice(&x[start * len..end * len])?
                .f_view([
                    (end - start) as i64,
                    shape.c as i64,
                    shape.h as i64,
                    shape.w as i64,
                ])?
                .f_to_device(self.device)?;
            parts.push(self.query.embed(&xb, false)?.f_to_device(Device::Cpu)?);
        }
        if parts.is_empty() {
            return Ok(Tensor::f_zeros(
                [0, self.spec.dim],
                (Kind::Float, Device::Cpu),
            )?);
        }
        Ok(Tensor::f_cat(&parts, 0)?)
    }

    /// Write `dir/weights.safetensors` and `dir/config.json`, each atomically.
    ///
    /// `config_json` must be a JSON object; it is written with one more entry,
    /// `"weights_sha256"`, the SHA-256 of the weights file, so that a reader can detect a
    /// changed, truncated or mismatched weights file (including a crash between the two
    /// renames, which leaves new weights beside the old config).
    pub fn save(&self, dir: &Path, config_json: &str) -> Result<(), GsnError> {
        let config_json = if config_json.trim().is_empty() {
            "{}"
        } else {
            config_json
        };
        let mut config: serde_json::Value = serde_json::from_str(config_json)
            .map_err(|e| GsnError::Config(format!("the model config is not valid JSON: {e}")))?;
        let Some(fields) = config.as_object_mut() else {
            return Err(GsnError::Config(
                "the model config must be a JSON object".into(),
            ));
        };
        std::fs::create_dir_all(dir).map_err(|source| GsnError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut digest = String::new();
        crate::store::write_atomic_at::<GsnError>(&dir.join("weights.safetensors"), |tmp| {
            // Contiguous copies: the convolution weights are kept channels-last.
            let mut named: Vec<(String, Tensor)> = self
                .vs
                .variables()
                .into_iter()
                .map(|(k, v)| Ok((k, v.f_contiguous()?)))
                .collect::<Result<_, tch::TchError>>()?;
            named.sort_by(|a, b| a.0.cmp(&b.0));
            Tensor::write_safetensors(&named, tmp)
                .map_err(|e| GsnError::ModelFile(format!("cannot write {}: {e}", tmp.display())))?;
            let bytes = std::fs::read(tmp).map_err(|source| GsnError::Io {
                path: tmp.to_path_buf(),
                source,
            })?;
            digest = crate::store::sha256_hex(&bytes);
            Ok(())
        })?;
        fields.insert("weights_sha256".into(), serde_json::Value::String(digest));
        let text = serde_json::to_string_pretty(&config)
            .map_err(|e| GsnError::Config(format!("cannot serialise the model config: {e}")))?;
        Ok(crate::store::write_atomic(
            &dir.join("config.json"),
            text.as_bytes(),
        )?)
    }

    /// Load all weights from a safetensors file written by [`Model::save`].
    pub fn load_weights(&mut self, path: &Path) -> Result<(), GsnError> {
        if !path.is_file() {
            return Err(GsnError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
        // Not `VarStore::load`: it broadcasts a tensor of another shape into a variable
        // and converts the variables to the file's dtype. A model file must hold exactly
        // the model's variables, with their shapes and dtypes.
        let mismatch = |m: String| GsnError::ModelFile(format!("{}: {m}", path.display()));
        let file: HashMap<String, Tensor> = Tensor::read_safetensors(path)
            .map_err(|e| mismatch(format!("not a valid safetensors file ({e})")))?
            .into_iter()
            .collect();
        let vars = self.vs.variables();
        if let Some(extra) = file.keys().find(|k| !vars.contains_key(*k)) {
            return Err(mismatch(format!(
                "tensor {extra:?} is not a variable of this network"
            )));
        }
        for (name, var) in vars.iter() {
            let src = file
                .get(name)
                .ok_or_else(|| mismatch(format!("variable {name:?} is missing")))?;
            if src.size() != var.size() || src.kind() != var.kind() {
                return Err(mismatch(format!(
                    "variable {name:?} is {:?} {:?} in the file, the network has {:?} {:?}",
                    src.kind(),
                    src.size(),
                    var.kind(),
                    var.size()
                )));
            }
        }
        tch::no_grad(|| -> Result<(), GsnError> {
            for (name, var) in vars.iter() {
                if let Some(src) = file.get(name) {
                    let mut v = var.shallow_clone();
                    v.f_copy_(src)?;
                }
            }
            Ok(())
        })
    }
}

/// Optimiser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Optim {
    /// Adam.
    Adam,
    /// SGD with momentum 0.9.
    Sgd,
}

/// Learning-rate schedule over the steps of training.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Constant learning rate.
    Constant,
    /// Cosine decay to 0.
    Cosine,
    /// ×0.1 at 50% and 75% of training.
    Step,
}

impl Schedule {
    /// Learning-rate factor at `step` of `total`.
    pub fn factor(&self, step: usize, total: usize) -> f64 {
        let t = step as f64 / total.max(1) as f64;
        match self {
            Schedule::Constant => 1.0,
            Schedule::Cosine => 0.5 * (1.0 + (std::f64::consts::PI * t).cos()),
            Schedule::Step => {
                if t >= 0.75 {
                    0.01
                } else if t >= 0.5 {
                    0.1
                } else {
                    1.0
                }
            }
        }
    }
}

/// Training parameters.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// The loss.
    pub loss: Loss,
    /// Grid layout (its `positives` also sets views per id = positives + 1).
    pub grid: GridSpec,
    /// Negative selection.
    pub negatives: Negatives,
    /// Epochs.
    pub epochs: usize,
    /// Steps per epoch (`None`: one pass over the images, `ceil(n / batch)`).
    pub steps_per_epoch: Option<usize>,
    /// Images per step.
    pub batch_size: usize,
    /// Learning rate.
    pub lr: f64,
    /// Optimiser.
    pub optimizer: Optim,
    /// Schedule.
    pub schedule: Schedule,
    /// Weight decay.
    pub weight_decay: f64,
    /// Augmentation strength (0 = none).
    pub augment: f64,
    /// Seed of sampling and augmentation.
    pub seed: u64,
    /// Folder for per-epoch checkpoints (weights + `checkpoint_config`).
    pub checkpoint_dir: Option<PathBuf>,
    /// JSON written beside checkpoint weights.
    pub checkpoint_config: String,
}

/// Training images with their ids (and optional classes for hard negatives).
pub struct TrainData<'a> {
    /// Planar images, values in `[0, 1]`.
    pub x: &'a [f32],
    /// Shape of one image.
    pub shape: ImageShape,
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
        .map_err(|err| GsnError::Config(format!("validation embeddings: {err}")))?;
    let ks: Vec<usize> = [1usize, 10].into_iter().filter(|&k| k < n).collect();
    let options = EvalOptions {
        ks: if ks.is_empty() { vec![1] } else { ks },
        knn: KnnOptions {
            exclude_self: true,
            ..KnnOptions::new(Metric::Cosine)
        },
    };
    let ev = evaluate(view, ids, view, ids, &options, &Monitor::none())
        .map_err(|err| GsnError::Config(format!("validation metrics: {err}")))?;
    let mut out: Vec<(String, f64)> = ev
        .recall
        .iter()
        .map(|&(k, r)| (format!("val_recall@{k}"), r))
        .collect();
    out.push(("val_map@r".to_string(), ev.map_at_r));
    Ok(out)
}

/// One batch prepared for a step.
struct StepBatch {
    x: Tensor,
    labels: Vec<i64>,
    classes: Option<Vec<i64>>,
}

/// Train `model` on `data`. Reports one [`Progress`] per epoch (metrics `loss`, `lr` (the
/// rate of the epoch's last step),
/// `seconds`, and `val_recall@1`, `val_recall@10`, `val_map@r` when `val` is given); stops early, keeping the
/// weights, when the monitor is cancelled. Returns the epoch records.
pub fn fit(
    model: &mut Model,
    data: &TrainData<'_>,
    val: Option<&ValData<'_>>,
    cfg: &TrainConfig,
    monitor: &Monitor<'_>,
) -> Result<Vec<EpochRecord>, GsnError> {
    let len = data.shape.len();
    let n = data.x.len().checked_div(len).unwrap_or(0);
    if n == 0 || data.ids.len() != n {
        return Err(GsnError::Config(format!(
            "{n} images but {} ids",
            data.ids.len()
        )));
    }
    if let Some(c) = data.classes {
        if c.len() != n {
            return Err(GsnError::Config(format!(
                "{n} images but {} classes",
                c.len()
            )));
        }
    }
    let cells = cfg.grid.cells();
    if cfg.grid.positives < 1 || cfg.grid.positives >= cells {
        return Err(GsnError::Config(format!(
            "positives must be in 1..{cells} for a {}x{} grid, got {}",
            cfg.grid.rows, cfg.grid.cols, cfg.grid.positives
        )));
    }
    let views = cfg.grid.positives + 1;
    let groups = cfg.batch_size / views;
    if groups < 2 {
        return Err(GsnError::Config(format!(
            "batch_size {} holds fewer than 2 ids of {views} views each",
            cfg.batch_size
        )));
    }
    if cfg.loss.is_grid() && model.spec.stitched != model.target.is_some() {
        return Err(GsnError::Config("model mode does not match".into()));
    }
    // Group images by id.
    let mut by_id: HashMap<i64, usize> = HashMap::new();
    let mut members: Vec<Vec<usize>> = Vec::new();
    let mut id_of_group: Vec<i64> = Vec::new();
    for (i, &id) in data.ids.iter().enumerate() {
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
        .steps_per_epoch
        .unwrap_or_else(|| n.div_ceil(cfg.batch_size))
        .max(1);
    let total_steps = steps * cfg.epochs;
    let mut opt = match cfg.optimizer {
        Optim::Adam => nn::Adam {
            wd: cfg.weight_decay,
            ..Default::default()
        }
        .build(&model.vs, cfg.lr)?,
        Optim::Sgd => nn::Sgd {
            momentum: 0.9,
            wd: cfg.weight_decay,
            ..Default::default()
        }
        .build(&model.vs, cfg.lr)?,
    };
    // Batches (ids, views, augmentations) are prepared one step ahead on a helper
    // thread while libtorch computes the current step; grids (which may mine the
    // current embeddings) are built on the training thread. Both streams are seeded, so
    // results do not depend on timing.
    let mut rng = Rng::new(cfg.seed);
    let shape = data.shape;
    let dims = [shape.c as i64, shape.h as i64, shape.w as i64];
    let mut history = Vec::new();
    let mut step_no = 0usize;
    let (tx, rx) = std::sync::mpsc::sync_channel::<Prepared>(2);
    let members = &members;
    let id_of_group = &id_of_group;
    let producer = move || {
        let mut rng = Rng::derive(cfg.seed, 0xBA7C, 0);
        let (mut order, mut cursor) = (Vec::new(), 0usize);
        for step in 0..total_steps {
            let (idx, groups_of) =
                plan_batch(&mut rng, members, &mut order, &mut cursor, groups, views);
            let labels: Vec<i64> = groups_of.iter().map(|&k| id_of_group[k as usize]).collect();
            let classes = data
                .classes
                .map(|c| idx.iter().map(|&i| c[i]).collect::<Vec<_>>());
            let pixels = augment_seq(data.x, shape, &idx, cfg.augment, cfg.seed, step as u64 + 1);
            if tx
                .send(Prepared {
                    pixels,
                    labels,
                    classes,
                })
                .is_err()
            {
                break;
            }
        }
    };
    std::thread::scope(|scope| -> Result<(), GsnError> {
        scope.spawn(move || {
            crate::runtime::block_interrupt_signal();
            producer()
        });
        let rx = rx;
        'epochs: for epoch in 1..=cfg.epochs {
            let t0 = Instant::now();
            let mut loss_acc: Option<Tensor> = None;
            let mut loss_n = 0usize;
            // The rate of the epoch's last step (reported in the epoch's metrics).
            let mut epoch_lr = cfg.lr * cfg.schedule.factor(step_no, total_steps);
            for _ in 0..steps {
                if monitor.is_cancelled() {
                    break 'epochs;
                }
                let lr = cfg.lr * cfg.schedule.factor(step_no, total_steps);
                opt.set_lr(lr);
                epoch_lr = lr;
                let Ok(prep) = rx.recv() else {
                    return Err(GsnError::Config(
                        "the batch preparation thread stopped".into(),
                    ));
                };
                let b = prep.labels.len() as i64;
                let x = Tensor::f_from_slice(&prep.pixels)?
                    .f_view([b, dims[0], dims[1], dims[2]])?
                    .f_to_device(model.device)?;
                let batch = StepBatch {
                    x,
                    labels: prep.labels,
                    classes: prep.classes,
                };
                let loss = step_loss(model, &batch, cfg, &mut rng)?;
                opt.zero_grad();
                loss.f_backward()?;
                opt.step();
                let l = loss.f_detach()?;
                loss_acc = Some(match loss_acc {
                    Some(acc) => acc.f_add(&l)?,
                    None => l,
                });
                loss_n += 1;
                step_no += 1;
            }
            let loss_sum = match &loss_acc {
                Some(t) => t.f_double_value(&[])?,
                None => f64::NAN,
            };
            let mut metrics = vec![
                ("loss".to_string(), loss_sum / loss_n.max(1) as f64),
                ("lr".to_string(), epoch_lr),
            ];
            if let Some(v) = val {
                let e = model.embed(v.x, shape, 512, &Monitor::none())?;
                metrics.extend(validation_metrics(&e, v.ids)?);
            }
            metrics.push(("seconds".to_string(), t0.elapsed().as_secs_f64()));
            if let Some(dir) = &cfg.checkpoint_dir {
                model.save(dir, &cfg.checkpoint_config)?;
            }
            let rec = EpochRecord { epoch, metrics };
            history.push(rec.clone());
            let keep_going = monitor.report(&Progress {
                step: epoch,
                total: Some(cfg.epochs),
                metrics: rec.metrics,
            });
            if !keep_going || loss_n < steps {
                break;
            }
        }
        drop(rx);
        Ok(())
    })?;
    Ok(history)
}

/// Distort images `index` of `src` sequentially (one generator per output slot, as in
/// [`augment_batch`], so both give the same result).
fn augment_seq(
    src: &[f32],
    shape: ImageShape,
    index: &[usize],
    strength: f64,
    seed: u64,
    stream: u64,
) -> Vec<f32> {
    let len = shape.len();
    let mut out = vec![0.0f32; index.len() * len];
    if len == 0 {
        return out;
    }
    for (i, (dst, &j)) in out.chunks_mut(len).zip(index).enumerate() {
        let mut rng = Rng::derive(seed, stream, i as u64);
        match src.get(j * len..(j + 1) * len) {
            Some(img) => augment(img, dst, shape, strength, &mut rng),
            None => dst.fill(0.0),
        }
    }
    out
}

/// A batch prepared by the helper thread.
struct Prepared {
    pixels: Vec<f32>,
    labels: Vec<i64>,
    classes: Option<Vec<i64>>,
}

/// Loss of one step (with the autograd graph).
fn step_loss(
    model: &Model,
    batch: &StepBatch,
    cfg: &TrainConfig,
    rng: &mut Rng,
) -> Result<Tensor, GsnError> {
    let b = batch.labels.len() as i64;
    let dev = model.device;
    if !cfg.loss.is_grid() {
        let e = model.query.embed(&batch.x, true)?;
        let labels = Tensor::f_from_slice(&batch.labels)?.f_to_device(dev)?;
        return Ok(cfg.loss.pairs(&e, &labels)?);
    }
    let cells = cfg.grid.cells() as i64;
    let need_sim = matches!(cfg.negatives, Negatives::Mined | Negatives::SemiHard)
        || (cfg.negatives == Negatives::Hard && batch.classes.is_none());
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
            cfg.grid,
            cfg.negatives,
        );
        let g = Tensor::f_from_slice(&g)?.f_to_device(dev)?;
        let t = Tensor::f_from_slice(&t)?
            .f_view([b, cells])?
            .f_to_device(dev)?;
        Ok((g, t))
    };
    match &model.target {
        None => {
            let e = model.query.embed(&batch.x, true)?;
            let full = e.f_matmul(&e.f_tr()?)?;
            let (g, t) = grids(need_sim.then(|| to_cpu(&full)).transpose()?)?;
            let sim = full.f_gather(1, &g.f_view([b, cells])?, false)?;
            Ok(cfg.loss.grid(&sim, &t)?)
        }
        Some(target) => {
            let q = model.query.embed(&batch.x, true)?;
            let sim = if need_sim {
                let qd = q.f_detach()?;
                Some(to_cpu(&qd.f_matmul(&qd.f_tr()?)?)?)
            } else {
                None
            };
            let (g, t) = grids(sim)?;
            let stitched = stitch(&batch.x, &g, b, cfg.grid.rows as i64, cfg.grid.cols as i64)?;
            let vol = target.volume(&stitched, cfg.grid.rows as i64, cfg.grid.cols as i64, true)?; // (b, cells, d)
            let sim = vol.f_bmm(&q.f_unsqueeze(2)?)?.f_squeeze_dim(2)?;
            Ok(cfg.loss.grid(&sim, &t)?)
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

#[cfg(test)]
mod tests {
    use super::*;

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
            checkpoint_dir: None,
            checkpoint_config: "{}".into(),
        }
    }

    #[test]
    fn training_is_deterministic_and_runs_every_loss() {
        let (x, ids) = toy(8, 1);
        let data = TrainData {
            x: &x,
            shape: ImageShape { c: 1, h: 28, w: 28 },
            ids: &ids,
            classes: None,
        };
        let spec = ModelSpec {
            backbone: "convnet".into(),
            in_channels: 1,
            dim: 8,
            stitched: false,
            seed: 1,
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

    #[test]
    fn sequential_and_parallel_augmentation_agree() {
        let (x, _) = toy(3, 1);
        let shape = ImageShape { c: 1, h: 28, w: 28 };
        let idx = [2usize, 0, 1, 2];
        let par = crate::data::augment::augment_batch(&x, shape, &idx, 1.0, 7, 3);
        assert_eq!(augment_seq(&x, shape, &idx, 1.0, 7, 3), par);
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
