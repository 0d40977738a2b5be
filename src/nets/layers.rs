//! The built-in backbones' layers: channels-last convolutions ([`Conv`]), convolution +
//! BatchNorm folded into one convolution in eval mode ([`ConvBn`]), in-place ReLU.

use tch::nn;
use tch::Tensor;

/// A 2-D convolution run in channels-last (NHWC) layout: the input and the weight are
/// given NHWC strides (a no-op for an input that already has them), so libtorch picks
/// its channels-last kernels (oneDNN on CPU), markedly faster for these small images in
/// the forward and the backward pass.
#[derive(Debug)]
pub(super) struct Conv {
    inner: nn::Conv2D,
    stride: i64,
    padding: i64,
}

/// `t` (4-d) with channels-last strides `(h·w·c, 1, w·c, c)` and the same logical shape
/// and values (differentiable; no copy when `t` has them already). The strides are set
/// explicitly rather than by permuting: for one channel, permute + contiguous gives the
/// ordinary strides, and libtorch would run the first layer in NCHW.
pub(super) fn channels_last(t: &Tensor) -> Tensor {
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

pub(super) fn conv(
    p: nn::Path,
    cin: i64,
    cout: i64,
    k: i64,
    pad: i64,
    stride: i64,
    bias: bool,
) -> Conv {
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
pub(super) const BN_EPS: f64 = 1e-5;

/// A convolution followed by batch normalisation. In training mode they run one after
/// the other (batch statistics, running averages updated). In eval mode the
/// normalisation is folded into the convolution (weight `w·γ/√(σ²+ε)` per output
/// channel, bias `β − μ·γ/√(σ²+ε)`), as inference engines do: one pass over the
/// activations and one allocation instead of two, the same function up to float
/// rounding, differentiable in the weights and statistics alike.
#[derive(Debug)]
pub(super) struct ConvBn {
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
pub(super) fn conv_bn(
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
pub(super) fn relu_(mut t: Tensor) -> Tensor {
    let _ = t.relu_();
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::ModuleT;
    use tch::Kind;

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
}
