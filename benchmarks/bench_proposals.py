"""Candidate optimisations measured on seqae's own Trainer without editing the library: each variant patches a
fresh Trainer in this process and is timed like the baseline, from the same seed on the same batches.

- `foreach_adamw`: the foreach AdamW seqae used before fused AdamW became its default (so its speedup, below 1,
  is what the change gained);
- `other_gemm`: the linear layers' fp32 GEMM that the baseline's `train.cpu_gemm: auto` did not pick (oneDNN
  where auto picked torch's own BLAS, and the other way round; seqae.models.fast.linear), so 1 / speedup is what auto's
  choice gains; the same as the baseline where torch has no oneDNN;
- `bf16_autocast`: `train.precision: bf16` (autocast around the forward pass and loss); its loss curve is compared
  with fp32's;
- `no_ff_inner_dropout`: no dropout on the feed-forward's inner (ff_dim wide) activations, as in BERT and
  nanoGPT, which drop out only the block outputs; the CPU dropout's mask draw (`bernoulli_`) costs more there
  than the matmul that made the tensor;
- `no_attention_dropout`: attention-probability dropout off, so SDPA can use its fused CPU kernel in training;
- `batch_share` of every variant: the step time spent building batches (noise, collation), i.e. the most that
  DataLoader workers could hide.

The two dropout variants change the regularisation, so their loss curves are not expected to match.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from bench_common import Sizes, Stopwatch, best_window, rate
from torch import nn

VARIANTS: dict[str, dict[str, bool]] = {
    "baseline": {},
    "foreach_adamw": {"foreach": True},
    "other_gemm": {"other_gemm": True},
    "bf16_autocast": {"bf16": True},
    "no_ff_inner_dropout": {"no_ff_dropout": True},
    "no_attention_dropout": {"no_attention_dropout": True},
}
SAME_CURVE = ("foreach_adamw", "other_gemm", "bf16_autocast")
"""Variants that leave the computation's meaning (and random draws) alone: their losses must track fp32's."""


def _foreach_optimizer(model: nn.Module, cfg) -> torch.optim.Optimizer:
    """seqae.train.make_optimizer's groups with `foreach=True` instead of `fused=True`."""
    from seqae.train import make_optimizer

    groups = [{"params": g["params"], "weight_decay": g["weight_decay"]}
              for g in make_optimizer(model, cfg).param_groups]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, foreach=True)


def _patch_dropout(model: nn.Module, *, ff: bool, attention: bool) -> int:
    """Turn off the chosen dropouts in a seqae model; returns how many modules were changed."""
    from seqae.models.layers import FeedForward, MultiHeadAttention

    changed = 0
    for module in model.modules():
        if ff and isinstance(module, FeedForward):
            module.net[2] = nn.Identity()  # Linear, GELU, Dropout, Linear
            changed += 1
        if attention and isinstance(module, MultiHeadAttention):
            module.dropout = 0.0
            changed += 1
    return changed


def run_variant(config, run_dir: Path, sizes: Sizes, *, foreach: bool = False, other_gemm: bool = False,
                bf16: bool = False, no_ff_dropout: bool = False, no_attention_dropout: bool = False,
                curve: bool = False) -> dict[str, Any]:
    """Losses of every step (warm-up included; with `curve`, at least `sizes.curve_steps` of them) and the
    throughput of the fastest of `sizes.windows` windows of `sizes.proposal_steps` timed steps."""
    from seqae.models.fast import linear
    from seqae.train import make_trainer

    run_dir.mkdir(parents=True, exist_ok=True)  # Trainer expects the folder (pretrain() makes it)
    if bf16:
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, precision="bf16"))
    if other_gemm:
        linear.set_cpu_gemm(config.train.cpu_gemm)
        other = "blas" if linear.cpu_gemm() == "onednn" or not linear.onednn_available() else "onednn"
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, cpu_gemm=other))
    trainer = make_trainer(config, run_dir)
    patched = _patch_dropout(trainer.model, ff=no_ff_dropout, attention=no_attention_dropout)
    if foreach:
        trainer.optimizer = _foreach_optimizer(trainer.model, config.train)
    batch_watch, optim_watch = Stopwatch(), Stopwatch()
    make_batch, optim_step = trainer.task.batch, trainer.optimizer.step

    def timed_batch(*args, **kwargs):
        with batch_watch:
            return make_batch(*args, **kwargs)

    def timed_step(*args, **kwargs):
        with optim_watch:
            return optim_step(*args, **kwargs)

    trainer.task.batch, trainer.optimizer.step = timed_batch, timed_step
    losses, windows = [_loss(trainer.train_step()) for _ in range(sizes.warmup)], []
    for _ in range(sizes.windows):
        batch_watch.seconds = optim_watch.seconds = 0.0
        before = _sentences(trainer)
        with Stopwatch() as watch:
            losses += [_loss(trainer.train_step()) for _ in range(sizes.proposal_steps)]
        windows.append({"seconds": watch.seconds, "sentences_per_s": rate(_sentences(trainer) - before, watch.seconds),
                        "batch_share": batch_watch.seconds / max(watch.seconds, 1e-9),
                        "optimizer_share": optim_watch.seconds / max(watch.seconds, 1e-9)})
    if curve:  # untimed steps, only for the loss-curve comparison
        losses += [_loss(trainer.train_step()) for _ in range(sizes.curve_steps - len(losses))]
    return {**best_window(windows), "losses": losses, "patched_modules": patched, "cpu_gemm": linear.cpu_gemm()}


def _loss(record: dict[str, Any] | None) -> float | None:
    return None if record is None else record["loss"]


def _sentences(trainer) -> int:
    """Sentences the trainer has consumed so far (whole epochs plus the batches of the current one)."""
    done = sum(len(b) for b in trainer.batches[: trainer.batch_index])
    return done + sum(len(b) for e in range(trainer.epoch) for b in trainer.batcher.batches(e))


def run_proposals(make_config, workdir: Path, sizes: Sizes) -> dict[str, Any]:
    """Every variant on a fresh Trainer with the same seed; speed and loss differences against the baseline.

    `bf16_autocast` is skipped, with the measured reason, on a CPU without bf16 arithmetic: there its steps ran
    30x slower than fp32's (21 s a step on 2 AMD EPYC Zen 3 cores; the candidates ran past the suite's 15-minute
    limit)."""
    from seqae.models.fast.linear import BF16_SLOW, bf16_slowdown

    slowdown = bf16_slowdown()
    skipped = {} if slowdown <= BF16_SLOW else {"bf16_autocast": {
        "skipped": f"a bf16 matrix product ran {slowdown:.1f}x slower than fp32 on this CPU (no bf16 arithmetic)",
        "bf16_slowdown": slowdown}}
    results = {name: skipped.get(name) or run_variant(make_config(), workdir / name, sizes, **flags,
                                                      curve=name == "baseline" or name in SAME_CURVE)
               for name, flags in VARIANTS.items()}
    base = results["baseline"]
    for name, result in results.items():
        if "skipped" in result:
            continue
        pairs = [(a, b) for a, b in zip(base["losses"], result["losses"]) if a is not None and b is not None]
        result["curve_steps_compared"] = len(pairs)
        result["speedup"] = result["sentences_per_s"] / max(base["sentences_per_s"], 1e-9)
        result["curve_comparable"] = name in SAME_CURVE
        result["max_abs_loss_diff"] = max((abs(a - b) for a, b in pairs), default=None)
        result["max_rel_loss_diff"] = max((abs(a - b) / abs(a) for a, b in pairs), default=None)
    return results
