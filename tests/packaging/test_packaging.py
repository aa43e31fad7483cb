"""The first-party distributions as users get them: built, checked, pip-installed into a fresh venv.

Run by ``tox -e packaging`` only (``-m packaging``); the ``py311`` env
deselects it. Nothing here imports the runtime: everything happens in a new
virtual environment through ``pip`` and the ``turnkit`` console script, the
way a user installs turnkit. The example plugins go through the whole
publish → ``pip install`` → uninstall cycle in ``test_publish_cycle.py``.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import pytest

from tests.support.dists import (
    FIRST_PARTY,
    Project,
    Venv,
    build_distributions,
    run_command,
    session_dist_dir,
)

pytestmark = pytest.mark.packaging

HOOKSPECS, SERVICES, RUNTIME = FIRST_PARTY


@pytest.fixture(scope="module")
def dist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist and the wheel of each first-party project (shared with the other packaging module)."""
    out = session_dist_dir(tmp_path_factory)
    build_distributions(FIRST_PARTY, out)
    return out


@pytest.fixture(scope="module")
def venv(dist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """A new venv with the three first-party wheels (their other dependencies from the index)."""
    return Venv.with_runtime(tmp_path_factory.mktemp("venv") / "env", dist_dir)


def test_every_project_builds_an_sdist_and_a_wheel(dist_dir: Path) -> None:
    built = {path.name for path in dist_dir.iterdir()}
    for project in FIRST_PARTY:
        assert set(project.files) <= built, f"{project.name}: {sorted(built)}"


def test_twine_check(dist_dir: Path) -> None:
    files = sorted(dist_dir / name for project in FIRST_PARTY for name in project.files)
    output = run_command([sys.executable, "-m", "twine", "check", "--strict", *files])
    assert output.count("PASSED") == len(files), output


def test_wheels_hold_the_packages_and_their_entry_points(dist_dir: Path) -> None:
    def names(project: Project) -> set[str]:
        with zipfile.ZipFile(dist_dir / project.wheel) as wheel:
            return set(wheel.namelist())

    def entry_points(project: Project) -> str:
        with zipfile.ZipFile(dist_dir / project.wheel) as wheel:
            return wheel.read(f"{project.stem}-{project.version}.dist-info/entry_points.txt").decode()

    assert {"turnkit_hookspecs/__init__.py", "turnkit_hookspecs/py.typed"} <= names(HOOKSPECS)
    assert {"turnkit/__init__.py", "turnkit/cli.py", "turnkit/py.typed"} <= names(RUNTIME)
    assert "turnkit/testing.py" in names(RUNTIME)
    for project in FIRST_PARTY:
        assert not {n for n in names(project) if n.startswith("tests/")}, f"{project.name} ships its tests"

    assert "[console_scripts]\nturnkit = turnkit.cli:main" in entry_points(RUNTIME)
    assert "[pytest11]" in entry_points(RUNTIME)
    assert "[turnkit.services]" in entry_points(SERVICES)


def test_fresh_install_has_the_services_and_no_plugin(venv: Venv) -> None:
    services = venv.services()
    assert set(services) >= {"chat", "memory", "shell", "task"}
    assert {s["distribution"] for s in services.values()} == {SERVICES.name}
    assert {s["version"] for s in services.values()} == {SERVICES.version}
    assert {s["status"] for s in services.values()} == {"loaded"}
    assert venv.plugins() == {}
