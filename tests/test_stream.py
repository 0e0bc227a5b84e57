"""Streamed corpora: the shuffle buffer, batches reproducible and resumable at any position, lines read lazily,
exact resume of a streamed run, and memory that stays flat as the corpus grows."""

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from seqae.config import ConfigError, load_config_dict
from seqae.data.stream import StreamBatcher, shuffle_buffer
from seqae.data.text import CorpusError, TextStream, load_text_lines
from seqae.train import pretrain


def test_shuffle_buffer_is_a_seeded_permutation():
    items = list(range(1000))
    out = list(shuffle_buffer(items, 64, np.random.default_rng(0)))
    assert sorted(out) == items and out != items
    assert out == list(shuffle_buffer(items, 64, np.random.default_rng(0)))
    assert list(shuffle_buffer(items, 1, np.random.default_rng(0))) == items  # a buffer of one keeps the order
    assert sorted(shuffle_buffer(items[:10], 64, np.random.default_rng(1))) == items[:10]  # shorter than the buffer
    # it mixes beyond a window: some item leaves more than a buffer's length after it came in
    assert max(abs(pos - item) for pos, item in enumerate(out)) > 64


def batcher(n=500, seed=0, **kw):
    rng = np.random.default_rng(123)
    lengths = rng.integers(3, 40, size=n).tolist()
    rows = lambda epoch: iter(lengths)  # noqa: E731  (row = its length)
    encode = lambda chunk: [(i, [0] * length) for i, length in chunk if length != 7]  # noqa: E731  drops length 7
    kw = {"max_tokens": 200, "buffer_size": 50, "pool_size": 120, **kw}
    return StreamBatcher(rows, encode, length=len, seed=seed, **kw), lengths


def test_every_kept_example_once_per_epoch_under_the_budget():
    stream, lengths = batcher()
    for epoch in range(2):
        batches = [examples for _, _, examples in stream.epoch(epoch)]
        seen = Counter(i for examples in batches for i, _ in examples)
        assert set(seen) == {i for i, length in enumerate(lengths) if length != 7} and max(seen.values()) == 1
        for examples in batches:
            assert len(examples) * max(len(seq) for _, seq in examples) <= 200
    first = [[i for i, _ in ex] for _, _, ex in stream.epoch(0)]
    second = [[i for i, _ in ex] for _, _, ex in stream.epoch(1)]
    assert first != second and first == [[i for i, _ in ex] for _, _, ex in stream.epoch(0)]


