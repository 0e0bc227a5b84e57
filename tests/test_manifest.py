"""Manifests (jsonl/csv through HF datasets), folder scans, speech feature loading with skip reports,
batch collation, and the espeak-ng synthesis recipe."""

from __future__ import annotations

import filecmp
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import REPO, needs_espeak

from seqae.data.manifest import ManifestRow, SkipReport, read_manifest, scan_folder, write_manifest
from seqae.data.speech import load_speech_features
from seqae.frontend.audio import AudioError
from seqae.frontend.collate import collate_frames
from seqae.frontend.features import FeatureCache, FeatureExtractor

FIXTURE = REPO / "data" / "espeak_words"
SYNTH = REPO / "recipes" / "espeak_words" / "synth.py"


pytestmark = pytest.mark.usefixtures("offline_hub")  # see tests/conftest.py


def _rows(root: Path) -> list[ManifestRow]:
    return [
        ManifestRow(path=root / "audio" / "a.flac", text="hello there", speaker="7", label="greet", duration=1.25),
        ManifestRow(path=root / "audio" / "sub" / "b.wav", speaker="spk1"),
    ]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_write_read_round_trip_with_relative_paths(tmp_path: Path, suffix: str) -> None:
    rows = _rows(tmp_path)
    manifest = tmp_path / f"m{suffix}"
    write_manifest(rows, manifest)
    assert "audio/sub/b.wav" in manifest.read_text() and str(tmp_path) not in manifest.read_text()
    assert read_manifest(manifest) == rows


def test_relative_paths_resolve_against_manifest_folder(tmp_path: Path) -> None:
    (tmp_path / "lists").mkdir()
    manifest = tmp_path / "lists" / "m.jsonl"
    manifest.write_text('{"path": "../wavs/x.wav", "speaker": 3}\n{"path": "/abs/y.wav", "extra": 1}\n')
    rows = read_manifest(manifest)
    assert rows[0].path == tmp_path / "wavs" / "x.wav" and rows[0].speaker == "3"
    assert rows[1].path == Path("/abs/y.wav") and rows[1].text is None


def test_csv_numbers_and_blanks(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,speaker,label,duration\na.wav,12,,0.5\nb.wav,x,yes,\n")
    rows = read_manifest(manifest)
    assert [(r.speaker, r.label, r.duration) for r in rows] == [("12", None, 0.5), ("x", "yes", None)]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("m.jsonl", '{"file": "a.wav", "text": "x"}\n', "missing required column 'path'"),
        ("m.csv", "file,text\na.wav,x\n", "missing required column 'path'"),
        ("m.jsonl", '{"path": "a.wav"}\n{"path": null}\n', "row 2: 'path' must be a non-empty string"),
        ("m.csv", "path,duration\na.wav,long\n", "line 2: 'duration' must be a number"),
        ("m.jsonl", '{"path": "a.wav"}\n{broken\n', "cannot parse manifest as json"),
        ("m.jsonl", "\n", "manifest is empty"),
        ("m.txt", "a.wav\n", "must be .jsonl, .json or .csv"),
    ],
)
def test_bad_manifest_errors_name_file_and_problem(tmp_path: Path, name: str, content: str, message: str) -> None:
    manifest = tmp_path / name
    manifest.write_text(content)
    with pytest.raises(ValueError, match=message) as info:
        read_manifest(manifest)
    assert str(manifest) in str(info.value)


def test_fixture_manifests() -> None:
    train = read_manifest(FIXTURE / "train" / "manifest.jsonl")
    test = read_manifest(FIXTURE / "test" / "manifest.jsonl")
    assert len(train) == 48 and len(test) == 8
    assert all(r.path.is_file() and r.label == r.text == r.path.parent.name for r in train + test)
    assert len({r.label for r in train}) == 12 and len({r.speaker for r in train}) == 4
    assert not {r.label for r in train} & {r.label for r in test}
    assert not {r.speaker for r in train} & {r.speaker for r in test}


def test_scan_folder_labels_from_parent() -> None:
    rows = scan_folder(FIXTURE / "train")
    listed = {r.path: r for r in read_manifest(FIXTURE / "train" / "manifest.jsonl")}
    assert [r.path for r in rows] == sorted(listed)
    for row in rows:
        assert row.label == listed[row.path].label and row.duration == pytest.approx(listed[row.path].duration)
    assert all(r.label is None for r in scan_folder(FIXTURE / "test", label_from=None))
    with pytest.raises(ValueError, match="label_from"):
        scan_folder(FIXTURE / "test", label_from="grandparent")


def test_scan_folder_reports_unreadable_files(tmp_path: Path) -> None:
    shutil.copytree(FIXTURE / "test", tmp_path / "data")
    bad = tmp_path / "data" / "sheep" / "broken.wav"
    bad.write_bytes(np.random.default_rng(1).bytes(500))
    (tmp_path / "data" / "notes.txt").write_text("not audio, not matched")
    skips = SkipReport()
    with pytest.warns(UserWarning, match=r"skipped 1 of 9 files: .*broken\.wav"):
        rows = scan_folder(tmp_path / "data", skips=skips)
    assert len(rows) == 8 and skips.checked == 9 and [p for p, _ in skips.skipped] == [str(bad)]


