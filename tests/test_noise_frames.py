"""Frame and waveform noises: exact counts, aggregate proportions, masks, reproducibility."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from seqae.noise import frames as F


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def utterance(t: int, f: int = 4, seed: int = 0) -> torch.Tensor:
    """Random frames with no zero entry and every frame distinct."""
    x = torch.randn(t, f, generator=gen(seed))
    return x + torch.sign(x) * 0.1  # (T, F)


def test_time_mask_selects_exactly_and_splits_zero_random_keep():
    g = gen(1)
    counts = {"zero": 0, "random": 0, "keep": 0}
    for i, t in enumerate(torch.randint(20, 400, (3000,), generator=gen(0)).tolist()):
        x = utterance(t, seed=i)
        out, mask = F.time_mask(x, generator=g, ratio=0.2, span=5)
        assert mask.dtype == torch.bool and mask.shape == (t,)
        assert int(mask.sum()) == round(0.2 * t)
        assert torch.equal(out[~mask], x[~mask])
        sel, orig = out[mask], x[mask]
        zero = (sel == 0).all(1)
        keep = (sel == orig).all(1)
        rand = ~zero & ~keep
        # a randomised frame is a copy of some *other* frame of the same utterance
        assert all(bool((x == row).all(1).any()) for row in sel[rand])
        counts["zero"] += int(zero.sum())
        counts["keep"] += int(keep.sum())
        counts["random"] += int(rand.sum())
    total = sum(counts.values())
    assert abs(counts["zero"] / total - 0.8) < 0.01
    assert abs(counts["random"] / total - 0.1) < 0.01
    assert abs(counts["keep"] / total - 0.1) < 0.01


def test_time_mask_uses_spans_of_the_given_length():
    g = gen(2)
    for _ in range(200):
        out, mask = F.time_mask(utterance(100), generator=g, ratio=0.3, span=7, p_zero=1.0, p_random=0.0, p_keep=0.0)
        assert int(mask.sum()) == 30
        # runs of selected frames are unions of adjacent spans: 4 spans of 7 and one of 2
        edges = torch.diff(torch.cat([torch.tensor([0]), mask.int(), torch.tensor([0])]))
        runs = (edges == -1).nonzero().flatten() - (edges == 1).nonzero().flatten()
        assert int(runs.sum()) == 30 and len(runs) <= 5
        assert all(r % 7 in (0, 2) for r in runs.tolist())  # 7a, or 7a + 2 for the run holding the short span
        assert (out[mask] == 0).all()


def test_time_mask_random_frames_never_copy_themselves():
    g, x = gen(9), utterance(2)
    for _ in range(50):
        out, mask = F.time_mask(x, generator=g, ratio=0.5, span=1, p_zero=0.0, p_random=1.0, p_keep=0.0)
        assert torch.equal(out[mask], x[~mask])  # the one selected frame became the other one


def test_time_mask_rejects_bad_arguments():
    with pytest.raises(ValueError, match="sum to 1"):
        F.time_mask(utterance(10), generator=gen(0), p_zero=0.5, p_random=0.1, p_keep=0.1)
    with pytest.raises(ValueError, match=r"\[T, F\]"):
        F.time_mask(torch.randn(10), generator=gen(0))
    with pytest.raises(ValueError, match=r"\[T, F\]"):
        F.frame_knockout(torch.ones(3, 2, dtype=torch.long), generator=gen(0))


def test_freq_mask_bands_are_uniform_up_to_max_width():
    g, widths = gen(3), []
    for _ in range(4000):
        out, mask = F.freq_mask(utterance(5, f=80), generator=g, num_masks=1, max_width=27)
        band = (out == 0).all(0)
        width = int(band.sum())
        assert width <= 27 and mask.all() == (width > 0)
        if width:
            cols = band.nonzero().flatten()
            assert int(cols[-1] - cols[0]) + 1 == width  # one contiguous band
        widths.append(width)
    assert abs(sum(widths) / len(widths) - 13.5) < 0.4
    assert set(widths) == set(range(28))


def test_freq_mask_clips_width_to_the_feature_size():
    out, _ = F.freq_mask(utterance(3, f=4), generator=gen(4), num_masks=3, max_width=50)
    assert out.shape == (3, 4)


def test_gaussian_noise_has_the_asked_sigma_and_count():
    g, deltas = gen(5), []
    for t in range(1, 400):
        x = utterance(t, f=8)
        out, mask = F.gaussian_noise(x, generator=g, sigma=0.5, ratio=0.3)
        assert int(mask.sum()) == round(0.3 * t)
        assert torch.equal(out[~mask], x[~mask])
        deltas.append((out - x)[mask].flatten())
    assert abs(float(torch.cat(deltas).std()) - 0.5) < 0.005


def test_frame_knockout_zeroes_exactly():
    g, zeroed, total = gen(6), 0, 0
    for t in torch.randint(1, 300, (2000,), generator=gen(1)).tolist():
        x = utterance(t)
        out, mask = F.frame_knockout(x, generator=g, ratio=0.25)
        assert torch.equal((out == 0).all(1), mask)
        assert int(mask.sum()) == round(0.25 * t)
        zeroed, total = zeroed + int(mask.sum()), total + t
    assert abs(zeroed / total - 0.25) < 0.01


def snr_db(clean: torch.Tensor, noisy: torch.Tensor) -> torch.Tensor:
    return 10 * torch.log10(clean.square().sum(-1) / (noisy - clean).square().sum(-1))


@pytest.mark.parametrize("snr", [-5.0, 0.0, 10.0, 30.0])
def test_waveform_add_noise_hits_the_snr(snr):
    g = gen(7)
    mono = torch.randn(16000, generator=g)
    out = F.waveform_add_noise(mono, torch.randn(4000, generator=g), generator=g, snr_db=snr)  # tiled noise
    assert out.shape == mono.shape
    torch.testing.assert_close(snr_db(mono, out), torch.tensor(snr), atol=1e-3, rtol=0)
    stereo = torch.randn(2, 8000, generator=g)
    out = F.waveform_add_noise(stereo, torch.randn(20000, generator=g), generator=g, snr_db=snr)
    torch.testing.assert_close(snr_db(stereo, out), torch.full((2,), snr), atol=1e-3, rtol=0)


def test_waveform_add_noise_is_reproducible_and_checks_input():
    wave, noise = torch.randn(1000, generator=gen(0)), torch.randn(5000, generator=gen(1))
    a = F.waveform_add_noise(wave, noise, generator=gen(8), snr_db=5.0)
    assert torch.equal(a, F.waveform_add_noise(wave, noise, generator=gen(8), snr_db=5.0))
    assert not torch.equal(a, F.waveform_add_noise(wave, noise, generator=gen(9), snr_db=5.0))
    assert torch.equal(F.waveform_add_noise(torch.zeros(100), noise, generator=gen(0), snr_db=5.0), torch.zeros(100))
    with pytest.raises(ValueError, match="silent"):
        F.waveform_add_noise(wave, torch.zeros(50), generator=gen(0), snr_db=5.0)
    with pytest.raises(ValueError, match="channels"):
        F.waveform_add_noise(torch.randn(2, 100), torch.randn(3, 100), generator=gen(0), snr_db=5.0)


def test_global_rng_is_untouched():
    state = torch.get_rng_state()
    g, x = gen(10), utterance(50)
    F.time_mask(x, generator=g)
    F.freq_mask(x, generator=g)
    F.gaussian_noise(x, generator=g)
    F.frame_knockout(x, generator=g)
    F.waveform_add_noise(torch.randn(100, generator=g), torch.randn(30, generator=g), generator=g, snr_db=3.0)
    assert torch.equal(torch.get_rng_state(), state)


NOISES = {
    "time_mask": lambda x, g, r: F.time_mask(x, generator=g, ratio=r, span=1 + int(r * 9)),
    "freq_mask": lambda x, g, r: F.freq_mask(x, generator=g, num_masks=int(r * 4), max_width=int(r * 30)),
    "gaussian": lambda x, g, r: F.gaussian_noise(x, generator=g, sigma=r, ratio=r),
    "frame_knockout": lambda x, g, r: F.frame_knockout(x, generator=g, ratio=r),
}


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(sorted(NOISES)),
    t=st.integers(min_value=0, max_value=60),
    f=st.integers(min_value=1, max_value=12),
    ratio=st.floats(min_value=0.0, max_value=1.0),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_any_frame_noise_keeps_shape_and_is_reproducible(name, t, f, ratio, seed):
    x = utterance(t, f)
    before = x.clone()
    out, mask = NOISES[name](x, gen(seed), ratio)
    assert out.shape == (t, f) and out.dtype == x.dtype
    assert mask.shape == (t,) and mask.dtype == torch.bool
    assert torch.equal(out[~mask], x[~mask])  # unmarked frames are untouched
    again, mask2 = NOISES[name](x, gen(seed), ratio)
    assert torch.equal(again, out) and torch.equal(mask2, mask)
    assert torch.equal(x, before)
