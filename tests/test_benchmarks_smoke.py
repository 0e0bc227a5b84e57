"""Smoke test of the benchmark suite: `benchmarks/run.py --quick` runs every configuration at tiny sizes and
writes results.json / RESULTS.md with the required keys. The real benchmark is not part of the unit suite."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import math
import platform
import random
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
REQUIRED = ("mfu_transformer", "ratio_vs_naive", "ratio_vs_tsdae", "padding_efficiency", "decode_cache_speedup_64",
            "features_x_realtime", "machine", "torch_version", "date")


def _load_run():
    spec = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # puts benchmarks/ on sys.path for its helpers
    return module


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """Offline hub flags and a private HF_HOME; restores the env and torch's thread count afterwards."""
    for key in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(key, "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    monkeypatch.syspath_prepend(str(BENCH))
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _positive(x) -> bool:
    return isinstance(x, float) and math.isfinite(x) and x > 0


@pytest.mark.slow
def test_quick_suite_writes_required_keys(offline, tmp_path, monkeypatch):
    run = _load_run()
    import bench_peer

    monkeypatch.setattr(bench_peer, "peer_version", lambda: None)  # as on a machine without the bench extra
    import seqae.models.fast.linear as linear_module

    monkeypatch.setattr(linear_module, "bf16_slowdown", lambda: 1.0)  # bf16 is timed on any CPU (skip: below)
    run.main(["--quick", "--out", str(tmp_path / "out")])
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    for key in REQUIRED:
        assert key in results, key
    for key in ("mfu_transformer", "ratio_vs_naive", "decode_cache_speedup_64", "features_x_realtime"):
        assert _positive(results[key]), (key, results[key])
    assert 0 < results["padding_efficiency"] <= 1
    assert results["ratio_vs_tsdae"] is None
    assert results["environment"]["peer"] == "peer not installed"
    assert results["torch_version"] == torch.__version__
    assert isinstance(results["machine"]["cpu"], str) and results["machine"]["logical_cpus"] >= 1
    assert dt.datetime.fromisoformat(results["date"]).tzinfo is not None
    configs = results["configs"]
    assert "peer/tsdae-loop" not in configs
    for name, result in configs.items():
        assert "error" not in result, (name, result)
        assert result["peak_rss_mib"] > 0, name
    tt = configs["train/transformer-transformer"]
    assert tt["sentences"] == 2 * 16 and tt["tokens_per_s_real"] <= tt["tokens_per_s_padded"]
    assert 0 < tt["per_token_params"] < tt["matmul_params"]  # MFU's N: the per-token ones
    assert results["mfu_transformer_all_params"] == pytest.approx(
        results["mfu_transformer"] * tt["matmul_params"] / tt["per_token_params"])
    decode = configs["decode"]["lengths"]["64"]
    assert decode["same_tokens"] is True  # cached and uncached decode agree
    assert len(decode["cached_every_s"]) == len(decode["uncached_every_s"]) == 5  # taking turns, best of each
    assert decode["cached_s"] == pytest.approx(min(decode["cached_every_s"]), abs=1e-4)
    epochs = configs["features"]["cached_epochs"]
    files = configs["features"]["files"]  # every file a miss, their features computed 32 files a call
    assert epochs[0]["cache_misses"] == files and epochs[0]["feature_calls"] == -(-files // 32)
    assert epochs[1]["cache_misses"] == 0 and epochs[1]["feature_s"] == 0.0
    proposals = configs["proposals"]
    assert {"baseline", "foreach_adamw", "bf16_autocast", "no_ff_inner_dropout"} <= set(proposals)
    for name in ("baseline", "bf16_autocast", "no_ff_inner_dropout"):  # the rate counts the timed window only
        assert proposals[name]["sentences_per_s"] * proposals[name]["seconds"] == pytest.approx(2 * 16), name
    assert proposals["bf16_autocast"]["curve_steps_compared"] == 4
    assert proposals["other_gemm"]["curve_comparable"] and proposals["other_gemm"]["max_rel_loss_diff"] < 1e-3
    from seqae.models.fast.linear import onednn_available

    if onednn_available():  # the candidate runs the GEMM auto did not pick
        assert {proposals["baseline"]["cpu_gemm"], proposals["other_gemm"]["cpu_gemm"]} == {"blas", "onednn"}
    malloc = configs["malloc"]  # each side in processes of its own, the setting in force only on keep's
    assert [r["mode"] for r in malloc["runs"]["default"]] == ["default"] and malloc["speedup"] > 0
    if platform.libc_ver()[0] == "glibc":
        assert malloc["runs"]["default"][0]["malloc_settings"] == {}
        assert malloc["runs"]["keep"][0]["malloc_settings"]["trim_threshold"] == 1 << 30
    from seqae.models.fast.linear import cpu_gemm

    assert tt["cpu_gemm"] == cpu_gemm() and configs["naive/transformer-transformer"]["cpu_gemm"] == "blas"
    for gemm in (configs["gemm"], *configs["gemm"]["model_shapes"]):  # the MFU denominator: the faster kernel
        rates = [gemm[k] for k in ("blas_fp32_gflops", "onednn_fp32_gflops") if k in gemm]
        assert "blas_fp32_gflops" in gemm and gemm["fp32_gflops"] == max(rates)
    assert results["goals"]["features_x_realtime"]["met"] in (True, False)
    md = (tmp_path / "out" / "RESULTS.md").read_text()
    assert "peer not installed" in md
    for key in results["goals"]:
        assert f"`{key}`" in md
    assert "| keep |" in md and "| default |" in md


def test_bf16_candidate_is_skipped_with_its_reason_where_bf16_is_slow(offline, tmp_path, monkeypatch):
    """On a CPU without bf16 arithmetic the bf16 candidate is not run (its steps took 30x fp32's); the others are,
    and the report says why the row is empty."""
    import bench_proposals
    import bench_report

    import seqae.models.fast.linear as linear_module

    monkeypatch.setattr(linear_module, "bf16_slowdown", lambda: 9.5)
    ran = []

    def fake_variant(config, run_dir, sizes, **flags):
        ran.append(run_dir.name)
        return {"sentences_per_s": 10.0, "losses": [1.0, 0.5], "batch_share": 0.0, "optimizer_share": 0.0,
                "cpu_gemm": "blas"}

    monkeypatch.setattr(bench_proposals, "run_variant", fake_variant)
    results = bench_proposals.run_proposals(lambda: None, tmp_path, sizes=None)
    assert ran == [name for name in bench_proposals.VARIANTS if name != "bf16_autocast"]
    assert results["bf16_autocast"] == {"skipped": "a bf16 matrix product ran 9.5x slower than fp32 on this CPU "
                                                   "(no bf16 arithmetic)", "bf16_slowdown": 9.5}
    assert results["foreach_adamw"]["speedup"] == 1.0 and results["foreach_adamw"]["max_rel_loss_diff"] == 0.0
    rows = bench_report._proposals(results)
    assert "| bf16_autocast | skipped: a bf16 matrix product ran 9.5x slower than fp32 on this CPU" in "\n".join(rows)


def test_per_token_params_leave_out_what_runs_once_per_sequence(offline):
    _load_run()
    import bench_common
    import bench_train

    from seqae.models.builder import build_token_autoencoder

    sizes = bench_common.quick()
    config = bench_train.seqae_config(sizes, encoder="transformer", decoder="transformer", threads=1,
                                      train_file=Path("unused.txt"), tokenizer=Path("unused.model"))
    model = build_token_autoencoder(config.model, sizes.vocab, regularize=config.regularize)
    names = [name for name, _ in model.named_parameters()]
    for key in bench_train.PER_SEQUENCE:  # each pattern still names parameters of the model
        assert any(key in name for name in names), key
    D, L = sizes.width, sizes.layers
    once = (D * D + D) * 2 + L * (2 * D * D + 2 * D) + D  # bottleneck, memory projection, L cross k/v, CLS
    assert bench_train.matmul_params(model) - bench_train.per_token_params(model) == once


def test_goals_need_the_value_and_a_free_second_epoch(offline):
    _load_run()
    import bench_report

    head = {"mfu_transformer": 0.2, "ratio_vs_naive": 1.5, "ratio_vs_tsdae": None, "padding_efficiency": 0.96,
            "decode_cache_speedup_64": 3.1, "features_x_realtime": 5000.0, "features_second_epoch_feature_s": 0.01}
    goals = bench_report.goals(head)
    assert goals["mfu_transformer"]["met"] is False and goals["mfu_transformer"]["fraction_of_target"] == 0.4
    assert goals["ratio_vs_naive"]["met"] is True
    assert goals["ratio_vs_tsdae"]["met"] is None  # not measured is neither met nor missed
    assert goals["features_x_realtime"]["met"] is False  # fast, but the second epoch computed features
    assert bench_report.goals({**head, "features_second_epoch_feature_s": 0.0})["features_x_realtime"]["met"] is True


def test_tsdae_deletion_keeps_an_ordered_nonempty_subset(offline):
    _load_run()
    import bench_peer

    rng = random.Random(0)
    words = "one two three four five six seven eight nine ten".split()
    kept_counts = []
    for _ in range(200):
        out = bench_peer.delete_words(" ".join(words), rng).split()
        it = iter(words)
        assert out and all(w in it for w in out)  # a non-empty subsequence, order kept
        kept_counts.append(len(out))
    assert 3.0 < sum(kept_counts) / len(kept_counts) < 5.0  # about 40% of 10 words kept
    assert bench_peer.delete_words("single", rng) == "single"


@pytest.mark.slow
def test_subprocess_isolation_reports_each_child(offline, tmp_path):
    run = _load_run()
    run.main(["--quick", "--isolation", "subprocess", "--only", "features", "--out", str(tmp_path)])
    result = json.loads((tmp_path / "results.json").read_text())["configs"]["features"]
    assert "error" not in result, result
    assert result["peak_rss_mib"] > 0 and result["files"] == 6
