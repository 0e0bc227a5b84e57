"""Regression: a speech run trains with the regulariser its config names, logs its term, exports and reloads it.

(Speech runs used to drop `regularize:` silently and train a plain autoencoder.)
"""

import json

import pytest
import torch

from seqae.config import load_config_dict
from seqae.export import export_run, load_encoder
from seqae.models.bottleneck import VariationalBottleneck
from seqae.runs import load_run
from seqae.train import pretrain

FIXTURE = "data/espeak_words"


@pytest.mark.slow
@pytest.mark.parametrize("reg, term", [
    ({"variational": True, "kl_anneal_steps": 2}, "kl"),
    ({"sparse": "l1"}, "sparse_l1"),
    ({"sparse": "kl"}, "sparse_kl"),
    ({"contractive_weight": 0.1}, "contractive"),
])
def test_a_regularised_speech_run_trains_logs_exports_and_reloads(repo, tmp_path, speech_feature_cache, reg, term):
    config = load_config_dict({
        "task": "speech",
        "data": {"train": str(repo / FIXTURE / "train/manifest.jsonl"),
                 "heldout": str(repo / FIXTURE / "test/manifest.jsonl"), "max_len": 200, "max_tokens": 2000},
        "features": {"n_mels": 24, "cache_dir": str(speech_feature_cache)},
        "model": {"encoder": "gru", "decoder": "gru", "embed_dim": 16, "hidden_dim": 16, "decoder_dim": 16,
                  "prenet_dim": 16, "bottleneck_dim": 8, "pooling": "mean", "dropout": 0.0},
        "regularize": reg,
        "train": {"max_steps": 4, "threads": 1, "progress": False, "log_every": 1, "eval_every": 0,
                  "checkpoint_every": 4, "warmup_steps": 1},
    })
    pretrain(config, tmp_path / "run")
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    values = [r[term] for r in records if "loss" in r and "eval" not in r]
    assert len(values) == 4 and all(v >= 0 for v in values)
    assert any(v > 0 for v in values)

    run = load_run(tmp_path / "run")
    assert run.config.regularize == config.regularize
    assert isinstance(run.model.bottleneck, VariationalBottleneck) == bool(reg.get("variational"))
    if "sparse" in reg:
        assert run.model.bottleneck.sparse == reg["sparse"]
    assert run.model.contractive_weight == reg.get("contractive_weight", 0.0)

    export = export_run(tmp_path / "run", tmp_path / "export")
    encoder = load_encoder(export)
    expected = {"variational": "variational", "sparse": f"sparse_{reg.get('sparse')}"}
    described = next((v for k, v in expected.items() if k in reg), "none")
    assert encoder.config["bottleneck"]["regularizer"] == described
    assert isinstance(encoder.bottleneck, VariationalBottleneck) == bool(reg.get("variational"))
    frames = torch.randn(2, 40, 24)
    lengths = torch.tensor([40, 31])
    z_run, _, _ = run.model.eval().encode(frames, lengths)  # eval: z is the posterior mean
    torch.testing.assert_close(encoder.encode_inputs(frames, lengths).z, z_run)
