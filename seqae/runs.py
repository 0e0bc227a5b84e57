"""Open a trained run, text or speech: the one loader behind the CLI verbs, the report, the sweep and export.

`load_run(path)` reads config.yaml, the front end (tokenizer.model, or the feature settings and cmvn.json) and the
newest usable checkpoint, builds the model with `seqae.models.builder.build_model`, and returns a `TextRun` or a
`SpeechRun`. No training data is read. A recipe's output folder (config.yaml in one subfolder, e.g. `runs/main`
holding `runs/main/run`) is accepted too.

Dimension letters: N items, T time (tokens or frames), F feature bins, Z bottleneck width.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
import yaml

from seqae.checkpoint import CheckpointError, load_latest, load_run_weights
from seqae.config import Config, ConfigError, load_config_dict
from seqae.data.manifest import ManifestRow, SkipReport
from seqae.data.speech import MANIFEST_SUFFIXES, load_speech_features, read_rows, read_splits
from seqae.eval.tokens import generate_from_z
from seqae.frontend.audio import AudioError
from seqae.frontend.collate import collate_tokens
from seqae.frontend.features import Cmvn, FeatureCache, FeatureExtractor
from seqae.frontend.tokenizer import Tokenizer
from seqae.models.autoencoder import TokenAutoencoder
from seqae.models.builder import build_model
from seqae.models.frames import FrameAutoencoder
from seqae.tasks.speech import embed_frames, generate_frames


def find_run_dir(path: str | Path) -> Path:
    """`path` if it holds config.yaml, else its one subfolder that does (a recipe's output folder)."""
    path = Path(path)
    if (path / "config.yaml").is_file():
        return path
    inner = sorted(p.parent for p in path.glob("*/config.yaml")) if path.is_dir() else []
    if len(inner) == 1:
        return inner[0]
    hint = f"; it holds several runs, name one: {', '.join(str(p) for p in inner)}" if inner else ""
    raise FileNotFoundError(f"{path}: not a seqae run directory (no config.yaml){hint}")


def read_run_config(run_dir: str | Path) -> Config:
    """The config a run was trained with (its config.yaml)."""
    path = find_run_dir(run_dir) / "config.yaml"
    try:
        return load_config_dict(yaml.safe_load(path.read_text(encoding="utf-8")))
    except ConfigError as err:
        raise ConfigError(f"{path}: {err} (not a pretraining run? fine-tuning runs are read by seqae finetune)") \
            from None


@dataclass
class TextRun:
    """A token autoencoder and its tokenizer. `model` is in eval mode."""

    run_dir: Path
    config: Config
    model: TokenAutoencoder
    step: int
    tokenizer: Tokenizer
    task: str = field(default="text", init=False)

    def batch(self, sentences: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Sentences -> tokens [N, T] (`[bos, ..., eos]`, cut to data.max_len as in training) and lengths [N]."""
        keep, tok = self.config.data.max_len - 2, self.tokenizer
        return collate_tokens([[tok.bos_id, *ids[:keep], tok.eos_id] for ids in tok.encode_batch(list(sentences))],
                              tok.pad_id)

    @torch.no_grad()
    def encode(self, sentences: Sequence[str], *, batch_size: int = 256) -> torch.Tensor:
        """Sentences -> z [N, Z] (sentences longer than data.max_len are truncated, as in training)."""
        self.model.eval()
        out = [self.model.encode(*self.batch(sentences[i: i + batch_size]))[0]
               for i in range(0, len(sentences), batch_size)]
        return torch.cat(out) if out else torch.zeros(0, self.config.model.bottleneck_dim)

    @torch.no_grad()
    def reconstruct(self, sentences: Sequence[str], *, beam_size: int = 1, batch_size: int = 256) -> list[str]:
        """Encode each sentence to z and decode it back to text."""
        return self.decode(self.encode(sentences, batch_size=batch_size), beam_size=beam_size)

    @torch.no_grad()
    def generate_ids(self, z: torch.Tensor, *, beam_size: int = 1, batch_size: int = 256) -> list[list[int]]:
        """z [N, Z] -> N token sequences `[bos, ..., eos]`, greedy (or beam search), at most data.max_len tokens."""
        self.model.eval()
        out = []
        for i in range(0, z.shape[0], batch_size):
            ids, lengths = generate_from_z(self.model, z[i: i + batch_size].float(), max_len=self.config.data.max_len,
                                           beam_size=beam_size)
            out += [row[:n].tolist() for row, n in zip(ids, lengths)]
        return out

    def decode(self, z: torch.Tensor, *, beam_size: int = 1) -> list[str]:
        """z [N, Z] (e.g. stored by `seqae encode`) -> N sentences."""
        return [self.tokenizer.decode(ids) for ids in self.generate_ids(z, beam_size=beam_size)]

    @torch.no_grad()
    def score(self, z: torch.Tensor, sentences: Sequence[str], *, batch_size: int = 128) -> torch.Tensor:
        """Mean token negative log-likelihood [N] of sentences[i] under the decoder given z[i] (nats per target
        token, eos counted; sentences cut to data.max_len as in training). Lower: the text fits z better."""
        if z.dim() != 2 or z.shape[0] != len(sentences):
            raise ValueError(f"score: z must be [N, Z] with one row per sentence, got {tuple(z.shape)} for "
                             f"{len(sentences)} sentences")
        self.model.eval()
        out, pad = [], self.model.pad_id
        for i in range(0, len(sentences), batch_size):
            tokens, _ = self.batch(sentences[i: i + batch_size])
            logits = self.model.decode(z[i: i + batch_size].float(), tokens)  # (B, T-1, V)
            targets = tokens[:, 1:]  # (B, T-1)
            nll = F.cross_entropy(logits.transpose(1, 2).float(), targets, reduction="none", ignore_index=pad)
            out.append(nll.sum(1) / (targets != pad).sum(1))
        return torch.cat(out) if out else torch.zeros(0)


@dataclass
class SpeechSet:
    """Normalised features of some audio, with where each came from and what was left out or cut."""

    features: list[torch.Tensor]
    """[T_i, F] each, CMVN'd with the run's statistics."""
    rows: list[ManifestRow]
    skipped: SkipReport
    """Unreadable files, named with their reason."""
    truncated: dict[str, int | None] = field(default_factory=dict)
    """max_len (None: no cut), items cut and frames cut."""


@dataclass
class SpeechRun:
    """A frame autoencoder with its feature extractor and CMVN statistics. `model` is in eval mode."""

    run_dir: Path
    config: Config
    model: FrameAutoencoder
    step: int
    extractor: FeatureExtractor
    cmvn: Cmvn | None
    task: str = field(default="speech", init=False)

    def features(self, sources: str | Path | Sequence[str | Path | ManifestRow], *, max_len: int | None = None,
                 cache_dir: str | Path | None = None, strict: bool = False) -> SpeechSet:
        """Features of a manifest, a folder of audio or an audio file (one path), or of audio files / manifest rows
        (a list).

        Unreadable files are skipped and named (or stop with `strict`); utterances longer than `max_len` frames
        are cut to it and counted; `cache_dir` keeps computed features there (none by default).
        """
        skips, one = SkipReport(), Path(sources) if isinstance(sources, (str, Path)) else None
        if one is not None and one.is_file() and one.suffix.lower() not in MANIFEST_SUFFIXES:
            rows = [ManifestRow(path=one.absolute())]  # one audio file
        elif one is not None:
            rows = read_rows(str(one), "audio", skips)
        else:
            rows = [s if isinstance(s, ManifestRow) else ManifestRow(path=Path(s).absolute()) for s in sources]
        cache = FeatureCache(cache_dir, self.extractor.settings()) if cache_dir is not None else None
        feats, kept, report = load_speech_features(rows, self.extractor, cache=cache, strict=strict)
        skips.checked += report.checked
        skips.skipped += report.skipped
        need = self.model.min_frames
        short = {i: f"{x.shape[0]} frames; the model's front end needs {need}" for i, x in enumerate(feats)
                 if x.shape[0] < need}
        if short and strict:
            first = min(short)
            raise AudioError(kept[first].path, short[first])
        for i, reason in short.items():
            skips.add(kept[i].path, reason)
        feats = [x for i, x in enumerate(feats) if i not in short]
        kept = [r for i, r in enumerate(kept) if i not in short]
        norm = [self.cmvn.normalize(x) if self.cmvn is not None else x for x in feats]
        too_long = [x.shape[0] - max_len for x in norm if max_len is not None and x.shape[0] > max_len]
        norm = [x[:max_len] for x in norm] if max_len is not None else norm
        return SpeechSet(features=norm, rows=kept, skipped=skips,
                         truncated={"max_len": max_len, "items": len(too_long), "frames_cut": sum(too_long)})

    def encode(self, sources: str | Path | Sequence[str | Path | ManifestRow] | list[torch.Tensor]) -> torch.Tensor:
        """Audio (as for `features`, every file must be readable) or normalised features [T_i, F] -> z [N, Z]."""
        return embed_frames(self.model, self._frames(sources), self.config.data.max_tokens)[0]

    def reconstruct(self, sources, *, max_ratio: float = 2.0) -> list[torch.Tensor]:
        """Encode each utterance to z and generate its frames back from z alone: [T'_i, F] each (normalised)."""
        return generate_frames(self.model, self._frames(sources), max_ratio=max_ratio)

    def decode(self, z: torch.Tensor, *, max_frames: int) -> list[torch.Tensor]:
        """z [N, Z] -> N generated frame sequences [T'_i, F] (normalised), at most `max_frames` each."""
        self.model.eval()
        with torch.no_grad():
            frames, lengths = self.model.generate(z.float(), max_frames=max_frames)
        return [f[: int(n)] for f, n in zip(frames, lengths)]

    def heldout_rows(self) -> list[ManifestRow]:
        """The run's held-out utterances: data.heldout, or the speakers training split off data.train."""
        return read_splits(self.config.data, {"train": SkipReport(), "heldout": SkipReport()})[1]

    def _frames(self, sources) -> list[torch.Tensor]:
        if isinstance(sources, list) and sources and all(isinstance(x, torch.Tensor) for x in sources):
            return sources
        return self.features(sources, strict=True).features


Run = TextRun | SpeechRun


def load_run(path: str | Path) -> Run:
    """Load a run directory (or a recipe's output folder holding one): config, front end, newest usable checkpoint.

    Raises FileNotFoundError or CheckpointError naming the directory, ConfigError naming a bad file.
    """
    run_dir = find_run_dir(path)
    config = read_run_config(run_dir)
    ckpt = load_latest(run_dir)
    if ckpt is None:
        raise CheckpointError(f"{run_dir}: no usable checkpoint in {run_dir / 'checkpoints'}")
    if config.task == "speech":
        extractor = FeatureExtractor.from_config(config.features)
        model = build_model(config, feature_dim=extractor.feature_dim)
        run = SpeechRun(run_dir=run_dir, config=config, model=model, step=ckpt["step"], extractor=extractor,
                        cmvn=_read_cmvn(run_dir, config, extractor))
    else:
        tokenizer = Tokenizer.load(run_dir / "tokenizer.model")
        model = build_model(config, vocab_size=tokenizer.vocab_size)
        run = TextRun(run_dir=run_dir, config=config, model=model, step=ckpt["step"], tokenizer=tokenizer)
    load_run_weights(run.model, ckpt, run_dir)
    run.model.eval()
    return run


def _read_cmvn(run_dir: Path, config: Config, extractor: FeatureExtractor) -> Cmvn | None:
    if not config.features.cmvn:
        return None
    path = run_dir / "cmvn.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (the run normalises its features with it)")
    stored = json.loads(path.read_text())
    if stored.get("features") != extractor.settings():
        raise ConfigError(f"{path}: computed with features {stored.get('features')}, the run's config gives "
                          f"{extractor.settings()}")
    return Cmvn.from_dict(stored)


def require_text(run: Run, verb: str) -> TextRun:
    """`run` if it is a text run; otherwise a ConfigError saying `verb` works on text runs only."""
    if run.task != "text":
        raise ConfigError(f"{run.run_dir}: a {run.task} run; {verb} works on text runs only")
    return run
