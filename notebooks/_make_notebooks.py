"""Writes the notebooks from the cell sources below (run after editing; outputs stay empty).

.venv/bin/python notebooks/_make_notebooks.py
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

SETUP = """\
import os
import numpy as np
import gridmatch as gm

FAST = bool(os.environ.get("GRIDMATCH_FAST"))  # make test runs every notebook with FAST=1
gm.set_num_threads(0)  # all CPUs
print("gridmatch", gm.__version__, "| fast mode" if FAST else "")"""

LOAD = """\
def load(name, split):
    try:
        return gm.datasets.load(name, split)
    except gm.DataError:  # offline and no files: the sample shipped with the package
        return gm.datasets.load_sample(name, split)"""


def nb(cells):
    out = new_notebook()
    out.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    out.cells = [
        new_markdown_cell(c[3:]) if c.startswith("md:") else new_code_cell(c) for c in cells
    ]
    for i, cell in enumerate(out.cells):
        cell.id = f"cell-{i:02d}"  # stable ids: regenerating gives identical files
    return out


NB1 = [
    "md:# 1 · The Grid Search Network\n\n"
    "*Powering Robust Fashion Retrieval with Information Rich Feature Embeddings* (Chopra et al., "
    "CVPRW 2019) trains embeddings by making the network **find the matches of a query inside a "
    "grid** of positive and negative images. This notebook builds the robust-retrieval benchmark "
    "from Fashion-MNIST, shows what a grid looks like, trains a GSN and a triplet baseline on the "
    "same budget, and compares their retrieval.",
    SETUP,
    LOAD,
    "md:## The instance benchmark\n\nEvery Fashion-MNIST image is a *product*. Its *views* are "
    "seeded distortions — affine warps, elastic deformation, crops, occlusion, blur, noise, "
    "contrast — the deformations the paper is about. Queries are distorted views; the gallery "
    "holds other views of every product.",
    """\
from gridmatch.datasets import distort

Xtr, ytr = load("fashion-mnist", "train")
Xte, yte = load("fashion-mnist", "test")
n_train, n_test = (600, 200) if FAST else (10000, 2000)
rng = np.random.default_rng(0)
train_ids = np.sort(rng.choice(len(Xtr), n_train, replace=False))
test_ids = np.sort(rng.choice(len(Xte), n_test, replace=False))

views = distort(np.repeat(Xte[test_ids], 3, axis=0), 1.0, 0, 2).reshape(n_test, 3, 28, 28)
Xq, ids_q, cls_q = views[:, 0], test_ids, yte[test_ids]
Xg, ids_g = views[:, 1:].reshape(-1, 28, 28), np.repeat(test_ids, 2)
print("queries", Xq.shape, "gallery", Xg.shape)""",
    "md:## What the network sees: a 3×3 grid\n\nFor a query, the grid holds one other view of the "
    "same product (the positive, green) and eight other products (red). The loss acts on the "
    "query's similarity map over the nine cells: the paper's *double-margin* loss pushes the "
    "positive's cosine similarity above 0.9 and the negatives' below 0.",
    """\
q = Xtr[train_ids[0]]
pos = distort(q[None], 1.0, 1, 1)[0]
negs = Xtr[rng.choice(train_ids[1:], 8, replace=False)]
cells = np.concatenate([pos[None], negs])
order = rng.permutation(9)
grid_ids = np.where(order == 0, 1, 0)  # 1 marks the positive cell
fig = gm.plot.retrieval_panel(q[None], cells[order], np.arange(9)[None], [1], grid_ids, k=9,
                              title="query and its grid (positive framed green)")
fig""",
    "md:## Train a GSN and a triplet baseline on the same budget",
    """\
budget = dict(epochs=2 if FAST else 6, steps_per_epoch=10 if FAST else 80,
              batch_size=32 if FAST else 96, dim=64, seed=0)
