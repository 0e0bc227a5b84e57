"""The sections of a pretraining config and the whole `Config`; every field has its default and a one-line doc."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from seqae.config.noise import NoiseEntry, check_noise
from seqae.config.validation import _check


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    train: str = "data/fortunes/train.txt"
    """Training corpus: a local .txt/.jsonl/.csv/.parquet file or folder, or a hub dataset name."""
    heldout: str | None = "data/fortunes/heldout.txt"
    """Held-out corpus (same forms as `train`); None splits `heldout_fraction` off the training corpus."""
    heldout_fraction: float = 0.05
    """Fraction of the training corpus held out when `heldout` is None."""
    hub_config: str | None = None
    """Configuration name of a hub dataset (e.g. wikitext-103-raw-v1)."""
    train_split: str = "train"
    """Split of `train` to read (hub datasets and folders of split files)."""
    heldout_split: str = "validation"
    """Split of `heldout` to read when it names a hub dataset or a folder of split files."""
    text_column: str = "text"
    """Column holding the text in jsonl/csv/parquet/hub data."""
    encoding_errors: Literal["strict", "replace"] = "strict"
    """Undecodable bytes: stop with file and line ('strict') or replace and count ('replace')."""
    max_len: int = 64
    """Longest sequence in tokens, counting bos and eos."""
    overlong: Literal["truncate", "skip"] = "truncate"
    """What to do with longer sequences (counted in the log either way)."""
    max_tokens: int = 4096
    """Token budget of a batch: batch size × longest sequence in it."""
    max_sentences: int | None = None
    """Upper bound on sequences per batch."""
    max_train_sentences: int | None = None
    """Use only the first N training sentences (quick runs)."""
    eval_sentences: int = 512
    """Held-out (and training) sequences used by periodic evaluation."""
    train_eval_sentences: int | None = 2000
    """Training sequences the final evaluation decodes: a fixed sample (seeded by train.seed) of this many, so it
    stays short on large corpora; None decodes them all. metrics.json names the number (`train_eval_sequences`)."""
    strict: bool = False
    """Stop at the first bad item (unreadable audio, ...) instead of skipping and counting it."""
    targets: Literal["self", "label", "neighbours"] = "self"
    """Speech: rebuild the input itself, or (correspondence autoencoder) another utterance of the same label, or
    of one of its nearest neighbours by other speakers (no labels used)."""
    neighbour_embeddings: str | None = None
    """Speech, `targets: neighbours`: an .npy of [N, D] vectors, row i for training row i of data.train (as
    `seqae encode EARLIER_RUN TRAIN_MANIFEST z.npy` writes them), whose cosine chooses the neighbours instead of
    the downsampled frames'."""

    streaming: bool = False
    """Read the training corpus lazily (corpora larger than memory): a shuffle buffer and length-bucketed pools
    instead of the whole corpus in memory; needs `heldout` (text)."""
    shuffle_buffer: int = 10_000
    """Streaming: training rows held in the shuffle buffer."""
    pool_size: int = 2_000
    """Streaming: rows encoded and sorted by length together before being cut into batches."""

    def __post_init__(self) -> None:
        _check(self.shuffle_buffer >= 1, "data.shuffle_buffer", f"must be >= 1, got {self.shuffle_buffer}")
        _check(self.pool_size >= 1, "data.pool_size", f"must be >= 1, got {self.pool_size}")
        _check(self.max_len >= 3, "data.max_len", f"must be >= 3 (bos, one token, eos), got {self.max_len}")
        _check(self.max_tokens >= self.max_len, "data.max_tokens", f"must be >= data.max_len ({self.max_len})")
        _check(0.0 < self.heldout_fraction < 1.0, "data.heldout_fraction", "must be in (0, 1)")
        _check(self.eval_sentences > 0, "data.eval_sentences", "must be > 0")
        _check(self.train_eval_sentences is None or self.train_eval_sentences > 0, "data.train_eval_sentences",
               f"must be > 0 or null, got {self.train_eval_sentences}")
        _check(self.neighbour_embeddings is None or self.targets == "neighbours", "data.neighbour_embeddings",
               "only with data.targets: neighbours")


