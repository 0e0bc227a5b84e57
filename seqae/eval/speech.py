"""Evaluating speech embeddings and reconstructions.

Dimension letters: ``N`` items, ``T`` frames, ``F`` feature bins, ``C`` cepstra, ``D`` embedding width.

- :func:`same_different_ap` is the word-discrimination measure of Carlin et al. (2011) and Kamper et al.
  (2016): every pair ``i < j`` of items is scored by the cosine similarity of their embeddings, pairs with
  the same label are the positives, and the score is the average precision of that ranking.
- Reconstruction: teacher-forced MSE and mel-cepstral distortion (MCD), and the MCD of the utterance generated
  from z alone (aligned to the original by dynamic time warping), binned by length in frames.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from seqae.eval.metrics import group_by_bin
from seqae.frontend.collate import collate_frames

FRAME_BINS = ((1, 50), (51, 100), (101, 200), (201, 400), (401, 800))
MCD_CEPSTRA = 13
"""Mel cepstra c0..c12 are computed (see `cepstra`); MCD uses c1..c12."""


def same_different_ap(embeddings: torch.Tensor, labels: Sequence[Hashable]) -> float:
    """Average precision of same-label pairs ranked by cosine similarity.

    Args:
        embeddings: ``[N, D]``, one row per item (rows of zeros have similarity 0 to everything).
        labels: ``N`` labels; items ``i < j`` with ``labels[i] == labels[j]`` form the positive pairs.

    Returns:
        ``AP = mean over positive pairs p of precision(score >= score(p))``, i.e. the area under the
        precision-recall curve with one point per distinct score (tied pairs count together, so the
        result does not depend on the order of ties; sklearn's ``average_precision_score``). 1.0 means
        every positive pair scores above every negative one.

    Raises:
        ValueError: shapes disagree, there are fewer than two items, an embedding is not finite, or no two
            items share a label.
    """
    if embeddings.dim() != 2:
        raise ValueError(f"same_different_ap: embeddings must be [N, D], got shape {tuple(embeddings.shape)}")
    n = embeddings.shape[0]
    if len(labels) != n:
        raise ValueError(f"same_different_ap: {n} embeddings but {len(labels)} labels")
    if n < 2:
        raise ValueError(f"same_different_ap: needs at least 2 items, got {n}")
    if not bool(torch.isfinite(embeddings).all()):
        raise ValueError("same_different_ap: embeddings contain NaN or infinity")
    from sklearn.metrics import average_precision_score  # here, not above: it adds ~1 s to `import seqae`

    ids = {label: k for k, label in enumerate(dict.fromkeys(labels))}
    codes = torch.tensor([ids[label] for label in labels])  # (N,)
    unit = F.normalize(embeddings.detach().cpu().double(), dim=1)  # (N, D)
    i, j = torch.triu_indices(n, n, offset=1)  # pairs i < j
    scores = (unit[i] * unit[j]).sum(dim=1)  # (N(N-1)/2,)
    positive = codes[i] == codes[j]
    if not bool(positive.any()):
        raise ValueError("same_different_ap: no two items share a label, so there are no positive pairs")
    return float(average_precision_score(positive.numpy(), scores.numpy()))


def cepstra(feats: torch.Tensor, kind: str, n_mels: int, cmvn=None, n: int = MCD_CEPSTRA) -> torch.Tensor:
    """Mel cepstra c1..c(n-1) [T, n-1] of CMVN'd features [T, F] (CMVN undone first).

    On the scale of the real cepstrum of the log amplitude: c_k = (1/M) Σ_m ½·ln P_m · cos(πk(m + ½)/M) over the
    M = n_mels log-power Mel bins, i.e. the orthonormal DCT-II of the log-Mel divided by 2·sqrt(2M). MFCC features
    (that orthonormal DCT already) are only rescaled.
    """
    import torchaudio.functional as AF

    x = cmvn.denormalize(feats.float()) if cmvn is not None else feats.float()
    if kind != "mfcc":
        x = x @ AF.create_dct(n, x.shape[1], "ortho")  # (T, M) @ (M, n) -> (T, n)
    return x[:, 1:n] / (2.0 * math.sqrt(2.0 * n_mels))


def frame_mcd(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-frame mel-cepstral distortion in dB of cepstra a, b [..., C]: 10/ln(10) · sqrt(2 · Σ (a - b)²)."""
    return (10.0 / math.log(10.0)) * torch.sqrt(2.0 * ((a - b) ** 2).sum(-1))


def dtw_mean_cost(cost: torch.Tensor) -> float:
    """Mean local cost along the cheapest monotone path (steps right, down, diagonal) through cost [N, M].

    Anti-diagonals are filled one at a time (each depends only on the two before it).
    """
    N, M = cost.shape
    total = torch.full((N + 1, M + 1), math.inf, dtype=torch.float64)
    steps = torch.zeros((N + 1, M + 1), dtype=torch.float64)
    total[0, 0] = 0.0
    c = cost.double()
    for d in range(2, N + M + 1):
        i = torch.arange(max(1, d - M), min(N, d - 1) + 1)
        j = d - i
        options = torch.stack([total[i - 1, j - 1], total[i - 1, j], total[i, j - 1]])  # (3, L)
        lengths = torch.stack([steps[i - 1, j - 1], steps[i - 1, j], steps[i, j - 1]])
        best, pick = options.min(0)
        total[i, j] = best + c[i - 1, j - 1]
        steps[i, j] = lengths.gather(0, pick[None])[0] + 1
    return float(total[N, M] / steps[N, M])


@torch.no_grad()
def reconstruct_speech(run, features: Sequence[torch.Tensor]) -> list[dict[str, float]]:
    """Per utterance [T_i, F] (CMVN'd): frames, feature bins, the teacher-forced prediction's squared-error sum and
    MCD sum over frames, and the MCD (DTW-aligned) and length of the utterance generated from z alone."""

    run.model.eval()
    ceps = lambda x: cepstra(x, run.extractor.kind, run.extractor.n_mels, run.cmvn)  # noqa: E731
    out = []
    for x, y in zip(features, run.reconstruct(list(features))):
        pred = run.model(*collate_frames([x])).pred[0, : x.shape[0]]  # (T, F)
        cx, cy = ceps(x), ceps(y)
        dtw = dtw_mean_cost(frame_mcd(cx[:, None, :], cy[None, :, :])) if y.shape[0] else math.nan  # (T, T')
        out.append({"frames": x.shape[0], "bins": x.shape[1], "sq_error": float(((pred - x) ** 2).sum()),
                    "mcd_sum": float(frame_mcd(cx, ceps(pred)).sum()), "mcd_dtw": dtw, "gen_frames": y.shape[0]})
    return out


def summarize_speech(items: Sequence[dict[str, float]], bins: Sequence[tuple[int, int]] = FRAME_BINS
                     ) -> list[dict[str, Any]]:
    """One row per frame-length bin, then "all": mse (over frames and bins) and mcd (over frames) of the
    teacher-forced prediction, mcd_dtw and length_ratio (generated / original) averaged over utterances."""
    groups = group_by_bin([int(it["frames"]) for it in items], bins)
    groups["all"] = list(range(len(items)))
    rows = []
    for name, idx in groups.items():
        frames = sum(items[i]["frames"] for i in idx)
        per_utt = (lambda f: sum(f(items[i]) for i in idx) / len(idx) if idx else None)  # noqa: E731
        rows.append({"bin": name, "sequences": len(idx),
                     "mse": sum(items[i]["sq_error"] for i in idx) / sum(items[i]["frames"] * items[i]["bins"]
                                                                         for i in idx) if idx else None,
                     "mcd": sum(items[i]["mcd_sum"] for i in idx) / frames if idx else None,
                     "mcd_dtw": per_utt(lambda it: it["mcd_dtw"]),
                     "length_ratio": per_utt(lambda it: it["gen_frames"] / it["frames"])})
    return rows
