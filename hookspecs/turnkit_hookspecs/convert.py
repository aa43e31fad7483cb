"""The one cattrs converter of the contract, and JSON helpers around it.

Blocks and sources are tagged unions on ``type`` (the class's ``TYPE``), so a
stored message reads back as the same classes. Structuring errors are turned
into :class:`PayloadError`, whose message names the path of each bad field
(``$.blocks[0].text``) rather than cattrs' nested exception groups. The
model's read-only containers unstructure to plain ``dict`` and ``list``, so
what :func:`unstructure` returns shares nothing with the value.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.cols import homogenous_tuple_structure_factory, is_sequence, list_structure_factory
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn
from cattrs.v import format_exception

from .frozen import FrozenDict, FrozenList, freeze_mapping
from .model import Block, Source

T = TypeVar("T")

converter = cattrs.Converter(forbid_extra_keys=True)


def _strict(expected: type, accepted: tuple[type, ...]) -> Any:
    """A hook that refuses lossy coercion (cattrs would turn ``3`` into ``"3"``)."""

    def structure_strict(value: Any, _: type) -> Any:
        if not isinstance(value, accepted) or (expected is not bool and isinstance(value, bool)):
            raise TypeError(f"expected {expected.__name__}, got {type(value).__name__} {value!r}")
        return expected(value)

    return structure_strict


converter.register_structure_hook(str, _strict(str, (str,)))
converter.register_structure_hook(int, _strict(int, (int,)))
converter.register_structure_hook(float, _strict(float, (int, float)))
converter.register_structure_hook(bool, _strict(bool, (bool,)))


def _is_list_or_tuple(type_: Any) -> bool:
    """Lists and homogeneous tuples (``tuple[X, ...]``); fixed-length tuples keep cattrs' hook."""
    origin = typing.get_origin(type_)
    if origin is tuple:
        return typing.get_args(type_)[-1:] == (Ellipsis,)
    return origin is list and bool(is_sequence(type_))


def _no_scalar_sequences(type_: Any, conv: cattrs.Converter) -> Callable[[Any, Any], Any]:
    """Refuse a string or a mapping where a list is expected (cattrs would iterate it)."""
    if typing.get_origin(type_) is tuple:
        inner = homogenous_tuple_structure_factory(type_, conv)
    else:
        inner = list_structure_factory(type_, conv)

    def structure_sequence(value: Any, cls: Any) -> Any:
        if isinstance(value, str | bytes | dict):
            raise TypeError(f"expected a list, got {type(value).__name__} {value!r}")
        return inner(value, cls)

    return structure_sequence


converter.register_structure_hook_factory(_is_list_or_tuple, _no_scalar_sequences)


def _is_frozen_dict(type_: Any) -> bool:
    return type_ is FrozenDict or typing.get_origin(type_) is FrozenDict


def _is_frozen(type_: Any) -> bool:
    return _is_frozen_dict(type_) or type_ is FrozenList or typing.get_origin(type_) is FrozenList


def _frozen_dict_structure(type_: Any, conv: cattrs.Converter) -> Callable[[Any, Any], Any]:
    """Structure ``FrozenDict[K, V]`` as ``dict[K, V]`` (same checks and errors), then freeze it."""
    key, value = typing.get_args(type_) or (Any, Any)
    plain: Any = dict[key, value]  # type: ignore[valid-type]
    inner = conv.get_structure_hook(plain)

    def structure_frozen_dict(value: Any, _: Any) -> Any:
        return freeze_mapping(inner(value, plain))

    return structure_frozen_dict


converter.register_structure_hook_factory(_is_frozen_dict, _frozen_dict_structure)


