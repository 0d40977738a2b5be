"""Grid Search Network: learn image embeddings by finding a query's matches in a grid.

The network is trained on grids of ``rows × cols`` images holding ``positives`` other
views of the query's product and negatives of other products; the loss acts on the
similarity map of the query against the grid. Training runs in Rust (libtorch through
``tch``) with the GIL released; progress is reported once per epoch. Inside an
initialised ``torch.distributed`` process group (``torchrun``, Ray Train) training is
data-parallel.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sklearn.base import BaseEstimator

from .._base.exceptions import NotFittedError
from . import inference, training
from .persistent import Persistent

__all__ = ["GridSearchNetwork"]


class GridSearchNetwork(Persistent, BaseEstimator):
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
    grid : tuple of int, default (4, 4)
        ``(rows, cols)`` of the grid. The defaults (a 4×4 grid of mined negatives,
        ``loss="grid-softmax"``) are the best configuration measured on validation
        splits (README, "Defaults"); the paper's is ``loss="double-margin"`` (with
        ``DoubleMargin(balance=False)``), ``grid=(3, 3)``, ``negatives="random"``.
    positives : int, default 1
        Positive cells per grid (``1 <= positives < rows*cols``); a batch holds
        ``positives + 1`` views of each id.
    negatives : gridmatch.miners.Miner or str, default "mined"
        The miner of each grid's negatives (:mod:`gridmatch.miners`), or its name:
        drawn at random (``Random()``, ``"random"``), from the query's class
        (``SameClass()``, ``"hard"``: ``classes`` given to :meth:`fit`; without them,
        mined), the most similar under the current embeddings (``Mined()``,
        ``"mined"``), or semi-hard under them (``SemiHard()``, ``"semihard"``: the most
        similar ones that are still less similar than the grid's positives, as in
        semi-hard triplet mining; then the least similar others). Similarities come from
        the query network (in ``mode="stitched"`` too). How the miners compare: see
        BENCHMARKS.md, section "Grid Search Network", findings.
    loss : gridmatch.losses.Loss or str, default "grid-softmax"
        A loss object with its parameters (:mod:`gridmatch.losses`): the grid losses
        ``DoubleMargin(hi, lo, balance)`` (the paper's) and ``GridSoftmax(temperature)``,
        or the baselines ``Triplet(margin)``, ``Contrastive(margin)``,
        ``NTXent(temperature)``, ``MultiSimilarity(alpha, beta, base)`` and the proxy
        loss ``ArcFace(margin, scale)``; or the name of one (``"double-margin"``,
        ``"grid-softmax"``, ``"triplet"``, ``"contrastive"``, ``"ntxent"``,
        ``"multi-similarity"``, ``"arcface"``) meaning its defaults.
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
    backbone_lr : float, optional
        Learning rate of the backbone's parameters (the head keeps ``lr``). Default:
        ``lr / 10`` for a pretrained backbone (``weights`` given, or a module
        ``backbone``: the best measured fine-tuning recipe, README "Fine-tuning"),
        ``lr`` for one trained from scratch. The warm-up and the schedule scale both
        rates alike.
    freeze_backbone_epochs : int, default 0
        Epochs at the start in which only the head trains (the backbone's parameters
        get no gradients; its BatchNorm statistics still update unless ``freeze_bn``).
    freeze_bn : bool, default False
        Keep the backbone's BatchNorm layers as they are: in training they normalise
        with their running statistics (as in eval mode), which are not updated, and
        their affine parameters are not trained; the rest of the backbone trains. For
        a pretrained backbone fine-tuned on small batches. A module backbone runs in
        eval mode in training then (its dropout is off too).
    warmup_steps : int, default 0
        Steps of linear warm-up: the rates rise as ``(step + 1) / warmup_steps`` of
        their values, then the schedule runs over the remaining steps (counted from the
        first step, frozen epochs included).
    augment : float, default 1.0
        Strength of the seeded view augmentations (affine, crop, elastic, occlusion,
        blur, noise, contrast); ``0`` disables them.
    steps_per_epoch : int, optional
        Steps per epoch (default: one pass, ``ceil(n / batch_size)``).
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
        :class:`~gridmatch.datasets.ImageCatalogue` (:meth:`fit` and :meth:`embed`
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
    precision : {"fp32", "bf16", "fp16", "auto"}, default "fp32"
        Arithmetic of the forward passes of :meth:`fit`, :meth:`embed` and
        :meth:`features`. ``"bf16"`` and ``"fp16"`` run the networks under libtorch's
        autocast (as ``torch.autocast(device_type, dtype)`` does: convolutions and
        matrix products in the 16-bit type); the embeddings are normalised, and the
        training similarities and loss computed, in float32; weights, gradients and
        optimiser state stay float32, and results are returned as float32. ``"fp16"``
        training scales the loss (PyTorch's ``GradScaler``
        defaults: scale 2^16, halved and the step skipped when a gradient overflows,
        doubled after 2000 steps without one; the history records ``loss_scale`` and
        ``overflow_steps`` per epoch). Fast on CUDA GPUs (bfloat16 on Ampere and later)
        and on CPUs with AMX (Intel Xeon 4th generation and later: a ResNet step 2.2x
        float32); several times slower than float32 on CPUs without native 16-bit
        matrix units (AVX2-only ones: a convnet step ~10x, a ResNet-18 step ~14x).
        ``"auto"``: ``"bf16"`` on a CUDA device with bfloat16 and on an AMX CPU,
        ``"fp32"`` elsewhere; ``model_.precision`` says what was picked.

    Attributes
    ----------
    model_ : gridmatch._core.GsnModel
        The trained network.
    history_ : list of dict
        Per epoch: ``epoch``, ``loss``, ``lr`` (the rate of the epoch's last step; with
        a fine-tuning setting also ``backbone_lr``, 0 in the backbone's frozen epochs),
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
        grid: tuple[int, int] = (4, 4),
        positives: int = 1,
        negatives: Any = "mined",
        loss: Any = "grid-softmax",
        mode: str = "batch",
        epochs: int = 5,
        batch_size: int = 64,
        lr: float = 1e-3,
        optimizer: str = "adam",
        schedule: str = "cosine",
        weight_decay: float = 0.0,
        backbone_lr: float | None = None,
        freeze_backbone_epochs: int = 0,
        freeze_bn: bool = False,
        warmup_steps: int = 0,
        augment: float = 1.0,
        steps_per_epoch: int | None = None,
        weights: Any = None,
        normalize: str | None = "auto",
        device: str = "auto",
        seed: int = 0,
        checkpoint_dir: str | os.PathLike | None = None,
        progress: bool = True,
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
        self.backbone_lr = backbone_lr
        self.freeze_backbone_epochs = freeze_backbone_epochs
        self.freeze_bn = freeze_bn
        self.warmup_steps = warmup_steps
        self.augment = augment
        self.steps_per_epoch = steps_per_epoch
        self.weights = weights
        self.normalize = normalize
        self.device = device
        self.seed = seed
        self.checkpoint_dir = checkpoint_dir
        self.progress = progress
        self.distributed = distributed
        self.image_size = image_size
        self.on_error = on_error
        self.image_augment = image_augment
        self.precision = precision

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
        return training.fit(self, X, ids, classes, X_val, ids_val, callback)

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
        return inference.forward(self, X, batch_size, self.model_.embed, "embed")

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
        return inference.forward(self, X, batch_size, self.model_.features, "features")

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

    def export(self, path: str | os.PathLike, format: str = "onnx") -> Path:
        """Write the query network as one file that runs without gridmatch.

        The file maps float32 images ``(n, c, h, w)`` in ``[0, 1]`` (``n`` free; ``h × w``
        the training images' size, or ``image_size`` when set) to the L2-normalised
        ``(n, dim)`` embeddings :meth:`embed` gives (float32 arithmetic, whatever
        ``precision``): normalisation (``normalize``), backbone, average pool, head.

        Parameters
        ----------
        path : path-like
            The file (written atomically: a failed export leaves an existing file alone).
        format : {"onnx", "torchscript"}, default "onnx"
            ``"onnx"``: opset 17, input ``"images"``, output ``"embeddings"`` (run it
            with onnxruntime; needs ``pip install 'gridmatch[export]'``). ``"torchscript"``:
            a program for ``torch.jit.load`` (or libtorch's ``torch::jit::load``).

        Returns
        -------
        Path
            The file.

        Raises
        ------
        ConfigError
            An unknown ``format``, or ``path`` is a directory.
        ImportError
            ``format="onnx"`` without the ``onnx`` package (or a ResNet without
            torchvision).
        """
        self._check_fitted()
        from . import export as _export

        return _export.export(self, path, format)
