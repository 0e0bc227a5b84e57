"""Sentences to evaluate or apply a run to, read from a .txt or .jsonl file with where each came from."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from seqae.data.text import CorpusError


@dataclass(frozen=True, kw_only=True)
class TextSet:
    """Sentences read from a file, with where each came from."""

    texts: list[str]
    """The sentences, stripped."""
    labels: list[str] | None
    """One label per sentence (jsonl with a `label` field), else None."""
    line_numbers: list[int]
    """1-based line of each sentence in the file."""
    skipped_empty: int
    """Empty lines left out (counted, never silently)."""


def read_texts(path: str | Path, *, keep_empty: bool = False, text_column: str = "text") -> TextSet:
    """Sentences of a .txt file (one a line) or a .jsonl file (objects with `text_column` and optional `label`).

    Empty lines are skipped and counted unless `keep_empty` (which keeps rows aligned with lines).
    Raises CorpusError naming the file and line for undecodable bytes, bad JSON or a missing field.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    is_jsonl = path.suffix.lower() == ".jsonl"
    raw_lines = path.read_bytes().split(b"\n")
    if raw_lines[-1] == b"":  # the file's final newline ends the last line; it does not start another
        raw_lines.pop()
    texts, labels, numbers, skipped = [], [], [], 0
    for lineno, raw in enumerate(raw_lines, start=1):
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError as err:
            raise CorpusError(f"{path}:{lineno}: not valid UTF-8 ({err.reason} at byte {err.start})") from None
        if not line and not (keep_empty and not is_jsonl):
            skipped += 1
            continue
        text, label = _jsonl_record(line, path, lineno, text_column) if is_jsonl else (line, None)
        if not text and not keep_empty:
            skipped += 1
            continue
        texts.append(text)
        labels.append(label)
        numbers.append(lineno)
    has_label = [label is not None for label in labels]
    if any(has_label) and not all(has_label):
        first = numbers[has_label.index(False)]
        raise CorpusError(f"{path}:{first}: no 'label' field, but other lines have one (label all or none)")
    return TextSet(texts=texts, labels=labels if labels and all(has_label) else None, line_numbers=numbers,
                   skipped_empty=skipped)


def _jsonl_record(line: str, path: Path, lineno: int, text_column: str) -> tuple[str, str | None]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise CorpusError(f"{path}:{lineno}: not valid JSON ({err.msg})") from None
    if not isinstance(record, dict) or not isinstance(record.get(text_column), str):
        raise CorpusError(f"{path}:{lineno}: expected an object with a string {text_column!r} field")
    label = record.get("label")
    return record[text_column].strip(), None if label is None else str(label)