def _mixed_rows(tmp_path: Path) -> tuple[list[ManifestRow], list[Path]]:
    good = read_manifest(FIXTURE / "test" / "manifest.jsonl")[:3]
    short = tmp_path / "short.wav"
    sf.write(short, np.zeros(200, np.float32), 16000)  # 12.5 ms: no 25 ms frame fits
    corrupt = tmp_path / "corrupt.flac"
    corrupt.write_bytes(b"fLaC" + bytes(100))
    bad = [tmp_path / "missing.flac", corrupt, short]
    rows = [good[0], ManifestRow(path=bad[0]), good[1], ManifestRow(path=bad[1]), ManifestRow(path=bad[2]), good[2]]
    return rows, bad


def test_load_speech_features_skips_and_counts_bad_files(tmp_path: Path) -> None:
    rows, bad = _mixed_rows(tmp_path)
    fe = FeatureExtractor(kind="fbank", n_mels=40)
    feats, kept, report = load_speech_features(rows, fe, cache=None)
    assert kept == [rows[0], rows[2], rows[5]] and len(feats) == 3
    assert all(f.shape[1] == 40 and f.shape[0] > 10 for f in feats)
    assert [p for p, _ in report.skipped] == [str(p) for p in bad]
    reasons = " | ".join(r for _, r in report.skipped)
    assert "file not found" in reasons and "corrupt" in reasons and "too short" in reasons
    summary = report.summary()
    assert summary.startswith("kept 3 of 6 items, skipped 3") and all(str(p) in summary for p in bad)


def test_load_speech_features_strict_raises_on_first_bad_file(tmp_path: Path) -> None:
    rows, bad = _mixed_rows(tmp_path)
    with pytest.raises(AudioError, match=r"missing\.flac: file not found \(row 2; strict") as info:
        load_speech_features(rows, FeatureExtractor(), cache=None, strict=True)
    assert info.value.path == str(bad[0])


def test_second_epoch_with_cache_computes_nothing(tmp_path: Path) -> None:
    rows = read_manifest(FIXTURE / "test" / "manifest.jsonl")
    fe = FeatureExtractor(kind="logmel")
    cache = FeatureCache(tmp_path / "cache", fe.settings())
    first, _, _ = load_speech_features(rows, fe, cache=cache)
    assert (cache.hits, cache.misses) == (0, 8)
    second, _, report = load_speech_features(rows, fe, cache=cache)
    assert (cache.hits, cache.misses) == (8, 8) and report.num_skipped == 0
    for a, b in zip(first, second):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    with pytest.raises(ValueError, match="feature cache settings"):
        load_speech_features(rows, FeatureExtractor(kind="mfcc"), cache=cache)


def test_collate_frames_pads_with_zeros() -> None:
    items = [torch.randn(5, 3), torch.randn(2, 3), torch.randn(7, 3)]
    frames, lengths = collate_frames(items)
    assert frames.shape == (3, 7, 3) and lengths.tolist() == [5, 2, 7] and lengths.dtype == torch.long
    for x, y, n in zip(frames, items, lengths):
        torch.testing.assert_close(x[:n], y)
        assert bool((x[n:] == 0).all())
    with pytest.raises(ValueError, match=r"item 1 has shape \(2, 4\), expected \[T, 3\]"):
        collate_frames([torch.randn(5, 3), torch.randn(2, 4)])
    with pytest.raises(ValueError, match="empty batch"):
        collate_frames([])


@pytest.mark.slow
@needs_espeak
def test_synth_is_deterministic(tmp_path: Path) -> None:
    args = ["--words", "2", "--speakers", "2", "--word-offset", "5", "--speaker-offset", "3", "--seed", "0"]
    for run in ("a", "b"):
        subprocess.run([sys.executable, str(SYNTH), "--out", str(tmp_path / run), *args], check=True, capture_output=True)
    compared = filecmp.dircmp(tmp_path / "a", tmp_path / "b")
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 4 + 3  # 2 words x 2 speakers + manifest.jsonl, speakers.jsonl, synth.json
    match, mismatch, errors = filecmp.cmpfiles(tmp_path / "a", tmp_path / "b", [str(f) for f in files], shallow=False)
    assert (mismatch, errors, compared.left_only, compared.right_only) == ([], [], [], [])
    rows = read_manifest(tmp_path / "a" / "manifest.jsonl")
    assert sorted(r.label for r in rows) == ["bank", "bank", "basket", "basket"]
    assert {r.speaker for r in rows} == {"spk003", "spk004"}
    speakers = [json.loads(line) for line in (tmp_path / "a" / "speakers.jsonl").read_text().splitlines()]
    # Speaker 3 is the same voice whatever the offset: it matches the shipped fixture's spk003.
    shipped = [json.loads(line) for line in (FIXTURE / "train" / "speakers.jsonl").read_text().splitlines()]
    assert speakers[0] == shipped[3]
    # With the fixture's espeak-ng and SoX, a file the fixture also holds is byte-identical to it.
    meta = json.loads((tmp_path / "a" / "synth.json").read_text())
    shipped_meta = json.loads((FIXTURE / "train" / "synth.json").read_text())
    if (meta["espeak_ng"], meta["sox"]) == (shipped_meta["espeak_ng"], shipped_meta["sox"]):
        name = Path("bank") / "bank_spk003.flac"
        assert filecmp.cmp(tmp_path / "a" / name, FIXTURE / "train" / name, shallow=False)
