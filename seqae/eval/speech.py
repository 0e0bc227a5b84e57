"""Evaluating speech embeddings and reconstructions: same-different AP, frame baselines, plots, audio.

Dimension letters: ``N`` items, ``T`` frames, ``F`` feature bins, ``D`` embedding width.

- :func:`same_different_ap` is the word-discrimination measure of Carlin et al. (2011) and Kamper et al.
  (2016): every pair ``i < j`` of items is scored by the cosine similarity of their embeddings, pairs with
  the same label are the positives, and the score is the average precision of that ranking.
- :func:`mean_frames` and :func:`downsampled_frames` are the label-free baselines an encoder must beat:
  the mean frame, and ``n`` frames sampled uniformly in time and concatenated (Levin et al., 2013; used
  as the reference embedding by Kamper et al., 2016).
- :func:`plot_reconstruction` draws an original and a rebuilt log-Mel (needs ``matplotlib``);
  :func:`griffin_lim` turns a log-Mel back into a waveform to listen to.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from seqae.frontend.features import LOG_OFFSET, Cmvn, FeatureExtractor

__all__ = ["downsampled_frames", "griffin_lim", "mean_frames", "plot_reconstruction", "same_different_ap"]


def same_different_ap(embeddings: torch.Tensor, labels: Sequence[Hashable]) -> float:
    """Average precision of same-label pairs ranked by cosine similarity.

    Args:
        embeddings: ``[N, D]``, one row per item (rows of zeros have similarity 0 to everything).
        labels: ``N`` labels; items ``i < j`` with ``labels[i] == labels[j]`` form the positive pairs.

    Returns:
        ``AP = mean over positive pairs p of precision(score >= score(p))``, i.e. the area under the
        precision-recall curve with one point per distinct score (tied pairs count together, so the
        result does not depend on the order of ties; sklearn's ``average_precision_score``). 1.0 means
        every positive pair scores above every negative one.

    Raises:
        ValueError: shapes disagree, there are fewer than two items, an embedding is not finite, or no two
            items share a label.
    """
    if embeddings.dim() != 2:
        raise ValueError(f"same_different_ap: embeddings must be [N, D], got shape {tuple(embeddings.shape)}")
    n = embeddings.shape[0]
    if len(labels) != n:
        raise ValueError(f"same_different_ap: {n} embeddings but {len(labels)} labels")
    if n < 2:
        raise ValueError(f"same_different_ap: needs at least 2 items, got {n}")
    if not bool(torch.isfinite(embeddings).all()):
        raise ValueError("same_different_ap: embeddings contain NaN or infinity")
    from sklearn.metrics import average_precision_score  # here, not above: it adds ~1 s to `import seqae`

    ids = {label: k for k, label in enumerate(dict.fromkeys(labels))}
    codes = torch.tensor([ids[label] for label in labels])  # (N,)
    unit = F.normalize(embeddings.detach().cpu().double(), dim=1)  # (N, D)
    i, j = torch.triu_indices(n, n, offset=1)  # pairs i < j
    scores = (unit[i] * unit[j]).sum(dim=1)  # (N(N-1)/2,)
    positive = codes[i] == codes[j]
    if not bool(positive.any()):
        raise ValueError("same_different_ap: no two items share a label, so there are no positive pairs")
    return float(average_precision_score(positive.numpy(), scores.numpy()))


def _check_features(features: Sequence[torch.Tensor], name: str) -> int:
    if len(features) == 0:
        raise ValueError(f"{name}: no features given")
    dim = features[0].shape[-1]
    for k, x in enumerate(features):
        if x.dim() != 2 or x.shape[1] != dim or x.shape[0] == 0:
            raise ValueError(f"{name}: item {k} has shape {tuple(x.shape)}, expected [T >= 1, {dim}]")
    return dim


def mean_frames(features: Sequence[torch.Tensor]) -> torch.Tensor:
    """The mean frame of each item: ``N`` tensors ``[T_i, F]`` -> ``[N, F]``."""
    _check_features(features, "mean_frames")
    return torch.stack([x.float().mean(dim=0) for x in features])  # (N, F)


def downsampled_frames(features: Sequence[torch.Tensor], n: int = 10) -> torch.Tensor:
    """``n`` frames sampled uniformly in time from each item, flattened: ``N`` x ``[T_i, F]`` -> ``[N, n * F]``.

    Sample ``k`` (``k = 0 .. n-1``) is the frame at time ``t_k = k (T - 1) / (n - 1)``, linearly
    interpolated between the two frames around it, so the first and last frames are always kept
    (``torch.nn.functional.interpolate``, ``mode="linear"``, ``align_corners=True``). An item of one
    frame is repeated ``n`` times. Row layout: sample 0's ``F`` values, then sample 1's, and so on.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"downsampled_frames: n must be a positive int, got {n!r}")
    dim = _check_features(features, "downsampled_frames")
    rows = []
    for x in features:
        series = x.float().transpose(0, 1).unsqueeze(0)  # (1, F, T)
        sampled = F.interpolate(series, size=n, mode="linear", align_corners=True)  # (1, F, n)
        rows.append(sampled[0].transpose(0, 1).reshape(n * dim))  # (n, F) -> (n * F,)
    return torch.stack(rows)  # (N, n * F)


