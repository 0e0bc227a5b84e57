"""Training throughput: seqae's Trainer against a naive loop on the same model, GEMM throughput, and a profile.

Dimension letters: B batch, T time (tokens), N matrix size.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from bench_common import FORTUNES, FORTUNES_HELDOUT, Sizes, Stopwatch, best_window, rate

GEMM_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::addbmm")
ONEDNN_LINEAR = "mkldnn::_linear_pointwise"
"""The oneDNN GEMM of seqae's linear layers (seqae.models.fast.linear); the profiler counts no FLOPs for it."""


def seqae_config(sizes: Sizes, *, encoder: str, decoder: str, train_file: Path, tokenizer: Path, threads: int,
                 noise: tuple[dict[str, Any], ...] = ()):
    """A seqae Config at the suite's sizes: width everywhere, one memory slot, CLS pooling for Transformers."""
    from seqae.config import load_config_dict

    transformer = encoder == "transformer"
    return load_config_dict({
        "data": {"train": str(train_file), "heldout": str(FORTUNES_HELDOUT), "max_len": sizes.max_len,
                 "max_tokens": sizes.batch * sizes.max_len, "max_sentences": sizes.batch, "eval_sentences": 8},
        "tokenizer": {"path": str(tokenizer), "vocab_size": sizes.vocab},
        "model": {"encoder": encoder, "decoder": decoder, "embed_dim": sizes.width, "hidden_dim": sizes.width,
                  "decoder_dim": sizes.width, "encoder_layers": sizes.layers if transformer else 1,
                  "decoder_layers": sizes.layers if decoder == "transformer" else 1, "num_heads": sizes.heads,
                  "ff_dim": sizes.ff, "dropout": 0.1, "pooling": "cls" if transformer else "last",
                  "bottleneck_dim": sizes.width, "memory_slots": 1, "max_positions": max(512, sizes.max_len)},
        "train": {"seed": 0, "max_steps": 1_000_000, "lr": 1e-3, "warmup_steps": 10, "threads": threads,
                  "progress": False, "log_every": 1_000_000, "eval_every": 0, "checkpoint_every": 1_000_000},
        "noise": list(noise),
    })


def matmul_params(model: torch.nn.Module) -> int:
    """Parameters that take part in matrix products: all but the position tables (lookups).
    The token embedding counts once, as the tied output layer."""
    return sum(p.numel() for name, p in model.named_parameters() if "positions" not in name)


PER_SEQUENCE = ("bottleneck.", "decoder.z_to_memory.", "cross_attn.kv.", "encoder.cls")
"""Parameters applied once per sequence, not per token: the bottleneck, the memory projection, the keys and values
of cross-attention (computed on the memory's slots, 1 here) and the CLS vector."""


def per_token_params(model: torch.nn.Module) -> int:
    """`matmul_params` less the `PER_SEQUENCE` ones: the parameters whose products run once per token, the N of
    the 6·N·tokens FLOP count."""
    return sum(p.numel() for name, p in model.named_parameters()
               if "positions" not in name and not any(k in name for k in PER_SEQUENCE))


class BatchCounter:
    """Wraps a batch function and counts sentences, real and padded target positions."""

    def __init__(self, make_batch, pad_id: int) -> None:
        self.make_batch, self.pad_id = make_batch, pad_id
        self.reset()

    def reset(self) -> None:
        self.sentences = self.real = self.padded = self.src_real = self.src_padded = 0

    def __call__(self, *args, **kwargs) -> dict[str, torch.Tensor]:
        batch = self.make_batch(*args, **kwargs)
        self.record(batch["tgt"], batch["src"])
        return batch

    def record(self, tgt: torch.Tensor, src: torch.Tensor) -> None:
        self.sentences += tgt.shape[0]
        self.real += int((tgt != self.pad_id).sum())
        self.padded += tgt.numel()  # (B, T)
        self.src_real += int((src != self.pad_id).sum())
        self.src_padded += src.numel()

    def rates(self, seconds: float) -> dict[str, float]:
        return {"seconds": seconds, "sentences": self.sentences, "sentences_per_s": rate(self.sentences, seconds),
                "tokens_per_s_real": rate(self.real, seconds), "tokens_per_s_padded": rate(self.padded, seconds),
                "padding_efficiency_measured": self.real / max(self.padded, 1),
                "src_padding_efficiency_measured": self.src_real / max(self.src_padded, 1)}


