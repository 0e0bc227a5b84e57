"""Encoder-only export of a run, and `load_encoder` to use it: json + safetensors, no pickle.

Dimension letters: B batch, T time (tokens, or frames after the front end), F feature bins, S samples,
D encoder width, Z bottleneck width.

An export directory holds `config.json` (format version, kind, architecture, front end, special ids, step,
source run), `model.safetensors` (keys `encoder.*`: token embedding or frame front end, then the sequence
encoder under `encoder.body.*`; and `bottleneck.*`), the front end (`tokenizer.model` for text, `features.json`
with feature settings and CMVN statistics for speech), `README.md` (a model card) and, on request,
`encoder.onnx`.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torchaudio.functional as AF
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import Tensor, nn

from seqae.checkpoint import CheckpointError, load_latest
from seqae.config import Config, ModelConfig, RegularizerConfig, load_config_dict
from seqae.data.batching import collate_tokens
from seqae.data.speech import collate_frames
from seqae.frontend.features import Cmvn, FeatureExtractor
from seqae.models.bottleneck import VariationalBottleneck
from seqae.models.builder import (build_bottleneck, build_encoder, build_frame_autoencoder,
                                  build_token_autoencoder)
from seqae.models.encoders import EncoderOutput, RNNEncoder
from seqae.models.frames import ConvSubsampling, LinearFrontEnd
from seqae.frontend.tokenizer import BOS_ID, EOS_ID, MASK_ID, PAD_ID, UNK_ID, Tokenizer

FORMAT = "seqae-encoder"
FORMAT_VERSION = 1
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


class EncoderStack(nn.Module):
    """Input layer (token `embedding` or frame `frontend`) and the sequence encoder `body`."""

    def __init__(self, *, body: nn.Module, embedding: nn.Embedding | None = None,
                 frontend: nn.Module | None = None) -> None:
        super().__init__()
        if (embedding is None) == (frontend is None):
            raise ValueError("EncoderStack needs exactly one of embedding (text) and frontend (speech)")
        self.embedding, self.frontend, self.body = embedding, frontend, body

    def forward(self, x: Tensor, lengths: Tensor, *, return_layers: bool = False) -> EncoderOutput:
        """x: token ids [B, T] or frames [B, T, F]; lengths: [B] -> EncoderOutput (lengths after the front end)."""
        if self.embedding is not None:
            h = self.embedding(x)  # (B, T, E)
        else:
            h, lengths = self.frontend(x, lengths)  # (B, T', E)
        return self.body(h, lengths, return_layers=return_layers)


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
        in training). Speech: waveforms ([S] each, or [B, S]) at `sample_rate` -> normalised frames [B, T, F]."""
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
        """Raw inputs (sentences, or waveforms with `sample_rate=`) -> EncoderResult."""
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
# Building and loading


