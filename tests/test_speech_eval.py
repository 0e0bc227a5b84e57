"""Same-different AP against its definition, the frame baselines, the reconstruction plot, Griffin-Lim audio."""

import struct

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from seqae.apps.speech import griffin_lim
from seqae.eval.plots import plot_reconstruction
from seqae.eval.speech import same_different_ap
from seqae.frontend.features import FeatureExtractor
from seqae.frontend.summaries import downsampled_frames, mean_frames


def brute_force_ap(embeddings, labels):
    """AP by its definition: for each positive pair, the precision among all pairs scoring at least as high."""
    n = len(labels)
    pairs = []
    for i in range(n):
        for j in range(i + 1, n):
            cos = torch.nn.functional.cosine_similarity(embeddings[i].double(), embeddings[j].double(), dim=0)
            pairs.append((float(cos), labels[i] == labels[j]))
    precisions = []
    for score, positive in pairs:
        if positive:
            above = [p for s, p in pairs if s >= score]
            precisions.append(sum(above) / len(above))
    return sum(precisions) / len(precisions)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(3, 14), classes=st.integers(1, 4), dim=st.integers(1, 5))
def test_ap_matches_the_brute_force_definition(seed, n, classes, dim):
    g = torch.Generator().manual_seed(seed)
    labels = [int(k) for k in torch.randint(0, classes, (n,), generator=g)]
    if len(set(labels)) == n:
        labels[1] = labels[0]  # at least one positive pair
    # Small integer coordinates make exact ties between pair scores common.
    embeddings = torch.randint(-2, 3, (n, dim), generator=g).float()
    assert same_different_ap(embeddings, labels) == pytest.approx(brute_force_ap(embeddings, labels), abs=1e-9)


def test_ap_is_one_for_perfect_embeddings_and_known_for_a_hand_made_ranking():
    perfect = torch.tensor([[1.0, 0.0], [2.0, 0.1], [0.0, 1.0], [0.1, 3.0]])
    assert same_different_ap(perfect, ["a", "a", "b", "b"]) == pytest.approx(1.0)
    # Pair scores: (1,2) 0.96 positive; (0,1) 0.8, (0,2) 0.6, the rest below 0, all negative.
    e = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8], [-1.0, 0.0]])
    assert same_different_ap(e, ["w", "x", "x", "z"]) == pytest.approx(1.0)
    # The only positive pair, (0,1) at -1, ranks last of 6 -> AP = 1/6.
    worst = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.9, 0.1], [0.8, 0.3]])
    assert same_different_ap(worst, ["p", "p", "q", "r"]) == pytest.approx(1 / 6)


def test_ap_ties_count_together_and_bad_input_is_named():
    same = torch.ones(4, 3)  # every pair scores 1: precision = positives / pairs
    assert same_different_ap(same, [0, 0, 1, 2]) == pytest.approx(1 / 6)
    with pytest.raises(ValueError, match="no two items share a label"):
        same_different_ap(torch.randn(3, 2), ["a", "b", "c"])
    with pytest.raises(ValueError, match="3 embeddings but 2 labels"):
        same_different_ap(torch.randn(3, 2), ["a", "a"])
    with pytest.raises(ValueError, match=r"must be \[N, D\]"):
        same_different_ap(torch.randn(3), ["a", "a", "b"])
    with pytest.raises(ValueError, match="NaN or infinity"):
        same_different_ap(torch.tensor([[1.0, 0.0], [float("nan"), 1.0], [0.0, 1.0]]), ["a", "a", "b"])


def test_mean_frames_and_downsampled_frames_shapes_and_values():
    a = torch.arange(12.0).reshape(6, 2)  # (T=6, F=2)
    b = torch.tensor([[5.0, -1.0]])  # one frame
    means = mean_frames([a, b])
    torch.testing.assert_close(means, torch.tensor([[5.0, 6.0], [5.0, -1.0]]))
    down = downsampled_frames([a, b], n=3)
    assert down.shape == (2, 6)
    # t_k = k (T - 1) / (n - 1) = 0, 2.5, 5: frames 0, halfway between 2 and 3, 5.
    expected_a = torch.cat([a[0], (a[2] + a[3]) / 2, a[5]])
    torch.testing.assert_close(down[0], expected_a)
    torch.testing.assert_close(down[1], b[0].repeat(3))
    assert downsampled_frames([torch.randn(37, 40)], n=10).shape == (1, 400)
    with pytest.raises(ValueError, match="item 1 has shape"):
        mean_frames([torch.randn(3, 2), torch.randn(3, 4)])
    with pytest.raises(ValueError, match="positive int"):
        downsampled_frames([a], n=0)


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk comes first
    return width, height


def test_plot_reconstruction_writes_a_png_of_the_asked_size(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib is not installed (plots are optional)")
    path = plot_reconstruction(torch.randn(50, 40), torch.randn(44, 40), tmp_path / "sub" / "r.png", "apple",
                               width_in=6.0, height_in=4.0, dpi=50)
    assert png_size(path) == (300, 200)
    with pytest.raises(ValueError, match=r"\[T, F\]"):
        plot_reconstruction(torch.randn(5, 40), torch.randn(5, 30), tmp_path / "x.png", "bad")


def test_griffin_lim_gives_audio_of_the_right_length():
    extractor = FeatureExtractor(kind="logmel", n_mels=40)
    wav = torch.sin(torch.arange(8000) * 2 * torch.pi * 440 / 16000) * 0.5
    feats = extractor(wav)  # (T, 40)
    audio = griffin_lim(feats, extractor, n_iter=4)
    hop = extractor.hop_length
    assert audio.dim() == 1 and abs(audio.shape[0] - (feats.shape[0] - 1) * hop) <= extractor.win_length
    assert bool(torch.isfinite(audio).all()) and float(audio.abs().max()) == pytest.approx(0.9)
    # The rebuilt tone keeps most of its energy near 440 Hz.
    spectrum = torch.fft.rfft(audio).abs()
    freqs = torch.fft.rfftfreq(audio.shape[0], 1 / 16000)
    assert float(freqs[spectrum.argmax()]) == pytest.approx(440, abs=40)
    with pytest.raises(ValueError, match="needs logmel"):
        griffin_lim(torch.randn(5, 13), FeatureExtractor(kind="mfcc"))
