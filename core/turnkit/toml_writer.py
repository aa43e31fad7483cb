"""Writing plain data as TOML, for ``turnkit config check`` to print a configuration as it is read.

The standard library reads TOML but does not write it, and the runtime
needs nothing more than this: tables, arrays of tables, and the scalar,
array and inline-table values a configuration holds. ``None`` has no TOML
spelling: such keys are left out (a setting left unset reads the same).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def dumps(data: Mapping[str, Any]) -> str:
    """``data`` as a TOML document that ``tomllib.loads`` reads back equal (``None`` values left out)."""
    lines: list[str] = []
    _table(lines, [], data)
    return "\n".join(lines).strip("\n") + "\n"


def _table(lines: list[str], path: list[str], table: Mapping[str, Any]) -> None:
    plain = {k: v for k, v in table.items() if v is not None and not _is_table(v) and not _is_tables(v)}
    if path and (plain or not any(_is_table(v) or _is_tables(v) for v in table.values())):
        lines += ["", f"[{_dotted(path)}]"]
    lines += [f"{_key(key)} = {_value(value)}" for key, value in plain.items()]
    for key, value in table.items():
        if _is_table(value):
            _table(lines, [*path, key], value)
        elif _is_tables(value):
            for item in value:
                lines += ["", f"[[{_dotted([*path, key])}]]"]
                lines += [f"{_key(k)} = {_value(v)}" for k, v in item.items() if v is not None]


def _is_table(value: Any) -> bool:
    """A mapping written as a ``[table]`` of its own (an empty one is written inline, ``{}``)."""
    return isinstance(value, Mapping) and bool(value)


def _is_tables(value: Any) -> bool:
    """A list written as an array of tables (``[[name]]``)."""
    return isinstance(value, list) and bool(value) and all(isinstance(item, Mapping) for item in value)


def _dotted(path: list[str]) -> str:
    return ".".join(_key(part) for part in path)


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _string(key)


def _string(text: str) -> str:
    # JSON's escapes are TOML's, but for DEL, which TOML wants escaped too
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, Mapping):
        items = ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items() if v is not None)
        return f"{{ {items} }}" if items else "{}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(item) for item in value if item is not None) + "]"
    raise TypeError(f"no TOML value for {type(value).__name__} {value!r}")
