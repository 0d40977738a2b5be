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

mod normalize;

pub use normalize::{Normalize, IMAGENET_MEAN, IMAGENET_STD};

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

/// A 2-D convolution run in channels-last (NHWC) layout: the input and the weight are
/// given NHWC strides (a no-op for an input that already has them), so libtorch picks
/// its channels-last kernels (oneDNN on CPU), markedly faster for these small images in
/// the forward and the backward pass.
#[derive(Debug)]
struct Conv {
    inner: nn::Conv2D,
    stride: i64,
    padding: i64,
}

/// `t` (4-d) with channels-last strides `(h·w·c, 1, w·c, c)` and the same logical shape
/// and values (differentiable; no copy when `t` has them already). The strides are set
/// explicitly rather than by permuting: for one channel, permute + contiguous gives the
/// ordinary strides, and libtorch would run the first layer in NCHW.
fn channels_last(t: &Tensor) -> Tensor {
    let size = t.size();
    let [_, c, h, w] = size[..] else {
        return t.shallow_clone();
    };
    let strides = [h * w * c, 1, w * c, c];
    if t.stride() == strides {
        return t.shallow_clone();
    }
    let mut out = Tensor::empty_strided(&size, strides, (t.kind(), t.device()));
    out.copy_(t);
    out
}

impl nn::Module for Conv {
    fn forward(&self, xs: &Tensor) -> Tensor {
        // The weight is converted per call (a small differentiable copy): parameters and
        // optimiser state stay ordinary contiguous tensors.
        channels_last(xs).conv2d(
            &channels_last(&self.inner.ws),
            self.inner.bs.as_ref(),
            [self.stride, self.stride],
            [self.padding, self.padding],
            [1, 1],
            1,
        )
    }
}

fn conv(p: nn::Path, cin: i64, cout: i64, k: i64, pad: i64, stride: i64, bias: bool) -> Conv {
    let cfg = nn::ConvConfig {
        stride,
        padding: pad,
        bias,
        ..Default::default()
    };
    Conv {
        inner: nn::conv2d(p, cin, cout, k, cfg),
        stride,
        padding: pad,
    }
}

/// BatchNorm's epsilon (torchvision's and tch's default), written out because the
/// folded evaluation of [`ConvBn`] needs it.
const BN_EPS: f64 = 1e-5;

/// A convolution followed by batch normalisation. In training mode they run one after
/// the other (batch statistics, running averages updated). In eval mode the
/// normalisation is folded into the convolution (weight `w·γ/√(σ²+ε)` per output
/// channel, bias `β − μ·γ/√(σ²+ε)`), as inference engines do: one pass over the
/// activations and one allocation instead of two, the same function up to float
/// rounding, differentiable in the weights and statistics alike.
#[derive(Debug)]
struct ConvBn {
    conv: Conv,
    bn: nn::BatchNorm,
}

impl nn::ModuleT for ConvBn {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        if train {
            return xs.apply(&self.conv).apply_t(&self.bn, true);
        }
        let bn = &self.bn;
        let inv = (&bn.running_var + BN_EPS).rsqrt();
        let scale = match &bn.ws {
            Some(g) => inv * g,
            None => inv,
        };
        let shift = -(&bn.running_mean * &scale);
        let shift = match &bn.bs {
            Some(b) => shift + b,
            None => shift,
        };
        let shift = match &self.conv.inner.bs {
            Some(b) => shift + b * &scale,
            None => shift,
        };
        let ws = &self.conv.inner.ws * scale.view([-1, 1, 1, 1]);
        channels_last(xs).conv2d(
            &channels_last(&ws),
            Some(&shift),
            [self.conv.stride, self.conv.stride],
            [self.conv.padding, self.conv.padding],
            [1, 1],
            1,
        )
    }
}

/// A [`ConvBn`]: convolution `cin → cout` (kernel `k`, no bias) under `p / conv`,
/// BatchNorm under `p / bn` (torchvision's variable names).
fn conv_bn(
    conv_p: nn::Path,
    bn_p: nn::Path,
    cin: i64,
    cout: i64,
    k: i64,
    pad: i64,
    stride: i64,
) -> ConvBn {
    let bn = nn::BatchNormConfig {
        eps: BN_EPS,
        ..Default::default()
    };
    ConvBn {
        conv: conv(conv_p, cin, cout, k, pad, stride, false),
        bn: nn::batch_norm2d(bn_p, cout, bn),
    }
}

