"""Noise pipelines: built from the config's validated settings; registries, seeding and composition."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import torch

from seqae.config import NOISE_TYPES, ConfigError, ShuffleNoise, SpanMaskNoise
from seqae.noise import pipeline as P
from seqae.noise.pipeline import FRAME_NOISES, TOKEN_NOISES, NoisePipeline

V = 500
WORD_START = torch.tensor([i >= 5 and i % 2 == 0 for i in range(V)])


def seq(n: int) -> torch.Tensor:
    return torch.cat([torch.tensor([2]), torch.arange(5, 5 + n), torch.tensor([3])])


TOKEN_SPECS = [
    {"type": "span_mask", "ratio": 0.3, "poisson_lambda": 3.0, "unit": "word"},
    {"type": "shuffle", "prob": 0.5, "max_distance": 2},
    {"type": "replace", "ratio": 0.1},
]


def tokens_pipeline() -> NoisePipeline:
    return NoisePipeline.from_config(TOKEN_SPECS, kind="tokens")


# ---------------------------------------------------------------- validation (seqae.config.noise)
# The full error formats are tested in tests/test_config.py; here: from_config goes through the same validation.


def test_from_config_errors_are_the_config_errors():
    with pytest.raises(ConfigError, match=r"^noise\[0\]\.type: unknown noise 'spanmask'; allowed for task text: del"):
        NoisePipeline.from_config([{"type": "spanmask"}], kind="tokens")
    with pytest.raises(ConfigError, match=r"^noise\[0\]\.type: 'time_mask' is a speech noise; allowed for task text"):
        NoisePipeline.from_config([{"type": "time_mask"}], kind="tokens")
    with pytest.raises(ConfigError, match=r"^noise\[1\]\.lambda: unknown key; allowed: type, prob, ratio, poisson_"):
        NoisePipeline.from_config([{"type": "delete"}, {"type": "span_mask", "lambda": 3.0}], kind="tokens")
    with pytest.raises(ConfigError, match=r"^noise\[0\]\.max_distance: expected an integer, got 2.5$"):
        NoisePipeline.from_config([{"type": "shuffle", "max_distance": 2.5}], kind="tokens")
    with pytest.raises(ConfigError, match=r"^noise\[0\]\.sigma: must be in \[0, inf\), got inf$"):
        NoisePipeline.from_config([{"type": "gaussian", "sigma": float("inf")}], kind="frames")
    with pytest.raises(ConfigError, match=r"^noise: expected a list, got \{'type': 'delete'\}$"):
        NoisePipeline.from_config({"type": "delete"}, kind="tokens")
    with pytest.raises(ConfigError, match=r"^noise: a 't5' step must be the only step"):
        NoisePipeline.from_config([{"type": "t5"}, {"type": "shuffle"}], kind="tokens")
    with pytest.raises(ValueError, match="kind must be"):
        NoisePipeline.from_config([], kind="audio")


def test_pipeline_takes_the_validated_settings_of_its_kind():
    steps = (SpanMaskNoise(ratio=0.2), ShuffleNoise(prob=0.5, max_distance=2))
    pipe = NoisePipeline(steps, kind="tokens")
    assert pipe.steps == steps
    assert NoisePipeline.from_config(steps, kind="tokens").steps == steps  # settings pass through from_config
    assert NoisePipeline.from_config(pipe.to_config(), kind="tokens").steps == steps
    with pytest.raises(ConfigError, match=r"^noise\[0\]\.type: 'span_mask' is a text noise; allowed for task speech"):
        NoisePipeline(steps, kind="frames")
    with pytest.raises(ConfigError, match=r"^noise\[0\]\.type: got \{'type': 'rotate'\}; allowed for task text"):
        NoisePipeline([{"type": "rotate"}], kind="tokens")  # plain dicts go through from_config


# ---------------------------------------------------------------- registries


def test_registries_hold_the_config_dataclass_of_every_noise_type():
    assert {name: cls for name, (cls, _) in TOKEN_NOISES.items()} == NOISE_TYPES["text"]
    assert {name: cls for name, (cls, _) in FRAME_NOISES.items()} == NOISE_TYPES["speech"]


@pytest.mark.parametrize("name,entry", sorted({**TOKEN_NOISES, **FRAME_NOISES}.items()))
def test_config_defaults_match_the_noise_functions_keywords(name, entry):
    """The noise functions (seqae.noise.tokens/frames) are a library of their own, with defaults in their
    signatures; a config that leaves a key out must get the same value as a call that leaves it out."""
    params_cls, fn = entry
    context = set(P.CONTEXT_KEYS["tokens"]) | {"generator"}
    keywords = {
        p.name: p.default for p in list(inspect.signature(fn).parameters.values())[1:] if p.name not in context
    }
    defaults = {f.name: f.default for f in dataclasses.fields(params_cls) if f.name not in ("type", "prob")}
    assert defaults == keywords
    assert params_cls().type == name and params_cls().prob == 1.0  # the defaults validate


def test_settings_are_frozen_and_keyword_only():
    spec = SpanMaskNoise(ratio=0.2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.ratio = 0.5  # type: ignore[misc]
    with pytest.raises(TypeError):
        SpanMaskNoise(0.2)  # type: ignore[misc]
    with pytest.raises(ConfigError, match=r"^ratio: must be in \[0, 1\], got 1.5$"):
        SpanMaskNoise(ratio=1.5)  # validated on construction too
    with pytest.raises(ConfigError, match=r"^type: must be 'span_mask' for SpanMaskNoise, got 't5'$"):
        SpanMaskNoise(type="t5")  # type: ignore[arg-type]


# ---------------------------------------------------------------- seeding and reproducibility


def test_mix_seed_is_splitmix64_and_fixed():
    assert P._splitmix64(0) == 0xE220A8397B1DCDAF  # SplitMix64's first output from state 0
    assert P.mix_seed(1, 2, 3) == 15020427595393229491
    assert len({P.mix_seed(s, e, i) for s in range(4) for e in range(4) for i in range(4)}) == 64


def test_same_triple_same_output_and_epochs_differ():
    pipe, x = tokens_pipeline(), seq(40)
    ctx = {"vocab_size": V, "word_start": WORD_START}
    first = [pipe(x, seed=7, epoch=0, index=i, **ctx)[0] for i in range(50)]
    torch.manual_seed(123)  # the global RNG plays no part
    tokens_pipeline()(seq(5), seed=1, epoch=1, index=1, **ctx)  # nor do earlier calls
    again = [tokens_pipeline()(x, seed=7, epoch=0, index=i, **ctx)[0] for i in range(50)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    next_epoch = [pipe(x, seed=7, epoch=1, index=i, **ctx)[0] for i in range(50)]
    assert sum(not torch.equal(a, b) for a, b in zip(first, next_epoch)) >= 48
    other_seed = [pipe(x, seed=8, epoch=0, index=i, **ctx)[0] for i in range(50)]
    assert sum(not torch.equal(a, b) for a, b in zip(first, other_seed)) >= 48
    assert len({tuple(t.tolist()) for t in first}) >= 48  # indices differ too


def test_step_probability_is_respected():
    pipe = NoisePipeline.from_config([{"type": "rotate", "prob": 0.3}], kind="tokens")
    x = seq(10)
    applied = sum(not torch.equal(pipe(x, seed=0, epoch=0, index=i)[0], x) for i in range(3000))
    assert abs(applied / 3000 - 0.3) < 0.03
    never = NoisePipeline.from_config([{"type": "rotate", "prob": 0.0}], kind="tokens")
    assert all(torch.equal(never(x, seed=0, epoch=0, index=i)[0], x) for i in range(50))


def test_token_pipeline_returns_inputs_and_targets():
    x = seq(30)
    inputs, targets = tokens_pipeline()(x, seed=0, epoch=0, index=0, vocab_size=V, word_start=WORD_START)
    assert torch.equal(targets, x) and not torch.equal(inputs, x)
    t5 = NoisePipeline.from_config([{"type": "t5"}], kind="tokens")
    inputs, targets = t5(x, seed=0, epoch=0, index=0, vocab_size=V)
    assert V - 1 in inputs.tolist()
    assert targets.numel() < x.numel() and int(targets[1]) == V - 1


def test_context_errors():
    pipe = tokens_pipeline()
    with pytest.raises(ValueError, match=r"unknown context \['vocab'\]"):
        pipe(seq(5), seed=0, epoch=0, index=0, vocab=V)
    with pytest.raises(ValueError, match="vocab_size"):
        NoisePipeline.from_config([{"type": "replace"}], kind="tokens")(seq(20), seed=0, epoch=0, index=0)
    with pytest.raises(ValueError, match="word_start"):
        words = NoisePipeline.from_config([{"type": "span_mask"}], kind="tokens")
        words(seq(20), seed=0, epoch=0, index=0, vocab_size=V)
    with pytest.raises(TypeError, match="epoch must be an int"):
        pipe(seq(5), seed=0, epoch=1.0, index=0)
    with pytest.raises(ValueError, match="position 3"):
        pipe(torch.tensor([2, 7, 8, 0, 9, 3]), seed=0, epoch=0, index=0, vocab_size=V, word_start=WORD_START)


def test_frames_pipeline_composes_masks():
    specs = [
        {"type": "time_mask", "ratio": 0.2, "span": 5, "p_zero": 1.0, "p_random": 0.0, "p_keep": 0.0},
        {"type": "frame_knockout", "ratio": 0.1},
    ]
    pipe = NoisePipeline.from_config(specs, kind="frames")
    x = torch.randn(100, 8) + 10.0  # no zero entries
    out, mask = pipe(x, seed=3, epoch=0, index=0)
    assert out.shape == x.shape and mask.shape == (100,)
    zeroed = (out == 0).all(1)
    assert torch.equal(zeroed, mask)  # both steps zero what they mark
    assert 20 <= int(mask.sum()) <= 30  # 20 time-masked frames, 10 knocked out, overlaps allowed
    out2, mask2 = pipe(x, seed=3, epoch=0, index=0)
    assert torch.equal(out, out2) and torch.equal(mask, mask2)


def test_describe_and_round_trip():
    pipe = tokens_pipeline()
    text = pipe.describe()
    assert "kind='tokens'" in text and "3 steps" in text
    assert "1. span_mask (prob 1): ratio=0.3, poisson_lambda=3.0, unit='word'" in text
    assert "2. shuffle (prob 0.5): max_distance=2" in text
    rebuilt = NoisePipeline.from_config(pipe.to_config(), kind="tokens")
    assert rebuilt.to_config() == pipe.to_config()
    ctx = {"vocab_size": V, "word_start": WORD_START}
    for i in range(20):
        a = pipe(seq(25), seed=1, epoch=2, index=i, **ctx)
        b = rebuilt(seq(25), seed=1, epoch=2, index=i, **ctx)
        assert torch.equal(a[0], b[0])
    assert NoisePipeline([], kind="frames").describe().startswith("NoisePipeline(kind='frames', 0 steps")
