"""Helpers shared by the benchmark scripts: the CPU's name and BENCHMARKS.md's sections."""

from __future__ import annotations

import platform
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "BENCHMARKS.md"


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def replace_block(name: str, block: str) -> None:
    """Put `block` (which starts with ``<!-- BEGIN name -->`` and ends with
    ``<!-- END name -->``) in BENCHMARKS.md in place of the previous block of that name,
    or at the end of the file when there is none."""
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else "# Benchmarks\n"
    if begin in text and end in text:
        text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    BENCHMARKS.write_text(text)


#: The CPU flags that matter to the kernels (x86 SIMD, AVX-512 extensions, AMX; Arm).
VECTOR_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "avx512f",
    "avx512dq",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_bf16",
    "amx_int8",
    "asimd",
    "sve",
)


def vector_extensions() -> str:
    """The CPU's vector extensions that matter here (from /proc/cpuinfo's flags)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                have = set(line.split(":", 1)[1].split())
                return ", ".join(f for f in VECTOR_FLAGS if f in have) or "none listed"
    except OSError:
        pass
    return "unknown"


def quiet_label(load: float) -> str:
    """'quiet' when the 1-minute load average is below 1 (the headline rule on 2 cores)."""
    return "quiet" if load < 1.0 else "**loaded** (figures inflated; not a headline)"
