"""The `noise:` list: one frozen dataclass per corruption, its defaults and its ranges (seqae.noise applies them).

Each entry is a mapping `{type: NAME, prob: P, ...}`: `type` picks the dataclass, `prob` is the probability the
step is applied to an example, and every other key is a field of that noise. Token noises are for `task: text`,
frame noises for `task: speech`. A bad entry is one ConfigError line naming it, e.g.
`noise[1].ratio: must be in [0, 1], got 1.5`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Mapping, Sequence

from seqae.config.validation import ConfigError, _check, _convert, convert_fields


def _check_step(spec: Any, *fractions: str) -> None:
    """The checks every noise shares: its own `type`, `prob` in [0, 1], and the named fields in [0, 1]."""
    expected = type(spec).__dataclass_fields__["type"].default
    _check(spec.type == expected, "type", f"must be {expected!r} for {type(spec).__name__}, got {spec.type!r}")
    for name in ("prob", *fractions):
        value = getattr(spec, name)
        _check(0.0 <= value <= 1.0, name, f"must be in [0, 1], got {value}")


# ---------------------------------------------------------------------------------------------------------------------
# Token noises (task: text), seqae.noise.tokens


@dataclass(frozen=True, kw_only=True)
class SpanMaskNoise:
    """BART's text infilling: Poisson-length spans of words or tokens masked."""

    type: Literal["span_mask"] = "span_mask"
    """The noise."""
    prob: float = 1.0
    """Probability the step is applied to an example."""
    ratio: float = 0.3
    """Fraction of units (words or tokens) masked, exactly round(ratio * units)."""
    poisson_lambda: float = 3.0
    """Mean span length in units (Poisson), > 0."""
    unit: Literal["word", "token"] = "word"
    """Count and mask whole words (SentencePiece word starts) or tokens."""
    mode: Literal["single_mask", "mask_per_token", "delete"] = "single_mask"
    """A span becomes one mask, one mask per token, or nothing."""
    random_ratio: float = 0.1
    """Probability a non-empty span gets random tokens instead of masks (0 with mode: delete)."""

    def __post_init__(self) -> None:
        _check_step(self, "ratio", "random_ratio")
        _check(self.poisson_lambda > 0, "poisson_lambda", f"must be > 0, got {self.poisson_lambda}")
        _check(self.mode != "delete" or self.random_ratio == 0, "random_ratio",
               f"must be 0 with mode: delete, got {self.random_ratio}")


@dataclass(frozen=True, kw_only=True)
class T5Noise:
    """T5's span corruption: noise spans become sentinels in the input; the target lists the spans."""

    type: Literal["t5"] = "t5"
    """The noise (splits a sequence into inputs and targets, so it must be the only step)."""
    prob: float = 1.0
    """Probability the step is applied to an example."""
    noise_density: float = 0.15
    """Fraction of tokens that are noise, in (0, 1)."""
    mean_span_length: float = 3.0
    """Mean noise span length, >= 1."""
    sentinel_ids: tuple[int, ...] | None = None
    """Sentinel ids in span order; null counts down from vocab_size - 1 as T5 does."""

    def __post_init__(self) -> None:
        _check_step(self)
        _check(0 < self.noise_density < 1, "noise_density", f"must be in (0, 1), got {self.noise_density}")
        _check(self.mean_span_length >= 1, "mean_span_length", f"must be >= 1, got {self.mean_span_length}")


@dataclass(frozen=True, kw_only=True)
class DeleteNoise:
    """TSDAE's deletion: random body tokens removed."""

    type: Literal["delete"] = "delete"
    """The noise."""
    prob: float = 1.0
    """Probability the step is applied to an example."""
    ratio: float = 0.6
    """Fraction of body tokens deleted, exactly round(ratio * N)."""
    allow_empty: bool = False
    """Allow deleting every token; otherwise at least one is kept."""

    def __post_init__(self) -> None:
        _check_step(self, "ratio")


@dataclass(frozen=True, kw_only=True)
class ReplaceNoise:
    """Random body tokens replaced by other random tokens."""

    type: Literal["replace"] = "replace"
    """The noise."""
    prob: float = 1.0
    """Probability the step is applied to an example."""
    ratio: float = 0.1
    """Fraction of body tokens replaced by a different random token."""

    def __post_init__(self) -> None:
        _check_step(self, "ratio")


