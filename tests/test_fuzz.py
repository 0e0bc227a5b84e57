"""Fuzzing, bounded to a few seconds each: the text loader on random bytes, the audio loader on random bytes,
random arrays and damaged files, and noise pipelines composed from random (valid and invalid) specs.

Each test states what must hold for every input: our own error (CorpusError, AudioError, ValueError/TypeError
naming the noise step) or a result that obeys the documented contract, checked against a slow reference where
there is one. Single noises are fuzzed in tests/test_noise_tokens.py and tests/test_noise_frames.py.
"""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from seqae.config import ConfigError
from seqae.data.text import CorpusError, load_text_lines
from seqae.frontend.audio import AudioError, load_audio
from seqae.noise.pipeline import FRAME_NOISES, TOKEN_NOISES, NoisePipeline

FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
_names = itertools.count()


@pytest.fixture(scope="module", autouse=True)
def offline_hub(tmp_path_factory):
    """Local files only, with a private Hugging Face cache (module-scoped: hypothesis reruns each test body)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_DATASETS_OFFLINE", "1")
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("HF_HOME", str(tmp_path_factory.mktemp("hf_home")))
        yield


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def fresh(folder: Path, suffix: str) -> Path:
    """A new file name for every example (the datasets cache keys files by path and modification time)."""
    return folder / f"f{next(_names)}{suffix}"


# ---------------------------------------------------------------- text loader

CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")  # C0 except tab, DEL, C1, line/paragraph sep.


def reference_lines(data: bytes) -> tuple[list[str], list[str]]:
    """(rows, kept lines) of a .txt corpus read with errors='replace', the slow way: decode, universal newlines
    (\\r\\n, \\r, \\n end a line), control characters other than tab to spaces, strip, drop empty lines."""
    text = data.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")
    rows = text.split("\n")
    if rows[-1] == "":
        rows.pop()  # a final line break ends the last line; it does not start a new one
    kept = [CONTROL.sub(" ", row).strip() for row in rows]
    return rows, [line for line in kept if line]


def decodes(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def first_undecodable_line(data: bytes) -> int | None:
    """1-based number of the first line (split at \\n) that is not valid UTF-8."""
    return next((n for n, raw in enumerate(data.split(b"\n"), 1) if not decodes(raw)), None)


PIECES = st.sampled_from([b"a", b"word ", b" ", b"\t", b"\n", b"\r", b"\r\n", b"\x00", b"\x07", b"\x1b", b"\x7f",
                          b"\xc2\x85", b"\xe2\x80\xa8", b"\xef\xbb\xbf", b"\xe9", b"\xff", b"\xc0\xaf", b"\xe2\x82",
                          b"\xf0\x9f\x98\x80", b"\xed\xa0\x80", "é".encode(), b"%"])
TEXT_BYTES = st.one_of(st.binary(min_size=1, max_size=60),
                       st.lists(PIECES, min_size=1, max_size=40).map(b"".join))


@settings(FUZZ, max_examples=60)
@given(data=TEXT_BYTES)
def test_text_loader_on_random_bytes_matches_the_slow_reference(folder, data):
    path = fresh(folder, ".txt")
    path.write_bytes(data)
    rows, kept = reference_lines(data)
    bad_line = first_undecodable_line(data)
    event("undecodable" if bad_line else "valid UTF-8")
    if bad_line is None:
        lines, _ = load_text_lines(str(path), encoding_errors="strict")
        assert lines == kept
    else:
        message = rf"^{re.escape(str(path))}:{bad_line}: invalid UTF-8 byte 0x[0-9a-f]{{2}} at column \d+"
        with pytest.raises(CorpusError, match=message):
            load_text_lines(str(path), encoding_errors="strict")
    lines, stats = load_text_lines(str(path), encoding_errors="replace")
    assert lines == kept
    assert stats.lines_read == len(rows) and stats.lines_kept == len(kept)
    assert stats.lines_kept + stats.empty_skipped == stats.lines_read  # every row is kept or counted
    assert stats.replaced_lines == sum(not decodes(raw) for raw in data.split(b"\n"))
    assert stats.control_chars_lines == sum(bool(CONTROL.search(row)) for row in rows)


def test_text_loader_on_an_empty_file_is_one_clear_error(folder):
    path = fresh(folder, ".txt")
    path.write_bytes(b"")
    with pytest.raises(CorpusError, match=rf"^{re.escape(str(path))}: empty file \(0 bytes\)"):
        load_text_lines(str(path), encoding_errors="replace")


# ---------------------------------------------------------------- audio loader


def check_loaded(path: Path, sample_rate: int = 16000) -> torch.Tensor | None:
    """load_audio's contract: AudioError naming the file, or a finite mono float32 waveform."""
    try:
        wav = load_audio(path, sample_rate=sample_rate)
    except AudioError as err:
        assert str(err).startswith(f"{path}: ") and err.path == str(path) and err.reason
        event(f"AudioError: {err.reason.split('(')[0].split(':')[0].strip()}")
        return None
    event("loaded")
    assert wav.dtype == torch.float32 and wav.dim() == 1 and wav.numel() > 0
    assert bool(torch.isfinite(wav).all())
    return wav