def _unstructure_frozen(value: FrozenDict[Any, Any] | FrozenList[Any]) -> dict[Any, Any] | list[Any]:
    """A plain ``dict`` or ``list`` of unstructured items: plain data shares nothing with the value."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return [_plain(item) for item in value]


#: Item types that are plain data already; checked before asking the converter, per item.
_PLAIN_TYPES = frozenset({str, int, float, bool, type(None)})


def _plain(item: Any) -> Any:
    kind = type(item)
    if kind in _PLAIN_TYPES:
        return item
    if kind is FrozenDict or kind is FrozenList:
        return _unstructure_frozen(item)
    return converter.unstructure(item)


converter.register_unstructure_hook_func(_is_frozen, _unstructure_frozen)


def _tagged_union(union: Any) -> None:
    """Un/structure ``union`` with a ``type`` key naming each member's ``TYPE``.

    Written here rather than with ``cattrs.strategies.configure_tagged_union``
    because that strategy mutates the input payload and reports an unknown tag
    as a bare ``KeyError``; ours names the tag and the accepted ones.
    """
    members: dict[str, type] = {cls.TYPE: cls for cls in typing.get_args(union)}
    accepted = ", ".join(sorted(members))

    def structure_member(payload: Any, _: Any) -> Any:
        if not isinstance(payload, dict):
            raise TypeError(f"expected an object with a 'type' key, got {type(payload).__name__}")
        if "type" not in payload:
            raise ValueError(f"missing 'type' (expected one of {accepted})")
        tag = payload["type"]
        cls = members.get(tag) if isinstance(tag, str) else None
        if cls is None:
            raise ValueError(f"unknown type {tag!r} (expected one of {accepted})")
        return converter.structure(payload, cls)

    def structure_optional(payload: Any, _: Any) -> Any:
        return None if payload is None else structure_member(payload, union)

    converter.register_structure_hook(union, structure_member)
    # ``Source | None`` is a distinct type to cattrs, which would otherwise
    # fall back to its own attrs-union handling and choke on the ``type`` key.
    converter.register_structure_hook(union | None, structure_optional)
    converter.register_unstructure_hook(union, converter.unstructure)
    for tag, cls in members.items():
        fields_of: Any = make_dict_unstructure_fn(cls, converter)
        converter.register_unstructure_hook(cls, partial(_with_tag, tag, fields_of))
        # A member's JSON carries its tag, so structuring the member class
        # directly (``from_json(text, TextBlock)``) accepts it too.
        from_fields: Any = make_dict_structure_fn(cls, converter, _cattrs_forbid_extra_keys=True)
        converter.register_structure_hook(cls, partial(_without_tag, tag, from_fields))


def _with_tag(tag: str, fields_of: Any, value: Any) -> dict[str, Any]:
    return {"type": tag, **fields_of(value)}


def _without_tag(tag: str, from_fields: Any, payload: Any, cls: type) -> Any:
    if isinstance(payload, dict) and "type" in payload:
        if payload["type"] != tag:
            raise ValueError(f"type {payload['type']!r} does not match {cls.__name__} (expected {tag!r})")
        payload = {k: v for k, v in payload.items() if k != "type"}
    return from_fields(payload, cls)


_tagged_union(Source)
_tagged_union(Block)


class PayloadError(ValueError):
    """A payload does not match the contract; ``problems`` lists each bad path."""

    def __init__(self, target: str, problems: list[str]) -> None:
        self.target = target
        self.problems = problems
        super().__init__(f"invalid {target}: " + "; ".join(problems))


def _describe(exc: BaseException, type_: Any) -> str:
    """Word a leaf error: our hooks' own messages are already precise."""
    if typing.get_origin(type_) is typing.Literal:
        return "expected one of " + ", ".join(repr(v) for v in typing.get_args(type_))
    if isinstance(exc, (TypeError, ValueError)) and str(exc):
        return str(exc)
    return format_exception(exc, type_)


def structure(payload: Any, cls: type[T]) -> T:
    """Build a ``cls`` from plain data, or raise :class:`PayloadError`."""
    name = getattr(cls, "__name__", str(cls))
    if attrs.has(cls) and not isinstance(payload, dict):
        raise PayloadError(name, [f"expected an object, got {type(payload).__name__} @ $"])
    try:
        return converter.structure(payload, cls)
    except cattrs.BaseValidationError as exc:
        raise PayloadError(name, cattrs.transform_error(exc, format_exception=_describe)) from exc
    except (TypeError, ValueError) as exc:
        raise PayloadError(name, [f"{exc} @ $"]) from exc


def unstructure(value: Any) -> Any:
    """Turn a contract value into plain JSON-ready data."""
    return converter.unstructure(value)


def to_json(value: Any) -> str:
    """Serialise a contract value to compact JSON."""
    return _COMPACT.encode(unstructure(value))


#: One encoder for every call: ``json.dumps`` with options builds a new one each time, which
#: cost more than encoding a short message (every turn stores two).
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def from_json(text: str | bytes, cls: type[T]) -> T:
    """Parse JSON into ``cls``; malformed JSON is a :class:`PayloadError` too."""
    try:
        payload = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PayloadError(getattr(cls, "__name__", str(cls)), [f"not JSON: {exc}"]) from exc
    return structure(payload, cls)
