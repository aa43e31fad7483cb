"""The README's "Write a plugin" example is real: its plugin and its test run together under pytest."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.markdown import blocks

README = Path(__file__).resolve().parents[2] / "README.md"

pytest_plugins = ["pytester"]


def section(text: str, heading: str) -> str:
    """The text of the ``## heading`` section, up to the next second-level heading."""
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def test_the_plugin_example_and_its_test_pass(pytester: pytest.Pytester) -> None:
    found = blocks(section(README.read_text(encoding="utf-8"), "Write a plugin"))
    python = [b.code for b in found if b.language == "python"]
    assert len(python) == 2, "the section shows a plugin and a test of it"
    pytester.makepyfile(test_readme_plugin="\n\n".join(python))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
