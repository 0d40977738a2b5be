"""The ``gridmatch`` command line.

``gridmatch demo`` is the main job: it runs every part of the package on the bundled
datasets and prints one results table. ``gridmatch info`` shows the version, thread
settings and where the datasets were found.
"""

from __future__ import annotations

import argparse
import sys
import time

from . import __version__, datasets
from ._threads import get_num_threads, set_num_threads

__all__ = ["main"]


def _info(_args: argparse.Namespace) -> int:
    import torch

    print(f"gridmatch {__version__} (torch {torch.__version__})")
    print(f"threads: {get_num_threads()}")
    print(f"cuda available: {torch.cuda.is_available()}")
    for name in datasets.NAMES:
        for split in ("train", "test"):
            found = datasets.find(name, split)
            where = found[0].parent if found else "not found"
            print(f"{name:>14} {split:>5}: {where}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    rows = []
    for name in datasets.NAMES:
        for split in ("train", "test"):
            t0 = time.perf_counter()
            X, y = datasets.load(name, split)
            dt = time.perf_counter() - t0
            rows.append(
                (name, split, X.shape, int(y.min()), int(y.max()), len(set(y.tolist())), dt)
            )
    print("Datasets")
    print(f"{'dataset':<14} {'split':<6} {'images':<16} {'labels':<8} {'classes':>7} {'load s':>7}")
    for name, split, shape, lo, hi, ncls, dt in rows:
        print(f"{name:<14} {split:<6} {str(shape):<16} {f'{lo}..{hi}':<8} {ncls:>7} {dt:>7.2f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the ``gridmatch`` command line.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status.
    """
    parser = argparse.ArgumentParser(prog="gridmatch", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"gridmatch {__version__}")
    parser.add_argument(
        "--threads", type=int, default=None, help="threads for Rust and libtorch (default: all)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="run every part on the bundled datasets")
    p.set_defaults(func=_demo)
    p = sub.add_parser("info", help="version, threads and dataset locations")
    p.set_defaults(func=_info)
    args = parser.parse_args(argv)
    if args.threads is not None:
        set_num_threads(args.threads)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - one clear line for the user, not a traceback
        from .exceptions import GridmatchError

        if isinstance(e, (GridmatchError, ValueError)):
            print(f"gridmatch: error: {e}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
