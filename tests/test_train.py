"""The training loop: exact resume, schedules, checkpoints that refuse corruption and pickled code."""

import json
import pickle
import warnings
from pathlib import Path

import pytest
import torch

from seqae.checkpoint import CheckpointError, checkpoint_path, list_checkpoints, load_checkpoint, load_latest
from seqae.config import ConfigError, load_config_dict
from seqae.train import lr_at, pretrain


def tiny_config(repo: Path, **train):
    return load_config_dict({
        "data": {"train": str(repo / "data/fortunes/train.txt"), "heldout": str(repo / "data/fortunes/heldout.txt"),
                 "max_train_sentences": 96, "max_len": 24, "max_tokens": 256, "eval_sentences": 16},
        "tokenizer": {"vocab_size": 120},
        "model": {"embed_dim": 16, "hidden_dim": 16, "decoder_dim": 16, "bottleneck_dim": 8,
                  "dropout": 0.1, "word_dropout": 0.1},  # dropout and word dropout: the RNG state must be restored
        "train": {"max_steps": 12, "warmup_steps": 2, "log_every": 1, "eval_every": 5, "checkpoint_every": 4,
                  "progress": False, **train},
    })


def losses(run_dir: Path) -> list[tuple[int, float]]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in records if "loss" in r and "eval" not in r]


@pytest.mark.parametrize("train", [{}, {"grad_accum": 2}], ids=["plain", "grad_accum"])
def test_resume_reproduces_logged_losses_exactly(repo, tmp_path, train):
    config = tiny_config(repo, **train)
    reference = pretrain(config, tmp_path / "reference")
    crashed = tmp_path / "crashed"
    assert pretrain(config, crashed, stop_after=7) == {}  # dies after step 7; last checkpoint at step 4
    assert [p.name for p in list_checkpoints(crashed)] == ["step_00000004.pt"]
    assert max(step for step, _ in losses(crashed)) == 7
    resumed = pretrain(config, crashed)
    assert losses(crashed) == losses(tmp_path / "reference")  # exact equality, step by step
    assert len(losses(crashed)) == 12
    assert resumed == reference


def test_resume_refuses_another_config(repo, tmp_path):
    pretrain(tiny_config(repo, max_steps=2), tmp_path / "run")
    with pytest.raises(ConfigError, match=r"another config \(differs in: train.lr\)"):
        pretrain(tiny_config(repo, max_steps=2, lr=0.5), tmp_path / "run")


def test_a_run_without_a_checkpoint_starts_over_with_the_new_config(repo, tmp_path, capsys):
    import yaml

    from seqae.config import to_dict
    from seqae.rundir import resolve_config

    run = tmp_path / "run"
    first = tiny_config(repo, max_steps=2)
    resolve_config(first, run)  # what a run that stopped before its first checkpoint leaves behind
    (run / "tokenizer.model").write_bytes(b"built from the first config")
    (run / "checkpoints").mkdir()  # the folder alone is no checkpoint
    changed = tiny_config(repo, max_steps=2, lr=0.5, seed=3)
    assert resolve_config(changed, run) is changed
    assert capsys.readouterr().out == (f"{run}: the run has no checkpoint yet, so it starts over with the new config "
                                       "(changed: train.lr, train.seed)\n")
    assert yaml.safe_load((run / "config.yaml").read_text()) == to_dict(changed)
    assert not (run / "tokenizer.model").exists()  # trained again from the new config, never reused
    assert to_dict(resolve_config(changed, run)) == to_dict(changed) and capsys.readouterr().out == ""

    pretrain(changed, run)  # now with checkpoints: the same change is refused again
    with pytest.raises(ConfigError, match=r"another config \(differs in: train.lr, train.seed\)"):
        resolve_config(first, run)
    assert yaml.safe_load((run / "config.yaml").read_text()) == to_dict(changed)


def test_metrics_and_checkpoints_written(repo, tmp_path):
    metrics = pretrain(tiny_config(repo, keep_checkpoints=2), tmp_path / "run")
    for key in ("train_exact_match", "heldout_exact_match", "heldout_token_accuracy"):
        assert 0.0 <= metrics[key] <= 1.0
    assert json.loads((tmp_path / "run" / "metrics.json").read_text()) == metrics
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == ["step_00000008.pt", "step_00000012.pt"]
    ckpt = load_checkpoint(checkpoint_path(tmp_path / "run", 12))
    assert ckpt["format_version"] == 1 and ckpt["step"] == 12 and ckpt["config"]["train"]["max_steps"] == 12
    assert set(ckpt) >= {"model", "optimizer", "rng", "data", "config"}


def test_corrupt_latest_checkpoint_falls_back_with_warning(repo, tmp_path):
    run = tmp_path / "run"
    pretrain(tiny_config(repo), run)
    newest = checkpoint_path(run, 12)
    newest.write_bytes(newest.read_bytes()[:100])  # truncated
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ckpt = load_latest(run)
    assert ckpt["step"] == 8
    message = str(caught[0].message)
    assert "step_00000012.pt" in message and "checksum mismatch" in message and "step_00000008.pt" in message


