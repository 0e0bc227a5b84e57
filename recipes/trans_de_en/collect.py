"""Collect the fine-tuning runs of recipes/trans_de_en/run.sh into DIR/metrics.json and DIR/samples.md.

    python recipes/trans_de_en/collect.py DIR SEED [SEED ...]

metrics.json: the topline's test chrF and BLEU (`chrf_topline`, `bleu_topline`), and for each 10% setting
(pretrained: encoder and decoder; encoder_only; scratch) the mean over seeds of test chrF and BLEU with the
per-seed lists beside them (`chrf_pretrained`, `chrf_pretrained_seeds`, ...), the heldout means likewise
(`heldout_chrf_pretrained`, ...), and the sizes. samples.md: the first 5 test sources with each setting's
translation (the first seed's). A recipe script: nothing imports it.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

SETTINGS = {"pretrained": "encoder + decoder pretrained", "encoder_only": "encoder pretrained",
            "scratch": "random init"}


def main(argv: list[str]) -> None:
    out, seeds = Path(argv[0]), argv[1:]
    read = lambda name: json.loads((out / name / "metrics.json").read_text())  # noqa: E731
    topline = read("topline")
    runs = {s: [read(f"{s}_{seed}") for seed in seeds] for s in SETTINGS}
    metrics = {"chrf_topline": topline["test_chrf"], "bleu_topline": topline["test_bleu"],
               "heldout_chrf_topline": topline["heldout_chrf"], "topline_pairs": topline["labelled_pairs"]}
    for setting, results in runs.items():
        for split, prefix in (("test", ""), ("heldout", "heldout_")):
            for m in ("chrf", "bleu"):
                values = [r[f"{split}_{m}"] for r in results]
                metrics[f"{prefix}{m}_{setting}"] = statistics.fmean(values)
                metrics[f"{prefix}{m}_{setting}_seeds"] = values
    first = runs["pretrained"][0]
    metrics.update(seeds=[int(s) for s in seeds], label_fraction=first["label_fraction"],
                   labelled_pairs=first["labelled_pairs"], steps=first["step"], beam_size=first["beam_size"],
                   test_sentences=first["test_sentences"])
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    lines = [f"# Test translations (first {len(first['test_examples'])} test pairs; seed {seeds[0]})", ""]
    named = {"topline (all pairs)": topline, **{f"10%, {v}": runs[k][0] for k, v in SETTINGS.items()}}
    for i, example in enumerate(first["test_examples"]):
        lines += [f"{i + 1}. source: {example['src']}", f"   - reference: {example['ref']}"]
        lines += [f"   - {name}: {r['test_examples'][i]['hyp']}" for name, r in named.items()]
    (out / "samples.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in metrics.items() if not k.endswith("_seeds")}, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
