"""The persistence methods of :class:`~gridmatch.GridSearchNetwork` (``save``, ``load``,
pickling), as a mixin over the files of :mod:`.persistence`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .._base import params as _params
from .._base.exceptions import DataError
from . import params as _params_rules
from .backbones import new_model
from .persistence import (
    config_json,
    pickle_state,
    read_config,
    saved_params,
    trusted_script,
    unpickle_model,
    unpickle_state,
)

__all__ = ["Persistent"]


class Persistent:
    """``save``/``load`` and pickling for a fitted estimator with ``model_`` and
    ``n_channels_`` (mixed into :class:`~gridmatch.GridSearchNetwork`)."""

    model_: Any
    n_channels_: int

    def _check_fitted(self) -> None:  # the estimator's own
        raise NotImplementedError

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
        self.model_.save(str(path), config_json(self, self.n_channels_))
        return path

    def __getstate__(self) -> dict[str, Any]:
        # Pickling (copy.deepcopy, joblib, multiprocessing) carries the files that save()
        # writes, not the libtorch model; unpickling goes through load()'s checks.
        return pickle_state(self, super().__getstate__())  # type: ignore[arg-type]

    def __setstate__(self, state: dict[str, Any]) -> None:
        state, files = unpickle_state(state)
        super().__setstate__(state)  # type: ignore[misc]
        if files is not None:
            self.model_ = unpickle_model(type(self), files)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        device: str | None = None,
        *,
        trust_torchscript: bool = False,
    ) -> Any:
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
        config = read_config(path)
        cfg_path = path / "config.json"
        try:
            params = saved_params(config)
            if device is not None:
                params["device"] = device
            script = None
            if isinstance(params.get("backbone"), dict):
                script = trusted_script(path, config, params["backbone"], trust_torchscript)
                import torch

                params["backbone"] = torch.jit.load(str(script), map_location="cpu")
            est: Any = cls(**params)
            p = _params_rules.check(est)
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
        est.model_ = new_model(est, p, est.n_channels_, image_hw=hw, script_file=script)
        est.model_.load_weights(str(path / "weights.safetensors"))
        est.history_ = list(config.get("history", []))
        est.interrupted_ = False
        return est
