"""The speech task: feature frames in (optionally corrupted), clean frames out (the same, or a partner's).

Dimension letters: B batch, T frames, F feature bins, Z bottleneck width.

Data: `data.train` / `data.heldout` name a manifest (.jsonl/.json/.csv) or a folder of audio files (scanned,
label = parent folder). Features come from `FeatureExtractor(config.features)`, cached per file in
`features.cache_dir` (default `<run_dir>/features`). Unusable files are skipped and counted (or stop the run
with `data.strict`); CMVN statistics of the training features are stored in `<run_dir>/cmvn.json` and reused on
resume; sequences longer than `data.max_len` frames are truncated or skipped (`data.overlong`), counted.

Targets (`data.targets`, see `TARGETS`): the clean input itself (an autoencoder), or another utterance of the same
word, which makes z keep what the two share and drop the speaker (the correspondence autoencoder of Kamper et al.,
2015): "label" pairs rows with the same label spoken by other speakers (uses labels), "neighbours" pairs each row
with its nearest rows of other speakers by cosine of downsampled frames (no labels). The partner of row i in epoch
e is drawn from (train.seed, e, i), so batches are reproducible and a resumed run sees the same pairs.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqae.checkpoint import CheckpointError, load_latest
from seqae.config import Config, ConfigError
from seqae.data.batching import TokenBudgetBatcher
from seqae.data.manifest import ManifestRow, SkipReport, read_manifest, scan_folder
from seqae.data.speech import collate_frames, load_speech_features
from seqae.data.stream import StreamBatcher
from seqae.frontend.features import Cmvn, FeatureCache, FeatureExtractor
from seqae.models.layers import lengths_to_mask
from seqae.noise.pipeline import mix_seed
from seqae.eval.speech import downsampled_frames, mean_frames, same_different_ap
from seqae.tasks.text import build_noise

MANIFEST_SUFFIXES = (".jsonl", ".json", ".csv")
TARGETS = ("self", "label", "neighbours")
NEIGHBOURS = 5


@dataclass
class SpeechData:
    train: list[torch.Tensor]
    """Normalised training features, each [T_i, F]."""
    heldout: list[torch.Tensor]
    """Normalised held-out features, each [T_i, F]."""
    train_rows: list[ManifestRow]
    heldout_rows: list[ManifestRow]
    cmvn: Cmvn | None
    stats: dict[str, Any]


def read_rows(source: str, key: str, skips: SkipReport) -> list[ManifestRow]:
    """Manifest rows of a manifest file or a folder of audio files; `key` (e.g. data.train) names errors."""
    path = Path(source)
    if path.is_dir():
        return scan_folder(path, label_from="parent", skips=skips)
    if path.suffix.lower() not in MANIFEST_SUFFIXES:
        raise ConfigError(f"{key}: {source} must be a manifest ({', '.join(MANIFEST_SUFFIXES)}) or a folder of audio")
    try:
        return read_manifest(path)
    except ValueError as err:
        raise ConfigError(f"{key}: {err}") from None


def split_by_speaker(rows: list[ManifestRow], fraction: float) -> tuple[list[ManifestRow], list[ManifestRow]]:
    """(train, heldout): the last round(fraction × speakers) speakers (at least one) by sorted id are held
    out; without speaker ids, the first round(fraction × rows) rows."""
    speakers = sorted({r.speaker for r in rows if r.speaker is not None})
    if len(speakers) >= 2 and all(r.speaker is not None for r in rows):
        held = set(speakers[-max(1, min(len(speakers) - 1, round(len(speakers) * fraction))):])
        return [r for r in rows if r.speaker not in held], [r for r in rows if r.speaker in held]
    cut = max(1, round(len(rows) * fraction))
    return rows[cut:], rows[:cut]


def read_splits(d, reports: dict[str, SkipReport]) -> tuple[list[ManifestRow], list[ManifestRow]]:
    """(train, held-out) manifest rows of a DataConfig: `data.heldout`, or speakers split off `data.train`."""
    train_rows = read_rows(d.train, "data.train", reports["train"])
    if d.heldout is None:
        return split_by_speaker(train_rows, d.heldout_fraction)
    return train_rows, read_rows(d.heldout, "data.heldout", reports["heldout"])


def _report(report: SkipReport) -> dict[str, Any]:
    return {"checked": report.checked, "skipped": report.num_skipped,
            "skipped_files": [{"file": f, "reason": r} for f, r in report.skipped]}


def _cmvn(path: Path, features: list[torch.Tensor], settings: dict[str, Any]) -> tuple[Cmvn, str]:
    """Load <run_dir>/cmvn.json (checking it was made with these feature settings) or compute and store it."""
    if path.is_file():
        stored = json.loads(path.read_text())
        if stored.get("features") != settings:
            raise ConfigError(f"{path}: CMVN statistics were computed with features {stored.get('features')}, "
                              f"the config asks for {settings}; use a new run directory")
        return Cmvn.from_dict(stored), "loaded"
    cmvn = Cmvn.compute(features)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".cmvn.", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump({**cmvn.to_dict(), "features": settings}, f)
    os.replace(tmp, path)
    return cmvn, "computed"


def _fit(features: list[torch.Tensor], rows: list[ManifestRow], max_len: int, overlong: str, min_len: int
         ) -> tuple[list[torch.Tensor], list[ManifestRow], dict[str, Any]]:
    """Truncate or skip sequences longer than max_len frames, skip those shorter than min_len (the model's
    front end gives them no frame); count both and name the skipped files."""
    out, kept, long_files, short_files = [], [], [], []
    for x, row in zip(features, rows):
        if x.shape[0] < min_len:
            short_files.append(str(row.path))
            continue
        if x.shape[0] > max_len:
            long_files.append(str(row.path))
            if overlong == "skip":
                continue
            x = x[:max_len]
        out.append(x)
        kept.append(row)
    stats = {"max_len": max_len, "overlong": len(long_files), "action": overlong, "min_len": min_len,
             "too_short": len(short_files), "too_short_files": short_files}
    if overlong == "skip":
        stats["overlong_files"] = long_files
    return out, kept, stats


def prepare_speech(config: Config, run_dir: Path, extractor: FeatureExtractor, *, min_len: int = 1) -> SpeechData:
    """Read both splits, extract (cached) features, apply CMVN and the length limits; every skip is counted."""
    d, fc = config.data, config.features
    reports = {"train": SkipReport(), "heldout": SkipReport()}
    train_rows, heldout_rows = read_splits(d, reports)
    cache = FeatureCache(fc.cache_dir or run_dir / "features", extractor.settings())
    feats, rows = {}, {}
    for split, split_rows in (("train", train_rows), ("heldout", heldout_rows)):
        x, kept, report = load_speech_features(split_rows, extractor, cache=cache, strict=d.strict)
        reports[split].checked += report.checked
        reports[split].skipped += report.skipped
        if reports[split].num_skipped:
            print(f"data.{split}: {reports[split].summary()}")
        feats[split], rows[split] = x, kept
    if not feats["train"]:
        raise ConfigError(f"data.train: no usable audio in {d.train} ({reports['train'].num_skipped} files skipped)")
    cmvn, cmvn_state = None, "off"
    if fc.cmvn:
        cmvn, cmvn_state = _cmvn(run_dir / "cmvn.json", feats["train"], extractor.settings())
        feats = {k: [cmvn.normalize(x) for x in v] for k, v in feats.items()}
    stats: dict[str, Any] = {"features": extractor.settings(), "cmvn": cmvn_state,
                             "feature_cache": {"dir": str(cache.root), "hits": cache.hits, "misses": cache.misses}}
    for split in ("train", "heldout"):
        feats[split], rows[split], stats[f"{split}_length"] = _fit(feats[split], rows[split], d.max_len, d.overlong,
                                                                     min_len)
        stats[f"{split}_audio"] = _report(reports[split])
        stats[f"{split}_sequences"] = len(feats[split])
        stats[f"{split}_frames"] = sum(x.shape[0] for x in feats[split])
    if d.heldout is None:
        stats["heldout_audio"]["split"] = (f"held out of data.train (data.heldout_fraction {d.heldout_fraction:g}; "
                                           "by speaker when every row names one)")
    for split in ("train", "heldout"):
        if not feats[split]:
            raise ConfigError(f"data.{split}: no usable sequences ({stats[f'{split}_audio']['skipped']} files "
                              f"skipped, {stats[f'{split}_length']['overlong']} over data.max_len)")
    return SpeechData(train=feats["train"], heldout=feats["heldout"], train_rows=rows["train"],
                      heldout_rows=rows["heldout"], cmvn=cmvn, stats=stats)


CMVN_SAMPLE = 1000
"""Streaming: CMVN statistics come from the first this many training utterances."""


class SpeechStreamData:
    """A streamed speech corpus (`data.streaming`): manifest rows are held in memory (a path and a label each), but
    features are computed pool by pool (and cached per file on disk), never all at once. `train` holds only the
    first `data.eval_sentences` training utterances (for evaluation); CMVN comes from the first `CMVN_SAMPLE`."""

    def __init__(self, config: Config, run_dir: Path, extractor: FeatureExtractor, *, min_len: int = 1) -> None:
        d, fc = config.data, config.features
        if d.targets != "self":
            raise ConfigError(f"data.targets: a streamed corpus rebuilds its own input ('self'), got {d.targets!r}: "
                              "pairing utterances needs the whole corpus in memory")
        self.extractor, self.strict, self.min_len, self.max_len, self.overlong = (
            extractor, d.strict, min_len, d.max_len, d.overlong)
        reports = {"train": SkipReport(), "heldout": SkipReport()}
        rows, heldout_rows = read_splits(d, reports)
        self.rows, self.seed = rows, config.train.seed
        self.cache = FeatureCache(fc.cache_dir or run_dir / "features", extractor.settings())
        sample, sample_rows, _ = load_speech_features(rows[:CMVN_SAMPLE], extractor, cache=self.cache, strict=d.strict)
        if not sample:
            raise ConfigError(f"data.train: no usable audio in the first {CMVN_SAMPLE} rows of {d.train}")
        self.cmvn, cmvn_state = None, "off"
        if fc.cmvn:
            self.cmvn, cmvn_state = _cmvn(run_dir / "cmvn.json", sample, extractor.settings())
        norm = self.cmvn.normalize if self.cmvn else (lambda x: x)
        heldout, heldout_rows, heldout_report = load_speech_features(heldout_rows, extractor, cache=self.cache,
                                                                     strict=d.strict)
        reports["heldout"].checked += heldout_report.checked
        reports["heldout"].skipped += heldout_report.skipped
        self.heldout, self.heldout_rows, heldout_length = _fit([norm(x) for x in heldout], heldout_rows, d.max_len,
                                                               d.overlong, min_len)
        self.train, self.train_rows, _ = _fit([norm(x) for x in sample[: d.eval_sentences]],
                                              sample_rows[: d.eval_sentences], d.max_len, d.overlong, min_len)
        if not self.heldout:
            raise ConfigError(f"data.heldout: no usable sequences ({heldout_report.num_skipped} files skipped)")
        self.stats: dict[str, Any] = {
            "features": extractor.settings(), "cmvn": cmvn_state, "train": f"streamed: {len(rows)} rows",
            "train_audio": _report(reports["train"]), "heldout_audio": _report(reports["heldout"]),
            "heldout_length": heldout_length, "heldout_sequences": len(self.heldout)}
        self._norm = norm
        self.take_counts()
        self.batcher = StreamBatcher(self._rows, self._encode, length=lambda x: x.shape[0], max_tokens=d.max_tokens,
                                     max_sentences=d.max_sentences, buffer_size=d.shuffle_buffer,
                                     pool_size=d.pool_size, seed=config.train.seed)

    def _rows(self, epoch: int):
        """The manifest's rows in an order drawn from (seed, epoch), before the shuffle buffer."""
        return (self.rows[i] for i in np.random.default_rng([self.seed, epoch]).permutation(len(self.rows)).tolist())

    def _encode(self, chunk: list[tuple[int, ManifestRow]]) -> list[tuple[int, torch.Tensor]]:
        """Features of a pool of rows (cached per file), normalised and fitted to the length limits; every skip is
        counted and named."""
        feats, kept, report = load_speech_features([row for _, row in chunk], self.extractor, cache=self.cache,
                                                   strict=self.strict)  # uncached files batched together
        self._counts["rows_read"] += len(chunk)
        self._skipped += report.skipped
        kept_ids = {id(row): k for k, row in enumerate(kept)}  # kept rows are chunk rows, in order
        out = []
        for index, row in chunk:
            if id(row) not in kept_ids:
                continue
            x = self._norm(feats[kept_ids[id(row)]])
            if x.shape[0] < self.min_len:
                self._counts["too_short"] += 1
                continue
            if x.shape[0] > self.max_len:
                self._counts["overlong"] += 1
                if self.overlong == "skip":
                    continue
                x = x[: self.max_len]
            out.append((index, x))
        return out

    def take_counts(self) -> dict[str, Any]:
        """Rows read and skipped (with the skipped files and why) since the last call."""
        counts = {**getattr(self, "_counts", {}), "audio_skipped": len(getattr(self, "_skipped", [])),
                  "skipped_files": [{"file": f, "reason": r} for f, r in getattr(self, "_skipped", [])[:100]]}
        self._counts, self._skipped = {"rows_read": 0, "too_short": 0, "overlong": 0}, []
        return counts


