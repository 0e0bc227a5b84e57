"""Feature extraction (shapes, exact frame counts, references), CMVN and the on-disk feature cache."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF

from seqae.frontend.audio import AudioError, load_audio
from seqae.frontend.features import FEATURE_KINDS, Cmvn, FeatureCache, FeatureExtractor

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "espeak_words"
TRAIN_FILES = sorted((FIXTURE / "train").glob("*/*.flac"))


@pytest.fixture(scope="module")
def train_wavs() -> list[torch.Tensor]:
    return [load_audio(p, sample_rate=16000) for p in TRAIN_FILES[:16]]


@pytest.mark.parametrize("kind", FEATURE_KINDS)
@pytest.mark.parametrize("num_samples", [400, 401, 559, 560, 561, 7777, 16000])
def test_shape_and_exact_num_frames(kind: str, num_samples: int) -> None:
    fe = FeatureExtractor(kind=kind)
    feats = fe(0.1 * torch.randn(num_samples, generator=torch.Generator().manual_seed(num_samples)))
    expected_frames = 1 + (num_samples - 400) // 160  # 25 ms window, 10 ms hop at 16 kHz
    assert fe.num_frames(num_samples) == expected_frames
    assert feats.shape == (expected_frames, 13 if kind == "mfcc" else 80)
    assert feats.shape[1] == fe.feature_dim and feats.dtype == torch.float32
    assert bool(torch.isfinite(feats).all())


@pytest.mark.parametrize("kind", FEATURE_KINDS)
def test_num_frames_other_rate_and_window(kind: str) -> None:
    fe = FeatureExtractor(kind=kind, sample_rate=8000, n_mels=40, n_mfcc=20, win_ms=32, hop_ms=12.5)
    assert (fe.win_length, fe.hop_length) == (256, 100)
    for n in (256, 355, 356, 1000, 4321):
        assert fe(torch.randn(n)).shape == (fe.num_frames(n), fe.feature_dim)


@pytest.mark.parametrize("kind", FEATURE_KINDS)
def test_too_short_names_the_file(kind: str) -> None:
    fe = FeatureExtractor(kind=kind)
    assert fe.num_frames(399) == 0
    with pytest.raises(AudioError, match=r"some/file\.flac: too short for one feature frame: 399 samples < 400"):
        fe(torch.randn(399), source="some/file.flac")


def test_bad_arguments_and_inputs() -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        FeatureExtractor(kind="spectrogram")
    with pytest.raises(ValueError, match="n_mfcc"):
        FeatureExtractor(kind="mfcc", n_mels=10, n_mfcc=13)
    with pytest.raises(ValueError, match="n_mels"):
        FeatureExtractor(n_mels=0)
    with pytest.raises(ValueError, match=r"x\.wav: expected a mono waveform \[S\]"):
        FeatureExtractor()(torch.randn(2, 1600), source="x.wav")


def test_logmel_matches_stft_reference(train_wavs: list[torch.Tensor]) -> None:
    wav = train_wavs[0]
    spec = torch.stft(
        wav, n_fft=400, hop_length=160, window=torch.hann_window(400), center=False, return_complex=True
    ).abs() ** 2  # (201, T)
    fb = AF.melscale_fbanks(201, f_min=0.0, f_max=8000.0, n_mels=80, sample_rate=16000)  # (201, 80)
    reference = torch.log(spec.T @ fb + 1e-6)  # (T, 80)
    torch.testing.assert_close(FeatureExtractor(kind="logmel")(wav), reference, atol=1e-3, rtol=1e-4)


@pytest.mark.parametrize("kind", ["logmel", "mfcc"])
def test_power_spectrum_equals_torchaudios_own(kind: str, train_wavs: list[torch.Tensor]) -> None:
    """|X|² as re² + im² (seqae) against torchaudio's abs().pow(2): equal to float rounding, batched too."""
    import torchaudio.transforms as TT

    mel_kwargs = dict(n_fft=400, hop_length=160, n_mels=80, center=False)
    ref = (TT.MelSpectrogram(sample_rate=16000, **mel_kwargs) if kind == "logmel"
           else TT.MFCC(sample_rate=16000, n_mfcc=13, log_mels=True, melkwargs=mel_kwargs))
    batch = torch.nn.utils.rnn.pad_sequence(train_wavs[:3], batch_first=True)  # (3, S_max)
    ours = FeatureExtractor(kind=kind).transform(batch)
    expected = ref(batch)
    if kind == "logmel":
        ours, expected = torch.log(ours + 1e-6), torch.log(expected + 1e-6)
    torch.testing.assert_close(ours, expected, atol=1e-4, rtol=1e-5)


