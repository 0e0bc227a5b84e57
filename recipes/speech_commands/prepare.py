"""Build Speech Commands manifests: DIR/train.jsonl and DIR/heldout.jsonl (path, label, speaker, duration).

    python recipes/speech_commands/prepare.py --out DIR --source ROOT [--heldout-split validation]
        [--labels yes,no,...] [--max-train N] [--max-heldout N]
    python recipes/speech_commands/prepare.py --out DIR --hub [--hub-config v0.02] [...]

--source reads a local copy laid out like the released archive (ROOT/<label>/<speaker>_nohash_<n>.wav, with
validation_list.txt and testing_list.txt naming the validation and test files; everything else is training
data; _background_noise_ is left out). --hub reads `google/speech_commands` through `datasets` (audio decoded
with soundfile, written to DIR/audio/<split>/). Problems (badly named or unreadable files, list entries naming
no file) are listed in DIR/skipped.txt and counted on stdout. --labels keeps only those words; --max-* keep an
evenly spread sample of N utterances (every k-th row by path), for quick runs.
Recipes are scripts, not a package: nothing imports this file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from seqae.data.corpora import CorpusError, speech_commands_folder, speech_commands_hub
from seqae.data.manifest import SkipReport, write_manifest


def spread(rows: list, limit: int | None) -> list:
    """Up to `limit` rows taken evenly across the list (so every label keeps some), in order."""
    if limit is None or len(rows) <= limit:
        return rows
    return [rows[i * len(rows) // limit] for i in range(limit)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for train.jsonl and heldout.jsonl")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--source", type=Path, help="local Speech Commands folder")
    source.add_argument("--hub", action="store_true", help="read google/speech_commands from the hub")
    parser.add_argument("--hub-config", default="v0.02", help="hub configuration: v0.01 or v0.02")
    parser.add_argument("--heldout-split", default="validation", choices=("validation", "test"))
    parser.add_argument("--labels", help="comma-separated words to keep (default: all)")
    parser.add_argument("--max-train", type=int, help="keep N training utterances spread over the split")
    parser.add_argument("--max-heldout", type=int, help="keep N held-out utterances spread over the split")
    args = parser.parse_args()
    keep = set(args.labels.split(",")) if args.labels else None
    splits = {"train": "train", "heldout": args.heldout_split}
    limits = {"train": args.max_train, "heldout": args.max_heldout}
    args.out.mkdir(parents=True, exist_ok=True)
    skips = SkipReport()
    lines = []
    try:
        for name, split in splits.items():
            before = skips.num_skipped
            if args.hub:
                rows = speech_commands_hub(split, args.out / "audio" / split, skips=skips, config=args.hub_config,
                                           limit=limits[name] if keep is None else None)
            else:
                rows = speech_commands_folder(args.source, split, skips=skips)
            rows = spread([r for r in rows if keep is None or r.label in keep], limits[name])
            if not rows:
                raise CorpusError(f"{split}: no usable utterances ({skips.num_skipped - before} skipped)")
            write_manifest(rows, args.out / f"{name}.jsonl")
            lines.append(f"{name} ({split}): {len(rows)} utterances, {len({r.label for r in rows})} labels, "
                         f"{len({r.speaker for r in rows})} speakers; {skips.num_skipped - before} skipped")
    except CorpusError as err:
        sys.exit(f"prepare.py: {err}")
    (args.out / "skipped.txt").write_text(skips.summary() + "\n", encoding="utf-8")
    print("\n".join(lines))
    print(f"{skips.num_skipped} problems listed in {args.out / 'skipped.txt'}")


if __name__ == "__main__":
    main()
