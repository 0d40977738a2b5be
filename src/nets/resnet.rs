//! The `"resnet18"` and `"resnet50"` backbones: torchvision's ResNets without pooling
//! and classifier, with torchvision's variable names (its state dicts load).

use super::layers::{conv_bn, relu_};
use tch::nn;

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

pub(super) fn resnet(
    p: &nn::Path,
    cin: i64,
    blocks: [i64; 4],
    deep: bool,
) -> (nn::FuncT<'static>, i64) {
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
        // Max-pool before ReLU: equal results (the pool's padding is -inf, and
        // max(relu(a), relu(b)) = relu(max(a, b))), the ReLU on a quarter of the elements.
        let mut ys = relu_(
            xs.apply_t(&stem, t)
                .max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false),
        );
        for l in &layers {
            ys = ys.apply_t(l, t);
        }
        ys
    });
    (f, c)
}