def test_mfcc_is_dct_of_logmel(train_wavs: list[torch.Tensor]) -> None:
    wav = train_wavs[1]
    dct = AF.create_dct(13, 80, norm="ortho")  # (80, 13)
    logmel = FeatureExtractor(kind="logmel")(wav)
    torch.testing.assert_close(FeatureExtractor(kind="mfcc")(wav), logmel @ dct, atol=1e-3, rtol=1e-4)


def test_fbank_is_deterministic_and_scaled_like_kaldi(train_wavs: list[torch.Tensor]) -> None:
    fe = FeatureExtractor(kind="fbank")
    a, b = fe(train_wavs[2]), fe(train_wavs[2])
    torch.testing.assert_close(a, b, atol=0, rtol=0)  # dither is off
    # On int16-scaled input the loudest speech bins sit well above log(1) = 0, as in Kaldi.
    assert float(a.max()) > 10


def test_settings_round_trip() -> None:
    fe = FeatureExtractor(kind="mfcc", n_mels=40, n_mfcc=20, win_ms=20, hop_ms=5)
    settings = json.loads(json.dumps(fe.settings()))
    again = FeatureExtractor.from_settings(settings)
    assert again.settings() == fe.settings()
    x = torch.randn(3000)
    torch.testing.assert_close(again(x), fe(x))
    with pytest.raises(ValueError, match="unknown keys \\['n_fft'\\]"):
        FeatureExtractor.from_settings({**settings, "n_fft": 512})
    with pytest.raises(ValueError, match="missing keys \\['kind'\\]"):
        FeatureExtractor.from_settings({k: v for k, v in settings.items() if k != "kind"})
    with pytest.raises(ValueError, match="version"):
        FeatureExtractor.from_settings({**settings, "version": 0})


def test_cmvn_normalizes_training_set_and_round_trips(train_wavs: list[torch.Tensor]) -> None:
    fe = FeatureExtractor(kind="logmel")
    feats = [fe(w) for w in train_wavs]
    cmvn = Cmvn.compute(iter(feats))  # a one-pass iterator is enough
    everything = torch.cat(feats).double()  # (sum T, F)
    assert cmvn.count == everything.shape[0]
    torch.testing.assert_close(cmvn.mean.double(), everything.mean(0), atol=1e-4, rtol=1e-5)
    normed = torch.cat([cmvn.normalize(f) for f in feats]).double()
    torch.testing.assert_close(normed.mean(0), torch.zeros(80, dtype=torch.float64), atol=1e-4, rtol=0)
    torch.testing.assert_close(normed.std(0, unbiased=False), torch.ones(80, dtype=torch.float64), atol=1e-4, rtol=0)
    torch.testing.assert_close(cmvn.denormalize(cmvn.normalize(feats[0])), feats[0], atol=1e-4, rtol=1e-5)
    again = Cmvn.from_dict(json.loads(json.dumps(cmvn.to_dict())))
    torch.testing.assert_close(again.mean, cmvn.mean)
    torch.testing.assert_close(again.std, cmvn.std)
    assert again.count == cmvn.count


def test_cmvn_floor_and_errors() -> None:
    constant = torch.stack([torch.arange(10.0), torch.full((10,), 3.0)], dim=1)  # (10, 2)
    cmvn = Cmvn.compute([constant[:4], constant[4:]], std_floor=0.01)
    torch.testing.assert_close(cmvn.mean, torch.tensor([4.5, 3.0]))
    torch.testing.assert_close(cmvn.std, torch.tensor([constant[:, 0].std(unbiased=False).item(), 0.01]))
    with pytest.raises(ValueError, match="no feature frames"):
        Cmvn.compute([])
    with pytest.raises(ValueError, match=r"item 1 has shape \(5, 3\), expected \[T, 2\]"):
        Cmvn.compute([constant, torch.zeros(5, 3)])
    with pytest.raises(ValueError, match="item 0 contains NaN"):
        Cmvn.compute([torch.tensor([[float("nan")]])])
    with pytest.raises(ValueError, match="missing keys \\['std'\\]"):
        Cmvn.from_dict({"mean": [0.0], "count": 1})


