"""The evaluation report of a run (`seqae evaluate RUN_DIR`): report.md, report.json and PNG figures.

Text runs: reconstruction from z alone by length (seqae.eval.text); speech runs: teacher-forced MSE and MCD, and
the MCD of the utterance generated from z alone (seqae.eval.speech). Embeddings, for each kind of label the data
has (text: a jsonl `label`; speech: word label and speaker): same-different AP, a logistic-regression probe on z,
nearest-neighbour precision@k (seqae.eval.embeddings); a 2-D map of z (PCA; also t-SNE when the set is small).
Learning curves come from metrics.jsonl. Dimension letters: N items, Z bottleneck width.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import torch

from seqae.eval.embeddings import embedding_metrics
from seqae.eval.speech import reconstruct_speech, same_different_ap, summarize_speech
from seqae.eval.text import eval_texts, reconstruct_text, summarize_text
from seqae.frontend.summaries import downsampled_frames, mean_frames
from seqae.runs import find_run_dir, load_run, read_run_config


def read_metrics_log(path: str | Path) -> tuple[list[dict[str, Any]], list[int]]:
    """Records of a run's metrics.jsonl and the (1-based) numbers of lines that are not JSON objects (skipped)."""
    records, bad = [], []
    path = Path(path)
    if not path.is_file():
        return records, bad
    for lineno, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if isinstance(record, dict):
            records.append(record)
        elif line.strip():
            bad.append(lineno)
    return records, bad


def learning_curves(records: Sequence[dict[str, Any]]) -> tuple[dict[str, list], dict[str, list]]:
    """({name: [(step, value)]} of training records, the same of periodic evaluations), from metrics.jsonl."""
    train: dict[str, list] = {"train loss": []}
    evals: dict[str, list] = {}
    for r in records:
        if "step" not in r or "skipped" in r:
            continue
        if "eval" not in r:
            if isinstance(r.get("loss"), (int, float)):
                train["train loss"].append((r["step"], r["loss"]))
            continue
        if r["eval"] == "final":  # the final evaluation, on all sequences: keys are prefixed by the split
            splits = {split: {k[len(split) + 1:]: v for k, v in r.items() if k.startswith(f"{split}_")}
                      for split in ("heldout", "train")}
            splits["heldout"].setdefault("ap_z", r.get("ap_z"))
        elif r["eval"] in ("heldout", "train"):
            splits = {r["eval"]: r}
        else:
            continue
        for split, values in splits.items():
            if _finite(values.get("loss")):
                train.setdefault(f"{split} loss (eval)", []).append((r["step"], values["loss"]))
            for key in ("token_accuracy", "exact_match", "mse", "ap_z"):
                if _finite(values.get(key)):
                    evals.setdefault(f"{split} {key}", []).append((r["step"], values[key]))
    return train, evals


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _text_results(run_dir: Path, data, limit: int | None, beam_size: int, seed: int):
    """(report fields, z [N, Z], labels or None, lengths in pieces) of a text run."""

    run = load_run(run_dir)
    texts = eval_texts(run.config, data)
    sentences, labels = texts.texts[:limit], texts.labels[:limit] if texts.labels else None
    if not sentences:
        raise ValueError(f"{data or run.config.data.heldout}: no sentences to evaluate")
    items = reconstruct_text(run, sentences, beam_size=beam_size)
    z = run.encode(sentences)
    lengths = [it.length for it in items]
    truncated = sum(len(ids) > n for ids, n in zip(run.tokenizer.encode_batch(sentences), lengths))
    result = {"task": "text", "step": run.step, "data": str(data or run.config.data.heldout), "items": len(items),
              "beam_size": beam_size,
              "skipped_empty": texts.skipped_empty, "truncated": truncated, "reconstruction": summarize_text(items),
              "examples": [{"input": it.reference, "output": it.hypothesis} for it in items[:8]],
              "embeddings": {"label": embedding_metrics(z, labels, seed=seed)} if labels else {}}
    return result, z, labels, lengths


