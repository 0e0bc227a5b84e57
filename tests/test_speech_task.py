"""SpeechTask on the shipped espeak-ng fixture: data, CMVN, skips, noise, evaluation, and the training loop."""

import json
import shutil

import pytest
import torch

from seqae.config import ConfigError, load_config_dict
from seqae.data.manifest import read_manifest
from seqae.data.speech import split_by_speaker
from seqae.eval.speech import same_different_ap
from seqae.frontend.audio import AudioError
from seqae.frontend.summaries import downsampled_frames
from seqae.runs import load_run
from seqae.tasks.speech import SpeechTask
from seqae.train import pretrain

FIXTURE = "data/espeak_words"


def merge(base, extra):
    out = dict(base)
    for key, value in extra.items():
        out[key] = merge(base[key], value) if isinstance(value, dict) and key in base else value
    return out


def make_config(repo, cache, **sections):
    base = {
        "task": "speech",
        "data": {"train": str(repo / FIXTURE / "train/manifest.jsonl"),
                 "heldout": str(repo / FIXTURE / "test/manifest.jsonl"), "max_len": 200, "max_tokens": 2000},
        "features": {"n_mels": 24, "cache_dir": str(cache)},
        "model": {"encoder": "gru", "decoder": "gru", "embed_dim": 16, "hidden_dim": 16, "decoder_dim": 32,
                  "prenet_dim": 16, "bottleneck_dim": 8, "pooling": "mean", "dropout": 0.0},
        "train": {"max_steps": 12, "threads": 1, "progress": False, "log_every": 2, "eval_every": 0,
                  "checkpoint_every": 6, "warmup_steps": 2},
    }
    return load_config_dict(merge(base, sections))


def test_batches_hold_noised_inputs_clean_targets_and_their_lengths(repo, tmp_path, speech_feature_cache):
    config = make_config(repo, speech_feature_cache, noise=[{"type": "time_mask", "ratio": 0.3, "span": 4}])
    task = SpeechTask(config, tmp_path / "run")
    assert (len(task.data.train), len(task.data.heldout)) == (48, 8)
    assert task.data.stats["train_audio"] == {"checked": 48, "skipped": 0, "skipped_files": []}
    assert [x.shape[1] for x in task.data.train] == [24] * 48
    batch = task.batch([3, 0, 17], epoch=0)
    lengths = [task.train_lengths()[i] for i in (3, 0, 17)]
    assert batch["lengths"].tolist() == lengths
    assert batch["frames"].shape == batch["targets"].shape == (3, max(lengths), 24)
    for b, i in enumerate((3, 0, 17)):
        n = lengths[b]
        torch.testing.assert_close(batch["targets"][b, :n], task.data.train[i])  # clean targets
        assert bool((batch["frames"][b, n:] == 0).all()) and bool((batch["targets"][b, n:] == 0).all())
        changed = (batch["frames"][b, :n] != batch["targets"][b, :n]).any(dim=1)  # (T,)
        assert bool(changed.any()), "time masking changed nothing"
        assert not bool((changed & ~batch["corrupted"][b, :n]).any()), "a frame changed outside the noise mask"
        assert int(batch["corrupted"][b].sum()) == round(0.3 * n)
    loss, stats = task.loss(batch)
    loss.backward()
    assert stats["tokens"] == sum(lengths) and torch.isfinite(loss)


def test_frame_noise_depends_only_on_seed_epoch_and_index(repo, tmp_path, speech_feature_cache):
    config = make_config(repo, speech_feature_cache, noise=[{"type": "time_mask", "ratio": 0.3, "span": 4},
                                                            {"type": "gaussian", "sigma": 0.5}])
    task = SpeechTask(config, tmp_path / "run")
    first = task.batch([5, 9], epoch=2)
    again = task.batch([9, 5], epoch=2)  # other batch mates and order: the same noise per sequence
    n5, n9 = task.train_lengths()[5], task.train_lengths()[9]
    torch.testing.assert_close(first["frames"][0, :n5], again["frames"][1, :n5])
    torch.testing.assert_close(first["frames"][1, :n9], again["frames"][0, :n9])
    direct, _ = task.noise(task.data.train[5], seed=config.train.seed, epoch=2, index=5)
    torch.testing.assert_close(first["frames"][0, :n5], direct)
    other_epoch = task.batch([5, 9], epoch=3)
    assert not torch.equal(first["frames"], other_epoch["frames"])
    reseeded = SpeechTask(make_config(repo, speech_feature_cache, noise=list(config.noise), train={"seed": 1}),
                          tmp_path / "run1")
    assert not torch.equal(first["frames"], reseeded.batch([5, 9], epoch=2)["frames"])


