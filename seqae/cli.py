"""The `seqae` command line. Errors the user can fix print one line and exit with status 2."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from seqae.config import ConfigError


def _read_sentences(args: argparse.Namespace) -> list[str]:
    sentences = list(args.sentences or [])
    if args.file:
        path = Path(args.file)
        if not path.is_file():
            raise ConfigError(f"{path}: file not found")
        sentences += path.read_text(encoding="utf-8").splitlines()
    return sentences


def cmd_pretrain(args: argparse.Namespace) -> None:
    from seqae.config import load_config
    from seqae.train import pretrain

    config = load_config(args.config, args.set)
    run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / Path(args.config).stem
    metrics = pretrain(config, run_dir)
    print(json.dumps(metrics, indent=2))
    print(f"run directory: {run_dir}")


def cmd_reconstruct(args: argparse.Namespace) -> None:
    from seqae.runs import load_run

    run = load_run(args.run_dir)
    sentences = _read_sentences(args)
    if not sentences:
        raise ConfigError("reconstruct: give sentences as arguments or --file")
    for src, out in zip(sentences, run.reconstruct(sentences, beam_size=args.beam)):
        mark = "=" if src.strip() == out.strip() else "≠"
        print(f"{src}\n  {mark} {out}")


def cmd_encode(args: argparse.Namespace) -> None:
    import numpy as np

    from seqae.runs import load_run

    path = Path(args.input)
    if not path.is_file():
        raise ConfigError(f"{path}: input file not found")
    sentences = path.read_text(encoding="utf-8").splitlines()
    z = load_run(args.run_dir).encode(sentences).numpy()
    np.save(args.output, z)
    print(f"wrote {args.output}: {z.shape[0]} vectors of width {z.shape[1]} (row i is line i + 1 of {path})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqae", description="Sequence autoencoders for speech and text.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("pretrain", help="pretrain (or resume) an autoencoder from a YAML config")
    p.add_argument("config", help="YAML config file (only the values that differ from the defaults)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. train.lr=1e-3")
    p.add_argument("--run-dir", help="run directory (default runs/<config name>); an existing one is resumed")
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser("reconstruct", help="encode sentences to z and decode them back")
    p.add_argument("run_dir")
    p.add_argument("sentences", nargs="*")
    p.add_argument("--file", help="a text file, one sentence per line")
    p.add_argument("--beam", type=int, default=1, help="beam size (1: greedy)")
    p.set_defaults(func=cmd_reconstruct)

    p = sub.add_parser("encode", help="write z for each line of a text file to a .npy array")
    p.add_argument("run_dir")
    p.add_argument("input")
    p.add_argument("output")
    p.set_defaults(func=cmd_encode)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ConfigError, FileNotFoundError) as err:
        print(f"seqae {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
