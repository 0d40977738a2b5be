"""A Grid Search Network's files: ``config.json`` written and read back (files of
earlier versions included), checksums, a module backbone's TorchScript program, the
state pickling carries, and a saved model loaded back."""

from __future__ import annotations

import hashlib
import io
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from .. import losses, miners
from .._base import params as _params
from .._base.exceptions import DataError
from . import params as _params_rules
from . import weights as _weights
from .backbones import new_model
from .torchscript import SCRIPT_FILE

__all__ = [
    "FORMAT",
    "VERSION",
    "config_json",
    "load",
    "pickle_state",
    "read_config",
    "saved_params",
    "trusted_script",
    "unpickle_model",
    "unpickle_state",
]

FORMAT = "gridmatch.GridSearchNetwork"
VERSION = 1
#: Loss parameters that were estimator parameters before the loss objects: files of
#: earlier versions record them beside a loss name.
_FLAT_LOSS_PARAMS = ("hi", "lo", "balance", "temperature", "margin")


def config_json(est: Any, n_channels: int) -> str:
    """The ``config.json`` of the estimator ``est`` (its parameters, image shape and
    history; the core adds the checksums when it writes the files)."""
    params = est.get_params(deep=False)
    if isinstance(params["loss"], losses.Loss):
        params["loss"] = params["loss"].spec()
    if isinstance(params["negatives"], miners.Miner):
        params["negatives"] = params["negatives"].spec()
    params["weights"] = _weights.describe(params["weights"])
    if params["checkpoint_dir"] is not None:
        params["checkpoint_dir"] = str(params["checkpoint_dir"])
    if not isinstance(params["backbone"], str):  # a module: the program is backbone.pt
        params["backbone"] = {"torchscript": SCRIPT_FILE}
    params["grid"] = list(params["grid"])
    shape = getattr(est, "image_shape_", None)
    return json.dumps(
        {
            "format": FORMAT,
            "version": VERSION,
            "params": params,
            "n_channels": n_channels,
            "image_shape": None if shape is None else list(shape),
            "history": getattr(est, "history_", []),
        },
        indent=2,
    )


def verify_checksum(file: Path, config: dict[str, Any], key: str, cfg_path: Path) -> None:
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


def read_config(path: Path) -> dict[str, Any]:
    """``config.json`` of the model folder ``path``, its format and version checked, and
    ``weights.safetensors`` checked against its checksum (``DataError`` otherwise)."""
    cfg_path = path / "config.json"
    try:
        config = json.loads(cfg_path.read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read {cfg_path}: {e}") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise DataError(f"{cfg_path} is not a saved GridSearchNetwork")
    if config.get("version") != VERSION:
        raise DataError(
            f"{cfg_path}: format version {config.get('version')!r} is not supported "
            f"(this gridmatch reads version {VERSION})"
        )
    verify_checksum(path / "weights.safetensors", config, "weights_sha256", cfg_path)
    return config


def saved_params(config: dict[str, Any]) -> dict[str, Any]:
    """The estimator parameters recorded in ``config``, as the constructor takes them:
    loss and miner specs as objects, and the settings of earlier versions' files in
    today's form (``verbose`` is ``progress``; flat loss parameters ``hi``, ``lo``,
    ``balance``, ``temperature``, ``margin`` beside a loss name set that loss's own)."""
    params = dict(config["params"])
    params["grid"] = tuple(params["grid"])
    verbose = params.pop("verbose", None)
    if verbose is not None and "progress" not in params:
        params["progress"] = verbose
    if isinstance(params.get("negatives"), dict):  # a miner object's spec
        params["negatives"] = miners.from_spec(params["negatives"])
    flat = {k: params.pop(k, None) for k in _FLAT_LOSS_PARAMS}
    if isinstance(params.get("loss"), dict):  # a loss object's spec
        params["loss"] = losses.from_spec(params["loss"])
    else:  # a loss name, with the flat parameters of earlier versions
        loss = losses.resolve(params["loss"])
        own = {k: v for k, v in flat.items() if v is not None and k in loss.get_params()}
        params["loss"] = loss.set_params(**own) if own else params["loss"]
    # models saved before the setting normalised as "legacy" does
    params.setdefault("normalize", "legacy")
    params["weights"] = None
    return params


def trusted_script(path: Path, config: dict[str, Any], entry: Any, trust: bool) -> Path:
    """The checked TorchScript file of a saved model (``DataError`` without trust, for
    an unknown entry or a file that does not match its checksum)."""
    if entry != {"torchscript": SCRIPT_FILE}:
        raise DataError(f"{path / 'config.json'}: unknown backbone entry {entry!r}")
    script = path / SCRIPT_FILE
    if not trust:
        raise DataError(
            f"{script} is a TorchScript program (the model's backbone), i.e. code that "
            "runs when the model is used, not only weights; load it only from a source "
            "you trust, with GridSearchNetwork.load(..., trust_torchscript=True)"
        )
    verify_checksum(script, config, "backbone_sha256", path / "config.json")
    return script


def pickle_state(est: Any, state: dict[str, Any]) -> dict[str, Any]:
    """The pickled state of ``est`` from ``BaseEstimator``'s ``state``: a ScriptModule
    backbone as its TorchScript bytes, and the fitted model as the files :meth:`save`
    writes (not the libtorch model; unpickling goes through ``load``'s checks)."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(state.get("backbone"), torch.jit.ScriptModule):
        buf = io.BytesIO()  # a ScriptModule does not pickle: it travels as its bytes
        torch.jit.save(state["backbone"], buf)
        state = {**state, "backbone": {"_gridmatch_torchscript": buf.getvalue()}}
    if "model_" not in state:
        return state
    state = dict(state)
    del state["model_"]
    with tempfile.TemporaryDirectory(prefix="gridmatch-gsn-") as d:
        est.save(d)
        names = ["config.json", "weights.safetensors"]
        names += [SCRIPT_FILE] if (Path(d) / SCRIPT_FILE).is_file() else []
        state["_gridmatch_gsn"] = {name: (Path(d) / name).read_bytes() for name in names}
    return state


def unpickle_state(state: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """``(estimator state, saved files or None)`` of a pickled state (the inverse of
    :func:`pickle_state`, less the model, which ``load`` rebuilds from the files)."""
    state = dict(state)
    files = state.pop("_gridmatch_gsn", None)
    program = state.get("backbone")
    if isinstance(program, dict) and "_gridmatch_torchscript" in program:
        import torch

        data = io.BytesIO(program["_gridmatch_torchscript"])
        state["backbone"] = torch.jit.load(data, map_location="cpu")
    return state, files


def unpickle_model(cls: type, files: dict[str, bytes]) -> Any:
    """The core model of a pickled estimator, rebuilt from its saved ``files`` by
    ``cls.load`` (unpickling runs the pickle's code anyway: its program is trusted
    alike)."""
    with tempfile.TemporaryDirectory(prefix="gridmatch-gsn-") as d:
        for name, data in files.items():
            (Path(d) / name).write_bytes(data)
        return cls.load(d, trust_torchscript=True).model_  # type: ignore[attr-defined]


def load(cls: type, path: Path, device: str | None, trust_torchscript: Any) -> Any:
    """``GridSearchNetwork.load`` (which documents it): the fitted estimator of class
    ``cls`` saved in the folder ``path``."""
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
        est = cls(**params)
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