def _speech_results(run_dir: Path, data, limit: int | None, seed: int, max_len: int | None | str,
                    cache_dir: Path | None):
    """(report fields, z [N, Z], word labels or None, lengths in frames) of a speech run."""

    run = load_run(run_dir)
    max_len = run.config.data.max_len if max_len == "train" else max_len
    sources = run.heldout_rows() if data is None else data
    speech = run.features(sources[:limit] if data is None else sources, max_len=max_len, cache_dir=cache_dir)
    feats, rows = speech.features[:limit], speech.rows[:limit]
    if not feats:
        raise ValueError(f"{data or run.config.data.heldout}: no usable audio to evaluate "
                         f"({speech.skipped.num_skipped} files skipped)")
    z = run.encode(feats)
    embeddings = {}
    for kind in ("label", "speaker"):
        labels = [getattr(r, kind) for r in rows]
        if None in labels or len(set(labels)) < 2:
            continue
        embeddings[kind] = embedding_metrics(z, labels, seed=seed)
        if "ap" in embeddings[kind]:  # the label-free baselines z should beat
            embeddings[kind]["ap_mean_frames"] = same_different_ap(mean_frames(feats), labels)
            embeddings[kind]["ap_downsampled"] = same_different_ap(downsampled_frames(feats, n=10), labels)
    result = {"task": "speech", "step": run.step, "data": str(data or run.config.data.heldout), "items": len(feats),
              "skipped_files": speech.skipped.num_skipped, "truncated": speech.truncated,
              "reconstruction": summarize_speech(reconstruct_speech(run, feats)), "embeddings": embeddings}
    labels = [r.label for r in rows] if all(r.label is not None for r in rows) else None
    return result, z, labels, [x.shape[0] for x in feats]


def _figures(result: dict[str, Any], out: Path, z: torch.Tensor, labels, lengths, *, name: str, seed: int,
             tsne: bool) -> dict[str, Any]:
    """Draw the reconstruction bars and the maps of z; the figures' file names for the report."""
    from seqae.eval.plots import TSNE_MAX_ITEMS, plot_binned, plot_embedding_map, project_2d, tsne_available

    text = result["task"] == "text"
    unit = "pieces" if text else "frames"
    rows = [{**r, "bleu / 100": None if r.get("bleu") is None else r["bleu"] / 100}
            for r in result["reconstruction"] if r["sequences"] or r["bin"] == "all"]  # the table keeps empty bins
    bars = plot_binned(rows, ["token_accuracy", "exact_match", "bleu / 100"] if text else ["mse", "mcd", "mcd_dtw"],
                       out / "reconstruction_by_length.png", xlabel=f"length in {unit}",
                       ylabel="fraction" if text else "MSE; MCD (dB)", unit_range=text,
                       title=f"Reconstruction from z by length ({name}, step {result['step']})")
    methods = ["pca"] + (["tsne"] if tsne and z.shape[0] <= TSNE_MAX_ITEMS and tsne_available() else [])
    title = f"z of {z.shape[0]} {'sentences' if text else 'utterances'}, coloured by " + \
        ("label" if labels else f"length in {unit}")
    maps = [plot_embedding_map(project_2d(z, m, seed=seed), out / f"embedding_map_{m}.png", method=m, labels=labels,
                               values=None if labels else lengths, value_name=f"length in {unit}", title=title).name
            for m in (methods if z.shape[0] >= 3 else [])]
    return {"reconstruction_figure": bars.name, "maps": maps}