HEADERS = st.sampled_from([b"", b"RIFF\x24\x08\x00\x00WAVEfmt ", b"fLaC", b"OggS\x00\x02", b"RIFF\xff\xff\xff\xffWAVE"])


@settings(FUZZ, max_examples=80)
@given(header=HEADERS, body=st.binary(max_size=400), suffix=st.sampled_from([".wav", ".flac", ".ogg"]))
def test_audio_loader_on_random_bytes(folder, header, body, suffix):
    path = fresh(folder, suffix)
    path.write_bytes(header + body)
    check_loaded(path)


FORMATS = [("WAV", "PCM_16", ".wav"), ("WAV", "FLOAT", ".wav"), ("WAV", "PCM_24", ".wav"), ("FLAC", "PCM_16", ".flac"),
           ("WAV", "DOUBLE", ".wav")]


@settings(FUZZ, max_examples=60)
@given(
    frames=st.integers(min_value=0, max_value=3000),
    channels=st.integers(min_value=1, max_value=3),
    rate=st.sampled_from([8000, 11025, 16000, 22050, 44100, 48000]),
    fmt=st.sampled_from(FORMATS),
    bad=st.sampled_from([None, np.nan, np.inf, -np.inf]),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_audio_loader_on_random_arrays(folder, frames, channels, rate, fmt, bad, seed):
    kind, subtype, suffix = fmt
    samples = np.random.default_rng(seed).uniform(-1, 1, (frames, channels)).astype(np.float32)  # (S, C)
    float_file = subtype in ("FLOAT", "DOUBLE")
    if bad is not None and frames and float_file:
        samples[seed % frames, seed % channels] = bad
    path = fresh(folder, suffix)
    sf.write(path, samples, rate, subtype=subtype, format=kind)
    wav = check_loaded(path)
    if frames == 0:
        assert wav is None
    elif bad is not None and float_file:
        assert wav is None  # NaN/Inf samples are refused
    else:
        assert wav is not None and wav.shape == (math.ceil(frames * 16000 / rate),)
        if rate == 16000:  # no resampling: exactly the channel mean of what is in the file
            stored = torch.from_numpy(sf.read(path, dtype="float32", always_2d=True)[0])  # (S, C)
            torch.testing.assert_close(wav, stored.mean(dim=1))


@pytest.fixture(scope="module")
def valid_files(folder) -> dict[str, bytes]:
    x = (0.3 * np.sin(np.arange(4000) / 7.0)).astype(np.float32)
    out = {}
    for suffix, subtype in ((".wav", "PCM_16"), (".flac", "PCM_16"), (".wav", "FLOAT")):
        path = fresh(folder, suffix)
        sf.write(path, x, 16000, subtype=subtype)
        out[f"{suffix}:{subtype}"] = path.read_bytes()
    return out


@settings(FUZZ, max_examples=80)
@given(
    which=st.sampled_from([".wav:PCM_16", ".flac:PCM_16", ".wav:FLOAT"]),
    cut=st.one_of(st.none(), st.integers(min_value=0, max_value=20000)),
    flips=st.lists(st.tuples(st.integers(min_value=0, max_value=20000), st.integers(min_value=1, max_value=255)),
                   max_size=6),
)
def test_audio_loader_on_damaged_files(folder, valid_files, which, cut, flips):
    data = bytearray(valid_files[which])
    for position, mask in flips:
        data[position % len(data)] ^= mask
    if cut is not None:
        data = data[: cut % len(data)]
    assume(bytes(data) != valid_files[which])
    path = fresh(folder, which.split(":")[0])
    path.write_bytes(bytes(data))
    check_loaded(path)


# ---------------------------------------------------------------- noise pipelines composed from random specs

V = 300
PAD, BOS, EOS = 0, 2, 3
WORD_START = torch.tensor([i >= 5 and i % 3 == 0 for i in range(V)])
unit = st.floats(min_value=0.0, max_value=1.0)


@st.composite
def time_mask_spec(draw):
    p_zero = draw(unit)
    p_random = (1 - p_zero) * draw(unit)
    return {"type": "time_mask", "ratio": draw(unit), "span": draw(st.integers(1, 10)), "p_zero": p_zero,
            "p_random": p_random, "p_keep": 1 - p_zero - p_random}


FRAME_SPECS = {
    "time_mask": time_mask_spec(),
    "freq_mask": st.fixed_dictionaries({"type": st.just("freq_mask"), "num_masks": st.integers(0, 4),
                                        "max_width": st.integers(0, 30), "mask_value": st.floats(-5, 5)}),
    "gaussian": st.fixed_dictionaries({"type": st.just("gaussian"), "sigma": st.floats(0, 2), "ratio": unit}),
    "frame_knockout": st.fixed_dictionaries({"type": st.just("frame_knockout"), "ratio": unit}),
}
TOKEN_SPECS = {
    "span_mask": st.fixed_dictionaries({"type": st.just("span_mask"), "ratio": unit,
                                        "poisson_lambda": st.floats(0.1, 6), "unit": st.sampled_from(["word", "token"]),
                                        "mode": st.sampled_from(["single_mask", "mask_per_token"]),
                                        "random_ratio": unit}),
    "span_delete": st.fixed_dictionaries({"type": st.just("span_mask"), "ratio": unit, "mode": st.just("delete"),
                                          "random_ratio": st.just(0.0)}),
    "delete": st.fixed_dictionaries({"type": st.just("delete"), "ratio": unit, "allow_empty": st.booleans()}),
    "replace": st.fixed_dictionaries({"type": st.just("replace"), "ratio": unit}),
    "insert": st.fixed_dictionaries({"type": st.just("insert"), "ratio": unit,
                                     "with_token": st.sampled_from(["random", "mask"])}),
    "shuffle": st.fixed_dictionaries({"type": st.just("shuffle"), "max_distance": st.integers(0, 6)}),
    "rotate": st.just({"type": "rotate"}),
    "knockout": st.fixed_dictionaries({"type": st.just("knockout"), "ratio": unit,
                                       "with_token": st.sampled_from(["unk", "mask"])}),
}


def test_the_strategies_cover_every_registered_noise():
    assert set(FRAME_SPECS) == set(FRAME_NOISES)
    assert set(TOKEN_SPECS) - {"span_delete"} | {"t5"} == set(TOKEN_NOISES)


def with_prob(spec_strategy):
    return st.tuples(spec_strategy, st.one_of(st.none(), unit)).map(
        lambda pair: pair[0] if pair[1] is None else {**pair[0], "prob": pair[1]})


triple = st.tuples(*(st.integers(min_value=0, max_value=2**40) for _ in range(3)))


@settings(FUZZ, max_examples=120)
@given(specs=st.lists(with_prob(st.one_of(*FRAME_SPECS.values())), max_size=4),
       t=st.integers(0, 40), f=st.integers(1, 12), key=triple)
def test_frame_pipelines_of_random_steps_keep_shape_mark_every_change_and_reproduce(specs, t, f, key):
    pipe = NoisePipeline.from_config(specs, kind="frames")
    x = torch.randn(t, f, generator=torch.Generator().manual_seed(key[0] % 1000)) + 3.0  # (T, F)
    before = x.clone()
    seed, epoch, index = key
    out, mask = pipe(x, seed=seed, epoch=epoch, index=index)
    assert out.shape == (t, f) and out.dtype == x.dtype and mask.shape == (t,) and mask.dtype == torch.bool
    assert torch.equal(out[~mask], x[~mask])  # a frame no step marked is untouched
    assert torch.equal(x, before)
    again = NoisePipeline.from_config(pipe.to_config(), kind="frames")(x, seed=seed, epoch=epoch, index=index)
    assert torch.equal(again[0], out) and torch.equal(again[1], mask)
    if all(s.get("prob", 1.0) == 0.0 for s in specs):
        assert torch.equal(out, x) and not mask.any()


def assert_layout(x: torch.Tensor) -> None:
    assert x.dtype == torch.long and x.dim() == 1 and int(x[0]) == BOS and int(x[-1]) == EOS
    inner = x[1:-1]
    assert not ((inner == PAD) | (inner == BOS) | (inner == EOS)).any() and bool((inner < V).all())


@settings(FUZZ, max_examples=120)
@given(specs=st.one_of(st.lists(with_prob(st.one_of(*TOKEN_SPECS.values())), max_size=4),
                       st.tuples(st.fixed_dictionaries({"type": st.just("t5"), "noise_density": st.floats(0.01, 0.99),
                                                        "mean_span_length": st.floats(1, 5)})).map(list)),
       body=st.lists(st.integers(5, V - 1), max_size=25), key=triple)
def test_token_pipelines_of_random_steps_keep_the_layout_and_reproduce(specs, body, key):
    pipe = NoisePipeline.from_config(specs, kind="tokens")
    x = torch.tensor([BOS, *body, EOS])
    seed, epoch, index = key
    context = {"vocab_size": V, "word_start": WORD_START}
    inputs, targets = pipe(x, seed=seed, epoch=epoch, index=index, **context)
    assert_layout(inputs)
    assert_layout(targets)
    if not any(s["type"] == "t5" for s in specs):
        assert torch.equal(targets, x)
    assert torch.equal(x, torch.tensor([BOS, *body, EOS]))
    rebuilt = NoisePipeline.from_config(pipe.to_config(), kind="tokens")
    again = rebuilt(x, seed=seed, epoch=epoch, index=index, **context)
    assert torch.equal(again[0], inputs) and torch.equal(again[1], targets)


ANY_VALUE = st.one_of(st.none(), st.booleans(), st.integers(-3, 40), st.floats(allow_nan=True, allow_infinity=True),
                      st.text(max_size=6), st.lists(st.integers(-2, 400), max_size=3),
                      st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
FIELD_NAMES = sorted({f for cls, _ in [*TOKEN_NOISES.values(), *FRAME_NOISES.values()]
                      for f in cls.__dataclass_fields__} | {"type", "prob", "bogus"})
T5_SPEC = st.fixed_dictionaries({"type": st.just("t5"), "noise_density": st.floats(0.01, 0.99),
                                 "mean_span_length": st.floats(1, 5)},
                                optional={"sentinel_ids": st.lists(st.integers(5, V - 1), max_size=4)})


@st.composite
def mutated_specs(draw, kind: str):
    """Mostly a list of valid specs of `kind` (sometimes of the other kind), each with a key or two set to any value
    or dropped now and then; once in a while any value at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(ANY_VALUE)
    own = [*FRAME_SPECS.values()] if kind == "frames" else [*TOKEN_SPECS.values(), T5_SPEC]
    specs = []
    for _ in range(draw(st.integers(0, 3))):
        spec = dict(draw(st.one_of(*own) if draw(st.integers(0, 5)) else st.one_of(*FRAME_SPECS.values(), T5_SPEC)))
        for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
            key = draw(st.sampled_from(FIELD_NAMES))
            if draw(st.booleans()):
                spec[key] = draw(ANY_VALUE)
            else:
                spec.pop(key, None)
        specs.append(spec)
    return specs


@settings(FUZZ, max_examples=200)
@given(data=st.data(), kind=st.sampled_from(["tokens", "frames"]))
def test_random_noise_specs_build_or_fail_with_a_message_naming_the_step(data, kind):
    specs = data.draw(mutated_specs(kind))
    try:
        pipe = NoisePipeline.from_config(specs, kind=kind)
    except (ValueError, TypeError) as err:
        assert isinstance(err, ConfigError) and re.match(r"noise(\[\d+\])?(\.\w+)?: ", str(err)), err
        event(f"refused: {type(err).__name__}")
        return
    event(f"built: {len(pipe.steps)} steps")
    x = torch.tensor([BOS, *range(7, 27), EOS]) if kind == "tokens" else torch.randn(9, 4)
    context = {"vocab_size": V, "word_start": WORD_START} if kind == "tokens" else {}
    try:
        out, _ = pipe(x, seed=1, epoch=2, index=3, **context)
    except ValueError as err:  # explicit t5 sentinel ids: too few for the spans drawn
        assert "sentinel" in str(err), err
        event("too few sentinels")
        return
    if kind == "tokens":
        assert_layout(out)
    else:
        assert out.shape == x.shape
