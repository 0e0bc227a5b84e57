"""Feature extraction speed on the espeak fixture, and what a second epoch costs with the FeatureCache.

Dimension letters: S samples, T frames, F feature bins.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from bench_common import ESPEAK, Sizes, Stopwatch


class TimedExtractor:
    """Wraps a FeatureExtractor's forward and batch to add up the seconds spent computing features."""

    def __init__(self, extractor) -> None:
        self.extractor, self.watch, self.calls = extractor, Stopwatch(), 0
        self._forward, self._batch = extractor.forward, extractor.batch
        extractor.forward = self  # nn.Module.__call__ looks the instance attribute up first
        extractor.batch = self.batch

    def __call__(self, wav: torch.Tensor, **kwargs) -> torch.Tensor:
        if self.watch.running:  # called by batch(): already timed
            return self._forward(wav, **kwargs)
        self.calls += 1
        with self.watch:
            return self._forward(wav, **kwargs)

    def batch(self, wavs, sources=None) -> list[torch.Tensor]:
        self.calls += 1
        with self.watch:
            return self._batch(wavs, sources)


def fixture_rows(limit: int | None):
    """Manifest rows of the espeak fixture (train then test), the first `limit` of them."""
    from seqae.data.manifest import read_manifest

    rows = read_manifest(ESPEAK / "train" / "manifest.jsonl") + read_manifest(ESPEAK / "test" / "manifest.jsonl")
    return rows[:limit] if limit is not None else rows


def run_features(sizes: Sizes, threads: int, cache_dir: Path) -> dict[str, Any]:
    """x real time of loading + log-Mel (no cache, best of `feature_repeats` passes), and two cached epochs."""
    import soundfile as sf

    from seqae.data.speech import load_speech_features
    from seqae.frontend.features import FeatureCache, FeatureExtractor

    torch.set_num_threads(threads)
    rows = fixture_rows(sizes.feature_files)
    audio_s = sum(sf.info(str(r.path)).duration for r in rows)
    extractor = FeatureExtractor(kind="logmel", sample_rate=16000, n_mels=80)
    timed = TimedExtractor(extractor)
    best_total, best_compute, frames = float("inf"), float("inf"), 0
    for _ in range(sizes.feature_repeats + 1):  # the first pass warms up and is not counted
        timed.watch.seconds = 0.0
        with Stopwatch() as total:
            feats, kept, report = load_speech_features(rows, extractor, cache=None)
        best_total, best_compute = min(best_total, total.seconds), min(best_compute, timed.watch.seconds)
        frames = sum(f.shape[0] for f in feats)
    one_by_one = float("inf")  # the same, one file per feature call (seqae before batching)
    for _ in range(sizes.feature_repeats):
        with Stopwatch() as watch:
            load_speech_features(rows, extractor, cache=None, batch_files=1)
        one_by_one = min(one_by_one, watch.seconds)
    read_s = min(_read_all(rows) for _ in range(sizes.feature_repeats))  # the floor: decoding alone
    load_s = min(_load_all(rows) for _ in range(sizes.feature_repeats))  # seqae's load_audio (checks, mono)
    long_s = _long_waveform_seconds(rows, extractor, sizes.feature_repeats)
    batched = _batched_features(rows, extractor, sizes.feature_repeats)
    cache = FeatureCache(cache_dir, extractor.settings())
    epochs = []
    for epoch in range(2):
        timed.watch.seconds, timed.calls, cache.hits, cache.misses = 0.0, 0, 0, 0
        with Stopwatch() as total:
            load_speech_features(rows, extractor, cache=cache)
        epochs.append({"epoch": epoch + 1, "total_s": total.seconds, "feature_s": timed.watch.seconds,
                       "feature_calls": timed.calls, "cache_hits": cache.hits, "cache_misses": cache.misses})
    return {"files": len(rows), "skipped": report.num_skipped, "audio_s": audio_s, "frames": frames,
            "load_and_features_s": best_total, "soundfile_read_s": read_s, "load_audio_s": load_s,
            "x_realtime_features_one_long_waveform": audio_s / max(long_s, 1e-9), "features_only_s": best_compute,
            "x_realtime": audio_s / max(best_total, 1e-9), "x_realtime_features_only": audio_s / max(best_compute, 1e-9),
            "x_realtime_file_by_file": audio_s / max(one_by_one, 1e-9),
            "cached_epochs": epochs, "proposal_batched": {**batched, "x_realtime_load_and_batched_features":
                                                         audio_s / max(load_s + batched["seconds"], 1e-9)}}


def _read_all(rows) -> float:
    """Seconds to decode every file with a bare `soundfile.read` (no checks, no features)."""
    import soundfile as sf

    with Stopwatch() as watch:
        for row in rows:
            sf.read(str(row.path), dtype="float32")
    return watch.seconds


def _load_all(rows) -> float:
    """Seconds for seqae's `load_audio` on every file (decoding plus its checks and mono mixdown)."""
    from seqae.frontend.audio import load_audio

    with Stopwatch() as watch:
        for row in rows:
            load_audio(row.path, sample_rate=16000)
    return watch.seconds


def _long_waveform_seconds(rows, extractor, repeats: int) -> float:
    """Features of all the fixture's audio as one waveform: the per-sample cost without the per-file one."""
    from seqae.frontend.audio import load_audio

    wav = torch.cat([load_audio(r.path, sample_rate=16000) for r in rows])  # (S,)
    best = float("inf")
    with torch.no_grad():
        for _ in range(repeats + 1):
            with Stopwatch() as watch:
                extractor(wav)
            best = min(best, watch.seconds)
    return best


def _batched_features(rows, extractor, repeats: int) -> dict[str, float]:
    """Proposal: log-Mel of all files in one call on the zero-padded batch [N, S_max], each cut to its own frame
    count. Frames never reach past their file's end (no centring), so the result equals the per-file one."""
    from seqae.frontend.audio import load_audio
    from seqae.frontend.features import LOG_OFFSET

    wavs = [load_audio(r.path, sample_rate=extractor.sample_rate) for r in rows]
    counts = [extractor.num_frames(w.shape[0]) for w in wavs]
    best, feats = float("inf"), []
    with torch.no_grad():
        for _ in range(repeats + 1):
            with Stopwatch() as watch:
                batch = torch.nn.utils.rnn.pad_sequence(wavs, batch_first=True)  # (N, S_max)
                mel = torch.log(extractor.transform(batch) + LOG_OFFSET).transpose(1, 2)  # (N, F, T) -> (N, T, F)
                feats = [mel[i, :n] for i, n in enumerate(counts)]
            best = min(best, watch.seconds)
        reference = [extractor(w) for w in wavs]
    diff = max(float((a - b).abs().max()) for a, b in zip(feats, reference))
    return {"seconds": best, "max_abs_diff_vs_per_file": diff}
