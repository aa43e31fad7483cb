"""The distributions as users get them: built, checked, pip-installed into a fresh venv.

Run by ``tox -e packaging`` only (``-m packaging``); the ``py311`` env
deselects it. Nothing here imports the runtime: everything happens in a new
virtual environment through ``pip`` and the ``turnkit`` console script, the
way a user installs turnkit and then ``pip install turnkit-redact``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.support.dists import PLUGINS_GROUP, CommandFailed, plugins_by_name, subprocess_env

pytestmark = pytest.mark.packaging

REPO = Path(__file__).resolve().parents[2]

#: Every distribution the repository publishes, by project directory.
PROJECTS = {
    "turnkit-hookspecs": REPO / "hookspecs",
    "turnkit-services": REPO / "builtin_services",
    "turnkit": REPO,
    "turnkit-redact": REPO / "example_plugins" / "turnkit-redact",
    "turnkit-jsonl-audit": REPO / "example_plugins" / "turnkit-jsonl-audit",
}
FIRST_PARTY = ("turnkit-hookspecs", "turnkit-services", "turnkit")

DISPATCH = """\
import asyncio, json
from turnkit import PluginManager
from turnkit_hookspecs import Message

async def main():
    manager = PluginManager.load()
    message = Message.of("user", "write to ann@example.org or call +44 20 7946 0958")
    out = await manager.dispatch.pipeline("turn_inbound", ctx=None, turn=None, message=message)
    print(json.dumps({"text": out.text, "same": out is message}))

asyncio.run(main())
"""
ORIGINAL_TEXT = "write to ann@example.org or call +44 20 7946 0958"
REDACTED_TEXT = "write to [email] or call [phone]"


def run(argv: Sequence[str | Path], *, cwd: Path | None = None, timeout: float = 600) -> str:
    """Run a command with a clean environment; fail with its output if it fails."""
    command = [str(arg) for arg in argv]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env={**subprocess_env(), "PIP_NO_INPUT": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        cwd=cwd,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise CommandFailed(
            f"$ {' '.join(command)}\nexit {result.returncode}\n"
            f"--- stdout\n{result.stdout}--- stderr\n{result.stderr}"
        )
    return result.stdout


def version_of(project: str) -> str:
    pyproject = tomllib.loads((PROJECTS[project] / "pyproject.toml").read_text())
    return str(pyproject["project"]["version"])


def wheel_name(project: str) -> str:
    return f"{project.replace('-', '_')}-{version_of(project)}-py3-none-any.whl"


def sdist_name(project: str) -> str:
    return f"{project.replace('-', '_')}-{version_of(project)}.tar.gz"


@pytest.fixture(scope="session")
def dist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sdist and wheel of every project, built as a release would (the wheel from the sdist)."""
    out = tmp_path_factory.mktemp("dist")

    def build(project_dir: Path) -> str:
        return run([sys.executable, "-m", "build", "--outdir", out, project_dir])

    with ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 1))) as pool:
        list(pool.map(build, PROJECTS.values()))
    return out