nets = {}
for name, loss in [("GSN double-margin", "double-margin"), ("GSN grid-softmax", "grid-softmax"),
                   ("triplet", "triplet")]:
    nets[name] = gm.GridSearchNetwork(loss=loss, **budget).fit(
        Xtr[train_ids], train_ids, ytr[train_ids], X_val=Xg[:200], ids_val=ids_g[:200])
gm.plot.training_curves({n: m.history_ for n, m in nets.items()}, metrics=("loss", "val_recall@1"))""",
    "md:## Retrieval: recall@k and MAP@R",
    """\
def flat(X):
    return X.reshape(len(X), -1).astype(np.float32) / 255

rows = {"raw pixels": gm.retrieval.evaluate(flat(Xq), ids_q, flat(Xg), ids_g, ks=(1, 10, 20))}
for name, net in nets.items():
    rows[name] = gm.retrieval.evaluate(net.embed(Xq), ids_q, net.embed(Xg), ids_g, ks=(1, 10, 20))
for name, m in rows.items():
    print(f"{name:>20}: R@1 {m['recall@1']:.3f}  R@10 {m['recall@10']:.3f}  "
          f"R@20 {m['recall@20']:.3f}  MAP@R {m['map@r']:.3f}")""",
    """\
gsn = nets["GSN double-margin"]
Eq, Eg = gsn.embed(Xq), gsn.embed(Xg)
_, idx = gm.retrieval.knn(Eq, Eg, k=5)
gm.plot.retrieval_panel(Xq, Xg, idx, ids_q, ids_g, k=5, max_queries=6)""",
    """\
gm.plot.embedding_2d(Eq, cls_q, class_names=gm.datasets.CLASS_NAMES["fashion-mnist"])""",
    "md:Models save as safetensors + JSON (no pickle) and load back bit-identically:",
    """\
import tempfile
with tempfile.TemporaryDirectory() as d:
    gsn.save(f"{d}/gsn")
    again = gm.GridSearchNetwork.load(f"{d}/gsn")
    print("identical embeddings:", np.array_equal(again.embed(Xq[:50]), gsn.embed(Xq[:50])))""",
]

NB2 = [
    "md:# 2 · Searching a transformation of the embeddings\n\n"
    "A recurrent controller trained with REINFORCE composes a function from unary and binary "
    "operations (as in *Searching for Activation Functions*). Applied element-wise to the "
    "embeddings, the best function found raises retrieval accuracy. We search on validation "
    "products and check the gain on held-out test products, against random search with the "
    "same budget.",
    SETUP,
    LOAD,
    """\
from gridmatch.datasets import distort

Xtr, ytr = load("fashion-mnist", "train")
Xte, yte = load("fashion-mnist", "test")
n_train, n_val, n_test = (600, 150, 150) if FAST else (8000, 1000, 2000)
rng = np.random.default_rng(1)
train_ids = np.sort(rng.choice(len(Xtr), n_train, replace=False))
perm = rng.permutation(len(Xte))
splits = {}
for name, ids in [("val", np.sort(perm[:n_val])), ("test", np.sort(perm[n_val:n_val + n_test]))]:
    v = distort(np.repeat(Xte[ids], 3, axis=0), 1.0, 0, 2).reshape(len(ids), 3, 28, 28)
    splits[name] = (v[:, 0], ids, v[:, 1:].reshape(-1, 28, 28), np.repeat(ids, 2))

gsn = gm.GridSearchNetwork(epochs=2 if FAST else 5, steps_per_epoch=10 if FAST else 80,
                           batch_size=32 if FAST else 96, dim=64, seed=0)
gsn.fit(Xtr[train_ids], train_ids)
E = {k: (gsn.embed(q), iq, gsn.embed(g), ig) for k, (q, iq, g, ig) in splits.items()}""",
    "md:## RL controller vs random search",
    """\
budget = 20 if FAST else 200
searches = {}
for controller in ("rl", "random"):
    s = gm.search.TransformSearch(controller=controller, budget=budget, seed=0)
    searches[controller] = s.fit(*E["val"])
    print(f"{controller:>6}: best {s.best_score_:.4f}  f(x) = {s.best_expr_}")
