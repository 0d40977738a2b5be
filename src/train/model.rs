//! The model: query network (and target network in stitched mode), construction,
//! weights files and checkpoints, embedding.

use super::precision::{Autocast, Precision};
use super::GsnError;
use crate::data::augment::ImageShape;
use crate::nets::{LoadError, Net, Normalize};
use crate::runtime::Monitor;
use std::collections::HashMap;
use std::path::Path;
use tch::nn;
use tch::{Device, Kind, Tensor};

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
    /// Input normalisation (not saved with the weights: the caller's config records it).
    pub normalize: Normalize,
}

impl ModelSpec {
    /// The per-channel `(mean, std)` the networks subtract from and divide their input
    /// by (from `normalize`, the backbone and the channels).
    pub fn input_normalization(&self) -> (Vec<f64>, Vec<f64>) {
        self.normalize
            .mean_std(&self.backbone, self.in_channels.max(1) as usize)
    }
}

/// A TorchScript backbone to build a model with (see [`crate::nets::Net::from_script`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptSource {
    /// The TorchScript file (`torch.jit.save`).
    pub path: std::path::PathBuf,
    /// Image height and width of the probe forward pass that finds the feature size.
    pub probe: (i64, i64),
}

/// Name of the TorchScript backbone file in a model folder.
pub const SCRIPT_FILE: &str = "backbone.pt";

/// A query network (used for retrieval) and, in stitched mode, a target network.
pub struct Model {
    /// What the model is.
    pub spec: ModelSpec,
    /// Device of the weights.
    pub device: Device,
    /// All variables (both networks).
    pub vs: nn::VarStore,
    pub(super) query: Net,
    pub(super) target: Option<Net>,
    /// Arithmetic of the forward passes of training and embedding (float32 unless set;
    /// a setting of the computation, not saved with the weights).
    pub precision: Precision,
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

impl From<LoadError> for GsnError {
    fn from(e: LoadError) -> Self {
        match e {
            LoadError::Mismatch(m) => GsnError::ModelFile(m),
            LoadError::Torch(t) => GsnError::Torch(t),
        }
    }
}

impl Model {
    /// Build and initialise a model on `device` (initialisation seeded by `spec.seed`).
    pub fn new(spec: ModelSpec, device: Device) -> Result<Model, GsnError> {
        Model::build(spec, device, None)
    }

    /// Build a model whose backbone is a TorchScript module (`spec.backbone` is only a
    /// label then): its parameters are trained with the head; the head is initialised
    /// from `spec.seed`.
    pub fn with_script(
        spec: ModelSpec,
        device: Device,
        script: &ScriptSource,
    ) -> Result<Model, GsnError> {
        Model::build(spec, device, Some(script))
    }

