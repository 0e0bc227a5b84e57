"""`Linear`: `nn.Linear` whose CPU fp32 products can run on oneDNN's GEMM instead of the BLAS (MKL) one.

Dimension letters: M rows (every leading dimension flattened), K input width, N output width.

torch's CPU fp32 `addmm`/`mm` call MKL's sgemm. On x86 CPUs not made by Intel, MKL takes its AVX2 code path even
where the CPU has AVX-512, and oneDNN, which torch also ships and which picks its kernels from the instruction set
alone, runs the same products much faster. On a CPU without AVX-512 both run AVX2 kernels, and there MKL was
faster, above all in the weight-gradient products (grad^T x, one operand a transposed view) (measured:
benchmarks/README.md, 'GEMM choice'). The results are fp32 products in both (they differ in rounding only, about
1e-7 relative).

`set_cpu_gemm("auto" | "blas" | "onednn")` chooses; "auto" (the default, and `train.cpu_gemm`'s) is oneDNN on x86
CPUs with AVX-512 whose vendor is not Intel, and BLAS elsewhere: a fixed choice for a given machine, so a resumed
run on the same machine computes with the same kernels. Products of fewer than `MIN_ROWS` rows, inputs that are
not fp32 (bf16 autocast included), other devices, and tracing or export always take `F.linear`.
"""

from __future__ import annotations

import functools
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

CPU_GEMMS = ("auto", "blas", "onednn")
MIN_ROWS = 64
"""Below this many rows (a decoding step of a small batch) oneDNN is not reliably faster; from 64 rows on it was as
fast or faster at every shape of the benchmark's model (measured: benchmarks/README.md, 'MIN_ROWS')."""

_choice = "auto"


def set_cpu_gemm(choice: str) -> None:
    """Which GEMM CPU fp32 `Linear` layers use from now on: "auto", "blas" (torch's own) or "onednn"."""
    global _choice
    if choice not in CPU_GEMMS:
        raise ValueError(f"cpu_gemm {choice!r} unknown; allowed: {', '.join(CPU_GEMMS)}")
    if choice == "onednn" and not onednn_available():
        raise ValueError("cpu_gemm 'onednn': this torch build has no oneDNN linear kernel (torch.ops.mkldnn)")
    _choice = choice


def cpu_gemm() -> str:
    """The GEMM in force, "blas" or "onednn" ("auto" resolved for this machine)."""
    if _choice == "auto":
        mkl_narrow = _cpu_vendor() not in ("GenuineIntel", "") and "avx512f" in _cpu_flags()
        return "onednn" if mkl_narrow and onednn_available() else "blas"
    return _choice


@functools.cache
def onednn_available() -> bool:
    try:
        return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    except (AttributeError, RuntimeError):
        return False


@functools.cache
def _cpu_vendor() -> str:
    """x86 vendor string ("GenuineIntel", "AuthenticAMD", ...); "" on other machines or when it cannot be read."""
    return _cpuinfo_field("vendor_id")


@functools.cache
def _cpu_flags() -> frozenset[str]:
    """The x86 CPU's feature flags ("avx2", "avx512f", ...); empty on other machines or when they cannot be read."""
    return frozenset(_cpuinfo_field("flags").split())


def _cpuinfo_field(key: str) -> str:
    """The first `key` line's value in /proc/cpuinfo on x86; "" elsewhere or when it cannot be read."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(key) and line[len(key):].lstrip().startswith(":"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _onednn(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x: [M, K] @ weight: [N, K]^T (+ bias [N]) -> [M, N] on oneDNN. A transposed `weight` view is read in place;
    torch's wrapper copies a non-contiguous `x` first."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


class _OneDNNLinear(torch.autograd.Function):
    """x [M, K], weight [N, K], bias [N] or None -> [M, N], forward and backward on oneDNN."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return _onednn(x, weight, bias)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        x, weight = ctx.saved_tensors
        grad = grad.contiguous()  # (M, N)
        need_x, need_w, need_b = ctx.needs_input_grad
        grad_x = grad_w = grad_b = None
        if torch.is_grad_enabled():  # a double backward (the contractive penalty): differentiable ops
            grad_x = grad @ weight if need_x else None
            grad_w = grad.t() @ x if need_w else None
        else:
            grad_x = _onednn(grad, weight.t()) if need_x else None  # (M, K)
            grad_w = _weight_grad(grad, x) if need_w else None  # (N, K)
        if ctx.has_bias and need_b:
            grad_b = grad.sum(0)  # (N,)
        return grad_x, grad_w, grad_b


