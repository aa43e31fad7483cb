"""``turnkit plugin new``: the generated project, its tests, and turnkit loading it.

Everything goes through the real ``turnkit`` console script and subprocesses:
the generated tests run with this environment's pytest (where turnkit, hence
the ``turnkit_agent`` fixture, is installed), and the generated plugin is
built and installed into a private folder that a ``turnkit`` subprocess
discovers through its entry point, as it would a plugin from PyPI.
"""

from __future__ import annotations

import datetime
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

import pytest
from turnkit.scaffold import PluginNames, ScaffoldError, compatible_range

from tests.support.dists import (
    CliResult,
    install_distribution,
    plugins_by_name,
    run_turnkit,
    subprocess_env,
    turnkit_json,
)

NAME = "shout-back"
AUTHOR = 'Zoë "Z" O\'Brien'
DESCRIPTION = 'Refuses strangers and tidies messages; say "hi" \\ wave.'
PROJECT_FILES = {
    ".gitignore",
    "LICENSE",
    "README.md",
    "pyproject.toml",
    "src/turnkit_shout_back/__init__.py",
    "src/turnkit_shout_back/py.typed",
    "tests/test_plugin.py",
}


def new_plugin(*args: str, cwd: Path) -> CliResult:
    """``turnkit plugin new ARGS…`` run in ``cwd``."""
    return run_turnkit("plugin", "new", *args, cwd=cwd)


def run_pytest(project: Path, paths: Iterable[Path] = ()) -> subprocess.CompletedProcess[str]:
    """The generated project's own tests, run in it with this environment's pytest."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        env=subprocess_env(paths),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )


def files_under(root: Path) -> set[str]:
    """The files in ``root``, relative to it; Python's bytecode caches (from running the tests) aside."""
    files = (path.relative_to(root) for path in root.rglob("*") if path.is_file())
    return {path.as_posix() for path in files if "__pycache__" not in path.parts}


def assert_tests_pass(project: Path, result: subprocess.CompletedProcess[str]) -> None:
    """Every test function of the generated test file ran and passed."""
    written = len(re.findall(r"^def test_", (project / "tests" / "test_plugin.py").read_text(), re.M))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{written} passed" in result.stdout, result.stdout


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CliResult]:
    """A plugin generated once for the module: the project folder and what the command printed."""
    where = tmp_path_factory.mktemp("generated")
    options = ("--directory", "plugins", "--author", AUTHOR, "--description", DESCRIPTION)
    result = new_plugin(NAME, *options, cwd=where)
    assert result.returncode == 0, str(result)
    return where / "plugins" / f"turnkit-{NAME}", result


