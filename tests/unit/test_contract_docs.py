"""Every extension point of the contract is documented, with a working example.

The hookspecs are discovered from the modules in ``CORE_HOOKSPECS`` (through
pluggy's ``turnkit_spec`` marker attribute or the recorded kind), so a new
point cannot be added without its docstring example and its README entry, and
the README cannot drift from what the decorators recorded.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pluggy
import pytest
from turnkit_hookspecs import CORE_HOOKSPECS, PROJECT_NAME, Kind, hookimpl, kind_of

README = Path(__file__).resolve().parents[2] / "hookspecs" / "README.md"
SPEC_ATTRIBUTE = f"{PROJECT_NAME}_spec"


def _hookspecs() -> dict[str, Callable[..., Any]]:
    found: dict[str, Callable[..., Any]] = {}
    for module in CORE_HOOKSPECS:
        for name, obj in vars(module).items():
            if inspect.isfunction(obj) and (hasattr(obj, SPEC_ATTRIBUTE) or kind_of(obj) is not None):
                assert name not in found, f"{name} is declared in two hookspec modules"
                found[name] = obj
    return found


SPECS = _hookspecs()
spec_params = pytest.mark.parametrize("name", sorted(SPECS))


def docstring_example(name: str) -> str:
    """The dedented code following ``Example::`` in the spec's docstring."""
    doc = inspect.getdoc(SPECS[name]) or ""
    lines = doc.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == "Example::"]
    assert starts, f"{name}: docstring has no 'Example::' section"
    marker = starts[0]
    indent = len(lines[marker]) - len(lines[marker].lstrip())
    block: list[str] = []
    for line in lines[marker + 1 :]:
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            break
        block.append(line)
    code = textwrap.dedent("\n".join(block)).strip("\n")
    assert code.strip(), f"{name}: the 'Example::' section is empty"
    return code + "\n"


def _readme_points() -> dict[str, str]:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"^## Extension points\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    assert match, "hookspecs/README.md has no '## Extension points' section"
    sections = re.split(r"^### ", match.group(1), flags=re.M)[1:]
    points: dict[str, str] = {}
    for section in sections:
        heading, _, body = section.partition("\n")
        points[heading.strip().strip("`")] = body
    return points


def readme_entry(name: str) -> str:
    points = _readme_points()
    assert name in points, f"hookspecs/README.md lacks a '### {name}' entry under '## Extension points'"
    return points[name]


def _fenced_python(body: str) -> list[str]:
    return [block for block in re.findall(r"^```python\n(.*?)^```", body, flags=re.M | re.S)]


# ------------------------------------------------------------------ discovery


def test_hookspecs_are_discovered_like_pluggy_sees_them() -> None:
    pm = pluggy.PluginManager(PROJECT_NAME)
    for module in CORE_HOOKSPECS:
        pm.add_hookspecs(module)
    assert set(SPECS) == set(vars(pm.hook)), "discovery disagrees with pluggy's own hookspec scan"
    assert {"turn_authorize", "turn_reply", "session_fork"} <= set(SPECS)


@spec_params
def test_every_hookspec_has_a_kind(name: str) -> None:
    spec = SPECS[name]
    assert hasattr(spec, SPEC_ATTRIBUTE), f"{name}: not marked with pluggy's hookspec"
    assert kind_of(spec) is not None, f"{name}: declared without a kind decorator (guard/pipeline/...)"


# ------------------------------------------------------------------ docstrings


@spec_params
def test_docstring_example_compiles(name: str) -> None:
    code = docstring_example(name)
    try:
        compile(code, f"<{name} docstring example>", "exec")
    except SyntaxError as exc:
        pytest.fail(f"{name}: the docstring example does not compile: {exc}")


@spec_params
def test_docstring_example_implements_the_point(name: str) -> None:
    """The example defines ``@hookimpl def <name>(...)`` taking only arguments of the spec."""
    tree = ast.parse(docstring_example(name))
    impls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name == name
        and any(
            (isinstance(d, ast.Name) and d.id == "hookimpl")
            or (isinstance(d, ast.Call) and isinstance(d.func, ast.Name) and d.func.id == "hookimpl")
            for d in node.decorator_list
        )
    ]
    assert impls, f"{name}: the example has no '@hookimpl' function named {name!r}"
    spec_args = set(inspect.signature(SPECS[name]).parameters)
    example_args = {a.arg for a in impls[0].args.args}
    assert example_args <= spec_args, f"{name}: example takes {sorted(example_args - spec_args)}"