class _Exploit:
    def __reduce__(self):
        return (Path.touch, (Path(self.target),))


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    exploit = _Exploit()
    exploit.target = str(marker)
    path = checkpoint_path(tmp_path, 1)
    path.parent.mkdir(parents=True)
    torch.save({"format_version": 1, "step": 1, "model": exploit}, path)
    import hashlib
    path.with_name(path.name + ".sha256").write_text(hashlib.sha256(path.read_bytes()).hexdigest())
    with pytest.raises(CheckpointError, match="refused to load"):
        load_checkpoint(path)
    assert not marker.exists()
    with open(path, "rb"):  # and the plain pickle really would have run it
        pass
    assert pickle.dumps(exploit)


def test_learning_rate_schedule():
    cfg = tiny_config(Path("."), max_steps=100, warmup_steps=10, lr=1.0, min_lr_ratio=0.1).train
    assert lr_at(0, cfg) == pytest.approx(0.1)
    assert lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(10, cfg) == pytest.approx(1.0)
    assert lr_at(100, cfg) == pytest.approx(0.1)
    assert lr_at(55, cfg) == pytest.approx(0.55)  # cosine midpoint between 1.0 and 0.1


def test_nonfinite_steps_are_skipped_then_stop_with_a_clear_message(repo, tmp_path, monkeypatch):
    from seqae.tasks.text import TextTask
    from seqae.train import TrainingError

    real_loss = TextTask.loss
    calls = {"n": 0}

    def flaky_loss(self, batch):
        calls["n"] += 1
        loss, stats = real_loss(self, batch)
        if calls["n"] == 3 or calls["n"] >= 7:  # one isolated bad step, then bad for good
            loss = loss * float("nan")
        return loss, stats

    monkeypatch.setattr(TextTask, "loss", flaky_loss)
    run = tmp_path / "run"
    with pytest.raises(TrainingError, match=r"3 steps in a row had a non-finite loss or gradient; stopped at step 5"):
        pretrain(tiny_config(repo, max_nonfinite_steps=3), run)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    skipped = [r for r in records if "skipped" in r]
    assert [r["step"] for r in skipped] == [2, 5, 5, 5]
    assert [r["step"] for r in records if "loss" in r and "skipped" not in r and "eval" not in r] == [1, 2, 3, 4, 5]
    assert load_latest(run)["step"] == 4  # the last good checkpoint is intact


@pytest.mark.parametrize("arch", ["gru", "transformer"])
def test_bf16_autocast_follows_the_fp32_loss_curve(repo, tmp_path, arch):
    curves = {}
    for precision in ("fp32", "bf16"):
        config = load_config_dict({
            "data": {"train": str(repo / "data/fortunes/train.txt"), "heldout": str(repo / "data/fortunes/heldout.txt"),
                     "max_train_sentences": 96, "max_len": 24, "max_tokens": 256, "eval_sentences": 8},
            "tokenizer": {"vocab_size": 120},
            "model": {"encoder": arch, "decoder": arch, "embed_dim": 32, "hidden_dim": 32, "decoder_dim": 32,
                      "bottleneck_dim": 16, "num_heads": 2, "ff_dim": 64, "dropout": 0.0},
            "train": {"max_steps": 25, "lr": 0.01, "warmup_steps": 2, "log_every": 1, "eval_every": 0,
                      "checkpoint_every": 25, "progress": False, "precision": precision},
        })
        pretrain(config, tmp_path / precision)
        curves[precision] = [loss for _, loss in losses(tmp_path / precision)]
    fp32, bf16 = curves["fp32"], curves["bf16"]
    assert fp32 != bf16  # autocast did run something in bf16
    assert fp32[-1] < fp32[0] - 0.5  # the curve being compared goes somewhere
    for a, b in zip(fp32, bf16):
        assert b == pytest.approx(a, rel=0.02)


def test_bf16_on_a_cpu_without_bf16_arithmetic_is_flagged(repo, tmp_path, monkeypatch):
    """A CPU that converts bf16 in software trains slower in bf16 than in fp32: the Trainer says so, naming the
    key, and trains all the same; fp32, or bf16 where it is fast, is not flagged."""
    import seqae.train as train_module
    from seqae.models.fast.linear import bf16_slowdown

    assert 0 < bf16_slowdown() < float("inf")  # the real measurement, whatever this CPU does
    monkeypatch.setattr(train_module, "bf16_slowdown", lambda: 9.5)
    with pytest.warns(RuntimeWarning, match=r"train.precision: bf16: .* 9.5x slower than fp32"):
        pretrain(tiny_config(repo, precision="bf16", max_steps=2), tmp_path / "slow")
    assert len(losses(tmp_path / "slow")) == 2
    monkeypatch.setattr(train_module, "bf16_slowdown", lambda: 0.7)
    for precision in ("bf16", "fp32"):
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message="train.precision")
            pretrain(tiny_config(repo, precision=precision, max_steps=2), tmp_path / precision)


def test_resume_drops_a_log_line_cut_short_and_stale_partial_checkpoints(repo, tmp_path, capsys):
    config = tiny_config(repo)
    pretrain(config, tmp_path / "reference")
    run = tmp_path / "run"
    pretrain(config, run, stop_after=6)  # checkpoint at step 4
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 7, "epoch": 0, "lo')  # a kill in the middle of a write
    stale = run / "checkpoints" / ".step_00000008.pt.tmp99999"
    stale.write_bytes(b"half a checkpoint")
    pretrain(config, run)
    assert "metrics.jsonl:9: not a JSON record (a write cut short?); dropped" in capsys.readouterr().out  # 6 step records and 2 eval records before it
    assert losses(run) == losses(tmp_path / "reference")
    assert not stale.exists()
