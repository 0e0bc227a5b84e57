"""A seqae export as a transformers model: `SeqaeConfig` and `SeqaeModel`, for
`AutoModel.from_pretrained(dir, trust_remote_code=True)`.

`seqae.export.hf.add_transformers(dir)` copies this file into an export as `modeling_seqae.py` and names its two
classes in config.json's `auto_map`; transformers then imports that copy, which imports the installed seqae.

    model = AutoModel.from_pretrained(export_dir, trust_remote_code=True)  # eval mode
    out = model(**model.prepare(["A sentence.", "Another one."]))        # speech: audio paths, or waveforms
    out.last_hidden_state, out.lengths, out.hidden_states, out.pooler_output  # = load_encoder's states, lengths,
                                                                             #   layers and z

Dimension letters: B batch, T time (tokens, or frames after the front end's subsampling), F feature bins,
S samples, D encoder width, Z bottleneck width.

Weights are loaded by transformers itself: the model holds seqae's `encoder` and `bottleneck` modules under those
names, so its state dict has exactly model.safetensors' keys, and `from_pretrained` fails on any key missing,
unexpected or of another shape, never loading part of the file. This module imports transformers at the top: seqae
itself never imports it (`seqae.export.hf` copies this file without importing it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn
from transformers import PreTrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput, cached_file

from seqae.export.encoder import (
    CONFIG_FILE,
    FEATURES_FILE,
    TOKENIZER_FILE,
    WEIGHTS_FILE,
    ExportError,
    PretrainedEncoder,
    build_modules,
    check_format,
    read_features,
    read_tokenizer,
)
from seqae.models.layers import lengths_to_mask

HUB_ARGS = ("cache_dir", "force_download", "proxies", "token", "revision", "local_files_only", "subfolder")
"""`from_pretrained` arguments that say where the front end's files are (passed on to `cached_file`)."""
TRANSFORMERS_KEYS = ("auto_map", "model_type", "transformers_version", "architectures")


class SeqaeConfig(PreTrainedConfig):
    """config.json of a seqae export: seqae's own keys (`kind`, `model`, `regularize`, `frontend`, ...) are
    attributes, next to transformers' common ones."""

    model_type = "seqae"

    def seqae_dict(self) -> dict[str, Any]:
        """The config.json seqae wrote (what `load_encoder(dir).config` holds), without transformers' keys."""
        common = set(PreTrainedConfig().to_dict()) | set(TRANSFORMERS_KEYS)
        return {k: v for k, v in self.to_dict().items() if k not in common}


@dataclass
class SeqaeModelOutput(ModelOutput):
    last_hidden_state: Tensor | None = None
    """[B, T, D] top-layer states (`EncoderResult.states`)."""
    pooler_output: Tensor | None = None
    """[B, Z] the bottleneck vector z (the posterior mean for a variational bottleneck)."""
    lengths: Tensor | None = None
    """[B] valid positions of `last_hidden_state` (after a speech front end's subsampling)."""
    hidden_states: tuple[Tensor, ...] | None = None
    """Every layer's states [B, T, D_l], bottom to top (a Transformer's input layer first)."""


