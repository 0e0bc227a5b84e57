"""Config loading: unknown keys, wrong types, out-of-range values and overrides fail with one line naming the key."""

from pathlib import Path

import pytest

from seqae.config import Config, ConfigError, apply_overrides, load_config, load_config_dict, to_dict


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
    import yaml

    from seqae.finetune.config import load_finetune_config

    configs = sorted((repo / "recipes").rglob("*.yaml"))
    assert len(configs) >= 10, "shipped configs missing"
    for path in configs:
        task = (yaml.safe_load(path.read_text()) or {}).get("task")
        if task in ("asr", "translate"):
            load_finetune_config(path)
        else:
            load_config(path)
