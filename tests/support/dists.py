"""Installing real distributions for tests and running the ``turnkit`` CLI against them.

Plugins are found through entry points, so a test that wants turnkit to see a
plugin must install a real distribution (with its ``.dist-info``) somewhere
on ``sys.path`` — never monkeypatch discovery. These helpers install a
project into a private *target directory* and run ``turnkit`` in a subprocess
whose ``PYTHONPATH`` points at such directories, so the test process and the
test environment stay untouched::

    target = install_distribution(FIXTURE_DISTS / "turnkit-fixture-good", tmp_path / "good")
    plugins = turnkit_json("plugins", "--json", paths=[target])

Building uses the test environment's own ``hatchling`` (``--no-build-isolation``)
and never touches an index (``--no-index``), so it is fast and works offline.

The packaging tests (``tox -e packaging``) need the opposite: the repository's
distributions built as a release builds them (:func:`build_distributions`,
``python -m build``), read from their ``pyproject.toml`` (:class:`Project`),
and installed into a fresh virtual environment driven only through its own
executables (:class:`Venv`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The repository's root: the ``turnkit`` project.
REPO = Path(__file__).resolve().parents[2]

#: The small test distributions under ``tests/fixtures/dists/``.
FIXTURE_DISTS = REPO / "tests" / "fixtures" / "dists"

#: One folder per example plugin distribution (``turnkit-<name>``).
EXAMPLE_PLUGINS = REPO / "example_plugins"

#: The entry point group plugins register under.
PLUGINS_GROUP = "turnkit.plugins"
#: The entry point group chat channels register under.
CHANNELS_GROUP = "turnkit.channels"

#: Variables of the environment that steer turnkit; never inherited by the subprocess.
TURNKIT_ENV_PREFIX = "TURNKIT_"

DEFAULT_TIMEOUT = 120.0


class CommandFailed(AssertionError):
    """A subprocess a test relied on failed; the message carries its output."""


def _run(argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    kwargs.setdefault("timeout", DEFAULT_TIMEOUT)
    return subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, **kwargs)


def install_distribution(source_dir: Path | str, target_dir: Path | str) -> Path:
    """Build the project in ``source_dir`` and install it into ``target_dir``.

    Dependencies are not installed (the test environment already has the
    contract); the build uses the running interpreter's ``hatchling``. Returns
    ``target_dir``, ready to be put on ``PYTHONPATH``.
    """
    source = Path(source_dir).resolve()
    target = Path(target_dir).resolve()
    if not (source / "pyproject.toml").is_file():
        raise FileNotFoundError(f"{source} is not a Python project (no pyproject.toml)")
    target.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "--disable-pip-version-check",
        "--no-warn-script-location",
        "--upgrade",
        "--target",
        str(target),
        str(source),
    ]
    result = _run(argv, env={**os.environ, "PIP_NO_INPUT": "1"})
    if result.returncode != 0:
        raise CommandFailed(
            f"installing {source.name} into {target} failed (exit {result.returncode})\n"
            f"$ {' '.join(argv)}\n{result.stdout}{result.stderr}"
        )
    return target


def turnkit_command() -> list[str]:
    """The ``turnkit`` console script of the running interpreter's environment."""
    bindir = Path(sys.executable).parent
    for name in ("turnkit", "turnkit.exe"):
        script = bindir / name
        if script.is_file():
            return [str(script)]
    found = shutil.which("turnkit")
    if found is None:
        raise FileNotFoundError(f"no turnkit console script next to {sys.executable} or on PATH")
    return [found]


@dataclass(frozen=True)
class CliResult:
    """What a ``turnkit`` run printed, and how it exited."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        """``stdout`` parsed as JSON."""
        try:
            return json.loads(self.stdout)
        except json.JSONDecodeError as exc:
            raise CommandFailed(f"turnkit did not print JSON ({exc})\n{self}") from None

    def __str__(self) -> str:
        return (
            f"$ {' '.join(self.argv)}\nexit {self.returncode}\n"
            f"--- stdout\n{self.stdout}--- stderr\n{self.stderr}"
        )


def subprocess_env(paths: Iterable[Path | str] = (), env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a turnkit subprocess.

    Inherited ``TURNKIT_*`` variables and ``PYTHONPATH`` are dropped so the
    caller's shell cannot change a test's outcome; ``paths`` become the new
    ``PYTHONPATH`` and ``env`` is applied last (an empty string is kept: it
    means "set but empty", which ``TURNKIT_LOAD_PLUGINS`` treats as "none").
    """
    clean = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(TURNKIT_ENV_PREFIX) and key != "PYTHONPATH"
    }
    pythonpath = os.pathsep.join(str(Path(p).resolve()) for p in paths)
    if pythonpath:
        clean["PYTHONPATH"] = pythonpath
    clean.update(env or {})
    return clean


