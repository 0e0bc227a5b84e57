"""What a trained text run is for: anomaly scores, search by z, compression to z, interpolation between z's.

Dimension letters: N sentences, M index entries, Q queries, K neighbours, Z bottleneck width.

- Anomaly: a sentence's score is the mean token negative log-likelihood (nats, eos included) of the decoder,
  teacher-forced from the sentence's own z; `roc_auc` measures how well it separates two sets.
- Search: cosine similarity of z, ties broken by index.
- Compression: z stored as float32, float16 or int8 (per-dimension symmetric scale) in an .npz; decompression
  decodes z greedily, so with `quantize="none"` it gives exactly `Run.reconstruct`.
- Interpolation: decode points on the line (or great circle) between two z's.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Hashable, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from sklearn import metrics
from torch import Tensor

from seqae.frontend.collate import collate_tokens
from seqae.data.text import CorpusError
from seqae.generate import beam_search, greedy_decode
from seqae.runs import Run

QUANTIZE = ("none", "float16", "int8")
COMPRESS_FORMAT = 1


# ---------------------------------------------------------------------------------------------------------------------
# Input


@dataclass(frozen=True, kw_only=True)
class TextSet:
    """Sentences read from a file, with where each came from."""

    texts: list[str]
    """The sentences, stripped."""
    labels: list[str] | None
    """One label per sentence (jsonl with a `label` field), else None."""
    line_numbers: list[int]
    """1-based line of each sentence in the file."""
    skipped_empty: int
    """Empty lines left out (counted, never silently)."""


def read_texts(path: str | Path, *, keep_empty: bool = False, text_column: str = "text") -> TextSet:
    """Sentences of a .txt file (one a line) or a .jsonl file (objects with `text_column` and optional `label`).

    Empty lines are skipped and counted unless `keep_empty` (which keeps rows aligned with lines).
    Raises CorpusError naming the file and line for undecodable bytes, bad JSON or a missing field.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    is_jsonl = path.suffix.lower() == ".jsonl"
    raw_lines = path.read_bytes().split(b"\n")
    if raw_lines[-1] == b"":  # the file's final newline ends the last line; it does not start another
        raw_lines.pop()
    texts, labels, numbers, skipped = [], [], [], 0
    for lineno, raw in enumerate(raw_lines, start=1):
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError as err:
            raise CorpusError(f"{path}:{lineno}: not valid UTF-8 ({err.reason} at byte {err.start})") from None
        if not line and not (keep_empty and not is_jsonl):
            skipped += 1
            continue
        text, label = _jsonl_record(line, path, lineno, text_column) if is_jsonl else (line, None)
        if not text and not keep_empty:
            skipped += 1
            continue
        texts.append(text)
        labels.append(label)
        numbers.append(lineno)
    has_label = [label is not None for label in labels]
    if any(has_label) and not all(has_label):
        first = numbers[has_label.index(False)]
        raise CorpusError(f"{path}:{first}: no 'label' field, but other lines have one (label all or none)")
    return TextSet(texts=texts, labels=labels if labels and all(has_label) else None, line_numbers=numbers,
                   skipped_empty=skipped)


def _jsonl_record(line: str, path: Path, lineno: int, text_column: str) -> tuple[str, str | None]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise CorpusError(f"{path}:{lineno}: not valid JSON ({err.msg})") from None
    if not isinstance(record, dict) or not isinstance(record.get(text_column), str):
        raise CorpusError(f"{path}:{lineno}: expected an object with a string {text_column!r} field")
    label = record.get("label")
    return record[text_column].strip(), None if label is None else str(label)


def token_batch(run: Run, sentences: Sequence[str]) -> tuple[Tensor, Tensor]:
    """Sentences -> tokens [B, T] (`[bos, ..., eos]`, cut to data.max_len as in training) and lengths [B]."""
    tok, keep = run.tokenizer, run.config.data.max_len - 2
    return collate_tokens([[tok.bos_id, *tok.encode(s)[:keep], tok.eos_id] for s in sentences], tok.pad_id)


def _require_text(run: Run) -> None:
    if run.config.task != "text":
        raise ValueError(f"this works on text runs; the run's task is {run.config.task!r}")


