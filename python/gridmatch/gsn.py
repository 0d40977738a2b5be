"""Grid Search Network: learn image embeddings by finding a query's matches in a grid.

The network is trained on grids of ``rows × cols`` images holding ``positives`` other
views of the query's product and negatives of other products; the loss acts on the
similarity map of the query against the grid. Training runs in Rust (libtorch through
``tch``) with the GIL released; progress is reported once per epoch. Inside an
initialised ``torch.distributed`` process group (``torchrun``, Ray Train) training is
data-parallel.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import tempfile
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from . import _augment, _backbone_weights, _core, _distributed, _params, losses, miners
from ._gsn_input import DEFAULT_IMAGE_SIZE, Images, _layout, _to_float, warn_scale
from ._validate import host_array
from .catalogue import ImageCatalogue
from .exceptions import ConfigError, DataError, InterruptedWarning, NotFittedError, ShapeError

__all__ = ["GridSearchNetwork", "as_images"]

# Pixels per forward batch of embed / features by default: 32 images of 224 x 224.
_BATCH_PIXELS = 32 * 224 * 224

LOSSES = losses.NAMES
NEGATIVES = miners.NAMES
BACKBONES: tuple[str, ...] = tuple(_core.BACKBONE_NAMES)
#: Loss parameters that were estimator parameters before the loss objects (deprecated).
_FLAT_LOSS_PARAMS = ("hi", "lo", "balance", "temperature", "margin")
_FORMAT = "gridmatch.GridSearchNetwork"
#: The TorchScript program of a module backbone in a saved model's folder.
_SCRIPT_FILE = "backbone.pt"
_VERSION = 1


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def _is_module(x: Any) -> bool:
    """Whether ``x`` is a ``torch.nn.Module`` (without importing torch)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.nn.Module)


def _first_line(e: BaseException, limit: int = 160) -> str:
    """``Type: first line of the message`` of ``e``, cut to ``limit`` characters."""
    lines = str(e).strip().splitlines()
    text = lines[0] if lines else ""
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return f"{type(e).__name__}: {text}"


def _torchscript(module: Any, shape: tuple[int, ...]) -> Any:
    """``module`` as TorchScript: as it is if it already is a ``torch.jit.ScriptModule``;
    else ``torch.jit.script(module)``; failing that, ``torch.jit.trace`` in eval mode on
    random images ``(2, *shape)`` (with a warning: a traced module keeps the mode it was
    traced in). ``ConfigError`` when it can be neither."""
    import torch

    if isinstance(module, torch.jit.ScriptModule):
        return module
    try:
        return torch.jit.script(module)
    except Exception as e:  # noqa: BLE001 - TorchScript raises many kinds
        script_error = _first_line(e)
    param = next(module.parameters(), None)
    example = torch.rand(2, *shape, device=None if param is None else param.device)
    was_training = module.training
    try:
        module.eval()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            traced = torch.jit.trace(module, example, check_trace=False)
    except Exception as e:  # noqa: BLE001
        trace_error = _first_line(e)
        raise ConfigError(
            f"backbone: TorchScript can neither script this {type(module).__name__} "
            f"({script_error}) nor trace it on images {tuple(example.shape)} ({trace_error}); "
            "pass a module that torch.jit.script or torch.jit.trace accepts, or a "
            "torch.jit.ScriptModule"
        ) from None
    finally:
        module.train(was_training)
    warnings.warn(
        f"backbone: torch.jit.script failed ({script_error}); the module was traced in "
        "eval mode instead, and a traced module runs as traced, in training too "
        "(BatchNorm uses its running statistics, dropout is off); script it to train "
        "with train-mode behaviour",
        UserWarning,
        stacklevel=4,
    )
    return traced


#: The exported TorchScript method through which the core reaches a module backbone's
#: buffers (``BUFFERS_METHOD`` in src/nets/mod.rs).
_BUFFERS_METHOD = "gridmatch_buffers"


def _export_buffers(program: Any, warn: bool) -> Any:
    """A copy of the TorchScript ``program`` (on the CPU) with one more method,
    ``gridmatch_buffers()``: its buffers (BatchNorm running statistics) in
    ``named_buffers`` order, the module's own tensors (an empty list when it has none),
    so that data-parallel training can broadcast them from rank 0 as it does the
    built-in backbones' statistics. The caller's module is not changed; one that has the
    method already is returned as it is. When TorchScript cannot compile the method (a
    buffer name that is not an attribute path) it returns ``program``, with a warning
    when ``warn`` (training data-parallel): the statistics then stay each rank's own."""
    import torch

    if hasattr(program, _BUFFERS_METHOD):
        return program
    names = [name for name, _ in program.named_buffers()]
    lines = [f"def {_BUFFERS_METHOD}(self) -> List[Tensor]:", "    out: List[Tensor] = []"]
    for i, name in enumerate(names):
        expr = "self"
        for part in name.split("."):
            expr = f"getattr({expr}, {json.dumps(part)})"
        lines += [f"    b{i} = {expr}", f"    if b{i} is not None:", f"        out.append(b{i})"]
    lines.append("    return out")
    buf = io.BytesIO()
    torch.jit.save(program, buf)
    buf.seek(0)
    copy = torch.jit.load(buf, map_location="cpu")  # the core loads it on its device
    try:
        copy.define("\n".join(lines) + "\n")
    except Exception as e:  # noqa: BLE001 - TorchScript raises many kinds
        if warn:
            warnings.warn(
                f"backbone: cannot hand its {len(names)} buffers to data-parallel "
                f"training ({_first_line(e)}); each rank keeps its own BatchNorm "
                "statistics (rank 0's are saved)",
                UserWarning,
                stacklevel=4,
            )
        return program
    return copy


def as_images(X: Any, name: str = "X") -> np.ndarray:
    """Convert images to a C-contiguous float32 array ``(n, channels, height, width)``.

    Parameters
    ----------
    X : array-like or torch.Tensor
        ``(n, h, w)`` grayscale, ``(n, c, h, w)`` or ``(n, h, w, c)`` with ``c`` in
        {1, 3}. ``uint8`` values are scaled to ``[0, 1]``; floating values are taken as
        they are (expected in ``[0, 1]``).
    name : str, default "X"
        Name used in error messages.

    Returns
    -------
    ndarray of float32, shape (n, c, h, w)

    Raises
    ------
    ShapeError
        Wrong number of dimensions, no images, an unsupported dtype, or NaN/inf values.
    """
    return _to_float(_layout(X, name), name)


