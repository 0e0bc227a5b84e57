"""Each recipe runs end to end in debug mode on local data, the way a user runs it."""

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import run_recipe

TEXT_KEYS = ("train_exact_match", "heldout_exact_match", "heldout_token_accuracy")


@pytest.mark.slow
def test_fortunes_debug_end_to_end(tmp_path):
    out = tmp_path / "fortunes"
    run_recipe("fortunes", "--out", str(out))
    metrics = json.loads((out / "metrics.json").read_text())
    for key in TEXT_KEYS:
        assert 0.0 <= metrics[key] <= 1.0
    assert metrics["train_exact_match"] > 0.5  # it memorises most of its 64 sentences in the debug budget
    assert (out / "reconstructions.txt").read_text().count("\n") == 40  # 20 inputs, 20 reconstructions
    assert (out / "data" / "train.txt").stat().st_size > 0


@pytest.mark.slow
def test_fortunes_denoising_variant_and_the_comparison_script(repo, tmp_path):
    plain, denoise = tmp_path / "plain", tmp_path / "denoise"
    run_recipe("fortunes", "--out", str(plain), "--shipped")
    out = run_recipe("fortunes", "--out", str(denoise), "--shipped", "--denoise").stdout
    assert "span_mask (prob 1): ratio=0.3" in out
    metrics = json.loads((denoise / "metrics.json").read_text())
    assert 0.0 <= metrics["heldout_denoise_token_accuracy"] <= 1.0
    assert "noise" not in json.dumps(json.loads((plain / "metrics.json").read_text()))
    table = tmp_path / "compare.json"
    result = subprocess.run(
        [str(repo / ".venv/bin/python"), str(repo / "recipes/fortunes/compare_denoising.py"),
         "--noise", str(repo / "recipes/fortunes/noise.yaml"), "--data", str(repo / "data/fortunes/heldout.txt"),
         "--limit", "16", "--run", f"plain={plain / 'run'}", "--run", f"denoising={denoise / 'run'}",
         "--out", str(table)], cwd=repo, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| plain | heldout.txt | 16 |" in result.stdout and "| denoising | heldout.txt | 16 |" in result.stdout
    rows = json.loads(table.read_text())["results"]
    assert [r["run"] for r in rows] == ["plain", "denoising"]
    assert all(0.0 <= r[k] <= 1.0 for r in rows for k in r if k.endswith(("accuracy", "match")))


@pytest.mark.slow
def test_wikitext103_debug_from_a_local_tree_laid_out_like_the_hub(tmp_path):
    datasets = pytest.importorskip("datasets")
    tree = tmp_path / "wikitext" / "wikitext-103-raw-v1"
    tree.mkdir(parents=True)
    paragraph = (" The castle was built in 1120 @-@ 1135 . It stood on a hill above the river . "
                 "Its walls were made of local stone and were three metres thick . ")
    lines = ["", " = Castle = ", "", paragraph, "", " = = History = = ", paragraph.replace("castle", "tower")]
    datasets.Dataset.from_dict({"text": lines * 60}).to_parquet(str(tree / "train-00000-of-00002.parquet"))
    datasets.Dataset.from_dict({"text": lines * 60}).to_parquet(str(tree / "train-00001-of-00002.parquet"))
    datasets.Dataset.from_dict({"text": lines * 4}).to_parquet(str(tree / "validation-00000-of-00001.parquet"))
    datasets.Dataset.from_dict({"text": lines * 4}).to_parquet(str(tree / "test-00000-of-00001.parquet"))
    out = tmp_path / "wt"
    result = run_recipe("wikitext103", "--out", str(out), "--source", str(tree.parent))
    assert "train: 840 lines read (360 empty skipped), 240 headings dropped" in result.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    for key in TEXT_KEYS:
        assert 0.0 <= metrics[key] <= 1.0
    sentences = (out / "data" / "train.txt").read_text().splitlines()
    assert "The castle was built in 1120-1135 ." in sentences
    assert not any("=" in s for s in sentences)


def fake_wordnet(folder: Path, repo: Path) -> list[str]:
    """data.{noun,verb,adj,adv} in WordNet 3.0's layout: a licence header (lines starting with two spaces), then
    synset lines ending with `| gloss; "example"` (glosses: shipped fortunes; every third synset has an example)."""
    lines = (repo / "data/fortunes/train.txt").read_text(encoding="utf-8").splitlines()[:600]
    folder.mkdir(parents=True)
    expected = []
    for p, part in enumerate(("noun", "verb", "adj", "adv")):
        rows = ["  1 This software and database is being provided to you, the LICENSEE, by  ",
                '  2 Princeton University under the following license.  "AS IS" ']
        for k, text in enumerate(lines[p * 150: (p + 1) * 150]):
            gloss = text.replace('"', "'")
            example = f'; "{lines[(k * 7) % 600].replace(chr(34), chr(39))}"' if k % 3 == 0 else ""
            rows.append(f"{k:08d} 03 {part[0]} 01 word{k} 0 000 | {gloss}{example}  ")
            expected += [gloss] + ([example[3:-1]] if example else [])
        (folder / f"data.{part}").write_text("\n".join(rows) + "\n", encoding="latin-1")
    return list(dict.fromkeys(expected))


@pytest.mark.slow
def test_wordnet_debug_from_a_local_dict_folder(repo, tmp_path):
    expected = fake_wordnet(tmp_path / "dict", repo)
    result = run_recipe("wordnet", "--out", str(tmp_path / "out"), "--source", str(tmp_path / "dict"))
    data = tmp_path / "out/data"
    train, heldout = (data / "train.txt").read_text().splitlines(), (data / "heldout.txt").read_text().splitlines()
    assert len(heldout) == 100 and sorted(train + heldout) == sorted(expected)  # every gloss and example, once
    assert not set(train) & set(heldout)
    assert "This software" not in " ".join(train + heldout)  # the licence header is skipped
    metrics = json.loads((tmp_path / "out/metrics.json").read_text())
    for key in ("heldout_exact_match", "heldout_exact_match_le20", "heldout_token_accuracy", "train_exact_match"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["train_eval_sequences"] == 64 and metrics["heldout_sequences"] == 100
    assert "== done" in result.stdout


@pytest.mark.slow
def test_wordnet_debug_on_the_shipped_sentences(repo, tmp_path):
    run_recipe("wordnet", "--out", str(tmp_path / "out"), "--shipped")
    data = tmp_path / "out/data"
    train, heldout = (data / "train.txt").read_text().splitlines(), (data / "heldout.txt").read_text().splitlines()
    assert (len(train), len(heldout)) == (162878, 2000) and not set(train) & set(heldout)
    assert heldout == (repo / "data/wordnet/heldout.txt").read_text().splitlines()
    metrics = json.loads((tmp_path / "out/metrics.json").read_text())
    assert metrics["train_sequences"] == 200 and metrics["heldout_sequences"] == 2000  # debug: the first 200
