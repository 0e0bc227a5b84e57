"""The evaluation report and the sweep: binned metrics against the training loop's own evaluation, embedding
measures on hand-made data, DTW and MCD against references, and the files `seqae evaluate` / `seqae sweep` write."""

import json
import math

import pytest
import torch
import yaml

pytest.importorskip("matplotlib")
pytest.importorskip("sacrebleu")

from matplotlib.image import imread  # noqa: E402

from seqae.cli import main  # noqa: E402
from seqae.config import ConfigError, load_config_dict  # noqa: E402
from seqae.eval.embeddings import linear_probe, stratified_split  # noqa: E402
from seqae.eval.metrics import bin_label, group_by_bin  # noqa: E402
from seqae.eval.report import evaluate_run, learning_curves, read_metrics_log  # noqa: E402
from seqae.eval.speech import cepstra, dtw_mean_cost, frame_mcd  # noqa: E402
from seqae.eval.sweep import parse_sizes  # noqa: E402
from seqae.eval.text import TextItem, reconstruct_text, summarize_text  # noqa: E402
from seqae.eval.tokens import evaluate_tokens  # noqa: E402
from seqae.frontend.features import FeatureExtractor  # noqa: E402
from seqae.runs import load_run  # noqa: E402
from seqae.tasks.speech import SpeechTask  # noqa: E402
from seqae.train import pretrain  # noqa: E402

TEXT = {
    "tokenizer": {"vocab_size": 120},
    "model": {"embed_dim": 16, "hidden_dim": 16, "decoder_dim": 24, "bottleneck_dim": 8, "dropout": 0.0},
    "train": {"max_steps": 30, "warmup_steps": 3, "lr": 0.01, "log_every": 5, "eval_every": 15,
              "checkpoint_every": 30, "progress": False, "threads": 1},
}


def text_data(repo, heldout):
    return {"train": str(repo / "data/fortunes/train.txt"), "heldout": str(heldout), "max_train_sentences": 120,
            "max_len": 24, "max_tokens": 512, "eval_sentences": 8}


@pytest.fixture(scope="module")
def text_run(request, tmp_path_factory):
    """(run_dir, labelled jsonl): a tiny text run and 24 held-out sentences labelled short/long."""
    repo, folder = request.config.rootpath, tmp_path_factory.mktemp("report")
    lines = (repo / "data/fortunes/heldout.txt").read_text().splitlines()[:24]
    heldout = folder / "heldout.txt"
    heldout.write_text("\n".join(lines) + "\n")
    pretrain(load_config_dict({**TEXT, "data": text_data(repo, heldout)}), folder / "run")
    labelled = folder / "labelled.jsonl"
    labelled.write_text("".join(json.dumps({"text": s, "label": "long" if len(s.split()) > 8 else "short"}) + "\n"
                                for s in lines))
    return folder / "run", labelled


def png_size(path):
    return imread(path).shape[1::-1]  # (width, height)


# ---- bins, text scores


def test_length_bins():
    bins = ((1, 10), (11, 20), (21, 40), (41, 80))
    assert [bin_label(n, bins) for n in (1, 10, 11, 20, 21, 40, 41, 80, 81)] == \
        ["1–10", "1–10", "11–20", "11–20", "21–40", "21–40", "41–80", "41–80", ">80"]
    with pytest.raises(ValueError, match="below the first bin"):
        bin_label(0, bins)
    groups = group_by_bin([5, 30, 3, 100], bins)
    assert groups == {"1–10": [0, 2], "11–20": [], "21–40": [1], "41–80": [], ">80": [3]}


def test_summary_rows_and_bleu():
    items = [TextItem(length=3, correct=4, total=4, exact=True, reference="the cat sat", hypothesis="the cat sat"),
             TextItem(length=12, correct=3, total=13, exact=False, reference="a b c d e f g h i j k l",
                      hypothesis="a b c x")]
    rows = {r["bin"]: r for r in summarize_text(items)}
    assert rows["1–10"] == {"bin": "1–10", "sequences": 1, "token_accuracy": 1.0, "exact_match": 1.0,
                            "bleu": pytest.approx(100.0)}
    empty = {"bin": "21–40", "sequences": 0, "token_accuracy": None, "exact_match": None, "bleu": None}
    assert rows["21–40"] == empty
    assert rows["all"]["token_accuracy"] == 7 / 17 and rows["all"]["exact_match"] == 0.5
    assert rows["11–20"]["bleu"] < 100


