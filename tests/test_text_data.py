"""Reading corpora through `datasets` (offline, local files) and encoding lines into sequences."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import datasets
import huggingface_hub.constants
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from seqae.data.text import CorpusError, encode_lines, load_text_lines
from seqae.frontend.tokenizer import BOS_ID, EOS_ID, train_tokenizer

ROOT = Path(__file__).resolve().parents[1]
FORTUNES = ROOT / "data" / "fortunes"
PREPARE = ROOT / "recipes" / "fortunes" / "prepare.py"
DEBIAN_FORTUNES = Path("/usr/share/games/fortunes")
LINES = ["A day for firm decisions!", "", "   ", "Are you a turtle?", "Avoid reality at all costs."]
KEPT = ["A day for firm decisions!", "Are you a turtle?", "Avoid reality at all costs."]


@pytest.fixture(autouse=True)
def offline_hf(tmp_path, monkeypatch):
    """No hub access and a throw-away cache (datasets reads these settings at import time)."""
    home = tmp_path / "hf_home"
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", home / "datasets")
    monkeypatch.setattr(datasets.config, "HF_MODULES_CACHE", home / "modules")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(home / "hub"))


def write_parquet(path: Path, column: dict[str, list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(column), path)


def test_txt_file_counts_empty_lines(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    lines, stats = load_text_lines(str(path))
    assert lines == KEPT
    assert (stats.lines_read, stats.lines_kept, stats.empty_skipped) == (5, 3, 2)
    assert (stats.replaced_lines, stats.control_chars_lines) == (0, 0)
    assert stats.files == (str(path),) and stats.as_dict()["split"] == "train"


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_structured_files(tmp_path, suffix):
    path = tmp_path / f"corpus{suffix}"
    rows = [{"id": i, "sentence": "  " + line + " "} for i, line in enumerate(LINES)]
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif suffix == ".csv":
        path.write_text("id,sentence\n" + "".join(f'{r["id"]},"{r["sentence"]}"\n' for r in rows), encoding="utf-8")
    else:
        write_parquet(path, {"id": [r["id"] for r in rows], "sentence": [r["sentence"] for r in rows]})
    lines, stats = load_text_lines(str(path), text_column="sentence")
    assert lines == KEPT
    assert stats.empty_skipped == 2 and stats.lines_read == 5


def test_fortunes_fixture_directory_splits():
    for split, n in (("train", 6080), ("heldout", 320)):
        lines, stats = load_text_lines(str(FORTUNES), split=split)
        assert len(lines) == n == stats.lines_kept and stats.empty_skipped == 0
        assert lines == (FORTUNES / f"{split}.txt").read_text(encoding="utf-8").splitlines()
    with pytest.raises(CorpusError, match=r"no file for split 'validation'.*\['heldout', 'train'\]"):
        load_text_lines(str(FORTUNES), split="validation")


def test_fortunes_fixture_heldout_is_disjoint_from_train():
    def key(line: str) -> str:
        return " ".join(re.findall(r"[a-z0-9']+", line.casefold()))

    train = {key(line) for line in (FORTUNES / "train.txt").read_text(encoding="utf-8").splitlines()}
    heldout = [key(line) for line in (FORTUNES / "heldout.txt").read_text(encoding="utf-8").splitlines()]
    assert len(train) == 6080 and len(set(heldout)) == len(heldout) == 320
    assert not train.intersection(heldout)


@pytest.mark.skipif(not DEBIAN_FORTUNES.is_dir(), reason="Debian fortunes packages not installed")
def test_prepare_rebuilds_the_committed_fixture(tmp_path):
    run = subprocess.run(
        [sys.executable, str(PREPARE), "--out", str(tmp_path)], capture_output=True, text=True, check=True
    )
    assert "written: train=6080 heldout=320" in run.stdout
    for name in ("train.txt", "heldout.txt"):
        assert (tmp_path / name).read_bytes() == (FORTUNES / name).read_bytes()


def test_prepare_copies_the_fixture_without_debian_files(tmp_path):
    missing = tmp_path / "no-fortunes"
    run = subprocess.run(
        [sys.executable, str(PREPARE), "--out", str(tmp_path / "out"), "--source", str(missing)],
        capture_output=True, text=True, check=True,
    )
    assert f"{missing} not found" in run.stdout and "copied" in run.stdout
    for name in ("train.txt", "heldout.txt"):
        assert (tmp_path / "out" / name).read_bytes() == (FORTUNES / name).read_bytes()


def test_invalid_utf8_strict_names_file_and_line(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"first line\nsecond line\ncaf\xe9 au lait\nlast\n")
    with pytest.raises(CorpusError, match=rf"{path}:3: invalid UTF-8 byte 0xe9 at column 4"):
        load_text_lines(str(path))


def test_invalid_utf8_replace_keeps_and_counts(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"first line\ncaf\xe9 au lait\n\xff\xfe odd\nlast\n")
    lines, stats = load_text_lines(str(path), encoding_errors="replace")
    assert lines == ["first line", "caf\ufffd au lait", "\ufffd\ufffd odd", "last"]
    assert stats.replaced_lines == 2 and stats.lines_kept == 4


def test_invalid_utf8_in_csv(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(b'id,text\n1,fine\n2,"caf\xe9"\n')
    with pytest.raises(CorpusError, match=rf"{path}:3: invalid UTF-8 byte 0xe9"):
        load_text_lines(str(path))
    lines, stats = load_text_lines(str(path), encoding_errors="replace")
    assert lines == ["fine", "caf\ufffd"] and stats.replaced_lines == 1


def test_invalid_utf8_in_jsonl_cannot_be_replaced(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"text": "fine"}\n{"text": "caf\xe9"}\n')
    with pytest.raises(CorpusError, match=rf"{path}:2: invalid UTF-8 byte 0xe9 .*re-encode"):
        load_text_lines(str(path), encoding_errors="replace")
    with pytest.raises(ValueError, match="encoding_errors must be one of"):
        load_text_lines(str(path), encoding_errors="ignore")


def test_control_characters_replaced_and_counted(tmp_path):
    path = tmp_path / "ctrl.txt"
    path.write_text("bell\x07here\nkeep\ttab\nnul\x00 too\n", encoding="utf-8")
    lines, stats = load_text_lines(str(path))
    assert lines == ["bell here", "keep\ttab", "nul  too"]
    assert stats.control_chars_lines == 2


def test_missing_file_is_one_clear_line(tmp_path):
    missing = tmp_path / "nope" / "corpus.txt"
    with pytest.raises(CorpusError, match=f"corpus file not found: {missing}"):
        load_text_lines(str(missing))
    with pytest.raises(CorpusError, match="no file matches"):
        load_text_lines(str(tmp_path / "*.txt"))


def test_unsupported_or_mixed_file_types(tmp_path):
    (tmp_path / "corpus.tsv").write_text("a\tb\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=rf"unsupported file type '.tsv': {tmp_path / 'corpus.tsv'}"):
        load_text_lines(str(tmp_path / "corpus.tsv"))
    (tmp_path / "a.txt").write_text("one\n", encoding="utf-8")
    (tmp_path / "b.jsonl").write_text('{"text": "two"}\n', encoding="utf-8")
    with pytest.raises(CorpusError, match=r"must share a format, got \['.jsonl', '.txt'\]"):
        load_text_lines(str(tmp_path / "[ab].*"))


def test_hub_dataset_not_in_cache_is_one_clear_line():
    with pytest.raises(CorpusError) as info:
        load_text_lines("Salesforce/wikitext", hub_config="wikitext-103-raw-v1", split="validation")
    message = str(info.value)
    assert message.startswith("cannot load 'Salesforce/wikitext' (config 'wikitext-103-raw-v1') split 'validation'")
    assert "\n" not in message


def test_missing_column_names_existing_columns(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text('{"sentence": "hello there", "id": 1}\n', encoding="utf-8")
    with pytest.raises(CorpusError, match=r"no column 'text'; columns: \['sentence', 'id'\]"):
        load_text_lines(str(path))


def test_non_text_column_is_refused(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text('{"text": "hello"}\n{"text": null}\n', encoding="utf-8")
    lines, stats = load_text_lines(str(path))
    assert lines == ["hello"] and stats.empty_skipped == 1
    path.write_text('{"n": 1}\n{"n": 2}\n', encoding="utf-8")
    with pytest.raises(CorpusError, match="row 1 of column 'n' is int, not text"):
        load_text_lines(str(path), text_column="n")


@pytest.fixture
def wikitext_mirror(tmp_path) -> Path:
    """A local folder laid out like the hub's Salesforce/wikitext parquet files."""
    root = tmp_path / "wikitext"
    texts = {
        "train": ["", " = Valkyria Chronicles III = \n", "", " Senjou no Valkyria 3 is a game . \n"],
        "validation": ["", " = Homarus gammarus = \n", " Homarus gammarus is a lobster . \n"],
        "test": [" = Robert Boulter = \n", "", "", " Robert Boulter is an actor . \n"],
    }
    for split, rows in texts.items():
        write_parquet(root / "wikitext-103-raw-v1" / f"{split}-00000-of-00001.parquet", {"text": rows})
    return root


