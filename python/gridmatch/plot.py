"""Plots for notebooks and the demo report (matplotlib).

Every function returns a :class:`matplotlib.figure.Figure` and never calls
``plt.show()``; in Jupyter the figure renders inline, elsewhere save it with
:func:`save`. Nothing here needs a display (the Agg backend works).
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "confusion_matrix",
    "embedding_2d",
    "recall_at_k",
    "retrieval_panel",
    "save",
    "search_curves",
    "training_curves",
]

_OK = "#2ca02c"
_BAD = "#d62728"


def _figure(figsize):
    from matplotlib.figure import Figure

    # A Figure not attached to pyplot: no global state, no GUI backend needed.
    return Figure(figsize=figsize, layout="constrained")


def _wrap(text: str, fig) -> str:
    """A title broken into lines that fit the figure's width (long ones name settings)."""
    width = max(20, int(fig.get_size_inches()[0] * 9.5))
    lines = text.splitlines()
    fill = textwrap.TextWrapper(width, break_long_words=False, break_on_hyphens=False).fill
    return "\n".join(fill(line) for line in lines)


def _as_images(images: Any, name: str) -> np.ndarray:
    arr = np.asarray(images)
    if arr.ndim == 2:
        side = int(round(np.sqrt(arr.shape[1])))
        if side * side != arr.shape[1]:
            raise ValueError(f"{name}: rows of length {arr.shape[1]} are not square images")
        arr = arr.reshape(-1, side, side)
    if arr.ndim == 4 and arr.shape[1] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = np.moveaxis(arr, 1, -1)  # NCHW -> NHWC
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (3, 4):
        raise ValueError(f"{name}: expected images (n, h, w[, c]), got shape {arr.shape}")
    return arr


