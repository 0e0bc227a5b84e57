"""Generation from z: greedy decoding and beam search.

Two kinds of model are used: small random `TokenAutoencoder`s built from a `ModelConfig` (every decoder), and
scripted models whose next-token distribution is a function of the prefix (a hand-written table, or a random
draw per prefix), so the right answer is known exactly or by brute force.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable

import pytest
import torch

from seqae.config import ModelConfig, RegularizerConfig
from seqae.generate import beam_search, greedy_decode
from seqae.models.builder import build_token_autoencoder
from seqae.models.layers import MultiHeadAttention

PAD, BOS, EOS = 0, 2, 3
DECODERS = ["gru", "lstm", "transformer"]


pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


def random_model(decoder: str, *, seed: int, vocab: int = 11, z_dim: int = 8, memory_slots: int = 3):
    """A small random autoencoder in eval mode; its decoder is what generation exercises."""
    torch.manual_seed(seed)
    cfg = ModelConfig(encoder="gru", decoder=decoder, embed_dim=16, hidden_dim=16, decoder_dim=16, num_heads=2,
                      ff_dim=32, bottleneck_dim=z_dim, memory_slots=memory_slots, decoder_layers=2, dropout=0.0,
                      max_positions=64)
    return build_token_autoencoder(cfg, vocab, regularize=RegularizerConfig()).eval()


def random_z(batch: int, *, seed: int, z_dim: int = 8) -> torch.Tensor:
    return torch.randn(batch, z_dim, generator=torch.Generator().manual_seed(1000 + seed)) * 2.0


def sequence_log_prob(model, z: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Total log-prob [B] of tokens[:, 1:lengths] given z, scored by teacher forcing (no step API involved)."""
    with torch.no_grad():
        h = model.decoder(model.embedding(tokens[:, :-1]), z)  # (B, L-1, H)
        log_probs = torch.log_softmax(model.logits(h).double(), dim=-1)  # (B, L-1, V)
    picked = log_probs.gather(-1, tokens[:, 1:, None]).squeeze(-1)  # (B, L-1)
    real = torch.arange(tokens.shape[1] - 1)[None, :] < (lengths - 1)[:, None]
    return (picked * real).sum(dim=1)


def check_layout(tokens: torch.Tensor, lengths: torch.Tensor, max_len: int) -> None:
    """bos first; eos exactly at length-1 (or no eos and the full width); only pad after the length."""
    B, L = tokens.shape
    assert L <= max_len
    assert lengths.shape == (B,) and lengths.dtype == torch.long
    assert torch.all(tokens[:, 0] == BOS)
    for b in range(B):
        n = int(lengths[b])
        row = tokens[b].tolist()
        assert 2 <= n <= L, (b, n, row)
        if EOS in row:
            assert n - 1 == row.index(EOS), (b, n, row)
        else:
            assert n == L, (b, n, row)
        assert all(t == PAD for t in row[n:]), (b, n, row)
        assert PAD not in row[:n], (b, n, row)


