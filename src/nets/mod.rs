//! Networks of the Grid Search Network: backbones producing feature maps and an
//! embedding head.
//!
//! - `"convnet"`: a small fully-convolutional CNN for 28×28 grayscale images
//!   (3 conv + batch-norm layers, 32/64/128 channels, two 2×2 max-pools: a 7×7×128 map
//!   per 28×28).
//! - `"resnet18"`, `"resnet50"`: torchvision's ResNets without pooling and classifier
//!   (variable names follow torchvision, so its weights exported to safetensors load
//!   with [`Net::load_backbone`]).
//!
//! - a TorchScript module (a scripted or traced `torch.nn.Module`, [`Net::from_script`]):
//!   its parameters become trainable variables of the model's store, its train/eval
//!   mode follows each call, and it gets the images as they are (no normalisation).
//!
//! The head is a linear map of the pooled features to `dim`, then L2 normalisation.
//! [`Net::embed`] pools the whole map (one vector per image); [`Net::volume`] pools it
//! into `rows × cols` regions — the stitched-grid mode's `rows×cols×dim` volume.

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
    mean: f64,
    std: f64,
    prefix: String,
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

fn convnet(p: &nn::Path, cin: i64) -> (nn::FuncT<'static>, i64) {
    let c1 = conv(p / "conv1", cin, 32, 3, 1, 1, false);
    let b1 = nn::batch_norm2d(p / "bn1", 32, Default::default());
    let c2 = conv(p / "conv2", 32, 64, 3, 1, 1, false);
    let b2 = nn::batch_norm2d(p / "bn2", 64, Default::default());
    let c3 = conv(p / "conv3", 64, 128, 3, 1, 1, false);
    let b3 = nn::batch_norm2d(p / "bn3", 128, Default::default());
    let f = nn::func_t(move |xs, t| {
        xs.apply(&c1)
            .apply_t(&b1, t)
            .relu()
            .max_pool2d_default(2)
            .apply(&c2)
            .apply_t(&b2, t)
            .relu()
            .max_pool2d_default(2)
            .apply(&c3)
            .apply_t(&b3, t)
            .relu()
    });
    (f, 128)
}

fn downsample(p: nn::Path, cin: i64, cout: i64, stride: i64) -> nn::SequentialT {
    if stride != 1 || cin != cout {
        nn::seq_t()
            .add(conv(&p / "0", cin, cout, 1, 0, stride, false))
            .add(nn::batch_norm2d(&p / "1", cout, Default::default()))
    } else {
        nn::seq_t()
    }
}

fn basic_block(p: nn::Path, cin: i64, cout: i64, stride: i64) -> nn::FuncT<'static> {
    let conv1 = conv(&p / "conv1", cin, cout, 3, 1, stride, false);
    let bn1 = nn::batch_norm2d(&p / "bn1", cout, Default::default());
    let conv2 = conv(&p / "conv2", cout, cout, 3, 1, 1, false);
    let bn2 = nn::batch_norm2d(&p / "bn2", cout, Default::default());
    let ds = downsample(&p / "downsample", cin, cout, stride);
    nn::func_t(move |xs, t| {
        let ys = xs
            .apply(&conv1)
            .apply_t(&bn1, t)
            .relu()
            .apply(&conv2)
            .apply_t(&bn2, t);
        (xs.apply_t(&ds, t) + ys).relu()
    })
}

fn bottleneck(p: nn::Path, cin: i64, cout: i64, stride: i64) -> nn::FuncT<'static> {
    let e = 4 * cout;
    let conv1 = conv(&p / "conv1", cin, cout, 1, 0, 1, false);
    let bn1 = nn::batch_norm2d(&p / "bn1", cout, Default::default());
    let conv2 = conv(&p / "conv2", cout, cout, 3, 1, stride, false);
    let bn2 = nn::batch_norm2d(&p / "bn2", cout, Default::default());
    let conv3 = conv(&p / "conv3", cout, e, 1, 0, 1, false);
    let bn3 = nn::batch_norm2d(&p / "bn3", e, Default::default());
    let ds = downsample(&p / "downsample", cin, e, stride);
    nn::func_t(move |xs, t| {
        let ys = xs
            .apply(&conv1)
            .apply_t(&bn1, t)
            .relu()
            .apply(&conv2)
            .apply_t(&bn2, t)
            .relu()
            .apply(&conv3)
            .apply_t(&bn3, t);
        (xs.apply_t(&ds, t) + ys).relu()
    })
}

fn resnet(p: &nn::Path, cin: i64, blocks: [i64; 4], deep: bool) -> (nn::FuncT<'static>, i64) {
    let conv1 = conv(p / "conv1", cin, 64, 7, 3, 2, false);
    let bn1 = nn::batch_norm2d(p / "bn1", 64, Default::default());
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
        let mut ys = xs.apply(&conv1).apply_t(&bn1, t).relu().max_pool2d(
            [3, 3],
            [2, 2],
            [1, 1],
            [1, 1],
            false,
        );
        for l in &layers {
            ys = ys.apply_t(l, t);
        }
        ys
    });
    (f, c)
}