    fn build(
        spec: ModelSpec,
        device: Device,
        script: Option<&ScriptSource>,
    ) -> Result<Model, GsnError> {
        if spec.dim < 1 {
            return Err(GsnError::Config(format!(
                "dim must be >= 1, got {}",
                spec.dim
            )));
        }
        // Held until both networks are initialised (other threads' draws would change them).
        let rng = crate::runtime::seed_torch_rng(spec.seed);
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
        let net = |name: &str| -> Result<Net, GsnError> {
            let p = vs.root() / name;
            match script {
                None => {
                    Net::new(&p, &spec.backbone, spec.in_channels, spec.dim).ok_or_else(unknown)
                }
                Some(s) => {
                    Net::from_script(&p, &s.path, spec.in_channels, spec.dim, s.probe, device)
                        .map_err(|e| {
                            GsnError::Config(format!(
                                "cannot use the TorchScript backbone {}: {e}",
                                s.path.display()
                            ))
                        })
                }
            }
        };
        let mut query = net("query")?;
        if spec.stitched && !query.is_spatial() {
            return Err(GsnError::Config(
                "mode='stitched' needs a backbone that returns a feature map (n, c, h, w); \
                 this TorchScript backbone returns pooled features (n, c)"
                    .into(),
            ));
        }
        let mut target = if spec.stitched {
            Some(net("target")?)
        } else {
            None
        };
        drop(rng);
        let (mean, std) = spec.input_normalization();
        for net in std::iter::once(&mut query).chain(target.as_mut()) {
            net.set_normalization(&mean, &std, device)?;
        }
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
            precision: Precision::Fp32,
        })
    }

    /// Load backbone weights (torchvision naming) from a safetensors file into the
    /// query (and target) network, as [`Model::load_backbone_tensors`]; returns the
    /// number of tensors loaded.
    pub fn load_backbone(&self, path: &Path) -> Result<usize, GsnError> {
        if !path.is_file() {
            return Err(GsnError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
        let tensors = Tensor::read_safetensors(path).map_err(|e| {
            GsnError::ModelFile(format!(
                "{}: not a valid safetensors file ({e})",
                path.display()
            ))
        })?;
        self.load_backbone_tensors(&tensors).map_err(|e| match e {
            GsnError::ModelFile(m) => GsnError::ModelFile(format!("{}: {m}", path.display())),
            e => e,
        })
    }

    /// Load backbone weights `(name, tensor)` into the query (and target) network;
    /// strict (see [`Net::load_backbone`]: unknown, missing and misshapen tensors are
    /// errors); returns the number of tensors loaded.
    pub fn load_backbone_tensors(&self, tensors: &[(String, Tensor)]) -> Result<usize, GsnError> {
        let with_backbone = |e: LoadError| match e {
            LoadError::Mismatch(m) => GsnError::ModelFile(format!(
                "weights for backbone {:?}: {m}",
                self.spec.backbone
            )),
            e => e.into(),
        };
        let mut n = Net::load_backbone(&self.vs, "query", tensors).map_err(with_backbone)?;
        if self.target.is_some() {
            n += Net::load_backbone(&self.vs, "target", tensors).map_err(with_backbone)?;
        }
        Ok(n)
    }

    /// Pooled backbone features `(n, c)` (float32, CPU; before the head) of images `x`
    /// (`n` planar images of `shape`, values in `[0, 1]`), in batches of `batch`.
    pub fn features(
        &self,
        x: &[f32],
        shape: ImageShape,
        batch: usize,
        monitor: &Monitor<'_>,
    ) -> Result<Tensor, GsnError> {
        let width = self.query.feature_channels();
        self.batched(x, shape, batch, width, monitor, |xb| {
            self.query.features(xb, false)
        })
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
        self.batched(x, shape, batch, self.spec.dim, monitor, |xb| {
            self.query.embed(xb, false)
        })
    }

    /// `f` applied (without gradients, in the model's [`Precision`]) to the images `x`
    /// in batches of `batch`, the outputs `(batch, width)` concatenated on the CPU as
    /// float32.
    fn batched(
        &self,
        x: &[f32],
        shape: ImageShape,
        batch: usize,
        width: i64,
        monitor: &Monitor<'_>,
        f: impl Fn(&Tensor) -> Result<Tensor, tch::TchError>,
    ) -> Result<Tensor, GsnError> {
        let len = shape.len().max(1);
        let n = x.len() / len;
        let batch = batch.max(1);
        let mut parts = Vec::new();
        let _guard = tch::no_grad_guard();
        let _cache = super::CpuCache::for_device(self.device);
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
            let out = {
                let _autocast = Autocast::enter(self.precision, self.device)?;
                f(&xb)?
            };
            parts.push(out.f_to_kind(Kind::Float)?.f_to_device(Device::Cpu)?);
        }
        if parts.is_empty() {
            return Ok(Tensor::f_zeros([0, width], (Kind::Float, Device::Cpu))?);
        }
        Ok(Tensor::f_cat(&parts, 0)?)
    }

    /// The buffers of a TorchScript backbone in the query and the target network, in
    /// that order (see [`Net::script_buffers`]; empty for built-in backbones).
    pub(super) fn script_buffers(&self) -> Result<Vec<Tensor>, GsnError> {
        let mut out = Vec::new();
        for net in std::iter::once(&self.query).chain(self.target.as_ref()) {
            out.extend(net.script_buffers()?);
        }
        Ok(out)
    }

    /// Write `dir/weights.safetensors` and `dir/config.json`, each atomically (and, for a
    /// TorchScript backbone, `dir/backbone.pt` first: the query network's module with
    /// its current parameters and buffers).
    ///
    /// `config_json` must be a JSON object; it is written with one more entry,
    /// `"weights_sha256"`, the SHA-256 of the weights file (and `"backbone_sha256"`, that
    /// of `backbone.pt`), so that a reader can detect a changed, truncated or mismatched
    /// weights file (including a crash between the renames, which leaves new weights
    /// beside the old config).
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
        if self.query.is_script() {
            let digest = write_hashed(&dir.join(SCRIPT_FILE), |tmp| {
                Ok(self.query.save_script(tmp)?)
            })?;
            fields.insert("backbone_sha256".into(), serde_json::Value::String(digest));
        }
        let digest = write_hashed(&dir.join("weights.safetensors"), |tmp| {
            // Contiguous copies: the convolution weights are kept channels-last.
            let mut named: Vec<(String, Tensor)> = self
                .vs
                .variables()
                .into_iter()
                .map(|(k, v)| Ok((k, v.f_contiguous()?)))
                .collect::<Result<_, tch::TchError>>()?;
            named.sort_by(|a, b| a.0.cmp(&b.0));
            Tensor::write_safetensors(&named, tmp)
                .map_err(|e| GsnError::ModelFile(format!("cannot write {}: {e}", tmp.display())))
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

/// Write `path` atomically through `write(tmp)` and return the SHA-256 (hex) of what
/// was written.
fn write_hashed(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), GsnError>,
) -> Result<String, GsnError> {
    let mut digest = String::new();
    crate::store::write_atomic_at::<GsnError>(path, |tmp| {
        write(tmp)?;
        let bytes = std::fs::read(tmp).map_err(|source| GsnError::Io {
            path: tmp.to_path_buf(),
            source,
        })?;
        digest = crate::store::sha256_hex(&bytes);
        Ok(())
    })?;
    Ok(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights(m: &Model) -> Vec<(String, Vec<f32>)> {
        let mut v: Vec<_> =
            m.vs.variables()
                .into_iter()
                .map(|(k, t)| (k, Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()))
                .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// A seed fixes the network even while other threads build models (and so draw
    /// from libtorch's one global generator) at the same time.
    #[test]
    fn seed_fixes_the_network_across_threads() {
        let spec = |seed| ModelSpec {
            backbone: "convnet".into(),
            in_channels: 1,
            dim: 8,
            stitched: true,
            seed,
            normalize: crate::nets::Normalize::Auto,
        };
        let reference = weights(&Model::new(spec(7), Device::Cpu).unwrap());
        let other = weights(&Model::new(spec(8), Device::Cpu).unwrap());
        assert_ne!(reference, other, "another seed gives another network");
        std::thread::scope(|s| {
            let runs: Vec<_> = (0..4)
                .map(|t| {
                    s.spawn(move || {
                        (0..5)
                            .map(|_| weights(&Model::new(spec(7 + (t % 2)), Device::Cpu).unwrap()))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for (t, run) in runs.into_iter().enumerate() {
                let want = if t % 2 == 0 { &reference } else { &other };
                for w in run.join().unwrap() {
                    assert!(&w == want, "thread {t} built another network from its seed");
                }
            }
        });
    }
}
