"""``gridmatch demo``: every part of the package on the bundled datasets.

1. Grid Search Network on the Fashion-MNIST instance benchmark (queries and gallery
   are distorted views of held-out products): the best measured GSN configuration
   (grid-softmax loss, 4×4 grids, mined negatives: see BENCHMARKS.md, section "Grid
   Search Network"), the paper's double-margin loss (summed over 3×3 grids, random
   negatives) and a triplet baseline, trained on the same budget with every setting
   named here (:func:`methods`), never the estimator's defaults; retrieval metrics of
   raw pixels and the three networks, as mean ± standard deviation over several seeds
   (each seed draws its own training products, benchmark, distortions and
   initialisation), with the ranking of each seed.
2. RL transform search on the GSN embeddings (validation products), the best transform
   applied to the test embeddings.
3. RL kernel search on MNIST (paper protocol, small budget) and the standard kernels,
   all scored on the same test images.

It prints one results table and writes a report folder with PNG plots and
``results.json`` (the settings, seeds, versions, threads and CPU, and every seed's
numbers). Where the full datasets are neither found nor downloadable, it runs on the
small sample shipped in the package and says so.

The parts live in :mod:`.config` (sizes, the networks' settings), :mod:`.instances`
(part 1 at every seed), :mod:`.report` (the machine, the printed table) and :mod:`.run`.
"""

from __future__ import annotations

from .config import FULL, QUICK, DemoConfig, methods
from .run import run_demo

__all__ = ["FULL", "QUICK", "DemoConfig", "methods", "run_demo"]
