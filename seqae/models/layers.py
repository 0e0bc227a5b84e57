"""Transformer building blocks: pre-LayerNorm blocks on `scaled_dot_product_attention`, with a KV cache.

Dimension letters: B batch, T query time, S key time, D model width, H heads, K head width (D = H·K).
Masks are boolean with True where a position takes part (SDPA's convention).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqae.models import native
from seqae.models.linear import Linear, linear


def lengths_to_mask(lengths: Tensor, max_len: int | None = None) -> Tensor:
    """lengths: [B] -> mask [B, T], True at real positions."""
    max_len = int(lengths.max()) if max_len is None else max_len
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def _draw_seed() -> int:
    """A 64-bit seed for one dropout call, drawn from torch's CPU generator: `torch.manual_seed` and the RNG state
    saved in checkpoints fix every mask."""
    return int(torch.randint(0, 2**63 - 1, ()))


def dropout_mask(shape: torch.Size | tuple[int, ...], p: float, dtype: torch.dtype = torch.float32) -> Tensor:
    """A CPU dropout mask of `shape`: 0 with probability `p` (rounded to a multiple of 1/65536), else 1/(1-p).

    torch's CPU generator (mt19937) is serial and slow; here a 64-bit seed drawn from it starts numpy's SFC64,
    whose 64-bit words are read as four 16-bit draws each and compared with a threshold, straight into a mask of
    `dtype`. So `torch.manual_seed` and the torch RNG state saved in checkpoints still fix every mask. A
    64×63×1024 mask took 4.2 ms instead of 11.8 ms with torch's `randint`, compare and cast (2 threads).
    """
    n = math.prod(shape)
    seed = _draw_seed()
    words = np.random.Generator(np.random.SFC64(seed)).bit_generator.random_raw((n + 3) // 4)  # 4 × 16 bits each
    bits = torch.from_numpy(words.view(np.int16)[:n]).view(shape)
    mask = torch.empty(shape, dtype=dtype)
    torch.ge(bits, -32768 + round(p * 65536), out=mask)  # keep (1.0) when the draw is >= the threshold
    return mask.mul_(1.0 / (1.0 - p))


class _NativeDropout(torch.autograd.Function):
    """x -> x * keep / (1 - p) on seqae's compiled kernel (seqae.models.native); the backward pass recomputes the
    same decisions from the seed instead of keeping a mask."""

    @staticmethod
    def forward(ctx, x: Tensor, p: float) -> Tensor:
        ctx.seed, ctx.p = _draw_seed(), p
        return native.dropout(x, ctx.seed, p)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        if torch.is_grad_enabled():  # a double backward (the contractive penalty): a differentiable product
            return grad * native.mask(grad.shape, ctx.seed, ctx.p), None
        return native.dropout(grad, ctx.seed, ctx.p), None


def dropout(x: Tensor, p: float) -> Tensor:
    """Training-time dropout of `x` with probability `p` (0 <= p < 1), for any device.

    CPU fp32 tensors take seqae's compiled one-pass kernel where it could be built (`_NativeDropout`), other CPU
    tensors (bf16 under autocast) a mask of its decisions, and all where it could not a numpy-drawn mask
    (`dropout_mask`); other devices `F.dropout`. On the benchmark's Transformer AE (2 Intel Xeon cores) dropout 0.1
    added 30-32 ms to a forward and backward pass of 236-244 ms with the kernel, 48-52 ms with numpy's masks
    (benchmarks/README.md)."""
    if p == 0.0:
        return x
    if x.device.type != "cpu":
        return F.dropout(x, p, training=True)
    if not native.available():
        return x * dropout_mask(x.shape, p, x.dtype)
    if x.dtype == torch.float32:
        return _NativeDropout.apply(x, p)
    # bf16 under autocast: the kernel's decisions as a mask, so that a bf16 run drops what an fp32 one would
    return x * native.mask(x.shape, _draw_seed(), p).to(x.dtype)


class Dropout(nn.Module):
    """`nn.Dropout` computed by `dropout`: cheaper than torch's on the CPU, `F.dropout` on other devices.

    Dropout masks were 17% of a Transformer AE training step with torch's `bernoulli_` on the CPU, and the
    mask's random draws still 9% after moving to 16-bit draws from `randint` (benchmarks/README.md).
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        return dropout(x, self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def attention_with_dropout(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, causal: bool, p: float) -> Tensor:
    """q: [B, H, T, K], k and v: [B, H, S, K], mask: boolean, broadcast to [B, H, T, S] -> [B, H, T, K].

    Attention with dropout on its probabilities, for training on the CPU. There SDPA with dropout takes its unfused
    math path anyway; written out, it draws the mask with `dropout_mask` and skips SDPA's guard for rows with no
    key (none here: every sequence has a position, and a causal row sees itself). Forward and backward of
    64×4×63×63 attention took 23 ms instead of 34 ms (2 threads).
    """
    scores = torch.matmul(q * q.shape[-1] ** -0.5, k.transpose(-2, -1))  # (B, H, T, S)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    if causal:
        T, S = scores.shape[-2:]
        scores = scores.masked_fill(torch.ones(T, S, dtype=torch.bool, device=q.device).triu(1), float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    return torch.matmul(dropout(probs, p), v)  # (B, H, T, K)


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