gm.plot.search_curves({k: s.history_ for k, s in searches.items()})""",
    "md:## Does it transfer to held-out products?",
    """\
Eq, iq, Eg, ig = E["test"]
base = gm.retrieval.evaluate(Eq, iq, Eg, ig, ks=(1, 10))
print(f"identity  R@1 {base['recall@1']:.4f}  R@10 {base['recall@10']:.4f}")
for controller, s in searches.items():
    f = s.best_expr_
    m = gm.retrieval.evaluate(f.apply(Eq), iq, f.apply(Eg), ig, ks=(1, 10))
    print(f"{controller:>8}  R@1 {m['recall@1']:.4f}  R@10 {m['recall@10']:.4f}   f(x) = {f}")""",
    "md:Expressions are plain text: they parse, print canonically and evaluate in Rust.",
    """\
f = gm.expr.parse("x * sigmoid(x)")
print(f, "->", f.apply(np.array([[-1.0, 0.0, 2.0]], dtype=np.float32)))""",
]

NB3 = [
    "md:# 3 · Kernel search for SVMs (the paper's MNIST table)\n\n"
    "The same controller composes **SVM kernels**: two units `binary(unary(op1), unary(op2))` "
    "over pairwise primitives of `(x, y)`, and the kernel is the L1 norm of the last unit. "
    "Reward: validation accuracy of an SVM trained on 1000 images. The authors' best kernel was "
    "`‖min(sin(x∘y), sin(γ⟨x,y⟩))‖₁`. We reproduce the protocol with gridmatch's Rust SVM, then "
    "repeat it on Fashion-MNIST.",
    SETUP,
    LOAD,
    """\
n_train, n_val, n_test = (300, 150, 500) if FAST else (1000, 500, 10000)
budget = 20 if FAST else 300

def protocol(name):
    X, y = load(name, "train")
    Xt, yt = load(name, "test")
    flat = lambda A: A.reshape(len(A), -1).astype(np.float32) / 255
    a, b = n_train, n_train + n_val
    return flat(X[:a]), y[:a], flat(X[a:b]), y[a:b], flat(Xt[:n_test]), yt[:n_test]""",
    """\
import time

def table(name):
    Xtr, ytr, Xva, yva, Xte, yte = protocol(name)
    found = {}
    for controller in ("rl", "random"):
        s = gm.search.KernelSearch(controller=controller, budget=budget, seed=0)
        s.fit(Xtr, ytr, Xva, yva)
        found[controller] = s
    kernels = {"linear": "linear", "rbf (scale)": "rbf", "poly": "poly", "sigmoid": "sigmoid",
               "paper kernel": "norm1(min(sin(x * y), sin(dot(x, y))))",
               "RL-searched": found["rl"].best_expr_, "random-searched": found["random"].best_expr_}
    preds = {}
    for label, k in kernels.items():
        t0 = time.perf_counter()
        clf = gm.svm.SVC(kernel=k, C=1.0).fit(Xtr, ytr)
        preds[label] = clf.predict(Xte)
        print(f"{name:>13} {label:>16}: test accuracy {np.mean(preds[label] == yte):.4f}"
              f"  ({time.perf_counter() - t0:.1f} s)")
    return found, preds, yte

found_mnist, preds_mnist, yte_mnist = table("mnist")""",
    """\
gm.plot.search_curves({k: s.history_ for k, s in found_mnist.items()})""",
    """\
gm.plot.confusion_matrix(yte_mnist, preds_mnist["RL-searched"])""",
    "md:## Fashion-MNIST",
    """\
found_fashion, preds_fashion, yte_fashion = table("fashion-mnist")""",
    "md:The SVM is a scikit-learn estimator: it works in pipelines and grid searches, with an "
    "expression kernel as one more option.",
    """\
