"""Anomaly scores, search, compression and interpolation on a tiny trained text run, and their reference checks."""

import itertools

import numpy as np
import pytest
import torch

from seqae.apps import (
    anomaly,
    compress,
    decompress,
    dequantize,
    interpolate,
    quantize,
    read_texts,
    roc_auc,
    roc_curve,
    sequence_nll,
)
from seqae.cli import main
from seqae.config import load_config_dict
from seqae.data.text import CorpusError
from seqae.eval.embeddings import nearest, precision_at_k
from seqae.eval.tokens import evaluate_tokens
from seqae.runs import load_run
from seqae.train import pretrain

GERMAN = ["Ich kann es auch gerne selbst machen.", "Das Wetter ist heute sehr schön.",
          "Wir fahren morgen mit dem Zug nach Berlin.", "Kannst du mir bitte das Salz geben?"]


def tiny_text_config(repo, heldout):
    return load_config_dict({
        "data": {"train": str(repo / "data/fortunes/train.txt"), "heldout": str(heldout),
                 "max_train_sentences": 120, "max_len": 24, "max_tokens": 512, "eval_sentences": 8},
        "tokenizer": {"vocab_size": 120},
        "model": {"embed_dim": 16, "hidden_dim": 16, "decoder_dim": 24, "bottleneck_dim": 8, "dropout": 0.0},
        "train": {"max_steps": 30, "warmup_steps": 3, "lr": 0.01, "log_every": 5, "eval_every": 0,
                  "checkpoint_every": 30, "progress": False, "threads": 1},
    })


@pytest.fixture(scope="module")
def sentences(request):
    lines = (request.config.rootpath / "data/fortunes/heldout.txt").read_text().splitlines()
    return lines[:20]


@pytest.fixture(scope="module")
def run_dir(request, tmp_path_factory, sentences):
    folder = tmp_path_factory.mktemp("apps")
    heldout = folder / "heldout.txt"
    heldout.write_text("\n".join(sentences) + "\n")
    pretrain(tiny_text_config(request.config.rootpath, heldout), folder / "run")
    return folder / "run"


@pytest.fixture(scope="module")
def run(run_dir):
    return load_run(run_dir)


# ---- AUC, ROC, nearest neighbours: against slow references and hand-made data


def brute_force_auc(neg, pos):
    pairs = list(itertools.product(neg, pos))
    return sum(1.0 if p > n else 0.5 if p == n else 0.0 for n, p in pairs) / len(pairs)


@pytest.mark.parametrize("seed", range(6))
def test_roc_auc_matches_a_brute_force_pair_count(seed):
    gen = torch.Generator().manual_seed(seed)
    n, m = int(torch.randint(1, 30, (1,), generator=gen)), int(torch.randint(1, 30, (1,), generator=gen))
    neg = torch.randint(0, 8, (n,), generator=gen).float()  # few distinct values: many ties
    pos = torch.randint(2, 10, (m,), generator=gen).float()
    assert roc_auc(neg, pos) == pytest.approx(brute_force_auc(neg.tolist(), pos.tolist()), abs=1e-12)
    fpr, tpr = roc_curve(neg, pos)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)
    assert float(torch.trapezoid(tpr, fpr)) == pytest.approx(roc_auc(neg, pos), abs=1e-12)  # ties: the diagonal