class Venv:
    """A fresh virtual environment driven only through its own executables."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.bin = path / ("Scripts" if os.name == "nt" else "bin")
        self.workdir = path.parent / "cwd"  # empty: no ./turnkit.toml around
        self.workdir.mkdir(exist_ok=True)

    def python(self, *args: str | Path) -> str:
        return run([self.bin / "python", *args], cwd=self.workdir)

    def pip(self, *args: str | Path) -> str:
        return self.python("-m", "pip", *args)

    def turnkit(self, *args: str) -> str:
        return run([self.bin / "turnkit", *args], cwd=self.workdir)

    def plugins(self) -> dict[str, Any]:
        return plugins_by_name(json.loads(self.turnkit("plugins", "--json")))

    def services(self) -> dict[str, Any]:
        return plugins_by_name(json.loads(self.turnkit("plugins", "--json")), group="turnkit.services")

    def dispatch(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.python("-c", DISPATCH))
        return result


@pytest.fixture(scope="session")
def venv(dist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """A new venv with the three first-party wheels (their other dependencies from the index)."""
    env = Venv(tmp_path_factory.mktemp("venv") / "env")
    run([sys.executable, "-m", "venv", env.path])
    wheels = [dist_dir / wheel_name(project) for project in FIRST_PARTY]
    env.pip("install", "--find-links", dist_dir, *wheels)
    return env


def test_every_project_builds_an_sdist_and_a_wheel(dist_dir: Path) -> None:
    expected = {name(project) for project in PROJECTS for name in (wheel_name, sdist_name)}
    assert {path.name for path in dist_dir.iterdir()} == expected


def test_twine_check(dist_dir: Path) -> None:
    output = run([sys.executable, "-m", "twine", "check", "--strict", *sorted(dist_dir.iterdir())])
    assert output.count("PASSED") == 2 * len(PROJECTS), output


def test_wheels_hold_the_packages_and_their_entry_points(dist_dir: Path) -> None:
    def names(project: str) -> set[str]:
        with zipfile.ZipFile(dist_dir / wheel_name(project)) as wheel:
            return set(wheel.namelist())

    def entry_points(project: str) -> str:
        dist_info = f"{project.replace('-', '_')}-{version_of(project)}.dist-info"
        with zipfile.ZipFile(dist_dir / wheel_name(project)) as wheel:
            return wheel.read(f"{dist_info}/entry_points.txt").decode()

    assert {"turnkit_hookspecs/__init__.py", "turnkit_hookspecs/py.typed"} <= names("turnkit-hookspecs")
    assert {"turnkit/__init__.py", "turnkit/cli.py", "turnkit/py.typed"} <= names("turnkit")
    assert {"turnkit_redact/__init__.py", "turnkit_redact/py.typed"} <= names("turnkit-redact")
    assert {"turnkit_jsonl_audit/__init__.py", "turnkit_jsonl_audit/py.typed"} <= names("turnkit-jsonl-audit")
    for project in PROJECTS:
        assert not {n for n in names(project) if n.startswith("tests/")}, f"{project} ships its tests"

    assert "[console_scripts]\nturnkit = turnkit.cli:main" in entry_points("turnkit")
    assert "[turnkit.services]" in entry_points("turnkit-services")
    assert f"[{PLUGINS_GROUP}]\nredact = turnkit_redact" in entry_points("turnkit-redact")
    assert f"[{PLUGINS_GROUP}]\njsonl-audit = turnkit_jsonl_audit" in entry_points("turnkit-jsonl-audit")


def test_fresh_install_has_the_services_and_no_plugin(venv: Venv) -> None:
    services = venv.services()
    assert set(services) >= {"chat", "memory", "shell", "task"}
    assert {s["distribution"] for s in services.values()} == {"turnkit-services"}
    assert {s["version"] for s in services.values()} == {version_of("turnkit-services")}
    assert {s["status"] for s in services.values()} == {"loaded"}
    assert "redact" not in venv.plugins()
    assert "jsonl-audit" not in venv.plugins()


def test_pip_install_and_uninstall_of_a_plugin(venv: Venv, dist_dir: Path) -> None:
    """turnkit-redact takes effect when pip-installed, and is gone when pip-uninstalled."""
    assert "redact" not in venv.plugins()
    assert venv.dispatch() == {"text": ORIGINAL_TEXT, "same": True}

    venv.pip("install", "--find-links", dist_dir, dist_dir / wheel_name("turnkit-redact"))
    try:
        redact = venv.plugins()["redact"]
        assert redact == {
            "name": "redact",
            "group": PLUGINS_GROUP,
            "distribution": "turnkit-redact",
            "version": version_of("turnkit-redact"),
            "module": "turnkit_redact",
            "hooks": ["turn_inbound", "turn_outbound"],
            "status": "loaded",
            "error": None,
        }
        hooks = venv.turnkit("hooks", "turn_inbound")
        assert "redact" in hooks
        assert "turnkit-redact" in hooks
        assert venv.dispatch() == {"text": REDACTED_TEXT, "same": False}
    finally:
        venv.pip("uninstall", "-y", "turnkit-redact")

    assert "redact" not in venv.plugins()
    assert "redact" not in venv.turnkit("hooks", "turn_inbound")
    assert venv.dispatch() == {"text": ORIGINAL_TEXT, "same": True}


def test_an_effect_plugin_records_every_turn(venv: Venv, dist_dir: Path) -> None:
    """turnkit-jsonl-audit, pip-installed, appends one line per turn run by the real runtime."""
    audit = venv.workdir / "turnkit-audit.jsonl"  # its default file, in the working directory
    venv.pip("install", "--find-links", dist_dir, dist_dir / wheel_name("turnkit-jsonl-audit"))
    try:
        plugin = venv.plugins()["jsonl-audit"]
        assert plugin["distribution"] == "turnkit-jsonl-audit"
        assert plugin["hooks"] == ["turn_completed", "turn_denied", "turn_failed"]
        assert plugin["status"] == "loaded"
        reply = venv.turnkit("send", "hello audit")
        [line] = audit.read_text(encoding="utf-8").splitlines()
        record = json.loads(line)
        assert (record["status"], record["number"], record["message"]) == ("completed", 1, "hello audit")
        assert record["reply"] == reply.strip()
    finally:
        venv.pip("uninstall", "-y", "turnkit-jsonl-audit")
        audit.unlink(missing_ok=True)
    assert "jsonl-audit" not in venv.plugins()