def _speaker_codes(rows: list[ManifestRow]) -> torch.Tensor:
    """[N] speaker index per row; every row its own speaker when any row lacks one."""
    if any(r.speaker is None for r in rows):
        return torch.arange(len(rows))
    ids = {s: k for k, s in enumerate(dict.fromkeys(r.speaker for r in rows))}
    return torch.tensor([ids[r.speaker] for r in rows])


def label_partners(rows: list[ManifestRow]) -> list[list[int]]:
    """For each row, the rows with its label spoken by other speakers (other rows, when speakers are unknown)."""
    codes, groups = _speaker_codes(rows), {}
    for i, row in enumerate(rows):
        if row.label is not None:
            groups.setdefault(row.label, []).append(i)
    return [[j for j in groups.get(r.label, []) if codes[j] != codes[i]] if r.label is not None else []
            for i, r in enumerate(rows)]


def neighbour_partners(features: list[torch.Tensor], rows: list[ManifestRow], k: int = NEIGHBOURS,
                       chunk: int = 1024) -> list[list[int]]:
    """For each row, its k nearest rows of other speakers by cosine of `downsampled_frames` (no labels used)."""
    emb = torch.nn.functional.normalize(downsampled_frames(features), dim=1)  # (N, 10 F)
    codes = _speaker_codes(rows)
    partners = []
    for start in range(0, len(rows), chunk):
        sim = emb[start: start + chunk] @ emb.T  # (C, N)
        sim[codes[start: start + chunk, None] == codes[None, :]] = float("-inf")
        top = sim.topk(min(k, len(rows)), dim=1)
        partners += [[j for j, v in zip(idx, val) if v > float("-inf")]
                     for idx, val in zip(top.indices.tolist(), top.values.tolist())]
    return partners