def _weight_grad(grad: Tensor, x: Tensor) -> Tensor:
    """grad: [M, N], x: [M, K] -> grad^T x: [N, K]. The sum runs over M, so both operands are passed transposed:
    the second is read in place, the first must be contiguous, so the narrower of N and K is transposed (the
    faster way round; measured: benchmarks/README.md, 'weight gradient')."""
    N, K = grad.shape[1], x.shape[1]
    if N <= K:
        return _onednn(transpose(grad), x.t())  # (N, K)
    return transpose(_onednn(transpose(x), grad.t()))  # (K, N) -> (N, K)


TRANSPOSE_BLOCK = 16
"""Columns moved together by `transpose`: 16 fp32 values, one 64-byte cache line."""


def transpose(t: Tensor) -> Tensor:
    """t: [M, K] -> t^T as a contiguous [K, M] tensor, copied in two passes that each move runs of `TRANSPOSE_BLOCK`
    values.

    The first pass moves column blocks [M, 16] whole ([K/16, M, 16]), the second transposes each block, so every
    read and write moves 64 contiguous bytes; torch's one-pass copy of the transposed view (`t.t().contiguous()`)
    was slower at every shape measured (benchmarks/README.md, 'transpose'). The values are copied, not computed: the
    result is bit-identical.
    """
    M, K = t.shape
    b = TRANSPOSE_BLOCK
    if K % b:
        return t.t().contiguous()
    blocks = t.view(M, K // b, b).transpose(0, 1).contiguous()  # (K/b, M, b)
    return blocks.transpose(1, 2).contiguous().view(K, M)  # (K/b, b, M) -> (K, M)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """`F.linear(x, weight, bias)`: x [..., K], weight [N, K] -> [..., N], on the GEMM `cpu_gemm()` names."""
    if not _use_onednn(x, weight):
        return F.linear(x, weight, bias)
    # contiguous: oneDNN reads a strided operand (the CLS rows h[:, 0]) far slower in the weight gradient
    # (measured: benchmarks/README.md, 'weight gradient')
    rows = x.reshape(-1, x.shape[-1]).contiguous()  # (M, K)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, weight, bias)):
        y = _OneDNNLinear.apply(rows, weight, bias)  # (M, N)
    else:  # inference: no graph, so no autograd.Function and its Python cost
        y = _onednn(rows, weight, bias)
    return y.view(*x.shape[:-1], weight.shape[0])


def _use_onednn(x: Tensor, weight: Tensor) -> bool:
    if (torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling()
            or torch.onnx.is_in_onnx_export()):  # a graph must hold the plain op
        return False
    if x.device.type != "cpu" or x.dtype != torch.float32 or weight.dtype != torch.float32:
        return False
    if torch.is_autocast_enabled("cpu"):  # autocast casts F.linear's operands to bf16
        return False
    return x.numel() >= MIN_ROWS * x.shape[-1] and cpu_gemm() == "onednn"


class Linear(nn.Linear):
    """`nn.Linear` (same parameters and state dict) computed by `linear`."""

    def forward(self, x: Tensor) -> Tensor:
        return linear(x, self.weight, self.bias)


BF16_SLOW = 4.0
"""A bf16 product this many times slower than fp32 means the CPU has no bf16 arithmetic (AVX-512 BF16, AMX) and
torch converts in software, where bf16 training is many times slower than fp32; with bf16 arithmetic it is faster
(measured: benchmarks/README.md, 'bf16')."""


def bf16_slowdown(rows: int = 256, width: int = 256, *, repeats: int = 5) -> float:
    """How many times longer a [rows, width] x [width, width] bf16 `F.linear` takes than the fp32 one on this CPU,
    the best of `repeats` calls each after a warm-up of both (a few milliseconds in all)."""
    operands = {dtype: (torch.randn(rows, width, dtype=dtype), torch.randn(width, width, dtype=dtype))
                for dtype in (torch.float32, torch.bfloat16)}
    for x, weight in operands.values():
        F.linear(x, weight)  # warm-up: the thread pool and the kernels' first-call set-up
    best = {}
    for dtype, (x, weight) in operands.items():
        best[dtype] = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            F.linear(x, weight)
            best[dtype] = min(best[dtype], time.perf_counter() - start)
    return best[torch.bfloat16] / max(best[torch.float32], 1e-9)
