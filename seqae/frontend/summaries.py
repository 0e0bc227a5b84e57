"""Fixed-size summaries of an utterance's frames: the label-free baselines a speech encoder must beat, and what the
correspondence pairs' neighbour search compares.

Dimension letters: ``N`` items, ``T`` frames, ``F`` feature bins.

- :func:`mean_frames`: the mean frame.
- :func:`downsampled_frames`: ``n`` frames sampled uniformly in time and concatenated (Levin et al., 2013; the
  reference embedding of Kamper et al., 2016).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def _check_features(features: Sequence[torch.Tensor], name: str) -> int:
    if len(features) == 0:
        raise ValueError(f"{name}: no features given")
    dim = features[0].shape[-1]
    for k, x in enumerate(features):
        if x.dim() != 2 or x.shape[1] != dim or x.shape[0] == 0:
            raise ValueError(f"{name}: item {k} has shape {tuple(x.shape)}, expected [T >= 1, {dim}]")
    return dim


def mean_frames(features: Sequence[torch.Tensor]) -> torch.Tensor:
    """The mean frame of each item: ``N`` tensors ``[T_i, F]`` -> ``[N, F]``."""
    _check_features(features, "mean_frames")
    return torch.stack([x.float().mean(dim=0) for x in features])  # (N, F)


def downsampled_frames(features: Sequence[torch.Tensor], n: int = 10) -> torch.Tensor:
    """``n`` frames sampled uniformly in time from each item, flattened: ``N`` x ``[T_i, F]`` -> ``[N, n * F]``.

    Sample ``k`` (``k = 0 .. n-1``) is the frame at time ``t_k = k (T - 1) / (n - 1)``, linearly
    interpolated between the two frames around it, so the first and last frames are always kept
    (``torch.nn.functional.interpolate``, ``mode="linear"``, ``align_corners=True``). An item of one
    frame is repeated ``n`` times. Row layout: sample 0's ``F`` values, then sample 1's, and so on.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"downsampled_frames: n must be a positive int, got {n!r}")
    dim = _check_features(features, "downsampled_frames")
    rows = []
    for x in features:
        series = x.float().transpose(0, 1).unsqueeze(0)  # (1, F, T)
        sampled = F.interpolate(series, size=n, mode="linear", align_corners=True)  # (1, F, n)
        rows.append(sampled[0].transpose(0, 1).reshape(n * dim))  # (n, F) -> (n * F,)
    return torch.stack(rows)  # (N, n * F)
