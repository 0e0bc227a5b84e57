"""CPU speed code, kept beside the models so that the model files read top to bottom without it.

- `linear`: the linear layer's fp32 GEMM on BLAS (MKL) or oneDNN (`train.cpu_gemm`), with a plain `F.linear` path.
- `dropout` + `native` (+ `dropout.c`): dropout in one pass of a small compiled kernel, or a numpy-drawn mask.
- `allocator`: glibc malloc thresholds fixed so freed activations are reused (`train.cpu_malloc`).

Each has a plain reference it is tested against (tests/test_linear.py, test_native.py, test_allocator.py); none of
it runs on tensors of other devices. Measurements are in benchmarks/README.md.
"""
