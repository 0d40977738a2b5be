"""TorchScript backbones: a torch.nn.Module trained in the Rust loop, saved and loaded."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from sklearn.base import clone
from torch import nn

import gridmatch as gm

FAST = dict(dim=8, batch_size=16, grid=(2, 2), progress=False, device="cpu", augment=0.0)


class Tiny(nn.Module):
    """A small CNN with BatchNorm and Dropout: a feature map (n, 16, h/2, w/2)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.drop = nn.Dropout(0.5)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.drop(torch.relu(self.bn(self.conv1(x)))))


class Pooled(nn.Module):
    """Returns pooled features (n, 12)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 12, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).amax(dim=(2, 3))


class Untyped(nn.Module):
    """Not scriptable (a set comprehension), traceable."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):  # noqa: ANN001, ANN201 - untyped on purpose
        return sum(c for c in {self.conv(x)})


class Unconvertible(Untyped):
    """Neither scriptable (a set) nor traceable (a str in the output)."""

    def forward(self, x):  # noqa: ANN001, ANN201
        return {"features": sum(c for c in {self.conv(x)}), "name": "tiny"}


def tiny(seed: int = 0) -> Tiny:
    """A ``Tiny`` with non-trivial BatchNorm statistics and affine parameters."""
    torch.manual_seed(seed)
    m = Tiny()
    with torch.no_grad():
        m.bn.running_mean.uniform_(-0.5, 0.5)
        m.bn.running_var.uniform_(0.5, 2.0)
        m.bn.weight.uniform_(0.5, 1.5)
        m.bn.bias.uniform_(-0.2, 0.2)
    return m


@pytest.fixture(scope="module")
def data(data_root):
    """400 Fashion-MNIST test images of 4 classes as RGB 28x28, and their classes."""
    X, y = gm.datasets.load("fashion-mnist", "test", root=data_root)
    keep = np.isin(y, [0, 1, 5, 8])
    X, y = X[keep][:400], y[keep][:400]
    X = np.repeat(X.astype(np.float32)[:, None] / 255.0, 3, axis=1)
    return np.ascontiguousarray(X), y.astype(np.int64)


@pytest.fixture(scope="module")
def trained(data):
    """A scripted ``Tiny`` trained for 3 epochs, with the module it started from."""
    X, y = data
    m = tiny()
    start = {k: v.clone() for k, v in m.state_dict().items()}
    gsn = gm.GridSearchNetwork(
        backbone=m, epochs=3, steps_per_epoch=6, lr=3e-3, loss="triplet", **FAST
    ).fit(X, y)
    return gsn, m, start


IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


def module_features(module: nn.Module, X: np.ndarray, normalize: bool = True) -> np.ndarray:
    """The module's own forward, pooled, on ``X`` normalised as ``normalize="auto"`` does
    for RGB (torchvision's ``normalize`` with ImageNet's mean and std), or on ``X`` as is."""
    x = torch.from_numpy(X)
    if normalize:
        from torchvision.transforms.v2 import functional as TF

        x = TF.normalize(x, *IMAGENET)
    with torch.no_grad():
        out = module(x)
    return (out.mean(dim=(2, 3)) if out.dim() == 4 else out).numpy()


