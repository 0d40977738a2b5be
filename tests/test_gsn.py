"""The GridSearchNetwork estimator: training, determinism, persistence, errors."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

import gridmatch as gm

FAST = dict(dim=16, batch_size=16, steps_per_epoch=3, epochs=1, progress=False, grid=(2, 2))


@pytest.fixture(scope="module")
def fmnist(data_root):
    X, y = gm.datasets.load("fashion-mnist", "test", root=data_root)
    return X[:400], y[:400]


def loo_recall1(E, ids):
    """numpy reference: leave-one-out nearest neighbour has the same id."""
    S = E @ E.T
    np.fill_diagonal(S, -np.inf)
    nn = S.argmax(1)
    return float((ids[nn] == ids).mean())


def test_untrained_network_embeds_normalised(fmnist):
    X, y = fmnist
    gsn = gm.GridSearchNetwork(epochs=0, dim=24, progress=False).fit(X[:50], y[:50])
    E = gsn.embed(X[:10])
    assert E.dtype == np.float32 and E.shape == (10, 24)
    np.testing.assert_allclose(np.linalg.norm(E, axis=1), 1.0, atol=1e-5)
    assert gsn.history_ == []
    Et = gsn.embed(torch.from_numpy(X[:10]))
    assert isinstance(Et, torch.Tensor)
    np.testing.assert_array_equal(Et.numpy(), E)
    # layouts: (n, h, w) uint8 == (n, 1, h, w) float in [0, 1]
    E2 = gsn.embed(X[:10, None].astype(np.float32) / 255)
    np.testing.assert_allclose(E2, E, atol=1e-6)


def test_training_reduces_loss_and_raises_recall(fmnist):
    X, y = fmnist
    ids = np.arange(200)  # every image a product: positives are augmented views
    Xv = np.concatenate([X[200:300], gm.datasets.distort(X[200:300], seed=1)])
    idv = np.concatenate([np.arange(100), np.arange(100)])
    params = dict(
        dim=32, batch_size=32, grid=(3, 3), progress=False, lr=2e-3, seed=0, loss="grid-softmax"
    )
    untrained = gm.GridSearchNetwork(epochs=0, **params).fit(X[:200], ids)
    r0 = loo_recall1(untrained.embed(Xv), idv)
    gsn = gm.GridSearchNetwork(epochs=5, steps_per_epoch=24, **params)
    gsn.fit(X[:200], ids, X_val=Xv, ids_val=idv)
    losses = [h["loss"] for h in gsn.history_]
    assert len(losses) == 5 and losses[-1] < losses[0]
    r1 = loo_recall1(gsn.embed(Xv), idv)
    assert r1 > r0 + 0.05, (r0, r1)
    # the per-epoch validation metric is the same leave-one-out recall@1
    assert gsn.history_[-1]["val_recall@1"] == pytest.approx(r1, abs=1e-6)
    assert all(h["seconds"] > 0 for h in gsn.history_)


def test_deterministic_for_a_seed(fmnist):
    X, y = fmnist
    a = gm.GridSearchNetwork(seed=3, **FAST).fit(X[:100], y[:100]).embed(X[:20])
    b = gm.GridSearchNetwork(seed=3, **FAST).fit(X[:100], y[:100]).embed(X[:20])
    c = gm.GridSearchNetwork(seed=4, **FAST).fit(X[:100], y[:100]).embed(X[:20])
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_balance_switches_the_double_margin_form(fmnist):
    """balance=False (the paper's sum) and True (mean per side) train differently; the
    loss values reported per epoch follow each formula on the first step's scale."""
    X, y = fmnist
    kw = dict(FAST, seed=1)
    a = gm.GridSearchNetwork(loss=gm.losses.DoubleMargin(balance=False), **kw)
    a.fit(X[:100], y[:100])
    b = gm.GridSearchNetwork(loss=gm.losses.DoubleMargin(balance=True), **kw)
    b.fit(X[:100], y[:100])
    assert gm.losses.resolve("double-margin").balance is True  # the name's default
    default = gm.GridSearchNetwork()  # the best measured recipe (README, "Defaults")
    assert (default.loss, default.grid, default.negatives) == ("grid-softmax", (4, 4), "mined")
    assert a.get_params()["loss"].balance is False
    assert not np.allclose(a.embed(X[:20]), b.embed(X[:20]))
    # with 1 positive and 3 negatives per 2x2 grid the sum form weighs negatives 3:1,
    # so its loss is larger than the balanced form's at the same (untrained) start
    assert a.history_[0]["loss"] > b.history_[0]["loss"]


@pytest.mark.parametrize(
    "loss,negatives,mode",
    [
        ("grid-softmax", "mined", "batch"),
        ("double-margin", "hard", "batch"),
        ("double-margin", "random", "stitched"),
        ("grid-softmax", "mined", "stitched"),
        ("double-margin", "semihard", "batch"),
        ("grid-softmax", "semihard", "stitched"),
        ("triplet", "random", "batch"),
        ("contrastive", "random", "batch"),
        ("ntxent", "random", "batch"),
    ],
)
def test_every_loss_and_mode_trains(fmnist, loss, negatives, mode):
    X, y = fmnist
    gsn = gm.GridSearchNetwork(loss=loss, negatives=negatives, mode=mode, **FAST)
    gsn.fit(X[:100], np.arange(100), classes=y[:100])
    assert np.isfinite(gsn.history_[0]["loss"])
    E = gsn.embed(X[:5])
    assert E.shape == (5, 16)


def test_save_load_roundtrip(tmp_path, fmnist):
    X, y = fmnist
    gsn = gm.GridSearchNetwork(**FAST).fit(X[:100], y[:100])
    out = gsn.save(tmp_path / "model")
    assert (out / "weights.safetensors").is_file()
    config = json.loads((out / "config.json").read_text())
    assert config["params"]["dim"] == 16 and len(config["history"]) == 1
    assert not [p for p in out.iterdir() if "partial" in p.name]
    back = gm.GridSearchNetwork.load(out)
    np.testing.assert_array_equal(back.embed(X[:10]), gsn.embed(X[:10]))
    assert back.history_ == gsn.history_
    assert back.get_params() == {**gsn.get_params(), "weights": None}


def test_checkpoints_every_epoch(tmp_path, fmnist):
    X, y = fmnist
    seen = []

    def cb(epoch, total, metrics):
        seen.append((epoch, total, sorted(metrics)))
        assert (tmp_path / "ckpt" / "weights.safetensors").is_file()

    params = {**FAST, "epochs": 2}
    gsn = gm.GridSearchNetwork(checkpoint_dir=tmp_path / "ckpt", **params)
    gsn.fit(X[:100], y[:100], callback=cb)
    assert [s[:2] for s in seen] == [(1, 2), (2, 2)]
    assert seen[0][2] == ["loss", "lr", "seconds"]  # no validation data given
    back = gm.GridSearchNetwork.load(tmp_path / "ckpt")
    np.testing.assert_array_equal(back.embed(X[:5]), gsn.embed(X[:5]))


def test_backbone_weights_load_from_safetensors(tmp_path, fmnist):
    X, y = fmnist
    src = gm.GridSearchNetwork(**FAST).fit(X[:100], y[:100])
    src.save(tmp_path / "m")
    # a new network whose backbone starts from the trained one: same features, new head
    small = dict(epochs=0, dim=16, seed=9, progress=False, grid=(2, 2))
    dst = gm.GridSearchNetwork(**small, weights=tmp_path / "m" / "weights.safetensors")
    dst.fit(X[:10], y[:10])
    fresh = gm.GridSearchNetwork(**small).fit(X[:10], y[:10])
    assert not np.allclose(dst.embed(X[:5]), fresh.embed(X[:5]))
    with pytest.raises(gm.GridmatchError):
        gm.GridSearchNetwork(**small, weights=tmp_path / "nope.safetensors").fit(X[:10], y[:10])


def test_resnet18_on_rgb():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 255, size=(24, 32, 32, 3), dtype=np.uint8)
    ids = np.repeat(np.arange(12), 2)
    gsn = gm.GridSearchNetwork(
        backbone="resnet18",
        dim=8,
        batch_size=8,
        steps_per_epoch=1,
        epochs=1,
        progress=False,
        grid=(2, 2),
    ).fit(X, ids)
    assert gsn.embed(X[:3]).shape == (3, 8)
    assert gsn.model_.parameter_count > 11_000_000


