"""Encoders, bottleneck poolings, decoders and the token autoencoder.

Shapes and lengths under ragged padding; padding never changes a result; gradients reach every parameter;
step-by-step decoding equals teacher forcing; the Transformer's limits; ModelConfig validation; and every
encoder × decoder pair memorises 16 real sentences.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from seqae.config import ConfigError, ModelConfig, RegularizerConfig, load_config_dict
from seqae.eval.metrics import reconstruction_counts, teacher_forced_accuracy
from seqae.frontend.collate import collate_tokens
from seqae.frontend.tokenizer import train_tokenizer
from seqae.generate import greedy_decode
from seqae.models.builder import build_token_autoencoder
from seqae.models.decoders import RNNDecoder, TransformerDecoder
from seqae.models.encoders import RNNEncoder, TransformerEncoder
from seqae.models.layers import MultiHeadAttention

PAD, UNK, BOS, EOS = 0, 1, 2, 3
FORTUNES = Path(__file__).resolve().parents[1] / "data" / "fortunes"
ARCHS = ["gru", "lstm", "transformer"]
ENCODER_POOLINGS = [(e, p) for e in ARCHS for p in ("last", "mean", "attention")] + [("transformer", "cls")]
VOCAB = 23


pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


def tiny_config(**overrides) -> ModelConfig:
    base = dict(embed_dim=12, hidden_dim=16, decoder_dim=16, num_heads=2, ff_dim=24, bottleneck_dim=10,
                memory_slots=3, encoder_layers=2, decoder_layers=2, dropout=0.0, max_positions=32)
    return ModelConfig(**{**base, **overrides})


def tiny_model(seed: int = 0, vocab: int = VOCAB, **overrides):
    torch.manual_seed(seed)
    return build_token_autoencoder(tiny_config(**overrides), vocab, regularize=RegularizerConfig())


def ragged_batch(lengths: list[int], *, seed: int, width: int | None = None, vocab: int = VOCAB,
                 fill: int | None = PAD) -> tuple[torch.Tensor, torch.Tensor]:
    """`[bos, random real tokens, eos]` rows padded to `width`; `fill=None` puts random tokens after the length."""
    gen = torch.Generator().manual_seed(seed)
    width = max(lengths) if width is None else width
    tokens = torch.randint(5, vocab, (len(lengths), width), generator=gen)  # (B, T)
    for b, n in enumerate(lengths):
        tokens[b, 0], tokens[b, n - 1] = BOS, EOS
        if fill is not None:
            tokens[b, n:] = fill
    return tokens, torch.tensor(lengths)


# ---- ModelConfig validation


@pytest.mark.parametrize("encoder", ["gru", "lstm"])
def test_config_cls_pooling_needs_transformer_encoder(encoder):
    with pytest.raises(ConfigError, match=r"^model\.pooling: .*transformer"):
        ModelConfig(encoder=encoder, pooling="cls")
    ModelConfig(encoder="transformer", pooling="cls")  # allowed


def test_config_widths_divisible_by_heads():
    with pytest.raises(ConfigError, match=r"^model\.hidden_dim: .*num_heads"):
        ModelConfig(encoder="transformer", hidden_dim=30, num_heads=4)
    with pytest.raises(ConfigError, match=r"^model\.decoder_dim: .*num_heads"):
        ModelConfig(decoder="transformer", decoder_dim=30, num_heads=4)
    ModelConfig(encoder="gru", decoder="lstm", hidden_dim=30, decoder_dim=30, num_heads=4)  # RNNs have no heads


@pytest.mark.parametrize("name", ["embed_dim", "hidden_dim", "decoder_dim", "encoder_layers", "decoder_layers",
                                  "num_heads", "ff_dim", "bottleneck_dim", "memory_slots", "max_positions"])
@pytest.mark.parametrize("value", [0, -4])
def test_config_sizes_must_be_positive(name, value):
    with pytest.raises(ConfigError, match=rf"^model\.{name}: must be > 0"):
        ModelConfig(**{name: value})


@pytest.mark.parametrize("name", ["dropout", "word_dropout"])
@pytest.mark.parametrize("value", [-0.1, 1.0])
def test_config_probabilities_in_range(name, value):
    with pytest.raises(ConfigError, match=rf"^model\.{name}: "):
        ModelConfig(**{name: value})


def test_config_from_mapping_names_the_key():
    with pytest.raises(ConfigError, match=r"^model\.pooling: .*'cls' needs model\.encoder"):
        load_config_dict({"model": {"encoder": "lstm", "pooling": "cls"}})
    with pytest.raises(ConfigError, match=r"^model\.pooling: got 'max'; allowed: .*'attention'"):
        load_config_dict({"model": {"pooling": "max"}})


# ---- encoders: shapes, lengths, layers, final state


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("return_layers", [True, False])
def test_rnn_encoder_shapes(cell, bidirectional, return_layers):
    torch.manual_seed(0)
    enc = RNNEncoder(input_dim=6, hidden_dim=8, num_layers=2, bidirectional=bidirectional, cell=cell)
    D = 16 if bidirectional else 8
    assert enc.output_dim == D
    x, lengths = torch.randn(3, 9, 6), torch.tensor([5, 2, 7])  # unsorted, and 2 columns past the longest
    out = enc(x, lengths, return_layers=return_layers)
    assert out.states.shape == (3, 9, D)
    assert torch.equal(out.lengths, lengths)
    assert out.final.shape == (3, D)
    assert len(out.layers) == (2 if return_layers else 1)
    assert all(layer.shape == (3, 9, D) for layer in out.layers)
    assert torch.equal(out.layers[-1], out.states)
    for b, n in enumerate(lengths.tolist()):
        for layer in out.layers:
            assert torch.all(layer[b, n:] == 0)  # zeros past each length
            assert torch.all(layer[b, :n].abs().sum(-1) > 0)
        # final: the forward direction's last real state, then the backward direction's state at t=0
        expected = torch.cat([out.states[b, n - 1, :8], out.states[b, 0, 8:]]) if bidirectional \
            else out.states[b, n - 1]
        torch.testing.assert_close(out.final[b], expected)


@pytest.mark.parametrize("cls_token", [True, False])
@pytest.mark.parametrize("return_layers", [True, False])
def test_transformer_encoder_shapes(cls_token, return_layers):
    torch.manual_seed(0)
    enc = TransformerEncoder(input_dim=6, dim=8, num_layers=2, num_heads=2, ff_dim=16, cls_token=cls_token).eval()
    x, lengths = torch.randn(3, 9, 6), torch.tensor([5, 2, 7])
    out = enc(x, lengths, return_layers=return_layers)
    assert out.states.shape == (3, 9, 8)
    assert torch.equal(out.lengths, lengths)
    assert out.final.shape == (3, 8)
    assert len(out.layers) == (3 if return_layers else 1)  # input projection + one per block
    assert all(layer.shape == (3, 9, 8) for layer in out.layers)
    assert torch.equal(out.layers[-1], out.states)
    if return_layers:  # layers[0] is the projected input plus its positions (after the CLS slot, if any)
        offset = int(cls_token)
        expected = enc.input_proj(x) + enc.positions.weight[offset: offset + 9]
        torch.testing.assert_close(out.layers[0], expected)
    if not cls_token:
        torch.testing.assert_close(out.final, out.states[torch.arange(3), lengths - 1])


def test_transformer_encoder_rejects_too_long_input():
    for cls_token in (False, True):
        enc = TransformerEncoder(input_dim=4, dim=4, num_layers=1, num_heads=1, ff_dim=8, max_positions=8,
                                 cls_token=cls_token)
        assert enc(torch.randn(2, 8, 4), torch.tensor([8, 3])).states.shape == (2, 8, 4)  # the limit itself fits
        with pytest.raises(ValueError, match=r"9 positions .*max_positions=8"):
            enc(torch.randn(2, 9, 4), torch.tensor([9, 3]))
    model = tiny_model(encoder="transformer", max_positions=8)  # through the autoencoder as well
    tokens, lengths = ragged_batch([9, 4], seed=0)
    with pytest.raises(ValueError, match=r"max_positions=8"):
        model.encode(tokens, lengths)


def test_transformer_decoder_rejects_decoding_past_max_positions():
    dec = TransformerDecoder(input_dim=4, dim=4, num_layers=1, num_heads=1, ff_dim=8, max_positions=5,
                             bottleneck_dim=3)
    z = torch.randn(2, 3)
    assert dec(torch.randn(2, 5, 4), z).shape == (2, 5, 4)
    with pytest.raises(ValueError, match=r"max_positions=5"):
        dec(torch.randn(2, 6, 4), z)
    state = dec.start(z)
    for _ in range(5):
        _, state = dec.step(torch.randn(2, 4), state)
    with pytest.raises(ValueError, match=r"max_positions=5"):
        dec.step(torch.randn(2, 4), state)


# ---- decoders: shapes, state, reorder


@pytest.mark.parametrize("arch", ARCHS)
def test_decoder_shapes_and_reorder(arch):
    torch.manual_seed(0)
    if arch == "transformer":
        dec = TransformerDecoder(input_dim=6, dim=8, num_layers=2, num_heads=2, ff_dim=16, bottleneck_dim=5,
                                 memory_slots=3)
    else:
        dec = RNNDecoder(input_dim=6, hidden_dim=8, bottleneck_dim=5, num_layers=2, cell=arch)
    assert dec.output_dim == 8
    x, z = torch.randn(3, 7, 6), torch.randn(3, 5)
    assert dec(x, z).shape == (3, 7, 8)
    state = dec.start(z)
    h, state = dec.step(x[:, 0], state)
    assert h.shape == (3, 8)
    # reorder picks rows of the state: stepping the reordered state equals stepping those rows alone
    index = torch.tensor([2, 0, 0])
    h_re, _ = dec.step(x[index, 1], dec.reorder(state, index))
    alone_state = dec.start(z[index])
    _, alone_state = dec.step(x[index, 0], alone_state)
    h_alone, _ = dec.step(x[index, 1], alone_state)
    torch.testing.assert_close(h_re, h_alone, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("encoder", ARCHS)
@pytest.mark.parametrize("decoder", ARCHS)
def test_autoencoder_forward_shapes_and_loss(encoder, decoder):
    model = tiny_model(encoder=encoder, decoder=decoder)
    tokens, lengths = ragged_batch([5, 9, 3], seed=1, width=10)
    out = model(tokens, lengths)
    assert out.logits.shape == (3, 9, VOCAB)
    assert torch.equal(out.targets, tokens[:, 1:])
    assert out.z.shape == (3, 10)
    loss, stats = model.loss(out)
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert stats["tokens"] == int((lengths - 1).sum())


def test_word_dropout_only_in_training_and_keeps_bos_and_pad():
    model = tiny_model(word_dropout=0.5)
    tokens, lengths = ragged_batch([12, 5, 8], seed=2, width=12)
    torch.manual_seed(0)
    model.train()
    inputs = model._decoder_inputs(tokens)  # (B, T-1)
    changed = inputs != tokens[:, :-1]
    assert changed.any()
    assert torch.all(inputs[changed] == UNK)
    keep = (tokens[:, :-1] == BOS) | (tokens[:, :-1] == PAD)
    assert not (changed & keep).any()
    model.eval()
    assert torch.equal(model._decoder_inputs(tokens), tokens[:, :-1])


# ---- padding never changes a result


@pytest.mark.parametrize("encoder, pooling", ENCODER_POOLINGS)
@pytest.mark.parametrize("fill", [PAD, None], ids=["pad", "garbage"])
def test_padding_does_not_change_encoding(encoder, pooling, fill):
    """Each sequence encoded alone equals the same sequence inside a batch padded with longer ones."""
    model = tiny_model(encoder=encoder, pooling=pooling).eval()
    lengths = [4, 9, 6, 2]
    tokens, lengths_t = ragged_batch(lengths, seed=3, width=11, fill=fill)
    with torch.no_grad():
        z, _, enc = model.encode(tokens, lengths_t, return_layers=True)
        for b, n in enumerate(lengths):
            z1, _, enc1 = model.encode(tokens[b: b + 1, :n], lengths_t[b: b + 1], return_layers=True)
            torch.testing.assert_close(z[b], z1[0], atol=1e-6, rtol=1e-5)
            torch.testing.assert_close(enc.final[b], enc1.final[0], atol=1e-6, rtol=1e-5)
            torch.testing.assert_close(enc.states[b, :n], enc1.states[0], atol=1e-6, rtol=1e-5)
            assert len(enc.layers) == len(enc1.layers)
            for layer, layer1 in zip(enc.layers, enc1.layers):
                torch.testing.assert_close(layer[b, :n], layer1[0], atol=1e-6, rtol=1e-5)


def test_transformer_decoder_memory_padding_and_steps():
    """With an explicit memory (translation), padded memory keys are ignored, and steps equal the full pass."""
    torch.manual_seed(0)
    dec = TransformerDecoder(input_dim=6, dim=8, num_layers=2, num_heads=2, ff_dim=16).eval()
    memory, memory_lengths = torch.randn(3, 7, 8), torch.tensor([7, 2, 4])
    mask = torch.arange(7)[None, :] < memory_lengths[:, None]  # (B, M)
    x = torch.randn(3, 5, 6)
    with torch.no_grad():
        full = dec(x, memory=memory, memory_mask=mask)  # (B, T, D)
        for b, m in enumerate(memory_lengths.tolist()):
            alone = dec(x[b: b + 1], memory=memory[b: b + 1, :m])
            torch.testing.assert_close(full[b], alone[0], atol=1e-6, rtol=1e-5)
        state = dec.start(memory=memory, memory_mask=mask)
        steps = []
        for t in range(5):
            h, state = dec.step(x[:, t], state)
            steps.append(h)
    torch.testing.assert_close(torch.stack(steps, dim=1), full, atol=1e-5, rtol=1e-5)


def test_attention_cache_in_blocks_equals_full_causal_pass():
    """Causal self-attention fed a prefix, one step, then a block of queries (the offset-mask path) with a
    cache equals one causal pass over the whole sequence."""
    torch.manual_seed(0)
    attn = MultiHeadAttention(8, 2)
    x = torch.randn(2, 7, 8)
    full = attn(x, causal=True)
    cache: dict[str, torch.Tensor] = {}
    parts = [attn(x[:, :3], causal=True, cache=cache), attn(x[:, 3:4], causal=True, cache=cache),
             attn(x[:, 4:], causal=True, cache=cache)]
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-6, rtol=1e-5)
    B, H, capacity, K = cache["k_buf"].shape  # the keys so far fill the first cache["len"] positions
    assert (B, H, K) == (2, 2, 4) and cache["len"] == 7 <= capacity


# ---- gradients reach every parameter



def backward_on_ragged_batch(model) -> None:
    """One loss.backward() in float64 (so a gradient that is zero in exact arithmetic shows as ~1e-17)."""
    model.double().train()
    tokens, lengths = ragged_batch([7, 3, 10, 5], seed=4, width=10)
    loss, _ = model.loss(model(tokens, lengths))
    loss.backward()


def assert_nonzero_grad(name: str, param: torch.Tensor) -> None:
    assert param.grad is not None, f"{name}: no gradient"
    assert torch.isfinite(param.grad).all(), f"{name}: non-finite gradient"
    assert param.grad.abs().max() > 1e-10, f"{name}: zero gradient (max |g| = {param.grad.abs().max():.3g})"


@pytest.mark.parametrize("encoder, pooling", ENCODER_POOLINGS)
@pytest.mark.parametrize("decoder", ARCHS)
def test_gradients_reach_every_parameter(encoder, pooling, decoder):
    model = tiny_model(encoder=encoder, decoder=decoder, pooling=pooling)
    backward_on_ragged_batch(model)
    for name, param in model.named_parameters():
        if param.requires_grad:
            assert_nonzero_grad(name, param)
    # Tied output layer: the cross-entropy gives every class a gradient p - y, non-zero since softmax > 0,
    # so every entry of out_bias and every non-pad embedding row moves, seen in the batch or not.
    assert torch.all(model.out_bias.grad != 0)
    assert torch.all(model.embedding.weight.grad[1:].abs().sum(-1) > 0)


def test_gradients_untied_embedding_rows():
    """Untied: exactly the embedding rows of tokens fed to the model get a gradient; pad never does."""
    model = tiny_model(tie_embeddings=False)
    assert model.out_bias is None
    backward_on_ragged_batch(model)
    tokens, _ = ragged_batch([7, 3, 10, 5], seed=4, width=10)
    fed = set(tokens.unique().tolist()) - {PAD}
    row_has_grad = model.embedding.weight.grad.abs().sum(-1) > 0  # (V,)
    assert {i for i in range(VOCAB) if row_has_grad[i]} == fed
    assert torch.all(model.out_proj.bias.grad != 0)  # every class, as above


@pytest.mark.parametrize("encoder", ARCHS)
def test_attention_pooling_score_parameters_get_gradient(encoder):
    model = tiny_model(encoder=encoder, pooling="attention")
    backward_on_ragged_batch(model)
    assert model.bottleneck.pool.score.bias is None  # a bias would get no gradient: softmax is shift-invariant
    for name, param in model.bottleneck.pool.score.named_parameters():
        assert_nonzero_grad(f"bottleneck.pool.score.{name}", param)


# ---- step-by-step decoding equals teacher forcing


@pytest.mark.parametrize("decoder", ARCHS)
@pytest.mark.parametrize("tie", [True, False])
def test_steps_equal_teacher_forcing(decoder, tie):
    model = tiny_model(decoder=decoder, tie_embeddings=tie).eval()
    tokens, lengths = ragged_batch([6, 10, 3, 8], seed=5, width=10)
    with torch.no_grad():
        out = model(tokens, lengths)
        forced = torch.log_softmax(out.logits, dim=-1)  # (B, T-1, V)
        state = model.start(out.z)
        stepped = []
        for t in range(tokens.shape[1] - 1):
            log_probs, state = model.step(tokens[:, t], state)  # fed the reference token, pads included
            stepped.append(log_probs)
    stepped_t = torch.stack(stepped, dim=1)  # (B, T-1, V)
    real = out.targets != PAD
    assert int(real.sum()) == int((lengths - 1).sum())
    torch.testing.assert_close(stepped_t[real], forced[real], atol=1e-5, rtol=1e-5)


# ---- every encoder × decoder memorises 16 real sentences


@pytest.fixture(scope="module")
def sixteen_sentences(tmp_path_factory) -> tuple[torch.Tensor, torch.Tensor]:
    """The first 16 fortunes of at most six words, as tokens [16, T] with lengths (SentencePiece, vocab 200)."""
    lines = (FORTUNES / "train.txt").read_text(encoding="utf-8").splitlines()
    tok = train_tokenizer(lines, tmp_path_factory.mktemp("spm") / "m200", vocab_size=200)
    chosen = [line for line in lines if len(line.split()) <= 6][:16]
    assert len(chosen) == 16
    tokens, lengths = collate_tokens([[BOS, *tok.encode(s), EOS] for s in chosen], PAD)
    assert len(set(map(tuple, tokens.tolist()))) == 16
    return tokens, lengths


@pytest.mark.parametrize("encoder", ARCHS)
@pytest.mark.parametrize("decoder", ARCHS)
def test_memorises_sixteen_sentences(sixteen_sentences, encoder, decoder):
    tokens, lengths = sixteen_sentences
    torch.manual_seed(0)
    cfg = ModelConfig(encoder=encoder, decoder=decoder, embed_dim=64, hidden_dim=64, decoder_dim=64,
                      bottleneck_dim=64, num_heads=4, ff_dim=128, dropout=0.0)
    model = build_token_autoencoder(cfg, 200, regularize=RegularizerConfig())
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(1, 401):
        model.train()
        loss, _ = model.loss(model(tokens, lengths))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 10 == 0:
            model.eval()
            with torch.no_grad():
                z, _, _ = model.encode(tokens, lengths)
                generated, gen_lengths = greedy_decode(model, z, max_len=tokens.shape[1] + 5)
            counts = reconstruction_counts(generated, gen_lengths, tokens, lengths)
            if counts["exact"] == 16:
                break
    assert counts == {"correct": int((lengths - 1).sum()), "total": int((lengths - 1).sum()),
                      "exact": 16, "sequences": 16}, f"after {step} steps, loss {loss.item():.3f}"
    with torch.no_grad():
        out = model(tokens, lengths)
    correct, total = teacher_forced_accuracy(out.logits, out.targets)
    assert correct == total == int((lengths - 1).sum())


def test_fast_dropout_rate_scale_and_gradient():
    from seqae.models.fast.dropout import Dropout

    torch.manual_seed(0)
    drop = Dropout(0.1)
    x = torch.ones(400, 1000, requires_grad=True)
    y = drop(x)
    kept = y != 0
    assert abs(1 - kept.float().mean().item() - 0.1) < 0.002  # 400,000 draws
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.9))
    assert abs(y.mean().item() - 1.0) < 0.005  # unbiased
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # the gradient is the same mask and scale
    odd = torch.randn(3, 5, 7)  # a size that is not a multiple of 4
    assert drop(odd).shape == odd.shape
    drop.eval()
    assert drop(odd) is odd
    assert Dropout(0.0).train()(odd) is odd
    with pytest.raises(ValueError, match=r"dropout probability must be in \[0, 1\), got 1.0"):
        Dropout(1.0)


@pytest.mark.parametrize("causal", [False, True])
def test_attention_with_dropout_matches_sdpa(causal):
    """The written-out training attention is SDPA's: equal with p = 0 (a mask of ones), and with p > 0 each
    probability is either dropped or scaled by 1/(1-p) (compared by recomputing with the same seed)."""
    from seqae.models.fast.dropout import attention_with_dropout, dropout
    from seqae.models.layers import lengths_to_mask

    torch.manual_seed(0)
    q, k, v = (torch.randn(3, 2, 5, 4, requires_grad=True) for _ in range(3))
    mask = None if causal else lengths_to_mask(torch.tensor([5, 2, 3]))[:, None, None, :]
    ours = attention_with_dropout(q, k, v, mask, causal, 0.0)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
    assert torch.allclose(ours, ref, atol=1e-6)
    torch.manual_seed(1)
    dropped = attention_with_dropout(q, k, v, mask, causal, 0.5)
    torch.manual_seed(1)
    keep = dropout(torch.ones(3, 2, 5, 5), 0.5)  # the same seed: the same decisions
    probs = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) / 2 + (0 if mask is None else (~mask) * -1e9)
                          + (torch.ones(5, 5).triu(1) * -1e9 if causal else 0), dim=-1)
    assert torch.allclose(dropped, torch.matmul(probs * keep, v), atol=1e-5)
    dropped.sum().backward()
    assert all(t.grad is not None and torch.isfinite(t.grad).all() for t in (q, k, v))
