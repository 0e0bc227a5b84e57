"""How well z separates labels: same-different AP (seqae.eval.speech), a linear probe, nearest-neighbour
precision@k. Dimension letters: N items, M index entries, Q queries, K neighbours, Z bottleneck width."""

from __future__ import annotations

import math
from typing import Any, Hashable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import Tensor

from seqae.eval.speech import same_different_ap


def nearest(index: Tensor, queries: Tensor, k: int, *, exclude_self: bool = False) -> tuple[Tensor, Tensor]:
    """Cosine top-k: index [M, Z], queries [Q, Z] -> scores [Q, K], indices [Q, K] (ties: lower index first).

    With `exclude_self` (queries are the index), an item is never its own neighbour.
    """
    # Own code: sklearn's NearestNeighbors returns 1 - cosine in argpartition order, so ties come in no fixed order.
    if index.dim() != 2 or queries.dim() != 2 or index.shape[1] != queries.shape[1]:
        raise ValueError(f"nearest: expected [M, Z] and [Q, Z], got {tuple(index.shape)} and {tuple(queries.shape)}")
    scores = F.normalize(queries.double(), dim=1) @ F.normalize(index.double(), dim=1).T  # (Q, M)
    if exclude_self:
        scores.fill_diagonal_(float("-inf"))
    k = min(k, index.shape[0] - int(exclude_self))
    order = torch.sort(-scores, dim=1, stable=True).indices[:, :k]  # (Q, K)
    return scores.gather(1, order), order


def precision_at_k(z: Tensor, labels: Sequence[Hashable], k: int) -> float:
    """Mean over items of the fraction of their k nearest other items (cosine of z [N, Z]) sharing their label.

    Own code: sklearn has no retrieval precision@k, and this one ranks by `nearest` (ties: lower index first)."""
    if z.shape[0] != len(labels) or z.shape[0] < 2:
        raise ValueError(f"precision_at_k: {z.shape[0]} embeddings and {len(labels)} labels (need >= 2 of each)")
    ids = {label: i for i, label in enumerate(dict.fromkeys(labels))}
    codes = torch.tensor([ids[label] for label in labels])
    _, neighbours = nearest(z, z, k, exclude_self=True)  # (N, K)
    return float((codes[neighbours] == codes[:, None]).double().mean())


def _codes(labels: Sequence[Hashable]) -> np.ndarray:
    """Integer class codes [N] in order of first appearance (labels of any hashable type, even mixed)."""
    ids = {label: k for k, label in enumerate(dict.fromkeys(labels))}
    return np.array([ids[label] for label in labels], dtype=np.int64)


def stratified_split(labels: Sequence[Hashable], *, test_fraction: float = 0.3, seed: int = 0
                     ) -> tuple[list[int], list[int]]:
    """(train, test) indices, each sorted: sklearn's `train_test_split(stratify=...)` (seeded) of the items whose
    class has n >= 2 of them, with ceil(test_fraction · n) test items but at least one per class (sklearn's
    minimum), shared out in proportion to class size; single-item classes stay in train."""
    codes = _codes(labels)
    counts = np.bincount(codes)  # (classes,)
    kept = [i for i, c in enumerate(codes) if counts[c] >= 2]
    single = [i for i, c in enumerate(codes) if counts[c] < 2]
    if not kept:
        return single, []
    n_classes = int((counts >= 2).sum())
    n_test = min(len(kept) - n_classes, max(n_classes, math.ceil(test_fraction * len(kept))))
    train, test = train_test_split(kept, test_size=n_test, stratify=codes[kept], random_state=seed)
    return sorted(train + single), sorted(test)


def linear_probe(z: torch.Tensor, labels: Sequence[Hashable], *, test_fraction: float = 0.3, seed: int = 0,
                 weight_decay: float = 1e-3, max_iter: int = 100) -> dict[str, Any] | None:
    """Multinomial logistic regression (sklearn, L-BFGS) on z [N, Z] standardised by the training items, minimising
    mean cross-entropy + weight_decay · ||W||², trained on a stratified split; test accuracy beside the
    majority-class baseline. None when there is nothing to test."""
    train, test = stratified_split(labels, test_fraction=test_fraction, seed=seed)
    y = _codes(labels)
    if not test or y.max() < 1:
        return None
    # sklearn minimises C · sum of losses + ½ ||W||²: the same minimum as the objective above for this C.
    c = 0.5 / (weight_decay * len(train)) if weight_decay > 0 else math.inf
    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=max_iter))
    x = z.detach().cpu().double().numpy()  # (N, Z)
    model.fit(x[train], y[train])
    majority = np.bincount(y[train]).argmax()
    return {"accuracy": float(model.score(x[test], y[test])),
            "majority_baseline": float((y[test] == majority).mean()),
            "train": len(train), "test": len(test), "classes": int(y.max()) + 1}


def embedding_metrics(z: torch.Tensor, labels: Sequence[Hashable], *, ks: Sequence[int] = (1, 5),
                      seed: int = 0) -> dict[str, Any]:
    """Same-different AP (when a label repeats), the linear probe, and precision@k of z [N, Z] for `labels`."""
    result: dict[str, Any] = {"items": len(labels), "classes": len(set(labels))}
    if len(set(labels)) < len(labels):
        result["ap"] = same_different_ap(z, labels)
    result["probe"] = linear_probe(z, labels, seed=seed)
    if len(labels) >= 2:
        result.update({f"precision@{k}": precision_at_k(z, labels, k) for k in ks if k < len(labels)})
    return result
