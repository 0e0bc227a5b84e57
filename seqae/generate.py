"""Generation from z: batched greedy decoding and beam search for any model with the step API.

A model for generation has `start(z) -> state`, `step(prev [B], state) -> (log_probs [B, V], state)` and
`reorder(state, index) -> state`. Dimension letters: B batch, K beam, V vocabulary, L generated length.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _lengths(tokens: Tensor, eos_id: int) -> Tensor:
    """tokens: [B, L] starting with bos -> length up to and including the first eos (L if none)."""
    is_eos = tokens == eos_id
    first = torch.where(is_eos.any(1), is_eos.float().argmax(1), torch.full_like(tokens[:, 0], tokens.shape[1] - 1))
    return first + 1


@torch.no_grad()
def greedy_decode(model, z: Tensor, *, max_len: int, bos_id: int = 2, eos_id: int = 3,
                  pad_id: int = 0) -> tuple[Tensor, Tensor]:
    """z: [B, Z] -> tokens [B, L] (bos first, pad after eos) and lengths [B] (bos and eos counted)."""
    B = z.shape[0]
    prev = torch.full((B,), bos_id, dtype=torch.long, device=z.device)
    finished = torch.zeros(B, dtype=torch.bool, device=z.device)
    out = [prev]
    state = model.start(z)
    for _ in range(max_len - 1):
        log_probs, state = model.step(prev, state)
        log_probs[:, pad_id] = float("-inf")  # pad only ever follows eos
        prev = log_probs.argmax(-1).masked_fill(finished, pad_id)
        out.append(prev)
        finished |= prev == eos_id
        if bool(finished.all()):
            break
    tokens = torch.stack(out, dim=1)  # (B, L)
    return tokens, _lengths(tokens, eos_id)


@torch.no_grad()
def beam_search(model, z: Tensor, *, beam_size: int, max_len: int, length_penalty: float = 1.0,
                bos_id: int = 2, eos_id: int = 3, pad_id: int = 0) -> tuple[Tensor, Tensor]:
    """Beam search from z: [B, Z] -> best tokens [B, L] and lengths [B].

    Finished hypotheses keep their score and grow only by pad; the best is chosen by score / length**penalty.
    """
    B, K = z.shape[0], beam_size
    z = z.repeat_interleave(K, dim=0)  # (B·K, Z)
    state = model.start(z)
    prev = torch.full((B * K,), bos_id, dtype=torch.long, device=z.device)
    scores = torch.full((B, K), float("-inf"), device=z.device)
    scores[:, 0] = 0.0  # all beams start identical: keep one
    finished = torch.zeros(B * K, dtype=torch.bool, device=z.device)
    history = prev[:, None]  # (B·K, 1)
    for _ in range(max_len - 1):
        log_probs, state = model.step(prev, state)  # (B·K, V)
        V = log_probs.shape[-1]
        log_probs = log_probs.masked_fill(finished[:, None], float("-inf"))
        log_probs[:, pad_id] = torch.where(finished, 0.0, float("-inf"))
        candidates = (scores.view(B * K, 1) + log_probs).view(B, K * V)
        scores, flat = candidates.topk(K, dim=1)  # (B, K)
        beam = flat // V
        token = flat % V
        index = (torch.arange(B, device=z.device)[:, None] * K + beam).view(-1)  # (B·K,)
        state = model.reorder(state, index)
        history = torch.cat([history.index_select(0, index), token.view(-1, 1)], dim=1)
        finished = finished.index_select(0, index) | (token.view(-1) == eos_id)
        prev = token.view(-1)
        if bool(finished.all()):
            break
    lengths = _lengths(history, eos_id).view(B, K)
    normalized = scores / lengths.float().pow(length_penalty)
    best = normalized.argmax(dim=1)  # (B,)
    pick = torch.arange(B, device=z.device) * K + best
    return history.index_select(0, pick), lengths.view(-1).index_select(0, pick)
