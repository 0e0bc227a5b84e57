"""Self-describing checkpoints, written atomically, checked by SHA-256, loaded without pickle code execution.

A checkpoint is one file `checkpoints/step_XXXXXXXX.pt` holding only tensors and plain Python values
(format version, config, model, optimizer, RNG state, data position, step), loaded with
`torch.load(weights_only=True)`. Beside it, `step_XXXXXXXX.pt.sha256` holds its checksum; a corrupt or truncated
newest checkpoint is detected and the one before it used, with a warning naming both.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from pathlib import Path
from typing import Any

import torch

FORMAT_VERSION = 1
_NAME = re.compile(r"step_(\d{8})\.pt$")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the message names the file."""


def state_mismatch(expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> str:
    """How `state` fails to fit a model whose state dict is `expected`: its missing, unexpected and misshapen
    keys (the first three of each), or "" when it fits. Loading then never half-succeeds."""
    missing, unexpected = sorted(expected.keys() - state.keys()), sorted(state.keys() - expected.keys())
    shapes = [f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})" for k, v in expected.items()
              if k in state and state[k].shape != v.shape]
    return "; ".join(f"{name}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                     for name, keys in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)) if keys)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step_{step:08d}.pt"


def save_checkpoint(run_dir: Path, step: int, payload: dict[str, Any], *, keep: int = 2) -> Path:
    """Write `payload` (plus format version and step) atomically, then its checksum; keep the newest `keep`."""
    path = checkpoint_path(run_dir, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, lambda f: torch.save({"format_version": FORMAT_VERSION, "step": step, **payload}, f))
    digest = _sha256(path)
    _write_atomic(path.with_name(path.name + ".sha256"), lambda f: f.write(digest.encode()))
    for old in list_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)
        old.with_name(old.name + ".sha256").unlink(missing_ok=True)
    for stale in path.parent.glob(".step_*.tmp*"):  # left by a process killed mid-write (one writer at a time)
        stale.unlink(missing_ok=True)
    return path


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoint files of a run, oldest first."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if _NAME.search(p.name))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Verify the checksum and load with weights_only=True (no pickled code runs)."""
    path = Path(path)
    sidecar = path.with_name(path.name + ".sha256")
    if not sidecar.is_file():
        raise CheckpointError(f"{path}: no checksum file {sidecar.name} (the write did not finish)")
    if _sha256(path) != sidecar.read_text().strip():
        raise CheckpointError(f"{path}: checksum mismatch (corrupt or truncated)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling refuses anything but tensors and plain values
        raise CheckpointError(f"{path}: refused to load ({type(err).__name__}: {str(err).splitlines()[0]})") from None
    if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: not a seqae checkpoint of format version {FORMAT_VERSION}")
    return payload


def load_run_weights(model: torch.nn.Module, ckpt: dict[str, Any], run_dir: Path) -> None:
    """Put a checkpoint of `run_dir` (`load_latest`) into the model its config.yaml describes, strictly;
    CheckpointError naming the keys that do not fit, never a half-loaded model."""
    problems = state_mismatch(model.state_dict(), ckpt["model"])
    if problems:
        raise CheckpointError(f"{run_dir / 'checkpoints'}: the step {ckpt['step']} weights do not fit the model "
                              f"{run_dir / 'config.yaml'} describes ({problems})")
    model.load_state_dict(ckpt["model"])


def load_latest(run_dir: Path) -> dict[str, Any] | None:
    """The newest usable checkpoint of a run (falling back past broken ones with a warning), or None."""
    candidates = list_checkpoints(run_dir)
    for i in range(len(candidates) - 1, -1, -1):
        try:
            return load_checkpoint(candidates[i])
        except CheckpointError as err:
            fallback = candidates[i - 1].name if i > 0 else "none left"
            warnings.warn(f"{err}; falling back to the previous checkpoint ({fallback})", stacklevel=2)
    return None