def build_modules(config: dict[str, Any]) -> tuple[EncoderStack, nn.Module]:
    """The encoder stack and bottleneck described by an export's config.json (random weights)."""
    enc, bn, fe = config["encoder"], config["bottleneck"], config["frontend"]
    model_cfg = ModelConfig(encoder=enc["type"], embed_dim=enc["input_dim"], hidden_dim=enc["hidden_dim"],
                            encoder_layers=enc["layers"], bidirectional=enc.get("bidirectional", True),
                            num_heads=enc.get("num_heads", 4), ff_dim=enc.get("ff_dim", 1024),
                            max_positions=enc.get("max_positions", 512), dropout=enc["dropout"],
                            pooling=bn["pooling"], bottleneck_dim=bn["dim"])
    reg = RegularizerConfig(variational=bn["regularizer"] == "variational",
                            sparse={"sparse_l1": "l1", "sparse_kl": "kl"}.get(bn["regularizer"], "none"))
    body = build_encoder(model_cfg, enc["input_dim"])
    bottleneck = build_bottleneck(model_cfg, body.output_dim, reg)
    if fe["type"] == "embedding":
        stack = EncoderStack(body=body, embedding=nn.Embedding(fe["vocab_size"], fe["dim"], padding_idx=PAD_ID))
    elif fe["type"] == "linear":
        stack = EncoderStack(body=body, frontend=LinearFrontEnd(input_dim=fe["feature_dim"], dim=fe["dim"]))
    else:
        factor = {"conv2": 2, "conv4": 4}[fe["type"]]
        stack = EncoderStack(body=body, frontend=ConvSubsampling(input_dim=fe["feature_dim"], dim=fe["dim"],
                                                                 factor=factor))
    return stack, bottleneck


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (not a complete seqae encoder export)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ExportError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise ExportError(f"{path}: expected a JSON object")
    return data


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
    config = _read_json(root / CONFIG_FILE)
    if config.get("format") != FORMAT or config.get("format_version") != FORMAT_VERSION:
        raise ExportError(f"{root / CONFIG_FILE}: format {config.get('format')!r} version "
                          f"{config.get('format_version')!r}; this seqae reads {FORMAT!r} version {FORMAT_VERSION}")
    if config.get("kind") not in ("text", "speech"):
        raise ExportError(f"{root / CONFIG_FILE}: kind {config.get('kind')!r}; expected 'text' or 'speech'")
    try:
        stack, bottleneck = build_modules(config)
    except (KeyError, TypeError, ValueError) as err:  # ConfigError is a ValueError
        raise ExportError(f"{root / CONFIG_FILE}: cannot build the encoder it describes ({type(err).__name__}: "
                          f"{err})") from None
    tokenizer = extractor = cmvn = None
    if config["kind"] == "text":
        try:
            tokenizer = Tokenizer.load(root / TOKENIZER_FILE)
        except (RuntimeError, ValueError) as err:
            raise ExportError(f"{root / TOKENIZER_FILE}: not a usable SentencePiece model ({err})") from None
        if tokenizer.vocab_size != config["frontend"]["vocab_size"]:
            raise ExportError(f"{root / TOKENIZER_FILE}: {tokenizer.vocab_size} pieces, but {root / CONFIG_FILE} "
                              f"says {config['frontend']['vocab_size']}")
    else:
        features = _read_json(root / FEATURES_FILE)
        try:
            extractor = FeatureExtractor.from_settings(features["features"])
            cmvn = Cmvn.from_dict(features["cmvn"]) if features.get("cmvn") is not None else None
        except (KeyError, TypeError, ValueError) as err:
            raise ExportError(f"{root / FEATURES_FILE}: {err}") from None
    model = PretrainedEncoder(config=config, encoder=stack, bottleneck=bottleneck, tokenizer=tokenizer,
                              feature_extractor=extractor, cmvn=cmvn)
    if weights:
        _load_weights(model, root)
    return model.eval()


def _load_weights(model: PretrainedEncoder, root: Path) -> None:
    path = root / WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (not a complete seqae encoder export)")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise ExportError(f"{path}: unreadable safetensors file ({err})") from None
    _check_state(model.state_dict(), state, f"{path}: weights do not fit {root / CONFIG_FILE}")
    model.load_state_dict(state, strict=True)


