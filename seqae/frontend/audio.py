"""Read and write audio files with soundfile; resample with torchaudio.

Dimension letters: ``S`` samples, ``C`` channels.

Every problem with an input file raises :class:`AudioError`, whose message starts with the file's path
and says what is wrong with it, so that a data loader can skip and count the file or stop with a clear
message instead of failing deep inside torch.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

__all__ = ["AudioError", "load_audio", "write_audio"]

# A WAV data-chunk size at or above this is a "length unknown" placeholder written by streaming
# writers (espeak-ng --stdout writes 0x7ffff000, others 0xffffffff), not a claim that was cut short.
_STREAMING_WAV_SIZE = 0x7FFF0000
_DATA_CHUNK_LOG = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


class AudioError(ValueError):
    """A file that cannot be used as audio; the message names the file and the reason."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def _check_file(path: Path) -> None:
    try:
        info = path.stat()  # one system call for all three checks
    except FileNotFoundError:
        raise AudioError(path, "file not found") from None
    if stat.S_ISDIR(info.st_mode):
        raise AudioError(path, "is a directory, not an audio file")
    if info.st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")


def _wav_truncation(log: str) -> str | None:
    """libsndfile silently reads what is left of a cut-short WAV; its header log shows the cut."""
    match = _DATA_CHUNK_LOG.search(log)
    if match is None:
        return None
    declared, present = int(match.group(1)), int(match.group(2))
    if present < declared < _STREAMING_WAV_SIZE:
        return f"truncated: header declares {declared} data bytes, file holds {present}"
    return None


def _read(path: Path) -> tuple[np.ndarray, int]:
    """Read ``path`` as float32 ``(S, C)`` samples and its sample rate, or raise AudioError."""
    try:
        with sf.SoundFile(str(path)) as f:
            declared = f.frames
            data = f.read(dtype="float32", always_2d=True)  # (S, C)
            sample_rate = f.samplerate
            truncated = _wav_truncation(f.extra_info) if f.format == "WAV" else None
    except (sf.SoundFileError, RuntimeError) as err:  # LibsndfileError and friends
        raise AudioError(path, f"unreadable or corrupt audio ({err})") from err
    if truncated is not None:
        raise AudioError(path, truncated)
    if data.shape[0] < declared:
        raise AudioError(path, f"truncated: header declares {declared} frames, read {data.shape[0]}")
    return data, sample_rate


def load_audio(path: str | os.PathLike[str], *, sample_rate: int) -> torch.Tensor:
    """Load a wav/flac/ogg file as a float32 mono waveform ``[S]`` at ``sample_rate`` Hz.

    Channels are averaged; other rates are resampled with ``torchaudio.functional.resample``
    (output length ``ceil(S * sample_rate / file_rate)``).

    Raises:
        AudioError: the file is missing, a directory, empty, unreadable, corrupt, truncated, has no
            samples, or holds NaN/Inf samples.
    """
    if not isinstance(sample_rate, int) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive int, got {sample_rate!r}")
    path = Path(path)
    _check_file(path)
    data, file_rate = _read(path)
    if data.shape[0] == 0:
        raise AudioError(path, "contains no samples (zero-length audio)")
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise AudioError(path, f"contains {bad} NaN/Inf sample values")
    samples = torch.from_numpy(data)  # (S, C)
    wav = samples[:, 0] if data.shape[1] == 1 else samples.mean(dim=1)  # (S,): a mono file needs no mean
    if file_rate != sample_rate:
        wav = AF.resample(wav, orig_freq=file_rate, new_freq=sample_rate)
    return wav.contiguous()


def write_audio(
    path: str | os.PathLike[str],
    wav: torch.Tensor,
    sample_rate: int,
    *,
    subtype: str | None = None,
) -> None:
    """Write ``wav`` (``[S]`` mono or ``[C, S]``) to ``path``; the format follows the suffix.

    ``subtype`` is soundfile's (default PCM_16 for wav and flac). Samples must be finite and, for
    integer subtypes, within [-1, 1]. The file is written to a temporary name, then renamed.
    """
    if wav.dim() not in (1, 2):
        raise ValueError(f"{path}: wav must be [S] or [C, S], got shape {tuple(wav.shape)}")
    data = wav.detach().to("cpu", torch.float32).numpy()
    data = data if data.ndim == 1 else data.T  # (C, S) -> (S, C)
    if not np.isfinite(data).all():
        raise ValueError(f"{path}: refusing to write NaN/Inf samples")
    path = Path(path)
    suffix = path.suffix.lstrip(".").upper()
    if suffix not in sf.available_formats():
        raise ValueError(f"{path}: unknown audio file suffix {path.suffix!r}")
    subtype = subtype or sf.default_subtype(suffix)
    if not sf.check_format(suffix, subtype):
        raise ValueError(f"{path}: subtype {subtype!r} is not valid for {suffix}")
    if subtype.startswith("PCM") and data.size and float(np.abs(data).max()) > 1.0:
        raise ValueError(f"{path}: samples exceed [-1, 1] and would clip as {subtype}")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        sf.write(tmp, data, sample_rate, subtype=subtype, format=suffix)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
