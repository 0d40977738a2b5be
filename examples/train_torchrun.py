"""Data-parallel Grid Search Network training with ``torchrun``.

Every process runs this same script; ``torchrun`` sets the rank, world size and
rendezvous address in the environment, and :meth:`gridmatch.GridSearchNetwork.fit`
trains data-parallel over the process group it finds initialised (each rank on its
shard of the ids, gradients averaged every step; only rank 0 shows progress and
validates). Rank 0 saves the model.

Run (two CPU processes, gloo)::

    torchrun --nproc_per_node=2 examples/train_torchrun.py --out gsn-model

On GPUs (NCCL; one process per GPU)::

    torchrun --nproc_per_node=4 examples/train_torchrun.py --device cuda

A quick run: ``--images 2000 --epochs 2 --steps 5``. Fashion-MNIST is looked up as
:func:`gridmatch.datasets.load` does (``GRIDMATCH_DATA``, or downloaded).
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import torch
import torch.distributed as dist

import gridmatch as gm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=20000, help="training images used")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--steps", type=int, default=None, help="steps per epoch")
    ap.add_argument("--batch-size", type=int, default=64, help="images per step per rank")
    ap.add_argument("--device", default="cpu", help="'cpu' (gloo) or 'cuda' (NCCL)")
    ap.add_argument("--out", default=None, help="folder for rank 0 to save the model in")
    args = ap.parse_args()

    cuda = args.device.startswith("cuda")
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    try:
        X, labels = gm.datasets.load("fashion-mnist", "train")
        X, labels = X[: args.images], labels[: args.images]
        # Each id: 2 consecutive images of one class (instances, as in retrieval data).
        order = np.argsort(labels, kind="stable")
        X, labels = X[order], labels[order]
        ids = np.arange(len(X)) // 2
        Xv, yv = gm.datasets.load("fashion-mnist", "test")
        gsn = gm.GridSearchNetwork(
            epochs=args.epochs,
            steps_per_epoch=args.steps,
            batch_size=args.batch_size,
            device=args.device,
            progress=rank == 0,
        )
        gsn.fit(X, ids, X_val=Xv[:1000], ids_val=yv[:1000])
        if rank == 0:
            for h in gsn.history_:
                print(
                    f"epoch {h['epoch']}: loss {h['loss']:.4f}, "
                    f"val recall@1 {h.get('val_recall@1', float('nan')):.3f} "
                    f"({world} ranks, {h['seconds']:.1f} s)",
                    flush=True,
                )
            if args.out is not None:
                print("saved", gsn.save(args.out), flush=True)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
