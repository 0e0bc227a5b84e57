"""glibc's malloc left at its defaults against `train.cpu_malloc: keep` (seqae.models.fast.allocator), on the Transformer AE.

The setting is process-wide and cannot be undone, so each side runs in a fresh process of its own: `pairs` pairs,
alternating default and keep, each process timing `sizes.malloc_windows` windows of `sizes.steps` Trainer steps
(one epoch each) after `sizes.warmup` untimed ones, with the page faults and system time of those steps. The heap
grows to the step's peak during the first epoch in both modes; `speedup_after_first_epoch` compares the windows
after it. `python benchmarks/bench_malloc.py SPEC MODE OUT` is one such process.
"""

from __future__ import annotations

import dataclasses
import json
import resource
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import bench_common as common  # noqa: E402

MODES = ("default", "keep")


def run_malloc(spec_path: Path, workdir: Path, sizes: common.Sizes, *, pairs: int) -> dict[str, Any]:
    """`pairs` alternating pairs of processes; speedup = the default processes' timed seconds over keep's."""
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    for i in range(pairs):
        for mode in MODES:
            out = workdir / f"{mode}_{i}.json"
            cmd = [sys.executable, str(Path(__file__).resolve()), str(spec_path), mode, str(out)]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0 or not out.is_file():
                tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-5:])
                return {"error": f"{mode} process {i}: exit code {proc.returncode}: {tail}"}
            runs[mode].append(json.loads(out.read_text()))
    seconds = {mode: sum(r["seconds"] for r in runs[mode]) for mode in MODES}
    later = {mode: sum(sum(r["window_seconds"][1:]) for r in runs[mode]) for mode in MODES}
    return {"pairs": pairs, "steps_per_process": sizes.malloc_windows * sizes.steps,
            "speedup": seconds["default"] / max(seconds["keep"], 1e-9),
            "speedup_after_first_epoch": later["default"] / later["keep"] if later["keep"] > 0 else None,
            **{f"{mode}_{key}": statistics.median(r[key] for r in runs[mode])
               for mode in MODES for key in ("seconds", "faults_per_step", "system_s_per_step", "peak_rss_mib")},
            "runs": runs}


def one_process(spec: dict[str, Any], mode: str) -> dict[str, Any]:
    """Train `sizes.warmup` + `sizes.malloc_windows` × `sizes.steps` steps under `train.cpu_malloc: mode`."""
    import bench_train

    from seqae.models.fast.allocator import applied
    from seqae.train import make_trainer

    sizes = common.sizes_from_dict(spec["sizes"])
    config = bench_train.seqae_config(sizes, encoder="transformer", decoder="transformer", threads=spec["threads"],
                                      train_file=Path(spec["train_file"]), tokenizer=Path(spec["tokenizer"]))
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, cpu_malloc=mode))
    run_dir = Path(spec["workdir"]) / f"malloc_{mode}"
    run_dir.mkdir(parents=True, exist_ok=True)
    trainer = make_trainer(config, run_dir)
    for _ in range(sizes.warmup):
        trainer.train_step()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    windows = []
    for _ in range(sizes.malloc_windows):
        with common.Stopwatch() as watch:
            for _ in range(sizes.steps):
                trainer.train_step()
        windows.append(watch.seconds)
    after = resource.getrusage(resource.RUSAGE_SELF)
    steps = sizes.malloc_windows * sizes.steps
    return {"mode": mode, "malloc_settings": applied(), "seconds": sum(windows), "window_seconds": windows,
            "faults_per_step": (after.ru_minflt - usage.ru_minflt) / steps,
            "system_s_per_step": (after.ru_stime - usage.ru_stime) / steps, "peak_rss_mib": common.peak_rss_mib()}


if __name__ == "__main__":
    spec_file, mode_arg, out_file = sys.argv[1:4]
    spec_data = json.loads(Path(spec_file).read_text())
    common.offline_env(Path(spec_data["hf_home"]))
    Path(out_file).write_text(json.dumps(one_process(spec_data, mode_arg)))