def test_cache_hit_miss_and_invalidation(tmp_path: Path) -> None:
    audio = tmp_path / "a.flac"
    shutil.copy(TRAIN_FILES[0], audio)
    fe = FeatureExtractor(kind="logmel")
    calls: list[Path] = []

    def compute(p: Path) -> torch.Tensor:
        calls.append(p)
        return fe(load_audio(p, sample_rate=16000), source=p)

    cache = FeatureCache(tmp_path / "cache", fe.settings())
    first = cache.get_or_compute(audio, compute)
    second = cache.get_or_compute(audio, compute)
    assert (cache.hits, cache.misses, len(calls)) == (1, 1, 1)
    torch.testing.assert_close(first, second, atol=0, rtol=0)
    stored = list((tmp_path / "cache").rglob("*"))
    assert [p.suffix for p in stored if p.is_file()] == [".safetensors"]

    other = FeatureExtractor(kind="logmel", n_mels=40)
    changed = FeatureCache(tmp_path / "cache", other.settings())
    changed.get_or_compute(audio, lambda p: other(load_audio(p, sample_rate=16000)))
    assert changed.misses == 1 and changed.hits == 0

    wav, rate = sf.read(str(audio), dtype="float32")
    sf.write(str(audio), wav[: len(wav) // 2], rate)  # the file changes: size and mtime
    third = cache.get_or_compute(audio, compute)
    assert cache.misses == 2 and len(calls) == 2 and third.shape[0] < first.shape[0]


def test_cache_recomputes_unreadable_entry_and_names_missing_file(tmp_path: Path) -> None:
    audio = tmp_path / "a.flac"
    shutil.copy(TRAIN_FILES[0], audio)
    fe = FeatureExtractor(kind="fbank")
    compute = lambda p: fe(load_audio(p, sample_rate=16000))  # noqa: E731
    cache = FeatureCache(tmp_path / "cache", fe.settings())
    good = cache.get_or_compute(audio, compute)
    cache.entry_path(audio).write_bytes(b"not a safetensors file")
    with pytest.warns(UserWarning, match="unreadable"):
        again = cache.get_or_compute(audio, compute)
    torch.testing.assert_close(again, good)
    assert cache.misses == 2
    with pytest.raises(AudioError, match="gone.flac: file not found"):
        cache.get_or_compute(tmp_path / "gone.flac", compute)


@pytest.mark.parametrize("kind", FEATURE_KINDS)
def test_batch_equals_one_waveform_at_a_time(kind: str, monkeypatch) -> None:
    import seqae.frontend.features as features

    g = torch.Generator().manual_seed(0)
    wavs = [torch.rand(n, generator=g) * 2 - 1 for n in (400, 16000, 7321, 401, 24000, 3200)]  # ragged
    extractor = FeatureExtractor(kind=kind, n_mels=40, n_mfcc=13)
    reference = [extractor(w) for w in wavs]
    monkeypatch.setattr(features, "BATCH_SAMPLES", 30000)  # several groups, and a waveform longer than a group
    for batched, ref in zip(extractor.batch(wavs), reference):
        assert batched.shape == ref.shape
        torch.testing.assert_close(batched, ref, rtol=1e-5, atol=1e-4)
    with pytest.raises(AudioError, match="short.wav: too short for one feature frame"):
        extractor.batch([wavs[1], torch.zeros(10)], ["long.wav", "short.wav"])


def test_load_speech_features_batches_misses_and_skips_bad_files(tmp_path: Path) -> None:
    from seqae.data.manifest import ManifestRow
    from seqae.data.speech import load_speech_features

    rows = []
    for k, seconds in enumerate((0.3, 1.0, 0.5, 0.7)):
        path = tmp_path / f"w{k}.wav"
        sf.write(path, (torch.rand(int(16000 * seconds)) * 0.2 - 0.1).numpy(), 16000)
        rows.append(ManifestRow(path=path))
    (tmp_path / "broken.wav").write_bytes(b"not audio")
    rows.insert(2, ManifestRow(path=tmp_path / "broken.wav"))
    extractor = FeatureExtractor(kind="logmel", n_mels=40)
    cache = FeatureCache(tmp_path / "cache", extractor.settings())
    feats, kept, report = load_speech_features(rows, extractor, cache=cache, batch_files=3)
    assert [r.path.name for r in kept] == ["w0.wav", "w1.wav", "w2.wav", "w3.wav"]
    assert report.checked == 5 and [Path(f).name for f, _ in report.skipped] == ["broken.wav"]
    for x, row in zip(feats, kept):
        torch.testing.assert_close(x, extractor(load_audio(row.path, sample_rate=16000)), rtol=1e-5, atol=1e-4)
    assert cache.misses == 5 and cache.hits == 0
    again, _, _ = load_speech_features(rows, extractor, cache=cache, batch_files=3)
    assert cache.hits == 4 and all(torch.equal(a, b) for a, b in zip(again, feats))
