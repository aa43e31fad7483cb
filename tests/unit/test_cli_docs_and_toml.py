"""Two small pieces the command line relies on: reading an action's ``Args:`` section, writing TOML."""

from __future__ import annotations

import math
import tomllib
from typing import Any

import pytest
from turnkit.actions import parameter_docs
from turnkit.cli_config import toml_text


def documented(name: str, when: str | None = None, limit: int = 5) -> None:
    """Do something.

    A paragraph that mentions name: not an entry, it is outside the section.

    Args:
        name: who it is for,
            on two lines.
        when (str): an ISO date.
        limit: how many.
            Indented deeper: still limit's.

    Returns:
        nothing: and this is no parameter.
    """


def undocumented(name: str) -> None:
    """Nothing about the parameters."""


def test_the_args_section_gives_each_parameter_its_text() -> None:
    assert parameter_docs(documented) == {
        "name": "who it is for, on two lines.",
        "when": "an ISO date.",
        "limit": "how many. Indented deeper: still limit's.",
    }
    assert parameter_docs(undocumented) == {}
    assert parameter_docs(lambda: None) == {}


@pytest.mark.parametrize(
    "data",
    [
        {"a": 1, "b": {"c": "x", "d": {"e": [1, 2], "f": {}}}, "g": [{"h": 1}, {"i": {"j": True}}]},
        {"odd key": 'quote " backslash \\ tab \t newline \n del \x7f nul \x00 é', "n": -0.5},
        {"t": {"only": {"nested": 1}}, "empty": [], "inline": [{"a": 1}, 2]},
        {"floats": [1.0, 1e300, float("inf"), -float("inf")]},
    ],
)
def test_toml_reads_back_equal(data: dict[str, Any]) -> None:
    assert tomllib.loads(toml_text(data)) == data


def test_toml_leaves_none_out_and_writes_nan() -> None:
    read = tomllib.loads(toml_text({"a": None, "b": {"c": None, "d": 1}, "e": [None, 2], "f": math.nan}))
    assert read["b"] == {"d": 1} and read["e"] == [2] and "a" not in read and math.isnan(read["f"])
