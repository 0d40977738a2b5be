"""The vector index behind :class:`gridmatch.retrieval.Index` (private package).

Files: :mod:`.index` (the :class:`Index` class), :mod:`.ids` (the caller's ids and
removed rows), :mod:`.faiss_backend` (faiss, imported lazily), :mod:`.files` (the
checksummed file format of ``save`` / ``load``).
"""

from __future__ import annotations

from .index import Index

__all__ = ["Index"]
