"""Audio loading: downmix, resampling, and a clear AudioError for every kind of bad file."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from seqae.frontend.audio import AudioError, load_audio, write_audio

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "espeak_words"
FLAC = FIXTURE / "train" / "apple" / "apple_spk000.flac"


def _sine(freq: float, sample_rate: int, seconds: float) -> np.ndarray:
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    return (0.5 * np.sin(2 * math.pi * freq * t)).astype(np.float32)


def _peak_hz(wav: torch.Tensor, sample_rate: int) -> float:
    spectrum = torch.fft.rfft(wav.double()).abs()
    return float(spectrum.argmax()) * sample_rate / wav.shape[0]


def test_mono_file_loads_unchanged(tmp_path: Path) -> None:
    x = _sine(440, 16000, 0.5)
    sf.write(tmp_path / "a.wav", x, 16000, subtype="FLOAT")
    wav = load_audio(tmp_path / "a.wav", sample_rate=16000)
    assert wav.dtype == torch.float32 and wav.shape == (8000,)
    torch.testing.assert_close(wav, torch.from_numpy(x))


def test_stereo_is_averaged(tmp_path: Path) -> None:
    left, right = _sine(440, 16000, 0.25), _sine(1000, 16000, 0.25) * 0.5
    sf.write(tmp_path / "st.wav", np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    wav = load_audio(tmp_path / "st.wav", sample_rate=16000)
    torch.testing.assert_close(wav, torch.from_numpy((left + right) / 2))


@pytest.mark.parametrize(("rate", "num_samples"), [(8000, 8000), (8000, 1234), (44100, 44100), (44100, 12345)])
def test_resampling_length_and_pitch(tmp_path: Path, rate: int, num_samples: int) -> None:
    x = _sine(440, rate, num_samples / rate)[:num_samples]
    sf.write(tmp_path / "r.flac", x, rate)
    wav = load_audio(tmp_path / "r.flac", sample_rate=16000)
    assert wav.shape == (math.ceil(num_samples * 16000 / rate),)
    assert abs(_peak_hz(wav, 16000) - 440) < 16000 / wav.shape[0] + 1  # within one FFT bin


def test_fixture_flac_and_ogg(tmp_path: Path) -> None:
    wav = load_audio(FLAC, sample_rate=16000)
    assert wav.dim() == 1 and wav.shape[0] == sf.info(str(FLAC)).frames
    assert 0.05 < float(wav.abs().max()) <= 1.0
    write_audio(tmp_path / "a.ogg", wav, 16000)
    ogg = load_audio(tmp_path / "a.ogg", sample_rate=16000)
    assert ogg.shape == wav.shape


def _truncated_flac(p: Path) -> None:
    data = FLAC.read_bytes()
    p.write_bytes(data[: len(data) // 2])


def _truncated_wav(p: Path) -> None:
    sf.write(p, _sine(440, 16000, 1.0), 16000)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])


BAD_FILES = {
    "truncated.flac": (_truncated_flac, "corrupt"),
    "truncated.wav": (_truncated_wav, "truncated"),
    "random.wav": (lambda p: p.write_bytes(np.random.default_rng(0).bytes(3000)), "unreadable"),
    "empty.wav": (lambda p: p.write_bytes(b""), "empty file"),
    "zero.wav": (lambda p: sf.write(p, np.zeros(0, np.float32), 16000), "no samples"),
    "nan.wav": (lambda p: sf.write(p, np.array([0.1, np.nan] * 50, np.float32), 16000, subtype="FLOAT"), "NaN"),
    "inf.wav": (lambda p: sf.write(p, np.array([0.1, np.inf] * 50, np.float32), 16000, subtype="FLOAT"), "NaN/Inf"),
    "folder.wav": (lambda p: p.mkdir(), "directory"),
    "missing.wav": (lambda p: None, "not found"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_file_raises_audio_error_naming_it(tmp_path: Path, name: str) -> None:
    make, reason = BAD_FILES[name]
    path = tmp_path / name
    make(path)
    with pytest.raises(AudioError, match=reason) as info:
        load_audio(path, sample_rate=16000)
    assert str(path) in str(info.value) and info.value.path == str(path)
    assert isinstance(info.value, ValueError)


def test_streaming_wav_header_is_not_called_truncated(tmp_path: Path) -> None:
    # Streaming writers (espeak-ng --stdout) put a placeholder size in the header; that is not a cut file.
    path = tmp_path / "stream.wav"
    sf.write(path, _sine(440, 16000, 0.1), 16000, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    data[40:44] = (0x7FFFF000).to_bytes(4, "little")  # data chunk size
    path.write_bytes(bytes(data))
    assert load_audio(path, sample_rate=16000).shape == (1600,)


def test_write_audio_round_trip_and_refusals(tmp_path: Path) -> None:
    x = torch.from_numpy(_sine(300, 16000, 0.2))
    write_audio(tmp_path / "a.flac", x, 16000)
    torch.testing.assert_close(load_audio(tmp_path / "a.flac", sample_rate=16000), x, atol=1 / 32768, rtol=0)
    write_audio(tmp_path / "st.wav", torch.stack([x, -x]), 16000)  # [C, S]
    assert sf.info(str(tmp_path / "st.wav")).channels == 2
    with pytest.raises(ValueError, match="NaN"):
        write_audio(tmp_path / "n.wav", torch.tensor([0.0, float("nan")]), 16000)
    with pytest.raises(ValueError, match="clip"):
        write_audio(tmp_path / "c.wav", torch.tensor([0.0, 1.5]), 16000)
    with pytest.raises(ValueError, match="suffix"):
        write_audio(tmp_path / "a.xyz", x, 16000)
    assert sorted(os.listdir(tmp_path)) == ["a.flac", "st.wav"]  # no temporary files left behind


def test_bad_sample_rate_argument() -> None:
    with pytest.raises(ValueError, match="sample_rate"):
        load_audio(FLAC, sample_rate=0)
