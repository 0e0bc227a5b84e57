"""Speech corpora as manifest rows: LibriSpeech and Speech Commands, from a local folder or the hub.

Local folders have the layout of the released archives:

- LibriSpeech: ``ROOT/<split>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac`` beside
  ``<speaker>-<chapter>.trans.txt``, whose lines are ``<speaker>-<chapter>-<utt> <TRANSCRIPT>``.
- Speech Commands: ``ROOT/<label>/<speaker>_nohash_<n>.wav`` with ``ROOT/validation_list.txt`` and
  ``ROOT/testing_list.txt`` (paths like ``<label>/<file>.wav``) naming the validation and test files; every
  other file is training data. ``_background_noise_`` holds long noise recordings, not examples.

Every problem (an audio file without a transcript line, a transcript line without its audio file, a
malformed line, a file soundfile cannot open, a list entry that names no file) is recorded, with the file and
the reason, in the :class:`~seqae.data.manifest.SkipReport` the caller passes, never dropped silently.

The hub loaders read ``openslr/librispeech_asr`` and ``google/speech_commands`` with ``datasets.load_dataset``
with the audio column cast to ``Audio(decode=False)``, decode the bytes with soundfile here, and write each
utterance as a FLAC file (the rest of seqae works on files, so features can be cached by path).
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import soundfile as sf
import torch

from seqae.data.manifest import ManifestRow, SkipReport
from seqae.frontend.audio import write_audio

__all__ = ["CorpusError", "librispeech_folder", "librispeech_hub", "speech_commands_folder", "speech_commands_hub"]

SPEECH_COMMANDS_SPLITS = ("train", "validation", "test")
BACKGROUND_NOISE = "_background_noise_"
_LIBRI_ID = re.compile(r"^(\d+)-(\d+)-(\d+)$")
_COMMANDS_NAME = re.compile(r"^(?P<speaker>[0-9a-fA-F]+)_nohash_(?P<n>\d+)\.wav$")


class CorpusError(ValueError):
    """A corpus that cannot be read at all (missing folder, hub unreachable); one line naming it."""


def _duration(path: Path, report: SkipReport) -> float | None:
    """Duration in seconds from the file header, or None after recording why the file is unusable."""
    try:
        info = sf.info(str(path))
    except (sf.SoundFileError, RuntimeError) as err:
        report.add(path, f"unreadable audio ({err})")
        return None
    if info.frames <= 0:
        report.add(path, "contains no samples (zero-length audio)")
        return None
    return info.frames / info.samplerate


def _read_transcripts(path: Path, report: SkipReport) -> dict[str, str]:
    """``utt-id -> transcript`` of one ``.trans.txt``; malformed lines are recorded as ``file:line``."""
    chapter_prefix = path.name[: -len(".trans.txt")] + "-"
    result: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        utt, _, text = line.strip().partition(" ")
        where = f"{path}:{number}"
        if not _LIBRI_ID.match(utt) or not utt.startswith(chapter_prefix) or not text.strip():
            report.checked += 1
            report.add(where, f"malformed transcript line {line[:60]!r} (expected '{chapter_prefix}NNNN TEXT')")
        elif utt in result:
            report.checked += 1
            report.add(where, f"second transcript line for {utt} (the first is kept)")
        else:
            result[utt] = " ".join(text.split())
    return result


def librispeech_folder(root: str | os.PathLike[str], split: str, *, skips: SkipReport) -> list[ManifestRow]:
    """Rows (``text`` = transcript, ``speaker``) of ``ROOT/<split>``, sorted by utterance id.

    An audio file without a transcript line, a transcript line without its audio file, a malformed line
    and an unreadable file are each recorded in ``skips`` and left out.

    Raises:
        CorpusError: ``ROOT/<split>`` is not a folder, or it holds no chapter folders at all.
    """
    base = Path(root) / split
    if not base.is_dir():
        found = sorted(p.name for p in Path(root).iterdir() if p.is_dir()) if Path(root).is_dir() else []
        raise CorpusError(f"{base}: LibriSpeech split folder not found (splits under {root}: {found or 'none'})")
    chapters = sorted(p for p in base.glob("*/*") if p.is_dir())
    if not chapters:
        raise CorpusError(f"{base}: no <speaker>/<chapter> folders (is this a LibriSpeech split?)")
    rows = []
    for chapter in chapters:
        speaker = chapter.parent.name
        trans = chapter / f"{speaker}-{chapter.name}.trans.txt"
        transcripts = _read_transcripts(trans, skips) if trans.is_file() else {}
        audio = {p.stem: p for p in chapter.glob("*.flac")}
        for utt in sorted(audio.keys() | transcripts.keys()):
            skips.checked += 1
            if utt not in transcripts:
                reason = "no transcript line" + ("" if trans.is_file() else f" ({trans.name} missing)")
                skips.add(audio[utt], reason)
            elif utt not in audio:
                skips.add(f"{trans}", f"orphan transcript line for {utt}: no {utt}.flac in {chapter}")
            elif (duration := _duration(audio[utt], skips)) is not None:
                rows.append(ManifestRow(path=audio[utt].resolve(), text=transcripts[utt], speaker=speaker,
                                        duration=duration))
    return rows


def _list_file(root: Path, name: str, skips: SkipReport) -> set[str]:
    path = root / name
    if not path.is_file():
        raise CorpusError(f"{path}: not found (Speech Commands names its {name.split('_')[0]} files there)")
    entries = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        entry = line.strip()
        if entry and not (root / entry).is_file():
            skips.checked += 1
            skips.add(f"{path}:{number}", f"lists {entry}, which does not exist")
        elif entry:
            entries.add(entry)
    return entries


def speech_commands_folder(root: str | os.PathLike[str], split: Literal["train", "validation", "test"], *,
                           skips: SkipReport) -> list[ManifestRow]:
    """Rows (``label`` = the folder's word, ``speaker``) of one split, sorted by path.

    Files whose name is not ``<speaker>_nohash_<n>.wav`` and unreadable files are recorded in ``skips``
    and left out; so are list-file entries naming missing files.

    Raises:
        CorpusError: ``root`` is not a folder, a list file is missing, or ``split`` is unknown.
    """
    if split not in SPEECH_COMMANDS_SPLITS:
        raise CorpusError(f"Speech Commands split {split!r} unknown; allowed: {', '.join(SPEECH_COMMANDS_SPLITS)}")
    root = Path(root)
    if not root.is_dir():
        raise CorpusError(f"{root}: Speech Commands folder not found")
    held = {"validation": _list_file(root, "validation_list.txt", skips),
            "test": _list_file(root, "testing_list.txt", skips)}
    rows = []
    for path in sorted(root.glob("*/*.wav")):
        label = path.parent.name
        rel = f"{label}/{path.name}"
        in_split = rel in held[split] if split != "train" else rel not in held["validation"] | held["test"]
        if label == BACKGROUND_NOISE or not in_split:
            continue
        skips.checked += 1
        match = _COMMANDS_NAME.match(path.name)
        if match is None:
            skips.add(path, "file name is not <speaker>_nohash_<n>.wav")
        elif (duration := _duration(path, skips)) is not None:
            rows.append(ManifestRow(path=path.resolve(), label=label, text=label, speaker=match["speaker"],
                                    duration=duration))
    return rows


# ---------------------------------------------------------------------------------------------------------------------
# The hub (not run in the tests: it needs the network or a filled Hugging Face cache)


def _load_hub(name: str, config: str | None, split: str) -> Any:
    """``datasets.load_dataset`` with the audio left undecoded; any failure becomes one CorpusError line."""
    from datasets import Audio, load_dataset

    try:
        table = load_dataset(name, config, split=split)
        return table.cast_column("audio", Audio(decode=False))
    except Exception as err:  # offline, unknown split, missing cache: datasets raises many types
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CorpusError(f"{name} ({config}, split {split}): cannot load from the hub: {first} "
                          "(offline? pass --source with a local copy instead)") from None


def _spread(table: Any, limit: int | None) -> Any:
    """At most `limit` rows of a hub table, taken evenly across it (hub tables are often sorted by label)."""
    if limit is None or len(table) <= limit:
        return table
    return table.select([i * len(table) // limit for i in range(limit)])


def _decode(audio: dict[str, Any]) -> tuple[np.ndarray, int]:
    """Samples ``[S]`` (channels averaged) and rate of a hub audio cell ``{"bytes", "path"}``."""
    source = io.BytesIO(audio["bytes"]) if audio.get("bytes") else audio.get("path")
    if source is None:
        raise ValueError("the audio cell holds neither bytes nor a path")
    data, rate = sf.read(source, dtype="float32", always_2d=True)  # (S, C)
    if data.shape[0] == 0:
        raise ValueError("contains no samples (zero-length audio)")
    return data.mean(axis=1), rate


def _materialise(records: Iterable[dict[str, Any]], out_dir: Path, skips: SkipReport,
                 describe) -> list[ManifestRow]:
    """Decode each record's audio with soundfile, write ``out_dir/<name>.flac``, return the rows."""
    rows = []
    for record in records:
        skips.checked += 1
        name, fields = describe(record)
        target = out_dir / f"{name}.flac"
        try:
            samples, rate = _decode(record["audio"])
            if not target.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                write_audio(target, torch.from_numpy(samples).clamp(-1.0, 1.0), rate)
        except (sf.SoundFileError, RuntimeError, ValueError) as err:
            skips.add(f"{name} ({record['audio'].get('path')})", f"undecodable audio ({err})")
            continue
        rows.append(ManifestRow(path=target.resolve(), duration=len(samples) / rate, **fields))
    return rows


def librispeech_hub(split: str, out_dir: str | os.PathLike[str], *, skips: SkipReport, config: str = "clean",
                    name: str = "openslr/librispeech_asr", limit: int | None = None) -> list[ManifestRow]:
    """Rows of hub LibriSpeech (``config`` clean/other/all, ``split`` e.g. train.100, validation, test);
    the audio is written to ``out_dir/<speaker>/<id>.flac``. ``limit`` keeps N utterances spread over the split."""
    table = _spread(_load_hub(name, config, split), limit)

    def describe(record: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        speaker = str(record["speaker_id"])
        return f"{speaker}/{record['id']}", {"text": record["text"], "speaker": speaker}

    return _materialise(table, Path(out_dir), skips, describe)


def speech_commands_hub(split: Literal["train", "validation", "test"], out_dir: str | os.PathLike[str], *,
                        skips: SkipReport, config: str = "v0.02", name: str = "google/speech_commands",
                        limit: int | None = None) -> list[ManifestRow]:
    """Rows of hub Speech Commands (``label`` = the word); audio written to ``out_dir/<label>/<file>.flac``.
    The background-noise clips (label ``_silence_``) are left out and counted. ``limit`` keeps N spread evenly."""
    table = _spread(_load_hub(name, config, split), limit)
    names = table.features["label"].names

    def describe(record: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        label = names[record["label"]]
        stem = Path(record["file"]).stem
        return f"{label}/{stem}", {"label": label, "text": label, "speaker": record.get("speaker_id") or None}

    kept = []
    for record in table:
        if names[record["label"]] == "_silence_":
            skips.checked += 1
            skips.add(record["file"], "background-noise clip (_silence_), not a spoken word")
        else:
            kept.append(record)
    return _materialise(kept, Path(out_dir), skips, describe)
