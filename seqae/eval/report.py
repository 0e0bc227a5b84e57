"""The evaluation report of a run (`seqae evaluate RUN_DIR`): report.md, report.json and PNG figures.

Text runs: greedy reconstruction from z alone, scored by position-aligned token accuracy, exact match and BLEU
(sacrebleu, on detokenised text), each binned by length in pieces (bos/eos not counted).
Speech runs: teacher-forced MSE and mel-cepstral distortion (MCD), and the MCD of the utterance generated from
z alone (aligned to the original by dynamic time warping), binned by length in frames.
Embeddings, for each kind of label the data has (text: a jsonl `label`; speech: word label and speaker):
same-different AP, a logistic-regression probe on z (stratified train/test split), nearest-neighbour
precision@k; a 2-D map of z (PCA; also t-SNE when scikit-learn is installed and the set is small).
Learning curves come from metrics.jsonl. Dimension letters: N items, T frames, C cepstra, Z bottleneck width.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Hashable, Sequence

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from seqae.apps import precision_at_k
from seqae.eval.tokens import reconstruct_ids
from seqae.eval.metrics import reconstruction_counts
from seqae.eval.speech import same_different_ap

TEXT_BINS = ((1, 10), (11, 20), (21, 40), (41, 80))
FRAME_BINS = ((1, 50), (51, 100), (101, 200), (201, 400), (401, 800))
MCD_CEPSTRA = 13
"""Mel cepstra c0..c12 are computed (see `cepstra`); MCD uses c1..c12."""


def bin_label(n: int, bins: Sequence[tuple[int, int]]) -> str:
    """The bin of length n: "lo–hi", or ">hi" past the last bin."""
    for lo, hi in bins:
        if lo <= n <= hi:
            return f"{lo}–{hi}"
    if n > bins[-1][1]:
        return f">{bins[-1][1]}"
    raise ValueError(f"length {n} is below the first bin {bins[0][0]}–{bins[0][1]}")


def group_by_bin(lengths: Sequence[int], bins: Sequence[tuple[int, int]]) -> dict[str, list[int]]:
    """Item indices per bin label, bins in order (empty bins kept; the overflow bin only when used)."""
    groups = {f"{lo}–{hi}": [] for lo, hi in bins}
    for i, n in enumerate(lengths):
        groups.setdefault(bin_label(n, bins), []).append(i)
    return groups


# ---------------------------------------------------------------------------------------------------------------------
# Text reconstruction


@dataclass(frozen=True, kw_only=True)
class TextItem:
    length: int
    """Pieces of the reference (bos and eos not counted)."""
    correct: int
    """Position-aligned matching tokens (eos included)."""
    total: int
    """Reference tokens scored (pieces + eos)."""
    exact: bool
    reference: str
    hypothesis: str


def score_text(tokenizer, references: Sequence[Sequence[int]], generated: Sequence[Sequence[int]]) -> list[TextItem]:
    """Score each generated `[bos, ..., eos]` sequence against its reference (same layout)."""
    items = []
    for ref, gen in zip(references, generated, strict=True):
        counts = reconstruction_counts(torch.tensor([list(gen)]), torch.tensor([len(gen)]), torch.tensor([list(ref)]),
                                       torch.tensor([len(ref)]))
        items.append(TextItem(length=len(ref) - 2, correct=counts["correct"], total=counts["total"],
                              exact=bool(counts["exact"]), reference=tokenizer.decode(ref),
                              hypothesis=tokenizer.decode(gen)))
    return items


@torch.no_grad()
def reconstruct_text(run, sentences: Sequence[str], *, beam_size: int = 1, batch_size: int = 128) -> list[TextItem]:
    """Encode each sentence (cut to data.max_len as in training), decode it from z alone, score it."""
    items = []
    for i in range(0, len(sentences), batch_size):
        tokens, lengths = run.batch(sentences[i: i + batch_size])
        gen, gen_lengths = reconstruct_ids(run.model, tokens, lengths, max_len=run.config.data.max_len,
                                           beam_size=beam_size)
        items += score_text(run.tokenizer, [t[:n].tolist() for t, n in zip(tokens, lengths)],
                            [g[:n].tolist() for g, n in zip(gen, gen_lengths)])
    return items


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float | None:
    """sacrebleu's corpus BLEU (0–100), 13a tokenisation; None for no sentences. Orders with no n-grams at all
    (a set of sentences under 4 tokens) are left out (sacrebleu's effective_order) instead of giving 0."""
    if not hypotheses:
        return None
    try:
        from sacrebleu.metrics import BLEU
    except ImportError as err:
        raise ImportError("BLEU needs sacrebleu (pip install 'sacrebleu==2.6.*')") from err
    return float(BLEU(effective_order=True).corpus_score(list(hypotheses), [list(references)]).score)


def summarize_text(items: Sequence[TextItem], bins: Sequence[tuple[int, int]] = TEXT_BINS) -> list[dict[str, Any]]:
    """One row per length bin, then "all": sequences, token_accuracy, exact_match, bleu (None when empty)."""
    groups = group_by_bin([it.length for it in items], bins)
    groups["all"] = list(range(len(items)))
    rows = []
    for name, idx in groups.items():
        chosen = [items[i] for i in idx]
        total = sum(it.total for it in chosen)
        rows.append({"bin": name, "sequences": len(chosen),
                     "token_accuracy": sum(it.correct for it in chosen) / total if total else None,
                     "exact_match": sum(it.exact for it in chosen) / len(chosen) if chosen else None,
                     "bleu": corpus_bleu([it.hypothesis for it in chosen], [it.reference for it in chosen])})
    return rows


# ---------------------------------------------------------------------------------------------------------------------
# Speech reconstruction


def cepstra(feats: torch.Tensor, kind: str, n_mels: int, cmvn=None, n: int = MCD_CEPSTRA) -> torch.Tensor:
    """Mel cepstra c1..c(n-1) [T, n-1] of CMVN'd features [T, F] (CMVN undone first).

    On the scale of the real cepstrum of the log amplitude: c_k = (1/M) Σ_m ½·ln P_m · cos(πk(m + ½)/M) over the
    M = n_mels log-power Mel bins, i.e. the orthonormal DCT-II of the log-Mel divided by 2·sqrt(2M). MFCC features
    (that orthonormal DCT already) are only rescaled.
    """
    import torchaudio.functional as AF

    x = cmvn.denormalize(feats.float()) if cmvn is not None else feats.float()
    if kind != "mfcc":
        x = x @ AF.create_dct(n, x.shape[1], "ortho")  # (T, M) @ (M, n) -> (T, n)
    return x[:, 1:n] / (2.0 * math.sqrt(2.0 * n_mels))


def frame_mcd(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-frame mel-cepstral distortion in dB of cepstra a, b [..., C]: 10/ln(10) · sqrt(2 · Σ (a - b)²)."""
    return (10.0 / math.log(10.0)) * torch.sqrt(2.0 * ((a - b) ** 2).sum(-1))


def dtw_mean_cost(cost: torch.Tensor) -> float:
    """Mean local cost along the cheapest monotone path (steps right, down, diagonal) through cost [N, M].

    Anti-diagonals are filled one at a time (each depends only on the two before it).
    """
    N, M = cost.shape
    total = torch.full((N + 1, M + 1), math.inf, dtype=torch.float64)
    steps = torch.zeros((N + 1, M + 1), dtype=torch.float64)
    total[0, 0] = 0.0
    c = cost.double()
    for d in range(2, N + M + 1):
        i = torch.arange(max(1, d - M), min(N, d - 1) + 1)
        j = d - i
        options = torch.stack([total[i - 1, j - 1], total[i - 1, j], total[i, j - 1]])  # (3, L)
        lengths = torch.stack([steps[i - 1, j - 1], steps[i - 1, j], steps[i, j - 1]])
        best, pick = options.min(0)
        total[i, j] = best + c[i - 1, j - 1]
        steps[i, j] = lengths.gather(0, pick[None])[0] + 1
    return float(total[N, M] / steps[N, M])


@torch.no_grad()
def reconstruct_speech(run, features: Sequence[torch.Tensor]) -> list[dict[str, float]]:
    """Per utterance [T_i, F] (CMVN'd): frames, feature bins, the teacher-forced prediction's squared-error sum and
    MCD sum over frames, and the MCD (DTW-aligned) and length of the utterance generated from z alone."""
    from seqae.frontend.collate import collate_frames

    run.model.eval()
    ceps = lambda x: cepstra(x, run.extractor.kind, run.extractor.n_mels, run.cmvn)  # noqa: E731
    out = []
    for x, y in zip(features, run.reconstruct(list(features))):
        pred = run.model(*collate_frames([x])).pred[0, : x.shape[0]]  # (T, F)
        cx, cy = ceps(x), ceps(y)
        dtw = dtw_mean_cost(frame_mcd(cx[:, None, :], cy[None, :, :])) if y.shape[0] else math.nan  # (T, T')
        out.append({"frames": x.shape[0], "bins": x.shape[1], "sq_error": float(((pred - x) ** 2).sum()),
                    "mcd_sum": float(frame_mcd(cx, ceps(pred)).sum()), "mcd_dtw": dtw, "gen_frames": y.shape[0]})
    return out


def summarize_speech(items: Sequence[dict[str, float]], bins: Sequence[tuple[int, int]] = FRAME_BINS
                     ) -> list[dict[str, Any]]:
    """One row per frame-length bin, then "all": mse (over frames and bins) and mcd (over frames) of the
    teacher-forced prediction, mcd_dtw and length_ratio (generated / original) averaged over utterances."""
    groups = group_by_bin([int(it["frames"]) for it in items], bins)
    groups["all"] = list(range(len(items)))
    rows = []
    for name, idx in groups.items():
        frames = sum(items[i]["frames"] for i in idx)
        per_utt = (lambda f: sum(f(items[i]) for i in idx) / len(idx) if idx else None)  # noqa: E731
        rows.append({"bin": name, "sequences": len(idx),
                     "mse": sum(items[i]["sq_error"] for i in idx) / sum(items[i]["frames"] * items[i]["bins"]
                                                                         for i in idx) if idx else None,
                     "mcd": sum(items[i]["mcd_sum"] for i in idx) / frames if idx else None,
                     "mcd_dtw": per_utt(lambda it: it["mcd_dtw"]),
                     "length_ratio": per_utt(lambda it: it["gen_frames"] / it["frames"])})
    return rows


# ---------------------------------------------------------------------------------------------------------------------
# Embeddings


def _codes(labels: Sequence[Hashable]) -> np.ndarray:
    """Integer class codes [N] in order of first appearance (labels of any hashable type, even mixed)."""
    ids = {label: k for k, label in enumerate(dict.fromkeys(labels))}
    return np.array([ids[label] for label in labels], dtype=np.int64)


def stratified_split(labels: Sequence[Hashable], *, test_fraction: float = 0.3, seed: int = 0
                     ) -> tuple[list[int], list[int]]:
    """(train, test) indices, each sorted: sklearn's `train_test_split(stratify=...)` (seeded) of the items whose
    class has n >= 2 of them, with ceil(test_fraction · n) test items but at least one per class (sklearn's
    minimum), shared out in proportion to class size; single-item classes stay in train."""
    codes = _codes(labels)
    counts = np.bincount(codes)  # (classes,)
    kept = [i for i, c in enumerate(codes) if counts[c] >= 2]
    single = [i for i, c in enumerate(codes) if counts[c] < 2]
    if not kept:
        return single, []
    n_classes = int((counts >= 2).sum())
    n_test = min(len(kept) - n_classes, max(n_classes, math.ceil(test_fraction * len(kept))))
    train, test = train_test_split(kept, test_size=n_test, stratify=codes[kept], random_state=seed)
    return sorted(train + single), sorted(test)


def linear_probe(z: torch.Tensor, labels: Sequence[Hashable], *, test_fraction: float = 0.3, seed: int = 0,
                 weight_decay: float = 1e-3, max_iter: int = 100) -> dict[str, Any] | None:
    """Multinomial logistic regression (sklearn, L-BFGS) on z [N, Z] standardised by the training items, minimising
    mean cross-entropy + weight_decay · ||W||², trained on a stratified split; test accuracy beside the
    majority-class baseline. None when there is nothing to test."""
    train, test = stratified_split(labels, test_fraction=test_fraction, seed=seed)
    y = _codes(labels)
    if not test or y.max() < 1:
        return None
    # sklearn minimises C · sum of losses + ½ ||W||²: the same minimum as the objective above for this C.
    c = 0.5 / (weight_decay * len(train)) if weight_decay > 0 else math.inf
    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=max_iter))
    x = z.detach().cpu().double().numpy()  # (N, Z)
    model.fit(x[train], y[train])
    majority = np.bincount(y[train]).argmax()
    return {"accuracy": float(model.score(x[test], y[test])),
            "majority_baseline": float((y[test] == majority).mean()),
            "train": len(train), "test": len(test), "classes": int(y.max()) + 1}


def embedding_metrics(z: torch.Tensor, labels: Sequence[Hashable], *, ks: Sequence[int] = (1, 5),
                      seed: int = 0) -> dict[str, Any]:
    """Same-different AP (when a label repeats), the linear probe, and precision@k of z [N, Z] for `labels`."""
    result: dict[str, Any] = {"items": len(labels), "classes": len(set(labels))}
    if len(set(labels)) < len(labels):
        result["ap"] = same_different_ap(z, labels)
    result["probe"] = linear_probe(z, labels, seed=seed)
    if len(labels) >= 2:
        result.update({f"precision@{k}": precision_at_k(z, labels, k) for k in ks if k < len(labels)})
    return result


# ---------------------------------------------------------------------------------------------------------------------
# Learning curves


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


# ---------------------------------------------------------------------------------------------------------------------
# The report


def eval_texts(config, data: str | Path | None):
    """The sentences (and labels) to evaluate a text run on: `data` (.txt, .jsonl with text/label, or any corpus
    `load_text_lines` reads), by default the run's data.heldout."""
    from seqae.apps import TextSet, read_texts
    from seqae.config import ConfigError
    from seqae.data.text import load_text_lines

    d = config.data
    source = data if data is not None else d.heldout
    if source is None:
        raise ConfigError("data.heldout is null in the run's config (held out from data.train): give --data FILE")
    if Path(source).suffix.lower() in (".txt", ".jsonl") and Path(source).is_file():
        return read_texts(source, text_column=d.text_column)
    if data is not None and not Path(source).exists():
        raise FileNotFoundError(f"{source}: file not found")
    lines, stats = load_text_lines(str(source), split=d.heldout_split, text_column=d.text_column,
                                   hub_config=d.hub_config, encoding_errors=d.encoding_errors)
    return TextSet(texts=lines, labels=None, line_numbers=[], skipped_empty=stats.empty_skipped)


def _text_results(run_dir: Path, data, limit: int | None, beam_size: int, seed: int):
    """(report fields, z [N, Z], labels or None, lengths in pieces) of a text run."""
    from seqae.runs import load_run

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
    from seqae.eval.speech import downsampled_frames, mean_frames
    from seqae.runs import load_run

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
    Features of other data are cached under `out`/features when `out` is given, else not cached: the run
    directory's own cache is only read for its own held-out data. Returns the contents of report.json.
    """
    from seqae.eval.plots import plot_learning_curves
    from seqae.runs import find_run_dir, read_run_config

    run_dir = find_run_dir(run_dir)
    own_cache = read_run_config(run_dir).features.cache_dir or run_dir / "features"
    if read_run_config(run_dir).task == "speech":
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