def _pair_stats(kind: str, partners: list[list[int]], rows: list[ManifestRow]) -> dict[str, Any]:
    stats: dict[str, Any] = {"kind": kind, "rows_without_partner": sum(not p for p in partners)}
    pairs = [(i, j) for i, p in enumerate(partners) for j in p if rows[i].label is not None]
    if kind == "neighbours" and pairs:  # a diagnostic only: labels are never used to choose neighbours
        stats["same_label_fraction"] = sum(rows[i].label == rows[j].label for i, j in pairs) / len(pairs)
    return stats


def build_extractor(config: Config) -> FeatureExtractor:
    fc = config.features
    return FeatureExtractor(kind=fc.kind, sample_rate=fc.sample_rate, n_mels=fc.n_mels, n_mfcc=fc.n_mfcc,
                            win_ms=fc.win_ms, hop_ms=fc.hop_ms)


class SpeechTask:
    """Frame autoencoder on a speech corpus: denoising when the config lists frame noises, correspondence
    (another utterance of the same word as the target) when `targets` (or `data.targets`) is label/neighbours."""

    def __init__(self, config: Config, run_dir: Path, *, targets: str | None = None) -> None:
        from seqae.models.builder import build_frame_autoencoder

        self.config = config
        self.extractor = build_extractor(config)
        self.noise = build_noise(config.noise, "frames")
        self.model = build_frame_autoencoder(config.model, self.extractor.feature_dim, regularize=config.regularize)
        min_len = getattr(self.model, "min_frames", 1)
        self.stream: StreamBatcher | None = None
        if config.data.streaming:
            self.data = SpeechStreamData(config, Path(run_dir), self.extractor, min_len=min_len)
            self.stream = self.data.batcher
        else:
            self.data = prepare_speech(config, Path(run_dir), self.extractor, min_len=min_len)
        self.targets = targets or config.data.targets
        if self.targets not in TARGETS:
            raise ConfigError(f"data.targets: got {self.targets!r}; allowed: {', '.join(TARGETS)}")
        self.partners: list[list[int]] | None = None
        if self.targets == "label":
            self.partners = label_partners(self.data.train_rows)
        elif self.targets == "neighbours":
            self.partners = neighbour_partners(self.data.train, self.data.train_rows)
        if self.partners is not None:
            self.data.stats["targets"] = _pair_stats(self.targets, self.partners, self.data.train_rows)

    def summary(self) -> str:
        s = self.data.stats
        if self.stream is not None:
            noise = f"; noise: {self.noise.describe()}" if self.noise else ""
            return (f"data: {len(self.data.rows)} train utterances streamed (features computed pool by pool; skips "
                    f"logged at the end of each epoch) / {len(self.data.heldout)} held-out; {self.extractor.kind} "
                    f"{self.extractor.feature_dim}-dim features, CMVN {s['cmvn']} (first {CMVN_SAMPLE} utterances)"
                    f"{noise}")
        skipped = s["train_audio"]["skipped"] + s["heldout_audio"]["skipped"]
        noise = f"; noise: {self.noise.describe()}" if self.noise else ""
        if self.partners is not None:
            noise = f"; targets: {self.targets} pairs ({s['targets']})" + noise
        return (f"data: {len(self.data.train)} train / {len(self.data.heldout)} held-out utterances "
                f"({skipped} files skipped, {s['train_length']['overlong']} train sequences over "
                f"{self.config.data.max_len} frames {s['train_length']['action']}d, "
                f"{s['train_length']['too_short'] + s['heldout_length']['too_short']} too short for the model); "
                f"{self.extractor.kind} {self.extractor.feature_dim}-dim features, CMVN {s['cmvn']}{noise}")

    def train_lengths(self) -> list[int]:
        return [x.shape[0] for x in self.data.train]

    def corrupt(self, frames: torch.Tensor, *, epoch: int, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(input [T, F], corrupted mask [T]) for one training sequence: the noise of (seed, epoch, index)."""
        if self.noise is None:
            return frames, torch.zeros(frames.shape[0], dtype=torch.bool)
        return self.noise(frames, seed=self.config.train.seed, epoch=epoch, index=index)

    def target_index(self, index: int, epoch: int) -> int:
        """The training row whose clean frames are row `index`'s target in `epoch` (itself unless pairing)."""
        options = self.partners[index] if self.partners is not None else []
        if not options:
            return index
        return options[mix_seed(self.config.train.seed, epoch, index, len(options)) % len(options)]

    def batch(self, indices: list[int], epoch: int) -> dict[str, torch.Tensor]:
        """frames [B, T, F] (noised input) with lengths [B], corrupted mask [B, T], and the clean targets
        [B, T', F] with target_lengths [B] (the input's own frames, or its partner's)."""
        examples = [(i, self.data.train[i]) for i in indices]
        return self.batch_examples(examples, epoch, [self.data.train[self.target_index(i, epoch)] for i in indices])

    def batch_examples(self, examples: list[tuple[int, torch.Tensor]], epoch: int,
                       targets: list[torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """The batch of `(index, frames)` examples (the index seeds the noise); targets default to the inputs."""
        pairs = [self.corrupt(x, epoch=epoch, index=i) for i, x in examples]
        frames, lengths = collate_frames([p[0] for p in pairs])
        targets, target_lengths = collate_frames(targets if targets is not None else [x for _, x in examples])
        mask = torch.nn.utils.rnn.pad_sequence([p[1] for p in pairs], batch_first=True)  # (B, T)
        return {"frames": frames, "lengths": lengths, "targets": targets, "target_lengths": target_lengths,
                "corrupted": mask}

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        out = self.model(batch["frames"], batch["lengths"], batch["targets"], batch["target_lengths"])
        return self.model.loss(out)

    def _batches(self, features: list[torch.Tensor]) -> list[list[int]]:
        lengths = [x.shape[0] for x in features]
        return TokenBudgetBatcher(lengths, max_tokens=self.config.data.max_tokens, shuffle=False).batches(0)

    @torch.no_grad()
    def _score(self, features: list[torch.Tensor]) -> dict[str, Any]:
        """Teacher-forced MSE over real frames and bins, mean loss, stop accuracy, on clean inputs."""
        if not features:
            return {"mse": float("nan"), "loss": float("nan"), "sequences": 0}
        sq, count, loss_sum, stop_right, stop_total = 0.0, 0, 0.0, 0, 0
        r = self.config.model.reduction_factor
        for idx in self._batches(features):
            frames, lengths = collate_frames([features[i] for i in idx])
            out = self.model(frames, lengths)
            loss, stats = self.model.loss(out)
            real_t = min(out.pred.shape[1], out.targets.shape[1])
            mask = lengths_to_mask(out.target_lengths, real_t)  # (B, T)
            diff = (out.pred[:, :real_t] - out.targets[:, :real_t]).float() ** 2  # (B, T, F)
            sq += float(diff[mask].sum())
            count += int(mask.sum()) * diff.shape[-1]
            loss_sum += float(loss) * int(lengths.sum())
            steps = torch.div(out.target_lengths + r - 1, r, rounding_mode="floor")  # (B,) decoder steps
            if out.stop_logits is not None and out.stop_logits.dim() == 2 and out.stop_logits.shape[1] >= steps.max():
                valid = lengths_to_mask(steps, out.stop_logits.shape[1])  # (B, S)
                target = torch.arange(out.stop_logits.shape[1])[None, :] == (steps - 1)[:, None]  # (B, S)
                stop_right += int(((out.stop_logits > 0) == target)[valid].sum())
                stop_total += int(valid.sum())
        result = {"mse": sq / count, "loss": loss_sum / sum(x.shape[0] for x in features), "sequences": len(features)}
        if stop_total:
            result["stop_accuracy"] = stop_right / stop_total
        return result

    def evaluate(self, limit: int | None = None) -> dict[str, dict[str, Any]]:
        """Teacher-forced reconstruction of held-out and training sequences (the first `limit` of each), and
        the same-different AP of z on those held-out sequences when their labels repeat."""
        was_training = self.model.training
        self.model.eval()
        result = {split: self._score(feats[:limit]) for split, feats in
                  (("heldout", self.data.heldout), ("train", self.data.train))}
        labels = [r.label for r in self.data.heldout_rows[:limit]]
        if None not in labels and len(set(labels)) < len(labels):
            result["heldout"]["ap_z"] = same_different_ap(self.embed(self.data.heldout[:limit])[0], labels)
        self.model.train(was_training)
        return result

    @torch.no_grad()
    def embed(self, features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(z [N, Z], mean of the top encoder states [N, D]) for clean features, in input order."""
        was_training = self.model.training
        self.model.eval()
        z_all, pooled_all, order = [], [], []
        for idx in self._batches(features):
            frames, lengths = collate_frames([features[i] for i in idx])
            z, _, enc = self.model.encode(frames, lengths)
            mask = lengths_to_mask(enc.lengths, enc.states.shape[1])[..., None]  # (B, T', 1)
            pooled = (enc.states * mask).sum(1) / enc.lengths.clamp(min=1)[:, None].to(enc.states.dtype)  # (B, D)
            z_all.append(z)
            pooled_all.append(pooled)
            order += idx
        self.model.train(was_training)
        inverse = torch.argsort(torch.tensor(order))
        return torch.cat(z_all)[inverse], torch.cat(pooled_all)[inverse]

    @torch.no_grad()
    def reconstruct(self, features: list[torch.Tensor], *, max_ratio: float = 2.0) -> list[torch.Tensor]:
        """Encode each clean [T_i, F] sequence to z and generate it back from z alone: [T'_i, F] each, at most
        max_ratio × T_i frames."""
        was_training = self.model.training
        self.model.eval()
        rebuilt = []
        for x in features:
            frames, lengths = collate_frames([x])
            z, _, _ = self.model.encode(frames, lengths)
            out, out_lengths = self.model.generate(z, max_frames=max(1, round(max_ratio * x.shape[0])))
            rebuilt.append(out[0, : int(out_lengths[0])])
        self.model.train(was_training)
        return rebuilt

    def discrimination(self) -> dict[str, Any]:
        """Same-different AP on held-out rows, by label and by speaker where known: z, the mean encoder
        state, and the mean-frame and downsampled-frame baselines (all on CMVN'd features)."""
        result: dict[str, Any] = {}
        for prefix, attr in (("ap", "label"), ("speaker_ap", "speaker")):
            items = [(x, getattr(r, attr)) for x, r in zip(self.data.heldout, self.data.heldout_rows)
                     if getattr(r, attr) is not None]
            labels = [label for _, label in items]
            if len(set(labels)) == len(labels):  # no positive pairs: AP is undefined
                continue
            feats = [x for x, _ in items]
            z, pooled = self.embed(feats)
            for name, emb in (("z", z), ("encoder_mean", pooled), ("mean_frames", mean_frames(feats)),
                              ("downsampled", downsampled_frames(feats, n=10))):
                result[f"{prefix}_{name}"] = same_different_ap(emb, labels)
            result[f"{prefix}_items"] = len(items)
            result[f"{prefix}_classes"] = len(set(labels))
        return result

    def final_metrics(self) -> dict[str, Any]:
        result = self.evaluate()
        heldout, train = result["heldout"], result["train"]
        metrics = {"heldout_mse": heldout["mse"], "heldout_loss": heldout["loss"], "train_mse": train["mse"],
                   "train_loss": train["loss"]}
        if "stop_accuracy" in heldout:
            metrics["heldout_stop_accuracy"] = heldout["stop_accuracy"]
        metrics.update(self.discrimination())
        metrics.update(train_sequences=len(self.data.train), heldout_sequences=len(self.data.heldout))
        if self.stream is not None:
            metrics["train_sequences"] = f"the first {len(self.data.train)} of the stream"
        return metrics


def load_speech_run(run_dir: str | Path) -> SpeechTask:
    """A finished (or checkpointed) speech run: its task, data and CMVN, with the newest checkpoint's weights."""
    import yaml

    from seqae.config import load_config_dict

    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise FileNotFoundError(f"{run_dir}: not a seqae run directory (no config.yaml)")
    config = load_config_dict(yaml.safe_load((run_dir / "config.yaml").read_text()))
    if config.task != "speech":
        raise ConfigError(f"{run_dir}: a {config.task} run, not a speech run")
    task = SpeechTask(config, run_dir)
    ckpt = load_latest(run_dir)
    if ckpt is None:
        raise CheckpointError(f"{run_dir}: no usable checkpoint in {run_dir / 'checkpoints'}")
    task.model.load_state_dict(ckpt["model"])
    task.model.eval()
    return task
