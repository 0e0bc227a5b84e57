"""What both fine-tuning tasks share: the encoder's initial weights (pretrained or scratch), freezing, the
labelled subset, and the optimizer with the encoder's own learning rate."""

from __future__ import annotations

import torch
from torch import nn

from seqae.config import ConfigError
from seqae.export.encoder import ExportError, PretrainedEncoder, build_modules, load_encoder
from seqae.finetune.config import FinetuneConfig


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