def run_seqae(config, run_dir: Path, sizes: Sizes, *, profile: bool = False) -> dict[str, Any]:
    """Time `sizes.windows` windows of `sizes.steps` Trainer steps after `sizes.warmup` untimed ones (the
    Trainer's own data path); the fastest window is reported.

    With `profile`, a square fp32 GEMM is also timed right before and right after each window
    (`window_gemm_gflops`: the faster of the two), so each window's model FLOP rate can be set against the
    machine's GEMM speed of the same moment."""
    from seqae.models.fast.linear import cpu_gemm
    from seqae.train import make_trainer

    run_dir.mkdir(parents=True, exist_ok=True)  # Trainer expects the folder (pretrain() makes it)
    trainer = make_trainer(config, run_dir)
    counter = BatchCounter(trainer.task.batch, trainer.task.tokenizer.pad_id)
    trainer.task.batch = counter
    losses, windows = [], []
    for _ in range(sizes.warmup):
        trainer.train_step()
    for _ in range(sizes.windows):
        before = _probe_gemm(sizes) if profile else None
        counter.reset()
        with Stopwatch() as watch:
            for _ in range(sizes.steps):
                record = trainer.train_step()
                if record is not None:
                    losses.append(record["loss"])
        windows.append(counter.rates(watch.seconds))
        if profile:
            windows[-1]["window_gemm_gflops"] = max(before, _probe_gemm(sizes))
    result = best_window(windows)
    if profile:
        result["windows"] = windows
    result.update({"cpu_gemm": cpu_gemm(), "params": sum(p.numel() for p in trainer.model.parameters()),
                   "matmul_params": matmul_params(trainer.model),
                   "per_token_params": per_token_params(trainer.model), "loss_first": losses[0] if losses else None,
                   "loss_last": losses[-1] if losses else None,
                   "batcher_padding_efficiency": trainer.batcher.padding_efficiency(0),
                   "batches_per_epoch": trainer.batcher.num_batches(0)})
    result.update(corpus_padding_efficiency(trainer.task.tokenizer, config))
    if profile:
        result["profile"] = profile_steps(trainer.train_step, steps=max(1, min(3, sizes.steps)))
    return result


def corpus_padding_efficiency(tokenizer, config) -> dict[str, Any]:
    """Padding efficiency of seqae's batcher over one epoch of the whole fortunes training file (the corpus the
    fortunes recipe trains on), with this run's batch limits and with the default config's (4096 tokens)."""
    from seqae.config import DataConfig
    from seqae.data.batching import TokenBudgetBatcher
    from seqae.data.text import encode_lines

    lines = [line for line in FORTUNES.read_text(encoding="utf-8").splitlines() if line.strip()]
    seqs, _ = encode_lines(lines, tokenizer, max_len=config.data.max_len)
    lengths = [len(s) for s in seqs]
    ours = TokenBudgetBatcher(lengths, max_tokens=config.data.max_tokens, max_sentences=config.data.max_sentences)
    default = TokenBudgetBatcher(lengths, max_tokens=DataConfig().max_tokens)
    return {"corpus_sentences": len(lengths), "corpus_padding_efficiency": ours.padding_efficiency(0),
            "corpus_batches_per_epoch": ours.num_batches(0),
            "corpus_padding_efficiency_default_config": default.padding_efficiency(0),
            "corpus_random_batch_padding_efficiency": random_padding_efficiency(lengths, config.data.max_sentences
                                                                                or 64)}


def run_naive(config, run_dir: Path, sizes: Sizes) -> dict[str, Any]:
    """The same model and sequences, trained the plain way: random batches of `sizes.batch` padded to the
    longest, torch's default AdamW and GEMM (BLAS, as `nn.Linear` computes), no clipping, no bucketing."""
    from seqae.models.fast import linear

    before = linear._choice
    linear.set_cpu_gemm("blas")
    try:
        return {**_run_naive(config, run_dir, sizes), "cpu_gemm": linear.cpu_gemm()}
    finally:
        linear.set_cpu_gemm(before)


def _run_naive(config, run_dir: Path, sizes: Sizes) -> dict[str, Any]:
    from seqae.frontend.collate import collate_tokens
    from seqae.tasks.text import TextTask

    torch.set_num_threads(config.train.threads)
    torch.manual_seed(config.train.seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    task = TextTask(config, run_dir)
    model, data, pad = task.model, task.data.train, task.tokenizer.pad_id
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.train.lr)
    generator = torch.Generator().manual_seed(config.train.seed)
    counter = BatchCounter(lambda: None, pad)
    order: list[int] = []
    model.train()

    def step() -> float:
        nonlocal order
        if len(order) < sizes.batch:
            order = torch.randperm(len(data), generator=generator).tolist()
        picked, order = order[: sizes.batch], order[sizes.batch:]
        tokens, lengths = collate_tokens([data[i] for i in picked], pad)  # (B, T), (B,)
        counter.record(tokens, tokens)
        loss, _ = model.loss(model(tokens, lengths))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    for _ in range(sizes.warmup):
        step()
    losses, windows = [], []
    for _ in range(sizes.windows):
        counter.reset()
        with Stopwatch() as watch:
            losses += [step() for _ in range(sizes.steps)]
        windows.append(counter.rates(watch.seconds))
    return {**best_window(windows), "loss_first": losses[0], "loss_last": losses[-1],
            "random_batch_padding_efficiency": random_padding_efficiency([len(s) for s in data], sizes.batch)}