/// `t` with ReLU applied in place (as torchvision's `ReLU(inplace=True)`: no new
/// activation buffer; the ops before it do not need their output for the backward).
fn relu_(mut t: Tensor) -> Tensor {
    let _ = t.relu_();
    t
}

fn convnet(p: &nn::Path, cin: i64) -> (nn::FuncT<'static>, i64) {
    let l1 = conv_bn(p / "conv1", p / "bn1", cin, 32, 3, 1, 1);
    let l2 = conv_bn(p / "conv2", p / "bn2", 32, 64, 3, 1, 1);
    let l3 = conv_bn(p / "conv3", p / "bn3", 64, 128, 3, 1, 1);
    let f = nn::func_t(move |xs, t| {
        let ys = relu_(xs.apply_t(&l1, t)).max_pool2d_default(2);
        let ys = relu_(ys.apply_t(&l2, t)).max_pool2d_default(2);
        relu_(ys.apply_t(&l3, t))
    });
    (f, 128)
}

fn downsample(p: nn::Path, cin: i64, cout: i64, stride: i64) -> nn::SequentialT {
    if stride != 1 || cin != cout {
        nn::seq_t().add(conv_bn(&p / "0", &p / "1", cin, cout, 1, 0, stride))
    } else {
        nn::seq_t()
    }
}

fn basic_block(p: nn::Path, cin: i64, cout: i64, stride: i64) -> nn::FuncT<'static> {
    let l1 = conv_bn(&p / "conv1", &p / "bn1", cin, cout, 3, 1, stride);
    let l2 = conv_bn(&p / "conv2", &p / "bn2", cout, cout, 3, 1, 1);
    let ds = downsample(&p / "downsample", cin, cout, stride);
    nn::func_t(move |xs, t| {
        let ys = relu_(xs.apply_t(&l1, t)).apply_t(&l2, t);
        relu_(xs.apply_t(&ds, t) + ys)
    })
}

fn bottleneck(p: nn::Path, cin: i64, cout: i64, stride: i64) -> nn::FuncT<'static> {
    let e = 4 * cout;
    let l1 = conv_bn(&p / "conv1", &p / "bn1", cin, cout, 1, 0, 1);
    let l2 = conv_bn(&p / "conv2", &p / "bn2", cout, cout, 3, 1, stride);
    let l3 = conv_bn(&p / "conv3", &p / "bn3", cout, e, 1, 0, 1);
    let ds = downsample(&p / "downsample", cin, e, stride);
    nn::func_t(move |xs, t| {
        let ys = relu_(xs.apply_t(&l1, t));
        let ys = relu_(ys.apply_t(&l2, t)).apply_t(&l3, t);
        relu_(xs.apply_t(&ds, t) + ys)
    })
}

