//! Networks of the Grid Search Network: backbones producing feature maps and an
//! embedding head.
//!
//! - `"convnet"`: a small fully-convolutional CNN for 28×28 grayscale images
//!   (3 conv + batch-norm layers, 32/64/128 channels, two 2×2 max-pools: a 7×7×128 map
//!   per 28×28).
//! - `"resnet18"`, `"resnet50"`: torchvision's ResNets without pooling and classifier
//!   (variable names follow torchvision, so its state dicts load with
//!   [`Net::load_backbone`]).
//!
//! - a TorchScript module (a scripted or traced `torch.nn.Module`, [`Net::from_script`]):
//!   its parameters become trainable variables of the model's store, its train/eval
//!   mode follows each call.
//!
//! The input is normalised per channel first (see [`Normalize`]; module backbones
//! alike). The head is a linear map of the pooled features to `dim`, then L2
//! normalisation. [`Net::features`] gives the pooled backbone features, [`Net::embed`]
//! the head's normalised output (one vector per image); [`Net::volume`] pools the map
//! into `rows × cols` regions — the stitched-grid mode's `rows×cols×dim` volume.
//!
//! Files: this one ([`Net`]: construction, forward passes, loading weights),
//! `convnet` and `resnet` (the built-in backbones), `layers` (their convolution and
//! BatchNorm layers), `script` (TorchScript backbones), `normalize` (input
//! normalisation).

mod convnet;
mod layers;
mod normalize;
mod resnet;
mod script;

pub use normalize::{Normalize, IMAGENET_MEAN, IMAGENET_STD};
pub use script::{BUFFERS_METHOD, BUFFER_NAMES_METHOD};

use convnet::convnet;
use resnet::resnet;
use script::lock;

use std::collections::HashMap;
use std::sync::Mutex;
use tch::nn::{self, ModuleT};
use tch::{Kind, Tensor};

/// The part of a network before pooling.
enum Backbone {
    /// A built-in backbone (variables created by this crate).
    Builtin(nn::FuncT<'static>),
    /// A TorchScript module; the mutex serialises its mode switches and forward passes.
    Script(Mutex<tch::CModule>),
}

/// An embedding network: backbone, head, input normalisation.
pub struct Net {
    features: Backbone,
    /// Whether the backbone's output is a feature map `(n, c, h, w)` (else `(n, c)`).
    spatial: bool,
    head: nn::Linear,
    /// Per-channel input mean and std, `(1, c, 1, 1)` float32 (not variables: they are
    /// not trained and not saved; the model's spec sets them).
    mean: Tensor,
    std: Tensor,
    /// Channels of the pooled features.
    channels: i64,
    prefix: String,
    /// Whether the backbone's BatchNorm layers keep their statistics in training
    /// (they run as in eval mode; see [`Net::set_frozen_batch_norm`]).
    frozen_bn: bool,
}

/// Loading backbone weights failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The tensors do not fit the backbone (unknown, missing or misshapen ones).
    #[error("{0}")]
    Mismatch(String),
    /// A libtorch operation failed.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

/// The backbone variable (its name after `backbone.`) that a weights key names, or
/// `None` for a key that is skipped: a `module.` prefix (DDP) is stripped; torchvision's
/// classifier `fc.*` and BatchNorm's `num_batches_tracked` counters are skipped; in a
/// saved gridmatch model (`query.*`, `target.*`) only `query.backbone.*` is used.
pub fn backbone_key(key: &str) -> Option<&str> {
    let key = key.strip_prefix("module.").unwrap_or(key);
    if key.ends_with("num_batches_tracked") || key.starts_with("fc.") {
        return None;
    }
    if let Some(rest) = key.strip_prefix("query.backbone.") {
        return Some(rest);
    }
    if key.starts_with("query.") || key.starts_with("target.") {
        return None;
    }
    Some(key.strip_prefix("backbone.").unwrap_or(key))
}

impl std::fmt::Debug for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Net").field("prefix", &self.prefix).finish()
    }
}

/// Names of the available backbones.
pub const BACKBONES: [&str; 3] = ["convnet", "resnet18", "resnet50"];

/// Expected input channels of a backbone.
pub fn in_channels(backbone: &str) -> Option<i64> {
    match backbone {
        "convnet" => Some(1),
        "resnet18" | "resnet50" => Some(3),
        _ => None,
    }
}

