"""Autoregressive decoders conditioned on the bottleneck z (or, for the Transformer, on any memory).

Dimension letters: B batch, T time, E input width, Z bottleneck width, H decoder width, M memory length, L layers.
Each decoder has a teacher-forced `forward(x, z)` and a step API for generation:
`start(z) -> state`, `step(x_t, state) -> (h_t, state)` and `reorder(state, index)` for beam search.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from seqae.models.fast.linear import Linear, linear
from seqae.models.layers import DecoderBlock, Dropout

State = dict[str, Any]


class RNNDecoder(nn.Module):
    """GRU/LSTM whose initial state is a projection of z, with z also fed to every step."""

    def __init__(self, *, input_dim: int, hidden_dim: int, bottleneck_dim: int, num_layers: int = 1,
                 cell: str = "gru", dropout: float = 0.0) -> None:
        super().__init__()
        rnn = {"gru": nn.GRU, "lstm": nn.LSTM}[cell]
        self.is_lstm = cell == "lstm"
        self.num_layers, self.hidden_dim, self.output_dim = num_layers, hidden_dim, hidden_dim
        self.init = Linear(bottleneck_dim, num_layers * hidden_dim * (2 if self.is_lstm else 1))
        self.rnn = rnn(input_dim + bottleneck_dim, hidden_dim, num_layers, batch_first=True,
                       dropout=dropout if num_layers > 1 else 0.0)

    def _initial(self, z: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        B = z.shape[0]
        h0 = torch.tanh(self.init(z)).view(B, self.num_layers, -1).transpose(0, 1).contiguous()  # (L, B, H or 2H)
        if self.is_lstm:
            h, c = h0.chunk(2, dim=-1)
            return h.contiguous(), c.contiguous()
        return h0

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        """x: [B, T, E] inputs (shifted targets); z: [B, Z] -> [B, T, H]."""
        B, T, _ = x.shape
        inputs = torch.cat([x, z[:, None, :].expand(B, T, z.shape[-1])], dim=-1)  # (B, T, E + Z)
        out, _ = self.rnn(inputs, self._initial(z))
        return out

    def start(self, z: Tensor) -> State:
        return {"z": z, "hidden": self._initial(z)}

    def step(self, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        """x_t: [B, E] -> h_t [B, H]."""
        inputs = torch.cat([x_t, state["z"]], dim=-1)[:, None, :]  # (B, 1, E + Z)
        out, hidden = self.rnn(inputs, state["hidden"])
        return out[:, 0], {"z": state["z"], "hidden": hidden}

    @staticmethod
    def reorder(state: State, index: Tensor) -> State:
        hidden = state["hidden"]
        if isinstance(hidden, tuple):
            hidden = tuple(h.index_select(1, index) for h in hidden)
        else:
            hidden = hidden.index_select(1, index)
        return {"z": state["z"].index_select(0, index), "hidden": hidden}


class TransformerDecoder(nn.Module):
    """Pre-LN Transformer decoder: causal self-attention with a KV cache, cross-attention to a memory.

    With `bottleneck_dim`, z is projected to `memory_slots` memory vectors; a translation model passes the
    encoder's states as `memory` instead.
    """

    def __init__(self, *, input_dim: int, dim: int, num_layers: int, num_heads: int, ff_dim: int,
                 dropout: float = 0.0, max_positions: int = 512, bottleneck_dim: int | None = None,
                 memory_slots: int = 1) -> None:
        super().__init__()
        self.output_dim, self.max_positions, self.memory_slots = dim, max_positions, memory_slots
        self.input_proj = Linear(input_dim, dim) if input_dim != dim else nn.Identity()
        self.positions = nn.Embedding(max_positions, dim)
        self.z_to_memory = Linear(bottleneck_dim, memory_slots * dim) if bottleneck_dim else None
        self.drop = Dropout(dropout)
        self.blocks = nn.ModuleList(DecoderBlock(dim, num_heads, ff_dim, dropout) for _ in range(num_layers))
        self.norm = nn.LayerNorm(dim)

    def _memory(self, z: Tensor | None, memory: Tensor | None) -> Tensor:
        if memory is not None:
            return memory
        if z is None or self.z_to_memory is None:
            raise ValueError("TransformerDecoder needs z (with bottleneck_dim set) or an explicit memory")
        return self.z_to_memory(z).view(z.shape[0], self.memory_slots, -1)  # (B, M, D)

    def _embed(self, x: Tensor, offset: int) -> Tensor:
        T = x.shape[1]
        if offset + T > self.max_positions:
            raise ValueError(f"decoding past max_positions={self.max_positions}")
        return self.drop(self.input_proj(x) + self.positions.weight[offset: offset + T])  # (B, T, D)

    def forward(self, x: Tensor, z: Tensor | None = None, *, memory: Tensor | None = None,
                memory_mask: Tensor | None = None) -> Tensor:
        """x: [B, T, E]; z: [B, Z] or memory: [B, M, D] with memory_mask [B, M] -> [B, T, D]."""
        memory = self._memory(z, memory)
        h = self._embed(x, 0)
        for block in self.blocks:
            h = block(h, memory, memory_mask)
        return self.norm(h)

    def start(self, z: Tensor | None = None, *, memory: Tensor | None = None,
              memory_mask: Tensor | None = None) -> State:
        memory = self._memory(z, memory)
        return {"memory": memory, "memory_mask": memory_mask, "pos": 0, "caches": [{} for _ in self.blocks]}

    def step(self, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        """x_t: [B, E] -> h_t [B, D]; extends the per-layer key/value caches in `state`."""
        h = self._embed(x_t[:, None, :], state["pos"])  # (B, 1, D)
        for block, cache in zip(self.blocks, state["caches"]):
            h = block(h, state["memory"], state["memory_mask"], cache=cache)
        state["pos"] += 1
        return self.norm(h)[:, 0], state

    @staticmethod
    def reorder(state: State, index: Tensor) -> State:
        def pick(t):  # tensors follow their hypothesis; None and a cache's length stay
            return t.index_select(0, index) if isinstance(t, Tensor) else t

        caches = [{part: {k: pick(v) for k, v in kv.items()} for part, kv in cache.items()}
                  for cache in state["caches"]]
        return {"memory": pick(state["memory"]), "memory_mask": pick(state["memory_mask"]),
                "pos": state["pos"], "caches": caches}


class TokenDecoder(nn.Module):
    """Target tokens -> embedding -> Transformer decoder attending to a memory -> next-token logits.

    The parameters carry the names of a `TokenAutoencoder`'s decoder side (`embedding`, `decoder`, `out_proj`,
    `out_bias`), so a text autoencoder's decoder (a language model conditioned on its memory) loads into it; a
    translation model gives the encoder's states as the memory. Dimension letters as above, V vocabulary.
    """

    def __init__(self, *, vocab_size: int, embed_dim: int, decoder: TransformerDecoder, tie_embeddings: bool = True,
                 pad_id: int = 0) -> None:
        super().__init__()
        self.vocab_size, self.output_dim = vocab_size, decoder.output_dim
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        nn.init.normal_(self.embedding.weight, std=embed_dim ** -0.5)
        with torch.no_grad():
            self.embedding.weight[pad_id].zero_()
        self.decoder = decoder
        if tie_embeddings:  # H -> E, then the embedding matrix: logits start near uniform
            self.out_proj = Linear(decoder.output_dim, embed_dim)
            self.out_bias = nn.Parameter(torch.zeros(vocab_size))
        else:
            self.out_proj = Linear(decoder.output_dim, vocab_size)
            self.out_bias = None

    def logits(self, h: Tensor) -> Tensor:
        """h: [..., H] -> [..., V]."""
        out = self.out_proj(h)
        if self.out_bias is not None:
            out = linear(out, self.embedding.weight, self.out_bias)
        return out

    def forward(self, tokens: Tensor, memory: Tensor, memory_mask: Tensor | None = None) -> Tensor:
        """Teacher forcing: tokens [B, T] (bos first), memory [B, M, H], memory_mask [B, M] -> logits [B, T, V]."""
        h = self.decoder(self.embedding(tokens), memory=memory, memory_mask=memory_mask)  # (B, T, H)
        return self.logits(h)

    def start(self, memory: Tensor, memory_mask: Tensor | None = None) -> State:
        return self.decoder.start(memory=memory, memory_mask=memory_mask)

    def step(self, prev: Tensor, state: State) -> tuple[Tensor, State]:
        """prev: [B] previous tokens -> log-probabilities [B, V] of the next one."""
        h, state = self.decoder.step(self.embedding(prev), state)
        return torch.log_softmax(self.logits(h).float(), dim=-1), state

    reorder = staticmethod(TransformerDecoder.reorder)
