"""The Grid Search Network's parameters: their checks, and the training spec the core
reads (``src/train/spec.rs``)."""

from __future__ import annotations

from typing import Any

from .. import _core, losses, miners
from .._base import params as _params
from .._base.exceptions import ConfigError
from ..data import augment as _augment
from . import distributed as _distributed
from . import precision as _precision
from . import weights as _weights
from .torchscript import is_module

__all__ = [
    "BACKBONES",
    "LOSSES",
    "NEGATIVES",
    "backbone_lr",
    "check",
    "is_pretrained",
    "train_spec",
]

LOSSES = losses.NAMES
NEGATIVES = miners.NAMES
BACKBONES: tuple[str, ...] = tuple(_core.BACKBONE_NAMES)


def check(est: Any) -> dict[str, Any]:
    """The estimator's parameters checked (``ConfigError`` naming the first bad one) and
    converted: what :func:`train_spec` and the model's construction read."""
    if is_module(est.backbone):
        if est.weights is not None:
            raise ConfigError(
                "weights= loads the built-in backbones' weights; load a module "
                "backbone's weights in PyTorch before passing it"
            )
    else:
        _params.choice(est.backbone, "backbone", BACKBONES, other="a torch.nn.Module")
    miner = miners.resolve(est.negatives)
    loss = losses.resolve(est.loss)
    _params.choice(est.mode, "mode", ("batch", "stitched"))
    _params.choice(est.optimizer, "optimizer", ("adam", "sgd"))
    _params.choice(est.schedule, "schedule", ("constant", "cosine", "step"))
    rows, cols = _params.int_tuple(est.grid, "grid", ("rows", "cols"), low=1)
    cells = rows * cols
    positives = _params.integer(est.positives, "positives", low=1)
    if positives >= cells:
        raise ConfigError(
            f"positives must be in [1, {cells}) for a {rows}x{cols} grid, got {positives}"
        )
    if est.mode == "stitched" and not loss.is_grid:
        raise ConfigError("mode='stitched' needs a grid loss ('double-margin', 'grid-softmax')")
    batch = _params.integer(est.batch_size, "batch_size", low=2)
    if batch // (positives + 1) < 2:
        raise ConfigError(
            f"batch_size={batch} must hold at least 2 ids of positives+1={positives + 1} views"
        )
    _params.device(est.device)
    _distributed.check(est.distributed)
    _weights.check(est.weights, est.backbone)
    _params.choice(est.normalize, "normalize", ("auto", "imagenet", "legacy"), optional=True)
    return {
        "image_size": _params.integer(est.image_size, "image_size", 4, 16384, optional=True),
        "skip_errors": _params.choice(est.on_error, "on_error", ("raise", "skip")) == "skip",
        "image_augment": _augment.from_mapping(est.image_augment, "image_augment"),
        "precision": _precision.check(est.precision),
        "rows": rows,
        "cols": cols,
        "positives": positives,
        "dim": _params.integer(est.dim, "dim", low=1),
        "epochs": _params.integer(est.epochs, "epochs", low=0),
        "batch_size": batch,
        "lr": _params.real(est.lr, "lr", low=0, low_open=True),
        "weight_decay": _params.real(est.weight_decay, "weight_decay", low=0),
        "finetune": {
            "backbone_lr": backbone_lr(est),
            "freeze_backbone_epochs": _params.integer(
                est.freeze_backbone_epochs, "freeze_backbone_epochs", low=0
            ),
            "freeze_bn": _params.flag(est.freeze_bn, "freeze_bn"),
            "warmup_steps": _params.integer(est.warmup_steps, "warmup_steps", low=0),
        },
        "augment": _params.real(est.augment, "augment", low=0),
        "loss": loss.spec(),
        "progress": _params.flag(est.progress, "progress"),
        "negatives": miner.name,
        "seed": _params.integer(est.seed, "seed", low=0),
        "steps_per_epoch": _params.integer(
            est.steps_per_epoch, "steps_per_epoch", low=1, optional=True
        ),
    }


#: The default backbone rate of a pretrained backbone, as a fraction of ``lr``.
PRETRAINED_BACKBONE_LR = 0.1


def is_pretrained(est: Any) -> bool:
    """Whether the estimator starts from a pretrained backbone: ``weights`` given, or a
    module backbone."""
    return est.weights is not None or is_module(est.backbone)


def backbone_lr(est: Any) -> float | None:
    """The backbone's learning rate: ``backbone_lr`` when given; by default ``lr`` / 10
    for a pretrained backbone (the best measured recipe, BENCHMARKS.md "Fine-tuning"),
    ``None`` (= ``lr``) when trained from scratch."""
    given = _params.real(est.backbone_lr, "backbone_lr", low=0, optional=True)
    if given is not None:
        return float(given)
    if is_pretrained(est):
        return PRETRAINED_BACKBONE_LR * _params.real(est.lr, "lr", low=0, low_open=True)
    return None


def train_spec(est: Any, p: dict[str, Any]) -> dict[str, Any]:
    """The training spec the core reads (``TrainSpec`` in ``src/train/spec.rs``), from
    the checked parameters ``p``."""
    return {
        "loss": p["loss"],
        "grid": {"rows": p["rows"], "cols": p["cols"], "positives": p["positives"]},
        "negatives": p["negatives"],
        "epochs": p["epochs"],
        "steps_per_epoch": p["steps_per_epoch"],
        "batch_size": p["batch_size"],
        "lr": p["lr"],
        "optimizer": est.optimizer,
        "schedule": est.schedule,
        "weight_decay": p["weight_decay"],
        "augment": p["augment"],
        "seed": p["seed"],
        "finetune": p["finetune"],
    }
