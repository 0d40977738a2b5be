"""The Grid Search Network: the estimator and its parts, one concern per module.

==================  ===============================================================
module              what it holds
==================  ===============================================================
``estimator``       :class:`GridSearchNetwork`: parameters, ``fit``, ``embed``, files
``params``          checking the parameters; the training spec the core reads
``training``        ``fit``'s work: the data, validation, progress, the Rust loop
``inference``       ``embed`` / ``features``: batches, catalogues, unreadable files
``persistence``     ``config.json``: writing it, reading it (files of earlier versions)
``input``           images given as arrays, tensors or catalogues
``backbones``       building the core model from a backbone name or a torch module
``torchscript``     converting a torch module backbone to TorchScript
``weights``         initial backbone weights (files, state dicts, ``"imagenet"``)
``distributed``     data-parallel training over ``torch.distributed``
``precision``       the arithmetic of the forward passes
``export``          the query network as an ONNX or TorchScript file (serving)
==================  ===============================================================
"""

from __future__ import annotations

from .estimator import GridSearchNetwork
from .input import as_images

__all__ = ["GridSearchNetwork", "as_images"]