def test_roc_auc_extremes_and_bad_input():
    assert roc_auc([1, 2], [3, 4]) == 1.0 and roc_auc([3, 4], [1, 2]) == 0.0 and roc_auc([1, 1], [1]) == 0.5
    with pytest.raises(ValueError, match="both sets"):
        roc_auc([], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        roc_auc([float("nan")], [1.0])
    with pytest.raises(ValueError, match="roc_curve: needs scores of both sets"):
        roc_curve([1.0], [])
    inf = float("inf")  # sklearn rejects infinities; only the order of scores counts, so they are kept
    assert roc_auc([-inf, 0.0], [inf, 0.0]) == 0.875
    torch.testing.assert_close(roc_curve([-inf, 0.0], [inf, 0.0])[1], torch.tensor([0.0, 0.5, 1.0, 1.0],
                                                                                   dtype=torch.float64))


def test_nearest_and_precision_at_k_on_hand_made_embeddings():
    z = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.8, 0.2], [0.0, 1.0], [0.1, 0.9], [0.3, 0.7]])  # (N, Z)
    labels = ["a", "a", "a", "b", "b", "a"]  # the last "a" sits in the b cluster
    scores, order = nearest(z, z, 2, exclude_self=True)
    assert order.tolist() == [[1, 2], [0, 2], [1, 0], [4, 5], [3, 5], [4, 3]]
    assert bool((scores[:, 0] >= scores[:, 1]).all())
    # k = 1: items 0-4 find their own class; item 5's nearest is 4 ("b")
    assert precision_at_k(z, labels, 1) == pytest.approx(5 / 6)
    # k = 2: 0, 1, 2 score 2/2; 3 -> (4 b, 5 a) 1/2; 4 -> (3 b, 5 a) 1/2; 5 -> (4 b, 3 b) 0/2
    assert precision_at_k(z, labels, 2) == pytest.approx((1 + 1 + 1 + 0.5 + 0.5 + 0) / 6)
    tied = torch.ones(4, 3)  # all identical: ties go to the lower index
    assert nearest(tied, tied[:1], 3)[1].tolist() == [[0, 1, 2]]


def test_quantisation_error_is_bounded():
    z = torch.randn(50, 16) * torch.linspace(0.01, 10, 16)  # dimensions on very different scales
    int8 = quantize(z, "int8")
    assert int8["q"].dtype == np.int8 and int8["scale"].shape == (16,)
    error = (dequantize(int8) - z).abs()  # (N, Z)
    assert bool((error <= torch.from_numpy(int8["scale"]) / 2 + 1e-6).all())  # half a step per dimension
    half = dequantize(quantize(z, "float16"))
    torch.testing.assert_close(half, z, rtol=2 ** -11, atol=1e-7)
    torch.testing.assert_close(dequantize(quantize(z, "none")), z, rtol=0, atol=0)
    assert bool((dequantize(quantize(torch.zeros(3, 2), "int8")) == 0).all())  # all-zero dimension: no NaN
    with pytest.raises(ValueError, match="int4"):
        quantize(z, "int4")


def test_read_texts_counts_skips_and_names_bad_lines(tmp_path):
    good = tmp_path / "a.txt"
    good.write_text("one\n\n  two  \n")
    texts = read_texts(good)
    assert (texts.texts, texts.line_numbers, texts.skipped_empty, texts.labels) == (["one", "two"], [1, 3], 1, None)
    assert read_texts(good, keep_empty=True).texts == ["one", "", "two"]
    labelled = tmp_path / "b.jsonl"
    labelled.write_text('{"text": "hi", "label": 1}\n{"text": "yo", "label": "x"}\n')
    assert read_texts(labelled).labels == ["1", "x"]
    for name, body, message in (("c.txt", b"ok\n\xff\n", r"c.txt:2: not valid UTF-8"),
                                ("d.jsonl", b'{"text": "a"}\n{"text": \n', r"d.jsonl:2: not valid JSON"),
                                ("e.jsonl", b'{"txt": "a"}\n', r"e.jsonl:1: .*'text'"),
                                ("f.jsonl", b'{"text": "a", "label": 1}\n{"text": "b"}\n', r"f.jsonl:2: no 'label'")):
        (tmp_path / name).write_bytes(body)
        with pytest.raises(CorpusError, match=message):
            read_texts(tmp_path / name)


# ---- on the trained run


def test_sequence_nll_is_the_teacher_forced_loss_of_each_sentence(run, sentences):
    nll = sequence_nll(run, sentences[:5], batch_size=2)  # batches with padding
    tokens, lengths = run.batch(sentences[:5])
    for i in range(5):
        single = evaluate_tokens(run.model, [tokens[i, : lengths[i]].tolist()], max_len=run.config.data.max_len)
        assert float(nll[i]) == pytest.approx(single["loss"], rel=1e-5)


