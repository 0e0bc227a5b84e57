"""Tasks: what is autoencoded (text tokens, speech frames), behind the one contract the training loop drives.

`Task` is that contract; `seqae.train.Trainer` is given a task and never looks inside it. The pretraining tasks
are `seqae.tasks.text.TextTask` and `seqae.tasks.speech.SpeechTask` (`build_task` picks one by `config.task`);
fine-tuning's `AsrTask` and `TranslateTask` (seqae.finetune) keep the same contract.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from seqae.config import Config


class TaskData(Protocol):
    stats: dict[str, Any]
    """What was read, skipped, truncated (written to data_stats.json when training starts)."""


class Task(Protocol):
    """What the Trainer needs of a task. Batches are dicts of tensors only the task reads."""

    model: nn.Module
    """The model being trained (its state is what checkpoints hold)."""
    data: TaskData
    stream: Any
    """A `seqae.data.stream.StreamBatcher` for corpora read lazily (then `batch_examples` builds the batches and
    `data.take_counts()` gives the rows read per epoch), or None: the Trainer batches `train_lengths()`."""

    def summary(self) -> str:
        """One line on the data (and noise) for the console."""

    def train_lengths(self) -> list[int]:
        """Length of each training example (what the token budget of a batch counts)."""

    def batch(self, indices: list[int], epoch: int) -> dict[str, torch.Tensor]:
        """The batch of training examples `indices` in `epoch` (noise and pairs depend on both, never on state)."""

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """(loss to minimise, numbers to log); the numbers include "tokens", the real positions of the batch."""

    def evaluate(self, limit: int | None = None) -> dict[str, dict[str, Any]]:
        """Periodic evaluation on the first `limit` items of each split: {split: {metric: value}}."""

    def final_metrics(self) -> dict[str, Any]:
        """The evaluation at the end of training (metrics.json)."""


def build_task(config: Config, run_dir: Path) -> Task:
    """The pretraining task of `config.task`: reads its data (and trains or loads the tokenizer / CMVN in
    `run_dir`) and builds the model with `seqae.models.builder.build_model`."""
    if config.task == "speech":
        from seqae.tasks.speech import SpeechTask

        return SpeechTask(config, run_dir)
    from seqae.tasks.text import TextTask

    return TextTask(config, run_dir)
