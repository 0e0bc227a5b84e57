"""Pooling of encoder states and the bottleneck that turns them into one vector z.

Dimension letters: B batch, T time, D encoder width, Z bottleneck width.
Every bottleneck returns `(z, aux)` where `aux` maps a name to a scalar loss term (empty for the plain one).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from seqae.models.encoders import EncoderOutput
from seqae.models.layers import lengths_to_mask

POOLINGS = ("last", "mean", "attention", "cls")


class Pooling(nn.Module):
    """Pool `EncoderOutput` -> [B, D]: the final/CLS state, a masked mean, or attention with a learned query."""

    def __init__(self, kind: str, dim: int) -> None:
        super().__init__()
        if kind not in POOLINGS:
            raise ValueError(f"pooling {kind!r} unknown; allowed: {', '.join(POOLINGS)}")
        self.kind = kind
        self.score = nn.Linear(dim, 1) if kind == "attention" else None

    def forward(self, enc: EncoderOutput) -> Tensor:
        if self.kind in ("last", "cls"):
            return enc.final
        mask = lengths_to_mask(enc.lengths, enc.states.shape[1])  # (B, T)
        if self.kind == "mean":
            summed = (enc.states * mask[..., None]).sum(dim=1)  # (B, D)
            return summed / enc.lengths.clamp(min=1)[:, None].to(summed.dtype)
        scores = self.score(enc.states).squeeze(-1).masked_fill(~mask, float("-inf"))  # (B, T)
        weights = torch.softmax(scores, dim=1)
        return torch.einsum("bt,btd->bd", weights, enc.states)  # (B, D)


class Bottleneck(nn.Module):
    """Pooling -> linear projection -> z [B, Z]."""

    def __init__(self, *, input_dim: int, bottleneck_dim: int, pooling: str) -> None:
        super().__init__()
        self.pool = Pooling(pooling, input_dim)
        self.proj = nn.Linear(input_dim, bottleneck_dim)

    def forward(self, enc: EncoderOutput) -> tuple[Tensor, dict[str, Tensor]]:
        return self.proj(self.pool(enc)), {}
