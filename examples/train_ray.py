"""Data-parallel Grid Search Network training with Ray Train's ``TorchTrainer``.

Ray starts the workers and initialises a ``torch.distributed`` process group in each
(gloo on CPU, NCCL with ``use_gpu=True``); :meth:`gridmatch.GridSearchNetwork.fit`,
called the same way on every worker, finds it and trains data-parallel. Each epoch's
metrics are reported to Ray from every worker (Ray expects every worker to report);
rank 0 attaches the saved model as the checkpoint.

Run::

    python examples/train_ray.py --workers 2
    python examples/train_ray.py --workers 4 --gpu

Needs ``ray[train]`` (``pip install "ray[train]"``), which gridmatch does not depend on.
"""

from __future__ import annotations

import argparse
import tempfile
from typing import Any

import numpy as np


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """One worker: the same ``fit`` call as a single process would make."""
    import ray.train

    import gridmatch as gm

    rank = ray.train.get_context().get_world_rank()
    if config["gpu"]:
        import ray.train.torch
        import torch

        torch.cuda.set_device(ray.train.torch.get_device())  # the device "cuda" means
    X, labels = gm.datasets.load("fashion-mnist", "train")
    X, labels = X[: config["images"]], labels[: config["images"]]
    order = np.argsort(labels, kind="stable")
    X, ids = X[order], np.arange(len(X)) // 2  # 2 images of one class per id
    gsn = gm.GridSearchNetwork(
        epochs=config["epochs"],
        steps_per_epoch=config["steps"],
        batch_size=config["batch_size"],
        device="cuda" if config["gpu"] else "cpu",
        progress=False,
    )

    def report(epoch: int, epochs: int, metrics: dict[str, float]) -> None:
        # Called on every rank after each epoch (loss: the mean over the ranks).
        ray.train.report({"epoch": epoch, **metrics})

    gsn.fit(X, ids, callback=report)
    # Every worker reports once more; rank 0's report carries the model.
    with tempfile.TemporaryDirectory() as d:
        checkpoint = None
        if rank == 0:
            gsn.save(d)
            checkpoint = ray.train.Checkpoint.from_directory(d)
        ray.train.report({"epoch": len(gsn.history_), "done": 1.0}, checkpoint=checkpoint)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--gpu", action="store_true", help="one GPU per worker (NCCL)")
    ap.add_argument("--images", type=int, default=20000)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--steps", type=int, default=None, help="steps per epoch")
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()

    from ray.train import ScalingConfig
    from ray.train.torch import TorchTrainer

    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "images": args.images,
            "epochs": args.epochs,
            "steps": args.steps,
            "batch_size": args.batch_size,
            "gpu": args.gpu,
        },
        scaling_config=ScalingConfig(num_workers=args.workers, use_gpu=args.gpu),
    )
    result = trainer.fit()
    print("metrics:", result.metrics)
    print("checkpoint:", result.checkpoint)


if __name__ == "__main__":
    main()
