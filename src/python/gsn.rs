//! Bindings of the Grid Search Network: the `GsnModel` class (a model behind a mutex)
//! and image augmentation (the losses' test hooks are in `loss_hooks`).

use super::convert::{tensor_from_py, tensor_to_numpy, tensor_to_py};
use super::errors::{error, torch_error, Kind};
use super::heavy::{run_heavy, run_heavy_on};
use crate::data::augment::{augment_batch, ImageShape};
use crate::data::grid::Negatives;
use crate::losses::Loss;
use crate::nets::Normalize;
use crate::train::{
    self, ArraySource, CatalogueSource, Collective, DataParallel, GsnError, ImageSource, Model,
    ModelSpec, Pixels, ScriptSource, TrainData, TrainSpec, ValData,
};
use numpy::{
    IntoPyArray, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray4, PyUntypedArrayMethods,
};
use pyo3::prelude::*;
use pyo3::types::PyList;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, OnceLock, TryLockError};
use std::time::Duration;

/// How often a call waiting for a model another thread uses looks again.
const LOCK_POLL: Duration = Duration::from_millis(2);

/// Per-epoch `(name, value)` metrics and whether training was interrupted.
/// Training data from Python: images (see [`TrainImages`]), ids, optional classes.
type TrainArrays<'py> = (
    TrainImages<'py>,
    PyReadonlyArray1<'py, i64>,
    Option<PyReadonlyArray1<'py, i64>>,
);

/// Training images from Python: a float32 `(n, c, h, w)` array in `[0, 1]`, a uint8
/// one (scaled by `1/255` per gathered image), or image files `(paths, settings)` with
/// the settings a JSON object `{"size", "augment", "max_pixels", "skip_errors"}`
/// (`skip_errors` optional, default `false`; see [`CatalogueSource`]).
#[derive(FromPyObject)]
enum TrainImages<'py> {
    F32(PyReadonlyArray4<'py, f32>),
    U8(PyReadonlyArray4<'py, u8>),
    Files(Vec<PathBuf>, String),
}

/// Settings of training from image files.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    size: u32,
    augment: crate::images::transform::Augment,
    max_pixels: u64,
    /// Leave out unreadable files ([`CatalogueSource::skip_errors`]).
    #[serde(default)]
    skip_errors: bool,
}

/// What `GsnModel(spec, ...)` builds (JSON): [`ModelSpec`]'s fields, the input
/// normalisation by name (`"auto"`, `"imagenet"`, `"legacy"`, `"none"`).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelArgs {
    backbone: String,
    in_channels: i64,
    dim: i64,
    stitched: bool,
    seed: u64,
    #[serde(default = "ModelArgs::auto")]
    normalize: String,
}

impl ModelArgs {
    fn auto() -> String {
        "auto".to_string()
    }
}

/// What `GsnModel.fit(train, run, ...)` runs (JSON): the training spec ([`TrainSpec`])
/// and where to write per-epoch checkpoints (optional).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FitRun {
    spec: TrainSpec,
    #[serde(default)]
    checkpoint: Option<Checkpoint>,
}

/// A checkpoint folder and the config JSON written beside its weights.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Checkpoint {
    dir: PathBuf,
    config: String,
}

fn shape4<T: numpy::Element>(x: &PyReadonlyArray4<'_, T>) -> ImageShape {
    let s = x.shape();
    ImageShape {
        c: s[1],
        h: s[2],
        w: s[3],
    }
}
/// Validation arrays from Python: images and ids.
type ValArrays<'py> = (PyReadonlyArray4<'py, f32>, PyReadonlyArray1<'py, i64>);
type FitResult = (Vec<Vec<(String, f64)>>, bool, Vec<(usize, String)>);
/// Data-parallel setting from Python: `(rank, world, hook)`.
type ParallelArgs<'py> = (usize, usize, Bound<'py, PyAny>);