def trimmed(tokens: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
    return [tokens[b, : int(lengths[b])].tolist() for b in range(tokens.shape[0])]


# ---- scripted models: the next-token distribution is a function of the prefix, so answers are known


class ScriptedModel:
    """Step API whose next-token log-probs [V] are a function of the prefix (a tuple of tokens, bos first).

    z: [B, 1]; a non-zero z[b, 0] is a row tag put in front of row b's prefix, so rows can follow other entries.
    """

    def __init__(self, log_probs: Callable[[tuple[int, ...]], torch.Tensor]):
        self._log_probs = functools.lru_cache(maxsize=None)(log_probs)

    def start(self, z: torch.Tensor) -> dict:
        return {"prefixes": [() if int(v) == 0 else (int(v),) for v in z[:, 0]]}

    def step(self, prev: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        prefixes = [p + (int(t),) for p, t in zip(state["prefixes"], prev)]
        return torch.stack([self._log_probs(p) for p in prefixes]), {"prefixes": prefixes}

    def reorder(self, state: dict, index: torch.Tensor) -> dict:
        return {"prefixes": [state["prefixes"][i] for i in index.tolist()]}


def table_model(table: dict[tuple[int, ...], dict[int, float]], default: dict[int, float],
                vocab: int = 8) -> ScriptedModel:
    """Next-token probabilities from `table[prefix]` (or `default`); unlisted tokens share what is left."""

    def log_probs(prefix: tuple[int, ...]) -> torch.Tensor:
        listed = table.get(prefix, default)
        rest = (1.0 - sum(listed.values())) / (vocab - len(listed))
        return torch.tensor([listed.get(t, rest) for t in range(vocab)], dtype=torch.float64).log()

    return ScriptedModel(log_probs)


def random_prefix_model(vocab: int, *, seed: int, eos_shift: float) -> ScriptedModel:
    """A peaked random distribution drawn afresh for every prefix (strong history dependence)."""

    def log_probs(prefix: tuple[int, ...]) -> torch.Tensor:
        key = seed
        for t in prefix:
            key = (key * 1_000_003 + t + 1) % 2**61
        logits = 2.5 * torch.randn(vocab, generator=torch.Generator().manual_seed(key), dtype=torch.float64)
        logits[EOS] += eos_shift
        logits[PAD] -= 20.0  # a trained model never predicts pad
        return torch.log_softmax(logits, dim=-1)

    return ScriptedModel(log_probs)


def scripted_log_prob(model: ScriptedModel, row: list[int]) -> float:
    """Total log-prob of row[1:] (bos first, no pad) under a scripted model."""
    return sum(float(model._log_probs(tuple(row[:t]))[row[t]]) for t in range(1, len(row)))


def all_hypotheses(vocab: int, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every sequence beam search can return: bos, then non-pad tokens up to the first eos or max_len."""
    rows = set()
    for tail in itertools.product([t for t in range(vocab) if t != PAD], repeat=max_len - 1):
        row = [BOS, *tail]
        n = row.index(EOS) + 1 if EOS in row else max_len
        rows.add(tuple(row[:n] + [PAD] * (max_len - n)))
    tokens = torch.tensor(sorted(rows))  # (N, max_len)
    lengths = torch.tensor([row.index(EOS) + 1 if EOS in row else max_len for row in tokens.tolist()])
    return tokens, lengths


def test_scripted_beam_finds_what_greedy_misses():
    # Greedy takes 5 (p=.5) then eos (p=.35): .175. Beam 2 keeps 6 (p=.4), whose eos has p=.9: .36.
    model = table_model({(BOS,): {5: 0.5, 6: 0.4}, (BOS, 5): {EOS: 0.35, 7: 0.3, 4: 0.3}}, {EOS: 0.9})
    z = torch.zeros(1, 1)
    greedy, greedy_len = greedy_decode(model, z, max_len=6)
    beam, beam_len = beam_search(model, z, beam_size=2, max_len=6, length_penalty=0.0)
    assert trimmed(greedy, greedy_len) == [[BOS, 5, EOS]]
    assert trimmed(beam, beam_len) == [[BOS, 6, EOS]]
    assert beam.shape == (1, 3)  # every hypothesis ended at step 2, so the search stopped there


@pytest.mark.parametrize("penalty, expected", [(0.0, [BOS, EOS]), (1.0, [BOS, 5, 6, EOS])])
def test_scripted_length_penalty_chooses_between_finished_hypotheses(penalty, expected):
    # [bos, eos]: log .4 = -0.92 over length 2; [bos, 5, 6, eos]: log(.35·.95·.95) = -1.15 over length 4.
    model = table_model({(BOS,): {EOS: 0.4, 5: 0.35, 6: 0.2}, (BOS, 5): {6: 0.95}}, {EOS: 0.95})
    tokens, lengths = beam_search(model, torch.zeros(1, 1), beam_size=2, max_len=8, length_penalty=penalty)
    assert trimmed(tokens, lengths) == [expected]
    check_layout(tokens, lengths, max_len=8)


def test_scripted_without_eos_runs_to_max_len():
    model = table_model({}, {5: 0.9})  # eos is never likely
    for tokens, lengths in (greedy_decode(model, torch.zeros(2, 1), max_len=5),
                            beam_search(model, torch.zeros(2, 1), beam_size=3, max_len=5)):
        assert tokens.tolist() == [[BOS, 5, 5, 5, 5]] * 2
        assert lengths.tolist() == [5, 5]


def test_greedy_never_emits_pad_before_eos():
    # Pad is the most likely first token; both searches must still never emit it before eos.
    model = table_model({(BOS,): {PAD: 0.6, 5: 0.3}}, {EOS: 0.9})
    beam, beam_len = beam_search(model, torch.zeros(1, 1), beam_size=1, max_len=6)
    assert trimmed(beam, beam_len) == [[BOS, 5, EOS]]
    greedy, greedy_len = greedy_decode(model, torch.zeros(1, 1), max_len=6)
    assert trimmed(greedy, greedy_len) == [[BOS, 5, EOS]]


@pytest.mark.parametrize("penalty, eos_shift", [(0.0, -3.0), (1.0, 0.0)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scripted_exhaustive_beam_is_exact(penalty, eos_shift, seed):
    """With room for every hypothesis, beam search returns the brute-force best, even when each step's
    distribution depends on the whole prefix (a beam that mixes up hypotheses' histories fails here).

    Vocabulary of 6 (5 tokens other than pad), max_len 6: 5**5 = 3125 hypotheses.
    """
    model = random_prefix_model(6, seed=seed, eos_shift=eos_shift)
    max_len = 6
    candidates, cand_lengths = all_hypotheses(6, max_len)
    rows = trimmed(candidates, cand_lengths)
    scores = [scripted_log_prob(model, row) / len(row) ** penalty for row in rows]
    best = max(range(len(rows)), key=scores.__getitem__)
    tokens, lengths = beam_search(model, torch.zeros(1, 1), beam_size=5 ** 5, max_len=max_len,
                                  length_penalty=penalty)
    check_layout(tokens, lengths, max_len=max_len)
    assert trimmed(tokens, lengths) == [rows[best]]
    # and beam 1 is greedy
    greedy = trimmed(*greedy_decode(model, torch.zeros(1, 1), max_len=max_len))[0]
    assert trimmed(*beam_search(model, torch.zeros(1, 1), beam_size=1, max_len=max_len))[0] == greedy


# ---- random models, every decoder


@pytest.mark.parametrize("decoder", DECODERS)
def test_greedy_layout_and_batch_independence(decoder):
    model = random_model(decoder, seed=0)
    z = random_z(6, seed=0)
    tokens, lengths = greedy_decode(model, z, max_len=12)
    check_layout(tokens, lengths, max_len=12)
    # Each row decoded alone gives the same sequence: finished rows do not disturb the others.
    alone = [trimmed(*greedy_decode(model, z[b: b + 1], max_len=12))[0] for b in range(6)]
    assert trimmed(tokens, lengths) == alone


def test_greedy_layout_mixes_finished_and_unfinished_rows():
    """The layout check sees both kinds of row: one that stops early and one that never emits eos."""
    model = table_model({(BOS,): {EOS: 0.9}}, {5: 0.9})
    z = torch.tensor([[0.0], [7.0]])  # row 0 follows (BOS,) -> eos; row 1, tagged 7, falls to the default
    tokens, lengths = greedy_decode(model, z, max_len=5)
    assert tokens.tolist() == [[BOS, EOS, PAD, PAD, PAD], [BOS, 5, 5, 5, 5]]
    assert lengths.tolist() == [2, 5]
    check_layout(tokens, lengths, max_len=5)


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_one_equals_greedy(decoder, seed):
    model = random_model(decoder, seed=seed)
    z = random_z(5, seed=seed)
    greedy = greedy_decode(model, z, max_len=12)
    beam = beam_search(model, z, beam_size=1, max_len=12)
    assert torch.equal(beam[0], greedy[0])
    assert torch.equal(beam[1], greedy[1])


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_beam_scores_at_least_greedy(decoder, seed):
    """With length_penalty=0, beam 4 returns a sequence at least as likely (by teacher forcing) as greedy's.

    Beam search does not guarantee this in general; on these fixed small random models it must hold, and a
    beam that loses hypotheses or mis-reorders the decoder state loses it.
    """
    model = random_model(decoder, seed=seed)
    z = random_z(4, seed=seed)
    g_tokens, g_lengths = greedy_decode(model, z, max_len=10)
    b_tokens, b_lengths = beam_search(model, z, beam_size=4, max_len=10, length_penalty=0.0)
    check_layout(b_tokens, b_lengths, max_len=10)
    greedy_score = sequence_log_prob(model, z, g_tokens, g_lengths)
    beam_score = sequence_log_prob(model, z, b_tokens, b_lengths)
    assert torch.all(beam_score >= greedy_score - 1e-5), (beam_score, greedy_score)


@pytest.mark.parametrize("decoder", DECODERS)
def test_beam_batch_independence(decoder):
    """A batch of 3 searched together equals each searched alone (the flat B·K beam indexing is right)."""
    model = random_model(decoder, seed=4)
    z = random_z(3, seed=4)
    tokens, lengths = beam_search(model, z, beam_size=3, max_len=10, length_penalty=1.0)
    check_layout(tokens, lengths, max_len=10)
    alone = [trimmed(*beam_search(model, z[b: b + 1], beam_size=3, max_len=10, length_penalty=1.0))[0]
             for b in range(3)]
    assert trimmed(tokens, lengths) == alone


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("penalty", [0.0, 1.0])
def test_exhaustive_beam_finds_the_best_sequence(decoder, penalty):
    """A beam wide enough to hold every hypothesis makes beam search exact: compare with brute force.

    Vocabulary of 7 (6 tokens other than pad), max_len 5: 6**4 = 1296 hypotheses. A random model gives eos
    about 1/7, so [bos, eos] would win trivially: eos is made very unlikely for penalty 0 (the search must find
    the best full-length path) and less likely for penalty 1 (hypotheses of different lengths compete).
    """
    model = random_model(decoder, seed=5, vocab=7)
    with torch.no_grad():
        model.out_bias[EOS] = -30.0 if penalty == 0.0 else -0.5
    z = random_z(2, seed=5)
    max_len = 5
    candidates, cand_lengths = all_hypotheses(7, max_len)
    tokens, lengths = beam_search(model, z, beam_size=6 ** 4, max_len=max_len, length_penalty=penalty)
    check_layout(tokens, lengths, max_len=max_len)
    for b in range(2):
        zb = z[b: b + 1].expand(len(candidates), -1)
        scores = sequence_log_prob(model, zb, candidates, cand_lengths) / cand_lengths.double() ** penalty
        best = int(scores.argmax())
        found = trimmed(tokens[b: b + 1], lengths[b: b + 1])[0]
        assert found == trimmed(candidates, cand_lengths)[best]
        found_score = sequence_log_prob(model, z[b: b + 1], tokens[b: b + 1], lengths[b: b + 1])
        assert math.isclose(float(found_score) / len(found) ** penalty, float(scores.max()), abs_tol=1e-5)


# ---- the Transformer decoder's key/value cache


def uncached_greedy(model, z: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy decoding that recomputes the full decoder on the whole prefix at every step (no cache).

    Returns tokens [B, 1 + steps] and the log-probs [B, steps, V] each step chose from (pad never chosen). No
    early stop.
    """
    tokens = torch.full((z.shape[0], 1), BOS, dtype=torch.long)
    all_log_probs = []
    with torch.no_grad():
        for _ in range(steps):
            h = model.decoder(model.embedding(tokens), z)  # (B, t, D)
            log_probs = torch.log_softmax(model.logits(h[:, -1]).float(), dim=-1)  # (B, V)
            all_log_probs.append(log_probs)
            choice = log_probs.clone()
            choice[:, PAD] = float("-inf")  # as greedy_decode: pad only ever follows eos
            tokens = torch.cat([tokens, choice.argmax(-1, keepdim=True)], dim=1)
    return tokens, torch.stack(all_log_probs, dim=1)


@pytest.mark.parametrize("memory_slots", [1, 3])
def test_transformer_cached_decoding_equals_uncached(memory_slots):
    """40 steps: the self-attention caches outgrow their first buffers (16 positions, then 32); with one memory
    slot cross-attention's output is computed once and reused."""
    model = random_model("transformer", seed=6, memory_slots=memory_slots)
    z = random_z(4, seed=6)
    steps = 40
    ref_tokens, ref_log_probs = uncached_greedy(model, z, steps)
    # The cached path: model.start/step fed the tokens the uncached path chose, one at a time.
    state = model.start(z)
    cached_log_probs = []
    with torch.no_grad():
        for t in range(steps):
            log_probs, state = model.step(ref_tokens[:, t], state)
            cached_log_probs.append(log_probs)
    cached = torch.stack(cached_log_probs, dim=1)  # (B, steps, V)
    assert torch.equal(cached.index_fill(-1, torch.tensor([PAD]), float("-inf")).argmax(-1), ref_tokens[:, 1:])
    torch.testing.assert_close(cached, ref_log_probs, atol=1e-5, rtol=1e-5)
    # greedy_decode (cached) picks the same tokens up to each row's eos.
    tokens, lengths = greedy_decode(model, z, max_len=steps + 1)
    for b in range(4):
        n = int(lengths[b])
        assert tokens[b, :n].tolist() == ref_tokens[b, :n].tolist()


def test_beam_search_reorders_growing_caches():
    """Beam search over 40 steps on a one-slot Transformer decoder: the cache buffers are reordered between steps and
    regrown; each row searched alone gives the same result, and beam 1 is greedy."""
    model = random_model("transformer", seed=7, memory_slots=1)
    with torch.no_grad():
        model.out_bias[EOS] = -30.0  # full-length hypotheses, so the caches grow past 32 positions
    z = random_z(3, seed=7)
    tokens, lengths = beam_search(model, z, beam_size=3, max_len=40)
    check_layout(tokens, lengths, max_len=40)
    assert tokens.shape[1] == 40
    alone = [trimmed(*beam_search(model, z[b: b + 1], beam_size=3, max_len=40))[0] for b in range(3)]
    assert trimmed(tokens, lengths) == alone
    assert torch.equal(beam_search(model, z, beam_size=1, max_len=40)[0], greedy_decode(model, z, max_len=40)[0])


def test_cross_attention_to_one_slot_skips_the_softmax_exactly():
    """Over a single key the attention weight is 1: in eval mode the layer returns out(v) without computing q, and
    that equals the full attention (the training-mode path, dropout 0), for every query position."""
    torch.manual_seed(0)
    attn = MultiHeadAttention(16, 2, dropout=0.0, cross=True)
    x, memory = torch.randn(3, 5, 16), torch.randn(3, 1, 16)  # (B, T, D), (B, S=1, D)
    full = attn.train()(x, memory=memory)
    short = attn.eval()(x, memory=memory)
    assert short.shape == (3, 5, 16)
    torch.testing.assert_close(short, full, atol=1e-6, rtol=1e-6)
    cache: dict = {}
    torch.testing.assert_close(attn(x[:, :1], memory=memory, cache=cache), full[:, :1], atol=1e-6, rtol=1e-6)
    assert "out" in cache
    torch.testing.assert_close(attn(x[:, 1:2], memory=memory, cache=cache), full[:, 1:2], atol=1e-6, rtol=1e-6)
    # with a key mask (or more than one slot) the layer takes the full path
    masked = attn(x, memory=memory, key_mask=torch.ones(3, 1, dtype=torch.bool))
    torch.testing.assert_close(masked, full, atol=1e-6, rtol=1e-6)