def test_features_equal_the_modules_own_forward(data):
    X, y = data
    m = tiny().eval()
    gsn = gm.GridSearchNetwork(backbone=m, epochs=0, **FAST).fit(X[:40], y[:40])
    F = gsn.features(X[:64])
    ref = module_features(m, X[:64])
    assert F.shape == (64, 16) and F.dtype == np.float32
    np.testing.assert_allclose(F, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
    # the embedding is the head on these features, L2-normalised
    E = gsn.embed(X[:64])
    np.testing.assert_allclose(np.linalg.norm(E, axis=1), 1.0, atol=1e-5)
    # pooled (n, c) outputs are taken as they are
    p = Pooled().eval()
    gp = gm.GridSearchNetwork(backbone=p, epochs=0, **FAST).fit(X[:40], y[:40])
    Fp = gp.features(X[:32])
    np.testing.assert_allclose(Fp, module_features(p, X[:32]), rtol=1e-5, atol=1e-6)
    assert gp.embed(X[:32]).shape == (32, 8)
    # normalize=None: the module gets [0, 1] as it is
    gn = gm.GridSearchNetwork(backbone=m, normalize=None, epochs=0, **FAST).fit(X[:40], y[:40])
    raw = module_features(m, X[:64], normalize=False)
    np.testing.assert_allclose(gn.features(X[:64]), raw, rtol=1e-5, atol=1e-5 * np.abs(raw).max())
    assert np.abs(raw - ref).max() > 1e-2 * np.abs(ref).max()  # the two settings differ


def test_training_changes_parameters_and_statistics(trained, data, tmp_path):
    X, _ = data
    gsn, m, start = trained
    losses = [h["loss"] for h in gsn.history_]
    assert losses[-1] < losses[0], losses
    # the caller's module is not changed by training
    for k, v in m.state_dict().items():
        assert torch.equal(v, start[k]), k
    gsn.save(tmp_path / "m")
    saved = torch.jit.load(str(tmp_path / "m" / "backbone.pt")).eval()
    now = dict(saved.state_dict())
    for k in ("conv1.weight", "conv2.weight", "bn.weight"):
        assert not torch.allclose(now[k], start[k]), k  # trained
    # train mode in fit: the BatchNorm statistics moved; batches counted
    assert not torch.allclose(now["bn.running_mean"], start["bn.running_mean"])
    assert int(now["bn.num_batches_tracked"]) == 3 * 6
    # eval mode in embed: dropout off, running statistics used
    np.testing.assert_array_equal(gsn.embed(X[:50]), gsn.embed(X[:50]))
    F = gsn.features(X[:50])
    np.testing.assert_allclose(F, module_features(saved, X[:50]), rtol=1e-5, atol=1e-6)


def assert_trained_in_eval_mode(module: nn.Module, start: dict, saved) -> None:
    """A traced backbone after training: every parameter moved (each takes part in the
    forward pass, so each gets a gradient), no BatchNorm statistic did (traced in eval
    mode, its BatchNorm normalises with the running statistics and never updates them),
    and the caller's module is the one it started as."""
    params = {k for k, _ in module.named_parameters()}
    state = dict(saved.state_dict())
    assert set(state) == set(start)
    for k, v in state.items():
        if k in params:
            assert not torch.equal(v, start[k]), f"{k} did not move"
            assert torch.isfinite(v).all(), k
        else:  # buffers: running_mean, running_var, num_batches_tracked
            assert torch.equal(v, start[k]), f"{k} moved"
    for k, v in module.state_dict().items():
        assert torch.equal(v, start[k]), f"the caller's {k} changed"


def test_a_traced_module_keeps_eval_mode_in_training(data, tmp_path):
    X, y = data
    m = tiny()
    start = {k: v.clone() for k, v in m.state_dict().items()}
    traced = torch.jit.trace(m.eval(), torch.rand(2, 3, 28, 28))
    gsn = gm.GridSearchNetwork(backbone=traced, epochs=1, steps_per_epoch=2, **FAST).fit(X, y)
    saved = torch.jit.load(str(gsn.save(tmp_path / "m") / "backbone.pt")).eval()
    # trained, but its BatchNorm ran in eval mode (as traced): statistics unchanged
    assert_trained_in_eval_mode(m, start, saved)
    assert int(saved.state_dict()["bn.num_batches_tracked"]) == 0
    # the features are the trained module's own, no longer the starting module's
    F = gsn.features(X[:20])
    np.testing.assert_allclose(F, module_features(saved, X[:20]), rtol=1e-5, atol=1e-6)
    assert not np.allclose(F, module_features(m, X[:20]), atol=1e-4)


def test_unscriptable_module_is_traced_with_a_warning(data):
    X, y = data
    with pytest.warns(UserWarning, match="traced in eval mode"):
        gsn = gm.GridSearchNetwork(backbone=Untyped(), epochs=0, **FAST).fit(X[:40], y[:40])
    assert gsn.features(X[:4]).shape == (4, 4)


def test_torchvision_resnet18_traced_trains_one_epoch(data, tmp_path):
    torchvision = pytest.importorskip("torchvision")
    X, y = data
    torch.manual_seed(0)
    r = torchvision.models.resnet18()
    r.fc = nn.Identity()
    start = {k: v.clone() for k, v in r.state_dict().items()}
    traced = torch.jit.trace(r.eval(), torch.rand(2, 3, 28, 28))
    gsn = gm.GridSearchNetwork(
        backbone=traced, epochs=1, steps_per_epoch=2, **{**FAST, "dim": 16}
    ).fit(X[:64], y[:64])
    assert len(gsn.history_) == 1 and np.isfinite(gsn.history_[0]["loss"])
    assert gsn.features(X[:4]).shape == (4, 512)
    # two steps moved every one of its 60 parameter tensors, and none of its BatchNorm
    # statistics (eval mode, as traced)
    saved = torch.jit.load(str(gsn.save(tmp_path / "r") / "backbone.pt")).eval()
    assert len(list(r.parameters())) == 60
    assert_trained_in_eval_mode(r, start, saved)
    np.testing.assert_allclose(
        gsn.features(X[:4]), module_features(saved, X[:4]), rtol=1e-4, atol=1e-5
    )
    assert gsn.model_.parameter_count == sum(p.numel() for p in r.parameters()) + 512 * 16 + 16


def test_bad_backbones_are_config_errors(data):
    X, y = data
    with pytest.raises(gm.ConfigError, match="neither script this Unconvertible"):
        gm.GridSearchNetwork(backbone=Unconvertible(), epochs=0, **FAST).fit(X[:40], y[:40])
    with pytest.raises(gm.ConfigError, match="backbone must be"):
        gm.GridSearchNetwork(backbone=42, epochs=0, **FAST).fit(X[:40], y[:40])
    with pytest.raises(gm.ConfigError, match="stitched"):
        gm.GridSearchNetwork(backbone=Pooled(), mode="stitched", epochs=0, **FAST).fit(
            X[:40], y[:40]
        )
    with pytest.raises(gm.ConfigError, match="weights="):
        gm.GridSearchNetwork(backbone=Tiny(), weights="w.safetensors", **FAST).fit(X[:40], y[:40])
    flat = nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten(0))  # a 1-d output
    with pytest.raises(gm.ConfigError, match="feature map"):
        gm.GridSearchNetwork(backbone=flat, epochs=0, **FAST).fit(X[:40], y[:40])


