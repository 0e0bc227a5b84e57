"""Build German-English sentence pairs from Debian's `trans-de-en` (the Ding dictionary) for de->en fine-tuning.

    python recipes/trans_de_en/prepare.py --out DIR [--source /usr/share/trans/de-en | --pairs FILE]
        [--test 500] [--heldout 500] [--max-pairs N] [--seed 0]

Dictionary lines are `German :: English`; each side holds alternatives separated by ` | `, aligned by position,
and each alternative holds variants separated by `; `. An aligned alternative is a candidate pair when both of
its first variants are sentences: 3-25 words, a capital first letter, a final . ! or ?, no dictionary
placeholders (etw. jdm. sth. sb. ...), no `/` choices, no parentheses, no ellipsis; `{...}` and `[...]`
annotations are removed and typographic apostrophes become '. Pairs are de-duplicated by their German side
(case-insensitively), shuffled with --seed and split into test, heldout and train (the rest).

With --pairs FILE (one `German<TAB>English` pair a line), that file is split instead of the dictionary.

Output (UTF-8): DIR/{train,heldout,test}.tsv (`German<TAB>English`), DIR/{train,heldout}.de.txt (the German sides,
the unlabelled text for pretraining) and DIR/prepare.json (counts per filter). The dictionary is GPL-2+: build
the pairs at recipe time, never commit them. Recipes are scripts, not a package: nothing imports this file.
"""

from __future__ import annotations

import argparse
import collections
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


def file_pairs(path: Path, stats: collections.Counter) -> list[tuple[str, str]]:
    """Pairs of a `German<TAB>English` file; a malformed line stops with its number."""
    pairs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not all(p.strip() for p in parts):
            sys.exit(f"{path}:{number}: expected 'German<TAB>English', got {line[:80]!r}")
        pairs.append((parts[0].strip(), parts[1].strip()))
        stats["lines"] += 1
    return pairs


def dedupe(pairs: list[tuple[str, str]], stats: collections.Counter) -> list[tuple[str, str]]:
    seen, out = set(), []
    for de, en in pairs:
        key = re.sub(r"\W+", " ", de.lower()).strip()
        if key in seen:
            stats["duplicates"] += 1
            continue
        seen.add(key)
        out.append((de, en))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="the Ding dictionary file")
    parser.add_argument("--pairs", type=Path, help="split this German<TAB>English file instead")
    parser.add_argument("--test", type=int, default=500, help="pairs in test.tsv")
    parser.add_argument("--heldout", type=int, default=500, help="pairs in heldout.tsv")
    parser.add_argument("--max-pairs", type=int, help="use only this many pairs in all (after shuffling)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    stats: collections.Counter = collections.Counter()
    if args.pairs is not None:
        if not args.pairs.is_file():
            sys.exit(f"--pairs {args.pairs}: file not found")
        pairs = file_pairs(args.pairs, stats)
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
        (args.out / f"{name}.tsv").write_text("".join(f"{de}\t{en}\n" for de, en in split), encoding="utf-8")
        if name != "test":
            (args.out / f"{name}.de.txt").write_text("".join(f"{de}\n" for de, _ in split), encoding="utf-8")
    report = {"source": str(args.pairs or args.source), "seed": args.seed, **dict(sorted(stats.items())),
              "pairs": len(pairs), **{f"{k}_pairs": len(v) for k, v in splits.items()}}
    (args.out / "prepare.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {', '.join(f'{len(v)} {k}' for k, v in splits.items())} pairs to {args.out}")


if __name__ == "__main__":
    main()
