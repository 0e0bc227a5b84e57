"""Build LibriSpeech manifests: DIR/train.jsonl and DIR/heldout.jsonl (path, text, speaker, duration).

    python recipes/librispeech/prepare.py --out DIR --source ROOT [--train-split train-clean-100]
        [--heldout-split dev-clean] [--max-train N] [--max-heldout N]
    python recipes/librispeech/prepare.py --out DIR --hub [--hub-config clean] [--train-split train.100]
        [--heldout-split validation] [--max-train N] [--max-heldout N]

--source reads a local copy laid out like the released archives (ROOT/<split>/<speaker>/<chapter>/ with
<speaker>-<chapter>.trans.txt beside the FLAC files). --hub reads `openslr/librispeech_asr` through
`datasets` (audio decoded with soundfile, written to DIR/audio/<split>/). Audio files without a transcript
line, transcript lines without audio, malformed lines and unreadable files are listed in DIR/skipped.txt and
counted on stdout. --max-* keep N utterances spread evenly over a split (every k-th by utterance id, so most
speakers keep some), for quick runs.
Recipes are scripts, not a package: nothing imports this file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from seqae.data.corpora import CorpusError, librispeech_folder, librispeech_hub
from seqae.data.manifest import SkipReport, write_manifest


def spread(rows: list, limit: int | None) -> list:
    """Up to `limit` rows taken evenly across the list, in order."""
    if limit is None or len(rows) <= limit:
        return rows
    return [rows[i * len(rows) // limit] for i in range(limit)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for train.jsonl and heldout.jsonl")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--source", type=Path, help="local LibriSpeech folder (holding train-clean-100/ ...)")
    source.add_argument("--hub", action="store_true", help="read openslr/librispeech_asr from the hub")
    parser.add_argument("--hub-config", default="clean", help="hub configuration: clean, other or all")
    parser.add_argument("--train-split", help="default: train-clean-100 (local) or train.100 (hub)")
    parser.add_argument("--heldout-split", help="default: dev-clean (local) or validation (hub)")
    parser.add_argument("--max-train", type=int, help="keep N training utterances spread over the split")
    parser.add_argument("--max-heldout", type=int, help="keep N held-out utterances spread over the split")
    args = parser.parse_args()
    splits = {"train": args.train_split or ("train.100" if args.hub else "train-clean-100"),
              "heldout": args.heldout_split or ("validation" if args.hub else "dev-clean")}
    limits = {"train": args.max_train, "heldout": args.max_heldout}
    args.out.mkdir(parents=True, exist_ok=True)
    skips = SkipReport()
    lines = []
    try:
        for name, split in splits.items():
            before = skips.num_skipped
            if args.hub:
                rows = librispeech_hub(split, args.out / "audio" / split, skips=skips, config=args.hub_config,
                                       limit=limits[name])
            else:
                rows = spread(librispeech_folder(args.source, split, skips=skips), limits[name])
            if not rows:
                raise CorpusError(f"{split}: no usable utterances ({skips.num_skipped - before} skipped)")
            write_manifest(rows, args.out / f"{name}.jsonl")
            speakers = len({r.speaker for r in rows})
            lines.append(f"{name} ({split}): {len(rows)} utterances, {speakers} speakers, "
                         f"{sum(r.duration or 0 for r in rows) / 3600:.2f} h; {skips.num_skipped - before} skipped")
    except CorpusError as err:
        sys.exit(f"prepare.py: {err}")
    (args.out / "skipped.txt").write_text(skips.summary() + "\n", encoding="utf-8")
    print("\n".join(lines))
    print(f"{skips.num_skipped} problems listed in {args.out / 'skipped.txt'}")


if __name__ == "__main__":
    main()
