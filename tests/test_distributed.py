"""torchrun with 2 CPU processes (gloo): same losses as one process at the same global batch, one checkpoint
writer, and a run checkpointed with 2 processes resumes with 1."""

import json
import os
import subprocess
import sys

import pytest
import yaml

from seqae.checkpoint import list_checkpoints, load_latest
from seqae.config import load_config_dict, to_dict


def write_config(repo, path, **train):
    config = load_config_dict({
        "data": {"train": str(repo / "data/fortunes/train.txt"), "heldout": str(repo / "data/fortunes/heldout.txt"),
                 "max_train_sentences": 64, "max_len": 20, "max_tokens": 128, "eval_sentences": 8},
        "tokenizer": {"vocab_size": 100},
        "model": {"embed_dim": 16, "hidden_dim": 16, "decoder_dim": 16, "bottleneck_dim": 8, "dropout": 0.0},
        "train": {"max_steps": 6, "grad_accum": 2, "warmup_steps": 1, "log_every": 1, "eval_every": 0,
                  "checkpoint_every": 3, "progress": False, "threads": 1, **train},
    })
    path.write_text(yaml.safe_dump(to_dict(config)))
    return path


def launch(args, nproc):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    if nproc == 1:
        cmd = [sys.executable, "-m", "seqae", *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               "-m", "seqae", *args]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def losses(run):
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"], r["epoch"]) for r in records if "loss" in r and "eval" not in r]


@pytest.mark.slow
def test_two_processes_match_one_and_resume_with_one(repo, tmp_path):
    config = write_config(repo, tmp_path / "c.yaml")
    single, double = tmp_path / "single", tmp_path / "double"
    launch(["pretrain", str(config), "--run-dir", str(single)], nproc=1)
    out = launch(["pretrain", str(config), "--run-dir", str(double)], nproc=2).stdout
    assert "2 processes (gloo)" in out
    a, b = losses(single), losses(double)
    assert [s for s, _, _ in a] == [s for s, _, _ in b] == [1, 2, 3, 4, 5, 6]  # rank 0 alone logs
    for (_, la, ea), (_, lb, eb) in zip(a, b):
        assert lb == pytest.approx(la, rel=1e-5) and ea == eb
    assert [p.name for p in list_checkpoints(double)] == ["step_00000003.pt", "step_00000006.pt"]
    ckpt2 = load_latest(double)

    # Carry on with one process for longer: same global step and data position, then new steps.
    more = write_config(repo, tmp_path / "more.yaml", max_steps=9)
    out = launch(["pretrain", str(more), "--run-dir", str(double)], nproc=1).stdout
    assert f"resuming {double} from step 6 (epoch {ckpt2['data']['epoch']}, batch {ckpt2['data']['batch']})" in out
    assert [s for s, _, _ in losses(double)] == list(range(1, 10))

    # And the reverse: the run the single process carried on resumes with 2 processes, as does a one-process
    # run of the same config, and the two stay equal.
    longer = write_config(repo, tmp_path / "longer.yaml", max_steps=12)
    launch(["pretrain", str(more), "--run-dir", str(single)], nproc=1)
    for run in (single, double):
        out = launch(["pretrain", str(longer), "--run-dir", str(run)], nproc=2).stdout
        assert f"resuming {run} from step 9" in out
    assert [s for s, _, _ in losses(double)] == list(range(1, 13))
    for (_, la, ea), (_, lb, eb) in zip(losses(single), losses(double)):
        assert lb == pytest.approx(la, rel=1e-5) and ea == eb


@pytest.mark.slow
def test_grad_accum_must_divide_by_world_size(repo, tmp_path):
    config = write_config(repo, tmp_path / "c.yaml", grad_accum=3)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "seqae",
           "pretrain", str(config), "--run-dir", str(tmp_path / "run")]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode != 0
    assert "train.grad_accum: must be a multiple of the number of processes (2), got 3" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("streaming", [False, True], ids=["in_memory", "streaming"])
def test_every_example_once_per_epoch_across_two_processes(repo, tmp_path, monkeypatch, streaming):
    """In memory (fp32), and streamed with bf16 autocast: the same batches and losses with 1 and 2 processes."""
    config = write_config(repo, tmp_path / "c.yaml", max_steps=18)
    if streaming:
        data = yaml.safe_load(config.read_text())
        data["data"].update(streaming=True, shuffle_buffer=16, pool_size=32)
        data["train"]["precision"] = "bf16"  # and mixed precision under torchrun
        config.write_text(yaml.safe_dump(data))
    runs = {}
    for nproc in (1, 2):
        monkeypatch.setenv("SEQAE_BATCH_TRACE", str(tmp_path / f"trace{nproc}"))
        runs[nproc] = tmp_path / f"run{nproc}"
        launch(["pretrain", str(config), "--run-dir", str(runs[nproc])], nproc=nproc)
    for (_, la, ea), (_, lb, eb) in zip(losses(runs[1]), losses(runs[2])):
        assert lb == pytest.approx(la, rel=1e-5) and ea == eb
    traces = [json.loads(line) for rank in (0, 1) for line in (tmp_path / "trace2" / f"rank{rank}.jsonl").open()]
    assert {r["step"] for r in traces} == set(range(1, 19))
    by_rank = [[json.loads(line) for line in (tmp_path / "trace2" / f"rank{rank}.jsonl").open()] for rank in (0, 1)]
    assert all(len(r) == 18 for r in by_rank)  # grad_accum 2 over 2 processes: one batch a step each
    single = [json.loads(line) for line in (tmp_path / "trace1" / "rank0.jsonl").open()]
    assert sorted(map(json.dumps, traces)) == sorted(map(json.dumps, single))  # the same batches, split over ranks
    last_epoch = max(r["epoch"] for r in traces)
    assert last_epoch >= 2
    for epoch in range(last_epoch):  # complete epochs: every training sentence exactly once over both ranks
        seen = [i for r in traces if r["epoch"] == epoch for i in r["indices"]]
        assert len(seen) == len(set(seen)) == 64
