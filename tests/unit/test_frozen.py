"""The contract's read-only containers refuse every change, yet read, compare and encode as plain ones."""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Callable
from typing import Any

import pytest
from turnkit_hookspecs.frozen import EMPTY, FrozenDict, FrozenList, freeze, freeze_mapping

PLAIN: dict[str, Any] = {"a": 1, "list": [1, {"b": [2, 3]}], "dict": {"c": {"d": []}}, "none": None}


def frozen() -> FrozenDict[str, Any]:
    return FrozenDict(copy.deepcopy(PLAIN))


DICT_CHANGES: dict[str, Callable[[Any], Any]] = {
    "setitem": lambda d: d.__setitem__("a", 2),
    "delitem": lambda d: d.__delitem__("a"),
    "update": lambda d: d.update(a=2),
    "ior": lambda d: d.__ior__({"a": 2}),
    "setdefault": lambda d: d.setdefault("new", 1),
    "pop": lambda d: d.pop("a"),
    "pop-missing": lambda d: d.pop("missing", None),
    "popitem": lambda d: d.popitem(),
    "clear": lambda d: d.clear(),
}

LIST_CHANGES: dict[str, Callable[[Any], Any]] = {
    "setitem": lambda x: x.__setitem__(0, 9),
    "setslice": lambda x: x.__setitem__(slice(0, 1), [9]),
    "delitem": lambda x: x.__delitem__(0),
    "iadd": lambda x: x.__iadd__([9]),
    "imul": lambda x: x.__imul__(2),
    "append": lambda x: x.append(9),
    "extend": lambda x: x.extend([9]),
    "insert": lambda x: x.insert(0, 9),
    "pop": lambda x: x.pop(),
    "remove": lambda x: x.remove(1),
    "clear": lambda x: x.clear(),
    "sort": lambda x: x.sort(),
    "reverse": lambda x: x.reverse(),
}


@pytest.mark.parametrize("change", list(DICT_CHANGES))
def test_a_frozen_dict_refuses_every_change_saying_what_to_do(change: str) -> None:
    value = frozen()
    with pytest.raises(TypeError) as info:
        DICT_CHANGES[change](value)
    message = str(info.value)
    assert message.startswith("cannot ") and "FrozenDict" in message and "read-only" in message
    assert "attrs.evolve(message, metadata={**message.metadata, key: value})" in message
    assert "\n" not in message
    assert value == PLAIN


@pytest.mark.parametrize("change", list(LIST_CHANGES))
def test_a_frozen_list_refuses_every_change(change: str) -> None:
    value = frozen()["list"]
    assert isinstance(value, FrozenList)
    with pytest.raises(TypeError, match=r"^cannot .* a FrozenList: .*read-only"):
        LIST_CHANGES[change](value)
    assert value == PLAIN["list"]


def test_the_augmented_operators_refuse_too() -> None:
    value, items = frozen(), frozen()["list"]
    with pytest.raises(TypeError, match="cannot update a FrozenDict"):
        value |= {"a": 2}
    with pytest.raises(TypeError, match="cannot extend a FrozenList"):
        items += [9]
    with pytest.raises(TypeError, match="cannot extend a FrozenList"):
        items *= 2
    assert value == PLAIN and items == PLAIN["list"]


def test_freezing_is_deep_and_shares_nothing_with_the_input() -> None:
    source = copy.deepcopy(PLAIN)
    value = FrozenDict(source)
    assert isinstance(value["dict"], FrozenDict) and isinstance(value["dict"]["c"], FrozenDict)
    assert isinstance(value["list"], FrozenList) and isinstance(value["list"][1]["b"], FrozenList)
    source["list"][1]["b"].append(4)
    source["dict"]["c"]["d"].append("x")
    assert value == PLAIN


def test_it_reads_compares_and_encodes_as_a_plain_dict_and_list() -> None:
    value = frozen()
    assert isinstance(value, dict) and isinstance(value["list"], list)
    assert value == PLAIN and PLAIN.__eq__(value) and value["list"] == [1, {"b": [2, 3]}]
    assert value["list"] != (1, {"b": [2, 3]}), "a list, not a tuple: it equals what JSON reads back"
    assert json.dumps(value) == json.dumps(PLAIN)
    assert json.dumps(value, indent=2, sort_keys=True) == json.dumps(PLAIN, indent=2, sort_keys=True)
    assert repr(value) == repr(PLAIN)
    assert value.get("missing", 0) == 0 and sorted(value) == sorted(PLAIN) and len(value) == len(PLAIN)


@pytest.mark.parametrize(
    "copy_of",
    [dict, lambda d: d.copy(), lambda d: {**d}, lambda d: d | {}, lambda d: {} | d],
    ids=["dict()", "copy()", "unpack", "or", "ror"],
)
def test_copies_are_plain_and_mutable(copy_of: Callable[[Any], dict[str, Any]]) -> None:
    value = frozen()
    mine = copy_of(value)
    assert type(mine) is dict
    mine["a"] = 2
    assert value["a"] == 1


def test_list_copies_are_plain() -> None:
    items = frozen()["list"]
    for mine in (list(items), items.copy(), items + [9], items[:], items * 1):  # noqa: RUF005
        assert type(mine) is list
        mine.append(9)
    assert items == PLAIN["list"]


@pytest.mark.parametrize(
    "clone",
    [
        lambda v: pickle.loads(pickle.dumps(v)),
        lambda v: pickle.loads(pickle.dumps(v, protocol=0)),
        copy.deepcopy,
        copy.copy,
    ],
    ids=["pickle", "pickle-0", "deepcopy", "copy"],
)
def test_pickle_and_copy_keep_it_frozen(clone: Callable[[Any], Any]) -> None:
    value = frozen()
    again = clone(value)
    assert again == value
    assert isinstance(again, FrozenDict) and isinstance(again["list"], FrozenList)
    assert isinstance(again["list"][1], FrozenDict)
    with pytest.raises(TypeError):
        again["list"].append(1)


def test_a_shallow_copy_is_the_value_itself() -> None:
    value = frozen()
    assert copy.copy(value) is value and copy.copy(value["list"]) is value["list"]


def test_tuples_and_sets_keep_their_kind_with_frozen_members() -> None:
    value = freeze({"pair": ({"a": [1]}, [2]), "set": {1, 2}})
    assert isinstance(value["pair"], tuple) and isinstance(value["pair"][0], FrozenDict)
    assert isinstance(value["pair"][0]["a"], FrozenList) and isinstance(value["pair"][1], FrozenList)
    assert value["set"] == frozenset({1, 2}) and isinstance(value["set"], frozenset)


def test_scalars_and_other_objects_are_kept_as_they_are() -> None:
    thing = object()
    for item in ("text", 3, 2.5, True, None, b"raw", thing):
        assert freeze(item) is item


def test_frozen_values_are_not_copied_again() -> None:
    value = frozen()
    assert freeze(value) is value and freeze_mapping(value) is value
    assert freeze(value["list"]) is value["list"]


def test_empty_mappings_share_one_instance() -> None:
    assert freeze_mapping({}) is EMPTY and freeze({}) is EMPTY
    assert FrozenDict({"a": {}})["a"] is EMPTY
    assert EMPTY == {}
