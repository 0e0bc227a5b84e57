"""The text task with noise: clean targets, corruption reproducible from (seed, epoch, index), weighted loss."""

import pytest
import torch

from seqae.cli import main
from seqae.config import ConfigError, load_config_dict, to_dict
from seqae.tasks.text import TextTask, corrupted_positions, corrupted_weights


def noisy_config(repo, noise, **train):
    return load_config_dict({
        "data": {"train": str(repo / "data/fortunes/train.txt"), "heldout": str(repo / "data/fortunes/heldout.txt"),
                 "max_train_sentences": 40, "max_len": 24, "max_tokens": 256},
        "tokenizer": {"vocab_size": 120},
        "model": {"embed_dim": 8, "hidden_dim": 8, "decoder_dim": 8, "bottleneck_dim": 4},
        "train": {"progress": False, **train},
        "noise": noise,
    })


@pytest.fixture(scope="module")
def task(request, tmp_path_factory):
    repo = request.config.rootpath
    noise = [{"type": "delete", "prob": 1.0, "ratio": 0.5}]
    return TextTask(noisy_config(repo, noise, corrupted_weight=3.0), tmp_path_factory.mktemp("task"))


def test_noise_corrupts_inputs_and_keeps_clean_targets(task):
    batch = task.batch(list(range(8)), epoch=0)
    clean = [task.data.train[i] for i in range(8)]
    for b, seq in enumerate(clean):
        assert batch["tgt"][b, : len(seq)].tolist() == seq
        n_body = len(seq) - 2
        assert int(batch["src_lengths"][b]) == 2 + n_body - round(0.5 * n_body)  # exactly half deleted


def test_noise_is_reproducible_from_seed_epoch_index(task):
    a, b = task.batch([3, 5], epoch=2), task.batch([5, 3], epoch=2)
    assert a["src"][0].tolist() == b["src"][1].tolist()  # example 3 gets the same noise wherever it sits
    c = task.batch([3, 5], epoch=3)
    assert not torch.equal(a["src"], c["src"])  # redrawn every epoch


def test_corrupted_positions_by_alignment():
    assert corrupted_positions([2, 7, 8, 9, 3], [2, 7, 8, 9, 3]) == [False] * 5
    assert corrupted_positions([2, 7, 4, 3], [2, 7, 8, 9, 3]) == [False, False, True, True, False]  # span masked
    assert corrupted_positions([2, 9, 3], [2, 7, 8, 9, 3]) == [False, True, True, False, False]  # deleted
    weights = corrupted_weights([([2, 9, 3], [2, 7, 8, 9, 3])], width=5, weight=3.0)
    assert weights.tolist() == [[3.0, 3.0, 1.0, 1.0, 1.0]]  # target positions 1..: 7, 8 corrupted; 9, eos kept


def test_weighted_loss_uses_the_weights(task):
    batch = task.batch(list(range(8)), epoch=0)
    assert "weights" in batch and float(batch["weights"].max()) == 3.0
    loss, _ = task.loss(batch)
    assert torch.isfinite(loss)


def test_denoising_metrics_in_final_metrics(task):
    task.model.eval()
    metrics = task.final_metrics()
    assert 0 <= metrics["heldout_denoise_exact_match"] <= 1
    assert 0 <= metrics["heldout_denoise_token_accuracy"] <= 1


def test_bad_noise_config_names_the_key(repo, tmp_path):
    with pytest.raises(ConfigError, match=r"^noise\[0\]\.ratio: must be in \[0, 1\], got 1.5"):
        TextTask(noisy_config(repo, [{"type": "delete", "ratio": 1.5}]), tmp_path)
    with pytest.raises(ConfigError, match=r"^noise\[0\]\.type: unknown noise 'delet'"):
        TextTask(noisy_config(repo, [{"type": "delet"}]), tmp_path)


def test_seqae_corrupt_shows_the_pipeline(repo, tmp_path, capsys, task):
    config = tmp_path / "noise.yaml"
    config.write_text("noise:\n  - {type: span_mask, ratio: 0.3}\n  - {type: shuffle, prob: 0.5, max_distance: 2}\n")
    tokenizer = task.tokenizer.model_path
    assert main(["corrupt", str(config), "--tokenizer", str(tokenizer), "--text", "A penny saved is a penny earned.",
                 "--samples", "2"]) == 0
    out = capsys.readouterr().out
    assert "1. span_mask (prob 1)" in out and "2. shuffle (prob 0.5)" in out
    assert out.count("epoch ") == 2 and "<mask>" in out


def test_seqae_corrupt_shows_frame_noises_on_audio(repo, tmp_path, capsys):
    config = tmp_path / "speech.yaml"
    config.write_text("task: speech\nfeatures: {n_mels: 40}\nnoise:\n  - {type: time_mask, ratio: 0.2, span: 5}\n")
    audio = sorted((repo / "data/espeak_words/train").rglob("*.flac"))[0]
    assert main(["corrupt", str(config), "--audio", str(audio), "--samples", "2"]) == 0
    out = capsys.readouterr().out
    assert "1. time_mask (prob 1)" in out and "40 logmel bins" in out
    lines = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert len(lines) == 2
    for line in lines:
        corrupted, total = line.split(": ")[1].split(" frames")[0].split("/")
        assert int(corrupted) == round(0.2 * int(total))  # exactly the asked ratio


def test_the_final_evaluation_decodes_a_fixed_sample_of_the_training_set(repo, tmp_path):
    config = noisy_config(repo, [])
    config = load_config_dict({**to_dict(config), "data": {**to_dict(config)["data"], "train_eval_sentences": 10}})
    task = TextTask(config, tmp_path)
    sample = task.train_sample()
    assert len(sample) == 10 and len(task.data.train) > 10
    assert sample == TextTask(config, tmp_path).train_sample()  # the same sentences every time
    assert all(seq in task.data.train for seq in sample)
    metrics = task.final_metrics()
    assert metrics["train_eval_sequences"] == 10 and metrics["train_sequences"] == len(task.data.train)
    short = [s for s in task.data.heldout if len(s) - 2 <= 20]
    assert 0 < len(short) and 0.0 <= metrics["heldout_exact_match_le20"] <= 1.0
