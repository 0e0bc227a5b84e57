"""The fine-tuning recipes: their data preparation, their shipped configs, and each debug run end to end."""

from __future__ import annotations

import collections
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
    for file in ("config.yaml", "debug.yaml"):
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
    assert (out / "train.de.txt").read_text(encoding="utf-8").splitlines() == [s.split("\t")[0] for s in
                                                                                splits["train"]]


def test_trans_de_en_errors_clearly_without_data(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "recipes/trans_de_en/prepare.py"), "--out", str(tmp_path),
                             "--source", str(tmp_path / "missing")], capture_output=True, text=True)
    assert result.returncode != 0
    assert "trans-de-en" in result.stderr and "--pairs FILE" in result.stderr
    bad = tmp_path / "bad.tsv"
    bad.write_text("Ja.\tYes.\nkein Tab\n", encoding="utf-8")
    result = subprocess.run([sys.executable, str(REPO / "recipes/trans_de_en/prepare.py"), "--out", str(tmp_path),
                             "--pairs", str(bad)], capture_output=True, text=True)
    assert result.returncode != 0 and f"{bad}:2: expected 'German<TAB>English'" in result.stderr


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
    run_recipe("trans_de_en", "--out", str(out), "--pairs", str(tiny_pairs(tmp_path / "pairs.tsv")))
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("bleu_pretrained", "bleu_scratch", "chrf_pretrained", "chrf_scratch"):
        assert 0.0 <= metrics[key] <= 100.0
    assert metrics["test_sentences"] == 40 and metrics["labelled_pairs"] == 50  # half of the 100 train pairs
    for init in ("pretrained", "scratch"):
        assert json.loads((out / init / "metrics.json").read_text())["init"] == init
    assert (out / "export" / "tokenizer.model").is_file()
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


@pytest.mark.slow
@needs_espeak
def test_espeak_asr_debug_end_to_end(tmp_path):
    out = tmp_path / "asr"
    run_recipe("espeak_asr", "--out", str(out))
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("wer_pretrained", "wer_scratch", "cer_pretrained", "cer_scratch"):
        assert metrics[key] >= 0.0
    assert metrics["test_utterances"] == 6 and metrics["labelled_utterances"] == 12
    train = [json.loads(line) for line in (out / "data" / "train.jsonl").read_text().splitlines()]
    test = [json.loads(line) for line in (out / "data" / "test.jsonl").read_text().splitlines()]
    assert not {r["speaker"] for r in train} & {r["speaker"] for r in test}  # speaker-disjoint
    assert not {r["text"] for r in train} & {r["text"] for r in test}
    assert (out / "export" / "features.json").is_file()