from sklearn.model_selection import GridSearchCV
Xtr, ytr, *_ = protocol("mnist")
grid = GridSearchCV(gm.svm.SVC(), {"C": [1, 10], "kernel": ["rbf", "norm1(min(sin(x * y), sin(dot(x, y))))"]}, cv=3)
grid.fit(Xtr[:300], ytr[:300])
print(grid.best_params_, round(grid.best_score_, 4))""",
]

NB4 = [
    "md:# 4 · Beyond fashion\n\n"
    "The same machinery works on other domains. Two examples: **digit retrieval** on MNIST "
    "(every digit image a product, its views distorted), and **attribute / category prediction** "
    "from the learned GSN embeddings with the SVM and a searched kernel.",
    SETUP,
    LOAD,
    """\
from gridmatch.datasets import distort

Xm, ym = load("mnist", "train")
Xmt, ymt = load("mnist", "test")
n_train, n_test = (600, 200) if FAST else (8000, 2000)
rng = np.random.default_rng(2)
tr = np.sort(rng.choice(len(Xm), n_train, replace=False))
te = np.sort(rng.choice(len(Xmt), n_test, replace=False))
v = distort(np.repeat(Xmt[te], 3, axis=0), 1.0, 0, 2).reshape(n_test, 3, 28, 28)
Xq, Xg, ids_g = v[:, 0], v[:, 1:].reshape(-1, 28, 28), np.repeat(te, 2)

gsn = gm.GridSearchNetwork(epochs=2 if FAST else 5, steps_per_epoch=10 if FAST else 80,
                           batch_size=32 if FAST else 96, dim=64, seed=0).fit(Xm[tr], tr, ym[tr])
flat = lambda A: A.reshape(len(A), -1).astype(np.float32) / 255
for name, (a, b) in {"raw pixels": (flat(Xq), flat(Xg)), "GSN": (gsn.embed(Xq), gsn.embed(Xg))}.items():
    m = gm.retrieval.evaluate(a, te, b, ids_g, ks=(1, 10))
    print(f"digit instance retrieval, {name:>10}: R@1 {m['recall@1']:.3f}  R@10 {m['recall@10']:.3f}")""",
    """\
_, idx = gm.retrieval.knn(gsn.embed(Xq), gsn.embed(Xg), k=5)
gm.plot.retrieval_panel(Xq, Xg, idx, te, ids_g, k=5, max_queries=5)""",
    'md:## Category prediction ("attribution") from GSN embeddings\n\nA GSN trained on '
    "Fashion-MNIST *instances* never saw category labels; an SVM on its embeddings predicts the "
    "category. We compare the RBF kernel with a kernel searched on a validation split.",
    """\
Xf, yf = load("fashion-mnist", "train")
Xft, yft = load("fashion-mnist", "test")
n_fit, n_svm, n_val, n_eval = (600, 300, 150, 500) if FAST else (8000, 1000, 500, 5000)
ids = np.arange(n_fit)
fgsn = gm.GridSearchNetwork(epochs=2 if FAST else 5, steps_per_epoch=10 if FAST else 80,
                            batch_size=32 if FAST else 96, dim=64, seed=0).fit(Xf[:n_fit], ids)
E_tr = fgsn.embed(Xf[n_fit:n_fit + n_svm]); y_tr = yf[n_fit:n_fit + n_svm]
E_va = fgsn.embed(Xf[n_fit + n_svm:n_fit + n_svm + n_val]); y_va = yf[n_fit + n_svm:n_fit + n_svm + n_val]
E_te = fgsn.embed(Xft[:n_eval]); y_te = yft[:n_eval]
search = gm.search.KernelSearch(budget=20 if FAST else 150, seed=0).fit(E_tr, y_tr, E_va, y_va)
for name, k in {"rbf": "rbf", "linear": "linear", "searched": search.best_expr_}.items():
    acc = gm.svm.SVC(kernel=k).fit(E_tr, y_tr).score(E_te, y_te)
    print(f"category from GSN embeddings, {name:>8} kernel: accuracy {acc:.4f}   {k}")""",
]

NB5 = [
    "md:# 5 · Your catalogue: from a folder of photos to a trained GSN\n\n"
    "Point gridmatch at a folder with one subfolder per product (or a CSV of `path,id`) and "
    "train straight from the files: `fit(catalogue)` and `embed(catalogue)` stream the photos "
    "through the Rust image pipeline (decode, random resized crop / flip / colour jitter for "
    "training, resize + centre crop for embedding), so memory stays bounded by the batch, "
    "whatever the size of the catalogue. Here the photos are generated: Fashion-MNIST products "
    "tinted and placed on random backgrounds, three photos of each.",
    SETUP,
    LOAD,
    """\