def retrieval_panel(
    query_images: Any,
    gallery_images: Any,
    indices: Any,
    query_ids: Any,
    gallery_ids: Any,
    *,
    k: int = 5,
    max_queries: int = 8,
    title: str | None = None,
):
    """Queries with their top-``k`` gallery images, correct matches framed green.

    Parameters
    ----------
    query_images : array-like, shape (n_queries, h, w[, c]) or (n_queries, h*w)
        Images of the queries (uint8 or float).
    gallery_images : array-like, shape (n_gallery, h, w[, c]) or (n_gallery, h*w)
        Images of the gallery.
    indices : array-like of int, shape (n_queries, >= k)
        Ranked gallery indices per query, as returned by ``gm.retrieval.knn``.
    query_ids, gallery_ids : array-like of int
        Product / class ids; a retrieved item is correct when its id equals the query's.
    k : int, default 5
        Number of retrieved images shown per query.
    max_queries : int, default 8
        Number of query rows shown (the first ones).
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    q = _as_images(query_images, "query_images")
    g = _as_images(gallery_images, "gallery_images")
    idx = np.asarray(indices)
    if idx.size and idx.dtype.kind not in "iu":
        raise ValueError(f"indices must hold integer gallery rows, got dtype {idx.dtype}")
    qid = np.asarray(query_ids)
    gid = np.asarray(gallery_ids)
    if idx.ndim != 2 or idx.shape[0] != len(q):
        raise ValueError(f"indices must have shape (n_queries, k) with n_queries={len(q)}")
    if idx.shape[1] < k or k < 1:
        raise ValueError(f"k={k} must be between 1 and indices.shape[1]={idx.shape[1]}")
    if len(qid) != len(q) or len(gid) != len(g):
        raise ValueError("query_ids / gallery_ids must have one id per image")
    if idx.size and (idx.min() < 0 or idx.max() >= len(g)):
        raise ValueError("indices refer to gallery images that do not exist")
    rows = min(max_queries, len(q))
    if rows == 0:
        raise ValueError("no queries to show")
    fig = _figure((1.3 * (k + 1), 1.35 * rows))
    axes = fig.subplots(rows, k + 1, squeeze=False)
    cmap = "gray" if q.ndim == 3 else None
    for r in range(rows):
        ax = axes[r, 0]
        ax.imshow(q[r], cmap=cmap)
        ax.set_xticks([])
        ax.set_yticks([])
        for s in ax.spines.values():
            s.set_edgecolor("black")
            s.set_linewidth(2)
        if r == 0:
            ax.set_title("query", fontsize=9)
        for c in range(k):
            j = int(idx[r, c])
            ax = axes[r, c + 1]
            ax.imshow(g[j], cmap=cmap)
            ax.set_xticks([])
            ax.set_yticks([])
            color = _OK if gid[j] == qid[r] else _BAD
            for s in ax.spines.values():
                s.set_edgecolor(color)
                s.set_linewidth(3)
            if r == 0:
                ax.set_title(f"#{c + 1}", fontsize=9)
    if title:
        fig.suptitle(_wrap(title, fig))
    return fig


def _series(
    history: Sequence[Mapping[str, Any]], key: str, x_keys: Sequence[str] = ("epoch", "step")
) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for i, row in enumerate(history):
        if key in row and row[key] is not None:
            x = next((row[k] for k in x_keys if k in row), i + 1)
            xs.append(x)
            ys.append(float(row[key]))
    return np.asarray(xs), np.asarray(ys)


# Metrics that live in [0, 1]: their axes show the whole range, not a zoom on the noise.
_UNIT_METRICS = ("recall", "precision", "map", "accuracy")


def _auto_ylim(key: str, values: Sequence[float]) -> tuple[float, float] | None:
    """A fixed range for [0, 1] metrics; from 0 for non-negative ones; None otherwise."""
    vals = np.asarray(values, dtype=np.float64)
    vals = vals[np.isfinite(vals)]
    if any(word in key.lower() for word in _UNIT_METRICS) and (
        not vals.size or (vals.min() >= 0 and vals.max() <= 1)
    ):
        return (0.0, 1.0)
    if vals.size and vals.min() >= 0:
        return (0.0, float(vals.max()) * 1.08 or 1.0)
    return None


def _runs(value: Any) -> list[Sequence[Mapping[str, Any]]]:
    """One history (list of dict) or several (list of lists), as a list of histories."""
    if len(value) and not isinstance(value[0], Mapping):
        return list(value)
    return [value]


def training_curves(
    histories: Mapping[str, Any],
    metrics: Sequence[str] = ("loss", "recall@1"),
    *,
    ylim: Mapping[str, tuple[float, float] | None] | None = None,
    title: str | None = None,
):
    """Training curves of several runs, one axis per metric.

    Parameters
    ----------
    histories : mapping of str to list of dict, or to list of lists of dict
        Run name -> per-epoch records (``{"epoch": 1, "loss": ..., "recall@1": ...}``),
        e.g. ``{"GSN": gsn.history_, "triplet": triplet.history_}``; or run name -> the
        records of several repeats (seeds) of the run, drawn as their mean per epoch
        with a band of ± one standard deviation.
    metrics : sequence of str, default ("loss", "recall@1")
        Keys plotted, one axis each; runs without a key are skipped on that axis.
    ylim : mapping of str to (float, float) or None, optional
        The y range of a metric's axis (``None``: matplotlib's automatic range). By
        default metrics in [0, 1] (recall, precision, MAP, accuracy) get ``(0, 1)``
        and other non-negative ones an axis from 0, so that small wobbles are not
        magnified into trends.
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not histories:
        raise ValueError("histories is empty")
    if not metrics:
        raise ValueError("metrics is empty")
    ylim = dict(ylim or {})
    fig = _figure((4.2 * len(metrics), 3.2))
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, key in zip(axes, metrics):
        seen: list[float] = []
        for name, value in histories.items():
            series = [_series(h, key) for h in _runs(value)]
            series = [(x, y) for x, y in series if len(x)]
            if not series:
                continue
            n = min(len(x) for x, _ in series)
            x = series[0][0][:n]
            ys = np.stack([y[:n] for _, y in series])
            mean = ys.mean(axis=0)
            (line,) = ax.plot(x, mean, marker="o", markersize=3, label=name)
            if len(series) > 1:
                sd = ys.std(axis=0)
                ax.fill_between(x, mean - sd, mean + sd, color=line.get_color(), alpha=0.2)
                seen.extend((mean + sd).tolist() + (mean - sd).tolist())
            seen.extend(ys.ravel().tolist())
        lim = ylim[key] if key in ylim else _auto_ylim(key, seen)
        if lim is not None:
            ax.set_ylim(*lim)
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(_wrap(title, fig))
    return fig


