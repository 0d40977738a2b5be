"""The ``gridmatch`` command line.

``gridmatch demo`` is the main job: it runs every part of the package on the bundled
datasets and prints one results table. ``gridmatch info`` shows the version, thread
settings and where the datasets were found. ``gridmatch evaluate`` computes retrieval
metrics (recall@k, precision@1, MAP@R, R-precision) of embeddings stored as ``.npy``.
``gridmatch train --catalogue DIR|CSV`` trains a Grid Search Network on a folder or CSV
of photos (streamed), and ``gridmatch embed`` writes a catalogue's embeddings.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from . import __version__, _core, datasets
from ._base.exceptions import ConfigError, DataError
from ._base.threads import get_num_threads, set_num_threads

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
    from .demo import run_demo

    run_demo(args.out, quick=args.quick, device=args.device, seed=args.seed, seeds=args.seeds)
    return 0


def _grid(text: str) -> tuple[int, int]:
    try:
        rows, cols = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"grid must look like 3x3, got {text!r}") from None
    return rows, cols


def _catalogue(where: str, allow_outside: bool = False) -> datasets.ImageCatalogue:
    """A catalogue from a folder (one subfolder per product; its symbolic links may lead
    outside it only with ``allow_outside``) or a CSV file."""
    if os.path.isdir(where):
        try:
            return datasets.ImageCatalogue.from_folder(where, allow_outside=allow_outside)
        except DataError as e:
            if allow_outside or "lies outside root" not in str(e):
                raise
            # the message names the Python argument; name the command line's option too
            raise DataError(f"{e} (on the command line: --allow-outside)") from None
    if os.path.isfile(where):
        return datasets.ImageCatalogue.from_csv(where)
    raise ValueError(f"--catalogue {where!r} is neither a folder nor a CSV file")


def _backbone(name: str, trust: bool) -> Any:
    """A built-in backbone's name as it is; a TorchScript file (``torch.jit.save``)
    loaded with ``torch.jit.load``, only with ``--trust-torchscript`` (it is code)."""
    if name in _core.BACKBONE_NAMES:
        return name
    path = Path(name)
    if not path.is_file():
        raise ConfigError(
            f"--backbone {name!r}: neither one of {', '.join(_core.BACKBONE_NAMES)} nor a "
            "TorchScript file"
        )
    if not trust:
        raise ConfigError(
            f"--backbone {name}: a TorchScript file is code that runs in training; pass "
            "--trust-torchscript to load it from a source you trust"
        )
    import torch

    try:
        return torch.jit.load(str(path), map_location="cpu")
    except Exception as e:  # noqa: BLE001 - torch raises many kinds
        raise ConfigError(f"--backbone {name}: not a TorchScript file ({e})") from None


def _train(args: argparse.Namespace) -> int:
    import numpy as np

    from .gsn import GridSearchNetwork

    n_val = max(2, args.val)
    Xv: object = None
    iv: object = None
    if args.catalogue is not None:
        Xtr: object = _catalogue(args.catalogue, args.allow_outside)
        ids = classes = None
        backbone = args.backbone or "resnet18"
    elif args.dataset == "fashion-shop":
        Xtr, ids, classes = datasets.fashion_shop("train", n_products=args.n, seed=args.seed)
        bench = datasets.fashion_shop("test", views=2, n_products=n_val // 2, seed=args.seed)
        Xv = np.concatenate([bench.query.X, bench.gallery.X])
        iv = np.concatenate([bench.query.ids, bench.gallery.ids])
    else:
        X, y = datasets.load(args.dataset, "train")
        Xt, yt = datasets.load(args.dataset, "test")
        rng = np.random.default_rng(args.seed)
        pick = np.sort(rng.choice(len(X), size=min(args.n, len(X)), replace=False))
        Xtr, ids, classes = X[pick], y[pick], y[pick]
        Xv, iv = Xt[:n_val], yt[:n_val]
    if args.catalogue is None:
        backbone = args.backbone or "convnet"
    # the estimator's own defaults for what is not given
    given = {
        k: v
        for k, v in (("loss", args.loss), ("grid", args.grid), ("negatives", args.negatives))
        if v is not None
    }
    gsn = GridSearchNetwork(
        backbone=_backbone(backbone, args.trust_torchscript),
        weights=args.weights,
        backbone_lr=args.backbone_lr,
        freeze_bn=args.freeze_bn,
        freeze_backbone_epochs=args.freeze_backbone_epochs,
        warmup_steps=args.warmup_steps,
        **given,
        image_size=args.image_size,
        dim=args.dim,
        positives=args.positives,
        mode=args.mode,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        steps_per_epoch=args.steps_per_epoch,
        device=args.device,
        seed=args.seed,
        checkpoint_dir=args.out,
        progress=not args.no_progress,
        on_error=args.on_error,
        precision=args.precision,
    )
    gsn.fit(Xtr, ids, classes, X_val=Xv, ids_val=iv)
    if gsn.skipped_:
        print(f"{len(gsn.skipped_)} unreadable photo(s) left out; first: {gsn.skipped_[0][1]}")
    print(f"{'epoch':>5} {'loss':>9} {'val R@1':>8} {'seconds':>8}")
    for h in gsn.history_:
        r1 = h.get("val_recall@1", float("nan"))
        print(f"{h['epoch']:>5} {h['loss']:>9.4f} {r1:>8.4f} {h['seconds']:>8.2f}")
    path = gsn.save(args.out)
    print(f"model saved to {path}")
    return 0


def _embed(args: argparse.Namespace) -> int:
    import numpy as np

    from .gsn import GridSearchNetwork

    cat = _catalogue(args.catalogue, args.allow_outside)
    gsn = GridSearchNetwork.load(
        args.model, device=args.device, trust_torchscript=args.trust_torchscript
    )
    if args.image_size is not None:
        gsn.set_params(image_size=args.image_size)
    if args.on_error is not None:
        gsn.set_params(on_error=args.on_error)
    if args.precision is not None:
        gsn.set_params(precision=args.precision)
    E = gsn.embed(cat, batch_size=args.batch_size)
    if gsn.skipped_:
        print(
            f"{len(gsn.skipped_)} unreadable photo(s) left out (their rows are NaN); "
            f"first: {gsn.skipped_[0][1]}"
        )
    np.save(args.out, E)
    ids = os.path.splitext(args.out)[0] + "_ids.npy"
    # The catalogue's own ids: int64, or SKU strings as a unicode array (no pickle needed
    # to read them back).
    np.save(ids, cat.ids.astype(str) if cat.ids.dtype == object else cat.ids)
    print(f"{E.shape[0]} embeddings of dimension {E.shape[1]} saved to {args.out}")
    print(f"their product ids (catalogue order) saved to {ids}")
    return 0


def _search_common(p: argparse.ArgumentParser, budget: int) -> None:
    p.add_argument("--controller", choices=_core.CONTROLLER_NAMES, default="rl")
    p.add_argument("--budget", type=int, default=budget, help="candidates to sample")
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--risk-seeking",
        type=float,
        default=None,
        metavar="EPS",
        help="RL: learn from the best EPS fraction of each batch (risk-seeking policy gradient)",
    )
    p.add_argument("--top", type=int, default=5, help="how many of the best to print")
    p.add_argument(
        "--out",
        default=None,
        metavar="PATH",
        help="save the result (candidates, history, settings) there; "
        "gridmatch.search.SearchResult.load reads it",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _check_search_args(args: argparse.Namespace) -> None:
    """Settings only used after the search, checked before it starts."""
    if args.top <= 0:
        raise ValueError(f"--top must be a positive integer, got {args.top}")
    if args.out is not None:
        parent = os.path.dirname(os.path.abspath(args.out))
        if os.path.isdir(args.out) or not os.path.isdir(parent):
            raise ValueError(f"--out {args.out!r} is not a file path in an existing directory")


def _finish_search(res, args: argparse.Namespace) -> int:
    print(f"best: {res.best_expr}  (reward {res.best_score:.4f})")
    print(f"distinct candidates: {res.n_unique}, invalid: {res.n_invalid}")
    for e, r in res.top(args.top):
        print(f"  {r:.4f}  {e}")
    if args.out is not None:
        print(f"result saved to {res.save(args.out)}")
    return 0


def _search_kernel(args: argparse.Namespace) -> int:
    import numpy as np

    from .search import KernelSearch

    _check_search_args(args)
    n, v, h = args.train, args.val, args.holdout
    for flag, value, low in (("--train", n, 2), ("--val", v, 1), ("--holdout", h, 0)):
        if value < low:
            raise ValueError(f"{flag} must be an integer >= {low}, got {value}")
    X, y = datasets.load(args.dataset, "train")
    if n + v + h > len(X):
        raise ValueError(
            f"--train {n} + --val {v} + --holdout {h} images: {args.dataset} has only "
            f"{len(X)} training images"
        )
    X = X[: n + v + h].reshape(n + v + h, -1).astype(np.float64) / 255.0
    s = KernelSearch(
        controller=args.controller,
        budget=args.budget,
        batch_size=args.batch_size,
        C=args.C,
        seed=args.seed,
        risk_seeking=args.risk_seeking,
        progress=not args.no_progress,
    ).fit(X[:n], y[:n], X[n : n + v], y[n : n + v])
    rc = _finish_search(s.result_, args)
    if h and s.result_.interrupted:
        print("search stopped early: held-out re-scoring skipped")
    elif h:
        ranked = s.rerank(X[:n], y[:n], X[n + v :], y[n + v : n + v + h], k=args.top)
        print(f"re-scored on the {h} held-out images after the validation ones:")
        for e, acc in ranked:
            print(f"  {acc:.4f}  {e}")
    return rc


def _search_transform(args: argparse.Namespace) -> int:
    import numpy as np

    from .search import TransformSearch

    _check_search_args(args)
    try:
        f = np.load(args.embeddings, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read {args.embeddings}: {e}") from None
    if not isinstance(f, np.lib.npyio.NpzFile):
        raise DataError(f"{args.embeddings} is not an .npz archive")
    with f:
        missing = {"E_query", "ids_query", "E_gallery", "ids_gallery"} - set(f.files)
        if missing:
            raise ValueError(f"{args.embeddings} lacks arrays {sorted(missing)}")
        arrays = [f[k] for k in ("E_query", "ids_query", "E_gallery", "ids_gallery")]
    s = TransformSearch(
        controller=args.controller,
        budget=args.budget,
        batch_size=args.batch_size,
        seed=args.seed,
        risk_seeking=args.risk_seeking,
        progress=not args.no_progress,
    ).fit(*arrays)
    return _finish_search(s.result_, args)


def _load_npy(path: str, what: str):
    import numpy as np

    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read {what} from {path}: {e}") from None


def _evaluate(args: argparse.Namespace) -> int:
    import json

    from . import retrieval

    E_q = _load_npy(args.queries, "query embeddings")
    ids_q = _load_npy(args.query_ids, "query ids")
    if (args.gallery is None) != (args.gallery_ids is None):
        raise ValueError("give both GALLERY and GALLERY_IDS, or neither (leave-one-out)")
    if args.gallery is None:
        E_g, ids_g, exclude_self = E_q, ids_q, True
    else:
        E_g = _load_npy(args.gallery, "gallery embeddings")
        ids_g = _load_npy(args.gallery_ids, "gallery ids")
        exclude_self = args.exclude_self
    t0 = time.perf_counter()
    res = retrieval.evaluate(
        E_q, ids_q, E_g, ids_g, ks=args.ks, metric=args.metric, exclude_self=exclude_self
    )
    dt = time.perf_counter() - t0
    if args.json:
        print(json.dumps(res))
        return 0
    mode = "leave-one-out" if exclude_self else "query vs gallery"
    print(f"{len(E_q)} queries, {len(E_g)} gallery items, {args.metric}, {mode} ({dt:.2f} s)")
    for name, value in res.items():
        shown = f"{value:d}" if isinstance(value, int) else f"{value:.4f}"
        print(f"{name:>24}  {shown}")
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
    p = sub.add_parser(
        "demo",
        help="run every part on the bundled datasets, print a table, write a report folder",
    )
    p.add_argument("--out", default="gridmatch-report", help="report folder (PNG plots, JSON)")
    p.add_argument("--quick", action="store_true", help="small sizes: about a minute")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="first seed of data, training and searches (the retrieval part repeats at "
        "the next seeds too)",
    )
    p.add_argument(
        "--seeds",
        type=int,
        default=None,
        help="repeats of the retrieval part, reported as mean ± std (default: 3 with "
        "--quick, 1 for the full run)",
    )
    p.set_defaults(func=_demo)
    p = sub.add_parser("info", help="version, threads and dataset locations")
    p.set_defaults(func=_info)
    p = sub.add_parser("train", help="train a Grid Search Network and save it")
    p.add_argument(
        "--dataset", choices=("fashion-shop", "fashion-mnist", "mnist"), default="fashion-shop"
    )
    p.add_argument(
        "--catalogue",
        default=None,
        help="train on photos instead: a folder (one subfolder per product) or a CSV "
        "(path,id[,class,split] columns); streamed, validation off",
    )
    p.add_argument(
        "--allow-outside",
        action="store_true",
        help="a --catalogue folder's symbolic links may lead to photos outside it "
        "(refused by default)",
    )
    p.add_argument(
        "--backbone",
        default=None,
        help="convnet, resnet18, resnet50, or a TorchScript file (torch.jit.save of a "
        "backbone module, with --trust-torchscript); default: convnet for datasets, "
        "resnet18 for a catalogue",
    )
    p.add_argument(
        "--trust-torchscript",
        action="store_true",
        help="allow --backbone to load a TorchScript file (it is code that runs)",
    )
    p.add_argument(
        "--weights",
        default=None,
        help="initial backbone weights: a .safetensors / .pth state dict with torchvision's "
        "names, or 'imagenet' (torchvision's ImageNet weights)",
    )
    p.add_argument(
        "--backbone-lr",
        type=float,
        default=None,
        help="learning rate of the backbone (default: --lr / 10 with --weights or a "
        "TorchScript --backbone, else --lr)",
    )
    p.add_argument(
        "--freeze-bn",
        action="store_true",
        help="keep the backbone's BatchNorm statistics and affine parameters fixed",
    )
    p.add_argument(
        "--freeze-backbone-epochs",
        type=int,
        default=0,
        help="epochs at the start that train only the head",
    )
    p.add_argument(
        "--warmup-steps", type=int, default=0, help="steps of linear learning-rate warm-up"
    )
    p.add_argument("--image-size", type=int, default=None, help="catalogue image side (224)")
    p.add_argument(
        "--on-error",
        choices=("raise", "skip"),
        default="raise",
        help="an unreadable photo of --catalogue: fail, or leave it out (the model's on_error)",
    )
    p.add_argument("--n", type=int, default=10_000, help="training images / products")
    p.add_argument("--val", type=int, default=1000, help="validation images")
    p.add_argument("--out", required=True, help="folder for the model (and checkpoints)")
    p.add_argument("--loss", default=None, help="a loss name (default: the model's default)")
    p.add_argument(
        "--grid", type=_grid, default=None, help="rows x cols, e.g. 4x4 (default: the model's)"
    )
    p.add_argument("--positives", type=int, default=1)
    p.add_argument(
        "--negatives",
        default=None,
        choices=("random", "hard", "mined", "semihard"),
        help="default: the model's",
    )
    p.add_argument("--mode", default="batch", choices=("batch", "stitched"))
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--steps-per-epoch", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--precision",
        choices=(*_core.PRECISION_NAMES, "auto"),
        default="fp32",
        help="arithmetic of the forward passes: bf16 / fp16 autocast (fast on CUDA and AMX "
        "CPUs), auto: bf16 where it is fast, else fp32 (default: fp32)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--no-progress",
        "--quiet",
        dest="no_progress",
        action="store_true",
        help="no progress bar (--quiet: the earlier name)",
    )
    p.set_defaults(func=_train)
    p = sub.add_parser(
        "embed",
        help="embeddings of a folder or CSV of photos with a saved model (.npy)",
        description="Embed every photo of a catalogue (a folder with one subfolder per "
        "product, or a CSV) with a model saved by 'gridmatch train'; writes the (n, dim) "
        "embeddings to --out and the product ids (SKU strings or integers) to <out>_ids.npy.",
    )
    p.add_argument("model", help="folder of a saved model")
    p.add_argument("--catalogue", required=True, help="a folder or a CSV file of photos")
    p.add_argument(
        "--allow-outside",
        action="store_true",
        help="a --catalogue folder's symbolic links may lead to photos outside it "
        "(refused by default)",
    )
    p.add_argument("--out", required=True, help="the .npy file of the embeddings")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--image-size", type=int, default=None, help="default: the model's")
    p.add_argument(
        "--on-error",
        choices=("raise", "skip"),
        default=None,
        help="an unreadable photo: fail, or leave it out with a NaN row (default: the model's)",
    )
    p.add_argument("--device", default=None, help="override the saved device (e.g. cpu)")
    p.add_argument(
        "--precision",
        choices=(*_core.PRECISION_NAMES, "auto"),
        default=None,
        help="arithmetic of the forward pass (default: the model's)",
    )
    p.add_argument(
        "--trust-torchscript",
        action="store_true",
        help="load a model whose backbone is a TorchScript program (backbone.pt: code)",
    )
    p.set_defaults(func=_embed)
    p = sub.add_parser("search-kernel", help="RL / random search of an SVM kernel")
    p.add_argument("--dataset", choices=datasets.NAMES, default="mnist")
    p.add_argument("--train", type=int, default=1000, help="first N training images")
    p.add_argument("--val", type=int, default=500, help="the next N images validate")
    p.add_argument(
        "--holdout",
        type=int,
        default=0,
        help="the next N images re-score the --top best kernels (a second, larger "
        "validation: KernelSearch.rerank)",
    )
    p.add_argument("--C", type=float, default=1.0)
    _search_common(p, budget=100)
    p.set_defaults(func=_search_kernel)
    p = sub.add_parser("search-transform", help="RL / random search of an embedding transform")
    p.add_argument("embeddings", help=".npz with E_query, ids_query, E_gallery, ids_gallery arrays")
    _search_common(p, budget=300)
    p.set_defaults(func=_search_transform)
    p = sub.add_parser(
        "evaluate",
        help="retrieval metrics of embeddings in .npy files",
        description="Recall@k, precision@1, MAP@R and R-precision of query embeddings "
        "against gallery embeddings (.npy files: float (n, dim) embeddings, integer (n,) "
        "ids). Without a gallery, the queries are evaluated leave-one-out against "
        "themselves.",
    )
    p.add_argument("queries", help="query embeddings, (n, dim) .npy")
    p.add_argument("query_ids", help="query ids, (n,) .npy")
    p.add_argument("gallery", nargs="?", help="gallery embeddings, (m, dim) .npy")
    p.add_argument("gallery_ids", nargs="?", help="gallery ids, (m,) .npy")
    p.add_argument("--ks", type=int, nargs="+", default=[1, 5, 10, 20, 50], help="k of recall@k")
    p.add_argument("--metric", choices=["cosine", "ip", "l2"], default="cosine")
    p.add_argument(
        "--exclude-self",
        action="store_true",
        help="leave-one-out: query i never retrieves gallery item i (same set)",
    )
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=_evaluate)
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
