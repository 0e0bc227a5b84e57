"""The `seqae` command line. Errors the user can fix print one line and exit with status 2; a training run
stopped by SIGINT/SIGTERM exits with 128 + the signal's number after its checkpoint."""

from __future__ import annotations

import argparse
import json
import signal
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


def _exit_status(metrics: dict) -> int:
    """0 for a finished run; 128 + the signal's number for one a signal stopped (130 SIGINT, 143 SIGTERM), as a
    shell reports a command the signal killed, so `set -e` scripts stop before reading metrics.json."""
    stopped = metrics.get("stopped")
    return 128 + signal.Signals[stopped].value if stopped else 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    from seqae.config import load_config
    from seqae.train import pretrain

    config = load_config(args.config, args.set)
    run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / Path(args.config).stem
    metrics = pretrain(config, run_dir)
    print(json.dumps(metrics, indent=2))
    print(f"run directory: {run_dir}")
    return _exit_status(metrics)


def cmd_reconstruct(args: argparse.Namespace) -> None:
    from seqae.runs import load_run

    run = load_run(args.run_dir)
    if run.task == "speech":
        return _reconstruct_audio(run, args)
    if args.out or args.audio:
        raise ConfigError("reconstruct: --out and --audio are for speech runs; a text run prints its reconstructions")
    sentences = _read_sentences(args)
    if not sentences:
        raise ConfigError("reconstruct: give sentences as arguments or --file")
    for src, out in zip(sentences, run.reconstruct(sentences, beam_size=args.beam)):
        mark = "=" if src.strip() == out.strip() else "≠"
        print(f"{src}\n  {mark} {out}")


def _reconstruct_audio(run, args: argparse.Namespace) -> None:
    """Speech runs: audio files (arguments) or a manifest/folder (--file) -> PNGs (and WAVs with --audio)."""
    from seqae.apps.speech import write_reconstructions

    if bool(args.sentences) == bool(args.file):
        raise ConfigError("reconstruct: a speech run takes audio files as arguments, or --file MANIFEST_OR_FOLDER")
    out = Path(args.out or "reconstructions")
    try:
        written = write_reconstructions(run, args.file or args.sentences, out, audio=args.audio)
    except ValueError as err:
        raise ConfigError(f"reconstruct: {err}") from None
    for item in written:
        wavs = f" and {', '.join(str(w) for w in item['wavs'])}" if item["wavs"] else ""
        print(f"{item['png']}{wavs}: {item['frames']} frames, rebuilt from z: {item['rebuilt_frames']}")


def cmd_encode(args: argparse.Namespace) -> None:
    import numpy as np

    from seqae.runs import load_run

    run = load_run(args.run_dir)
    path = Path(args.input)
    if not path.exists():
        raise ConfigError(f"{path}: input not found")
    if run.task == "speech":  # strict: rows must line up with the manifest's, so a bad file stops
        z, what = run.encode(run.features(path, strict=True).features).numpy(), f"row i is utterance i + 1 of {path}"
    else:
        sentences = path.read_text(encoding="utf-8").splitlines()
        z, what = run.encode(sentences).numpy(), f"row i is line i + 1 of {path}"
    np.save(args.output, z)
    print(f"wrote {args.output}: {z.shape[0]} vectors of width {z.shape[1]} ({what})")


def _corrupt_tokenizer(args: argparse.Namespace, config):
    from seqae.frontend.tokenizer import Tokenizer, train_tokenizer

    for candidate in (args.tokenizer, config.tokenizer.path, Path("runs") / Path(args.config).stem / "tokenizer.model"):
        if candidate and Path(candidate).is_file():
            return Tokenizer.load(candidate)
    import tempfile

    from seqae.data.text import load_text_lines

    lines, _ = load_text_lines(config.data.train, split=config.data.train_split, text_column=config.data.text_column,
                               hub_config=config.data.hub_config, encoding_errors="replace")
    print(f"(no tokenizer given: trained one on {config.data.train}, vocab {config.tokenizer.vocab_size})")
    return train_tokenizer(lines, Path(tempfile.mkdtemp()) / "tokenizer", vocab_size=config.tokenizer.vocab_size,
                           model_type=config.tokenizer.model_type,
                           normalization=config.tokenizer.normalization, seed=config.train.seed)


def cmd_corrupt(args: argparse.Namespace) -> None:
    import torch

    from seqae.config import load_config
    from seqae.tasks.text import build_noise

    config = load_config(args.config, args.set)
    pipeline = build_noise(config.noise, "frames" if config.task == "speech" else "tokens")
    if pipeline is None:
        raise ConfigError(f"{args.config}: the config lists no noise (add a 'noise:' list)")
    if config.task == "speech":
        return _corrupt_audio(args, config, pipeline)
    if not args.text:
        raise ConfigError("corrupt: give --text SENTENCE (a text config)")
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


