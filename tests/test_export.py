"""Export and `load_encoder`: the same z and states as the training model, only encoder weights, no pickle,
every architecture and bottleneck, speech front end with features + CMVN, clear errors, the CLI command."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from conftest import tiny_speech_config, tiny_text_config
from safetensors.torch import load_file

from seqae import load_encoder
from seqae.checkpoint import save_checkpoint
from seqae.cli import main
from seqae.config import load_config_dict, to_dict
from seqae.data.manifest import read_manifest
from seqae.data.speech import extract_file
from seqae.export import ExportError, PretrainedEncoder, export_run
from seqae.frontend.audio import load_audio
from seqae.frontend.collate import collate_frames
from seqae.frontend.features import Cmvn, FeatureExtractor
from seqae.models.builder import build_model
from seqae.runs import load_run

SENTENCES = ["The cat sat.", "A penny saved is a penny earned.", "", "Why?",
             "Some sentences are much longer than the others, long enough to be cut at the training length limit."]
TEXT_FILES = {"config.json", "model.safetensors", "tokenizer.model", "README.md"}
SPEECH_FILES = {"config.json", "model.safetensors", "features.json", "README.md"}
WORDS = "data/espeak_words/train"


pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


def fake_run(tmp: Path, base: Path, config: dict, regularize: dict | None = None, seed: int = 0) -> Path:
    """A run directory holding a freshly initialised model's checkpoint (front end files copied from `base`)."""
    run = tmp / f"run_{seed}"
    run.mkdir()
    config = load_config_dict({**config, "regularize": regularize or {}})
    (run / "config.yaml").write_text(yaml.safe_dump(to_dict(config)))
    torch.manual_seed(seed)
    if config.task == "text":
        shutil.copy(base / "tokenizer.model", run / "tokenizer.model")
        model = build_model(config, vocab_size=load_run(base).tokenizer.vocab_size)
    else:
        shutil.copy(base / "cmvn.json", run / "cmvn.json")
        model = build_model(config, feature_dim=FeatureExtractor.from_config(config.features).feature_dim)
    save_checkpoint(run, 5, {"model": model.state_dict()})
    return run


def training_text_encode(run_dir: Path, sentences: list[str]):
    run = load_run(run_dir)
    tokens, lengths = run.batch(sentences)
    z, _, enc = run.model.encode(tokens, lengths, return_layers=True)
    return run, z, enc


# ---------------------------------------------------------------------------------------------------------------------
# Text


def test_text_export_gives_the_training_models_z_states_and_layers(tiny_text_run, tmp_path):
    out = export_run(tiny_text_run, tmp_path / "export")
    assert {p.name for p in out.iterdir()} == TEXT_FILES
    enc = load_encoder(out)
    result = enc(SENTENCES)
    run, z, train_enc = training_text_encode(tiny_text_run, SENTENCES)
    assert (result.z - z).abs().max() <= 1e-5
    assert (result.z - run.encode(SENTENCES)).abs().max() <= 1e-5
    torch.testing.assert_close(result.states, train_enc.states, atol=1e-5, rtol=0)
    assert torch.equal(result.lengths, train_enc.lengths)
    assert len(result.layers) == enc.num_layers == 1
    assert result.states.shape == (len(SENTENCES), int(result.lengths.max()), enc.output_dim)
    assert result.z.shape == (len(SENTENCES), enc.bottleneck_dim) == (5, 8)
    assert int(result.lengths.max()) == 16  # the long sentence is cut at data.max_len, as in training


def test_safetensors_hold_only_encoder_side_weights(tiny_text_run, tmp_path):
    out = export_run(tiny_text_run, tmp_path / "export")
    weights = load_file(str(out / "model.safetensors"))
    assert weights and all(k.startswith(("encoder.", "bottleneck.")) for k in weights)
    model = load_run(tiny_text_run).model
    expected = {"encoder.embedding.weight": model.embedding.weight,
                **{f"encoder.body.{k}": v for k, v in model.encoder.state_dict().items()},
                **{f"bottleneck.{k}": v for k, v in model.bottleneck.state_dict().items()}}
    assert set(weights) == set(expected)
    for key, value in expected.items():
        assert torch.equal(weights[key], value), key
    exported = sum(v.numel() for v in weights.values())
    assert exported < sum(p.numel() for p in model.parameters())  # the decoder is left out


