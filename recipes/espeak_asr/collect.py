"""Collect the espeak_asr runs into DIR/metrics.json and DIR/results.md, or pick the pretraining objective.

    python recipes/espeak_asr/collect.py DIR --select --objectives "ae neighbours frames" --seed 0
    python recipes/espeak_asr/collect.py DIR --objectives "ae neighbours frames" --seeds "0 1 2" --best frames

Fine-tuning runs live in DIR/ft/REGIME-INIT-FRACTION-sSEED (regime full or frozen; init an objective or scratch).
--select prints the objective whose full fine-tuning at 2% labels (seed --seed) has the lowest heldout CER (ties:
lower heldout WER, then the order given) and writes DIR/selection.json; only heldout numbers are read for it.
Otherwise every key of the recipe is written (test split unless named heldout/dev); means are over seeds and each
comes with its `_seeds` list in seed order. Recipes are scripts, not a package: nothing imports this file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from statistics import mean

FRACTIONS = ("0.02", "0.1")


def read(out: Path, name: str) -> dict:
    path = out / "ft" / name / "metrics.json"
    if not path.is_file():
        sys.exit(f"collect.py: {path} not found: the run {name} did not finish (its log: {out}/logs/{name}.log)")
    return json.loads(path.read_text())


def select(out: Path, objectives: list[str], seed: str) -> str:
    scores = {o: read(out, f"full-{o}-0.02-s{seed}") for o in objectives}
    best = min(objectives, key=lambda o: (scores[o]["heldout_cer"], scores[o]["heldout_wer"], objectives.index(o)))
    table = {o: {"heldout_cer": s["heldout_cer"], "heldout_wer": s["heldout_wer"]} for o, s in scores.items()}
    (out / "selection.json").write_text(json.dumps({"rule": "lowest heldout CER, full fine-tuning, 2% labels, "
                                                    f"seed {seed}", "objectives": table, "best": best}, indent=2))
    return best


def seeds_of(out: Path, prefix: str, seeds: list[str], split: str = "test") -> dict[str, list[float]]:
    runs = [read(out, f"{prefix}-s{seed}") for seed in seeds]
    return {m: [r[f"{split}_{m}"] for r in runs] for m in ("wer", "cer")}


def collect(out: Path, objectives: list[str], seeds: list[str], best: str) -> dict:
    first = seeds[0]
    top = read(out, f"full-scratch-1.0-s{first}")
    metrics: dict = {"wer_topline": top["test_wer"], "cer_topline": top["test_cer"],
                     "heldout_wer_topline": top["heldout_wer"], "heldout_cer_topline": top["heldout_cer"],
                     "topline_steps": top["step"], "topline_labelled_utterances": top["labelled_utterances"],
                     "best_objective": best, "seeds": [int(s) for s in seeds]}
    for fraction in FRACTIONS:
        for init, prefix in (("pretrained", f"full-{best}-{fraction}"), ("scratch", f"full-scratch-{fraction}")):
            for m, values in seeds_of(out, prefix, seeds).items():
                metrics[f"{m}_{init}_{fraction}"] = mean(values)
                metrics[f"{m}_{init}_{fraction}_seeds"] = values
        scratch = read(out, f"full-scratch-{fraction}-s{first}")
        metrics[f"labelled_utterances_{fraction}"] = scratch["labelled_utterances"]
        metrics[f"wer_ratio_{fraction}"] = metrics[f"wer_pretrained_{fraction}"] / metrics[f"wer_scratch_{fraction}"]
        metrics[f"cer_ratio_{fraction}"] = metrics[f"cer_pretrained_{fraction}"] / metrics[f"cer_scratch_{fraction}"]
        for m in ("wer", "cer"):
            pre, scr = metrics[f"{m}_pretrained_{fraction}_seeds"], metrics[f"{m}_scratch_{fraction}_seeds"]
            metrics[f"{m}_ranges_overlap_{fraction}"] = not (max(pre) < min(scr) or max(scr) < min(pre))
    for init, prefix in (("pretrained", f"frozen-{best}-0.02"), ("scratch", "frozen-scratch-0.02")):
        for m, values in seeds_of(out, prefix, seeds).items():
            metrics[f"{m}_frozen_{init}_0.02"] = mean(values)
            metrics[f"{m}_frozen_{init}_0.02_seeds"] = values
    metrics["frozen_layer_weights_0.02"] = read(out, f"frozen-{best}-0.02-s{first}").get("layer_weights")
    for init in (*objectives, "scratch"):  # the selection table: heldout split, 2% labels, first seed
        for regime in ("full", "frozen"):
            run = read(out, f"{regime}-{init}-0.02-s{first}")
            for m in ("wer", "cer"):
                metrics[f"dev_{m}_{regime}_{init}_0.02"] = run[f"heldout_{m}"]
    for objective in objectives:
        pre = json.loads((out / f"pretrain_{objective}" / "metrics.json").read_text())
        metrics[f"pretrain_heldout_mse_{objective}"] = pre["heldout_mse"]
        metrics[f"pretrain_steps_{objective}"] = pre.get("step")
    prepared = out / "data" / "prepare.json"
    if prepared.is_file():
        data = json.loads(prepared.read_text())
        metrics.update({k: data[k] for k in ("train_hours", "unlabelled_hours", "unlabelled_to_train_duration")
                        if k in data})
    return metrics


def fmt(values: list[float]) -> str:
    return f"{mean(values):.3f} [{min(values):.3f}, {max(values):.3f}]"


def tables(m: dict, objectives: list[str]) -> str:
    lines = [f"Test split, mean [min, max] over seeds {m['seeds']}; pretrained = the `{m['best_objective']}` "
             "objective (chosen on the heldout split).", "",
             "| labels | init | WER | CER |", "|---|---|---|---|"]
    for fraction in FRACTIONS:
        for init in ("pretrained", "scratch"):
            lines.append(f"| {float(fraction):.0%} ({m[f'labelled_utterances_{fraction}']} utt.) | {init} | "
                         f"{fmt(m[f'wer_{init}_{fraction}_seeds'])} | {fmt(m[f'cer_{init}_{fraction}_seeds'])} |")
    for init in ("pretrained", "scratch"):
        lines.append(f"| 2%, frozen encoder + layer weights | {init} | {fmt(m[f'wer_frozen_{init}_0.02_seeds'])} | "
                     f"{fmt(m[f'cer_frozen_{init}_0.02_seeds'])} |")
    lines.append(f"| 100% ({m['topline_labelled_utterances']} utt.), topline | scratch | {m['wer_topline']:.3f} | "
                 f"{m['cer_topline']:.3f} |")
    lines += ["", f"Objectives, heldout split, 2% labels, seed {m['seeds'][0]}:", "",
              "| pretraining | pretrain heldout MSE | full FT WER | full FT CER | frozen WER | frozen CER |",
              "|---|---|---|---|---|---|"]
    for init in (*objectives, "scratch"):
        mse = f"{m[f'pretrain_heldout_mse_{init}']:.3f}" if init != "scratch" else "–"
        lines.append(f"| {init} | {mse} | " + " | ".join(f"{m[f'dev_{k}_{init}_0.02']:.3f}" for k in
                                                        ("wer_full", "cer_full", "wer_frozen", "cer_frozen")) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--objectives", required=True)
    parser.add_argument("--select", action="store_true")
    parser.add_argument("--seed", default="0", help="with --select")
    parser.add_argument("--seeds", default="0 1 2")
    parser.add_argument("--best")
    args = parser.parse_args()
    objectives = args.objectives.split()
    if args.select:
        print(select(args.out, objectives, args.seed))
        return
    metrics = collect(args.out, objectives, args.seeds.split(), args.best)
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (args.out / "results.md").write_text(tables(metrics, objectives))
    print(tables(metrics, objectives))


if __name__ == "__main__":
    main()
