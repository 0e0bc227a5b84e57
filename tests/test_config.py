"""Config loading: unknown keys, wrong types, out-of-range values and overrides fail with one line naming the key."""

from pathlib import Path

import pytest
import yaml

from seqae.config import (
    NOISE_TYPES,
    Config,
    ConfigError,
    DeleteNoise,
    ShuffleNoise,
    SpanMaskNoise,
    T5Noise,
    TimeMaskNoise,
    apply_overrides,
    load_config,
    load_config_dict,
    to_dict,
)


def test_defaults_round_trip():
    config = Config()
    assert load_config_dict(to_dict(config)) == config


@pytest.mark.parametrize("data, message", [
    ({"model": {"hiden_dim": 3}}, "model.hiden_dim: unknown key; allowed: encoder, decoder"),
    ({"modle": {}}, "modle: unknown key; allowed: task, data, tokenizer, features, model, regularize, train, noise"),
    ({"train": {"lr": "fast"}}, "train.lr: expected a number, got 'fast'"),
    ({"train": {"max_steps": 1.5}}, "train.max_steps: expected an integer, got 1.5"),
    ({"model": {"bidirectional": "yes"}}, "model.bidirectional: expected true or false, got 'yes'"),
    ({"model": {"encoder": "rnn"}}, "model.encoder: got 'rnn'; allowed: one of 'gru', 'lstm', 'transformer'"),
    ({"train": {"betas": [0.9]}}, "train.betas: expected 2 values, got 1"),
    ({"data": {"max_sentences": "many"}}, "data.max_sentences: got 'many'; expected int or null"),
    ({"train": {"max_steps": 0}}, "train.max_steps: must be > 0, got 0"),
    ({"model": {"dropout": 1.5}}, "model.dropout: must be in [0, 1), got 1.5"),
    ({"model": {"pooling": "cls"}}, "model.pooling: 'cls' needs model.encoder: transformer"),
    ({"model": {"encoder": "transformer", "hidden_dim": 30, "num_heads": 4}},
     "model.hidden_dim: must be divisible by model.num_heads (4)"),
    ({"model": 3}, "model: expected a mapping of ModelConfig fields, got 3"),
])
def test_errors_name_the_key(data, message):
    with pytest.raises(ConfigError) as err:
        load_config_dict(data)
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


TEXT_TYPES = "delete, insert, knockout, replace, rotate, shuffle, span_mask, t5"
SPEECH_TYPES = "frame_knockout, freq_mask, gaussian, time_mask"


@pytest.mark.parametrize("data, message", [
    # unknown key: named with the allowed keys of that noise
    ({"noise": [{"type": "delete"}, {"type": "span_mask", "lambda": 3}]},
     "noise[1].lambda: unknown key; allowed: type, prob, ratio, poisson_lambda, unit, mode, random_ratio"),
    # wrong type
    ({"noise": [{"type": "span_mask", "ratio": "lots"}]}, "noise[0].ratio: expected a number, got 'lots'"),
    ({"noise": [{"type": "shuffle", "max_distance": 2.5}]}, "noise[0].max_distance: expected an integer, got 2.5"),
    ({"noise": [{"type": "delete", "allow_empty": 1}]}, "noise[0].allow_empty: expected true or false, got 1"),
    ({"noise": [{"type": "insert", "with_token": "pad"}]},
     "noise[0].with_token: got 'pad'; allowed: one of 'random', 'mask'"),
    ({"noise": [{"type": "t5", "sentinel_ids": [499, "498"]}]},
     "noise[0].sentinel_ids: got [499, '498']; expected a list of int or null"),
    ({"noise": [{"type": "knockout", "prob": "always"}]}, "noise[0].prob: expected a number, got 'always'"),
    ({"noise": {"type": "delete"}}, "noise: expected a list, got {'type': 'delete'}"),
    ({"noise": ["delete"]}, "noise[0]: expected a mapping such as {type: span_mask, ratio: 0.3}, got 'delete'"),
    # out of range
    ({"noise": [{"type": "delete"}, {"type": "delete", "ratio": 1.5}]}, "noise[1].ratio: must be in [0, 1], got 1.5"),
    ({"noise": [{"type": "span_mask", "poisson_lambda": 0}]}, "noise[0].poisson_lambda: must be > 0, got 0.0"),
    ({"noise": [{"type": "span_mask", "mode": "delete"}]},
     "noise[0].random_ratio: must be 0 with mode: delete, got 0.1"),
    ({"noise": [{"type": "t5", "noise_density": 1.0}]}, "noise[0].noise_density: must be in (0, 1), got 1.0"),
    ({"noise": [{"type": "t5", "mean_span_length": 0.5}]}, "noise[0].mean_span_length: must be >= 1, got 0.5"),
    ({"noise": [{"type": "shuffle", "max_distance": -1}]}, "noise[0].max_distance: must be >= 0, got -1"),
    ({"noise": [{"type": "delete", "prob": 1.2}]}, "noise[0].prob: must be in [0, 1], got 1.2"),
    ({"task": "speech", "noise": [{"type": "time_mask", "p_zero": 0.5}]},
     "noise[0].p_keep: p_zero + p_random + p_keep must be 1, got 0.7"),
    ({"task": "speech", "noise": [{"type": "gaussian", "sigma": float("inf")}]},
     "noise[0].sigma: must be in [0, inf), got inf"),
    ({"task": "speech", "noise": [{"type": "freq_mask", "max_width": -2}]}, "noise[0].max_width: must be >= 0, got -2"),
    ({"noise": [{"type": "t5"}, {"type": "shuffle"}]},
     "noise: a 't5' step must be the only step: it splits the sequence into inputs and targets"),
    # unknown type, or a type of the other task
    ({"noise": [{"type": "spanmask"}]},
     (f"noise[0].type: unknown noise 'spanmask'; allowed for task text: {TEXT_TYPES}; "
      f"allowed for task speech: {SPEECH_TYPES}")),
    ({"noise": [{"ratio": 0.3}]}, f"noise[0].type: missing; allowed for task text: {TEXT_TYPES}"),
    ({"noise": [{"type": ["delete"]}]}, "noise[0].type: unknown noise ['delete']; allowed for task text"),
    ({"noise": [{"type": "delete"}, {"type": "time_mask"}]},
     f"noise[1].type: 'time_mask' is a speech noise; allowed for task text: {TEXT_TYPES}"),
    ({"task": "speech", "noise": [{"type": "span_mask"}]},
     f"noise[0].type: 'span_mask' is a text noise; allowed for task speech: {SPEECH_TYPES}"),
])
def test_noise_errors_name_the_entry_and_key(data, message):
    with pytest.raises(ConfigError) as err:
        load_config_dict(data)
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_noise_entries_become_their_dataclasses_with_defaults():
    config = load_config_dict({"noise": [{"type": "span_mask", "ratio": 0.2}, {"type": "shuffle", "prob": 0}]})
    assert config.noise == (SpanMaskNoise(ratio=0.2), ShuffleNoise(prob=0.0))
    assert config.noise[0].poisson_lambda == 3.0 and isinstance(config.noise[1].prob, float)
    assert load_config_dict({"noise": [{"type": "t5", "sentinel_ids": [9, 8]}]}).noise[0].sentinel_ids == (9, 8)
    assert load_config_dict({"noise": list(config.noise)}) == config  # validated settings are accepted as they are
    speech = load_config_dict({"task": "speech", "noise": [{"type": "time_mask", "span": 5}]})
    assert speech.noise == (TimeMaskNoise(span=5),)
    with pytest.raises(ConfigError, match=r"^noise\[0\]\.type: 'delete' is a text noise; allowed for task speech"):
        Config(task="speech", noise=(DeleteNoise(),))  # checked on construction too


