"""The loadable encoder of an export: `load_encoder(dir)` -> `PretrainedEncoder`, json + safetensors, no pickle.

Dimension letters: B batch, T time (tokens, or frames after the front end), F feature bins, S samples,
D encoder width, Z bottleneck width.

An export directory holds `config.json` (format version; the run's `model` and `regularize` config sections, from
which `seqae.models.builder` builds the encoder; a description of the encoder, bottleneck and front end; special
ids, step, source run), `model.safetensors` (keys `encoder.*`: token embedding or frame front end, then the sequence
encoder under `encoder.body.*`; and `bottleneck.*`), the front end (`tokenizer.model` for text, `features.json` with
feature settings and CMVN statistics for speech), `README.md` (a model card) and, on request, `encoder.onnx`.
This module depends on the models, the front ends and the config only.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torchaudio.functional as AF
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

from seqae.checkpoint import state_mismatch
from seqae.config import ModelConfig, RegularizerConfig, load_config_dict
from seqae.frontend.audio import load_audio
from seqae.frontend.collate import collate_frames, collate_tokens
from seqae.frontend.features import Cmvn, FeatureExtractor
from seqae.frontend.tokenizer import BOS_ID, EOS_ID, PAD_ID, Tokenizer
from seqae.models.builder import build_encoder_stack
from seqae.models.encoders import EncoderStack, RNNEncoder

FORMAT = "seqae-encoder"
FORMAT_VERSION = 2
"""2: config.json holds the run's `model` and `regularize` sections (version 1 described the encoder only)."""
CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE, FEATURES_FILE, CARD_FILE, ONNX_FILE = (
    "config.json", "model.safetensors", "tokenizer.model", "features.json", "README.md", "encoder.onnx")


class ExportError(ValueError):
    """An export directory (or a run to export) that cannot be used; the message names the file."""


@dataclass
class EncoderResult:
    states: Tensor
    """[B, T, D] top-layer states (T: tokens, or frames after the front end's subsampling)."""
    lengths: Tensor
    """[B] valid positions of `states`."""
    layers: list[Tensor]
    """Every layer's states [B, T, D_l], bottom to top (a Transformer's input layer first)."""
    z: Tensor
    """[B, Z] the bottleneck vector (the posterior mean for a variational bottleneck)."""


