#!/usr/bin/env bash
# GPU check of the Grid Search Network, prepared to run unattended on a CUDA host.
#
# Builds nothing there: it installs the wheel built here
#   (`make wheel`: maturin build --release --auditwheel skip -o dist, against torch 2.11.0)
# into a private folder on PYTHONPATH, next to the host's own torch 2.11.0 (+cuXXX), then
#   1. checks that the extension sees CUDA and trains on it (device="cuda"),
#   2. checks embeddings: untrained CPU vs CUDA agree; a CUDA-trained model gives the
#      same embeddings on CUDA and, loaded on CPU, on CPU; torch-tensor input on CUDA,
#   3. times training steps: gridmatch on CUDA vs on CPU vs a PyTorch eager loop on the
#      same GPU (same net, batch, grid, loss; benches/gsn.py's eager_steps),
#      3b. trains and embeds from a folder of 2000 generated JPEG photos (ResNet-18,
#      224 px) in float32, bfloat16 and float16,
#   4. runs tests/test_gsn.py (device="auto" picks CUDA on that host) and
#      tests/test_cuda.py (kNN ties and exclude_self, evaluate, GSN training and
#      load(device=), CUDA against CPU; skipped on a host without CUDA) there,
#   5. trains data-parallel on one rank over NCCL (torchrun --nproc_per_node=1
#      examples/train_torchrun.py --device cuda: the collectives on CUDA tensors shared
#      between libtorch and PyTorch; gloo with GPU_SH_DEVICE=cpu),
# and writes $OUT/gpu_results.txt, $OUT/gpu_pytest.txt and $OUT/gpu_ddp.txt (OUT
# defaults to /tmp).
#
# Usage: benches/gpu.sh [path/to/gridmatch-*.whl] (default: newest dist/ or target/wheels/)
# Needs: python3 with torch==2.11.0 (CUDA build), numpy, scikit-learn, tqdm, pytest;
#        MNIST/Fashion-MNIST IDX files under $GRIDMATCH_DATA (default: ./shared/datasets,
#        ../shared/datasets).
# A dry run of the script itself on a machine without a GPU:
#   GPU_SH_DEVICE=cpu GPU_SH_QUICK=1 PYTHON=.venv/bin/python benches/gpu.sh
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
WHEEL="${1:-$(ls -t "$HERE"/dist/gridmatch-*.whl "$HERE"/target/wheels/gridmatch-*.whl 2>/dev/null | head -1 || true)}"
[ -f "$WHEEL" ] || { echo "gpu.sh: no wheel found; build one with 'make wheel'" >&2; exit 2; }
for d in "${GRIDMATCH_DATA:-}" "$HERE/shared/datasets" "$HERE/../shared/datasets"; do
  if [ -n "$d" ] && [ -d "$d/fashion-mnist" ]; then export GRIDMATCH_DATA="$d"; break; fi
done
export GRIDMATCH_OFFLINE=1 PYTHONUNBUFFERED=1
export GPU_SH_DEVICE="${GPU_SH_DEVICE:-cuda}" GPU_SH_QUICK="${GPU_SH_QUICK:-0}"
PY="${PYTHON:-python3}"
OUTDIR="${OUT:-/tmp}"
SITE="${TMPDIR:-/tmp}/gridmatch-gpu-site"
rm -rf "$SITE"
"$PY" -m pip install -q --no-deps --no-index --no-compile --target "$SITE" "$WHEEL"
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
cd "$HERE"
"$PY" - <<'PY' 2>&1 | tee "$OUTDIR/gpu_results.txt"
import os, sys, time, tempfile
import numpy as np, torch
sys.path.insert(0, "benches")
import gridmatch as gm
from gsn import eager_steps

DEV = os.environ["GPU_SH_DEVICE"]
QUICK = os.environ["GPU_SH_QUICK"] == "1"
print("gridmatch", gm.__version__, "from", os.path.dirname(gm.__file__))
print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
if DEV != "cpu":
    assert torch.cuda.is_available(), "CUDA not available to torch"
