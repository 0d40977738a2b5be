"""Pretrained backbones: ``weights=`` in every form, input normalisation, ``features()``.

The reference is torchvision itself: its ResNets (eval mode, random weights and random
BatchNorm statistics) with ``fc = nn.Identity()`` on inputs normalised by
``torchvision.transforms.v2.functional``. Agreement is measured as
``max|a - b| / max|b|`` over all features (relative to the largest reference value).
"""

from __future__ import annotations

import json
import struct
import sys
import tempfile

import numpy as np
import pytest
import torch
import torchvision
from sklearn.base import clone
from torch import nn
from torchvision.transforms.v2 import functional as TF

import gridmatch as gm

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
RTOL = 1e-4


def _torchvision_resnet(name: str, seed: int) -> nn.Module:
    """A torchvision ResNet with random weights and non-trivial BatchNorm statistics."""
    torch.manual_seed(seed)
    m = getattr(torchvision.models, name)()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.normal_(0.0, 0.2)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.normal_(0.0, 0.2)
                mod.num_batches_tracked.fill_(7)
    return m.eval()


def _reference(m: nn.Module, x: torch.Tensor) -> np.ndarray:
    """torchvision's pooled features (``fc`` replaced by the identity) of ``x``."""
    fc, m.fc = m.fc, nn.Identity()
    try:
        with torch.no_grad():
            return m(x).numpy()
    finally:
        m.fc = fc


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a - b).max() / np.abs(b).max())


