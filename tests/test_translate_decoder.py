"""A text autoencoder's decoder as the translation decoder: `seqae export --decoder`, `load_decoder`, and
`decoder_export` / `decoder_architecture` in `seqae finetune translate`."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import tiny_text_config

from seqae.cli import main
from seqae.config import ConfigError, load_config_dict
from seqae.export import ExportError, export_run, load_decoder
from seqae.export.decoder import UNUSED_PREFIX
from seqae.finetune import FinetuneConfig, finetune
from seqae.finetune.inference import load_translation
from seqae.finetune.translate import TranslateTask
from seqae.frontend.tokenizer import Tokenizer
from seqae.runs import load_run
from seqae.train import pretrain

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


@pytest.fixture(scope="module")
def decoder_export(tmp_path_factory, request) -> Path:
    """A tiny text run with a Transformer decoder, exported with its decoder."""
    root, repo = tmp_path_factory.mktemp("decoder_export"), request.config.rootpath
    pretrain(load_config_dict(tiny_text_config(repo, decoder="transformer", decoder_layers=2)), root / "run")
    return export_run(root / "run", root / "export", decoder=True)


def pairs_file(path: Path) -> Path:
    words = ["eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun", "zehn"]
    path.write_text("".join(f"Das ist Satz {w}.\tThis is sentence {w}.\n" for w in words), encoding="utf-8")
    return path


def translate_config(pairs: Path, **keys) -> FinetuneConfig:
    return load_config_dict({
        "task": "translate", "data": {"train": str(pairs), "heldout": str(pairs), "test": str(pairs),
                                      "max_len": 30, "max_target_len": 30, "max_tokens": 400, "eval_sentences": 4},
        "train": {"max_steps": 3, "warmup_steps": 1, "log_every": 1, "eval_every": 0, "checkpoint_every": 3,
                  "progress": False, "threads": 1, "beam_size": 2}, **keys}, FinetuneConfig)


def test_export_with_decoder_holds_the_runs_decoder_and_load_decoder_loads_the_same_weights(decoder_export):
    run = load_run(Path(decoder_export).parent / "run")
    decoder, tokenizer = load_decoder(decoder_export)
    parts = ("embedding.", "decoder.", "out_proj.", "out_bias")
    expected = {k: v for k, v in run.model.state_dict().items()
                if k.startswith(parts) and not k.startswith(UNUSED_PREFIX)}
    got = decoder.state_dict()
    assert set(got) == set(expected) and len(got) > 10
    assert all(torch.equal(got[k], expected[k]) for k in got)
    assert tokenizer.serialized() == run.tokenizer.serialized()
    assert "decoder.safetensors" in (Path(decoder_export) / "README.md").read_text()
    # the decoder computes what the autoencoder's decoder computes, given the memory the autoencoder gives it
    tokens = torch.tensor([[2, 10, 11, 12]])
    z = torch.randn(1, run.config.model.bottleneck_dim)
    run.model.eval()
    memory = run.model.decoder.z_to_memory(z).view(1, run.config.model.memory_slots, -1)
    torch.testing.assert_close(decoder(tokens, memory), run.model.decode(z, torch.cat([tokens, tokens[:, :1]], 1)))


def test_translation_model_from_the_decoder_export_starts_from_its_weights_and_decodes(decoder_export, tmp_path):
    pairs = pairs_file(tmp_path / "pairs.tsv")
    config = translate_config(pairs, encoder=str(decoder_export), decoder_export=str(decoder_export))
    task = TranslateTask(config, tmp_path / "task")
    exported, tokenizer = load_decoder(decoder_export)
    start = task.model.target.state_dict()
    assert all(torch.equal(start[k], v) for k, v in exported.state_dict().items()) and set(start) == set(
        exported.state_dict())
    assert task.target_tokenizer.serialized() == tokenizer.serialized()
    assert len(task.translate_ids(task.data.eval["test"].src[:2], beam_size=2)) == 2
    metrics = finetune(config, tmp_path / "run")
    assert metrics["init"] == "pretrained" and metrics["decoder_init"] == "pretrained"
    assert metrics["test_sentences"] == 10 and 0.0 <= metrics["test_chrf"] <= 100.0
    saved = Tokenizer.load(tmp_path / "run" / "target_tokenizer.model")  # the run is self-contained
    assert saved.serialized() == tokenizer.serialized()
    # using it: the loaded run translates as the final evaluation did (beam 2, the run's beam_size)
    run = load_translation(tmp_path / "run")
    first = metrics["test_examples"][0]
    assert first["src"] == "Das ist Satz eins." and run.step == 3
    assert run.translate([first["src"], "Das ist Satz zwei."]) == [first["hyp"], metrics["test_examples"][1]["hyp"]]
    assert run.translate([first["src"]], beam_size=1) == run.translate([first["src"]], beam_size=1)


def test_seqae_translate_prints_one_translation_a_line_and_refuses_other_runs(decoder_export, tmp_path, capsys):
    pairs = pairs_file(tmp_path / "pairs.tsv")
    finetune(translate_config(pairs, encoder=str(decoder_export), decoder_export=str(decoder_export)),
             tmp_path / "run")
    run = load_translation(tmp_path / "run")
    sentences = tmp_path / "sentences.txt"
    sentences.write_text("Das ist Satz drei.\n\nDas ist Satz vier.\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["translate", str(tmp_path / "run"), "Das ist Satz eins.", "--file", str(sentences),
                 "--beam", "1"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed == run.translate(["Das ist Satz eins.", "Das ist Satz drei.", "Das ist Satz vier."], beam_size=1)
    assert main(["translate", str(Path(decoder_export).parent / "run"), "Hallo."]) == 2  # a pretraining run
    assert "not a fine-tuning run" in capsys.readouterr().err
    assert main(["translate", str(tmp_path / "run")]) == 2
    assert "give sentences" in capsys.readouterr().err


def test_decoder_architecture_alone_gives_the_same_shapes_and_tokenizer_with_random_weights(decoder_export,
                                                                                             tmp_path):
    pairs = pairs_file(tmp_path / "pairs.tsv")
    scratch = TranslateTask(translate_config(pairs, encoder=None, architecture=str(decoder_export),
                                             decoder_architecture=str(decoder_export)), tmp_path / "a")
    again = TranslateTask(translate_config(pairs, encoder=None, architecture=str(decoder_export),
                                           decoder_architecture=str(decoder_export)), tmp_path / "b")
    exported, tokenizer = load_decoder(decoder_export)
    got, ref = scratch.model.target.state_dict(), exported.state_dict()
    assert {k: v.shape for k, v in got.items()} == {k: v.shape for k, v in ref.items()}
    assert not any(torch.equal(got[k], ref[k]) for k in ("out_proj.weight", "embedding.weight"))
    assert all(torch.equal(v, again.model.target.state_dict()[k]) for k, v in got.items())  # seeded
    assert scratch.target_tokenizer.serialized() == tokenizer.serialized()
    # a pretrained decoder changes the decoder's weights only: the bridge and the rest start as in the random run
    pretrained = TranslateTask(translate_config(pairs, encoder=None, architecture=str(decoder_export),
                                                decoder_export=str(decoder_export)), tmp_path / "c")
    others = {k: v for k, v in scratch.model.state_dict().items() if not k.startswith("target.")}
    assert others and all(torch.equal(v, pretrained.model.state_dict()[k]) for k, v in others.items())


def test_decoder_export_errors_name_the_key_and_the_fix(decoder_export, tmp_path, request):
    pairs = pairs_file(tmp_path / "pairs.tsv")
    plain = export_run(Path(decoder_export).parent / "run", tmp_path / "plain")
    with pytest.raises(ConfigError, match=r"decoder_export: .*exported without --decoder.*--decoder"):
        TranslateTask(translate_config(pairs, encoder=str(decoder_export), decoder_export=str(plain)), tmp_path / "r")
    with pytest.raises(ConfigError, match="decoder_export: only for task: translate"):
        load_config_dict({"task": "asr", "encoder": "x", "decoder_export": "y", "data": {"train": "t"}},
                         FinetuneConfig)
    repo = request.config.rootpath
    pretrain(load_config_dict(tiny_text_config(repo, decoder="gru")), tmp_path / "gru")
    with pytest.raises(ExportError, match="Transformer decoder.*decoder is gru"):
        export_run(tmp_path / "gru", tmp_path / "gru_export", decoder=True)
    assert main(["export", str(tmp_path / "gru"), str(tmp_path / "gru_export"), "--decoder"]) == 2
