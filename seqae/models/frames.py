"""The frame autoencoder for speech: feature frames -> front end -> encoder -> z -> autoregressive frame decoder.

Dimension letters: B batch, T frames, F feature width, D front-end width, Z bottleneck width, H decoder width,
P prenet width, r reduction factor (frames per decoder step), S decoder steps (S = ceil(T / r)).

The decoder predicts r frames per step. Target frames are grouped into steps `[B, S, r·F]` (T padded up to S·r
with zeros that never count in the loss); the input at step s is the last frame of step s-1 (a zero "go" frame
at s = 0), read through a prenet. A stop head gives one logit per step, trained to 1 at the step holding the last
real frame and 0 before it. Generation therefore gives exact lengths for r = 1; for r > 1 a generated length is
rounded up to a whole step, (s + 1)·r at stopping step s, i.e. at most r - 1 frames past the true length.

Optionally (frame_prediction_weight > 0) a per-position loss asks the encoder states themselves for phonetic detail,
beside the bottleneck: a linear head on each top encoder state predicts the f clean input frames under it (f: the
front end's subsampling factor; state t' covers frames f·t' .. f·t'+f-1), scored with L1 on the frames the noise
corrupted, as in TERA / Mockingjay's masked-frame reconstruction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqae.models.bottleneck import contractive_penalty
from seqae.models.decoders import State
from seqae.models.encoders import EncoderOutput
from seqae.models.fast.linear import Linear
from seqae.models.layers import lengths_to_mask

FRAME_LOSSES = ("mse", "l1")


def _zero_padding(x: Tensor, lengths: Tensor) -> Tensor:
    """x: [B, T, C] -> x with every position t >= lengths[b] set to zero."""
    return x * lengths_to_mask(lengths, x.shape[1])[..., None].to(x.dtype)


def _check_frames(name: str, x: Tensor, lengths: Tensor, feature_dim: int) -> None:
    """Raise a ValueError naming `name` unless x is [B, T, feature_dim] with lengths [B] in 1..T."""
    if x.dim() != 3 or x.shape[-1] != feature_dim:
        raise ValueError(f"{name}: expected frames [B, T, {feature_dim}], got shape {tuple(x.shape)}")
    if lengths.shape != (x.shape[0],):
        raise ValueError(f"{name}: expected lengths of shape ({x.shape[0]},), got {tuple(lengths.shape)}")
    bad = ((lengths < 1) | (lengths > x.shape[1])).nonzero().flatten().tolist()
    if bad:
        raise ValueError(f"{name}: lengths must be in 1..{x.shape[1]} (the frames' T); rows {bad} have "
                         f"{lengths[bad].tolist()}")


# ---------------------------------------------------------------------------------------------------------------------
# Front ends: (x [B, T, F], lengths [B]) -> (h [B, T', D], lengths' [B]), zeros past each output length


class LinearFrontEnd(nn.Module):
    """Per-frame Linear(F, D), optionally followed by LayerNorm. Keeps every frame (T' = T)."""

    def __init__(self, *, input_dim: int, dim: int, layer_norm: bool = True) -> None:
        super().__init__()
        self.min_frames, self.output_dim = 1, dim
        self.proj = Linear(input_dim, dim)
        self.norm = nn.LayerNorm(dim) if layer_norm else nn.Identity()

    def output_lengths(self, lengths: Tensor) -> Tensor:
        return lengths

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """x: [B, T, F], lengths: [B] -> h [B, T, D], lengths [B]."""
        _check_long_enough(self, lengths)
        return _zero_padding(self.norm(self.proj(x)), lengths), lengths


class ConvSubsampling(nn.Module):
    """Subsampling in time by 2 or 4: one or two Conv1d(kernel 3, stride 2, no padding) + GELU layers.

    Conv1d over time with the F bins as channels (not a Conv2d over time × frequency): it is cheap, and the
    encoder that follows sees the whole spectrum of every frame anyway. The convolutions are "valid" (no
    padding), so a real output frame reads only real input frames: each layer maps a length L to (L - 1) // 2,
    which needs L >= 3 (factor 2) or L >= 7 (factor 4). Frames past each length are zeroed before every
    layer and after the last, so the padded positions of a batch hold zeros, exactly like a sequence alone.
    """

    def __init__(self, *, input_dim: int, dim: int, factor: int = 2) -> None:
        super().__init__()
        if factor not in (2, 4):
            raise ValueError(f"ConvSubsampling: factor must be 2 or 4, got {factor}")
        self.factor, self.output_dim = factor, dim
        num_layers = 1 if factor == 2 else 2
        self.convs = nn.ModuleList(
            nn.Conv1d(input_dim if i == 0 else dim, dim, kernel_size=3, stride=2) for i in range(num_layers)
        )
        self.min_frames = 3 if factor == 2 else 7

    @staticmethod
    def _layer_lengths(lengths: Tensor) -> Tensor:
        return torch.div(lengths - 1, 2, rounding_mode="floor").clamp(min=0)  # floor((L - 3) / 2) + 1

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """lengths: [B] -> [B] frames after subsampling (0 for an input shorter than `min_frames`)."""
        for _ in self.convs:
            lengths = self._layer_lengths(lengths)
        return lengths

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """x: [B, T, F], lengths: [B] -> h [B, T', D], lengths' [B] (T' = T // factor, roughly)."""
        _check_long_enough(self, lengths)
        h = x
        for conv in self.convs:
            h = _zero_padding(h, lengths)
            h = F.gelu(conv(h.transpose(1, 2))).transpose(1, 2)  # (B, C, T) -> (B, D, T') -> (B, T', D)
            lengths = self._layer_lengths(lengths)
        return _zero_padding(h, lengths), lengths


def _check_long_enough(frontend: nn.Module, lengths: Tensor) -> None:
    short = (lengths < frontend.min_frames).nonzero().flatten().tolist()
    if short:
        name = type(frontend).__name__ + (f"(factor={frontend.factor})" if hasattr(frontend, "factor") else "")
        raise ValueError(f"{name} needs at least {frontend.min_frames} frames per sequence (fewer give no output "
                         f"frame); got lengths {lengths[short].tolist()} at batch rows {short}")


# ---------------------------------------------------------------------------------------------------------------------
# Decoder parts around a core decoder (RNNDecoder or TransformerDecoder)


class Prenet(nn.Module):
    """2 × (Linear + ReLU + Dropout) of width P on the fed-back frame.

    Dropout is active in training. Tacotron 2 also keeps it on at inference; here that is `always_on=True`.
    The default (off in eval mode) makes reconstruction from z deterministic and lets generation be tested
    against the teacher-forced pass.
    """

    def __init__(self, *, input_dim: int, dim: int, dropout: float, always_on: bool = False) -> None:
        super().__init__()
        self.dropout, self.always_on = dropout, always_on
        self.layers = nn.ModuleList([Linear(input_dim, dim), Linear(dim, dim)])

    def forward(self, x: Tensor) -> Tensor:
        """x: [..., F] -> [..., P]."""
        for layer in self.layers:
            x = F.dropout(F.relu(layer(x)), self.dropout, training=self.training or self.always_on)
        return x


@dataclass
class FrameOutput:
    pred: Tensor
    """[B, T_pad, F] predicted frames, T_pad = S·r."""
    stop_logits: Tensor
    """[B, S] one stop logit per decoder step."""
    targets: Tensor
    """[B, T_pad, F] target frames, zero past each target length."""
    target_lengths: Tensor
    """[B] real target frames."""
    z: Tensor
    """[B, Z] bottleneck."""
    aux: dict[str, Tensor] = field(default_factory=dict)
    """Regulariser terms, already weighted, to add to the loss."""


# ---------------------------------------------------------------------------------------------------------------------
# The model


class FrameAutoencoder(nn.Module):
    """Frames [B, T, F] -> z [B, Z] -> frames, r per decoder step, with a stop logit per step."""

    def __init__(self, *, frontend: nn.Module, encoder: nn.Module, bottleneck: nn.Module, decoder: nn.Module,
                 feature_dim: int, reduction_factor: int = 1, prenet_dim: int = 256, prenet_dropout: float = 0.5,
                 prenet_always_on: bool = False, frame_loss: str = "mse", stop_weight: float = 1.0,
                 contractive_weight: float = 0.0, contractive_projections: int = 1,
                 frame_prediction_weight: float = 0.0, frames_per_state: int = 1) -> None:
        super().__init__()
        self.contractive_weight, self.contractive_projections = contractive_weight, contractive_projections
        if frame_loss not in FRAME_LOSSES:
            raise ValueError(f"frame_loss {frame_loss!r} unknown; allowed: {', '.join(FRAME_LOSSES)}")
        if reduction_factor < 1:
            raise ValueError(f"reduction_factor must be >= 1, got {reduction_factor}")
        self.feature_dim, self.reduction_factor = feature_dim, reduction_factor
        self.frame_loss, self.stop_weight = frame_loss, stop_weight
        self.frontend, self.encoder, self.bottleneck, self.decoder = frontend, encoder, bottleneck, decoder
        self.prenet = Prenet(input_dim=feature_dim, dim=prenet_dim, dropout=prenet_dropout,
                             always_on=prenet_always_on)
        self.out_proj = Linear(decoder.output_dim, reduction_factor * feature_dim)
        self.stop_head = Linear(decoder.output_dim, 1)
        if frame_prediction_weight < 0 or frames_per_state < 1:
            raise ValueError(f"frame_prediction_weight must be >= 0 and frames_per_state >= 1, got "
                             f"{frame_prediction_weight} and {frames_per_state}")
        self.frame_prediction_weight, self.frames_per_state = frame_prediction_weight, frames_per_state
        if frame_prediction_weight > 0:  # only then: runs without it keep their parameter names
            self.frame_head = Linear(encoder.output_dim, frames_per_state * feature_dim)

    @property
    def min_frames(self) -> int:
        """The shortest input the front end accepts."""
        return self.frontend.min_frames

    # ---- encoder side

    def encode(self, frames: Tensor, lengths: Tensor, *, return_layers: bool = False
               ) -> tuple[Tensor, dict[str, Tensor], EncoderOutput]:
        """frames: [B, T, F], lengths: [B] -> z [B, Z], aux terms, encoder output (lengths after the front end)."""
        _check_frames("frames", frames, lengths, self.feature_dim)
        contract = self.training and self.contractive_weight > 0
        if contract:
            frames = frames.detach().requires_grad_(True)  # the penalty is d z / d frames
        h, h_lengths = self.frontend(frames, lengths)  # (B, T', D)
        enc = self.encoder(h, h_lengths, return_layers=return_layers)
        z, aux = self.bottleneck(enc)
        if contract:
            penalty = contractive_penalty(z, frames, num_projections=self.contractive_projections)
            aux = {**aux, "contractive": self.contractive_weight * penalty}
        return z, aux, enc

    def frame_prediction(self, enc: EncoderOutput, clean: Tensor, lengths: Tensor,
                         corrupted: Tensor | None = None) -> Tensor:
        """The per-position loss: L1 between frame_head(states) and the clean frames under each state.

        enc: the encoder output for frames with `lengths` [B]; clean: [B, T, F] the uncorrupted input; corrupted:
        [B, T] the frames the noise changed. Scored on the real frames covered by a state that are corrupted, or on
        every real covered frame when no frame of the batch is corrupted (no noise, evaluation). A scalar.
        """
        f, (B, S, _) = self.frames_per_state, enc.states.shape
        pred = self.frame_head(enc.states).view(B, S * f, self.feature_dim)  # (B, S·f, F), S·f <= T
        covered = lengths_to_mask(enc.lengths * f, S * f) & lengths_to_mask(lengths, S * f)  # (B, S·f)
        if corrupted is not None and bool((corrupted[:, : S * f] & covered).any()):
            covered = covered & corrupted[:, : S * f]
        diff = (pred - clean[:, : S * f])[covered]  # (N, F)
        return diff.abs().mean()

    # ---- decoder side

    def _project(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """h: [B, S, H] -> frames [B, S·r, F], stop logits [B, S]."""
        B, S, _ = h.shape
        frames = self.out_proj(h).view(B, S * self.reduction_factor, self.feature_dim)  # (B, S·r, F)
        return frames, self.stop_head(h).squeeze(-1)

    def _decoder_inputs(self, targets: Tensor) -> Tensor:
        """targets: [B, S·r, F] -> [B, S, F]: a zero go frame, then the last frame of each step but the last."""
        r = self.reduction_factor
        last_of_step = targets[:, r - 1:: r]  # (B, S, F)
        return torch.cat([torch.zeros_like(last_of_step[:, :1]), last_of_step[:, :-1]], dim=1)

    def forward(self, frames: Tensor, lengths: Tensor, targets: Tensor | None = None,
                target_lengths: Tensor | None = None, *, clean: Tensor | None = None,
                corrupted: Tensor | None = None) -> FrameOutput:
        """Encode `frames` ([B, T, F], lengths [B]); teacher-force the decoder on `targets` (default: frames).

        `target_lengths` defaults to `lengths`. Target frames past their length are zeroed, so they can change
        nothing: the decoder is fed only real frames at real steps, and the loss reads only real frames.
        With frame_prediction_weight > 0, `clean` [B, T, F] (default: frames) and `corrupted` [B, T] give the
        per-position loss (`frame_prediction`), added to the aux terms, weighted.
        """
        if targets is None:
            targets = frames
        target_lengths = lengths if target_lengths is None else target_lengths
        _check_frames("targets", targets, target_lengths, self.feature_dim)
        z, aux, enc = self.encode(frames, lengths)
        if self.frame_prediction_weight > 0:
            clean = frames if clean is None else clean
            _check_frames("clean", clean, lengths, self.feature_dim)
            loss = self.frame_prediction(enc, clean, lengths, corrupted)
            aux = {**aux, "frame_prediction": self.frame_prediction_weight * loss}
        B, T, _ = targets.shape
        S = math.ceil(T / self.reduction_factor)
        targets = _zero_padding(targets, target_lengths)
        targets = F.pad(targets, (0, 0, 0, S * self.reduction_factor - T))  # (B, S·r, F)
        h = self.decoder(self.prenet(self._decoder_inputs(targets)), z)  # (B, S, H)
        pred, stop_logits = self._project(h)
        return FrameOutput(pred=pred, stop_logits=stop_logits, targets=targets, target_lengths=target_lengths,
                           z=z, aux=aux)

    def loss(self, out: FrameOutput) -> tuple[Tensor, dict[str, float]]:
        """Frame loss over real frames and bins + stop_weight · BCE over real steps + the aux terms."""
        B, T_pad, _ = out.targets.shape
        real = lengths_to_mask(out.target_lengths, T_pad)  # (B, T_pad)
        diff = out.pred[real] - out.targets[real]  # (N, F)
        frame = diff.pow(2).mean() if self.frame_loss == "mse" else diff.abs().mean()
        last_step = torch.div(out.target_lengths - 1, self.reduction_factor, rounding_mode="floor")  # (B,)
        steps = torch.arange(out.stop_logits.shape[1], device=last_step.device)[None, :]  # (1, S)
        real_steps = steps <= last_step[:, None]  # (B, S)
        stop_target = (steps == last_step[:, None]).to(out.stop_logits.dtype)  # (B, S)
        stop = F.binary_cross_entropy_with_logits(out.stop_logits[real_steps], stop_target[real_steps])
        total = frame + self.stop_weight * stop + sum(out.aux.values(), torch.zeros((), device=frame.device))
        stats = {"frame_loss": float(frame.detach()), "stop_loss": float(stop.detach()), "tokens": int(real.sum())}
        stats.update({k: float(v.detach()) for k, v in out.aux.items()})
        return total, stats

    # ---- step-by-step generation

    def start(self, z: Tensor) -> State:
        """z: [B, Z] -> decoder state."""
        return self.decoder.start(z)

    def step(self, prev_frame: Tensor, state: State) -> tuple[Tensor, Tensor, State]:
        """prev_frame: [B, F] (zeros at the first step) -> frames [B, r, F], stop logit [B], state."""
        h, state = self.decoder.step(self.prenet(prev_frame), state)  # (B, H)
        frames, stop = self._project(h[:, None, :])  # (B, r, F), (B, 1)
        return frames, stop[:, 0], state

    @torch.no_grad()
    def generate(self, z: Tensor, *, max_frames: int, threshold: float = 0.5) -> tuple[Tensor, Tensor]:
        """z: [B, Z] -> frames [B, T, F] (zero past each length), lengths [B]; T = max(lengths).

        A sequence stops at the first step s with sigmoid(stop) > threshold; its length is (s + 1)·r (exact
        for r = 1, rounded up to a whole step for r > 1), capped at `max_frames`, which is also the length of a
        sequence that never stops. Call `.eval()` first unless the prenet's dropout is wanted.
        """
        if max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {max_frames}")
        B, r = z.shape[0], self.reduction_factor
        lengths = torch.full((B,), max_frames, dtype=torch.long, device=z.device)
        finished = torch.zeros(B, dtype=torch.bool, device=z.device)
        prev, state, chunks = z.new_zeros(B, self.feature_dim), self.start(z), []
        for s in range(math.ceil(max_frames / r)):
            frames, stop_logit, state = self.step(prev, state)
            chunks.append(frames)
            stops = (torch.sigmoid(stop_logit) > threshold) & ~finished  # (B,)
            lengths = torch.where(stops, torch.full_like(lengths, min((s + 1) * r, max_frames)), lengths)
            finished |= stops
            if bool(finished.all()):
                break
            prev = frames[:, -1]
        frames = torch.cat(chunks, dim=1)[:, : int(lengths.max())]  # (B, T, F)
        return _zero_padding(frames, lengths), lengths