def test_wikitext_mirror_by_directory_and_config(wikitext_mirror):
    expected = {
        "train": (["= Valkyria Chronicles III =", "Senjou no Valkyria 3 is a game ."], 2),
        "validation": (["= Homarus gammarus =", "Homarus gammarus is a lobster ."], 1),
        "test": (["= Robert Boulter =", "Robert Boulter is an actor ."], 2),
    }
    for split, (want, empty) in expected.items():
        lines, stats = load_text_lines(str(wikitext_mirror), split=split, hub_config="wikitext-103-raw-v1")
        assert lines == want and stats.empty_skipped == empty
        assert stats.control_chars_lines == 2  # the trailing "\n" inside each parquet row
        assert [Path(f).name for f in stats.files] == [f"{split}-00000-of-00001.parquet"]
    with pytest.raises(CorpusError, match="no folder 'wikitext-2-raw-v1'"):
        load_text_lines(str(wikitext_mirror), hub_config="wikitext-2-raw-v1")


def test_wikitext_mirror_by_data_files(wikitext_mirror):
    data_files = {
        split: f"wikitext-103-raw-v1/{split}-*.parquet" for split in ("train", "validation", "test")
    }
    lines, stats = load_text_lines(str(wikitext_mirror), split="validation", data_files=data_files)
    assert lines == ["= Homarus gammarus =", "Homarus gammarus is a lobster ."]
    assert stats.lines_read == 3
    with pytest.raises(CorpusError, match=r"data_files has no split 'dev'; splits: \['test', 'train', 'validation'\]"):
        load_text_lines(str(wikitext_mirror), split="dev", data_files=data_files)


