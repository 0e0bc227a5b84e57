"""The speech task: feature frames in (optionally corrupted), clean frames out (the same, or a partner's).

Dimension letters: B batch, T frames, F feature bins, D encoder width, Z bottleneck width.

The corpus is read by `seqae.data.speech` (features, CMVN, length limits, every skip counted); the pairs of the
correspondence autoencoder come from `seqae.data.pairs`.

Targets (`data.targets`, see `TARGETS`): the clean input itself (an autoencoder), or another utterance of the same
word, which makes z keep what the two share and drop the speaker (the correspondence autoencoder of Kamper et al.,
2015). The partner of row i in epoch e is drawn from (train.seed, e, i), so batches are reproducible and a resumed
run sees the same pairs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqae.config import Config, ConfigError
from seqae.data.batching import TokenBudgetBatcher
from seqae.data.pairs import label_partners, neighbour_partners, pair_stats
from seqae.data.speech import CMVN_SAMPLE, SpeechStreamData, prepare_speech
from seqae.data.stream import StreamBatcher
from seqae.eval.speech import same_different_ap
from seqae.frontend.collate import collate_frames
from seqae.frontend.features import FeatureExtractor
from seqae.frontend.summaries import downsampled_frames, mean_frames
from seqae.models.builder import build_model
from seqae.models.layers import lengths_to_mask
from seqae.noise.pipeline import mix_seed
from seqae.tasks.text import build_noise

TARGETS = ("self", "label", "neighbours")


class SpeechTask:
    """Frame autoencoder on a speech corpus: denoising when the config lists frame noises, correspondence
    (another utterance of the same word as the target) when `targets` (or `data.targets`) is label/neighbours."""

    def __init__(self, config: Config, run_dir: Path, *, targets: str | None = None) -> None:
        self.config = config
        self.extractor = FeatureExtractor.from_config(config.features)
        self.noise = build_noise(config.noise, "frames")
        self.model = build_model(config, feature_dim=self.extractor.feature_dim)
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
            self.partners = neighbour_partners(self.data.train, self.data.train_rows,
                                               embeddings=self._neighbour_embeddings())
        if self.partners is not None:
            self.data.stats["targets"] = pair_stats(self.targets, self.partners, self.data.train_rows)

    def _neighbour_embeddings(self) -> torch.Tensor | None:
        """data.neighbour_embeddings as [N, D], checked against the training rows (ConfigError naming the file)."""
        path = self.config.data.neighbour_embeddings
        if path is None:
            return None
        try:
            vectors = np.load(path)
        except (OSError, ValueError) as err:
            raise ConfigError(f"data.neighbour_embeddings: {path}: not a readable .npy file ({err})") from None
        n = len(self.data.train_rows)
        if vectors.ndim != 2 or vectors.shape[0] != n or not np.isfinite(vectors).all():
            raise ConfigError(f"data.neighbour_embeddings: {path}: {vectors.shape} finite vectors expected as "
                              f"[{n}, D], one per training row in order")
        self.data.stats["neighbour_embeddings"] = {"file": str(path), "dim": int(vectors.shape[1])}
        return torch.from_numpy(vectors)

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
        """The batch of `(index, frames)` examples (the index seeds the noise); targets default to the clean inputs
        (`clean`, which the per-position loss reads)."""
        pairs = [self.corrupt(x, epoch=epoch, index=i) for i, x in examples]
        frames, lengths = collate_frames([p[0] for p in pairs])
        clean, clean_lengths = collate_frames([x for _, x in examples])  # (B, T, F) the inputs before the noise
        targets, target_lengths = collate_frames(targets) if targets is not None else (clean, clean_lengths)
        mask = torch.nn.utils.rnn.pad_sequence([p[1] for p in pairs], batch_first=True)  # (B, T)
        batch = {"frames": frames, "lengths": lengths, "targets": targets, "target_lengths": target_lengths,
                 "corrupted": mask, "clean": clean}
        return batch

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        out = self.model(batch["frames"], batch["lengths"], batch["targets"], batch["target_lengths"],
                         clean=batch["clean"], corrupted=batch["corrupted"])
        return self.model.loss(out)

    @torch.no_grad()
    def _score(self, features: list[torch.Tensor]) -> dict[str, Any]:
        """Teacher-forced MSE over real frames and bins, mean loss, stop accuracy, on clean inputs."""
        if not features:
            return {"mse": float("nan"), "loss": float("nan"), "sequences": 0}
        sq, count, loss_sum, stop_right, stop_total = 0.0, 0, 0.0, 0, 0
        r = self.config.model.reduction_factor
        for idx in _length_batches(features, self.config.data.max_tokens):
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

    def embed(self, features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(z [N, Z], mean of the top encoder states [N, D]) for clean features, in input order."""
        return embed_frames(self.model, features, self.config.data.max_tokens)

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


def _length_batches(features: list[torch.Tensor], max_tokens: int) -> list[list[int]]:
    """Indices of `features` in length-sorted batches of at most `max_tokens` frames (padding included)."""
    return TokenBudgetBatcher([x.shape[0] for x in features], max_tokens=max_tokens, shuffle=False).batches(0)


@torch.no_grad()
def embed_frames(model, features: list[torch.Tensor], max_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(z [N, Z], mean of the top encoder states [N, D]) of clean features [T_i, F], in input order."""
    was_training = model.training
    model.eval()
    z_all, pooled_all, order = [], [], []
    for idx in _length_batches(features, max_tokens):
        frames, lengths = collate_frames([features[i] for i in idx])
        z, _, enc = model.encode(frames, lengths)
        mask = lengths_to_mask(enc.lengths, enc.states.shape[1])[..., None]  # (B, T', 1)
        pooled = (enc.states * mask).sum(1) / enc.lengths.clamp(min=1)[:, None].to(enc.states.dtype)  # (B, D)
        z_all.append(z)
        pooled_all.append(pooled)
        order += idx
    model.train(was_training)
    inverse = torch.argsort(torch.tensor(order))
    return torch.cat(z_all)[inverse], torch.cat(pooled_all)[inverse]


@torch.no_grad()
def generate_frames(model, features: list[torch.Tensor], *, max_ratio: float = 2.0) -> list[torch.Tensor]:
    """Encode each clean [T_i, F] sequence to z and generate it back from z alone: [T'_i, F] each, at most
    max_ratio × T_i frames."""
    was_training = model.training
    model.eval()
    rebuilt = []
    for x in features:
        z, _, _ = model.encode(*collate_frames([x]))
        out, out_lengths = model.generate(z, max_frames=max(1, round(max_ratio * x.shape[0])))
        rebuilt.append(out[0, : int(out_lengths[0])])
    model.train(was_training)
    return rebuilt
