"""Fine-tuning: CTC decoding and error rates, the CTC and translation models, frozen / layer-weighted encoders,
pretrained vs scratch initialisation, the encoder's own learning rate, configs, and short runs with resume."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from conftest import tiny_text_config

from seqae import load_encoder
from seqae.cli import main
from seqae.config import ConfigError, load_config_dict, to_dict
from seqae.export import PretrainedEncoder, build_modules, export_run
from seqae.finetune import (
    FinetuneConfig,
    finetune,
    init_encoder,
    labelled_subset,
    load_finetune_config,
    make_finetune_optimizer,
)
from seqae.finetune.asr import CtcModel
from seqae.finetune.config import DecoderConfig
from seqae.finetune.ctc import CharVocab, ctc_greedy_decode, ctc_min_frames, error_rates, normalize_transcript
from seqae.finetune.translate import _Stepper, build_translator, read_pairs
from seqae.frontend.features import FeatureExtractor
from seqae.models.decoders import TransformerDecoder
from seqae.train import pretrain

WORDS = "data/espeak_words"


pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


def encoder_config(kind: str, *, encoder: str = "gru", frontend: str = "conv4", layers: int = 2) -> dict:
    """A config.json of an export, written by hand (tiny widths): `model` builds it, the rest describes it."""
    model = {"encoder": encoder, "embed_dim": 12, "hidden_dim": 8 if encoder != "transformer" else 16,
             "encoder_layers": layers, "dropout": 0.0, "num_heads": 2, "ff_dim": 24, "max_positions": 64,
             "pooling": "mean", "bottleneck_dim": 6, "frontend": frontend}
    if kind == "text":
        fe = {"type": "embedding", "vocab_size": 50, "dim": 12, "max_len": 32}
    else:
        fe = {"type": frontend, "feature_dim": 8, "dim": 12, "frame_rate_hz": 25.0}
    return {"kind": kind, "model": model, "regularize": {}, "encoder": {"type": encoder},
            "bottleneck": {"pooling": "mean", "dim": 6, "regularizer": "none"}, "frontend": fe}


def make_encoder(kind: str, **kw) -> PretrainedEncoder:
    config = encoder_config(kind, **kw)
    stack, bottleneck = build_modules(config)
    extractor = FeatureExtractor(n_mels=8) if kind == "speech" else None
    return PretrainedEncoder(config=config, encoder=stack, bottleneck=bottleneck, feature_extractor=extractor)


# ---------------------------------------------------------------------------------------------------------------------
# CTC pieces


def one_hot_log_probs(paths: list[list[int]], V: int) -> torch.Tensor:
    T = max(len(p) for p in paths)
    logits = torch.full((len(paths), T, V), -5.0)
    for b, path in enumerate(paths):
        for t, c in enumerate(path):
            logits[b, t, c] = 5.0
    return logits.log_softmax(-1)  # (B, T, V)


def test_greedy_ctc_merges_repeats_drops_blanks_and_reads_only_real_frames():
    log_probs = one_hot_log_probs([[1, 1, 0, 1, 2, 2, 0, 3], [0, 2, 0, 2, 2, 1, 1, 1]], V=4)
    lengths = torch.tensor([8, 5])
    assert ctc_greedy_decode(log_probs, lengths) == [[1, 1, 2, 3], [2, 2]]  # row 2: frames 5.. are padding
    assert ctc_greedy_decode(one_hot_log_probs([[0, 0, 0]], 4), torch.tensor([3])) == [[]]


def test_ctc_min_frames_counts_a_blank_between_repeats():
    assert ctc_min_frames([1, 1, 2]) == 4
    assert ctc_min_frames([1, 2, 3]) == 3
    assert ctc_min_frames([]) == 0


def test_error_rates_on_known_strings():
    r = error_rates(["the cat sat", "hello world"], ["the cat sit", "hello"])
    assert r["wer"] == pytest.approx(2 / 5)  # one substitution, one deletion, 5 reference words
    assert r["cer"] == pytest.approx(7 / 22)  # one substitution + " world" deleted (6), 11 + 11 characters
    assert error_rates(["a b"], ["a b"])["wer"] == 0.0
    with pytest.raises(ValueError, match="2 references but 1"):
        error_rates(["a", "b"], ["a"])


def test_transcripts_are_normalised_and_characters_round_trip():
    assert normalize_transcript("Old-world software, \u201cdon\u2019t\u201d PANIC!") == "old world software don't panic"
    assert normalize_transcript("'Tis 42 -- 'quoted'.") == "tis quoted"
    vocab = CharVocab.from_transcripts(["ab c", "b'a"])
    assert vocab.chars == (" ", "'", "a", "b", "c") and vocab.num_classes == 6
    assert vocab.decode(vocab.encode("cab 'a")) == "cab 'a"
    with pytest.raises(ValueError, match=r"\['z'\]"):
        vocab.encode("zab")


# ---------------------------------------------------------------------------------------------------------------------
# The CTC model


def frames(lengths: list[int], F: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    x = torch.randn(len(lengths), max(lengths), F)
    lengths_t = torch.tensor(lengths)
    x[torch.arange(max(lengths))[None, :] >= lengths_t[:, None]] = 0.0  # (B, T, F) zero padding
    return x, lengths_t


@pytest.mark.parametrize("encoder", ["gru", "transformer"])
def test_ctc_output_lengths_follow_the_conv_subsampling(encoder):
    model = CtcModel(encoder=make_encoder("speech", encoder=encoder, frontend="conv4"), num_classes=5).eval()
    x, lengths = frames([40, 23, 7])
    log_probs, out_lengths = model(x, lengths)
    expected = torch.div(torch.div(lengths - 1, 2, rounding_mode="floor") - 1, 2, rounding_mode="floor")
    assert out_lengths.tolist() == expected.tolist() == [9, 5, 1]
    assert out_lengths.tolist() == model.output_lengths(lengths).tolist()
    assert log_probs.shape == (3, 9, 5)
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(3, 9))
    alone, _ = model(x[1:2, :23], lengths[1:2])  # padding does not change a row's output
    torch.testing.assert_close(log_probs[1, :5], alone[0, :5], atol=1e-5, rtol=1e-5)


def ctc_batch(model: CtcModel) -> dict:
    x, lengths = frames([40, 36])
    return {"frames": x, "lengths": lengths, "targets": torch.tensor([1, 2, 3, 2, 1, 3, 3]),
            "target_lengths": torch.tensor([3, 4])}


def ctc_step(model: CtcModel, optimizer, batch: dict) -> float:
    log_probs, out_lengths = model(batch["frames"], batch["lengths"])
    loss = model.ctc_loss(log_probs, out_lengths, batch["targets"], batch["target_lengths"])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def test_layer_weights_are_a_softmax_that_trains():
    model = CtcModel(encoder=make_encoder("speech", layers=3), num_classes=4, layer_weights=True)
    assert model.layer_mixture().tolist() == pytest.approx([1 / 3] * 3)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    batch = ctc_batch(model)
    for _ in range(5):
        ctc_step(model, optimizer, batch)
    mixture = model.layer_mixture()
    assert float(mixture.detach().sum()) == pytest.approx(1.0)
    assert (mixture - 1 / 3).abs().max() > 1e-3  # the weights moved
    with torch.no_grad():
        model.layer_logits.copy_(torch.tensor([0.0, 0.0, 50.0]))  # all weight on the top layer = no layer_weights
        top = CtcModel(encoder=model.encoder, num_classes=4)
        top.head.load_state_dict(model.head.state_dict())
        torch.testing.assert_close(model.eval()(*frames([40]))[0], top.eval()(*frames([40]))[0])


def test_a_frozen_encoder_keeps_its_weights_and_eval_mode_while_the_head_learns():
    model = CtcModel(encoder=make_encoder("speech"), num_classes=4, freeze_encoder=True, layer_weights=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    assert not model.encoder.training and model.head.training
    cfg = load_config_dict({"data": {"train": "x"}, "encoder": "x", "encoder_lr": 1e-4}, FinetuneConfig).train
    optimizer = make_finetune_optimizer(model, cfg, 1e-4)
    assert all(not name.startswith("encoder.") for name, p in model.named_parameters()
               if any(p is q for g in optimizer.param_groups for q in g["params"]))
    for _ in range(2):
        ctc_step(model, optimizer, ctc_batch(model))
    after = model.state_dict()
    for name, value in before.items():
        if name.startswith("encoder."):
            torch.testing.assert_close(after[name], value, atol=0, rtol=0)
    assert not torch.equal(after["head.weight"], before["head.weight"])
    assert not torch.equal(after["layer_logits"], before["layer_logits"])


def test_the_encoder_steps_with_its_own_learning_rate():
    model = CtcModel(encoder=make_encoder("speech"), num_classes=4)
    cfg = load_config_dict({"data": {"train": "x"}, "encoder": "x", "train": {"lr": 0.01, "weight_decay": 0.0}},
                           FinetuneConfig).train
    optimizer = make_finetune_optimizer(model, cfg, 0.001)
    before = {k: v.clone() for k, v in model.named_parameters()}
    for group in optimizer.param_groups:  # what the training loop does before each step
        group["lr"] = 0.01
    ctc_step(model, optimizer, ctc_batch(model))
    assert all(group["lr"] == 0.01 for group in optimizer.param_groups)  # the loop's value is left in place
    for name, p in model.named_parameters():
        moved = (p.detach() - before[name]).abs()
        moved = moved[moved > 0]  # Adam's first step moves each parameter with a gradient by lr (sign of g)
        if moved.numel():
            expected = 0.001 if name.startswith("encoder.") else 0.01
            torch.testing.assert_close(moved.max(), torch.tensor(expected), rtol=1e-3, atol=0)


def test_labelled_subset_is_a_seeded_sorted_sample():
    a = labelled_subset(100, 0.1, seed=3)
    assert len(a) == 10 and a == sorted(a) and len(set(a)) == 10 and a == labelled_subset(100, 0.1, seed=3)
    assert a != labelled_subset(100, 0.1, seed=4)
    assert labelled_subset(7, 1.0, seed=0) == list(range(7))
    assert len(labelled_subset(5, 0.01, seed=0)) == 1


# ---------------------------------------------------------------------------------------------------------------------
# Translation model


def test_cached_step_decoding_equals_teacher_forcing():
    torch.manual_seed(0)
    model = build_translator(make_encoder("text", encoder="transformer"),
                             DecoderConfig(embed_dim=16, dim=16, layers=2, num_heads=2, ff_dim=24, dropout=0.0), 30)
    model.eval()
    src = torch.tensor([[2, 7, 8, 9, 10, 3], [2, 11, 12, 3, 0, 0]])  # ragged sources
    src_lengths = torch.tensor([6, 4])
    tgt = torch.tensor([[2, 5, 6, 7, 8], [2, 9, 9, 4, 10]])
    full = model(src, src_lengths, tgt).log_softmax(-1)  # (B, T, V)
    memory, mask = model.encode(src, src_lengths)
    stepper = _Stepper(model.target, memory, mask)
    state = stepper.start(torch.arange(2))
    for t in range(tgt.shape[1]):
        log_probs, state = stepper.step(tgt[:, t], state)
        torch.testing.assert_close(log_probs, full[:, t], atol=1e-5, rtol=1e-5)


def test_translation_of_a_batch_equals_each_sentence_alone_and_beam_one_is_greedy():
    torch.manual_seed(0)
    model = build_translator(make_encoder("text"), DecoderConfig(embed_dim=16, dim=16, layers=1, num_heads=2,
                                                                 ff_dim=24, dropout=0.0), 30).eval()
    src = torch.tensor([[2, 7, 8, 9, 10, 3], [2, 11, 12, 3, 0, 0]])
    lengths = torch.tensor([6, 4])
    tokens, out_lengths = model.translate(src, lengths, max_len=8)
    alone, alone_len = model.translate(src[1:, :4], lengths[1:], max_len=8)
    assert int(alone_len[0]) == int(out_lengths[1])
    assert alone[0, : int(alone_len[0])].tolist() == tokens[1, : int(out_lengths[1])].tolist()
    beam, _ = model.translate(src, lengths, max_len=8, beam_size=1)
    assert torch.equal(beam, tokens)
    beam3, beam3_lengths = model.translate(src, lengths, max_len=8, beam_size=3)
    assert beam3.shape[0] == 2 and bool((beam3[:, 0] == 2).all()) and bool((beam3_lengths <= 8).all())


def test_tied_output_layer_and_a_bridge_when_widths_differ():
    model = build_translator(make_encoder("text"), DecoderConfig(embed_dim=24, dim=32, num_heads=2), 40)
    target = model.target
    assert "out_proj.weight" in dict(target.named_parameters()) and target.out_proj.weight.shape == (24, 32)
    h = torch.randn(3, 32)  # tied: logits are the projected state against the embedding matrix, plus a bias
    torch.testing.assert_close(target.logits(h), target.out_proj(h) @ target.embedding.weight.T + target.out_bias)
    assert isinstance(model.bridge, torch.nn.Linear) and model.bridge.in_features == 16  # bidirectional GRU of 8
    assert isinstance(target.decoder, TransformerDecoder)


def test_read_pairs_counts_malformed_lines_and_strict_names_them(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("Hallo Welt.\tHello world.\n\nkein Tab hier\n\tleer\nJa.\tYes.\n", encoding="utf-8")
    pairs, stats = read_pairs(str(path), "data.train")
    assert pairs == [("Hallo Welt.", "Hello world."), ("Ja.", "Yes.")]
    assert stats["malformed"] == 2 and stats["blank"] == 1 and stats["malformed_lines"] == [f"{path}:3", f"{path}:4"]
    with pytest.raises(ConfigError, match=r"data.train: .*pairs.tsv:3: 1 column; expected 'source<TAB>target'"):
        read_pairs(str(path), "data.train", strict=True)
    with pytest.raises(ConfigError, match="pairs file not found"):
        read_pairs(str(tmp_path / "missing.tsv"), "data.test")


# ---------------------------------------------------------------------------------------------------------------------
# Configs


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="architecture: required when encoder is null"):
        load_config_dict({"encoder": None, "data": {"train": "x"}}, FinetuneConfig)
    with pytest.raises(ConfigError, match="layer_weights: only for task: asr"):
        load_config_dict({"task": "translate", "encoder": "x", "layer_weights": True, "data": {"train": "x"}},
                         FinetuneConfig)
    with pytest.raises(ConfigError, match="decoder.layer: unknown key"):
        load_config_dict({"encoder": "x", "data": {"train": "x"}, "decoder": {"layer": 2}}, FinetuneConfig)
    with pytest.raises(ConfigError, match=r"label_fraction: must be in \(0, 1\]"):
        load_config_dict({"encoder": "x", "data": {"train": "x"}, "label_fraction": 0}, FinetuneConfig)
    with pytest.raises(ConfigError, match="noise: only for task: asr"):
        load_config_dict({"task": "translate", "encoder": "x", "data": {"train": "x"},
                          "noise": [{"type": "time_mask"}]}, FinetuneConfig)
    with pytest.raises(ConfigError, match=r"noise\[0\].type: 'delete' is a text noise"):
        load_config_dict({"encoder": "x", "data": {"train": "x"}, "noise": [{"type": "delete"}]}, FinetuneConfig)
    path = tmp_path / "ft.yaml"
    path.write_text("task: translate\nencoder: x\ndata: {train: x}\n")
    assert load_finetune_config(path, ["encoder=null", "architecture=y"]).encoder_spec == "y"
    assert main(["finetune", "asr", str(path), "--run-dir", str(tmp_path / "run")]) == 2  # task mismatch


# ---------------------------------------------------------------------------------------------------------------------
# Short runs on real exports


def tiny_train(steps: int) -> dict:
    return {"max_steps": steps, "warmup_steps": 1, "log_every": 1, "eval_every": 2, "checkpoint_every": 2,
            "progress": False, "threads": 1, "lr": 0.005}


@pytest.fixture(scope="module")
def text_export(tmp_path_factory, request) -> Path:
    root, repo = tmp_path_factory.mktemp("text_export"), request.config.rootpath
    config = {**tiny_text_config(repo, encoder="transformer"), "train": {**tiny_train(2), "eval_every": 0}}
    pretrain(load_config_dict(config), root / "run")
    return export_run(root / "run", root / "export")


@pytest.fixture(scope="module")
def speech_export(tmp_path_factory, request) -> Path:
    root, repo = tmp_path_factory.mktemp("speech_export"), request.config.rootpath
    config = {"task": "speech",
              "data": {"train": str(repo / WORDS / "train/manifest.jsonl"),
                       "heldout": str(repo / WORDS / "test/manifest.jsonl"), "max_len": 200, "max_tokens": 2000},
              "features": {"n_mels": 16, "cache_dir": str(root / "features")},
              "model": {"encoder": "gru", "decoder": "gru", "frontend": "conv2", "embed_dim": 16, "hidden_dim": 16,
                        "encoder_layers": 2, "decoder_dim": 16, "prenet_dim": 16, "bottleneck_dim": 8,
                        "pooling": "mean", "dropout": 0.0},
              "train": {**tiny_train(2), "eval_every": 0}}
    pretrain(load_config_dict(config), root / "run")
    return export_run(root / "run", root / "export")


def test_scratch_and_pretrained_differ_only_in_initial_weights(text_export):
    base = {"task": "translate", "data": {"train": "x"}, "train": {"seed": 5}}
    pre = load_config_dict({**base, "encoder": str(text_export)}, FinetuneConfig)
    scratch = load_config_dict({**base, "encoder": None, "architecture": str(text_export)}, FinetuneConfig)
    dec = DecoderConfig(embed_dim=16, dim=16, num_heads=2, ff_dim=24, layers=1)
    models = {}
    for name, config in (("pre", pre), ("scratch", scratch), ("scratch2", scratch)):
        encoder = init_encoder(config, kind="text")
        models[name] = build_translator(encoder, dec, 40)
    a, b = models["pre"].state_dict(), models["scratch"].state_dict()
    assert list(a) == list(b) and all(a[k].shape == b[k].shape for k in a)
    exported = load_encoder(text_export).state_dict()
    for k, v in exported.items():
        torch.testing.assert_close(a[f"encoder.{k}"], v, atol=0, rtol=0)
    assert any(not torch.equal(b[f"encoder.{k}"], v) for k, v in exported.items() if v.is_floating_point())
    for k in a:  # heads start identical; a scratch encoder is the same at the same seed
        if not k.startswith("encoder."):
            torch.testing.assert_close(a[k], b[k], atol=0, rtol=0)
        torch.testing.assert_close(b[k], models["scratch2"].state_dict()[k], atol=0, rtol=0)
    assert models["pre"].encoder.tokenizer.serialized() == models["scratch"].encoder.tokenizer.serialized()
    with pytest.raises(ConfigError, match="is a text encoder; task asr needs speech"):
        init_encoder(load_config_dict({**base, "task": "asr", "encoder": str(text_export)}, FinetuneConfig),
                     kind="speech")


def asr_config(repo: Path, export: Path, tmp: Path, **extra) -> FinetuneConfig:
    return load_config_dict({
        "task": "asr", "encoder": str(export), "label_fraction": 0.5, "layer_weights": True,
        "data": {"train": str(repo / WORDS / "train/manifest.jsonl"), "test": str(repo / WORDS / "test/manifest.jsonl"),
                 "max_tokens": 3000, "eval_sentences": 4, "feature_cache": str(tmp / "features")},
        "train": tiny_train(4), **extra}, FinetuneConfig)


def test_asr_run_logs_wer_and_a_resumed_run_logs_the_same_losses(speech_export, tmp_path, request):
    repo = request.config.rootpath
    config = asr_config(repo, speech_export, tmp_path)
    full = finetune(config, tmp_path / "full")
    assert full["step"] == 4 and full["labelled_utterances"] == 24 and full["test_utterances"] == 8
    assert 0.0 <= full["test_cer"] and len(full["layer_weights"]) == 2
    stats = json.loads((tmp_path / "full" / "data_stats.json").read_text())
    assert stats["train"]["labelled"] == 24 and stats["train"]["unreadable"] == 0
    assert json.loads((tmp_path / "full" / "characters.json").read_text())["blank"] == 0
    finetune(config, tmp_path / "resumed", stop_after=2)
    resumed = finetune(config, tmp_path / "resumed")

    def losses(run):
        lines = (tmp_path / run / "metrics.jsonl").read_text().splitlines()
        return [(r["step"], r["loss"]) for r in map(json.loads, lines) if "loss" in r and "eval" not in r]

    assert losses("resumed") == losses("full") and len(losses("full")) == 4
    assert resumed["test_cer"] == full["test_cer"]
    with pytest.raises(ConfigError, match="started with another config"):
        finetune(asr_config(repo, speech_export, tmp_path, label_fraction=0.25), tmp_path / "full")


def test_specaugment_noise_masks_training_batches_only_reproducibly_and_resumes(speech_export, tmp_path, request):
    from seqae.finetune.asr import AsrTask

    noise = [{"type": "time_mask", "ratio": 0.2, "span": 3}, {"type": "freq_mask", "max_width": 3, "num_masks": 1}]
    config = asr_config(request.config.rootpath, speech_export, tmp_path, noise=noise)
    (tmp_path / "task").mkdir()
    (tmp_path / "clean").mkdir()
    task = AsrTask(config, tmp_path / "task")
    clean = AsrTask(asr_config(request.config.rootpath, speech_export, tmp_path), tmp_path / "clean")
    batch, again, plain = task.batch([0, 3], epoch=1), task.batch([0, 3], epoch=1), clean.batch([0, 3], epoch=1)
    assert torch.equal(batch["frames"], again["frames"])  # (seed, epoch, index) fixes the noise
    assert not torch.equal(batch["frames"], plain["frames"]) and torch.equal(batch["lengths"], plain["lengths"])
    assert not torch.equal(task.batch([0, 3], epoch=2)["frames"], batch["frames"])
    assert torch.equal(batch["targets"], plain["targets"])
    assert "time_mask" in task.summary()
    hyps = task.transcribe(task.data.train[:2])[0]  # evaluation reads the clean features: deterministic
    assert task.transcribe(task.data.train[:2])[0] == hyps
    full = finetune(config, tmp_path / "full")
    finetune(config, tmp_path / "resumed", stop_after=2)
    resumed = finetune(config, tmp_path / "resumed")
    losses = {run: [r["loss"] for r in map(json.loads, (tmp_path / run / "metrics.jsonl").read_text().splitlines())
                    if "loss" in r and "eval" not in r] for run in ("full", "resumed")}
    assert losses["full"] == losses["resumed"] and resumed["test_cer"] == full["test_cer"]


def test_ctc_overfits_a_few_utterances(speech_export, tmp_path, request):
    config = asr_config(request.config.rootpath, speech_export, tmp_path, label_fraction=0.05,
                        train={**tiny_train(60), "eval_every": 0, "checkpoint_every": 60, "warmup_steps": 5})
    metrics = finetune(config, tmp_path / "overfit")
    losses = [r["ctc"] for r in map(json.loads, (tmp_path / "overfit" / "metrics.jsonl").read_text().splitlines())
              if "ctc" in r]
    assert metrics["labelled_utterances"] == 2
    assert losses[-1] < 0.5 * losses[0] and math.isfinite(losses[-1])


def test_translate_run_on_a_pairs_file(text_export, tmp_path):
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("".join(f"Das ist Satz {w}.\tThis is sentence {w}.\n" for w in
                             "eins zwei drei vier fünf sechs sieben acht neun zehn".split()) + "kaputt\n")
    config = load_config_dict({
        "task": "translate", "encoder": None, "architecture": str(text_export), "freeze_encoder": False,
        "encoder_lr": 0.001, "data": {"train": str(pairs), "heldout": str(pairs), "test": str(pairs),
                                      "max_len": 32, "max_tokens": 400, "eval_sentences": 4},
        "target_tokenizer": {"vocab_size": 40},
        "decoder": {"embed_dim": 16, "dim": 16, "layers": 1, "num_heads": 2, "ff_dim": 24, "dropout": 0.0},
        "train": {**tiny_train(4), "beam_size": 2}}, FinetuneConfig)
    metrics = finetune(config, tmp_path / "run")
    assert metrics["init"] == "scratch" and metrics["labelled_pairs"] == 10 and metrics["test_sentences"] == 10
    assert 0.0 <= metrics["test_bleu"] <= 100.0 and 0.0 <= metrics["test_chrf"] <= 100.0
    assert (tmp_path / "run" / "target_tokenizer.model").is_file()
    stats = json.loads((tmp_path / "run" / "data_stats.json").read_text())
    assert stats["train"]["malformed"] == 1 and stats["train"]["malformed_lines"] == [f"{pairs}:11"]
    saved = load_config_dict(yaml.safe_load((tmp_path / "run" / "config.yaml").read_text()),
                             FinetuneConfig)
    assert to_dict(saved) == to_dict(config)


def test_a_fine_tuned_recogniser_transcribes_files_as_its_evaluation_did(speech_export, tmp_path, request, capsys):
    from seqae import load_recogniser

    repo = request.config.rootpath
    metrics = finetune(asr_config(repo, speech_export, tmp_path), tmp_path / "asr")
    manifest = repo / WORDS / "test/manifest.jsonl"
    files = [repo / WORDS / "test" / json.loads(line)["path"] for line in manifest.read_text().splitlines()[:3]]
    run = load_recogniser(tmp_path / "asr")
    assert run.step == 4 and run.transcribe(files) == [e["hyp"] for e in metrics["test_examples"]]
    capsys.readouterr()
    assert main(["transcribe", str(tmp_path / "asr"), str(files[0]), "--manifest", str(manifest)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 9 and lines[0] == f"{files[0]}\t{metrics['test_examples'][0]['hyp']}"
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    assert main(["transcribe", str(tmp_path / "asr"), str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0]
    assert main(["transcribe", str(speech_export), str(files[0])]) == 2  # an export, not a fine-tuned run