@dataclass(frozen=True, kw_only=True)
class InsertNoise:
    """Random or mask tokens inserted at random places."""

    type: Literal["insert"] = "insert"
    """The noise."""
    prob: float = 1.0
    """Probability the step is applied to an example."""
    ratio: float = 0.1
    """Number of inserted tokens as a fraction of the body length."""
    with_token: Literal["random", "mask"] = "mask"
    """Insert random tokens or mask tokens."""

    def __post_init__(self) -> None:
        _check_step(self, "ratio")


@dataclass(frozen=True, kw_only=True)
class ShuffleNoise:
    """Local shuffle: tokens move a bounded distance."""

    type: Literal["shuffle"] = "shuffle"
    """The noise."""
    prob: float = 1.0
    """Probability the step is applied to an example."""
    max_distance: int = 3
    """No token moves more than this many places, >= 0."""

    def __post_init__(self) -> None:
        _check_step(self)
        _check(self.max_distance >= 0, "max_distance", f"must be >= 0, got {self.max_distance}")


@dataclass(frozen=True, kw_only=True)
class RotateNoise:
    """BART's document rotation: the body starts at a random token."""

    type: Literal["rotate"] = "rotate"
    """The noise."""
    prob: float = 1.0
    """Probability the step is applied to an example."""

    def __post_init__(self) -> None:
        _check_step(self)


@dataclass(frozen=True, kw_only=True)
class KnockoutNoise:
    """Random body tokens replaced by unk or mask."""

    type: Literal["knockout"] = "knockout"
    """The noise."""
    prob: float = 1.0
    """Probability the step is applied to an example."""
    ratio: float = 0.1
    """Fraction of body tokens replaced by `with_token`."""
    with_token: Literal["unk", "mask"] = "mask"
    """The replacement token."""

    def __post_init__(self) -> None:
        _check_step(self, "ratio")


# ---------------------------------------------------------------------------------------------------------------------
# Frame noises (task: speech), seqae.noise.frames


@dataclass(frozen=True, kw_only=True)
class TimeMaskNoise:
    """Spans of frames zeroed, replaced by other frames, or kept (BERT's 80/10/10 on frames)."""

    type: Literal["time_mask"] = "time_mask"
    """The noise."""
    prob: float = 1.0
    """Probability the step is applied to an example."""
    ratio: float = 0.15
    """Fraction of frames selected, exactly round(ratio * T)."""
    span: int = 7
    """Frames per span, >= 1."""
    p_zero: float = 0.8
    """Probability a selected span is zeroed."""
    p_random: float = 0.1
    """Probability a selected span gets random other frames."""
    p_keep: float = 0.1
    """Probability a selected span is kept as is (p_zero + p_random + p_keep = 1)."""

    def __post_init__(self) -> None:
        _check_step(self, "ratio", "p_zero", "p_random", "p_keep")
        _check(self.span >= 1, "span", f"must be >= 1, got {self.span}")
        total = self.p_zero + self.p_random + self.p_keep
        _check(abs(total - 1.0) <= 1e-6, "p_keep", f"p_zero + p_random + p_keep must be 1, got {total}")


@dataclass(frozen=True, kw_only=True)
class FreqMaskNoise:
    """SpecAugment's frequency masking: bands of feature bins set to a value."""

    type: Literal["freq_mask"] = "freq_mask"
    """The noise."""
    prob: float = 1.0
    """Probability the step is applied to an example."""
    num_masks: int = 2
    """Number of frequency bands masked (SpecAugment mF), >= 0."""
    max_width: int = 27
    """Largest band width in bins (SpecAugment F), >= 0."""
    mask_value: float = 0.0
    """Value written into masked bins (finite)."""

    def __post_init__(self) -> None:
        _check_step(self)
        _check(self.num_masks >= 0, "num_masks", f"must be >= 0, got {self.num_masks}")
        _check(self.max_width >= 0, "max_width", f"must be >= 0, got {self.max_width}")
        _check(math.isfinite(self.mask_value), "mask_value", f"must be finite, got {self.mask_value}")


