"""Held-out evaluation of a token autoencoder: teacher-forced accuracy and greedy/beam reconstruction."""

from __future__ import annotations

from typing import Any, Sequence

import torch

from seqae.data.batching import TokenBudgetBatcher
from seqae.eval.metrics import reconstruction_counts, short_exact_counts, teacher_forced_accuracy
from seqae.frontend.collate import collate_tokens
from seqae.generate import beam_search, greedy_decode


@torch.no_grad()
def reconstruct_ids(model, tokens: torch.Tensor, lengths: torch.Tensor, *, max_len: int,
                    beam_size: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode then decode: tokens [B, T] -> generated tokens [B, L] and lengths [B]."""
    was_training = model.training
    model.eval()
    z, _, _ = model.encode(tokens, lengths)
    out = generate_from_z(model, z, max_len=max_len, beam_size=beam_size)
    model.train(was_training)
    return out


@torch.no_grad()
def generate_from_z(model, z: torch.Tensor, *, max_len: int, beam_size: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """z [B, Z] -> generated tokens [B, L] and lengths [B]: greedy, or beam search when beam_size > 1."""
    ids = dict(bos_id=model.bos_id, eos_id=model.eos_id, pad_id=model.pad_id)
    if beam_size > 1:
        return beam_search(model, z, beam_size=beam_size, max_len=max_len, **ids)
    return greedy_decode(model, z, max_len=max_len, **ids)


@torch.no_grad()
def evaluate_tokens(model, sequences: Sequence[Sequence[int]], *, max_len: int, beam_size: int = 1,
                    max_tokens: int = 8192, sources: Sequence[Sequence[int]] | None = None) -> dict[str, Any]:
    """Mean loss, teacher-forced token accuracy, and reconstruction token accuracy / exact match (also over the
    sequences of at most 20 pieces: `exact_match_le20`, nan when there are none).

    Reconstruction decodes up to `max_len` tokens from z alone (greedy, or beam search when beam_size > 1).
    With `sources` (e.g. corrupted inputs), z comes from sources[i] and the reference is sequences[i].
    """
    if not sequences:
        return {"loss": float("nan"), "tf_token_accuracy": float("nan"), "token_accuracy": float("nan"),
                "exact_match": float("nan"), "sequences": 0, "exact_match_le20": float("nan")}
    was_training = model.training
    model.eval()
    totals = {"loss_sum": 0.0, "tf_correct": 0, "tf_total": 0, "correct": 0, "total": 0, "exact": 0, "sequences": 0,
              "short_exact": 0, "short": 0}
    batcher = TokenBudgetBatcher([len(s) for s in sequences], max_tokens=max_tokens, shuffle=False)
    for batch in batcher.batches(0):
        tokens, lengths = collate_tokens([sequences[i] for i in batch], model.pad_id)
        src, src_lengths = (tokens, lengths) if sources is None else collate_tokens([sources[i] for i in batch],
                                                                                     model.pad_id)
        out = model(src, src_lengths, tokens)
        _, stats = model.loss(out)
        correct, total = teacher_forced_accuracy(out.logits, out.targets, model.pad_id)
        totals["loss_sum"] += stats["ce"] * total
        totals["tf_correct"] += correct
        totals["tf_total"] += total
        generated, gen_lengths = reconstruct_ids(model, src, src_lengths, max_len=max_len, beam_size=beam_size)
        counts = reconstruction_counts(generated, gen_lengths, tokens, lengths)
        for k, v in {**counts, **short_exact_counts(generated, gen_lengths, tokens, lengths)}.items():
            totals[k] += v
    model.train(was_training)
    return {"loss": totals["loss_sum"] / totals["tf_total"],
            "tf_token_accuracy": totals["tf_correct"] / totals["tf_total"],
            "token_accuracy": totals["correct"] / totals["total"],
            "exact_match": totals["exact"] / totals["sequences"], "sequences": totals["sequences"],
            "exact_match_le20": totals["short_exact"] / totals["short"] if totals["short"] else float("nan")}