class PretrainedEncoder(nn.Module):
    """An exported encoder: raw inputs -> front end -> encoder -> bottleneck. Build it with `load_encoder`.

    The bottleneck always runs in eval mode (z is deterministic, no regulariser terms), also while fine-tuning.
    """

    def __init__(self, *, config: dict[str, Any], encoder: EncoderStack, bottleneck: nn.Module,
                 tokenizer: Tokenizer | None = None, feature_extractor: FeatureExtractor | None = None,
                 cmvn: Cmvn | None = None) -> None:
        super().__init__()
        self.config, self.encoder, self.bottleneck = config, encoder, bottleneck
        self.tokenizer, self.cmvn = tokenizer, cmvn
        object.__setattr__(self, "_extractor", feature_extractor)  # not a submodule: CPU-side, no state dict
        self.eval()

    def train(self, mode: bool = True) -> PretrainedEncoder:
        super().train(mode)
        self.bottleneck.eval()
        return self

    @property
    def kind(self) -> str:
        """"text" or "speech"."""
        return self.config["kind"]

    @property
    def feature_extractor(self) -> FeatureExtractor | None:
        """Speech: waveform [S] -> features [T, F] (applied by `prepare`, before CMVN)."""
        return self._extractor

    @property
    def output_dim(self) -> int:
        """D, the width of `states`."""
        return self.encoder.body.output_dim

    @property
    def bottleneck_dim(self) -> int:
        """Z, the width of `z`."""
        return self.config["bottleneck"]["dim"]

    @property
    def num_layers(self) -> int:
        """len(EncoderResult.layers): RNN layers, or Transformer blocks + 1 (the input layer)."""
        body = self.encoder.body
        return len(body.layers) if isinstance(body, RNNEncoder) else len(body.blocks) + 1

    @property
    def frame_rate_hz(self) -> float | None:
        """Speech: rate of `states` in frames per second after the front end's subsampling (for CTC); text: None."""
        return self.config["frontend"].get("frame_rate_hz")

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    def prepare(self, inputs: Sequence[Any] | Tensor, *, sample_rate: int | None = None) -> tuple[Tensor, Tensor]:
        """The front end alone. Text: sentences -> ids [B, T] (bos ... eos, truncated to the training max_len as
        in training). Speech: waveforms ([S] each, or [B, S]) at `sample_rate`, or audio file paths (read with
        soundfile and resampled) -> normalised frames [B, T, F]."""
        if self.kind == "text":
            if sample_rate is not None:
                raise ValueError("sample_rate is for speech encoders; this one reads text")
            if isinstance(inputs, str) or not all(isinstance(s, str) for s in inputs) or len(inputs) == 0:
                raise ValueError("a text encoder takes a non-empty list of strings")
            keep = self.config["frontend"]["max_len"] - 2
            ids = [[BOS_ID, *seq[:keep], EOS_ID] for seq in self.tokenizer.encode_batch(list(inputs))]
            return collate_tokens(ids, PAD_ID)
        return self._prepare_speech(inputs, sample_rate)

    def _prepare_speech(self, inputs: Sequence[Any] | Tensor, sample_rate: int | None) -> tuple[Tensor, Tensor]:
        if not isinstance(inputs, Tensor) and len(inputs) and all(isinstance(x, (str, os.PathLike)) for x in inputs):
            if sample_rate is not None:
                raise ValueError("sample_rate is for waveforms; audio files are read at the encoder's own rate")
            rate = self._extractor.sample_rate
            return self._prepare_speech([load_audio(path, sample_rate=rate) for path in inputs], rate)
        if not isinstance(sample_rate, int) or isinstance(sample_rate, bool) or sample_rate <= 0:
            raise ValueError(f"a speech encoder needs sample_rate= (a positive int in Hz), got {sample_rate!r}")
        if isinstance(inputs, Tensor) and inputs.dim() != 2:
            raise ValueError(f"waveforms: expected a list of [S] waveforms or a [B, S] tensor, got "
                             f"{tuple(inputs.shape)}")
        if len(inputs) == 0:
            raise ValueError("waveforms: empty batch")
        feats, min_frames = [], self.encoder.frontend.min_frames
        for i, wav in enumerate(inputs):
            wav = torch.as_tensor(wav, dtype=torch.float32).cpu()
            if wav.dim() != 1 or not bool(torch.isfinite(wav).all()):
                raise ValueError(f"waveform {i}: expected finite mono samples [S], got shape {tuple(wav.shape)}")
            if sample_rate != self._extractor.sample_rate:
                wav = AF.resample(wav, orig_freq=sample_rate, new_freq=self._extractor.sample_rate)
            with torch.no_grad():
                x = self._extractor(wav, source=f"waveform {i}")  # (T, F)
            if x.shape[0] < min_frames:
                raise ValueError(f"waveform {i}: {x.shape[0]} feature frames; the front end needs {min_frames}")
            feats.append(self.cmvn.normalize(x) if self.cmvn is not None else x)
        return collate_frames(feats)

    def encode_inputs(self, x: Tensor, lengths: Tensor) -> EncoderResult:
        """The differentiable part: ids [B, T] (text, bos/eos included) or normalised frames [B, T, F] (speech)."""
        _check_inputs(self, x, lengths)
        enc = self.encoder(x, lengths, return_layers=True)
        z, _ = self.bottleneck(enc)
        return EncoderResult(states=enc.states, lengths=enc.lengths, layers=enc.layers, z=z)

    def forward(self, inputs: Sequence[Any] | Tensor, *, sample_rate: int | None = None) -> EncoderResult:
        """Raw inputs (sentences; waveforms with `sample_rate=`; or audio file paths) -> EncoderResult."""
        x, lengths = self.prepare(inputs, sample_rate=sample_rate)
        device = self._device()
        return self.encode_inputs(x.to(device), lengths.to(device))


def _check_inputs(model: PretrainedEncoder, x: Tensor, lengths: Tensor) -> None:
    text = model.kind == "text"
    want = "token ids [B, T]" if text else f"frames [B, T, {model.config['frontend']['feature_dim']}]"
    good = (x.dim() == 2 and not x.is_floating_point()) if text else (
        x.dim() == 3 and x.is_floating_point() and x.shape[-1] == model.config["frontend"]["feature_dim"])
    if not good:
        raise ValueError(f"encode_inputs: expected {want}, got {x.dtype} of shape {tuple(x.shape)}")
    if lengths.shape != (x.shape[0],) or lengths.is_floating_point():
        raise ValueError(f"encode_inputs: expected integer lengths of shape ({x.shape[0]},), got "
                         f"{tuple(lengths.shape)}")
    if bool(((lengths < 1) | (lengths > x.shape[1])).any()):
        raise ValueError(f"encode_inputs: lengths must be in 1..{x.shape[1]}, got {lengths.tolist()}")
    vocab = model.config["frontend"].get("vocab_size", 0)
    if text and bool(((x < 0) | (x >= vocab)).any()):
        raise ValueError(f"encode_inputs: token ids must be in [0, {vocab})")


# ---------------------------------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------------------------------
# Building and loading


