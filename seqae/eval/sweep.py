"""A bottleneck sweep: train one recipe at several sizes of z and compare reconstruction by length.

`sweep(config, sizes, out_dir)` trains (or resumes) `out_dir/bottleneck_<size>` for each size with
`seqae.train.pretrain`, evaluates each on the recipe's held-out data (its first data.eval_sentences items),
and writes `sweep.json`, `sweep.md` and `sweep.png` (reconstruction against bottleneck size, one line per
length bin) into `out_dir`.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

from seqae.config import Config, ConfigError

PANELS = {"text": ("token_accuracy", "bleu"), "speech": ("mse", "mcd_dtw")}


def parse_sizes(text: str) -> list[int]:
    """"32,64,128" -> [32, 64, 128]; a ConfigError names a value that is not a positive integer or repeats."""
    sizes = []
    for part in text.split(","):
        try:
            size = int(part.strip())
        except ValueError:
            raise ConfigError(f"--bottleneck: {part.strip()!r} is not an integer (expected e.g. 32,64,128)") from None
        if size <= 0 or size in sizes:
            raise ConfigError(f"--bottleneck: {size} is {'repeated' if size in sizes else 'not positive'}")
        sizes.append(size)
    return sizes


def evaluate_by_length(run_dir: Path) -> list[dict[str, Any]]:
    """Reconstruction rows by length bin (then "all") of a trained run, on its first data.eval_sentences
    held-out items (see `seqae.eval.text.summarize_text` / `seqae.eval.speech.summarize_speech`)."""
    from seqae.eval.speech import reconstruct_speech, summarize_speech
    from seqae.eval.text import eval_texts, reconstruct_text, summarize_text
    from seqae.runs import load_run

    run = load_run(run_dir)
    limit = run.config.data.eval_sentences
    if run.task == "speech":
        speech = run.features(run.heldout_rows()[:limit], max_len=run.config.data.max_len,
                              cache_dir=run.config.features.cache_dir or run.run_dir / "features")
        return summarize_speech(reconstruct_speech(run, speech.features))
    sentences = eval_texts(run.config, None).texts[:limit]
    return summarize_text(reconstruct_text(run, sentences))


def sweep(config: Config, sizes: Sequence[int], out_dir: str | Path) -> list[dict[str, Any]]:
    """Train and evaluate the recipe at each bottleneck size; returns (and writes to sweep.json) one record per size:
    bottleneck, run_dir, final (the run's final metrics), by_length (rows of `evaluate_by_length`)."""
    from seqae.train import pretrain

    if not sizes:
        raise ConfigError("sweep: give at least one bottleneck size")
    out_dir = Path(out_dir)
    results = []
    for size in sizes:
        cfg = replace(config, model=replace(config.model, bottleneck_dim=size))
        run_dir = out_dir / f"bottleneck_{size}"
        print(f"sweep: bottleneck {size} -> {run_dir}")
        final = pretrain(cfg, run_dir)
        results.append({"bottleneck": size, "run_dir": str(run_dir), "final": final,
                        "by_length": evaluate_by_length(run_dir)})
    (out_dir / "sweep.json").write_text(json.dumps(results, indent=2) + "\n")
    figure = plot(results, out_dir / "sweep.png", task=config.task)
    (out_dir / "sweep.md").write_text(render_markdown(results, config.task, figure.name))
    return results


def _series(results: Sequence[dict[str, Any]], metric: str) -> dict[str, list[float | None]]:
    """{bin: [value at each size]} for the bins that hold items in some run ("all" last)."""
    bins = [r["bin"] for r in results[0]["by_length"]]
    for res in results[1:]:
        bins += [r["bin"] for r in res["by_length"] if r["bin"] not in bins]
    out = {}
    for name in bins:
        values = [next((r[metric] for r in res["by_length"] if r["bin"] == name and r["sequences"]), None)
                  for res in results]
        if any(v is not None for v in values):
            out[name] = values
    return out


def plot(results: Sequence[dict[str, Any]], path: str | Path, *, task: str = "text") -> Path:
    """sweep.png: one panel per metric of PANELS[task], reconstruction against bottleneck size, a line per bin."""
    from seqae.eval.plots import plot_sweep

    sizes = [r["bottleneck"] for r in results]
    unit = "pieces" if task == "text" else "frames"
    return plot_sweep(sizes, {m: _series(results, m) for m in PANELS[task]}, path,
                      title=f"Reconstruction against bottleneck size, by length in {unit}")


def render_markdown(results: Sequence[dict[str, Any]], task: str, figure: str) -> str:
    """sweep.md: a table per metric (rows: length bins, columns: bottleneck sizes) and the figure."""
    from seqae.eval.report import format_value

    sizes = [r["bottleneck"] for r in results]
    lines = ["# Bottleneck sweep", "", *(f"- {r['bottleneck']}: `{r['run_dir']}`" for r in results), ""]
    for metric in PANELS[task]:
        lines += [f"## {metric}", "", "| length | " + " | ".join(map(str, sizes)) + " |",
                  "|" + "---|" * (len(sizes) + 1)]
        lines += [f"| {name} | " + " | ".join(format_value(v) for v in values) + " |"
                  for name, values in _series(results, metric).items()]
        lines.append("")
    return "\n".join(lines + [f"![sweep]({figure})", ""])
