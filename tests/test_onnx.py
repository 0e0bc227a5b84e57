"""ONNX export: the padded (export-friendly) RNN equals the packed encoder on ragged batches; onnxruntime equals
PyTorch on a batch of another size and length than the traced one, for GRU, LSTM and Transformer encoders."""

from __future__ import annotations

import pytest
import torch

from seqae.export import PretrainedEncoder, build_modules
from seqae.export.onnx import (
    OnnxEncoder,
    PaddedRNN,
    example_inputs,
    export_onnx,
    gather_time,
    max_abs_diff,
    reverse_index,
    run_onnx,
)
from seqae.models.encoders import RNNEncoder

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


def ragged(lengths: list[int], width: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames [B, T, width] with garbage (not zeros) past each length, so padding that leaks shows."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(len(lengths), max(lengths), width, generator=g) * 3, torch.tensor(lengths)


def test_reverse_index_reverses_within_each_length():
    idx = reverse_index(torch.tensor([3, 1, 5]), 5)
    assert idx.tolist() == [[2, 1, 0, 3, 4], [0, 1, 2, 3, 4], [4, 3, 2, 1, 0]]
    x = torch.arange(15.0).view(3, 5, 1)
    assert torch.equal(gather_time(gather_time(x, idx), idx), x)  # an involution


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("bidirectional", [True, False], ids=["bi", "uni"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_padded_rnn_equals_packed_encoder(cell, bidirectional, num_layers):
    torch.manual_seed(0)
    encoder = RNNEncoder(input_dim=6, hidden_dim=5, num_layers=num_layers, bidirectional=bidirectional,
                         cell=cell).eval()
    padded = PaddedRNN(encoder)
    x, lengths = ragged([7, 1, 4, 7, 2], 6, seed=1)
    want = encoder(x, lengths, return_layers=True)
    got = padded(x, lengths, return_layers=True)
    for name in ("states", "final"):
        torch.testing.assert_close(getattr(got, name), getattr(want, name), atol=1e-5, rtol=0, msg=name)
    assert len(got.layers) == len(want.layers) == num_layers
    for g, w in zip(got.layers, want.layers):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=0)
    assert torch.equal(got.lengths, lengths)


def encoder_config(kind: str, arch: str, pooling: str, frontend: str = "embedding") -> dict:
    """An export's config.json for a small encoder: the `model` section builds it, the others describe it."""
    model = {"encoder": arch, "embed_dim": 12, "hidden_dim": 8, "encoder_layers": 2, "dropout": 0.0, "num_heads": 2,
             "ff_dim": 16, "max_positions": 64, "pooling": pooling, "bottleneck_dim": 5,
             "frontend": "linear" if frontend == "embedding" else frontend}
    encoder = {"type": arch, "max_positions": 64}
    if kind == "text":
        fe = {"type": "embedding", "vocab_size": 30, "dim": 12, "max_len": 32}
        special = {"pad": 0, "unk": 1, "bos": 2, "eos": 3, "mask": 4}
    else:
        fe = {"type": frontend, "feature_dim": 7, "dim": 12, "frame_rate_hz": 50.0}
        special = None
    return {"format": "seqae-encoder", "format_version": 2, "kind": kind, "model": model, "regularize": {},
            "encoder": encoder, "frontend": fe, "bottleneck": {"pooling": pooling, "dim": 5, "regularizer": "none"},
            "special_ids": special}


def random_encoder(config: dict, seed: int = 0) -> PretrainedEncoder:
    torch.manual_seed(seed)
    stack, bottleneck = build_modules(config)
    return PretrainedEncoder(config=config, encoder=stack, bottleneck=bottleneck)


CASES = [("text", "gru", "last", "embedding"), ("text", "lstm", "attention", "embedding"),
         ("text", "transformer", "cls", "embedding"), ("text", "transformer", "mean", "embedding"),
         ("speech", "gru", "mean", "conv2"), ("speech", "lstm", "last", "linear"),
         ("speech", "transformer", "attention", "conv4")]


@pytest.mark.parametrize("kind, arch, pooling, frontend", CASES, ids=["-".join(c) for c in CASES])
def test_export_graph_equals_eager_encoder(kind, arch, pooling, frontend):
    encoder = random_encoder(encoder_config(kind, arch, pooling, frontend))
    x, lengths = example_inputs(encoder, [19, 9, 15, 10])
    if kind == "speech":
        x = x + (x == 0) * 5.0  # garbage past each length
    out = encoder.encode_inputs(x, lengths)
    assert max_abs_diff(OnnxEncoder(encoder)(x, lengths), (out.states, out.lengths, out.z)) <= 1e-5


@pytest.mark.parametrize("kind, arch, pooling, frontend", CASES, ids=["-".join(c) for c in CASES])
def test_onnxruntime_matches_pytorch_on_other_shapes(tmp_path, kind, arch, pooling, frontend):
    pytest.importorskip("onnxruntime")
    encoder = random_encoder(encoder_config(kind, arch, pooling, frontend))
    path = export_onnx(encoder, tmp_path / "encoder.onnx", check=False)  # traced on a batch of 2, T = 12
    x, lengths = example_inputs(encoder, [23, 8, 16, 11, 20], seed=3)  # 5 sequences, T = 23
    states, out_lengths, z = run_onnx(path, x, lengths)
    want = encoder.encode_inputs(x, lengths)
    assert torch.equal(out_lengths, want.lengths)
    assert states.shape == want.states.shape and z.shape == (5, 5)
    assert max_abs_diff((states, z), (want.states, want.z)) <= 1e-4


def test_cli_export_writes_a_checked_onnx_file(repo, tmp_path):
    pytest.importorskip("onnxruntime")
    from seqae.cli import main
    from seqae.config import load_config_dict
    from seqae.train import pretrain

    run = tmp_path / "run"
    pretrain(load_config_dict({
        "data": {"train": str(repo / "data/fortunes/train.txt"), "heldout": None, "heldout_fraction": 0.1,
                 "max_train_sentences": 40, "max_len": 12, "max_tokens": 128, "eval_sentences": 4},
        "tokenizer": {"vocab_size": 80},
        "model": {"encoder": "lstm", "embed_dim": 8, "hidden_dim": 8, "decoder_dim": 8, "bottleneck_dim": 4},
        "train": {"max_steps": 1, "warmup_steps": 1, "eval_every": 0, "progress": False, "threads": 1}}), run)
    assert main(["export", str(run), str(tmp_path / "export"), "--onnx"]) == 0
    from seqae import load_encoder

    encoder = load_encoder(tmp_path / "export")
    x, lengths = encoder.prepare(["One.", "Two words here, and then a few more."])
    states, out_lengths, z = run_onnx(tmp_path / "export/encoder.onnx", x, lengths)
    want = encoder.encode_inputs(x, lengths)
    assert max_abs_diff((states, out_lengths, z), (want.states, want.lengths, want.z)) <= 1e-4
