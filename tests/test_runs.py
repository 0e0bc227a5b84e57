"""One loader for text and speech runs, and the CLI verbs that go through it: speech runs encode and reconstruct,
text-only verbs say so, a recipe's output folder is accepted, evaluation says what it cut and leaves the run
directory alone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from seqae import load_encoder
from seqae.checkpoint import CheckpointError
from seqae.cli import main
from seqae.data.manifest import read_manifest
from seqae.export import export_run
from seqae.models.frames import FrameAutoencoder
from seqae.runs import SpeechRun, TextRun, find_run_dir, load_run

REPO = Path(__file__).resolve().parents[1]

HELDOUT = "data/espeak_words/test/manifest.jsonl"


def test_load_run_knows_its_task(tiny_text_run, tiny_speech_run):
    text, speech = load_run(tiny_text_run), load_run(tiny_speech_run)
    assert isinstance(text, TextRun) and text.task == "text" and text.step == 3
    assert isinstance(speech, SpeechRun) and speech.task == "speech" and isinstance(speech.model, FrameAutoencoder)
    assert not speech.model.training and speech.cmvn is not None and speech.extractor.feature_dim == 24


def test_speech_run_encodes_a_manifest_like_its_export(repo, tiny_speech_run, tmp_path):
    run = load_run(tiny_speech_run)
    z = run.encode(str(repo / HELDOUT))
    assert z.shape == (8, 8)
    encoder = load_encoder(export_run(tiny_speech_run, tmp_path / "export"))
    rows = read_manifest(repo / HELDOUT)
    torch.testing.assert_close(encoder([r.path for r in rows]).z, z, atol=1e-5, rtol=1e-5)  # audio paths accepted
    torch.testing.assert_close(run.encode(str(rows[0].path)), z[:1])  # one audio file
    rebuilt = run.reconstruct([rows[0].path])
    assert rebuilt[0].dim() == 2 and rebuilt[0].shape[1] == 24


def test_a_recipe_output_folder_is_accepted_and_several_runs_are_named(tiny_text_run, tmp_path):
    out = tmp_path / "recipe_out"
    shutil.copytree(tiny_text_run, out / "run")
    assert find_run_dir(out) == out / "run"
    assert load_run(out).reconstruct(["Hello."])
    shutil.copytree(tiny_text_run, out / "other")
    with pytest.raises(FileNotFoundError, match="holds several runs, name one: .*other, .*run"):
        load_run(out)
    with pytest.raises(FileNotFoundError, match="not a seqae run directory"):
        load_run(tmp_path / "nothing")


def test_cli_speech_encode_and_reconstruct(repo, tiny_speech_run, tmp_path, capsys):
    assert main(["encode", str(tiny_speech_run), str(repo / HELDOUT), str(tmp_path / "z.npy")]) == 0
    z = np.load(tmp_path / "z.npy")
    torch.testing.assert_close(torch.from_numpy(z), load_run(tiny_speech_run).encode(str(repo / HELDOUT)))
    wav = read_manifest(repo / HELDOUT)[0].path
    assert main(["reconstruct", str(tiny_speech_run), str(wav), "--out", str(tmp_path / "rec"), "--audio"]) == 0
    assert sorted(p.name for p in (tmp_path / "rec").iterdir()) == [
        f"0_{wav.stem}.orig.wav", f"0_{wav.stem}.png", f"0_{wav.stem}.rebuilt.wav"]
    assert "rebuilt from z" in capsys.readouterr().out


def test_speech_only_flags_on_a_text_run_are_refused(tiny_text_run, capsys):
    assert main(["reconstruct", str(tiny_text_run), "Hello.", "--audio"]) == 2
    assert "--out and --audio are for speech runs" in capsys.readouterr().err


@pytest.mark.parametrize("verb", [["anomaly", "--data", "x.txt"], ["search", "--index", "x.txt", "--query", "hi"],
                                  ["compress", "--data", "x.txt", "--out", "z.npz"], ["interpolate", "a", "b"]])
def test_text_only_verbs_say_so_for_a_speech_run(tiny_speech_run, capsys, verb):
    assert main([verb[0], str(tiny_speech_run), *verb[1:]]) == 2
    assert f"a speech run; seqae {verb[0]} works on text runs only" in capsys.readouterr().err


def test_speech_evaluation_counts_what_it_cuts_and_leaves_the_run_alone(repo, tiny_speech_run, tmp_path):
    home = tiny_speech_run.parent  # the run and its feature cache
    before = sorted(str(p) for p in home.rglob("*"))
    out = tmp_path / "report"
    assert main(["evaluate", str(tiny_speech_run), "--data", str(repo / HELDOUT), "--out", str(out), "--no-tsne",
                 "--max-len", "40"]) == 0
    report = json.loads((out / "report.json").read_text())
    lengths = [x.shape[0] for x in load_run(tiny_speech_run).features(str(repo / HELDOUT)).features]
    assert report["truncated"] == {"max_len": 40, "items": sum(n > 40 for n in lengths),
                                   "frames_cut": sum(n - 40 for n in lengths if n > 40)}
    assert report["truncated"]["items"] > 0
    assert f"{report['truncated']['items']} longer than 40 frames cut to it" in (out / "report.md").read_text()
    assert any((out / "features").iterdir())  # other data is cached under --out
    assert sorted(str(p) for p in home.rglob("*")) == before
    assert main(["evaluate", str(tiny_speech_run), "--data", str(repo / HELDOUT), "--out", str(out), "--no-tsne",
                 "--max-len", "none"]) == 0
    assert json.loads((out / "report.json").read_text())["truncated"]["items"] == 0


def test_weights_that_do_not_fit_the_config_are_one_error_naming_the_keys(tiny_text_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_text_run, run)
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("hidden_dim: 16", "hidden_dim: 24"))
    with pytest.raises(CheckpointError, match=r"step 3 weights do not fit the model .*config.yaml describes \(shape: "
                                              r"encoder.layers.0.weight_ih_l0 \(48, 16\) \(expected \(72, 16\)\)"):
        load_run(run)
    assert main(["reconstruct", str(run), "Hello."]) == 2
    assert "weights do not fit" in capsys.readouterr().err


@pytest.fixture(scope="module")
def memorised(tiny_text_run):
    """A TextRun whose GRU autoencoder has been fitted to 8 short fortunes (60 full-batch steps)."""
    from seqae.config import load_config_dict
    from seqae.frontend.tokenizer import Tokenizer
    from seqae.models.builder import build_model

    lines = (REPO / "data/fortunes/train.txt").read_text(encoding="utf-8").splitlines()
    tok = Tokenizer.load(tiny_text_run / "tokenizer.model")
    chosen = [line for line in lines if len(line.split()) <= 6][:8]
    config = load_config_dict({"data": {"max_len": 32}, "model": {
        "embed_dim": 64, "hidden_dim": 64, "decoder_dim": 64, "bottleneck_dim": 64, "dropout": 0.0}})
    torch.manual_seed(0)
    run = TextRun(run_dir=Path("."), config=config, model=build_model(config, vocab_size=tok.vocab_size), step=0, tokenizer=tok)
    tokens, lengths = run.batch(chosen)
    opt = torch.optim.Adam(run.model.parameters(), lr=3e-3)
    for _ in range(60):
        run.model.train()
        loss, _ = run.model.loss(run.model(tokens, lengths))
        opt.zero_grad()
        loss.backward()
        opt.step()
    run.model.eval()
    return run, chosen


def test_decode_and_score_from_stored_z(memorised):
    run, sentences = memorised
    z = run.encode(sentences)
    assert run.decode(z) == run.reconstruct(sentences)
    assert run.decode(z, beam_size=3) == run.reconstruct(sentences, beam_size=3)
    nll = torch.stack([run.score(z, [s] * len(sentences)) for s in sentences], dim=1)  # [z_i, sentence_j]
    assert nll.argmin(dim=0).tolist() == list(range(len(sentences)))  # each sentence fits its own z best
    torch.testing.assert_close(run.score(z, sentences), nll.diagonal())
    with pytest.raises(ValueError, match="one row per sentence"):
        run.score(z[:2], sentences)
