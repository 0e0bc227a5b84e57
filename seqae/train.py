"""Pretraining a token sequence autoencoder: one plain loop with exact resume.

`pretrain(config, run_dir)` trains (or resumes) the run in `run_dir`:
tokenizer.model, config.yaml, metrics.jsonl (one JSON record per logged step / evaluation),
checkpoints/, and at the end metrics.json with the final evaluation.
Resuming restores model, optimizer, RNG state and data position (epoch, batch), and cuts the metrics log back to
the checkpoint's step, so a resumed run logs the same losses as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from seqae import distributed
from seqae.checkpoint import CheckpointError, load_latest, save_checkpoint, state_mismatch
from seqae.config import Config, ConfigError, TrainConfig, to_dict
from seqae.data.batching import TokenBudgetBatcher
from seqae.distributed import World
from seqae.models.fast.allocator import set_cpu_malloc
from seqae.models.fast.linear import BF16_SLOW, bf16_slowdown, set_cpu_gemm
from seqae.rundir import MetricsLog, resolve_config
from seqae.tasks import Task, build_task


def lr_at(step: int, cfg) -> float:
    """Learning rate after `step` optimizer steps: linear warm-up, then cosine/linear decay or constant."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    if cfg.schedule == "constant":
        return cfg.lr
    decay = 0.5 * (1 + math.cos(math.pi * progress)) if cfg.schedule == "cosine" else 1 - progress
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * decay)


def make_optimizer(model: torch.nn.Module, cfg) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases, norms and embeddings."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.ndim >= 2 and "embedding" not in name and "positions" not in name else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # fused: one kernel per step instead of a dozen per tensor group (measured: benchmarks/README.md, 'fused AdamW')
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, fused=True)


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. non-finite losses step after step); the last good checkpoint is intact."""


def _warn_if_bf16_is_slow() -> None:
    """`train.precision: bf16` on a CPU without bf16 arithmetic trains several times slower than fp32: say so."""
    slowdown = bf16_slowdown()
    if slowdown > BF16_SLOW:
        warnings.warn(f"train.precision: bf16: this CPU ran a bf16 matrix product {slowdown:.1f}x slower than fp32 "
                      "(no bf16 instructions such as AVX-512 BF16 or AMX), so bf16 training will be much slower "
                      "than fp32 here (30x for the benchmark's Transformer AE on such a CPU); use "
                      "train.precision: fp32", RuntimeWarning, stacklevel=3)


def set_up_process(t: TrainConfig) -> None:
    """Threads, the CPU's GEMM and malloc settings, and the seed of a training process, before its task (and so its
    model's initial weights) is built."""
    if t.threads:
        torch.set_num_threads(t.threads)
    try:
        set_cpu_gemm(t.cpu_gemm)
    except ValueError as err:
        raise ConfigError(f"train.cpu_gemm: {err}") from None
    set_cpu_malloc(t.cpu_malloc)
    if t.precision == "bf16":
        _warn_if_bf16_is_slow()
    torch.manual_seed(t.seed)


