"""seqae.models.fast.allocator: glibc's thresholds fixed so that freed tensors are reused without page faults."""

from __future__ import annotations

import ctypes
import json
import platform
import subprocess
import sys

import pytest

from seqae.config import ConfigError, load_config_dict
from seqae.models.fast import allocator

glibc = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                           reason="the thresholds are glibc's")


def _has_mallinfo2() -> bool:
    try:
        return hasattr(ctypes.CDLL("libc.so.6"), "mallinfo2")  # glibc 2.33 and newer
    except OSError:
        return False


# In a fresh process: a 30 MiB tensor is allocated, filled and freed, and glibc's own accounting (mallinfo2) is read
# while it lives and after it is freed: where the block came from (the heap or its own mmap) and what the heap kept.
HEAP = """
import ctypes, json, sys
import torch
from seqae.models.fast import allocator
class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Mallinfo2
def info():
    m = libc.mallinfo2()
    return {"heap": m.arena, "mmapped": m.hblkhd, "heap_free": m.fordblks}
settings = allocator.keep_freed_memory() if sys.argv[1] == "keep" else {}
x = torch.empty(30 << 18).fill_(1.0)  # 30 MiB of float32
alive = info()
del x
print(json.dumps({"settings": settings, "alive": alive, "freed": info(), "again": allocator.keep_freed_memory()}))
"""
MIB = 1 << 20


def _heaps(*modes: str) -> list[dict]:
    """HEAP's report for each mode, each in a fresh process; the processes run side by side (each pays torch's
    import), and glibc's accounting is per process, so they cannot disturb each other."""
    children = [subprocess.Popen([sys.executable, "-c", HEAP, mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True) for mode in modes]
    outputs = [child.communicate() for child in children]  # waits for every child before judging any
    for child, (out, err) in zip(children, outputs):
        if child.returncode:
            raise subprocess.CalledProcessError(child.returncode, child.args, out, err)
    return [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]


@glibc
@pytest.mark.skipif(not _has_mallinfo2(), reason="glibc's accounting (mallinfo2) is read, glibc >= 2.33")
def test_keep_takes_tensors_from_the_heap_and_keeps_them():
    default, kept = _heaps("default", "keep")
    # glibc's defaults: a fresh process maps a 30 MiB block on its own, and unmaps it when freed
    assert default["alive"]["mmapped"] >= 30 * MIB
    assert default["freed"]["mmapped"] < 30 * MIB
    # kept: the block comes from the heap, and the heap keeps it, free for the next step
    assert kept["settings"]["mmap_threshold"] in (allocator.THRESHOLD, allocator.FALLBACK_MMAP_THRESHOLD)
    assert kept["settings"]["trim_threshold"] == allocator.THRESHOLD
    assert kept["again"] == kept["settings"]  # a second call changes nothing
    assert kept["alive"]["mmapped"] < 30 * MIB
    assert kept["freed"]["heap"] >= 30 * MIB and kept["freed"]["heap_free"] >= 30 * MIB


@pytest.mark.slow
@glibc
def test_trainer_applies_it_by_default(repo, tmp_path):
    fortunes = repo / "data/fortunes"
    script = f"""
import json
from pathlib import Path
from seqae.models.fast import allocator
from seqae.config import load_config_dict
from seqae.train import make_trainer
base = {{"data": {{"train": {str(fortunes / "train.txt")!r}, "heldout": {str(fortunes / "heldout.txt")!r},
                  "max_train_sentences": 48, "eval_sentences": 8}},
        "tokenizer": {{"vocab_size": 120}}, "model": {{"embed_dim": 8, "hidden_dim": 8, "bottleneck_dim": 8}},
        "train": {{"progress": False}}}}
for mode in ("default", "keep"):
    base["train"]["cpu_malloc"] = mode
    Path({str(tmp_path)!r}, mode).mkdir()
    make_trainer(load_config_dict(base), Path({str(tmp_path)!r}, mode))
    print(json.dumps({{mode: allocator.applied()}}))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert records[0] == {"default": {}}  # "default" leaves malloc alone
    assert records[1]["keep"]["trim_threshold"] == allocator.THRESHOLD


def test_choice_validation():
    with pytest.raises(ValueError, match="cpu_malloc 'jemalloc' unknown; allowed: keep, default"):
        allocator.set_cpu_malloc("jemalloc")
    with pytest.raises(ConfigError, match="train.cpu_malloc"):
        load_config_dict({"train": {"cpu_malloc": "jemalloc"}})
    assert load_config_dict({}).train.cpu_malloc == "keep"


def test_nothing_happens_off_glibc(monkeypatch):
    monkeypatch.setattr(allocator, "_glibc", lambda: None)
    monkeypatch.setattr(allocator, "_applied", {})
    assert allocator.keep_freed_memory() == {}
    assert allocator.applied() == {}