def evaluate_run(run_dir: str | Path, *, data: str | Path | None = None, out: str | Path | None = None,
                 limit: int | None = None, beam_size: int = 1, seed: int = 0, tsne: bool = True,
                 max_len: int | None | str = "train") -> dict[str, Any]:
    """Evaluate a run and write report.md, report.json and the figures into `out` (default: the run directory).

    `data`: what to evaluate on (default: the run's held-out data); `limit`: its first N items only; `beam_size`:
    text decoding; `tsne`: also a t-SNE map when the set is small; `max_len` (speech): utterances longer than this
    many frames are cut to it, counted in the report ("train": the run's data.max_len; None: never cut).
    Features of other data are cached under `out`/features when `out` is given, else not at all: only the run's own
    held-out data uses the run's feature cache (filled when it trained). Returns the contents of report.json.
    """
    from seqae.eval.plots import plot_learning_curves

    run_dir = find_run_dir(run_dir)
    config = read_run_config(run_dir)
    if config.task == "speech":
        own_cache = config.features.cache_dir or run_dir / "features"
        cache = own_cache if data is None else (Path(out) / "features" if out is not None else None)
        result, z, labels, lengths = _speech_results(run_dir, data, limit, seed, max_len, cache)
    else:
        result, z, labels, lengths = _text_results(run_dir, data, limit, beam_size, seed)
    out = Path(out) if out is not None else run_dir
    out.mkdir(parents=True, exist_ok=True)
    name = run_dir.resolve().name
    if name == "run":  # recipes put the run in <out>/run: name it by its recipe output folder
        name = f"{run_dir.resolve().parent.name}/{name}"
    result.update(_figures(result, out, z, labels, lengths, name=name, seed=seed, tsne=tsne))
    records, bad = read_metrics_log(run_dir / "metrics.jsonl")
    curves = plot_learning_curves(*learning_curves(records), out / "learning_curves.png",
                                  title=f"Learning curves ({name})")
    result.update(run=str(run_dir), learning_curves=curves.name, metrics_log_bad_lines=bad)
    (out / "report.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "report.md").write_text(render_markdown(result))
    return result


def format_value(value: Any) -> str:
    """A table cell: 4 significant digits, "–" for None, "|" escaped."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else "nan"
    return str(value).replace("|", "\\|")


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> list[str]:
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns),
            *("| " + " | ".join(format_value(r.get(c)) for c in columns) + " |" for r in rows)]


def render_markdown(result: dict[str, Any]) -> str:
    """report.md from the contents of report.json."""
    text = result["task"] == "text"
    if text:
        counted = (f"{result['items']} sentences ({result['skipped_empty']} empty lines skipped, "
                   f"{result['truncated']} cut to data.max_len)")
    else:
        cut = result.get("truncated") or {}
        cut = (f"{cut['items']} longer than {cut['max_len']} frames cut to it, {cut['frames_cut']} frames dropped"
               if cut.get("max_len") is not None else "none cut")
        counted = f"{result['items']} utterances ({result['skipped_files']} unusable files skipped; {cut})"
    lines = [f"# Evaluation of `{result['run']}`", "", f"- checkpoint step {result['step']}, {result['task']} run",
             f"- data: `{result['data']}`: {counted}", "", "## Reconstruction", ""]
    if text:
        decoding = "greedy decoding" if result["beam_size"] == 1 else f"beam search (beam {result['beam_size']})"
        lines += [f"From z alone, {decoding}. Token accuracy: position-aligned matches over reference pieces + eos; "
                  "BLEU: sacrebleu corpus BLEU (13a, effective order) on detokenised text. Bins: length in pieces.", ""]
        lines += _table(result["reconstruction"], ["bin", "sequences", "token_accuracy", "exact_match", "bleu"])
    else:
        lines += ["mse, mcd: teacher-forced prediction of each frame (MSE of CMVN'd features; MCD in dB on c1–c12 of "
                  "the log-Mel). mcd_dtw: the utterance generated from z alone, aligned by DTW; length_ratio: its "
                  "length over the original's. Bins: length in frames.", ""]
        lines += _table(result["reconstruction"], ["bin", "sequences", "mse", "mcd", "mcd_dtw", "length_ratio"])
    lines += ["", f"![reconstruction by length]({result['reconstruction_figure']})", ""]
    if result.get("examples"):
        lines += ["### Examples", "", "```", *(f"{e['input']}\n  {'=' if e['input'] == e['output'] else '≠'} "
                                               f"{e['output']}" for e in result["examples"]), "```", ""]
    lines += ["## Embeddings", ""]
    if not result["embeddings"]:
        lines += ["No labels in the data: give a .jsonl with `text` and `label` (text) or a manifest with `label` or "
                  "`speaker` (speech) for same-different AP, a linear probe and precision@k.", ""]
    for kind, m in result["embeddings"].items():
        probe = m.get("probe")
        rows = [{"measure": k, "value": v} for k, v in m.items() if k != "probe"]
        if probe is None:
            rows.append({"measure": "linear probe", "value": "not run (needs 2 classes, one with 2+ items)"})
        else:
            rows += [{"measure": "probe accuracy (test)", "value": probe["accuracy"]},
                     {"measure": "majority-class baseline", "value": probe["majority_baseline"]},
                     {"measure": "probe train / test items", "value": f"{probe['train']} / {probe['test']}"}]
        lines += [f"### z by {kind}", "", *_table(rows, ["measure", "value"]), ""]
    lines += [f"![map of z]({name})" for name in result["maps"]] + ["", "## Learning curves", "",
                                                                   f"![learning curves]({result['learning_curves']})"]
    if result["metrics_log_bad_lines"]:
        lines += ["", f"metrics.jsonl: {len(result['metrics_log_bad_lines'])} unreadable lines skipped "
                      f"(lines {result['metrics_log_bad_lines'][:10]})"]
    return "\n".join(lines) + "\n"