def random_padding_efficiency(lengths: list[int], batch: int, *, seed: int = 0) -> float:
    """Real / padded positions over one epoch of random batches padded to their longest sequence."""
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(lengths), generator=g).tolist()
    real = padded = 0
    for start in range(0, len(order), batch):
        chunk = [lengths[i] for i in order[start: start + batch]]
        real, padded = real + sum(chunk), padded + len(chunk) * max(chunk)
    return real / max(padded, 1)


def profile_steps(step, *, steps: int) -> dict[str, Any]:
    """Where a training step's time goes (torch.profiler, main-thread self times) and the GEMMs' own speed.

    Groups: GEMMs (aten's, and the oneDNN linear kernel of seqae's layers, whose FLOPs the profiler does not count:
    they are counted from the recorded shapes); dropout masks (`bernoulli_`, torch's CPU dropout draw, seqae's
    `dropout_mask` outside the ops it calls: numpy's draws, and seqae's compiled kernel, which draws and applies
    the mask in one pass, forward and backward: `seqae.models.fast.native`); fused attention kernels (SDPA with
    dropout in training takes the unfused math path, whose matmuls then count as GEMMs); optimizer kernels; the
    autograd engine's own time; every other op; and time outside any op (Python, batch building)."""
    from torch.profiler import record_function

    import seqae.models.fast.dropout as layers
    import seqae.models.fast.native as native

    def annotated(name, function):
        def run(*args, **kwargs):
            with record_function(name):
                return function(*args, **kwargs)
        return run

    unpatched = layers.dropout_mask, native.dropout
    layers.dropout_mask = annotated("seqae::dropout_mask", unpatched[0])
    native.dropout = annotated("seqae::native_dropout", unpatched[1])
    try:
        return _profile(step, steps)
    finally:
        layers.dropout_mask, native.dropout = unpatched


def _profile(step, steps: int) -> dict[str, Any]:
    from torch.profiler import ProfilerActivity, profile, schedule

    plan = schedule(wait=0, warmup=1, active=steps, repeat=1)
    with profile(activities=[ProfilerActivity.CPU], with_flops=True, record_shapes=True, schedule=plan,
                 acc_events=True) as prof:
        step()  # profiler warm-up: its start-up cost lands on this untimed, unrecorded step
        prof.step()
        with Stopwatch() as watch:
            for i in range(steps):
                step()
                if i < steps - 1:
                    prof.step()
    groups = {"gemm": 0.0, "dropout_masks": 0.0, "attention_kernels": 0.0, "optimizer": 0.0, "autograd_engine": 0.0,
              "other_ops": 0.0}
    gemm_flops, by_op = 0.0, {}
    for e in prof.key_averages(group_by_input_shape=True):
        seconds, name = e.self_cpu_time_total / 1e6, e.key
        if name.startswith(("Optimizer.", "ProfilerStep")):  # annotations: their self time is Python overhead
            continue
        if name in GEMM_OPS or name == ONEDNN_LINEAR:
            groups["gemm"] += seconds
            flops = _onednn_flops(e.input_shapes, e.count) if name == ONEDNN_LINEAR else e.flops
            gemm_flops += flops or 0
        elif "bernoulli" in name or name in ("seqae::dropout_mask", "seqae::native_dropout"):
            groups["dropout_masks"] += seconds
        elif "scaled_dot_product" in name or "flash_attention" in name:
            groups["attention_kernels"] += seconds
        elif "foreach" in name or "adam" in name.lower():
            groups["optimizer"] += seconds
        elif name.startswith("autograd::"):  # the engine's own work between backward kernels
            groups["autograd_engine"] += seconds
        else:
            groups["other_ops"] += seconds
        by_op[name] = by_op.get(name, 0.0) + seconds
    groups["outside_ops"] = max(0.0, watch.seconds - sum(groups.values()))
    top = sorted(((seconds, name) for name, seconds in by_op.items()), reverse=True)
    return {"steps": steps, "wall_s": watch.seconds,
            "share": {k: v / max(watch.seconds, 1e-9) for k, v in groups.items()},
            "gemm_gflops_achieved": gemm_flops / max(groups["gemm"], 1e-9) / 1e9,
            "top_ops": [{"op": n, "share": s / max(watch.seconds, 1e-9)} for s, n in top[:8]]}


