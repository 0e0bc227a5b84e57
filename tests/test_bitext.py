"""Translation pairs files (seqae.data.bitext): .gz read like plain text, unreadable files refused in one line
naming file (and line), chosen columns for wider TSV rows, malformed lines counted by reason, and a "no usable
pair" error that says why; the data.source_column / data.target_column keys are validated."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest

from seqae.config import ConfigError, load_config_dict
from seqae.data.bitext import no_pairs_reason, read_pairs
from seqae.finetune.config import FinetuneConfig, FinetuneDataConfig
from seqae.finetune.translate import TranslateTask

TEXT = "Hallo Welt.\tHello world.\n\nJa.\tYes.\nkein Tab hier\n"
THREE = "1\tHello.\tHola.\n2\tYes.\tSí.\n3\tNo.\t\n"  # id<TAB>en<TAB>es, the last one without its target


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_gz_reads_like_the_plain_file(tmp_path):
    plain = write(tmp_path / "pairs.tsv", TEXT)
    packed = tmp_path / "pairs.tsv.gz"
    packed.write_bytes(gzip.compress(TEXT.encode("utf-8")))
    pairs, stats = read_pairs(plain, "data.train")
    pairs_gz, stats_gz = read_pairs(str(packed), "data.train")
    assert pairs == pairs_gz == [("Hallo Welt.", "Hello world."), ("Ja.", "Yes.")]
    assert stats["malformed_reasons"] == stats_gz["malformed_reasons"] == {"1 column": 1}
    assert (stats["lines"], stats["blank"], stats["malformed"]) == (stats_gz["lines"], 1, 1) == (4, 1, 1)
    unnamed = tmp_path / "pairs.tsv"  # gzip bytes without the suffix are recognised too
    unnamed.write_bytes(packed.read_bytes())
    assert read_pairs(str(unnamed), "data.train")[0] == pairs


def test_corrupt_gz_and_non_utf8_are_refused_naming_the_file(tmp_path):
    corrupt = tmp_path / "bad.tsv.gz"
    corrupt.write_bytes(gzip.compress(TEXT.encode("utf-8"))[:-12])  # cut off: no end-of-stream marker
    with pytest.raises(ConfigError, match=r"^data.train: .*bad.tsv.gz: not a readable gzip file") as err:
        read_pairs(str(corrupt), "data.train")
    assert "\n" not in str(err.value)
    plain_named_gz = write(tmp_path / "plain.tsv.gz", TEXT)
    with pytest.raises(ConfigError, match=r"plain.tsv.gz: not a readable gzip file"):
        read_pairs(plain_named_gz, "data.train")
    latin = tmp_path / "latin1.tsv"
    latin.write_bytes("Ja.\tYes.\nGrüße.\tRegards.\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"^data.heldout: .*latin1.tsv:2: not UTF-8: byte 0xfc"):
        read_pairs(str(latin), "data.heldout")


def test_three_columns_are_refused_with_the_reason_until_the_columns_are_chosen(tmp_path):
    path = write(tmp_path / "tri.tsv", THREE)
    at = re.escape(path)
    pairs, stats = read_pairs(path, "data.train")
    assert pairs == [] and stats["malformed"] == 3
    assert stats["malformed_reasons"] == {"3 columns": 3}
    assert stats["malformed_lines"] == [f"{path}:1", f"{path}:2", f"{path}:3"]
    with pytest.raises(ConfigError, match=rf"^data.train: {at}:1: 3 columns; set data.source_column and "
                                          r"data.target_column to choose two, got '1\\tHello.\\tHola.'$"):
        read_pairs(path, "data.train", strict=True)

    pairs, stats = read_pairs(path, "data.train", source_column=1, target_column=2)
    assert pairs == [("Hello.", "Hola."), ("Yes.", "Sí.")]
    assert stats["malformed_reasons"] == {"empty target": 1} and stats["malformed_lines"] == [f"{path}:3"]
    assert read_pairs(path, "data.train", source_column=2, target_column=1)[0][0] == ("Hola.", "Hello.")
    with pytest.raises(ConfigError, match=rf"{at}:3: empty target, got '3\\tNo.\\t'"):
        read_pairs(path, "data.train", strict=True, source_column=1, target_column=2)
    with pytest.raises(ConfigError, match=rf"{at}:1: 3 columns; data.source_column 1 and data.target_column 3 "
                                          "need 4"):
        read_pairs(path, "data.train", strict=True, source_column=1, target_column=3)


def test_no_usable_pair_says_why(tmp_path):
    path = write(tmp_path / "tri.tsv", "\n" + THREE.replace("\t\n", "\tNo.\n"))
    _, stats = read_pairs(path, "data.train")
    assert no_pairs_reason(stats) == (f"3 malformed lines (3 with 3 columns; set data.source_column and "
                                      f"data.target_column to choose two), first at {path}:2, and 1 blank line")
    assert no_pairs_reason(read_pairs(write(tmp_path / "e.tsv", ""), "k")[1]) == "the file is empty"
    assert no_pairs_reason(read_pairs(write(tmp_path / "b.tsv", "\n \n"), "k")[1]) == "only blank lines (2)"

    at = re.escape(path)
    config = load_config_dict({"task": "translate", "encoder": "unused", "data": {"train": path}}, FinetuneConfig)
    with pytest.raises(ConfigError, match=rf"^data.train: no usable pair in {at}: 3 malformed lines \(3 with 3 "
                                          r"columns; set data.source_column and data.target_column"):
        TranslateTask(config, tmp_path / "run")  # refused before any encoder is loaded


@pytest.mark.parametrize(("columns", "message"), [
    ({"source_column": -1}, r"data.source_column: must be >= 0 \(0-based\), got -1"),
    ({"target_column": -2}, r"data.target_column: must be >= 0 \(0-based\), got -2"),
    ({"source_column": 1, "target_column": 1}, r"data.target_column: must differ from data.source_column"),
])
def test_column_keys_are_validated(columns, message):
    with pytest.raises(ConfigError, match=message):
        FinetuneDataConfig(train="x", **columns)
    with pytest.raises(ConfigError, match=message):
        load_config_dict({"encoder": "x", "data": {"train": "x", **columns}}, FinetuneConfig)
    assert FinetuneDataConfig(train="x", source_column=1, target_column=2).target_column == 2
