"""Speech manifests: one row per audio file, stored as jsonl or csv.

Columns: ``path`` (required; relative paths are resolved against the manifest's folder), and the
optional ``text``, ``speaker``, ``label`` and ``duration`` (seconds). Other columns are ignored.
Manifests are read through Hugging Face ``datasets`` (the ``json`` and ``csv`` builders), which
works offline on local files.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import soundfile as sf

__all__ = ["ManifestRow", "SkipReport", "read_manifest", "scan_folder", "write_manifest"]

COLUMNS = ("path", "text", "speaker", "label", "duration")
AUDIO_SUFFIXES = ("wav", "flac", "ogg")


@dataclass(frozen=True, kw_only=True)
class ManifestRow:
    """One utterance of a manifest."""

    path: Path
    """Absolute path of the audio file."""
    text: str | None = None
    """Transcript, if known."""
    speaker: str | None = None
    """Speaker id, if known."""
    label: str | None = None
    """Class label (e.g. the word of a spoken-word corpus), if any."""
    duration: float | None = None
    """Length in seconds, if known."""


@dataclass
class SkipReport:
    """Items left out of a data set, each with its file and the reason (a mutable collector)."""

    checked: int = 0
    """How many items were looked at."""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """``(file, reason)`` for each item left out."""

    def add(self, path: str | os.PathLike[str], reason: str) -> None:
        """Record that ``path`` was left out because of ``reason``."""
        self.skipped.append((str(path), reason))

    @property
    def num_skipped(self) -> int:
        """Number of items left out."""
        return len(self.skipped)

    def summary(self) -> str:
        """One line with the counts, then one line per skipped file and its reason."""
        head = f"kept {self.checked - self.num_skipped} of {self.checked} items, skipped {self.num_skipped}"
        return "\n".join([head] + [f"  {path}: {reason}" for path, reason in self.skipped])


def _clean(value: Any) -> Any:
    """Blank csv cells and JSON nulls become None."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return None
    return value


def _to_row(record: dict[str, Any], base: Path, where: str) -> ManifestRow:
    path = _clean(record.get("path"))
    if not isinstance(path, str):
        raise ValueError(f"{where}: 'path' must be a non-empty string, got {record.get('path')!r}")
    values: dict[str, Any] = {"path": (base / path).resolve()}
    for key in ("text", "speaker", "label"):
        value = _clean(record.get(key))
        values[key] = None if value is None else str(value)
    duration = _clean(record.get("duration"))
    if duration is not None:
        try:
            duration = float(duration)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: 'duration' must be a number, got {duration!r}") from None
    values["duration"] = duration
    return ManifestRow(**values)


def _builder(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return "json"
    if suffix == ".csv":
        return "csv"
    raise ValueError(f"{path}: manifest must be .jsonl, .json or .csv, got {path.suffix!r}")


def read_manifest(path: str | os.PathLike[str]) -> list[ManifestRow]:
    """Rows of a jsonl or csv manifest, with paths resolved against the manifest's folder.

    Raises:
        ValueError: the file is missing, empty or malformed, lacks the ``path`` column, or a row has
            a bad value (the message names the file, the row and the key).
    """
    from datasets import disable_progress_bars, load_dataset  # heavy import, only when reading

    path = Path(path)
    builder = _builder(path)
    if not path.is_file():
        raise ValueError(f"{path}: manifest not found")
    if not path.read_text(encoding="utf-8").strip():
        raise ValueError(f"{path}: manifest is empty")
    disable_progress_bars()
    # A private cache folder: the rows are kept in memory, and a stale cache can never be read back.
    with tempfile.TemporaryDirectory(prefix="seqae-manifest-") as cache_dir:
        try:
            table = load_dataset(
                builder, data_files=str(path), split="train", cache_dir=cache_dir, keep_in_memory=True
            )
        except Exception as err:  # datasets wraps pyarrow/pandas parse errors in many types
            raise ValueError(f"{path}: cannot parse manifest as {builder} ({err})") from err
        if "path" not in table.column_names:
            raise ValueError(f"{path}: missing required column 'path' (columns: {table.column_names})")
        records = table.to_list()
    line_of = (lambda i: f"line {i + 2}") if builder == "csv" else (lambda i: f"row {i + 1}")
    return [_to_row(rec, path.parent, f"{path}: {line_of(i)}") for i, rec in enumerate(records)]


def _serialisable(row: ManifestRow, base: Path) -> dict[str, Any]:
    record = asdict(row)
    absolute = Path(row.path).resolve()
    try:
        record["path"] = absolute.relative_to(base).as_posix()
    except ValueError:
        record["path"] = str(absolute)  # outside the manifest's folder: keep it absolute
    return record


def write_manifest(rows: list[ManifestRow], path: str | os.PathLike[str]) -> None:
    """Write ``rows`` as jsonl or csv (from the suffix), paths relative to the manifest's folder.

    Paths outside that folder are written absolute. The file is written atomically.
    """
    path = Path(path)
    builder = _builder(path)
    base = path.parent.resolve()
    records = [_serialisable(row, base) for row in rows]
    out = io.StringIO()
    if builder == "json":
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    else:
        writer = csv.DictWriter(out, fieldnames=[f.name for f in fields(ManifestRow)], lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in records)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(out.getvalue())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _expand_braces(pattern: str) -> list[str]:
    """``"**/*.{wav,flac}"`` -> ``["**/*.wav", "**/*.flac"]`` (one brace group at most)."""
    start, end = pattern.find("{"), pattern.find("}")
    if start < 0 or end < start:
        return [pattern]
    return [pattern[:start] + alt + pattern[end + 1 :] for alt in pattern[start + 1 : end].split(",")]


def scan_folder(
    root: str | os.PathLike[str],
    *,
    pattern: str = "**/*.{wav,flac,ogg}",
    label_from: str | None = "parent",
    skips: SkipReport | None = None,
) -> list[ManifestRow]:
    """Manifest rows for the audio files under ``root`` that match ``pattern``, sorted by path.

    ``label_from="parent"`` sets each row's label to the name of the file's folder. Durations come
    from ``soundfile.info``. Files soundfile cannot open, or that hold no samples, are left out,
    recorded in ``skips`` (when given) and reported in a warning that names them.
    """
    if label_from not in ("parent", None):
        raise ValueError(f"label_from must be 'parent' or None, got {label_from!r}")
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root}: not a folder")
    files = sorted({p.resolve() for pat in _expand_braces(pattern) for p in root.glob(pat) if p.is_file()})
    report = skips if skips is not None else SkipReport()
    first_skip = report.num_skipped
    rows = []
    for file in files:
        report.checked += 1
        try:
            info = sf.info(str(file))
        except (sf.SoundFileError, RuntimeError) as err:
            report.add(file, f"unreadable audio ({err})")
            continue
        if info.frames <= 0:
            report.add(file, "contains no samples (zero-length audio)")
            continue
        label = file.parent.name if label_from == "parent" else None
        rows.append(ManifestRow(path=file, label=label, duration=info.frames / info.samplerate))
    new = report.skipped[first_skip:]
    if new:
        names = "; ".join(f"{p}: {r}" for p, r in new)
        warnings.warn(f"scan_folder({root}): skipped {len(new)} of {len(files)} files: {names}", stacklevel=2)
    return rows
