"""Frame noises for speech autoencoders (TERA / Mockingjay / SpecAugment style).

Every frame noise takes ``frames: [T, F]`` (one utterance, T its true length) and returns
``(frames', corrupted_mask)`` with ``frames': [T, F]`` (a new tensor) and ``corrupted_mask:
BoolTensor[T]``, True on the frames the noise selected, for a loss weighted toward them. Counts are
exact per utterance: a ratio ``r`` acts on ``round(r * T)`` frames (Python's round, half to even).
Randomness comes only from the ``generator`` argument.

``waveform_add_noise`` works on waveforms ``[S]`` / ``[C, S]`` instead and returns only the signal.
"""

from __future__ import annotations

import math

import torch
import torchaudio.functional as AF
from torch import Tensor

from seqae.noise.tokens import place_spans


def _check_frames(frames: Tensor) -> tuple[int, int]:
    if not isinstance(frames, Tensor) or frames.dim() != 2 or not frames.is_floating_point():
        got = type(frames).__name__
        if isinstance(frames, Tensor):
            got = f"{frames.dtype} tensor of shape {tuple(frames.shape)}"
        raise ValueError(f"frame noise expects a floating-point tensor [T, F], got {got}")
    return frames.shape[0], frames.shape[1]


def _count(ratio: float, n: int, name: str = "ratio") -> int:
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {ratio}")
    return round(ratio * n)


def _pick(ratio: float, t: int, generator: torch.Generator) -> Tensor:
    """BoolTensor[t] with exactly round(ratio * t) True, uniformly placed."""
    mask = torch.zeros(t, dtype=torch.bool)
    mask[torch.randperm(t, generator=generator)[: _count(ratio, t)]] = True
    return mask


