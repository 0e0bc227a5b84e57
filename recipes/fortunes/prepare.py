"""Build the fortunes sentence corpus: DIR/train.txt and DIR/heldout.txt (UTF-8, one sentence a line).

    python recipes/fortunes/prepare.py --out DIR [--source /usr/share/games/fortunes]

Reads the Debian `fortunes` / `fortunes-min` cookie files (records separated by lines holding
only `%`). Only the top level of --source is read: sub-folders (`off/`, the offensive set) and
the `.dat` index files are skipped. Debian ships `NAME.u8` as a symlink to the UTF-8 file `NAME`,
so each cookie file is read once (the plain name, else its `.u8`, de-duplicated by real path).

Each record loses its attribution lines ("-- Mark Twain" and their indented continuation),
has its whitespace collapsed and is split into sentences. A sentence is kept when it has 3-30
words, starts with a capital letter, ends with . ! or ?, uses plain ASCII prose characters,
has balanced double quotes, has at most one ALL-CAPS word, is not a "Speaker: ..." line, and
has no verse line break joined into it (", And the ..."). Sentences are de-duplicated
case-insensitively ignoring punctuation, shuffled with a fixed seed, cut to --max-sentences
(a uniform sample that keeps the fixture small) and split about 95% / 5%, so no held-out
sentence is in train.txt.

When --source does not exist, the committed copy in data/fortunes/ is copied to --out instead.
Recipes are scripts, not a package: nothing imports this file.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

DEFAULT_SOURCE = Path("/usr/share/games/fortunes")
FIXTURE_DIR = Path(__file__).resolve().parents[2] / "data" / "fortunes"
SPLIT_FILES = ("train.txt", "heldout.txt")

ATTRIBUTION = re.compile(r"^(\s+(--|\u2014|\u2015)|(--|\u2014|\u2015)\s*[A-Z])")
HEADING_MAX = 50  # wrapped prose lines are longer; headings and verse lines shorter
OVERSTRIKE = re.compile(r".\x08")  # "_\bX" or "X\bX": underline / bold on a terminal
SENTENCE_END = re.compile(r"[.!?][\"')]*\s+(?=[\"'(]?[A-Z0-9])")
PROSE = re.compile(r"[\"']?[A-Z][A-Za-z0-9 ,;:!?.'\"()\-&$%/]*[.!?][\"']?")
SPEAKER = re.compile(r"[\w .']{1,25}:\s")
SHOUT = re.compile(r"\b[A-Z]{2,}\b")
VERSE_JOIN = re.compile(r"[a-z,;:] (And|But|Or|The|To|In|Of|With|For|That|When|Where|Who|As|Is|My|Thy|Your)\b")
ABBREVIATIONS = frozenset(
    "mr mrs ms dr st jr sr vs etc prof mt no gen col sgt capt lt rev ft inc co ltd vol fig "
    "u.s e.g i.e a.m p.m".split()
)


def cookie_files(source: Path) -> list[Path]:
    """Top-level cookie files of `source`, each real file once (plain name preferred to `.u8`)."""
    names = {p.name for p in source.iterdir() if p.is_file()}
    chosen, seen = [], set()
    for name in sorted(names):
        if name.endswith(".dat") or (name.endswith(".u8") and name[: -len(".u8")] in names):
            continue
        real = os.path.realpath(source / name)
        if real not in seen:
            seen.add(real)
            chosen.append(source / name)
    return chosen


def records(path: Path, stats: collections.Counter) -> Iterator[list[str]]:
    """The records of one cookie file, as lists of lines (overstrike removed)."""
    text = path.read_bytes().decode("utf-8", errors="replace")
    stats["undecodable_chars"] += text.count("\ufffd")
    record: list[str] = []
    for line in OVERSTRIKE.sub("", text).splitlines():
        if line.strip() == "%":
            yield record
            record = []
        else:
            record.append(line)
    if record:
        yield record


def record_segments(lines: list[str]) -> list[str]:
    """Whitespace-collapsed text pieces of one record, without attribution lines (and their
    indented continuation). A short line with no closing punctuation followed by a capitalised
    line (a heading or a verse line) ends a piece, so it is not glued to the next sentence."""
    kept, in_attribution = [], False
    for line in lines:
        if ATTRIBUTION.match(line):
            in_attribution = True
        elif in_attribution and line[:1].isspace() and line.strip():
            continue
        else:
            in_attribution = False
            kept.append(" ".join(line.split()))
    segments, current = [], []
    for line, following in zip(kept, kept[1:] + [""]):
        current.append(line)
        if not line or (len(line) < HEADING_MAX and line[-1].isalnum() and following[:1].isupper()):
            segments.append(" ".join(current).strip())
            current = []
    segments.append(" ".join(current).strip())
    return [s for s in segments if s]


def split_sentences(text: str) -> list[str]:
    """Split at . ! ? followed by space and a capital, except after common abbreviations/initials."""
    sentences, start = [], 0
    for match in SENTENCE_END.finditer(text):
        if text[match.start()] == ".":
            last_word = text[start : match.start()].split()[-1:] or [""]
            word = last_word[0].lower().strip("\"'(")
            if word in ABBREVIATIONS or re.fullmatch(r"[a-z]", word):
                continue
        sentences.append(text[start : match.end()].strip())
        start = match.end()
    sentences.append(text[start:].strip())
    return [s for s in sentences if s]


def reject_reason(sentence: str) -> str | None:
    """Why a sentence is dropped, or None to keep it."""
    if not 3 <= len(sentence.split()) <= 30:
        return "word_count"
    if not PROSE.fullmatch(sentence):
        return "not_prose"
    if sentence.count('"') % 2:
        return "unbalanced_quotes"
    if len(SHOUT.findall(sentence)) > 1:
        return "all_caps"
    if SPEAKER.match(sentence):
        return "speaker_line"
    if VERSE_JOIN.search(sentence):
        return "verse_join"
    return None


def dedup_key(sentence: str) -> str:
    return " ".join(re.findall(r"[a-z0-9']+", sentence.casefold()))


def collect(source: Path, stats: collections.Counter) -> list[str]:
    """All kept sentences of `source`, de-duplicated, in file/record order."""
    sentences, seen = [], set()
    for path in cookie_files(source):
        stats["files"] += 1
        for record in records(path, stats):
            stats["records"] += 1
            for sentence in (s for seg in record_segments(record) for s in split_sentences(seg)):
                reason = reject_reason(sentence)
                key = dedup_key(sentence)
                if reason is None and key in seen:
                    reason = "duplicate"
                stats[f"dropped_{reason}" if reason else "kept"] += 1
                if reason is None:
                    seen.add(key)
                    sentences.append(sentence)
    return sentences


def write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def copy_fixture(out: Path) -> None:
    for name in SPLIT_FILES:
        target = out / name
        if not (target.exists() and target.samefile(FIXTURE_DIR / name)):
            shutil.copyfile(FIXTURE_DIR / name, target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for train.txt and heldout.txt")
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="Debian fortunes folder")
    parser.add_argument("--max-sentences", type=int, default=6400, help="uniform sample size (0: all)")
    parser.add_argument("--heldout-fraction", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.source.is_dir():
        copy_fixture(args.out)
        print(f"{args.source} not found (install the Debian fortunes packages to rebuild); "
              f"copied {', '.join(SPLIT_FILES)} from {FIXTURE_DIR} to {args.out}")
        return
    stats: collections.Counter = collections.Counter()
    sentences = collect(args.source, stats)
    random.Random(args.seed).shuffle(sentences)
    if args.max_sentences:
        sentences = sentences[: args.max_sentences]
    n_heldout = max(1, round(len(sentences) * args.heldout_fraction))
    heldout, train = sentences[:n_heldout], sentences[n_heldout:]
    write_lines(args.out / "train.txt", train)
    write_lines(args.out / "heldout.txt", heldout)
    print(", ".join(f"{key}={value}" for key, value in sorted(stats.items())))
    print(f"available={stats['kept']} written: train={len(train)} heldout={len(heldout)} to {args.out}")


if __name__ == "__main__":
    main()
