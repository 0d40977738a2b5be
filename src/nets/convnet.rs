//! The `"convnet"` backbone: a small fully-convolutional CNN for 28×28 grayscale images
//! (3 conv + batch-norm layers, 32/64/128 channels, two 2×2 max-pools).

use super::layers::{conv_bn, relu_};
use tch::nn;

pub(super) fn convnet(p: &nn::Path, cin: i64) -> (nn::FuncT<'static>, i64) {
    let l1 = conv_bn(p / "conv1", p / "bn1", cin, 32, 3, 1, 1);
    let l2 = conv_bn(p / "conv2", p / "bn2", 32, 64, 3, 1, 1);
    let l3 = conv_bn(p / "conv3", p / "bn3", 64, 128, 3, 1, 1);
    // Max-pool before ReLU: max(relu(a), relu(b)) = relu(max(a, b)) exactly, and the ReLU
    // (forward and backward) then runs on a quarter of the elements.
    let f = nn::func_t(move |xs, t| {
        let ys = relu_(xs.apply_t(&l1, t).max_pool2d_default(2));
        let ys = relu_(ys.apply_t(&l2, t).max_pool2d_default(2));
        relu_(ys.apply_t(&l3, t))
    });
    (f, 128)
}