@spec_params
def test_docstring_example_registers_with_pluggy(name: str) -> None:
    """Running the example's definitions gives a plugin pluggy accepts for the point."""
    namespace: dict[str, Any] = {"hookimpl": hookimpl}
    exec(compile(docstring_example(name), f"<{name} docstring example>", "exec"), namespace)
    pm = pluggy.PluginManager(PROJECT_NAME)
    for module in CORE_HOOKSPECS:
        pm.add_hookspecs(module)
    pm.register(types.SimpleNamespace(**{name: namespace[name]}), name=f"example-{name}")
    pm.check_pending()
    assert len(getattr(pm.hook, name).get_hookimpls()) == 1


# ------------------------------------------------------------------ README


def test_readme_has_no_stale_entries() -> None:
    stale = sorted(set(_readme_points()) - set(SPECS))
    assert not stale, f"hookspecs/README.md documents points that do not exist: {stale}"


def test_readme_describes_every_kind() -> None:
    text = README.read_text(encoding="utf-8")
    for kind in Kind:
        assert re.search(rf"^\| {kind.value} \|", text, flags=re.M), f"kinds table lacks a '{kind.value}' row"


@spec_params
def test_readme_entry_states_the_recorded_kind(name: str) -> None:
    body = readme_entry(name)
    recorded = kind_of(SPECS[name])
    assert recorded is not None
    match = re.search(r"^\*\*Kind:\*\* (\w+)(?: \(threads `(\w+)`\))?", body, flags=re.M)
    assert match, f"README entry {name}: no '**Kind:** <kind>' line"
    assert match.group(1) == recorded.kind.value, (
        f"README says {name} is a {match.group(1)}, the decorator recorded {recorded.kind.value}"
    )
    if recorded.kind is Kind.PIPELINE:
        assert match.group(2) == recorded.value, (
            f"README entry {name}: threads {match.group(2)!r}, the decorator recorded {recorded.value!r}"
        )


@spec_params
def test_readme_entry_lists_arguments_and_return(name: str) -> None:
    body = readme_entry(name)
    arguments = re.search(r"^- \*\*Arguments:\*\* (.*?)(?=^- \*\*|^\s*$)", body, flags=re.M | re.S)
    assert arguments, f"README entry {name}: no '- **Arguments:**' item"
    named = set(re.findall(r"(?:^|, )`(\w+)`", re.sub(r"\s+", " ", arguments.group(1))))
    spec_args = list(inspect.signature(SPECS[name]).parameters)
    assert named == set(spec_args), f"README entry {name}: arguments {sorted(named)} != spec's {spec_args}"
    assert re.search(r"^- \*\*Returns:\*\* \S", body, flags=re.M), f"README entry {name}: no '- **Returns:**'"


@spec_params
def test_readme_example_matches_the_docstring(name: str) -> None:
    examples = _fenced_python(readme_entry(name))
    assert examples, f"README entry {name}: no ```python example"
    assert examples[0] == docstring_example(name), (
        f"README entry {name}: example differs from the docstring's; keep them in sync"
    )


def test_every_readme_python_example_runs() -> None:
    """Every python block runs, and the hook implementations it defines pass pluggy's validation."""
    text = README.read_text(encoding="utf-8")
    blocks = _fenced_python(text)
    assert len(blocks) > len(SPECS)
    for number, code in enumerate(blocks, 1):
        namespace: dict[str, Any] = {"hookimpl": hookimpl}
        try:
            exec(compile(code, f"<README.md python block {number}>", "exec"), namespace)
        except Exception as exc:
            pytest.fail(f"README.md python block {number} fails: {exc!r}\n{code}")
        impls = {
            name: obj
            for name, obj in namespace.items()
            if callable(obj) and hasattr(obj, f"{PROJECT_NAME}_impl") and name in SPECS
        }
        if impls:
            pm = pluggy.PluginManager(PROJECT_NAME)
            for module in CORE_HOOKSPECS:
                pm.add_hookspecs(module)
            pm.register(types.SimpleNamespace(**impls), name=f"readme-block-{number}")
            pm.check_pending()
