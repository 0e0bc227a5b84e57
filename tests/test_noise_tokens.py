"""Token noises: exact counts, aggregate ratios, layout invariants, reproducibility."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from seqae.noise import tokens as T

PAD, UNK, BOS, EOS, MASK = 0, 1, 2, 3, 4
V = 1000
# word starts: every id divisible by 3 begins a word
WORD_START = torch.tensor([i >= 5 and i % 3 == 0 for i in range(V)])


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def seq(body: list[int] | torch.Tensor) -> torch.Tensor:
    return torch.cat([torch.tensor([BOS]), torch.as_tensor(body, dtype=torch.long), torch.tensor([EOS])])


def distinct_body(n: int) -> torch.Tensor:
    """Body 5, 6, ..., 4+n: every token distinct and ascending, so kept tokens are identifiable."""
    return torch.arange(5, 5 + n)


def body_of(x: torch.Tensor) -> torch.Tensor:
    assert int(x[0]) == BOS and int(x[-1]) == EOS
    inner = x[1:-1]
    assert not ((inner == PAD) | (inner == BOS) | (inner == EOS)).any()
    return inner


def lengths_stream(count: int, lo: int, hi: int, seed: int = 0) -> list[int]:
    return torch.randint(lo, hi, (count,), generator=gen(seed)).tolist()


# ---------------------------------------------------------------- layout


def test_malformed_sequences_are_rejected_with_position():
    with pytest.raises(ValueError, match="position 2"):
        T.delete(torch.tensor([BOS, 7, PAD, 8, EOS]), generator=gen(0))
    with pytest.raises(ValueError, match="position 1"):
        T.shuffle(torch.tensor([BOS, EOS, 9, EOS]), generator=gen(0))
    with pytest.raises(ValueError, match="1-D LongTensor"):
        T.rotate(torch.tensor([[BOS, 7, EOS]]), generator=gen(0))
    with pytest.raises(ValueError, match="1-D LongTensor"):
        T.rotate(torch.tensor([2.0, 7.0, 3.0]), generator=gen(0))


def test_trailing_pad_and_missing_bos_are_kept_as_they_are():
    x = torch.tensor([7, 8, 9, 10, EOS, PAD, PAD])
    out = T.knockout(x, generator=gen(0), ratio=0.5)
    assert out[-3:].tolist() == [EOS, PAD, PAD]
    assert (out[:4] == MASK).sum() == 2


# ---------------------------------------------------------------- placement and BART plan


def test_place_spans_matches_brute_force_uniform_distribution():
    lengths, total = torch.tensor([2, 1, 0]), 6
    valid = [
        s for s in itertools.product(range(total + 1), repeat=3)
        if s[0] + 2 <= s[1] and s[1] + 1 <= s[2] and s[2] <= total
    ]  # spans in order, no overlap (zero-length span = insertion point at s[2])
    g, draws = gen(1), 6000
    counts = Counter(tuple(T.place_spans(lengths, total, generator=g).tolist()) for _ in range(draws))
    assert set(counts) == set(valid)
    expected = draws / len(valid)
    assert all(abs(c - expected) < 0.25 * expected for c in counts.values())


@pytest.mark.parametrize("ratio,lam", [(0.3, 3.0), (0.15, 1.0), (0.5, 0.5), (1.0, 3.5)])
def test_span_plan_covers_exactly_round_ratio_units_without_overlap(ratio, lam):
    g = gen(2)
    for n in range(0, 60):
        starts, lengths = T.span_mask_plan(n, ratio=ratio, poisson_lambda=lam, generator=g)
        assert int(lengths.sum()) == round(ratio * n)
        ends = starts + lengths
        assert (starts >= 0).all() and (ends <= n).all()
        assert (starts[1:] >= ends[:-1]).all()  # ordered and non-overlapping


def test_span_plan_lengths_follow_poisson_before_clipping():
    g, lens = gen(3), []
    for _ in range(300):
        _, lengths = T.span_mask_plan(1000, ratio=0.3, poisson_lambda=3.0, generator=g)
        lens += lengths[:-1].tolist()  # the last span is clipped to the budget
    mean = sum(lens) / len(lens)
    zero = lens.count(0) / len(lens)
    assert abs(mean - 3.0) < 0.05
    assert abs(zero - torch.exp(torch.tensor(-3.0)).item()) < 0.01


# ---------------------------------------------------------------- BART span masking


@pytest.mark.parametrize("ratio", [0.15, 0.3, 0.5])
def test_span_mask_tokens_single_mask_masks_exactly_and_in_aggregate(ratio):
    g, masked, total = gen(4), 0, 0
    for n in lengths_stream(2000, 1, 60):
        out = body_of(T.span_mask(seq(distinct_body(n)), generator=g, ratio=ratio, unit="token", random_ratio=0.0))
        kept = out[out != MASK]
        assert torch.equal(kept, kept.sort().values)  # the kept tokens, in order
        assert n - kept.numel() == round(ratio * n)
        masked, total = masked + n - kept.numel(), total + n
        # every removed run is stood for by at least one mask
        ids = torch.cat([torch.tensor([4]), kept, torch.tensor([5 + n])])
        gaps = (ids.diff() > 1).sum()
        assert (out == MASK).sum() >= gaps
    assert abs(masked / total - ratio) < 0.01


def test_span_mask_words_masks_whole_words_exactly():
    g, masked_words, total_words = gen(5), 0, 0
    for n in lengths_stream(1500, 1, 60, seed=1):
        body = (torch.randperm(V - 5, generator=g)[:n] + 5).sort().values  # distinct, ascending
        out = body_of(T.span_mask(seq(body), generator=g, ratio=0.3, random_ratio=0.0, word_start=WORD_START))
        kept = out[out != MASK]
        assert torch.equal(kept, kept.sort().values)
        hit = ~torch.isin(body, kept)  # (n,) masked body tokens
        is_start = WORD_START[body].clone()
        is_start[0] = True
        word_id = torch.cumsum(is_start.long(), 0) - 1
        words = int(word_id[-1]) + 1
        per_word = [hit[word_id == w] for w in range(words)]
        assert all(bool(h.all()) or not bool(h.any()) for h in per_word)  # whole words only
        full = sum(bool(h.all()) for h in per_word)
        assert full == round(0.3 * words)
        masked_words, total_words = masked_words + full, total_words + words
    assert abs(masked_words / total_words - 0.3) < 0.01


def test_span_mask_zero_length_spans_insert_a_mask():
    g, inserted = gen(6), 0
    for _ in range(300):
        out = body_of(T.span_mask(seq(distinct_body(40)), generator=g, ratio=0.3, poisson_lambda=0.7,
                                  unit="token", mode="mask_per_token", random_ratio=0.0))
        assert (out != MASK).sum() == 40 - 12
        inserted += out.numel() - 40
    assert inserted > 0  # Poisson(0.7) draws zeros half the time


def test_span_mask_delete_mode_removes_exactly_and_random_ratio_is_per_span():
    g = gen(7)
    for n in lengths_stream(500, 1, 50, seed=2):
        out = body_of(T.span_mask(seq(distinct_body(n)), generator=g, ratio=0.4, unit="token", mode="delete",
                                  random_ratio=0.0))
        assert (out != MASK).sum() == n - round(0.4 * n)
    with pytest.raises(ValueError, match="random_ratio"):
        T.span_mask(seq(distinct_body(5)), generator=g, unit="token", mode="delete", random_ratio=0.1)
    randoms = spans = 0
    for n in lengths_stream(1500, 20, 80, seed=3):
        out = body_of(T.span_mask(seq(distinct_body(n)), generator=g, ratio=0.3, poisson_lambda=6.0, unit="token",
                                  random_ratio=0.2, vocab_size=10**6))
        # random ids fall in [5, 1e6), almost all above the body; the few zero-length insertions
        # (e^-6 of the draws) are counted as spans too
        fillers = out[(out == MASK) | (out >= 5 + n)]
        randoms += int((fillers != MASK).sum())
        spans += fillers.numel()
    assert abs(randoms / spans - 0.2) < 0.01


def test_span_mask_word_unit_needs_word_start():
    with pytest.raises(ValueError, match="word_start"):
        T.span_mask(seq([7, 8, 9]), generator=gen(0), unit="word", random_ratio=0.0)


# ---------------------------------------------------------------- T5


def test_t5_lengths_match_t5_numbers():
    assert T.t5_lengths(568) == (512, 114)
    assert T.t5_raw_length_for_inputs(512) == 568
    assert T.t5_raw_length_for_inputs(512, 0.15, 3.0) == 568


def test_t5_raw_length_is_the_largest_that_fits():
    for inputs_len in range(1, 300):
        raw = T.t5_raw_length_for_inputs(inputs_len)
        assert T.t5_lengths(raw)[0] <= inputs_len < T.t5_lengths(raw + 1)[0]


def test_t5_lengths_agree_with_t5_formula_for_realistic_lengths():
    for raw in range(20, 2000, 7):
        noise = round(raw * 0.15)
        spans = round(noise / 3.0)
        assert T.t5_lengths(raw) == (raw - noise + spans + 1, noise + spans + 1)


def test_t5_corruption_round_trips_and_lengths_match():
    g, noise_total, total = gen(8), 0, 0
    for n in lengths_stream(1000, 0, 200, seed=4):
        body = distinct_body(n)
        inputs, targets = T.t5_span_corruption(seq(body), generator=g, vocab_size=V)
        inputs_len, targets_len = T.t5_lengths(n)
        assert (inputs.numel() - 1, targets.numel() - 1) == (inputs_len, targets_len)  # our tensors keep bos
        ins, tgt = body_of(inputs), body_of(targets)
        sentinels = ins[ins >= V - 200]
        assert sentinels.tolist() == list(range(V - 1, V - 1 - sentinels.numel(), -1))
        # splice the target spans back at their sentinels
        pieces, rebuilt = {}, []
        where = (tgt >= V - 200).nonzero().flatten().tolist() + [tgt.numel()]
        for a, b in zip(where[:-1], where[1:]):
            pieces[int(tgt[a])] = tgt[a + 1 : b].tolist()
        for tok in ins.tolist():
            rebuilt += pieces[tok] if tok in pieces else [tok]
        assert rebuilt == body.tolist()
        if n >= 2:
            assert int(ins[0]) < V - 200  # T5's masks start with kept tokens
        noise_total, total = noise_total + tgt.numel() - sentinels.numel(), total + n
    assert abs(noise_total / total - 0.15) < 0.01


def test_t5_explicit_sentinels_and_too_few():
    inputs, targets = T.t5_span_corruption(seq(distinct_body(30)), generator=gen(9), sentinel_ids=[900, 901, 902])
    spans = int(((inputs >= 900) & (inputs <= 902)).sum())
    assert inputs[(inputs >= 900)].tolist() == [900, 901, 902][:spans]
    with pytest.raises(ValueError, match="sentinel"):
        T.t5_span_corruption(seq(distinct_body(300)), generator=gen(9), sentinel_ids=[900])


# ---------------------------------------------------------------- TSDAE-style


def test_delete_removes_exactly_and_keeps_order():
    g, deleted, total = gen(10), 0, 0
    for n in lengths_stream(3000, 1, 40, seed=5):
        out = body_of(T.delete(seq(distinct_body(n)), generator=g, ratio=0.6))
        assert torch.equal(out, out.sort().values) and out.numel() >= 1
        assert n - out.numel() == min(round(0.6 * n), n - 1)
        deleted, total = deleted + n - out.numel(), total + n
    assert abs(deleted / total - 0.6) < 0.01
    assert body_of(T.delete(seq([7]), generator=g, ratio=1.0)).tolist() == [7]
    assert body_of(T.delete(seq([7, 8]), generator=g, ratio=1.0, allow_empty=True)).numel() == 0


def test_replace_changes_exactly_with_regular_ids():
    g, changed, total = gen(11), 0, 0
    for n in lengths_stream(3000, 1, 40, seed=6):
        x = seq(torch.randint(5, 12, (n,), generator=g))
        out = T.replace(x, generator=g, ratio=0.25, vocab_size=12)
        diff = out != x
        assert int(diff.sum()) == round(0.25 * n)
        assert (out[diff] >= 5).all() and (out[diff] < 12).all()
        changed, total = changed + int(diff.sum()), total + n
    assert abs(changed / total - 0.25) < 0.01


def test_insert_adds_exactly_and_keeps_the_original():
    g = gen(12)
    for n in lengths_stream(500, 0, 40, seed=7):
        body = distinct_body(n)
        out = body_of(T.insert(seq(body), generator=g, ratio=0.3))
        assert out.numel() == n + round(0.3 * n)
        assert torch.equal(out[out != MASK], body)
        out = body_of(T.insert(seq(body), generator=g, ratio=0.3, with_token="random", vocab_size=10**6))
        assert out.numel() == n + round(0.3 * n)


def test_shuffle_moves_no_token_more_than_k():
    g = gen(13)
    for k in (0, 1, 3):
        seen_max = 0
        for n in lengths_stream(500, 0, 50, seed=8):
            out = body_of(T.shuffle(seq(distinct_body(n)), generator=g, max_distance=k))
            displacement = (out - 5 - torch.arange(n)).abs()
            assert sorted(out.tolist()) == distinct_body(n).tolist()
            seen_max = max(seen_max, int(displacement.max()) if n else 0)
        assert seen_max == k  # the bound is reached, so the test can fail


def test_rotate_always_moves_and_keeps_cyclic_order():
    g, offsets = gen(14), Counter()
    for _ in range(2000):
        out = body_of(T.rotate(seq(distinct_body(5)), generator=g))
        offset = int(out[0]) - 5
        assert out.tolist() == torch.roll(distinct_body(5), -offset).tolist()
        offsets[offset] += 1
    assert set(offsets) == {1, 2, 3, 4} and min(offsets.values()) > 400


def test_knockout_uses_the_requested_token():
    g = gen(15)
    out = T.knockout(seq(distinct_body(20)), generator=g, ratio=0.3, with_token="unk")
    assert int((out == UNK).sum()) == 6 and int((out == MASK).sum()) == 0


def test_global_rng_is_untouched():
    state = torch.get_rng_state()
    g, x = gen(16), seq(distinct_body(30))
    T.span_mask(x, generator=g, unit="token", vocab_size=V)
    T.t5_span_corruption(x, generator=g, vocab_size=V)
    for fn in (T.delete, T.shuffle, T.rotate, T.knockout):
        fn(x, generator=g)
    T.replace(x, generator=g, vocab_size=V)
    T.insert(x, generator=g, with_token="random", vocab_size=V)
    assert torch.equal(torch.get_rng_state(), state)


# ---------------------------------------------------------------- properties

NOISES = {
    "span_mask": lambda x, g, r: T.span_mask(
        x, generator=g, ratio=r, unit="word", word_start=WORD_START, vocab_size=V,
        mode=["single_mask", "mask_per_token"][int(r * 10) % 2]),
    "span_delete": lambda x, g, r: T.span_mask(x, generator=g, ratio=r, unit="token", mode="delete", random_ratio=0.0),
    "t5": lambda x, g, r: T.t5_span_corruption(x, generator=g, noise_density=min(max(r, 0.01), 0.99), vocab_size=V)[0],
    "delete": lambda x, g, r: T.delete(x, generator=g, ratio=r),
    "replace": lambda x, g, r: T.replace(x, generator=g, ratio=r, vocab_size=V),
    "insert": lambda x, g, r: T.insert(x, generator=g, ratio=r, with_token="random", vocab_size=V),
    "shuffle": lambda x, g, r: T.shuffle(x, generator=g, max_distance=int(r * 5)),
    "rotate": lambda x, g, r: T.rotate(x, generator=g),
    "knockout": lambda x, g, r: T.knockout(x, generator=g, ratio=r),
}


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(sorted(NOISES)),
    body=st.lists(st.integers(min_value=UNK, max_value=V - 1).filter(lambda t: t not in (BOS, EOS)), max_size=25),
    ratio=st.floats(min_value=0.0, max_value=1.0),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_any_noise_keeps_layout_and_is_reproducible(name, body, ratio, seed):
    x = seq(body)
    out = NOISES[name](x, gen(seed), ratio)
    inner = body_of(out)  # bos first, eos last, nothing special inside
    assert out.dtype == torch.long and out.dim() == 1
    may_empty = name == "span_delete" and round(ratio * len(body)) == len(body)
    assert inner.numel() > 0 or not body or may_empty
    assert torch.equal(NOISES[name](x, gen(seed), ratio), out)
    assert torch.equal(x, seq(body))  # input untouched
