"""GridSearchNetwork.export: the query network as ONNX (run by onnxruntime) and
TorchScript (run by torch.jit.load), equal to embed, without gridmatch."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from test_gsn_torchscript import Tiny  # a CNN with BatchNorm and Dropout: a feature map
from torch import nn

import gridmatch as gm

ort = pytest.importorskip("onnxruntime")

FAST = dict(dim=16, batch_size=8, grid=(2, 2), epochs=1, steps_per_epoch=2, progress=False)
TOL = 1e-4


class Pooled(nn.Module):
    """BatchNorm, then pooled features (n, 12)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 12, 3)
        self.bn = nn.BatchNorm2d(12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x)).amax(dim=(2, 3))


def images(n: int, c: int, size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.random((n, c, size, size), dtype=np.float32)


def onnx_embed(path, X: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (name,) = [i.name for i in sess.get_inputs()]
    return sess.run(None, {name: X})[0]


def check_exports(gsn, X: np.ndarray, tmp_path) -> None:
    """Both formats equal embed within TOL, at batch sizes other than the export's (2)."""
    sess = ort.InferenceSession(
        str(gsn.export(tmp_path / "q.onnx")), providers=["CPUExecutionProvider"]
    )  # onnx: the default format
    assert [(i.name, i.shape) for i in sess.get_inputs()] == [("images", ["n", *X.shape[1:]])]
    program = torch.jit.load(str(gsn.export(tmp_path / "q.pt", format="torchscript")))
    for n in (1, 5):
        E = gsn.embed(X[:n])
        with torch.no_grad():
            ts = program(torch.from_numpy(X[:n])).numpy()
        for got in (sess.run(["embeddings"], {"images": X[:n]})[0], ts):
            assert got.shape == E.shape and got.dtype == np.float32
            assert np.abs(got - E).max() <= TOL


@pytest.fixture(scope="module")
def convnet():
    X = images(32, 1, 28, 0)
    gsn = gm.GridSearchNetwork(**FAST).fit(X, np.arange(32) % 8)
    return gsn, images(5, 1, 28, 1)


def test_convnet_export_equals_embed(convnet, tmp_path):
    gsn, X = convnet
    check_exports(gsn, X, tmp_path)
    # the embeddings are not trivial: distinct images, distinct rows, unit norms
    E = onnx_embed(tmp_path / "q.onnx", X)
    np.testing.assert_allclose(np.linalg.norm(E, axis=1), 1.0, atol=1e-5)
    assert np.abs(E[0] - E[1]).max() > 1e-3


def test_resnet18_export_equals_embed(tmp_path):
    X = images(16, 3, 32, 2)
    gsn = gm.GridSearchNetwork(backbone="resnet18", **{**FAST, "steps_per_epoch": 1})
    gsn.fit(X, np.arange(16) % 4)
    check_exports(gsn, images(5, 3, 32, 3), tmp_path)


@pytest.mark.parametrize("module", [Tiny, Pooled])
def test_module_backbone_export_equals_embed(module, tmp_path):
    torch.manual_seed(0)
    X = images(16, 3, 16, 4)
    gsn = gm.GridSearchNetwork(backbone=module(), normalize="imagenet", **FAST)
    gsn.fit(X, np.arange(16) % 4)
    check_exports(gsn, images(5, 3, 16, 5), tmp_path)


def test_loaded_model_and_normalize_none(convnet, tmp_path):
    """A model saved and loaded exports the same network; normalize=None exports no
    normalisation (the graph then differs and still equals embed)."""
    gsn, X = convnet
    gsn.save(tmp_path / "m")
    loaded = gm.GridSearchNetwork.load(tmp_path / "m")
    check_exports(loaded, X, tmp_path)
    raw = gm.GridSearchNetwork(normalize=None, **FAST).fit(images(32, 1, 28, 0), np.arange(32) % 8)
    check_exports(raw, X, tmp_path)


def test_torchscript_runs_without_gridmatch(convnet, tmp_path):
    gsn, X = convnet
    path = gsn.export(tmp_path / "q.pt", format="torchscript")
    np.save(tmp_path / "x.npy", X)
    code = textwrap.dedent(
        """
        import sys
        sys.modules["gridmatch"] = None  # any import of gridmatch fails
        import numpy as np, torch
        program = torch.jit.load(sys.argv[1])
        with torch.no_grad():
            e = program(torch.from_numpy(np.load(sys.argv[2])))
        np.save(sys.argv[3], e.numpy())
        """
    )
    out = tmp_path / "e.npy"
    subprocess.run(
        [sys.executable, "-c", code, str(path), str(tmp_path / "x.npy"), str(out)],
        check=True,
        timeout=120,
    )
    assert np.abs(np.load(out) - gsn.embed(X)).max() <= TOL


def test_errors_and_atomic_writes(convnet, tmp_path, monkeypatch):
    with pytest.raises(gm.NotFittedError):
        gm.GridSearchNetwork().export(tmp_path / "q.onnx")
    gsn, _ = convnet
    with pytest.raises(gm.ConfigError, match="format.*onnx.*torchscript"):
        gsn.export(tmp_path / "q.onnx", format="tflite")
    with pytest.raises(gm.ConfigError, match="directory"):
        gsn.export(tmp_path)
    # a failing export leaves the file it would replace as it was, and no temporary file
    target = tmp_path / "q.pt"
    target.write_bytes(b"user's file")
    ok = gsn.export(tmp_path / "sub" / "ok.pt", format="torchscript")  # folders are created
    # with the permissions of a file created as usual (not a private temporary file's)
    assert ok.stat().st_mode & 0o777 == target.stat().st_mode & 0o777
    original = torch.jit.save

    def failing_save(*args, **kwargs):
        original(*args, **kwargs)  # the temporary file is written, then the export fails
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch.jit, "save", failing_save)
    with pytest.raises(RuntimeError, match="disk full"):
        gsn.export(target, format="torchscript")
    assert target.read_bytes() == b"user's file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.pt", "sub"]


def test_missing_onnx_names_the_extra(convnet, tmp_path, monkeypatch):
    gsn, _ = convnet
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"gridmatch\[export\]"):
        gsn.export(tmp_path / "q.onnx")
    assert not (tmp_path / "q.onnx").exists()
