"""The command line: pretrain, reconstruct, encode on a tiny run; user errors give one line and status 2."""

import subprocess
import sys

import numpy as np
import pytest

from seqae.cli import main


def seqae(*args, cwd):
    return subprocess.run([sys.executable, "-m", "seqae", *args], cwd=cwd, capture_output=True, text=True)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, request):
    repo = request.config.rootpath
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    code = main(["pretrain", str(repo / "recipes/fortunes/debug.yaml"), "--run-dir", str(run_dir),
                 "--set", f"data.train={repo}/data/fortunes/train.txt",
                 "--set", f"data.heldout={repo}/data/fortunes/heldout.txt",
                 "--set", "train.max_steps=6", "--set", "train.progress=false"])
    assert code == 0
    return run_dir


def test_reconstruct_prints_input_and_output(tiny_run, tmp_path, capsys):
    sentences = tmp_path / "in.txt"
    sentences.write_text("The cat sat.\nA penny saved is a penny earned.\n")
    assert main(["reconstruct", str(tiny_run), "Hello there.", "--file", str(sentences)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Hello there." and out[2] == "The cat sat." and out[4] == "A penny saved is a penny earned."
    assert all(line.startswith(("  = ", "  ≠ ")) for line in out[1::2])


def test_encode_writes_one_row_per_line(tiny_run, tmp_path):
    lines = tmp_path / "in.txt"
    lines.write_text("one\n\nthree words here\n")  # the empty line keeps its row, so rows align with lines
    out = tmp_path / "z.npy"
    assert main(["encode", str(tiny_run), str(lines), str(out)]) == 0
    z = np.load(out)
    assert z.shape == (3, 32) and np.isfinite(z).all()


def test_pretrain_resumes_finished_run_without_training(tiny_run, capsys):
    repo_cfg = tiny_run / "config.yaml"
    assert main(["pretrain", str(repo_cfg), "--run-dir", str(tiny_run)]) == 0
    assert "resuming" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("args, message", [
    (["pretrain", "missing.yaml"], "seqae pretrain: error: missing.yaml: config file not found"),
    (["reconstruct", "nowhere"], "seqae reconstruct: error: nowhere: not a seqae run directory (no config.yaml)"),
    (["encode", "nowhere", "missing.txt", "z.npy"],
     "seqae encode: error: nowhere: not a seqae run directory (no config.yaml)"),
])
def test_user_errors_are_one_line(tmp_path, args, message):
    result = seqae(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == message


@pytest.mark.slow
def test_config_error_from_set_names_the_key(tmp_path, repo):
    result = seqae("pretrain", str(repo / "recipes/fortunes/debug.yaml"), "--set", "model.hiden_dim=3", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("seqae pretrain: error: model.hiden_dim: unknown key; allowed: encoder")


def test_a_run_stopped_by_bad_bytes_reruns_with_the_fixed_option(repo, tmp_path, capsys):
    lines = (repo / "data/fortunes/train.txt").read_bytes().splitlines()[:40]
    lines[6] += b" caf\xff"
    corpus = tmp_path / "train.txt"
    corpus.write_bytes(b"\n".join(lines) + b"\n")
    config = tmp_path / "tiny.yaml"
    config.write_text(f"data: {{train: {corpus}, heldout: null, heldout_fraction: 0.1, max_len: 24, "
                      "eval_sentences: 4}\ntokenizer: {vocab_size: 100}\n"
                      "model: {embed_dim: 16, hidden_dim: 16, decoder_dim: 16, bottleneck_dim: 8}\n"
                      "train: {max_steps: 2, eval_every: 0, checkpoint_every: 2, threads: 1, progress: false}\n")
    run = tmp_path / "run"
    assert main(["pretrain", str(config), "--run-dir", str(run)]) == 2
    assert capsys.readouterr().err.startswith(f"seqae pretrain: error: {corpus}:7: invalid UTF-8 byte 0xff at column ")
    assert (run / "config.yaml").is_file() and not (run / "checkpoints").exists()

    assert main(["pretrain", str(config), "--run-dir", str(run), "--set", "data.encoding_errors=replace"]) == 0
    out = capsys.readouterr().out
    assert (f"{run}: the run has no checkpoint yet, so it starts over with the new config "
            "(changed: data.encoding_errors)") in out
    assert (run / "metrics.json").is_file()