def plot_reconstruction(original: torch.Tensor, rebuilt: torch.Tensor, path: str | os.PathLike[str],
                        title: str, *, width_in: float = 8.0, height_in: float = 5.0, dpi: int = 100) -> Path:
    """Save a PNG with the original log-Mel ``[T, F]`` above the rebuilt one ``[T', F]``, on one colour scale.

    The image is ``round(width_in * dpi)`` x ``round(height_in * dpi)`` pixels. Needs ``matplotlib``.

    Raises:
        ImportError: matplotlib is not installed (the message says how to install it).
        ValueError: the inputs are not ``[T, F]`` with the same ``F``.
    """
    if original.dim() != 2 or rebuilt.dim() != 2 or original.shape[1] != rebuilt.shape[1]:
        raise ValueError(f"plot_reconstruction: expected [T, F] and [T', F], got {tuple(original.shape)} "
                         f"and {tuple(rebuilt.shape)}")
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, never a window
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ImportError("plot_reconstruction needs matplotlib (pip install matplotlib)") from err
    a, b = original.detach().float().cpu(), rebuilt.detach().float().cpu()
    both = torch.cat([a, b])
    vmin, vmax = (float(both.min()), float(both.max())) if both.numel() else (0.0, 1.0)
    fig, axes = plt.subplots(2, 1, figsize=(width_in, height_in), dpi=dpi, sharex=True)
    for ax, feats, name in ((axes[0], a, f"original ({a.shape[0]} frames)"),
                            (axes[1], b, f"rebuilt from z ({b.shape[0]} frames)")):
        image = ax.imshow(feats.T.numpy(), origin="lower", aspect="auto", vmin=vmin, vmax=vmax,
                          interpolation="nearest", cmap="magma")
        ax.set_title(name, fontsize=9)
        ax.set_ylabel("mel bin")
    axes[1].set_xlabel("frame")
    axes[0].set_xlim(-0.5, max(a.shape[0], b.shape[0]) - 0.5)
    fig.suptitle(title)
    fig.colorbar(image, ax=list(axes), label="feature value")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)  # no bbox_inches="tight": the pixel size stays as asked
    plt.close(fig)
    return path


def griffin_lim(logmel: torch.Tensor, extractor: FeatureExtractor, *, cmvn: Cmvn | None = None,
                n_iter: int = 32, seed: int = 0) -> torch.Tensor:
    """A waveform ``[S]`` whose log-Mel is close to ``logmel`` ``[T, F]`` (to listen to a reconstruction).

    Undoes CMVN (when given) and the log, maps the Mel power back to a linear power spectrogram with
    ``torchaudio.transforms.InverseMelScale`` and estimates the phase with ``GriffinLim`` (``n_iter``
    iterations, random initial phase from ``seed``). The result is scaled to peak 0.9. Only for
    ``kind="logmel"`` extractors.
    """
    import torchaudio.transforms as TT

    if extractor.kind != "logmel":
        raise ValueError(f"griffin_lim: needs logmel features, the extractor computes {extractor.kind!r}")
    if logmel.dim() != 2 or logmel.shape[1] != extractor.feature_dim:
        raise ValueError(f"griffin_lim: expected [T, {extractor.feature_dim}], got {tuple(logmel.shape)}")
    feats = cmvn.denormalize(logmel.float()) if cmvn is not None else logmel.float()
    mel_power = (feats.exp() - LOG_OFFSET).clamp_min(0.0).T  # (F, T)
    n_fft = extractor.win_length
    inverse = TT.InverseMelScale(n_stft=n_fft // 2 + 1, n_mels=extractor.n_mels, sample_rate=extractor.sample_rate)
    power = inverse(mel_power).clamp_min(0.0)  # (n_fft // 2 + 1, T)
    vocoder = TT.GriffinLim(n_fft=n_fft, hop_length=extractor.hop_length, win_length=n_fft, power=2.0,
                            n_iter=n_iter, rand_init=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        wav = vocoder(power)  # (S,)
    peak = float(wav.abs().max())
    return wav * (0.9 / peak) if peak > 0 else wav


def write_reconstructions(run, sources, out_dir: str | os.PathLike[str], *, audio: bool = False,
                          names: Sequence[str] | None = None, max_len: int | None = None) -> list[dict]:
    """For each utterance of a speech run (audio files or manifest rows, as `SpeechRun.features` reads them; cut to
    `max_len` frames), a PNG of its log-Mel above the one generated from z alone and, with `audio` (logmel runs),
    Griffin-Lim WAVs of both. Returns per utterance: png, wavs, frames and rebuilt_frames."""
    from seqae.frontend.audio import write_audio

    if audio and run.extractor.kind != "logmel":
        raise ValueError(f"audio: Griffin-Lim needs logmel features; this run computes {run.extractor.kind!r}")
    speech = run.features(sources, strict=True, max_len=max_len)
    out, written = Path(out_dir), []
    for i, (row, x, y) in enumerate(zip(speech.rows, speech.features, run.reconstruct(speech.features))):
        stem = names[i] if names is not None else f"{i}_{Path(row.path).stem}"
        title = f"{row.label or row.text or Path(row.path).name}: rebuilt from z"
        item = {"png": plot_reconstruction(x, y, out / f"{stem}.png", title), "wavs": [], "frames": x.shape[0],
                "rebuilt_frames": y.shape[0]}
        for suffix, feats in (("orig", x), ("rebuilt", y)) if audio else ():
            wav_path = out / f"{stem}.{suffix}.wav"
            write_audio(wav_path, griffin_lim(feats, run.extractor, cmvn=run.cmvn), run.extractor.sample_rate)
            item["wavs"].append(wav_path)
        written.append(item)
    return written
