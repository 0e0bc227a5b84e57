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


def _corrupt_tokenizer(args: argparse.Namespace, config):
    from seqae.tokenizer import Tokenizer, train_tokenizer

    for candidate in (args.tokenizer, config.tokenizer.path, Path("runs") / Path(args.config).stem / "tokenizer.model"):
        if candidate and Path(candidate).is_file():
            return Tokenizer.load(candidate)
    import tempfile

    from seqae.data.text import load_text_lines

    lines, _ = load_text_lines(config.data.train, split=config.data.train_split, text_column=config.data.text_column,
                               hub_config=config.data.hub_config, encoding_errors="replace")
    print(f"(no tokenizer given: trained one on {config.data.train}, vocab {config.tokenizer.vocab_size})")
    return train_tokenizer(lines, Path(tempfile.mkdtemp()) / "tokenizer", vocab_size=config.tokenizer.vocab_size,
                           model_type=config.tokenizer.model_type, seed=config.train.seed)


def cmd_corrupt(args: argparse.Namespace) -> None:
    import torch

    from seqae.config import load_config
    from seqae.tasks.text import build_noise

    config = load_config(args.config, args.set)
    if config.task != "text":
        raise ConfigError(f"{args.config}: corrupt shows token noises; task is {config.task!r}")
    pipeline = build_noise(config.noise, "tokens")
    if pipeline is None:
        raise ConfigError(f"{args.config}: the config lists no noise (add a 'noise:' list)")
    tok = _corrupt_tokenizer(args, config)
    pieces = lambda ids: " ".join(tok.id_to_piece(int(i)) for i in ids)  # noqa: E731
    print(f"pipeline: {pipeline.describe()}")
    context = {"vocab_size": tok.vocab_size, "word_start": tok.word_start_mask()}
    for text in args.text:
        seq = torch.tensor([tok.bos_id, *tok.encode(text), tok.eos_id])
        print(f"\ninput : {pieces(seq)}")
        for epoch in range(args.samples):
            inputs, targets = pipeline(seq, seed=config.train.seed, epoch=epoch, index=0, **context)
            print(f"epoch {epoch}: {pieces(inputs)}")
            if not torch.equal(targets, seq):
                print(f"  target: {pieces(targets)}")


def cmd_export(args: argparse.Namespace) -> None:
    from seqae.export import ExportError, export_run

    try:
        out = export_run(args.run_dir, args.out_dir, onnx=args.onnx, overwrite=args.force)
    except ExportError as err:
        raise ConfigError(str(err)) from None
    files = ", ".join(sorted(p.name for p in out.iterdir()))
    print(f"exported the encoder of {args.run_dir} to {out}: {files}")
    print(f'load it with: seqae.load_encoder("{out}")')


def cmd_finetune(args: argparse.Namespace) -> None:
    from seqae.finetune import finetune_command

    metrics, run_dir = finetune_command(args.task, args.config, args.set, args.run_dir)
    print(json.dumps(metrics, indent=2))
    print(f"run directory: {run_dir}")


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

    p = sub.add_parser("corrupt", help="show what a config's noise pipeline does to sentences")
    p.add_argument("config")
    p.add_argument("--text", action="append", required=True, help="a sentence (repeatable)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--tokenizer", help="SentencePiece model (default: the config's, or runs/<config>/tokenizer.model)")
    p.add_argument("--samples", type=int, default=3, help="epochs to draw the noise for")
    p.set_defaults(func=cmd_corrupt)

    p = sub.add_parser("export", help="write a run's encoder (weights, front end, model card) to a directory")
    p.add_argument("run_dir")
    p.add_argument("out_dir")
    p.add_argument("--onnx", action="store_true", help="also write encoder.onnx, checked against PyTorch")
    p.add_argument("--force", action="store_true", help="replace an earlier export in out_dir")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("finetune", help="fine-tune an exported encoder (or the same architecture from scratch)")
    p.add_argument("task", choices=("asr", "translate"), help="asr: CTC over characters; translate: seq2seq")
    p.add_argument("config", help="fine-tuning YAML config (seqae/finetune/config.py lists every key)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. encoder=null")
    p.add_argument("--run-dir", help="run directory (default runs/<config name>); an existing one is resumed")
    p.set_defaults(func=cmd_finetune)
    return parser


def main(argv: list[str] | None = None) -> int:
    from seqae.audio import AudioError
    from seqae.checkpoint import CheckpointError
    from seqae.data.text import CorpusError
    from seqae.train import TrainingError

    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ConfigError, FileNotFoundError, CorpusError, AudioError, CheckpointError) as err:
        print(f"seqae {args.command}: error: {err}", file=sys.stderr)
        return 2
    except TrainingError as err:
        print(f"seqae {args.command}: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