/// Run a collective through the Python `hook(event, tensors)` (GIL taken; the tensors
/// are torch tensors sharing the memory of `tensors`, changed in place by the hook).
fn call_hook(hook: &Py<PyAny>, op: Collective, tensors: &[tch::Tensor]) -> Result<(), String> {
    Python::attach(|py| {
        let wrapped = tensors
            .iter()
            .map(|t| tensor_to_py(py, t))
            .collect::<PyResult<Vec<_>>>()
            .map_err(|e| e.to_string())?;
        let list = PyList::new(py, wrapped).map_err(|e| e.to_string())?;
        hook.call1(py, (op.name(), list))
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
}

fn shape_of(x: &PyReadonlyArray4<'_, f32>) -> ImageShape {
    shape4(x)
}

fn slice_of<'a>(x: &'a PyReadonlyArray4<'_, f32>) -> PyResult<&'a [f32]> {
    x.as_slice()
        .map_err(|_| error(Kind::Shape, "images must be a C-contiguous float32 array"))
}

/// A Grid Search Network model: query network (and target network in stitched mode).
///
/// Its training and forward passes run on one thread of its own (`thread`), not on the
/// shared pool's threads. glibc gives each thread its own malloc arena and keeps the
/// memory freed in it; libtorch's activations are malloc'd by the thread that runs
/// the network, so work spread over the pool left a batch's activations in every
/// pool thread's arena, and their fragments grew the peak run after run (streaming
/// embed of 5,000 JPEGs, repeated in one process: peak 420 → 527 MiB over 8 runs; on
/// the model's own thread 277 → 306 MiB over 6, and faster).
#[pyclass(module = "gridmatch._core")]
pub(crate) struct GsnModel {
    inner: Mutex<Model>,
    /// Started by the first fit or forward pass (a model only built, cloned or loaded
    /// keeps no idle thread).
    thread: OnceLock<rayon::ThreadPool>,
}

/// A model's own thread (see [`GsnModel`]).
fn model_thread() -> PyResult<rayon::ThreadPool> {
    crate::runtime::pool_builder(1)
        .thread_name(|_| "gridmatch-model".into())
        .build()
        .map_err(|e| {
            error(
                Kind::Backend,
                format!("cannot start the model's thread: {e}"),
            )
        })
}

impl GsnModel {
    /// The model's own thread, started on first use.
    fn thread(&self) -> PyResult<&rayon::ThreadPool> {
        if let Some(t) = self.thread.get() {
            return Ok(t);
        }
        let t = model_thread()?;
        // Two callers racing here both built one; the loser's is dropped.
        Ok(self.thread.get_or_init(|| t))
    }

    /// The model, once no other thread uses it. The wait does not hold the GIL: the
    /// thread using the model releases the GIL for its work and takes it back to report
    /// progress and check for Ctrl-C, so waiting with the GIL held would deadlock both
    /// (two Python threads embedding with one model). Ctrl-C stops the wait.
    fn lock(&self, py: Python<'_>) -> PyResult<MutexGuard<'_, Model>> {
        loop {
            match self.inner.try_lock() {
                Ok(model) => return Ok(model),
                Err(TryLockError::Poisoned(_)) => {
                    return Err(error(
                        Kind::Backend,
                        "the model was poisoned by an earlier failure",
                    ))
                }
                Err(TryLockError::WouldBlock) => {
                    py.detach(|| std::thread::sleep(LOCK_POLL));
                    py.check_signals()?;
                }
            }
        }
    }
}

#[pymethods]
impl GsnModel {
    /// Build an initialised model on `device` from `spec`, a JSON object
    /// `{"backbone", "in_channels", "dim", "stitched", "seed", "normalize"}` (the weights
    /// seeded by `seed`; `normalize` names the input normalisation: `"auto"` (default),
    /// `"imagenet"`, `"legacy"`, `"none"`). `script`, an optional `(path, height, width)`,
    /// makes the backbone the TorchScript module saved at `path` (`backbone` is then
    /// only a label); `height × width` is the image size of the probe pass that finds
    /// its feature size.
    #[new]
    #[pyo3(signature = (spec, device, script=None))]
    fn new(
        py: Python<'_>,
        spec: &str,
        device: &str,
        script: Option<(PathBuf, i64, i64)>,
    ) -> PyResult<Self> {
        let args: ModelArgs = serde_json::from_str(spec)
            .map_err(|e| error(Kind::Config, format!("invalid model spec: {e}")))?;
        let dev = train::resolve_device(device)?;
        let normalize = Normalize::parse(&args.normalize).ok_or_else(|| {
            error(
                Kind::Config,
                format!(
                    "normalize must be one of {:?}, got {:?}",
                    Normalize::NAMES,
                    args.normalize
                ),
            )
        })?;
        let spec = ModelSpec {
            backbone: args.backbone,
            in_channels: args.in_channels,
            dim: args.dim,
            stitched: args.stitched,
            seed: args.seed,
            normalize,
        };
        let model = match script {
            None => Model::new(spec, dev)?,
            Some((path, h, w)) => {
                if h < 1 || w < 1 {
                    return Err(error(
                        Kind::Config,
                        format!("the probe image size must be positive, got {h}x{w}"),
                    ));
                }
                let source = ScriptSource {
                    path,
                    probe: (h, w),
                };
                let source = &source;
                run_heavy(py, None, move |_| Model::with_script(spec, dev, source))?.value
            }
        };
        Ok(GsnModel {
            inner: Mutex::new(model),
            thread: OnceLock::new(),
        })
    }

    /// The device of the weights, as torch names it (`"cpu"`, `"cuda:0"`).
    #[getter]
    fn device(&self, py: Python<'_>) -> PyResult<String> {
        Ok(match self.lock(py)?.device {
            tch::Device::Cuda(i) => format!("cuda:{i}"),
            _ => "cpu".to_string(),
        })
    }

    /// The per-channel `(mean, std)` of the networks' input normalisation (what an
    /// exported network must apply to images in `[0, 1]`).
    #[getter]
    fn input_normalization(&self, py: Python<'_>) -> PyResult<(Vec<f64>, Vec<f64>)> {
        Ok(self.lock(py)?.spec.input_normalization())
    }

    /// Arithmetic of the forward passes of training and embedding: `"fp32"`, `"bf16"`
    /// or `"fp16"` (see `crate::train::Precision`).
    #[getter]
    fn precision(&self, py: Python<'_>) -> PyResult<&'static str> {
        Ok(self.lock(py)?.precision.name())
    }

    #[setter]
    fn set_precision(&self, py: Python<'_>, name: &str) -> PyResult<()> {
        let precision = train::Precision::parse(name)?;
        self.lock(py)?.precision = precision;
        Ok(())
    }

    /// Number of trainable values.
    #[getter]
    fn parameter_count(&self, py: Python<'_>) -> PyResult<i64> {
        Ok(crate::nets::parameter_count(&self.lock(py)?.vs))
    }

    /// Train as `run` says (a JSON object `{"spec": TrainSpec, "checkpoint": {"dir",
    /// "config"} or null}`: the settings of the run, and an optional folder written after
    /// every epoch with the config JSON beside its weights); returns
    /// `(history, interrupted, skipped)` with one list of `(name, value)` pairs per
    /// epoch and the `(index, message)` of the image files left out (`skip_errors`).
    /// `train` is `(images, ids, classes or None)`, `val` an optional `(images, ids)`.
    /// `parallel`, an optional `(rank, world, hook)`, trains data-parallel: `hook(event,
    /// tensors)` runs the collective `event` (`"broadcast"` from rank 0 or
    /// `"all_reduce_mean"`) in place on a list of torch tensors that share the model's
    /// memory; it is called from the training thread with the GIL taken.
    #[pyo3(signature = (train, run, val=None, callback=None, parallel=None))]
    fn fit(
        &self,
        py: Python<'_>,
        train: TrainArrays<'_>,
        run: &str,
        val: Option<ValArrays<'_>>,
        callback: Option<&Bound<'_, PyAny>>,
        parallel: Option<ParallelArgs<'_>>,
    ) -> PyResult<FitResult> {
        let run: FitRun = serde_json::from_str(run)
            .map_err(|e| error(Kind::Config, format!("invalid training run: {e}")))?;
        run.spec.check()?;
        let (checkpoint_dir, checkpoint_config) = match run.checkpoint {
            Some(c) => (Some(c.dir), c.config),
            None => (None, String::new()),
        };
        let cfg = train::TrainConfig {
            spec: run.spec,
            checkpoint_dir,
            checkpoint_config,
        };
        let (x, ids, classes_arr) = train;
        let contiguous = || error(Kind::Shape, "images must be a C-contiguous array");
        let (array, files) = match &x {
            TrainImages::F32(a) => (
                Some(ArraySource {
                    pixels: Pixels::F32(a.as_slice().map_err(|_| contiguous())?),
                    shape: shape4(a),
                }),
                None,
            ),
            TrainImages::U8(a) => (
                Some(ArraySource {
                    pixels: Pixels::U8(a.as_slice().map_err(|_| contiguous())?),
                    shape: shape4(a),
                }),
                None,
            ),
            TrainImages::Files(paths, settings) => {
                let s: FileSettings = serde_json::from_str(settings).map_err(|e| {
                    error(
                        Kind::Config,
                        format!("bad catalogue training settings: {e}"),
                    )
                })?;
                if s.size < 4 || s.size > 16384 {
                    return Err(error(
                        Kind::Config,
                        format!("image_size must lie in [4, 16384], got {}", s.size),
                    ));
                }
                let threads = crate::runtime::num_threads();
                let mut source =
                    CatalogueSource::new(paths.clone(), s.size, s.augment, s.max_pixels, threads)?;
                if s.skip_errors {
                    source = source.skip_errors(ids.as_slice()?)?;
                }
                (None, Some(source))
            }
        };
        let source: &dyn ImageSource = match (&array, &files) {
            (Some(a), _) => a,
            (None, Some(f)) => f,
            (None, None) => return Err(contiguous()),
        };
        let shape = source.shape();
        let ids = ids.as_slice()?;
        let classes = match &classes_arr {
            Some(c) => Some(c.as_slice()?),
            None => None,
        };
        let val = match &val {
            Some((xv, iv)) => {
                if shape_of(xv) != shape {
                    return Err(error(
                        Kind::Shape,
                        "validation images differ in shape from the training images",
                    ));
                }
                Some(ValData {
                    x: slice_of(xv)?,
                    ids: iv.as_slice()?,
                })
            }
            None => None,
        };
        let data = TrainData {
            source,
            ids,
            classes,
        };
        let parallel = parallel.map(|(rank, world, hook)| (rank, world, hook.unbind()));
        let sync = |op: Collective, tensors: &[tch::Tensor]| match &parallel {
            Some((_, _, hook)) => call_hook(hook, op, tensors),
            None => Ok(()),
        };
        let dp = parallel.as_ref().map(|&(rank, world, _)| DataParallel {
            rank,
            world,
            sync: &sync,
        });
        let mut model = self.lock(py)?;
        let model = &mut *model;
        let done = run_heavy_on(py, callback, Some(self.thread()?), |mon| {
            train::fit_parallel(model, &data, val.as_ref(), &cfg, dp.as_ref(), mon)
        })?;
        let hist = done.value.into_iter().map(|r| r.metrics).collect();
        let skipped = source.skipped().unwrap_or_default();
        Ok((hist, done.interrupted, skipped))
    }

    /// Embeddings `(n, dim)` float32 (numpy) of images `(n, c, h, w)` in `[0, 1]`.
    #[pyo3(signature = (x, batch_size=256))]
    fn embed<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArray4<'py, f32>,
        batch_size: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.forward(py, x, batch_size, false)
    }

    /// Pooled backbone features `(n, c)` float32 (numpy; before the head) of images
    /// `(n, c, h, w)` in `[0, 1]`.
    #[pyo3(signature = (x, batch_size=256))]
    fn features<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArray4<'py, f32>,
        batch_size: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.forward(py, x, batch_size, true)
    }

    /// Write `dir/weights.safetensors` and `dir/config.json` (atomically), and
    /// `dir/backbone.pt` for a TorchScript backbone.
    fn save(&self, py: Python<'_>, dir: PathBuf, config_json: String) -> PyResult<()> {
        let mut model = self.lock(py)?;
        let m = &mut *model;
        let (dir, config_json) = (&dir, &config_json);
        run_heavy(py, None, move |_| m.save(dir, config_json))?;
        Ok(())
    }

    /// Load all weights from a safetensors file written by `save`.
    fn load_weights(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let mut model = self.lock(py)?;
        let m = &mut *model;
        let path = &path;
        run_heavy(py, None, move |_| m.load_weights(path))?;
        Ok(())
    }

    /// Load backbone weights (torchvision names) from a safetensors file; returns how
    /// many tensors were loaded.
    fn load_backbone(&self, py: Python<'_>, path: PathBuf) -> PyResult<usize> {
        let mut model = self.lock(py)?;
        let m = &mut *model;
        let path = &path;
        Ok(run_heavy(py, None, move |_| m.load_backbone(path))?.value)
    }

    /// Load backbone weights from a mapping name → tensor (torch tensors or numpy
    /// arrays; torchvision names, see `load_backbone`); returns how many tensors were
    /// loaded. The values are read, not kept.
    fn load_backbone_tensors(
        &self,
        py: Python<'_>,
        tensors: HashMap<String, Bound<'_, PyAny>>,
    ) -> PyResult<usize> {
        let mut named = Vec::with_capacity(tensors.len());
        for (name, value) in tensors {
            let t = tensor_from_py(&value)
                .map_err(|e| error(Kind::Data, format!("weights tensor {name:?}: {e}")))?
                .f_detach()
                .map_err(torch_error)?;
            named.push((name, t));
        }
        let mut model = self.lock(py)?;
        let m = &mut *model;
        Ok(run_heavy(py, None, move |_| m.load_backbone_tensors(&named))?.value)
    }
}

impl GsnModel {
    /// Embeddings (`features == false`) or pooled backbone features of `x`, computed with
    /// the GIL released.
    fn forward<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArray4<'py, f32>,
        batch_size: usize,
        features: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let shape = shape_of(&x);
        let xs = slice_of(&x)?;
        let mut model = self.lock(py)?;
        let m = &mut *model;
        if shape.c as i64 != m.spec.in_channels {
            return Err(error(
                Kind::Shape,
                format!(
                    "images have {} channels, the network expects {}",
                    shape.c, m.spec.in_channels
                ),
            ));
        }
        let e = run_heavy_on(py, None, Some(self.thread()?), move |mon| {
            if features {
                m.features(xs, shape, batch_size, mon)
            } else {
                m.embed(xs, shape, batch_size, mon)
            }
        })?
        .value;
        tensor_to_numpy(py, &e)
    }
}

/// Distort images `(n, c, h, w)` float32 in `[0, 1]`: output `i` is image `i` distorted
/// with the generator of `(seed, stream, i)` at `strength`.
#[pyfunction]
#[pyo3(signature = (x, strength, seed, stream=0))]
fn augment_images<'py>(
    py: Python<'py>,
    x: PyReadonlyArray4<'py, f32>,
    strength: f64,
    seed: u64,
    stream: u64,
) -> PyResult<Bound<'py, PyAny>> {
    let shape = shape_of(&x);
    let n = x.shape()[0];
    let xs = slice_of(&x)?;
    let index: Vec<usize> = (0..n).collect();
    let out = run_heavy(py, None, |_| {
        Ok::<_, GsnError>(augment_batch(
            xs, shape, &index, strength, seed, stream, true,
        ))
    })?
    .value;
    Ok(out
        .into_pyarray(py)
        .reshape([n, shape.c, shape.h, shape.w])?
        .into_any())
}

/// Register the GSN classes and functions.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<GsnModel>()?;
    m.add_function(wrap_pyfunction!(augment_images, m)?)?;
    m.add("LOSS_NAMES", Loss::NAMES.to_vec())?;
    m.add("MINER_NAMES", Negatives::NAMES.to_vec())?;
    m.add("BACKBONE_NAMES", crate::nets::BACKBONES.to_vec())?;
    m.add("PRECISION_NAMES", train::PRECISIONS.to_vec())?;
    Ok(())
}