def test_resuming_at_any_position_gives_the_rest_of_the_epoch():
    stream, _ = batcher()
    full = list(stream.epoch(3))
    for k in (0, 1, 7, len(full) // 2, len(full) - 1):
        pool, batch, _ = full[k]
        assert list(stream.epoch(3, pool, batch)) == full[k:]
    pool, batch, _ = full[-1]
    assert list(stream.epoch(3, pool, batch + 1)) == []  # the end of the epoch


def test_bucketing_in_pools_keeps_padding_low():
    stream, _ = batcher(n=4000, pool_size=1000, buffer_size=500, max_tokens=400)
    real = padded = 0
    for _, _, examples in stream.epoch(0):
        lengths = [len(seq) for _, seq in examples]
        real, padded = real + sum(lengths), padded + len(lengths) * max(lengths)
    assert real / padded > 0.9


def test_text_stream_reads_what_load_text_lines_reads(repo, tmp_path):
    lines, _ = load_text_lines(str(repo / "data/fortunes/heldout.txt"))
    stream = TextStream(str(repo / "data/fortunes/heldout.txt"))
    assert list(stream.lines()) == lines
    rows = [{"text": "one"}, {"text": ""}, {"text": None}, {"text": "two\x01three"}]
    (tmp_path / "c.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    stream = TextStream(str(tmp_path / "c.jsonl"))
    assert list(stream.lines()) == ["one", "two three"]
    assert stream.counts == {"rows_read": 4, "empty_skipped": 2, "control_chars_lines": 1}


def test_text_stream_shuffles_files_per_epoch(tmp_path):
    for k in range(6):
        (tmp_path / f"part{k}.txt").write_text(f"file {k}\n")
    stream = TextStream(str(tmp_path / "*.txt"), seed=0)
    assert list(stream.lines()) == [f"file {k}" for k in range(6)]
    orders = [tuple(stream.lines(epoch)) for epoch in range(4)]
    assert all(sorted(o) == [f"file {k}" for k in range(6)] for o in orders) and len(set(orders)) > 1


def test_text_stream_names_bad_bytes_and_missing_columns(tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"fine\nbad \xff byte\n")
    with pytest.raises(CorpusError, match=r"bad.txt:2: invalid UTF-8 byte 0xff"):
        TextStream(str(tmp_path / "bad.txt"))
    (tmp_path / "c.jsonl").write_text('{"body": "x"}\n')
    with pytest.raises(CorpusError, match=r"c.jsonl: row 1 has no column 'text'; columns: \['body'\]"):
        list(TextStream(str(tmp_path / "c.jsonl")).lines())


def stream_config(repo, train, **overrides):
    config = {
        "data": {"train": str(train), "heldout": str(repo / "data/fortunes/heldout.txt"), "streaming": True,
                 "shuffle_buffer": 64, "pool_size": 128, "max_len": 24, "max_tokens": 256, "eval_sentences": 16},
        "tokenizer": {"vocab_size": 120},
        "model": {"embed_dim": 16, "hidden_dim": 16, "decoder_dim": 16, "bottleneck_dim": 8, "dropout": 0.1},
        "train": {"max_steps": 40, "warmup_steps": 2, "log_every": 1, "eval_every": 0, "checkpoint_every": 4,
                  "progress": False},
        "noise": [{"type": "span_mask", "ratio": 0.3, "prob": 0.5}],
    }
    for key, value in overrides.items():
        section, name = key.split(".")
        config[section][name] = value
    return load_config_dict(config)


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_streamed_run_resumes_exactly_across_epochs(repo, tmp_path):
    corpus = tmp_path / "train.txt"
    corpus.write_text("\n".join(load_text_lines(str(repo / "data/fortunes/train.txt"))[0][:150]) + "\n\n")
    config = stream_config(repo, corpus)
    reference = pretrain(config, tmp_path / "reference")
    assert reference["train_sequences"] == "the first 16 of the stream"
    crashed = tmp_path / "crashed"
    pretrain(config, crashed, stop_after=23)  # the last checkpoint is at step 20, early in the second epoch
    assert pretrain(config, crashed) == reference
    def losses(run):
        return [(r["step"], r["epoch"], r["loss"]) for r in records(run) if "loss" in r and "eval" not in r]

    assert losses(crashed) == losses(tmp_path / "reference") and len(losses(crashed)) == 40
    ends = [r for r in records(tmp_path / "reference") if "epoch_end" in r]
    assert len(ends) >= 2  # 150 sentences of <= 24 tokens, ~12 a batch: ~16 batches an epoch
    assert ends[0]["rows_read"] == 151 and ends[0]["empty_skipped"] == 1 and ends[0]["kept"] == 150


def test_streaming_needs_a_heldout_corpus(repo, tmp_path):
    config = stream_config(repo, repo / "data/fortunes/train.txt", **{"data.heldout": None})
    with pytest.raises(ConfigError, match="data.heldout: a streamed corpus"):
        pretrain(config, tmp_path / "run")


# The child's own peak: VmHWM starts afresh at exec, whereas getrusage's ru_maxrss keeps the peak of the process
# that forked it (here pytest, which may have grown past what is measured).
RSS_SCRIPT = """
import re, sys
from seqae.config import load_config_dict
from seqae.train import pretrain
import yaml
pretrain(load_config_dict(yaml.safe_load(open(sys.argv[1]))), sys.argv[2])
print("MAXRSS_KB", re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
"""


def peak_rss_kb(tmp_path: Path, config: dict, name: str) -> int:
    import yaml

    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", RSS_SCRIPT, str(path), str(tmp_path / name)], env=env,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    return int(out.stdout.split("MAXRSS_KB")[-1])


@pytest.mark.slow
def test_peak_memory_stays_flat_on_a_corpus_ten_times_larger(repo, tmp_path):
    lines = load_text_lines(str(repo / "data/fortunes/train.txt"))[0]
    default, large = tmp_path / "default.txt", tmp_path / "large.txt"
    default.write_text("\n".join(lines * 5) + "\n")  # 30,400 sentences
    with large.open("w") as f:
        for _ in range(10):
            f.write(default.read_text())
    config = {
        "data": {"train": None, "heldout": str(repo / "data/fortunes/heldout.txt"), "streaming": True,
                 "max_len": 32, "max_tokens": 512, "eval_sentences": 16},
        "tokenizer": {"vocab_size": 200, "train_sentences": 5000},
        "model": {"embed_dim": 16, "hidden_dim": 16, "decoder_dim": 16, "bottleneck_dim": 8},
        "train": {"max_steps": 20, "eval_every": 0, "checkpoint_every": 20, "progress": False, "threads": 1},
    }
    rss = {}
    for name, corpus in (("default", default), ("large", large)):
        config["data"]["train"] = str(corpus)
        rss[name] = peak_rss_kb(tmp_path, config, name)
    print(f"peak RSS: default corpus {rss['default'] / 1024:.0f} MiB, 10x corpus {rss['large'] / 1024:.0f} MiB")
    assert rss["large"] <= 1.1 * rss["default"]
    # The same 10x corpus read into memory does not stay within the bound: the test can tell the difference.
    config["data"]["streaming"] = False
    in_memory = peak_rss_kb(tmp_path, config, "in_memory")
    print(f"peak RSS in memory, 10x corpus: {in_memory / 1024:.0f} MiB")
    assert in_memory > 1.1 * rss["default"]


def speech_stream_config(repo, **data):
    return load_config_dict({
        "task": "speech",
        "data": {"train": str(repo / "data/espeak_words/train/manifest.jsonl"),
                 "heldout": str(repo / "data/espeak_words/test/manifest.jsonl"), "streaming": True,
                 "shuffle_buffer": 8, "pool_size": 16, "max_len": 120, "max_tokens": 600, "eval_sentences": 8, **data},
        "features": {"kind": "logmel", "n_mels": 16},
        "model": {"frontend": "conv2", "embed_dim": 16, "hidden_dim": 16, "decoder_dim": 16, "prenet_dim": 16,
                  "pooling": "mean", "bottleneck_dim": 8, "dropout": 0.0},
        "noise": [{"type": "time_mask", "ratio": 0.15, "span": 5}],
        "train": {"max_steps": 24, "warmup_steps": 2, "log_every": 1, "eval_every": 0, "checkpoint_every": 4,
                  "progress": False, "threads": 1},
    })


def test_streamed_speech_run_sees_every_utterance_once_an_epoch_and_resumes_exactly(repo, tmp_path, monkeypatch):
    config = speech_stream_config(repo)
    monkeypatch.setenv("SEQAE_BATCH_TRACE", str(tmp_path / "trace"))
    reference = pretrain(config, tmp_path / "reference")
    assert reference["train_sequences"] == "the first 8 of the stream" and reference["heldout_sequences"] == 8
    trace = [json.loads(line) for line in (tmp_path / "trace" / "rank0.jsonl").open()]
    ends = [r for r in records(tmp_path / "reference") if "epoch_end" in r]
    assert ends and ends[0]["rows_read"] == 48 and ends[0]["audio_skipped"] == 0
    for epoch in range(max(r["epoch"] for r in trace)):  # complete epochs
        seen = [i for r in trace if r["epoch"] == epoch for i in r["indices"]]
        assert sorted(seen) == list(range(48))
    assert any(p.name.endswith(".safetensors") for p in (tmp_path / "reference" / "features").rglob("*"))
    monkeypatch.delenv("SEQAE_BATCH_TRACE")
    crashed = tmp_path / "crashed"
    pretrain(config, crashed, stop_after=10)  # checkpoint at step 8
    assert pretrain(config, crashed) == reference

    def losses(run):
        return [(r["step"], r["epoch"], r["loss"]) for r in records(run) if "loss" in r and "eval" not in r]

    assert losses(crashed) == losses(tmp_path / "reference")


def test_streamed_speech_refuses_paired_targets(repo, tmp_path):
    with pytest.raises(ConfigError, match="data.targets: a streamed corpus rebuilds its own input"):
        pretrain(speech_stream_config(repo, targets="neighbours"), tmp_path / "run")