def test_callback_stop_keeps_model_and_warns(fmnist):
    X, y = fmnist
    gsn = gm.GridSearchNetwork(**{**FAST, "epochs": 5})
    with pytest.warns(gm.InterruptedWarning):
        gsn.fit(X[:100], y[:100], callback=lambda e, t, m: e < 2)
    assert len(gsn.history_) == 2 and gsn.interrupted_
    assert gsn.embed(X[:3]).shape == (3, 16)


def test_cuda_without_gpu_is_a_device_error(fmnist):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the CUDA path is exercised by benches/gpu.sh")
    X, y = fmnist
    with pytest.raises(gm.DeviceError, match="CUDA"):
        gm.GridSearchNetwork(device="cuda", **FAST).fit(X[:50], y[:50])
    gsn = gm.GridSearchNetwork(device="auto", epochs=0, progress=False).fit(X[:50], y[:50])
    assert gsn.model_.device == "cpu"


def test_bad_input_raises_clear_errors(fmnist):
    X, y = fmnist
    with pytest.raises(gm.NotFittedError):
        gm.GridSearchNetwork().embed(X[:2])
    bad = [
        dict(loss="hinge"),
        dict(negatives="easy"),
        dict(grid=(3,)),
        dict(positives=9),
        dict(positives=0),
        dict(batch_size=3),
        dict(lr=-1.0),
        dict(loss=gm.losses.GridSoftmax(temperature=0.0)),
        dict(loss=gm.losses.DoubleMargin(hi="high")),
        dict(loss=gm.losses.DoubleMargin(balance="yes")),
        dict(loss=gm.losses.DoubleMargin(balance=1)),
        dict(augment=float("nan")),
        dict(mode="stitched", loss="triplet"),
        dict(backbone="vgg"),
        dict(device="tpu"),
    ]
    for kw in bad:
        with pytest.raises(ValueError):
            gm.GridSearchNetwork(**{**FAST, **kw}).fit(X[:50], y[:50])
    with pytest.raises(gm.ShapeError, match="ids"):
        gm.GridSearchNetwork(**FAST).fit(X[:50], y[:40])
    with pytest.raises(gm.ShapeError, match="2 distinct"):
        gm.GridSearchNetwork(**FAST).fit(X[:50], np.zeros(50))
    with pytest.raises(gm.ShapeError, match="NaN"):
        Xf = X[:50].astype(np.float32)
        Xf[0, 0, 0] = np.nan
        gm.GridSearchNetwork(**FAST).fit(Xf, y[:50])
    gsn = gm.GridSearchNetwork(epochs=0, progress=False).fit(X[:20], y[:20])
    with pytest.raises(gm.ShapeError, match="channels"):
        gsn.embed(np.zeros((2, 3, 28, 28), np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gsn.embed(X[:2])


def test_cli_train(tmp_path, data_root, monkeypatch, capsys):
    from gridmatch import cli

    monkeypatch.setenv("GRIDMATCH_DATA", str(data_root))
    argv = [
        "train",
        "--dataset",
        "fashion-shop",
        "--n",
        "100",
        "--val",
        "40",
        "--dim",
        "8",
        "--epochs",
        "1",
        "--steps-per-epoch",
        "2",
        "--batch-size",
        "16",
        "--grid",
        "2x2",
        "--quiet",
        "--out",
        str(tmp_path / "m"),
    ]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "model saved" in out
    gsn = gm.GridSearchNetwork.load(tmp_path / "m")
    assert gsn.embed(np.zeros((1, 28, 28), np.uint8)).shape == (1, 8)


def test_semihard_negatives_train_differently_from_random_and_mined(fmnist):
    X, y = fmnist
    kw = {**FAST, "loss": "grid-softmax", "seed": 5}
    E = {
        neg: gm.GridSearchNetwork(**kw, negatives=neg).fit(X[:100], y[:100]).embed(X[:10])
        for neg in ("random", "mined", "semihard")
    }
    assert not np.allclose(E["semihard"], E["random"])
    assert not np.allclose(E["semihard"], E["mined"])


def test_hard_negatives_without_classes_fall_back_to_mined(fmnist):
    X, y = fmnist
    kw = {**FAST, "negatives": "hard", "seed": 5}
    hard = gm.GridSearchNetwork(**kw).fit(X[:100], y[:100]).embed(X[:10])
    mined = gm.GridSearchNetwork(**{**kw, "negatives": "mined"}).fit(X[:100], y[:100])
    np.testing.assert_array_equal(hard, mined.embed(X[:10]))


@pytest.mark.parametrize("loss", ["double-margin", "triplet"])
def test_one_image_per_id_without_augmentation_is_refused(fmnist, loss):
    X, _ = fmnist
    ids = np.arange(100)  # every image its own id: positives could only be the query
    gsn = gm.GridSearchNetwork(**{**FAST, "augment": 0.0, "loss": loss})
    with pytest.raises(ValueError, match="single image and augment=0"):
        gsn.fit(X[:100], ids)
    assert not hasattr(gsn, "model_")
    # with augmentation the views differ: trains
    gm.GridSearchNetwork(**{**FAST, "loss": loss}).fit(X[:100], ids)
    # some ids with one image: trains, and says how many
    some = np.concatenate([np.arange(40) // 2, 20 + np.arange(60)])  # 20 pairs + 60 singles
    with pytest.warns(UserWarning, match="60 of 80 ids have a single image"):
        gm.GridSearchNetwork(**{**FAST, "augment": 0.0, "loss": loss}).fit(X[:100], some)


@pytest.mark.parametrize("schedule", ["cosine", "step", "constant"])
def test_history_lr_is_the_rate_of_each_epochs_last_step(fmnist, schedule):
    X, y = fmnist
    epochs, steps, lr = 4, 3, 2e-3
    gsn = gm.GridSearchNetwork(
        **{**FAST, "epochs": epochs, "steps_per_epoch": steps, "lr": lr, "schedule": schedule}
    ).fit(X[:100], y[:100])
    total = epochs * steps
    t = (np.arange(1, epochs + 1) * steps - 1) / total  # the last step of each epoch
    factor = {
        "cosine": 0.5 * (1 + np.cos(np.pi * t)),
        "step": np.where(t >= 0.75, 0.01, np.where(t >= 0.5, 0.1, 1.0)),
        "constant": np.ones_like(t),
    }[schedule]
    np.testing.assert_allclose([h["lr"] for h in gsn.history_], lr * factor, rtol=1e-12)
    assert gsn.history_[-1]["lr"] > 0  # the last epoch trained at a positive rate


def _as_earlier_version(model_dir, **params):
    """Rewrite a saved model's config.json as files of earlier versions recorded it."""
    cfg_path = model_dir / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["params"].update(params)
    cfg_path.write_text(json.dumps(cfg))


@pytest.mark.parametrize("name", ["hi", "lo", "balance", "temperature", "margin", "verbose"])
def test_removed_parameters_are_refused(name):
    with pytest.raises(TypeError, match=name):
        gm.GridSearchNetwork(**{name: 0.5})


def test_model_files_with_flat_loss_parameters_load_as_their_loss(fmnist, tmp_path):
    # Files of earlier versions record the loss as a name plus flat parameters (hi, lo,
    # balance, temperature, margin): they load as the loss object with those values.
    X, y = fmnist
    new = gm.GridSearchNetwork(**FAST, loss=gm.losses.DoubleMargin(hi=0.7, lo=0.1))
    new.fit(X[:100], y[:100])
    default = gm.GridSearchNetwork(**FAST).fit(X[:100], y[:100])
    assert not np.array_equal(default.embed(X[:20]), new.embed(X[:20]))  # hi/lo matter
    new.save(tmp_path / "m")
    flat = dict(hi=0.7, lo=0.1, balance=None, temperature=None, margin=None)
    _as_earlier_version(tmp_path / "m", loss="double-margin", **flat)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back = gm.GridSearchNetwork.load(tmp_path / "m")
    assert back.loss == gm.losses.DoubleMargin(hi=0.7, lo=0.1)
    assert not hasattr(back, "hi")
    np.testing.assert_array_equal(back.embed(X[:20]), new.embed(X[:20]))
    # a parameter of another loss (hi beside triplet) is left out, as it was
    triplet = gm.GridSearchNetwork(**FAST, loss=gm.losses.Triplet(margin=0.5))
    triplet.fit(X[:100], y[:100]).save(tmp_path / "t")
    _as_earlier_version(tmp_path / "t", loss="triplet", margin=0.5, hi=0.9)
    assert gm.GridSearchNetwork.load(tmp_path / "t").loss == gm.losses.Triplet(margin=0.5)
    # a bad flat value is a DataError naming the file, as any invalid config
    _as_earlier_version(tmp_path / "t", margin=-1.0)
    with pytest.raises(gm.DataError, match="config.json"):
        gm.GridSearchNetwork.load(tmp_path / "t")


def test_multi_similarity_trains_and_saves_its_spec(fmnist, tmp_path):
    X, y = fmnist
    loss = gm.losses.MultiSimilarity(alpha=2.0, beta=40.0, base=0.5)
    gsn = gm.GridSearchNetwork(**{**FAST, "epochs": 4, "steps_per_epoch": 10}, loss=loss)
    gsn.fit(X[:200], y[:200])
    losses = [h["loss"] for h in gsn.history_]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    gsn.save(tmp_path / "ms")
    cfg = json.loads((tmp_path / "ms" / "config.json").read_text())
    assert cfg["params"]["loss"] == {
        "name": "multi-similarity",
        "alpha": 2.0,
        "beta": 40.0,
        "base": 0.5,
    }
    back = gm.GridSearchNetwork.load(tmp_path / "ms")
    assert back.loss == loss and back.get_params() == {**gsn.get_params(), "weights": None}
    np.testing.assert_array_equal(back.embed(X[:10]), gsn.embed(X[:10]))
    other = gm.GridSearchNetwork(**{**FAST, "epochs": 3}, loss=gm.losses.NTXent()).fit(
        X[:200], y[:200]
    )
    assert not np.allclose(other.embed(X[:10]), gsn.embed(X[:10]))


@pytest.mark.parametrize(
    ("miner", "name"),
    [
        (gm.miners.Random(), "random"),
        (gm.miners.SameClass(), "hard"),
        (gm.miners.Mined(), "mined"),
        (gm.miners.SemiHard(), "semihard"),
    ],
)
def test_miner_objects_train_as_their_names(fmnist, tmp_path, miner, name):
    from sklearn.base import clone

    X, y = fmnist
    cls = y[:100] % 3
    kw = {**FAST, "loss": "grid-softmax", "seed": 2}
    by_obj = gm.GridSearchNetwork(**kw, negatives=miner).fit(X[:100], y[:100], cls)
    by_name = gm.GridSearchNetwork(**kw, negatives=name).fit(X[:100], y[:100], cls)
    np.testing.assert_array_equal(by_obj.embed(X[:10]), by_name.embed(X[:10]))
    assert miner.spec() == {"name": name} and gm.miners.from_spec(miner.spec()) == miner
    assert clone(by_obj).negatives == miner
    by_obj.save(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["params"]["negatives"] == {
        "name": name
    }
    back = gm.GridSearchNetwork.load(tmp_path / "m")
    assert back.negatives == miner
    np.testing.assert_array_equal(back.embed(X[:10]), by_obj.embed(X[:10]))


def test_miners_differ_and_bad_miners_are_value_errors(fmnist):
    X, y = fmnist
    kw = {**FAST, "loss": "grid-softmax", "seed": 2}
    E = {
        type(m).__name__: gm.GridSearchNetwork(**kw, negatives=m)
        .fit(X[:100], y[:100])
        .embed(X[:10])
        for m in (gm.miners.Random(), gm.miners.Mined())
    }
    assert not np.allclose(E["Random"], E["Mined"])
    for bad in ("easy", gm.losses.Triplet(), 3):
        with pytest.raises(ValueError, match="negatives must be one of"):
            gm.GridSearchNetwork(**kw, negatives=bad).fit(X[:50], y[:50])
    with pytest.raises(ValueError, match="not a miner spec"):
        gm.miners.from_spec({"name": "mined", "k": 3})


def test_model_files_with_verbose_load_it_as_progress(fmnist, tmp_path):
    X, y = fmnist
    kw = {k: v for k, v in FAST.items() if k != "progress"}
    with pytest.raises(ValueError, match="progress must be a bool"):
        gm.GridSearchNetwork(**kw, progress="no").fit(X[:100], y[:100])
    new = gm.GridSearchNetwork(**kw, progress=False).fit(X[:100], y[:100])
    # a model file of an earlier version records verbose (not progress): it loads as progress
    new.save(tmp_path / "m")
    cfg_path = tmp_path / "m" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["params"]["verbose"] = cfg["params"].pop("progress")
    cfg_path.write_text(json.dumps(cfg))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back = gm.GridSearchNetwork.load(tmp_path / "m")
    assert back.progress is False and not hasattr(back, "verbose")
    np.testing.assert_array_equal(back.embed(X[:5]), new.embed(X[:5]))
