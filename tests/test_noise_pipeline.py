"""Noise pipelines: config validation, registries, seeding and composition."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import torch

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


# ---------------------------------------------------------------- config errors


def test_unknown_type_is_named_with_the_allowed_types():
    with pytest.raises(ValueError, match=r"'spanmask'.*allowed types: \['delete', 'insert'"):
        NoisePipeline.from_config([{"type": "spanmask"}], kind="tokens")
    with pytest.raises(ValueError, match=r"'time_mask'.*allowed types"):
        NoisePipeline.from_config([{"type": "time_mask"}], kind="tokens")  # a frame noise
    with pytest.raises(ValueError, match=r"None.*allowed types"):
        NoisePipeline.from_config([{"ratio": 0.3}], kind="tokens")


def test_unknown_key_is_named_with_the_allowed_keys():
    pattern = r"unknown key 'lambda'.*allowed keys: \['type', 'prob', 'ratio', 'poisson_lambda'"
    with pytest.raises(ValueError, match=pattern):
        NoisePipeline.from_config([{"type": "span_mask", "lambda": 3.0}], kind="tokens")


@pytest.mark.parametrize(
    "spec,pattern",
    [
        ({"type": "span_mask", "ratio": "0.3"}, r"ratio must be float, got str '0.3'"),
        ({"type": "shuffle", "max_distance": 2.5}, r"max_distance must be int, got float"),
        ({"type": "delete", "allow_empty": 1}, r"allow_empty must be bool, got int"),
        ({"type": "insert", "with_token": "pad"}, r"with_token must be 'random' \| 'mask', got str 'pad'"),
        ({"type": "t5", "sentinel_ids": [499, "498"]}, r"sentinel_ids must be list of int \| None"),
        ({"type": "knockout", "prob": "always"}, r"'prob' must be float"),
    ],
)
def test_wrong_value_type_names_the_key_and_type(spec, pattern):
    with pytest.raises(TypeError, match=pattern):
        NoisePipeline.from_config([spec], kind="tokens")


@pytest.mark.parametrize(
    "spec,pattern",
    [
        (
            {"type": "span_mask", "ratio": 1.5},
            r"noise step 0 \('span_mask'\): SpanMaskParams.ratio must be in \[0.0, 1.0\]",
        ),
        ({"type": "span_mask", "poisson_lambda": 0.0}, r"poisson_lambda must be in \(0.0, inf\)"),
        ({"type": "span_mask", "mode": "delete"}, r"random_ratio must be 0 when mode='delete'"),
        ({"type": "t5", "noise_density": 1.0}, r"noise_density must be in \(0.0, 1.0\)"),
        ({"type": "t5", "mean_span_length": 0.5}, r"mean_span_length must be in \[1.0, inf\)"),
        ({"type": "shuffle", "max_distance": -1}, r"max_distance must be in \[0, inf\)"),
        ({"type": "delete", "prob": 1.2}, r"prob must be a number in \[0, 1\]"),
    ],
)
def test_out_of_range_values_name_the_field_and_range(spec, pattern):
    with pytest.raises(ValueError, match=pattern):
        NoisePipeline.from_config([spec], kind="tokens")


def test_frame_config_errors():
    with pytest.raises(ValueError, match=r"p_zero \+ p_random \+ p_keep must be 1"):
        NoisePipeline.from_config([{"type": "time_mask", "p_zero": 0.5}], kind="frames")
    with pytest.raises(ValueError, match=r"sigma must be in \[0.0, inf\)"):
        NoisePipeline.from_config([{"type": "gaussian", "sigma": float("inf")}], kind="frames")
    with pytest.raises(ValueError, match="kind must be"):
        NoisePipeline.from_config([], kind="audio")


def test_structural_config_errors():
    with pytest.raises(TypeError, match="list of mappings"):
        NoisePipeline.from_config({"type": "delete"}, kind="tokens")
    with pytest.raises(TypeError, match="noise step 1: expected a mapping"):
        NoisePipeline.from_config([{"type": "delete"}, "shuffle"], kind="tokens")
    with pytest.raises(ValueError, match="'t5' step must be the only step"):
        NoisePipeline.from_config([{"type": "t5"}, {"type": "shuffle"}], kind="tokens")


# ---------------------------------------------------------------- registries


@pytest.mark.parametrize("name,entry", sorted({**TOKEN_NOISES, **FRAME_NOISES}.items()))
def test_params_fields_match_function_keywords_and_defaults(name, entry):
    params_cls, fn = entry
    context = set(P.CONTEXT_KEYS["tokens"]) | {"generator"}
    keywords = {
        p.name: p.default for p in list(inspect.signature(fn).parameters.values())[1:] if p.name not in context
    }
    defaults = {f.name: f.default for f in dataclasses.fields(params_cls)}
    if name == "t5":
        keywords["sentinel_ids"] = None  # Sequence[int] | None in the function, tuple in the params
    assert defaults == keywords
    params_cls()  # the defaults validate


def test_params_are_frozen_and_keyword_only():
    params = P.SpanMaskParams(ratio=0.2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.ratio = 0.5  # type: ignore[misc]
    with pytest.raises(TypeError):
        P.SpanMaskParams(0.2)  # type: ignore[misc]
    assert P.T5Params(sentinel_ids=[9, 8]).sentinel_ids == (9, 8)
    assert P.DeleteParams(ratio=1).ratio == 1.0 and isinstance(P.DeleteParams(ratio=1).ratio, float)


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
