"""docs/points/ is what ``python -m turnkit.point_docs`` makes of the hookspecs, and it reads right.

The committed pages are compared with a fresh run of the command (as a
subprocess, exactly as a contributor runs it), so a changed hookspec without
regenerated pages fails here; the pages' code blocks must compile and each
page must name every argument of its point.
"""

from __future__ import annotations

import ast
import difflib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest
from turnkit.point_docs import COMMAND, INDEX, MARKER, Point, collect, render, write
from turnkit_hookspecs import Kind

ROOT = Path(__file__).resolve().parents[2]
PAGES = ROOT / "docs" / "points"

POINTS: dict[str, Point] = {point.name: point for group in collect() for point in group.points}
point_params = pytest.mark.parametrize("name", sorted(POINTS))


def _page(name: str) -> str:
    path = PAGES / f"{name}.md"
    assert path.is_file(), f"docs/points/{name}.md is missing: run `{COMMAND}`"
    return path.read_text(encoding="utf-8")


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", text, flags=re.M | re.S)


def test_committed_pages_are_what_the_generator_makes(tmp_path: Path) -> None:
    fresh = tmp_path / "points"
    run = subprocess.run(
        [sys.executable, "-m", "turnkit.point_docs", "--out", str(fresh)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    generated = {p.name: p.read_text(encoding="utf-8") for p in sorted(fresh.iterdir())}
    committed = {p.name: p.read_text(encoding="utf-8") for p in sorted(PAGES.iterdir())}
    hint = f"docs/points/ is out of date: run `{COMMAND}` and commit the result"
    assert sorted(committed) == sorted(generated), (
        f"{hint} (missing: {sorted(set(generated) - set(committed))}, "
        f"stale: {sorted(set(committed) - set(generated))})"
    )
    for name, text in generated.items():
        if committed[name] != text:
            diff = difflib.unified_diff(
                committed[name].splitlines(), text.splitlines(), "committed", "generated", lineterm=""
            )
            pytest.fail(f"{hint}; docs/points/{name} differs:\n" + "\n".join(list(diff)[:40]))


def test_output_is_deterministic_and_holds_no_paths() -> None:
    first, second = render(collect()), render(collect())
    assert first == second
    for name, text in first.items():
        assert str(ROOT) not in text, f"{name} contains the checkout's absolute path"
        assert text.startswith(MARKER + "\n"), f"{name} does not start with the generated-file marker"


def test_every_point_has_a_page_and_an_index_row() -> None:
    index = (PAGES / INDEX).read_text(encoding="utf-8")
    for name, point in POINTS.items():
        assert f"| [`{name}`]({name}.md) | [{point.kind.kind.value}](#" in index, f"{INDEX} lacks {name}"
    rows = re.findall(r"^\| \[`(\w+)`\]", index, flags=re.M)
    assert sorted(rows) == sorted(POINTS), "the index lists a point twice or one that does not exist"


def test_turn_points_are_indexed_in_the_order_a_turn_fires_them() -> None:
    index = (PAGES / INDEX).read_text(encoding="utf-8")
    rows = re.findall(r"^\| \[`(turn_\w+)`\]", index, flags=re.M)
    expected = ["turn_authorize", "turn_inbound", "turn_prompt", "turn_reply", "turn_outbound"]
    assert [row for row in rows if row in expected] == expected


@point_params
def test_every_python_block_of_a_page_compiles(name: str) -> None:
    blocks = _python_blocks(_page(name))
    assert len(blocks) >= 2, f"docs/points/{name}.md should show the signature and an example"
    for number, code in enumerate(blocks, 1):
        try:
            compile(code, f"<docs/points/{name}.md python block {number}>", "exec")
        except SyntaxError as exc:
            pytest.fail(f"docs/points/{name}.md: python block {number} does not compile: {exc}\n{code}")


@point_params
def test_the_example_is_the_docstring_s(name: str) -> None:
    example = _page(name).split("\n## Example\n", 1)[1]
    code = _python_blocks(example)[0]
    assert re.search(rf"^(async )?def {name}\(", code, flags=re.M), f"{name}: the example is not its hookimpl"
    doc_lines = {line.strip() for line in (inspect.getdoc(POINTS[name].function) or "").splitlines()}
    assert {line.strip() for line in code.splitlines()} <= doc_lines, (
        f"{name}: example not from the docstring"
    )


def _same_annotation(written: str, annotation: str) -> bool:
    """``written`` (from a page) is ``annotation`` (the compiler's text of it), quotes and spacing aside."""
    return ast.unparse(ast.parse(written, mode="eval")) == annotation


@point_params
def test_every_argument_appears_on_the_page_with_its_type(name: str) -> None:
    page = _page(name)
    signature = inspect.signature(POINTS[name].function)
    for argument, parameter in signature.parameters.items():
        listed = re.search(rf"^- `{argument}`: `(.+)`$", page, flags=re.M)
        assert listed, f"docs/points/{name}.md does not list the argument {argument!r}"
        assert _same_annotation(listed.group(1), parameter.annotation), f"{name}.md: type of {argument!r}"
    returns = re.search(r"^Returns `(.+)`\.$", page, flags=re.M)
    assert returns and _same_annotation(returns.group(1), signature.return_annotation)


@point_params
def test_the_page_states_the_kind_and_its_rules(name: str) -> None:
    page, kind = _page(name), POINTS[name].kind
    assert f"- **Kind:** [{kind.kind.value}](README.md#{kind.kind.value})" in page
    assert f"## How a {kind.kind.value} point is dispatched" in page
    if kind.kind is Kind.PIPELINE:
        assert f"threads `{kind.value}`" in page
    if kind.kind is Kind.EFFECT:
        assert "- **Timeout:**" in page
    if POINTS[name].owner != "turnkit":
        assert "`@hookimpl(optionalhook=True)`" in page


def test_write_removes_stale_generated_pages_only(tmp_path: Path) -> None:
    (tmp_path / "gone_point.md").write_text(MARKER + "\n# `gone_point`\n", encoding="utf-8")
    (tmp_path / "notes.md").write_text("# hand-written\n", encoding="utf-8")
    files = render(collect())
    assert write(tmp_path, files) == (len(files), 1)
    assert not (tmp_path / "gone_point.md").exists()
    assert (tmp_path / "notes.md").read_text(encoding="utf-8") == "# hand-written\n"
    assert write(tmp_path, files) == (0, 0)
