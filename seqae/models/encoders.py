"""Sequence encoders: `(x [B, T, E], lengths [B]) -> EncoderOutput`.

Dimension letters: B batch, T time, E input width, D encoder output width.
RNN encoders run on packed sequences, so padding never changes a result. The Transformer encoder masks
padded keys; its padded positions hold values that no pooling or loss ever reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from seqae.models.fast.linear import Linear
from seqae.models.layers import Dropout, EncoderBlock, lengths_to_mask


@dataclass
class EncoderOutput:
    states: Tensor
    """[B, T, D] top-layer states (zeros past each length for RNNs)."""
    lengths: Tensor
    """[B] valid positions of `states`."""
    final: Tensor
    """[B, D] summary state: the RNN's last states (both directions), the CLS state, or the last real position."""
    layers: list[Tensor]
    """Per-layer states [B, T, D_l], bottom to top (input projection first for Transformers)."""


class RNNEncoder(nn.Module):
    """Stacked GRU/LSTM, one module per layer so every layer's states can be returned."""

    def __init__(self, *, input_dim: int, hidden_dim: int, num_layers: int = 1, bidirectional: bool = True,
                 cell: str = "gru", dropout: float = 0.0) -> None:
        super().__init__()
        rnn = {"gru": nn.GRU, "lstm": nn.LSTM}[cell]
        directions = 2 if bidirectional else 1
        self.output_dim = hidden_dim * directions
        self.layers = nn.ModuleList(
            rnn(input_dim if i == 0 else self.output_dim, hidden_dim, batch_first=True, bidirectional=bidirectional)
            for i in range(num_layers)
        )
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor, lengths: Tensor, *, return_layers: bool = False) -> EncoderOutput:
        B, T, _ = x.shape
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        layer_states = []
        for i, rnn in enumerate(self.layers):
            if i > 0:
                packed = PackedSequence(self.dropout(packed.data), packed.batch_sizes,
                                        packed.sorted_indices, packed.unsorted_indices)
            packed, h_n = rnn(packed)
            if return_layers:
                layer_states.append(pad_packed_sequence(packed, batch_first=True, total_length=T)[0])
        h_n = h_n[0] if isinstance(h_n, tuple) else h_n  # LSTM: (h, c) -> h; (directions, B, H)
        final = h_n.transpose(0, 1).reshape(B, -1)  # (B, D): forward last state, then backward first state
        states = layer_states[-1] if return_layers else pad_packed_sequence(packed, batch_first=True, total_length=T)[0]
        return EncoderOutput(states=states, lengths=lengths, final=final, layers=layer_states or [states])


class TransformerEncoder(nn.Module):
    """Pre-LN Transformer with learned positions and an optional CLS vector prepended."""

    def __init__(self, *, input_dim: int, dim: int, num_layers: int, num_heads: int, ff_dim: int,
                 dropout: float = 0.0, max_positions: int = 512, cls_token: bool = False) -> None:
        super().__init__()
        self.output_dim = dim
        self.max_positions = max_positions
        self.input_proj = Linear(input_dim, dim) if input_dim != dim else nn.Identity()
        self.positions = nn.Embedding(max_positions + int(cls_token), dim)
        self.cls = nn.Parameter(torch.randn(dim) * 0.02) if cls_token else None
        self.drop = Dropout(dropout)
        self.blocks = nn.ModuleList(EncoderBlock(dim, num_heads, ff_dim, dropout) for _ in range(num_layers))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor, lengths: Tensor, *, return_layers: bool = False) -> EncoderOutput:
        B, T, _ = x.shape
        if T > self.max_positions:
            raise ValueError(f"sequence of {T} positions is longer than max_positions={self.max_positions}")
        h = self.input_proj(x)  # (B, T, D)
        mask = lengths_to_mask(lengths, T)  # (B, T)
        if self.cls is not None:
            h = torch.cat([self.cls.expand(B, 1, -1), h], dim=1)  # (B, 1 + T, D)
            mask = torch.cat([mask.new_ones(B, 1), mask], dim=1)
        h = self.drop(h + self.positions.weight[: h.shape[1]])
        layers = [h]
        for block in self.blocks:
            h = block(h, mask)
            layers.append(h)
        h = self.norm(h)
        layers[-1] = h
        if self.cls is not None:
            final, h = h[:, 0], h[:, 1:]  # (B, D), (B, T, D)
            layers = [layer[:, 1:] for layer in layers]
        else:
            final = h[torch.arange(B, device=h.device), (lengths - 1).clamp(min=0)]  # (B, D) last real position
        return EncoderOutput(states=h, lengths=lengths, final=final, layers=layers if return_layers else [h])


class EncoderStack(nn.Module):
    """Input layer (token `embedding` or frame `frontend`) and the sequence encoder `body`."""

    def __init__(self, *, body: nn.Module, embedding: nn.Embedding | None = None,
                 frontend: nn.Module | None = None) -> None:
        super().__init__()
        if (embedding is None) == (frontend is None):
            raise ValueError("EncoderStack needs exactly one of embedding (text) and frontend (speech)")
        self.embedding, self.frontend, self.body = embedding, frontend, body

    def forward(self, x: Tensor, lengths: Tensor, *, return_layers: bool = False) -> EncoderOutput:
        """x: token ids [B, T] or frames [B, T, F]; lengths: [B] -> EncoderOutput (lengths after the front end)."""
        if self.embedding is not None:
            h = self.embedding(x)  # (B, T, E)
        else:
            h, lengths = self.frontend(x, lengths)  # (B, T', E)
        return self.body(h, lengths, return_layers=return_layers)