def test_binned_reconstruction_agrees_with_the_training_evaluation(text_run):
    run = load_run(text_run[0])
    sentences = [json.loads(line)["text"] for line in text_run[1].read_text().splitlines()]
    items = reconstruct_text(run, sentences, batch_size=5)
    seqs = [[run.tokenizer.bos_id, *run.tokenizer.encode(s)[:22], run.tokenizer.eos_id] for s in sentences]
    reference = evaluate_tokens(run.model, seqs, max_len=run.config.data.max_len)
    overall = summarize_text(items)[-1]
    assert overall["sequences"] == len(sentences)
    assert overall["token_accuracy"] == pytest.approx(reference["token_accuracy"])
    assert overall["exact_match"] == pytest.approx(reference["exact_match"])
    assert [it.length for it in items] == [len(s) - 2 for s in seqs]
    assert [it.hypothesis for it in items] == run.reconstruct(sentences)


# ---- embeddings


def test_stratified_split_and_linear_probe_on_separable_data():
    labels = ["a"] * 10 + ["b"] * 6 + ["c"] * 3 + ["d"]
    train, test = stratified_split(labels, test_fraction=0.3, seed=1)
    assert sorted(train + test) == list(range(20)) and not set(train) & set(test)
    assert [sum(labels[i] == c for i in test) for c in "abcd"] == [3, 2, 1, 0]  # the single "d" stays in train
    assert (train, test) == stratified_split(labels, test_fraction=0.3, seed=1)
    centres = {"a": [4.0, 0, 0], "b": [0, 4.0, 0], "c": [0, 0, 4.0], "d": [-4.0, 0, 0]}
    gen = torch.Generator().manual_seed(0)
    z = torch.tensor([centres[c] for c in labels]) + 0.5 * torch.randn(20, 3, generator=gen)  # (N, Z)
    probe = linear_probe(z, labels, seed=1)
    assert probe == {"accuracy": 1.0, "majority_baseline": 0.5, "train": 14, "test": 6, "classes": 4}
    assert linear_probe(z[:3], ["a", "b", "c"]) is None  # no class has a second item to test on
    # Ten pairs: ceil(0.3 · 20) = 6 test items would be fewer than the classes, which sklearn refuses; one each.
    pairs = [k // 2 for k in range(20)]
    assert [sum(pairs[i] == c for i in stratified_split(pairs)[1]) for c in range(10)] == [1] * 10
    assert stratified_split([(1, "x"), "y", 2, (1, "x")], seed=3)[1] in ([0], [3])  # tuples, mixed types
    assert stratified_split([]) == ([], [])


# ---- speech measures


def brute_force_dtw(cost):
    n, m = cost.shape
    best = {(0, 0): (float(cost[0, 0]), 1)}
    for i in range(n):
        for j in range(m):
            if (i, j) == (0, 0):
                continue
            prev = [best[p] for p in ((i - 1, j - 1), (i - 1, j), (i, j - 1)) if p in best]
            total, steps = min(prev, key=lambda p: p[0])
            best[i, j] = (total + float(cost[i, j]), steps + 1)
    total, steps = best[n - 1, m - 1]
    return total / steps


@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (4, 1), (6, 9), (9, 6)])
def test_dtw_matches_a_slow_reference(shape):
    cost = torch.rand(shape, generator=torch.Generator().manual_seed(sum(shape)))
    assert dtw_mean_cost(cost) == pytest.approx(brute_force_dtw(cost), rel=1e-12)
    same = torch.rand(7, 3)
    pairwise = torch.cdist(same, torch.repeat_interleave(same, 2, dim=0))  # the same series, each frame twice
    assert dtw_mean_cost(pairwise) == pytest.approx(0.0, abs=1e-6)


