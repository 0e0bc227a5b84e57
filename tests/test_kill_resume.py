"""SIGKILL at any moment, then the same command again: the run resumes and logs exactly what an uninterrupted run logs.

The slow test runs `python -m seqae pretrain CONFIG --run-dir DIR` as a subprocess and kills it with SIGKILL
following a seeded plan: during start-up (imports, tokenizer or features, a resumed run cutting its log back), at a
random training step, and in the middle of a checkpoint write (the temporary checkpoint file exists, not yet renamed)
and of its checksum write (the checkpoint is renamed, its checksum is not). It then reruns the same command until
the run finishes, and compares metrics.jsonl with an uninterrupted run's, record by record.

To kill reliably inside a checkpoint write, killed runs get a `sitecustomize.py` on PYTHONPATH that, when
SEQAE_TEST_FSYNC_DELAY is set, sleeps after each `os.fsync`: the temporary file then stays on disk long enough to be
seen. It changes timing only, never a number.

SIGINT and SIGTERM are the polite stops: the run finishes its step, writes a checkpoint and exits with 128 + the
signal's number (130, 143), so a `set -e` recipe stops instead of going on to read a metrics.json that is not there.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml

from seqae.checkpoint import load_latest
from seqae.train import pretrain

FSYNC_HOOK = '''\
import os
import time

_delay = float(os.environ.get("SEQAE_TEST_FSYNC_DELAY") or 0)
if _delay > 0:
    _real_fsync = os.fsync

    def _slow_fsync(fd):
        _real_fsync(fd)
        time.sleep(_delay)

    os.fsync = _slow_fsync
'''
DEADLINE_S = 120.0  # a child that takes longer than this to reach a kill point fails the test
POLL_S = 0.005


_children: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def no_child_left_behind():
    """A failing test must not leave a run going."""
    yield
    while _children:
        proc = _children.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)


pytestmark = pytest.mark.usefixtures("offline_hub")  # see tests/conftest.py


def text_config(repo: Path) -> dict:
    return {
        "data": {"train": str(repo / "data/fortunes/train.txt"), "heldout": None, "heldout_fraction": 0.1,
                 "max_train_sentences": 48, "max_len": 20, "max_tokens": 160, "eval_sentences": 6},
        "tokenizer": {"vocab_size": 100},
        "model": {"embed_dim": 16, "hidden_dim": 16, "decoder_dim": 16, "bottleneck_dim": 8,
                  "dropout": 0.1, "word_dropout": 0.1},  # randomness in every step: the RNG state must resume
        "noise": [{"type": "span_mask", "ratio": 0.3, "unit": "token"}],
        "train": {"max_steps": 24, "warmup_steps": 2, "log_every": 1, "eval_every": 8, "checkpoint_every": 3,
                  "threads": 1, "progress": False},
    }


def speech_config(repo: Path) -> dict:
    return {
        "task": "speech",
        "data": {"train": str(repo / "data/espeak_words/train/manifest.jsonl"),
                 "heldout": str(repo / "data/espeak_words/test/manifest.jsonl"),
                 "max_len": 200, "max_tokens": 800, "eval_sentences": 8},
        "features": {"n_mels": 16},
        "model": {"embed_dim": 16, "hidden_dim": 16, "decoder_dim": 16, "prenet_dim": 16, "bottleneck_dim": 8,
                  "pooling": "mean", "dropout": 0.1},
        "noise": [{"type": "time_mask", "ratio": 0.2, "span": 3}],
        "train": {"max_steps": 24, "warmup_steps": 2, "log_every": 1, "eval_every": 8, "checkpoint_every": 3,
                  "threads": 1, "progress": False},
    }


def kill_plan(seed: int, max_steps: int) -> list[tuple[str, float]]:
    """Seeded kill points: the start-up of the fresh run (at a random fraction of the time a run takes to get
    ready), then, in random order at increasing random steps, a plain step, a checkpoint write, a checksum write
    and a resumed run's start-up (late in it: loading the checkpoint, cutting the log back)."""
    rng = random.Random(seed)
    steps = sorted(rng.sample(range(2, max_steps - 2), 4))
    kinds = ["step", "checkpoint_write", "startup", "checksum_write"]
    rng.shuffle(kinds)
    later = [(kind, rng.uniform(0.5, 0.99) if kind == "startup" else step) for kind, step in zip(kinds, steps)]
    return [("startup", rng.uniform(0.05, 0.95)), *later]


@dataclass
class Child:
    """A `seqae pretrain` subprocess with its combined output in a file."""

    proc: subprocess.Popen
    out_path: Path
    started: float

    def output(self) -> str:
        return self.out_path.read_text(errors="replace") if self.out_path.is_file() else ""

    def ready(self) -> bool:
        """Set-up done: the log was cut back and the next record is this process's (the trainer prints the model
        line last in its constructor)."""
        return "\nmodel: " in "\n" + self.output()


