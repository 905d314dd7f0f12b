"""Typed hyper-parameters of the baselines, filled from ``ExperimentConfig.baseline_params``.

Each baseline declares a dataclass whose field names and defaults are the original constructor
arguments (session-rec / hf4rec ``VMContextKNN``, ``STAN``, ``VSKNN_STAN``, ``GRU4Rec``), so
``--baseline-params '{k: 500, sample_size: 1000}'`` and the original ``--vsknn-k 500`` flags mean
the same thing. Values may come typed (YAML) or as the strings the original command lines produce
(``"10"``, ``"False"``, ``"None"``, ``"100/100"`` for a list of layers). Unknown names and
ill-typed values are one-line :class:`SessrecError` s naming the parameter.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from sessrec.errors import SessrecError

P = TypeVar("P")

_TRUE = ("true", "yes", "1")
_FALSE = ("false", "no", "0")
_NONE = ("none", "null", "")


def parse_params(cls: type[P], values: Mapping[str, Any] | None, model: str) -> P:
    """Build ``cls`` from ``values``; rejects unknown names, coerces strings, then runs ``check()``."""
    names = [f.name for f in dataclasses.fields(cls)]
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in (values or {}).items():
        name = str(key).replace("-", "_")
        if name not in names:
            close = difflib.get_close_matches(name, names, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            if ":" in name and name.split(":")[0].strip() in names:  # YAML reads {k:50} as the key 'k:50'
                hint = f" (YAML needs a space after the colon: {{{name.split(':')[0].strip()}: {name.split(':', 1)[1]}}})"
            raise SessrecError(f"baseline_params: unknown parameter '{key}' for {model}{hint}; "
                               f"known: {', '.join(names)}")
        kwargs[name] = _coerce(value, hints[name], f"baseline_params: {model} parameter '{key}'")
    params = cls(**kwargs)
    check = getattr(params, "check", None)
    if check is not None:
        check()
    return params


def _members(hint: Any) -> tuple[Any, ...]:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return typing.get_args(hint)
    return (hint,)


def _coerce(value: Any, hint: Any, what: str) -> Any:
    """``value`` as the first member of the (union) type ``hint`` that accepts it."""
    members = _members(hint)
    if isinstance(value, str):
        text = value.strip()
        if type(None) in members and text.lower() in _NONE:
            return None
    elif value is None and type(None) in members:
        return None
    if members == (bool,) and type(value) is int and value in (0, 1):  # --vsknn-remind 1: the original's int 1 was true
        return bool(value)
    for member in members:
        ok, out = _as(value, member)
        if ok:
            return out
    allowed = " or ".join("None" if m is type(None) else getattr(m, "__name__", str(m)) for m in members)
    raise SessrecError(f"{what} expects {allowed}, got {value!r}")


def _as(value: Any, member: Any) -> tuple[bool, Any]:
    origin = typing.get_origin(member)
    if origin is list:
        (inner,) = typing.get_args(member)
        parts = value
        if isinstance(value, str):
            parts = [p for p in value.replace(",", "/").split("/") if p.strip()]
        elif not isinstance(value, (list, tuple)):
            parts = [value]
        out = [_as(p, inner) for p in parts]
        return (bool(out) and all(ok for ok, _ in out)), [v for _, v in out]
    if member is bool:
        if isinstance(value, bool):
            return True, value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return True, value.strip().lower() in _TRUE
        return False, None
    if isinstance(value, bool):  # True/False are never numbers here
        return False, None
    if member is int:
        if isinstance(value, int):
            return True, value
        number = _number(value)
        return (number is not None and float(number).is_integer()), (int(number) if number is not None else None)
    if member is float:
        number = _number(value)
        return number is not None, (float(number) if number is not None else None)
    if member is str:
        return isinstance(value, str), value
    return False, None


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def choice(model: str, name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise SessrecError(f"baseline_params: {model} parameter '{name}' must be one of "
                           f"{', '.join(map(str, allowed))} (got {value!r})")


def at_least(model: str, name: str, value: float, low: float, strict: bool = False) -> None:
    if value < low or (strict and value == low):
        sign = ">" if strict else ">="
        raise SessrecError(f"baseline_params: {model} parameter '{name}' must be {sign} {low} (got {value!r})")


def unsupported(model: str, name: str, value: Any, why: str) -> None:
    raise SessrecError(f"baseline_params: {model} parameter '{name}'={value!r} is not supported by sessrec ({why})")
