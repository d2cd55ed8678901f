"""Frozen dataclasses from plain data (parsed YAML): every value coerced to its field's type
(Literal choices, unions, tuples, mappings, finite floats), unknown keys refused, and every error
a `PipelineError` naming the dotted key, the value and what is allowed. Knows nothing of this
pipeline's sections: `pipeline/config.py` declares them.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Literal

from pipeline.errors import PipelineError


class FrozenDict(dict):
    """A read-only, hashable dict for mapping-valued params (the config is immutable)."""

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items())))

    def _read_only(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("config values are read-only")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _read_only  # type: ignore[assignment]


def as_flat_dict(section: Any, prefix: str = "") -> dict[str, Any]:
    """A config section as flat `key.sub: value` pairs (for MLflow params)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            out.update(as_flat_dict(value, prefix=key + "."))
        elif isinstance(value, (list, tuple, dict)):
            out[key] = ",".join(map(str, value)) if not isinstance(value, dict) else str(value)
        else:
            out[key] = value
    return out


def check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise PipelineError(f"{key}: {message}")


def build(cls: type, data: Any, *, prefix: str) -> Any:
    where = prefix.rstrip(".") or "params"
    if not isinstance(data, dict):
        raise PipelineError(f"{where}: expected a mapping, got {_show(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls) if f.name != "digest"}
    unknown = sorted(set(data) - fields, key=str)
    if unknown:
        raise PipelineError(
            f"{prefix}{unknown[0]}: unknown key; allowed keys here: {', '.join(sorted(fields))}"
        )
    kwargs = {name: _coerce(hints[name], value, f"{prefix}{name}") for name, value in data.items()}
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, prefix=key + ".")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        arms = [a for a in args if a is not type(None)]
        for arm in arms[:-1]:  # e.g. float | Literal["balance"]: the first arm that accepts it
            try:
                return _coerce(arm, value, key)
            except PipelineError:
                pass
        return _coerce(arms[-1], value, key)
    if origin is Literal:
        if not any(value == a and type(value) is type(a) for a in args):
            allowed = ", ".join(map(str, args))
            raise PipelineError(f"{key}: {_show(value)} is not allowed; choose one of: {allowed}")
        return value
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        if not isinstance(value, list):
            raise PipelineError(f"{key}: expected a list, got {_show(value)}")
        return tuple(_coerce(args[0], v, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise PipelineError(f"{key}: expected a list of {len(args)} values, got {_show(value)}")
        return tuple(_coerce(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin in (dict, FrozenDict):
        if not isinstance(value, dict):
            raise PipelineError(f"{key}: expected a mapping, got {_show(value)}")
        return FrozenDict({_coerce(args[0], k, f"{key} key"): _coerce(args[1], v, f"{key}.{k}")
                           for k, v in value.items()})
    return _scalar(tp, value, key)


def _scalar(tp: type, value: Any, key: str) -> Any:
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):
        try:  # YAML 1.1 reads `2e-4` as a string; accept it as the number it obviously is
            value = float(value)
        except ValueError:
            pass
    if tp is float and isinstance(value, float) and not math.isfinite(value):
        raise PipelineError(f"{key}: must be a finite number, got {value}")
    if not isinstance(value, tp) or (tp is not bool and isinstance(value, bool)):
        raise PipelineError(f"{key}: expected {tp.__name__}, got {_show(value)}")
    return value


def _show(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"
