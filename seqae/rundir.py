"""The files of a run directory that training keeps consistent across restarts: config.yaml (`resolve_config`:
a resumed run keeps the config it was started with) and metrics.jsonl (`MetricsLog`: cut back to the checkpoint's
step on resume, so a resumed run logs the same lines as an uninterrupted one). Checkpoints: seqae.checkpoint."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from seqae.checkpoint import load_latest
from seqae.config import Config, ConfigError, load_config_dict, to_dict

RESUMABLE_CHANGES = ("train.max_steps", "train.threads", "train.progress", "train.cpu_gemm", "train.cpu_malloc")
"""Keys a resumed run may change (e.g. to train for longer); any other difference is refused."""


BUILT_FROM_CONFIG = ("tokenizer.model", "tokenizer.vocab", "target_tokenizer.model", "target_tokenizer.vocab",
                     "cmvn.json", "characters.json")
"""Files a run builds from its config and data and reuses when rerun; a run that starts over with another config
removes them (feature caches are keyed by their settings and stay; the log is cut back to step 0 anyway)."""


def resolve_config(config, run_dir: Path, cls: type = Config):
    """Write config.yaml for a new run; for an existing run, insist the config is the one it was started with
    (except for RESUMABLE_CHANGES, which are taken and written back). A run with no usable checkpoint yet (it
    stopped before its first, e.g. on a data error) starts over with the new config instead, with one line naming
    the changed keys. `cls`: the config class of the run."""
    path = run_dir / "config.yaml"
    if path.is_file():
        saved = load_config_dict(yaml.safe_load(path.read_text()), cls)
        old, new = _flatten(to_dict(saved)), _flatten(to_dict(config))
        diff = [k for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)]
        refused = [k for k in diff if k not in RESUMABLE_CHANGES]
        if refused and load_latest(run_dir) is not None:  # loads a checkpoint only when the config changed
            raise ConfigError(f"{run_dir}: the run was started with another config (differs in: {', '.join(refused)}); "
                              "use a new run directory")
        if refused:  # removed before the new config is written, so a kill in between cannot pair them
            for name in BUILT_FROM_CONFIG:
                (run_dir / name).unlink(missing_ok=True)
            print(f"{run_dir}: the run has no checkpoint yet, so it starts over with the new config "
                  f"(changed: {', '.join(diff)})")
        if not diff:
            return saved
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(".config.yaml.tmp")  # atomic: a kill mid-write must not leave a truncated config
    tmp.write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
    os.replace(tmp, path)
    return config


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def _before(record: dict[str, Any], step: int) -> bool:
    """Whether a log record was written before the checkpoint of `step`: a skip logged at that step came after it,
    and the final record is written again by `finish()`."""
    at = record.get("step", 0)
    return record.get("eval") != "final" and (at < step or (at == step and "skipped" not in record))


class MetricsLog:
    """The JSONL metrics log; on resume it is cut back to the checkpoint's step."""

    def __init__(self, path: Path, resume_step: int, *, enabled: bool = True) -> None:
        self.path, self.enabled = path, enabled
        if not enabled:  # ranks other than 0 log nothing
            return
        kept = []
        if path.is_file() and resume_step > 0:
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:  # a line a kill cut short
                    print(f"{path}:{number}: not a JSON record (a write cut short?); dropped")
                    continue
                if _before(record, resume_step):
                    kept.append(line)
        tmp = path.with_name(f".{path.name}.tmp")  # atomic: a kill while cutting back must not lose the log
        tmp.write_text("".join(line + "\n" for line in kept))
        os.replace(tmp, path)

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
