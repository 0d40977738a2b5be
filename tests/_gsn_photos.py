"""The small GridSearchNetwork the catalogue tests train (convnet, 2 × 2 grid, seeded)."""

from __future__ import annotations

import gridmatch as gm

#: Side of the images the catalogue tests read.
SIZE = 32


def gsn(**kw) -> gm.GridSearchNetwork:
    """A small seeded network on the CPU, ``epochs=0`` unless ``kw`` says otherwise."""
    base = dict(
        backbone="convnet",
        dim=16,
        grid=(2, 2),
        batch_size=12,
        epochs=0,
        image_size=SIZE,
        device="cpu",
        progress=False,
        seed=3,
    )
    return gm.GridSearchNetwork(**{**base, **kw})