def test_save_load_needs_trust(trained, data, tmp_path):
    X, _ = data
    gsn, _, _ = trained
    path = gsn.save(tmp_path / "m")
    with pytest.raises(gm.DataError, match="TorchScript program.*trust_torchscript=True"):
        gm.GridSearchNetwork.load(path)
    back = gm.GridSearchNetwork.load(path, trust_torchscript=True)
    assert isinstance(back.backbone, torch.jit.ScriptModule)
    np.testing.assert_allclose(back.embed(X[:50]), gsn.embed(X[:50]), atol=1e-6)
    assert [h["epoch"] for h in back.history_] == [1, 2, 3]
    # a changed program is refused (before it is loaded)
    raw = bytearray((path / "backbone.pt").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (path / "backbone.pt").write_bytes(bytes(raw))
    with pytest.raises(gm.DataError, match="checksum"):
        gm.GridSearchNetwork.load(path, trust_torchscript=True)


def test_loads_in_a_process_without_the_class(trained, data, tmp_path):
    X, _ = data
    gsn, _, _ = trained
    path = gsn.save(tmp_path / "m")
    np.save(tmp_path / "x.npy", X[:20])
    code = textwrap.dedent(
        """
        import sys, numpy as np, gridmatch as gm
        est = gm.GridSearchNetwork.load(sys.argv[1], trust_torchscript=True)
        assert "Tiny" not in dir(sys.modules["__main__"])
        np.save(sys.argv[3], est.embed(np.load(sys.argv[2])))
        """
    )
    out = tmp_path / "e.npy"
    subprocess.run(
        [sys.executable, "-c", code, str(path), str(tmp_path / "x.npy"), str(out)],
        check=True,
        timeout=120,
    )
    np.testing.assert_allclose(np.load(out), gsn.embed(X[:20]), atol=1e-6)


def test_params_clone_and_pickle(trained, data, tmp_path):
    X, _ = data
    gsn, m, _ = trained
    assert gsn.get_params()["backbone"] is m
    c = clone(gsn)
    assert isinstance(c.backbone, Tiny) and c.backbone is not m
    again = pickle.loads(pickle.dumps(gsn))
    np.testing.assert_allclose(again.embed(X[:20]), gsn.embed(X[:20]), atol=1e-6)
    # a loaded model's backbone is a ScriptModule: it pickles as its program
    loaded = gm.GridSearchNetwork.load(gsn.save(tmp_path / "m"), trust_torchscript=True)
    back = pickle.loads(pickle.dumps(loaded))
    assert isinstance(back.backbone, torch.jit.ScriptModule)
    np.testing.assert_allclose(back.embed(X[:20]), gsn.embed(X[:20]), atol=1e-6)
    assert isinstance(clone(loaded).backbone, torch.jit.ScriptModule)


def test_checkpoints_carry_the_program(data, tmp_path):
    X, y = data
    gsn = gm.GridSearchNetwork(
        backbone=tiny(), epochs=1, steps_per_epoch=2, checkpoint_dir=tmp_path / "ck", **FAST
    ).fit(X[:64], y[:64])
    assert (tmp_path / "ck" / "backbone.pt").is_file()
    back = gm.GridSearchNetwork.load(tmp_path / "ck", trust_torchscript=True)
    np.testing.assert_allclose(back.embed(X[:16]), gsn.embed(X[:16]), atol=1e-6)
    with pytest.raises(gm.ConfigError, match="trust_torchscript"):
        gm.GridSearchNetwork.load(tmp_path / "ck", trust_torchscript="yes")


def test_the_buffers_method_returns_the_modules_own_statistics():
    # What data-parallel training broadcasts: the module's buffer tensors themselves, in
    # named_buffers order, on a copy (the caller's ScriptModule gains no method).
    from gridmatch.gsn.torchscript import export_buffers

    mine = torch.jit.script(Tiny())
    program = export_buffers(mine, warn=True)
    assert not hasattr(mine, "gridmatch_buffers")
    named = dict(program.named_buffers())
    got = program.gridmatch_buffers()
    assert len(got) == len(named) == 3  # running_mean, running_var, num_batches_tracked
    for t, (name, b) in zip(got, named.items()):
        assert t.data_ptr() == b.data_ptr(), name
    got[0].fill_(2.0)  # written through to the module: eval mode now reads it
    x = torch.rand(2, 3, 8, 8)
    ref = Tiny()
    ref.load_state_dict(program.state_dict())
    torch.testing.assert_close(program.eval()(x), ref.eval()(x))
    assert float(ref.bn.running_mean[0]) == 2.0


def test_a_module_without_buffers_gets_an_empty_buffers_method():
    from gridmatch.gsn.torchscript import export_buffers

    program = export_buffers(torch.jit.script(nn.Conv2d(3, 4, 3)), warn=True)
    assert program.gridmatch_buffers() == []