def _onednn_flops(input_shapes: list, calls: int) -> float:
    """FLOPs of `calls` oneDNN linear calls of these shapes: x [..., K] times weight [N, K]^T."""
    x, weight = input_shapes[0], input_shapes[1]
    return 2.0 * math.prod(x) * weight[0] * calls


def run_gemm(sizes: Sizes, threads: int, *, shapes: list[tuple[int, int, int]] | None = None) -> dict[str, Any]:
    """Square-matmul throughput (fp32 on both of torch's CPU GEMMs, bf16) and fp32 at the model's own GEMM shapes.

    `fp32_gflops`, the MFU denominator, is the faster of torch's BLAS (`torch.mm`, MKL) and oneDNN, the two fp32
    GEMMs seqae's linear layers can run on (seqae.models.fast.linear): the machine's fp32 GEMM speed through torch."""
    torch.set_num_threads(threads)
    n = sizes.gemm_n
    window = 2.0 if n >= 1024 else 0.05  # seconds per measurement; the quick sizes only smoke-test
    out: dict[str, Any] = {"n": n, **_fp32_rates(n, n, n, window),
                           "bf16_gflops": _gemm_rate(n, n, n, torch.bfloat16, min_seconds=window, kernel="linear")}
    if shapes is None:
        rows = sizes.batch * 22  # a batch of fortunes sentences: about 22 tokens each
        w, ff, v = sizes.width, sizes.ff, sizes.vocab
        shapes = [(rows, w, w), (rows, w, ff), (rows, ff, w), (rows, w, v)]
    out["model_shapes"] = [{"m": m, "k": k, "n": nn_, **_fp32_rates(m, k, nn_, window)} for m, k, nn_ in shapes]
    return out


def gemm_kernels() -> tuple[str, ...]:
    """torch's CPU fp32 GEMMs on this build: BLAS always, oneDNN where torch ships its linear kernel."""
    from seqae.models.fast.linear import onednn_available

    return ("blas", "onednn") if onednn_available() else ("blas",)


def _fp32_rates(m: int, k: int, n: int, window: float) -> dict[str, Any]:
    """fp32 GFLOP/s of (m, k) @ (k, n) on each kernel, and the faster one as `fp32_gflops` (`fp32_kernel` names it)."""
    rates = {kernel: _gemm_rate(m, k, n, torch.float32, min_seconds=window, kernel=kernel) for kernel in gemm_kernels()}
    best = max(rates, key=rates.get)
    return {**{f"{kernel}_fp32_gflops": r for kernel, r in rates.items()}, "fp32_gflops": rates[best],
            "fp32_kernel": best}


def _probe_gemm(sizes: Sizes) -> float:
    """fp32 GFLOP/s of the suite's square GEMM over about 0.3 s per kernel (the best of its short windows), on the
    faster of torch's fp32 GEMMs."""
    n = sizes.gemm_n
    seconds = 0.3 if n >= 1024 else 0.02
    return max(_gemm_rate(n, n, n, torch.float32, min_seconds=seconds, kernel=kernel) for kernel in gemm_kernels())


def _gemm_rate(m: int, k: int, n: int, dtype: torch.dtype, *, min_seconds: float = 0.5, kernel: str = "blas") -> float:
    """GFLOP/s of (m, k) @ (k, n): the best of about 16 timing windows spread over `min_seconds` (on a shared
    machine the best window is the one least disturbed by other processes). `kernel`: "blas" is `torch.mm`;
    "onednn" is oneDNN's linear kernel with the second operand stored as (n, k), as seqae's layers call it;
    "linear" is `F.linear` with that layout, as autocast's bf16 linear layers run (on a CPU without bf16
    arithmetic, AMD EPYC Zen 3, a bf16 `torch.mm` of two row-major operands ran at 1 GFLOP/s, this one at 10-19)."""
    a = torch.randn(m, k).to(dtype)
    if kernel == "onednn":
        from seqae.models.fast.linear import _onednn

        b = torch.randn(n, k).to(dtype)

        def product() -> torch.Tensor:
            return _onednn(a, b)
    elif kernel == "linear":
        b = torch.randn(n, k).to(dtype)

        def product() -> torch.Tensor:
            return torch.nn.functional.linear(a, b)
    else:
        b = torch.randn(k, n).to(dtype)

        def product() -> torch.Tensor:
            return torch.mm(a, b)
    product()  # warm-up
    flops = 2.0 * m * k * n
    once = _once(product)
    reps = max(1, math.ceil(min_seconds / 16 / once))
    best = math.inf
    for _ in range(max(5, min(16, math.ceil(min_seconds / (reps * once))))):
        with Stopwatch() as watch:
            for _ in range(reps):
                product()
        best = min(best, watch.seconds / reps)
    return flops / best / 1e9


def _once(product) -> float:
    with Stopwatch() as watch:
        product()
    return max(watch.seconds, 1e-6)
