"""Plots render to PNG files of the expected size with the expected content."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pytest

from gridmatch import plot


def render(fig, path, dpi=100):
    plot.save(fig, path, dpi=dpi)
    img = mpimg.imread(path)
    w, h = fig.get_size_inches() * dpi
    assert img.shape[:2] == (round(h), round(w))
    assert img[..., :3].std() > 0.05  # not blank
    return img


def has_color(img, rgb, tol=0.08):
    return bool((np.abs(img[..., :3] - np.asarray(rgb)).max(axis=-1) < tol).any())


def test_retrieval_panel_frames_hits_green_and_misses_red(tmp_path):
    rng = np.random.default_rng(0)
    gallery = rng.integers(0, 255, size=(20, 28, 28), dtype=np.uint8)
    gid = np.arange(20) % 5
    queries = gallery[:3]
    qid = gid[:3]
    idx = np.array([[5, 1, 2], [6, 3, 4], [7, 8, 9]])  # first column: same id (i+5 % 5 == i)
    img = render(plot.retrieval_panel(queries, gallery, idx, qid, gid, k=3), tmp_path / "p.png")
    assert has_color(img, (0x2C / 255, 0xA0 / 255, 0x2C / 255))
    assert has_color(img, (0xD6 / 255, 0x27 / 255, 0x28 / 255))
    # all hits: no red frame
    idx_ok = np.array([[5, 10, 15], [6, 11, 16], [7, 12, 17]])
    img = render(plot.retrieval_panel(queries, gallery, idx_ok, qid, gid, k=3), tmp_path / "q.png")
    assert not has_color(img, (0xD6 / 255, 0x27 / 255, 0x28 / 255), tol=0.02)


def test_retrieval_panel_rejects_bad_input():
    g = np.zeros((4, 8, 8))
    with pytest.raises(ValueError, match="do not exist"):
        plot.retrieval_panel(g[:1], g, [[0, 9]], [0], [0, 1, 2, 3], k=2)
    with pytest.raises(ValueError, match="k=3"):
        plot.retrieval_panel(g[:1], g, [[0, 1]], [0], [0, 1, 2, 3], k=3)
    with pytest.raises(ValueError, match="not square"):
        plot.retrieval_panel(np.zeros((1, 10)), g, [[0]], [0], [0, 1, 2, 3], k=1)


def test_training_and_search_curves(tmp_path):
    hist_a = [{"epoch": e, "loss": 1 / e, "recall@1": 0.5 + e / 20} for e in range(1, 6)]
    hist_b = [{"epoch": e, "loss": 1.2 / e} for e in range(1, 6)]
    fig = plot.training_curves({"gsn": hist_a, "triplet": hist_b})
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 2 and len(fig.axes[1].lines) == 1
    render(fig, tmp_path / "t.png")
    rl = [{"step": s, "reward": 0.8 + 0.01 * s} for s in range(1, 11)]
    rnd = [{"step": s, "reward": 0.8, "best_so_far": 0.85} for s in range(1, 11)]
    fig = plot.search_curves({"rl": rl, "random": rnd})
    best_rl = fig.axes[1].lines[0].get_ydata()
    np.testing.assert_allclose(best_rl, np.maximum.accumulate([r["reward"] for r in rl]))
    render(fig, tmp_path / "s.png")
    with pytest.raises(ValueError, match="empty"):
        plot.training_curves({})


def test_embedding_2d_pca_matches_numpy_svd(tmp_path):
    rng = np.random.default_rng(1)
    E = np.concatenate([rng.normal(0, 1, (50, 8)), rng.normal(4, 1, (50, 8))])
    y = np.repeat([0, 1], 50)
    P = plot._pca_2d(E)
    Xc = E - E.mean(0)
    ev = np.linalg.eigvalsh(Xc.T @ Xc)[::-1][:2]
    np.testing.assert_allclose((P**2).sum(0), ev, rtol=1e-8)
    fig = plot.embedding_2d(E, y, class_names=["a", "b"])
    render(fig, tmp_path / "e.png")
    render(plot.embedding_2d(E[:40], y[:40], method="tsne"), tmp_path / "tsne.png")
    with pytest.raises(ValueError, match="NaN"):
        plot.embedding_2d(np.full((3, 2), np.nan), [0, 1, 0])


def test_confusion_matrix_counts_match_sklearn(tmp_path):
    from sklearn.metrics import confusion_matrix as sk_cm

    rng = np.random.default_rng(2)
    t = rng.integers(0, 4, 200)
    p = np.where(rng.random(200) < 0.7, t, rng.integers(0, 4, 200))
    fig = plot.confusion_matrix(t, p, normalize=False)
    shown = fig.axes[0].images[0].get_array()
    np.testing.assert_array_equal(shown, sk_cm(t, p))
    assert f"{(t == p).mean():.3f}" in fig.axes[0].get_title()
    render(fig, tmp_path / "c.png")
    with pytest.raises(ValueError, match="equal length"):
        plot.confusion_matrix([0, 1], [0])


def test_training_curves_average_seeds_and_keep_unit_metrics_on_0_1(tmp_path):
    # two seeds of one run: the line is their mean per epoch, the band ± their std
    seeds = [
        [{"epoch": e, "loss": 2.0 / e, "val_recall@1": 0.10 + 0.02 * e} for e in range(1, 7)],
        [{"epoch": e, "loss": 3.0 / e, "val_recall@1": 0.12 + 0.02 * e} for e in range(1, 7)],
    ]
    single = [{"epoch": e, "loss": 0.5, "val_recall@1": 0.3} for e in range(1, 7)]
    fig = plot.training_curves(
        {"gsn": seeds, "triplet": single}, metrics=("loss", "val_recall@1"), title="t"
    )
    ax_loss, ax_rec = fig.axes
    line = ax_rec.lines[0]
    want = np.mean([[r["val_recall@1"] for r in s] for s in seeds], axis=0)
    np.testing.assert_allclose(line.get_xdata(), range(1, 7))
    np.testing.assert_allclose(line.get_ydata(), want)
    band = ax_rec.collections[0].get_paths()[0].vertices[:, 1]
    sd = np.std([[r["val_recall@1"] for r in s] for s in seeds], axis=0)
    np.testing.assert_allclose([band.min(), band.max()], [(want - sd).min(), (want + sd).max()])
    assert len(ax_rec.collections) == 1  # one seed: no band
    assert ax_rec.get_ylim() == (0.0, 1.0)  # a recall: the whole range, not a zoom
    lo, hi = ax_loss.get_ylim()
    assert lo == 0.0 and hi >= 2.5  # a non-negative loss starts at 0
    assert [t.get_text() for t in ax_rec.get_legend().get_texts()] == ["gsn", "triplet"]
    assert fig._suptitle.get_text() == "t"
    fig = plot.training_curves({"a": single}, metrics=("loss",), ylim={"loss": (0.4, 0.6)})
    assert fig.axes[0].get_ylim() == (0.4, 0.6)
    render(fig, tmp_path / "t.png")


def test_recall_at_k_plots_mean_and_std_per_k(tmp_path):
    ks = (1, 2, 5, 10, 20, 50)
    a = {k: [0.1 * i + k / 100 for i in range(3)] for k in ks}
    b = {k: 0.05 + k / 200 for k in ks}
    fig = plot.recall_at_k({"GSN": a, "raw": b}, title="instances")
    ax = fig.axes[0]
    assert ax.get_title() == "instances" and ax.get_ylim() == (0.0, 1.0)
    gsn, raw = (c.lines[0] for c in ax.containers)
    x, y = gsn.get_data()
    np.testing.assert_array_equal(x, ks)
    np.testing.assert_allclose(y, [np.mean(a[k]) for k in ks])
    # the error bars span mean ± std of the seeds
    segs = ax.collections[0].get_segments()
    np.testing.assert_allclose([s[1, 1] - s[0, 1] for s in segs], [2 * np.std(a[k]) for k in ks])
    np.testing.assert_allclose(raw.get_ydata(), [b[k] for k in ks])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["GSN", "raw"]
    render(fig, tmp_path / "r.png")
    with pytest.raises(ValueError, match="empty"):
        plot.recall_at_k({})
    with pytest.raises(ValueError, match="'a'.* is empty"):
        plot.recall_at_k({"a": {}})


def test_search_curves_take_a_fixed_range_and_label():
    rl = [{"step": s, "reward": 0.8 + 0.01 * s} for s in range(1, 6)]
    fig = plot.search_curves({"rl": rl}, ylabel="validation accuracy", ylim=(0, 1))
    for ax in fig.axes:
        assert ax.get_ylim() == (0.0, 1.0) and ax.get_ylabel() == "validation accuracy"
        assert len(ax.lines[0].get_xdata()) == 5


def test_long_titles_are_wrapped_inside_the_figure(tmp_path):
    hist = [{"epoch": e, "loss": 1 / e} for e in range(1, 6)]
    long = "training on Fashion-MNIST products: convnet, dim 64, 5 epochs x 10 steps " * 2
    fig = plot.training_curves({"a": hist}, metrics=("loss",), title=long)
    render(fig, tmp_path / "w.png")  # draws the figure
    box = fig._suptitle.get_window_extent()
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width
    assert " ".join(fig._suptitle.get_text().split()) == " ".join(long.split())
