"""Fine-tuning an exported encoder: CTC speech recognition and seq2seq translation, pretrained or from scratch.

`finetune(config, run_dir)` trains (or resumes) one run with the pretraining loop of `seqae.train` (same run
directory: config.yaml, metrics.jsonl, checkpoints/, data_stats.json, metrics.json; same resume and progress
bar). A fine-tuning task has the interface the loop drives (`model`, `data.stats`, `summary()`,
`train_lengths()`, `batch(indices, epoch)`, `loss(batch)`, `evaluate(limit)`, `final_metrics()`); the tasks are
`seqae.finetune.asr.AsrTask` and `seqae.finetune.translate.TranslateTask`.

Pretrained and scratch runs differ only in the encoder's initial weights: the encoder is always built from the
export's config.json with the seed, then (pretrained) loaded with the export's weights, and the heads are built
after it from the same random state, so they start identical too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from seqae.config import ConfigError
from seqae.export import ExportError, PretrainedEncoder, build_modules, load_encoder
from seqae.finetune.config import FinetuneConfig, load_finetune_config
from seqae.train import Trainer, resolve_config

__all__ = ["FinetuneConfig", "ScaledLrAdamW", "finetune", "finetune_command", "init_encoder",
           "labelled_subset", "load_finetune_config", "make_finetune_optimizer"]


def _load_export(path: str, key: str) -> PretrainedEncoder:
    try:
        return load_encoder(path)
    except (FileNotFoundError, ExportError) as err:
        raise ConfigError(f"{key}: {err}") from None


def init_encoder(config: FinetuneConfig, *, kind: str) -> PretrainedEncoder:
    """The encoder of a fine-tuning run: the architecture and front end (tokenizer, or features + CMVN) of
    `config.encoder_spec`, built with random weights after seeding with train.seed, then given the export's
    weights when `config.encoder` is set. `kind` ("text"/"speech") is what the task needs."""
    ref = _load_export(config.encoder_spec, "architecture" if config.architecture else "encoder")
    if ref.kind != kind:
        raise ConfigError(f"encoder: {config.encoder_spec} is a {ref.kind} encoder; task {config.task} needs {kind}")
    weights = ref
    if config.encoder is not None and config.architecture is not None:
        weights = _load_export(config.encoder, "encoder")
        if (weights.config["encoder"], weights.config["frontend"]) != (ref.config["encoder"], ref.config["frontend"]):
            raise ConfigError(f"encoder: {config.encoder} and architecture: {config.architecture} describe "
                              "different encoders (config.json encoder/frontend sections differ)")
    torch.manual_seed(config.train.seed)
    stack, bottleneck = build_modules(ref.config)
    encoder = PretrainedEncoder(config=ref.config, encoder=stack, bottleneck=bottleneck, tokenizer=ref.tokenizer,
                                feature_extractor=ref.feature_extractor, cmvn=ref.cmvn)
    if config.pretrained:
        encoder.load_state_dict(weights.state_dict(), strict=True)
    return encoder


def freeze(module: nn.Module) -> None:
    """Turn off gradients of every parameter of `module`."""
    for p in module.parameters():
        p.requires_grad_(False)


def labelled_subset(n: int, fraction: float, seed: int) -> list[int]:
    """Sorted indices of round(fraction × n) examples (at least 1), a seeded uniform sample of range(n)."""
    if n < 1:
        raise ValueError("no training examples to draw labels from")
    keep = max(1, round(fraction * n))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return sorted(order[:keep].tolist())


class ScaledLrAdamW(torch.optim.AdamW):
    """AdamW whose parameter groups carry an `lr_scale`: the training loop sets one learning rate on every
    group before each step; a group steps with lr × lr_scale (the encoder's own learning rate)."""

    @torch.no_grad()
    def step(self, closure=None):
        base = [group["lr"] for group in self.param_groups]
        for group in self.param_groups:
            group["lr"] = group["lr"] * group.get("lr_scale", 1.0)
        try:
            return super().step(closure)
        finally:
            for group, lr in zip(self.param_groups, base):
                group["lr"] = lr


def make_finetune_optimizer(model: nn.Module, train_cfg, encoder_lr: float | None) -> ScaledLrAdamW:
    """AdamW over the trainable parameters: encoder (`encoder.*`, lr_scale encoder_lr / train.lr) and heads,
    each with and without weight decay (none on biases, norms, embeddings)."""
    scale = 1.0 if encoder_lr is None else encoder_lr / train_cfg.lr
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        decay = p.ndim >= 2 and "embedding" not in name and "positions" not in name
        groups.setdefault((name.startswith("encoder."), decay), []).append(p)
    params = [{"params": ps, "weight_decay": train_cfg.weight_decay if decay else 0.0,
               "lr_scale": scale if is_encoder else 1.0} for (is_encoder, decay), ps in sorted(groups.items())]
    return ScaledLrAdamW(params, lr=train_cfg.lr, betas=train_cfg.betas, foreach=True)


def build_finetune_task(config: FinetuneConfig, run_dir: Path):
    """The task object for `config.task`."""
    if config.task == "asr":
        from seqae.finetune.asr import AsrTask

        return AsrTask(config, run_dir)
    from seqae.finetune.translate import TranslateTask

    return TranslateTask(config, run_dir)


def finetune(config: FinetuneConfig, run_dir: str | Path, *, stop_after: int | None = None) -> dict[str, Any]:
    """Fine-tune or resume; returns the final metrics (also written to run_dir/metrics.json).

    `stop_after` stops the loop after that many steps without a final checkpoint, as a crash would (tests).
    """
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("seqae finetune runs in one process; start it without torchrun")
    run_dir = Path(run_dir)
    config = resolve_config(config, run_dir, FinetuneConfig)
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    torch.manual_seed(config.train.seed)
    task = build_finetune_task(config, run_dir)
    optimizer = make_finetune_optimizer(task.model, config.train, config.encoder_lr)
    print(f"fine-tune {config.task}: {'pretrained' if config.pretrained else 'scratch'} encoder "
          f"({config.encoder_spec}){', frozen' if config.freeze_encoder else ''}")
    return Trainer(config, run_dir, task=task, optimizer=optimizer).run(stop_after=stop_after)


def finetune_command(task: str, config_path: str | Path, overrides: list[str], run_dir: str | Path | None = None
                     ) -> tuple[dict[str, Any], Path]:
    """`seqae finetune TASK CONFIG [--set k=v] [--run-dir DIR]`: (metrics, run directory; default
    runs/<config name>). A config whose `task` is another task is an error."""
    path = Path(config_path)
    if path.is_file():
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and data.get("task", task) != task:
            raise ConfigError(f"{path}: task is {data['task']!r}, but the command is `seqae finetune {task}`")
    config = load_finetune_config(path, [f"task={task}", *overrides])
    run_dir = Path(run_dir) if run_dir else Path("runs") / path.stem
    return finetune(config, run_dir), run_dir
