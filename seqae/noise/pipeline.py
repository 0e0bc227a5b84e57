"""Compose noises from plain config dicts, reproducibly from (seed, epoch, index).

A spec is a dict such as ``{"type": "span_mask", "prob": 1.0, "ratio": 0.3}``: ``type`` names a
noise in ``TOKEN_NOISES`` or ``FRAME_NOISES``, ``prob`` (default 1.0) is the probability the step
is applied, and every other key is a field of that noise's parameter dataclass.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping, Sequence, Union

import torch
from torch import Tensor

from seqae.noise import frames as F
from seqae.noise import tokens as T

# ---------------------------------------------------------------- parameter validation


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if typing.get_origin(tp) in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "None"
    return "list of int" if typing.get_origin(tp) is tuple else tp.__name__


def _coerce(value: Any, tp: Any) -> tuple[bool, Any]:
    """(matches, value converted to the field's canonical form)."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        for arm in typing.get_args(tp):
            ok, v = _coerce(value, arm)
            if ok:
                return True, v
        return False, value
    if origin is Literal:
        return value in typing.get_args(tp) and isinstance(value, str), value
    if origin is tuple:  # tuple[int, ...]
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        return ok, tuple(value) if ok else value
    if tp is type(None):
        return value is None, value
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    return isinstance(value, tp), value


def _check_types(params: Any) -> None:
    """Check every field against its annotation; the error names the class, field and type."""
    hints = typing.get_type_hints(type(params))
    for field in dataclasses.fields(params):
        value = getattr(params, field.name)
        ok, value = _coerce(value, hints[field.name])
        if not ok:
            raise TypeError(
                f"{type(params).__name__}.{field.name} must be {_type_name(hints[field.name])}, "
                f"got {type(value).__name__} {value!r}"
            )
        object.__setattr__(params, field.name, value)


def _in_range(params: Any, name: str, lo: float, hi: float = math.inf, *, open_lo: bool = False,
              open_hi: bool = False) -> None:
    v = getattr(params, name)
    if not ((v > lo if open_lo else v >= lo) and (v < hi if open_hi else v <= hi)):
        interval = f"{'(' if open_lo else '['}{lo}, {hi}{')' if open_hi or hi == math.inf else ']'}"
        raise ValueError(f"{type(params).__name__}.{name} must be in {interval}, got {v}")


class _Params:
    """Mixin: type-check fields, then the subclass's ``_validate``."""

    def __post_init__(self) -> None:
        _check_types(self)
        self._validate()

    def _validate(self) -> None:
        for name in ("ratio", "random_ratio", "p_zero", "p_random", "p_keep"):
            if hasattr(self, name):
                _in_range(self, name, 0.0, 1.0)


# ---------------------------------------------------------------- token noise parameters


@dataclass(frozen=True, kw_only=True)
class SpanMaskParams(_Params):
    ratio: float = 0.3
    """Fraction of units (words or tokens) masked, exactly round(ratio * units)."""
    poisson_lambda: float = 3.0
    """Mean span length in units (Poisson), > 0."""
    unit: Literal["word", "token"] = "word"
    """Count and mask whole words (needs ``word_start`` in the context) or tokens."""
    mode: Literal["single_mask", "mask_per_token", "delete"] = "single_mask"
    """A span becomes one mask, one mask per token, or nothing."""
    random_ratio: float = 0.1
    """Probability a non-empty span gets random tokens instead of masks (0 with mode='delete')."""

    def _validate(self) -> None:
        super()._validate()
        _in_range(self, "poisson_lambda", 0.0, open_lo=True)
        if self.mode == "delete" and self.random_ratio != 0:
            raise ValueError(f"SpanMaskParams.random_ratio must be 0 when mode='delete', got {self.random_ratio}")


@dataclass(frozen=True, kw_only=True)
class T5Params(_Params):
    noise_density: float = 0.15
    """Fraction of tokens that are noise, in (0, 1)."""
    mean_span_length: float = 3.0
    """Mean noise span length, >= 1."""
    sentinel_ids: tuple[int, ...] | None = None
    """Sentinel ids in span order; None counts down from vocab_size - 1 as T5 does."""

    def _validate(self) -> None:
        _in_range(self, "noise_density", 0.0, 1.0, open_lo=True, open_hi=True)
        _in_range(self, "mean_span_length", 1.0)


@dataclass(frozen=True, kw_only=True)
class DeleteParams(_Params):
    ratio: float = 0.6
    """Fraction of body tokens deleted, exactly round(ratio * N)."""
    allow_empty: bool = False
    """Allow deleting every token; otherwise at least one is kept."""


@dataclass(frozen=True, kw_only=True)
class ReplaceParams(_Params):
    ratio: float = 0.1
    """Fraction of body tokens replaced by a different random token."""


@dataclass(frozen=True, kw_only=True)
class InsertParams(_Params):
    ratio: float = 0.1
    """Number of inserted tokens as a fraction of the body length."""
    with_token: Literal["random", "mask"] = "mask"
    """Insert random tokens or mask tokens."""


@dataclass(frozen=True, kw_only=True)
class ShuffleParams(_Params):
    max_distance: int = 3
    """No token moves more than this many places, >= 0."""

    def _validate(self) -> None:
        _in_range(self, "max_distance", 0)


@dataclass(frozen=True, kw_only=True)
class RotateParams(_Params):
    """Rotation takes no parameters."""


@dataclass(frozen=True, kw_only=True)
class KnockoutParams(_Params):
    ratio: float = 0.1
    """Fraction of body tokens replaced by ``with_token``."""
    with_token: Literal["unk", "mask"] = "mask"
    """The replacement token."""


# ---------------------------------------------------------------- frame noise parameters


@dataclass(frozen=True, kw_only=True)
class TimeMaskParams(_Params):
    ratio: float = 0.15
    """Fraction of frames selected, exactly round(ratio * T)."""
    span: int = 7
    """Frames per span, >= 1."""
    p_zero: float = 0.8
    """Probability a selected span is zeroed."""
    p_random: float = 0.1
    """Probability a selected span gets random other frames."""
    p_keep: float = 0.1
    """Probability a selected span is kept as is."""

    def _validate(self) -> None:
        super()._validate()
        _in_range(self, "span", 1)
        if abs(self.p_zero + self.p_random + self.p_keep - 1.0) > 1e-6:
            raise ValueError(f"TimeMaskParams.p_zero + p_random + p_keep must be 1, got {self}")


@dataclass(frozen=True, kw_only=True)
class FreqMaskParams(_Params):
    num_masks: int = 2
    """Number of frequency bands masked (SpecAugment mF), >= 0."""
    max_width: int = 27
    """Largest band width in bins (SpecAugment F), >= 0."""
    mask_value: float = 0.0
    """Value written into masked bins."""

    def _validate(self) -> None:
        _in_range(self, "num_masks", 0)
        _in_range(self, "max_width", 0)
        _in_range(self, "mask_value", -math.inf, open_hi=True, open_lo=True)


@dataclass(frozen=True, kw_only=True)
class GaussianParams(_Params):
    sigma: float = 0.1
    """Standard deviation of the added noise, >= 0."""
    ratio: float = 1.0
    """Fraction of frames noised, exactly round(ratio * T)."""

    def _validate(self) -> None:
        super()._validate()
        _in_range(self, "sigma", 0.0, open_hi=True)


@dataclass(frozen=True, kw_only=True)
class FrameKnockoutParams(_Params):
    ratio: float = 0.1
    """Fraction of frames zeroed, exactly round(ratio * T)."""


# ---------------------------------------------------------------- registries

TOKEN_NOISES: dict[str, tuple[type, Callable[..., Any]]] = {
    "span_mask": (SpanMaskParams, T.span_mask),
    "t5": (T5Params, T.t5_span_corruption),
    "delete": (DeleteParams, T.delete),
    "replace": (ReplaceParams, T.replace),
    "insert": (InsertParams, T.insert),
    "shuffle": (ShuffleParams, T.shuffle),
    "rotate": (RotateParams, T.rotate),
    "knockout": (KnockoutParams, T.knockout),
}
FRAME_NOISES: dict[str, tuple[type, Callable[..., Any]]] = {
    "time_mask": (TimeMaskParams, F.time_mask),
    "freq_mask": (FreqMaskParams, F.freq_mask),
    "gaussian": (GaussianParams, F.gaussian_noise),
    "frame_knockout": (FrameKnockoutParams, F.frame_knockout),
}
_REGISTRIES = {"tokens": TOKEN_NOISES, "frames": FRAME_NOISES}
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


@dataclass(frozen=True, kw_only=True)
class NoiseStep:
    """One step: the registry ``type``, its parameters, and the probability it is applied."""

    type: str
    params: Any
    prob: float = 1.0


class NoisePipeline:
    """Steps applied in order, each with probability ``prob``, from one seed per example.

    ``kind="tokens"``: ``pipeline(x, ...) -> (inputs, targets)``; targets is x unless the (only)
    step is ``t5``. ``kind="frames"``: ``pipeline(frames, ...) -> (frames', corrupted_mask)`` with
    the masks of the applied steps or-ed together.
    """

    def __init__(self, steps: Sequence[NoiseStep], *, kind: Literal["tokens", "frames"]) -> None:
        if kind not in _REGISTRIES:
            raise ValueError(f"kind must be 'tokens' or 'frames', got {kind!r}")
        registry = _REGISTRIES[kind]
        for i, step in enumerate(steps):
            where = f"noise step {i} ({step.type!r})"
            if step.type not in registry:
                raise ValueError(f"{where}: unknown {kind} noise; allowed types: {sorted(registry)}")
            if not isinstance(step.params, registry[step.type][0]):
                raise TypeError(f"{where}: params must be {registry[step.type][0].__name__}")
            if isinstance(step.prob, bool) or not isinstance(step.prob, (int, float)) or not 0 <= step.prob <= 1:
                raise ValueError(f"{where}: prob must be a number in [0, 1], got {step.prob!r}")
        if any(s.type == "t5" for s in steps) and len(steps) > 1:
            raise ValueError("a 't5' step must be the only step: it splits the sequence into inputs and targets")
        self.kind = kind
        self.steps = tuple(steps)

    @classmethod
    def from_config(cls, specs: Sequence[Mapping[str, Any]], *, kind: Literal["tokens", "frames"]) -> NoisePipeline:
        """Build from plain dicts; unknown types/keys and wrong value types raise, naming them."""
        if kind not in _REGISTRIES:
            raise ValueError(f"kind must be 'tokens' or 'frames', got {kind!r}")
        if isinstance(specs, (str, Mapping)) or not isinstance(specs, Sequence):
            raise TypeError(f"noise config must be a list of mappings, got {type(specs).__name__}")
        registry = _REGISTRIES[kind]
        steps = []
        for i, spec in enumerate(specs):
            if not isinstance(spec, Mapping):
                raise TypeError(f"noise step {i}: expected a mapping, got {type(spec).__name__}")
            name = spec.get("type")
            if not isinstance(name, str) or name not in registry:
                raise ValueError(
                    f"noise step {i}: unknown {kind} noise type {name!r}; allowed types: {sorted(registry)}"
                )
            params_cls = registry[name][0]
            allowed = ["type", "prob"] + [f.name for f in dataclasses.fields(params_cls)]
            for key in spec:
                if key not in allowed:
                    raise ValueError(f"noise step {i} ({name!r}): unknown key {key!r}; allowed keys: {allowed}")
            prob = spec.get("prob", 1.0)
            if isinstance(prob, bool) or not isinstance(prob, (int, float)):
                raise TypeError(
                    f"noise step {i} ({name!r}): key 'prob' must be float, got {type(prob).__name__} {prob!r}"
                )
            try:
                params = params_cls(**{k: v for k, v in spec.items() if k not in ("type", "prob")})
            except (TypeError, ValueError) as e:
                raise type(e)(f"noise step {i} ({name!r}): {e}") from e
            steps.append(NoiseStep(type=name, params=params, prob=float(prob)))
        return cls(steps, kind=kind)

    def to_config(self) -> list[dict[str, Any]]:
        """The plain-dict specs that ``from_config`` rebuilds this pipeline from."""
        return [{"type": s.type, "prob": s.prob, **_fields(s.params)} for s in self.steps]

    def describe(self) -> str:
        """Readable multi-line summary of the steps and their parameters."""
        lines = [f"NoisePipeline(kind={self.kind!r}, {len(self.steps)} steps; seeded by (seed, epoch, index))"]
        for i, s in enumerate(self.steps, 1):
            args = ", ".join(f"{k}={v!r}" for k, v in _fields(s.params).items())
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
            result = fn(out, generator=g, **_fields(step.params), **accepted)
            if step.type == "t5":
                out, second = result
            elif self.kind == "tokens":
                out = result
            else:
                out, mask = result
                second = second | mask
        return out, second


def _fields(params: Any) -> dict[str, Any]:
    return {f.name: getattr(params, f.name) for f in dataclasses.fields(params)}


@functools.cache
def _keyword_names(fn: Callable[..., Any]) -> frozenset[str]:
    return frozenset(inspect.signature(fn).parameters)
