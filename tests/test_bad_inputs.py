"""Pretraining on a corpus of bad inputs: every good item is used, every bad one is counted and named with its
reason, nothing crashes; strict mode turns the first bad item into one error line; config and data errors through
the CLI are one line naming the key or path (what tests/test_config.py and tests/test_cli.py do not cover yet)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from bad_inputs import AudioCorpus, TextCorpus, build_audio_corpus, build_text_corpus

from seqae.cli import main

pytestmark = pytest.mark.usefixtures("offline_hub")  # see tests/conftest.py


@pytest.fixture(scope="module")
def text_corpora(tmp_path_factory, request) -> tuple[TextCorpus, TextCorpus]:
    root, repo = tmp_path_factory.mktemp("bad_text"), request.config.rootpath
    return build_text_corpus(root, repo), build_text_corpus(root, repo, name="heldout.txt", good=6)


@pytest.fixture(scope="module")
def audio_corpus(tmp_path_factory, request) -> AudioCorpus:
    return build_audio_corpus(tmp_path_factory.mktemp("bad_audio"), request.config.rootpath)


def text_config(train: TextCorpus, heldout: TextCorpus) -> dict:
    return {
        "data": {"train": str(train.path), "heldout": str(heldout.path), "encoding_errors": "replace",
                 "max_len": 64, "max_tokens": 1024, "eval_sentences": 4},
        "tokenizer": {"vocab_size": 120},
        "model": {"embed_dim": 16, "hidden_dim": 16, "decoder_dim": 16, "bottleneck_dim": 8},
        "train": {"max_steps": 2, "eval_every": 0, "log_every": 1, "progress": False},
    }


def speech_config(corpus: AudioCorpus, cache: Path) -> dict:
    return {
        "task": "speech",
        "data": {"train": str(corpus.train_manifest), "heldout": str(corpus.heldout_manifest), "max_len": 200,
                 "max_tokens": 800, "eval_sentences": 4},
        "features": {"n_mels": 16, "cache_dir": str(cache)},
        "model": {"frontend": "conv2", "embed_dim": 16, "hidden_dim": 16, "decoder_dim": 16, "prenet_dim": 16,
                  "bottleneck_dim": 8, "pooling": "mean"},
        "train": {"max_steps": 2, "eval_every": 0, "log_every": 1, "progress": False},
    }


def write_config(path: Path, data: dict) -> str:
    path.write_text(yaml.safe_dump(data))
    return str(path)


def cli_error(capsys, *args: str) -> str:
    """Run the CLI in-process; insist on exit status 2 and exactly one stderr line, and return that line."""
    code = main(list(args))
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def read_expectations(corpus: TextCorpus) -> dict:
    return {"lines_read": corpus.lines, "lines_kept": corpus.kept, "empty_skipped": corpus.empty,
            "replaced_lines": corpus.replaced, "control_chars_lines": corpus.control}


# ---------------------------------------------------------------- text


def test_text_pretraining_keeps_every_good_line_and_counts_every_bad_one(text_corpora, tmp_path, capsys):
    train, heldout = text_corpora
    run = tmp_path / "run"
    config = write_config(tmp_path / "c.yaml", text_config(train, heldout))
    assert main(["pretrain", config, "--run-dir", str(run)]) == 0
    assert f"data: {train.kept} train / {heldout.kept} held-out sequences" in capsys.readouterr().out
    stats = json.loads((run / "data_stats.json").read_text())
    for split, corpus in (("train", train), ("heldout", heldout)):
        read = stats[f"{split}_read"]
        assert {k: read[k] for k in read_expectations(corpus)} == read_expectations(corpus)
        assert read["files"] == [str(corpus.path)]
        assert stats[f"{split}_encode"] == {"lines_in": corpus.kept, "kept": corpus.kept,
                                            "truncated": corpus.long_lines, "overlong_skipped": 0, "empty_skipped": 0}
        assert stats[f"{split}_sequences"] == corpus.kept
    assert json.loads((run / "metrics.json").read_text())["train_sequences"] == train.kept


def test_text_reader_returns_every_good_line_unchanged_and_in_order(text_corpora):
    from seqae.data.text import load_text_lines

    train, _ = text_corpora
    lines, _ = load_text_lines(str(train.path), encoding_errors="replace")
    good = [line for line in lines if line in train.good]
    assert good == list(train.good)
    others = [line for line in lines if line not in train.good]
    assert sum("\ufffd" in line for line in others) == train.replaced
    assert [len(line) for line in others if len(line) > 1000] == [100_000]
    assert not any(ch in line for line in others for ch in "\x00\x01\x07\x1b\u2028")


def test_overlong_skip_drops_and_counts_the_long_line(text_corpora, tmp_path):
    from seqae.config import load_config_dict
    from seqae.tasks.text import prepare_text

    train, heldout = text_corpora
    data = text_config(train, heldout)
    data["data"]["overlong"] = "skip"
    _, prepared = prepare_text(load_config_dict(data), tmp_path)
    assert prepared.stats["train_encode"]["overlong_skipped"] == train.long_lines == 1
    assert len(prepared.train) == train.kept - 1


def test_replaced_lines_are_named_by_file_and_line(text_corpora, tmp_path):
    from seqae.config import load_config_dict
    from seqae.tasks.text import prepare_text

    train, heldout = text_corpora
    _, prepared = prepare_text(load_config_dict(text_config(train, heldout)), tmp_path)
    assert f"{train.path}:{train.first_bad_line}" in json.dumps(prepared.stats)


def test_text_strict_encoding_stops_at_the_first_bad_byte_with_one_line(text_corpora, tmp_path, capsys):
    train, heldout = text_corpora
    config = write_config(tmp_path / "c.yaml", text_config(train, heldout))
    line = cli_error(capsys, "pretrain", config, "--run-dir", str(tmp_path / "run"),
                     "--set", "data.encoding_errors=strict")
    assert line.startswith(f"seqae pretrain: error: {train.path}:{train.first_bad_line}: "
                           f"invalid UTF-8 byte 0x{train.first_bad_byte} at column ")
    assert "encoding_errors='replace'" in line


# ---------------------------------------------------------------- speech


def test_speech_pretraining_keeps_every_good_file_and_names_every_bad_one(audio_corpus, tmp_path, capsys):
    from seqae.data.speech import prepare_speech
    from seqae.frontend.features import FeatureExtractor
    from seqae.runs import read_run_config

    corpus, run = audio_corpus, tmp_path / "run"
    config = write_config(tmp_path / "c.yaml", speech_config(corpus, tmp_path / "features"))
    assert main(["pretrain", config, "--run-dir", str(run)]) == 0
    out = capsys.readouterr().out
    skipped = len(corpus.train_bad) + len(corpus.heldout_bad)
    assert (f"data: {len(corpus.train_kept)} train / {corpus.heldout_kept} held-out utterances "
            f"({skipped} files skipped") in out
    stats = json.loads((run / "data_stats.json").read_text())
    for split, rows, bad in (("train", corpus.train_rows, corpus.train_bad),
                             ("heldout", corpus.heldout_rows, corpus.heldout_bad)):
        report = stats[f"{split}_audio"]
        assert (report["checked"], report["skipped"]) == (rows, len(bad))
        reasons = {Path(item["file"]).name: item["reason"] for item in report["skipped_files"]}
        assert reasons.keys() == bad.keys()
        for name, reason in bad.items():
            assert reasons[name].startswith(reason), (name, reasons[name])
            assert f"{name}: {reasons[name]}" in out  # the stdout summary names it too
    length = stats["train_length"]
    assert [Path(f).name for f in length["too_short_files"]] == list(corpus.train_too_short)
    assert (length["too_short"], length["overlong"]) == (len(corpus.train_too_short), 0)
    assert (stats["train_sequences"], stats["heldout_sequences"]) == (len(corpus.train_kept), corpus.heldout_kept)
    config = read_run_config(run)
    data = prepare_speech(config, run, FeatureExtractor.from_config(config.features), min_len=3)
    assert tuple(r.path.name for r in data.train_rows) == corpus.train_kept  # the good ones, in order


def test_speech_strict_mode_stops_at_the_first_bad_file_with_one_line(audio_corpus, tmp_path, capsys):
    corpus = audio_corpus
    config = write_config(tmp_path / "c.yaml", speech_config(corpus, tmp_path / "features"))
    line = cli_error(capsys, "pretrain", config, "--run-dir", str(tmp_path / "run"), "--set", "data.strict=true")
    path = corpus.train_manifest.parent / corpus.first_bad
    assert line.startswith(f"seqae pretrain: error: {path}: {corpus.first_bad_reason}")
    assert line.endswith(f"(row {corpus.first_bad_row}; strict mode stops at the first bad file)")


# ---------------------------------------------------------------- config and data errors through the CLI


@pytest.mark.parametrize("override, message", [
    ("train.lr=fast", "train.lr: expected a number, got 'fast'"),  # wrong type
    ("train.max_steps=0", "train.max_steps: must be > 0, got 0"),  # out of range
    ("model.encoder=rnn", "model.encoder: got 'rnn'; allowed: one of 'gru', 'lstm', 'transformer'"),  # bad choice
    ("data.overlong=drop", "data.overlong: got 'drop'; allowed: one of 'truncate', 'skip'"),
], ids=["wrong_type", "out_of_range", "bad_choice", "bad_choice_data"])
def test_config_errors_through_the_cli_name_the_key_and_what_is_allowed(repo, tmp_path, capsys, override, message):
    line = cli_error(capsys, "pretrain", str(repo / "recipes/fortunes/debug.yaml"), "--run-dir",
                     str(tmp_path / "run"), "--set", override)
    assert line == f"seqae pretrain: error: {message}"
    assert not (tmp_path / "run").exists()  # nothing is written for a config that does not load


def test_unknown_key_in_the_config_file_is_named(tmp_path, capsys):
    config = tmp_path / "typo.yaml"
    config.write_text("model:\n  hidden_dim: 8\ntrian:\n  lr: 0.1\n")
    line = cli_error(capsys, "pretrain", str(config), "--run-dir", str(tmp_path / "run"))
    assert line.startswith("seqae pretrain: error: trian: unknown key; allowed: task, data, tokenizer, features")


def test_missing_corpus_file_is_named(repo, tmp_path, capsys):
    missing = tmp_path / "nowhere" / "train.txt"
    line = cli_error(capsys, "pretrain", str(repo / "recipes/fortunes/debug.yaml"), "--run-dir",
                     str(tmp_path / "run"), "--set", f"data.train={missing}")
    assert line == f"seqae pretrain: error: corpus file not found: {missing}"


def test_missing_manifest_is_named_with_its_key(audio_corpus, tmp_path, capsys):
    data = speech_config(audio_corpus, tmp_path / "features")
    data["data"]["heldout"] = str(tmp_path / "missing.jsonl")
    line = cli_error(capsys, "pretrain", write_config(tmp_path / "c.yaml", data), "--run-dir", str(tmp_path / "run"))
    assert line == f"seqae pretrain: error: data.heldout: {tmp_path / 'missing.jsonl'}: manifest not found"


def test_bad_noise_spec_is_named_with_the_allowed_types(repo, tmp_path, capsys):
    line = cli_error(capsys, "pretrain", str(repo / "recipes/fortunes/debug.yaml"), "--run-dir",
                     str(tmp_path / "run"), "--set", f"data.train={repo}/data/fortunes/train.txt",
                     "--set", f"data.heldout={repo}/data/fortunes/heldout.txt",
                     "--set", "noise=[{type: spanmask}]")
    assert line.startswith("seqae pretrain: error: noise[0].type: unknown noise 'spanmask'; allowed for task text: "
                           "delete, insert")
