"""seqae's compiled CPU dropout kernel (seqae.models.fast.native) and the fallback to numpy-drawn masks without it."""

import shutil

import pytest
import torch

from seqae.models.fast import dropout as layers
from seqae.models.fast import native

needs_kernel = pytest.mark.skipif(not native.available(), reason=f"no native kernel: {native.unavailable_reason()}")


@pytest.fixture
def fresh_library(monkeypatch, tmp_path):
    """`native.library()` rebuilt under this test's environment, and restored afterwards."""
    monkeypatch.setenv("SEQAE_NATIVE_CACHE", str(tmp_path / "native"))
    native.library.cache_clear()
    yield
    monkeypatch.undo()
    native.library.cache_clear()


@needs_kernel
@pytest.mark.parametrize("p", [0.1, 0.5])
def test_keep_rate_values_and_independence(p):
    x = torch.ones(1_000_003)  # not a multiple of the 32-element block: the partial block is covered too
    y = native.dropout(x, seed=12345, p=p)
    kept = y != 0
    assert abs(kept.float().mean().item() - (1 - p)) < 0.003  # 1M draws: the standard error is 5e-4
    assert torch.equal(y[kept], torch.full_like(y[kept], 1 / (1 - p)))
    # neighbours, the two halves of a block (the low and high bits of one hashed word) and another seed are
    # independent: P(both kept) = (1 - p)^2
    k = kept.float()
    other = (native.dropout(x, seed=12346, p=p) != 0).float()
    halves = k[: 1_000_000].view(-1, 2, 16)
    for a, b in ((k[:-1], k[1:]), (halves[:, 0], halves[:, 1]), (k, other)):
        assert abs((a * b).mean().item() - (1 - p) ** 2) < 0.004


@needs_kernel
def test_same_seed_same_decisions_on_any_thread_count_and_nan_stays():
    x = torch.randn(300_000)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = native.dropout(x, seed=7, p=0.2)
        torch.set_num_threads(2)
        two = native.dropout(x, seed=7, p=0.2)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one, two)
    assert not torch.equal(one, native.dropout(x, seed=8, p=0.2))
    ones = native.dropout(torch.ones_like(x), seed=7, p=0.2)  # the mask itself: the same decisions
    torch.testing.assert_close(one, x * ones, rtol=0, atol=0)
    x[::3] = float("nan")
    assert torch.isnan(native.dropout(x, seed=7, p=0.2)[::3]).all()  # dropped or not, x * 0 keeps NaN as torch does


@needs_kernel
def test_dropout_gradient_uses_the_forward_decisions():
    torch.manual_seed(0)
    x = torch.randn(64, 33, 1024, requires_grad=True)
    y = layers.dropout(x, 0.1)
    upstream = torch.randn_like(y)
    y.backward(upstream)
    keep = (y != 0).float() / 0.9
    torch.testing.assert_close(x.grad, upstream * keep)
    torch.testing.assert_close(y, x.detach() * keep)
    # the double backward (the contractive penalty differentiates a gradient): a differentiable product
    x2 = torch.randn(40, 50, requires_grad=True)
    y2 = layers.dropout(x2, 0.3)
    (g,) = torch.autograd.grad(y2.pow(2).sum(), x2, create_graph=True)
    mask = (y2 != 0).float() / 0.7
    torch.testing.assert_close(g, 2 * y2 * mask)
    (gg,) = torch.autograd.grad(g.sum(), x2)
    torch.testing.assert_close(gg, 2 * mask * mask)


@needs_kernel
def test_manual_seed_fixes_the_masks():
    x = torch.ones(5, 70)
    torch.manual_seed(3)
    a = layers.dropout(x, 0.5)
    torch.manual_seed(3)
    assert torch.equal(a, layers.dropout(x, 0.5))


def test_numpy_masks_where_the_kernel_is_unavailable(monkeypatch):
    monkeypatch.setattr(native, "available", lambda: False)
    torch.manual_seed(0)
    x = torch.ones(400, 1000, requires_grad=True)
    y = layers.Dropout(0.1).train()(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.9) < 0.003
    torch.manual_seed(0)
    assert torch.equal(y, x.detach() * layers.dropout_mask(x.shape, 0.1))  # the numpy path, same seed
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())


def test_switched_off_and_broken_compiler_fall_back_with_a_reason(fresh_library, monkeypatch):
    monkeypatch.setenv("SEQAE_NATIVE", "0")
    assert native.library() is None and native.unavailable_reason() == "switched off (SEQAE_NATIVE=0)"
    with pytest.raises(RuntimeError, match="switched off"):
        native.dropout(torch.ones(4), seed=1, p=0.5)
    if shutil.which("false") is None:
        pytest.skip("no `false` program to stand in for a broken compiler")
    monkeypatch.setenv("SEQAE_NATIVE", "1")
    monkeypatch.setenv("CC", "false")  # a "compiler" that always fails
    native.library.cache_clear()
    assert native.library() is None
    reason = native.unavailable_reason()
    assert "could not build dropout.c" in reason and "-O3 -march=native" in reason, reason
    y = layers.Dropout(0.5).train()(torch.ones(1000))  # training goes on with numpy's masks
    assert set(y.unique().tolist()) <= {0.0, 2.0}


@pytest.mark.skipif(native._compiler() is None, reason="no C compiler on this machine")
def test_built_once_into_the_cache_and_reused(fresh_library, tmp_path):
    assert native.library() is not None
    built = list((tmp_path / "native").glob("dropout-*.so"))
    assert len(built) == 1
    stamp = built[0].stat().st_mtime_ns
    native.library.cache_clear()
    assert native.library() is not None  # a second process: loads the cached file, builds nothing
    assert [p.stat().st_mtime_ns for p in (tmp_path / "native").glob("*")] == [stamp]


@pytest.mark.skipif(native._compiler() is None, reason="no C compiler on this machine")
def test_unwritable_cache_folder_falls_back_to_a_temporary_one(fresh_library, monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("SEQAE_NATIVE_CACHE", str(blocker / "native"))  # under a file: cannot be created
    monkeypatch.setattr(native.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    assert native.library() is not None
    assert list((tmp_path / "tmp").glob("seqae-native-*/dropout-*.so"))


def test_missing_source_is_a_reason_not_a_traceback(fresh_library, monkeypatch, tmp_path):
    monkeypatch.setattr(native, "SOURCE", tmp_path / "gone.c")
    assert native.library() is None
    assert native.unavailable_reason().startswith("cannot read the kernel's source"), native.unavailable_reason()


@needs_kernel
def test_bf16_drops_what_fp32_drops():
    """Under bf16 autocast the dropout inputs are bf16: they get the kernel's decisions as a mask, so a bf16 run and
    an fp32 run of the same seed drop the same elements (the loss-curve check compares precision, not masks)."""
    x = torch.randn(37, 129)
    torch.manual_seed(5)
    fp32 = layers.dropout(x, 0.1)
    torch.manual_seed(5)
    bf16 = layers.dropout(x.bfloat16(), 0.1)
    assert bf16.dtype == torch.bfloat16
    assert torch.equal(fp32 == 0, bf16 == 0)
    torch.testing.assert_close(bf16.float(), fp32, rtol=1e-2, atol=1e-2)
