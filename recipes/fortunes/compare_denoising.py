"""Compare trained fortunes runs on clean and on corrupted input: how well each rebuilds the clean sentence.

    python recipes/fortunes/compare_denoising.py --noise recipes/fortunes/noise.yaml \
        --data data/fortunes/heldout.txt --run plain=runs/main/run --run denoising=runs/fortunes-denoise/run

Every run sees the same corrupted inputs: the `noise:` of the YAML file, drawn from (--seed, epoch 0, sentence i);
the default seed 1 differs from the training seed (0), so the corruptions are not the ones a run trained on.
Prints a Markdown table and writes it, with the numbers, to --out (JSON) when given.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import yaml

from seqae.data.text import encode_lines, load_text_lines
from seqae.eval.tokens import evaluate_tokens
from seqae.runs import load_run
from seqae.tasks.text import build_noise


def corrupt_all(noise, sequences, tokenizer, seed: int):
    context = {"vocab_size": tokenizer.vocab_size, "word_start": tokenizer.word_start_mask()}
    return [noise(torch.tensor(s), seed=seed, epoch=0, index=i, **context)[0].tolist()
            for i, s in enumerate(sequences)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--noise", required=True, help="a YAML file with a `noise:` list (e.g. noise.yaml)")
    parser.add_argument("--data", action="append", required=True, help="sentences to evaluate on (repeatable)")
    parser.add_argument("--run", action="append", required=True, metavar="NAME=RUN_DIR")
    parser.add_argument("--limit", type=int, help="only the first N sentences of each --data file")
    parser.add_argument("--seed", type=int, default=1, help="seed of the corruptions (default 1)")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    noise = build_noise(tuple(yaml.safe_load(Path(args.noise).read_text())["noise"]), "tokens")
    results = []
    for spec in args.run:
        name, run_dir = spec.split("=", 1)
        run = load_run(run_dir)
        for data in args.data:
            lines = load_text_lines(data)[0][: args.limit]
            clean, _ = encode_lines(lines, run.tokenizer, max_len=run.config.data.max_len)
            corrupted = corrupt_all(noise, clean, run.tokenizer, args.seed)
            kw = {"max_len": run.config.data.max_len}
            on_clean = evaluate_tokens(run.model, clean, **kw)
            on_noisy = evaluate_tokens(run.model, clean, sources=corrupted, **kw)
            results.append({"run": name, "data": data, "sentences": len(clean),
                            "clean_exact_match": on_clean["exact_match"],
                            "clean_token_accuracy": on_clean["token_accuracy"],
                            "denoise_exact_match": on_noisy["exact_match"],
                            "denoise_token_accuracy": on_noisy["token_accuracy"],
                            "denoise_tf_token_accuracy": on_noisy["tf_token_accuracy"]})
            print(f"done: {name} on {data}", flush=True)
    print(f"\nnoise: {noise.describe()}\n")
    print("| run | data | sentences | exact match, clean input | token accuracy, clean input | "
          "exact match, corrupted input | token accuracy, corrupted input |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['run']} | {Path(r['data']).name} | {r['sentences']} | {r['clean_exact_match']:.4f} | "
              f"{r['clean_token_accuracy']:.4f} | {r['denoise_exact_match']:.4f} | {r['denoise_token_accuracy']:.4f} |")
    if args.out:
        Path(args.out).write_text(json.dumps({"noise": noise.describe(), "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