@dataclass(frozen=True, kw_only=True)
class FeatureConfig:
    kind: Literal["logmel", "mfcc", "fbank"] = "logmel"
    """Speech features computed with torchaudio."""
    sample_rate: int = 16000
    """Audio is resampled to this rate."""
    n_mels: int = 80
    """Mel bins (logmel, fbank)."""
    n_mfcc: int = 13
    """Cepstral coefficients (mfcc)."""
    win_ms: float = 25.0
    """Window length in milliseconds."""
    hop_ms: float = 10.0
    """Hop between frames in milliseconds."""
    cmvn: bool = True
    """Normalise with global mean/variance statistics of the training set (stored with the model)."""
    cache_dir: str | None = None
    """Where computed features are cached (default: <run_dir>/features)."""

    def __post_init__(self) -> None:
        _check(self.sample_rate > 0, "features.sample_rate", "must be > 0")
        _check(self.n_mels > 0 and self.n_mfcc > 0, "features.n_mels", "n_mels and n_mfcc must be > 0")
        _check(0 < self.hop_ms <= self.win_ms, "features.hop_ms", "must be in (0, features.win_ms]")


Normalization = Literal["nmt_nfkc", "nmt_nfkc_cf", "nfkc", "nfkc_cf", "identity"]
"""SentencePiece's normalization rules (seqae.frontend.tokenizer.NORMALIZATIONS); `_cf` ones also fold case."""


@dataclass(frozen=True, kw_only=True)
class TokenizerConfig:
    vocab_size: int = 2000
    """SentencePiece vocabulary size, reserved ids (pad, unk, bos, eos, mask) included."""
    model_type: Literal["unigram", "bpe"] = "unigram"
    """SentencePiece algorithm."""
    normalization: Normalization = "nmt_nfkc"
    """SentencePiece's normalization rule (its default: nmt_nfkc); `_cf` rules also fold case, for uncased models."""
    path: str | None = None
    """An existing SentencePiece model to use instead of training one."""
    train_sentences: int = 1_000_000
    """Train SentencePiece on the first N training sentences."""

    def __post_init__(self) -> None:
        _check(self.vocab_size >= 16, "tokenizer.vocab_size", f"must be >= 16, got {self.vocab_size}")
        _check(self.train_sentences >= 1, "tokenizer.train_sentences", f"must be >= 1, got {self.train_sentences}")


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    encoder: Literal["gru", "lstm", "transformer"] = "gru"
    """Encoder architecture."""
    decoder: Literal["gru", "lstm", "transformer"] = "gru"
    """Autoregressive decoder architecture."""
    embed_dim: int = 256
    """Token embedding width (shared by encoder input, decoder input and, when tied, the output layer)."""
    hidden_dim: int = 512
    """Encoder width (per direction for RNNs; d_model for Transformers)."""
    decoder_dim: int = 512
    """Decoder width (RNN hidden size or Transformer d_model)."""
    encoder_layers: int = 1
    """Encoder depth."""
    decoder_layers: int = 1
    """Decoder depth."""
    bidirectional: bool = True
    """Bidirectional RNN encoder."""
    num_heads: int = 4
    """Attention heads (Transformers)."""
    ff_dim: int = 1024
    """Feed-forward width (Transformers)."""
    dropout: float = 0.1
    """Dropout inside encoder and decoder."""
    pooling: Literal["last", "mean", "attention", "cls"] = "last"
    """How encoder states are pooled into one vector before the bottleneck projection."""
    bottleneck_dim: int = 256
    """Width of the bottleneck vector z."""
    memory_slots: int = 4
    """Transformer decoder: z is projected to this many memory vectors it attends to."""
    word_dropout: float = 0.0
    """Probability that a decoder input token is replaced by unk in training, so the decoder must use z."""
    tie_embeddings: bool = True
    """Tie the output layer to the token embedding."""
    max_positions: int = 512
    """Longest sequence the Transformer position table covers."""
    frontend: Literal["linear", "conv2", "conv4"] = "linear"
    """Speech: frame front end before the encoder (linear, or convolutional subsampling in time by 2 or 4)."""
    reduction_factor: int = 1
    """Speech: frames the decoder predicts per step."""
    prenet_dim: int = 256
    """Speech: width of the decoder prenet that reads the fed-back frames."""
    prenet_dropout: float = 0.5
    """Speech: dropout in the prenet (kept on in training) so the decoder must rely on z."""
    frame_loss: Literal["mse", "l1"] = "mse"
    """Speech: reconstruction loss on real frames."""
    stop_weight: float = 1.0
    """Speech: weight of the stop (end-of-sequence) predictor's loss."""
    frame_prediction_weight: float = 0.0
    """Speech: weight of a per-position loss beside the bottleneck's: a linear head on every top encoder state
    predicts the clean input frames under it, L1 on the frames the noise masked (TERA/Mockingjay). 0: off."""

    def __post_init__(self) -> None:
        for name in ("embed_dim", "hidden_dim", "decoder_dim", "encoder_layers", "decoder_layers", "num_heads",
                     "ff_dim", "bottleneck_dim", "memory_slots", "max_positions"):
            value = getattr(self, name)
            _check(value > 0, f"model.{name}", f"must be > 0, got {value}")
        _check(0.0 <= self.dropout < 1.0, "model.dropout", f"must be in [0, 1), got {self.dropout}")
        _check(0.0 <= self.word_dropout < 1.0, "model.word_dropout", f"must be in [0, 1), got {self.word_dropout}")
        if self.encoder == "transformer":
            _check(self.hidden_dim % self.num_heads == 0, "model.hidden_dim",
                   f"must be divisible by model.num_heads ({self.num_heads})")
        if self.decoder == "transformer":
            _check(self.decoder_dim % self.num_heads == 0, "model.decoder_dim",
                   f"must be divisible by model.num_heads ({self.num_heads})")
        _check(self.reduction_factor >= 1, "model.reduction_factor", f"must be >= 1, got {self.reduction_factor}")
        _check(0.0 <= self.prenet_dropout < 1.0, "model.prenet_dropout", "must be in [0, 1)")
        _check(self.stop_weight >= 0, "model.stop_weight", "must be >= 0")
        _check(self.frame_prediction_weight >= 0, "model.frame_prediction_weight",
               f"must be >= 0, got {self.frame_prediction_weight}")
        _check(self.pooling != "cls" or self.encoder == "transformer", "model.pooling",
               "'cls' needs model.encoder: transformer; allowed for RNN encoders: last, mean, attention")