impl Net {
    /// Build the network `backbone` with `cin` input channels and embedding size `dim`
    /// under `p` (its variables are named `<prefix>.backbone.*` and `<prefix>.head.*`),
    /// normalising its input as [`Normalize::Legacy`] (see [`Net::set_normalization`]).
    /// Returns `None` for an unknown backbone name.
    pub fn new(p: &nn::Path, backbone: &str, cin: i64, dim: i64) -> Option<Net> {
        let bp = p / "backbone";
        let (features, c) = match backbone {
            "convnet" => convnet(&bp, cin),
            "resnet18" => resnet(&bp, cin, [2, 2, 2, 2], false),
            "resnet50" => resnet(&bp, cin, [3, 4, 6, 3], true),
            _ => return None,
        };
        let head = nn::linear(p / "head", c, dim, Default::default());
        let (mean, std) = Normalize::Legacy.mean_std(backbone, cin.max(1) as usize);
        let channel = |v: &[f64]| {
            let v: Vec<f32> = v.iter().map(|&x| x as f32).collect();
            Tensor::from_slice(&v).view([1, -1, 1, 1])
        };
        Some(Net {
            features: Backbone::Builtin(features),
            spatial: true,
            head,
            mean: channel(&mean),
            std: channel(&std),
            channels: c,
            prefix: p.components().collect::<Vec<_>>().join("."),
            frozen_bn: false,
        })
    }

    /// Keep (`true`) or not the backbone's BatchNorm statistics in training passes: a
    /// frozen backbone runs as in eval mode (running statistics, not batch ones, and
    /// not updated) while its gradients still flow; a TorchScript backbone runs in eval
    /// mode then (its dropout, if any, is off too). Its affine parameters are the
    /// caller's to keep fixed ([`Net::batch_norm_affine`]).
    pub fn set_frozen_batch_norm(&mut self, frozen: bool) {
        self.frozen_bn = frozen;
    }

    /// The store names of the backbone's BatchNorm affine parameters (weight and bias of
    /// every layer that has running statistics), given the store's variable names:
    /// for a built-in backbone the statistics are store variables
    /// (`<prefix>.backbone.X.running_mean` → `X.weight`, `X.bias`); for a TorchScript
    /// backbone they are the module's buffers, named by its [`BUFFER_NAMES_METHOD`].
    pub fn batch_norm_affine(&self, store_names: &[String]) -> Result<Vec<String>, tch::TchError> {
        let backbone = format!("{}.backbone.", self.prefix);
        let layers: Vec<String> = match &self.features {
            Backbone::Builtin(_) => store_names
                .iter()
                .filter_map(|n| n.strip_prefix(&backbone)?.strip_suffix(".running_mean"))
                .map(str::to_string)
                .collect(),
            Backbone::Script(_) => self
                .script_buffer_names()?
                .iter()
                .filter_map(|n| n.strip_suffix(".running_mean"))
                .map(str::to_string)
                .collect(),
        };
        // A TorchScript parameter `X.weight` is the store variable `X_weight`.
        let store_key = |layer: &str, what: &str| match &self.features {
            Backbone::Builtin(_) => format!("{backbone}{layer}.{what}"),
            Backbone::Script(_) => format!("{backbone}{}_{what}", layer.replace('.', "_")),
        };
        let mut out = Vec::new();
        for layer in &layers {
            for what in ["weight", "bias"] {
                let key = store_key(layer, what);
                if store_names.contains(&key) {
                    out.push(key);
                }
            }
        }
        Ok(out)
    }

    /// Set the per-channel input normalisation (one mean and std per input channel),
    /// kept on `device`.
    pub fn set_normalization(
        &mut self,
        mean: &[f64],
        std: &[f64],
        device: tch::Device,
    ) -> Result<(), tch::TchError> {
        let as_tensor = |v: &[f64]| -> Result<Tensor, tch::TchError> {
            let v: Vec<f32> = v.iter().map(|&x| x as f32).collect();
            Tensor::f_from_slice(&v)?
                .f_view([1, -1, 1, 1])?
                .f_to_device(device)
        };
        self.mean = as_tensor(mean)?;
        self.std = as_tensor(std)?;
        Ok(())
    }

    /// Channels of the pooled features ([`Net::features`]).
    pub fn feature_channels(&self) -> i64 {
        self.channels
    }

    /// Whether the backbone returns a feature map (needed by [`Net::volume`]).
    pub fn is_spatial(&self) -> bool {
        self.spatial
    }

