"""`--set KEY=VALUE` on a settings dataclass, checked against each field's type.

`apply_sets(cfg, ["spotting.return_frac=0.5", "buffer_ms=5000"])` returns a copy of `cfg`
(a dataclass, nested dataclasses reached by dotted keys) with those fields replaced. A value
is JSON (`0.5`, `true`, `[1, 2]`) or a bare string; it must suit its field's type (a number
for a float, true/false for a switch), and the dataclass's own checks (`__post_init__`) run on
the result, so a bad value is refused with a message naming the key before anything runs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from pathlib import Path
from typing import Any, Callable, Sequence


class SettingError(ValueError):
    """A --set that names no setting, or a value its setting cannot take."""


def setting_names(cls: type, prefix: str = "") -> list[str]:
    """Every settable key of dataclass `cls`, nested ones dotted."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out += setting_names(tp, f"{prefix}{f.name}.")
        else:
            out.append(prefix + f.name)
    return out


def _parse(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw  # a bare string, e.g. landmarks=fast


def _check(tp: Any, value: Any, key: str) -> Any:
    """`value` as field type `tp` takes it, or SettingError saying what it takes."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _check(inner[0], value, key)
    if origin is typing.Literal:
        if value not in args:
            raise SettingError(f"--set {key}={value}: choose one of {', '.join(map(str, args))}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise SettingError(f"--set {key}={value}: takes true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SettingError(f"--set {key}={value}: takes a whole number")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SettingError(f"--set {key}={value}: takes a number")
        if not math.isfinite(value):
            raise SettingError(f"--set {key}={value}: takes a finite number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise SettingError(f"--set {key}={json.dumps(value)}: takes a word")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise SettingError(f"--set {key}={json.dumps(value)}: takes a JSON list, e.g. [1, 2]")
        kinds = [args[0]] * len(value) if len(args) == 2 and args[1] is Ellipsis else list(args)
        if len(value) != len(kinds):
            raise SettingError(f"--set {key}={json.dumps(value)}: takes a JSON list of {len(kinds)}")
        return tuple(_check(k, v, key) for k, v in zip(kinds, value))
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise SettingError(f"--set {key}={json.dumps(value)}: takes a JSON object, e.g. {{\"a\": 0.5}}")
        if args:
            return {_check(args[0], k, key): _check(args[1], v, key) for k, v in value.items()}
        return value
    if tp is Path:
        if not isinstance(value, str):
            raise SettingError(f"--set {key}={json.dumps(value)}: takes a path")
        return Path(value)
    raise SettingError(f"--set {key}: this setting cannot be set from the command line; use the Python API")


def apply_sets(cfg: Any, items: Sequence[str], error: Callable[[str], Exception] = SettingError) -> Any:
    """A copy of dataclass `cfg` with each "KEY=VALUE" of `items` applied (see the module)."""
    if not items:
        return cfg
    known = setting_names(type(cfg))
    changes: dict[tuple[str, ...], Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise error(f"--set {item!r}: write KEY=VALUE, e.g. --set {known[0]}=...")
        if key not in known:
            near = [k for k in known if k.endswith("." + key) or k.split(".")[-1] == key.split(".")[-1]]
            hint = f"; did you mean {', '.join(near)}?" if near else f"; settings: {', '.join(known)}"
            raise error(f"--set {key}: no such setting{hint}")
        path = tuple(key.split("."))
        owner = cfg
        for part in path[:-1]:
            owner = getattr(owner, part)
        tp = typing.get_type_hints(type(owner))[path[-1]]
        try:
            changes[path] = _check(tp, _parse(raw), key)
        except SettingError as e:
            raise error(str(e)) from None

    def rebuild(obj: Any, prefix: tuple[str, ...]) -> Any:
        kw = {}
        for f in dataclasses.fields(obj):
            p = prefix + (f.name,)
            if p in changes:
                kw[f.name] = changes[p]
            elif any(k[:len(p)] == p for k in changes) and dataclasses.is_dataclass(getattr(obj, f.name)):
                kw[f.name] = rebuild(getattr(obj, f.name), p)
        try:
            return dataclasses.replace(obj, **kw) if kw else obj
        except (ValueError, TypeError) as e:  # the dataclass's own range checks
            raise error(f"--set: {e}") from None

    return rebuild(cfg, ())
