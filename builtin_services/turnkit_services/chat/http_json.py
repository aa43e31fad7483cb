"""Strict JSON for request bodies: what Python's decoder accepts but the agent must not take in.

``json.loads`` lets through things that fail later, after a session was
created or a message half stored, or that crash the server outright:

- a lone surrogate (``"\\ud800"``): a valid escape, but no UTF-8 text can
  hold it, so writing it to the store or into a response fails;
- a NUL character: PostgreSQL refuses it in text and JSON;
- ``NaN`` and ``Infinity``, which are not JSON, and ``1e999``, which
  becomes one of them;
- an integer of thousands of digits, which Python refuses to turn back
  into text;
- a key given twice, which parsers resolve differently (the first or the
  last wins), so that a proxy and the agent could read two requests;
- nesting so deep that it exhausts the interpreter's stack.

:func:`loads` refuses each with a :class:`JsonRefused` that says what and
where, as a JSON path (``$.messages[0].content``). Everything is checked
while the body is parsed and walked once, iteratively, before any route
acts on it.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

#: The deepest nesting of objects and arrays accepted (the top-level object is 1).
MAX_DEPTH = 64
#: The most digits an integer may have.
MAX_DIGITS = 100
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

#: A location in a document: the parent's, then a key or an index (``None`` is ``$``).
Path = tuple["Path", str | int] | None


class JsonRefused(ValueError):
    """A body that is JSON to Python but not to the agent; ``where`` is the JSON path of the problem."""

    def __init__(self, problem: str, where: str) -> None:
        super().__init__(f"{problem} @ {where}")
        self.problem = problem
        self.where = where


class _Refused:
    """What a decoder hook returns instead of a value it refuses; the walk reports it with its path."""

    def __init__(self, problem: str) -> None:
        self.problem = problem


def loads(text: str) -> Any:
    """``text`` parsed as JSON, or :class:`JsonRefused` (or ``json.JSONDecodeError`` for a syntax error)."""
    try:
        value = json.loads(
            text,
            parse_int=_integer,
            parse_float=_float,
            parse_constant=_constant,
            object_pairs_hook=_object,
        )
    except RecursionError:
        raise JsonRefused(f"nested deeper than {MAX_DEPTH} levels", "$") from None
    _check(value)
    return value


def json_path(path: Path) -> str:
    """``path`` as a JSON path (``$``, ``$.messages[0].content``, ``$['a b']``), its middle cut if long."""
    steps: list[str] = []
    while path is not None:
        path, step = path
        if isinstance(step, int):
            steps.append(f"[{step}]")
        elif _NAME.fullmatch(step):
            steps.append(f".{step}")
        else:
            steps.append(f"[{step[:40]!r}]")
    written = "$" + "".join(reversed(steps))
    return written if len(written) <= 100 else f"{written[:48]}…{written[-48:]}"


def _check(document: Any) -> None:
    """Refuse an unstorable string or key, a refused value, or a container nested too deep.

    Only containers go on the stack, and a path is built only for them and
    for a problem found: most of a big document is scalars.
    """
    if not isinstance(document, (dict, list)):
        _check_item(document, None)
        return
    stack: list[tuple[dict[str, Any] | list[Any], Path, int]] = [(document, None, 1)]
    while stack:
        container, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise JsonRefused(f"nested deeper than {MAX_DEPTH} levels", json_path(path))
        items = container.items() if isinstance(container, dict) else enumerate(container)
        for key, item in items:
            if isinstance(key, str) and _suspect(key):
                _check_string(key, path, "a key")
            if isinstance(item, (dict, list)):
                stack.append((item, (path, key), depth + 1))
            elif isinstance(item, (str, _Refused)):
                _check_item(item, (path, key))


def _check_item(item: Any, path: Path) -> None:
    if isinstance(item, _Refused):
        raise JsonRefused(item.problem, json_path(path))
    if isinstance(item, str) and _suspect(item):
        _check_string(item, path)


def _suspect(text: str) -> bool:
    """Whether ``text`` may hold a NUL or a surrogate; fast, as a string knows whether it is ASCII."""
    return "\x00" in text or not text.isascii()


def _check_string(text: str, path: Path, what: str = "the string") -> None:
    nul = text.find("\x00")
    if nul >= 0:
        raise JsonRefused(f"{what} holds a NUL character at character {nul}", json_path(path))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        at = exc.start
        raise JsonRefused(
            f"{what} holds a lone surrogate ({text[at]!r}) at character {at}", json_path(path)
        ) from None


def _integer(literal: str) -> int | _Refused:
    digits = len(literal.lstrip("-"))
    if digits > MAX_DIGITS:
        return _Refused(f"an integer of {digits} digits (at most {MAX_DIGITS})")
    return int(literal)


def _float(literal: str) -> float | _Refused:
    value = float(literal)
    return _Refused(f"the number {literal[:40]} is out of range") if math.isinf(value) else value


def _constant(literal: str) -> _Refused:
    return _Refused(f"{literal} is not JSON")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any] | _Refused:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            return _Refused(f"the key {key[:40]!r} appears twice")
        found[key] = value
    return found