def test_config_and_model_card_describe_the_run(tiny_text_run, tmp_path):
    out = export_run(tiny_text_run, tmp_path / "export")
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["format"], cfg["format_version"], cfg["kind"], cfg["step"]) == ("seqae-encoder", 2, "text", 3)
    run_config = load_config_dict(yaml.safe_load((tiny_text_run / "config.yaml").read_text()))
    assert cfg["model"] == to_dict(run_config.model) and cfg["regularize"] == to_dict(run_config.regularize)
    assert cfg["encoder"] == {"type": "gru", "input_dim": 16, "hidden_dim": 16, "layers": 1, "dropout": 0.1,
                              "output_dim": 32, "bidirectional": True}
    assert cfg["bottleneck"]["pooling"] == "last" and cfg["bottleneck"]["regularizer"] == "none"
    assert cfg["special_ids"] == {"pad": 0, "unk": 1, "bos": 2, "eos": 3, "mask": 4}
    assert cfg["source_run"] == str(tiny_text_run.resolve())
    card = (out / "README.md").read_text()
    metrics = json.loads((tiny_text_run / "metrics.json").read_text())
    assert f"| heldout_loss | {metrics['heldout_loss']:.4g} |" in card
    assert "train_sequences: 58" in card and "at step 3" in card
    assert "--load-pretrained-encoder-from" in card and "--init_param" in card


def test_loading_never_calls_torch_load(tiny_text_run, tmp_path, monkeypatch):
    out = export_run(tiny_text_run, tmp_path / "export")

    def refuse(*args, **kwargs):
        raise AssertionError("torch.load was called")

    monkeypatch.setattr(torch, "load", refuse)
    assert load_encoder(out)(["Hello."]).z.shape == (1, 8)