def _verify_checksum(file: Path, config: dict[str, Any], key: str, cfg_path: Path) -> None:
    """``DataError`` unless ``file``'s sha256 equals ``config[key]`` (read from
    ``cfg_path``): a missing checksum, an unreadable file or a mismatch."""
    expected = config.get(key)
    if not isinstance(expected, str):
        raise DataError(f"{cfg_path} has no {key} checksum")
    try:
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
    except OSError as e:
        raise DataError(f"cannot read {file}: {e}") from None
    if digest != expected:
        raise DataError(
            f"{file} does not match the checksum in config.json: the file was "
            "modified, is corrupt or belongs to another save"
        )


def _labels(y: Any, n: int, name: str) -> np.ndarray:
    y = np.asarray(host_array(y, name))
    if y.ndim != 1 or y.shape[0] != n:
        raise ShapeError(f"{name} must be 1-D with one value per image ({n}), got {y.shape}")
    if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.bool_)):
        _, y = np.unique(y, return_inverse=True)
    return np.ascontiguousarray(y, dtype=np.int64)


class GridSearchNetwork(BaseEstimator):
    """Grid Search Network (Chopra et al., CVPRW 2019): embeddings for robust retrieval.

    Every image of a training step is a query; its grid holds ``positives`` other
    (augmented) views of the same id and ``rows·cols − positives`` negatives. The loss
    acts on the query's similarity map over the grid. Baseline metric-learning losses
    (``"triplet"``, ``"contrastive"``, ``"ntxent"``) are trained by the same loop on the
    same batches.

    Parameters
    ----------
    backbone : {"convnet", "resnet18", "resnet50"} or torch.nn.Module, default "convnet"
        ``"convnet"`` for small grayscale images (28×28), the ResNets for RGB photos.
        Or any ``torch.nn.Module`` that TorchScript can script or trace (a torchvision
        or timm model, a ViT), or a ``torch.jit.ScriptModule``: :meth:`fit` converts it
        (``torch.jit.script``; failing that ``torch.jit.trace`` in eval mode on random
        images of the training images' shape, with a ``UserWarning``: a traced module
        keeps eval-mode behaviour in training too) and trains its parameters in the
        Rust loop, in train mode during :meth:`fit` and eval mode in :meth:`embed` and
        :meth:`features` (for a scripted module). The module gets the images normalised as
        ``normalize`` says (ImageNet's mean and std by default, as torchvision's and
        timm's pretrained models expect; ``normalize=None`` passes ``[0, 1]`` through)
        and returns a feature map ``(n, c, h, w)`` (average-pooled) or features
        ``(n, c)`` (then ``mode="stitched"`` is refused). The module object itself is
        not changed by training; the trained network is ``model_`` (saved with
        ``backbone.pt``, see :meth:`load`). Not with ``weights``.
    dim : int, default 128
        Embedding size.
    grid : tuple of int, default (3, 3)
        ``(rows, cols)`` of the grid.
    positives : int, default 1
        Positive cells per grid (``1 <= positives < rows*cols``); a batch holds
        ``positives + 1`` views of each id.
    negatives : gridmatch.miners.Miner or str, default "random"
        The miner of each grid's negatives (:mod:`gridmatch.miners`), or its name:
        drawn at random (``Random()``, ``"random"``), from the query's class
        (``SameClass()``, ``"hard"``: ``classes`` given to :meth:`fit`; without them,
        mined), the most similar under the current embeddings (``Mined()``,
        ``"mined"``), or semi-hard under them (``SemiHard()``, ``"semihard"``: the most
        similar ones that are still less similar than the grid's positives, as in
        semi-hard triplet mining; then the least similar others). Similarities come from
        the query network (in ``mode="stitched"`` too). How the miners compare: see
        BENCHMARKS.md, section "Grid Search Network", findings.
    loss : gridmatch.losses.Loss or str, default "double-margin"
        A loss object with its parameters (:mod:`gridmatch.losses`): the grid losses
        ``DoubleMargin(hi, lo, balance)`` (the paper's) and ``GridSoftmax(temperature)``,
        or the baselines ``Triplet(margin)``, ``Contrastive(margin)``,
        ``NTXent(temperature)``, ``MultiSimilarity(alpha, beta, base)``; or the name of
        one (``"double-margin"``, ``"grid-softmax"``, ``"triplet"``, ``"contrastive"``,
        ``"ntxent"``, ``"multi-similarity"``) meaning its defaults.
    mode : {"batch", "stitched"}, default "batch"
        ``"batch"``: each image embedded once per step, grids index into the batch.
        ``"stitched"``: the paper's single pass — each grid stitched into one image for
        a separate target network whose ``rows×cols×dim`` output volume is correlated
        with the query network's vector (retrieval uses the query network).
    epochs : int, default 5
        Training epochs; ``0`` gives the initialised, untrained network.
    batch_size : int, default 64
        Images per step.
    lr : float, default 1e-3
        Learning rate.
    optimizer : {"adam", "sgd"}, default "adam"
    schedule : {"cosine", "constant", "step"}, default "cosine"
        Learning-rate schedule over all steps.
    weight_decay : float, default 0.0
    augment : float, default 1.0
        Strength of the seeded view augmentations (affine, crop, elastic, occlusion,
        blur, noise, contrast); ``0`` disables them.
    steps_per_epoch : int, optional
        Steps per epoch (default: one pass, ``ceil(n / batch_size)``).
    hi, lo, balance, temperature, margin : optional
        Deprecated (a ``DeprecationWarning``; removed in the next release): the loss's
        parameters belong to the loss object, e.g. ``loss=DoubleMargin(hi=0.8)``. Given
        with a loss *name*, they override its defaults as before.
    weights : path-like, mapping, torch.nn.Module or "imagenet", optional
        Initial backbone weights, with torchvision's names (the ResNets follow
        torchvision's): a ``.safetensors`` file; a ``.pth`` / ``.pt`` state dict (read
        with ``torch.load(weights_only=True)``: the file runs no code); a mapping name →
        tensor (torch tensors or numpy arrays); a torch module (e.g.
        ``torchvision.models.resnet50()``, its ``state_dict()``); or ``"imagenet"``:
        torchvision's ImageNet weights (``ResNet18_Weights.IMAGENET1K_V1``,
        ``ResNet50_Weights.IMAGENET1K_V2``) through torchvision's download and cache
        (``ConfigError`` without torchvision, ``DataError`` when the download fails,
        e.g. offline). A ``module.`` prefix (DDP) is stripped; torchvision's classifier
        ``fc.*`` and BatchNorm's ``num_batches_tracked`` are ignored, as is everything
        but ``query.backbone.*`` in a gridmatch model's ``weights.safetensors``. Loading
        is strict: a tensor that names no backbone variable, a variable without a
        tensor, or a shape that differs is a ``DataError`` naming it. The head always
        starts from the seeded initialisation. Stored as given (a module or state dict
        too); a saved model's config records only the path or the type.
    normalize : {"auto", "imagenet", "legacy"} or None, default "auto"
        Input normalisation: images are scaled to ``[0, 1]`` (``uint8`` divided by 255),
        then each channel has a mean subtracted and is divided by a std.
        ``"imagenet"``: ImageNet's mean (0.485, 0.456, 0.406) and std (0.229, 0.224,
        0.225) per RGB channel, as torchvision's pretrained weights expect (for 1-channel
        images: the three channels' average, 0.449 and 0.226). ``"auto"``:
        ``"imagenet"`` for the ResNets and module backbones, ``"legacy"`` for the
        convnet. ``"legacy"``: one scalar, mean 0.5 / std 0.25 for the convnet and
        0.45 / 0.225 for the ResNets (what models saved before this setting used; they
        load with it). ``None``: the ``[0, 1]`` values pass through. Float images on
        another scale than ``[0, 1]`` give an ``InputScaleWarning`` (see :meth:`fit`).
    device : {"auto", "cpu", "cuda"} or "cuda:N", default "auto"
    seed : int, default 0
        Seeds initialisation, sampling and augmentation (CPU training is deterministic).
    checkpoint_dir : path-like, optional
        Save the model there after every epoch (as :meth:`save` does).
    progress : bool, default True
        Show a ``tqdm`` progress bar (the searches' name for it too).
    verbose : bool, optional
        Deprecated name of ``progress`` (a ``DeprecationWarning``; removed in the next
        release).
    distributed : {"auto", True, False}, default "auto"
        Data-parallel training over ``torch.distributed``. ``"auto"``: when a default
        process group is initialised (by ``torchrun``, Ray Train's ``TorchTrainer`` or
        ``torch.distributed.init_process_group``), :meth:`fit` trains data-parallel
        over it; ``True``: it must be (``ConfigError`` otherwise); ``False``: train
        alone. Every rank calls :meth:`fit` with the same data and parameters; rank
        ``r`` of ``w`` trains on the distinct ids (sorted) whose ordinal ``% w == r``,
        rank 0's initial weights are broadcast, and every step's gradients are averaged
        over the ranks (so the effective batch is ``w · batch_size``, and an epoch is
        ``ceil(n / (w · batch_size))`` steps unless ``steps_per_epoch`` is set). Gloo
        for ``device="cpu"``, NCCL for CUDA: ``"auto"`` and ``"cuda"`` mean the
        process's current CUDA device (call ``torch.cuda.set_device(local_rank)``).
        Only rank 0 shows progress, validates and writes checkpoints; ``callback``
        runs on every rank, and a stop on any rank stops all of them after the same
        step or epoch. All ranks end with the same model. A failing rank leaves the
        others waiting until the process group's timeout.
    image_size : int, optional
        Side of the square images read from an
        :class:`~gridmatch.catalogue.ImageCatalogue` (:meth:`fit` and :meth:`embed`
        stream catalogues through the Rust image pipeline: resize of the shorter side +
        centre crop, and when training with ``augment > 0`` a random resized crop, flip
        and colour jitter). Default: 224, or for :meth:`embed` the size the network was
        trained at. Arrays are always taken at their own size.
    on_error : {"raise", "skip"}, default="raise"
        What an image file of a catalogue that cannot be read (missing, truncated,
        undecodable, too large) does: ``"raise"`` a ``DataError`` naming it, or
        ``"skip"`` leave it out, with a ``RuntimeWarning`` giving the count and the
        first message, and the images left out in :attr:`skipped_`. In :meth:`fit` a
        file found unreadable is left out for the rest of the run: a grid cell drawn on
        it takes the next readable image of the same id (catalogue order, wrapping
        around), rendered with the cell's own random draw; which image that is depends
        only on which files are readable, so a seeded run stays reproducible. When
        every image of a drawn id is unreadable, :meth:`fit` raises ``DataError``. In
        :meth:`embed` and :meth:`features` the rows of unreadable images are NaN (the
        other rows are what the same call on a catalogue without those files gives).
        Arrays are not affected.
    image_augment : dict, optional
        How :meth:`fit` augments the views of catalogue photos when ``augment > 0``:
        :class:`~gridmatch.datasets.ImageLoader`'s augmentation settings by name
        (``scale``, ``ratio``, ``flip``, ``jitter``, ``occlusion``, ``blur``,
        ``blur_sigma``, ``degrees``, ``translate``, ``affine_scale``, ``shear``; same
        meanings and ranges), each one given replacing the default recipe's: random
        resized crop of 35–100 % of the area (aspect 3/4–4/3), flip p = 0.5, colour
        jitter 0.4, no occlusion, blur or affine warp. For example
        ``{"blur": 0.5, "degrees": 10}`` adds a Gaussian blur to half the views and
        rotations of up to 10°. Arrays are not affected (they use ``augment``'s own
        distortions).
    precision : {"fp32", "bf16", "fp16"}, default "fp32"
        Arithmetic of the forward passes of :meth:`fit`, :meth:`embed` and
        :meth:`features`. ``"bf16"`` and ``"fp16"`` run the networks under libtorch's
        autocast (as ``torch.autocast(device_type, dtype)`` does: convolutions and
        matrix products in the 16-bit type); the embeddings are normalised, and the
        training similarities and loss computed, in float32; weights, gradients and
        optimiser state stay float32, and results are returned as float32. ``"fp16"``
        training scales the loss (PyTorch's ``GradScaler``
        defaults: scale 2^16, halved and the step skipped when a gradient overflows,
        doubled after 2000 steps without one; the history records ``loss_scale`` and
        ``overflow_steps`` per epoch). Meant for CUDA GPUs (bfloat16 on Ampere and
        later); on a CPU both run, fast only where it has native 16-bit arithmetic
        (AVX-512-BF16, AMX), several times slower than float32 elsewhere.

    Attributes
    ----------
    model_ : gridmatch._core.GsnModel
        The trained network.
    history_ : list of dict
        Per epoch: ``epoch``, ``loss``, ``lr`` (the rate of the epoch's last step),
        ``seconds`` and validation metrics; training on a catalogue with
        ``on_error="skip"`` adds ``skipped``, the number of files found unreadable up
        to the epoch's end (this process's, when training data-parallel).
    skipped_ : list of (id, str)
        With ``on_error="skip"``: the catalogue id and message (naming the file) of each
        image left out by the last :meth:`fit`, :meth:`embed` or :meth:`features` call
        on a catalogue (in catalogue order; empty when none was, or after a call on an
        array).
    n_channels_ : int
        Channels of the training images.
    interrupted_ : bool
        Whether training stopped early (Ctrl-C or callback).

    Examples
    --------
    >>> gsn = gm.GridSearchNetwork(epochs=1).fit(X, ids)  # doctest: +SKIP
    >>> E = gsn.embed(X_test)  # doctest: +SKIP

    Data-parallel on two processes (a script calling ``fit`` as usual; see
    ``examples/train_torchrun.py`` and ``examples/train_ray.py``)::

        torchrun --nproc_per_node=2 examples/train_torchrun.py
    """

    def __init__(
        self,
        backbone: str = "convnet",
        dim: int = 128,
        grid: tuple[int, int] = (3, 3),
        positives: int = 1,
        negatives: Any = "random",
        loss: Any = "double-margin",
        mode: str = "batch",
        epochs: int = 5,
        batch_size: int = 64,
        lr: float = 1e-3,
        optimizer: str = "adam",
        schedule: str = "cosine",
        weight_decay: float = 0.0,
        augment: float = 1.0,
        steps_per_epoch: int | None = None,
        hi: float | None = None,
        lo: float | None = None,
        balance: bool | None = None,
        temperature: float | None = None,
        margin: float | None = None,
        weights: Any = None,
        normalize: str | None = "auto",
        device: str = "auto",
        seed: int = 0,
        checkpoint_dir: str | os.PathLike | None = None,
        progress: bool = True,
        verbose: bool | None = None,
        distributed: Any = "auto",
        image_size: int | None = None,
        on_error: str = "raise",
        image_augment: dict[str, Any] | None = None,
        precision: str = "fp32",
    ):
        self.backbone = backbone
        self.dim = dim
        self.grid = grid
        self.positives = positives
        self.negatives = negatives
        self.loss = loss
        self.mode = mode
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.schedule = schedule
        self.weight_decay = weight_decay
        self.augment = augment
        self.steps_per_epoch = steps_per_epoch
        self.hi = hi
        self.lo = lo
        self.balance = balance
        self.temperature = temperature
        self.margin = margin
        self.weights = weights
        self.normalize = normalize
        self.device = device
        self.seed = seed
        self.checkpoint_dir = checkpoint_dir
        self.progress = progress
        self.verbose = verbose
        self.distributed = distributed
        self.image_size = image_size
        self.on_error = on_error
        self.image_augment = image_augment
        self.precision = precision

    # -- validation ---------------------------------------------------------------
    def _check_params(self) -> dict[str, Any]:
        """Check the parameters (``ConfigError`` naming the first bad one), converted."""
        if _is_module(self.backbone):
            if self.weights is not None:
                raise ConfigError(
                    "weights= loads the built-in backbones' weights; load a module "
                    "backbone's weights in PyTorch before passing it"
                )
        else:
            _params.choice(self.backbone, "backbone", BACKBONES, other="a torch.nn.Module")
        miner = miners.resolve(self.negatives)
        loss = self._loss()
        _params.choice(self.mode, "mode", ("batch", "stitched"))
        _params.choice(self.optimizer, "optimizer", ("adam", "sgd"))
        _params.choice(self.schedule, "schedule", ("constant", "cosine", "step"))
        rows, cols = _params.int_tuple(self.grid, "grid", ("rows", "cols"), low=1)
        cells = rows * cols
        positives = _params.integer(self.positives, "positives", low=1)
        if positives >= cells:
            raise ConfigError(
                f"positives must be in [1, {cells}) for a {rows}x{cols} grid, got {positives}"
            )
        if self.mode == "stitched" and not loss.is_grid:
            raise ConfigError("mode='stitched' needs a grid loss ('double-margin', 'grid-softmax')")
        batch = _params.integer(self.batch_size, "batch_size", low=2)
        if batch // (positives + 1) < 2:
            raise ConfigError(
                f"batch_size={batch} must hold at least 2 ids of positives+1={positives + 1} views"
            )
        _params.device(self.device)
        _distributed.check(self.distributed)
        _backbone_weights.check(self.weights, self.backbone)
        _params.choice(self.normalize, "normalize", ("auto", "imagenet", "legacy"), optional=True)
        return {
            "image_size": _params.integer(self.image_size, "image_size", 4, 16384, optional=True),
            "skip_errors": _params.choice(self.on_error, "on_error", ("raise", "skip")) == "skip",
            "image_augment": _augment.from_mapping(self.image_augment, "image_augment"),
            "precision": self._precision(),
            "rows": rows,
            "cols": cols,
            "positives": positives,
            "dim": _params.integer(self.dim, "dim", low=1),
            "epochs": _params.integer(self.epochs, "epochs", low=0),
            "batch_size": batch,
            "lr": _params.real(self.lr, "lr", low=0, low_open=True),
            "weight_decay": _params.real(self.weight_decay, "weight_decay", low=0),
            "augment": _params.real(self.augment, "augment", low=0),
            "loss": loss.spec(),
            "progress": self._progress(),
            "negatives": miner.name,
            "seed": _params.integer(self.seed, "seed", low=0),
            "steps_per_epoch": _params.integer(
                self.steps_per_epoch, "steps_per_epoch", low=1, optional=True
            ),
        }

    def _precision(self) -> str:
        """``precision``, checked."""
        return str(_params.choice(self.precision, "precision", _core.PRECISION_NAMES))

    def _train_spec(self, p: dict[str, Any]) -> str:
        """The training spec the core reads (one JSON value; see ``src/train/spec.rs``)."""
        return json.dumps(
            {
                "loss": p["loss"],
                "grid": {"rows": p["rows"], "cols": p["cols"], "positives": p["positives"]},
                "negatives": p["negatives"],
                "epochs": p["epochs"],
                "steps_per_epoch": p["steps_per_epoch"],
                "batch_size": p["batch_size"],
                "lr": p["lr"],
                "optimizer": self.optimizer,
                "schedule": self.schedule,
                "weight_decay": p["weight_decay"],
                "augment": p["augment"],
                "seed": p["seed"],
            }
        )

    def _progress(self) -> bool:
        """Whether to show a progress bar (``progress``, or the deprecated ``verbose``)."""
        if self.verbose is None:
            return _params.flag(self.progress, "progress")
        warnings.warn(
            "GridSearchNetwork(verbose=...) is deprecated and will be removed in the next "
            "release: use progress=...",
            DeprecationWarning,
            stacklevel=4,
        )
        return _params.flag(self.verbose, "verbose")

    def _loss(self) -> losses.Loss:
        """The loss object: ``loss`` resolved, with the deprecated flat parameters."""
        flat = {k: getattr(self, k) for k in _FLAT_LOSS_PARAMS if getattr(self, k) is not None}
        if isinstance(self.loss, losses.Loss):
            if flat:
                raise ConfigError(
                    f"give the loss's parameters in the loss object, not as {sorted(flat)}"
                )
            return self.loss
        loss = losses.resolve(self.loss)
        if not flat:
            return loss
        warnings.warn(
            f"GridSearchNetwork({', '.join(f'{k}=' for k in sorted(flat))}...) is deprecated "
            f"and will be removed in the next release: use loss=gm.losses."
            f"{type(loss).__name__}(...)",
            DeprecationWarning,
            stacklevel=4,
        )
        for k, v in flat.items():  # every flat value is checked by its rule, as before
            if k == "balance":
                _params.flag(v, "balance")
            elif k == "temperature":
                losses.GridSoftmax(temperature=v).spec()
            elif k == "margin":
                losses.Triplet(margin=v).spec()
            else:
                _params.real(v, k)
        own = {k: v for k, v in flat.items() if k in loss.get_params()}
        return loss.set_params(**own)

    def _config_json(self, n_channels: int) -> str:
        params = self.get_params(deep=False)
        if isinstance(params["loss"], losses.Loss):
            params["loss"] = params["loss"].spec()
        if isinstance(params["negatives"], miners.Miner):
            params["negatives"] = params["negatives"].spec()
        params["weights"] = _backbone_weights.describe(params["weights"])
        if params["checkpoint_dir"] is not None:
            params["checkpoint_dir"] = str(params["checkpoint_dir"])
        if not isinstance(params["backbone"], str):  # a module: the program is backbone.pt
            params["backbone"] = {"torchscript": _SCRIPT_FILE}
        params["grid"] = list(params["grid"])
        shape = getattr(self, "image_shape_", None)
        return json.dumps(
            {
                "format": _FORMAT,
                "version": _VERSION,
                "params": params,
                "n_channels": n_channels,
                "image_shape": None if shape is None else list(shape),
                "history": getattr(self, "history_", []),
            },
            indent=2,
        )

    def _new_model(
        self,
        p: dict[str, Any],
        n_channels: int,
        device: str | None = None,
        image_hw: tuple[int, int] = (224, 224),
        script_file: Path | None = None,
    ) -> Any:
        """The core model; a module ``backbone`` is converted to TorchScript (or read from
        ``script_file``), its probe pass run on ``image_hw`` images."""
        args = (n_channels, p["dim"], self.mode == "stitched")
        dev = self.device if device is None else device
        norm = "none" if self.normalize is None else self.normalize
        if isinstance(self.backbone, str):
            model = _core.GsnModel(self.backbone, *args, dev, p["seed"], norm)
        elif script_file is not None:
            script = (str(script_file), *image_hw)
            model = _core.GsnModel("torchscript", *args, dev, p["seed"], norm, script)
        else:
            import torch

            program = _export_buffers(
                _torchscript(self.backbone, (n_channels, *image_hw)),
                warn=_distributed.active(self.distributed),
            )
            with tempfile.TemporaryDirectory(prefix="gridmatch-gsn-") as d:
                path = Path(d) / _SCRIPT_FILE
                torch.jit.save(program, str(path))
                script = (str(path), *image_hw)
                model = _core.GsnModel("torchscript", *args, dev, p["seed"], norm, script)
        _backbone_weights.load_into(model, self.weights, self.backbone)
        return model

    # -- training -----------------------------------------------------------------
    def fit(
        self,
        X: Any,
        ids: Any = None,
        classes: Any = None,
        *,
        X_val: Any = None,
        ids_val: Any = None,
        callback: Callable[[int, int, dict[str, float]], Any] | None = None,
    ) -> GridSearchNetwork:
        """Train the network.

        Parameters
        ----------
        X : array-like, torch.Tensor or ImageCatalogue
            Training images (see :func:`as_images`; ``uint8`` arrays stay ``uint8``,
            each step's images are converted when gathered), or a catalogue of photos,
            streamed: each step decodes only its own images (in parallel, in Rust, at
            ``image_size``), so memory does not grow with the catalogue. With
            ``augment > 0`` a catalogue's views are the image pipeline's random resized
            crop (area 35–100 %), horizontal flip and colour jitter, or the recipe
            ``image_augment`` gives (the array augmentations are not applied); with
            ``augment=0`` the resized centre crop. A missing or undecodable file raises
            ``DataError`` naming it. Images given as an array of any dtype but
            ``uint8`` are taken as they are and are expected in ``[0, 1]`` (the network
            normalises them itself, as ``normalize`` says): values outside ``[-1, 2]``
            (a 0–255 scale, or images normalised already) give an
            :class:`~gridmatch.exceptions.InputScaleWarning`; with ``normalize=None``,
            under which the values reach the backbone unchanged, only non-negative values
            beyond 2 (a 0–255 scale) do. The same holds for ``X_val``.
        ids : array-like of shape (n,)
            Product / instance id of each image (images of one id are positives).
            With one image per id, the positives are augmented views of it (so
            ``augment=0`` with one image per id is refused). Default for a
            catalogue: its product ids (required for arrays).
        classes : array-like of shape (n,), optional
            Class of each image, used by ``negatives="hard"``. Default for a
            catalogue: its classes, when it has them.
        X_val, ids_val : optional
            Validation images and ids: leave-one-out recall@1 is reported per epoch.
            ``X_val`` may be a catalogue (decoded whole at ``image_size`` before
            training: keep it small; ``ids_val`` then defaults to its ids); validation
            arrays must have the training images' shape.
        callback : callable, optional
            ``callback(epoch, epochs, metrics)`` after every epoch; returning ``False``
            stops training (the model trained so far is kept). Data-parallel, it runs
            on every rank (``loss`` is the mean over the ranks; validation metrics only
            on rank 0), and ``False`` on any rank stops all ranks after that epoch.

        Notes
        -----
        Inside an initialised ``torch.distributed`` process group (and unless
        ``distributed=False``) training is data-parallel: see the ``distributed``
        parameter. For example, with this script as ``train.py``::

            import torch.distributed as dist
            import gridmatch as gm

            dist.init_process_group("gloo")  # "nccl" with device="cuda"
            X, y = gm.datasets.load("fashion-mnist", "train")
            gsn = gm.GridSearchNetwork(device="cpu").fit(X, y)  # same call on every rank
            if dist.get_rank() == 0:
                gsn.save("model")

        run ``torchrun --nproc_per_node=2 train.py``.

        Returns
        -------
        self : GridSearchNetwork

        Warns
        -----
        InputScaleWarning
            Once per array (``X``, ``X_val``) whose values are not on the ``[0, 1]``
            scale (see ``X``): a float array on a 0–255 scale trains without an error,
            on the wrong scale.
        InterruptedWarning
            When Ctrl-C or the callback stopped training early.
        RuntimeWarning
            With ``on_error="skip"``, when files were left out (see :attr:`skipped_`).

        Raises
        ------
        ConfigError
            An invalid parameter, or parameters that contradict each other (the message
            names them); ``distributed=True`` without a process group; data-parallel
            with fewer than 2 distinct ids per rank, or ranks given different data.
        ShapeError
            Badly shaped or non-finite images and ids, or fewer than 2 distinct ids.
        ValueError
            Fewer images than grid cells, or one image per id with ``augment=0``.
        BackendError
            If training diverged (the loss became NaN or infinite), or a collective of
            data-parallel training failed.
        DataError
            If ``weights`` names a missing file or does not fit the backbone, or
            ``weights="imagenet"`` cannot be downloaded; a catalogue file that cannot be
            read (``on_error="raise"``), or a drawn id none of whose files can be read
            (``on_error="skip"``).
        """
        p = self._check_params()
        dp = _distributed.group(self.distributed)
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
        ids = _labels(ids, n, "ids")
        cls = None if classes is None else _labels(classes, n, "classes")
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
                stacklevel=2,
            )
        cells = p["rows"] * p["cols"]
        if n < cells:
            raise ValueError(
                f"grid={tuple(self.grid)} has {cells} cells but X holds only {n} "
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
            iv = _labels(ids_val, xv.shape[0], "ids_val")
            if xv.shape[1:] != images.shape:
                raise ShapeError(f"X_val images {xv.shape[1:]} differ from X's {images.shape}")
        train_images = images.training_images(p["image_augment"], p["skip_errors"])
        given_arrays = [(images, train_images)] + ([] if val is None else [(val, xv)])
        for given, pixels in given_arrays:  # float images on another scale: a warning
            if given.check_scale:
                assert given.array is not None
                lo, hi = float(pixels.min()), float(pixels.max())
                warn_scale(given.name, given.array.dtype, lo, hi, self.normalize, "fit", 2)
        self.n_channels_ = int(images.shape[0])
        self.image_shape_ = tuple(images.shape)
        self.image_size_ = size if images.catalogue is not None else None
        model = self._new_model(
            p,
            self.n_channels_,
            None if dp is None else _distributed.device_for(self.device),
            image_hw=(int(images.shape[1]), int(images.shape[2])),
        )
        self.history_ = []
        self.skipped_: list[tuple[Any, str]] = []
        self.interrupted_ = False
        if p["epochs"] == 0:
            self.model_ = model
            return self
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

        model.precision = p["precision"]
        try:
            ckpt = self.checkpoint_dir if lead else None
            history, interrupted, skipped = model.fit(
                (train_images, ids, cls),
                self._train_spec(p),
                None if xv is None or not lead else (xv, iv),
                None if ckpt is None else (str(ckpt), self._config_json(self.n_channels_)),
                on_epoch,
                None if dp is None else (dp[0], dp[1], _distributed.hook(dp[1])),
            )
        finally:
            if bar is not None:
                bar.close()
        self.history_ = [{"epoch": i + 1, **dict(h)} for i, h in enumerate(history)]
        for h in self.history_:
            for k in ("skipped", "overflow_steps"):
                if k in h:
                    h[k] = int(h[k])
        self._record_skipped(images, skipped, "fit left out", "for the rest of the run", 3)
        bad = [h["epoch"] for h in self.history_ if not np.isfinite(h.get("loss", 0.0))]
        if bad:
            from .exceptions import BackendError

            raise BackendError(
                f"training diverged: the loss is NaN or infinite from epoch {bad[0]} on "
                f"(lr={self.lr!r}); lower lr or check the input scale"
            )
        self.model_ = model
        self.interrupted_ = bool(interrupted)
        if interrupted:
            warnings.warn(
                f"training stopped after {len(self.history_)} of {p['epochs']} epochs; "
                "the model trained so far is kept",
                InterruptedWarning,
                stacklevel=2,
            )
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError(
                "this GridSearchNetwork is not fitted yet; call fit (epochs=0 for an "
                "untrained network) or GridSearchNetwork.load"
            )

    def embed(self, X: Any, batch_size: int | None = None) -> Any:
        """Embed images with the query network.

        Parameters
        ----------
        X : array-like, torch.Tensor or ImageCatalogue
            Images, in the layout accepted by :meth:`fit`, or a catalogue of photos
            (streamed through the Rust image pipeline at ``image_size``, else the size
            the network was trained at, else 224: resize of the shorter side + centre
            crop, no augmentation).
            Arrays are converted one batch at a time; as in :meth:`fit`, an array of
            any dtype but ``uint8`` is expected in ``[0, 1]``.
        batch_size : int, optional
            Images per forward pass. By default about 1.6 million pixels per batch
            (32 images of 224 × 224, 256 of 28 × 28; between 8 and 256): larger batches
            of large images run slower on the CPU (their activations leave the caches;
            at 224 px a batch of 256 measured 0.6× the speed of 32). A catalogue holds at
            most ``batch_size`` times (``2 · threads + 1``) decoded images at a time.

        Returns
        -------
        ndarray of float32, shape (n, dim), or torch.Tensor
            L2-normalised embeddings, in the order of ``X`` (a catalogue's order); a
            torch tensor (on ``X``'s device) when ``X`` is one.

        Raises
        ------
        ShapeError
            Badly shaped images, NaN/inf values, or another number of channels than
            the network's (a catalogue gives 3).
        DataError
            A catalogue file that is missing, truncated, undecodable or too large
            (``on_error="raise"``), or every file of the catalogue (``"skip"``).

        Warns
        -----
        InputScaleWarning
            Once per call, when an array's values are not on the ``[0, 1]`` scale (the
            rule of :meth:`fit`'s ``X``), e.g. floats on a 0–255 scale.
        RuntimeWarning
            With ``on_error="skip"``, when files were left out: their rows are NaN
            (find them with ``np.isnan(E).any(axis=1)``; see :attr:`skipped_`).
        """
        self._check_fitted()
        return self._forward(X, batch_size, self.model_.embed, "embed")

    def features(self, X: Any, batch_size: int | None = None) -> Any:
        """Pooled backbone features of the query network, before the head.

        The images are normalised as ``normalize`` says, run through the backbone, and
        its last feature map is averaged over its positions: for the ResNets, what
        torchvision's model gives with ``fc = nn.Identity()`` (eval mode).

        Parameters
        ----------
        X : array-like, torch.Tensor or ImageCatalogue
            Images or a catalogue of photos, as :meth:`embed` takes them.
        batch_size : int, optional
            Images per forward pass (default as :meth:`embed`).

        Returns
        -------
        ndarray of float32, shape (n, channels), or torch.Tensor
            Features (512 channels for ResNet-18, 2048 for ResNet-50, 128 for the
            convnet; a module backbone's output channels, its ``(n, c)`` output as it
            is); a torch tensor (on ``X``'s device) when ``X`` is one.

        Warns
        -----
        InputScaleWarning
            As :meth:`embed`: once per call, for an array not on the ``[0, 1]`` scale.
        """
        self._check_fitted()
        return self._forward(X, batch_size, self.model_.features, "features")

    def _forward(self, X: Any, batch_size: int | None, run: Callable[..., Any], what: str) -> Any:
        """``run(images, batch_size)`` on ``X`` (an array converted per batch, or a
        catalogue streamed), returned as numpy, or as a torch tensor on ``X``'s device
        when ``X`` is one."""
        skip = _params.choice(self.on_error, "on_error", ("raise", "skip")) == "skip"
        self.model_.precision = self._precision()
        as_torch = _is_torch(X)
        images = Images(X, self._image_size())
        if batch_size is None:
            h, w = images.shape[-2:]
            batch = min(256, max(8, _BATCH_PIXELS // (h * w)))
        else:
            batch = _params.integer(batch_size, "batch_size", low=1)
        out = self._run_batches(images, batch, run, skip, what)
        if as_torch:
            import torch

            return torch.from_numpy(out).to(X.device)
        return out

    def _image_size(self) -> int:
        """Side of catalogue images: ``image_size``, else the training size, else 224."""
        size = _params.integer(self.image_size, "image_size", 4, 16384, optional=True)
        if size is None:
            size = getattr(self, "image_size_", None)
        return DEFAULT_IMAGE_SIZE if size is None else int(size)

    def _run_batches(
        self, images: Images, batch_size: int, run: Callable[..., Any], skip: bool, what: str
    ) -> np.ndarray:
        """``run(batch, batch_size)`` (embeddings or features) of ``images``, one forward
        batch at a time, put in order; with ``skip`` the rows of unreadable catalogue
        files are NaN (and recorded in ``skipped_``)."""
        if images.shape[0] != self.n_channels_:
            raise ShapeError(
                f"{images.name} has {images.shape[0]} channels, the network was built for "
                f"{self.n_channels_}"
            )
        skip = skip and images.catalogue is not None
        out: np.ndarray | None = None
        filled = 0
        skipped: list[tuple[int, str]] = []
        lo, hi = np.inf, -np.inf  # the values of an array taken as they are
        # On the CPU, libtorch's freed blocks are kept from one batch to the next for the
        # whole loop (gridmatch._core.CpuCacheWindow): no page faults on every batch's
        # activations, and a peak that does not creep up over a long catalogue.
        window = _core.CpuCacheWindow() if self.model_.device == "cpu" else nullcontext()
        with window:
            for b, idx, left_out in images.indexed_batches(batch_size, skip_errors=skip):
                skipped += left_out
                if b.shape[0] == 0:
                    continue
                if images.check_scale:
                    lo, hi = min(lo, float(b.min())), max(hi, float(b.max()))
                e = run(b, batch_size)
                if out is None:
                    out = np.full((images.n, e.shape[1]), np.nan, np.float32)
                out[idx] = e
                filled += e.shape[0]
        if images.check_scale:
            assert images.array is not None
            warn_scale(images.name, images.array.dtype, lo, hi, self.normalize, what, 4)
        self._record_skipped(images, skipped, f"{what} left out", "(their rows are NaN)", 5)
        if out is None:
            raise DataError(
                f"every one of the {images.n} images of {images.name} is unreadable; "
                f"first: {skipped[0][1] if skipped else '?'}"
            )
        assert filled + len(skipped) == images.n
        return out

    def _record_skipped(
        self,
        images: Images,
        skipped: list[tuple[int, str]],
        done: str,
        effect: str,
        stacklevel: int,
    ) -> None:
        """``skipped_`` from the ``(position, message)`` of the images left out, and a
        ``RuntimeWarning`` giving their count and the first message."""
        skipped = sorted(skipped)
        ids = None if images.catalogue is None else images.catalogue.ids
        self.skipped_ = [(i if ids is None else ids[i], msg) for i, msg in skipped]
        if skipped:
            warnings.warn(
                f"GridSearchNetwork.{done} {len(skipped)} unreadable image file(s) {effect} "
                f"(see skipped_); first: {skipped[0][1]}",
                RuntimeWarning,
                stacklevel=stacklevel,
            )

    def transform(self, X: Any) -> Any:
        """Alias of :meth:`embed` (scikit-learn transformer convention).

        Parameters
        ----------
        X : array-like or torch.Tensor
            Images.

        Returns
        -------
        ndarray of float32, shape (n, dim)
            Embeddings.
        """
        return self.embed(X)

    # -- persistence ----------------------------------------------------------------
    @staticmethod
    def _trusted_script(path: Path, config: dict[str, Any], entry: Any, trust: Any) -> Path:
        """The checked TorchScript file of a saved model (``DataError`` without trust, for
        an unknown entry or a file that does not match its checksum)."""
        if entry != {"torchscript": _SCRIPT_FILE}:
            raise DataError(f"{path / 'config.json'}: unknown backbone entry {entry!r}")
        script = path / _SCRIPT_FILE
        if not trust:
            raise DataError(
                f"{script} is a TorchScript program (the model's backbone), i.e. code that "
                "runs when the model is used, not only weights; load it only from a source "
                "you trust, with GridSearchNetwork.load(..., trust_torchscript=True)"
            )
        _verify_checksum(script, config, "backbone_sha256", path / "config.json")
        return script

    def save(self, path: str | os.PathLike) -> Path:
        """Save to a folder: ``weights.safetensors`` and ``config.json`` (atomic writes).

        A module backbone is saved as its TorchScript program with its trained
        parameters and buffers, ``backbone.pt`` (its SHA-256 in ``config.json``); loading
        it needs ``trust_torchscript=True``.

        Parameters
        ----------
        path : path-like
            Folder (created if needed).

        Returns
        -------
        Path
            The folder.
        """
        self._check_fitted()
        path = Path(path)
        self.model_.save(str(path), self._config_json(self.n_channels_))
        return path

    def __getstate__(self) -> dict[str, Any]:
        # Pickling (copy.deepcopy, joblib, multiprocessing) carries the two files that
        # save() writes, not the libtorch model; unpickling goes through load()'s checks.
        state = super().__getstate__()
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(state.get("backbone"), torch.jit.ScriptModule):
            # a ScriptModule does not pickle: it travels as its TorchScript bytes
            buf = io.BytesIO()
            torch.jit.save(state["backbone"], buf)
            state = {**state, "backbone": {"_gridmatch_torchscript": buf.getvalue()}}
        if "model_" not in state:
            return state
        state = dict(state)
        del state["model_"]
        with tempfile.TemporaryDirectory(prefix="gridmatch-gsn-") as d:
            self.save(d)
            names = ["config.json", "weights.safetensors"]
            names += [_SCRIPT_FILE] if (Path(d) / _SCRIPT_FILE).is_file() else []
            state["_gridmatch_gsn"] = {name: (Path(d) / name).read_bytes() for name in names}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        files = state.pop("_gridmatch_gsn", None)
        program = state.get("backbone")
        if isinstance(program, dict) and "_gridmatch_torchscript" in program:
            import torch

            data = io.BytesIO(program["_gridmatch_torchscript"])
            state["backbone"] = torch.jit.load(data, map_location="cpu")
        super().__setstate__(state)
        if files is not None:
            with tempfile.TemporaryDirectory(prefix="gridmatch-gsn-") as d:
                for name, data in files.items():
                    (Path(d) / name).write_bytes(data)
                # unpickling runs the pickle's code anyway: its program is trusted alike
                self.model_ = type(self).load(d, trust_torchscript=True).model_

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        device: str | None = None,
        *,
        trust_torchscript: bool = False,
    ) -> GridSearchNetwork:
        """Load a model written by :meth:`save` (or a training checkpoint).

        Parameters
        ----------
        path : path-like
            The folder.
        device : str, optional
            Override the saved ``device`` (e.g. ``"cpu"`` for a model trained on CUDA).
        trust_torchscript : bool, default False
            Whether to load a model whose backbone is a TorchScript program
            (``backbone.pt``, saved for a module ``backbone``). A TorchScript file is
            code that runs when the model is used, so it is loaded only from a source
            you trust, and only when this is ``True``; the built-in backbones' files
            hold no code and need no flag. The Python class of the module is not
            needed: the loaded estimator's ``backbone`` is the program
            (``torch.jit.load``).

        Returns
        -------
        GridSearchNetwork
            A fitted estimator.

        Raises
        ------
        DataError
            Missing, truncated or modified files (``config.json`` records the SHA-256 of
            ``weights.safetensors`` and ``backbone.pt``), another format version, or an
            invalid config or weights that do not fit the configured network; a
            TorchScript backbone without ``trust_torchscript=True``.
        """
        path = Path(path)
        trust_torchscript = _params.flag(trust_torchscript, "trust_torchscript")
        cfg_path, weights = path / "config.json", path / "weights.safetensors"
        try:
            config = json.loads(cfg_path.read_text())
        except (OSError, ValueError) as e:
            raise DataError(f"cannot read {cfg_path}: {e}") from None
        if not isinstance(config, dict) or config.get("format") != _FORMAT:
            raise DataError(f"{cfg_path} is not a saved GridSearchNetwork")
        if config.get("version") != _VERSION:
            raise DataError(
                f"{cfg_path}: format version {config.get('version')!r} is not supported "
                f"(this gridmatch reads version {_VERSION})"
            )
        _verify_checksum(weights, config, "weights_sha256", cfg_path)
        try:
            params = dict(config["params"])
            params["grid"] = tuple(params["grid"])
            if params.get("verbose") is not None and "progress" not in params:
                params["progress"] = params.pop("verbose")  # files of earlier versions
            if isinstance(params.get("negatives"), dict):  # a miner object's spec
                params["negatives"] = miners.from_spec(params["negatives"])
            if isinstance(params.get("loss"), dict):  # a loss object's spec
                params["loss"] = losses.from_spec(params["loss"])
            else:  # a loss name, with flat parameters in files of earlier versions
                old = {k: params.pop(k, None) for k in _FLAT_LOSS_PARAMS}
                old = {k: v for k, v in old.items() if v is not None}
                if old:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", DeprecationWarning)
                        params["loss"] = cls(loss=params["loss"], **old)._loss()
            if device is not None:
                params["device"] = device
            params["weights"] = None
            # models saved before the setting normalised as "legacy" does
            params.setdefault("normalize", "legacy")
            script = None
            if isinstance(params.get("backbone"), dict):
                script = cls._trusted_script(path, config, params["backbone"], trust_torchscript)
                import torch

                params["backbone"] = torch.jit.load(str(script), map_location="cpu")
            est = cls(**params)
            p = est._check_params()
            est.n_channels_ = int(config["n_channels"])
            shape = config.get("image_shape")
            if shape is not None:
                est.image_shape_ = tuple(int(s) for s in shape)
            hw = (224, 224) if shape is None else (int(shape[1]), int(shape[2]))
        except DataError:
            raise
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise DataError(f"{cfg_path}: invalid model config ({type(e).__name__}: {e})") from None
        if est.n_channels_ not in (1, 3):
            raise DataError(f"{cfg_path}: n_channels must be 1 or 3, got {est.n_channels_}")
        est.model_ = est._new_model(p, est.n_channels_, image_hw=hw, script_file=script)
        est.model_.load_weights(str(weights))
        est.history_ = list(config.get("history", []))
        est.interrupted_ = False
        return est