class WordTokenizer:
    """Stand-in with the Tokenizer interface encode_lines uses: one id per word."""

    bos_id, eos_id = BOS_ID, EOS_ID

    def encode_batch(self, texts):
        return [[10 + len(word) for word in text.split()] for text in texts]


def test_encode_lines_truncates_and_counts():
    lines = ["one two", "a b c d e f", "", "x y z"]
    seqs, stats = encode_lines(lines, WordTokenizer(), max_len=5)
    assert seqs == [[BOS_ID, 13, 13, EOS_ID], [BOS_ID, 11, 11, 11, EOS_ID], [BOS_ID, 11, 11, 11, EOS_ID]]
    assert stats.source_index == (0, 1, 3)
    assert stats.as_dict() == {"lines_in": 4, "kept": 3, "truncated": 1, "overlong_skipped": 0, "empty_skipped": 1}
    assert all(len(s) <= 5 for s in seqs)


def test_encode_lines_skips_overlong():
    lines = ["one two", "a b c d e f", "", "x y z"]
    seqs, stats = encode_lines(lines, WordTokenizer(), max_len=5, overlong="skip")
    assert seqs == [[BOS_ID, 13, 13, EOS_ID], [BOS_ID, 11, 11, 11, EOS_ID]]
    assert stats.source_index == (0, 3)
    assert (stats.truncated, stats.overlong_skipped, stats.empty_skipped) == (0, 1, 1)
    with pytest.raises(ValueError, match=r"overlong must be one of \('truncate', 'skip'\)"):
        encode_lines(lines, WordTokenizer(), max_len=5, overlong="drop")
    with pytest.raises(ValueError, match="max_len must be >= 3"):
        encode_lines(lines, WordTokenizer(), max_len=2)


def test_encode_lines_with_real_tokenizer(tmp_path):
    lines, _ = load_text_lines(str(FORTUNES), split="heldout")
    tok = train_tokenizer(lines, tmp_path / "spm", vocab_size=300, model_type="bpe")
    seqs, stats = encode_lines(lines, tok, max_len=12)
    assert stats.kept == len(lines) and stats.truncated > 0
    for seq, index in zip(seqs, stats.source_index):
        assert seq[0] == BOS_ID and seq[-1] == EOS_ID and len(seq) <= 12
        assert BOS_ID not in seq[1:-1] and EOS_ID not in seq[1:-1]
        if len(seq) < 12:
            assert tok.decode(seq) == lines[index]
