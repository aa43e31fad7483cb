"""Commands other distributions add to ``turnkit`` (``turnkit.commands`` entry points), through the CLI.

Two real fixture distributions are built and installed into target folders:
``turnkit-fixture-commands`` adds ``greet``, a ``send`` that turnkit's own
``send`` must win over, and ``plain``, which is no click command;
``turnkit-fixture-commands-twin`` adds a second ``greet``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.dists import FIXTURE_DISTS, CliResult, install_distribution, run_turnkit

COMMANDS = "turnkit-fixture-commands"
TWIN = "turnkit-fixture-commands-twin"


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("command-dists")
    return {name: install_distribution(FIXTURE_DISTS / name, root / name) for name in (COMMANDS, TWIN)}


def turnkit(*args: str, paths: list[Path], cwd: Path, marker: Path | None = None) -> CliResult:
    env = {"FIXTURE_COMMANDS_IMPORTED": str(marker)} if marker is not None else {}
    return run_turnkit(*args, paths=paths, cwd=cwd, env=env, timeout=60)


def test_an_added_command_is_listed_without_being_imported_and_runs(
    dists: dict[str, Path], tmp_path: Path
) -> None:
    marker = tmp_path / "imported"
    top = turnkit("--help", paths=[dists[COMMANDS]], cwd=tmp_path, marker=marker)
    assert top.returncode == 0, str(top)
    (line,) = [line for line in top.stdout.splitlines() if line.strip().startswith("greet ")]
    assert "From turnkit-fixture-commands: A fixture distribution adding" in line
    assert not marker.exists(), "turnkit --help imported the command's module"

    ran = turnkit("greet", "--name", "Ann", paths=[dists[COMMANDS]], cwd=tmp_path, marker=marker)
    assert (ran.returncode, ran.stdout) == (0, "hello Ann, from a plugin\n"), str(ran)
    assert marker.read_text() == "imported\n"
    helped = turnkit("greet", "--help", paths=[dists[COMMANDS]], cwd=tmp_path)
    assert helped.returncode == 0 and "Usage: turnkit greet [OPTIONS]" in helped.stdout, str(helped)
    assert "Who to greet.  [default: world]" in helped.stdout


def test_a_command_named_like_turnkits_own_is_refused_naming_both(
    dists: dict[str, Path], tmp_path: Path
) -> None:
    top = turnkit("--help", paths=[dists[COMMANDS]], cwd=tmp_path)
    assert top.stderr == (
        "warning: the command 'send' of turnkit-fixture-commands 0.4.0 is left out:"
        " turnkit's own command has that name\n"
    )
    sent = turnkit("send", "hi", paths=[dists[COMMANDS]], cwd=tmp_path)
    assert (sent.returncode, sent.stdout) == (0, "hi\n"), "turnkit's send runs, not the plugin's"


def test_two_distributions_adding_one_name_are_both_refused(dists: dict[str, Path], tmp_path: Path) -> None:
    both = [dists[COMMANDS], dists[TWIN]]
    refused = turnkit("greet", paths=both, cwd=tmp_path)
    expected = (
        "the command 'greet' is left out: both turnkit-fixture-commands 0.4.0 and"
        " turnkit-fixture-commands-twin 0.1.0 add one by that name"
    )
    assert (refused.returncode, refused.stderr) == (1, f"Error: {expected}\n"), str(refused)
    top = turnkit("--help", paths=both, cwd=tmp_path)
    assert f"warning: {expected}\n" in top.stderr
    assert not [line for line in top.stdout.splitlines() if line.strip().startswith("greet ")]


def test_an_entry_point_that_is_no_click_command_is_a_clear_error(
    dists: dict[str, Path], tmp_path: Path
) -> None:
    result = turnkit("plain", paths=[dists[COMMANDS]], cwd=tmp_path)
    assert result.returncode == 1, str(result)
    assert result.stderr == (
        "Error: the command 'plain' of turnkit-fixture-commands 0.4.0 is not a click command"
        " (turnkit_fixture_commands:plain is a function)\n"
    )
