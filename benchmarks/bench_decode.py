"""Generation cost: cached vs uncached Transformer greedy decoding, and beam search vs greedy.

Dimension letters: B batch, L generated length, V vocabulary, K beam.
eos is never chosen here, so every run generates exactly L tokens and the lengths are the same for all.
"""

from __future__ import annotations

from typing import Any

import torch
from bench_common import Sizes, Stopwatch
from torch import Tensor


class NoEos:
    """The step API of a model with eos suppressed, so decoding always runs to max_len."""

    def __init__(self, model, eos_id: int) -> None:
        self.model, self.eos_id = model, eos_id

    def start(self, z: Tensor):
        return self.model.start(z)

    def step(self, prev: Tensor, state):
        log_probs, state = self.model.step(prev, state)
        log_probs[:, self.eos_id] = float("-inf")
        return log_probs, state

    def reorder(self, state, index: Tensor):
        return self.model.reorder(state, index)


def build_model(sizes: Sizes):
    """An untrained Transformer/Transformer autoencoder at the suite's sizes."""
    from seqae.config import ModelConfig, RegularizerConfig
    from seqae.models.builder import build_token_autoencoder

    cfg = ModelConfig(encoder="transformer", decoder="transformer", embed_dim=sizes.width, hidden_dim=sizes.width,
                      decoder_dim=sizes.width, encoder_layers=sizes.layers, decoder_layers=sizes.layers,
                      num_heads=sizes.heads, ff_dim=sizes.ff, pooling="cls", bottleneck_dim=sizes.width,
                      memory_slots=1, max_positions=max(512, max(sizes.decode_lengths)))
    torch.manual_seed(0)
    return build_token_autoencoder(cfg, sizes.vocab, regularize=RegularizerConfig()).eval()


@torch.no_grad()
def uncached_greedy(model, z: Tensor, length: int, *, bos_id: int = 2, eos_id: int = 3, pad_id: int = 0) -> Tensor:
    """Greedy decoding that recomputes the whole teacher-forced pass on the growing prefix each step: [B, L]."""
    tokens = torch.full((z.shape[0], 1), bos_id, dtype=torch.long)  # (B, 1)
    for _ in range(length - 1):
        h = model.decoder(model.embedding(tokens), z)  # (B, t, H)
        log_probs = torch.log_softmax(model.logits(h[:, -1]).float(), dim=-1)  # (B, V)
        log_probs[:, eos_id] = float("-inf")
        log_probs[:, pad_id] = float("-inf")
        tokens = torch.cat([tokens, log_probs.argmax(-1, keepdim=True)], dim=1)
    return tokens


def _best_of(fn, repeats: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeats):
        with Stopwatch() as watch:
            out = fn()
        best = min(best, watch.seconds)
    return best, out


def _alternating(fns: dict[str, Any], repeats: int) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Time each of `fns` `repeats` times, taking turns, so that a slow minute on a shared machine slows both sides
    of a ratio and not one: the seconds of every call, and each function's last result."""
    seconds: dict[str, list[float]] = {name: [] for name in fns}
    outs: dict[str, Any] = {}
    for _ in range(repeats):
        for name, fn in fns.items():
            with Stopwatch() as watch:
                outs[name] = fn()
            seconds[name].append(watch.seconds)
    return seconds, outs


def run_decode(sizes: Sizes, threads: int) -> dict[str, Any]:
    """Per length: seconds for cached and uncached greedy decoding (best of a few), their ratio, and whether
    both produced the same tokens; then beam search vs greedy at the middle length."""
    from seqae.generate import beam_search, greedy_decode

    torch.set_num_threads(threads)
    model = build_model(sizes)
    fast = NoEos(model, model.eos_id)
    z = torch.randn(sizes.decode_batch, sizes.width, generator=torch.Generator().manual_seed(0))  # (B, Z)
    out: dict[str, Any] = {"batch": sizes.decode_batch, "lengths": {}}
    for length in sizes.decode_lengths:
        repeats = 5 if length <= 64 else 1
        seconds, outs = _alternating({"cached": lambda: greedy_decode(fast, z, max_len=length)[0],
                                      "uncached": lambda: uncached_greedy(model, z, length)}, repeats)
        cached_s, uncached_s = min(seconds["cached"]), min(seconds["uncached"])
        out["lengths"][str(length)] = {
            "cached_s": cached_s, "uncached_s": uncached_s, "speedup": uncached_s / max(cached_s, 1e-9),
            "cached_tokens_per_s": sizes.decode_batch * (length - 1) / max(cached_s, 1e-9),
            "cached_every_s": [round(s, 4) for s in seconds["cached"]],
            "uncached_every_s": [round(s, 4) for s in seconds["uncached"]],
            "same_tokens": bool(torch.equal(outs["cached"], outs["uncached"]))}
    length = 64 if 64 in sizes.decode_lengths else sizes.decode_lengths[-1]
    greedy_s, _ = _best_of(lambda: greedy_decode(fast, z, max_len=length), 3)
    beam_s, _ = _best_of(lambda: beam_search(fast, z, beam_size=sizes.beam, max_len=length), 3)
    out["beam"] = {"length": length, "beam_size": sizes.beam, "greedy_s": greedy_s, "beam_s": beam_s,
                   "beam_over_greedy": beam_s / max(greedy_s, 1e-9)}
    return out