    fn feature_map(&self, xs: &Tensor, train: bool) -> Result<Tensor, tch::TchError> {
        // as torchvision's Normalize: (x - mean) / std, float32, per channel
        let dev = xs.device();
        let xs = xs
            .f_sub(&self.mean.f_to_device(dev)?)?
            .f_div(&self.std.f_to_device(dev)?)?;
        let train = train && !self.frozen_bn;
        match &self.features {
            Backbone::Builtin(f) => Ok(f.forward_t(&xs, train)),
            Backbone::Script(m) => {
                let mut m = lock(m)?;
                if train {
                    m.f_set_train()?;
                } else {
                    m.f_set_eval()?;
                }
                m.forward_ts(&[&xs])
            }
        }
    }

    /// Pooled backbone features `(n, c)` (before the head) of images `(n, c, h, w)` in
    /// `[0, 1]`: the feature map averaged over its positions, as torchvision's ResNets
    /// before their classifier (a module backbone returning `(n, c)` as is).
    pub fn features(&self, xs: &Tensor, train: bool) -> Result<Tensor, tch::TchError> {
        let f = self.feature_map(xs, train)?;
        if f.dim() == 2 {
            return Ok(f);
        }
        f.f_adaptive_avg_pool2d([1i64, 1].as_slice())?
            .f_flatten(1, -1)
    }

    /// L2-normalised embeddings `(n, dim)` of images `(n, c, h, w)` in `[0, 1]`.
    pub fn embed(&self, xs: &Tensor, train: bool) -> Result<Tensor, tch::TchError> {
        normalize(&self.features(xs, train)?.apply(&self.head))
    }

    /// The `(n, rows·cols, dim)` volume of normalised cell embeddings of stitched grid
    /// images `(n, c, rows·h, cols·w)`: the feature map pooled into `rows × cols`
    /// regions, then the head applied to each.
    pub fn volume(
        &self,
        xs: &Tensor,
        rows: i64,
        cols: i64,
        train: bool,
    ) -> Result<Tensor, tch::TchError> {
        let f = self.feature_map(xs, train)?;
        if f.dim() != 4 {
            return Err(tch::TchError::Shape(format!(
                "the stitched mode needs a backbone that returns a feature map (n, c, h, w); \
                 this one returns {:?}",
                f.size()
            )));
        }
        let n = f.size()[0];
        let pooled = f.f_adaptive_avg_pool2d([rows, cols].as_slice())?; // (n, c, r, c)
        let cells = pooled.f_flatten(2, 3)?.f_transpose(1, 2)?; // (n, cells, c)
        let e = cells.apply(&self.head);
        normalize(&e.f_reshape([n, rows * cols, -1])?)
    }

    /// Load backbone weights `tensors` (name, tensor) into the variables
    /// `<prefix>.backbone.*` of `vs`; names are read with [`backbone_key`] (torchvision
    /// naming, `backbone.X`, a saved gridmatch model's `query.backbone.X`). Strict: a
    /// tensor that names no variable, a variable without a tensor, a name given twice or
    /// a shape that differs is an error naming it. Values are converted to the
    /// variables' dtype and device. Returns how many variables were loaded.
    pub fn load_backbone(
        vs: &nn::VarStore,
        prefix: &str,
        tensors: &[(String, Tensor)],
    ) -> Result<usize, LoadError> {
        let mut by_name: HashMap<&str, (&str, &Tensor)> = HashMap::new();
        for (key, t) in tensors {
            let Some(name) = backbone_key(key) else {
                continue;
            };
            if let Some((first, _)) = by_name.insert(name, (key, t)) {
                return Err(LoadError::Mismatch(format!(
                    "tensors {first:?} and {key:?} both give the variable {name:?}"
                )));
            }
        }
        let vars = vs.variables();
        let head = format!("{prefix}.backbone.");
        let mut wanted: Vec<(&str, &Tensor)> = vars
            .iter()
            .filter_map(|(n, v)| n.strip_prefix(&head).map(|rest| (rest, v)))
            .collect();
        wanted.sort_by(|a, b| a.0.cmp(b.0));
        if let Some((_, (key, _))) = by_name
            .iter()
            .filter(|(name, _)| !wanted.iter().any(|(w, _)| w == *name))
            .min_by(|a, b| a.0.cmp(b.0))
        {
            return Err(LoadError::Mismatch(format!(
                "tensor {key:?} matches no variable of the backbone"
            )));
        }
        let missing: Vec<&str> = wanted
            .iter()
            .filter(|(w, _)| !by_name.contains_key(w))
            .map(|(w, _)| *w)
            .collect();
        if !missing.is_empty() {
            let shown = missing
                .iter()
                .take(5)
                .copied()
                .collect::<Vec<_>>()
                .join(", ");
            let more = if missing.len() > 5 { ", ..." } else { "" };
            return Err(LoadError::Mismatch(format!(
                "{} backbone variable(s) have no tensor: {shown}{more}",
                missing.len()
            )));
        }
        for (name, var) in &wanted {
            let (key, src) = by_name[name];
            if src.size() != var.size() {
                return Err(LoadError::Mismatch(format!(
                    "tensor {key:?} has shape {:?}, the variable {name:?} {:?}",
                    src.size(),
                    var.size()
                )));
            }
        }
        tch::no_grad(|| -> Result<(), tch::TchError> {
            for (name, var) in &wanted {
                let (_, src) = by_name[name];
                let mut v = var.shallow_clone();
                v.f_copy_(&src.f_to_kind(var.kind())?)?;
            }
            Ok(())
        })?;
        Ok(wanted.len())
    }
}

