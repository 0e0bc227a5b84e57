"""Reading a config: a YAML file of overrides, `--set key=value` on top, validated into a dataclass."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import yaml

from seqae.config.sections import Config
from seqae.config.validation import ConfigError, from_dict


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `key.sub=value` overrides (values parsed as YAML) to a nested dict, returning a new dict."""
    result = yaml.safe_load(yaml.safe_dump(data)) or {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. model.hidden_dim=256")
        dotted, raw = item.split("=", 1)
        parts = dotted.strip().split(".")
        node = result
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {dotted}: {part} is not a section")
        node[parts[-1]] = yaml.safe_load(raw)
    return result


def load_config_dict(data: Mapping[str, Any] | None, cls: type = Config) -> Any:
    """Validate a nested mapping (e.g. parsed YAML) into `cls`."""
    return from_dict(cls, data or {})


def load_config(path: str | Path, overrides: list[str] | None = None, cls: type = Config) -> Any:
    """Read a YAML config file, apply `--set` overrides, validate."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return load_config_dict(apply_overrides(data, overrides or []), cls)
