"""torch.compile on seqae's Transformer AE, against eager, at the suite's sizes: `python benchmarks/try_compile.py`.

Not part of `run.py` (compiling takes minutes). Trains the same model from the same seed on the first 1,280
fortunes sentences, eager and with `torch.compile(model.forward, dynamic=True)` (batch shapes vary with bucketing),
and prints the time of 5 warm-up steps (compilation included) and of the 20 steps after them.

seqae's CPU dropout runs a compiled kernel through ctypes, or draws numpy masks without one
(seqae.models.fast.dropout.dropout), neither of which torch.compile can trace: every dropout is a graph break.
`--dropout torch` swaps in `F.dropout` and SDPA's own dropout in both modes, so the compiled model is one graph; `--dropout none` turns dropout off in both (only to see what fusing the rest gains).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_common as common  # noqa: E402
from bench_train import seqae_config  # noqa: E402


def patch_dropout(kind: str) -> None:
    """`torch`: F.dropout and SDPA's dropout instead of seqae's numpy masks; `none`: no dropout at all."""
    import torch.nn.functional as F

    import seqae.models.layers as layers

    def dropout(self, x):
        if not self.training or self.p == 0.0 or kind == "none":
            return x
        return F.dropout(x, self.p, training=True)

    def attention(q, k, v, mask, causal, p):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal,
                                              dropout_p=0.0 if kind == "none" else p)

    layers.Dropout.forward, layers.attention_with_dropout = dropout, attention


def timed(mode: str, workdir: Path, threads: int) -> tuple[float, float]:
    from seqae.frontend.tokenizer import train_tokenizer
    from seqae.train import make_trainer

    sizes = common.full()
    lines = common.fortunes_lines(sizes.batch * 20)
    (workdir / "train.txt").write_text("\n".join(lines) + "\n")
    train_tokenizer(lines, workdir / "tok", vocab_size=sizes.vocab)
    config = seqae_config(sizes, encoder="transformer", decoder="transformer", train_file=workdir / "train.txt",
                          tokenizer=workdir / "tok.model", threads=threads)
    run_dir = workdir / f"run_{mode}"
    run_dir.mkdir()
    trainer = make_trainer(config, run_dir)
    if mode == "compile":
        trainer.task.model.forward = torch.compile(trainer.task.model.forward, dynamic=True)
    start = time.perf_counter()
    for _ in range(5):
        trainer.train_step()
    warm = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(20):
        trainer.train_step()
    return warm, time.perf_counter() - start


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dropout", choices=("numpy", "torch", "none"), default="numpy",
                        help="seqae's dropout (numpy masks: graph breaks), F.dropout, or none")
    args = parser.parse_args()
    if args.dropout != "numpy":
        patch_dropout(args.dropout)
    with tempfile.TemporaryDirectory() as tmp:
        common.offline_env(Path(tmp) / "hf")
        for mode in ("eager", "compile"):
            (Path(tmp) / mode).mkdir()
            warm, steps = timed(mode, Path(tmp) / mode, threads=2)
            print(f"{mode}: 5 warm-up steps {warm:.1f} s, then 20 steps {steps:.2f} s")


if __name__ == "__main__":
    main()
