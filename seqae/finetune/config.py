"""Fine-tuning configuration: frozen, keyword-only dataclasses validated like `seqae.config`.

A YAML file holds only the values that differ from the defaults; loading rejects unknown keys and wrong types
with a message naming the key. Pretrained and scratch runs share one config except `encoder`:

    encoder: runs/export     # the export's weights (pretrained)
    encoder: null            # random weights; architecture, tokenizer / features and CMVN from `architecture`
    architecture: runs/export
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from seqae.config import Normalization, TrainConfig, _check, load_config
from seqae.config.noise import NoiseEntry, check_noise

__all__ = ["DecoderConfig", "FinetuneConfig", "FinetuneDataConfig", "TargetTokenizerConfig", "load_finetune_config"]


@dataclass(frozen=True, kw_only=True)
class FinetuneDataConfig:
    train: str = ""
    """Labelled training data: an ASR manifest (.jsonl/.csv with path, text, speaker) or a pairs file
    (translate: UTF-8, plain or .gz, one `source<TAB>target` pair a line; other tab-separated layouts with
    source_column and target_column)."""
    heldout: str | None = None
    """Development data in the same form (periodic evaluation); None: none."""
    test: str | None = None
    """Test data in the same form (final evaluation); None: none."""
    max_len: int | None = None
    """Longest input: speech frames before the front end (ASR; null: no limit) or source tokens with bos/eos
    (translate; null: the export's pretraining max_len)."""
    max_target_len: int = 64
    """Translate: longest target in tokens, bos and eos included (longer targets are cut, counted)."""
    overlong: Literal["truncate", "skip"] = "skip"
    """Translate: what to do with training sources longer than max_len (counted either way; evaluation sources
    are always cut, so every pair is scored). ASR always skips overlong utterances: a cut utterance no longer
    matches its transcript."""
    max_tokens: int = 8000
    """Batch budget: batch size × longest sequence (frames for ASR, tokens for translation)."""
    max_sentences: int | None = None
    """Upper bound on examples per batch."""
    eval_sentences: int = 256
    """Examples decoded by each periodic evaluation (final evaluation: all)."""
    source_column: int = 0
    """Translate: 0-based tab-separated field of the source in pairs files (e.g. 1 for `id<TAB>en<TAB>es`)."""
    target_column: int = 1
    """Translate: 0-based tab-separated field of the target in pairs files (e.g. 2 for `id<TAB>en<TAB>es`)."""
    strict: bool = False
    """Stop at the first bad item (unreadable audio, malformed pair line) instead of skipping and counting it."""
    feature_cache: str | None = None
    """ASR: where computed features are cached (default: <run_dir>/features)."""

    def __post_init__(self) -> None:
        _check(bool(self.train), "data.train", "required: the labelled training data")
        _check(self.max_len is None or self.max_len >= 3, "data.max_len", f"must be >= 3, got {self.max_len}")
        _check(self.max_target_len >= 3, "data.max_target_len", f"must be >= 3, got {self.max_target_len}")
        _check(self.max_tokens >= 1, "data.max_tokens", f"must be >= 1, got {self.max_tokens}")
        _check(self.max_sentences is None or self.max_sentences >= 1, "data.max_sentences", "must be >= 1 or null")
        _check(self.eval_sentences > 0, "data.eval_sentences", "must be > 0")
        for name in ("source_column", "target_column"):
            _check(getattr(self, name) >= 0, f"data.{name}", f"must be >= 0 (0-based), got {getattr(self, name)}")
        _check(self.source_column != self.target_column, "data.target_column",
               f"must differ from data.source_column (both {self.target_column})")


@dataclass(frozen=True, kw_only=True)
class DecoderConfig:
    embed_dim: int = 256
    """Target token embedding width."""
    dim: int = 256
    """Transformer decoder width (encoder states are projected to it when widths differ)."""
    layers: int = 2
    """Decoder blocks."""
    num_heads: int = 4
    """Attention heads."""
    ff_dim: int = 1024
    """Feed-forward width."""
    dropout: float = 0.1
    """Dropout in the decoder."""
    max_positions: int = 256
    """Longest target the position table covers."""
    tie_embeddings: bool = True
    """Tie the output layer to the target embedding (the decoder's states are projected to embed_dim first)."""

    def __post_init__(self) -> None:
        for name in ("embed_dim", "dim", "layers", "num_heads", "ff_dim", "max_positions"):
            _check(getattr(self, name) > 0, f"decoder.{name}", f"must be > 0, got {getattr(self, name)}")
        _check(self.dim % self.num_heads == 0, "decoder.dim", f"must be divisible by decoder.num_heads "
               f"({self.num_heads})")
        _check(0.0 <= self.dropout < 1.0, "decoder.dropout", f"must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True, kw_only=True)
class TargetTokenizerConfig:
    vocab_size: int = 1000
    """Translate: SentencePiece vocabulary of the target side, trained on the labelled training targets."""
    model_type: Literal["unigram", "bpe"] = "unigram"
    """SentencePiece algorithm."""
    normalization: Normalization = "nmt_nfkc"
    """SentencePiece's normalization rule; `_cf` rules also fold case."""

    def __post_init__(self) -> None:
        _check(self.vocab_size >= 16, "target_tokenizer.vocab_size", f"must be >= 16, got {self.vocab_size}")


@dataclass(frozen=True, kw_only=True)
class FinetuneConfig:
    """One fine-tuning run of an exported encoder (or of the same architecture from random weights)."""

    task: Literal["asr", "translate"] = "asr"
    """asr: CTC over characters on the encoder's frame states; translate: seq2seq with a Transformer decoder."""
    encoder: str | None = None
    """Export directory (`seqae export`) whose weights initialise the encoder; null: random initialisation."""
    architecture: str | None = None
    """Export directory whose config.json, tokenizer / feature settings and CMVN define the encoder (default:
    `encoder`); required when `encoder` is null, so scratch and pretrained runs differ only in initial weights."""
    decoder_export: str | None = None
    """Translate: an export written with `seqae export RUN DIR --decoder` (a text autoencoder of the target
    language with a Transformer decoder) whose decoder weights (embeddings, layers, output layer) initialise the
    translation decoder; its tokenizer becomes the target tokenizer. Null: the decoder starts from random weights."""
    decoder_architecture: str | None = None
    """Translate: an export written with `--decoder` whose decoder shapes and tokenizer define the target side
    (default: `decoder_export`), so a random-init run can match a pretrained one. With both null the `decoder` and
    `target_tokenizer` sections do (a tokenizer trained on the labelled targets)."""
    freeze_encoder: bool = False
    """Keep the encoder's weights fixed (and its dropout off); only the head learns."""
    encoder_lr: float | None = None
    """Peak learning rate of the encoder's parameters (null: train.lr); follows the same schedule."""
    layer_weights: bool = False
    """ASR: a learned softmax-weighted sum of every encoder layer instead of the top layer."""
    label_fraction: float = 1.0
    """Use only this fraction of the labelled training examples (a seeded subset, the same for every init)."""
    noise: tuple[NoiseEntry, ...] = ()
    """ASR: frame noises applied to training inputs (SpecAugment-style: time_mask, freq_mask, ...; the same
    entries as a speech pretraining config's `noise:`), seeded by (train.seed, epoch, utterance). Evaluation
    reads clean features."""
    data: FinetuneDataConfig = field(default_factory=FinetuneDataConfig)
    """Labelled data and batching."""
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    """Translate: the Transformer decoder (unused with decoder_export / decoder_architecture)."""
    target_tokenizer: TargetTokenizerConfig = field(default_factory=TargetTokenizerConfig)
    """Translate: the target-side SentencePiece tokenizer (unused with decoder_export / decoder_architecture)."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Optimisation and logging (train.seed also picks the label subset and the heads' initial weights)."""

    def __post_init__(self) -> None:
        _check(self.encoder is not None or self.architecture is not None, "architecture",
               "required when encoder is null (an export directory whose architecture is trained from scratch)")
        _check(0.0 < self.label_fraction <= 1.0, "label_fraction", f"must be in (0, 1], got {self.label_fraction}")
        _check(self.encoder_lr is None or self.encoder_lr > 0, "encoder_lr", f"must be > 0, got {self.encoder_lr}")
        _check(not (self.layer_weights and self.task != "asr"), "layer_weights", "only for task: asr")
        _check(not (self.noise and self.task != "asr"), "noise", "only for task: asr")
        check_noise(self.noise, "speech")
        for key in ("decoder_export", "decoder_architecture"):
            _check(getattr(self, key) is None or self.task == "translate", key, "only for task: translate")

    @property
    def encoder_spec(self) -> str:
        """The export directory that defines the architecture and front end."""
        return self.architecture if self.architecture is not None else self.encoder

    @property
    def decoder_spec(self) -> str | None:
        """The export directory that defines the target side (decoder shapes, tokenizer), if any."""
        return self.decoder_architecture if self.decoder_architecture is not None else self.decoder_export

    @property
    def pretrained(self) -> bool:
        """Whether the encoder starts from the export's weights."""
        return self.encoder is not None


def load_finetune_config(path: str | Path, overrides: list[str] | None = None) -> FinetuneConfig:
    """Read a fine-tuning YAML file, apply `--set key=value` overrides, validate (ConfigError naming the key)."""
    return load_config(path, overrides, cls=FinetuneConfig)