@dataclass(frozen=True, kw_only=True)
class GaussianNoise:
    """Gaussian noise added to a fraction of the frames."""

    type: Literal["gaussian"] = "gaussian"
    """The noise."""
    prob: float = 1.0
    """Probability the step is applied to an example."""
    sigma: float = 0.1
    """Standard deviation of the added noise, >= 0 and finite."""
    ratio: float = 1.0
    """Fraction of frames noised, exactly round(ratio * T)."""

    def __post_init__(self) -> None:
        _check_step(self, "ratio")
        _check(0 <= self.sigma < math.inf, "sigma", f"must be in [0, inf), got {self.sigma}")


@dataclass(frozen=True, kw_only=True)
class FrameKnockoutNoise:
    """Single frames zeroed."""

    type: Literal["frame_knockout"] = "frame_knockout"
    """The noise."""
    prob: float = 1.0
    """Probability the step is applied to an example."""
    ratio: float = 0.1
    """Fraction of frames zeroed, exactly round(ratio * T)."""

    def __post_init__(self) -> None:
        _check_step(self, "ratio")


# ---------------------------------------------------------------------------------------------------------------------
# The list

NoiseConfig = (SpanMaskNoise | T5Noise | DeleteNoise | ReplaceNoise | InsertNoise | ShuffleNoise | RotateNoise
               | KnockoutNoise | TimeMaskNoise | FreqMaskNoise | GaussianNoise | FrameKnockoutNoise)
"""Any one noise step."""

NOISE_TYPES: dict[str, dict[str, type]] = {
    "text": {cls.type: cls for cls in (SpanMaskNoise, T5Noise, DeleteNoise, ReplaceNoise, InsertNoise, ShuffleNoise,
                                      RotateNoise, KnockoutNoise)},
    "speech": {cls.type: cls for cls in (TimeMaskNoise, FreqMaskNoise, GaussianNoise, FrameKnockoutNoise)},
}
"""The noise dataclass of each `type`, by the task it corrupts (token noises: text; frame noises: speech)."""


def _allowed(task: str) -> str:
    return f"allowed for task {task}: {', '.join(sorted(NOISE_TYPES[task]))}"


def convert_noise(value: Any, key: str) -> NoiseConfig:
    """One `noise:` entry, a mapping whose `type` picks the dataclass (or such a dataclass), validated."""
    if isinstance(value, tuple(cls for types in NOISE_TYPES.values() for cls in types.values())):
        return value
    _check(isinstance(value, Mapping), key,
           f"expected a mapping such as {{type: span_mask, ratio: 0.3}}, got {value!r}")
    name = value.get("type")
    classes = {n: cls for types in NOISE_TYPES.values() for n, cls in types.items()}
    if not isinstance(name, str) or name not in classes:
        got = "missing" if "type" not in value else f"unknown noise {name!r}"
        raise ConfigError(f"{key}.type: {got}; {_allowed('text')}; {_allowed('speech')}")
    kwargs = convert_fields(classes[name], value, prefix=key)
    try:
        return classes[name](**kwargs)
    except ConfigError as err:  # a range check names the field alone
        raise ConfigError(f"{key}.{err}") from None


NoiseEntry = Annotated[NoiseConfig, convert_noise]
"""A `noise:` entry as loaded from YAML: converted by `convert_noise`."""


def check_noise(noise: Sequence[Any], task: str, key: str = "noise") -> None:
    """The steps suit `task` (token noises for text, frame noises for speech); a t5 step is the only step."""
    _check(task in NOISE_TYPES, "task", f"got {task!r}; allowed: {', '.join(NOISE_TYPES)}")
    allowed = tuple(NOISE_TYPES[task].values())
    for i, spec in enumerate(noise):
        if isinstance(spec, allowed):
            continue
        other = [t for t, types in NOISE_TYPES.items() if type(spec) in types.values()]
        got = f"{spec.type!r} is a {other[0]} noise" if other else f"got {spec!r}"
        raise ConfigError(f"{key}[{i}].type: {got}; {_allowed(task)}")
    if len(noise) > 1 and any(isinstance(spec, T5Noise) for spec in noise):
        raise ConfigError(f"{key}: a 't5' step must be the only step: it splits the sequence into inputs and targets")


def load_noise(specs: Any, *, task: str, key: str = "noise") -> tuple[NoiseConfig, ...]:
    """Validate a `noise:` list (mappings or noise dataclasses) for `task`."""
    noise = _convert(specs, tuple[NoiseEntry, ...], key)
    check_noise(noise, task, key)
    return noise

