"""Training a Grid Search Network: the data and its checks, validation, progress, and
the Rust training loop (data-parallel inside a ``torch.distributed`` process group)."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from .._base.exceptions import BackendError, InterruptedWarning, ShapeError
from ..data.catalogue import ImageCatalogue
from . import distributed as _distributed
from . import params as _params
from . import precision as _precision
from .backbones import new_model
from .input import DEFAULT_IMAGE_SIZE, Images, labels, record_skipped, warn_scale
from .persistence import config_json

__all__ = ["fit"]


def fit(
    est: Any,
    X: Any,
    ids: Any,
    classes: Any,
    X_val: Any,
    ids_val: Any,
    callback: Callable[[int, int, dict[str, float]], Any] | None,
) -> Any:
    """Train ``est`` (``GridSearchNetwork.fit``, which documents the arguments); returns
    ``est``, fitted."""
    p = _params.check(est)
    dp = _distributed.group(est.distributed)
    lead = dp is None or dp[0] == 0  # the rank that shows progress, validates, saves
    size = DEFAULT_IMAGE_SIZE if p["image_size"] is None else p["image_size"]
    images = Images(X, size)
    n = images.n
    if images.catalogue is not None:
        if ids is None:
            ids = images.catalogue.codes
        if classes is None and images.catalogue.classes is not None:
            classes = images.catalogue.classes
    elif ids is None:
        raise ShapeError("ids is required when X is an array (one id per image)")
    ids = labels(ids, n, "ids")
    cls = None if classes is None else labels(classes, n, "classes")
    uniq, counts = np.unique(ids, return_counts=True)
    if len(uniq) < 2:
        raise ShapeError("ids must hold at least 2 distinct values")
    if p["augment"] == 0 and counts.max() == 1:
        raise ValueError(
            "every id has a single image and augment=0: each query's positives would "
            "be the query itself; give several images per id or augment > 0"
        )
    if p["augment"] == 0 and counts.min() == 1:
        warnings.warn(
            f"{int((counts == 1).sum())} of {len(uniq)} ids have a single image and "
            "augment=0: their queries' positives are the query itself",
            UserWarning,
            stacklevel=3,
        )
    cells = p["rows"] * p["cols"]
    if n < cells:
        raise ValueError(
            f"grid={tuple(est.grid)} has {cells} cells but X holds only {n} "
            "images; use a smaller grid or more images"
        )
    xv = iv = None
    val: Images | None = None
    if isinstance(X_val, ImageCatalogue) and ids_val is None:
        ids_val = X_val.codes
    if X_val is not None or ids_val is not None:
        if X_val is None or ids_val is None:
            raise ValueError("give both X_val and ids_val, or neither")
        val = Images(X_val, size, "X_val")
        xv = val.gather_all()
        iv = labels(ids_val, xv.shape[0], "ids_val")
        if xv.shape[1:] != images.shape:
            raise ShapeError(f"X_val images {xv.shape[1:]} differ from X's {images.shape}")
    train_images = images.training_images(p["image_augment"], p["skip_errors"])
    given_arrays = [(images, train_images)] + ([] if val is None else [(val, xv)])
    for given, pixels in given_arrays:  # float images on another scale: a warning
        if given.check_scale:
            assert given.array is not None
            lo, hi = float(pixels.min()), float(pixels.max())
            warn_scale(given.name, given.array.dtype, lo, hi, est.normalize, "fit", 3)
    est.n_channels_ = int(images.shape[0])
    est.image_shape_ = tuple(images.shape)
    est.image_size_ = size if images.catalogue is not None else None
    model = new_model(
        est,
        p,
        est.n_channels_,
        None if dp is None else _distributed.device_for(est.device),
        image_hw=(int(images.shape[1]), int(images.shape[2])),
    )
    est.history_ = []
    est.skipped_ = []
    est.interrupted_ = False
    if p["epochs"] == 0:
        est.model_ = model
        return est
    bar = None
    if p["progress"] and lead:
        from tqdm.auto import tqdm

        desc = f"GSN {p['loss']['name']}"
        bar = tqdm(total=p["epochs"], desc=desc, unit="epoch", leave=False)

    def on_epoch(step: int, total: int | None, metrics: dict[str, float]) -> bool:
        if bar is not None:
            bar.update(1)
            bar.set_postfix({k: round(v, 4) for k, v in metrics.items() if k != "lr"})
        if callback is not None:
            # the training loop reports total = epochs (never None)
            epochs = p["epochs"] if total is None else total
            return callback(step, epochs, dict(metrics)) is not False
        return True

    model.precision = _precision.resolve(p["precision"], model.device)
    try:
        ckpt = est.checkpoint_dir if lead else None
        run = {
            "spec": _params.train_spec(est, p),
            "checkpoint": None
            if ckpt is None
            else {"dir": str(ckpt), "config": config_json(est, est.n_channels_)},
        }
        history, interrupted, skipped = model.fit(
            (train_images, ids, cls),
            json.dumps(run),
            None if xv is None or not lead else (xv, iv),
            on_epoch,
            None if dp is None else (dp[0], dp[1], _distributed.hook(dp[1])),
        )
    finally:
        if bar is not None:
            bar.close()
    est.history_ = [{"epoch": i + 1, **dict(h)} for i, h in enumerate(history)]
    for h in est.history_:
        for k in ("skipped", "overflow_steps"):
            if k in h:
                h[k] = int(h[k])
    record_skipped(est, images, skipped, "fit left out", "for the rest of the run", 4)
    bad = [h["epoch"] for h in est.history_ if not np.isfinite(h.get("loss", 0.0))]
    if bad:
        raise BackendError(
            f"training diverged: the loss is NaN or infinite from epoch {bad[0]} on "
            f"(lr={est.lr!r}); lower lr or check the input scale"
        )
    est.model_ = model
    est.interrupted_ = bool(interrupted)
    if interrupted:
        warnings.warn(
            f"training stopped after {len(est.history_)} of {p['epochs']} epochs; "
            "the model trained so far is kept",
            InterruptedWarning,
            stacklevel=3,
        )
    return est
