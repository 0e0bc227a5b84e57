"""seqae's compiled CPU kernel: dropout in one pass (`dropout.c`), built with the machine's C compiler on first use.

Dropout on the CPU was the largest cost of a Transformer AE training step outside its matrix products: drawing
the masks (numpy's SFC64, a comparison, a scale), then a multiply forward and backward that reads a stored fp32
mask (measured: benchmarks/README.md, 'dropout kernel').
`dropout(x, seed, p)` computes `x * keep * 1/(1-p)` in one pass, its random decisions a pure function of the seed
and the element's index, so the backward pass recomputes them instead of reading a mask; large tensors are split
over torch's own OpenMP threads.

The library is compiled with `$CC` (else `cc`, `gcc` or `clang`, whichever is found first) at `-O3 -march=native`
into `$SEQAE_NATIVE_CACHE` (default `~/.cache/seqae/native`; a temporary folder where that cannot be written), a
few kB built in well under a second, named by a hash of the source, the compiler, its flags and the CPU, and
loaded with ctypes. Where there is no compiler, or `SEQAE_NATIVE=0`, `library()` is None and
`seqae.models.fast.dropout` draws the masks with numpy; `unavailable_reason()` says why.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch
from torch import Tensor

SOURCE = Path(__file__).with_name("dropout.c")
FLAGS = (("-O3", "-march=native", "-mprefer-vector-width=512", "-fopenmp"), ("-O3", "-march=native", "-fopenmp"),
         ("-O3", "-march=native"), ("-O3",))
"""Compiler flags, tried in order until one builds; without -fopenmp the pass runs on one thread. gcc keeps to
256-bit vectors on AVX-512 CPUs unless told, and the pass is faster with 512 (measured: benchmarks/README.md,
'dropout kernel')."""

_reason: list[str] = []


def _cpu_signature() -> str:
    """The CPU's model and flags: a library built with -march=native runs only where they match."""
    from seqae.models.fast.linear import _cpuinfo_field

    return f"{platform.machine()}|{_cpuinfo_field('model name')}|{_cpuinfo_field('flags')}"


def _compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _cache_dirs() -> list[Path]:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "seqae" / "native"
    user = os.getuid() if hasattr(os, "getuid") else "user"
    return [Path(os.environ.get("SEQAE_NATIVE_CACHE", default)), Path(tempfile.gettempdir()) / f"seqae-native-{user}"]


def _build(cc: str, flags: tuple[str, ...], target: Path) -> str | None:
    """Compile SOURCE into `target` (atomically: a temporary name, then a rename); the compiler's error or None."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".so", delete=False) as tmp:
        partial = Path(tmp.name)
    try:
        done = subprocess.run([cc, *flags, "-shared", "-fPIC", "-o", str(partial), str(SOURCE)],
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            return (done.stderr or done.stdout).strip()[-500:] or f"exit status {done.returncode}"
        os.replace(partial, target)
        return None
    finally:
        partial.unlink(missing_ok=True)


@functools.cache
def library() -> ctypes.CDLL | None:
    """The compiled kernel, built on the first call of the process that needs it; None where it cannot be."""
    if os.environ.get("SEQAE_NATIVE", "1") == "0":
        _reason.append("switched off (SEQAE_NATIVE=0)")
        return None
    cc = _compiler()
    if cc is None:
        _reason.append("no C compiler found ($CC, cc, gcc, clang)")
        return None
    try:
        source = SOURCE.read_text()
    except OSError as e:
        _reason.append(f"cannot read the kernel's source: {e}")
        return None
    errors = []
    for flags in FLAGS:
        key = hashlib.sha256("\0".join([source, cc, *flags, _cpu_signature()]).encode()).hexdigest()
        for folder in _cache_dirs():
            target = folder / f"dropout-{key[:20]}.so"
            try:
                error = None if target.exists() else _build(cc, flags, target)
                if error is None:
                    return _load(target)
            except OSError as e:  # a folder that cannot be written, or a library that does not load
                error = str(e)
                continue
            except subprocess.SubprocessError as e:
                error = str(e)
            break  # the compiler itself failed: another folder will not help
        errors.append(f"{' '.join(flags)}: {error}")
    _reason.append(f"{cc} could not build {SOURCE.name}: " + "; ".join(errors))
    return None


def _load(path: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(path))
    lib.seqae_dropout.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_uint64, ctypes.c_uint32,
                                  ctypes.c_float]
    lib.seqae_dropout.restype = None
    return lib


def available() -> bool:
    return library() is not None


def unavailable_reason() -> str | None:
    """Why `library()` is None, or None when the kernel is in use."""
    return None if available() else _reason[-1]


def threshold(p: float) -> int:
    """The 16-bit lane value from which an element is kept: P(keep) = 1 - threshold/65536, p rounded to 1/65536."""
    return round(p * 65536)


def dropout(x: Tensor, seed: int, p: float) -> Tensor:
    """x: any shape, CPU fp32 -> x * keep / (1 - p), keep drawn from `seed` per element (see dropout.c). Calling it
    again with the same seed on a tensor of the same size applies the same decisions: that is the backward pass."""
    lib = library()
    if lib is None:
        raise RuntimeError(f"seqae's native dropout kernel is unavailable: {unavailable_reason()}")
    x = x.contiguous()
    y = torch.empty_like(x)
    lib.seqae_dropout(x.data_ptr(), y.data_ptr(), x.numel(), seed & (2**64 - 1), threshold(p), 1.0 / (1.0 - p))
    return y


def mask(shape: torch.Size | tuple[int, ...], seed: int, p: float) -> Tensor:
    """The fp32 mask (0 or 1/(1-p)) of `dropout`'s decisions for `seed` on a tensor of `shape`."""
    return dropout(torch.ones(shape), seed, p)