def _corrupt_audio(args: argparse.Namespace, config, pipeline) -> None:
    """Speech configs: the frame noises applied to the features of --audio files, summarised per epoch."""
    from seqae.frontend.audio import load_audio
    from seqae.frontend.features import FeatureExtractor

    if not args.audio:
        raise ConfigError("corrupt: give --audio FILE (a speech config)")
    f = config.features
    extractor = FeatureExtractor.from_config(f)
    print(f"pipeline: {pipeline.describe()}")
    for path in args.audio:
        feats = extractor(load_audio(path, sample_rate=f.sample_rate), source=path)  # (T, F)
        print(f"\n{path}: {feats.shape[0]} frames x {feats.shape[1]} {f.kind} bins")
        for epoch in range(args.samples):
            noisy, corrupted = pipeline(feats, seed=config.train.seed, epoch=epoch, index=0)
            changed = (noisy != feats).any(dim=1)
            print(f"epoch {epoch}: {int(corrupted.sum())}/{len(corrupted)} frames corrupted, "
                  f"{int(changed.sum())} changed, mean |change| {float((noisy - feats).abs().mean()):.3f}")


def cmd_export(args: argparse.Namespace) -> None:
    from seqae.export import ExportError, export_run

    try:
        out = export_run(args.run_dir, args.out_dir, onnx=args.onnx, overwrite=args.force, decoder=args.decoder)
    except ExportError as err:
        raise ConfigError(str(err)) from None
    files = ", ".join(sorted(p.name for p in out.iterdir()))
    print(f"exported the encoder of {args.run_dir} to {out}: {files}")
    print(f'load it with: seqae.load_encoder("{out}")')


def cmd_finetune(args: argparse.Namespace) -> int:
    from seqae.finetune import finetune_command

    metrics, run_dir = finetune_command(args.task, args.config, args.set, args.run_dir)
    print(json.dumps(metrics, indent=2))
    print(f"run directory: {run_dir}")
    return _exit_status(metrics)


def cmd_translate(args: argparse.Namespace) -> None:
    from seqae.finetune.inference import load_translation

    sentences = list(args.sentences)
    if args.file:
        path = Path(args.file)
        if not path.is_file():
            raise ConfigError(f"--file {path}: not found")
        try:
            sentences += [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        except UnicodeDecodeError as err:
            raise ConfigError(f"--file {path}: not UTF-8 ({err})") from None
    if not sentences:
        raise ConfigError("translate: give sentences, or --file FILE with one sentence a line")
    if args.beam is not None and args.beam < 1:
        raise ConfigError(f"--beam: must be >= 1, got {args.beam}")
    run = load_translation(args.run_dir)
    for translation in run.translate(sentences, beam_size=args.beam):
        print(translation)


def cmd_transcribe(args: argparse.Namespace) -> None:
    from seqae.data.manifest import read_manifest
    from seqae.finetune.inference import load_recogniser

    files = [str(p) for p in args.audio]
    if args.manifest:
        try:
            files += [str(row.path) for row in read_manifest(args.manifest)]
        except ValueError as err:
            raise ConfigError(f"--manifest: {err}") from None
    if not files:
        raise ConfigError("transcribe: give audio files, or --manifest FILE (.jsonl/.csv with a path column)")
    run = load_recogniser(args.run_dir)
    for path, text in zip(files, run.transcribe(files)):
        print(f"{path}\t{text}")


def _text_run(args: argparse.Namespace):
    """The run of a verb that works on text runs only (a ConfigError naming the verb for a speech run)."""
    from seqae.runs import load_run, require_text

    return require_text(load_run(args.run_dir), f"seqae {args.command}")


def _cli_error(err: Exception) -> ConfigError:
    return ConfigError(str(err))


def _max_len(value: str) -> int | None | str:
    if value in ("train", "none"):
        return None if value == "none" else value
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"--max-len: a number of frames, 'train' or 'none', got {value!r}")
    return int(value)