class Trainer:
    """One run: resume, the step, logging, evaluation and checkpoints, driving a `seqae.tasks.Task`."""

    def __init__(self, config: Config, run_dir: Path, task: Task, world: World = World(), *,
                 optimizer: torch.optim.Optimizer | None = None) -> None:
        """`task`: what to train (built after `set_up_process`); `optimizer` defaults to AdamW over every parameter
        (fine-tuning passes its own)."""
        self.config, self.run_dir, self.t, self.world, self.task = config, run_dir, config.train, world, task
        if self.t.grad_accum % world.size:
            raise ConfigError(f"train.grad_accum: must be a multiple of the number of processes ({world.size}), "
                              f"got {self.t.grad_accum}, so that the global batch is the same at any world size")
        self.model = task.model
        if world.is_main:
            (run_dir / "data_stats.json").write_text(json.dumps(task.data.stats, indent=2))
            print(f"{task.summary()}; details in {run_dir / 'data_stats.json'}")
        self.optimizer = optimizer if optimizer is not None else make_optimizer(self.model, self.t)
        self.stream = task.stream  # a StreamBatcher for corpora read lazily, or None
        if self.stream is None:
            self.batcher = TokenBudgetBatcher(self.task.train_lengths(), max_tokens=config.data.max_tokens,
                                              max_sentences=config.data.max_sentences, shuffle=True, seed=self.t.seed)
        self.step, self.epoch, self.batch_index, self.pool = 0, 0, 0, 0
        self._restore()
        self.log = MetricsLog(run_dir / "metrics.jsonl", self.step, enabled=world.is_main)
        self.batches = self.batcher.batches(self.epoch) if self.stream is None else None
        self._streamed = None  # the iterator over the current epoch's streamed batches
        self._trace = _batch_trace(world)
        self.nonfinite_in_a_row = 0
        self.stop_requested: str | None = None
        if world.is_main:
            print(f"model: {self._describe_model()}" +
                  (f"; {world.size} processes ({world.backend})" if world.size > 1 else ""))

    def _describe_model(self) -> str:
        total = sum(p.numel() for p in self.model.parameters())
        trained = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        model_cfg = getattr(self.config, "model", None)
        arch = f"{model_cfg.encoder} encoder, {model_cfg.decoder} decoder, " if model_cfg is not None else ""
        return f"{arch}{total / 1e6:.2f}M parameters" + (f", {trained / 1e6:.2f}M trained" if trained < total else "")

    def _restore(self) -> None:
        ckpt = load_latest(self.run_dir)
        if ckpt is None:
            return
        problems = state_mismatch(self.model.state_dict(), ckpt["model"])
        if problems:
            raise CheckpointError(f"{self.run_dir / 'checkpoints'}: the step {ckpt['step']} weights do not fit the "
                                  f"model of this run's config ({problems})")
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        self.step, self.epoch, self.batch_index = ckpt["step"], ckpt["data"]["epoch"], ckpt["data"]["batch"]
        self.pool = ckpt["data"].get("pool", 0)
        if self.world.is_main:
            print(f"resuming {self.run_dir} from step {self.step} (epoch {self.epoch}, batch {self.batch_index})")

    def checkpoint(self) -> None:
        save_checkpoint(self.run_dir, self.step, {
            "config": to_dict(self.config), "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(), "rng": {"torch": torch.get_rng_state()},
            "data": {"epoch": self.epoch, "batch": self.batch_index, "pool": self.pool}}, keep=self.t.keep_checkpoints)

    def _next_batch(self, build: bool = True) -> tuple[dict | None, list[int]]:
        """The next batch of the global sequence (built only when this rank computes it)."""
        if self.stream is not None:
            examples = self._next_streamed()
            indices = [i for i, _ in examples]
            batch = self.task.batch_examples(examples, self.epoch) if build else None
        else:
            if self.batch_index >= len(self.batches):
                self.epoch, self.batch_index = self.epoch + 1, 0
                self.batches = self.batcher.batches(self.epoch)
            indices = self.batches[self.batch_index]
            self.batch_index += 1
            batch = self.task.batch(indices, self.epoch) if build else None
        if build and self._trace is not None:
            self._trace.write(json.dumps({"step": self.step + 1, "epoch": self.epoch, "indices": indices}) + "\n")
            self._trace.flush()
        return batch, indices

    def _next_streamed(self) -> list:
        """The next `(index, sequence)` examples of the stream; the position is (epoch, pool, batch)."""
        for _ in range(2):
            if self._streamed is None:
                self._streamed = self.stream.epoch(self.epoch, self.pool, self.batch_index)
            item = next(self._streamed, None)
            if item is not None:
                self.pool, batch, examples = item
                self.batch_index = batch + 1
                return examples
            self.log.write({"step": self.step + 1, "epoch_end": self.epoch, **self.task.data.take_counts()})
            self.epoch, self.pool, self.batch_index, self._streamed = self.epoch + 1, 0, 0, None
        raise ConfigError(f"data.train: the stream {self.config.data.train} gave no usable sequence in an epoch")

    def train_step(self) -> dict[str, float] | None:
        """One optimizer step over `grad_accum` batches; None when it was skipped for a non-finite loss/gradient."""
        for module in self.model.modules():  # step-dependent schedules (KL annealing) are pure functions of the step
            if hasattr(module, "set_step"):
                module.set_step(self.step)
        losses, sums = [], {}
        for micro in range(self.t.grad_accum):
            batch, indices = self._next_batch(build=self.world.owns(micro))
            if batch is None:
                continue
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.t.precision == "bf16"):
                loss, stats = self.task.loss(batch)
            (loss / self.t.grad_accum).backward()
            losses.append(float(loss.detach()))
            for k, v in stats.items():
                sums[k] = sums.get(k, 0) + v
        distributed.sum_gradients(self.model, self.world)
        keys = sorted(sums)
        total, *values = distributed.sum_values([sum(losses), *(sums[k] for k in keys)], self.world)
        losses, sums = [total / self.t.grad_accum], dict(zip(keys, values))
        lr = lr_at(self.step, self.t)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        clip = self.t.grad_clip if self.t.grad_clip > 0 else math.inf
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip))
        if not (math.isfinite(grad_norm) and all(math.isfinite(v) for v in losses)):
            self.optimizer.zero_grad(set_to_none=True)
            return self._skip_nonfinite(indices, losses)
        self.nonfinite_in_a_row = 0
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return {"loss": losses[0], "lr": lr, "grad_norm": grad_norm,
                **{k: v / self.t.grad_accum for k, v in sums.items() if k != "tokens"}, "tokens": sums["tokens"]}

    def _skip_nonfinite(self, indices: list[int], losses: list[float]) -> None:
        self.nonfinite_in_a_row += 1
        self.log.write({"step": self.step, "skipped": "non-finite loss or gradient", "losses": losses,
                        "epoch": self.epoch, "batch": self.batch_index - 1})
        if self.nonfinite_in_a_row >= self.t.max_nonfinite_steps:
            raise TrainingError(
                f"{self.nonfinite_in_a_row} steps in a row had a non-finite loss or gradient; stopped at step "
                f"{self.step} (epoch {self.epoch}, batch {self.batch_index - 1}, examples {indices[:8]}"
                f"{'...' if len(indices) > 8 else ''}); the last good checkpoint in {self.run_dir / 'checkpoints'} "
                "is intact: lower train.lr or check the data")
        return None

    def run(self, stop_after: int | None = None) -> dict[str, Any]:
        t = self.t
        main = self.world.is_main
        bar = tqdm(total=t.max_steps, initial=self.step, disable=not (t.progress and main), dynamic_ncols=True,
                   desc="pretrain")
        window_tokens, window_start = 0, time.perf_counter()
        self.model.train()
        with _stop_on_signals(self):
            while self.step < t.max_steps:
                if stop_after is not None and self.step >= stop_after:
                    bar.close()
                    return {}
                record = self.train_step()
                if record is None:
                    continue
                window_tokens += record.pop("tokens")
                if self.step % t.log_every == 0 or self.step == t.max_steps:
                    elapsed = time.perf_counter() - window_start
                    self.log.write({"step": self.step, "epoch": self.epoch, **record,
                                    "tokens_per_s": window_tokens / max(elapsed, 1e-9)})
                    bar.set_postfix(loss=f"{record['loss']:.3f}", tok_s=f"{window_tokens / max(elapsed, 1e-9):.0f}")
                    window_tokens, window_start = 0, time.perf_counter()
                bar.update(1)
                stop = self.stop_requested  # one read: the signal handler may set it at any moment
                if self.world.size > 1:
                    stop = self._agree_on_stop(stop)
                if main and t.eval_every and self.step % t.eval_every == 0 and self.step < t.max_steps:
                    for split, result in self.task.evaluate(limit=self.config.data.eval_sentences).items():
                        self.log.write({"step": self.step, "eval": split, **result})
                    self.model.train()
                if main and (self.step % t.checkpoint_every == 0 or self.step == t.max_steps or stop):
                    self.checkpoint()
                if stop:  # the CLI exits with 128 + the signal's number, as a shell reports a killed command
                    bar.close()
                    if main:
                        print(f"{stop}: stopped cleanly after step {self.step} with a checkpoint; "
                              f"run the same command again to resume ({self.run_dir})")
                    return {"stopped": stop, "step": self.step}
        bar.close()
        return self.finish() if main else {}

    def _agree_on_stop(self, stop: str | None) -> str | None:
        """Every rank stops at the same step, naming the signal of the lowest rank that got one."""
        got = [0.0] * self.world.size
        got[self.world.rank] = float(signal.Signals[stop].value) if stop else 0.0
        numbers = [int(n) for n in distributed.sum_values(got, self.world) if n]
        return signal.Signals(numbers[0]).name if numbers else None

    def finish(self) -> dict[str, Any]:
        self.model.eval()
        metrics = {"step": self.t.max_steps, **self.task.final_metrics()}
        self.log.write({"eval": "final", **metrics})
        (self.run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        return metrics


def _batch_trace(world: World):
    """With SEQAE_BATCH_TRACE=DIR, each rank appends the examples of every batch it computes to DIR/rank<r>.jsonl
    (to check which process saw which example; tests use it)."""
    folder = os.environ.get("SEQAE_BATCH_TRACE")
    if not folder:
        return None
    Path(folder).mkdir(parents=True, exist_ok=True)
    return open(Path(folder) / f"rank{world.rank}.jsonl", "a")


@contextlib.contextmanager
def _stop_on_signals(trainer: Trainer):
    """SIGINT/SIGTERM: finish the current step, write a checkpoint, return cleanly (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        trainer.stop_requested = signal.Signals(signum).name

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def make_trainer(config: Config, run_dir: Path, world: World = World()) -> Trainer:
    """The Trainer of a pretraining run in `run_dir` (which holds its config.yaml): the process set up, then the
    task of `config.task` built (rank 0 first: it trains the tokenizer and fills the feature cache)."""
    set_up_process(config.train)
    if not world.is_main:
        distributed.barrier(world)
    task = build_task(config, run_dir)
    if world.is_main:
        distributed.barrier(world)
    return Trainer(config, run_dir, task, world)


def pretrain(config: Config, run_dir: str | Path, *, stop_after: int | None = None) -> dict[str, Any]:
    """Train or resume; returns the final metrics (also written to run_dir/metrics.json).

    `stop_after` stops the loop after that many steps without a final checkpoint, as a crash would (tests).
    """
    run_dir = Path(run_dir)
    world = distributed.setup()
    try:
        if world.is_main:
            config = resolve_config(config, run_dir)
        distributed.barrier(world)
        if not world.is_main:
            config = resolve_config(config, run_dir)
        return make_trainer(config, run_dir, world).run(stop_after=stop_after)
    finally:
        distributed.shutdown(world)
