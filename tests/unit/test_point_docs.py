"""Every extension point is documented, with a working example.

The contract's points (``CORE_HOOKSPECS``) are documented in
hookspecs/README.md, each built-in service's in builtin_services/docs/.
Hookspecs are discovered through pluggy's ``turnkit_spec`` marker attribute
or the recorded kind, so a new point cannot be added without its docstring
example and its entry, and no page can drift from what the decorators
recorded.
"""

from __future__ import annotations

import ast
import importlib
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

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "hookspecs" / "README.md"
SPEC_ATTRIBUTE = f"{PROJECT_NAME}_spec"

#: Each documented set of points: its hookspec modules and the page documenting them.
#: The contract's are in hookspecs/README.md; each built-in service's in builtin_services/docs/.
CATALOGUES: dict[str, tuple[tuple[types.ModuleType, ...], Path]] = {
    "contract": (tuple(CORE_HOOKSPECS), README),
    **{
        service: (
            (importlib.import_module(f"turnkit_services.{service}.points"),),
            ROOT / "builtin_services" / "docs" / f"{service}.md",
        )
        for service in ("chat", "memory", "shell", "task")
    },
}


def _hookspecs(modules: tuple[types.ModuleType, ...]) -> dict[str, Callable[..., Any]]:
    found: dict[str, Callable[..., Any]] = {}
    for module in modules:
        for name, obj in vars(module).items():
            if (
                inspect.isfunction(obj)
                and obj.__module__ == module.__name__
                and (hasattr(obj, SPEC_ATTRIBUTE) or kind_of(obj) is not None)
            ):
                assert name not in found, f"{name} is declared in two hookspec modules"
                found[name] = obj
    return found


#: catalogue → point name → hookspec.
ALL_SPECS = {label: _hookspecs(modules) for label, (modules, _) in CATALOGUES.items()}
SPECS = ALL_SPECS["contract"]
#: point name → (catalogue, hookspec), over every catalogue.
POINTS = {name: (label, spec) for label, specs in ALL_SPECS.items() for name, spec in specs.items()}
spec_params = pytest.mark.parametrize("name", sorted(POINTS))


def _plugin_manager(name: str) -> pluggy.PluginManager:
    pm = pluggy.PluginManager(PROJECT_NAME)
    for module in CATALOGUES[POINTS[name][0]][0]:
        pm.add_hookspecs(module)
    return pm


def docstring_example(name: str) -> str:
    """The dedented code following ``Example::`` in the spec's docstring."""
    doc = inspect.getdoc(POINTS[name][1]) or ""
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


def _readme_points(page: Path) -> dict[str, str]:
    text = page.read_text(encoding="utf-8")
    match = re.search(r"^## Extension points\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    assert match, f"{page.relative_to(ROOT)} has no '## Extension points' section"
    sections = re.split(r"^### ", match.group(1), flags=re.M)[1:]
    points: dict[str, str] = {}
    for section in sections:
        heading, _, body = section.partition("\n")
        points[heading.strip().strip("`")] = body
    return points


def readme_entry(name: str) -> str:
    page = CATALOGUES[POINTS[name][0]][1]
    points = _readme_points(page)
    where = page.relative_to(ROOT)
    assert name in points, f"{where} lacks a '### {name}' entry under '## Extension points'"
    return points[name]


def _fenced_python(body: str) -> list[str]:
    return [block for block in re.findall(r"^```python\n(.*?)^```", body, flags=re.M | re.S)]


# ------------------------------------------------------------------ discovery


@pytest.mark.parametrize("label", sorted(CATALOGUES))
def test_hookspecs_are_discovered_like_pluggy_sees_them(label: str) -> None:
    pm = pluggy.PluginManager(PROJECT_NAME)
    for module in CATALOGUES[label][0]:
        pm.add_hookspecs(module)
    assert set(ALL_SPECS[label]) == set(vars(pm.hook)), "discovery disagrees with pluggy's own hookspec scan"
    assert ALL_SPECS[label], f"{label}: no extension points found"


def test_contract_points_are_found() -> None:
    assert {"turn_authorize", "turn_reply", "session_fork"} <= set(SPECS)


@spec_params
def test_every_hookspec_has_a_kind(name: str) -> None:
    spec = POINTS[name][1]
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
    spec_args = set(inspect.signature(POINTS[name][1]).parameters)
    example_args = {a.arg for a in impls[0].args.args}
    assert example_args <= spec_args, f"{name}: example takes {sorted(example_args - spec_args)}"


@spec_params
def test_docstring_example_registers_with_pluggy(name: str) -> None:
    """Running the example's definitions gives a plugin pluggy accepts for the point."""
    namespace: dict[str, Any] = {"hookimpl": hookimpl}
    exec(compile(docstring_example(name), f"<{name} docstring example>", "exec"), namespace)
    pm = _plugin_manager(name)
    pm.register(types.SimpleNamespace(**{name: namespace[name]}), name=f"example-{name}")
    pm.check_pending()
    assert len(getattr(pm.hook, name).get_hookimpls()) == 1


# ------------------------------------------------------------------ README


@pytest.mark.parametrize("label", sorted(CATALOGUES))
def test_readme_has_no_stale_entries(label: str) -> None:
    page = CATALOGUES[label][1]
    stale = sorted(set(_readme_points(page)) - set(ALL_SPECS[label]))
    assert not stale, f"{page.relative_to(ROOT)} documents points that do not exist: {stale}"


def test_readme_describes_every_kind() -> None:
    text = README.read_text(encoding="utf-8")
    for kind in Kind:
        assert re.search(rf"^\| {kind.value} \|", text, flags=re.M), f"kinds table lacks a '{kind.value}' row"


@spec_params
def test_readme_entry_states_the_recorded_kind(name: str) -> None:
    body = readme_entry(name)
    recorded = kind_of(POINTS[name][1])
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
    spec_args = list(inspect.signature(POINTS[name][1]).parameters)
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