def build_modules(config: dict[str, Any]) -> tuple[EncoderStack, nn.Module]:
    """The encoder stack and bottleneck an export's config.json describes (random weights), built by
    `seqae.models.builder` from its `model` and `regularize` sections."""
    model = load_config_dict(config["model"], ModelConfig)
    regularize = load_config_dict(config["regularize"], RegularizerConfig)
    frontend = config["frontend"]
    if config["kind"] == "text":
        return build_encoder_stack(model, regularize, vocab_size=frontend["vocab_size"], pad_id=PAD_ID)
    return build_encoder_stack(model, regularize, feature_dim=frontend["feature_dim"])


def read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (not a complete seqae encoder export)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ExportError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise ExportError(f"{path}: expected a JSON object")
    return data


def read_tokenizer(root: Path, vocab_size: int) -> Tokenizer:
    """The export's tokenizer.model, which must have the `vocab_size` its config.json says; FileNotFoundError or
    ExportError naming the file."""
    try:
        tokenizer = Tokenizer.load(root / TOKENIZER_FILE)
    except (RuntimeError, ValueError) as err:
        raise ExportError(f"{root / TOKENIZER_FILE}: not a usable SentencePiece model ({err})") from None
    if tokenizer.vocab_size != vocab_size:
        raise ExportError(f"{root / TOKENIZER_FILE}: {tokenizer.vocab_size} pieces, but {root / CONFIG_FILE} says "
                          f"{vocab_size}")
    return tokenizer


def check_format(config: dict[str, Any], path: Path) -> None:
    """ExportError naming `path` unless `config` is this seqae's export format and version, of a known kind."""
    if config.get("format") != FORMAT or config.get("format_version") != FORMAT_VERSION:
        older = " (an older seqae's export: export the run again with `seqae export`)" if (
            config.get("format") == FORMAT and config.get("format_version") == 1) else ""
        raise ExportError(f"{path}: format {config.get('format')!r} version {config.get('format_version')!r}; "
                          f"this seqae reads {FORMAT!r} version {FORMAT_VERSION}{older}")
    if config.get("kind") not in ("text", "speech"):
        raise ExportError(f"{path}: kind {config.get('kind')!r}; expected 'text' or 'speech'")


def load_encoder(path: str | Path, *, weights: bool = True) -> PretrainedEncoder:
    """Load an export directory (json + safetensors; nothing is unpickled). Returns the encoder in eval mode.

    `weights=False` keeps the modules' random initialisation (from torch's RNG) and does not read
    model.safetensors: the same architecture and front end, trained from scratch.
    Raises FileNotFoundError naming a missing directory or file, ExportError naming a file of another format,
    format version or architecture.
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such export directory")
    config = read_json(root / CONFIG_FILE)
    check_format(config, root / CONFIG_FILE)
    try:
        stack, bottleneck = build_modules(config)
    except (KeyError, TypeError, ValueError) as err:  # ConfigError is a ValueError
        raise ExportError(f"{root / CONFIG_FILE}: cannot build the encoder it describes ({type(err).__name__}: "
                          f"{err})") from None
    tokenizer = extractor = cmvn = None
    if config["kind"] == "text":
        tokenizer = read_tokenizer(root, config["frontend"]["vocab_size"])
    else:
        extractor, cmvn = read_features(root / FEATURES_FILE)
    model = PretrainedEncoder(config=config, encoder=stack, bottleneck=bottleneck, tokenizer=tokenizer,
                              feature_extractor=extractor, cmvn=cmvn)
    if weights:
        load_weights(model, root / WEIGHTS_FILE, root / CONFIG_FILE)
    return model.eval()


def read_features(path: Path) -> tuple[FeatureExtractor, Cmvn | None]:
    """A speech export's features.json: its feature extractor and CMVN statistics (ExportError naming the file)."""
    features = read_json(path)
    try:
        extractor = FeatureExtractor.from_settings(features["features"])
        cmvn = Cmvn.from_dict(features["cmvn"]) if features.get("cmvn") is not None else None
    except (KeyError, TypeError, ValueError) as err:
        raise ExportError(f"{path}: {err}") from None
    return extractor, cmvn


def load_weights(model: nn.Module, path: Path, config_path: Path, *, drop_prefix: str | None = None) -> None:
    """Load a safetensors file into `model` (strict, keys starting with `drop_prefix` left out first);
    FileNotFoundError / ExportError naming the file, and which keys do not fit the model `config_path` describes."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (not a complete seqae export)")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise ExportError(f"{path}: unreadable safetensors file ({err})") from None
    if drop_prefix is not None:
        state = {k: v for k, v in state.items() if not k.startswith(drop_prefix)}
    problems = state_mismatch(model.state_dict(), state)
    if problems:
        raise ExportError(f"{path}: weights do not fit {config_path} ({problems})")
    model.load_state_dict(state, strict=True)
