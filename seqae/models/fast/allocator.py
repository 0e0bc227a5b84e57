"""Keep freed memory in the process: glibc malloc's thresholds fixed for training on the CPU.

A training step frees most of its activations and allocates tensors of the same sizes again in the next step.
glibc's malloc hands blocks above its mmap threshold straight back to the kernel and trims the top of its heap
when more than its trim threshold is free; both thresholds move with the sizes freed, so with batches of varying
shape the memory keeps going back and forth: every reuse is a page fault and a zeroed page. With the thresholds
fixed, the heap stops at the step's peak and is reused: far fewer page faults and faster steps at the same peak RSS
(measured: benchmarks/README.md, 'malloc').

`keep_freed_memory()` sets the thresholds with `mallopt` (the effect of the `MALLOC_MMAP_THRESHOLD_` and
`MALLOC_TRIM_THRESHOLD_` environment variables, set from inside the process). It is process-wide and stays for
the life of the process (glibc's moving thresholds cannot be switched back on); the Trainer applies it under
`train.cpu_malloc: keep` (the default). Elsewhere than glibc (macOS, musl, Windows) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import platform

CPU_MALLOCS = ("keep", "default")

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
"""mallopt's parameter numbers (glibc's malloc.h)."""
THRESHOLD = 1 << 30
"""1 GiB: blocks up to this size come from the heap, and the heap is trimmed only above this much free memory."""
FALLBACK_MMAP_THRESHOLD = 32 << 20
"""The largest mmap threshold every glibc accepts (HEAP_MAX_SIZE / 2 on 64-bit), if it refuses `THRESHOLD`."""
TOP_PAD = 64 << 20
"""The heap grows by at least 64 MiB at a time: fewer `brk` calls while it reaches the step's peak."""

_applied: dict[str, int] = {}


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        return libc
    except (OSError, AttributeError):
        return None


def keep_freed_memory() -> dict[str, int]:
    """Fix glibc's mmap and trim thresholds (and its top pad), so freed tensors stay in the process for the next
    step. Returns the settings in force ({} where the C library is not glibc); calling it again changes nothing."""
    libc = _glibc()
    if libc is None or _applied:
        return dict(_applied)
    mmap = next((t for t in (THRESHOLD, FALLBACK_MMAP_THRESHOLD) if libc.mallopt(M_MMAP_THRESHOLD, t)), None)
    if mmap is None:
        return {}
    settings = {"mmap_threshold": mmap}
    if libc.mallopt(M_TRIM_THRESHOLD, THRESHOLD):
        settings["trim_threshold"] = THRESHOLD
    if libc.mallopt(M_TOP_PAD, TOP_PAD):
        settings["top_pad"] = TOP_PAD
    _applied.update(settings)
    return dict(_applied)


def applied() -> dict[str, int]:
    """The settings `keep_freed_memory` put in force in this process ({} if it has not run or did nothing)."""
    return dict(_applied)


def set_cpu_malloc(choice: str) -> dict[str, int]:
    """`train.cpu_malloc`: "keep" applies `keep_freed_memory`; "default" leaves malloc as it is (a process where
    "keep" already ran keeps it)."""
    if choice not in CPU_MALLOCS:
        raise ValueError(f"cpu_malloc {choice!r} unknown; allowed: {', '.join(CPU_MALLOCS)}")
    return keep_freed_memory() if choice == "keep" else applied()
