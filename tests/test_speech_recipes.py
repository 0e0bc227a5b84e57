"""Speech corpora readers and recipes: LibriSpeech and Speech Commands trees built from the espeak-ng fixture,
every shipped speech config, espeak-ng synthesis (skipped without espeak-ng and sox), and each recipe's debug run."""

import json
import os
import shutil
import subprocess

import pytest
import soundfile as sf
from conftest import needs_espeak, run_recipe

from seqae.config import load_config
from seqae.data.corpora import CorpusError, librispeech_folder, speech_commands_folder
from seqae.data.manifest import SkipReport, read_manifest
from seqae.models.builder import build_frame_autoencoder

SPEECH_RECIPES = ("espeak_words", "librispeech", "speech_commands")


def fixture_rows(repo, split):
    return read_manifest(repo / "data" / "espeak_words" / split / "manifest.jsonl")


def build_librispeech(repo, root):
    """ROOT/<split>/<speaker>/<chapter>/ like the released archives, from the fixture (speaker spkNNN -> 1NN),
    plus four problems in train-clean-100: audio without a transcript line, a transcript line without audio, an
    unreadable FLAC (with its line) and a malformed line."""
    for split, source in (("train-clean-100", "train"), ("dev-clean", "test")):
        lines = {}
        for row in fixture_rows(repo, source):
            speaker, chapter = str(100 + int(row.speaker[3:])), "7"
            folder = root / split / speaker / chapter
            folder.mkdir(parents=True, exist_ok=True)
            chapter_lines = lines.setdefault(folder, [])
            utt = f"{speaker}-{chapter}-{len(chapter_lines):04d}"
            shutil.copyfile(row.path, folder / f"{utt}.flac")
            chapter_lines.append(f"{utt} {row.text.upper()}")
        for folder, chapter_lines in lines.items():
            (folder / f"{folder.parent.name}-{folder.name}.trans.txt").write_text("\n".join(chapter_lines) + "\n")
    chapter = root / "train-clean-100" / "100" / "7"
    shutil.copyfile(next(chapter.glob("*.flac")), chapter / "100-7-0900.flac")  # no transcript line
    (chapter / "100-7-0901.flac").write_bytes(b"fLaC but not really")  # unreadable, has a line
    with open(chapter / "100-7.trans.txt", "a") as f:
        f.write("100-7-0901 BROKEN\n100-7-0902 NO AUDIO FOR THIS LINE\nnonsense\n")


def build_speech_commands(repo, root):
    """ROOT/<label>/<speaker>_nohash_<n>.wav from the fixture; the test words form the validation list and the
    training speaker spk003 the test list. Plus background noise, a badly named file and a stale list entry."""
    validation, testing = [], []
    for source in ("train", "test"):
        for row in fixture_rows(repo, source):
            (root / row.label).mkdir(parents=True, exist_ok=True)
            name = f"{row.label}/{int(row.speaker[3:]) + 0xa0:08x}_nohash_0.wav"
            data, rate = sf.read(row.path)
            sf.write(root / name, data, rate, subtype="PCM_16")
            (validation if source == "test" else testing if row.speaker == "spk003" else []).append(name)
    (root / "_background_noise_").mkdir()
    shutil.copyfile(root / validation[0], root / "_background_noise_" / "white_noise.wav")
    shutil.copyfile(root / validation[0], root / "apple" / "not-a-speech-commands-name.wav")
    (root / "validation_list.txt").write_text("\n".join(validation + ["shirt/ffffffff_nohash_9.wav"]) + "\n")
    (root / "testing_list.txt").write_text("\n".join(testing) + "\n")