def _check_state(expected: dict[str, Tensor], state: dict[str, Tensor], what: str) -> None:
    """Raise ExportError(what + the missing, unexpected and misshapen keys) unless `state` fits `expected`."""
    missing, unexpected = sorted(expected.keys() - state.keys()), sorted(state.keys() - expected.keys())
    shapes = [f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})" for k, v in expected.items()
              if k in state and state[k].shape != v.shape]
    problems = [f"{name}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                for name, keys in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)) if keys]
    if problems:
        raise ExportError(f"{what} ({'; '.join(problems)})")


# ---------------------------------------------------------------------------------------------------------------------
# Export


def _training_model(run_dir: Path) -> tuple[Config, nn.Module, int, Tokenizer | None, FeatureExtractor | None,
                                             Cmvn | None]:
    """A run's config, its model with the newest checkpoint's weights, step and front end (no data is read)."""
    if not (run_dir / "config.yaml").is_file():
        raise FileNotFoundError(f"{run_dir}: not a seqae run directory (no config.yaml)")
    config = load_config_dict(yaml.safe_load((run_dir / "config.yaml").read_text()))
    ckpt = load_latest(run_dir)
    if ckpt is None:
        raise CheckpointError(f"{run_dir}: no usable checkpoint in {run_dir / 'checkpoints'}")
    tokenizer = extractor = cmvn = None
    if config.task == "text":
        tokenizer = Tokenizer.load(run_dir / "tokenizer.model")
        model = build_token_autoencoder(config.model, tokenizer.vocab_size, regularize=config.regularize)
    else:
        from seqae.tasks.speech import build_extractor  # here: it imports the whole speech data pipeline

        extractor = build_extractor(config)
        model = build_frame_autoencoder(config.model, extractor.feature_dim, regularize=config.regularize)
        if config.features.cmvn:
            stored = _read_json(run_dir / "cmvn.json")
            if stored.get("features") != extractor.settings():
                raise ExportError(f"{run_dir / 'cmvn.json'}: computed with features {stored.get('features')}, "
                                  f"the run's config gives {extractor.settings()}")
            cmvn = Cmvn.from_dict(stored)
    model.load_state_dict(ckpt["model"])
    return config, model.eval(), ckpt["step"], tokenizer, extractor, cmvn


def _describe(config: Config, model: nn.Module, step: int, run_dir: Path, extractor: FeatureExtractor | None,
             vocab_size: int | None) -> dict[str, Any]:
    """The config.json of an export of `model` (a trained TokenAutoencoder or FrameAutoencoder)."""
    m = config.model
    encoder: dict[str, Any] = {"type": m.encoder, "input_dim": m.embed_dim, "hidden_dim": m.hidden_dim,
                               "layers": m.encoder_layers, "dropout": m.dropout,
                               "output_dim": model.encoder.output_dim}
    if m.encoder == "transformer":
        encoder.update(num_heads=m.num_heads, ff_dim=m.ff_dim, max_positions=m.max_positions,
                       cls_token=m.pooling == "cls")
    else:
        encoder["bidirectional"] = m.bidirectional
    if isinstance(model.bottleneck, VariationalBottleneck):
        regularizer, z = "variational", "the posterior mean mu (no sampling)"
    else:
        regularizer = {"none": "none", "l1": "sparse_l1", "kl": "sparse_kl"}[model.bottleneck.sparse]
        z = "sigmoid of the projection" if regularizer == "sparse_kl" else "the linear projection of the pooled states"
    if config.task == "text":
        frontend = {"type": "embedding", "vocab_size": vocab_size, "dim": m.embed_dim, "tokenizer": TOKENIZER_FILE,
                    "max_len": config.data.max_len}
        special = {"pad": PAD_ID, "unk": UNK_ID, "bos": BOS_ID, "eos": EOS_ID, "mask": MASK_ID}
    else:
        factor = {"linear": 1, "conv2": 2, "conv4": 4}[m.frontend]
        frontend = {"type": m.frontend, "feature_dim": extractor.feature_dim, "dim": m.embed_dim,
                    "features": FEATURES_FILE, "subsampling": factor,
                    "frame_rate_hz": extractor.sample_rate / extractor.hop_length / factor}
        special = None
    from seqae import __version__

    return {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": config.task, "encoder": encoder,
            "bottleneck": {"pooling": m.pooling, "dim": m.bottleneck_dim, "regularizer": regularizer, "z": z},
            "frontend": frontend, "special_ids": special, "step": step, "source_run": str(run_dir.resolve()),
            "seqae_version": __version__}


def _target_ready(out_dir: Path, overwrite: bool) -> None:
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise ExportError(f"{out_dir}: exists and is not a directory")
    entries = list(out_dir.iterdir())
    if not entries:
        return
    try:
        is_export = _read_json(out_dir / CONFIG_FILE).get("format") == FORMAT
    except (OSError, ExportError):
        is_export = False
    if not overwrite or not is_export:
        why = "use overwrite (--force) to replace it" if is_export else "not a seqae export, so it is never replaced"
        raise ExportError(f"{out_dir}: exists and is not empty ({why})")


def export_run(run_dir: str | Path, out_dir: str | Path, *, onnx: bool = False, overwrite: bool = False) -> Path:
    """Export the encoder side of a run (newest checkpoint) to `out_dir`; returns `out_dir`.

    The directory is written under a temporary name and renamed when complete. With `onnx`, `encoder.onnx` is
    added and checked against PyTorch (see `seqae.onnx_export`).
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir).resolve()
    _target_ready(out_dir, overwrite)
    config, model, step, tokenizer, extractor, cmvn = _training_model(run_dir)
    cfg = _describe(config, model, step, run_dir, extractor, tokenizer.vocab_size if tokenizer else None)
    stack, bottleneck = build_modules(cfg)
    state = {f"encoder.{'embedding' if tokenizer else 'frontend'}.{k}": v for k, v in
             (model.embedding if tokenizer else model.frontend).state_dict().items()}
    state.update({f"encoder.body.{k}": v for k, v in model.encoder.state_dict().items()})
    state.update({f"bottleneck.{k}": v for k, v in model.bottleneck.state_dict().items()})
    encoder = PretrainedEncoder(config=cfg, encoder=stack, bottleneck=bottleneck, tokenizer=tokenizer,
                                feature_extractor=extractor, cmvn=cmvn)
    encoder.load_state_dict(state, strict=True)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        (tmp / CONFIG_FILE).write_text(json.dumps(cfg, indent=2) + "\n")
        weights = {k: v.contiguous() for k, v in encoder.state_dict().items()}
        (tmp / WEIGHTS_FILE).write_bytes(save(weights, metadata={"format": FORMAT, "version": str(FORMAT_VERSION)}))
        if tokenizer is not None:
            (tmp / TOKENIZER_FILE).write_bytes(tokenizer.serialized())
        else:
            features = {"features": extractor.settings(), "cmvn": cmvn.to_dict() if cmvn is not None else None}
            (tmp / FEATURES_FILE).write_text(json.dumps(features) + "\n")
        (tmp / CARD_FILE).write_text(_model_card(cfg, config, run_dir, onnx=onnx), encoding="utf-8")
        if onnx:
            from seqae.onnx_export import export_onnx

            export_onnx(encoder, tmp / ONNX_FILE)
        if out_dir.exists():
            shutil.rmtree(out_dir)  # checked above: empty, or a previous export with overwrite
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


# ---------------------------------------------------------------------------------------------------------------------
# The model card


def _scalars(data: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Dotted (key, value) pairs of the numbers and strings in nested dicts (lists left out)."""
    if isinstance(data, dict):
        return [pair for k, v in data.items() for pair in _scalars(v, f"{prefix}{k}.")]
    return [(prefix[:-1], data)] if isinstance(data, (int, float, str)) else []


def _optional_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except json.JSONDecodeError:
        return None


_CARD = """# seqae {kind} encoder

The encoder half of a sequence autoencoder pretrained without labels (seqae {version}): a decoder, not included,
was trained to rebuild each input from the {z_dim}-dim bottleneck z.

- input: {front}
- encoder: {arch}, {layers} layer(s), output width {output_dim}
- bottleneck: {pooling} pooling, regulariser {regularizer}; z is {z}

## Data

{data}

## Training

Exported from `{source}` at step {step} (the config asked for {max_steps}); noise: {noise}.

## Metrics (the run's metrics.json)

{metrics}

## Loading

```python
import seqae

enc = seqae.load_encoder("THIS_DIR")
out = {call}  # out.states [B, T, D], out.lengths [B], out.layers, out.z [B, Z]
x, lengths = enc.prepare(...)  # the front end alone; enc.encode_inputs(x, lengths) is the differentiable part
```
{onnx}
## The weights in fairseq or ESPnet

`model.safetensors` holds `encoder.{first}.*` ({first_what}), `encoder.body.*` (the sequence encoder: PyTorch
`nn.GRU`/`nn.LSTM` parameters per layer, or seqae's Transformer blocks) and `bottleneck.*` (pooling and the
projection to z). The names are seqae's own: no stock fairseq or ESPnet encoder has these modules, so prefix loading
works only into an encoder whose submodules are seqae's (for example a wrapper holding the `{first}` and `body`
modules that `seqae.export.build_modules(config)` builds), or after renaming the keys to fit another architecture
of the same shapes. Both toolkits load pickled PyTorch files, so convert first. These recipes follow the two
toolkits' loading code; they are not tested here (neither toolkit is a seqae dependency).

- fairseq, `--load-pretrained-encoder-from encoder.pt`: reads `torch.load(...)["model"]`, keeps the keys that start
  with `encoder`, strips `encoder.` and loads them into the model's encoder with `strict=True` (`bottleneck.*` is
  ignored). Its checkpoint loader upgrades old checkpoints and fails without training bookkeeping, so save:
  `torch.save({{"model": load_file("model.safetensors"), "args": None, "cfg": None, "extra_state":
  {{"train_iterator": None}}, "optimizer_history": [{{"criterion_name": "none", "optimizer_name": "none",
  "lr_scheduler_state": {{}}, "num_updates": 0}}]}}, "encoder.pt")`.
- ESPnet, `--init_param encoder.pth:encoder:encoder`: reads `torch.load("encoder.pth")` as a state dict, keeps the
  keys that start with `encoder`, strips the prefix and loads them into `model.encoder`; names or shapes that differ
  fail, or with `--ignore_init_mismatch true` are skipped with a warning and stay untrained. Save
  `torch.save(load_file("model.safetensors"), "encoder.pth")`.
- Either way the model must see the inputs this encoder was trained on: {inputs}
"""


def _model_card(cfg: dict[str, Any], config: Config, run_dir: Path, *, onnx: bool = False) -> str:
    """README.md of an export: what it is, data, training, metrics, loading, and its keys in other toolkits."""
    enc, bn, fe, text = cfg["encoder"], cfg["bottleneck"], cfg["frontend"], cfg["kind"] == "text"
    if enc["type"] == "transformer":
        arch = f"Transformer ({enc['num_heads']} heads, feed-forward {enc['ff_dim']})"
    else:
        arch = f"{'bidirectional' if enc['bidirectional'] else 'unidirectional'} {enc['type'].upper()}"
    if text:
        front = f"SentencePiece pieces (`{TOKENIZER_FILE}`, {fe['vocab_size']}) embedded in {fe['dim']} dims"
        inputs = "this tokenizer's ids, with bos (2) and eos (3) around each sentence."
    else:
        front = (f"{fe['feature_dim']}-dim features (`{FEATURES_FILE}`: settings and CMVN statistics), a {fe['type']} "
                 f"front end to {fe['dim']} dims, about {fe['frame_rate_hz']:g} frames/s out")
        inputs = ("features computed as `features.json` says (seqae's FeatureExtractor) and normalised with its CMVN "
                  "statistics, not the toolkit's own front end.")
    stats, metrics = _optional_json(run_dir / "data_stats.json"), _optional_json(run_dir / "metrics.json")
    data = [f"- train: `{config.data.train}`", f"- held out: `{config.data.heldout}`"]
    data += [f"- {k}: {v}" for k, v in _scalars(stats or {}) if not k.startswith("feature_cache")]
    table = ["| metric | value |", "|---|---|"]
    table += [f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in _scalars(metrics or {})]
    return _CARD.format(
        kind=cfg["kind"], version=cfg["seqae_version"], z_dim=bn["dim"], front=front, arch=arch, layers=enc["layers"],
        output_dim=enc["output_dim"], pooling=bn["pooling"], regularizer=bn["regularizer"], z=bn["z"],
        data="\n".join(data) + ("" if stats else "\n- (the run has no data_stats.json)"), source=cfg["source_run"],
        step=cfg["step"], max_steps=config.train.max_steps, noise=list(config.noise) or "none",
        metrics="\n".join(table) if metrics else "None: the run had not finished when it was exported.",
        call='enc(["A sentence."])' if text else "enc([waveform], sample_rate=rate)  # 1-D waveforms, any rate",
        first="embedding" if text else "frontend", first_what="token embedding" if text else "frame front end",
        inputs=inputs, onnx=f"\n`{ONNX_FILE}` maps `(x, lengths)`, as `prepare` returns them, to `(states, "
        "out_lengths, z)`, with dynamic batch and time axes.\n" if onnx else "")


__all__ = ["EncoderResult", "EncoderStack", "ExportError", "PretrainedEncoder", "build_modules", "export_run",
           "load_encoder"]
