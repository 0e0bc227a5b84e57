"""Fine-tuning an exported encoder: CTC speech recognition and seq2seq translation, pretrained or from scratch.

`finetune(config, run_dir)` trains (or resumes) one run with the pretraining loop of `seqae.train` (same run
directory: config.yaml, metrics.jsonl, checkpoints/, data_stats.json, metrics.json; same resume and progress
bar). A fine-tuning task keeps the contract the loop drives (`seqae.tasks.Task`); the tasks are
`seqae.finetune.asr.AsrTask` (CTC, with `ctc`) and `seqae.finetune.translate.TranslateTask`. `common` holds what
both share (the encoder's initial weights, freezing, the labelled subset, the optimizer); `run` the entry points.

Pretrained and scratch runs differ only in the encoder's initial weights: the encoder is always built from the
export's config.json with the seed, then (pretrained) loaded with the export's weights, and the heads are built
after it from the same random state, so they start identical too.
"""

from seqae.finetune.common import ScaledLrAdamW, freeze, init_encoder, labelled_subset, make_finetune_optimizer  # noqa: F401
from seqae.finetune.config import FinetuneConfig, load_finetune_config  # noqa: F401
from seqae.finetune.run import finetune, finetune_command  # noqa: F401

__all__ = ["FinetuneConfig", "ScaledLrAdamW", "finetune", "finetune_command", "freeze", "init_encoder",
           "labelled_subset", "load_finetune_config", "make_finetune_optimizer"]