def launch(cmd: list[str], cwd: Path, out_path: Path, *, hook_dir: Path | None = None,
           fsync_delay: float = 0.0) -> Child:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1"}
    env.pop("SEQAE_TEST_FSYNC_DELAY", None)
    if hook_dir is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(hook_dir), env.get("PYTHONPATH")]))
    if fsync_delay:
        env["SEQAE_TEST_FSYNC_DELAY"] = str(fsync_delay)
    out = open(out_path, "w")
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env)
    out.close()
    _children.append(proc)
    return Child(proc=proc, out_path=out_path, started=time.monotonic())


def wait_until(child: Child, condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if child.proc.poll() is not None:
            pytest.fail(f"the run ended (status {child.proc.returncode}) before {what}:\n{child.output()}")
        if time.monotonic() > deadline:
            child.proc.kill()
            pytest.fail(f"timed out waiting for {what}:\n{child.output()}")
        time.sleep(POLL_S)


def sigkill(child: Child, what: str) -> None:
    """SIGKILL the child, insisting it was still running (so the kill really landed at `what`)."""
    assert child.proc.poll() is None, f"the run had already ended before {what}:\n{child.output()}"
    child.proc.send_signal(signal.SIGKILL)
    assert child.proc.wait(timeout=60) == -signal.SIGKILL


def logged_steps(run_dir: Path) -> list[int]:
    path = run_dir / "metrics.jsonl"
    lines = path.read_text().splitlines() if path.is_file() else []
    return [json.loads(line)["step"] for line in lines if line.endswith("}") and '"loss"' in line]


def checkpoint_temporaries(run_dir: Path, pid: int, suffix: str) -> list[tuple[int, Path]]:
    """(step, path) of the temporary files this process is writing: `.step_XXXXXXXX{suffix}.tmp<pid>`."""
    folder = run_dir / "checkpoints"
    names = os.listdir(folder) if folder.is_dir() else []
    return [(int(n[6:14]), folder / n) for n in names
            if n.startswith(".step_") and n.endswith(f"{suffix}.tmp{pid}") and n[6:14].isdigit()]


def run_trial(kind: str, arg: float, cmd: list[str], cwd: Path, run_dir: Path, out_path: Path, hook_dir: Path,
              ready_s: float) -> str:
    """Start the command, SIGKILL it at the plan's point, check the kill landed there; returns the output."""
    slow = kind in ("checkpoint_write", "checksum_write")
    child = launch(cmd, cwd, out_path, hook_dir=hook_dir, fsync_delay=0.5 if slow else 0.0)
    if kind == "startup":
        time.sleep(arg * ready_s)
        sigkill(child, f"start-up ({arg:.2f} of the time to get ready)")
        return child.output()
    wait_until(child, child.ready, "the trainer was ready")
    if kind == "step":
        wait_until(child, lambda: any(s >= arg for s in logged_steps(run_dir)), f"step {arg}")
        sigkill(child, f"step {arg}")
        return child.output()
    suffix = ".pt" if kind == "checkpoint_write" else ".pt.sha256"
    found: list[tuple[int, Path]] = []

    def writing() -> bool:
        found[:] = [(s, p) for s, p in checkpoint_temporaries(run_dir, child.proc.pid, suffix) if s >= arg]
        return bool(found)

    wait_until(child, writing, f"a {kind.replace('_', ' ')} at step >= {arg}")
    sigkill(child, kind)
    step, tmp = found[0]
    final = run_dir / "checkpoints" / f"step_{step:08d}{suffix}"
    assert tmp.is_file() and not final.exists(), f"the kill missed the {kind} of step {step}"
    return child.output()


def comparable(run_dir: Path) -> list[dict]:
    """metrics.jsonl without the one field that measures time."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line, parse_constant=str) for line in lines]  # NaN as "NaN": equal to itself
    return [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in records]


@pytest.mark.slow
@pytest.mark.parametrize("task", ["text", "speech"])
def test_sigkill_at_any_moment_then_rerun_resumes_exactly(repo, tmp_path, task):
    config = tmp_path / "config.yaml"
    data = text_config(repo) if task == "text" else speech_config(repo)
    config.write_text(yaml.safe_dump(data))
    hook_dir = tmp_path / "hook"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(FSYNC_HOOK)
    cmd = lambda run: [sys.executable, "-m", "seqae", "pretrain", str(config), "--run-dir", str(run)]  # noqa: E731

    reference_dir = tmp_path / "reference"
    reference = launch(cmd(reference_dir), tmp_path, tmp_path / "reference.out")
    wait_until(reference, reference.ready, "the reference run was ready")
    ready_s = time.monotonic() - reference.started
    assert reference.proc.wait(timeout=DEADLINE_S) == 0, reference.output()

    run_dir = tmp_path / "killed"
    outputs = []
    plan = kill_plan(seed=1234 if task == "text" else 5678, max_steps=data["train"]["max_steps"])
    for i, (kind, arg) in enumerate(plan):
        outputs.append(run_trial(kind, arg, cmd(run_dir), tmp_path, run_dir, tmp_path / f"trial{i}.out", hook_dir,
                                 ready_s))
    final = launch(cmd(run_dir), tmp_path, tmp_path / "final.out", hook_dir=hook_dir)
    assert final.proc.wait(timeout=DEADLINE_S) == 0, final.output()
    outputs.append(final.output())

    after_checksum_kill = "".join(outputs[[k for k, _ in plan].index("checksum_write") + 1:])
    assert "no checksum file" in after_checksum_kill
    assert "falling back to the previous checkpoint" in after_checksum_kill
    assert sum("resuming" in out for out in outputs) >= 2, "\n---\n".join(outputs)
    assert comparable(run_dir) == comparable(reference_dir)  # every loss, eval and final record, step by step
    final_metrics = [json.loads((d / "metrics.json").read_text()) for d in (run_dir, reference_dir)]
    assert final_metrics[0] == final_metrics[1]


# ---------------------------------------------------------------- SIGINT / SIGTERM: checkpoint, exit 128 + signal


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_finishes_the_step_checkpoints_exits_128_plus_its_number_and_resumes(repo, tmp_path, sig):
    data = text_config(repo)
    data["train"].update({"max_steps": 400, "eval_every": 0, "checkpoint_every": 1000})
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(data))
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "seqae", "pretrain", str(config), "--run-dir", str(run)]
    child = launch(cmd, tmp_path, tmp_path / "stopped.out")
    wait_until(child, lambda: len(logged_steps(run)) >= 3, "step 3")
    child.proc.send_signal(sig)
    status = child.proc.wait(timeout=DEADLINE_S)
    assert status == 128 + sig and status == {"SIGINT": 130, "SIGTERM": 143}[sig.name], child.output()
    assert f"{sig.name}: stopped cleanly after step" in child.output()
    assert "run the same command again to resume" in child.output()
    assert not (run / "metrics.json").exists()  # what a `set -e` script would have read next
    step = load_latest(run)["step"]
    assert 3 <= step < 400
    again = launch(cmd, tmp_path, tmp_path / "resumed.out")
    assert again.proc.wait(timeout=DEADLINE_S) == 0, again.output()
    assert f"resuming {run} from step {step}" in again.output()
    assert json.loads((run / "metrics.json").read_text())["step"] == 400


@pytest.mark.parametrize(("metrics", "status"), [({"stopped": "SIGINT", "step": 3}, 130),
                                                  ({"stopped": "SIGTERM", "step": 3}, 143), ({"step": 4}, 0)])
def test_seqae_finetune_exits_with_128_plus_the_signal_that_stopped_it(monkeypatch, tmp_path, metrics, status):
    import seqae.finetune
    from seqae.cli import main

    # `metrics`: what Trainer.run returns for a stopped or a finished run
    monkeypatch.setattr(seqae.finetune, "finetune_command", lambda *args: (metrics, tmp_path / "run"))
    assert main(["finetune", "asr", str(tmp_path / "config.yaml"), "--run-dir", str(tmp_path / "run")]) == status


# ---------------------------------------------------------------- resume edge cases, in-process


def tiny(repo: Path) -> dict:
    data = text_config(repo)
    data["train"].update({"max_steps": 8, "eval_every": 0, "checkpoint_every": 4, "threads": None})
    return data


def test_rerunning_a_finished_run_leaves_its_log_unchanged(repo, tmp_path):
    from seqae.config import load_config_dict

    config = load_config_dict(tiny(repo))
    first = pretrain(config, tmp_path / "run")
    log = (tmp_path / "run" / "metrics.jsonl").read_text()
    assert pretrain(config, tmp_path / "run") == first
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == log  # one final record, not two


def test_a_skipped_step_after_the_checkpoint_is_not_logged_twice(repo, tmp_path, monkeypatch):
    from seqae.config import load_config_dict
    from seqae.tasks.text import TextTask

    config = load_config_dict(tiny(repo))
    real_loss = TextTask.loss
    seen: list[tuple] = []

    def poisoned_fifth_batch(self, batch):  # non-finite for the fifth distinct batch, wherever a run starts
        loss, stats = real_loss(self, batch)
        key = tuple(batch["src"].flatten().tolist())
        if key not in seen:
            seen.append(key)
        return (loss * float("nan") if seen.index(key) == 4 else loss), stats

    monkeypatch.setattr(TextTask, "loss", poisoned_fifth_batch)
    reference = tmp_path / "reference"
    pretrain(config, reference)
    skipped = [r for r in comparable(reference) if "skipped" in r]
    assert [r["step"] for r in skipped] == [4]  # right after the step-4 checkpoint
    crashed = tmp_path / "crashed"  # the same batches again: `seen` knows them, so the same one is poisoned
    assert pretrain(config, crashed, stop_after=6) == {}
    pretrain(config, crashed)
    assert comparable(crashed) == comparable(reference)
    assert torch.isfinite(torch.tensor([r["loss"] for r in comparable(crashed) if "loss" in r])).all()
