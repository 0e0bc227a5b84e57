"""seqae.models.fast.linear: the oneDNN fast path against F.linear (the slow reference), and when it is not taken."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from seqae.config import ConfigError, load_config_dict
from seqae.models.fast import linear as linear_module
from seqae.models.fast.linear import MIN_ROWS, Linear, cpu_gemm, linear, onednn_available, set_cpu_gemm

needs_onednn = pytest.mark.skipif(not onednn_available(), reason="this torch build has no oneDNN linear kernel")


@pytest.fixture(autouse=True)
def restore_choice():
    before = linear_module._choice
    yield
    linear_module._choice = before


def _forward_backward(choice: str, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                      grad: torch.Tensor) -> list[torch.Tensor]:
    set_cpu_gemm(choice)
    leaves = [t.detach().clone().requires_grad_() for t in (x, weight) + ((bias,) if bias is not None else ())]
    y = linear(leaves[0], leaves[1], leaves[2] if bias is not None else None)
    y.backward(grad)
    return [y.detach()] + [t.grad for t in leaves]


@needs_onednn
@pytest.mark.parametrize("shape,k,n,bias", [
    ((6, 11, 64), 64, 256, True),   # ragged-batch layout [B, T, K]; N > K: the weight gradient is taken transposed
    ((70, 256), 256, 32, True),     # N < K
    ((72, 48), 48, 48, False),      # no bias
])
def test_onednn_matches_blas_forward_and_backward(shape, k, n, bias):
    assert math.prod(shape[:-1]) >= MIN_ROWS  # the fast path is taken
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=g)  # (..., K)
    weight, b = torch.randn(n, k, generator=g) / k ** 0.5, torch.randn(n, generator=g) if bias else None
    grad = torch.randn(*shape[:-1], n, generator=g)
    reference = _forward_backward("blas", x, weight, b, grad)
    fast = _forward_backward("onednn", x, weight, b, grad)
    assert fast[0].shape == (*shape[:-1], n)
    for want, got in zip(reference, fast):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@needs_onednn
def test_onednn_reads_strided_rows():
    """The CLS rows h[:, 0] are a strided view; the result and gradients must not depend on that."""
    g = torch.Generator().manual_seed(1)
    h = torch.randn(64, 9, 32, generator=g)
    weight, bias, grad = torch.randn(48, 32, generator=g), torch.randn(48, generator=g), torch.randn(64, 48, generator=g)
    strided = _forward_backward("onednn", h[:, 0], weight, bias, grad)
    dense = _forward_backward("blas", h[:, 0].contiguous(), weight, bias, grad)
    for want, got in zip(dense, strided):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@needs_onednn
def test_onednn_double_backward_matches_blas():
    """The contractive penalty differentiates a gradient: the backward must itself be differentiable."""
    torch.manual_seed(0)
    layer, x = Linear(32, 16), torch.randn(MIN_ROWS + 16, 32, requires_grad=True)
    grads = []
    for choice in ("blas", "onednn"):
        set_cpu_gemm(choice)
        (gx,) = torch.autograd.grad(torch.tanh(layer(x)).sum(), x, create_graph=True)
        layer.zero_grad()
        gx.pow(2).sum().backward()
        grads.append((layer.weight.grad.clone(), layer.bias.grad.clone()))
    for want, got in zip(*grads):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


@needs_onednn
@pytest.mark.filterwarnings("ignore:`torch.jit.trace:DeprecationWarning")
def test_fallbacks_take_f_linear(monkeypatch):
    """Few rows, bf16 autocast, non-fp32 inputs and tracing never reach the oneDNN kernel."""
    set_cpu_gemm("onednn")
    calls = []
    real = linear_module._onednn
    monkeypatch.setattr(linear_module, "_onednn", lambda *a: calls.append(1) or real(*a))
    layer = Linear(16, 8)
    layer(torch.randn(MIN_ROWS, 16))
    assert len(calls) == 1  # the fast path, for reference
    layer(torch.randn(MIN_ROWS - 1, 16))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer(torch.randn(64, 16)).dtype == torch.bfloat16
    layer.double()(torch.randn(64, 16, dtype=torch.float64))
    traced = torch.jit.trace(Linear(16, 8), torch.randn(64, 16), check_trace=False)
    assert "mkldnn" not in str(traced.graph)
    assert len(calls) == 1


def test_choice_validation_and_auto(monkeypatch):
    with pytest.raises(ValueError, match="cpu_gemm 'mkl' unknown; allowed: auto, blas, onednn"):
        set_cpu_gemm("mkl")
    set_cpu_gemm("blas")
    assert cpu_gemm() == "blas"
    set_cpu_gemm("auto")
    avx512 = frozenset({"avx2", "avx512f"})
    monkeypatch.setattr(linear_module, "_cpu_flags", lambda: avx512)
    monkeypatch.setattr(linear_module, "_cpu_vendor", lambda: "GenuineIntel")
    assert cpu_gemm() == "blas"
    monkeypatch.setattr(linear_module, "_cpu_vendor", lambda: "AuthenticAMD")
    assert cpu_gemm() == ("onednn" if onednn_available() else "blas")
    monkeypatch.setattr(linear_module, "_cpu_flags", lambda: frozenset({"avx2"}))  # MKL's AVX2 path is the CPU's
    assert cpu_gemm() == "blas"
    monkeypatch.setattr(linear_module, "_cpu_flags", lambda: avx512)
    monkeypatch.setattr(linear_module, "_cpu_vendor", lambda: "")  # not x86, or unreadable
    assert cpu_gemm() == "blas"
    with pytest.raises(ConfigError, match="train.cpu_gemm"):
        load_config_dict({"train": {"cpu_gemm": "mkl"}})


def test_linear_keeps_nn_linear_state_dict():
    """Checkpoints and exports written before Linear existed load unchanged."""
    plain, ours = torch.nn.Linear(8, 4), Linear(8, 4)
    ours.load_state_dict(plain.state_dict())
    x = torch.randn(3, 8)
    torch.testing.assert_close(ours(x), F.linear(x, plain.weight, plain.bias))


@needs_onednn
def test_inference_path_matches_blas():
    """Without a graph (no_grad, or nothing requiring grad) the kernel is called directly; same result."""
    layer, x = Linear(48, 96), torch.randn(3, MIN_ROWS, 48)
    set_cpu_gemm("blas")
    with torch.no_grad():
        want = layer(x)
    set_cpu_gemm("onednn")
    with torch.no_grad():
        got = layer(x)
    assert got.shape == (3, MIN_ROWS, 96) and not got.requires_grad
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(2240, 256), (17, 16), (16, 16), (100, 48), (5, 3), (64, 1000), (1, 32)])
def test_transpose_is_bit_identical_and_contiguous(shape):
    x = torch.randn(*shape)
    y = linear_module.transpose(x)
    assert y.is_contiguous() and y.shape == (shape[1], shape[0])
    assert torch.equal(y, x.t())


@pytest.mark.skipif(not onednn_available(), reason="no oneDNN linear kernel in this torch build")
@pytest.mark.parametrize("n, k", [(1024, 256), (256, 1024), (48, 48)])
def test_weight_grad_on_both_sides(n, k):
    grad, x = torch.randn(300, n), torch.randn(300, k)
    w = linear_module._weight_grad(grad, x)  # (N, K)
    assert w.shape == (n, k) and w.is_contiguous()
    torch.testing.assert_close(w, grad.t() @ x, rtol=1e-5, atol=1e-4)


def test_cpuinfo_fields_are_read_by_key(monkeypatch, tmp_path):
    """`flags` is read from its own line, not from one that merely starts with the word (`vmx flags`)."""
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nflagsx\t: nope\nflags\t\t: fpu avx2 avx512f\n"
                       "vmx flags\t: ept\nprocessor\t: 1\nflags\t\t: other\n")
    real_path = linear_module.Path
    monkeypatch.setattr(linear_module, "Path", lambda p: real_path(cpuinfo) if p == "/proc/cpuinfo" else real_path(p))
    monkeypatch.setattr(linear_module.platform, "machine", lambda: "x86_64")
    assert linear_module._cpuinfo_field("vendor_id") == "AuthenticAMD"
    assert linear_module._cpuinfo_field("flags") == "fpu avx2 avx512f"
    monkeypatch.setattr(linear_module.platform, "machine", lambda: "aarch64")
    assert linear_module._cpuinfo_field("flags") == ""
