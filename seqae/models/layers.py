"""Transformer building blocks: pre-LayerNorm blocks on `scaled_dot_product_attention`, with a KV cache.

Dimension letters: B batch, T query time, S key time, D model width, H heads, K head width (D = H·K).
Masks are boolean with True where a position takes part (SDPA's convention).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqae.models.fast.dropout import Dropout, attention_with_dropout
from seqae.models.fast.linear import Linear, linear


def lengths_to_mask(lengths: Tensor, max_len: int | None = None) -> Tensor:
    """lengths: [B] -> mask [B, T], True at real positions."""
    max_len = int(lengths.max()) if max_len is None else max_len
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def _extend_cache(cache: dict, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
    """Append one block of keys and values (k, v: [B, H, T, K]) to a self-attention cache; returns the whole prefix
    so far as views [B, H, S, K] of the cache's buffers.

    The buffers grow by doubling, so a decoding step writes only its own rows: concatenating the prefix with each
    new step (as before) copied it every time, O(L²) over L steps."""
    B, H, T, K = k.shape
    n = cache.get("len", 0)
    if "k_buf" not in cache or n + T > cache["k_buf"].shape[2]:
        capacity = max(2 * n, n + T, 16)
        for name, new in (("k_buf", k), ("v_buf", v)):
            buf = new.new_empty(B, H, capacity, K)
            if n:
                buf[:, :, :n] = cache[name][:, :, :n]
            cache[name] = buf
    cache["k_buf"][:, :, n: n + T] = k
    cache["v_buf"][:, :, n: n + T] = v
    cache["len"] = n + T
    return cache["k_buf"][:, :, : n + T], cache["v_buf"][:, :, : n + T]


class MultiHeadAttention(nn.Module):
    """Self- or cross-attention. With `cache`, keys/values of earlier steps are kept and extended."""

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0, *, cross: bool = False) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.cross = cross
        self.dropout = dropout
        self.q = Linear(dim, dim)
        self.kv = Linear(dim, 2 * dim)
        self.out = Linear(dim, dim)

    def _split(self, x: Tensor) -> Tensor:
        B, T, D = x.shape
        return x.view(B, T, self.num_heads, D // self.num_heads).transpose(1, 2)  # (B, H, T, K)

    def forward(self, x: Tensor, *, memory: Tensor | None = None, key_mask: Tensor | None = None,
                causal: bool = False, cache: dict[str, Tensor] | None = None) -> Tensor:
        """x: [B, T, D]; memory: [B, S, D] for cross-attention; key_mask: [B, S]. Returns [B, T, D].

        `cache` (a dict, mutated): for self-attention it accumulates keys/values of the steps seen so far, so
        a step of one query attends to the whole prefix; for cross-attention it holds the memory's keys/values
        (and, for a memory of one slot, the attention's output, which is then the same at every step).
        """
        B, T, D = x.shape
        if self.cross:
            if cache is not None and "out" in cache:
                return cache["out"].expand(B, T, D)
            if cache is not None and "k" in cache:
                k, v = cache["k"], cache["v"]
            else:
                k, v = (self._split(t) for t in self.kv(memory).chunk(2, dim=-1))  # (B, H, S, K) each
            if k.shape[2] == 1 and key_mask is None and not self.training:
                # One key: its softmax weight is exactly 1, so every query reads v and q is not needed
                y = self.out(v.transpose(1, 2).reshape(B, 1, D))  # (B, 1, D)
                if cache is not None:
                    cache["out"] = y  # all later steps need (k and v are not kept, nor reordered by beam search)
                return y.expand(B, T, D)
            if cache is not None:
                cache["k"], cache["v"] = k, v
            q = self._split(self.q(x))  # (B, H, T, K)
        elif cache is None:
            # q, k and v in one product: x is read once, and transposed once for the weight gradient
            weight, bias = torch.cat([self.q.weight, self.kv.weight]), torch.cat([self.q.bias, self.kv.bias])
            q, k, v = (self._split(t) for t in linear(x, weight, bias).chunk(3, dim=-1))  # (B, H, T, K) each
        else:  # a decoding step: a few rows, where concatenating the weights would cost more than it saves
            q = self._split(self.q(x))  # (B, H, T, K)
            k, v = _extend_cache(cache, *(self._split(t) for t in self.kv(x).chunk(2, dim=-1)))  # (B, H, S, K)
        mask = None if key_mask is None else key_mask[:, None, None, :]  # (B, 1, 1, S)
        is_causal = causal and T > 1
        if is_causal and k.shape[2] != T:  # a block of queries after a cached prefix
            offset = k.shape[2] - T
            mask = torch.ones(T, k.shape[2], dtype=torch.bool, device=x.device).tril(offset)
            is_causal = False
        if self.training and self.dropout > 0.0 and x.device.type == "cpu":
            y = attention_with_dropout(q, k, v, mask, is_causal, self.dropout)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal,
                                               dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).reshape(B, T, D)  # (B, T, D)
        return self.out(y)


class FeedForward(nn.Module):
    def __init__(self, dim: int, ff_dim: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(Linear(dim, ff_dim), nn.GELU(), Dropout(dropout), Linear(ff_dim, dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class EncoderBlock(nn.Module):
    """Pre-LN: x + SelfAttn(LN(x)), then x + FF(LN(x))."""

    def __init__(self, dim: int, num_heads: int, ff_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, num_heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim, ff_dim, dropout)
        self.drop = Dropout(dropout)

    def forward(self, x: Tensor, key_mask: Tensor | None) -> Tensor:
        x = x + self.drop(self.attn(self.norm1(x), key_mask=key_mask))
        return x + self.drop(self.ff(self.norm2(x)))


class DecoderBlock(nn.Module):
    """Pre-LN: causal self-attention, cross-attention to a memory, feed-forward."""

    def __init__(self, dim: int, num_heads: int, ff_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.self_attn = MultiHeadAttention(dim, num_heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.cross_attn = MultiHeadAttention(dim, num_heads, dropout, cross=True)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim, ff_dim, dropout)
        self.drop = Dropout(dropout)

    def forward(self, x: Tensor, memory: Tensor, memory_mask: Tensor | None,
                cache: dict[str, dict[str, Tensor]] | None = None) -> Tensor:
        self_cache = None if cache is None else cache.setdefault("self", {})
        cross_cache = None if cache is None else cache.setdefault("cross", {})
        x = x + self.drop(self.self_attn(self.norm1(x), causal=True, cache=self_cache))
        x = x + self.drop(self.cross_attn(self.norm2(x), memory=memory, key_mask=memory_mask, cache=cross_cache))
        return x + self.drop(self.ff(self.norm3(x)))