def load_text_run(run_dir: str | Path) -> Run:
    """`seqae.runs.load_run`, after checking the run is a text run (ConfigError naming the run otherwise)."""
    import yaml

    from seqae.config import ConfigError
    from seqae.runs import load_run

    config = Path(run_dir) / "config.yaml"
    task = (yaml.safe_load(config.read_text()) or {}).get("task", "text") if config.is_file() else "text"
    if task != "text":
        raise ConfigError(f"{run_dir}: a {task} run; this command works on text runs")
    return load_run(run_dir)


# ---------------------------------------------------------------------------------------------------------------------
# Anomaly scores


@torch.no_grad()
def sequence_nll(run: Run, sentences: Sequence[str], *, batch_size: int = 128) -> Tensor:
    """Mean token negative log-likelihood [N] (nats per target token, eos counted), teacher-forced from z."""
    run.model.eval()
    out = []
    for i in range(0, len(sentences), batch_size):
        tokens, lengths = token_batch(run, sentences[i: i + batch_size])
        result = run.model(tokens, lengths)
        nll = F.cross_entropy(result.logits.transpose(1, 2).float(), result.targets, reduction="none",
                              ignore_index=run.model.pad_id)  # (B, T-1)
        out.append(nll.sum(1) / (result.targets != run.model.pad_id).sum(1))
    return torch.cat(out) if out else torch.zeros(0)


def _ranked(negatives: Sequence[float] | Tensor, positives: Sequence[float] | Tensor, name: str
            ) -> tuple[np.ndarray, np.ndarray]:
    """Labels (positive: 1) and dense ranks of the scores [n + m]; ranks, since sklearn rejects ±inf and ROC
    depends only on the order of the scores."""
    neg, pos = torch.as_tensor(negatives, dtype=torch.float64), torch.as_tensor(positives, dtype=torch.float64)
    if neg.numel() == 0 or pos.numel() == 0:
        raise ValueError(f"{name}: needs scores of both sets, got {neg.numel()} negatives, {pos.numel()} positives")
    both = torch.cat([neg.flatten(), pos.flatten()])  # (n + m,)
    if bool(torch.isnan(both).any()):
        raise ValueError(f"{name}: scores contain NaN")
    is_pos = np.concatenate([np.zeros(neg.numel()), np.ones(pos.numel())])
    return is_pos, torch.unique(both, return_inverse=True)[1].numpy()


def roc_auc(negatives: Sequence[float] | Tensor, positives: Sequence[float] | Tensor) -> float:
    """Area under the ROC curve of scores where higher means positive: P(pos > neg) + ½ P(pos = neg)."""
    return float(metrics.roc_auc_score(*_ranked(negatives, positives, "roc_auc")))


def roc_curve(negatives: Sequence[float] | Tensor, positives: Sequence[float] | Tensor) -> tuple[Tensor, Tensor]:
    """(false positive rate, true positive rate), each [P + 1] from (0, 0) to (1, 1), one point per distinct score."""
    fpr, tpr, _ = metrics.roc_curve(*_ranked(negatives, positives, "roc_curve"), drop_intermediate=False)
    return torch.from_numpy(fpr).double(), torch.from_numpy(tpr).double()


@dataclass(frozen=True, kw_only=True)
class AnomalyResult:
    scores: list[float]
    """Mean token NLL of each sentence of the data set (higher: more anomalous)."""
    ood_scores: list[float] | None
    """The same for the out-of-domain set, when one is given."""
    auc: float | None
    """ROC AUC of telling out-of-domain (positive) from in-domain sentences by score; None without one."""


def anomaly(run: Run, sentences: Sequence[str], ood: Sequence[str] | None = None) -> AnomalyResult:
    """Anomaly scores of `sentences` (and of `ood`, with the AUC of separating the two sets)."""
    _require_text(run)
    scores = sequence_nll(run, sentences).tolist()
    if ood is None:
        return AnomalyResult(scores=scores, ood_scores=None, auc=None)
    ood_scores = sequence_nll(run, ood).tolist()
    return AnomalyResult(scores=scores, ood_scores=ood_scores, auc=roc_auc(scores, ood_scores))


# ---------------------------------------------------------------------------------------------------------------------
# Search


