"""``gridmatch train --catalogue`` and ``gridmatch embed`` on a folder and a CSV of
generated photos: the saved model and the written embeddings against the Python API."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from test_gsn_catalogue import product_photos

import gridmatch as gm
from gridmatch import cli


def photo_folder(tmp_path):
    """product_photos laid out as ``root/<product>/<image>`` (what from_folder reads)."""
    flat = product_photos(tmp_path, n_products=6, views=2)
    root = tmp_path / "shop"
    for path, sku in zip(flat.paths, flat.ids):
        (root / sku).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, root / sku / Path(path).name)
    return root


def train_argv(root: Path, model: Path, epochs: int) -> list[str]:
    """``gridmatch train`` of a small convnet on the photo folder ``root``."""
    argv = ["train", "--catalogue", str(root), "--out", str(model), "--backbone", "convnet"]
    argv += ["--image-size", "24", "--dim", "8", "--grid", "2x2", "--batch-size", "6"]
    argv += ["--epochs", str(epochs), "--steps-per-epoch", "2", "--device", "cpu"]
    return [*argv, "--no-progress"]


def test_train_and_embed_a_folder_and_a_csv(tmp_path, capsys):
    root = photo_folder(tmp_path)
    model = tmp_path / "model"
    assert cli.main(train_argv(root, model, epochs=2)) == 0
    assert "model saved to" in capsys.readouterr().out
    net = gm.GridSearchNetwork.load(model)
    assert net.image_size == 24 and net.n_channels_ == 3 and len(net.history_) == 2
    out = tmp_path / "emb.npy"
    assert cli.main(["embed", str(model), "--catalogue", str(root), "--out", str(out)]) == 0
    assert "12 embeddings of dimension 8" in capsys.readouterr().out
    cat = gm.datasets.ImageCatalogue.from_folder(root)
    np.testing.assert_array_equal(np.load(out), net.embed(cat, batch_size=64))
    saved_ids = np.load(tmp_path / "emb_ids.npy")  # no pickle: a unicode array
    assert saved_ids.dtype.kind == "U" and saved_ids.tolist() == list(cat.ids)
    assert saved_ids[0] == Path(cat.paths[0]).parent.name  # the folder's SKU
    # a CSV listing the same photos in another order
    csv = tmp_path / "list.csv"
    rows = [f"{p},{i}" for p, i in zip(cat.paths[::-1], cat.ids[::-1])]
    csv.write_text("path,id\n" + "\n".join(rows) + "\n")
    out2 = tmp_path / "emb2.npy"
    assert cli.main(["embed", str(model), "--catalogue", str(csv), "--out", str(out2)]) == 0
    np.testing.assert_array_equal(np.load(out2), np.load(out)[::-1])


def test_a_missing_catalogue_is_one_error_line(tmp_path, capsys):
    argv = ["embed", str(tmp_path), "--catalogue", str(tmp_path / "nope"), "--out", "x.npy"]
    assert cli.main(argv) == 2
    assert "neither a folder nor a CSV" in capsys.readouterr().err


def test_on_error_skip_leaves_unreadable_photos_out(tmp_path, capsys):
    root = photo_folder(tmp_path)
    bad = sorted((root / "sku-0").iterdir())[0]
    bad.write_bytes(bad.read_bytes()[:40])  # truncated
    model = tmp_path / "model"
    argv = ["train", "--catalogue", str(root), "--out", str(model), "--backbone", "convnet"]
    argv += ["--image-size", "24", "--dim", "8", "--grid", "2x2", "--batch-size", "6"]
    argv += ["--epochs", "1", "--steps-per-epoch", "3", "--device", "cpu", "--no-progress"]
    assert cli.main(argv) == 2  # raise: one error line naming the file
    assert bad.name in capsys.readouterr().err
    assert cli.main([*argv, "--on-error", "skip"]) == 0
    assert "1 unreadable photo(s) left out" in capsys.readouterr().out
    assert gm.GridSearchNetwork.load(model).on_error == "skip"
    out = tmp_path / "emb.npy"
    argv = ["embed", str(model), "--catalogue", str(root), "--out", str(out)]
    assert cli.main([*argv, "--on-error", "raise"]) == 2
    assert bad.name in capsys.readouterr().err
    assert cli.main(argv) == 0  # the model's on_error: skip
    assert "1 unreadable photo(s) left out (their rows are NaN)" in capsys.readouterr().out
    E = np.load(out)
    cat = gm.datasets.ImageCatalogue.from_folder(root)
    row = list(cat.paths).index(str(bad.resolve()))
    assert np.isnan(E[row]).all() and not np.isnan(np.delete(E, row, 0)).any()


def test_train_and_embed_take_a_precision(tmp_path, capsys):
    root = photo_folder(tmp_path)
    model = tmp_path / "model"
    assert cli.main([*train_argv(root, model, epochs=1), "--precision", "bf16"]) == 0
    net = gm.GridSearchNetwork.load(model)
    assert net.precision == "bf16"
    cat = gm.datasets.ImageCatalogue.from_folder(root)
    for precision in ("bf16", "fp32"):
        out = tmp_path / f"emb-{precision}.npy"
        argv = ["embed", str(model), "--catalogue", str(root), "--out", str(out)]
        assert cli.main([*argv, "--precision", precision]) == 0
        want = net.set_params(precision=precision).embed(cat, batch_size=64)
        np.testing.assert_array_equal(np.load(out), want)
    assert not np.array_equal(
        np.load(tmp_path / "emb-bf16.npy"), np.load(tmp_path / "emb-fp32.npy")
    )
    capsys.readouterr()


def test_train_fine_tuning_flags_and_a_torchscript_backbone(tmp_path, capsys):
    import torch

    root = photo_folder(tmp_path)
    torch.manual_seed(0)
    module = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU()
    )
    script = tmp_path / "backbone.pt"
    torch.jit.save(torch.jit.script(module), str(script))
    model = tmp_path / "model"
    argv = train_argv(root, model, epochs=2)
    argv[argv.index("--backbone") + 1] = str(script)
    argv += ["--backbone-lr", "0.0001", "--freeze-bn", "--freeze-backbone-epochs", "1"]
    argv += ["--warmup-steps", "2"]
    assert cli.main(argv) == 2  # a TorchScript file is code: refused without the flag
    assert "--trust-torchscript" in capsys.readouterr().err
    assert cli.main([*argv, "--trust-torchscript"]) == 0
    net = gm.GridSearchNetwork.load(model, trust_torchscript=True)
    out = tmp_path / "emb.npy"
    embed = ["embed", str(model), "--catalogue", str(root), "--out", str(out)]
    assert cli.main(embed) == 2  # a TorchScript backbone: refused without the flag
    assert "trust_torchscript" in capsys.readouterr().err
    assert cli.main([*embed, "--trust-torchscript"]) == 0
    cat = gm.datasets.ImageCatalogue.from_folder(root)
    np.testing.assert_allclose(np.load(out), net.embed(cat), rtol=1e-5, atol=1e-6)
    got = {k: net.get_params()[k] for k in ("backbone_lr", "freeze_bn", "freeze_backbone_epochs")}
    assert got == {"backbone_lr": 1e-4, "freeze_bn": True, "freeze_backbone_epochs": 1}
    assert net.warmup_steps == 2 and [h["backbone_lr"] for h in net.history_][0] == 0.0
    # the BatchNorm layer of the module is as it was (frozen), the convolution trained
    now = dict(net.backbone.state_dict())
    start = dict(module.state_dict())
    assert torch.equal(now["1.running_var"], start["1.running_var"])
    assert not torch.equal(now["0.weight"], start["0.weight"])
    # --weights: the trained model's backbone as the start of another run
    assert cli.main([*train_argv(root, tmp_path / "m0", epochs=1)]) == 0
    again = train_argv(root, tmp_path / "m1", epochs=0)
    w = str(tmp_path / "m0" / "weights.safetensors")
    assert cli.main([*again, "--weights", w]) == 0
    a = gm.GridSearchNetwork.load(tmp_path / "m0").features(
        gm.datasets.ImageCatalogue.from_folder(root)
    )
    b = gm.GridSearchNetwork.load(tmp_path / "m1").features(
        gm.datasets.ImageCatalogue.from_folder(root)
    )
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert cli.main([*again, "--backbone", "nope"]) == 2
    assert "neither one of convnet" in capsys.readouterr().err


def test_allow_outside_lets_a_folders_links_lead_out(tmp_path, capsys):
    root = photo_folder(tmp_path)
    model = tmp_path / "model"
    assert cli.main(train_argv(root, model, epochs=1)) == 0
    # one product's photos moved out of the folder, linked back in
    away = tmp_path / "elsewhere"
    away.mkdir()
    for photo in sorted((root / "sku-1").iterdir()):
        target = away / photo.name
        photo.rename(target)
        photo.symlink_to(target)
    out = tmp_path / "emb.npy"
    embed = ["embed", str(model), "--catalogue", str(root), "--out", str(out)]
    assert cli.main(embed) == 2
    assert "--allow-outside" in capsys.readouterr().err
    assert cli.main([*embed, "--allow-outside"]) == 0
    cat = gm.datasets.ImageCatalogue.from_folder(root, allow_outside=True)
    np.testing.assert_array_equal(np.load(out), gm.GridSearchNetwork.load(model).embed(cat))
    assert cli.main(train_argv(root, tmp_path / "m2", epochs=1)) == 2
    capsys.readouterr()
    assert cli.main([*train_argv(root, tmp_path / "m2", epochs=1), "--allow-outside"]) == 0
    capsys.readouterr()
