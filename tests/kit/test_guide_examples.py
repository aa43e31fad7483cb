"""The plugin author's guide (``docs/plugin-guide.md``) cannot rot: its examples run here.

Every ```python block of the guide must follow a ``<!-- test -->`` line and
be a complete pytest module; they are written to files of their own (named by
the block's line in the guide) and run together in one pytest subprocess,
where the ``turnkit_agent`` fixture comes from turnkit's ``pytest11`` entry
point as it does in a plugin's own test suite. Every ```toml block must be a
valid turnkit configuration, and every method of the fixture must be shown.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from turnkit.config import parse_config
from turnkit.scaffold import PluginNames, render
from turnkit.testing import AgentHarness

from tests.support.markdown import MARKER, Block, blocks

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "plugin-guide.md"

pytest_plugins = ["pytester"]


GUIDE_BLOCKS = blocks(GUIDE.read_text(encoding="utf-8"))
PYTHON = [block for block in GUIDE_BLOCKS if block.language == "python"]


def test_every_python_block_is_marked_to_run() -> None:
    unmarked = [block.line for block in PYTHON if not block.marked]
    assert PYTHON and not unmarked, f"python blocks at lines {unmarked} lack a preceding {MARKER}"


def test_every_python_block_runs_and_passes(pytester: pytest.Pytester) -> None:
    files = {f"test_guide_line_{block.line}": block.code for block in PYTHON}
    pytester.makepyfile(**files)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", "-rA")
    output = result.stdout.str()
    written = sum(len(re.findall(r"^def test_", code, re.M)) for code in files.values())
    result.assert_outcomes(passed=written)
    for name in files:  # each block holds tests, and they ran
        assert f"PASSED {name}.py::" in output, f"{name}: no test ran\n{output}"


@pytest.mark.parametrize(
    "block", [b for b in GUIDE_BLOCKS if b.language == "toml"], ids=lambda b: f"line-{b.line}"
)
def test_every_toml_block_is_a_configuration_or_what_the_generator_writes(block: Block) -> None:
    """A ``[project…]`` excerpt is the generated pyproject.toml's; anything else configures an agent."""
    data = tomllib.loads(block.code)
    if "project" in data:
        generated = tomllib.loads(generated_project()["pyproject.toml"])
        assert excerpt_of(generated, data) == data, f"line {block.line} differs from the generated project"
    else:
        parse_config(data, source=f"{GUIDE.name}:{block.line}")


def test_the_project_tree_shows_every_generated_file() -> None:
    [tree] = [block for block in GUIDE_BLOCKS if block.language == "text" and "turnkit-tidy/" in block.code]
    for path in generated_project():
        assert Path(path).name in tree.code, f"the tree at line {tree.line} lacks {path}"


def generated_project() -> dict[str, str]:
    """What ``turnkit plugin new tidy`` writes (the guide's running example)."""
    return render(PluginNames.of("tidy"), author="Ann Example", description="An example.", year=2025)


def excerpt_of(document: Any, shape: Any) -> Any:
    """The parts of ``document`` at the key paths of ``shape`` (tables recursively, values as they are)."""
    if isinstance(shape, dict) and isinstance(document, dict):
        return {key: excerpt_of(document.get(key), value) for key, value in shape.items()}
    return document


def test_every_fixture_method_is_shown() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    public = [name for name in dir(AgentHarness) if not name.startswith("_")]
    missing = [name for name in public if f"turnkit_agent.{name}" not in text]
    assert not missing, f"the guide does not show turnkit_agent.{', .'.join(missing)}"
