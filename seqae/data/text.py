"""Read text corpora through Hugging Face `datasets` and turn them into token sequences.

`load_text_lines` reads local files and hub datasets through one code path,
`datasets.load_dataset(builder_or_name, ...)`. `encode_lines` turns lines into
`[bos] + pieces + [eos]` sequences and says what it truncated or skipped.
"""

from __future__ import annotations

import dataclasses
import glob
import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np

from seqae.frontend.tokenizer import Tokenizer

BUILDERS = {".txt": "text", ".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
SCANNED = {".txt", ".jsonl", ".json", ".csv"}  # text formats checked for undecodable bytes
REPLACEABLE = {"text", "csv"}  # builders that can decode with errors="replace"
ENCODING_ERRORS = ("strict", "replace")
OVERLONG = ("truncate", "skip")
CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")  # control chars except tab
_BLOCK = 1 << 20  # bytes read at a time when checking UTF-8 (memory stays flat on large files)


class CorpusError(ValueError):
    """A corpus cannot be read; the message names the file (and line) or dataset."""


@dataclass(frozen=True, kw_only=True)
class ReadStats:
    """What `load_text_lines` read and what it changed or skipped."""

    source: str  # the `source` argument
    split: str  # the split read
    files: tuple[str, ...]  # local files read; empty for a hub dataset
    lines_read: int  # rows of the split's text column
    lines_kept: int  # lines returned
    empty_skipped: int  # empty, whitespace-only or null rows
    replaced_lines: int  # lines with undecodable bytes replaced by U+FFFD (encoding_errors="replace")
    replaced_at: tuple[str, ...] = ()  # `file:line` of each of them (the first 1,000)
    control_chars_lines: int  # lines whose control characters (not tab) were replaced by spaces

    def as_dict(self) -> dict:
        """Plain dict for logging."""
        return dataclasses.asdict(self)


@dataclass(frozen=True, kw_only=True)
class EncodeStats:
    """What `encode_lines` kept, truncated and skipped."""

    lines_in: int  # lines given
    kept: int  # sequences returned
    truncated: int  # sequences cut to max_len (overlong="truncate")
    overlong_skipped: int  # sequences longer than max_len dropped (overlong="skip")
    empty_skipped: int  # lines that encode to zero pieces
    source_index: tuple[int, ...]  # for each returned sequence, the index of its line

    def as_dict(self) -> dict:
        """Counts for logging (without `source_index`)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "source_index"}


def load_text_lines(
    source: str,
    *,
    split: str = "train",
    text_column: str = "text",
    hub_config: str | None = None,
    encoding_errors: str = "strict",
    data_files: dict | None = None,
) -> tuple[list[str], ReadStats]:
    """Lines of one split of a corpus, stripped, with empty lines skipped and counted.

    `source` is, in order of precedence:
      - a local file (`.txt`, `.jsonl`/`.json`, `.csv`, `.parquet`): its content, whatever `split`;
      - a local directory, laid out like a hub dataset: the files of `split` are those named
        `<split>.<ext>` or `<split>-*.<ext>` in `<source>/<hub_config>` (when `hub_config` is
        given) or `<source>`, e.g. `load_text_lines("mirror/wikitext", split="validation",
        hub_config="wikitext-103-raw-v1")` reads
        `mirror/wikitext/wikitext-103-raw-v1/validation-00000-of-00001.parquet`;
        with `data_files` (`{split: path, glob or list}`), paths are relative to the directory;
      - a glob of local files (`"corpus/*.txt"`): all of them, whatever `split`;
      - otherwise a hub dataset name (`"Salesforce/wikitext"`, `hub_config="wikitext-103-raw-v1"`),
        which loads offline only from the local Hugging Face cache.

    Text files are checked for invalid UTF-8 first: `encoding_errors="strict"` raises a
    CorpusError naming the file and 1-based line; `"replace"` keeps the line with U+FFFD and
    counts it (`.txt` and `.csv` only). Control characters other than tab become spaces and
    are counted.

    Raises:
        CorpusError: missing file, dataset that cannot be loaded, missing column, bad bytes.
    """
    if encoding_errors not in ENCODING_ERRORS:
        raise ValueError(f"encoding_errors must be one of {ENCODING_ERRORS}, got {encoding_errors!r}")
    builder, config, files = _resolve(source, split, hub_config, data_files)
    local = files is not None
    if local and all(f.stat().st_size == 0 for f in files):  # datasets fails on these with an opaque message
        raise CorpusError(f"{source}: empty file{'s' if len(files) > 1 else ''} (0 bytes): no lines to read")
    replaced_at = [where for f in files or [] if f.suffix in SCANNED for where in _scan_utf8(f, encoding_errors, builder)]
    replaced = len(replaced_at)
    kwargs = {"encoding_errors": encoding_errors} if local and builder in REPLACEABLE else {}
    split_files = {split: [str(f) for f in files]} if local else data_files
    dataset = _load(source, builder, config, split_files, split, kwargs)
    if text_column not in dataset.column_names:
        raise CorpusError(
            f"{source!r} split {split!r} has no column {text_column!r}; columns: {dataset.column_names}"
        )
    lines, empty, control = _clean(dataset[text_column], source, text_column)
    stats = ReadStats(
        source=source,
        split=split,
        files=tuple(str(f) for f in files or []),
        lines_read=len(dataset),
        lines_kept=len(lines),
        empty_skipped=empty,
        replaced_lines=replaced,
        replaced_at=tuple(replaced_at[:1000]),
        control_chars_lines=control,
    )
    return lines, stats


def encode_lines(
    lines: Sequence[str], tokenizer: Tokenizer, *, max_len: int, overlong: str = "truncate"
) -> tuple[list[list[int]], EncodeStats]:
    """Encode lines as `[bos] + pieces + [eos]`, at most `max_len` ids (bos and eos included).

    Longer sequences are cut to `bos + pieces[:max_len - 2] + eos` (`overlong="truncate"`) or
    dropped (`"skip"`); lines with zero pieces are dropped. All are counted, and
    `stats.source_index[k]` is the line index of the k-th returned sequence.
    """
    if overlong not in OVERLONG:
        raise ValueError(f"overlong must be one of {OVERLONG}, got {overlong!r}")
    if max_len < 3:
        raise ValueError(f"max_len must be >= 3 (bos, one piece, eos), got {max_len}")
    seqs, index = [], []
    truncated = skipped = empty = 0
    for i, ids in enumerate(tokenizer.encode_batch(lines)):
        if not ids:
            empty += 1
            continue
        if len(ids) + 2 > max_len:
            if overlong == "skip":
                skipped += 1
                continue
            truncated += 1
            ids = ids[: max_len - 2]
        seqs.append([tokenizer.bos_id, *ids, tokenizer.eos_id])
        index.append(i)
    stats = EncodeStats(
        lines_in=len(lines),
        kept=len(seqs),
        truncated=truncated,
        overlong_skipped=skipped,
        empty_skipped=empty,
        source_index=tuple(index),
    )
    return seqs, stats


def _resolve(
    source: str, split: str, hub_config: str | None, data_files: dict | None
) -> tuple[str, str | None, list[Path] | None]:
    """(builder or hub name, hub config, local files of `split` or None for a hub dataset)."""
    path = Path(source).expanduser()
    if path.is_dir():
        root = path
        if hub_config is not None:
            root = path / hub_config
            if not root.is_dir():
                raise CorpusError(f"{source}: no folder {hub_config!r} for hub_config")
        if data_files is None:
            files = _split_files(root, split)
        elif split in data_files:
            files = _expand(root, data_files[split])
        else:
            raise CorpusError(f"{source}: data_files has no split {split!r}; splits: {sorted(data_files)}")
    elif path.is_file():
        files = [path]
    elif glob.has_magic(source):
        files = [Path(p) for p in sorted(glob.glob(str(path)))]
        if not files:
            raise CorpusError(f"no file matches {source!r}")
    elif path.suffix in BUILDERS or source.startswith(("/", ".", "~")):
        raise CorpusError(f"corpus file not found: {source}")
    else:
        return source, hub_config, None
    return _builder_of(files), None, files


def _split_files(root: Path, split: str) -> list[Path]:
    found = sorted(p for p in root.iterdir() if p.is_file() and p.suffix in BUILDERS)
    files = [p for p in found if p.stem == split or p.stem.startswith(f"{split}-")]
    if not files:
        splits = sorted({p.stem.split("-")[0] for p in found})
        raise CorpusError(f"{root}: no file for split {split!r} (<split>.<ext> or <split>-*.<ext>); splits: {splits}")
    return files


def _expand(root: Path, spec: str | Sequence[str]) -> list[Path]:
    files = []
    for pattern in [spec] if isinstance(spec, str) else spec:
        matches = sorted(glob.glob(str(root / pattern)))
        if not matches:
            raise CorpusError(f"data_files: no file matches {str(root / pattern)!r}")
        files += [Path(m) for m in matches]
    return files


def _builder_of(files: list[Path]) -> str:
    suffixes = sorted({f.suffix for f in files})
    unknown = [f for f in files if f.suffix not in BUILDERS]
    if unknown:
        raise CorpusError(f"unsupported file type {unknown[0].suffix!r}: {unknown[0]}; supported: {sorted(BUILDERS)}")
    builders = {BUILDERS[s] for s in suffixes}
    if len(builders) != 1:
        raise CorpusError(f"files of one split must share a format, got {suffixes}: {[str(f) for f in files]}")
    return builders.pop()


def _scan_utf8(path: Path, encoding_errors: str, builder: str) -> list[str]:
    """`file:line` of each line of `path` that is not valid UTF-8; raises in strict mode."""
    bad, line_offset = [], 0
    with path.open("rb") as f:
        for block in iter(lambda: f.read(_BLOCK), b""):
            block += f.readline()  # end the block at a line break
            try:
                block.decode("utf-8")
            except UnicodeDecodeError:
                for lineno, raw in enumerate(block.split(b"\n"), line_offset + 1):
                    try:
                        raw.decode("utf-8")
                    except UnicodeDecodeError as err:
                        if encoding_errors == "strict" or builder not in REPLACEABLE:
                            raise CorpusError(_bad_bytes_message(path, lineno, raw, err, builder)) from None
                        bad.append(f"{path}:{lineno}")
            line_offset += block.count(b"\n")
    return bad


def _bad_bytes_message(path: Path, lineno: int, raw: bytes, err: UnicodeDecodeError, builder: str) -> str:
    hint = "use encoding_errors='replace' to keep it" if builder in REPLACEABLE else "fix or re-encode the file"
    byte = raw[err.start : err.start + 1].hex()
    return f"{path}:{lineno}: invalid UTF-8 byte 0x{byte} at column {err.start + 1} ({hint})"


def _load(
    source: str, builder: str, config: str | None, data_files: dict | None, split: str, kwargs: dict
) -> datasets.Dataset:
    """`datasets.load_dataset`, with any failure turned into one CorpusError line."""
    bars_were_on = not datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        return datasets.load_dataset(builder, config, data_files=data_files, split=split, **kwargs)
    except Exception as err:  # datasets raises many types; the caller needs one clear line
        detail = (str(err).strip().splitlines() or [""])[0][:300]
        what = f"{source!r}" + (f" (config {config!r})" if config else "")
        raise CorpusError(f"cannot load {what} split {split!r}: {type(err).__name__}: {detail}") from None
    finally:
        if bars_were_on:
            datasets.enable_progress_bars()


def _clean(column: Sequence, source: str, text_column: str) -> tuple[list[str], int, int]:
    """(stripped non-empty lines, empty count, control-character line count)."""
    lines, empty, control = [], 0, 0
    for row, value in enumerate(column):
        text, changed = _clean_value(value, f"{source}: row {row + 1} of column {text_column!r}")
        control += changed
        if text:
            lines.append(text)
        else:
            empty += 1
    return lines, empty, control


def _clean_value(value, where: str) -> tuple[str, bool]:
    """(the stripped text, '' for empty or null; whether control characters were replaced)."""
    if value is None:
        return "", False
    if not isinstance(value, str):
        raise CorpusError(f"{where} is {type(value).__name__}, not text")
    text, n = CONTROL.subn(" ", value)
    return text.strip(), n > 0


class TextStream:
    """The lines of a corpus read lazily through `datasets` streaming, for corpora larger than memory.

    `source` takes the forms of `load_text_lines`. Local files are checked for invalid UTF-8 first (a streamed
    pass, as `load_text_lines` does); each epoch reads them in an order drawn from (seed, epoch). Skipped empty
    rows and replaced control characters are counted in `counts` as they are read.
    """

    def __init__(self, source: str, *, split: str = "train", text_column: str = "text", hub_config: str | None = None,
                 encoding_errors: str = "strict", seed: int = 0) -> None:
        if encoding_errors not in ENCODING_ERRORS:
            raise ValueError(f"encoding_errors must be one of {ENCODING_ERRORS}, got {encoding_errors!r}")
        self.source, self.split, self.text_column, self.seed = source, split, text_column, seed
        self.builder, self.hub_config, self.files = _resolve(source, split, hub_config, None)
        self.kwargs = {}
        if self.files is not None:
            self.files = [f for f in self.files if f.stat().st_size > 0]
            if not self.files:
                raise CorpusError(f"{source}: empty file(s) (0 bytes): no lines to read")
            replaced = [w for f in self.files if f.suffix in SCANNED for w in _scan_utf8(f, encoding_errors, self.builder)]
            self.kwargs = {"encoding_errors": encoding_errors} if self.builder in REPLACEABLE else {}
            if self.builder in ("text", "json"):
                self.kwargs["chunksize"] = 1 << 20  # bytes parsed at a time (datasets' default, 10 MiB, costs memory)
            self.replaced_at = tuple(replaced[:1000])
        self.counts = {"rows_read": 0, "empty_skipped": 0, "control_chars_lines": 0}

    def lines(self, epoch: int | None = None) -> Iterator[str]:
        """Non-empty stripped lines; `epoch=None` reads the files in their sorted order."""
        if self.files is None:
            yield from self._read(self.source, None, self.hub_config)
            return
        order = list(range(len(self.files)))
        if epoch is not None:
            order = np.random.default_rng([self.seed, epoch]).permutation(len(self.files)).tolist()
        for i in order:
            yield from self._read(str(self.files[i]), {self.split: [str(self.files[i])]}, None)

    def _read(self, where: str, data_files: dict | None, config: str | None) -> Iterator[str]:
        name = self.builder if data_files is not None else self.source
        try:
            rows = iter(datasets.load_dataset(name, config, data_files=data_files, split=self.split, streaming=True,
                                              **self.kwargs))
        except Exception as err:  # datasets raises many types; the caller needs one clear line
            raise CorpusError(f"cannot stream {where!r} split {self.split!r}: {type(err).__name__}: "
                              f"{(str(err).strip().splitlines() or [''])[0][:300]}") from None
        for number in itertools.count(1):
            try:
                row = next(rows)
            except StopIteration:
                return
            except Exception as err:
                raise CorpusError(f"{where}: cannot read row {number}: {type(err).__name__}: "
                                  f"{(str(err).strip().splitlines() or [''])[0][:300]}") from None
            if self.text_column not in row:
                raise CorpusError(f"{where}: row {number} has no column {self.text_column!r}; columns: {sorted(row)}")
            text, changed = _clean_value(row[self.text_column], f"{where}: row {number} of column {self.text_column!r}")
            self.counts["rows_read"] += 1
            self.counts["control_chars_lines"] += changed
            if text:
                yield text
            else:
                self.counts["empty_skipped"] += 1