def run_turnkit(
    *args: str,
    paths: Iterable[Path | str] = (),
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> CliResult:
    """Run ``turnkit ARGS…`` with the distributions installed in ``paths`` visible.

    The command runs in ``cwd``, by default a fresh empty directory so that no
    ``./turnkit.toml`` is picked up by accident.
    """
    argv = [*turnkit_command(), *args]
    with tempfile.TemporaryDirectory(prefix="turnkit-cwd-") as scratch:
        result = _run(argv, env=subprocess_env(paths, env), cwd=cwd or scratch, timeout=timeout)
    return CliResult(tuple(argv), result.returncode, result.stdout, result.stderr)


#: How ``turnkit send`` names its session on stderr.
SESSION_LINE = re.compile(r"^session: (\S+)$", re.MULTILINE)


def turnkit_exits(*args: str, cwd: Path, expect: int = 0) -> CliResult:
    """Run ``turnkit ARGS…`` in ``cwd``; fail with its whole output unless it exits ``expect``."""
    result = run_turnkit(*args, cwd=cwd, timeout=60)
    assert result.returncode == expect, str(result)
    return result


def turnkit_json(
    *args: str,
    paths: Iterable[Path | str] = (),
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    expect_exit: int = 0,
) -> Any:
    """Run ``turnkit ARGS…`` (give it ``--json``) and return the parsed output.

    Fails with the full output when the exit status is not ``expect_exit``.
    """
    result = run_turnkit(*args, paths=paths, env=env, cwd=cwd)
    if result.returncode != expect_exit:
        raise CommandFailed(f"expected exit {expect_exit}\n{result}")
    return result.json()


def plugins_by_name(records: Iterable[Mapping[str, Any]], group: str = PLUGINS_GROUP) -> dict[str, Any]:
    """Index ``turnkit plugins --json`` records of one group by entry point name."""
    return {record["name"]: record for record in records if record["group"] == group}


# ------------------------------------------------------------------ packaging


def run_command(argv: Sequence[str | Path], *, cwd: Path | None = None, timeout: float = 600) -> str:
    """Run a command in the clean environment of :func:`subprocess_env` and return its stdout.

    pip never prompts (``PIP_NO_INPUT``). A non-zero exit fails with the
    command and its whole output.
    """
    result = command_result(argv, cwd=cwd, timeout=timeout)
    if result.returncode != 0:
        raise CommandFailed(str(result))
    return result.stdout


def command_result(argv: Sequence[str | Path], *, cwd: Path | None = None, timeout: float = 600) -> CliResult:
    """Like :func:`run_command`, for a command whose exit status is part of the test."""
    command = tuple(str(arg) for arg in argv)
    result = _run(
        command,
        env={**subprocess_env(), "PIP_NO_INPUT": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        cwd=cwd,
        timeout=timeout,
    )
    return CliResult(command, result.returncode, result.stdout, result.stderr)


@dataclass(frozen=True)
class Project:
    """A distribution of this repository, as its ``pyproject.toml`` declares it."""

    path: Path
    name: str
    version: str
    #: ``[project.entry-points]``: group -> entry point name -> object reference.
    entry_points: Mapping[str, Mapping[str, str]]

    @classmethod
    def read(cls, path: Path) -> Project:
        """The project in folder ``path``."""
        project = tomllib.loads((path / "pyproject.toml").read_text(encoding="utf-8"))["project"]
        return cls(path, project["name"], str(project["version"]), project.get("entry-points", {}))

    @property
    def stem(self) -> str:
        """The name as it starts the file names of the sdist and the wheel."""
        return self.name.replace("-", "_").replace(".", "_").lower()

    @property
    def wheel(self) -> str:
        """The file name of the (pure Python) wheel."""
        return f"{self.stem}-{self.version}-py3-none-any.whl"

    @property
    def sdist(self) -> str:
        """The file name of the sdist."""
        return f"{self.stem}-{self.version}.tar.gz"

    @property
    def files(self) -> tuple[str, str]:
        """The file names of the sdist and the wheel."""
        return self.sdist, self.wheel

    @property
    def plugins(self) -> Mapping[str, str]:
        """The project's ``turnkit.plugins`` entry points: name -> module or ``module:Class``."""
        return self.entry_points.get(PLUGINS_GROUP, {})

    @property
    def channels(self) -> Mapping[str, str]:
        """The project's ``turnkit.channels`` entry points: name -> ``module:Class``."""
        return self.entry_points.get(CHANNELS_GROUP, {})


#: The three first-party distributions a user installs to run turnkit, in dependency order.
FIRST_PARTY = (Project.read(REPO / "hookspecs"), Project.read(REPO / "builtin_services"), Project.read(REPO))


def example_plugins() -> list[Project]:
    """Every example plugin distribution: each folder of ``example_plugins/`` with a ``pyproject.toml``."""
    return [Project.read(path.parent) for path in sorted(EXAMPLE_PLUGINS.glob("*/pyproject.toml"))]


def build_distributions(projects: Iterable[Project], out: Path) -> None:
    """Build the sdist and the wheel of each project into ``out``, as a release builds them.

    ``python -m build`` in an isolated build environment, the wheel built from
    the sdist; several projects at once. A project whose two files are
    already in ``out`` is not built again, so the packaging modules of one
    session share their builds (see :func:`session_dist_dir`).
    """
    missing = [p for p in projects if not ((out / p.sdist).is_file() and (out / p.wheel).is_file())]

    def build(project: Project) -> str:
        return run_command([sys.executable, "-m", "build", "--outdir", out, project.path])

    with ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 1))) as pool:
        list(pool.map(build, missing))


