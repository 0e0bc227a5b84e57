"""Interpolation: decode points on the line (or great circle) between the z's of two sentences.
Dimension letters: S points, Z bottleneck width."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from seqae.runs import TextRun, require_text


def interpolate(run: TextRun, a: str, b: str, *, steps: int = 5, method: Literal["linear", "slerp"] = "linear",
                beam_size: int = 1) -> list[tuple[float, str]]:
    """Decode `steps` points z(t), t = 0 … 1, between the z's of sentences a and b: (t, sentence) each."""
    require_text(run, "interpolate")
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
    return list(zip(t[:, 0].tolist(), run.decode(z, beam_size=beam_size)))