def test_every_noise_type_round_trips_through_yaml(tmp_path):
    for task, types in NOISE_TYPES.items():
        for cls in types.values():
            config = Config(task=task, noise=(cls(prob=0.5),))
            path = tmp_path / f"{cls.type}.yaml"
            path.write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
            assert load_config(path) == config
    config = Config(noise=(T5Noise(sentinel_ids=(9, 8), noise_density=0.3),))
    on_disk = to_dict(config)["noise"]
    assert on_disk == [{"type": "t5", "prob": 1.0, "noise_density": 0.3, "mean_span_length": 3.0,
                        "sentinel_ids": [9, 8]}]
    assert load_config_dict(yaml.safe_load(yaml.safe_dump(to_dict(config)))) == config


def test_noise_can_be_set_on_the_command_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("noise:\n  - {type: delete, ratio: 0.5}\n")
    config = load_config(path, ["noise=[{type: span_mask, ratio: 0.3}, {type: shuffle, max_distance: 2}]"])
    assert config.noise == (SpanMaskNoise(ratio=0.3), ShuffleNoise(max_distance=2))
    with pytest.raises(ConfigError, match=r"^noise\[0\]\.ratio: must be in \[0, 1\], got 2.0$"):
        load_config(path, ["noise=[{type: delete, ratio: 2}]"])


def test_ints_accepted_for_floats_and_lists_for_tuples():
    config = load_config_dict({"train": {"lr": 1, "betas": [0.9, 0.99]}})
    assert config.train.lr == 1.0 and isinstance(config.train.lr, float)
    assert config.train.betas == (0.9, 0.99)


def test_overrides_parse_yaml_values():
    data = apply_overrides({"model": {"encoder": "gru"}}, ["model.encoder=lstm", "train.lr=1e-3", "data.heldout=null"])
    config = load_config_dict(data)
    assert config.model.encoder == "lstm" and config.train.lr == 1e-3 and config.data.heldout is None
    with pytest.raises(ConfigError, match="expected key=value"):
        apply_overrides({}, ["model.encoder"])


def test_load_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text("train:\n  lr: 0.1\n  max_step: 5\n")
    with pytest.raises(ConfigError, match=r"^train.max_step: unknown key"):
        load_config(typo)


def test_every_shipped_config_is_valid(repo: Path):
    from seqae.finetune.config import load_finetune_config

    configs = sorted((repo / "recipes").rglob("*.yaml"))
    assert len(configs) >= 10, "shipped configs missing"
    for path in configs:
        task = (yaml.safe_load(path.read_text()) or {}).get("task")
        if task in ("asr", "translate"):
            load_finetune_config(path)
        else:
            load_config(path)
