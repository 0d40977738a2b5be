"""``precision="auto"``: bf16 where the hardware has fast bfloat16 (CUDA with bf16, AMX
CPUs), fp32 elsewhere, and the model says what it picked.

What can be tested here is the CPU this suite runs on: its choice is checked against the
kernel's own CPU flags (``/proc/cpuinfo``: ``amx_bf16``), an independent source from the
PyTorch probe the package uses. The CUDA branch (``torch.cuda.is_bf16_supported``) runs
only where a GPU is lent (tests/test_cuda.py style); it cannot be exercised on CI.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import gridmatch as gm
from gridmatch.gsn import precision as _precision


def _cpu_flags() -> set[str]:
    info = Path("/proc/cpuinfo")
    if not info.is_file():
        pytest.skip("no /proc/cpuinfo to compare with (not Linux)")
    for line in info.read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    pytest.skip("/proc/cpuinfo lists no flags")


def test_auto_on_this_cpu_follows_its_amx_flags():
    want = "bf16" if "amx_bf16" in _cpu_flags() else "fp32"
    assert _precision.resolve("auto", "cpu") == want
    X, y = gm.datasets.load("mnist", "train")
    gsn = gm.GridSearchNetwork(
        precision="auto", epochs=1, steps_per_epoch=1, dim=8, batch_size=16, grid=(2, 2),
        device="cpu", progress=False,
    ).fit(X[:64], y[:64])  # fmt: skip
    assert gsn.model_.precision == want
    assert gsn.precision == "auto"  # the parameter stays as given (clonable)
    E = gsn.embed(X[:4])
    assert E.dtype == np.float32 and gsn.model_.precision == want


@pytest.mark.parametrize("name", ["fp32", "bf16", "fp16"])
def test_explicit_precisions_are_kept(name):
    assert _precision.resolve(name, "cpu") == name


def test_unknown_precision_names_the_choices():
    with pytest.raises(gm.exceptions.ConfigError, match="auto"):
        _precision.resolve("fp8", "cpu")
