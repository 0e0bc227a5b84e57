"""Pooling of encoder states and the bottleneck that turns them into one vector z.

Dimension letters: B batch, T time, D encoder width, Z bottleneck width.
Every bottleneck returns `(z, aux)` where `aux` maps a name to a scalar loss term, already weighted, that the
model adds to its loss (empty for the plain one). The contractive penalty needs the encoder's input, so it is a
function the autoencoder calls, not a bottleneck.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from seqae.models.encoders import EncoderOutput
from seqae.models.fast.linear import Linear
from seqae.models.layers import lengths_to_mask

POOLINGS = ("last", "mean", "attention", "cls")


class Pooling(nn.Module):
    """Pool `EncoderOutput` -> [B, D]: the final/CLS state, a masked mean, or attention with a learned query."""

    def __init__(self, kind: str, dim: int) -> None:
        super().__init__()
        if kind not in POOLINGS:
            raise ValueError(f"pooling {kind!r} unknown; allowed: {', '.join(POOLINGS)}")
        self.kind = kind
        self.score = Linear(dim, 1, bias=False) if kind == "attention" else None  # softmax ignores a bias

    def forward(self, enc: EncoderOutput) -> Tensor:
        if self.kind in ("last", "cls"):
            return enc.final
        mask = lengths_to_mask(enc.lengths, enc.states.shape[1])  # (B, T)
        if self.kind == "mean":
            summed = (enc.states * mask[..., None]).sum(dim=1)  # (B, D)
            return summed / enc.lengths.clamp(min=1)[:, None].to(summed.dtype)
        scores = self.score(enc.states).squeeze(-1).masked_fill(~mask, float("-inf"))  # (B, T)
        weights = torch.softmax(scores, dim=1)
        return torch.einsum("bt,btd->bd", weights, enc.states)  # (B, D)


class Bottleneck(nn.Module):
    """Pooling -> linear projection -> z [B, Z], optionally sparse.

    sparse="l1": penalty weight·mean|z|. sparse="kl": z = sigmoid(projection), penalty
    weight·Σ_units KL(ρ ‖ ρ̂) where ρ̂ is each unit's mean activation over the batch (Ng's sparse autoencoder).
    """

    def __init__(self, *, input_dim: int, bottleneck_dim: int, pooling: str, sparse: str = "none",
                 sparse_weight: float = 0.0, sparse_target: float = 0.05) -> None:
        super().__init__()
        self.pool = Pooling(pooling, input_dim)
        self.proj = Linear(input_dim, bottleneck_dim)
        self.sparse, self.sparse_weight, self.sparse_target = sparse, sparse_weight, sparse_target

    def forward(self, enc: EncoderOutput) -> tuple[Tensor, dict[str, Tensor]]:
        z = self.proj(self.pool(enc))  # (B, Z)
        if self.sparse == "kl":
            z = torch.sigmoid(z)
        if not self.training or self.sparse == "none":
            return z, {}
        if self.sparse == "l1":
            return z, {"sparse_l1": self.sparse_weight * z.abs().mean()}
        return z, {"sparse_kl": self.sparse_weight * kl_sparsity(z, self.sparse_target)}


def kl_sparsity(activations: Tensor, rho: float) -> Tensor:
    """activations: [B, Z] in (0, 1) -> Σ_units KL(Bernoulli(ρ) ‖ Bernoulli(mean activation))."""
    rho_hat = activations.mean(dim=0).clamp(1e-6, 1 - 1e-6)  # (Z,)
    return (rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))).sum()


class VariationalBottleneck(nn.Module):
    """Pooling -> (mu, log sigma^2) -> z = mu + sigma·eps in training, z = mu otherwise.

    aux["kl"] = weight · anneal · Σ_dims max(KL_d, free_bits), KL_d averaged over the batch; `anneal` rises
    linearly from 0 to 1 over `anneal_steps` (set by `set_step`, so it is a pure function of the step).
    """

    def __init__(self, *, input_dim: int, bottleneck_dim: int, pooling: str, kl_weight: float = 1.0,
                 anneal_steps: int = 0, free_bits: float = 0.0) -> None:
        super().__init__()
        self.pool = Pooling(pooling, input_dim)
        self.proj = Linear(input_dim, 2 * bottleneck_dim)
        self.kl_weight, self.anneal_steps, self.free_bits = kl_weight, anneal_steps, free_bits
        self.anneal = 1.0 if anneal_steps == 0 else 0.0

    def set_step(self, step: int) -> None:
        self.anneal = 1.0 if self.anneal_steps == 0 else min(1.0, step / self.anneal_steps)

    def forward(self, enc: EncoderOutput) -> tuple[Tensor, dict[str, Tensor]]:
        mu, logvar = self.proj(self.pool(enc)).chunk(2, dim=-1)  # (B, Z) each
        if not self.training:
            return mu, {}
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        kl_per_dim = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).mean(dim=0)  # (Z,)
        kl = kl_per_dim.clamp(min=self.free_bits).sum()
        return z, {"kl": self.kl_weight * self.anneal * kl}


def contractive_penalty(z: Tensor, x: Tensor, *, num_projections: int = 1) -> Tensor:
    """Unbiased estimate of mean_b ||dz_b/dx_b||_F^2 by random projections: E_v ||J^T v||^2 = ||J||_F^2.

    z: [B, Z] computed from x: [B, T, E] (each z_b depends on x_b only). The graph is kept, so the penalty trains.
    """
    total = z.new_zeros(())
    for _ in range(num_projections):
        v = torch.randn_like(z)  # (B, Z)
        (g,) = torch.autograd.grad((z * v).sum(), x, create_graph=True)  # (B, T, E): J_b^T v_b per example
        total = total + g.pow(2).sum() / z.shape[0]
    return total / num_projections