def test_weights_false_gives_the_architecture_with_fresh_weights(tiny_text_run, tmp_path):
    out = export_run(tiny_text_run, tmp_path / "export")
    (out / "model.safetensors").unlink()  # not read
    torch.manual_seed(0)
    fresh = load_encoder(out, weights=False)
    torch.manual_seed(0)
    again = load_encoder(out, weights=False)
    trained = load_run(tiny_text_run).model
    assert not torch.equal(fresh.encoder.embedding.weight, trained.embedding.weight)
    for (name, a), (_, b) in zip(fresh.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name
    assert fresh(SENTENCES).z.shape == (5, 8)


ARCHITECTURES = [
    ({"encoder": "gru", "pooling": "attention", "encoder_layers": 2}, None),
    ({"encoder": "lstm", "pooling": "mean", "bidirectional": False, "encoder_layers": 2}, None),
    ({"encoder": "lstm", "pooling": "last"}, {"variational": True}),
    ({"encoder": "transformer", "pooling": "cls", "encoder_layers": 2}, {"sparse": "kl"}),
    ({"encoder": "transformer", "pooling": "mean"}, {"sparse": "l1", "contractive_weight": 0.1}),
]


@pytest.mark.parametrize("model, regularize", ARCHITECTURES, ids=lambda v: str(v))
def test_every_text_architecture_round_trips(repo, tiny_text_run, tmp_path, model, regularize):
    run = fake_run(tmp_path, tiny_text_run, tiny_text_config(repo, **model), regularize)
    enc = load_encoder(export_run(run, tmp_path / "export"))
    result = enc(SENTENCES)
    _, z, train_enc = training_text_encode(run, SENTENCES)
    assert (result.z - z).abs().max() <= 1e-5
    torch.testing.assert_close(result.states, train_enc.states, atol=1e-5, rtol=0)
    layers = model.get("encoder_layers", 1) + (model["encoder"] == "transformer")
    assert len(result.layers) == enc.num_layers == layers
    for got, want in zip(result.layers, train_enc.layers):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_variational_z_is_the_mean_even_while_fine_tuning(repo, tiny_text_run, tmp_path):
    run = fake_run(tmp_path, tiny_text_run, tiny_text_config(repo, dropout=0.0), {"variational": True})
    enc = load_encoder(export_run(run, tmp_path / "export"))
    assert json.loads((tmp_path / "export/config.json").read_text())["bottleneck"]["regularizer"] == "variational"
    x, lengths = enc.prepare(SENTENCES)
    z_eval = enc.encode_inputs(x, lengths).z
    enc.train()
    out = enc.encode_inputs(x, lengths)
    torch.testing.assert_close(out.z, z_eval, atol=0, rtol=0)  # no sampling
    (out.z.sum() + out.states.sum()).backward()
    assert all(p.grad is not None for p in enc.parameters())


# ---------------------------------------------------------------------------------------------------------------------
# Speech


def fixture_waveforms(repo: Path, count: int = 3):
    rows = read_manifest(repo / WORDS / "manifest.jsonl")[:count]
    return rows, [load_audio(r.path, sample_rate=16000) for r in rows]


def training_speech_encode(run_dir: Path, rows):
    config = load_config_dict(yaml.safe_load((run_dir / "config.yaml").read_text()))
    extractor = FeatureExtractor.from_config(config.features)
    model = build_model(config, feature_dim=extractor.feature_dim)
    from seqae.checkpoint import load_latest

    model.load_state_dict(load_latest(run_dir)["model"])
    cmvn = Cmvn.from_dict(json.loads((run_dir / "cmvn.json").read_text()))
    frames, lengths = collate_frames([cmvn.normalize(extract_file(r.path, extractor)) for r in rows])
    z, _, enc = model.eval().encode(frames, lengths, return_layers=True)
    return z, enc


def test_speech_export_applies_features_and_cmvn_like_training(repo, tiny_speech_run, tmp_path):
    out = export_run(tiny_speech_run, tmp_path / "export")
    assert {p.name for p in out.iterdir()} == SPEECH_FILES
    enc = load_encoder(out)
    rows, waves = fixture_waveforms(repo)
    result = enc(waves, sample_rate=16000)
    z, train_enc = training_speech_encode(tiny_speech_run, rows)
    assert (result.z - z).abs().max() <= 1e-5
    torch.testing.assert_close(result.states, train_enc.states, atol=1e-5, rtol=0)
    assert torch.equal(result.lengths, train_enc.lengths)
    assert enc.kind == "speech" and enc.frame_rate_hz == 50.0 and enc.feature_extractor.n_mels == 24
    assert enc.cmvn is not None and len(result.layers) == enc.num_layers == 1
    torch.testing.assert_close(enc(torch.stack([waves[0], waves[0]]), sample_rate=16000).z[1], result.z[0])


def test_speech_input_at_another_rate_is_resampled(repo, tiny_speech_run, tmp_path):
    enc = load_encoder(export_run(tiny_speech_run, tmp_path / "export"))
    _, (wave, *_) = fixture_waveforms(repo, 1)
    at_8k = torch.nn.functional.avg_pool1d(wave[None, None], 2)[0, 0]  # (S / 2,): a crude 8 kHz copy
    x16, l16 = enc.prepare([wave], sample_rate=16000)
    x8, l8 = enc.prepare([at_8k], sample_rate=8000)
    assert abs(int(l8) - int(l16)) <= 1 and x8.shape[-1] == x16.shape[-1] == 24


@pytest.mark.parametrize("model", [{"encoder": "transformer", "frontend": "conv4", "encoder_layers": 2},
                                   {"encoder": "lstm", "frontend": "linear", "pooling": "attention"}],
                         ids=["transformer-conv4", "lstm-linear"])
def test_every_speech_front_end_round_trips(repo, tiny_speech_run, tmp_path, model):
    run = fake_run(tmp_path, tiny_speech_run, tiny_speech_config(repo, tmp_path / "features", **model))
    enc = load_encoder(export_run(run, tmp_path / "export"))
    rows, waves = fixture_waveforms(repo)
    z, train_enc = training_speech_encode(run, rows)
    result = enc(waves, sample_rate=16000)
    assert (result.z - z).abs().max() <= 1e-5
    assert len(result.layers) == enc.num_layers == len(train_enc.layers)
    assert enc.frame_rate_hz == {"conv4": 25.0, "linear": 100.0}[model["frontend"]]


# ---------------------------------------------------------------------------------------------------------------------
# Errors and the command line


def test_bad_export_directories_give_one_clear_error(tiny_text_run, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere: no such export directory"):
        load_encoder(tmp_path / "nowhere")
    out = export_run(tiny_text_run, tmp_path / "export")
    broken = tmp_path / "broken"
    for name, damage, error, message in [
        ("config.json", "delete", FileNotFoundError, r"config.json: missing"),
        ("config.json", "version", ExportError, r"config.json: format 'seqae-encoder' version 99; this seqae reads"),
        ("config.json", "garbage", ExportError, r"config.json: not valid JSON"),
        ("config.json", "width", ExportError, r"model.safetensors: weights do not fit .*config.json \(shape: "
                                              r"encoder.body.layers.0.weight_ih_l0 \(48, 16\) \(expected \(36, 16\)\)"),
        ("config.json", "kind", ExportError, r"config.json: kind 'video'; expected 'text' or 'speech'"),
        ("model.safetensors", "delete", FileNotFoundError, r"model.safetensors: missing"),
        ("model.safetensors", "garbage", ExportError, r"model.safetensors: unreadable safetensors file"),
        ("tokenizer.model", "delete", FileNotFoundError, r"tokenizer model not found: .*tokenizer.model"),
        ("tokenizer.model", "garbage", ExportError, r"tokenizer.model: not a usable SentencePiece model"),
    ]:
        shutil.rmtree(broken, ignore_errors=True)
        shutil.copytree(out, broken)
        target = broken / name
        if damage == "delete":
            target.unlink()
        elif damage == "garbage":
            target.write_bytes(b"\x00not this")
        else:
            cfg = json.loads(target.read_text())
            if damage == "version":
                cfg["format_version"] = 99
            elif damage == "kind":
                cfg["kind"] = "video"
            else:
                cfg["model"]["hidden_dim"] = 12
            target.write_text(json.dumps(cfg))
        with pytest.raises(error, match=message):
            load_encoder(broken)
    cfg = json.loads((out / "config.json").read_text())
    cfg["format_version"] = 1
    (broken / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ExportError, match=r"version 1; this seqae reads 'seqae-encoder' version 2 \(an older seqae's "
                                          r"export: export the run again with `seqae export`\)"):
        load_encoder(broken)
    cfg["format_version"], cfg["model"]["hidden_dmi"] = 2, 12
    (broken / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ExportError, match=r"config.json: cannot build the encoder it describes .*hidden_dmi: "
                                          r"unknown key"):
        load_encoder(broken)


def test_bad_inputs_are_named(tiny_text_run, tiny_speech_run, tmp_path):
    text = load_encoder(export_run(tiny_text_run, tmp_path / "text"))
    with pytest.raises(ValueError, match="non-empty list of strings"):
        text("a bare string")
    with pytest.raises(ValueError, match="sample_rate is for speech"):
        text(["hi"], sample_rate=16000)
    with pytest.raises(ValueError, match=r"expected token ids \[B, T\]"):
        text.encode_inputs(torch.zeros(2, 4), torch.tensor([4, 2]))
    with pytest.raises(ValueError, match=r"lengths must be in 1..4"):
        text.encode_inputs(torch.zeros(2, 4, dtype=torch.long), torch.tensor([5, 0]))
    speech = load_encoder(export_run(tiny_speech_run, tmp_path / "speech"))
    with pytest.raises(ValueError, match="needs sample_rate="):
        speech([torch.zeros(4000)])
    with pytest.raises(ValueError, match="waveform 1: 1 feature frames; the front end needs 3"):
        speech([torch.zeros(4000), torch.zeros(400)], sample_rate=16000)
    assert text.frame_rate_hz is None and text.feature_extractor is None and speech.tokenizer is None


def test_export_never_replaces_a_foreign_directory(tiny_text_run, tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="not a seqae export, so it is never replaced"):
        export_run(tiny_text_run, foreign, overwrite=True)
    assert (foreign / "notes.txt").read_text() == "mine"
    out = export_run(tiny_text_run, tmp_path / "export")
    with pytest.raises(ExportError, match=r"exists and is not empty \(use overwrite"):
        export_run(tiny_text_run, out)
    assert isinstance(load_encoder(export_run(tiny_text_run, out, overwrite=True)), PretrainedEncoder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export", "foreign"]  # no temporary directory left


def test_cli_export(tiny_text_run, tmp_path, capsys):
    assert main(["export", str(tiny_text_run), str(tmp_path / "export")]) == 0
    assert "exported the encoder of" in capsys.readouterr().out
    assert {p.name for p in (tmp_path / "export").iterdir()} == TEXT_FILES
    assert main(["export", str(tiny_text_run), str(tmp_path / "export")]) == 2
    assert "seqae export: error:" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "nowhere"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"seqae export: error: {tmp_path / 'nowhere'}: not a seqae run directory (no config.yaml)"
