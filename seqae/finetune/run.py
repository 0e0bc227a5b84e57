"""`finetune(config, run_dir)`: one fine-tuning run with the pretraining loop of `seqae.train`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from seqae.config import ConfigError
from seqae.finetune.common import make_finetune_optimizer
from seqae.finetune.config import FinetuneConfig, load_finetune_config
from seqae.rundir import resolve_config
from seqae.train import Trainer, set_up_process


def build_finetune_task(config: FinetuneConfig, run_dir: Path):
    """The task object for `config.task`."""
    if config.task == "asr":
        from seqae.finetune.asr import AsrTask

        return AsrTask(config, run_dir)
    from seqae.finetune.translate import TranslateTask

    return TranslateTask(config, run_dir)


def finetune(config: FinetuneConfig, run_dir: str | Path, *, stop_after: int | None = None) -> dict[str, Any]:
    """Fine-tune or resume; returns the final metrics (also written to run_dir/metrics.json).

    `stop_after` stops the loop after that many steps without a final checkpoint, as a crash would (tests).
    """
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("seqae finetune runs in one process; start it without torchrun")
    run_dir = Path(run_dir)
    config = resolve_config(config, run_dir, FinetuneConfig)
    set_up_process(config.train)
    task = build_finetune_task(config, run_dir)
    optimizer = make_finetune_optimizer(task.model, config.train, config.encoder_lr)
    print(f"fine-tune {config.task}: {'pretrained' if config.pretrained else 'scratch'} encoder "
          f"({config.encoder_spec}){', frozen' if config.freeze_encoder else ''}"
          + (f"; {'pretrained' if config.decoder_export else 'scratch'} decoder ({config.decoder_spec})"
             if config.decoder_spec else ""))
    return Trainer(config, run_dir, task, optimizer=optimizer).run(stop_after=stop_after)


def finetune_command(task: str, config_path: str | Path, overrides: list[str], run_dir: str | Path | None = None
                     ) -> tuple[dict[str, Any], Path]:
    """`seqae finetune TASK CONFIG [--set k=v] [--run-dir DIR]`: (metrics, run directory; default
    runs/<config name>). A config whose `task` is another task is an error."""
    path = Path(config_path)
    if path.is_file():
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and data.get("task", task) != task:
            raise ConfigError(f"{path}: task is {data['task']!r}, but the command is `seqae finetune {task}`")
    config = load_finetune_config(path, [f"task={task}", *overrides])
    run_dir = Path(run_dir) if run_dir else Path("runs") / path.stem
    return finetune(config, run_dir), run_dir
