"""``turnkit plugin new`` as a plugin author meets it: generate, build, check, install.

A fresh venv gets turnkit from the release files of this checkout (as a user
gets it from PyPI); its ``turnkit`` console script generates a plugin project;
``python -m build`` makes the sdist and the wheel, ``twine check --strict``
accepts them; the wheel installed with its ``test`` extra is loaded by
``turnkit`` and the project's own tests pass in that venv. Run by
``tox -e packaging`` only (``-m packaging``).
"""

from __future__ import annotations

import re
import sys
import tarfile
import zipfile
from email.parser import HeaderParser
from pathlib import Path

import pytest

from tests.support.dists import FIRST_PARTY, Venv, build_distributions, run_command, session_dist_dir

pytestmark = pytest.mark.packaging

NAME = "tidy-guard"
PACKAGE = "turnkit_tidy_guard"
STEM = f"{PACKAGE}-0.1.0"
WHEEL = f"{STEM}-py3-none-any.whl"
SDIST = f"{STEM}.tar.gz"


@pytest.fixture(scope="module")
def author_venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """A plugin author's venv: turnkit installed from this checkout's wheels (shared with the session)."""
    dist = session_dist_dir(tmp_path_factory)
    build_distributions(FIRST_PARTY, dist)
    return Venv.with_runtime(tmp_path_factory.mktemp("author") / "env", dist)


@pytest.fixture(scope="module")
def project(author_venv: Venv, tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("projects")
    author_venv.turnkit(
        "plugin", "new", NAME, "--author", "Ann Example", "--description", "Keeps turns tidy.", cwd=where
    )
    return where / f"turnkit-{NAME}"


@pytest.fixture(scope="module")
def built(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder ``python -m build`` wrote the project's sdist and wheel to."""
    out = tmp_path_factory.mktemp("plugin-dist")
    run_command([sys.executable, "-m", "build", "--outdir", out, project])
    return out


def test_build_makes_an_sdist_and_a_wheel(built: Path) -> None:
    assert {path.name for path in built.iterdir()} == {SDIST, WHEEL}


def test_twine_check_strict_passes(built: Path) -> None:
    output = run_command([sys.executable, "-m", "twine", "check", "--strict", built / SDIST, built / WHEEL])
    assert output.count("PASSED") == 2, output


def test_the_wheel_declares_the_plugin_and_its_metadata(built: Path) -> None:
    with zipfile.ZipFile(built / WHEEL) as wheel:
        names = set(wheel.namelist())
        entry_points = wheel.read(f"{STEM}.dist-info/entry_points.txt").decode()
        meta = HeaderParser().parsestr(wheel.read(f"{STEM}.dist-info/METADATA").decode())
    assert {f"{PACKAGE}/__init__.py", f"{PACKAGE}/py.typed", f"{STEM}.dist-info/licenses/LICENSE"} <= names
    assert not [name for name in names if name.startswith("tests/")]
    assert f"[turnkit.plugins]\n{NAME} = {PACKAGE}:TidyGuardPlugin\n" in entry_points
    assert meta["Name"] == f"turnkit-{NAME}"
    assert meta["Summary"] == "Keeps turns tidy."
    assert meta["Description-Content-Type"] == "text/markdown"
    assert meta["License-Expression"] == "MIT"
    assert meta["Requires-Python"] == ">=3.11"
    requires = meta.get_all("Requires-Dist")
    assert any(r.startswith("turnkit-hookspecs") and "<0." in r for r in requires), requires
    assert any(r.startswith("turnkit") and "extra == 'test'" in r for r in requires), requires
    assert f"pip install turnkit-{NAME}" in meta.get_payload()  # the README is the long description


def test_the_sdist_holds_the_tests(built: Path) -> None:
    with tarfile.open(built / SDIST) as sdist:
        names = {name.removeprefix(f"{STEM}/") for name in sdist.getnames()}
    expected = {"tests/test_plugin.py", "README.md", "LICENSE", "pyproject.toml", f"src/{PACKAGE}/py.typed"}
    assert expected <= names


def test_the_installed_wheel_is_loaded_and_its_tests_pass(
    author_venv: Venv, built: Path, project: Path
) -> None:
    author_venv.pip("install", f"{built / WHEEL}[test]")  # the extra brings pytest; turnkit is there
    record = author_venv.plugins()[NAME]
    assert (record["status"], record["distribution"]) == ("loaded", f"turnkit-{NAME}")
    assert record["hooks"] == ["session_compress", "turn_authorize", "turn_completed", "turn_inbound"]
    written = len(re.findall(r"^def test_", (project / "tests" / "test_plugin.py").read_text(), re.M))
    output = author_venv.python("-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=project)
    assert f"{written} passed" in output and "failed" not in output, output
