"""Translation pairs files: one pair a line, tab-separated fields, UTF-8, plain or gzip-compressed.

`read_pairs` turns a file into (source, target) pairs and counts the lines it skipped, by reason;
`no_pairs_reason` says why a file gave no pair at all, for the error that stops a run.
"""

from __future__ import annotations

import gzip
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

from seqae.config import ConfigError

__all__ = ["no_pairs_reason", "read_pairs"]

GZIP_MAGIC = b"\x1f\x8b"
COLUMN_KEYS = ("data.source_column", "data.target_column")
"""The settings that choose the columns, as messages name them (a script passes its own option names)."""


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _read_text(file: Path, key: str) -> str:
    """The UTF-8 text of `file`, gunzipped when it ends in .gz or starts like gzip; ConfigError naming the file
    (and line) when it is unreadable, a corrupt gzip or not UTF-8."""
    try:
        data = file.read_bytes()
    except OSError as err:
        raise ConfigError(f"{key}: {file}: cannot read ({err.strerror})") from None
    packed = file.suffix == ".gz" or data.startswith(GZIP_MAGIC)
    if packed:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as err:
            raise ConfigError(f"{key}: {file}: not a readable gzip file ({err})") from None
    try:
        return data.decode("utf-8-sig")  # a leading byte-order mark is dropped
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        where = " (after gunzip)" if packed else ""
        raise ConfigError(f"{key}: {file}:{line}: not UTF-8{where}: byte 0x{data[err.start]:02x}; "
                          "save the file as UTF-8") from None


def _explain(reason: str, columns: tuple[int, int], keys: tuple[str, str] = COLUMN_KEYS) -> str:
    """A `malformed_reasons` key with what to do about it (the column counts need the chosen columns)."""
    if not reason[0].isdigit():
        return reason
    found, need = int(reason.split()[0]), max(columns) + 1
    if found > need:  # only refused under the default columns
        return f"{reason}; set {keys[0]} and {keys[1]} to choose two"
    if columns == (0, 1):
        return f"{reason}; expected 'source<TAB>target'"
    return f"{reason}; {keys[0]} {columns[0]} and {keys[1]} {columns[1]} need {need}"


def _split(line: str, columns: tuple[int, int], explicit: bool) -> tuple[str, str] | str:
    """(source, target) of one non-blank line, or the reason it is malformed."""
    fields = line.split("\t")
    if len(fields) < max(columns) + 1 or (len(fields) > 2 and not explicit):
        return _plural(len(fields), "column")
    source, target = fields[columns[0]].strip(), fields[columns[1]].strip()
    if not source:
        return "empty source"
    return (source, target) if target else "empty target"


def read_pairs(path: str, key: str, *, strict: bool = False, source_column: int = 0, target_column: int = 1,
               column_keys: tuple[str, str] = COLUMN_KEYS) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """(source, target) pairs of a pairs file, and counts of the lines skipped.

    Fields are tab-separated; `source_column` / `target_column` pick two (0-based). With the default columns a
    line must hold exactly two fields (taking the first two of `id<TAB>en<TAB>es` would train on ids); with
    columns chosen, extra fields are fine. A `.gz` (or gzip-looking) file is decompressed. Stats: lines, pairs,
    blank, malformed, malformed_reasons ({reason: count}), malformed_lines (the first 20 as `file:line`),
    columns, column_keys (what messages call the column settings). A missing, unreadable or non-UTF-8 file, or
    with `strict` a malformed line, raises ConfigError naming `key`, the file and the line.
    """
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"{key}: {path}: pairs file not found")
    lines = _read_text(file, key).split("\n")
    if lines[-1] == "":  # the final newline ends the last line, it does not start another
        lines.pop()
    columns = (source_column, target_column)
    explicit = columns != (0, 1)
    pairs: list[tuple[str, str]] = []
    blank, bad, reasons = 0, [], Counter()
    for number, line in enumerate(lines, 1):
        line = line.removesuffix("\r")
        if not line.strip():
            blank += 1
            continue
        got = _split(line, columns, explicit)
        if isinstance(got, tuple):
            pairs.append(got)
            continue
        if strict:
            raise ConfigError(f"{key}: {path}:{number}: {_explain(got, columns, column_keys)}, got {line[:80]!r}")
        reasons[got] += 1
        bad.append(f"{path}:{number}")
    return pairs, {"lines": len(lines), "pairs": len(pairs), "blank": blank, "malformed": len(bad),
                   "malformed_reasons": dict(reasons.most_common()), "malformed_lines": bad[:20],
                   "columns": list(columns), "column_keys": list(column_keys)}


def no_pairs_reason(stats: dict[str, Any]) -> str:
    """Why a file with these `read_pairs` stats gave no pair: empty, only blank lines, or its malformed lines by
    reason (with what to do) and the first of them as `file:line`."""
    if stats["lines"] == 0:
        return "the file is empty"
    if stats["malformed"] == 0:
        return f"only blank lines ({stats['blank']})"
    columns = tuple(stats["columns"])
    keys = tuple(stats.get("column_keys", COLUMN_KEYS))
    why = "; ".join(f"{n} with {_explain(reason, columns, keys)}" for reason, n in stats["malformed_reasons"].items())
    blank = f", and {_plural(stats['blank'], 'blank line')}" if stats["blank"] else ""
    return (f"{_plural(stats['malformed'], 'malformed line')} ({why}), first at {stats['malformed_lines'][0]}"
            f"{blank}")
