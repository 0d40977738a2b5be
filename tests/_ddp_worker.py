"""One rank of tests/test_gsn_distributed.py: ``python _ddp_worker.py RANK PORT DIR``.

Joins a 2-process gloo group on ``127.0.0.1:PORT``, trains the runs the tests compare
on ``DIR/data.npz``, saves each model under ``DIR/<run>_<rank>`` and writes
``DIR/result_<rank>.json`` (histories, flags, error messages).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

import gridmatch as gm

rank, port, out = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
torch.set_num_threads(1)
gm.set_num_threads(1)
dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
data = np.load(out / "data.npz")
X, ids = data["X"], data["ids"]
# This rank's shard as the core defines it: distinct ids sorted, ordinal % 2 == rank.
mine = np.isin(ids, np.unique(ids)[rank::2])
# One step of momentum SGD without weight decay moves the weights by lr·grad.
STEP = dict(
    backbone="convnet", dim=8, grid=(2, 2), batch_size=8, epochs=1, steps_per_epoch=1,
    optimizer="sgd", lr=0.1, weight_decay=0.0, schedule="constant", augment=0.5,
    device="cpu", progress=False, seed=3,
)  # fmt: skip
res: dict = {}

gm.GridSearchNetwork(**STEP).fit(X, ids).save(out / f"step_ddp_{rank}")
# distributed=False inside the group: trains alone, here on this rank's shard only.
alone = gm.GridSearchNetwork(**STEP, distributed=False).fit(X[mine], ids[mine])
alone.save(out / f"step_alone_{rank}")

LONG = {**STEP, "optimizer": "adam", "lr": 3e-3, "epochs": 4, "steps_per_epoch": 3}
long = gm.GridSearchNetwork(**LONG, distributed=True).fit(X, ids)
long.save(out / f"long_{rank}")
res["long_loss"] = [h["loss"] for h in long.history_]

# A module backbone with BatchNorm (TorchScript: its statistics live in the module).
torch.manual_seed(0)
module = torch.nn.Sequential(
    torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU()
)
scripted = gm.GridSearchNetwork(**{**LONG, "backbone": module}, distributed=True).fit(X, ids)
scripted.save(out / f"module_{rank}")
res["module_embed"] = scripted.embed(X[:8]).tolist()
plain = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU())  # no buffers
gm.GridSearchNetwork(**{**LONG, "backbone": plain}, distributed=True).fit(X, ids).save(
    out / f"plain_module_{rank}"
)

# Fine-tuning controls data-parallel: the backbone frozen in epoch 1, its BatchNorm
# kept, its own rate after a warm-up.
torch.manual_seed(1)
tuned = torch.nn.Sequential(
    torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU()
)
with torch.no_grad():
    tuned[1].running_mean.uniform_(-0.5, 0.5)
    tuned[1].weight.uniform_(0.5, 1.5)
res["finetune_start"] = {k: v.tolist() for k, v in tuned.state_dict().items()}
FT = dict(backbone_lr=1e-3, freeze_backbone_epochs=1, freeze_bn=True, warmup_steps=2)
ft = gm.GridSearchNetwork(**{**LONG, "backbone": tuned, "epochs": 2}, **FT, distributed=True)
ft.fit(X, ids).save(out / f"finetune_{rank}")
res["finetune_backbone_lr"] = [h["backbone_lr"] for h in ft.history_]

# ArcFace: its class proxies are all-reduced with the model's gradients
arc = gm.GridSearchNetwork(**{**LONG, "loss": "arcface", "epochs": 2}, distributed=True)
arc.fit(X, ids).save(out / f"arcface_{rank}")


def stop_on_rank_1(epoch: int, epochs: int, metrics: dict) -> bool:
    return rank != 1


with __import__("warnings").catch_warnings(record=True):
    stopped = gm.GridSearchNetwork(**{**STEP, "epochs": 3}).fit(X, ids, callback=stop_on_rank_1)
res["stopped"] = [len(stopped.history_), stopped.interrupted_]

try:  # 3 ids: rank 1's shard would hold one
    gm.GridSearchNetwork(**STEP).fit(X[ids < 3], ids[ids < 3])
    res["few_ids"] = "no error"
except gm.ConfigError as e:
    res["few_ids"] = str(e)

try:  # rank 1 without the last id's images: the ranks must notice, not hang
    keep = slice(None) if rank == 0 else slice(0, -5)
    gm.GridSearchNetwork(**STEP).fit(X[keep], ids[keep])
    res["mismatch"] = "no error"
except gm.ConfigError as e:
    res["mismatch"] = str(e)

(out / f"result_{rank}.json").write_text(json.dumps(res))
dist.destroy_process_group()
print("done", flush=True)