def recall_at_k(
    recalls: Mapping[str, Mapping[int, Any]],
    *,
    title: str | None = None,
    ylim: tuple[float, float] | None = (0.0, 1.0),
):
    """Recall@k against k (log scale) for several methods, one line each.

    Parameters
    ----------
    recalls : mapping of str to mapping of int to float or sequence of float
        Method name -> ``{k: recall@k}``; a sequence of values per ``k`` (one per seed)
        is drawn as its mean with error bars of ± one standard deviation.
    title : str, optional
        Axis title.
    ylim : (float, float) or None, default (0, 1)
        The y range (``None``: automatic).

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not recalls:
        raise ValueError("recalls is empty")
    fig = _figure((5.6, 3.8))
    ax = fig.subplots()
    for name, by_k in recalls.items():
        if not by_k:
            raise ValueError(f"recalls[{name!r}] is empty")
        ks = sorted(int(k) for k in by_k)
        vals = [np.atleast_1d(np.asarray(by_k[k], dtype=np.float64)) for k in ks]
        mean = np.array([v.mean() for v in vals])
        sd = np.array([v.std() for v in vals])
        yerr = sd if any(len(v) > 1 for v in vals) else None
        ax.errorbar(ks, mean, yerr=yerr, marker="o", markersize=3, capsize=3, label=name)
    ax.set_xscale("log", base=2)
    all_k = sorted({int(k) for by_k in recalls.values() for k in by_k})
    ax.set_xticks(all_k, [str(k) for k in all_k])
    ax.set_xlabel("k")
    ax.set_ylabel("recall@k")
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(_wrap(title or "recall@k", fig))
    return fig


def search_curves(
    histories: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    reward_key: str = "reward",
    best_key: str = "best_so_far",
    x_key: str = "sampled",
    ylabel: str = "reward",
    ylim: tuple[float, float] | None = None,
    title: str | None = None,
):
    """Reward per search step and best-so-far, for several searches (RL vs random).

    Parameters
    ----------
    histories : mapping of str to list of dict
        Search name -> per-step records with ``reward_key`` (mean reward of the step)
        and optionally ``best_key`` (best reward so far; computed when absent), as in
        ``KernelSearch.history_``.
    reward_key, best_key : str
        Record keys.
    x_key : str, default "sampled"
        Record key of the x axis (candidates sampled so far); the step number when
        absent.
    ylabel : str, default "reward"
        What the reward is (y-axis label), e.g. "validation accuracy".
    ylim : (float, float), optional
        The y range of both axes, e.g. ``(0, 1)`` for an accuracy (default: automatic).
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not histories:
        raise ValueError("histories is empty")
    fig = _figure((9, 3.4))
    ax_r, ax_b = fig.subplots(1, 2)
    for name, hist in histories.items():
        x, r = _series(hist, reward_key, (x_key, "step"))
        if not len(x):
            continue
        (line,) = ax_r.plot(x, r, alpha=0.8, marker="o", markersize=3, label=name)
        xb, b = _series(hist, best_key, (x_key, "step"))
        if not len(xb):
            xb, b = x, np.maximum.accumulate(r)
        ax_b.plot(xb, b, color=line.get_color(), marker="o", markersize=3, label=name)
    ax_r.set_title("mean reward of each batch")
    ax_b.set_title("best so far")
    has_x = any(x_key in row for hist in histories.values() for row in hist)
    for ax in (ax_r, ax_b):
        ax.set_xlabel("candidates sampled" if has_x else "step")
        ax.set_ylabel(ylabel)
        if ylim is not None:
            ax.set_ylim(*ylim)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(_wrap(title, fig))
    return fig


def _pca_2d(E: np.ndarray) -> np.ndarray:
    X = E - E.mean(axis=0, keepdims=True)
    # Top-2 right singular vectors; sign fixed for reproducible pictures.
    _, _, vt = np.linalg.svd(X, full_matrices=False)
    comps = vt[:2]
    signs = np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(axis=1)])
    comps = comps * signs[:, None]
    out = X @ comps.T
    if out.shape[1] < 2:
        out = np.pad(out, ((0, 0), (0, 2 - out.shape[1])))
    return out


