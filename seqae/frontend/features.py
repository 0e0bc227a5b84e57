"""Speech features: torchaudio log-Mel / MFCC / Kaldi fbank, global CMVN, and an on-disk feature cache.

Dimension letters: ``S`` samples, ``T`` frames, ``F`` feature bins.

Framing is the same for every kind (Kaldi's ``snip_edges``): a frame is ``win_length =
int(sample_rate * win_ms / 1000)`` samples, frames start every ``hop_length`` samples, and only whole
frames are kept, so ``T = 1 + (S - win_length) // hop_length`` (0 when ``S < win_length``).

- ``logmel``: ``log(mel_power + 1e-6)`` from ``torchaudio.transforms.MelSpectrogram`` (Hann window,
  ``n_fft = win_length``, power spectrum, HTK mel scale). A plain natural log with a fixed offset is
  used rather than ``AmplitudeToDB`` because the latter clips relative to each utterance's maximum
  (``top_db``), which would make a frame's value depend on the rest of the utterance.
- ``mfcc``: ``torchaudio.transforms.MFCC`` on the same log-Mel (``log_mels=True``), orthonormal DCT-II,
  so ``mfcc == logmel @ dct``.
- ``fbank``: ``torchaudio.compliance.kaldi.fbank`` with Kaldi's defaults (povey window, pre-emphasis
  0.97, DC removal, FFT size rounded to a power of two) except ``dither=0`` so features are
  deterministic. The waveform is scaled by 2**15 first, as Kaldi reads 16-bit samples as integers.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torchaudio.compliance.kaldi as kaldi
import torchaudio.transforms as TT
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from seqae.config import FeatureConfig
from seqae.frontend.audio import AudioError

__all__ = ["FEATURE_KINDS", "Cmvn", "FeatureCache", "FeatureExtractor", "settings_hash"]

FEATURE_KINDS = ("logmel", "mfcc", "fbank")
FEATURES_VERSION = 1  # bump when the computation changes, so stored settings and caches go stale
LOG_OFFSET = 1e-6
_KALDI_SCALE = 32768.0


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _positive_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


BATCH_SAMPLES = 16000 * 120
"""`FeatureExtractor.batch` computes at most this many padded samples in one call (two minutes at 16 kHz)."""


class _PowerSpectrogram(nn.Module):
    """torchaudio's `Spectrogram` (power 2) with |X|² taken as re² + im² (equal to float rounding): its
    `abs().pow(2)` of the complex STFT was the largest single cost of a batched log-Mel on the CPU (measured:
    benchmarks/README.md, 'power spectrum')."""

    def __init__(self, spectrogram: TT.Spectrogram) -> None:
        super().__init__()
        if spectrogram.power != 2.0:
            raise ValueError(f"expected a power spectrogram, got power={spectrogram.power}")
        spectrogram.power = None  # complex STFT out
        self.stft = spectrogram

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        spec = self.stft(wav)  # complex (..., n_fft // 2 + 1, T)
        return spec.real.square() + spec.imag.square()


class FeatureExtractor(nn.Module):
    """Waveform ``[S]`` -> features ``[T, F]`` (float32); see the module docstring for the choices.

    Args:
        kind: one of ``FEATURE_KINDS``.
        sample_rate: expected waveform rate in Hz.
        n_mels: mel bins (the feature size for ``logmel`` and ``fbank``).
        n_mfcc: cepstral coefficients kept for ``mfcc`` (at most ``n_mels``).
        win_ms: frame length in milliseconds.
        hop_ms: frame shift in milliseconds.
    """

    def __init__(
        self,
        *,
        kind: str = "logmel",
        sample_rate: int = 16000,
        n_mels: int = 80,
        n_mfcc: int = 13,
        win_ms: float = 25.0,
        hop_ms: float = 10.0,
    ) -> None:
        super().__init__()
        if kind not in FEATURE_KINDS:
            raise ValueError(f"kind must be one of {FEATURE_KINDS}, got {kind!r}")
        self.kind = kind
        self.sample_rate = _positive_int("sample_rate", sample_rate)
        self.n_mels = _positive_int("n_mels", n_mels)
        self.n_mfcc = _positive_int("n_mfcc", n_mfcc)
        if kind == "mfcc" and n_mfcc > n_mels:
            raise ValueError(f"n_mfcc ({n_mfcc}) must not exceed n_mels ({n_mels})")
        self.win_ms = _positive_float("win_ms", win_ms)
        self.hop_ms = _positive_float("hop_ms", hop_ms)
        # The same integer rounding as torchaudio.compliance.kaldi, so all kinds frame alike.
        self.win_length = int(self.sample_rate * self.win_ms * 0.001)
        self.hop_length = int(self.sample_rate * self.hop_ms * 0.001)
        if self.win_length < 2 or self.hop_length < 1:
            raise ValueError(
                f"win_ms={win_ms}, hop_ms={hop_ms} at {sample_rate} Hz give a window of "
                f"{self.win_length} and a hop of {self.hop_length} samples; need at least 2 and 1"
            )
        mel_kwargs = dict(n_fft=self.win_length, hop_length=self.hop_length, n_mels=n_mels, center=False)
        self.transform: nn.Module | None = None
        if kind == "logmel":
            self.transform = TT.MelSpectrogram(sample_rate=sample_rate, **mel_kwargs)
        elif kind == "mfcc":
            self.transform = TT.MFCC(
                sample_rate=sample_rate, n_mfcc=n_mfcc, log_mels=True, melkwargs=mel_kwargs
            )
        if self.transform is not None:
            mel = self.transform if kind == "logmel" else self.transform.MelSpectrogram
            mel.spectrogram = _PowerSpectrogram(mel.spectrogram)

    @property
    def feature_dim(self) -> int:
        """``F``, the size of one feature frame."""
        return self.n_mfcc if self.kind == "mfcc" else self.n_mels

    def num_frames(self, num_samples: int) -> int:
        """Exact number of frames ``T`` that ``forward`` returns for ``num_samples`` samples."""
        if num_samples < self.win_length:
            return 0
        return 1 + (num_samples - self.win_length) // self.hop_length

    def forward(self, wav: torch.Tensor, *, source: str | os.PathLike[str] | None = None) -> torch.Tensor:
        """Features of one mono waveform.

        Args:
            wav: ``[S]`` samples in [-1, 1] at ``sample_rate``.
            source: the file the waveform came from, used in error messages.

        Returns:
            ``[T, F]`` float32 with ``T = num_frames(S)`` and ``F = feature_dim``.

        Raises:
            AudioError: the waveform is too short for one frame.
        """
        self.check(wav, source)
        wav = wav.to(torch.float32)
        if self.kind == "fbank":
            return kaldi.fbank(
                wav.unsqueeze(0) * _KALDI_SCALE,  # (1, S)
                num_mel_bins=self.n_mels,
                frame_length=self.win_ms,
                frame_shift=self.hop_ms,
                sample_frequency=float(self.sample_rate),
                dither=0.0,
            )  # (T, F)
        feats = self.transform(wav)  # (F, T)
        if self.kind == "logmel":
            feats = torch.log(feats + LOG_OFFSET)
        return feats.transpose(0, 1).contiguous()  # (F, T) -> (T, F)

    def batch(self, wavs: Sequence[torch.Tensor], sources: Sequence[Any] | None = None) -> list[torch.Tensor]:
        """Features of several waveforms, equal to ``[self(w) for w in wavs]``: log-Mel and MFCC are computed in one
        call on the zero-padded batch ``[N, S_max]`` (frames never reach past a waveform's end, since nothing is
        centred), then each is cut to its own ``num_frames``; fbank (Kaldi's) goes file by file.

        Raises:
            AudioError: a waveform too short for one frame (named by its entry of ``sources``).
        """
        sources = list(sources) if sources is not None else [None] * len(wavs)
        if self.kind == "fbank" or len(wavs) <= 1:
            return [self(w, source=s) for w, s in zip(wavs, sources)]
        for w, s in zip(wavs, sources):
            self.check(w, s)
        out: list[torch.Tensor | None] = [None] * len(wavs)
        order = sorted(range(len(wavs)), key=lambda i: wavs[i].shape[0])  # by length: little padding in a group
        groups, group = [], []
        for i in order:  # groups of at most BATCH_SAMPLES padded samples (a longer waveform goes alone)
            if group and (len(group) + 1) * wavs[i].shape[0] > BATCH_SAMPLES:
                groups.append(group)
                group = []
            group.append(i)
        groups.append(group)
        for group in groups:
            batch = torch.nn.utils.rnn.pad_sequence([wavs[i].to(torch.float32) for i in group],
                                                    batch_first=True)  # (N, S_max)
            feats = self.transform(batch)  # (N, F, T_max)
            if self.kind == "logmel":
                feats = torch.log(feats + LOG_OFFSET)
            for k, i in enumerate(group):
                out[i] = feats[k, :, : self.num_frames(wavs[i].shape[0])].transpose(0, 1).contiguous()  # (T_i, F)
        return out

    def check(self, wav: torch.Tensor, source=None) -> None:
        """Raise if ``wav`` is not a mono waveform ``[S]`` long enough for one frame (AudioError naming ``source``)."""
        name = str(source) if source is not None else "<waveform>"
        if wav.dim() != 1:
            raise ValueError(f"{name}: expected a mono waveform [S], got shape {tuple(wav.shape)}")
        if self.num_frames(wav.shape[0]) < 1:
            raise AudioError(
                name,
                f"too short for one feature frame: {wav.shape[0]} samples < {self.win_length} "
                f"({self.win_ms:g} ms at {self.sample_rate} Hz)",
            )

    def settings(self) -> dict[str, Any]:
        """JSON-serialisable arguments (plus the feature code version), to store with a model."""
        return {
            "version": FEATURES_VERSION,
            "kind": self.kind,
            "sample_rate": self.sample_rate,
            "n_mels": self.n_mels,
            "n_mfcc": self.n_mfcc,
            "win_ms": self.win_ms,
            "hop_ms": self.hop_ms,
        }

    @classmethod
    def from_config(cls, fc: FeatureConfig) -> FeatureExtractor:
        """The extractor a config's `features` section describes."""
        return cls(kind=fc.kind, sample_rate=fc.sample_rate, n_mels=fc.n_mels, n_mfcc=fc.n_mfcc, win_ms=fc.win_ms,
                   hop_ms=fc.hop_ms)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> FeatureExtractor:
        """Rebuild an extractor from ``settings()``; unknown, missing or stale keys raise ValueError."""
        expected = set(cls().settings())
        unknown = sorted(set(settings) - expected)
        missing = sorted(expected - set(settings))
        if unknown or missing:
            raise ValueError(
                f"feature settings: unknown keys {unknown}, missing keys {missing}; "
                f"expected {sorted(expected)}"
            )
        if settings["version"] != FEATURES_VERSION:
            raise ValueError(
                f"feature settings have version {settings['version']!r}; this seqae computes "
                f"version {FEATURES_VERSION}, so features would differ"
            )
        return cls(**{k: v for k, v in settings.items() if k != "version"})


@dataclass(frozen=True, kw_only=True, eq=False)  # tensors have no single truth value
class Cmvn:
    """Global mean and variance normalisation of features ``[..., F]``."""

    mean: torch.Tensor
    """``[F]`` mean of every feature bin over all training frames."""
    std: torch.Tensor
    """``[F]`` standard deviation, floored so that constant bins do not divide by zero."""
    count: int
    """Number of frames the statistics were computed from."""

    def __post_init__(self) -> None:
        if self.mean.dim() != 1 or self.mean.shape != self.std.shape:
            shapes = f"{tuple(self.mean.shape)} and {tuple(self.std.shape)}"
            raise ValueError(f"Cmvn: mean and std must both be [F], got {shapes}")
        if not bool(torch.isfinite(self.mean).all()) or not bool((self.std > 0).all()):
            raise ValueError("Cmvn: mean must be finite and std positive")

    @classmethod
    def compute(cls, features: Iterable[torch.Tensor], *, std_floor: float = 1e-3) -> Cmvn:
        """Statistics of ``[T, F]`` feature tensors in one streaming pass (Chan's update, float64)."""
        count, mean, m2 = 0, None, None
        for i, feats in enumerate(features):
            if feats.dim() != 2 or (mean is not None and feats.shape[1] != mean.shape[0]):
                want = "[T, F]" if mean is None else f"[T, {mean.shape[0]}]"
                raise ValueError(f"Cmvn.compute: item {i} has shape {tuple(feats.shape)}, expected {want}")
            x = feats.detach().to("cpu", torch.float64)
            if not bool(torch.isfinite(x).all()):
                raise ValueError(f"Cmvn.compute: item {i} contains NaN/Inf")
            n_b = x.shape[0]
            if mean is None:
                mean = m2 = torch.zeros(x.shape[1], dtype=torch.float64)  # both are replaced, not updated
            if n_b == 0:
                continue
            mean_b = x.mean(dim=0)
            delta = mean_b - mean
            total = count + n_b
            mean = mean + delta * (n_b / total)
            m2 = m2 + ((x - mean_b) ** 2).sum(dim=0) + delta**2 * (count * n_b / total)
            count = total
        if count == 0:
            raise ValueError("Cmvn.compute: no feature frames to compute statistics from")
        std = (m2 / count).sqrt().clamp_min(std_floor)
        return cls(mean=mean.float(), std=std.float(), count=count)

    def normalize(self, feats: torch.Tensor) -> torch.Tensor:
        """``(feats - mean) / std`` for ``feats: [..., F]``."""
        return (feats - self.mean.to(feats.device)) / self.std.to(feats.device)

    def denormalize(self, feats: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalize`."""
        return feats * self.std.to(feats.device) + self.mean.to(feats.device)

    def to_dict(self) -> dict[str, Any]:
        """Plain lists of floats, to store with a model or export."""
        return {"mean": self.mean.tolist(), "std": self.std.tolist(), "count": self.count}

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> Cmvn:
        """Inverse of :meth:`to_dict`."""
        missing = sorted({"mean", "std", "count"} - set(state))
        if missing:
            raise ValueError(f"Cmvn.from_dict: missing keys {missing}")
        as_tensor = lambda v: torch.tensor(v, dtype=torch.float32)  # noqa: E731
        return cls(mean=as_tensor(state["mean"]), std=as_tensor(state["std"]), count=int(state["count"]))


def settings_hash(settings: Mapping[str, Any]) -> str:
    """Stable hex digest of JSON-serialisable feature settings."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def _atomic_save(tensors: dict[str, torch.Tensor], target: Path, metadata: dict[str, str]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".safetensors")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class FeatureCache:
    """Features stored on disk, one safetensors file per utterance.

    An entry is keyed by the file's resolved path, size and modification time and by the feature
    settings, so editing the file or changing a setting computes afresh. Writes are atomic (temporary
    file, then ``os.replace``). ``hits`` and ``misses`` count lookups.

    Layout: ``cache_dir/<settings hash>/<key[:2]>/<key>.safetensors``.
    """

    def __init__(self, cache_dir: str | os.PathLike[str], settings: Mapping[str, Any]) -> None:
        self.settings = dict(settings)
        self.settings_hash = settings_hash(self.settings)
        self.root = Path(cache_dir) / self.settings_hash[:16]
        self.hits = 0
        self.misses = 0

    def entry_path(self, path: str | os.PathLike[str]) -> Path:
        """Where the features of audio file ``path`` are (or would be) stored."""
        resolved = Path(path).resolve()
        try:
            stat = resolved.stat()
        except FileNotFoundError:
            raise AudioError(path, "file not found") from None
        key_src = json.dumps([str(resolved), stat.st_size, stat.st_mtime_ns, self.settings_hash])
        key = hashlib.sha256(key_src.encode()).hexdigest()
        return self.root / key[:2] / f"{key}.safetensors"

    def get(self, path: str | os.PathLike[str]) -> torch.Tensor | None:
        """The cached features of ``path`` (a hit), or None (a miss: ``put`` them once computed)."""
        entry = self.entry_path(path)
        if entry.exists():
            try:
                feats = load_file(str(entry))["features"]
                self.hits += 1
                return feats
            except (SafetensorError, OSError, KeyError) as err:
                warnings.warn(f"feature cache entry {entry} for {path} is unreadable ({err}); recomputing")
        self.misses += 1
        return None

    def put(self, path: str | os.PathLike[str], feats: torch.Tensor) -> torch.Tensor:
        """Store the features ``[T, F]`` of ``path``; returns them as stored (float32, CPU, contiguous)."""
        if not isinstance(feats, torch.Tensor) or feats.dim() != 2:
            got = tuple(feats.shape) if isinstance(feats, torch.Tensor) else type(feats).__name__
            raise ValueError(f"{path}: features must be [T, F], got {got}")
        feats = feats.detach().to("cpu", torch.float32).contiguous()
        _atomic_save({"features": feats}, self.entry_path(path), {"source": str(Path(path).resolve())})
        return feats

    def get_or_compute(
        self, path: str | os.PathLike[str], compute_fn: Callable[[Path], torch.Tensor]
    ) -> torch.Tensor:
        """Cached features of ``path``, or ``compute_fn(path)`` (``-> [T, F]``) stored for next time."""
        feats = self.get(path)
        return feats if feats is not None else self.put(path, compute_fn(Path(path)))
