"""Pairs for the correspondence autoencoder: for each training row, other utterances to rebuild instead of itself.

"label" pairs rows with the same label spoken by other speakers (uses labels); "neighbours" pairs each row with its
nearest rows of other speakers by cosine of downsampled frames (no labels). Dimension letters: N rows, C a chunk.
"""

from __future__ import annotations

from typing import Any

import torch

from seqae.data.manifest import ManifestRow
from seqae.frontend.summaries import downsampled_frames

NEIGHBOURS = 5
"""Neighbours kept per row by `neighbour_partners`."""


def _speaker_codes(rows: list[ManifestRow]) -> torch.Tensor:
    """[N] speaker index per row; every row its own speaker when any row lacks one."""
    if any(r.speaker is None for r in rows):
        return torch.arange(len(rows))
    ids = {s: k for k, s in enumerate(dict.fromkeys(r.speaker for r in rows))}
    return torch.tensor([ids[r.speaker] for r in rows])


def label_partners(rows: list[ManifestRow]) -> list[list[int]]:
    """For each row, the rows with its label spoken by other speakers (other rows, when speakers are unknown)."""
    codes, groups = _speaker_codes(rows), {}
    for i, row in enumerate(rows):
        if row.label is not None:
            groups.setdefault(row.label, []).append(i)
    return [[j for j in groups.get(r.label, []) if codes[j] != codes[i]] if r.label is not None else []
            for i, r in enumerate(rows)]


def neighbour_partners(features: list[torch.Tensor], rows: list[ManifestRow], k: int = NEIGHBOURS,
                       chunk: int = 1024, embeddings: torch.Tensor | None = None) -> list[list[int]]:
    """For each row, its k nearest rows of other speakers by cosine of `downsampled_frames`, or of `embeddings`
    [N, D] when given (e.g. an earlier run's z); no labels used."""
    vectors = downsampled_frames(features) if embeddings is None else embeddings.float()  # (N, D)
    emb = torch.nn.functional.normalize(vectors, dim=1)
    codes = _speaker_codes(rows)
    partners = []
    for start in range(0, len(rows), chunk):
        sim = emb[start: start + chunk] @ emb.T  # (C, N)
        sim[codes[start: start + chunk, None] == codes[None, :]] = float("-inf")
        top = sim.topk(min(k, len(rows)), dim=1)
        partners += [[j for j, v in zip(idx, val) if v > float("-inf")]
                     for idx, val in zip(top.indices.tolist(), top.values.tolist())]
    return partners


def pair_stats(kind: str, partners: list[list[int]], rows: list[ManifestRow]) -> dict[str, Any]:
    stats: dict[str, Any] = {"kind": kind, "rows_without_partner": sum(not p for p in partners)}
    pairs = [(i, j) for i, p in enumerate(partners) for j in p if rows[i].label is not None]
    if kind == "neighbours" and pairs:  # a diagnostic only: labels are never used to choose neighbours
        stats["same_label_fraction"] = sum(rows[i].label == rows[j].label for i, j in pairs) / len(pairs)
    return stats
