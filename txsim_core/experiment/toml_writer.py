"""Write a configuration back as TOML (the standard library reads TOML but does not write it)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    if isinstance(value, Mapping):
        items = (f"{_key(k)} = {_scalar(v)}" for k, v in value.items() if v is not None)
        return "{ " + ", ".join(items) + " }"
    raise TypeError(f"Cannot write {value!r} ({type(value).__name__}) as TOML.")


def _key(key: str) -> str:
    bare = key and all(c.isalnum() or c in "-_" for c in key)
    return key if bare else json.dumps(key)


def _is_table_list(value: Any) -> bool:
    return (
        isinstance(value, (list, tuple))
        and bool(value)
        and all(isinstance(v, Mapping) for v in value)
    )


def _write_table(lines: list[str], table: Mapping[str, Any], path: list[str]) -> None:
    for key, value in table.items():
        if value is not None and not isinstance(value, Mapping) and not _is_table_list(value):
            lines.append(f"{_key(key)} = {_scalar(value)}")
    for key, value in table.items():
        name = ".".join(_key(p) for p in [*path, key])
        if isinstance(value, Mapping):
            lines += ["", f"[{name}]"]
            _write_table(lines, value, [*path, key])
        elif _is_table_list(value):
            for item in value:
                lines += ["", f"[[{name}]]"]
                _write_table(lines, item, [*path, key])


def dumps(config: Mapping[str, Any]) -> str:
    """The TOML text of a nested mapping; ``None`` values are left out (TOML has no null)."""
    lines: list[str] = []
    _write_table(lines, config, [])
    return "\n".join(lines).lstrip("\n") + "\n"