def _write_safetensors(path, state: dict[str, torch.Tensor]) -> None:
    """A safetensors file written from its specification (8-byte header length, JSON
    header with dtype, shape and byte offsets, then the raw little-endian data)."""
    dtypes = {torch.float32: "F32", torch.int64: "I64"}
    header, blobs, offset = {}, [], 0
    for name, t in state.items():
        data = t.detach().contiguous().numpy().tobytes()
        header[name] = {
            "dtype": dtypes[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def _gsn(backbone: str, X: np.ndarray, **kw) -> gm.GridSearchNetwork:
    """An untrained (``epochs=0``) network built for images like ``X``."""
    kw = {"epochs": 0, "dim": 8, "grid": (1, 2), "batch_size": 4, **kw}
    est = gm.GridSearchNetwork(backbone=backbone, progress=False, device="cpu", **kw)
    return est.fit(X[np.arange(4) % len(X)], np.array([0, 0, 1, 1]))


def _images(n: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 3, size, size), dtype=np.float32)


@pytest.fixture(scope="module", params=["resnet18", "resnet50"])
def resnet(request):
    """(name, torchvision model, images in [0, 1], torchvision's features of them)."""
    name = request.param
    m = _torchvision_resnet(name, seed=1)
    X = _images(2, 64)
    ref = _reference(m, TF.normalize(torch.from_numpy(X), IMAGENET_MEAN, IMAGENET_STD))
    return name, m, X, ref


@pytest.mark.parametrize("form", ["safetensors", "pth", "state_dict", "ddp_state_dict", "module"])
def test_features_equal_torchvision(resnet, form, tmp_path):
    name, m, X, ref = resnet
    state = m.state_dict()  # with fc.* and num_batches_tracked: both skipped
    if form == "safetensors":
        weights = tmp_path / "w.safetensors"
        _write_safetensors(weights, state)
    elif form == "pth":
        weights = tmp_path / "w.pth"
        torch.save(state, weights)
    elif form == "state_dict":
        weights = state
    elif form == "ddp_state_dict":
        weights = {f"module.{k}": v for k, v in state.items()}
    else:
        weights = m
    est = _gsn(name, X, weights=weights)
    F = est.features(X)
    width = 512 if name == "resnet18" else 2048
    assert F.dtype == np.float32 and F.shape == ref.shape == (2, width)
    assert _rel(F, ref) < RTOL
    # a network without the weights is another function (the check can fail)
    assert _rel(_gsn(name, X).features(X), ref) > 0.1


def test_uint8_nhwc_scaled_and_normalised_as_torchvision():
    m = _torchvision_resnet("resnet18", seed=2)
    U = np.random.default_rng(3).integers(0, 256, size=(3, 48, 40, 3), dtype=np.uint8)
    x = TF.to_dtype(torch.from_numpy(U).permute(0, 3, 1, 2), torch.float32, scale=True)
    ref = _reference(m, TF.normalize(x, IMAGENET_MEAN, IMAGENET_STD))
    est = _gsn("resnet18", U, weights=m)
    assert _rel(est.features(U), ref) < RTOL
    t = est.features(torch.from_numpy(U))  # torch in, torch out
    assert isinstance(t, torch.Tensor) and _rel(t.numpy(), ref) < RTOL


@pytest.mark.parametrize(
    ("normalize", "mean", "std"),
    [
        ("auto", IMAGENET_MEAN, IMAGENET_STD),
        ("imagenet", IMAGENET_MEAN, IMAGENET_STD),
        ("legacy", [0.45] * 3, [0.225] * 3),
        (None, [0.0] * 3, [1.0] * 3),
    ],
)
def test_normalize_settings_on_rgb(normalize, mean, std):
    m = _torchvision_resnet("resnet18", seed=4)
    X = _images(2, 32, seed=5)
    ref = _reference(m, TF.normalize(torch.from_numpy(X), mean, std))
    F = _gsn("resnet18", X, weights=m.state_dict(), normalize=normalize).features(X)
    assert _rel(F, ref) < RTOL


def test_normalize_on_grayscale_convnet():
    X = np.random.default_rng(6).random((4, 1, 28, 28), dtype=np.float32)
    feats = {n: _gsn("convnet", X, normalize=n).features(X) for n in ("auto", "legacy", None)}
    assert feats["auto"].shape == (4, 128)
    np.testing.assert_array_equal(feats["auto"], feats["legacy"])  # the convnet keeps 0.5/0.25
    off = _gsn("convnet", X, normalize=None)
    np.testing.assert_allclose(
        feats["legacy"], off.features((X - 0.5) / 0.25), rtol=1e-5, atol=1e-6
    )
    # "imagenet" on one channel: the three channels' mean and std averaged
    net = _gsn("convnet", X, normalize="imagenet").features(X)
    np.testing.assert_allclose(net, off.features((X - 0.449) / 0.226), rtol=1e-5, atol=1e-6)
    assert not np.allclose(net, feats["legacy"], atol=1e-3)


def test_features_before_the_head_and_embed_unchanged():
    X = np.random.default_rng(7).random((4, 1, 28, 28), dtype=np.float32)
    est = _gsn("convnet", X)
    F, E = est.features(X), est.embed(X)
    # the head is a linear map of the features, then L2 normalisation
    state = {}
    with tempfile.TemporaryDirectory() as d:
        est.save(d)
        raw = open(f"{d}/weights.safetensors", "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    for k in ("query.head.weight", "query.head.bias"):
        a, b = header[k]["data_offsets"]
        state[k] = np.frombuffer(raw[8 + n + a : 8 + n + b], np.float32).reshape(header[k]["shape"])
    H = F @ state["query.head.weight"].T + state["query.head.bias"]
    np.testing.assert_allclose(E, H / np.linalg.norm(H, axis=1, keepdims=True), atol=1e-5)


def test_old_saved_model_loads_with_legacy_normalisation(tmp_path):
    X = _images(4, 32, seed=8)
    legacy = _gsn("resnet18", X, normalize="legacy", seed=3)
    legacy.save(tmp_path / "old")
    # a config.json as gridmatch wrote it before the setting: no "normalize" entry (the
    # checksum covers the weights file only)
    cfg_path = tmp_path / "old" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    assert cfg["params"].pop("normalize") == "legacy"
    cfg_path.write_text(json.dumps(cfg))
    old = gm.GridSearchNetwork.load(tmp_path / "old")
    assert old.normalize == "legacy"
    np.testing.assert_array_equal(old.embed(X), legacy.embed(X))
    # new saves record the setting and load with it
    new = _gsn("resnet18", X, seed=3)
    new.save(tmp_path / "new")
    cfg = json.loads((tmp_path / "new" / "config.json").read_text())
    assert cfg["params"]["normalize"] == "auto"
    back = gm.GridSearchNetwork.load(tmp_path / "new")
    np.testing.assert_array_equal(back.embed(X), new.embed(X))
    assert not np.allclose(back.embed(X), old.embed(X), atol=1e-4)


def test_module_and_dict_weights_keep_sklearn_conventions(tmp_path):
    m = _torchvision_resnet("resnet18", seed=9)
    X = _images(4, 32, seed=10)
    est = gm.GridSearchNetwork(backbone="resnet18", weights=m, epochs=0, dim=8, grid=(1, 2))
    assert est.get_params()["weights"] is m
    c = clone(est.set_params(progress=False, batch_size=4, device="cpu"))
    assert isinstance(c.weights, nn.Module) and c.weights is not m
    ids = np.array([0, 0, 1, 1])
    np.testing.assert_array_equal(c.fit(X, ids).features(X), est.fit(X, ids).features(X))
    est.save(tmp_path / "m")  # the config records the type, not the module
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["params"]["weights"] == "<ResNet>"
    d = clone(est.set_params(weights=m.state_dict()))
    assert isinstance(d.weights, dict)
    np.testing.assert_array_equal(d.fit(X, ids).features(X), est.features(X))


class _NotAStateDict:
    pass


def test_weights_errors(tmp_path):
    X = _images(4, 32, seed=11)
    state = _torchvision_resnet("resnet18", seed=12).state_dict()
    with pytest.raises(
        gm.DataError, match=r'"layer5\.0\.conv1\.weight" matches no variable of the backbone'
    ):
        _gsn("resnet18", X, weights={**state, "layer5.0.conv1.weight": torch.zeros(3)})
    bad = {**state, "conv1.weight": torch.zeros(64, 3, 3, 3)}
    with pytest.raises(
        gm.DataError,
        match=r'"conv1\.weight" has shape \[64, 3, 3, 3\], the variable "conv1\.weight" '
        r"\[64, 3, 7, 7\]",
    ):
        _gsn("resnet18", X, weights=bad)
    short = {k: v for k, v in state.items() if k != "layer2.1.bn1.bias"}
    with pytest.raises(
        gm.DataError, match=r"1 backbone variable\(s\) have no tensor: layer2\.1\.bn1\.bias"
    ):
        _gsn("resnet18", X, weights=short)
    with pytest.raises(gm.DataError, match=r"both give the variable \"bn1\.bias\""):
        _gsn("resnet18", X, weights={**state, "module.bn1.bias": state["bn1.bias"]})
    with pytest.raises(gm.DataError, match=r"'conv1\.weight' is a str"):
        _gsn("resnet18", X, weights={**state, "conv1.weight": "x"})
    for missing in (tmp_path / "none.pth", tmp_path / "none.safetensors"):
        with pytest.raises(gm.DataError, match=r"weights file .* does not exist"):
            _gsn("resnet18", X, weights=missing)
    with pytest.raises(gm.ConfigError, match=r"must end in \.safetensors, \.pth or \.pt"):
        _gsn("resnet18", X, weights=tmp_path / "w.bin")
    with pytest.raises(gm.ConfigError, match=r"weights must be a path .*, got int"):
        _gsn("resnet18", X, weights=42)
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(gm.DataError, match=r"holds a list, not a state dict"):
        _gsn("resnet18", X, weights=tmp_path / "list.pt")
    torch.save(_NotAStateDict(), tmp_path / "code.pth")  # weights_only=True refuses it
    with pytest.raises(gm.DataError, match=r"cannot read .* as a state dict \(UnpicklingError"):
        _gsn("resnet18", X, weights=tmp_path / "code.pth")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(gm.DataError, match=r"not a valid safetensors file"):
        _gsn("resnet18", X, weights=tmp_path / "junk.safetensors")
    with pytest.raises(gm.ConfigError, match=r"weights='imagenet' is available for"):
        _gsn("convnet", X[:, :1], weights="imagenet")
    with pytest.raises(gm.ConfigError, match=r"normalize must be None, 'auto'"):
        _gsn("resnet18", X, normalize="ImageNet")


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """An empty torch hub cache and every HTTP(S) request sent to a closed local port."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path / "torch-home" / "hub" / "checkpoints"


def test_imagenet_offline_error(no_network):
    X = _images(4, 32, seed=13)
    with pytest.raises(
        gm.DataError,
        match=r"cannot get torchvision's ResNet18_Weights\.IMAGENET1K_V1 weights .*"
        r"put resnet18-f37072fd\.pth .* into .*torch-home",
    ):
        _gsn("resnet18", X, weights="imagenet")
    assert not no_network.exists() or not any(no_network.iterdir())


def test_imagenet_from_torchvision_cache(no_network):
    # torchvision reads a weights file already in its cache without downloading (and
    # without checking its hash): a stand-in file shows the path end to end, offline
    m = _torchvision_resnet("resnet18", seed=14)
    no_network.mkdir(parents=True)
    torch.save(m.state_dict(), no_network / "resnet18-f37072fd.pth")
    X = _images(2, 64, seed=15)
    ref = _reference(m, TF.normalize(torch.from_numpy(X), IMAGENET_MEAN, IMAGENET_STD))
    assert _rel(_gsn("resnet18", X, weights="imagenet").features(X), ref) < RTOL


def test_imagenet_without_torchvision(monkeypatch):
    X = _images(4, 32, seed=16)
    monkeypatch.setitem(sys.modules, "torchvision.models", None)  # import fails
    with pytest.raises(gm.ConfigError, match=r"weights='imagenet' needs torchvision"):
        _gsn("resnet18", X, weights="imagenet")
