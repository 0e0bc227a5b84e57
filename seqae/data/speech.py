"""A speech corpus as feature tensors: manifest rows -> features, CMVN, length limits; every skip counted.

Dimension letters: ``T`` frames, ``F`` feature bins.

`data.train` / `data.heldout` name a manifest (.jsonl/.json/.csv) or a folder of audio files (scanned, label =
parent folder). Features come from the run's `FeatureExtractor`, cached per file in `features.cache_dir` (default
`<run_dir>/features`). Unusable files are skipped and counted (or stop the run with `data.strict`); CMVN statistics
of the training features are stored in `<run_dir>/cmvn.json` and reused on resume; sequences longer than
`data.max_len` frames are truncated or skipped (`data.overlong`), counted.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqae.config import Config, ConfigError
from seqae.data.manifest import ManifestRow, SkipReport, read_manifest, scan_folder
from seqae.data.stream import StreamBatcher
from seqae.frontend.audio import AudioError, load_audio
from seqae.frontend.features import Cmvn, FeatureCache, FeatureExtractor, settings_hash

MANIFEST_SUFFIXES = (".jsonl", ".json", ".csv")

__all__ = ["SkipReport", "SpeechData", "SpeechStreamData", "extract_file", "load_speech_features", "prepare_speech",
           "read_rows", "read_splits", "split_by_speaker"]


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


@dataclass
class SpeechData:
    train: list[torch.Tensor]
    """Normalised training features, each [T_i, F]."""
    heldout: list[torch.Tensor]
    """Normalised held-out features, each [T_i, F]."""
    train_rows: list[ManifestRow]
    heldout_rows: list[ManifestRow]
    cmvn: Cmvn | None
    stats: dict[str, Any]


def read_rows(source: str, key: str, skips: SkipReport) -> list[ManifestRow]:
    """Manifest rows of a manifest file or a folder of audio files; `key` (e.g. data.train) names errors."""
    path = Path(source)
    if path.is_dir():
        return scan_folder(path, label_from="parent", skips=skips)
    if path.suffix.lower() not in MANIFEST_SUFFIXES:
        raise ConfigError(f"{key}: {source} must be a manifest ({', '.join(MANIFEST_SUFFIXES)}) or a folder of audio")
    try:
        return read_manifest(path)
    except ValueError as err:
        raise ConfigError(f"{key}: {err}") from None


def split_by_speaker(rows: list[ManifestRow], fraction: float) -> tuple[list[ManifestRow], list[ManifestRow]]:
    """(train, heldout): the last round(fraction × speakers) speakers (at least one) by sorted id are held
    out; without speaker ids, the first round(fraction × rows) rows."""
    speakers = sorted({r.speaker for r in rows if r.speaker is not None})
    if len(speakers) >= 2 and all(r.speaker is not None for r in rows):
        held = set(speakers[-max(1, min(len(speakers) - 1, round(len(speakers) * fraction))):])
        return [r for r in rows if r.speaker not in held], [r for r in rows if r.speaker in held]
    cut = max(1, round(len(rows) * fraction))
    return rows[cut:], rows[:cut]


def read_splits(d, reports: dict[str, SkipReport]) -> tuple[list[ManifestRow], list[ManifestRow]]:
    """(train, held-out) manifest rows of a DataConfig: `data.heldout`, or speakers split off `data.train`."""
    train_rows = read_rows(d.train, "data.train", reports["train"])
    if d.heldout is None:
        return split_by_speaker(train_rows, d.heldout_fraction)
    return train_rows, read_rows(d.heldout, "data.heldout", reports["heldout"])


def _report(report: SkipReport) -> dict[str, Any]:
    return {"checked": report.checked, "skipped": report.num_skipped,
            "skipped_files": [{"file": f, "reason": r} for f, r in report.skipped]}


def _cmvn(path: Path, features: list[torch.Tensor], settings: dict[str, Any]) -> tuple[Cmvn, str]:
    """Load <run_dir>/cmvn.json (checking it was made with these feature settings) or compute and store it."""
    if path.is_file():
        stored = json.loads(path.read_text())
        if stored.get("features") != settings:
            raise ConfigError(f"{path}: CMVN statistics were computed with features {stored.get('features')}, "
                              f"the config asks for {settings}; use a new run directory")
        return Cmvn.from_dict(stored), "loaded"
    cmvn = Cmvn.compute(features)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".cmvn.", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump({**cmvn.to_dict(), "features": settings}, f)
    os.replace(tmp, path)
    return cmvn, "computed"


def _fit(features: list[torch.Tensor], rows: list[ManifestRow], max_len: int, overlong: str, min_len: int
         ) -> tuple[list[torch.Tensor], list[ManifestRow], dict[str, Any]]:
    """Truncate or skip sequences longer than max_len frames, skip those shorter than min_len (the model's
    front end gives them no frame); count both and name the skipped files."""
    out, kept, long_files, short_files = [], [], [], []
    for x, row in zip(features, rows):
        if x.shape[0] < min_len:
            short_files.append(str(row.path))
            continue
        if x.shape[0] > max_len:
            long_files.append(str(row.path))
            if overlong == "skip":
                continue
            x = x[:max_len]
        out.append(x)
        kept.append(row)
    stats = {"max_len": max_len, "overlong": len(long_files), "action": overlong, "min_len": min_len,
             "too_short": len(short_files), "too_short_files": short_files}
    if overlong == "skip":
        stats["overlong_files"] = long_files
    return out, kept, stats


def prepare_speech(config: Config, run_dir: Path, extractor: FeatureExtractor, *, min_len: int = 1) -> SpeechData:
    """Read both splits, extract (cached) features, apply CMVN and the length limits; every skip is counted."""
    d, fc = config.data, config.features
    reports = {"train": SkipReport(), "heldout": SkipReport()}
    train_rows, heldout_rows = read_splits(d, reports)
    cache = FeatureCache(fc.cache_dir or run_dir / "features", extractor.settings())
    feats, rows = {}, {}
    for split, split_rows in (("train", train_rows), ("heldout", heldout_rows)):
        x, kept, report = load_speech_features(split_rows, extractor, cache=cache, strict=d.strict)
        reports[split].checked += report.checked
        reports[split].skipped += report.skipped
        if reports[split].num_skipped:
            print(f"data.{split}: {reports[split].summary()}")
        feats[split], rows[split] = x, kept
    if not feats["train"]:
        raise ConfigError(f"data.train: no usable audio in {d.train} ({reports['train'].num_skipped} files skipped)")
    cmvn, cmvn_state = None, "off"
    if fc.cmvn:
        cmvn, cmvn_state = _cmvn(run_dir / "cmvn.json", feats["train"], extractor.settings())
        feats = {k: [cmvn.normalize(x) for x in v] for k, v in feats.items()}
    stats: dict[str, Any] = {"features": extractor.settings(), "cmvn": cmvn_state,
                             "feature_cache": {"dir": str(cache.root), "hits": cache.hits, "misses": cache.misses}}
    for split in ("train", "heldout"):
        feats[split], rows[split], stats[f"{split}_length"] = _fit(feats[split], rows[split], d.max_len, d.overlong,
                                                                     min_len)
        stats[f"{split}_audio"] = _report(reports[split])
        stats[f"{split}_sequences"] = len(feats[split])
        stats[f"{split}_frames"] = sum(x.shape[0] for x in feats[split])
    if d.heldout is None:
        stats["heldout_audio"]["split"] = (f"held out of data.train (data.heldout_fraction {d.heldout_fraction:g}; "
                                           "by speaker when every row names one)")
    for split in ("train", "heldout"):
        if not feats[split]:
            raise ConfigError(f"data.{split}: no usable sequences ({stats[f'{split}_audio']['skipped']} files "
                              f"skipped, {stats[f'{split}_length']['overlong']} over data.max_len)")
    return SpeechData(train=feats["train"], heldout=feats["heldout"], train_rows=rows["train"],
                      heldout_rows=rows["heldout"], cmvn=cmvn, stats=stats)


CMVN_SAMPLE = 1000
"""Streaming: CMVN statistics come from the first this many training utterances."""


class SpeechStreamData:
    """A streamed speech corpus (`data.streaming`): manifest rows are held in memory (a path and a label each), but
    features are computed pool by pool (and cached per file on disk), never all at once. `train` holds only the
    first `data.eval_sentences` training utterances (for evaluation); CMVN comes from the first `CMVN_SAMPLE`."""

    def __init__(self, config: Config, run_dir: Path, extractor: FeatureExtractor, *, min_len: int = 1) -> None:
        d, fc = config.data, config.features
        if d.targets != "self":
            raise ConfigError(f"data.targets: a streamed corpus rebuilds its own input ('self'), got {d.targets!r}: "
                              "pairing utterances needs the whole corpus in memory")
        self.extractor, self.strict, self.min_len, self.max_len, self.overlong = (
            extractor, d.strict, min_len, d.max_len, d.overlong)
        reports = {"train": SkipReport(), "heldout": SkipReport()}
        rows, heldout_rows = read_splits(d, reports)
        self.rows, self.seed = rows, config.train.seed
        self.cache = FeatureCache(fc.cache_dir or run_dir / "features", extractor.settings())
        sample, sample_rows, _ = load_speech_features(rows[:CMVN_SAMPLE], extractor, cache=self.cache, strict=d.strict)
        if not sample:
            raise ConfigError(f"data.train: no usable audio in the first {CMVN_SAMPLE} rows of {d.train}")
        self.cmvn, cmvn_state = None, "off"
        if fc.cmvn:
            self.cmvn, cmvn_state = _cmvn(run_dir / "cmvn.json", sample, extractor.settings())
        norm = self.cmvn.normalize if self.cmvn else (lambda x: x)
        heldout, heldout_rows, heldout_report = load_speech_features(heldout_rows, extractor, cache=self.cache,
                                                                     strict=d.strict)
        reports["heldout"].checked += heldout_report.checked
        reports["heldout"].skipped += heldout_report.skipped
        self.heldout, self.heldout_rows, heldout_length = _fit([norm(x) for x in heldout], heldout_rows, d.max_len,
                                                               d.overlong, min_len)
        self.train, self.train_rows, _ = _fit([norm(x) for x in sample[: d.eval_sentences]],
                                              sample_rows[: d.eval_sentences], d.max_len, d.overlong, min_len)
        if not self.heldout:
            raise ConfigError(f"data.heldout: no usable sequences ({heldout_report.num_skipped} files skipped)")
        self.stats: dict[str, Any] = {
            "features": extractor.settings(), "cmvn": cmvn_state, "train": f"streamed: {len(rows)} rows",
            "train_audio": _report(reports["train"]), "heldout_audio": _report(reports["heldout"]),
            "heldout_length": heldout_length, "heldout_sequences": len(self.heldout)}
        self._norm = norm
        self.take_counts()
        self.batcher = StreamBatcher(self._rows, self._encode, length=lambda x: x.shape[0], max_tokens=d.max_tokens,
                                     max_sentences=d.max_sentences, buffer_size=d.shuffle_buffer,
                                     pool_size=d.pool_size, seed=config.train.seed)

    def _rows(self, epoch: int):
        """The manifest's rows in an order drawn from (seed, epoch), before the shuffle buffer."""
        return (self.rows[i] for i in np.random.default_rng([self.seed, epoch]).permutation(len(self.rows)).tolist())

    def _encode(self, chunk: list[tuple[int, ManifestRow]]) -> list[tuple[int, torch.Tensor]]:
        """Features of a pool of rows (cached per file), normalised and fitted to the length limits; every skip is
        counted and named."""
        feats, kept, report = load_speech_features([row for _, row in chunk], self.extractor, cache=self.cache,
                                                   strict=self.strict)  # uncached files batched together
        self._counts["rows_read"] += len(chunk)
        self._skipped += report.skipped
        kept_ids = {id(row): k for k, row in enumerate(kept)}  # kept rows are chunk rows, in order
        out = []
        for index, row in chunk:
            if id(row) not in kept_ids:
                continue
            x = self._norm(feats[kept_ids[id(row)]])
            if x.shape[0] < self.min_len:
                self._counts["too_short"] += 1
                continue
            if x.shape[0] > self.max_len:
                self._counts["overlong"] += 1
                if self.overlong == "skip":
                    continue
                x = x[: self.max_len]
            out.append((index, x))
        return out

    def take_counts(self) -> dict[str, Any]:
        """Rows read and skipped (with the skipped files and why) since the last call."""
        counts = {**getattr(self, "_counts", {}), "audio_skipped": len(getattr(self, "_skipped", [])),
                  "skipped_files": [{"file": f, "reason": r} for f, r in getattr(self, "_skipped", [])[:100]]}
        self._counts, self._skipped = {"rows_read": 0, "too_short": 0, "overlong": 0}, []
        return counts
