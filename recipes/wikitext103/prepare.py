"""WikiText-103 to one sentence a line: DIR/train.txt and DIR/heldout.txt.

    python recipes/wikitext103/prepare.py --out DIR [--source Salesforce/wikitext | LOCAL_DIR] [--max-sentences N]

--source is the hub dataset `Salesforce/wikitext` (config wikitext-103-raw-v1; needs the network or a warm cache)
or a local folder holding the same files laid out as on the hub:
`LOCAL_DIR/wikitext-103-raw-v1/{train,validation,test}-XXXXX-of-XXXXX.parquet` (column `text`). Both go through
the same loader (seqae.data.text.load_text_lines). Headings (` = Title = `) are dropped, the raw files'
`@-@`, `@,@`, `@.@` joins are undone, paragraphs are split into sentences and sentences of 3-40 words kept.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from seqae.data.text import load_text_lines

CONFIG = "wikitext-103-raw-v1"
HEADING = re.compile(r"^=+ .* =+$")
JOINS = {" @-@ ": "-", " @,@ ": ",", " @.@ ": "."}
SENTENCE_END = re.compile(r"(?<=[.!?]) (?=[A-Z\"'])")


def sentences(lines: list[str], *, min_words: int = 3, max_words: int = 40) -> tuple[list[str], int, int]:
    """Split paragraphs into sentences; returns (kept, headings dropped, sentences out of the word range)."""
    kept, headings, out_of_range = [], 0, 0
    for line in lines:
        if HEADING.match(line):
            headings += 1
            continue
        for old, new in JOINS.items():
            line = line.replace(old, new)
        for sentence in SENTENCE_END.split(line):
            if min_words <= len(sentence.split()) <= max_words:
                kept.append(sentence.strip())
            else:
                out_of_range += 1
    return kept, headings, out_of_range


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--source", default="Salesforce/wikitext", help="hub name or a local folder of the same files")
    parser.add_argument("--max-sentences", type=int, default=200_000, help="first N training sentences (0: all)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for split, name in (("train", "train.txt"), ("validation", "heldout.txt")):
        lines, stats = load_text_lines(args.source, split=split, hub_config=CONFIG)
        kept, headings, out_of_range = sentences(lines)
        if split == "train" and args.max_sentences:
            kept = kept[: args.max_sentences]
        (args.out / name).write_text("".join(s + "\n" for s in kept), encoding="utf-8")
        print(f"{split}: {stats.lines_read} lines read ({stats.empty_skipped} empty skipped), {headings} headings "
              f"dropped, {out_of_range} sentences outside 3-40 words skipped, {len(kept)} written to {args.out / name}")


if __name__ == "__main__":
    main()
