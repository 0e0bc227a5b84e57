"""Dropout for training on the CPU: one pass of a compiled kernel, or a numpy-drawn mask where it cannot be built.

Dimension letters: B batch, H heads, T query time, S key time, K head width. On other devices `F.dropout`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqae.models.fast import native


def _draw_seed() -> int:
    """A 64-bit seed for one dropout call, drawn from torch's CPU generator: `torch.manual_seed` and the RNG state
    saved in checkpoints fix every mask."""
    return int(torch.randint(0, 2**63 - 1, ()))


def dropout_mask(shape: torch.Size | tuple[int, ...], p: float, dtype: torch.dtype = torch.float32) -> Tensor:
    """A CPU dropout mask of `shape`: 0 with probability `p` (rounded to a multiple of 1/65536), else 1/(1-p).

    torch's CPU generator (mt19937) is serial and slow; here a 64-bit seed drawn from it starts numpy's SFC64,
    whose 64-bit words are read as four 16-bit draws each and compared with a threshold, straight into a mask of
    `dtype`. So `torch.manual_seed` and the torch RNG state saved in checkpoints still fix every mask, and
    it is faster than torch's `randint`, compare and cast (measured: benchmarks/README.md, 'dropout masks').
    """
    n = math.prod(shape)
    seed = _draw_seed()
    words = np.random.Generator(np.random.SFC64(seed)).bit_generator.random_raw((n + 3) // 4)  # 4 × 16 bits each
    bits = torch.from_numpy(words.view(np.int16)[:n]).view(shape)
    mask = torch.empty(shape, dtype=dtype)
    torch.ge(bits, -32768 + round(p * 65536), out=mask)  # keep (1.0) when the draw is >= the threshold
    return mask.mul_(1.0 / (1.0 - p))


class _NativeDropout(torch.autograd.Function):
    """x -> x * keep / (1 - p) on seqae's compiled kernel (seqae.models.fast.native); the backward pass recomputes the
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
    (`dropout_mask`); other devices `F.dropout`. The kernel adds less to a step than numpy's masks (measured:
    benchmarks/README.md, 'dropout')."""
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
    """`nn.Dropout` computed by `dropout`: cheaper than torch's on the CPU, whose `bernoulli_` masks were a large
    part of a training step (measured: benchmarks/README.md, 'dropout masks'); `F.dropout` on other devices."""

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
    key (none here: every sequence has a position, and a causal row sees itself), which makes it faster (measured:
    benchmarks/README.md, 'attention with dropout').
    """
    scores = torch.matmul(q * q.shape[-1] ** -0.5, k.transpose(-2, -1))  # (B, H, T, S)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    if causal:
        T, S = scores.shape[-2:]
        scores = scores.masked_fill(torch.ones(T, S, dtype=torch.bool, device=q.device).triu(1), float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    return torch.matmul(dropout(probs, p), v)  # (B, H, T, K)
