"""Turn manifest rows into feature tensors, skipping and counting bad files, and pad them into batches.

Dimension letters: ``B`` batch, ``T`` frames, ``F`` feature bins.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch.nn.utils.rnn import pad_sequence

from seqae.frontend.audio import AudioError, load_audio
from seqae.data.manifest import ManifestRow, SkipReport
from seqae.frontend.features import FeatureCache, FeatureExtractor, settings_hash

__all__ = ["SkipReport", "collate_frames", "extract_file", "load_speech_features"]


def extract_file(path: str | Path, extractor: FeatureExtractor) -> torch.Tensor:
    """Features ``[T, F]`` of one audio file, loaded at the extractor's sample rate.

    Raises:
        AudioError: the file is unusable or too short for one frame.
    """
    wav = load_audio(path, sample_rate=extractor.sample_rate)  # (S,)
    with torch.no_grad():
        return extractor(wav, source=path)


def load_speech_features(
    rows: Sequence[ManifestRow],
    extractor: FeatureExtractor,
    *,
    cache: FeatureCache | None,
    strict: bool = False,
    batch_files: int = 32,
) -> tuple[list[torch.Tensor], list[ManifestRow], SkipReport]:
    """Features of every row's audio file, in order.

    Rows whose file raises :class:`AudioError` are left out and recorded (file and reason) in the
    returned report; with ``strict=True`` the first such row raises instead. Files missing from the cache
    are loaded ``batch_files`` at a time and their features computed together (``FeatureExtractor.batch``,
    equal to one file at a time and faster: the per-call cost dominates on short files).

    Returns:
        ``(features, kept_rows, report)``: ``features[i]`` is ``[T_i, F]`` for ``kept_rows[i]``.
    """
    if cache is not None and cache.settings_hash != settings_hash(extractor.settings()):
        raise ValueError(
            f"feature cache settings {cache.settings} differ from the extractor's {extractor.settings()}"
        )
    found: dict[int, torch.Tensor] = {}
    report = SkipReport()

    def bad(i: int, row: ManifestRow, err: AudioError) -> None:
        if strict:
            reason = f"{err.reason} (row {i + 1}; strict mode stops at the first bad file)"
            raise AudioError(err.path, reason) from err
        report.add(row.path, err.reason)

    for start in range(0, len(rows), batch_files):
        waiting: list[tuple[int, ManifestRow, torch.Tensor]] = []  # cache misses, loaded: features computed together
        for i in range(start, min(start + batch_files, len(rows))):
            row = rows[i]
            report.checked += 1
            try:
                cached = cache.get(row.path) if cache is not None else None
                if cached is not None:
                    found[i] = cached
                    continue
                wav = load_audio(row.path, sample_rate=extractor.sample_rate)  # (S,)
                extractor.check(wav, row.path)
            except AudioError as err:
                bad(i, row, err)
                continue
            waiting.append((i, row, wav))
        if not waiting:
            continue
        with torch.no_grad():
            computed = extractor.batch([w for _, _, w in waiting], [r.path for _, r, _ in waiting])
        for (i, row, _), x in zip(waiting, computed):
            found[i] = cache.put(row.path, x) if cache is not None else x
    order = sorted(found)
    return [found[i] for i in order], [rows[i] for i in order], report
def collate_frames(features: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad ``[T_i, F]`` tensors into one batch.

    Returns:
        ``(frames, lengths)``: ``frames`` is ``[B, max T_i, F]``, ``lengths`` is ``[B]`` int64.
    """
    if len(features) == 0:
        raise ValueError("collate_frames: empty batch")
    dim = features[0].shape[-1]
    for i, x in enumerate(features):
        if x.dim() != 2 or x.shape[1] != dim:
            raise ValueError(f"collate_frames: item {i} has shape {tuple(x.shape)}, expected [T, {dim}]")
    lengths = torch.tensor([x.shape[0] for x in features], dtype=torch.long)  # (B,)
    frames = pad_sequence(list(features), batch_first=True)  # (B, T, F)
    return frames, lengths
