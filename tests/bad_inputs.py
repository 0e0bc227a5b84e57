"""A corpus of bad inputs, built in a folder, with what a loader must make of each item.

`build_text_corpus(root, repo)` writes a text corpus whose lines are good fortunes interleaved with empty and
whitespace-only lines, undecodable bytes, control characters and one 100,000-character line.
`build_audio_corpus(root, repo)` writes train and held-out manifests listing good espeak-ng words, good but unusual
files (stereo, 8 kHz, 44.1 kHz), and bad items: truncated and corrupt files, an empty file, zero-length audio,
NaN/Inf samples, a folder named like a file, a missing file, and clips too short for the model.

Each builder returns the counts and reasons a loader is expected to report, so a test compares them exactly.
The items are in a fixed order, so the first bad one (what strict mode names) is known.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

# ---------------------------------------------------------------------------------------------------------------------
# Text

LONG_LINE_CHARS = 100_000


@dataclass(frozen=True, kw_only=True)
class TextCorpus:
    """A text corpus file and what reading it must report."""

    path: Path
    """The corpus (one item a line)."""
    lines: int
    """Lines in the file (rows the text builder reads)."""
    kept: int
    """Lines a reader keeps: good, replaced, control-character and long lines."""
    good: tuple[str, ...]
    """The good lines, which must come back unchanged."""
    empty: int
    """Empty, whitespace-only and control-only lines: skipped and counted."""
    replaced: int
    """Lines with undecodable bytes: kept with U+FFFD in replace mode."""
    control: int
    """Lines with control characters other than tab (the control-only line included)."""
    long_lines: int
    """Lines of LONG_LINE_CHARS characters: truncated or skipped by the encoder."""
    first_bad_line: int
    """1-based line of the first undecodable byte."""
    first_bad_byte: str
    """That byte, as two hex digits."""


def short_fortunes(repo: Path, count: int) -> list[str]:
    """The first `count` fortunes of at most 30 characters (so they stay under any max_len >= 62 tokens)."""
    lines = [line for line in (repo / "data/fortunes/train.txt").read_text().splitlines() if 0 < len(line) <= 30]
    assert len(lines) >= count, "the fortunes fixture has too few short lines"
    return lines[:count]


BAD_TEXT_LINES: list[tuple[str, bytes]] = [  # (kind, raw line without its line break)
    ("empty", b""),
    ("replaced", b"caf\xe9 au lait"),  # Latin-1
    ("empty", b"   \t  "),
    ("control", b"bell\x07 and nul\x00 inside"),
    ("long", b"x" * LONG_LINE_CHARS),
    ("replaced", b"cut short \xe2\x82"),  # a UTF-8 sequence missing its last byte
    ("control", b"\x1b[31mred\x1b[0m text"),  # a terminal escape sequence
    ("replaced", b"overlong \xc0\xaf slash"),  # an overlong encoding of '/'
    ("control_only", b"\x01\x02\x03"),  # nothing left once control characters are spaces
    ("control", "line\u2028separator".encode()),
    ("replaced", b"\xff\xfe lone bytes"),
    ("empty", b""),
]


def build_text_corpus(root: Path, repo: Path, *, name: str = "corpus.txt", good: int = 36) -> TextCorpus:
    """Write `root/name`: `good` short fortunes with the BAD_TEXT_LINES spread among them (three good lines, then one
    bad line, ...); the file ends with a line break."""
    fortunes = short_fortunes(repo, good)
    raw: list[bytes] = []
    kinds: list[str] = []
    bad = iter(BAD_TEXT_LINES)
    for i, line in enumerate(fortunes):
        raw.append(line.encode())
        kinds.append("good")
        if i % 3 == 2:
            kind, item = next(bad, (None, None))
            if kind is not None:
                raw.append(item)
                kinds.append(kind)
    for kind, item in bad:
        raw.append(item)
        kinds.append(kind)
    root.mkdir(parents=True, exist_ok=True)
    path = root / name
    path.write_bytes(b"".join(line + b"\n" for line in raw))
    first = kinds.index("replaced")
    first_byte = next(b for b in raw[first] if b >= 0x80)
    return TextCorpus(
        path=path,
        lines=len(raw),
        kept=sum(k in ("good", "replaced", "control", "long") for k in kinds),
        good=tuple(fortunes),
        empty=sum(k in ("empty", "control_only") for k in kinds),
        replaced=kinds.count("replaced"),
        control=kinds.count("control") + kinds.count("control_only"),
        long_lines=kinds.count("long"),
        first_bad_line=first + 1,
        first_bad_byte=f"{first_byte:02x}",
    )


# ---------------------------------------------------------------------------------------------------------------------
# Audio


@dataclass(frozen=True, kw_only=True)
class AudioCorpus:
    """Train and held-out manifests and what loading them must report."""

    train_manifest: Path
    heldout_manifest: Path
    train_rows: int
    """Rows of the train manifest."""
    train_kept: tuple[str, ...]
    """Names of the train files that must be used (good, stereo, 8 kHz, 44.1 kHz)."""
    train_bad: dict[str, str]
    """Train file name -> the start of the reason it is skipped (AudioError)."""
    train_too_short: tuple[str, ...]
    """Train files with features but fewer frames than a conv2 front end needs (3)."""
    heldout_rows: int
    heldout_kept: int
    heldout_bad: dict[str, str]
    first_bad: str
    """Name of the first bad train file, and its reason, as strict mode must report them."""
    first_bad_reason: str
    first_bad_row: int
    """Its 1-based row in the train manifest."""


def _sine(seconds: float, rate: int, freq: float = 220.0) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _write_truncated_flac(path: Path, source: Path) -> None:
    data = source.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _write_truncated_wav(path: Path) -> None:
    sf.write(path, _sine(0.5, 16000), 16000, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _bad_items(source: Path) -> dict[str, tuple[object, str]]:
    """name -> (a function writing the item, the start of the AudioError reason)."""
    nan = np.array([0.1, np.nan] * 400, np.float32)
    inf = np.array([0.1, -np.inf] * 400, np.float32)
    return {
        "truncated.flac": (lambda p: _write_truncated_flac(p, source), "unreadable or corrupt audio"),
        "truncated.wav": (_write_truncated_wav, "truncated: header declares"),
        "noise_bytes.wav": (lambda p: p.write_bytes(np.random.default_rng(0).bytes(4000)),
                            "unreadable or corrupt audio"),
        "text.flac": (lambda p: p.write_text("this is not audio\n"), "unreadable or corrupt audio"),
        "empty.wav": (lambda p: p.write_bytes(b""), "empty file (0 bytes)"),
        "zero_length.wav": (lambda p: sf.write(p, np.zeros(0, np.float32), 16000), "contains no samples"),
        "nan.wav": (lambda p: sf.write(p, nan, 16000, subtype="FLOAT"), "contains 400 NaN/Inf sample values"),
        "inf.wav": (lambda p: sf.write(p, inf, 16000, subtype="FLOAT"), "contains 400 NaN/Inf sample values"),
        "folder.wav": (lambda p: p.mkdir(), "is a directory, not an audio file"),
        "missing.flac": (lambda p: None, "file not found"),
        "tiny.wav": (lambda p: sf.write(p, _sine(0.005, 16000), 16000), "too short for one feature frame"),
    }


def _unusual_items(source: Path) -> dict[str, object]:
    """Good audio in unusual forms: name -> a function writing it."""
    wav, rate = sf.read(source, dtype="float32")  # (S,)
    assert rate == 16000 and wav.ndim == 1
    x = torch.from_numpy(wav)

    def resampled(new_rate: int):
        return lambda p: sf.write(p, AF.resample(x, 16000, new_rate).clamp(-1, 1).numpy(), new_rate)

    return {
        "stereo.wav": lambda p: sf.write(p, np.stack([wav, 0.5 * wav], axis=1), 16000),  # (S, 2)
        "rate_8k.wav": resampled(8000),
        "rate_44k.flac": resampled(44100),
    }


def build_audio_corpus(root: Path, repo: Path) -> AudioCorpus:
    """Write the audio items under `root` and `train.jsonl` / `heldout.jsonl` manifests listing them.

    Train: 12 fixture words (3 speakers × 4 words), 3 unusual good files, 11 bad items and one 2-frame clip, in a
    fixed interleaved order that starts with 4 good files. Held-out: the 8 fixture test words and a missing file.
    """
    fixture = Path(repo).resolve() / "data/espeak_words"
    root.mkdir(parents=True, exist_ok=True)
    rows = [json.loads(line) for line in (fixture / "train/manifest.jsonl").read_text().splitlines()]
    good = [r for r in rows if r["speaker"] in ("spk000", "spk001", "spk002")][:12]
    entries = [{**r, "path": str(fixture / "train" / r["path"])} for r in good]
    source = fixture / "train" / good[0]["path"]
    specials: list[dict] = []
    for name, write in _unusual_items(source).items():
        write(root / name)
        specials.append({"path": name, "speaker": "spk099", "label": name.split(".")[0]})
    bad = _bad_items(source)
    for name, (write, _) in bad.items():
        write(root / name)
    sf.write(root / "two_frames.wav", _sine(0.035, 16000), 16000)  # 560 samples: 2 frames of 25 ms / 10 ms
    odd = [{"path": name} for name in bad] + [{"path": "two_frames.wav"}]
    ordered = entries[:4]  # then alternate: one odd item, one good item, while both last
    rest = entries[4:] + specials
    while odd or rest:
        ordered += [x.pop(0) for x in (odd, rest) if x]
    train = root / "train.jsonl"
    train.write_text("".join(json.dumps(e) + "\n" for e in ordered))
    test_rows = [json.loads(line) for line in (fixture / "test/manifest.jsonl").read_text().splitlines()]
    heldout_entries = [{**r, "path": str(fixture / "test" / r["path"])} for r in test_rows]
    heldout_entries.insert(3, {"path": "missing_heldout.flac"})
    heldout = root / "heldout.jsonl"
    heldout.write_text("".join(json.dumps(e) + "\n" for e in heldout_entries))
    names = [Path(e["path"]).name for e in ordered]
    first_bad = next(n for n in names if n in bad)
    return AudioCorpus(
        train_manifest=train,
        heldout_manifest=heldout,
        train_rows=len(ordered),
        train_kept=tuple(n for n in names if n not in bad and n != "two_frames.wav"),
        train_bad={name: reason for name, (_, reason) in bad.items()},
        train_too_short=("two_frames.wav",),
        heldout_rows=len(heldout_entries),
        heldout_kept=len(test_rows),
        heldout_bad={"missing_heldout.flac": "file not found"},
        first_bad=first_bad,
        first_bad_reason=bad[first_bad][1],
        first_bad_row=names.index(first_bad) + 1,
    )