def test_cmvn_is_computed_on_train_stored_and_reused(repo, tmp_path, speech_feature_cache):
    run = tmp_path / "run"
    task = SpeechTask(make_config(repo, speech_feature_cache), run)
    frames = torch.cat(task.data.train)  # (N, F) all training frames, normalised
    torch.testing.assert_close(frames.mean(0), torch.zeros(24), atol=1e-4, rtol=0)
    torch.testing.assert_close(frames.std(0, unbiased=False), torch.ones(24), atol=1e-3, rtol=0)
    stored = json.loads((run / "cmvn.json").read_text())
    assert stored["count"] == frames.shape[0] and stored["features"]["n_mels"] == 24
    # A resumed run reads the stored statistics instead of recomputing them: shift them and see the shift.
    stored["mean"] = [m + 1.0 for m in stored["mean"]]
    (run / "cmvn.json").write_text(json.dumps(stored))
    resumed = SpeechTask(make_config(repo, speech_feature_cache), run)
    assert resumed.data.stats["cmvn"] == "loaded"
    std = torch.tensor(stored["std"])
    torch.testing.assert_close(resumed.data.train[0], task.data.train[0] - 1.0 / std)
    with pytest.raises(ConfigError, match="cmvn.json: CMVN statistics were computed with features"):
        SpeechTask(make_config(repo, speech_feature_cache, features={"n_mels": 20}), run)
    off = SpeechTask(make_config(repo, speech_feature_cache, features={"cmvn": False}), tmp_path / "raw")
    assert off.data.stats["cmvn"] == "off" and not (tmp_path / "raw" / "cmvn.json").exists()
    torch.testing.assert_close(off.data.train[0], task.data.cmvn.denormalize(task.data.train[0]))  # raw log-Mel


def write_bad_manifest(repo, tmp_path):
    rows = read_manifest(repo / FIXTURE / "train/manifest.jsonl")[:3]
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.flac").write_text("not audio at all")
    lines = [{"path": str(r.path), "label": r.label, "speaker": r.speaker} for r in rows]
    lines += [{"path": "missing.flac"}, {"path": "empty.wav"}, {"path": "text.flac"}]
    manifest = tmp_path / "bad.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return manifest


def test_bad_files_are_skipped_and_counted_or_stop_a_strict_run(repo, tmp_path, speech_feature_cache):
    manifest = write_bad_manifest(repo, tmp_path)
    task = SpeechTask(make_config(repo, speech_feature_cache, data={"train": str(manifest)}), tmp_path / "run")
    report = task.data.stats["train_audio"]
    assert (report["checked"], report["skipped"], len(task.data.train)) == (6, 3, 3)
    reasons = {item["file"].rsplit("/", 1)[-1]: item["reason"] for item in report["skipped_files"]}
    assert reasons["missing.flac"] == "file not found"
    assert reasons["empty.wav"] == "empty file (0 bytes)"
    assert reasons["text.flac"].startswith("unreadable or corrupt audio")
    assert "3 files skipped" in task.summary()
    saved = json.loads(json.dumps(task.data.stats))  # what pretrain writes to data_stats.json
    assert saved["train_audio"]["skipped"] == 3
    strict = make_config(repo, speech_feature_cache, data={"train": str(manifest), "strict": True})
    with pytest.raises(AudioError, match=r"missing\.flac: file not found \(row 4; strict mode"):
        SpeechTask(strict, tmp_path / "strict")


def test_unusable_sources_name_the_key(repo, tmp_path, speech_feature_cache):
    (tmp_path / "rows.jsonl").write_text('{"file": "a.flac"}\n')
    with pytest.raises(ConfigError, match=r"data.train: .*rows.jsonl: missing required column 'path'"):
        SpeechTask(make_config(repo, speech_feature_cache, data={"train": str(tmp_path / "rows.jsonl")}),
                   tmp_path / "r")
    with pytest.raises(ConfigError, match=r"data.heldout: .*notes.txt must be a manifest"):
        SpeechTask(make_config(repo, speech_feature_cache, data={"heldout": str(tmp_path / "notes.txt")}),
                   tmp_path / "r")


