"""The token sequence autoencoder: embed -> encoder -> bottleneck z -> autoregressive decoder -> logits.

Dimension letters: B batch, T time, E embedding width, D encoder width, Z bottleneck width, H decoder width,
V vocabulary. Token sequences are laid out `[bos, t1, ..., tn, eos, pad, ...]` with their lengths.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqae.models.bottleneck import contractive_penalty
from seqae.models.decoders import State
from seqae.models.encoders import EncoderOutput
from seqae.models.fast.linear import Linear, linear


@dataclass
class AutoencoderOutput:
    logits: Tensor
    """[B, T-1, V] next-token logits for target positions 1..T-1."""
    targets: Tensor
    """[B, T-1] target tokens (pad where there is none)."""
    z: Tensor
    """[B, Z] bottleneck."""
    aux: dict[str, Tensor] = field(default_factory=dict)
    """Regulariser terms, already weighted, to add to the loss."""


class TokenAutoencoder(nn.Module):
    def __init__(self, *, vocab_size: int, embed_dim: int, encoder: nn.Module, bottleneck: nn.Module,
                 decoder: nn.Module, tie_embeddings: bool = True, word_dropout: float = 0.0,
                 pad_id: int = 0, unk_id: int = 1, bos_id: int = 2, eos_id: int = 3,
                 contractive_weight: float = 0.0, contractive_projections: int = 1) -> None:
        super().__init__()
        self.contractive_weight, self.contractive_projections = contractive_weight, contractive_projections
        self.vocab_size = vocab_size
        self.pad_id, self.unk_id, self.bos_id, self.eos_id = pad_id, unk_id, bos_id, eos_id
        self.word_dropout = word_dropout
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        nn.init.normal_(self.embedding.weight, std=embed_dim ** -0.5)
        with torch.no_grad():
            self.embedding.weight[pad_id].zero_()
        self.encoder, self.bottleneck, self.decoder = encoder, bottleneck, decoder
        if tie_embeddings:
            self.out_proj = Linear(decoder.output_dim, embed_dim)
            self.out_bias = nn.Parameter(torch.zeros(vocab_size))
        else:
            self.out_proj = Linear(decoder.output_dim, vocab_size)
            self.out_bias = None

    # ---- encoder side

    def encode(self, tokens: Tensor, lengths: Tensor, *, return_layers: bool = False
               ) -> tuple[Tensor, dict[str, Tensor], EncoderOutput]:
        """tokens: [B, T], lengths: [B] -> z [B, Z], aux terms, encoder output."""
        x = self.embedding(tokens)  # (B, T, E)
        enc = self.encoder(x, lengths, return_layers=return_layers)
        z, aux = self.bottleneck(enc)
        if self.training and self.contractive_weight > 0:
            penalty = contractive_penalty(z, x, num_projections=self.contractive_projections)
            aux = {**aux, "contractive": self.contractive_weight * penalty}
        return z, aux, enc

    # ---- decoder side

    def logits(self, h: Tensor) -> Tensor:
        """h: [..., H] -> [..., V]."""
        out = self.out_proj(h)
        if self.out_bias is not None:
            out = linear(out, self.embedding.weight, self.out_bias)
        return out

    def _decoder_inputs(self, tokens: Tensor) -> Tensor:
        inputs = tokens[:, :-1]  # (B, T-1): bos, t1, ..., tn (eos/pad never fed once it is the last)
        if self.training and self.word_dropout > 0:
            drop = torch.rand(inputs.shape, device=inputs.device) < self.word_dropout
            keep = (inputs == self.bos_id) | (inputs == self.pad_id)
            inputs = inputs.masked_fill(drop & ~keep, self.unk_id)
        return inputs

    def decode(self, z: Tensor, tgt: Tensor) -> Tensor:
        """Teacher-force the decoder on `tgt` ([B, T], bos first) from z [B, Z] -> logits [B, T-1, V]."""
        h = self.decoder(self.embedding(self._decoder_inputs(tgt)), z)  # (B, T-1, H)
        return self.logits(h)

    def forward(self, src: Tensor, src_lengths: Tensor, tgt: Tensor | None = None) -> AutoencoderOutput:
        """Encode `src` ([B, S], lengths [B]) and teacher-force the decoder on `tgt` ([B, T]; default: src)."""
        tgt = src if tgt is None else tgt
        z, aux, _ = self.encode(src, src_lengths)
        return AutoencoderOutput(logits=self.decode(z, tgt), targets=tgt[:, 1:], z=z, aux=aux)

    def loss(self, out: AutoencoderOutput, *, label_smoothing: float = 0.0,
             weights: Tensor | None = None) -> tuple[Tensor, dict[str, float]]:
        """Cross-entropy over real target positions (weighted mean with `weights` [B, T-1]) plus the bottleneck's terms."""
        real = out.targets != self.pad_id  # (B, T-1)
        # On the padded tensor with ignore_index: gathering the real rows of the [B, T-1, V] logits first copies
        # them, and scatters the gradient back (measured: benchmarks/README.md, 'cross-entropy').
        logits, targets = out.logits.flatten(0, 1), out.targets.flatten()  # (B·(T-1), V), (B·(T-1),)
        if weights is None:
            ce = F.cross_entropy(logits, targets, ignore_index=self.pad_id, label_smoothing=label_smoothing)
        else:
            per_token = F.cross_entropy(logits, targets, ignore_index=self.pad_id, label_smoothing=label_smoothing,
                                        reduction="none")  # 0 at padding
            w = weights.flatten() * real.flatten()
            ce = (per_token * w).sum() / w.sum()
        total = ce + sum(out.aux.values(), torch.zeros((), device=ce.device))
        stats = {"ce": float(ce.detach()), "tokens": int(real.sum())}
        stats.update({k: float(v.detach()) for k, v in out.aux.items()})
        return total, stats

    # ---- step-by-step generation (see seqae.generate)

    def start(self, z: Tensor) -> State:
        return self.decoder.start(z)

    def step(self, prev: Tensor, state: State) -> tuple[Tensor, State]:
        """prev: [B] previous tokens -> log-probabilities [B, V] of the next one."""
        h, state = self.decoder.step(self.embedding(prev), state)
        return torch.log_softmax(self.logits(h).float(), dim=-1), state

    def reorder(self, state: State, index: Tensor) -> State:
        return self.decoder.reorder(state, index)
