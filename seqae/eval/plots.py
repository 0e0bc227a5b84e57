"""Figures of the evaluation report, the sweep and the anomaly scores: PNG files drawn with matplotlib (Agg).

Every figure is `width_in × height_in` inches at `dpi` (default 800 × 500 pixels), has a title and labelled axes,
and is written atomically enough for a report: the parent folder is created, the file replaced.
Dimension letters: N items, Z bottleneck width.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

SIZE_IN = (8.0, 5.0)
DPI = 100
TSNE_MAX_ITEMS = 2000
"""t-SNE is drawn (besides PCA) only for sets up to this size, and only when scikit-learn is installed."""


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, never a window
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ImportError("seqae's figures need matplotlib (pip install matplotlib)") from err
    return plt


def _figure(ncols: int = 1):
    plt = _pyplot()
    fig, axes = plt.subplots(1, ncols, figsize=SIZE_IN, dpi=DPI, squeeze=False)
    return plt, fig, list(axes[0])


def _save(plt, fig, path: str | Path, title: str) -> Path:
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)  # no bbox_inches="tight": the pixel size stays SIZE_IN × DPI
    plt.close(fig)
    return path


def plot_learning_curves(train: Mapping[str, Sequence[tuple[int, float]]],
                         evals: Mapping[str, Sequence[tuple[int, float]]], path: str | Path, *, title: str) -> Path:
    """Left: training curves (e.g. loss) against step; right: evaluation curves (accuracy, MSE, AP) against step."""
    plt, fig, (left, right) = _figure(2)
    for ax, curves, ylabel in ((left, train, "training loss"), (right, evals, "evaluation metric")):
        for name, points in curves.items():
            if points:
                steps, values = zip(*points)
                ax.plot(steps, values, marker="o" if len(points) < 20 else None, markersize=3, label=name)
        if any(curves.values()):
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "nothing logged", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    left.set_title("training", fontsize=9)
    right.set_title("periodic evaluation", fontsize=9)
    return _save(plt, fig, path, title)


def plot_binned(rows: Sequence[Mapping], metrics: Sequence[str], path: str | Path, *, title: str,
                xlabel: str, ylabel: str = "value", unit_range: bool = False) -> Path:
    """Grouped bars: one group per row (a length bin, `row["bin"]`), one bar per metric; count under each group.

    `rows` are dicts with "bin", "sequences" and each metric (None where undefined); `unit_range`: y from 0 to 1.
    """
    plt, fig, (ax,) = _figure()
    x = np.arange(len(rows))
    width = 0.8 / max(1, len(metrics))
    for k, name in enumerate(metrics):
        values = [np.nan if r.get(name) is None else float(r[name]) for r in rows]
        ax.bar(x + (k - (len(metrics) - 1) / 2) * width, values, width, label=name)
    ax.set_xticks(x, [f"{r['bin']}\n(n={r['sequences']})" for r in rows])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if unit_range:
        ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(plt, fig, path, title)


def tsne_available() -> bool:
    """Whether scikit-learn (for t-SNE) can be imported."""
    try:
        import sklearn.manifold  # noqa: F401
    except ImportError:
        return False
    return True


def project_2d(z: torch.Tensor, method: str = "pca", *, seed: int = 0) -> np.ndarray:
    """z [N, Z] -> [N, 2]: the first two principal components ("pca"), or a t-SNE map ("tsne", scikit-learn)."""
    if z.dim() != 2 or z.shape[0] < 2:
        raise ValueError(f"project_2d: expected z [N >= 2, Z], got {tuple(z.shape)}")
    x = z.detach().double()
    x = x - x.mean(0)
    if method == "pca":
        _, _, v = torch.linalg.svd(x, full_matrices=False)  # rows of v: principal directions
        out = x @ v[:2].T  # (N, min(2, Z))
        return torch.nn.functional.pad(out, (0, 2 - out.shape[1])).numpy()
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, max(1.0, (x.shape[0] - 1) / 3)))
        return TSNE(n_components=2, init="pca", perplexity=perplexity, random_state=seed).fit_transform(x.numpy())
    raise ValueError(f"project_2d: method must be pca or tsne, got {method!r}")


def plot_embedding_map(points: np.ndarray, path: str | Path, *, title: str, method: str,
                       labels: Sequence[str] | None = None, values: Sequence[float] | None = None,
                       value_name: str = "length") -> Path:
    """Scatter of a 2-D map [N, 2] coloured by `labels` (a legend for up to 20 classes) or `values` (a colour bar)."""
    plt, fig, (ax,) = _figure()
    if labels is not None:
        classes = list(dict.fromkeys(labels))
        cmap = plt.get_cmap("tab20" if len(classes) > 10 else "tab10")
        for c, name in enumerate(classes):
            mask = np.array([label == name for label in labels])
            ax.scatter(points[mask, 0], points[mask, 1], s=12, color=cmap(c % cmap.N), label=str(name))
        if len(classes) <= 20:
            ax.legend(fontsize=7, markerscale=1.5, loc="best")
    else:
        sc = ax.scatter(points[:, 0], points[:, 1], s=12, c=values, cmap="viridis")
        if values is not None:
            fig.colorbar(sc, ax=ax, label=value_name)
    name = "PCA" if method == "pca" else "t-SNE"
    ax.set_xlabel(f"{name} 1")
    ax.set_ylabel(f"{name} 2")
    ax.grid(alpha=0.3)
    return _save(plt, fig, path, title)


def plot_sweep(sizes: Sequence[int], series: Mapping[str, Mapping[str, Sequence[float | None]]], path: str | Path,
               *, title: str) -> Path:
    """One panel per metric (`series[metric][bin]`: a value per bottleneck size), one line per length bin."""
    plt, fig, axes = _figure(len(series))
    for ax, (metric, by_bin) in zip(axes, series.items()):
        for name, values in by_bin.items():
            y = [np.nan if v is None else float(v) for v in values]
            ax.plot(sizes, y, marker="o", label=name, linewidth=2.5 if name == "all" else 1.2)
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(sizes), [str(s) for s in sizes])
        ax.set_xlabel("bottleneck size (dimensions of z)")
        ax.set_ylabel(metric)
        ax.set_title(metric, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, title="length", title_fontsize=7)
    return _save(plt, fig, path, title)


def plot_anomaly(scores: Sequence[float], ood_scores: Sequence[float], fpr: Sequence[float], tpr: Sequence[float],
                 auc: float, path: str | Path, *, title: str) -> Path:
    """Left: histograms of in-domain and out-of-domain scores; right: the ROC curve with its AUC."""
    plt, fig, (left, right) = _figure(2)
    bins = np.histogram_bin_edges(np.concatenate([np.asarray(scores), np.asarray(ood_scores)]), bins=30)
    left.hist(scores, bins=bins, alpha=0.6, label=f"in-domain (n={len(scores)})")
    left.hist(ood_scores, bins=bins, alpha=0.6, label=f"out-of-domain (n={len(ood_scores)})")
    left.set_xlabel("mean token NLL (nats)")
    left.set_ylabel("sentences")
    left.legend(fontsize=8)
    right.plot(fpr, tpr, label=f"AUC = {auc:.3f}")
    right.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8, label="chance")
    right.set_xlabel("false positive rate (in-domain flagged)")
    right.set_ylabel("true positive rate (out-of-domain flagged)")
    right.legend(fontsize=8, loc="lower right")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    return _save(plt, fig, path, title)


def plot_reconstruction(original: torch.Tensor, rebuilt: torch.Tensor, path: str | Path,
                        title: str, *, width_in: float = 8.0, height_in: float = 5.0, dpi: int = 100) -> Path:
    """Save a PNG with the original log-Mel ``[T, F]`` above the rebuilt one ``[T', F]``, on one colour scale.

    The image is ``round(width_in * dpi)`` x ``round(height_in * dpi)`` pixels. Needs ``matplotlib``.

    Raises:
        ImportError: matplotlib is not installed (the message says how to install it).
        ValueError: the inputs are not ``[T, F]`` with the same ``F``.
    """
    if original.dim() != 2 or rebuilt.dim() != 2 or original.shape[1] != rebuilt.shape[1]:
        raise ValueError(f"plot_reconstruction: expected [T, F] and [T', F], got {tuple(original.shape)} "
                         f"and {tuple(rebuilt.shape)}")
    plt = _pyplot()
    a, b = original.detach().float().cpu(), rebuilt.detach().float().cpu()
    both = torch.cat([a, b])
    vmin, vmax = (float(both.min()), float(both.max())) if both.numel() else (0.0, 1.0)
    fig, axes = plt.subplots(2, 1, figsize=(width_in, height_in), dpi=dpi, sharex=True)
    for ax, feats, name in ((axes[0], a, f"original ({a.shape[0]} frames)"),
                            (axes[1], b, f"rebuilt from z ({b.shape[0]} frames)")):
        image = ax.imshow(feats.T.numpy(), origin="lower", aspect="auto", vmin=vmin, vmax=vmax,
                          interpolation="nearest", cmap="magma")
        ax.set_title(name, fontsize=9)
        ax.set_ylabel("mel bin")
    axes[1].set_xlabel("frame")
    axes[0].set_xlim(-0.5, max(a.shape[0], b.shape[0]) - 0.5)
    fig.suptitle(title)
    fig.colorbar(image, ax=list(axes), label="feature value")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)  # no bbox_inches="tight": the pixel size stays as asked
    plt.close(fig)
    return path