def test_overlong_sequences_are_truncated_or_skipped_and_counted(repo, tmp_path, speech_feature_cache):
    full = SpeechTask(make_config(repo, speech_feature_cache), tmp_path / "a")
    lengths = full.train_lengths()
    limit = 48  # 4 of the 48 training words and 4 of the 8 test words are longer
    over = sum(n > limit for n in lengths)
    assert over == 4
    cut = SpeechTask(make_config(repo, speech_feature_cache, data={"max_len": limit}), tmp_path / "b")
    assert cut.train_lengths() == [min(n, limit) for n in lengths]
    assert cut.data.stats["train_length"]["overlong"] == over and f"{over} train sequences over" in cut.summary()
    skip = SpeechTask(make_config(repo, speech_feature_cache, data={"max_len": limit, "overlong": "skip"}),
                      tmp_path / "c")
    assert skip.train_lengths() == [n for n in lengths if n <= limit]
    assert len(skip.data.stats["train_length"]["overlong_files"]) == over
    assert len(skip.data.heldout) == 4 and skip.data.stats["heldout_length"]["overlong"] == 4


def test_a_folder_source_is_scanned_and_split_by_speaker(repo, tmp_path, speech_feature_cache):
    config = make_config(repo, speech_feature_cache, data={"train": str(repo / FIXTURE / "train"), "heldout": None,
                                                           "heldout_fraction": 0.25})
    task = SpeechTask(config, tmp_path / "run")
    # A scanned folder has labels (the word folders) but no speakers, so the first 25% of rows by path are held out.
    assert (len(task.data.train), len(task.data.heldout)) == (36, 12)
    assert {r.label for r in task.data.heldout_rows} == {"apple", "baby", "back"}
    assert task.data.stats["heldout_audio"]["split"].startswith("held out of data.train")
    rows = read_manifest(repo / FIXTURE / "train/manifest.jsonl")
    train, heldout = split_by_speaker(rows, 0.25)
    assert {r.speaker for r in heldout} == {"spk003"} and len(train) == 36 and len(heldout) == 12


def test_final_metrics_report_mse_and_same_different_ap(repo, tmp_path, speech_feature_cache):
    task = SpeechTask(make_config(repo, speech_feature_cache), tmp_path / "run")
    metrics = task.final_metrics()
    for key in ("heldout_mse", "train_mse", "ap_z", "ap_encoder_mean", "ap_mean_frames", "ap_downsampled",
                "speaker_ap_z", "heldout_stop_accuracy"):
        assert key in metrics, key
    for key in ("ap_z", "ap_mean_frames", "ap_downsampled", "speaker_ap_z"):
        assert 0.0 < metrics[key] <= 1.0
    labels = [r.label for r in task.data.heldout_rows]
    expected = same_different_ap(downsampled_frames(task.data.heldout, n=10), labels)
    assert metrics["ap_downsampled"] == pytest.approx(expected)
    assert (metrics["ap_items"], metrics["ap_classes"], metrics["heldout_sequences"]) == (8, 4, 8)
    z, pooled = task.embed(task.data.heldout)
    alone = task.embed(task.data.heldout[3:4])[0]
    torch.testing.assert_close(z[3:4], alone, atol=1e-5, rtol=1e-5)  # batching and order change nothing
    assert z.shape == (8, 8) and pooled.shape == (8, 32)
    assert metrics["heldout_mse"] > 0 and set(task.evaluate(limit=2)["train"]) >= {"mse", "loss"}


def test_pretrain_lowers_the_reconstruction_error_and_reloads(repo, tmp_path, speech_feature_cache):
    config = make_config(repo, speech_feature_cache, model={"hidden_dim": 32, "bottleneck_dim": 16},
                         train={"max_steps": 40, "lr": 0.01, "checkpoint_every": 20},
                         noise=[{"type": "time_mask", "ratio": 0.15, "span": 3}])
    run = tmp_path / "run"
    before = SpeechTask(config, tmp_path / "fresh").evaluate()["train"]["mse"]
    metrics = pretrain(config, run)
    assert metrics["train_mse"] < 0.8 * before
    assert json.loads((run / "metrics.json").read_text())["heldout_mse"] == pytest.approx(metrics["heldout_mse"])
    stats = json.loads((run / "data_stats.json").read_text())
    assert stats["train_sequences"] == 48 and stats["cmvn"] == "computed"
    loaded = load_run(run)
    assert not loaded.model.training and loaded.task == "speech"
    task = SpeechTask(loaded.config, run)  # the run's data again, with the loaded weights
    task.model.load_state_dict(loaded.model.state_dict())
    assert task.data.stats["cmvn"] == "loaded"
    assert task.evaluate()["train"]["mse"] == pytest.approx(metrics["train_mse"], rel=1e-5)
    shutil.rmtree(run / "checkpoints")
    with pytest.raises(Exception, match="no usable checkpoint"):
        load_run(run)


