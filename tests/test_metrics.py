"""Reconstruction metrics on hand-made cases: teacher-forced accuracy and position-aligned reconstruction counts.

Sequences are `[bos=2, t1..tn, eos=3, pad=0...]`; lengths count bos and eos; bos is never scored.
"""

from __future__ import annotations

import pytest
import torch

from seqae.eval.metrics import reconstruction_counts, short_exact_counts, teacher_forced_accuracy
from seqae.frontend.collate import collate_tokens

BOS, EOS, PAD = 2, 3, 0


def one_hot_logits(predicted: list[list[int]], vocab: int = 12) -> torch.Tensor:
    """Logits [B, T, V] whose argmax is `predicted[b][t]` (the other classes get smaller random values)."""
    gen = torch.Generator().manual_seed(0)
    pred = torch.tensor(predicted)
    logits = torch.rand(*pred.shape, vocab, generator=gen)  # values in [0, 1)
    logits.scatter_(-1, pred[..., None], 5.0)
    return logits


def counts(generated: list[list[int]], reference: list[list[int]]) -> dict[str, int]:
    gen, gen_lengths = collate_tokens(generated, PAD)
    ref, ref_lengths = collate_tokens(reference, PAD)
    return reconstruction_counts(gen, gen_lengths, ref, ref_lengths)


# ---- teacher_forced_accuracy


def test_accuracy_counts_only_real_positions():
    targets = torch.tensor([[5, 6, 7, EOS], [8, EOS, PAD, PAD]])
    # Row 0: 3 of 4 right (7 predicted as 9). Row 1: both right; the predictions at pad positions are
    # wrong on purpose (and would be "right" if pads were scored, since PAD is predicted at one of them).
    logits = one_hot_logits([[5, 6, 9, EOS], [8, EOS, 11, PAD]])
    assert teacher_forced_accuracy(logits, targets) == (5, 6)


def test_accuracy_all_right_and_all_wrong():
    targets = torch.tensor([[5, 6, EOS]])
    assert teacher_forced_accuracy(one_hot_logits([[5, 6, EOS]]), targets) == (3, 3)
    assert teacher_forced_accuracy(one_hot_logits([[6, 5, 5]]), targets) == (0, 3)


def test_accuracy_respects_pad_id_argument():
    targets = torch.tensor([[5, 9, 9]])  # with pad_id=9 only the first position is real
    assert teacher_forced_accuracy(one_hot_logits([[5, 1, 1]]), targets, pad_id=9) == (1, 1)


# ---- reconstruction_counts


def test_exact_reconstruction():
    ref = [[BOS, 5, 6, 7, EOS], [BOS, 8, EOS]]
    assert counts(ref, ref) == {"correct": 6, "total": 6, "exact": 2, "sequences": 2}


def test_one_token_wrong():
    ref = [[BOS, 5, 6, 7, EOS]]
    assert counts([[BOS, 5, 9, 7, EOS]], ref) == {"correct": 3, "total": 4, "exact": 0, "sequences": 1}


def test_generated_too_long():
    ref = [[BOS, 5, 6, EOS]]
    # The reference's eos position holds 7: eos is missed, the extra tokens are not counted in `total`.
    assert counts([[BOS, 5, 6, 7, 8, EOS]], ref) == {"correct": 2, "total": 3, "exact": 0, "sequences": 1}


def test_generated_too_short():
    ref = [[BOS, 5, 6, 7, EOS]]
    assert counts([[BOS, 5, 6, EOS]], ref) == {"correct": 2, "total": 4, "exact": 0, "sequences": 1}


def test_generated_without_eos_has_full_length():
    ref = [[BOS, 5, 6, EOS]]
    # Greedy decoding that ran out of steps: no eos, the length is the whole row.
    assert counts([[BOS, 5, 6, 7]], ref) == {"correct": 2, "total": 3, "exact": 0, "sequences": 1}
    assert counts([[BOS, 5, 6]], ref) == {"correct": 2, "total": 3, "exact": 0, "sequences": 1}


def test_tokens_after_generated_length_do_not_count():
    """A token past the generated length is not a match even if it equals the reference's token there."""
    gen = torch.tensor([[BOS, 5, EOS, 7, EOS]])  # length 3 says the sequence stops at the first eos
    ref = torch.tensor([[BOS, 5, 6, 7, EOS]])
    out = reconstruction_counts(gen, torch.tensor([3]), ref, torch.tensor([5]))
    assert out == {"correct": 1, "total": 4, "exact": 0, "sequences": 1}


def test_widths_and_padding_do_not_matter():
    """Generated wider than the reference (pads after eos) or narrower than it: same counts."""
    ref, ref_lengths = collate_tokens([[BOS, 5, 6, EOS], [BOS, 7, 8, 9, 10, EOS]], PAD)  # (2, 6)
    wide = torch.tensor([[BOS, 5, 6, EOS, PAD, PAD, PAD, PAD], [BOS, 7, 8, 9, 10, EOS, PAD, PAD]])
    narrow = torch.tensor([[BOS, 5, 6, EOS], [BOS, 7, 8, 9]])  # row 1 cut off before its eos
    assert reconstruction_counts(wide, torch.tensor([4, 6]), ref, ref_lengths) == {
        "correct": 8, "total": 8, "exact": 2, "sequences": 2}
    assert reconstruction_counts(narrow, torch.tensor([4, 4]), ref, ref_lengths) == {
        "correct": 6, "total": 8, "exact": 1, "sequences": 2}


def test_batch_sums_rows():
    ref = [[BOS, 5, 6, 7, EOS], [BOS, 8, EOS], [BOS, 9, 9, EOS]]
    gen = [[BOS, 5, 6, 7, EOS], [BOS, 8, 8, EOS], [BOS, 4, 9, EOS]]
    assert counts(gen, ref) == {"correct": 4 + 1 + 2, "total": 4 + 2 + 3, "exact": 1, "sequences": 3}


@pytest.mark.parametrize("shift", [1, -1])
def test_shifted_sequence_scores_only_aligned_positions(shift):
    """Metrics are position-aligned: a sequence with one inserted or deleted token matches only before it."""
    ref = [BOS, 5, 6, 7, 8, EOS]
    gen = [BOS, 5, 11, 6, 7, 8, EOS] if shift == 1 else [BOS, 5, 7, 8, EOS]
    assert counts([gen], [ref]) == {"correct": 1, "total": 5, "exact": 0, "sequences": 1}


def test_short_exact_counts_only_references_of_at_most_twenty_pieces():
    short_ref = [BOS, 5, 6, 7, EOS]
    long_ref = [BOS, *range(5, 26), EOS]  # 21 pieces
    ref, ref_lengths = collate_tokens([short_ref, long_ref, long_ref], 0)
    wrong = [BOS, *range(5, 25), 9, EOS]
    gen, gen_lengths = collate_tokens([short_ref, long_ref, wrong], 0)
    assert short_exact_counts(gen, gen_lengths, ref, ref_lengths) == {"short_exact": 1, "short": 1}
    assert reconstruction_counts(gen, gen_lengths, ref, ref_lengths)["exact"] == 2