def test_mel_cepstral_distortion_scale_and_feature_kinds():
    a = torch.zeros(5, 12)
    b = a.clone()
    b[:, 3] = 0.1
    expected = 10 / math.log(10) * math.sqrt(2 * 0.1 ** 2)  # the textbook MCD of one coefficient off by 0.1
    torch.testing.assert_close(frame_mcd(a, b), torch.full((5,), expected))
    wav = torch.randn(4000, generator=torch.Generator().manual_seed(0)) * 0.1
    logmel = FeatureExtractor(kind="logmel", n_mels=24)(wav)  # (T, 24)
    mfcc = FeatureExtractor(kind="mfcc", n_mels=24, n_mfcc=13)(wav)  # (T, 13), the DCT of the same log-Mel
    torch.testing.assert_close(cepstra(logmel, "logmel", 24), cepstra(mfcc, "mfcc", 24), rtol=1e-4, atol=1e-4)


# ---- learning curves and the whole report


def test_metrics_log_bad_lines_are_counted(tmp_path):
    log = tmp_path / "metrics.jsonl"
    log.write_text('{"step": 1, "loss": 3.0}\n{"step": 2, "loss": 2.0}\n{"step": 2, "eval": "heldout", "loss": 2.5,'
                   ' "token_accuracy": 0.3}\nnot json\n{"step": 3, "skipped": "non-finite"}\n{"eval": "final"}\n')
    records, bad = read_metrics_log(log)
    assert bad == [4] and len(records) == 5
    train, evals = learning_curves(records)
    assert train == {"train loss": [(1, 3.0), (2, 2.0)], "heldout loss (eval)": [(2, 2.5)]}
    assert evals == {"heldout token_accuracy": [(2, 0.3)]}
    # the final evaluation (all sequences, split-prefixed keys) ends the curves
    records.append({"eval": "final", "step": 3, "heldout_exact_match": 0.1, "heldout_loss": 2.4,
                    "train_exact_match": 0.9, "heldout_sequences": 320, "ap_z": 0.5})
    train, evals = learning_curves(records)
    assert train["heldout loss (eval)"] == [(2, 2.5), (3, 2.4)]
    assert evals == {"heldout token_accuracy": [(2, 0.3)], "heldout exact_match": [(3, 0.1)],
                     "heldout ap_z": [(3, 0.5)], "train exact_match": [(3, 0.9)]}


def test_evaluate_text_run_writes_report_and_figures(text_run, tmp_path, capsys):
    run_dir, labelled = text_run
    out = tmp_path / "report"
    assert main(["evaluate", str(run_dir), "--data", str(labelled), "--out", str(out), "--no-tsne"]) == 0
    assert "reconstruction: token_accuracy" in capsys.readouterr().out
    report = (out / "report.md").read_text()
    for section in ("## Reconstruction", "| 1–10 |", "| all |", "### Examples", "## Embeddings", "### z by label",
                    "probe accuracy (test)", "precision@1", "## Learning curves"):
        assert section in report
    result = json.loads((out / "report.json").read_text())
    assert result["items"] == 24 and set(result["embeddings"]["label"]) >= {"ap", "probe", "precision@1"}
    figures = [result["reconstruction_figure"], *result["maps"], result["learning_curves"]]
    assert result["maps"] == ["embedding_map_pca.png"]
    for name in figures:
        assert f"({name})" in report and png_size(out / name) == (800, 500)
    assert not (run_dir / "report.md").exists()  # --out given: the run directory is left alone