import tempfile
from pathlib import Path
from PIL import Image

X, y = load("fashion-mnist", "train")
n_products, side = (60, 64) if FAST else (400, 128)
root = Path(tempfile.mkdtemp(prefix="gridmatch-shop-"))
rng = np.random.default_rng(0)
for p in range(n_products):
    tint = rng.uniform(40, 255, 3)
    for v in range(3):  # three photos of each product: other background, size and place
        bg = rng.uniform(0, 255, 3) + rng.normal(0, 8, (side, side, 3))
        s = int(side * rng.uniform(0.6, 0.95))
        item = np.asarray(Image.fromarray(X[p]).resize((s, s), Image.Resampling.BILINEAR))
        a = item[..., None] / 255.0
        t, l = rng.integers(0, side - s + 1, 2)
        bg[t:t + s, l:l + s] = bg[t:t + s, l:l + s] * (1 - a) + tint * a
        folder = root / f"sku-{p:04d}"
        folder.mkdir(exist_ok=True)
        Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8)).save(folder / f"{v}.jpg", quality=90)
cat = gm.datasets.ImageCatalogue.from_folder(root)
print(cat)""",
    "md:## Train on two thirds of the products, evaluate on the rest\n\n"
    "`ids` default to the catalogue's product ids. With `augment > 0` every view of a grid "
    "is a fresh random resized crop, flip and colour jitter of a photo, drawn from a seed per "
    "(step, cell): the same seed trains the same network with any number of threads.",
    """\
codes = cat.codes
train = cat.subset(codes % 3 != 0)
test = cat.subset(codes % 3 == 0)
size = 48 if FAST else 96
gsn = gm.GridSearchNetwork(backbone="convnet", dim=64, grid=(3, 3), batch_size=36,
                           image_size=size, epochs=2 if FAST else 8,
                           steps_per_epoch=4 if FAST else 40, lr=2e-3, seed=0)
gsn.fit(train)
untrained = gm.GridSearchNetwork(backbone="convnet", dim=64, image_size=size, epochs=0).fit(train)
gm.plot.training_curves({"GSN": gsn.history_}, metrics=("loss",))""",
    "md:## Retrieval: the first photo of each test product is the query, the others the gallery",
    """\
first = np.r_[True, test.codes[1:] != test.codes[:-1]]  # from_folder lists each product's photos together
query, gallery = test.subset(first), test.subset(~first)
for name, net in [("untrained", untrained), ("GSN", gsn)]:
    m = gm.retrieval.evaluate(net.embed(query), query.codes, net.embed(gallery), gallery.codes,
                              ks=(1, 5))
    print(f"{name:>10}: R@1 {m['recall@1']:.3f}  R@5 {m['recall@5']:.3f}  MAP@R {m['map@r']:.3f}")""",
    """\
_, idx = gm.retrieval.knn(gsn.embed(query), gsn.embed(gallery), k=5)
gm.plot.retrieval_panel(query.load(64), gallery.load(64), idx, query.codes, gallery.codes,
                        k=5, max_queries=6)""",
    "md:The same from a shell: `gridmatch train --catalogue DIR --out model` and "
    "`gridmatch embed model --catalogue DIR --out emb.npy` (a folder or a CSV).",
]


def main() -> None:
    for name, cells in [
        ("01_grid_search_network", NB1),
        ("02_transform_search", NB2),
        ("03_kernel_search_svm", NB3),
        ("04_beyond_fashion", NB4),
        ("05_your_catalogue", NB5),
    ]:
        nbformat.write(nb(cells), HERE / f"{name}.ipynb")


if __name__ == "__main__":
    main()