class SeqaeModel(PreTrainedModel):
    """An exported seqae encoder (`PretrainedEncoder`): token ids or feature frames -> states, lengths, every layer
    and z. `prepare` turns raw inputs (sentences; audio paths or waveforms) into `forward`'s arguments.

    The bottleneck always runs in eval mode (z is deterministic), also in `train()` mode, as in seqae."""

    config_class = SeqaeConfig

    def __init__(self, config: SeqaeConfig) -> None:
        super().__init__(config)
        seqae_config = config.seqae_dict()
        where = Path(config.name_or_path or ".") / CONFIG_FILE
        check_format(seqae_config, where)
        try:
            encoder, bottleneck = build_modules(seqae_config)
        except (KeyError, TypeError, ValueError) as err:
            raise ExportError(f"{where}: cannot build the encoder it describes ({type(err).__name__}: {err})") from None
        self.encoder, self.bottleneck = encoder, bottleneck  # state dict keys: model.safetensors' keys
        self.main_input_name = "input_ids" if config.kind == "text" else "input_features"
        self._wrap()
        self.post_init()

    def _wrap(self, **frontend: Any) -> None:
        """The seqae encoder on this model's own modules (not a submodule: no second copy of the names)."""
        core = PretrainedEncoder(config=self.config.seqae_dict(), encoder=self.encoder, bottleneck=self.bottleneck,
                                 **frontend)
        object.__setattr__(self, "_core", core)

    @property
    def seqae_encoder(self) -> PretrainedEncoder:
        """This model as a `seqae.PretrainedEncoder` (the same modules and weights, and the front end)."""
        return self._core

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *model_args: Any,
                        **kwargs: Any) -> SeqaeModel | tuple[SeqaeModel, dict[str, Any]]:
        """transformers' loading, then a strict check: ExportError naming model.safetensors if any key is missing,
        unexpected or of another shape (transformers itself only warns, and initialises what is missing). The
        front end (tokenizer.model, or features.json) is read from the same place."""
        want_info = kwargs.pop("output_loading_info", False)
        model, info = super().from_pretrained(pretrained_model_name_or_path, *model_args, output_loading_info=True,
                                              **kwargs)
        problems = {k: sorted(map(str, info[k]))[:10] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")
                    if info.get(k)}
        if problems:
            raise ExportError(f"{os.path.join(str(pretrained_model_name_or_path), WEIGHTS_FILE)}: weights do not fit "
                              f"config.json ({problems})")
        model._load_frontend(pretrained_model_name_or_path, {k: kwargs[k] for k in HUB_ARGS if k in kwargs})
        return (model, info) if want_info else model

    def _load_frontend(self, path: str | os.PathLike, hub: dict[str, Any]) -> None:
        config = self.config.seqae_dict()
        if config["kind"] == "text":
            root = Path(cached_file(path, TOKENIZER_FILE, **hub)).parent
            self._wrap(tokenizer=read_tokenizer(root, config["frontend"]["vocab_size"]))
            return
        extractor, cmvn = read_features(Path(cached_file(path, FEATURES_FILE, **hub)))
        self._wrap(feature_extractor=extractor, cmvn=cmvn)

    def _init_weights(self, module: nn.Module) -> None:
        """Nothing: seqae's modules initialise themselves when built, and `from_pretrained` loads every weight."""

    def train(self, mode: bool = True) -> SeqaeModel:
        super().train(mode)
        self.bottleneck.eval()
        return self

    def prepare(self, inputs: Sequence[Any] | Tensor, *, sample_rate: int | None = None) -> dict[str, Tensor]:
        """Raw inputs -> `forward`'s keyword arguments, on the model's device, by the export's front end
        (`PretrainedEncoder.prepare`). Text: sentences -> {input_ids [B, T], lengths [B]}. Speech: audio file paths,
        or waveforms ([S] each, or [B, S]) at `sample_rate` -> {input_features [B, T, F] (CMVN applied), lengths}."""
        core = self._core
        if core.tokenizer is None and core.feature_extractor is None:
            raise ValueError("SeqaeModel.prepare: no front end; load the model with from_pretrained(export_dir)")
        x, lengths = core.prepare(inputs, sample_rate=sample_rate)
        return {self.main_input_name: x.to(self.device), "lengths": lengths.to(self.device)}

    def forward(self, input_ids: Tensor | None = None, attention_mask: Tensor | None = None,
                lengths: Tensor | None = None, input_features: Tensor | None = None,
                input_values: Tensor | None = None, sample_rate: int | None = None) -> SeqaeModelOutput:
        """One input, with `lengths` [B] or a right-padded `attention_mask` [B, T] (neither: no padding).
        Text: `input_ids` [B, T] (bos ... eos, as `prepare` gives). Speech: `input_features` [B, T, F] normalised
        frames, or `input_values` [B, S] waveforms at `sample_rate` (default: the export's), with lengths in
        samples (not differentiable: the features are computed on the CPU)."""
        given = {k: v for k, v in (("input_ids", input_ids), ("input_features", input_features),
                                   ("input_values", input_values)) if v is not None}
        allowed = ("input_ids",) if self.config.kind == "text" else ("input_features", "input_values")
        if len(given) != 1 or next(iter(given)) not in allowed:
            raise ValueError(f"SeqaeModel ({self.config.kind}): pass exactly one of {', '.join(allowed)}; got "
                             f"{sorted(given) or 'none'}")
        name, x = next(iter(given.items()))
        lengths = _lengths(x, attention_mask, lengths)
        if name == "input_values":
            rate = sample_rate or self._core.feature_extractor.sample_rate
            x, lengths = self._core.prepare([wav[:n] for wav, n in zip(x, lengths.tolist())], sample_rate=rate)
            x, lengths = x.to(self.device), lengths.to(self.device)  # (B, T, F), (B,)
        elif sample_rate is not None:
            raise ValueError("SeqaeModel: sample_rate goes with input_values (waveforms)")
        result = self._core.encode_inputs(x, lengths)
        return SeqaeModelOutput(last_hidden_state=result.states, pooler_output=result.z, lengths=result.lengths,
                                hidden_states=tuple(result.layers))


def _lengths(x: Tensor, attention_mask: Tensor | None, lengths: Tensor | None) -> Tensor:
    """lengths [B] of `x` [B, T, ...] from `lengths`, a right-padded `attention_mask` [B, T], or neither (all T)."""
    B, T = x.shape[:2]
    if attention_mask is not None and lengths is not None:
        raise ValueError("SeqaeModel: pass attention_mask or lengths, not both")
    if lengths is not None:
        return lengths
    if attention_mask is None:
        return torch.full((B,), T, dtype=torch.long, device=x.device)
    if attention_mask.shape != (B, T):
        raise ValueError(f"SeqaeModel: attention_mask of shape {tuple(attention_mask.shape)}; expected {(B, T)}")
    lengths = attention_mask.long().sum(-1)
    if not torch.equal(lengths_to_mask(lengths, T), attention_mask.bool()):
        raise ValueError("SeqaeModel: attention_mask must be right-padded (ones, then zeros) in every row")
    return lengths