@dataclass(frozen=True, kw_only=True)
class RegularizerConfig:
    variational: bool = False
    """Variational bottleneck: z ~ N(mu, sigma^2) with the reparameterisation trick and a KL term."""
    kl_weight: float = 1.0
    """Weight of the KL term once annealing is over."""
    kl_anneal_steps: int = 0
    """Steps over which the KL weight rises linearly from 0 (0: full weight from the start)."""
    free_bits: float = 0.0
    """Nats per dimension of KL that are free (not penalised), against posterior collapse."""
    sparse: Literal["none", "l1", "kl"] = "none"
    """Sparse z: an L1 penalty, or sigmoid units with a KL penalty toward the target mean activation."""
    sparse_weight: float = 1e-3
    """Weight of the sparsity penalty."""
    sparse_target: float = 0.05
    """Target mean activation rho of sigmoid units (sparse: kl)."""
    contractive_weight: float = 0.0
    """Weight of the contractive penalty ||dz/dx||_F^2 (x: the encoder's input embeddings or frames)."""
    contractive_projections: int = 1
    """Random projections in the unbiased estimate of the contractive penalty."""

    def __post_init__(self) -> None:
        for name in ("kl_weight", "free_bits", "sparse_weight", "contractive_weight"):
            _check(getattr(self, name) >= 0, f"regularize.{name}", f"must be >= 0, got {getattr(self, name)}")
        _check(self.kl_anneal_steps >= 0, "regularize.kl_anneal_steps", "must be >= 0")
        _check(0.0 < self.sparse_target < 1.0, "regularize.sparse_target", "must be in (0, 1)")
        _check(self.contractive_projections >= 1, "regularize.contractive_projections", "must be >= 1")
        _check(not (self.variational and self.sparse == "kl"), "regularize.sparse",
               "'kl' (sigmoid units) cannot be combined with regularize.variational; use l1 or none")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    seed: int = 0
    """Seed for initialisation, data order and dropout."""
    max_steps: int = 2000
    """Optimizer steps in the whole run."""
    lr: float = 2e-3
    """Peak learning rate."""
    min_lr_ratio: float = 0.05
    """Final learning rate as a fraction of the peak."""
    warmup_steps: int = 100
    """Linear warm-up steps."""
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    """Decay after warm-up."""
    weight_decay: float = 0.01
    """AdamW weight decay (not applied to biases, norms and embeddings)."""
    betas: tuple[float, float] = (0.9, 0.98)
    """AdamW betas."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this value (0 turns clipping off)."""
    grad_accum: int = 1
    """Batches accumulated per optimizer step."""
    label_smoothing: float = 0.0
    """Label smoothing of the token cross-entropy."""
    corrupted_weight: float = 1.0
    """Denoising: loss weight of target positions the noise changed, relative to unchanged ones (1: all equal)."""
    log_every: int = 10
    """Steps between lines of the metrics log."""
    eval_every: int = 500
    """Steps between held-out evaluations (0: only at the end)."""
    checkpoint_every: int = 500
    """Steps between checkpoints (one is always written at the end)."""
    keep_checkpoints: int = 2
    """How many of the newest checkpoints to keep."""
    beam_size: int = 1
    """Beam size for final reconstruction (1: greedy)."""
    max_nonfinite_steps: int = 5
    """Steps with a non-finite loss or gradient are skipped and logged; this many in a row stop the run."""
    threads: int | None = None
    """torch intra-op threads (None: torch's default)."""
    cpu_gemm: Literal["auto", "blas", "onednn"] = "auto"
    """GEMM of the CPU fp32 linear layers: torch's BLAS (MKL), oneDNN, or auto (oneDNN on non-Intel x86 CPUs with
    AVX-512, where MKL runs its AVX2 path; seqae.models.fast.linear)."""
    cpu_malloc: Literal["keep", "default"] = "keep"
    """glibc's malloc: keep freed memory in the process for the next step (fixed mmap and trim thresholds; fewer
    page faults, same peak RSS; seqae.models.fast.allocator), or leave its defaults."""
    progress: bool = True
    """Show a tqdm progress bar."""
    precision: Literal["fp32", "bf16"] = "fp32"
    """Forward and loss under bf16 autocast (weights, gradients and optimizer stay fp32), or all fp32."""

    def __post_init__(self) -> None:
        _check(self.max_steps > 0, "train.max_steps", f"must be > 0, got {self.max_steps}")
        _check(self.lr > 0, "train.lr", f"must be > 0, got {self.lr}")
        _check(0.0 <= self.min_lr_ratio <= 1.0, "train.min_lr_ratio", "must be in [0, 1]")
        _check(self.warmup_steps >= 0, "train.warmup_steps", "must be >= 0")
        _check(self.grad_accum >= 1, "train.grad_accum", "must be >= 1")
        _check(self.grad_clip >= 0, "train.grad_clip", "must be >= 0")
        _check(0.0 <= self.label_smoothing < 1.0, "train.label_smoothing", "must be in [0, 1)")
        _check(self.corrupted_weight > 0, "train.corrupted_weight", f"must be > 0, got {self.corrupted_weight}")
        _check(self.log_every > 0, "train.log_every", "must be > 0")
        _check(self.eval_every >= 0, "train.eval_every", "must be >= 0")
        _check(self.checkpoint_every > 0, "train.checkpoint_every", "must be > 0")
        _check(self.keep_checkpoints >= 1, "train.keep_checkpoints", "must be >= 1")
        _check(self.beam_size >= 1, "train.beam_size", "must be >= 1")
        _check(self.max_nonfinite_steps >= 1, "train.max_nonfinite_steps", "must be >= 1")


@dataclass(frozen=True, kw_only=True)
class Config:
    """A whole pretraining run."""

    task: Literal["text", "speech"] = "text"
    """What is autoencoded: SentencePiece token sequences (text) or feature frames (speech)."""
    data: DataConfig = field(default_factory=DataConfig)
    """Corpus and batching."""
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    """SentencePiece tokenizer (text)."""
    features: FeatureConfig = field(default_factory=FeatureConfig)
    """Audio features (speech)."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """Architecture."""
    regularize: RegularizerConfig = field(default_factory=RegularizerConfig)
    """Regularised bottlenecks: variational, sparse, contractive."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Optimisation and logging."""
    noise: tuple[NoiseEntry, ...] = ()
    """Denoising: corruptions applied in order to the encoder's input, each `{type: NAME, prob: P, ...}`; token
    noises for text, frame noises for speech (seqae.config.noise: one dataclass per type, with its defaults)."""

    def __post_init__(self) -> None:
        check_noise(self.noise, self.task)
