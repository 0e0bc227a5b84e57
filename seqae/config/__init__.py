"""Configuration: frozen, keyword-only dataclasses validated on construction and on load.

A YAML file holds only the values that differ from the defaults. Loading rejects an unknown key, a wrong type
or an out-of-range value with one line that names the key and what is allowed:

    >>> load_config_dict({"model": {"hiden_dim": 3}})
    Traceback (most recent call last):
    ConfigError: model.hiden_dim: unknown key; allowed: ...
    >>> load_config_dict({"noise": [{"type": "delete", "ratio": 1.5}]})
    Traceback (most recent call last):
    ConfigError: noise[0].ratio: must be in [0, 1], got 1.5

`sections` holds the run's sections and `Config`, `noise` one dataclass per noise type, `validation` the
checking of plain values against the annotations, `loading` the YAML files and `--set` overrides.
"""

from seqae.config.loading import apply_overrides, load_config, load_config_dict
from seqae.config.noise import (
    NOISE_TYPES,
    DeleteNoise,
    FrameKnockoutNoise,
    FreqMaskNoise,
    GaussianNoise,
    InsertNoise,
    KnockoutNoise,
    NoiseConfig,
    ReplaceNoise,
    RotateNoise,
    ShuffleNoise,
    SpanMaskNoise,
    T5Noise,
    TimeMaskNoise,
    check_noise,
    load_noise,
)
from seqae.config.sections import (
    Config,
    DataConfig,
    FeatureConfig,
    ModelConfig,
    Normalization,
    RegularizerConfig,
    TokenizerConfig,
    TrainConfig,
)
from seqae.config.validation import ConfigError, _check, from_dict, to_dict  # noqa: F401 (_check: finetune)

__all__ = [
    "NOISE_TYPES",
    "Config",
    "ConfigError",
    "DataConfig",
    "DeleteNoise",
    "FeatureConfig",
    "FrameKnockoutNoise",
    "FreqMaskNoise",
    "GaussianNoise",
    "InsertNoise",
    "KnockoutNoise",
    "ModelConfig",
    "NoiseConfig",
    "Normalization",
    "RegularizerConfig",
    "ReplaceNoise",
    "RotateNoise",
    "ShuffleNoise",
    "SpanMaskNoise",
    "T5Noise",
    "TimeMaskNoise",
    "TokenizerConfig",
    "TrainConfig",
    "apply_overrides",
    "check_noise",
    "from_dict",
    "load_config",
    "load_config_dict",
    "load_noise",
    "to_dict",
]