def test_evaluate_needs_data_when_the_run_has_no_heldout_file(text_run, tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = yaml.safe_load((text_run[0] / "config.yaml").read_text())
    config["data"]["heldout"] = None
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    for name in ("tokenizer.model", "checkpoints"):
        (run_dir / name).symlink_to(text_run[0] / name)
    assert main(["evaluate", str(run_dir)]) == 2
    assert "give --data FILE" in capsys.readouterr().err


def test_evaluate_speech_run(request, tmp_path):
    repo = request.config.rootpath
    fixture = repo / "data/espeak_words"
    config = load_config_dict({
        "task": "speech",
        "data": {"train": str(fixture / "train/manifest.jsonl"), "heldout": str(fixture / "test/manifest.jsonl"),
                 "max_len": 200, "max_tokens": 2000},
        "features": {"n_mels": 24},
        "model": {"embed_dim": 16, "hidden_dim": 16, "decoder_dim": 32, "prenet_dim": 16, "bottleneck_dim": 8,
                  "pooling": "mean", "dropout": 0.0},
        "train": {"max_steps": 8, "threads": 1, "progress": False, "log_every": 2, "eval_every": 4,
                  "checkpoint_every": 8, "warmup_steps": 2}})
    pretrain(config, tmp_path / "run")
    result = evaluate_run(tmp_path / "run", tsne=False)
    run = load_run(tmp_path / "run")
    task = SpeechTask(run.config, run.run_dir)  # the training loop's evaluation, with the run's weights
    task.model.load_state_dict(run.model.state_dict())
    overall = result["reconstruction"][-1]
    assert (result["items"], overall["sequences"], run.step) == (8, 8, 8)
    assert overall["mse"] == pytest.approx(task.evaluate()["heldout"]["mse"], rel=1e-4)  # the training loop's MSE
    assert overall["mcd"] > 0 and overall["mcd_dtw"] > 0 and overall["length_ratio"] > 0
    assert set(result["embeddings"]) == {"label", "speaker"}
    assert {"ap", "ap_mean_frames", "ap_downsampled", "probe", "precision@1"} <= set(result["embeddings"]["label"])
    report = (tmp_path / "run/report.md").read_text()
    for section in ("## Reconstruction", "mcd_dtw", "### z by label", "### z by speaker", "## Learning curves"):
        assert section in report
    for name in ("reconstruction_by_length.png", "embedding_map_pca.png", "learning_curves.png"):
        assert png_size(tmp_path / "run" / name) == (800, 500)
    other = evaluate_run(tmp_path / "run", data=fixture / "train/manifest.jsonl", out=tmp_path / "train", limit=6,
                         tsne=False)  # --data replaces the held-out manifest
    assert (other["data"], other["items"]) == (str(fixture / "train/manifest.jsonl"), 6)


# ---- sweep


def test_parse_sizes():
    assert parse_sizes("32, 64,128") == [32, 64, 128]
    for bad, message in (("32,x", "'x' is not an integer"), ("0", "not positive"), ("8,8", "repeated")):
        with pytest.raises(ConfigError, match=message):
            parse_sizes(bad)


def test_sweep_trains_each_size_and_draws_the_comparison(request, text_run, tmp_path, capsys):
    repo = request.config.rootpath
    heldout = text_run[0].parent / "heldout.txt"
    config = tmp_path / "recipe.yaml"
    config.write_text(yaml.safe_dump({**TEXT, "data": {**text_data(repo, heldout), "max_train_sentences": 40}}))
    out = tmp_path / "sweep"
    assert main(["sweep", str(config), "--bottleneck", "4,16", "--set", "train.max_steps=6",
                 "--set", "train.eval_every=0", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "sweep.json").read_text())
    assert [r["bottleneck"] for r in results] == [4, 16]
    for r in results:
        saved = yaml.safe_load((out / f"bottleneck_{r['bottleneck']}" / "config.yaml").read_text())
        assert saved["model"]["bottleneck_dim"] == r["bottleneck"] and saved["train"]["max_steps"] == 6
        overall = r["by_length"][-1]
        assert overall["bin"] == "all" and overall["sequences"] == 8  # data.eval_sentences
        assert f"bottleneck {r['bottleneck']}: token_accuracy {overall['token_accuracy']:.4g}" in printed
    sweep_md = (out / "sweep.md").read_text()
    assert "## token_accuracy" in sweep_md and "| length | 4 | 16 |" in sweep_md and "![sweep](sweep.png)" in sweep_md
    assert png_size(out / "sweep.png") == (800, 500)
