"""Build the WordNet corpus: glosses and example sentences of WordNet 3.0 (Debian's `wordnet-base`), with a held-out
split.

    python recipes/wordnet/prepare.py --out DIR [--source /usr/share/wordnet] [--heldout 2000] [--seed 0]

Each synset line of `data.{noun,verb,adj,adv}` ends with `| gloss; "example"; "example"`: the gloss (the text
before the first quoted example) and every quoted example become sentences. Licence header lines (they start with
two spaces) are skipped. Sentences are deduplicated, shuffled with `--seed`, and the first `--heldout` go to
heldout.txt, the rest to train.txt (one a line), so no held-out sentence is also a training one. Prints the counts.
Recipes are scripts: nothing imports this.
"""

from __future__ import annotations

import argparse
import random
import re
from pathlib import Path

PARTS = ("noun", "verb", "adj", "adv")
QUOTED = re.compile(r'"([^"]+)"')


def sentences_of(line: str) -> list[str]:
    """The gloss and the quoted examples of one synset line (none for a header or a line without a gloss)."""
    if line.startswith("  ") or " | " not in line:
        return []
    text = line.split(" | ", 1)[1].strip()
    first_quote = text.find('"')
    gloss = (text if first_quote < 0 else text[:first_quote]).strip().rstrip(";").strip()
    examples = [m.strip() for m in QUOTED.findall(text)]
    return [s for s in [gloss, *examples] if s]


def read_wordnet(source: Path) -> tuple[list[str], dict[str, int]]:
    """Every gloss and example of the four data files, in file order, and how many came from each file."""
    out, counts = [], {}
    for part in PARTS:
        path = source / f"data.{part}"
        if not path.is_file():
            raise SystemExit(f"{path}: not found (install Debian's wordnet-base, or give --source DIR)")
        found = [s for line in path.read_text(encoding="latin-1").splitlines() for s in sentences_of(line)]
        counts[part] = len(found)
        out += found
    return out, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for train.txt and heldout.txt")
    parser.add_argument("--source", type=Path, default=Path("/usr/share/wordnet"), help="WordNet's dict folder")
    parser.add_argument("--heldout", type=int, default=2000, help="sentences held out")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    found, counts = read_wordnet(args.source)
    unique = list(dict.fromkeys(found))
    random.Random(args.seed).shuffle(unique)
    if len(unique) <= args.heldout:
        raise SystemExit(f"{args.source}: {len(unique)} distinct sentences, not more than --heldout {args.heldout}")
    args.out.mkdir(parents=True, exist_ok=True)
    heldout, train = unique[: args.heldout], unique[args.heldout:]
    (args.out / "heldout.txt").write_text("".join(s + "\n" for s in heldout), encoding="utf-8")
    (args.out / "train.txt").write_text("".join(s + "\n" for s in train), encoding="utf-8")
    print(f"wordnet: {sum(counts.values())} glosses and examples ({', '.join(f'{k} {v}' for k, v in counts.items())}), "
          f"{len(unique)} distinct: {len(train)} train, {len(heldout)} held out -> {args.out}")


if __name__ == "__main__":
    main()