def test_label_pairs_give_another_speaker_of_the_same_word_reproducibly(repo, tmp_path, speech_feature_cache):
    task = SpeechTask(make_config(repo, speech_feature_cache), tmp_path / "run", targets="label")
    rows = task.data.train_rows
    assert all(len(p) == 3 for p in task.partners)  # 4 speakers per word: the 3 others
    for epoch in (0, 1):
        for i in range(len(rows)):
            j = task.target_index(i, epoch)
            assert rows[j].label == rows[i].label and rows[j].speaker != rows[i].speaker
    assert len({task.target_index(0, e) for e in range(12)}) > 1  # the partner changes with the epoch
    batch = task.batch([0, 7], epoch=4)
    partners = [task.target_index(i, 4) for i in (0, 7)]
    assert batch["target_lengths"].tolist() == [task.train_lengths()[j] for j in partners]
    torch.testing.assert_close(batch["targets"][1, : task.train_lengths()[partners[1]]], task.data.train[partners[1]])
    assert batch["lengths"].tolist() == [task.train_lengths()[i] for i in (0, 7)]
    assert task.batch([0, 7], epoch=4)["targets"].equal(batch["targets"])
    loss, stats = task.loss(batch)
    assert torch.isfinite(loss) and stats["tokens"] == sum(batch["target_lengths"].tolist())
    with pytest.raises(ConfigError, match="data.targets: got 'words'"):
        SpeechTask(make_config(repo, speech_feature_cache), tmp_path / "run", targets="words")


def test_neighbour_pairs_use_no_labels_and_find_the_same_word_more_often_than_chance(repo, tmp_path,
                                                                                     speech_feature_cache):
    task = SpeechTask(make_config(repo, speech_feature_cache), tmp_path / "run", targets="neighbours")
    rows = task.data.train_rows
    assert all(len(p) == 5 for p in task.partners)
    assert all(rows[j].speaker != rows[i].speaker for i, p in enumerate(task.partners) for j in p)
    stats = task.data.stats["targets"]
    assert stats["kind"] == "neighbours" and stats["rows_without_partner"] == 0
    assert stats["same_label_fraction"] > 3 * (3 / 36)  # chance: 3 of the 36 other-speaker rows share the word
    unlabelled = [type(r)(path=r.path, speaker=r.speaker) for r in rows]  # labels cannot change the neighbours
    from seqae.data.pairs import neighbour_partners

    assert neighbour_partners(task.data.train, unlabelled) == task.partners


def test_neighbours_can_be_chosen_by_given_embeddings_such_as_an_earlier_runs_z(repo, tmp_path, speech_feature_cache):
    """data.neighbour_embeddings: row i's vector chooses row i's partners by cosine; other speakers only; a file
    that does not line up with the training rows is refused naming the key."""
    import numpy as np

    rows_of = SpeechTask(make_config(repo, speech_feature_cache), tmp_path / "a", targets="neighbours").data.train_rows
    labels = sorted({r.label for r in rows_of})
    vectors = np.stack([np.eye(len(labels))[labels.index(r.label)] for r in rows_of]).astype(np.float32)  # one-hot
    path = tmp_path / "z.npy"
    np.save(path, vectors)
    config = make_config(repo, speech_feature_cache, data={"targets": "neighbours", "neighbour_embeddings": str(path)})
    task = SpeechTask(config, tmp_path / "b")
    rows = task.data.train_rows
    # the word's 3 other-speaker utterances are the nearest by these vectors, ahead of every other word
    assert all({rows[j].label for j in p[:3]} == {rows[i].label} for i, p in enumerate(task.partners))
    assert all(rows[j].speaker != rows[i].speaker for i, p in enumerate(task.partners) for j in p)
    assert task.data.stats["targets"]["same_label_fraction"] == pytest.approx(3 / 5)
    np.save(path, vectors[:-1])
    with pytest.raises(ConfigError, match=r"data.neighbour_embeddings: .*z.npy.*one per training row"):
        SpeechTask(config, tmp_path / "c")
    with pytest.raises(ConfigError, match="data.neighbour_embeddings: only with data.targets: neighbours"):
        make_config(repo, speech_feature_cache, data={"neighbour_embeddings": str(path)})