def test_anomaly_command_prints_the_auc_of_its_scores(run, run_dir, sentences, tmp_path, capsys):
    data, ood = tmp_path / "in.txt", tmp_path / "ood.txt"
    data.write_text("\n".join(sentences) + "\n")
    ood.write_text("\n".join(GERMAN) + "\n")
    scores, plot = tmp_path / "scores.tsv", tmp_path / "roc.png"
    assert main(["anomaly", str(run_dir), "--data", str(data), "--ood", str(ood), "--scores", str(scores),
                 "--plot", str(plot), "--top", "2"]) == 0
    out = capsys.readouterr().out
    rows = [line.split("\t") for line in scores.read_text().splitlines()[1:]]
    assert len(rows) == len(sentences) + len(GERMAN)
    neg = [float(r[2]) for r in rows if r[0] == "data"]
    pos = [float(r[2]) for r in rows if r[0] == "ood"]
    assert f"ROC AUC (out-of-domain vs in.txt, by score): {roc_auc(neg, pos):.4f}" in out
    assert anomaly(run, sentences, GERMAN).auc == pytest.approx(roc_auc(neg, pos), abs=1e-5)
    worst = max(rows[: len(sentences)], key=lambda r: float(r[2]))
    assert f"line {worst[1]}: {worst[3]}" in out.split("most anomalous")[1].splitlines()[1]
    from matplotlib.image import imread

    assert imread(plot).shape[:2] == (500, 800)


def test_search_finds_each_index_sentence_first(run_dir, sentences, tmp_path, capsys):
    index = tmp_path / "index.txt"
    index.write_text("\n".join(sentences) + "\n")
    queries = tmp_path / "queries.txt"
    queries.write_text(f"{sentences[3]}\n{sentences[7]}\n")
    assert main(["search", str(run_dir), "--index", str(index), "--query-file", str(queries), "-k", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"query: {sentences[3]}" and lines[1].endswith(f"line 4: {sentences[3]}")
    assert lines[4] == f"query: {sentences[7]}" and lines[5].endswith(f"line 8: {sentences[7]}")
    similarities = [float(line.split()[1]) for line in lines[1:4]]
    assert similarities == sorted(similarities, reverse=True) and similarities[0] == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(SystemExit):  # --query and --query-file exclude each other
        main(["search", str(run_dir), "--index", str(index), "--query", "a", "--query-file", str(queries)])


def test_compress_then_decompress_gives_the_reconstructions(run, run_dir, sentences, tmp_path, capsys):
    data = tmp_path / "data.txt"
    data.write_text("\n".join(sentences) + "\n")
    packed, out = tmp_path / "z.npz", tmp_path / "out.txt"
    assert main(["compress", str(run_dir), "--data", str(data), "--out", str(packed)]) == 0
    assert main(["decompress", str(run_dir), str(packed), str(out)]) == 0
    assert out.read_text().splitlines() == run.reconstruct(sentences)
    printed = capsys.readouterr().out
    assert f"text {len(data.read_bytes())} bytes -> {packed.stat().st_size} bytes" in printed
    small = compress(run, sentences, tmp_path / "z8.npz", mode="int8")
    assert small["z_bytes"] < packed.stat().st_size and 0 <= small["token_accuracy"] <= 1
    assert len(decompress(run, tmp_path / "z8.npz")) == len(sentences)


def test_decompress_refuses_a_file_of_another_model(run_dir, sentences, tmp_path, capsys):
    other = load_run(run_dir)
    compress(other, sentences[:3], tmp_path / "z.npz", check=False)
    with torch.no_grad():
        next(other.model.parameters()).add_(0.1)  # same run directory, different weights
    with pytest.raises(ValueError, match="another model"):
        decompress(other, tmp_path / "z.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    assert main(["decompress", str(run_dir), str(tmp_path / "junk.npz"), str(tmp_path / "o.txt")]) == 2
    assert "not a seqae compress file" in capsys.readouterr().err


def test_interpolation_ends_are_the_reconstructions(run, run_dir, sentences, capsys):
    a, b = sentences[0], sentences[1]
    points = interpolate(run, a, b, steps=3)
    assert [t for t, _ in points] == [0.0, 0.5, 1.0]
    assert [points[0][1], points[-1][1]] == run.reconstruct([a, b])
    assert interpolate(run, a, b, steps=3, method="slerp")[0][1] == points[0][1]
    with pytest.raises(ValueError, match="steps"):
        interpolate(run, a, b, steps=1)
    assert main(["interpolate", str(run_dir), a, b, "--steps", "4"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == ["0.00", "0.33", "0.67", "1.00"]
