"""Figures: each PNG has the promised pixel size, a title and labelled axes; the 2-D projections are right."""

import numpy as np
import pytest
import torch

pytest.importorskip("matplotlib")

from matplotlib.image import imread  # noqa: E402

from seqae.eval import plots  # noqa: E402

WIDTH, HEIGHT = round(plots.SIZE_IN[0] * plots.DPI), round(plots.SIZE_IN[1] * plots.DPI)


@pytest.fixture(autouse=True)
def labelled(monkeypatch):
    """Check, as each figure is saved, that it has a title and every axis has both axis labels."""
    seen = []
    original = plots._save

    def checking_save(plt, fig, path, title):
        assert title
        for ax in fig.axes:
            if ax.get_label() == "<colorbar>":
                continue
            assert ax.get_xlabel() and ax.get_ylabel(), f"{path}: an axis lacks a label"
        seen.append(path)
        return original(plt, fig, path, title)

    monkeypatch.setattr(plots, "_save", checking_save)
    return seen


def assert_png(path):
    image = imread(path)
    assert image.shape[:2] == (HEIGHT, WIDTH)
    assert image.std() > 0.01  # something was drawn


def test_learning_curves(tmp_path, labelled):
    train = {"train loss": [(1, 3.0), (2, 2.5), (3, 2.0)], "heldout loss (eval)": [(2, 2.7)]}
    evals = {"heldout token_accuracy": [(2, 0.3), (3, 0.4)]}
    path = plots.plot_learning_curves(train, evals, tmp_path / "curves.png", title="curves")
    assert_png(path)
    assert_png(plots.plot_learning_curves({"train loss": []}, {}, tmp_path / "empty.png", title="nothing yet"))
    assert len(labelled) == 2


def test_binned_bars_with_empty_bins(tmp_path):
    rows = [{"bin": "1–10", "sequences": 3, "token_accuracy": 0.5, "bleu": None},
            {"bin": "11–20", "sequences": 0, "token_accuracy": None, "bleu": None},
            {"bin": "all", "sequences": 3, "token_accuracy": 0.5, "bleu": 0.2}]
    assert_png(plots.plot_binned(rows, ["token_accuracy", "bleu"], tmp_path / "bins.png", title="t",
                                 xlabel="length", unit_range=True))


def test_embedding_maps_by_label_and_by_value(tmp_path):
    points = np.random.default_rng(0).normal(size=(30, 2))
    labels = ["a", "b", "c"] * 10
    assert_png(plots.plot_embedding_map(points, tmp_path / "labels.png", title="t", method="pca", labels=labels))
    assert_png(plots.plot_embedding_map(points, tmp_path / "values.png", title="t", method="tsne",
                                        values=list(range(30))))
    many = [f"class {i}" for i in range(30)]  # more classes than a legend can hold
    assert_png(plots.plot_embedding_map(points, tmp_path / "many.png", title="t", method="pca", labels=many))


def test_pca_projection_keeps_the_main_directions():
    gen = torch.Generator().manual_seed(0)
    t = torch.randn(50, generator=gen)
    direction = torch.tensor([3.0, 4.0, 0.0, 0.0]) / 5
    z = t[:, None] * 10 * direction + 0.01 * torch.randn(50, 4, generator=gen) + 7.0  # (N, Z) near a line
    points = plots.project_2d(z, "pca")
    assert points.shape == (50, 2)
    centred = (t - t.mean()) * 10
    assert abs(np.corrcoef(points[:, 0], centred.numpy())[0, 1]) > 0.999  # PC 1 is the line
    assert points[:, 1].std() < 0.05  # PC 2 is the noise
    assert plots.project_2d(torch.randn(5, 1), "pca").shape == (5, 2)  # Z = 1: padded with zeros
    with pytest.raises(ValueError, match="method"):
        plots.project_2d(z, "umap")


def test_tsne_projection_when_scikit_learn_is_installed():
    pytest.importorskip("sklearn")
    z = torch.cat([torch.randn(10, 6) + 5, torch.randn(10, 6) - 5])
    points = plots.project_2d(z, "tsne")
    assert points.shape == (20, 2) and np.isfinite(points).all()
    a, b = points[:10].mean(0), points[10:].mean(0)
    assert np.linalg.norm(a - b) > points[:10].std(0).max()  # the two clusters stay apart


def test_sweep_and_anomaly_figures(tmp_path):
    series = {"token_accuracy": {"1–10": [0.2, 0.5, None], "all": [0.1, 0.4, 0.6]}, "bleu": {"all": [1.0, 5.0, 9.0]}}
    assert_png(plots.plot_sweep([32, 64, 128], series, tmp_path / "sweep.png", title="t"))
    assert_png(plots.plot_anomaly([1.0, 2.0, 2.5], [3.0, 2.2], [0, 0.5, 1], [0, 1, 1], 0.83, tmp_path / "a.png",
                                  title="t"))
