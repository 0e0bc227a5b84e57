"""The text task: SentencePiece sequences in, the same (clean) sequences out.

A task owns its data and model and tells the training loop how to batch, score and evaluate them; the loop in
`seqae.train` is the same for every task.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from difflib import SequenceMatcher
from itertools import islice
from pathlib import Path
from typing import Any

import torch

from seqae.config import Config, ConfigError
from seqae.data.stream import StreamBatcher
from seqae.data.text import TextStream, encode_lines, load_text_lines
from seqae.eval.tokens import evaluate_tokens
from seqae.frontend.collate import collate_tokens
from seqae.frontend.tokenizer import Tokenizer, train_tokenizer
from seqae.models.builder import build_model
from seqae.noise.pipeline import NoisePipeline


@dataclass
class TextData:
    train: list[list[int]]
    heldout: list[list[int]]
    stats: dict[str, Any]


def prepare_text(config: Config, run_dir: Path) -> tuple[Tokenizer, TextData]:
    """Read the corpora, train (or load) the tokenizer, encode; every skip is counted in the stats."""
    d = config.data
    read = dict(text_column=d.text_column, hub_config=d.hub_config, encoding_errors=d.encoding_errors)
    train_lines, train_stats = load_text_lines(d.train, split=d.train_split, **read)
    if d.max_train_sentences is not None:
        train_lines = train_lines[: d.max_train_sentences]
    if d.heldout is None:
        cut = max(1, round(len(train_lines) * d.heldout_fraction))
        train_lines, heldout_lines, heldout_stats = train_lines[cut:], train_lines[:cut], None
    else:
        heldout_lines, heldout_stats = load_text_lines(d.heldout, split=d.heldout_split, **read)
    tokenizer = _tokenizer(config, run_dir, train_lines[: config.tokenizer.train_sentences])
    train, train_enc = encode_lines(train_lines, tokenizer, max_len=d.max_len, overlong=d.overlong)
    heldout, heldout_enc = encode_lines(heldout_lines, tokenizer, max_len=d.max_len, overlong=d.overlong)
    stats = {"train_read": train_stats.as_dict(), "train_encode": train_enc.as_dict(),
             "heldout_read": heldout_stats.as_dict() if heldout_stats else "split from train",
             "heldout_encode": heldout_enc.as_dict(), "train_sequences": len(train), "heldout_sequences": len(heldout)}
    if not train:
        raise ConfigError(f"data.train: no usable sentences in {d.train}")
    return tokenizer, TextData(train=train, heldout=heldout, stats=stats)


class TextStreamData:
    """A streamed training corpus (`data.streaming`): batches come from `batcher`; `train` holds only the first
    `data.eval_sentences` sequences of the stream (for evaluation); `counts` what was read since the last call of
    `take_counts`."""

    def __init__(self, config: Config, run_dir: Path) -> None:
        d = config.data
        if d.heldout is None:
            raise ConfigError("data.heldout: a streamed corpus (data.streaming: true) needs a held-out corpus; "
                              "splitting a fraction off a stream is not supported")
        read = dict(text_column=d.text_column, hub_config=d.hub_config, encoding_errors=d.encoding_errors)
        self.stream = TextStream(d.train, split=d.train_split, seed=config.train.seed, **read)
        heldout_lines, heldout_stats = load_text_lines(d.heldout, split=d.heldout_split, **read)
        self.tokenizer = _tokenizer(config, run_dir, islice(self.stream.lines(), config.tokenizer.train_sentences))
        self.encode_kw = dict(max_len=d.max_len, overlong=d.overlong)
        self.train, _ = encode_lines(list(islice(self.stream.lines(), d.eval_sentences)), self.tokenizer,
                                     **self.encode_kw)
        self.heldout, heldout_enc = encode_lines(heldout_lines, self.tokenizer, **self.encode_kw)
        if not self.train:
            raise ConfigError(f"data.train: no usable sentences in {d.train}")
        self.stats = {"train": "streamed (counts logged at the end of each epoch)", "heldout_read": heldout_stats.as_dict(),
                      "heldout_encode": heldout_enc.as_dict(), "heldout_sequences": len(self.heldout)}
        self._counts: dict[str, int] = {}
        self.take_counts()
        self.max_train = d.max_train_sentences
        self.batcher = StreamBatcher(self._rows, self._encode, length=len, max_tokens=d.max_tokens,
                                     max_sentences=d.max_sentences, buffer_size=d.shuffle_buffer,
                                     pool_size=d.pool_size, seed=config.train.seed)

    def _rows(self, epoch: int):
        lines = self.stream.lines(epoch)
        return islice(lines, self.max_train) if self.max_train is not None else lines

    def _encode(self, rows: list[tuple[int, str]]) -> list[tuple[int, list[int]]]:
        seqs, stats = encode_lines([line for _, line in rows], self.tokenizer, **self.encode_kw)
        for key in ("kept", "truncated", "overlong_skipped", "empty_skipped"):
            name = "encode_empty_skipped" if key == "empty_skipped" else key
            self._counts[name] = self._counts.get(name, 0) + getattr(stats, key)
        return [(rows[k][0], seq) for k, seq in zip(stats.source_index, seqs)]

    def take_counts(self) -> dict[str, int]:
        """Rows read, skipped and encoded since the last call."""
        counts = {**self.stream.counts, **self._counts}
        self.stream.counts = dict.fromkeys(self.stream.counts, 0)
        self._counts = {}
        return counts


def _tokenizer(config: Config, run_dir: Path, lines: Iterable[str]) -> Tokenizer:
    path = run_dir / "tokenizer.model"
    if path.is_file():
        return Tokenizer.load(path)
    if config.tokenizer.path is not None:
        tmp = path.with_name(f".{path.name}.tmp")  # atomic: a killed run never leaves half a model
        tmp.write_bytes(Tokenizer.load(config.tokenizer.path).serialized())
        tmp.replace(path)
        return Tokenizer.load(path)
    return train_tokenizer(lines, run_dir / "tokenizer", vocab_size=config.tokenizer.vocab_size,
                           model_type=config.tokenizer.model_type,
                           normalization=config.tokenizer.normalization, seed=config.train.seed)


def build_noise(specs, kind: str) -> NoisePipeline | None:
    """The noise pipeline of a config's `noise:` list (None when it lists no noise). The list is validated by
    seqae.config (a config's is already): a bad entry is a ConfigError naming it, e.g. `noise[0].ratio: ...`."""
    if not specs:
        return None
    return NoisePipeline.from_config(specs, kind=kind)


def corrupted_positions(inputs: list[int], target: list[int]) -> list[bool]:
    """For each target token, whether the noise changed it: not in a block the input still shares (difflib
    alignment), so masked, deleted, replaced and moved tokens count whatever the noise did to the length."""
    kept = [False] * len(target)
    for block in SequenceMatcher(a=inputs, b=target, autojunk=False).get_matching_blocks():
        kept[block.b: block.b + block.size] = [True] * block.size
    return [not k for k in kept]


def corrupted_weights(pairs: list[tuple[list[int], list[int]]], width: int, weight: float) -> torch.Tensor:
    """Loss weights [B, width] for target positions 1.. (bos is never a target): `weight` where corrupted, else 1."""
    out = torch.ones(len(pairs), width)
    for b, (inputs, target) in enumerate(pairs):
        changed = torch.tensor(corrupted_positions(inputs, target)[1:], dtype=torch.bool)
        out[b, : len(changed)][changed] = weight
    return out


class TextTask:
    """Token autoencoder on a text corpus, denoising when the config lists noises."""

    def __init__(self, config: Config, run_dir: Path) -> None:
        self.config = config
        self.stream: StreamBatcher | None = None
        if config.data.streaming:
            self.data = TextStreamData(config, run_dir)
            self.tokenizer, self.stream = self.data.tokenizer, self.data.batcher
        else:
            self.tokenizer, self.data = prepare_text(config, run_dir)
        self.noise = build_noise(config.noise, "tokens")
        self.model = build_model(config, vocab_size=self.tokenizer.vocab_size)
        self._noise_context = {"vocab_size": self.tokenizer.vocab_size, "word_start": self.tokenizer.word_start_mask()}

    def summary(self) -> str:
        noise = f"; noise: {self.noise.describe()}" if self.noise else ""
        train = f"streamed {self.config.data.train}" if self.stream else f"{len(self.data.train)} train"
        return f"data: {train} / {len(self.data.heldout)} held-out sequences; vocab {self.tokenizer.vocab_size}{noise}"

    def train_lengths(self) -> list[int]:
        return [len(s) for s in self.data.train]

    def corrupt(self, seq: list[int], *, epoch: int, index: int) -> tuple[list[int], list[int]]:
        """(input, target) for one training sequence: the noise of (seed, epoch, index), or the clean pair."""
        if self.noise is None:
            return seq, seq
        inputs, targets = self.noise(torch.tensor(seq), seed=self.config.train.seed, epoch=epoch, index=index,
                                     **self._noise_context)
        return inputs.tolist(), targets.tolist()

    def batch(self, indices: list[int], epoch: int) -> dict[str, torch.Tensor]:
        return self.batch_examples([(i, self.data.train[i]) for i in indices], epoch)

    def batch_examples(self, examples: list[tuple[int, list[int]]], epoch: int) -> dict[str, torch.Tensor]:
        """Tensors for `(index, sequence)` examples; the index seeds the example's noise."""
        pairs = [self.corrupt(seq, epoch=epoch, index=i) for i, seq in examples]
        src, src_lengths = collate_tokens([p[0] for p in pairs], self.tokenizer.pad_id)
        tgt, _ = collate_tokens([p[1] for p in pairs], self.tokenizer.pad_id)
        batch = {"src": src, "src_lengths": src_lengths, "tgt": tgt}
        if self.noise is not None and self.config.train.corrupted_weight != 1.0:
            batch["weights"] = corrupted_weights(pairs, tgt.shape[1] - 1, self.config.train.corrupted_weight)
        return batch

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        out = self.model(batch["src"], batch["src_lengths"], batch["tgt"])
        return self.model.loss(out, label_smoothing=self.config.train.label_smoothing, weights=batch.get("weights"))

    def evaluate(self, limit: int | None = None) -> dict[str, dict[str, Any]]:
        """Reconstruction of held-out and training sequences (the first `limit` of each)."""
        kw = {"max_len": self.config.data.max_len, "beam_size": self.config.train.beam_size if limit is None else 1}
        return {split: evaluate_tokens(self.model, seqs[:limit], **kw)
                for split, seqs in (("heldout", self.data.heldout), ("train", self.data.train))}

    def train_sample(self) -> list[list[int]]:
        """The training sequences the final evaluation decodes: all, or a fixed sample of data.train_eval_sentences
        (drawn with train.seed, in corpus order)."""
        n, train = self.config.data.train_eval_sentences, self.data.train
        if n is None or n >= len(train):
            return train
        picked = torch.randperm(len(train), generator=torch.Generator().manual_seed(self.config.train.seed))[:n]
        return [train[i] for i in sorted(picked.tolist())]

    def final_metrics(self) -> dict[str, Any]:
        kw = {"max_len": self.config.data.max_len, "beam_size": self.config.train.beam_size}
        heldout = evaluate_tokens(self.model, self.data.heldout, **kw)
        sample = self.train_sample()
        train = evaluate_tokens(self.model, sample, **kw)
        metrics = {"train_exact_match": train["exact_match"], "train_token_accuracy": train["token_accuracy"],
                   "heldout_exact_match": heldout["exact_match"], "heldout_token_accuracy": heldout["token_accuracy"],
                   "heldout_exact_match_le20": heldout["exact_match_le20"],
                   "heldout_tf_token_accuracy": heldout["tf_token_accuracy"], "heldout_loss": heldout["loss"],
                   "train_sequences": len(self.data.train), "train_eval_sequences": len(sample),
                   "heldout_sequences": len(self.data.heldout)}
        if self.stream is not None:
            metrics["train_sequences"] = f"the first {len(self.data.train)} of the stream"
        if self.noise is not None:
            denoise = self.evaluate_denoising(self.data.heldout)
            metrics.update({"heldout_denoise_exact_match": denoise["exact_match"],
                            "heldout_denoise_token_accuracy": denoise["token_accuracy"]})
        return metrics

    def evaluate_denoising(self, sequences: list[list[int]], noise: NoisePipeline | None = None) -> dict[str, Any]:
        """Rebuild the clean sequences from corrupted ones (the noise of epoch 0; default: the training noise)."""
        noise = noise or self.noise
        sources = [noise(torch.tensor(s), seed=self.config.train.seed, epoch=0, index=i, **self._noise_context)[0]
                   .tolist() for i, s in enumerate(sequences)]
        return evaluate_tokens(self.model, sequences, sources=sources, max_len=self.config.data.max_len)
