"""Token-budget batching and token collation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from seqae.data.batching import TokenBudgetBatcher
from seqae.frontend.collate import collate_tokens
from seqae.frontend.tokenizer import PAD_ID, train_tokenizer

FORTUNES = Path(__file__).resolve().parents[1] / "data" / "fortunes"


@pytest.fixture(scope="module")
def fortunes_lengths(tmp_path_factory) -> list[int]:
    """Token lengths (with bos and eos) of the fortunes training sentences."""
    lines = (FORTUNES / "train.txt").read_text(encoding="utf-8").splitlines()
    tok = train_tokenizer(lines, tmp_path_factory.mktemp("spm") / "m", vocab_size=1000, model_type="bpe")
    return [len(ids) + 2 for ids in tok.encode_batch(lines)]


def check_batches(batches: list[list[int]], lengths: list[int], max_tokens: int, max_sentences: int | None):
    flat = sorted(i for batch in batches for i in batch)
    assert flat == list(range(len(lengths)))  # every index exactly once
    for batch in batches:
        assert batch
        cost = len(batch) * max(lengths[i] for i in batch)
        assert cost <= max_tokens or (len(batch) == 1 and lengths[batch[0]] > max_tokens), batch
        if max_sentences is not None:
            assert len(batch) <= max_sentences


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 80), min_size=1, max_size=300),
    max_tokens=st.integers(1, 400),
    max_sentences=st.one_of(st.none(), st.integers(1, 20)),
    shuffle=st.booleans(),
    epoch=st.integers(0, 5),
)
def test_every_index_once_and_budget_respected(lengths, max_tokens, max_sentences, shuffle, epoch):
    batcher = TokenBudgetBatcher(lengths, max_tokens=max_tokens, max_sentences=max_sentences, shuffle=shuffle)
    batches = batcher.batches(epoch)
    check_batches(batches, lengths, max_tokens, max_sentences)
    assert batcher.num_batches(epoch) == len(batches)


def test_overlong_sequence_gets_its_own_batch():
    lengths = [5, 100, 3, 4, 60]
    batches = TokenBudgetBatcher(lengths, max_tokens=10, shuffle=False).batches(0)
    assert [1] in batches and [4] in batches
    assert sorted(map(sorted, batches)) == [[0], [1], [2, 3], [4]]


def test_deterministic_in_seed_and_epoch(fortunes_lengths):
    a = TokenBudgetBatcher(fortunes_lengths, max_tokens=1024, seed=7)
    b = TokenBudgetBatcher(fortunes_lengths, max_tokens=1024, seed=7)
    assert a.batches(3) == b.batches(3)
    assert a.batches(3) == a.batches(3)  # not consumed or mutated by a call
    a.batches(3)[0].append(-1)
    assert a.batches(3) == b.batches(3)
    assert a.batches(3) != a.batches(4)
    assert a.batches(3) != TokenBudgetBatcher(fortunes_lengths, max_tokens=1024, seed=8).batches(3)


def test_shuffled_batches_are_not_in_length_order(fortunes_lengths):
    batcher = TokenBudgetBatcher(fortunes_lengths, max_tokens=1024, seed=0)
    longest = [max(fortunes_lengths[i] for i in batch) for batch in batcher.batches(0)]
    assert longest != sorted(longest)


def test_unshuffled_batches_are_fixed_and_sorted(fortunes_lengths):
    batcher = TokenBudgetBatcher(fortunes_lengths, max_tokens=1024, shuffle=False)
    assert batcher.batches(0) == batcher.batches(5)
    longest = [max(fortunes_lengths[i] for i in batch) for batch in batcher.batches(0)]
    assert longest == sorted(longest)


@pytest.mark.parametrize("max_tokens", [512, 1024, 4096])  # 310, 154 and 39 batches an epoch
def test_padding_efficiency_on_fortunes(fortunes_lengths, max_tokens):
    batcher = TokenBudgetBatcher(fortunes_lengths, max_tokens=max_tokens, seed=1)
    check_batches(batcher.batches(2), fortunes_lengths, max_tokens, None)
    batches = batcher.batches(2)
    padded = sum(len(b) * max(fortunes_lengths[i] for i in b) for b in batches)
    assert batcher.padding_efficiency(2) == pytest.approx(sum(fortunes_lengths) / padded)
    assert batcher.padding_efficiency(2) >= 0.95
    assert len(batches) <= 1.1 * padded / max_tokens + 1  # batches are filled, not tiny


@pytest.mark.parametrize(
    "lengths, kwargs, message",
    [
        ([3, 0, 2], {"max_tokens": 10}, "index 1 has length 0"),
        ([3.5, 2.0], {"max_tokens": 10}, "1-D sequence of ints"),
        ([[1, 2]], {"max_tokens": 10}, "1-D sequence of ints"),
        ([3], {"max_tokens": 0}, "max_tokens must be >= 1"),
        ([3], {"max_tokens": 10, "max_sentences": 0}, "max_sentences must be >= 1"),
    ],
)
def test_bad_arguments(lengths, kwargs, message):
    with pytest.raises(ValueError, match=message):
        TokenBudgetBatcher(lengths, **kwargs)


def test_negative_epoch_refused():
    with pytest.raises(ValueError, match="epoch must be >= 0"):
        TokenBudgetBatcher([3, 4], max_tokens=10).batches(-1)


def test_collate_ragged_lists_and_tensors():
    tokens, lengths = collate_tokens([[2, 7, 8, 3], [2, 3], [2, 9, 3]], pad_id=PAD_ID)
    assert tokens.dtype == torch.long and lengths.dtype == torch.long
    assert tokens.shape == (3, 4)
    torch.testing.assert_close(lengths, torch.tensor([4, 2, 3]))
    torch.testing.assert_close(tokens, torch.tensor([[2, 7, 8, 3], [2, 3, 0, 0], [2, 9, 3, 0]]))
    as_tensors = [torch.tensor([5, 6], dtype=torch.int32), torch.tensor([7])]
    tokens, lengths = collate_tokens(as_tensors, pad_id=-1)
    torch.testing.assert_close(tokens, torch.tensor([[5, 6], [7, -1]]))
    torch.testing.assert_close(lengths, torch.tensor([2, 1]))


def test_collate_matches_batcher_output(fortunes_lengths):
    seqs = [list(range(1, n + 1)) for n in fortunes_lengths[:200]]
    for batch in TokenBudgetBatcher(fortunes_lengths[:200], max_tokens=256).batches(0):
        tokens, lengths = collate_tokens([seqs[i] for i in batch], pad_id=PAD_ID)
        assert tokens.shape[0] * tokens.shape[1] <= 256 or len(batch) == 1
        torch.testing.assert_close(lengths, torch.tensor([fortunes_lengths[i] for i in batch]))
        mask = torch.arange(tokens.shape[1]) < lengths[:, None]  # (B, T)
        assert bool((tokens[~mask] == PAD_ID).all()) and bool((tokens[mask] != PAD_ID).all())


def test_collate_rejects_bad_input():
    with pytest.raises(ValueError, match="at least one sequence"):
        collate_tokens([], pad_id=0)
    with pytest.raises(ValueError, match=r"sequence 1 must be 1-D integer tokens.*shape \(1, 2\)"):
        collate_tokens([torch.tensor([1]), torch.tensor([[1, 2]])], pad_id=0)
    with pytest.raises(ValueError, match="sequence 0 must be 1-D integer tokens, got dtype torch.float32"):
        collate_tokens([[1.5, 2.0]], pad_id=0)
