"""Typed options: every plugin declares a frozen dataclass `Options`; the CLI parses `--option key=value` into it."""

from __future__ import annotations

import dataclasses
import difflib
import typing
from typing import Any

from .errors import InputError


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """A plugin without options."""


def option_table(cls: type) -> list[dict[str, Any]]:
    """[{name, type, default, help}] for `zoo show`."""
    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        rows.append({"name": f.name, "type": getattr(hints[f.name], "__name__", str(hints[f.name])),
                     "default": default, "help": f.metadata.get("help", "")})
    return rows


def _convert(value: Any, tp: Any, name: str) -> Any:
    if not isinstance(value, str):
        return value
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value.lower() in ("none", "null", "") and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(value, a, name)
            except InputError:
                continue
        raise InputError(f"option {name}={value!r} does not fit {tp}")
    try:
        if tp is bool:
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if tp in (int, float, str):
            return tp(value)
        if origin in (tuple, list):
            items = [v for v in value.split(",") if v != ""]
            inner = args[0] if args else str
            return (tuple if origin is tuple else list)(_convert(v, inner, name) for v in items)
        if typing.get_origin(tp) is typing.Literal:
            if value in args:
                return value
            raise ValueError
    except ValueError:
        raise InputError(f"option {name}={value!r} is not a valid {getattr(tp, '__name__', tp)}") from None
    return value


def make_options(cls: type, overrides: dict[str, Any] | None = None) -> Any:
    """Build `cls(**overrides)`, converting strings to the declared types; unknown keys get 'did you mean'."""
    overrides = dict(overrides or {})
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in overrides:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; valid options: {', '.join(names) or 'none'}"
            raise InputError(f"unknown option '{key}'{hint}")
    return cls(**{k: _convert(v, hints[k], k) for k, v in overrides.items()})


def parse_option_strings(pairs: typing.Iterable[str], method: str | None = None) -> dict[str, str]:
    """['steps=100', 'lr=0.1'] -> {'steps': '100', 'lr': '0.1'}. With `method`, 'METHOD.KEY=VALUE' (the form
    `zoo bench -o` uses) is accepted too when METHOD is that method."""
    out = {}
    for p in pairs:
        if "=" not in p:
            raise InputError(f"option '{p}' must look like key=value")
        k, v = p.split("=", 1)
        k = k.strip()
        if method is not None and "." in k:
            owner, _, rest = k.partition(".")
            if owner == method:
                k = rest
            elif "@" not in method:  # a composition's options name their part: pti.steps (zoo.composition)
                raise InputError(f"option '{p}' is for '{owner}', but this command runs '{method}' (use {rest}=...)")
        out[k.replace("-", "_")] = v.strip()
    return out
