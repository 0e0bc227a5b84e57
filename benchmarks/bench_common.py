"""Shared pieces of the benchmark suite: sizes, the corpus slice, timing, machine facts, peak memory.

The benchmark scripts are not a package: `run.py` puts this folder on `sys.path`.
"""

from __future__ import annotations

import os
import platform
import resource
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FORTUNES = ROOT / "data" / "fortunes" / "train.txt"
FORTUNES_HELDOUT = ROOT / "data" / "fortunes" / "heldout.txt"
ESPEAK = ROOT / "data" / "espeak_words"


@dataclass(frozen=True, kw_only=True)
class Sizes:
    """Every size the suite uses; `full()` for the real run, `quick()` for the smoke test."""

    width: int
    """Model width: embedding, encoder, decoder and bottleneck (d_model for Transformers)."""
    layers: int
    """Transformer encoder and decoder depth (RNNs use one layer each)."""
    heads: int
    """Attention heads."""
    ff: int
    """Transformer feed-forward width."""
    vocab: int
    """Tokenizer vocabulary (SentencePiece for seqae, WordPiece for the peer)."""
    sentences: int
    """Training sentences taken from the start of data/fortunes/train.txt."""
    batch: int
    """Sentences per batch (seqae: max_sentences; naive loop and peer: batch size)."""
    max_len: int
    """Longest sequence in tokens (bos and eos counted)."""
    warmup: int
    """Untimed steps before each timed window."""
    steps: int
    """Timed optimizer steps (about one epoch of `sentences`)."""
    windows: int
    """Timed windows of `steps` (or `proposal_steps`) steps per configuration; the fastest one is reported, the
    least disturbed by other processes on a shared machine (every window is listed too)."""
    proposal_steps: int
    """Timed steps of each optimisation candidate."""
    malloc_pairs: int
    """Alternating pairs of processes timing glibc's default malloc against `train.cpu_malloc: keep`."""
    malloc_windows: int
    """Windows of `steps` steps each of those processes times (8 × 20: the heap reaches its peak in the first
    epoch, in both modes; what keep changes shows in the epochs after it)."""
    curve_steps: int
    """Steps (warm-up included) whose losses are compared between the baseline and the foreach-AdamW / bf16 variants."""
    decode_batch: int
    """Sequences decoded at once in the generation benchmark."""
    decode_lengths: tuple[int, ...]
    """Generated lengths compared cached vs uncached."""
    beam: int
    """Beam size compared with greedy decoding."""
    gemm_n: int
    """Size of the square matmul whose throughput is the MFU denominator."""
    feature_files: int | None
    """espeak fixture files for the feature benchmark (None: all)."""
    feature_repeats: int
    """Timed passes over the files without a cache."""


def full() -> Sizes:
    return Sizes(width=256, layers=3, heads=4, ff=1024, vocab=2000, sentences=1280, batch=64, max_len=64,
                 warmup=2, steps=20, windows=4, proposal_steps=10, malloc_pairs=2, malloc_windows=8, curve_steps=40, decode_batch=8, decode_lengths=(16, 64, 256), beam=4,
                 gemm_n=2048, feature_files=None, feature_repeats=15)


def quick() -> Sizes:
    return Sizes(width=32, layers=1, heads=2, ff=64, vocab=200, sentences=128, batch=16, max_len=48,
                 warmup=1, steps=2, windows=1, proposal_steps=2, malloc_pairs=1, malloc_windows=1, curve_steps=4, decode_batch=2, decode_lengths=(16, 64), beam=2, gemm_n=256,
                 feature_files=6, feature_repeats=1)


def sizes_from_dict(data: dict[str, Any]) -> Sizes:
    data = dict(data)
    data["decode_lengths"] = tuple(data["decode_lengths"])
    return Sizes(**data)


def sizes_to_dict(sizes: Sizes) -> dict[str, Any]:
    return asdict(sizes)


def fortunes_lines(n: int) -> list[str]:
    """The first `n` non-empty lines of the fortunes training file (the corpus every trainer sees)."""
    lines = [line.strip() for line in FORTUNES.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(lines) < n:
        raise ValueError(f"{FORTUNES}: asked for {n} sentences, the file has {len(lines)}")
    return lines[:n]


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "logical_cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "torch_version": torch.__version__,
            "torch_threads_default": torch.get_num_threads()}


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


class Stopwatch:
    """Accumulates wall-clock seconds over `with watch:` blocks."""

    def __init__(self) -> None:
        self.seconds, self.running = 0.0, False

    def __enter__(self) -> Stopwatch:
        self._start, self.running = time.perf_counter(), True
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds += time.perf_counter() - self._start
        self.running = False


def rate(count: float, seconds: float) -> float:
    """count / seconds, guarding against a zero duration."""
    return count / max(seconds, 1e-9)


def offline_env(hf_home: Path) -> None:
    """No hub access from anything the suite imports: offline flags and a private HF_HOME."""
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["HF_HOME"] = str(hf_home)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def best_window(windows: list[dict[str, Any]]) -> dict[str, Any]:
    """The window with the highest sentences/s, plus every window's sentences/s under `window_sentences_per_s`."""
    best = max(windows, key=lambda w: w["sentences_per_s"])
    return {**best, "window_sentences_per_s": [w["sentences_per_s"] for w in windows]}
