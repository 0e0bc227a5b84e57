"""Seeing and hearing what a speech run rebuilds: PNGs of input and rebuilt log-Mel, Griffin-Lim audio.

Dimension letters: ``T`` frames, ``F`` Mel bins, ``S`` samples.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from seqae.eval.plots import plot_reconstruction
from seqae.frontend.audio import write_audio
from seqae.frontend.features import LOG_OFFSET, Cmvn, FeatureExtractor


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
