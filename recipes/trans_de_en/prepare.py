"""Build German-English sentence pairs from Debian's `trans-de-en` (the Ding dictionary) for de->en fine-tuning,
and the monolingual corpora that pretrain the two autoencoders.

    python recipes/trans_de_en/prepare.py --out DIR [--source /usr/share/trans/de-en | --pairs FILE]
        [--source-column 0 --target-column 1] [--target-text FILE ...] [--test 500] [--heldout 500]
        [--max-pairs N] [--seed 0]

Dictionary lines are `German :: English`; each side holds alternatives separated by ` | `, aligned by position,
and each alternative holds variants separated by `; `. An aligned alternative is a candidate pair when both of
its first variants are sentences: 3-25 words, a capital first letter, a final . ! or ?, no dictionary
placeholders (etw. jdm. sth. sb. ...), no `/` choices, no parentheses, no ellipsis; `{...}` and `[...]`
annotations are removed and typographic apostrophes become '. Pairs are de-duplicated by their German side
(case-insensitively), shuffled with --seed and split into test, heldout and train (the rest).

With --pairs FILE (one `source<TAB>target` pair a line, `.gz` read transparently; --source-column and
--target-column pick two fields of a wider TSV), that file is split instead of the dictionary (any language pair).

Output (UTF-8): DIR/{train,heldout,test}.tsv (`source<TAB>target`), DIR/{train,heldout}.{source,target}.txt (each
side alone), the monolingual pretraining corpora DIR/pretrain.source.txt (the training sources) and
DIR/pretrain.target.txt (the training targets, then each --target-text file: more text of the target language),
and DIR/prepare.json (counts per filter). Pretraining never sees a test or heldout pair: a corpus line equal to
any test or heldout sentence of its language (compared case- and punctuation-insensitively) is dropped and
counted. The dictionary is GPL-2+: build the pairs at recipe time, never commit them. Recipes are scripts, not a
package: nothing imports this file.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import random
import re
import sys
from pathlib import Path

DEFAULT_SOURCE = Path("/usr/share/trans/de-en")
ANNOTATION = re.compile(r"\s*(\{[^}]*\}|\[[^\]]*\])")
PLACEHOLDER = re.compile(r"\b(etw|jdm|jdn|jds|jd|sth|sb)\.|…|\.\.\.|/|\(|\)|\t")
SENTENCE = re.compile(r"[A-ZÄÖÜ\"'].*[.!?][\"']?")
APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201e": '"', "\u201c": '"', "\u201d": '"'})


def clean(text: str) -> str:
    """First variant, annotations removed, apostrophes and quotes made plain, spaces collapsed."""
    first = ANNOTATION.sub("", text.split("; ")[0]).translate(APOSTROPHES)
    return " ".join(first.split())


def is_sentence(text: str) -> bool:
    return bool(SENTENCE.fullmatch(text)) and 3 <= len(text.split()) <= 25 and not PLACEHOLDER.search(text)


def dictionary_pairs(source: Path, stats: collections.Counter) -> list[tuple[str, str]]:
    """Candidate (German, English) sentence pairs of the dictionary file, in file order."""
    pairs = []
    for line in source.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        stats["lines"] += 1
        sides = line.split(" :: ")
        if len(sides) != 2:
            stats["lines_without_one_separator"] += 1
            continue
        german, english = (side.split(" | ") for side in sides)
        if len(german) != len(english):
            stats["lines_with_unaligned_alternatives"] += 1
            continue
        for de, en in zip(german, english):
            stats["alternatives"] += 1
            de, en = clean(de), clean(en)
            if is_sentence(de) and is_sentence(en):
                pairs.append((de, en))
            else:
                stats["alternatives_not_sentences"] += 1
    return pairs


def file_pairs(path: Path, stats: collections.Counter, source_column: int = 0, target_column: int = 1
               ) -> list[tuple[str, str]]:
    """Pairs of a `source<TAB>target` file (seqae's reader: `.gz`, column choice); a malformed line stops with its
    number and the reason."""
    from seqae.config import ConfigError
    from seqae.data.bitext import read_pairs

    try:
        pairs, counts = read_pairs(str(path), "--pairs", strict=True, source_column=source_column,
                                   target_column=target_column, column_keys=("--source-column", "--target-column"))
    except ConfigError as err:
        sys.exit(str(err))
    stats["lines"] += counts["pairs"]
    return pairs


def key(text: str) -> str:
    """What two sentences share when they are the same sentence (case and punctuation aside)."""
    return re.sub(r"\W+", " ", text.lower()).strip()


def read_lines(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def corpus(lines: list[str], banned: set[str], name: str, stats: collections.Counter) -> list[str]:
    """`lines` less those equal to a banned (test or heldout) sentence, counted under `name`."""
    kept = [line for line in lines if key(line) not in banned]
    stats[f"{name}_lines_dropped_as_test_or_heldout"] += len(lines) - len(kept)
    return kept


def dedupe(pairs: list[tuple[str, str]], stats: collections.Counter) -> list[tuple[str, str]]:
    seen, out = set(), []
    for de, en in pairs:
        k = key(de)
        if k in seen:
            stats["duplicates"] += 1
            continue
        seen.add(k)
        out.append((de, en))
    return out


def write(path: Path, lines: list[str]) -> None:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="the Ding dictionary file")
    parser.add_argument("--pairs", type=Path, help="split this source<TAB>target file instead (.gz read too)")
    parser.add_argument("--source-column", type=int, default=0, help="--pairs: 0-based field of the source")
    parser.add_argument("--target-column", type=int, default=1, help="--pairs: 0-based field of the target")
    parser.add_argument("--target-text", type=Path, action="append", default=[],
                        help="more monolingual text of the target language for pretraining (one sentence a line; "
                             "repeatable)")
    parser.add_argument("--test", type=int, default=500, help="pairs in test.tsv")
    parser.add_argument("--heldout", type=int, default=500, help="pairs in heldout.tsv")
    parser.add_argument("--max-pairs", type=int, help="use only this many pairs in all (after shuffling)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    stats: collections.Counter = collections.Counter()
    if args.pairs is not None:
        if not args.pairs.is_file():
            sys.exit(f"--pairs {args.pairs}: file not found")
        pairs = file_pairs(args.pairs, stats, args.source_column, args.target_column)
    elif args.source.is_file():
        pairs = dictionary_pairs(args.source, stats)
    else:
        sys.exit(f"{args.source}: not found. Install Debian's trans-de-en (apt-get install trans-de-en), give "
                 "--source FILE, or give --pairs FILE (one German<TAB>English pair a line)")
    pairs = dedupe(pairs, stats)
    random.Random(args.seed).shuffle(pairs)
    if args.max_pairs is not None:
        pairs = pairs[: args.max_pairs]
    if len(pairs) < args.test + args.heldout + 1:
        sys.exit(f"only {len(pairs)} pairs: not enough for --test {args.test} and --heldout {args.heldout} plus "
                 "training pairs")
    splits = {"test": pairs[: args.test], "heldout": pairs[args.test: args.test + args.heldout],
              "train": pairs[args.test + args.heldout:]}
    args.out.mkdir(parents=True, exist_ok=True)
    for name, split in splits.items():
        (args.out / f"{name}.tsv").write_text("".join(f"{src}\t{tgt}\n" for src, tgt in split), encoding="utf-8")
        if name != "test":
            for side, column in (("source", 0), ("target", 1)):
                write(args.out / f"{name}.{side}.txt", [pair[column] for pair in split])
    unseen = splits["test"] + splits["heldout"]
    for side, column in (("source", 0), ("target", 1)):
        banned = {key(pair[column]) for pair in unseen}
        lines = corpus([pair[column] for pair in splits["train"]], banned, f"train_{side}", stats)
        for extra in args.target_text if side == "target" else []:
            if not extra.is_file():
                sys.exit(f"--target-text {extra}: file not found")
            lines += corpus(read_lines(extra), banned, f"target_text_{extra.name}", stats)
        write(args.out / f"pretrain.{side}.txt", lines)
        stats[f"pretrain_{side}_lines"] = len(lines)
    report = {"source": str(args.pairs or args.source), "seed": args.seed, **dict(sorted(stats.items())),
              "pairs": len(pairs), **{f"{k}_pairs": len(v) for k, v in splits.items()},
              "target_text": [str(p) for p in args.target_text]}
    (args.out / "prepare.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {', '.join(f'{len(v)} {k}' for k, v in splits.items())} pairs to {args.out}")


if __name__ == "__main__":
    main()
