"""The demo's sizes and the settings of the networks it trains."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["BEST", "FULL", "PAPER", "QUICK", "RECALL_KS", "TRIPLET", "DemoConfig", "methods"]


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of one demo run.

    Attributes
    ----------
    train_products, val_products, test_products : int
        Fashion-MNIST products used to train the networks, to search the transform,
        and in the test benchmark.
    val_curve_products : int
        Validation products scored after every epoch (the validation curve).
    views : int
        Views per test product (one query, the rest in the gallery).
    epochs, steps_per_epoch, batch_size : int
        GSN / triplet training budget (identical for every network).
    seeds : int
        Repeats of the retrieval part (training and benchmark) with consecutive seeds.
    transform_budget, kernel_budget : int
        Candidates evaluated by the transform and the kernel search.
    search_batch : int
        Candidates per search step (one point of the search curves).
    svm_train, svm_val, svm_test : int
        MNIST images for the kernel search protocol (train / validation / test).
    """

    train_products: int
    val_products: int
    val_curve_products: int
    test_products: int
    views: int
    epochs: int
    steps_per_epoch: int
    batch_size: int
    seeds: int
    transform_budget: int
    kernel_budget: int
    search_batch: int
    svm_train: int
    svm_val: int
    svm_test: int


FULL = DemoConfig(
    train_products=10000,
    val_products=1000,
    val_curve_products=1000,
    test_products=2000,
    views=3,
    epochs=6,
    steps_per_epoch=80,
    batch_size=96,
    seeds=1,
    transform_budget=100,
    kernel_budget=40,
    search_batch=5,
    svm_train=1000,
    svm_val=500,
    svm_test=10000,
)

QUICK = DemoConfig(
    train_products=1500,
    val_products=300,
    val_curve_products=150,
    test_products=2000,
    views=3,
    epochs=6,
    steps_per_epoch=12,
    batch_size=48,
    seeds=3,
    transform_budget=20,
    kernel_budget=20,
    search_batch=4,
    svm_train=500,
    svm_val=250,
    svm_test=1000,
)

# recall@k is reported at these k (the recall@k plot has one point per k)
RECALL_KS = (1, 2, 5, 10, 20, 50)
BEST = "GSN grid-softmax 4x4, mined negatives"
PAPER = "GSN double-margin 3x3, random negatives (paper)"
TRIPLET = "triplet (semi-hard)"


def methods() -> dict[str, dict[str, Any]]:
    """The networks the demo trains: row label -> the settings that differ between them.

    Every other training setting is named in :func:`run_demo` too, so the demo does not
    depend on :class:`~gridmatch.GridSearchNetwork`'s defaults.
    """
    from ..losses import DoubleMargin, GridSoftmax, Triplet

    return {
        BEST: dict(loss=GridSoftmax(temperature=0.1), grid=(4, 4), negatives="mined"),
        PAPER: dict(
            loss=DoubleMargin(hi=0.9, lo=0.0, balance=False), grid=(3, 3), negatives="random"
        ),
        # a pair loss: it mines its semi-hard negatives in the batch (grid, negatives unused)
        TRIPLET: dict(loss=Triplet(margin=0.2), grid=(3, 3), negatives="random"),
    }