def embedding_2d(
    embeddings: Any,
    labels: Any,
    *,
    method: str = "pca",
    class_names: Sequence[str] | None = None,
    max_points: int = 5000,
    seed: int = 0,
    title: str | None = None,
):
    """2-D projection of embeddings coloured by class.

    Parameters
    ----------
    embeddings : array-like, shape (n, d)
        Embeddings (numpy or torch).
    labels : array-like of int, shape (n,)
        Class of each point.
    method : {"pca", "tsne"}, default "pca"
        PCA (fast, exact) or scikit-learn's t-SNE.
    class_names : sequence of str, optional
        Legend names, indexed by label.
    max_points : int, default 5000
        Random subsample size (t-SNE is quadratic).
    seed : int, default 0
        Seed of the subsample and of t-SNE.
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from ._base.validate import host_array

    E = np.asarray(host_array(embeddings, "embeddings"))
    y = np.asarray(host_array(labels, "labels"))
    if E.dtype.kind not in "fiub":
        raise ValueError(f"embeddings must hold real numbers, got dtype {E.dtype}")
    if E.ndim != 2 or E.shape[0] != len(y):
        raise ValueError(f"embeddings must be (n, d) with n={len(y)} labels, got {E.shape}")
    if len(y) < 2:
        raise ValueError("need at least 2 points")
    if not np.all(np.isfinite(E)):
        raise ValueError("embeddings contain NaN or inf")
    if method not in ("pca", "tsne"):
        raise ValueError(f"method must be 'pca' or 'tsne', got {method!r}")
    if isinstance(max_points, bool) or not isinstance(max_points, (int, np.integer)):
        raise ValueError(f"max_points must be an integer >= 2, got {max_points!r}")
    if max_points < 2:
        raise ValueError(f"max_points must be an integer >= 2, got {max_points}")
    if class_names is not None:
        if y.dtype.kind not in "iu" or y.min() < 0 or y.max() >= len(class_names):
            raise ValueError(
                f"class_names has {len(class_names)} names; labels must be integers in "
                f"[0, {len(class_names)})"
            )
    rng = np.random.default_rng(seed)
    if len(y) > max_points:
        keep = np.sort(rng.choice(len(y), size=max_points, replace=False))
        E, y = E[keep], y[keep]
    E = E.astype(np.float64)
    if method == "pca":
        P = _pca_2d(E)
    else:
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, max(2.0, (len(y) - 1) / 3)))
        P = TSNE(2, perplexity=perplexity, random_state=seed, init="pca").fit_transform(E)
    fig = _figure((5.2, 4.4))
    ax = fig.subplots()
    for c in np.unique(y):
        m = y == c
        name = class_names[int(c)] if class_names is not None else str(c)
        ax.scatter(P[m, 0], P[m, 1], s=6, alpha=0.7, label=name)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=7, markerscale=2, loc="best", ncol=2 if len(np.unique(y)) > 6 else 1)
    method_name = "PCA" if method == "pca" else "t-SNE"
    ax.set_title(_wrap(title or f"embeddings ({method_name})", fig))
    return fig


def confusion_matrix(
    y_true: Any,
    y_pred: Any,
    *,
    labels: Sequence[Any] | None = None,
    class_names: Sequence[str] | None = None,
    normalize: bool = True,
    title: str | None = None,
):
    """Confusion matrix of classifier predictions (rows: true class).

    Parameters
    ----------
    y_true, y_pred : array-like, shape (n,)
        True and predicted labels.
    labels : sequence, optional
        Label order (default: sorted union of both).
    class_names : sequence of str, optional
        Tick names, one per label.
    normalize : bool, default True
        Show row-normalised rates (counts otherwise).
    title : str, optional
        Axis title (default: the accuracy).

    Returns
    -------
    matplotlib.figure.Figure
    """
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    if t.shape != p.shape or t.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-D of equal length, got {t.shape}, {p.shape}")
    if len(t) == 0:
        raise ValueError("y_true is empty")
    labs = np.unique(np.concatenate([t, p])) if labels is None else np.asarray(labels)
    pos = {v: i for i, v in enumerate(labs.tolist())}
    cm = np.zeros((len(labs), len(labs)), dtype=np.int64)
    for a, b in zip(t.tolist(), p.tolist()):
        if a in pos and b in pos:
            cm[pos[a], pos[b]] += 1
    shown = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1) if normalize else cm
    names = list(class_names) if class_names is not None else [str(v) for v in labs]
    size = max(3.5, 0.45 * len(labs) + 1.5)
    fig = _figure((size + 0.8, size))
    ax = fig.subplots()
    im = ax.imshow(shown, cmap="Blues", vmin=0)
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax.set_xticks(range(len(labs)), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(labs)), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    hi = shown.max() if shown.size else 0
    for i in range(len(labs)):
        for j in range(len(labs)):
            v = shown[i, j]
            txt = f"{v:.2f}" if normalize else str(v)
            ax.text(
                j,
                i,
                txt,
                ha="center",
                va="center",
                fontsize=6,
                color="white" if v > 0.6 * hi else "black",
            )
    acc = float(np.trace(cm)) / max(int(cm.sum()), 1)
    ax.set_title(_wrap(title or f"accuracy {acc:.3f}", fig))
    return fig


def save(fig, path: str | os.PathLike, *, dpi: int = 110) -> str:
    """Save a figure as PNG (or any format matplotlib infers from the suffix).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    path : path-like
        Destination; parent folders are created.
    dpi : int, default 110
        Resolution.

    Returns
    -------
    str
        The path written.
    """
    if not hasattr(fig, "savefig"):
        raise TypeError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    path = os.fspath(path)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path