def cmd_evaluate(args: argparse.Namespace) -> None:
    from seqae.eval.report import evaluate_run

    try:
        result = evaluate_run(args.run_dir, data=args.data, out=args.out, limit=args.limit, beam_size=args.beam,
                              tsne=not args.no_tsne, max_len=_max_len(args.max_len))
    except ValueError as err:
        raise _cli_error(err) from None
    overall = result["reconstruction"][-1]
    print("reconstruction: " + ", ".join(f"{k} {v:.4g}" for k, v in overall.items()
                                         if isinstance(v, float)) + f" ({result['items']} items)")
    for kind, m in result["embeddings"].items():
        print(f"z by {kind}: " + ", ".join(f"{k} {v:.4g}" for k, v in m.items() if isinstance(v, float)))
    if isinstance(result.get("truncated"), dict) and result["truncated"]["items"]:
        cut = result["truncated"]
        print(f"{cut['items']} utterances longer than {cut['max_len']} frames were cut to it ({cut['frames_cut']} "
              "frames dropped; --max-len none keeps them whole)")
    print(f"wrote {Path(args.out or result['run']) / 'report.md'} (and report.json, figures)")


def cmd_sweep(args: argparse.Namespace) -> None:
    from seqae.config import load_config
    from seqae.eval.sweep import parse_sizes, sweep

    config = load_config(args.config, args.set)
    out = Path(args.out) if args.out else Path("runs") / f"{Path(args.config).stem}_sweep"
    results = sweep(config, parse_sizes(args.bottleneck), out)
    metric = "token_accuracy" if config.task == "text" else "mse"
    for r in results:
        overall = r["by_length"][-1]
        print(f"bottleneck {r['bottleneck']}: {metric} {overall[metric]:.4g} ({overall['sequences']} items)")
    print(f"wrote {out / 'sweep.md'}, sweep.json and sweep.png")


def cmd_anomaly(args: argparse.Namespace) -> None:
    from seqae.apps import anomaly, read_texts, roc_curve

    run = _text_run(args)
    data = read_texts(args.data)
    ood = read_texts(args.ood) if args.ood else None
    if not data.texts or (ood is not None and not ood.texts):
        raise ConfigError(f"{args.ood if data.texts else args.data}: no sentences")
    result = anomaly(run, data.texts, ood.texts if ood else None)
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    print(f"{args.data}: {len(result.scores)} sentences, mean token NLL {mean(result.scores):.4f}")
    if ood is not None:
        print(f"{args.ood}: {len(result.ood_scores)} sentences, mean token NLL {mean(result.ood_scores):.4f}")
        print(f"ROC AUC (out-of-domain vs {Path(args.data).name}, by score): {result.auc:.4f}")
    ranked = sorted(zip(result.scores, data.line_numbers, data.texts), key=lambda r: -r[0])
    print(f"most anomalous in {args.data}:")
    for score, line, text in ranked[: args.top]:
        print(f"  {score:7.3f}  line {line}: {text}")
    if args.scores:
        rows = [("data", n, s, t) for s, n, t in zip(result.scores, data.line_numbers, data.texts)]
        if ood is not None:
            rows += [("ood", n, s, t) for s, n, t in zip(result.ood_scores, ood.line_numbers, ood.texts)]
        Path(args.scores).write_text("set\tline\tscore\ttext\n" + "".join(f"{a}\t{n}\t{s:.6f}\t{t}\n"
                                                                          for a, n, s, t in rows), encoding="utf-8")
        print(f"wrote {args.scores}")
    if args.plot:
        if ood is None:
            raise ConfigError("--plot draws in-domain against out-of-domain scores: give --ood FILE")
        from seqae.eval.plots import plot_anomaly

        fpr, tpr = roc_curve(result.scores, result.ood_scores)
        plot_anomaly(result.scores, result.ood_scores, fpr.tolist(), tpr.tolist(), result.auc, args.plot,
                     title=f"Anomaly scores: {Path(args.data).name} vs {Path(args.ood).name}")
        print(f"wrote {args.plot}")


def cmd_search(args: argparse.Namespace) -> None:
    from seqae.apps import read_texts, search

    run = _text_run(args)
    index = read_texts(args.index)
    queries = [args.query] if args.query is not None else read_texts(args.query_file).texts
    if not index.texts or not queries:
        raise ConfigError(f"search: no sentences in {args.index if not index.texts else 'the queries'}")
    for query, hits in zip(queries, search(run, index.texts, queries, k=args.k)):
        print(f"query: {query}")
        for rank, (i, score) in enumerate(hits, start=1):
            print(f"  {rank}. {score:.4f}  line {index.line_numbers[i]}: {index.texts[i]}")


