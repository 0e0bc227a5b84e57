"""Search: the nearest index sentences of each query by cosine similarity of z, ties broken by index."""

from __future__ import annotations

from typing import Sequence

from seqae.eval.embeddings import nearest
from seqae.runs import TextRun, require_text


def search(run: TextRun, index: Sequence[str], queries: Sequence[str], *, k: int = 5) -> list[list[tuple[int, float]]]:
    """For each query, its k nearest index sentences by cosine of z, as (index position, similarity)."""
    require_text(run, "search")
    scores, order = nearest(run.encode(index), run.encode(queries), k)
    return [list(zip(o.tolist(), s.tolist())) for o, s in zip(order, scores)]
