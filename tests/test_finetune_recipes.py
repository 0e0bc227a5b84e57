"""The fine-tuning recipes: their data preparation, their shipped configs, and each debug run end to end."""

from __future__ import annotations

import collections
import gzip
import importlib.util
import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import REPO, needs_espeak, run_recipe

from seqae.config import load_config
from seqae.finetune import load_finetune_config


def recipe_module(name: str):
    """A recipe's prepare.py, loaded from its path (recipes are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"{name}_prepare", REPO / "recipes" / name / "prepare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["espeak_asr", "trans_de_en"])
def test_shipped_configs_are_valid(name):
    here = REPO / "recipes" / name
    task = {"espeak_asr": "asr", "trans_de_en": "translate"}[name]
    for file in ("config.yaml", "debug.yaml", "topline.yaml")[: 3 if name == "espeak_asr" else 2]:
        config = load_finetune_config(here / file)
        assert config.task == task and config.encoder is not None
        scratch = load_finetune_config(here / file, ["encoder=null", "architecture=export"])
        assert scratch.pretrained is False and scratch.train == config.train  # same budget and seed
    assert load_config(here / "pretrain.yaml").task == {"asr": "speech", "translate": "text"}[task]
    assert "label_fraction: 0.1" in (here / "config.yaml").read_text()


# ---------------------------------------------------------------------------------------------------------------------
# trans_de_en


DING = """# Version :: test
Abend {m} | Guten Abend! :: evening | Good evening!
Hund {m} [zool.] | Der Hund bellt sehr laut. | Er gab jdm. etw. :: dog | The dog barks very loudly. | He gave sb. sth.
Noch ist nicht aller Tage Abend.; Man soll nicht loben. :: It\u2019s not over until it\u2019s over.; It ain't over.
Das ist gut. | Zwei Teile :: That is good.
Wir spielen um nichts. :: We play for love. [Br.]
Sie ist nicht da / weg. :: She is not here.
Ich gehe jetzt nach Hause. :: I am going home now.
"""


def test_dictionary_lines_become_aligned_sentence_pairs(tmp_path):
    prepare = recipe_module("trans_de_en")
    source = tmp_path / "de-en"
    source.write_text(DING, encoding="utf-8")
    stats: collections.Counter = collections.Counter()
    pairs = prepare.dictionary_pairs(source, stats)
    assert pairs == [("Der Hund bellt sehr laut.", "The dog barks very loudly."),
                     ("Noch ist nicht aller Tage Abend.", "It's not over until it's over."),
                     ("Wir spielen um nichts.", "We play for love."),
                     ("Ich gehe jetzt nach Hause.", "I am going home now.")]
    assert stats["lines_with_unaligned_alternatives"] == 1 and stats["lines"] == 7
    out = tmp_path / "data"
    prepare.main(["--out", str(out), "--source", str(source), "--test", "1", "--heldout", "1"])
    splits = {name: (out / f"{name}.tsv").read_text(encoding="utf-8").splitlines() for name in ("train", "heldout",
                                                                                                  "test")}
    assert [len(v) for v in splits.values()] == [2, 1, 1]
    assert sorted(itertools.chain(*splits.values())) == sorted(f"{de}\t{en}" for de, en in pairs)
    for side, column in (("source", 0), ("target", 1)):
        assert (out / f"train.{side}.txt").read_text(encoding="utf-8").splitlines() == [
            s.split("\t")[column] for s in splits["train"]]


def test_pretraining_corpora_hold_no_test_or_heldout_sentence(tmp_path):
    """A training pair's target (or a --target-text line) that is also a test or heldout target is left out of
    the monolingual corpora, compared without case and punctuation; the labelled pairs keep it."""
    pairs = tmp_path / "pairs.tsv"
    rows = [(f"Satz Nummer {i}.", f"Sentence number {i}.") for i in range(20)]
    rows += [(f"Anderer Satz {i}.", f"sentence number {i}") for i in range(3)]  # targets equal to others'
    pairs.write_text("".join(f"{de}\t{en}\n" for de, en in rows), encoding="utf-8")
    extra = tmp_path / "more.txt"
    extra.write_text("".join(f"SENTENCE NUMBER {i}!\n" for i in range(20)) + "Something else.\n", encoding="utf-8")
    out = tmp_path / "data"
    recipe_module("trans_de_en").main(["--out", str(out), "--pairs", str(pairs), "--target-text", str(extra),
                                       "--test", "5", "--heldout", "5"])
    key = lambda s: " ".join("".join(c if c.isalnum() else " " for c in s.lower()).split())  # noqa: E731
    unseen = [line.split("\t") for name in ("test", "heldout")
              for line in (out / f"{name}.tsv").read_text(encoding="utf-8").splitlines()]
    for side, column in (("source", 0), ("target", 1)):
        corpus = (out / f"pretrain.{side}.txt").read_text(encoding="utf-8").splitlines()
        assert not {key(s) for s in corpus} & {key(pair[column]) for pair in unseen}
    report = json.loads((out / "prepare.json").read_text())
    target = (out / "pretrain.target.txt").read_text(encoding="utf-8").splitlines()
    assert "Something else." in target and len(target) == report["pretrain_target_lines"]
    unseen_targets = {key(pair[1]) for pair in unseen}
    assert report["target_text_more.txt_lines_dropped_as_test_or_heldout"] == len(unseen_targets) >= 5
    assert len((out / "train.tsv").read_text(encoding="utf-8").splitlines()) == 13  # labelled pairs keep all


def test_trans_de_en_errors_clearly_without_data(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "recipes/trans_de_en/prepare.py"), "--out", str(tmp_path),
                             "--source", str(tmp_path / "missing")], capture_output=True, text=True)
    assert result.returncode != 0
    assert "trans-de-en" in result.stderr and "--pairs FILE" in result.stderr
    bad = tmp_path / "bad.tsv"
    bad.write_text("Ja.\tYes.\nkein Tab\n", encoding="utf-8")
    result = subprocess.run([sys.executable, str(REPO / "recipes/trans_de_en/prepare.py"), "--out", str(tmp_path),
                             "--pairs", str(bad)], capture_output=True, text=True)
    assert result.returncode != 0 and f"{bad}:2: 1 column; expected 'source<TAB>target'" in result.stderr
    wide = tmp_path / "wide.tsv.gz"
    with gzip.open(wide, "wt", encoding="utf-8") as f:
        f.write("".join(f"{i}\tSentence {i}.\tFrase {i}.\n" for i in range(30)))
    result = subprocess.run([sys.executable, str(REPO / "recipes/trans_de_en/prepare.py"), "--out", str(tmp_path),
                             "--pairs", str(wide)], capture_output=True, text=True)
    assert result.returncode != 0 and "3 columns; set --source-column and --target-column" in result.stderr
    result = subprocess.run([sys.executable, str(REPO / "recipes/trans_de_en/prepare.py"), "--out",
                             str(tmp_path / "wide"), "--pairs", str(wide), "--source-column", "1",
                             "--target-column", "2", "--test", "5", "--heldout", "5"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert all(line.startswith("Sentence ") and "\tFrase " in line
               for line in (tmp_path / "wide" / "train.tsv").read_text(encoding="utf-8").splitlines())


def tiny_pairs(path: Path) -> Path:
    """180 templated German-English pairs (subject x verb x object)."""
    subjects = [("Der Hund", "The dog"), ("Die Katze", "The cat"), ("Mein Vater", "My father"),
                ("Das Kind", "The child"), ("Unsere Lehrerin", "Our teacher"), ("Der Bauer", "The farmer")]
    verbs = [("sieht", "sees"), ("sucht", "is looking for"), ("mag", "likes"), ("hört", "hears"), ("ruft", "calls")]
    objects = [("den Ball", "the ball"), ("den Vogel", "the bird"), ("den Mann", "the man"),
               ("den Garten", "the garden"), ("den Zug", "the train"), ("den Nachbarn", "the neighbour")]
    lines = [f"{s} {v} {o}.\t{se} {ve} {oe}." for (s, se), (v, ve), (o, oe) in
             itertools.product(subjects, verbs, objects)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.slow
def test_trans_de_en_debug_end_to_end_on_a_pairs_file(tmp_path):
    out = tmp_path / "trans"
    run_recipe("trans_de_en", "--out", str(out), "--pairs", str(tiny_pairs(tmp_path / "pairs.tsv")),
               "--pretrain-set", "train.max_steps=20")
    metrics = json.loads((out / "metrics.json").read_text())
    settings = ("pretrained", "encoder_only", "scratch")
    for key in ["chrf_topline", "bleu_topline"] + [f"{m}_{s}" for m in ("chrf", "bleu") for s in settings]:
        assert 0.0 <= metrics[key] <= 100.0, key
    for key in (f"{m}_{s}_seeds" for m in ("chrf", "bleu") for s in settings):
        assert len(metrics[key]) == 3 and metrics[key[: -len("_seeds")]] == pytest.approx(sum(metrics[key]) / 3)
    assert metrics["test_sentences"] == 40 and metrics["labelled_pairs"] == 10  # 10% of the 100 train pairs
    assert metrics["topline_pairs"] == 100 and metrics["seeds"] == [0, 1, 2]
    runs = {name: json.loads((out / name / "metrics.json").read_text()) for name in
            ("topline", "pretrained_1", "encoder_only_1", "scratch_1")}
    assert [(r["init"], r["decoder_init"]) for r in runs.values()] == [
        ("pretrained", "pretrained"), ("pretrained", "pretrained"), ("pretrained", "scratch"), ("scratch", "scratch")]
    assert json.loads((out / "pretrain_source" / "metrics.json").read_text())["step"] == 20  # --pretrain-set
    assert (out / "export_target" / "decoder.safetensors").is_file()
    assert (out / "samples.md").read_text(encoding="utf-8").count("   - reference: ") == 5
    translated = subprocess.run([sys.executable, "-m", "seqae", "translate", str(out / "pretrained_0"),
                                 "Der Hund sieht den Ball."], capture_output=True, text=True, cwd=REPO)
    assert translated.returncode == 0 and len(translated.stdout.splitlines()) == 1, translated.stderr
    assert not (REPO / "recipes" / "trans_de_en" / "data").exists()  # nothing is written into the recipe


# ---------------------------------------------------------------------------------------------------------------------
# espeak_asr


def test_only_sentences_espeak_reads_as_written_are_kept(tmp_path):
    prepare = recipe_module("espeak_asr")
    source = tmp_path / "sentences.txt"
    source.write_text("Don't panic, it's fine.\nMr. Smith went home.\nIt costs 5 dollars.\nThe USA is big.\n"
                      "Run-time errors are fun!\nToo short.\nWhy \"quoted\" words?\nDon't panic, it's fine.\n")
    assert sorted(prepare.plain_sentences(source, seed=0)) == ["Don't panic, it's fine.", "Run-time errors are fun!"]
    assert prepare.voices(5, seed=1) == prepare.voices(5, seed=1) and len(set(prepare.voices(20, seed=1))) == 20


def test_espeak_asr_prepare_writes_manifests_from_a_librispeech_tree(tmp_path):
    root = tmp_path / "LibriSpeech"
    for split, speaker in (("train-clean-100", "19"), ("dev-clean", "84"), ("test-clean", "61")):
        chapter = root / split / speaker / "100"
        chapter.mkdir(parents=True)
        for utt in range(2):
            sf.write(chapter / f"{speaker}-100-{utt:04d}.flac", np.zeros(1600, dtype=np.float32), 16000)
        (chapter / f"{speaker}-100.trans.txt").write_text(f"{speaker}-100-0000 HELLO WORLD\n"
                                                          f"{speaker}-100-0001 IT'S ME\n")
    out = tmp_path / "manifests"
    recipe_module("espeak_asr").main(["--out", str(out), "--librispeech", str(root)])
    for split, speaker in (("train", "19"), ("heldout", "84"), ("test", "61")):
        rows = [json.loads(line) for line in (out / f"{split}.jsonl").read_text().splitlines()]
        assert [(r["text"], r["speaker"]) for r in rows] == [("HELLO WORLD", speaker), ("IT'S ME", speaker)]
    assert json.loads((out / "prepare.json").read_text())["skipped"] == 0


def test_unlabelled_sentences_come_from_the_dictionary_and_never_equal_a_used_one(tmp_path):
    prepare = recipe_module("espeak_asr")
    ding = tmp_path / "de-en"
    ding.write_text(DING, encoding="utf-8")
    assert prepare.dictionary_sentences(ding) == ["The dog barks very loudly.", "It ain't over.", "That is good.",
                                                 "She is not here.", "I am going home now."]
    assert prepare._key("The dog, barks very LOUDLY!") == prepare._key("the dog barks very loudly.")


@pytest.mark.slow
@needs_espeak
def test_espeak_asr_debug_end_to_end(tmp_path):
    out = tmp_path / "asr"
    run_recipe("espeak_asr", "--out", str(out))
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("wer_topline", "cer_topline"):
        assert 0.0 <= metrics[key]
    for fraction in ("0.02", "0.1"):
        for m, init in itertools.product(("wer", "cer"), ("pretrained", "scratch")):
            seeds = metrics[f"{m}_{init}_{fraction}_seeds"]
            assert len(seeds) == 3 and metrics[f"{m}_{init}_{fraction}"] == pytest.approx(sum(seeds) / 3)
    for m, init in itertools.product(("wer", "cer"), ("pretrained", "scratch")):
        assert len(metrics[f"{m}_frozen_{init}_0.02_seeds"]) == 3
    objectives = ("ae", "neighbours", "frames")
    assert metrics["best_objective"] in objectives
    selection = json.loads((out / "selection.json").read_text())
    assert selection["best"] == min(objectives, key=lambda o: (selection["objectives"][o]["heldout_cer"],
                                                                  selection["objectives"][o]["heldout_wer"]))
    assert all(f"dev_cer_{r}_{o}_0.02" in metrics for r in ("full", "frozen") for o in (*objectives, "scratch"))
    assert len(metrics["frozen_layer_weights_0.02"]) == 2 and metrics["labelled_utterances_0.02"] >= 1
    rows = {split: [json.loads(line) for line in (out / "data" / f"{split}.jsonl").read_text().splitlines()]
            for split in ("train", "heldout", "test", "unlabelled")}
    speakers = {split: {r["speaker"] for r in rs} for split, rs in rows.items()}
    texts = {split: {r["text"] for r in rs} for split, rs in rows.items()}
    for a, b in itertools.combinations(rows, 2):  # speakers and sentences disjoint across all four
        assert not speakers[a] & speakers[b] and not texts[a] & texts[b], (a, b)
    pretrain_rows = (out / "data" / "pretrain.jsonl").read_text().splitlines()
    assert len(pretrain_rows) == len(rows["train"]) + len(rows["unlabelled"])
    assert metrics["unlabelled_to_train_duration"] > 0
    for objective in objectives:
        assert (out / f"export_{objective}" / "features.json").is_file()
    assert "frame_prediction" in (out / "pretrain_frames" / "metrics.jsonl").read_text()
    assert "frame_prediction" not in (out / "pretrain_ae" / "metrics.jsonl").read_text()
    assert (out / "results.md").read_text().count("|") > 40