def cmd_compress(args: argparse.Namespace) -> None:
    from seqae.apps import compress, read_texts

    run = _text_run(args)
    sentences = read_texts(args.data, keep_empty=True).texts  # one z per line, empty ones included
    stats = compress(run, sentences, args.out, mode=args.quantize)
    print(f"wrote {args.out}: {stats['sentences']} z vectors ({args.quantize}); text {stats['text_bytes']} bytes -> "
          f"{stats['z_bytes']} bytes ({stats['ratio']:.2f}x)")
    if "token_accuracy" in stats:
        print(f"decoded back: token accuracy {stats['token_accuracy']:.4f}, exact match {stats['exact_match']:.4f}, "
              f"BLEU {stats['bleu']:.2f}")


def cmd_decompress(args: argparse.Namespace) -> None:
    from seqae.apps import decompress

    try:
        lines = decompress(_text_run(args), args.z, beam_size=args.beam)
    except ValueError as err:
        raise _cli_error(err) from None
    Path(args.output).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    print(f"wrote {args.output}: {len(lines)} lines decoded from {args.z}")


def cmd_interpolate(args: argparse.Namespace) -> None:
    from seqae.apps import interpolate

    try:
        points = interpolate(_text_run(args), args.a, args.b, steps=args.steps, method=args.method,
                             beam_size=args.beam)
    except ValueError as err:
        raise _cli_error(err) from None
    for t, text in points:
        print(f"{t:.2f}  {text}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqae", description="Sequence autoencoders for speech and text.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("pretrain", help="pretrain (or resume) an autoencoder from a YAML config")
    p.add_argument("config", help="YAML config file (only the values that differ from the defaults)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. train.lr=1e-3")
    p.add_argument("--run-dir", help="run directory (default runs/<config name>); an existing one is resumed")
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser("reconstruct", help="encode sentences (or audio files) to z and decode them back")
    p.add_argument("run_dir", help="a run directory, or a recipe's output folder holding one")
    p.add_argument("sentences", nargs="*", help="sentences (text runs) or audio files (speech runs)")
    p.add_argument("--file", help="text runs: a text file, one sentence per line; speech runs: a manifest or a "
                                  "folder of audio")
    p.add_argument("--beam", type=int, default=1, help="beam size (1: greedy; text runs)")
    p.add_argument("--out", help="speech runs: folder for the PNGs (and WAVs) (default ./reconstructions)")
    p.add_argument("--audio", action="store_true", help="speech runs (log-Mel): also Griffin-Lim WAVs")
    p.set_defaults(func=cmd_reconstruct)

    p = sub.add_parser("encode", help="write z of each sentence or utterance to a .npy array")
    p.add_argument("run_dir", help="a run directory, or a recipe's output folder holding one")
    p.add_argument("input", help="text runs: a text file, one sentence per line; speech runs: a manifest, a folder "
                                 "of audio or one audio file")
    p.add_argument("output", help="the .npy file to write: [items, bottleneck_dim]")
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser("corrupt", help="show what a config's noise pipeline does to sentences or audio")
    p.add_argument("config")
    p.add_argument("--text", action="append", help="a sentence (text configs; repeatable)")
    p.add_argument("--audio", action="append", help="an audio file (speech configs; repeatable)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--tokenizer", help="SentencePiece model (default: the config's, or runs/<config>/tokenizer.model)")
    p.add_argument("--samples", type=int, default=3, help="epochs to draw the noise for")
    p.set_defaults(func=cmd_corrupt)

    p = sub.add_parser("export", help="write a run's encoder (weights, front end, model card) to a directory")
    p.add_argument("run_dir")
    p.add_argument("out_dir")
    p.add_argument("--onnx", action="store_true", help="also write encoder.onnx, checked against PyTorch")
    p.add_argument("--force", action="store_true", help="replace an earlier export in out_dir")
    p.add_argument("--decoder", action="store_true",
                   help="also write the decoder (text runs with a Transformer decoder): it can initialise the "
                        "decoder of `seqae finetune translate` (decoder_export: DIR)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("translate", help="translate sentences with a fine-tuned translation run")
    p.add_argument("run_dir", help="a `seqae finetune translate` run directory")
    p.add_argument("sentences", nargs="*", help="source sentences (one translation a line is printed, in order)")
    p.add_argument("--file", help="a UTF-8 file of source sentences, one a line (translated after any given)")
    p.add_argument("--beam", type=int, help="beam size (default: the run's train.beam_size; 1: greedy)")
    p.set_defaults(func=cmd_translate)

    p = sub.add_parser("transcribe", help="transcribe audio files with a fine-tuned ASR run (greedy CTC)")
    p.add_argument("run_dir", help="a `seqae finetune asr` run directory")
    p.add_argument("audio", nargs="*", help="audio files (wav/flac/ogg); prints `path<TAB>transcript` a line")
    p.add_argument("--manifest", help="a manifest (.jsonl/.csv with a path column) of more files to transcribe")
    p.set_defaults(func=cmd_transcribe)

    p = sub.add_parser("finetune", help="fine-tune an exported encoder (or the same architecture from scratch)")
    p.add_argument("task", choices=("asr", "translate"), help="asr: CTC over characters; translate: seq2seq")
    p.add_argument("config", help="fine-tuning YAML config (seqae/finetune/config.py lists every key)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. encoder=null")
    p.add_argument("--run-dir", help="run directory (default runs/<config name>); an existing one is resumed")
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("evaluate", help="write report.md, report.json and figures for a run")
    p.add_argument("run_dir")
    p.add_argument("--data", help="evaluation data (text: .txt or .jsonl with text/label; speech: a manifest); "
                                  "default: the run's data.heldout")
    p.add_argument("--out", help="where the report goes (default: the run directory)")
    p.add_argument("--limit", type=int, help="evaluate only the first N items")
    p.add_argument("--beam", type=int, default=1, help="beam size for text reconstruction (1: greedy)")
    p.add_argument("--no-tsne", action="store_true", help="draw only the PCA map of z")
    p.add_argument("--max-len", default="train", help="speech: cut utterances longer than this many frames, "
                                                      "counted in the report ('train': the run's data.max_len, "
                                                      "the default; 'none': never)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("sweep", help="train a recipe at several bottleneck sizes and compare reconstruction")
    p.add_argument("config")
    p.add_argument("--bottleneck", required=True, help="comma-separated sizes of z, e.g. 32,64,128,256,512")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", help="folder for the runs and sweep.md (default runs/<config name>_sweep)")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("anomaly", help="score sentences by reconstruction NLL; ROC AUC against an out-of-domain set")
    p.add_argument("run_dir")
    p.add_argument("--data", required=True, help="in-domain sentences (.txt, or .jsonl with text)")
    p.add_argument("--ood", help="out-of-domain sentences: report the ROC AUC of telling them apart")
    p.add_argument("--top", type=int, default=5, help="most anomalous sentences to print")
    p.add_argument("--scores", help="write every score to this TSV file")
    p.add_argument("--plot", help="write score histograms and the ROC curve to this PNG (needs --ood)")
    p.set_defaults(func=cmd_anomaly)

    p = sub.add_parser("search", help="nearest sentences of an index by cosine similarity of z")
    p.add_argument("run_dir")
    p.add_argument("--index", required=True, help="sentences to search (.txt, or .jsonl with text)")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--query", help="one query sentence")
    group.add_argument("--query-file", help="a file of query sentences")
    p.add_argument("-k", type=int, default=5, help="neighbours per query")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("compress", help="store each line of a text file as its z vector (.npz)")
    p.add_argument("run_dir")
    p.add_argument("--data", required=True, help="a text file, one sentence per line")
    p.add_argument("--out", required=True, help="the .npz file to write")
    p.add_argument("--quantize", choices=["none", "float16", "int8"], default="none")
    p.set_defaults(func=cmd_compress)

    p = sub.add_parser("decompress", help="decode the z vectors of `seqae compress` back to text")
    p.add_argument("run_dir")
    p.add_argument("z", help="the .npz file written by seqae compress (with the same run)")
    p.add_argument("output", help="text file to write, one line per z")
    p.add_argument("--beam", type=int, default=1, help="beam size (1: greedy, as compress checks)")
    p.set_defaults(func=cmd_decompress)

    p = sub.add_parser("interpolate", help="decode points between the z's of two sentences")
    p.add_argument("run_dir")
    p.add_argument("a", help="first sentence")
    p.add_argument("b", help="second sentence")
    p.add_argument("--steps", type=int, default=5, help="points decoded, both ends included")
    p.add_argument("--method", choices=["linear", "slerp"], default="linear")
    p.add_argument("--beam", type=int, default=1, help="beam size (1: greedy)")
    p.set_defaults(func=cmd_interpolate)
    return parser


def main(argv: list[str] | None = None) -> int:
    from seqae.checkpoint import CheckpointError
    from seqae.data.text import CorpusError
    from seqae.frontend.audio import AudioError
    from seqae.train import TrainingError

    args = build_parser().parse_args(argv)
    try:
        status = args.func(args) or 0  # pretrain / finetune stopped by a signal: 128 + its number
    except (ConfigError, FileNotFoundError, CorpusError, AudioError, CheckpointError) as err:
        print(f"seqae {args.command}: error: {err}", file=sys.stderr)
        return 2
    except TrainingError as err:
        print(f"seqae {args.command}: error: {err}", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