def time_mask(
    frames: Tensor,
    *,
    generator: torch.Generator,
    ratio: float = 0.15,
    span: int = 7,
    p_zero: float = 0.8,
    p_random: float = 0.1,
    p_keep: float = 0.1,
) -> tuple[Tensor, Tensor]:
    """TERA / Mockingjay time masking: select exactly ``round(ratio * T)`` frames in spans.

    The selection is cut into spans of ``span`` frames (one shorter span takes the remainder),
    placed without overlap uniformly at random. Each span independently is zeroed (``p_zero``),
    has each frame replaced by a random *other* frame of the utterance (``p_random``), or is kept
    (``p_keep``). The mask marks every selected frame, kept ones included (as TERA scores them).

    frames: [T, F] -> ([T, F], BoolTensor[T])
    """
    t, _ = _check_frames(frames)
    if span < 1:
        raise ValueError(f"span must be >= 1, got {span}")
    probs = torch.tensor([p_zero, p_random, p_keep], dtype=torch.float64)
    if (probs < 0).any() or abs(float(probs.sum()) - 1.0) > 1e-6:
        raise ValueError(f"p_zero, p_random, p_keep must be >= 0 and sum to 1, got {p_zero}, {p_random}, {p_keep}")
    total = _count(ratio, t)
    lengths = torch.full((total // span,), span, dtype=torch.long)
    if total % span:
        lengths = torch.cat([lengths, torch.tensor([total % span])])
    lengths = lengths[torch.randperm(lengths.numel(), generator=generator)]
    starts = place_spans(lengths, t, generator=generator)
    u = torch.rand(lengths.numel(), generator=generator, dtype=torch.float64)  # (k,)
    action = torch.bucketize(u, probs.cumsum(0)[:2], right=True)  # (k,) 0 zero, 1 random, 2 keep
    frame_action = torch.full((t,), -1, dtype=torch.long)  # (T,) action per frame, -1 if unselected
    for s, n, a in zip(starts.tolist(), lengths.tolist(), action.tolist()):
        frame_action[s : s + n] = a
    mask = frame_action >= 0
    out = frames.clone()
    out[frame_action == 0] = 0.0
    rand_pos = (frame_action == 1).nonzero().flatten()
    if t > 1 and rand_pos.numel():
        src = torch.randint(0, t - 1, (rand_pos.numel(),), generator=generator)
        src = src + (src >= rand_pos).long()  # any frame but itself
        out[rand_pos] = frames[src]
    return out, mask


def freq_mask(
    frames: Tensor,
    *,
    generator: torch.Generator,
    num_masks: int = 2,
    max_width: int = 27,
    mask_value: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """SpecAugment frequency masking: ``num_masks`` bands of width ``f ~ U{0..max_width}``
    starting at ``f0 ~ U{0..F-f}`` set to ``mask_value`` across all frames (bands may overlap,
    as in SpecAugment). The mask is all True when any band has width > 0.

    torchaudio's ``mask_along_axis`` / ``FrequencyMasking`` draw from the global RNG (and
    expect ``[..., F, T]``), so the mask is drawn here from ``generator`` instead.

    frames: [T, F] -> ([T, F], BoolTensor[T])
    """
    t, f = _check_frames(frames)
    if num_masks < 0 or max_width < 0:
        raise ValueError(f"num_masks and max_width must be >= 0, got {num_masks}, {max_width}")
    out = frames.clone()
    touched = False
    for _ in range(num_masks):
        width = int(torch.randint(0, min(max_width, f) + 1, (1,), generator=generator))
        start = int(torch.randint(0, f - width + 1, (1,), generator=generator))
        out[:, start : start + width] = mask_value
        touched |= width > 0
    return out, torch.full((t,), touched, dtype=torch.bool)


def gaussian_noise(
    frames: Tensor, *, generator: torch.Generator, sigma: float = 0.1, ratio: float = 1.0
) -> tuple[Tensor, Tensor]:
    """Add N(0, sigma^2) noise to exactly ``round(ratio * T)`` random frames (all by default).

    frames: [T, F] -> ([T, F], BoolTensor[T]) with the noised frames marked.
    """
    t, f = _check_frames(frames)
    if not (sigma >= 0 and math.isfinite(sigma)):
        raise ValueError(f"sigma must be finite and >= 0, got {sigma}")
    mask = _pick(ratio, t, generator)
    out = frames.clone()
    noise = torch.randn(int(mask.sum()), f, generator=generator, dtype=frames.dtype) * sigma  # (k, F)
    out[mask] += noise
    return out, mask


def frame_knockout(
    frames: Tensor, *, generator: torch.Generator, ratio: float = 0.1
) -> tuple[Tensor, Tensor]:
    """Zero exactly ``round(ratio * T)`` random frames. frames: [T, F] -> ([T, F], BoolTensor[T])."""
    t, _ = _check_frames(frames)
    mask = _pick(ratio, t, generator)
    out = frames.clone()
    out[mask] = 0.0
    return out, mask


def waveform_add_noise(
    waveform: Tensor, noise: Tensor, *, generator: torch.Generator, snr_db: float
) -> Tensor:
    """Add a random crop of ``noise`` to ``waveform`` at ``snr_db`` dB (torchaudio ``add_noise``).

    waveform: [S] or [C, S]; noise: [S'] or [C or 1, S'], tiled when shorter than S, then a
    window of S samples starts at a random offset. A silent waveform comes back unchanged.
    Returns a waveform of waveform's shape.
    """
    if not isinstance(waveform, Tensor) or waveform.dim() not in (1, 2) or not waveform.is_floating_point():
        raise ValueError("waveform must be a floating-point tensor [S] or [C, S]")
    if not isinstance(noise, Tensor) or noise.dim() not in (1, 2) or noise.shape[-1] == 0:
        raise ValueError("noise must be a non-empty tensor [S'] or [C, S']")
    if not math.isfinite(snr_db):
        raise ValueError(f"snr_db must be finite, got {snr_db}")
    wave2 = waveform.reshape(-1, waveform.shape[-1])  # (C, S)
    noise2 = noise.reshape(-1, noise.shape[-1]).to(waveform.dtype)  # (Cn, S')
    c, s = wave2.shape
    if noise2.shape[0] not in (1, c) or (waveform.dim() == 1 and noise2.shape[0] != 1):
        raise ValueError(f"noise has {noise2.shape[0]} channels, waveform has {c}")
    if s == 0:
        return waveform.clone()
    if noise2.shape[1] < s:
        noise2 = noise2.repeat(1, math.ceil(s / noise2.shape[1]))
    start = int(torch.randint(0, noise2.shape[1] - s + 1, (1,), generator=generator))
    window = noise2[:, start : start + s].expand(c, s)  # (C, S)
    if not (torch.isfinite(wave2).all() and torch.isfinite(window).all()):
        raise ValueError("waveform and noise must be finite")
    if (window.square().sum(-1) == 0).any():
        raise ValueError(f"the noise window at sample {start} is silent; cannot scale it to {snr_db} dB")
    snr = torch.full((c,), float(snr_db), dtype=waveform.dtype)
    out = AF.add_noise(wave2, window, snr)  # (C, S)
    return out.reshape(waveform.shape)
