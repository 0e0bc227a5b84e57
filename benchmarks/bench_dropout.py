"""seqae's CPU dropout kernel against numpy's masks: `python benchmarks/bench_dropout.py [--threads 2] [--pairs 10]`.

Not part of `run.py` (the suite measures the kernel inside its training figures). Prints:
- one dropout pass at the suite model's activation sizes (a batch of 64 sentences of 22 tokens, widths 256 and
  1024): the kernel (`seqae.models.fast.native.dropout`), numpy's mask alone (`seqae.models.fast.dropout.dropout_mask`), and
  torch's `x * mask`, the multiply that applies a stored mask (medians of 200 calls);
- the forward and backward pass of the suite's Transformer AE on the same batches with dropout 0.1 on the kernel,
  0.1 on numpy's masks, and 0 (medians over the batches, alternating);
- `--pairs` alternating pairs of 10-step Trainer windows, kernel and numpy, in one process (medians).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_common as common  # noqa: E402
from bench_train import seqae_config  # noqa: E402


def median_us(call, repeats: int = 200) -> float:
    for _ in range(5):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def one_pass() -> None:
    from seqae.models.fast import dropout as layers
    from seqae.models.fast import native

    for shape in ((64, 22, 256), (64, 22, 1024)):
        x = torch.randn(shape)
        mask = layers.dropout_mask(shape, 0.1)
        print(f"{shape}: kernel {median_us(lambda: native.dropout(x, 1, 0.1)):.0f} µs, numpy mask "
              f"{median_us(lambda: layers.dropout_mask(shape, 0.1)):.0f} µs, torch x * mask "
              f"{median_us(lambda: x * mask):.0f} µs")


def use_kernel(on: bool) -> None:
    from seqae.models.fast import native

    native.available = (lambda: True) if on else (lambda: False)  # read by seqae.models.fast.dropout.dropout


def set_dropout(model: torch.nn.Module, p: float) -> None:
    from seqae.models.layers import Dropout, MultiHeadAttention

    for module in model.modules():
        if isinstance(module, Dropout):
            module.p = p
        if isinstance(module, MultiHeadAttention):
            module.dropout = p


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=10)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    import run

    from seqae.models.fast import native
    from seqae.train import make_trainer

    if not native.available():
        print(f"the kernel is unavailable: {native.unavailable_reason()}")
        return 1
    one_pass()
    sizes = common.full()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        train_file, tokenizer = run.prepare(sizes, work)
        config = seqae_config(sizes, encoder="transformer", decoder="transformer", threads=args.threads,
                              train_file=train_file, tokenizer=tokenizer)
        (work / "run").mkdir()
        trainer = make_trainer(config, work / "run")
        for _ in range(3):
            trainer.train_step()
        batches = [trainer._next_batch(build=True)[0] for _ in range(10)]
        modes = {"kernel, p=0.1": (True, 0.1), "numpy, p=0.1": (False, 0.1), "no dropout": (True, 0.0)}
        times: dict[str, list[float]] = {name: [] for name in modes}
        for batch in batches * 2:
            for name, (kernel, p) in modes.items():
                use_kernel(kernel)
                set_dropout(trainer.model, p)
                start = time.perf_counter()
                loss, _ = trainer.task.loss(batch)
                loss.backward()
                times[name].append(time.perf_counter() - start)
                trainer.optimizer.zero_grad(set_to_none=True)
        print("forward + backward (ms):", ", ".join(f"{n} {statistics.median(t) * 1e3:.0f}" for n, t in times.items()))
        set_dropout(trainer.model, 0.1)
        windows: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(args.pairs):
            for kernel in (True, False):
                use_kernel(kernel)
                start = time.perf_counter()
                for _ in range(10):
                    trainer.train_step()
                windows[kernel].append(time.perf_counter() - start)
        print(f"10 Trainer steps, {args.pairs} alternating pairs (median s): kernel "
              f"{statistics.median(windows[True]):.2f}, numpy {statistics.median(windows[False]):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