/// Rows of `x` divided by their L2 norm (last dimension), in float32 (a 16-bit `x` of
/// an autocast region is widened first: unit norms to float32 precision).
pub fn normalize(x: &Tensor) -> Result<Tensor, tch::TchError> {
    let x = match x.kind() {
        Kind::Half | Kind::BFloat16 => x.f_to_kind(Kind::Float)?,
        _ => x.shallow_clone(),
    };
    let n = x
        .f_norm_scalaropt_dim(2, [-1i64].as_slice(), true)?
        .f_clamp_min(1e-12)?;
    x.f_div(&n)
}

/// Number of trainable values in `vs`.
pub fn parameter_count(vs: &nn::VarStore) -> i64 {
    vs.trainable_variables()
        .iter()
        .map(|t| t.numel() as i64)
        .sum()
}

#[allow(dead_code)]
fn _kind_check() -> Kind {
    Kind::Float
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn convnet_shapes_and_norms() {
        let _rng = crate::runtime::torch_rng_lock(); // draws unseeded from libtorch's generator
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let net = Net::new(&(vs.root() / "query"), "convnet", 1, 16).unwrap();
        let x = Tensor::rand([4, 1, 28, 28], (Kind::Float, tch::Device::Cpu));
        let e = net.embed(&x, false).unwrap();
        assert_eq!(e.size(), vec![4, 16]);
        let norms = e.norm_scalaropt_dim(2, [1i64].as_slice(), false);
        assert!((norms - 1.0).abs().max().double_value(&[]) < 1e-5);
        let g = Tensor::rand([2, 1, 56, 84], (Kind::Float, tch::Device::Cpu));
        let v = net.volume(&g, 2, 3, false).unwrap();
        assert_eq!(v.size(), vec![2, 6, 16]);
    }

    #[test]
    fn resnet18_runs() {
        let _rng = crate::runtime::torch_rng_lock(); // draws unseeded from libtorch's generator
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let net = Net::new(&(vs.root() / "query"), "resnet18", 3, 8).unwrap();
        let x = Tensor::rand([2, 3, 64, 64], (Kind::Float, tch::Device::Cpu));
        assert_eq!(net.embed(&x, true).unwrap().size(), vec![2, 8]);
        assert!(vs
            .variables()
            .contains_key("query.backbone.layer4.1.bn2.running_mean"));
        assert_eq!(net.features(&x, false).unwrap().size(), vec![2, 512]);
    }

    #[test]
    fn backbone_keys() {
        assert_eq!(backbone_key("module.conv1.weight"), Some("conv1.weight"));
        assert_eq!(backbone_key("fc.weight"), None);
        assert_eq!(backbone_key("bn1.num_batches_tracked"), None);
        assert_eq!(backbone_key("query.backbone.bn1.bias"), Some("bn1.bias"));
        assert_eq!(backbone_key("query.head.weight"), None);
        assert_eq!(backbone_key("target.backbone.bn1.bias"), None);
        assert_eq!(
            backbone_key("backbone.layer1.0.conv1.weight"),
            Some("layer1.0.conv1.weight")
        );
    }
}
