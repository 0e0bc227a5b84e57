"""Compose noises from the validated `noise:` settings, reproducibly from (seed, epoch, index).

A step is one of the noise dataclasses of ``seqae.config.noise`` (e.g. ``SpanMaskNoise(ratio=0.3)``), or,
through ``NoisePipeline.from_config``, a plain dict such as ``{"type": "span_mask", "prob": 1.0, "ratio": 0.3}``
validated by the config: ``type`` names a noise in ``TOKEN_NOISES`` or ``FRAME_NOISES``, ``prob`` (default 1.0)
is the probability the step is applied, and every other key is an argument of that noise's function.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from typing import Any, Callable, Literal, Mapping, Sequence

import torch
from torch import Tensor

from seqae.config.noise import NOISE_TYPES, NoiseConfig, check_noise, load_noise
from seqae.noise import frames as F
from seqae.noise import tokens as T

# ---------------------------------------------------------------- registries

_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "span_mask": T.span_mask,
    "t5": T.t5_span_corruption,
    "delete": T.delete,
    "replace": T.replace,
    "insert": T.insert,
    "shuffle": T.shuffle,
    "rotate": T.rotate,
    "knockout": T.knockout,
    "time_mask": F.time_mask,
    "freq_mask": F.freq_mask,
    "gaussian": F.gaussian_noise,
    "frame_knockout": F.frame_knockout,
}
TOKEN_NOISES: dict[str, tuple[type, Callable[..., Any]]] = {
    name: (cls, _FUNCTIONS[name]) for name, cls in NOISE_TYPES["text"].items()
}
"""Token noise of each type: its config dataclass (seqae.config.noise) and the function that applies it."""
FRAME_NOISES: dict[str, tuple[type, Callable[..., Any]]] = {
    name: (cls, _FUNCTIONS[name]) for name, cls in NOISE_TYPES["speech"].items()
}
"""Frame noise of each type: its config dataclass (seqae.config.noise) and the function that applies it."""
_REGISTRIES = {"tokens": TOKEN_NOISES, "frames": FRAME_NOISES}
_TASKS = {"tokens": "text", "frames": "speech"}
CONTEXT_KEYS = {"tokens": ("vocab_size", "word_start", "special"), "frames": ()}
"""Keyword context a pipeline call may pass on to the noises that take it."""

# ---------------------------------------------------------------- seeding

_M64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    z = (x + 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def mix_seed(*values: int) -> int:
    """Hash ints into a 64-bit seed with SplitMix64 (fixed across runs, unlike ``hash``)."""
    h = 0
    for v in values:
        h = _splitmix64(h ^ (int(v) & _M64))
    return h


# ---------------------------------------------------------------- pipeline


class NoisePipeline:
    """Steps applied in order, each with probability ``prob``, from one seed per example.

    ``kind="tokens"``: ``pipeline(x, ...) -> (inputs, targets)``; targets is x unless the (only)
    step is ``t5``. ``kind="frames"``: ``pipeline(frames, ...) -> (frames', corrupted_mask)`` with
    the masks of the applied steps or-ed together.
    """

    def __init__(self, steps: Sequence[NoiseConfig], *, kind: Literal["tokens", "frames"]) -> None:
        """``steps``: validated noise settings (seqae.config.noise) of the kind's task."""
        check_noise(steps, _task(kind))
        self.kind = kind
        self.steps = tuple(steps)

    @classmethod
    def from_config(cls, specs: Sequence[Mapping[str, Any] | NoiseConfig], *,
                    kind: Literal["tokens", "frames"]) -> NoisePipeline:
        """Build from a config's ``noise:`` list (plain dicts or noise settings), validated by seqae.config:
        a bad entry is one ConfigError line naming it, e.g. ``noise[1].ratio: must be in [0, 1], got 1.5``."""
        return cls(load_noise(specs, task=_task(kind)), kind=kind)

    def to_config(self) -> list[dict[str, Any]]:
        """The plain-dict specs that ``from_config`` rebuilds this pipeline from."""
        return [{"type": s.type, "prob": s.prob, **_params(s)} for s in self.steps]

    def describe(self) -> str:
        """Readable multi-line summary of the steps and their parameters."""
        lines = [f"NoisePipeline(kind={self.kind!r}, {len(self.steps)} steps; seeded by (seed, epoch, index))"]
        for i, s in enumerate(self.steps, 1):
            args = ", ".join(f"{k}={v!r}" for k, v in _params(s).items())
            lines.append(f"  {i}. {s.type} (prob {s.prob:g})" + (f": {args}" if args else ""))
        return "\n".join(lines)

    def __call__(self, x: Tensor, *, seed: int, epoch: int, index: int, **context: Any) -> tuple[Tensor, Tensor]:
        """Corrupt one example; the output depends only on x, the steps, (seed, epoch, index)
        and the context (``vocab_size``, ``word_start``, ``special`` for tokens)."""
        unknown = sorted(set(context) - set(CONTEXT_KEYS[self.kind]))
        if unknown:
            allowed = list(CONTEXT_KEYS[self.kind])
            raise ValueError(f"unknown context {unknown} for a {self.kind} pipeline; allowed: {allowed}")
        for key, value in (("seed", seed), ("epoch", epoch), ("index", index)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{key} must be an int, got {type(value).__name__} {value!r}")
        if self.kind == "tokens":
            T._split(x, context.get("special", T.SpecialIds()))  # validates the layout
        else:
            F._check_frames(x)
        base = mix_seed(seed, epoch, index)
        registry = _REGISTRIES[self.kind]
        out = x.clone()
        second = x.clone() if self.kind == "tokens" else torch.zeros(x.shape[0], dtype=torch.bool)
        for i, step in enumerate(self.steps):
            g = torch.Generator().manual_seed(mix_seed(base, i))
            if float(torch.rand((), generator=g, dtype=torch.float64)) >= step.prob:
                continue
            fn = registry[step.type][1]
            accepted = {k: v for k, v in context.items() if k in _keyword_names(fn)}
            result = fn(out, generator=g, **_params(step), **accepted)
            if step.type == "t5":
                out, second = result
            elif self.kind == "tokens":
                out = result
            else:
                out, mask = result
                second = second | mask
        return out, second


def _task(kind: str) -> str:
    if kind not in _TASKS:
        raise ValueError(f"kind must be 'tokens' or 'frames', got {kind!r}")
    return _TASKS[kind]


def _params(step: NoiseConfig) -> dict[str, Any]:
    """The noise function's keyword arguments: every field of the step but ``type`` and ``prob``."""
    return {f.name: getattr(step, f.name) for f in dataclasses.fields(step) if f.name not in ("type", "prob")}


@functools.cache
def _keyword_names(fn: Callable[..., Any]) -> frozenset[str]:
    return frozenset(inspect.signature(fn).parameters)