X, y = gm.datasets.load("fashion-mnist", "train")
X = X[:5000]; ids = np.arange(len(X)) // 2  # 2 images per id (augment=0 runs below)
Xe = X[:500]
ok = True
# 1+2: correctness
cpu0 = gm.GridSearchNetwork(epochs=0, device="cpu", progress=False).fit(X[:100], ids[:100])
dev0 = gm.GridSearchNetwork(epochs=0, device=DEV, progress=False).fit(X[:100], ids[:100])
print("untrained model device:", dev0.model_.device)
d0 = float(np.abs(cpu0.embed(Xe) - dev0.embed(Xe)).max())
print(f"untrained CPU vs {DEV} embeddings: max |diff| = {d0:.2e}")
ok &= d0 < 1e-3 and dev0.model_.device.startswith(DEV)
for mode in ("batch", "stitched"):
    t = time.perf_counter()
    gsn = gm.GridSearchNetwork(epochs=2, steps_per_epoch=10 if QUICK else 50, mode=mode,
                               device=DEV, progress=False).fit(X, ids)
    losses = [round(h["loss"], 4) for h in gsn.history_]
    print(f"{mode}: trained on {gsn.model_.device} in {time.perf_counter() - t:.1f} s, losses {losses}")
    Eg = gsn.embed(Xe)
    Xt = torch.from_numpy(Xe).to(DEV)
    Et = gsn.embed(Xt)
    assert Et.device == Xt.device, (Et.device, Xt.device)
    dt = float(np.abs(Et.cpu().numpy() - Eg).max())
    with tempfile.TemporaryDirectory() as d:
        gsn.save(d)
        back = gm.GridSearchNetwork.load(d, device="cpu")
    d1 = float(np.abs(back.embed(Xe) - Eg).max())
    print(f"{mode}: {DEV}-trained model, {DEV} vs CPU embeddings max |diff| = {d1:.2e}, "
          f"tensor vs numpy input {dt:.1e}")
    ok &= d1 < 1e-3 and dt == 0.0 and losses[-1] < losses[0]
