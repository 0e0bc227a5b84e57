"""Padding a batch: ragged token sequences or feature frames -> one padded tensor and its lengths.

Dimension letters: B batch, T time (tokens or frames), F feature bins.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn.utils.rnn import pad_sequence


def collate_tokens(
    seqs: Sequence[Sequence[int]] | Sequence[torch.Tensor], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token sequences into `tokens: LongTensor[B, T]` with `lengths: LongTensor[B]`.

    `T` is the longest length; positions `t >= lengths[b]` hold `pad_id`.
    """
    if len(seqs) == 0:
        raise ValueError("collate_tokens needs at least one sequence")
    tensors = []
    for i, seq in enumerate(seqs):
        t = torch.as_tensor(seq)
        if t.numel() == 0 and t.dim() == 1:
            t = t.long()  # an empty list becomes a float tensor
        if t.dim() != 1 or t.is_floating_point() or t.is_complex():
            raise ValueError(f"sequence {i} must be 1-D integer tokens, got dtype {t.dtype} shape {tuple(t.shape)}")
        tensors.append(t.long())
    lengths = torch.tensor([t.numel() for t in tensors], dtype=torch.long)  # (B,)
    tokens = pad_sequence(tensors, batch_first=True, padding_value=pad_id)  # (B, T)
    return tokens, lengths


def collate_frames(features: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad ``[T_i, F]`` tensors into one batch.

    Returns:
        ``(frames, lengths)``: ``frames`` is ``[B, max T_i, F]``, ``lengths`` is ``[B]`` int64.
    """
    if len(features) == 0:
        raise ValueError("collate_frames: empty batch")
    dim = features[0].shape[-1]
    for i, x in enumerate(features):
        if x.dim() != 2 or x.shape[1] != dim:
            raise ValueError(f"collate_frames: item {i} has shape {tuple(x.shape)}, expected [T, {dim}]")
    lengths = torch.tensor([x.shape[0] for x in features], dtype=torch.long)  # (B,)
    frames = pad_sequence(list(features), batch_first=True)  # (B, T, F)
    return frames, lengths
