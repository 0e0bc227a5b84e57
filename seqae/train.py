"""Pretraining a token sequence autoencoder: one plain loop with exact resume.

`pretrain(config, run_dir)` trains (or resumes) the run in `run_dir`:
tokenizer.model, config.yaml, metrics.jsonl (one JSON record per logged step / evaluation),
checkpoints/, and at the end metrics.json with the final evaluation.
Resuming restores model, optimizer, RNG state and data position (epoch, batch), and cuts the metrics log back to
the checkpoint's step, so a resumed run logs the same losses as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from tqdm import tqdm

from seqae.checkpoint import load_latest, save_checkpoint
from seqae.config import Config, ConfigError, load_config_dict, to_dict
from seqae.data.batching import TokenBudgetBatcher


def lr_at(step: int, cfg) -> float:
    """Learning rate after `step` optimizer steps: linear warm-up, then cosine/linear decay or constant."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    if cfg.schedule == "constant":
        return cfg.lr
    decay = 0.5 * (1 + math.cos(math.pi * progress)) if cfg.schedule == "cosine" else 1 - progress
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * decay)


def resolve_config(config: Config, run_dir: Path) -> Config:
    """Write config.yaml for a new run; for an existing run, insist the config is the one it was started with."""
    path = run_dir / "config.yaml"
    if path.is_file():
        saved = load_config_dict(yaml.safe_load(path.read_text()))
        if saved != config:
            old, new = _flatten(to_dict(saved)), _flatten(to_dict(config))
            diff = [k for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)]
            raise ConfigError(f"{run_dir}: the run was started with another config (differs in: {', '.join(diff)}); "
                              "use a new run directory")
        return saved
    run_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
    return config


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def make_optimizer(model: torch.nn.Module, cfg) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases, norms and embeddings."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.ndim >= 2 and "embedding" not in name and "positions" not in name else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, foreach=True)


class _Log:
    """The JSONL metrics log; on resume it is cut back to the checkpoint's step."""

    def __init__(self, path: Path, resume_step: int) -> None:
        self.path = path
        kept = []
        if path.is_file() and resume_step > 0:
            kept = [line for line in path.read_text().splitlines() if json.loads(line).get("step", 0) <= resume_step]
        path.write_text("".join(line + "\n" for line in kept))

    def write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


def build_task(config: Config, run_dir: Path):
    """The task object for `config.task`."""
    if config.task == "speech":
        from seqae.tasks.speech import SpeechTask

        return SpeechTask(config, run_dir)
    from seqae.tasks.text import TextTask

    return TextTask(config, run_dir)


def pretrain(config: Config, run_dir: str | Path, *, stop_after: int | None = None) -> dict[str, Any]:
    """Train or resume; returns the final metrics (also written to run_dir/metrics.json).

    `stop_after` stops the loop after that many steps without a final checkpoint, as a crash would (tests).
    """
    run_dir = Path(run_dir)
    config = resolve_config(config, run_dir)
    t = config.train
    if t.threads:
        torch.set_num_threads(t.threads)
    torch.manual_seed(t.seed)
    task = build_task(config, run_dir)
    model = task.model
    (run_dir / "data_stats.json").write_text(json.dumps(task.data.stats, indent=2))
    print(f"{task.summary()}; details in {run_dir / 'data_stats.json'}")
    optimizer = make_optimizer(model, t)
    batcher = TokenBudgetBatcher(task.train_lengths(), max_tokens=config.data.max_tokens,
                                 max_sentences=config.data.max_sentences, shuffle=True, seed=t.seed)
    step, epoch, batch_index = 0, 0, 0
    ckpt = load_latest(run_dir)
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        step, epoch, batch_index = ckpt["step"], ckpt["data"]["epoch"], ckpt["data"]["batch"]
        print(f"resuming {run_dir} from step {step} (epoch {epoch}, batch {batch_index})")
    log = _Log(run_dir / "metrics.jsonl", step)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {config.model.encoder} encoder, {config.model.decoder} decoder, {n_params / 1e6:.2f}M parameters")

    def checkpoint() -> None:
        save_checkpoint(run_dir, step, {"config": to_dict(config), "model": model.state_dict(),
                                        "optimizer": optimizer.state_dict(),
                                        "rng": {"torch": torch.get_rng_state()},
                                        "data": {"epoch": epoch, "batch": batch_index}}, keep=t.keep_checkpoints)

    bar = tqdm(total=t.max_steps, initial=step, disable=not t.progress, dynamic_ncols=True, desc="pretrain")
    batches = batcher.batches(epoch)
    window_tokens, window_start = 0, time.perf_counter()
    model.train()
    while step < t.max_steps:
        if stop_after is not None and step >= stop_after:
            bar.close()
            return {}
        losses, stats_sum = [], {}
        for module in model.modules():  # step-dependent schedules (KL annealing) are pure functions of the step
            if hasattr(module, "set_step"):
                module.set_step(step)
        for _ in range(t.grad_accum):
            if batch_index >= len(batches):
                epoch, batch_index = epoch + 1, 0
                batches = batcher.batches(epoch)
            batch = task.batch(batches[batch_index], epoch)
            batch_index += 1
            loss, stats = task.loss(batch)
            (loss / t.grad_accum).backward()
            losses.append(float(loss.detach()))
            for k, v in stats.items():
                stats_sum[k] = stats_sum.get(k, 0) + v
        lr = lr_at(step, t)
        for group in optimizer.param_groups:
            group["lr"] = lr
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip if t.grad_clip > 0 else math.inf)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        window_tokens += stats_sum["tokens"]
        loss_value = sum(losses) / len(losses)
        if step % t.log_every == 0 or step == t.max_steps:
            elapsed = time.perf_counter() - window_start
            record = {"step": step, "epoch": epoch, "loss": loss_value, "lr": lr, "grad_norm": float(grad_norm),
                      **{k: v / t.grad_accum for k, v in stats_sum.items() if k != "tokens"},
                      "tokens_per_s": window_tokens / max(elapsed, 1e-9)}
            log.write(record)
            bar.set_postfix(loss=f"{loss_value:.3f}", tok_s=f"{record['tokens_per_s']:.0f}")
            window_tokens, window_start = 0, time.perf_counter()
        bar.update(1)
        if t.eval_every and step % t.eval_every == 0 and step < t.max_steps:
            for split, result in task.evaluate(limit=config.data.eval_sentences).items():
                log.write({"step": step, "eval": split, **result})
            model.train()
        if step % t.checkpoint_every == 0 or step == t.max_steps:
            checkpoint()
    bar.close()
    model.eval()
    metrics = {"step": t.max_steps, **task.final_metrics()}
    log.write({"eval": "final", **metrics})
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
