"""CTC speech recognition on an exported speech encoder: characters from the encoder's frame states.

Dimension letters: B batch, T feature frames, T' encoder frames (after the front end's subsampling), F feature
bins, D encoder width, L encoder layers, V classes (CTC blank + characters), N target characters in a batch.

Data: `data.train` / `data.heldout` / `data.test` are manifests (.jsonl/.csv, `seqae.data.manifest`) whose rows
have `path` and `text`. Transcripts are normalised (`normalize_transcript`: lowercase letters, apostrophe,
space). Features are the export's (its FeatureExtractor settings and CMVN statistics), cached per file. Rows
without a usable transcript, unreadable audio, utterances over `data.max_len` frames or shorter than the front
end needs, and training utterances too short for their transcript at the encoder's frame rate (CTC cannot align
them) are skipped and counted in data_stats.json.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqae.config import ConfigError
from seqae.data.batching import TokenBudgetBatcher
from seqae.data.manifest import ManifestRow, read_manifest
from seqae.data.speech import load_speech_features
from seqae.export.encoder import PretrainedEncoder
from seqae.finetune.common import freeze, init_encoder, labelled_subset
from seqae.finetune.config import FinetuneConfig
from seqae.finetune.ctc import BLANK_ID, CharVocab, ctc_greedy_decode, ctc_min_frames, error_rates, normalize_transcript
from seqae.frontend.collate import collate_frames
from seqae.frontend.features import FeatureCache
from seqae.models.fast.linear import Linear
from seqae.tasks.text import build_noise


class CtcModel(nn.Module):
    """Encoder states (the top layer, or a learned softmax-weighted sum of every layer) -> Linear(D, V)."""

    def __init__(self, *, encoder: PretrainedEncoder, num_classes: int, layer_weights: bool = False,
                 freeze_encoder: bool = False) -> None:
        super().__init__()
        self.encoder, self.frozen = encoder, freeze_encoder
        self.layer_logits = nn.Parameter(torch.zeros(encoder.num_layers)) if layer_weights else None
        self.head = Linear(encoder.output_dim, num_classes)
        if freeze_encoder:
            freeze(encoder)

    def train(self, mode: bool = True) -> CtcModel:
        super().train(mode)
        if self.frozen:
            self.encoder.eval()  # a frozen encoder runs as it will at test time: no dropout
        return self

    def layer_mixture(self) -> Tensor | None:
        """[L] the softmax weights of the encoder layers (None without layer_weights)."""
        return None if self.layer_logits is None else torch.softmax(self.layer_logits, dim=0)

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """lengths: [B] feature frames -> [B] output frames (the front end's subsampling)."""
        return self.encoder.encoder.frontend.output_lengths(lengths)

    def forward(self, frames: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """frames: [B, T, F] normalised features, lengths: [B] -> log_probs [B, T', V], out_lengths [B]."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            enc = self.encoder.encode_inputs(frames, lengths)
        if self.layer_logits is None:
            h = enc.states  # (B, T', D)
        else:
            widths = {layer.shape[-1] for layer in enc.layers}
            if widths != {self.head.in_features}:
                raise ValueError(f"layer_weights needs every encoder layer {self.head.in_features} wide, got {widths}")
            stacked = torch.stack(enc.layers, dim=0)  # (L, B, T', D)
            h = (self.layer_mixture()[:, None, None, None] * stacked).sum(0)  # (B, T', D)
        return F.log_softmax(self.head(h).float(), dim=-1), enc.lengths

    @staticmethod
    def ctc_loss(log_probs: Tensor, out_lengths: Tensor, targets: Tensor, target_lengths: Tensor, *,
                 zero_infinity: bool = False) -> Tensor:
        """log_probs: [B, T', V], targets: [N] (concatenated), lengths [B] -> CTC loss per target character."""
        total = F.ctc_loss(log_probs.transpose(0, 1), targets, out_lengths, target_lengths, blank=BLANK_ID,
                           reduction="sum", zero_infinity=zero_infinity)  # log_probs as (T', B, V)
        return total / target_lengths.sum().clamp(min=1)


@dataclass
class AsrData:
    train: list[Tensor]
    """Normalised features [T_i, F] of the labelled training utterances."""
    train_text: list[str]
    eval: dict[str, tuple[list[Tensor], list[str]]]
    """split -> (features, normalised transcripts) of heldout / test."""
    stats: dict[str, Any]


def _rows(source: str, key: str, stats: dict[str, Any]) -> tuple[list[ManifestRow], list[str]]:
    """Manifest rows with a usable transcript, and their normalised transcripts; the others are counted."""
    if Path(source).suffix.lower() not in (".jsonl", ".json", ".csv"):
        raise ConfigError(f"{key}: {source} must be a manifest (.jsonl/.json/.csv with path and text columns)")
    try:
        rows = read_manifest(source)
    except ValueError as err:
        raise ConfigError(f"{key}: {err}") from None
    kept, texts, no_text = [], [], []
    for row in rows:
        text = normalize_transcript(row.text or "")
        if text:
            kept.append(row)
            texts.append(text)
        else:
            no_text.append(str(row.path))
    stats.update(rows=len(rows), no_transcript=len(no_text), no_transcript_files=no_text[:20])
    return kept, texts


class AsrTask:
    """CTC fine-tuning of a speech encoder on labelled utterances (a `label_fraction` subset of data.train).

    A `seqae.tasks.Task`: the training loop of `seqae.train` drives it.
    """

    stream = None  # the labelled set is held in memory

    def __init__(self, config: FinetuneConfig, run_dir: Path) -> None:
        self.config, self.run_dir = config, Path(run_dir)
        encoder = init_encoder(config, kind="speech")
        self.data = self._load(encoder)
        self.vocab = self._vocab(self.data.train_text)
        self.targets = [self.vocab.encode(t) for t in self.data.train_text]
        self.model = CtcModel(encoder=encoder, num_classes=self.vocab.num_classes,
                              layer_weights=config.layer_weights, freeze_encoder=config.freeze_encoder)
        self.noise = build_noise(config.noise, "frames")
        self._drop_unalignable()

    def _features(self, encoder: PretrainedEncoder, rows: list[ManifestRow], texts: list[str], stats: dict
                  ) -> tuple[list[Tensor], list[str]]:
        d = self.config.data
        cache = FeatureCache(d.feature_cache or self.run_dir / "features", encoder.feature_extractor.settings())
        feats, kept, report = load_speech_features(rows, encoder.feature_extractor, cache=cache, strict=d.strict)
        text_of = {id(r): t for r, t in zip(rows, texts)}
        out, out_text, long_files, short_files = [], [], [], []
        for x, row in zip(feats, kept):
            if d.max_len is not None and x.shape[0] > d.max_len:
                long_files.append(str(row.path))
            elif x.shape[0] < encoder.encoder.frontend.min_frames:
                short_files.append(str(row.path))
            else:
                out.append(encoder.cmvn.normalize(x) if encoder.cmvn is not None else x)
                out_text.append(text_of[id(row)])
        stats.update(unreadable=report.num_skipped, unreadable_files=[f"{p}: {r}" for p, r in report.skipped[:20]],
                     overlong=len(long_files), overlong_files=long_files[:20], too_short=len(short_files),
                     too_short_files=short_files[:20], utterances=len(out))
        return out, out_text

    def _load(self, encoder: PretrainedEncoder) -> AsrData:
        d, stats = self.config.data, {"max_len": self.config.data.max_len}
        train_stats: dict[str, Any] = {}
        rows, texts = _rows(d.train, "data.train", train_stats)
        if not rows:
            raise ConfigError(f"data.train: no row of {d.train} has a usable transcript")
        subset = labelled_subset(len(rows), self.config.label_fraction, self.config.train.seed)
        train_stats.update(label_fraction=self.config.label_fraction, labelled=len(subset))
        train, train_text = self._features(encoder, [rows[i] for i in subset], [texts[i] for i in subset],
                                           train_stats)
        stats["train"] = train_stats
        evals = {}
        for split, source in (("heldout", d.heldout), ("test", d.test)):
            if source is not None:
                stats[split] = {}
                split_rows, split_texts = _rows(source, f"data.{split}", stats[split])
                evals[split] = self._features(encoder, split_rows, split_texts, stats[split])
        if not train:
            raise ConfigError(f"data.train: no usable labelled utterance (see {self.run_dir / 'data_stats.json'})")
        return AsrData(train=train, train_text=train_text, eval=evals, stats=stats)

    def _vocab(self, texts: list[str]) -> CharVocab:
        """The characters of the labelled transcripts, stored in <run_dir>/characters.json (checked on resume)."""
        vocab = CharVocab.from_transcripts(texts)
        path = self.run_dir / "characters.json"
        if path.is_file() and tuple(json.loads(path.read_text())["chars"]) != vocab.chars:
            raise ConfigError(f"{path}: the run was started with other characters; use a new run directory")
        path.write_text(json.dumps({"blank": BLANK_ID, "chars": list(vocab.chars)}) + "\n")
        self.data.stats["characters"] = "".join(vocab.chars)
        return vocab

    def _drop_unalignable(self) -> None:
        """Skip (and count) training utterances with fewer output frames than their transcript needs."""
        out_lengths = self.model.output_lengths(torch.tensor([x.shape[0] for x in self.data.train]))
        keep = [i for i, (n, y) in enumerate(zip(out_lengths.tolist(), self.targets)) if n >= ctc_min_frames(y)]
        dropped = len(self.targets) - len(keep)
        self.data.stats["train"]["unalignable"] = dropped
        if not keep:
            raise ConfigError("data.train: every labelled utterance is too short for its transcript at the "
                              "encoder's frame rate (CTC needs one output frame per character)")
        self.data.train = [self.data.train[i] for i in keep]
        self.data.train_text = [self.data.train_text[i] for i in keep]
        self.targets = [self.targets[i] for i in keep]
        self.data.stats["train"]["used"] = len(keep)

    def summary(self) -> str:
        s = self.data.stats["train"]
        evals = ", ".join(f"{len(f)} {split}" for split, (f, _) in self.data.eval.items()) or "no evaluation data"
        noise = f"; noise: {self.noise.describe()}" if self.noise is not None else ""
        return (f"data: {len(self.data.train)} labelled train utterances ({s['labelled']} drawn of {s['rows']} "
                f"with transcripts, label_fraction {self.config.label_fraction:g}; {s['unalignable']} too short for "
                f"CTC); {evals}; {self.vocab.num_classes - 1} characters + blank{noise}")

    def train_lengths(self) -> list[int]:
        return [x.shape[0] for x in self.data.train]

    def batch(self, indices: list[int], epoch: int) -> dict[str, Tensor]:
        """frames [B, T, F] (with the config's noise), lengths [B], targets [N] (concatenated characters),
        target_lengths [B]."""
        inputs = [self.data.train[i] for i in indices]
        if self.noise is not None:
            seed = self.config.train.seed
            inputs = [self.noise(x, seed=seed, epoch=epoch, index=i)[0] for x, i in zip(inputs, indices)]
        frames, lengths = collate_frames(inputs)
        targets = torch.tensor([c for i in indices for c in self.targets[i]], dtype=torch.long)
        target_lengths = torch.tensor([len(self.targets[i]) for i in indices], dtype=torch.long)
        return {"frames": frames, "lengths": lengths, "targets": targets, "target_lengths": target_lengths}

    def loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        log_probs, out_lengths = self.model(batch["frames"], batch["lengths"])
        loss = self.model.ctc_loss(log_probs, out_lengths, batch["targets"], batch["target_lengths"])
        return loss, {"ctc": float(loss.detach()), "tokens": int(batch["lengths"].sum())}

    @torch.no_grad()
    def transcribe(self, features: list[Tensor]) -> tuple[list[str], float]:
        """Greedy CTC transcripts of normalised features [T_i, F], in order, and the mean blank posterior."""
        was_training = self.model.training
        self.model.eval()
        out: list[str] = [""] * len(features)
        blank_sum, frames = 0.0, 0
        batcher = TokenBudgetBatcher([x.shape[0] for x in features], max_tokens=self.config.data.max_tokens,
                                     shuffle=False)
        for idx in batcher.batches(0):
            log_probs, lengths = self.model(*collate_frames([features[i] for i in idx]))
            for i, labels in zip(idx, ctc_greedy_decode(log_probs, lengths)):
                out[i] = self.vocab.decode(labels)
            mask = torch.arange(log_probs.shape[1])[None, :] < lengths[:, None]  # (B, T')
            blank_sum += float(log_probs[..., BLANK_ID].exp()[mask].sum())
            frames += int(lengths.sum())
        self.model.train(was_training)
        return out, blank_sum / max(frames, 1)

    def _score(self, features: list[Tensor], references: list[str]) -> dict[str, Any]:
        hypotheses, blank = self.transcribe(features)
        result = {**error_rates(references, hypotheses), "blank_posterior": blank}
        result["examples"] = [{"ref": r, "hyp": h} for r, h in zip(references[:3], hypotheses[:3])]
        return result

    def evaluate(self, limit: int | None = None) -> dict[str, dict[str, Any]]:
        """WER/CER of greedy decoding on the labelled training utterances and held-out data (the first `limit`
        of each); the test split only in the final evaluation (limit None)."""
        result = {"train": self._score(self.data.train[:limit], self.data.train_text[:limit])}
        for split, (feats, texts) in self.data.eval.items():
            if split != "test" or limit is None:
                result[split] = self._score(feats[:limit], texts[:limit])
        return result

    def final_metrics(self) -> dict[str, Any]:
        result = self.evaluate()
        metrics: dict[str, Any] = {"init": "pretrained" if self.config.pretrained else "scratch",
                                   "label_fraction": self.config.label_fraction,
                                   "labelled_utterances": len(self.data.train)}
        for split, r in result.items():
            metrics.update({f"{split}_wer": r["wer"], f"{split}_cer": r["cer"], f"{split}_utterances": r["utterances"],
                            f"{split}_examples": r["examples"]})
        mixture = self.model.layer_mixture()
        if mixture is not None:
            metrics["layer_weights"] = [round(w, 4) for w in mixture.detach().tolist()]
        return metrics
