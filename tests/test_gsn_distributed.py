"""Data-parallel GSN training over torch.distributed: two real gloo processes.

``tests/_ddp_worker.py`` runs as rank 0 and rank 1 of a group on 127.0.0.1 (both killed
when they do not finish in time); the tests compare the models they save, read here
with a small safetensors reader (numpy), against each other and against single-process
runs on each rank's shard.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

import gridmatch as gm

WORKER = Path(__file__).resolve().parent / "_ddp_worker.py"
TIMEOUT = 240  # seconds for both ranks together


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a safetensors file (float32 / int64), by name."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    kinds = {"F32": np.float32, "I64": np.int64, "F64": np.float64}
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        a, b = meta["data_offsets"]
        buf = raw[8 + n + a : 8 + n + b]
        out[name] = np.frombuffer(buf, dtype=kinds[meta["dtype"]]).reshape(meta["shape"])
    return out


def weights(d: Path) -> dict[str, np.ndarray]:
    return read_safetensors(d / "weights.safetensors")


def is_buffer(name: str) -> bool:
    """BatchNorm running statistics: not trained by gradients."""
    return name.rsplit(".", 1)[-1] in ("running_mean", "running_var", "num_batches_tracked")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_root) -> Path:
    """Both ranks' saved models and results (the runs of ``_ddp_worker.py``)."""
    out = tmp_path_factory.mktemp("ddp")
    X, _ = gm.datasets.load("fashion-mnist", "train", root=data_root)
    ids = np.arange(40) // 5  # 8 ids of 5 images each
    np.savez(out / "data.npz", X=gm.gsn.as_images(X[:40]), ids=ids)
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(rank), str(port), str(out)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for rank in (0, 1)
    ]
    try:
        for rank, p in enumerate(procs):
            try:
                _, err = p.communicate(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                pytest.fail(f"rank {rank} did not finish within {TIMEOUT} s")
            if p.returncode != 0:
                pytest.fail(f"rank {rank} failed (exit {p.returncode}):\n{err[-3000:]}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return out


def result(runs: Path, rank: int) -> dict:
    return json.loads((runs / f"result_{rank}.json").read_text())


def test_ranks_end_with_the_same_parameters(runs):
    for run in ("step_ddp", "long", "plain_module", "arcface"):
        w0, w1 = weights(runs / f"{run}_0"), weights(runs / f"{run}_1")
        assert w0.keys() == w1.keys()
        for name in w0:  # parameters and BatchNorm statistics alike
            np.testing.assert_array_equal(w0[name], w1[name], err_msg=f"{run}: {name}")


def test_a_module_backbones_batchnorm_statistics_are_rank_0s_on_every_rank(runs):
    # The statistics of a TorchScript backbone live in its module (backbone.pt), not in
    # the weights file: they too must end the same on both ranks, as the parameters do.
    torch = pytest.importorskip("torch")
    w0, w1 = weights(runs / "module_0"), weights(runs / "module_1")
    for name in w0:
        np.testing.assert_array_equal(w0[name], w1[name], err_msg=name)
    b0, b1 = (
        dict(torch.jit.load(str(runs / f"module_{r}" / "backbone.pt")).named_buffers())
        for r in (0, 1)
    )
    assert b0.keys() == b1.keys() and any(k.endswith("running_mean") for k in b0)
    for name, t in b0.items():
        if name.endswith("running_mean"):  # trained away from their initial zeros
            assert t.abs().max() > 0, name
        np.testing.assert_array_equal(t.numpy(), b1[name].numpy(), err_msg=name)
    e0, e1 = (np.array(result(runs, r)["module_embed"]) for r in (0, 1))
    np.testing.assert_array_equal(e0, e1)  # eval mode reads the statistics


def test_fine_tuning_controls_hold_data_parallel(runs):
    # freeze_backbone_epochs, freeze_bn and backbone_lr on two ranks: the same model on
    # both, the BatchNorm layer exactly as it started, the convolution trained in epoch 2
    torch = pytest.importorskip("torch")
    start = {k: torch.tensor(v) for k, v in result(runs, 0)["finetune_start"].items()}
    mods = [torch.jit.load(str(runs / f"finetune_{r}" / "backbone.pt")) for r in (0, 1)]
    s0, s1 = (dict(m.state_dict()) for m in mods)
    for k in s0:
        torch.testing.assert_close(s0[k], s1[k], rtol=0, atol=0)
    for k in ("1.weight", "1.bias", "1.running_mean", "1.running_var"):
        torch.testing.assert_close(s0[k], start[k].to(s0[k].dtype), rtol=0, atol=0)
    assert not torch.equal(s0["0.weight"], start["0.weight"])
    w0, w1 = weights(runs / "finetune_0"), weights(runs / "finetune_1")
    for name in w0:
        np.testing.assert_array_equal(w0[name], w1[name], err_msg=name)
    # epoch 1 frozen; epoch 2's last step is past the warm-up (constant schedule)
    assert result(runs, 0)["finetune_backbone_lr"] == [0.0, pytest.approx(1e-3)]


def test_one_step_equals_the_single_process_step_on_both_shards(runs):
    # SGD's first step moves θ0 by lr·g; the mean gradient of the two ranks therefore
    # gives θ0 - lr·(g0 + g1)/2 = (θ_alone_0 + θ_alone_1) / 2, where θ_alone_r is one
    # single-process step on exactly rank r's shard (same seed, same batches).
    ddp = weights(runs / "step_ddp_0")
    a0, a1 = weights(runs / "step_alone_0"), weights(runs / "step_alone_1")
    init = gm.GridSearchNetwork(
        backbone="convnet", dim=8, epochs=0, seed=3, device="cpu", grid=(2, 2)
    )
    init.fit(np.zeros((12, 28, 28), np.float32), np.arange(12) // 2)
    with tempfile.TemporaryDirectory() as d:
        theta0 = weights(init.save(d))
    params = [k for k in ddp if not is_buffer(k)]
    assert params and len(params) < len(ddp)  # the convnet has BatchNorm buffers too
    moved = apart = 0
    for k in params:
        ref = (a0[k].astype(np.float64) + a1[k].astype(np.float64)) / 2
        np.testing.assert_allclose(ddp[k], ref, rtol=0, atol=1e-6, err_msg=k)
        moved += not np.array_equal(ddp[k], theta0[k])
        apart += not np.allclose(a0[k], a1[k], rtol=0, atol=1e-6)
    assert moved > len(params) // 2  # the step moved the parameters
    assert apart > 0  # the shards' gradients differ, so the average is a real check
    for k in ddp:  # the BatchNorm statistics are rank 0's
        if is_buffer(k):
            np.testing.assert_array_equal(ddp[k], a0[k], err_msg=k)


def test_the_loss_falls_and_is_shared(runs):
    l0, l1 = result(runs, 0)["long_loss"], result(runs, 1)["long_loss"]
    assert len(l0) == 4 and np.all(np.isfinite(l0))
    assert l0 == l1  # the reported loss is the mean over the ranks
    assert l0[-1] < l0[0], l0


def test_distributed_false_inside_a_group_trains_alone(runs):
    # Trained on different shards without collectives: the two models differ (the
    # step test above shows each equals its shard's single-process step).
    a0, a1 = weights(runs / "step_alone_0"), weights(runs / "step_alone_1")
    assert any(not np.array_equal(a0[k], a1[k]) for k in a0 if not is_buffer(k))


def test_a_stop_on_one_rank_stops_every_rank(runs):
    for rank in (0, 1):
        assert result(runs, rank)["stopped"] == [1, True]


def test_too_few_ids_per_rank_is_a_config_error_on_every_rank(runs):
    for rank in (0, 1):
        msg = result(runs, rank)["few_ids"]
        assert "2 distinct ids per rank" in msg and "fewer ranks or more ids" in msg, msg


def test_ranks_given_different_data_fail_together(runs):
    assert (
        "rank 1 was given different numbers of images, ids than rank 0"
        in result(runs, 1)["mismatch"]
    )
    assert "another rank was given different data" in result(runs, 0)["mismatch"]


def test_distributed_true_without_a_group_is_a_config_error():
    gsn = gm.GridSearchNetwork(epochs=1, distributed=True, device="cpu", progress=False)
    with pytest.raises(gm.ConfigError, match="process group"):
        gsn.fit(np.zeros((8, 28, 28), np.float32), np.arange(8) // 2)


@pytest.mark.parametrize("bad", [1, None, "True"])
def test_distributed_setting_is_checked(bad):
    gsn = gm.GridSearchNetwork(epochs=1, distributed=bad, device="cpu", progress=False)
    with pytest.raises(gm.ConfigError, match="distributed must be 'auto', True or False"):
        gsn.fit(np.zeros((8, 28, 28), np.float32), np.arange(8) // 2)