def test_librispeech_reader_keeps_good_utterances_and_reports_every_problem(repo, tmp_path):
    build_librispeech(repo, tmp_path)
    skips = SkipReport()
    rows = librispeech_folder(tmp_path, "train-clean-100", skips=skips)
    assert len(rows) == 48 and {r.speaker for r in rows} == {"100", "101", "102", "103"}
    assert rows[0].text == "APPLE" and rows[0].path.name == "100-7-0000.flac" and rows[0].duration > 0.2
    reasons = {f"{os.path.basename(path)}: {reason.split(' (')[0]}" for path, reason in skips.skipped}
    assert reasons == {"100-7-0900.flac: no transcript line", "100-7-0901.flac: unreadable audio",
                       "100-7.trans.txt: orphan transcript line for 100-7-0902: no 100-7-0902.flac in "
                       f"{tmp_path / 'train-clean-100' / '100' / '7'}",
                       "100-7.trans.txt:15: malformed transcript line 'nonsense'"}
    assert skips.checked == 48 + 4
    dev = librispeech_folder(tmp_path, "dev-clean", skips=SkipReport())
    assert len(dev) == 8 and {r.speaker for r in dev} == {"130", "131"}
    with pytest.raises(CorpusError, match=r"test-clean: LibriSpeech split folder not found \(splits under .*: "
                                          r"\['dev-clean', 'train-clean-100'\]\)"):
        librispeech_folder(tmp_path, "test-clean", skips=SkipReport())


def test_speech_commands_reader_splits_by_the_list_files(repo, tmp_path):
    build_speech_commands(repo, tmp_path)
    splits = {}
    for split in ("train", "validation", "test"):
        skips = SkipReport()
        splits[split] = speech_commands_folder(tmp_path, split, skips=skips)
        splits[split + "_skips"] = skips
    assert [len(splits[s]) for s in ("train", "validation", "test")] == [36, 8, 12]
    assert {r.label for r in splits["validation"]} == {"season", "shadow", "sheep", "shirt"}
    assert {r.speaker for r in splits["test"]} == {f"{0xa3:08x}"} and splits["test"][0].label == "apple"
    assert not any("_background_noise_" in str(r.path) for s in ("train", "validation", "test") for r in splits[s])
    train_problems = [(os.path.basename(p), reason) for p, reason in splits["train_skips"].skipped]
    assert ("not-a-speech-commands-name.wav", "file name is not <speaker>_nohash_<n>.wav") in train_problems
    assert any(p == "validation_list.txt:9" and "shirt/ffffffff_nohash_9.wav, which does not exist" in reason
               for p, reason in train_problems)
    with pytest.raises(CorpusError, match="split 'dev' unknown"):
        speech_commands_folder(tmp_path, "dev", skips=SkipReport())
    (tmp_path / "testing_list.txt").unlink()
    with pytest.raises(CorpusError, match="testing_list.txt: not found"):
        speech_commands_folder(tmp_path, "train", skips=SkipReport())


def hub_table(audio, **columns):
    """A local `datasets` table with the hub's audio column ({bytes, path}), cast to Audio(decode=False)."""
    datasets = pytest.importorskip("datasets")
    cells = [{"bytes": a.read_bytes() if hasattr(a, "read_bytes") else a, "path": f"clip{i}.flac"}
             for i, a in enumerate(audio)]
    return datasets.Dataset.from_dict({"audio": cells, **columns}).cast_column("audio", datasets.Audio(decode=False))


