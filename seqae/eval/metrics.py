"""Reconstruction metrics for token sequences. Sequences are `[bos, ..., eos]`; bos is never scored."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor


def teacher_forced_accuracy(logits: Tensor, targets: Tensor, pad_id: int = 0) -> tuple[int, int]:
    """logits: [B, T, V], targets: [B, T] -> (correct, total) over real target positions."""
    real = targets != pad_id
    return int(((logits.argmax(-1) == targets) & real).sum()), int(real.sum())


SHORT_PIECES = 20
"""`exact_match_le20`: exact match over the sequences of at most this many pieces (bos and eos not counted)."""


def _aligned(generated: Tensor, gen_lengths: Tensor, reference: Tensor, ref_lengths: Tensor
             ) -> tuple[Tensor, Tensor, Tensor]:
    """(same [B, T-1]: matching real positions, in_ref [B, T-1]: real reference positions, exact [B])."""
    T = max(generated.shape[1], reference.shape[1])
    gen = torch.nn.functional.pad(generated, (0, T - generated.shape[1]), value=-1)[:, 1:]
    ref = torch.nn.functional.pad(reference, (0, T - reference.shape[1]), value=-1)[:, 1:]
    positions = torch.arange(T - 1, device=reference.device)[None, :]
    in_ref = positions < (ref_lengths - 1)[:, None]  # (B, T-1)
    in_gen = positions < (gen_lengths - 1)[:, None]
    same = (gen == ref) & in_ref & in_gen
    exact = (same.sum(1) == ref_lengths - 1) & (gen_lengths == ref_lengths)  # (B,)
    return same, in_ref, exact


def reconstruction_counts(generated: Tensor, gen_lengths: Tensor, reference: Tensor,
                          ref_lengths: Tensor) -> dict[str, int]:
    """Position-aligned token matches over the reference (eos included) and whole-sequence exact matches.

    generated: [B, L], reference: [B, T], both starting with bos; lengths count bos and eos.
    """
    same, in_ref, exact = _aligned(generated, gen_lengths, reference, ref_lengths)
    return {"correct": int(same.sum()), "total": int(in_ref.sum()), "exact": int(exact.sum()),
            "sequences": reference.shape[0]}


def short_exact_counts(generated: Tensor, gen_lengths: Tensor, reference: Tensor,
                       ref_lengths: Tensor) -> dict[str, int]:
    """Exact matches among the references of at most SHORT_PIECES pieces: {"short_exact", "short"}."""
    _, _, exact = _aligned(generated, gen_lengths, reference, ref_lengths)
    short = ref_lengths - 2 <= SHORT_PIECES  # (B,)
    return {"short_exact": int((exact & short).sum()), "short": int(short.sum())}


def bin_label(n: int, bins: Sequence[tuple[int, int]]) -> str:
    """The bin of length n: "lo–hi", or ">hi" past the last bin."""
    for lo, hi in bins:
        if lo <= n <= hi:
            return f"{lo}–{hi}"
    if n > bins[-1][1]:
        return f">{bins[-1][1]}"
    raise ValueError(f"length {n} is below the first bin {bins[0][0]}–{bins[0][1]}")


def group_by_bin(lengths: Sequence[int], bins: Sequence[tuple[int, int]]) -> dict[str, list[int]]:
    """Item indices per bin label, bins in order (empty bins kept; the overflow bin only when used)."""
    groups = {f"{lo}–{hi}": [] for lo, hi in bins}
    for i, n in enumerate(lengths):
        groups.setdefault(bin_label(n, bins), []).append(i)
    return groups
