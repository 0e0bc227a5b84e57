"""Compression: each sentence stored as its z (float32, float16, or int8 with a per-dimension symmetric scale) in an
.npz with the model's fingerprint; decompression decodes z greedily, so with `quantize="none"` it gives exactly
`TextRun.reconstruct`. Dimension letters: N sentences, Z bottleneck width."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from seqae.eval.text import score_text, summarize_text
from seqae.runs import TextRun, require_text

QUANTIZE = ("none", "float16", "int8")
COMPRESS_FORMAT = 1


def model_fingerprint(run: TextRun) -> str:
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


def compress(run: TextRun, sentences: Sequence[str], out: str | Path, *, mode: str = "none",
             check: bool = True) -> dict[str, float | int | str]:
    """Store each sentence as z in `out` (.npz, with the model's fingerprint).

    Returns sentences, quantize, text_bytes (UTF-8 of the sentences, a newline each), z_bytes (the file) and ratio;
    with `check`, also token_accuracy, exact_match and bleu of decoding the stored z (what `decompress` gives).
    """
    require_text(run, "compress")
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
        tokens, lengths = run.batch(sentences)
        references = [row[:n].tolist() for row, n in zip(tokens, lengths)]
        items = score_text(run.tokenizer, references, run.generate_ids(dequantize(arrays)))
        overall = summarize_text(items)[-1]
        stats.update(token_accuracy=overall["token_accuracy"], exact_match=overall["exact_match"],
                     bleu=overall["bleu"])
    return stats


def decompress(run: TextRun, path: str | Path, *, beam_size: int = 1) -> list[str]:
    """Decode the z's of a `compress` file back to sentences (refuses a file made with another run)."""
    require_text(run, "decompress")
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
    return run.decode(dequantize(arrays), beam_size=beam_size)