def nearest(index: Tensor, queries: Tensor, k: int, *, exclude_self: bool = False) -> tuple[Tensor, Tensor]:
    """Cosine top-k: index [M, Z], queries [Q, Z] -> scores [Q, K], indices [Q, K] (ties: lower index first).

    With `exclude_self` (queries are the index), an item is never its own neighbour.
    """
    # Own code: sklearn's NearestNeighbors returns 1 - cosine in argpartition order, so ties come in no fixed order.
    if index.dim() != 2 or queries.dim() != 2 or index.shape[1] != queries.shape[1]:
        raise ValueError(f"nearest: expected [M, Z] and [Q, Z], got {tuple(index.shape)} and {tuple(queries.shape)}")
    scores = F.normalize(queries.double(), dim=1) @ F.normalize(index.double(), dim=1).T  # (Q, M)
    if exclude_self:
        scores.fill_diagonal_(float("-inf"))
    k = min(k, index.shape[0] - int(exclude_self))
    order = torch.sort(-scores, dim=1, stable=True).indices[:, :k]  # (Q, K)
    return scores.gather(1, order), order


def precision_at_k(z: Tensor, labels: Sequence[Hashable], k: int) -> float:
    """Mean over items of the fraction of their k nearest other items (cosine of z [N, Z]) sharing their label.

    Own code: sklearn has no retrieval precision@k, and this one ranks by `nearest` (ties: lower index first)."""
    if z.shape[0] != len(labels) or z.shape[0] < 2:
        raise ValueError(f"precision_at_k: {z.shape[0]} embeddings and {len(labels)} labels (need >= 2 of each)")
    ids = {label: i for i, label in enumerate(dict.fromkeys(labels))}
    codes = torch.tensor([ids[label] for label in labels])
    _, neighbours = nearest(z, z, k, exclude_self=True)  # (N, K)
    return float((codes[neighbours] == codes[:, None]).double().mean())


def search(run: Run, index: Sequence[str], queries: Sequence[str], *, k: int = 5) -> list[list[tuple[int, float]]]:
    """For each query, its k nearest index sentences by cosine of z, as (index position, similarity)."""
    _require_text(run)
    scores, order = nearest(run.encode(index), run.encode(queries), k)
    return [list(zip(o.tolist(), s.tolist())) for o, s in zip(order, scores)]


# ---------------------------------------------------------------------------------------------------------------------
# Decoding z; compression; interpolation


@torch.no_grad()
def generate_ids(run: Run, z: Tensor, *, beam_size: int = 1, batch_size: int = 256) -> list[list[int]]:
    """z [N, Z] -> N token sequences `[bos, ..., eos]`, greedy (or beam search), at most data.max_len tokens."""
    _require_text(run)
    run.model.eval()
    m, out = run.model, []
    kw = dict(max_len=run.config.data.max_len, bos_id=m.bos_id, eos_id=m.eos_id, pad_id=m.pad_id)
    for i in range(0, z.shape[0], batch_size):
        chunk = z[i: i + batch_size].float()
        if beam_size > 1:
            ids, lengths = beam_search(m, chunk, beam_size=beam_size, **kw)
        else:
            ids, lengths = greedy_decode(m, chunk, **kw)
        out += [row[:n].tolist() for row, n in zip(ids, lengths)]
    return out


def decode_z(run: Run, z: Tensor, *, beam_size: int = 1) -> list[str]:
    """z [N, Z] -> N sentences (see `generate_ids`)."""
    return [run.tokenizer.decode(ids) for ids in generate_ids(run, z, beam_size=beam_size)]


