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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from tqdm import tqdm

from seqae.checkpoint import load_latest, save_checkpoint
from seqae.config import Config, ConfigError, load_config_dict, to_dict
from seqae.data.batching import TokenBudgetBatcher, collate_tokens
from seqae.data.text import encode_lines, load_text_lines
from seqae.evaluate import evaluate_tokens
from seqae.models.builder import build_token_autoencoder
from seqae.tokenizer import Tokenizer, train_tokenizer


@dataclass
class TextData:
    train: list[list[int]]
    heldout: list[list[int]]
    stats: dict[str, Any]


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


def prepare_text(config: Config, run_dir: Path) -> tuple[Tokenizer, TextData]:
    """Read the corpora, train (or load) the tokenizer, encode; every skip is counted in the stats."""
    d = config.data
    train_lines, train_stats = load_text_lines(d.train, split=d.train_split, text_column=d.text_column,
                                               hub_config=d.hub_config, encoding_errors=d.encoding_errors)
    if d.max_train_sentences is not None:
        train_lines = train_lines[: d.max_train_sentences]
    if d.heldout is None:
        cut = max(1, round(len(train_lines) * d.heldout_fraction))
        train_lines, heldout_lines, heldout_stats = train_lines[cut:], train_lines[:cut], None
    else:
        heldout_lines, heldout_stats = load_text_lines(d.heldout, split=d.heldout_split, text_column=d.text_column,
                                                       hub_config=d.hub_config, encoding_errors=d.encoding_errors)
    tokenizer = _tokenizer(config, run_dir, train_lines)
    train, train_enc = encode_lines(train_lines, tokenizer, max_len=d.max_len, overlong=d.overlong)
    heldout, heldout_enc = encode_lines(heldout_lines, tokenizer, max_len=d.max_len, overlong=d.overlong)
    stats = {"train_read": train_stats.as_dict(), "train_encode": train_enc.as_dict(),
             "heldout_read": heldout_stats.as_dict() if heldout_stats else "split from train",
             "heldout_encode": heldout_enc.as_dict(), "train_sequences": len(train), "heldout_sequences": len(heldout)}
    if not train:
        raise ConfigError(f"data.train: no usable sentences in {d.train} ({stats})")
    return tokenizer, TextData(train=train, heldout=heldout, stats=stats)


def _tokenizer(config: Config, run_dir: Path, lines: list[str]) -> Tokenizer:
    path = run_dir / "tokenizer.model"
    if path.is_file():
        return Tokenizer.load(path)
    if config.tokenizer.path is not None:
        source = Tokenizer.load(config.tokenizer.path)
        path.write_bytes(source.serialized())
        return Tokenizer.load(path)
    return train_tokenizer(lines, run_dir / "tokenizer", vocab_size=config.tokenizer.vocab_size,
                           model_type=config.tokenizer.model_type, seed=config.train.seed)


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
    tokenizer, data = prepare_text(config, run_dir)
    (run_dir / "data_stats.json").write_text(json.dumps(data.stats, indent=2))
    print(f"data: {data.stats['train_sequences']} train / {data.stats['heldout_sequences']} held-out sequences; "
          f"vocab {tokenizer.vocab_size}; details in {run_dir / 'data_stats.json'}")
    model = build_token_autoencoder(config.model, tokenizer.vocab_size)
    optimizer = make_optimizer(model, t)
    batcher = TokenBudgetBatcher([len(s) for s in data.train], max_tokens=config.data.max_tokens,
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
        for _ in range(t.grad_accum):
            if batch_index >= len(batches):
                epoch, batch_index = epoch + 1, 0
                batches = batcher.batches(epoch)
            tokens, lengths = collate_tokens([data.train[i] for i in batches[batch_index]], tokenizer.pad_id)
            batch_index += 1
            out = model(tokens, lengths)
            loss, stats = model.loss(out, label_smoothing=t.label_smoothing)
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
            result = evaluate_tokens(model, data.heldout[: config.data.eval_sentences], tokenizer,
                                     max_len=config.data.max_len)
            log.write({"step": step, "eval": "heldout", **result})
            model.train()
        if step % t.checkpoint_every == 0 or step == t.max_steps:
            checkpoint()
    bar.close()
    return finish(config, run_dir, model, tokenizer, data, log)


def finish(config: Config, run_dir: Path, model, tokenizer: Tokenizer, data: TextData, log: _Log) -> dict[str, Any]:
    """Final evaluation on the held-out set and the training set; writes metrics.json."""
    kw = {"max_len": config.data.max_len, "beam_size": config.train.beam_size}
    heldout = evaluate_tokens(model, data.heldout, tokenizer, **kw)
    train = evaluate_tokens(model, data.train, tokenizer, **kw)
    metrics = {"step": config.train.max_steps,
               "train_exact_match": train["exact_match"], "train_token_accuracy": train["token_accuracy"],
               "heldout_exact_match": heldout["exact_match"], "heldout_token_accuracy": heldout["token_accuracy"],
               "heldout_tf_token_accuracy": heldout["tf_token_accuracy"], "heldout_loss": heldout["loss"],
               "train_sequences": len(data.train), "heldout_sequences": len(data.heldout)}
    log.write({"step": config.train.max_steps, "eval": "final", **metrics})
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
