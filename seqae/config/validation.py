"""Checking plain values (parsed YAML) against dataclass annotations: one ConfigError line naming the key."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Annotated, Any, Literal, Mapping


class ConfigError(ValueError):
    """A configuration problem; the message names the key and what is allowed."""


def _check(cond: bool, key: str, message: str) -> None:
    if not cond:
        raise ConfigError(f"{key}: {message}")


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Annotated:
        return _type_name(typing.get_args(tp)[0])
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    if origin is tuple:
        return "a list of " + ", ".join(_type_name(a) for a in typing.get_args(tp) if a is not Ellipsis)
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against the annotation `tp`; return it converted (lists to tuples, ints to floats).

    `Annotated[T, convert]` hands the value to `convert(value, key)` (e.g. a `noise:` entry, whose `type`
    picks its dataclass); a dataclass accepts an instance of itself as well as a mapping of its fields."""
    origin = typing.get_origin(tp)
    if origin is Annotated:
        return tp.__metadata__[0](value, key)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        _check(isinstance(value, Mapping), key, f"expected a mapping of {tp.__name__} fields, got {value!r}")
        return from_dict(tp, value, prefix=key)
    if origin is Literal:
        _check(value in typing.get_args(tp), key, f"got {value!r}; allowed: {_type_name(tp)}")
        return value
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _convert(value, arg, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: got {value!r}; expected {_type_name(tp)}")
    if tp is type(None):
        _check(value is None, key, f"expected null, got {value!r}")
        return None
    if origin is tuple:
        _check(isinstance(value, (list, tuple)), key, f"expected a list, got {value!r}")
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        _check(len(value) == len(args), key, f"expected {len(args)} values, got {len(value)}")
        return tuple(_convert(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if tp is Any:
        return value
    if tp is float:
        if isinstance(value, str):  # PyYAML reads 1e-3 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        _check(number, key, f"expected a number, got {value!r}")
        return float(value)
    if tp is int:
        _check(isinstance(value, int) and not isinstance(value, bool), key, f"expected an integer, got {value!r}")
        return value
    if tp is bool:
        _check(isinstance(value, bool), key, f"expected true or false, got {value!r}")
        return value
    if tp is str:
        _check(isinstance(value, str), key, f"expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config annotation {tp!r} at {key}")


def convert_fields(cls: type, data: Mapping[str, Any], *, prefix: str = "") -> dict[str, Any]:
    """The keyword arguments of the dataclass `cls` from a plain mapping; unknown keys and wrong types raise."""
    hints = typing.get_type_hints(cls, include_extras=True)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        full = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            raise ConfigError(f"{full}: unknown key; allowed: {', '.join(names)}")
        kwargs[key] = _convert(value, hints[key], full)
    return kwargs


def from_dict(cls: type, data: Mapping[str, Any], *, prefix: str = "") -> Any:
    """Build the dataclass `cls` from a plain mapping; unknown keys and wrong types raise ConfigError."""
    kwargs = convert_fields(cls, data, prefix=prefix)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except TypeError as err:  # a required field without a default
        raise ConfigError(f"{prefix or cls.__name__}: {err}") from None


def to_dict(config: Any) -> dict[str, Any]:
    """Plain, YAML/JSON-serialisable dict of a config (tuples become lists)."""

    def plain(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(config))