impl Net {
    /// Build the network `backbone` with `cin` input channels and embedding size `dim`
    /// under `p` (its variables are named `<prefix>.backbone.*` and `<prefix>.head.*`).
    /// Returns `None` for an unknown backbone name.
    pub fn new(p: &nn::Path, backbone: &str, cin: i64, dim: i64) -> Option<Net> {
        let bp = p / "backbone";
        let (features, c, mean, std) = match backbone {
            "convnet" => {
                let (f, c) = convnet(&bp, cin);
                (f, c, 0.5, 0.25)
            }
            "resnet18" => {
                let (f, c) = resnet(&bp, cin, [2, 2, 2, 2], false);
                (f, c, 0.45, 0.225)
            }
            "resnet50" => {
                let (f, c) = resnet(&bp, cin, [3, 4, 6, 3], true);
                (f, c, 0.45, 0.225)
            }
            _ => return None,
        };
        let head = nn::linear(p / "head", c, dim, Default::default());
        Some(Net {
            features: Backbone::Builtin(features),
            spatial: true,
            head,
            mean,
            std,
            prefix: p.components().collect::<Vec<_>>().join("."),
        })
    }

    /// Build a network whose backbone is the TorchScript module in the file `script`
    /// (variables `<prefix>.backbone.<parameter name with '_' for '.'>` and
    /// `<prefix>.head.*`). The module takes images `(n, cin, h, w)` as they are (its own
    /// preprocessing, if any, is part of it) and returns a feature map `(n, c, h', w')`
    /// or pooled features `(n, c)`; `c` is read from one eval-mode forward pass on zero
    /// images `(2, cin, probe.0, probe.1)`.
    ///
    /// The module is loaded on `device` (its parameters and buffers), whatever the
    /// store's device. Its parameters are added to the store (sharing their memory, as
    /// `tch::TrainableCModule` does); its buffers (BatchNorm statistics) are not
    /// variables of the store: they travel with the module ([`Net::save_script`]).
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
            mean: 0.0,
            std: 1.0,
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

    /// Size `c` of the pooled features ([`Net::features`]).
    pub fn feature_size(&self) -> i64 {
        self.head.ws.size()[1]
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
        match &self.features {
            Backbone::Builtin(f) => {
                let xs = xs.f_sub_scalar(self.mean)?.f_div_scalar(self.std)?;
                Ok(f.forward_t(&xs, train))
            }
            Backbone::Script(m) => {
                let mut m = lock(m)?;
                if train {
                    m.f_set_train()?;
                } else {
                    m.f_set_eval()?;
                }
                m.forward_ts(&[xs])
            }
        }
    }

    /// Pooled backbone features `(n, c)` of images `(n, c, h, w)` in `[0, 1]`: the
    /// feature map averaged over its positions (a backbone returning `(n, c)` as is).
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
        let pooled = self.features(xs, train)?;
        normalize(&pooled.apply(&self.head))
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

    /// Load backbone weights from a safetensors file: a variable `<prefix>.backbone.X`
    /// takes the file's `X` (torchvision naming), `backbone.X` or `query.backbone.X` (a
    /// saved gridmatch model). Returns how many
    /// variables were loaded.
    pub fn load_backbone(
        vs: &nn::VarStore,
        prefix: &str,
        path: &std::path::Path,
    ) -> Result<usize, tch::TchError> {
        let file: HashMap<String, Tensor> = Tensor::read_safetensors(path)?.into_iter().collect();
        let mut loaded = 0;
        let vars = vs.variables();
        let head = format!("{prefix}.backbone.");
        tch::no_grad(|| -> Result<(), tch::TchError> {
            for (name, var) in vars.iter() {
                let Some(rest) = name.strip_prefix(&head) else {
                    continue;
                };
                let src = file
                    .get(rest)
                    .or_else(|| file.get(&format!("backbone.{rest}")))
                    .or_else(|| file.get(&format!("query.backbone.{rest}")));
                if let Some(src) = src {
                    if src.size() != var.size() {
                        return Err(tch::TchError::Shape(format!(
                            "{rest}: file has shape {:?}, the network {:?}",
                            src.size(),
                            var.size()
                        )));
                    }
                    let mut v = var.shallow_clone();
                    v.f_copy_(&src.f_to_kind(var.kind())?)?;
                    loaded += 1;
                }
            }
            Ok(())
        })?;
        Ok(loaded)
    }
}

fn lock(m: &Mutex<tch::CModule>) -> Result<std::sync::MutexGuard<'_, tch::CModule>, tch::TchError> {
    m.lock().map_err(|_| {
        tch::TchError::Torch("the TorchScript backbone was poisoned by an earlier failure".into())
    })
}

/// Rows of `x` divided by their L2 norm (last dimension).
pub fn normalize(x: &Tensor) -> Result<Tensor, tch::TchError> {
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
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let net = Net::new(&(vs.root() / "query"), "resnet18", 3, 8).unwrap();
        let x = Tensor::rand([2, 3, 64, 64], (Kind::Float, tch::Device::Cpu));
        assert_eq!(net.embed(&x, true).unwrap().size(), vec![2, 8]);
        assert!(vs
            .variables()
            .contains_key("query.backbone.layer4.1.bn2.running_mean"));
    }
}