def session_dist_dir(tmp_path_factory: Any) -> Path:
    """The one folder of built distributions of the test session (give it ``tmp_path_factory``)."""
    path = Path(tmp_path_factory.getbasetemp()) / "dist"
    path.mkdir(exist_ok=True)
    return path


class Venv:
    """A fresh virtual environment driven only through its own executables.

    Its commands run in an empty working folder next to it (no
    ``./turnkit.toml`` around) unless given another ``cwd``.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.bin = path / ("Scripts" if os.name == "nt" else "bin")
        self.workdir = path.parent / "cwd"

    @classmethod
    def with_runtime(cls, path: Path, dist_dir: Path) -> Venv:
        """A new venv at ``path`` holding the first-party wheels of ``dist_dir``.

        Their other dependencies come from the configured index, as for a user.
        """
        venv = cls(path)
        venv.workdir.mkdir(parents=True, exist_ok=True)
        run_command([sys.executable, "-m", "venv", path])
        venv.pip("install", "--find-links", dist_dir, *(dist_dir / p.wheel for p in FIRST_PARTY))
        return venv

    def python(self, *args: str | Path, cwd: Path | None = None) -> str:
        """Run the venv's interpreter; its stdout."""
        return run_command([self.bin / "python", *args], cwd=cwd or self.workdir)

    def pip(self, *args: str | Path) -> str:
        """Run the venv's pip; its stdout."""
        return self.python("-m", "pip", *args)

    def turnkit(self, *args: str, cwd: Path | None = None) -> str:
        """Run the venv's ``turnkit`` console script; its stdout (a failure raises)."""
        return run_command([self.bin / "turnkit", *args], cwd=cwd or self.workdir)

    def turnkit_result(self, *args: str, cwd: Path | None = None) -> CliResult:
        """Run the venv's ``turnkit`` console script, whatever its exit status."""
        return command_result([self.bin / "turnkit", *args], cwd=cwd or self.workdir)

    def plugins(self) -> dict[str, Any]:
        """``turnkit plugins --json``: the plugins, by entry point name."""
        return plugins_by_name(json.loads(self.turnkit("plugins", "--json")))

    def services(self) -> dict[str, Any]:
        """``turnkit plugins --json``: the services, by entry point name."""
        return plugins_by_name(json.loads(self.turnkit("plugins", "--json")), group="turnkit.services")