@pytest.fixture(scope="module")
def installed(generated: tuple[Path, CliResult], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated plugin built and pip-installed into a folder of its own (put it on PYTHONPATH)."""
    project, _ = generated
    return install_distribution(project, tmp_path_factory.mktemp("site") / "packages")


# ------------------------------------------------------------------ the command


def test_new_creates_the_project_and_says_what_next(generated: tuple[Path, CliResult]) -> None:
    project, result = generated
    assert files_under(project) == PROJECT_FILES
    assert f"created turnkit-{NAME} in {project}" in result.stdout
    for file in PROJECT_FILES:
        assert f"    {file}\n" in result.stdout
    assert "Next steps:" in result.stdout
    assert f"cd {project}" in result.stdout
    assert "pytest" in result.stdout and "twine check" in result.stdout


def test_the_project_is_a_publishable_distribution(generated: tuple[Path, CliResult]) -> None:
    project, _ = generated
    pyproject = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    meta = pyproject["project"]
    assert meta["name"] == f"turnkit-{NAME}"
    assert (meta["description"], meta["authors"]) == (DESCRIPTION, [{"name": AUTHOR}])
    assert meta["readme"] == {"file": "README.md", "content-type": "text/markdown"}
    assert meta["requires-python"] == ">=3.11"
    assert (meta["license"], meta["license-files"]) == ("MIT", ["LICENSE"])
    assert "Typing :: Typed" in meta["classifiers"]
    contract = compatible_range(metadata.version("turnkit-hookspecs"))
    assert f"turnkit-hookspecs{contract}" in meta["dependencies"]
    assert not [dep for dep in meta["dependencies"] if re.match(r"turnkit[<>=!~ ]", dep)], "needs the runtime"
    assert meta["entry-points"]["turnkit.plugins"] == {NAME: "turnkit_shout_back:ShoutBackPlugin"}
    assert pyproject["tool"]["pytest"]["ini_options"]["pythonpath"] == ["src"]
    license_text = (project / "LICENSE").read_text(encoding="utf-8")
    assert f"Copyright (c) {datetime.date.today().year} {AUTHOR}\n" in license_text
    readme = (project / "README.md").read_text(encoding="utf-8")
    for expected in (DESCRIPTION, f"pip install turnkit-{NAME}", f"[plugin.{NAME}]", "| `blocked` |"):
        assert expected in readme


def test_new_writes_into_the_current_directory_by_default(tmp_path: Path) -> None:
    result = new_plugin("x2", cwd=tmp_path)
    assert result.returncode == 0, str(result)
    init = (tmp_path / "turnkit-x2" / "src" / "turnkit_x2" / "__init__.py").read_text(encoding="utf-8")
    assert "class X2Plugin(Plugin):" in init


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Shout", "invalid plugin name 'Shout': use lowercase letters, digits and single dashes"),
        ("shout_back", "invalid plugin name 'shout_back'.*\\(e.g. 'shout-back'\\)"),
        ("9lives", "invalid plugin name '9lives'.*starting with a letter"),
        ("shout--back", "invalid plugin name 'shout--back'"),
        ("turnkit-shout", "without the 'turnkit-' prefix: 'shout' makes the distribution 'turnkit-shout'"),
    ],
)
def test_a_bad_name_is_refused_and_nothing_is_written(tmp_path: Path, name: str, expected: str) -> None:
    result = new_plugin(name, cwd=tmp_path)
    assert result.returncode == 2, str(result)
    assert "Invalid value for NAME" in result.stderr
    assert re.search(expected, " ".join(result.stderr.split())), result.stderr
    assert not list(tmp_path.iterdir())


def test_an_existing_folder_is_refused_and_left_alone(tmp_path: Path) -> None:
    taken = tmp_path / "turnkit-shout"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    result = new_plugin("shout", cwd=tmp_path)
    assert result.returncode == 1, str(result)
    assert f"{taken} already exists: choose another name or another --directory" in result.stderr
    assert files_under(taken) == {"notes.txt"}


def test_a_multi_line_description_is_refused(tmp_path: Path) -> None:
    result = new_plugin("shout", "--description", "one\ntwo", cwd=tmp_path)
    assert result.returncode == 1, str(result)
    assert "--description must be one non-empty line of text" in result.stderr
    assert not list(tmp_path.iterdir())


def test_turnkit_help_does_not_import_the_generator() -> None:
    """``turnkit --help`` stays a cold start of click alone: the templates load when a project is made."""
    probe = (
        "import sys\nfrom turnkit.cli import main\n"
        "main(['--help'], standalone_mode=False)\n"
        "print('LOADED', sorted(m for m in sys.modules if m.startswith('turnkit.scaffold')))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert "LOADED []" in result.stdout, result.stdout + result.stderr


# ------------------------------------------------------------------ the generated tests and plugin


def test_the_generated_tests_pass_as_generated(generated: tuple[Path, CliResult]) -> None:
    project, _ = generated
    assert_tests_pass(project, run_pytest(project))


def test_the_generated_tests_pass_with_the_plugin_installed(
    generated: tuple[Path, CliResult], installed: Path
) -> None:
    project, _ = generated
    assert_tests_pass(project, run_pytest(project, paths=[installed]))


def test_turnkit_discovers_and_runs_the_installed_plugin(installed: Path, tmp_path: Path) -> None:
    record = plugins_by_name(turnkit_json("plugins", "--json", paths=[installed]))[NAME]
    assert (record["status"], record["error"]) == ("loaded", None)
    assert (record["distribution"], record["version"]) == (f"turnkit-{NAME}", "0.1.0")
    assert record["hooks"] == ["session_compress", "turn_authorize", "turn_completed", "turn_inbound"]

    [point] = turnkit_json("hooks", "turn_inbound", "--json", paths=[installed])
    assert [impl["plugin"] for impl in point["implementations"]] == [NAME]

    # its table is accepted, and the echo model answers what the plugin's pipeline let it see
    config = tmp_path / "turnkit.toml"
    config.write_text(f'[store]\nurl = "agent.db"\n\n[plugin.{NAME}]\nblocked = ["mallory"]\n')
    sent = run_turnkit("--config", str(config), "send", "   hello   ", paths=[installed])
    assert (sent.returncode, sent.stdout) == (0, "hello\n"), str(sent)


def test_a_wrong_key_in_the_plugin_table_stops_turnkit(installed: Path, tmp_path: Path) -> None:
    config = tmp_path / "turnkit.toml"
    config.write_text(f'[store]\nurl = "agent.db"\n\n[plugin.{NAME}]\nblock = ["mallory"]\n')
    result = run_turnkit("--config", str(config), "send", "hello", paths=[installed])
    assert result.returncode == 1, str(result)
    assert re.search(rf"\(block\) @ \$\.plugin\.{NAME}\b", result.stderr), str(result)


# ------------------------------------------------------------------ names and pins


def test_plugin_names_derive_the_package_and_the_class() -> None:
    names = PluginNames.of("rate-limit2")
    assert (names.distribution, names.package) == ("turnkit-rate-limit2", "turnkit_rate_limit2")
    assert names.class_name == "RateLimit2Plugin"
    with pytest.raises(ScaffoldError, match="invalid plugin name ''"):
        PluginNames.of("")


@pytest.mark.parametrize(
    ("version", "expected"),
    [("0.1.3", ">=0.1.3,<0.2"), ("0.2", ">=0.2,<0.3"), ("1.4.0", ">=1.4.0,<2"), ("2.0.1.dev3", ">=2.0.1,<3")],
)
def test_compatible_range_follows_semver(version: str, expected: str) -> None:
    assert compatible_range(version) == expected


# ------------------------------------------------------------------ a channel (--channel)

CHANNEL = "shout-hook"
CHANNEL_FILES = {
    ".gitignore",
    "LICENSE",
    "README.md",
    "pyproject.toml",
    "src/turnkit_shout_hook/__init__.py",
    "src/turnkit_shout_hook/py.typed",
    "tests/test_channel.py",
}


@pytest.fixture(scope="module")
def generated_channel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CliResult]:
    """A channel generated once for the module: the project folder and what the command printed."""
    where = tmp_path_factory.mktemp("generated-channel")
    result = new_plugin(CHANNEL, "--channel", "--author", AUTHOR, cwd=where)
    assert result.returncode == 0, str(result)
    return where / f"turnkit-{CHANNEL}", result


def test_new_channel_creates_a_channel_distribution(generated_channel: tuple[Path, CliResult]) -> None:
    project, result = generated_channel
    assert files_under(project) == CHANNEL_FILES
    assert "The channel ShoutHookChannel" in result.stdout
    meta = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert meta["entry-points"] == {"turnkit.channels": {CHANNEL: "turnkit_shout_hook:ShoutHookChannel"}}
    services = compatible_range(metadata.version("turnkit-services"))
    assert f"turnkit-services{services}" in meta["dependencies"]
    assert not [dep for dep in meta["dependencies"] if re.match(r"turnkit[<>=!~ ]", dep)], "needs the runtime"
    readme = (project / "README.md").read_text(encoding="utf-8")
    for expected in (
        f"pip install turnkit-{CHANNEL}",
        f"[service.chat.channel.{CHANNEL}]",
        "SHOUT_HOOK_SECRET",
    ):
        assert expected in readme


def test_the_generated_channel_tests_pass_with_the_channel_installed(
    generated_channel: tuple[Path, CliResult], tmp_path: Path
) -> None:
    project, _ = generated_channel
    installed = install_distribution(project, tmp_path / "packages")
    result = run_pytest(project, paths=[installed])
    written = len(re.findall(r"^def test_", (project / "tests" / "test_channel.py").read_text(), re.M))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{written} passed" in result.stdout, result.stdout


def test_the_generated_channel_tests_say_to_install_it_first(
    generated_channel: tuple[Path, CliResult],
) -> None:
    project, _ = generated_channel
    result = run_pytest(project)
    assert result.returncode != 0
    assert f"the {CHANNEL} channel is not installed" in result.stdout + result.stderr