fn resnet(p: &nn::Path, cin: i64, blocks: [i64; 4], deep: bool) -> (nn::FuncT<'static>, i64) {
    let stem = conv_bn(p / "conv1", p / "bn1", cin, 64, 7, 3, 2);
    let exp = if deep { 4 } else { 1 };
    let mut layers = Vec::new();
    let mut c = 64;
    for (i, (&n, width)) in blocks.iter().zip([64i64, 128, 256, 512]).enumerate() {
        let lp = p / format!("layer{}", i + 1);
        let stride = if i == 0 { 1 } else { 2 };
        let mut seq = nn::seq_t();
        for j in 0..n {
            let s = if j == 0 { stride } else { 1 };
            let bp = &lp / j.to_string();
            seq = if deep {
                seq.add(bottleneck(bp, c, width, s))
            } else {
                seq.add(basic_block(bp, c, width, s))
            };
            c = width * exp;
        }
        layers.push(seq);
    }
    let f = nn::func_t(move |xs, t| {
        let mut ys = relu_(xs.apply_t(&stem, t)).max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        for l in &layers {
            ys = ys.apply_t(l, t);
        }
        ys
    });
    (f, c)
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
        })
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

    /// Build a network whose backbone is the TorchScript module in the file `script`
    /// (variables `<prefix>.backbone.<parameter name with '_' for '.'>` and
    /// `<prefix>.head.*`). The module takes images `(n, cin, h, w)` normalised as the
    /// other backbones ([`Net::set_normalization`]; none until it is set) and returns a feature map `(n, c, h', w')`
    /// or pooled features `(n, c)`; `c` is read from one eval-mode forward pass on zero
    /// images `(2, cin, probe.0, probe.1)`.
    ///
    /// The module is loaded on `device` (its parameters and buffers), whatever the
    /// store's device. Its parameters are added to the store (sharing their memory, as
    /// `tch::TrainableCModule` does); its buffers (BatchNorm statistics) are not
    /// variables of the store: they travel with the module ([`Net::save_script`]) and
    /// are reached through [`Net::script_buffers`].
    pub fn from_script(
        p: &nn::Path,
        script: &std::path::Path,
        cin: i64,
        dim: i64,
        probe: (i64, i64),
        device: tch::Device,
    ) -> Result<Net, tch::TchError> {
        let mut module = tch::CModule::load_on_device(script, device)?;
        let bp = p / "backbone";
        for (name, tensor) in module.named_parameters()? {
            let trainable = tensor.requires_grad();
            let _ = bp.add(&name.replace('.', "_"), tensor, trainable);
        }
        module.f_set_eval()?;
        let x = Tensor::f_zeros([2, cin, probe.0, probe.1], (Kind::Float, device))?;
        let out = tch::no_grad(|| module.forward_ts(&[x]))?;
        let size = out.size();
        let (spatial, c) = match size[..] {
            [2, c, _, _] => (true, c),
            [2, c] => (false, c),
            _ => {
                return Err(tch::TchError::Shape(format!(
                    "the TorchScript backbone must return a feature map (n, c, h, w) or \
                     features (n, c); for {} images (2, {cin}, {}, {}) it returned {size:?}",
                    2, probe.0, probe.1
                )))
            }
        };
        if out.kind() != Kind::Float {
            return Err(tch::TchError::Kind(format!(
                "the TorchScript backbone must return float32 features, got {:?}",
                out.kind()
            )));
        }
        let head = nn::linear(p / "head", c, dim, Default::default());
        Ok(Net {
            features: Backbone::Script(Mutex::new(module)),
            spatial,
            head,
            mean: Tensor::from_slice(&vec![0f32; cin.max(1) as usize]).view([1, -1, 1, 1]),
            std: Tensor::from_slice(&vec![1f32; cin.max(1) as usize]).view([1, -1, 1, 1]),
            channels: c,
            prefix: p.components().collect::<Vec<_>>().join("."),
        })
    }

    /// Whether the backbone returns a feature map (needed by [`Net::volume`]).
    pub fn is_spatial(&self) -> bool {
        self.spatial
    }

    /// Whether the backbone is a TorchScript module.
    pub fn is_script(&self) -> bool {
        matches!(self.features, Backbone::Script(_))
    }

    /// The TorchScript backbone's buffers (BatchNorm statistics): the module's own
    /// tensors (writing into them changes the module), in the order of the module's
    /// [`BUFFERS_METHOD`], so the same on every process that loaded the same module.
    /// Empty for a built-in backbone (its buffers are store variables) and for a module
    /// without that method (one saved before it was added).
    pub fn script_buffers(&self) -> Result<Vec<Tensor>, tch::TchError> {
        let Backbone::Script(m) = &self.features else {
            return Ok(Vec::new());
        };
        let module = lock(m)?;
        match module.method_is::<tch::IValue>(BUFFERS_METHOD, &[]) {
            Ok(tch::IValue::TensorList(v)) => Ok(v),
            Ok(tch::IValue::GenericList(v)) => v
                .into_iter()
                .map(|x| match x {
                    tch::IValue::Tensor(t) => Ok(t),
                    other => Err(tch::TchError::Kind(format!(
                        "{BUFFERS_METHOD}() of the TorchScript backbone returned a \
                         non-tensor item {other:?}"
                    ))),
                })
                .collect(),
            Ok(other) => Err(tch::TchError::Kind(format!(
                "{BUFFERS_METHOD}() of the TorchScript backbone returned {other:?}, not a \
                 list of tensors"
            ))),
            // A module without the method (saved before it was added); an error raised
            // while the method runs is an error.
            Err(e)
                if e.to_string()
                    .contains(&format!("Method '{BUFFERS_METHOD}' is not defined")) =>
            {
                Ok(Vec::new())
            }
            Err(e) => Err(e),
        }
    }

    /// Write the TorchScript backbone, with its current parameters and buffers, to
    /// `path` (an error for a built-in backbone).
    pub fn save_script(&self, path: &std::path::Path) -> Result<(), tch::TchError> {
        match &self.features {
            Backbone::Builtin(_) => Err(tch::TchError::Torch(
                "a built-in backbone is not a TorchScript module".into(),
            )),
            Backbone::Script(m) => lock(m)?.save(path),
        }
    }

    fn feature_map(&self, xs: &Tensor, train: bool) -> Result<Tensor, tch::TchError> {
        // as torchvision's Normalize: (x - mean) / std, float32, per channel
        let dev = xs.device();
        let xs = xs
            .f_sub(&self.mean.f_to_device(dev)?)?
            .f_div(&self.std.f_to_device(dev)?)?;
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

/// The exported method of a TorchScript backbone that returns its buffers; the Python
/// layer adds it (`gridmatch.gsn._export_buffers`) before handing a module over.
pub const BUFFERS_METHOD: &str = "gridmatch_buffers";

fn lock(m: &Mutex<tch::CModule>) -> Result<std::sync::MutexGuard<'_, tch::CModule>, tch::TchError> {
    m.lock().map_err(|_| {
        tch::TchError::Torch("the TorchScript backbone was poisoned by an earlier failure".into())
    })
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
    fn folded_eval_equals_conv_then_batch_norm() {
        // Eval mode folds BatchNorm into the convolution; with non-trivial statistics,
        // scale and shift it must equal the convolution followed by BatchNorm's own
        // eval-mode formula, and its gradients flow to the same variables.
        let _rng = crate::runtime::torch_rng_lock(); // draws unseeded from libtorch's generator
        let opts = (Kind::Double, tch::Device::Cpu);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let root = vs.root();
        let layer = conv_bn(&root / "conv", &root / "bn", 3, 5, 3, 1, 2);
        tch::no_grad(|| {
            let bn = &layer.bn;
            let mut rm = bn.running_mean.shallow_clone();
            let mut rv = bn.running_var.shallow_clone();
            rm.copy_(&Tensor::randn([5], opts));
            rv.copy_(&(Tensor::rand([5], opts) + 0.2));
            bn.ws
                .as_ref()
                .unwrap()
                .shallow_clone()
                .copy_(&Tensor::randn([5], opts));
            bn.bs
                .as_ref()
                .unwrap()
                .shallow_clone()
                .copy_(&Tensor::randn([5], opts));
        });
        let x = Tensor::randn([4, 3, 11, 9], (Kind::Float, tch::Device::Cpu));
        let folded = layer.forward_t(&x, false);
        let bn = &layer.bn;
        let conv = x.conv2d(
            &layer.conv.inner.ws,
            None::<Tensor>,
            [2, 2],
            [1, 1],
            [1, 1],
            1,
        );
        let view = |t: &Tensor| t.view([1, -1, 1, 1]);
        let reference = (conv - view(&bn.running_mean)) / view(&(&bn.running_var + BN_EPS).sqrt())
            * view(bn.ws.as_ref().unwrap())
            + view(bn.bs.as_ref().unwrap());
        assert_eq!(folded.size(), vec![4, 5, 6, 5]);
        let diff = (&folded - &reference).abs().max().double_value(&[]);
        let scale = reference.abs().max().double_value(&[]);
        assert!(
            diff <= 1e-5 * scale,
            "folded vs reference: {diff} (scale {scale})"
        );
        folded.sum(Kind::Float).backward();
        let grad = bn.ws.as_ref().unwrap().grad();
        assert!(grad.defined() && grad.abs().sum(Kind::Float).double_value(&[]) > 0.0);
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