if DEV != "cpu":
    print(f"peak CUDA memory (torch's caching allocator): "
          f"{torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
print("correctness:", "OK" if ok else "FAILED")
# 3: speed
def gsn_time(device, steps, batch):
    t = time.perf_counter()
    gm.GridSearchNetwork(epochs=1, steps_per_epoch=steps, batch_size=batch, augment=0.0,
                         schedule="constant", device=device, progress=False).fit(X, ids)
    return time.perf_counter() - t
print(f"torch CPU threads: {torch.get_num_threads()}; gridmatch threads: {gm.get_num_threads()}")
for batch in (64, 256):
    steps = 10 if QUICK else 100
    gsn_time(DEV, 5, batch); eager_steps(X, ids, 5, batch, 9, 0, device=DEV)
    g = sorted(gsn_time(DEV, steps, batch) for _ in range(3))[1]
    e = sorted(eager_steps(X, ids, steps, batch, 9, r, device=DEV) for r in range(3))[1]
    cs = 5 if QUICK else 20
    c = gsn_time("cpu", cs, batch) * steps / cs
    print(f"batch {batch}, grid 3x3: gridmatch {DEV} {steps / g:.1f} steps/s, CPU {steps / c:.1f} "
          f"steps/s ({c / g:.1f}x), PyTorch eager {DEV} {steps / e:.1f} steps/s "
          f"(gridmatch {e / g:.2f}x; medians of 3, fit() wall time incl. setup)")
PY
# 3b. (and 3c.) training and embedding from a folder of photos (generated JPEGs, benches/images.py's
#     renderer: not a public data set): ResNet-18 at 224 px streamed through the Rust
#     image pipeline, in float32, bfloat16 and float16 (autocast; fp16 with its loss
#     scaler). The dry run (GPU_SH_DEVICE=cpu) takes the convnet at 32 px for 2 steps.
"$PY" - <<'PY' 2>&1 | tee -a "$OUTDIR/gpu_results.txt"
import os, sys, tempfile, time
from pathlib import Path
import numpy as np
sys.path.insert(0, "benches")
import gridmatch as gm
from images import fashion_images, render

DEV = os.environ["GPU_SH_DEVICE"]
QUICK = os.environ["GPU_SH_QUICK"] == "1"
gpu = DEV != "cpu"
n = 2000 if gpu and not QUICK else 64
steps = 50 if gpu and not QUICK else 2
kw = dict(backbone="resnet18", image_size=224, batch_size=64) if gpu else dict(
    backbone="convnet", image_size=32, batch_size=16)
with tempfile.TemporaryDirectory(prefix="gm-gpu-photos-") as tmp:
    products = fashion_images(n // 2)
    paths = render(np.concatenate([products, products]), Path(tmp))
    ids = [f"sku-{i % (n // 2)}" for i in range(n)]
    cat = gm.datasets.ImageCatalogue(paths, ids)
    for precision in ("fp32", "bf16", "fp16"):
        common = dict(dim=128, device=DEV, progress=False, precision=precision, **kw)
        gm.GridSearchNetwork(epochs=1, steps_per_epoch=2, **common).fit(cat)  # warm-up
        ends = []
        gsn = gm.GridSearchNetwork(epochs=steps + 1, steps_per_epoch=1, **common)
        gsn.fit(cat, callback=lambda *_: ends.append(time.perf_counter()))
        rate = steps / (ends[-1] - ends[0])
        t = time.perf_counter()
        E = gsn.embed(cat)
        emb = len(E) / (time.perf_counter() - t)
        h = gsn.history_[-1]
        extra = f", loss scale {h['loss_scale']:g}, overflow steps " + str(
            sum(r["overflow_steps"] for r in gsn.history_)) if precision == "fp16" else ""
        print(f"photos {n} ({kw['backbone']}, {kw['image_size']} px, batch {kw['batch_size']}, "
              f"{precision}) on {DEV}: training {rate:.2f} steps/s "
              f"({rate * kw['batch_size']:.0f} images/s), last loss {h['loss']:.4f}{extra}; "
              f"embedding {emb:.0f} images/s, finite {bool(np.isfinite(E).all())}")
        if precision == "fp32":
            gsn.save(Path(tmp) / "pretrained")  # the start of the fine-tuning runs below
    # 3c. fine-tuning a pretrained backbone with the fine-tuning controls (backbone_lr,
    #     frozen BatchNorm, warm-up, a frozen first epoch), float32 and bfloat16. The
    #     "pretrained" weights are the fp32 run's backbone above (the GPU host reaches no
    #     download; the real-weights quality run is benches/finetune.py on the CPU).
    start = Path(tmp) / "pretrained" / "weights.safetensors"
    for precision in ("fp32", "bf16"):
        ft = dict(weights=start, lr=1e-3, backbone_lr=1e-4, freeze_bn=True, warmup_steps=5,
                  freeze_backbone_epochs=1, dim=128, device=DEV, progress=False,
                  precision=precision, **kw)
        ends = []
        gsn = gm.GridSearchNetwork(epochs=steps + 1, steps_per_epoch=1, **ft)
        gsn.fit(cat, callback=lambda *_: ends.append(time.perf_counter()))
        rate = steps / (ends[-1] - ends[0])
        E = gsn.embed(cat)
        h = gsn.history_
        print(f"fine-tuning ({kw['backbone']}, {precision}, backbone_lr 1e-4, freeze_bn, "
              f"warm-up 5, first epoch head only) on {DEV}: {rate:.2f} steps/s, loss "
              f"{h[0]['loss']:.4f} -> {h[-1]['loss']:.4f}, backbone_lr {h[0]['backbone_lr']:g} "
              f"-> {h[-1]['backbone_lr']:g}, finite {bool(np.isfinite(E).all())}")
PY
TESTS_RC=0
# 4. the GSN and CUDA-vs-CPU tests on this host (device="auto" resolves to CUDA where there is one)
if [ "${GPU_SH_TESTS:-1}" = 1 ]; then
  timeout 300 "$PY" -m pytest -q -p no:cacheprovider -o addopts="" -rfEs tests/test_gsn.py \
    tests/test_cuda.py 2>&1 \
    | tee "$OUTDIR/gpu_pytest.txt" || TESTS_RC=$?  # reported at the end (the DDP part still runs)
fi
# 5. data-parallel training, one rank, NCCL on CUDA (gloo on CPU for the dry run)
if [ "${GPU_SH_DDP:-1}" = 1 ]; then
  { timeout 300 "$PY" -m torch.distributed.run --standalone --nproc_per_node=1 \
      examples/train_torchrun.py --device "$GPU_SH_DEVICE" --images 4000 --epochs 2 \
      --steps "$([ "$GPU_SH_QUICK" = 1 ] && echo 5 || echo 50)" \
      && echo "ddp (1 rank, $([ "$GPU_SH_DEVICE" = cpu ] && echo gloo || echo nccl)): OK" \
      || echo "ddp: FAILED"; } 2>&1 | tee "$OUTDIR/gpu_ddp.txt"
fi
if [ "$TESTS_RC" != 0 ]; then
  echo "gpu.sh: the tests failed (pytest exit status $TESTS_RC; see $OUTDIR/gpu_pytest.txt)" >&2
  exit "$TESTS_RC"
fi
