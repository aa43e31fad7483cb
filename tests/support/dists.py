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
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The small test distributions under ``tests/fixtures/dists/``.
FIXTURE_DISTS = Path(__file__).resolve().parent.parent / "fixtures" / "dists"

#: The entry point group plugins register under.
PLUGINS_GROUP = "turnkit.plugins"

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
