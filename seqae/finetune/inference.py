"""Using a fine-tuned run: `load_translation(run_dir)` -> `TranslationRun`, whose `translate(sentences)` gives the
translations (`seqae translate RUN "sentence"`), and `load_recogniser(run_dir)` -> `RecogniserRun`, whose
`transcribe(audio_files)` gives greedy CTC transcripts (`seqae transcribe RUN a.wav`).

A run is rebuilt from its config.yaml, its newest checkpoint and its target_tokenizer.model (translation) or
characters.json (recognition); the export its config names as the architecture (the encoder's shapes and front
end, and with `decoder_architecture` the decoder's shapes) must still be where it was; no training data is read.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
import yaml

from seqae.checkpoint import CheckpointError, load_latest, load_run_weights
from seqae.config import ConfigError, load_config_dict
from seqae.data.batching import TokenBudgetBatcher
from seqae.export.decoder import load_decoder
from seqae.export.encoder import ExportError
from seqae.finetune.asr import CtcModel
from seqae.finetune.common import init_encoder
from seqae.finetune.config import FinetuneConfig
from seqae.finetune.ctc import CharVocab, ctc_greedy_decode
from seqae.finetune.translate import Translator, build_target_decoder, translate_ids
from seqae.frontend.audio import load_audio
from seqae.frontend.tokenizer import BOS_ID, EOS_ID, Tokenizer


@dataclass
class TranslationRun:
    run_dir: Path
    config: FinetuneConfig
    model: Translator
    source_tokenizer: Tokenizer
    target_tokenizer: Tokenizer
    max_len: int
    """Longest source in tokens, bos and eos included (longer sentences are cut, as in evaluation)."""
    step: int

    def translate(self, sentences: Sequence[str], *, beam_size: int | None = None) -> list[str]:
        """Source sentences -> translations, in order (beam search of `beam_size`; default the run's
        train.beam_size, 1: greedy)."""
        pieces = self.source_tokenizer.encode_batch(list(sentences))
        src = [[BOS_ID, *p[: self.max_len - 2], EOS_ID] for p in pieces]
        beam = self.config.train.beam_size if beam_size is None else beam_size
        return translate_ids(self.model, src, self.target_tokenizer, max_tokens=self.config.data.max_tokens,
                             max_len=self.config.data.max_target_len, beam_size=beam)


def read_finetune_config(run_dir: Path) -> FinetuneConfig:
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: not a fine-tuning run directory (no config.yaml)")
    try:
        return load_config_dict(yaml.safe_load(path.read_text(encoding="utf-8")), FinetuneConfig)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err} (not a fine-tuning run?)") from None


def _open(path: str | Path, task: str) -> tuple[Path, FinetuneConfig, dict]:
    """(run directory, config, newest checkpoint) of a fine-tuned `task` run."""
    run_dir = Path(path)
    config = read_finetune_config(run_dir)
    if config.task != task:
        verb = {"translate": "translation", "asr": "transcription"}[task]
        raise ConfigError(f"{run_dir}: a fine-tuned {config.task} run; {verb} needs `task: {task}`")
    ckpt = load_latest(run_dir)
    if ckpt is None:
        raise CheckpointError(f"{run_dir}: no usable checkpoint in {run_dir / 'checkpoints'}")
    return run_dir, config, ckpt


def load_translation(path: str | Path) -> TranslationRun:
    """A fine-tuned translation run (`seqae finetune translate`), ready to translate. Raises FileNotFoundError,
    ConfigError or CheckpointError naming the file."""
    run_dir, config, ckpt = _open(path, "translate")
    tokenizer_path = run_dir / "target_tokenizer.model"
    if not tokenizer_path.is_file():
        raise FileNotFoundError(f"{tokenizer_path}: missing (the run's target tokenizer)")
    target_tokenizer = Tokenizer.load(tokenizer_path)
    # the shapes only: the checkpoint holds every weight
    shapes = dataclasses.replace(config, encoder=None, architecture=config.encoder_spec)
    encoder = init_encoder(shapes, kind="text")
    if config.decoder_spec is not None:
        try:
            target, _ = load_decoder(config.decoder_spec, weights=False)
        except (FileNotFoundError, ExportError) as err:
            raise ConfigError(f"{run_dir / 'config.yaml'}: decoder_architecture: {err}") from None
    else:
        target = build_target_decoder(config.decoder, target_tokenizer.vocab_size)
    model = Translator(encoder=encoder, target=target)
    load_run_weights(model, ckpt, run_dir)
    model.eval()
    max_len = config.data.max_len or encoder.config["frontend"]["max_len"]
    return TranslationRun(run_dir=run_dir, config=config, model=model.eval(), source_tokenizer=encoder.tokenizer,
                          target_tokenizer=target_tokenizer, max_len=max_len, step=ckpt["step"])


@dataclass
class RecogniserRun:
    run_dir: Path
    config: FinetuneConfig
    model: CtcModel
    vocab: CharVocab
    step: int

    def transcribe(self, audio: Sequence[str | os.PathLike[str]] | Sequence[torch.Tensor], *,
                   sample_rate: int | None = None) -> list[str]:
        """Audio files (read with soundfile, resampled), or waveforms [S] at `sample_rate` -> greedy CTC
        transcripts, in order. A file that cannot be read raises `seqae.frontend.audio.AudioError` naming it."""
        encoder = self.model.encoder
        rate = encoder.feature_extractor.sample_rate
        waves = [torch.as_tensor(w, dtype=torch.float32) for w in audio] if sample_rate is not None else [
            load_audio(p, sample_rate=rate) for p in audio]
        hop = encoder.feature_extractor.hop_length
        out: list[str] = [""] * len(waves)
        batcher = TokenBudgetBatcher([len(w) // hop + 1 for w in waves], max_tokens=self.config.data.max_tokens,
                                     shuffle=False)
        with torch.no_grad():
            for idx in batcher.batches(0):
                frames, lengths = encoder.prepare([waves[i] for i in idx], sample_rate=sample_rate or rate)
                log_probs, out_lengths = self.model(frames, lengths)
                for i, labels in zip(idx, ctc_greedy_decode(log_probs, out_lengths)):
                    out[i] = self.vocab.decode(labels)
        return out


def load_recogniser(path: str | Path) -> RecogniserRun:
    """A fine-tuned CTC run (`seqae finetune asr`), ready to transcribe. Raises FileNotFoundError, ConfigError or
    CheckpointError naming the file."""
    run_dir, config, ckpt = _open(path, "asr")
    chars_path = run_dir / "characters.json"
    if not chars_path.is_file():
        raise FileNotFoundError(f"{chars_path}: missing (the run's characters)")
    vocab = CharVocab(tuple(json.loads(chars_path.read_text(encoding="utf-8"))["chars"]))
    encoder = init_encoder(dataclasses.replace(config, encoder=None, architecture=config.encoder_spec), kind="speech")
    model = CtcModel(encoder=encoder, num_classes=vocab.num_classes, layer_weights=config.layer_weights)
    load_run_weights(model, ckpt, run_dir)
    model.eval()
    return RecogniserRun(run_dir=run_dir, config=config, model=model, vocab=vocab, step=ckpt["step"])