def test_hub_loaders_decode_audio_bytes_with_soundfile(repo, tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    from seqae.data import corpora

    rows = fixture_rows(repo, "test")
    words = sorted({r.label for r in rows})
    commands = hub_table([r.path for r in rows] + [rows[0].path],
                         file=[f"{r.label}/{r.path.stem}.wav" for r in rows] + ["_silence_/noise.wav"],
                         label=[words.index(r.label) for r in rows] + [len(words)],
                         speaker_id=[r.speaker for r in rows] + [None])
    commands = commands.cast_column("label", datasets.ClassLabel(names=words + ["_silence_"]))
    monkeypatch.setattr(corpora, "_load_hub", lambda name, config, split: commands)
    skips = SkipReport()
    got = corpora.speech_commands_hub("validation", tmp_path / "sc", skips=skips)
    assert [(r.label, r.speaker) for r in got] == [(r.label, r.speaker) for r in rows]
    data, rate = sf.read(got[0].path)
    original, _ = sf.read(rows[0].path)
    assert rate == 16000 and got[0].path.suffix == ".flac" and abs(data - original).max() < 1e-4
    assert skips.skipped == [("_silence_/noise.wav", "background-noise clip (_silence_), not a spoken word")]
    libri = hub_table([rows[0].path, rows[1].path, b"junk"], text=["A", "B", "C"], speaker_id=[30, 31, 32],
                      id=["30-1-0", "31-1-0", "32-1-0"])
    monkeypatch.setattr(corpora, "_load_hub", lambda name, config, split: libri)
    skips = SkipReport()
    got = corpora.librispeech_hub("validation", tmp_path / "ls", skips=skips, limit=3)
    assert [(r.text, r.speaker, r.path.name) for r in got] == [("A", "30", "30-1-0.flac"), ("B", "31", "31-1-0.flac")]
    assert skips.num_skipped == 1 and skips.skipped[0][1].startswith("undecodable audio")


def test_hub_loading_offline_fails_with_one_line(tmp_path):
    pytest.importorskip("datasets")
    from seqae.data import corpora

    with pytest.raises(CorpusError) as err:
        corpora.librispeech_hub("validation", tmp_path / "ls", skips=SkipReport())
    message = str(err.value)
    assert "\n" not in message and "openslr/librispeech_asr" in message and "pass --source" in message


@pytest.mark.parametrize("recipe", SPEECH_RECIPES)
@pytest.mark.parametrize("name", ["config.yaml", "debug.yaml"])
def test_every_shipped_speech_config_loads_and_builds_its_model(repo, recipe, name):
    config = load_config(repo / "recipes" / recipe / name)
    assert config.task == "speech"
    dim = config.features.n_mfcc if config.features.kind == "mfcc" else config.features.n_mels
    model = build_frame_autoencoder(config.model, dim, regularize=config.regularize)
    assert sum(p.numel() for p in model.parameters()) > 0


@pytest.mark.slow
@needs_espeak
def test_synth_makes_the_fixture_layout_with_the_same_voices(repo, tmp_path):
    out = tmp_path / "words"
    subprocess.run([str(repo / ".venv/bin/python"), str(repo / "recipes/espeak_words/synth.py"), "--out", str(out),
                    "--words", "2", "--speakers", "2", "--word-offset", "200", "--speaker-offset", "30",
                    "--jobs", "1"], check=True, capture_output=True, cwd=repo)
    rows = read_manifest(out / "manifest.jsonl")
    assert [(r.label, r.speaker) for r in rows] == [("season", "spk030"), ("season", "spk031"),
                                                     ("shadow", "spk030"), ("shadow", "spk031")]
    assert all(r.path.is_file() and 0.2 < r.duration < 1.5 for r in rows)
    shipped = (repo / "data/espeak_words/test/speakers.jsonl").read_text()
    assert (out / "speakers.jsonl").read_text() == shipped  # the voice table depends only on the seed


def check_plots(out, metrics):
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert metrics["reconstruction_plots"] == []
        return
    assert len(metrics["reconstruction_plots"]) >= 2
    assert all((out / "reconstructions").joinpath(os.path.basename(p)).is_file()
               for p in metrics["reconstruction_plots"])


def test_espeak_words_train_dev_and_test_splits_share_no_word_and_no_speaker(repo):
    """The full recipe's synth.py calls (run.sh) draw disjoint word and voice ranges, and so does the fixture."""
    import importlib.util
    import re

    spec = importlib.util.spec_from_file_location("synth", repo / "recipes/espeak_words/synth.py")
    synth = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(synth)
    script = re.sub(r"\\\n\s*", "", (repo / "recipes/espeak_words/run.sh").read_text())  # join continued lines
    calls = re.findall(r'--out "\$split/(\w+)" --words (\d+) --speakers (\d+)'
                       r'(?: --word-offset (\d+) --speaker-offset (\d+))?', script)
    assert sorted(c[0] for c in calls) == ["dev", "test", "train"]
    voices = synth.speaker_table(100, seed=0)
    words, speakers = {}, {}
    for name, n_words, n_speakers, word_offset, speaker_offset in calls:
        w0, s0 = int(word_offset or 0), int(speaker_offset or 0)
        words[name] = set(synth.WORDS[w0: w0 + int(n_words)])
        speakers[name] = set(voices[s0: s0 + int(n_speakers)])
        assert len(words[name]) == int(n_words)
    for a, b in (("train", "dev"), ("train", "test"), ("dev", "test")):
        assert not words[a] & words[b] and not speakers[a] & speakers[b], (a, b)
    fixture = {name: read_manifest(repo / "data/espeak_words" / name / "manifest.jsonl")
               for name in ("train", "dev", "test")}
    for a, b in (("train", "dev"), ("train", "test"), ("dev", "test")):
        assert not {r.label for r in fixture[a]} & {r.label for r in fixture[b]}
        assert not {r.speaker for r in fixture[a]} & {r.speaker for r in fixture[b]}


@pytest.mark.slow
def test_espeak_words_debug_end_to_end(tmp_path):
    out = tmp_path / "ew"
    run_recipe("espeak_words", "--out", str(out))
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("dev_heldout_mse", "ap_z", "dev_ap_z", "dev_ap_mean_frames", "dev_ap_downsampled", "speaker_ap_z",
                "ap_best_baseline"):
        assert 0.0 < metrics[key] <= (1.0 if "ap_" in key else 10.0), key
    assert set(metrics["ap_baselines"]) == {"mfcc13", "logmel40", "fbank40"}
    assert metrics["ap_best_baseline"] == max(metrics["ap_baselines"].values())
    assert metrics["ap_ratio_best_baseline"] == pytest.approx(metrics["ap_z"] / metrics["ap_best_baseline"])
    assert (metrics["dev_heldout_sequences"], metrics["train_sequences"], metrics["dev_ap_classes"]) == (8, 48, 4)
    assert metrics["test_words"] == 8 and metrics["test_classes"] == 4
    stats = json.loads((out / "run" / "data_stats.json").read_text())  # round 2 mined its pairs with round 1's z
    assert (out / "round1" / "metrics.json").is_file() and stats["neighbour_embeddings"]["dim"] > 0
    check_plots(out, metrics)


@pytest.mark.slow
def test_librispeech_debug_from_a_local_tree(repo, tmp_path):
    build_librispeech(repo, tmp_path / "LibriSpeech")
    out = tmp_path / "ls"
    result = run_recipe("librispeech", "--source", str(tmp_path / "LibriSpeech"), "--out", str(out))
    assert "train (train-clean-100): 48 utterances, 4 speakers" in result.stdout
    assert "4 problems listed" in result.stdout
    assert "orphan transcript line for 100-7-0902" in (out / "data" / "skipped.txt").read_text()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["heldout_mse"] > 0 and 0 < metrics["speaker_ap_z"] <= 1 and "ap_z" not in metrics  # no labels
    assert (metrics["heldout_sequences"], metrics["speaker_ap_classes"]) == (8, 2)
    check_plots(out, metrics)


@pytest.mark.slow
def test_speech_commands_debug_from_a_local_tree(repo, tmp_path):
    build_speech_commands(repo, tmp_path / "sc")
    out = tmp_path / "out"
    result = run_recipe("speech_commands", "--source", str(tmp_path / "sc"), "--out", str(out))
    assert "train (train): 36 utterances, 12 labels, 3 speakers" in result.stdout
    assert "heldout (validation): 8 utterances, 4 labels, 2 speakers" in result.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("heldout_mse", "ap_z", "ap_mean_frames", "ap_downsampled"):
        assert metrics[key] > 0, key
    assert metrics["ap_classes"] == 4
    check_plots(out, metrics)


def test_speech_recipes_explain_a_missing_source(repo):
    for name in ("librispeech", "speech_commands"):
        result = subprocess.run([str(repo / "recipes" / name / "run.sh"), "--debug"], cwd=repo,
                                capture_output=True, text=True)
        assert result.returncode == 2 and "give --source ROOT" in result.stderr
