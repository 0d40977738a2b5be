#!/usr/bin/env bash
# GPU check of the Grid Search Network, prepared to run unattended on a CUDA host.
#
# Builds nothing there: it installs the wheel built here (maturin build --release,
# against torch 2.11.0) into a venv that reuses the host's torch 2.11.0 (+cuXXX), then
#   1. checks that the extension sees CUDA and trains on it (device="cuda"),
#   2. checks embeddings: untrained CPU vs CUDA agree; a CUDA-trained model gives the
#      same embeddings on CUDA and, loaded on CPU, on CPU,
#   3. times training steps: gridmatch on CUDA vs on CPU vs a PyTorch eager loop on the
#      same GPU (same net, batch, grid, loss; benches/gsn.py's eager_steps),
# and prints one results block (also written to $OUT/gpu_results.txt when $OUT is set).
#
# Usage: benches/gpu.sh [path/to/gridmatch-*.whl] (default: newest target/wheels/*.whl)
# Needs: python3 with torch==2.11.0 (CUDA build) installed, MNIST/Fashion-MNIST IDX files
# under $GRIDMATCH_DATA (default: ./shared/datasets or ../shared/datasets).
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
WHEEL="${1:-$(ls -t "$HERE"/target/wheels/gridmatch-*.whl "$HERE"/dist/gridmatch-*.whl 2>/dev/null | head -1)}"
[ -f "$WHEEL" ] || { echo "gpu.sh: no wheel found; build one with 'maturin build --release'" >&2; exit 2; }
for d in "${GRIDMATCH_DATA:-}" "$HERE/shared/datasets" "$HERE/../shared/datasets"; do
  if [ -n "$d" ] && [ -d "$d/fashion-mnist" ]; then export GRIDMATCH_DATA="$d"; break; fi
done
export GRIDMATCH_OFFLINE=1
VENV="${TMPDIR:-/tmp}/gridmatch-gpu-venv"
python3 -m venv --system-site-packages "$VENV"
"$VENV/bin/python" -m pip install -q --no-deps --no-index --force-reinstall "$WHEEL"
"$VENV/bin/python" -c "import torch; assert torch.__version__.startswith('2.11.0'), torch.__version__; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
cd "$HERE"
"$VENV/bin/python" - <<'PY' | tee "${OUT:-/tmp}/gpu_results.txt"
import sys, time, tempfile
import numpy as np, torch
sys.path.insert(0, "benches")
import gridmatch as gm
from gsn import eager_steps

assert torch.cuda.is_available(), "CUDA not available to torch"
X, y = gm.datasets.load("fashion-mnist", "train")
X = X[:5000]; ids = np.arange(len(X))
Xe = X[:500]
# 1+2: correctness
cpu0 = gm.GridSearchNetwork(epochs=0, device="cpu", verbose=False).fit(X[:100], ids[:100])
gpu0 = gm.GridSearchNetwork(epochs=0, device="cuda", verbose=False).fit(X[:100], ids[:100])
d0 = np.abs(cpu0.embed(Xe) - gpu0.embed(Xe)).max()
print(f"untrained CPU vs CUDA embeddings: max |diff| = {d0:.2e}")
gsn = gm.GridSearchNetwork(epochs=2, steps_per_epoch=50, device="cuda", verbose=False).fit(X, ids)
print("CUDA training losses:", [round(h["loss"], 4) for h in gsn.history_])
Eg = gsn.embed(Xe)
Et = gsn.embed(torch.from_numpy(Xe).cuda())
assert Et.is_cuda
with tempfile.TemporaryDirectory() as d:
    gsn.save(d); back = gm.GridSearchNetwork.load(d, device="cpu")
d1 = np.abs(back.embed(Xe) - Eg).max()
print(f"CUDA-trained model, CUDA vs CPU embeddings: max |diff| = {d1:.2e}")
ok = d0 < 1e-3 and d1 < 1e-3 and gsn.history_[-1]["loss"] < gsn.history_[0]["loss"]
print("correctness:", "OK" if ok else "FAILED")
# 3: speed
def gsn_time(device, steps, batch):
    t = time.perf_counter()
    gm.GridSearchNetwork(epochs=1, steps_per_epoch=steps, batch_size=batch, augment=0.0,
                         schedule="constant", device=device, verbose=False).fit(X, ids)
    return time.perf_counter() - t
for batch in (64, 256):
    gsn_time("cuda", 5, batch); eager_steps(X, ids, 5, batch, 9, 0, device="cuda")
    steps = 100
    g = min(gsn_time("cuda", steps, batch) for _ in range(3))
    e = min(eager_steps(X, ids, steps, batch, 9, r, device="cuda") for r in range(3))
    c = gsn_time("cpu", 20, batch) * steps / 20
    print(f"batch {batch}: gridmatch CUDA {steps / g:.1f} steps/s, CPU {steps / c:.1f} steps/s "
          f"({c / g:.1f}x), PyTorch eager CUDA {steps / e:.1f} steps/s (gridmatch {e / g:.2f}x)")
PY
