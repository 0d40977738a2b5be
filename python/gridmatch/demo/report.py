"""What the demo reports beside its numbers: the machine it ran on, the printed table
and the ranking said with how far the seeds agree on it."""

from __future__ import annotations

import os
import platform
from typing import Any

from .. import __version__
from .._base.threads import get_num_threads

__all__ = ["fmt", "machine", "ranking_lines", "say"]


def say(msg: str) -> None:
    print(msg, flush=True)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine() -> dict[str, Any]:
    """What the numbers were measured on: versions, threads, CPU."""
    import torch

    return {
        "gridmatch_version": __version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "threads": get_num_threads(),  # {"rayon": ..., "torch": ...}
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
    }


def fmt(m: dict[str, Any], key: str, seeds: int) -> str:
    if seeds > 1:
        return f"{m[key]:.3f} ± {m['std'][key]:.3f}"
    return f"{m[key]:.3f}"


def ranking_lines(ranking: dict[str, Any], n_seeds: int) -> list[str]:
    """The retrieval ranking, said with how far the seeds agree on it: ``>`` where every
    seed agrees and the lead exceeds twice its query-sampling standard error, ``≈``
    where not."""
    order = ranking["by_mean_recall@1"]
    if n_seeds == 1:
        return [
            "retrieval ranking by R@1, one seed (close rows may swap with another --seed; "
            "--seeds 3 tells them apart): " + " > ".join(order)
        ]
    text = order[0]
    for p in ranking["pairs"]:
        text += (" > " if p["separated"] else " ≈ ") + p["of"]
    lines = [f"retrieval ranking by mean R@1 over {n_seeds} seeds: {text}"]
    lines.append(
        "  (>: ahead at every seed, by more than twice the standard error of the "
        "queries' sampling; ≈: not)"
    )
    for p in ranking["pairs"]:
        lines.append(
            f"  {p['ahead']} ahead of {p['of']} in {p['seeds_ahead']} of {n_seeds} seeds, "
            f"by {p['lead']:.3f} (standard error {p['lead_se']:.3f})"
        )
    return lines
