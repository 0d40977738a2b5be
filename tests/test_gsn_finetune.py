"""Fine-tuning controls of GridSearchNetwork: the backbone's own learning rate, frozen
backbone epochs, frozen BatchNorm layers, linear warm-up (optimiser parameter groups in
the Rust loop)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_gsn_distributed import read_safetensors
from torch import nn

import gridmatch as gm

ONE_STEP = dict(
    dim=8,
    batch_size=16,
    grid=(2, 2),
    loss="triplet",
    progress=False,
    device="cpu",
    augment=0.0,
    optimizer="sgd",
    schedule="constant",
    epochs=1,
    steps_per_epoch=1,
    seed=3,
)


@pytest.fixture(scope="module")
def data():
    X, y = gm.datasets.load("mnist", "train")
    keep = np.isin(y, [0, 1, 5, 8])
    return np.ascontiguousarray(X[keep][:200]), y[keep][:200].astype(np.int64)


def _weights(gsn, tmp_path, name):
    d = gsn.save(tmp_path / name)
    return read_safetensors(d / "weights.safetensors")


def _moved(before, after, part):
    """Per variable of ``part`` ("backbone" or "head"): after - before (float64)."""
    return {
        k: after[k].astype(np.float64) - before[k].astype(np.float64)
        for k in before
        if f".{part}." in k
        and before[k].dtype == np.float32
        and not k.endswith("running_var")
        and not k.endswith("running_mean")
    }


def test_one_sgd_step_moves_backbone_and_head_by_their_own_rates(data, tmp_path):
    # SGD's first step (momentum buffer = gradient, no weight decay) moves each variable
    # by -rate * gradient; the gradient of the first step is the same whatever the rates
    # (same initial network, same batch), so the backbone's move scales with backbone_lr
    # alone and the head's with lr alone.
    X, y = data
    start = _weights(gm.GridSearchNetwork(**{**ONE_STEP, "epochs": 0}).fit(X, y), tmp_path, "s")
    runs = {}
    for name, lr, blr in [("same", 0.1, None), ("quarter", 0.1, 0.025), ("zero", 0.05, 0.0)]:
        gsn = gm.GridSearchNetwork(**ONE_STEP, lr=lr, backbone_lr=blr).fit(X, y)
        w = _weights(gsn, tmp_path, name)
        runs[name] = (_moved(start, w, "backbone"), _moved(start, w, "head"))
        assert gsn.history_[0]["lr"] == pytest.approx(lr)
    same_b, same_h = runs["same"]
    assert max(np.abs(v).max() for v in same_b.values()) > 1e-4  # the backbone moved
    quarter_b, quarter_h = runs["quarter"]
    for k in same_b:
        np.testing.assert_allclose(quarter_b[k], same_b[k] / 4, rtol=1e-3, atol=1e-7)
    for k in same_h:
        np.testing.assert_allclose(quarter_h[k], same_h[k], rtol=1e-4, atol=1e-8)
    zero_b, zero_h = runs["zero"]
    assert all(np.abs(v).max() == 0 for v in zero_b.values())
    for k in same_h:  # head at half the rate
        np.testing.assert_allclose(zero_h[k], same_h[k] / 2, rtol=1e-3, atol=1e-7)


def test_warmup_scales_the_rates_linearly_then_the_schedule_runs(data):
    X, y = data
    common = {**ONE_STEP, "epochs": 7, "lr": 0.01, "backbone_lr": 0.002}
    gsn = gm.GridSearchNetwork(**{**common, "schedule": "cosine"}, warmup_steps=4).fit(X, y)
    # one step per epoch: the history's rates are each step's
    factors = [0.25, 0.5, 0.75, 1.0] + [0.5 * (1 + math.cos(math.pi * i / 3)) for i in range(3)]
    assert [h["lr"] for h in gsn.history_] == pytest.approx([0.01 * f for f in factors])
    assert [h["backbone_lr"] for h in gsn.history_] == pytest.approx([0.002 * f for f in factors])
    const = gm.GridSearchNetwork(**common, warmup_steps=2).fit(X, y)
    assert [h["lr"] for h in const.history_] == pytest.approx([0.005] + [0.01] * 6)
    plain = gm.GridSearchNetwork(**{**ONE_STEP, "epochs": 2}).fit(X, y)
    assert "backbone_lr" not in plain.history_[0]  # no fine-tuning setting: as before


def test_frozen_backbone_epochs_train_only_the_head(data, tmp_path):
    X, y = data
    start = _weights(gm.GridSearchNetwork(**{**ONE_STEP, "epochs": 0}).fit(X, y), tmp_path, "s")
    frozen = gm.GridSearchNetwork(**ONE_STEP, lr=0.05, freeze_backbone_epochs=1).fit(X, y)
    w = _weights(frozen, tmp_path, "f")
    assert all(np.abs(v).max() == 0 for v in _moved(start, w, "backbone").values())
    assert max(np.abs(v).max() for v in _moved(start, w, "head").values()) > 1e-4
    assert frozen.history_[0]["backbone_lr"] == 0.0
    # BatchNorm statistics still follow the batches while the backbone is frozen
    stats = [k for k in start if k.endswith("running_mean")]
    assert stats and any(np.abs(w[k] - start[k]).max() > 0 for k in stats)
    later = gm.GridSearchNetwork(**{**ONE_STEP, "epochs": 2}, lr=0.05, freeze_backbone_epochs=1)
    w2 = _weights(later.fit(X, y), tmp_path, "l")
    assert max(np.abs(v).max() for v in _moved(start, w2, "backbone").values()) > 1e-4
    assert [h["backbone_lr"] for h in later.history_] == [0.0, 0.05]


def _bn_names(w):
    layers = [k[: -len(".running_mean")] for k in w if k.endswith(".running_mean")]
    return [
        f"{layer}.{p}"
        for layer in layers
        for p in ("running_mean", "running_var", "weight", "bias")
    ]


@pytest.mark.parametrize("freeze", [True, False])
def test_frozen_batch_norm_keeps_statistics_and_affine_parameters(data, tmp_path, freeze):
    X, y = data
    start = _weights(gm.GridSearchNetwork(**{**ONE_STEP, "epochs": 0}).fit(X, y), tmp_path, "s")
    gsn = gm.GridSearchNetwork(**{**ONE_STEP, "steps_per_epoch": 3}, lr=0.05, freeze_bn=freeze)
    w = _weights(gsn.fit(X, y), tmp_path, "f")
    bn = _bn_names(start)
    assert len(bn) == 12  # the convnet's three BatchNorm layers
    changed = [k for k in bn if not np.array_equal(w[k], start[k])]
    assert changed == ([] if freeze else bn)
    convs = [k for k in start if ".conv" in k and k.endswith("weight")]
    assert convs and all(not np.array_equal(w[k], start[k]) for k in convs)


class TinyBN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.block = nn.Sequential(nn.BatchNorm2d(8), nn.ReLU())
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.block(self.conv1(x)))


def test_frozen_batch_norm_in_a_module_backbone(data, tmp_path):
    X, y = data
    X3 = np.repeat(X[:, None].astype(np.float32) / 255.0, 3, axis=1)
    torch.manual_seed(0)
    m = TinyBN()
    with torch.no_grad():  # statistics that are not the defaults
        m.block[0].running_mean.uniform_(-0.5, 0.5)
        m.block[0].running_var.uniform_(0.5, 2.0)
        m.block[0].weight.uniform_(0.5, 1.5)
    start = {k: v.clone() for k, v in m.state_dict().items()}
    kw = {**ONE_STEP, "steps_per_epoch": 3, "lr": 0.05}
    gsn = gm.GridSearchNetwork(backbone=m, freeze_bn=True, **kw).fit(X3, y)
    saved = gm.GridSearchNetwork.load(gsn.save(tmp_path / "m"), trust_torchscript=True)
    now = dict(saved.backbone.state_dict())
    for k in ("running_mean", "running_var", "weight", "bias"):
        torch.testing.assert_close(now[f"block.0.{k}"], start[f"block.0.{k}"], rtol=0, atol=0)
    assert not torch.equal(now["conv1.weight"], start["conv1.weight"])
    # the control: without freeze_bn all four change
    free = gm.GridSearchNetwork(backbone=m, **kw).fit(X3, y)
    now = dict(
        gm.GridSearchNetwork.load(
            free.save(tmp_path / "n"), trust_torchscript=True
        ).backbone.state_dict()
    )
    for k in ("running_mean", "running_var", "weight", "bias"):
        assert not torch.equal(now[f"block.0.{k}"], start[f"block.0.{k}"]), k


@pytest.mark.parametrize(
    "param, value, match",
    [
        ("backbone_lr", -1.0, "backbone_lr"),
        ("backbone_lr", float("nan"), "backbone_lr"),
        ("freeze_backbone_epochs", -1, "freeze_backbone_epochs"),
        ("freeze_bn", "yes", "freeze_bn"),
        ("warmup_steps", 1.5, "warmup_steps"),
    ],
)
def test_bad_fine_tuning_settings_name_the_parameter(data, param, value, match):
    X, y = data
    with pytest.raises(gm.exceptions.ConfigError, match=match):
        gm.GridSearchNetwork(**ONE_STEP, **{param: value}).fit(X, y)


def test_fine_tuning_settings_are_saved_and_loaded(data, tmp_path):
    X, y = data
    kw = dict(backbone_lr=0.003, freeze_backbone_epochs=2, freeze_bn=True, warmup_steps=5)
    gsn = gm.GridSearchNetwork(**{**ONE_STEP, "epochs": 0}, **kw).fit(X, y)
    back = gm.GridSearchNetwork.load(gsn.save(tmp_path / "m"))
    assert {k: back.get_params()[k] for k in kw} == kw


def test_a_pretrained_backbone_trains_at_a_tenth_of_lr_by_default(data, tmp_path):
    X, y = data
    scratch = gm.GridSearchNetwork(**ONE_STEP, lr=0.02).fit(X, y)
    assert "backbone_lr" not in scratch.history_[0]  # from scratch: one rate
    start = tmp_path / "start"
    scratch.save(start)
    w = start / "weights.safetensors"
    tuned = gm.GridSearchNetwork(**ONE_STEP, lr=0.02, weights=w).fit(X, y)
    assert tuned.history_[0]["backbone_lr"] == pytest.approx(0.002)
    given = gm.GridSearchNetwork(**ONE_STEP, lr=0.02, weights=w, backbone_lr=0.02).fit(X, y)
    assert given.history_[0]["backbone_lr"] == pytest.approx(0.02)
    X3 = np.repeat(X[:, None].astype(np.float32) / 255.0, 3, axis=1)
    module = gm.GridSearchNetwork(**ONE_STEP, lr=0.02, backbone=TinyBN()).fit(X3, y)
    assert module.history_[0]["backbone_lr"] == pytest.approx(0.002)
    assert gm.GridSearchNetwork().backbone_lr is None  # the parameter stays as given


def test_a_checkpoint_taken_while_frozen_saves_a_trainable_module(data, tmp_path):
    # the checkpoint of epoch 1 is written while the backbone (and its BatchNorm) is
    # frozen; a TorchScript file keeps requires_grad, so it must be saved unfrozen, or a
    # run resumed from it would never train those parameters
    X, y = data
    X3 = np.repeat(X[:, None].astype(np.float32) / 255.0, 3, axis=1)
    ckpt = tmp_path / "ckpt"
    kw = {**ONE_STEP, "epochs": 2, "lr": 0.05}
    gm.GridSearchNetwork(
        backbone=TinyBN(), freeze_bn=True, freeze_backbone_epochs=2, checkpoint_dir=ckpt, **kw
    ).fit(X3, y)
    back = gm.GridSearchNetwork.load(ckpt, trust_torchscript=True)
    flags = {k: p.requires_grad for k, p in back.backbone.named_parameters()}
    assert flags and all(flags.values()), flags
