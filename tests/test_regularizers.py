"""Regularised bottlenecks: variational (KL, annealing, free bits), sparse (L1, KL), contractive (Jacobian norm)."""

import json

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from seqae.config import ModelConfig, RegularizerConfig, load_config_dict
from seqae.models.bottleneck import Bottleneck, VariationalBottleneck, contractive_penalty, kl_sparsity
from seqae.models.builder import build_token_autoencoder
from seqae.models.encoders import EncoderOutput, RNNEncoder
from seqae.train import pretrain


def enc_output(B=4, T=5, D=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    states = torch.randn(B, T, D, generator=g)
    return EncoderOutput(states=states, lengths=torch.full((B,), T), final=states[:, -1], layers=[states])


def test_variational_kl_matches_torch_distributions_and_anneals():
    torch.manual_seed(0)
    vb = VariationalBottleneck(input_dim=6, bottleneck_dim=3, pooling="mean", kl_weight=2.0, anneal_steps=10)
    enc = enc_output()
    mu, logvar = vb.proj(vb.pool(enc)).chunk(2, dim=-1)
    expected = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).mean(0).sum()
    vb.train()
    for step, scale in [(0, 0.0), (5, 0.5), (10, 1.0), (50, 1.0)]:
        vb.set_step(step)
        _, aux = vb(enc)
        torch.testing.assert_close(aux["kl"], 2.0 * scale * expected)
    vb.eval()
    z, aux = vb(enc)
    torch.testing.assert_close(z, mu)  # the mean at evaluation
    assert aux == {}


def test_free_bits_floor_each_dimension():
    vb = VariationalBottleneck(input_dim=6, bottleneck_dim=3, pooling="mean", free_bits=100.0)
    vb.train()
    _, aux = vb(enc_output())
    torch.testing.assert_close(aux["kl"], torch.tensor(300.0))  # every dimension below the floor


def test_reparameterisation_samples_around_mu():
    torch.manual_seed(0)
    vb = VariationalBottleneck(input_dim=6, bottleneck_dim=3, pooling="last")
    vb.train()
    enc = enc_output(B=1)
    samples = torch.stack([vb(enc)[0][0] for _ in range(4000)])
    mu, logvar = vb.proj(vb.pool(enc)).chunk(2, dim=-1)
    torch.testing.assert_close(samples.mean(0), mu[0].detach(), atol=0.1, rtol=0)
    torch.testing.assert_close(samples.std(0), (0.5 * logvar[0]).exp().detach(), atol=0.1, rtol=0)


def test_sparse_penalties():
    bl1 = Bottleneck(input_dim=6, bottleneck_dim=4, pooling="mean", sparse="l1", sparse_weight=0.5).train()
    z, aux = bl1(enc_output())
    torch.testing.assert_close(aux["sparse_l1"], 0.5 * z.abs().mean())
    bkl = Bottleneck(input_dim=6, bottleneck_dim=4, pooling="mean", sparse="kl", sparse_weight=1.0,
                     sparse_target=0.1).train()
    z, aux = bkl(enc_output())
    assert bool(((z > 0) & (z < 1)).all())
    rho_hat = z.mean(0)
    expected = (0.1 * (0.1 / rho_hat).log() + 0.9 * (0.9 / (1 - rho_hat)).log()).sum()
    torch.testing.assert_close(aux["sparse_kl"], expected)
    assert float(kl_sparsity(torch.full((8, 3), 0.1), 0.1)) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.slow
def test_contractive_estimate_matches_exact_jacobian_norm():
    torch.manual_seed(0)
    encoder = RNNEncoder(input_dim=3, hidden_dim=4, bidirectional=True)
    bottleneck = Bottleneck(input_dim=8, bottleneck_dim=2, pooling="mean")
    x = torch.randn(2, 5, 3, requires_grad=True)
    lengths = torch.tensor([5, 3])

    def z_of(inputs):
        return bottleneck(encoder(inputs, lengths))[0]

    jac = torch.autograd.functional.jacobian(z_of, x)  # (B, Z, B, T, E)
    exact = sum(jac[b, :, b].pow(2).sum() for b in range(2)) / 2
    z = z_of(x)
    estimate = contractive_penalty(z, x, num_projections=4000)
    torch.testing.assert_close(estimate, exact, rtol=0.05, atol=0)
    assert estimate.requires_grad  # the penalty trains the encoder


@pytest.mark.parametrize("reg, term", [
    ({"variational": True, "kl_anneal_steps": 4, "free_bits": 0.01}, "kl"),
    ({"sparse": "l1"}, "sparse_l1"),
    ({"sparse": "kl"}, "sparse_kl"),
    ({"contractive_weight": 0.1}, "contractive"),
])
def test_each_regulariser_is_a_config_switch_that_logs_its_term(repo, tmp_path, reg, term):
    config = load_config_dict({
        "data": {"train": str(repo / "data/fortunes/train.txt"), "heldout": str(repo / "data/fortunes/heldout.txt"),
                 "max_train_sentences": 32, "max_len": 16, "max_tokens": 256, "eval_sentences": 8},
        "tokenizer": {"vocab_size": 100},
        "model": {"embed_dim": 16, "hidden_dim": 16, "decoder_dim": 16, "bottleneck_dim": 8},
        "regularize": reg,
        "train": {"max_steps": 4, "log_every": 1, "eval_every": 0, "checkpoint_every": 4, "progress": False},
    })
    pretrain(config, tmp_path / "run")
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    values = [r[term] for r in records if "loss" in r and "eval" not in r]
    assert len(values) == 4 and all(v >= 0 for v in values)
    if term == "kl":
        assert values[0] == 0.0 and values[-1] > 0  # annealed from zero


def test_regulariser_config_errors():
    with pytest.raises(Exception, match="regularize.sparse: 'kl'"):
        load_config_dict({"regularize": {"variational": True, "sparse": "kl"}})
    with pytest.raises(Exception, match="regularize.free_bits: must be >= 0"):
        load_config_dict({"regularize": {"free_bits": -1}})


def test_variational_model_round_trips_through_builder():
    m = build_token_autoencoder(ModelConfig(embed_dim=8, hidden_dim=8, decoder_dim=8, bottleneck_dim=4), 20,
                                regularize=RegularizerConfig(variational=True))
    assert m.bottleneck.proj.out_features == 8