def model_fingerprint(run: Run) -> str:
    """sha256 (first 16 hex digits) of the tokenizer and the model's weights: z only decodes with the same run."""
    h = hashlib.sha256(run.tokenizer.serialized())
    for name, value in sorted(run.model.state_dict().items()):
        h.update(name.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def quantize(z: Tensor, mode: str) -> dict[str, np.ndarray]:
    """z [N, Z] -> arrays to store: `z` (float32/float16), or `q` (int8) and `scale` [Z] with z ≈ q · scale."""
    if mode not in QUANTIZE:
        raise ValueError(f"quantize must be one of {', '.join(QUANTIZE)}, got {mode!r}")
    z = z.detach().float()
    if mode == "none":
        return {"z": z.numpy()}
    if mode == "float16":
        return {"z": z.half().numpy()}
    scale = z.abs().amax(0) / 127.0  # (Z,)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.round(z / scale).clamp(-127, 127).to(torch.int8)  # (N, Z), |z - q·scale| <= scale / 2
    return {"q": q.numpy(), "scale": scale.numpy()}


def dequantize(arrays: dict[str, np.ndarray]) -> Tensor:
    """The inverse of `quantize`: z [N, Z] float32."""
    if "q" in arrays:
        return torch.from_numpy(arrays["q"].astype(np.float32) * arrays["scale"][None, :].astype(np.float32))
    return torch.from_numpy(arrays["z"].astype(np.float32))


def compress(run: Run, sentences: Sequence[str], out: str | Path, *, mode: str = "none",
             check: bool = True) -> dict[str, float | int | str]:
    """Store each sentence as z in `out` (.npz, with the model's fingerprint).

    Returns sentences, quantize, text_bytes (UTF-8 of the sentences, a newline each), z_bytes (the file) and ratio;
    with `check`, also token_accuracy, exact_match and bleu of decoding the stored z (what `decompress` gives).
    """
    _require_text(run)
    arrays = quantize(run.encode(sentences), mode)
    meta = {"format": COMPRESS_FORMAT, "quantize": mode, "fingerprint": model_fingerprint(run), "step": run.step}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as f:  # a file object: numpy would otherwise append .npz to any other suffix
        np.savez_compressed(f, meta=np.array(json.dumps(meta)), **arrays)
    text_bytes = sum(len(s.encode("utf-8")) + 1 for s in sentences)
    stats = {"sentences": len(sentences), "quantize": mode, "text_bytes": text_bytes,
             "z_bytes": out.stat().st_size, "ratio": text_bytes / max(1, out.stat().st_size)}
    if check and sentences:
        from seqae.eval.report import score_text, summarize_text

        tokens, lengths = token_batch(run, sentences)
        references = [row[:n].tolist() for row, n in zip(tokens, lengths)]
        items = score_text(run.tokenizer, references, generate_ids(run, dequantize(arrays)))
        overall = summarize_text(items)[-1]
        stats.update(token_accuracy=overall["token_accuracy"], exact_match=overall["exact_match"],
                     bleu=overall["bleu"])
    return stats


def decompress(run: Run, path: str | Path, *, beam_size: int = 1) -> list[str]:
    """Decode the z's of a `compress` file back to sentences (refuses a file made with another run)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        meta = json.loads(str(arrays.pop("meta")))
    except (ValueError, KeyError, OSError) as err:
        raise ValueError(f"{path}: not a seqae compress file ({err})") from None
    if not ({"z"} <= arrays.keys() or {"q", "scale"} <= arrays.keys()):
        raise ValueError(f"{path}: holds {sorted(arrays)}, expected z, or q and scale")
    if meta.get("format") != COMPRESS_FORMAT:
        raise ValueError(f"{path}: compress format {meta.get('format')!r}, this seqae reads {COMPRESS_FORMAT}")
    if meta["fingerprint"] != model_fingerprint(run):
        raise ValueError(f"{path}: made with another model (fingerprint {meta['fingerprint']}, step {meta['step']}); "
                         "decompress needs the run (and checkpoint) that compressed it")
    return decode_z(run, dequantize(arrays), beam_size=beam_size)


def interpolate(run: Run, a: str, b: str, *, steps: int = 5, method: Literal["linear", "slerp"] = "linear",
                beam_size: int = 1) -> list[tuple[float, str]]:
    """Decode `steps` points z(t), t = 0 … 1, between the z's of sentences a and b: (t, sentence) each."""
    if steps < 2:
        raise ValueError(f"interpolate: steps must be >= 2 (both ends included), got {steps}")
    za, zb = run.encode([a, b])
    t = torch.linspace(0, 1, steps)[:, None]  # (S, 1)
    if method == "slerp":
        omega = torch.arccos(F.cosine_similarity(za, zb, dim=0).clamp(-1 + 1e-7, 1 - 1e-7))
        z = (torch.sin((1 - t) * omega) * za + torch.sin(t * omega) * zb) / torch.sin(omega)  # (S, Z)
    elif method == "linear":
        z = (1 - t) * za + t * zb  # (S, Z)
    else:
        raise ValueError(f"interpolate: method must be linear or slerp, got {method!r}")
    return list(zip(t[:, 0].tolist(), decode_z(run, z, beam_size=beam_size)))
