"""The command line helps: action options explained, exit statuses that mean something, one error line.

Every command runs in a subprocess of the ``turnkit`` console script.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.dists import (
    FIXTURE_DISTS,
    REPO,
    CliResult,
    install_distribution,
    run_turnkit,
    subprocess_env,
)

#: The services with a command group (chat's actions are under ``turnkit invoke``: ``turnkit chat`` talks).
BUILTIN_SERVICES = ("memory", "shell", "task")


def turnkit(*args: str, cwd: Path, paths: tuple[Path, ...] = ()) -> CliResult:
    return run_turnkit(*args, cwd=cwd, paths=paths, timeout=60)


def option_rows(help_text: str) -> dict[str, str]:
    """The Options section of a click help page: each option's flags → its help text."""
    section = help_text.split("\nOptions:\n", 1)[1]
    rows: dict[str, str] = {}
    current = None
    for line in section.splitlines():
        if re.match(r"^  -", line):
            flags, _, text = line.strip().partition("  ")
            current = flags.split()[0]
            rows[current] = text.strip()
        elif current is not None and line.strip():
            rows[current] = f"{rows[current]} {line.strip()}".strip()
    return rows


def actions_of(service: str, cwd: Path) -> list[str]:
    listing = turnkit(service, "--help", cwd=cwd).stdout.split("\nCommands:\n", 1)[1]
    return [line.split()[0] for line in listing.splitlines() if line.startswith("  ")]


def test_every_action_option_has_help_from_the_docstring(tmp_path: Path) -> None:
    commands = [(service, action) for service in BUILTIN_SERVICES for action in actions_of(service, tmp_path)]
    assert len(commands) > 20
    with ThreadPoolExecutor(4) as pool:
        pages = list(pool.map(lambda c: turnkit(*c, "--help", cwd=tmp_path), commands))
    undocumented = []
    for (service, action), page in zip(commands, pages, strict=True):
        assert page.returncode == 0, str(page)
        for flag, text in option_rows(page.stdout).items():
            words = re.sub(r"\[(required|default: [^\]]*)\]", "", text).strip()
            if flag not in ("--payload", "--help") and not words:
                undocumented.append(f"turnkit {service} {action} {flag}")
    assert undocumented == []


def test_the_help_is_the_docstrings_and_shows_defaults_and_choices(tmp_path: Path) -> None:
    rows = option_rows(turnkit("memory", "search", "--help", cwd=tmp_path).stdout)
    assert rows["--query"] == "The words to look for.  [required]"
    assert rows["--limit"] == "The most memories to return.  [default: 5]"
    assert rows["--mode"].startswith("Hybrid fuses full-text and vector rankings")
    assert rows["--mode"].endswith("[default: hybrid]")
    page = turnkit("memory", "search", "--help", cwd=tmp_path).stdout
    assert "--mode [hybrid|text|vector]" in page and "--scope [agent|session|principal]" in page
    create = option_rows(turnkit("task", "create", "--help", cwd=tmp_path).stdout)
    assert create["--enabled"] == "Whether the scheduler runs it.  [default: enabled]"


def test_a_value_outside_the_choices_is_refused_by_the_command_line(tmp_path: Path) -> None:
    result = turnkit("memory", "search", "--query", "tea", "--mode", "fuzzy", cwd=tmp_path)
    assert result.returncode == 2, str(result)
    assert "Invalid value for '--mode': 'fuzzy' is not one of 'hybrid', 'text', 'vector'." in result.stderr
    assert not (tmp_path / "turnkit.db").exists(), "refused before the agent started"


def test_shell_exec_exits_with_the_commands_status(tmp_path: Path) -> None:
    (tmp_path / "turnkit.toml").write_text('[service.shell]\nallow = ["sh"]\n')
    ok = turnkit("shell", "exec", "--", "sh", "-c", "echo fine", cwd=tmp_path)
    assert ok.returncode == 0 and json.loads(ok.stdout)["stdout"] == "fine\n", str(ok)
    failed = turnkit("shell", "exec", "--", "sh", "-c", "echo bad >&2; exit 3", cwd=tmp_path)
    assert failed.returncode == 3, str(failed)
    value = json.loads(failed.stdout)
    assert (value["exit_code"], value["stderr"]) == (3, "bad\n")
    killed = turnkit("shell", "exec", "--", "sh", "-c", "kill -TERM $$", cwd=tmp_path)
    assert (killed.returncode, json.loads(killed.stdout)["exit_code"]) == (128 + 15, -15), str(killed)


def test_a_refused_action_is_one_error_line(tmp_path: Path) -> None:
    result = turnkit("shell", "exec", "--", "ls", cwd=tmp_path)
    assert result.returncode == 1, str(result)
    (line,) = result.stderr.splitlines()
    assert line.startswith("Error: shell.exec raised ShellRefused: denied by shell: 'ls' is not allowed")


def test_a_required_plugin_that_fails_to_load_is_one_error_line(tmp_path: Path) -> None:
    broken = install_distribution(FIXTURE_DISTS / "turnkit-fixture-broken", tmp_path / "broken")
    (tmp_path / "turnkit.toml").write_text('[plugins]\nrequired = ["broken"]\n')
    result = turnkit("send", "hi", cwd=tmp_path, paths=(broken,))
    assert result.returncode == 1, str(result)
    (line,) = result.stderr.splitlines()
    assert line.startswith("Error: turnkit.toml: required plugins not loaded — broken: failed: RuntimeError")


def test_send_json_names_the_session_as_its_help_says(tmp_path: Path) -> None:
    page = " ".join(turnkit("send", "--help", cwd=tmp_path).stdout.split())
    assert "Print the session id, the turn and the reply as JSON." in page
    result = turnkit("send", "--json", "hi", cwd=tmp_path).json()
    assert set(result) == {"session_id", "turn", "reply", "deny"}
    assert result["session_id"] == result["turn"]["session_id"] and len(result["session_id"]) == 32


def test_send_streams_the_reply_as_it_is_written(tmp_path: Path) -> None:
    streamed = turnkit("send", "--stream", "one two three", cwd=tmp_path)
    assert (streamed.returncode, streamed.stdout) == (0, "one two three\n"), str(streamed)
    shout = install_distribution(FIXTURE_DISTS / "turnkit-fixture-shout", tmp_path / "shout")
    changed = turnkit("send", "--stream", "quiet words", cwd=tmp_path, paths=(shout,))
    assert changed.stdout == "quiet words\nQUIET WORDS\n", "what streamed, then the reply turn_outbound made"
    whole = turnkit("send", "quiet words", cwd=tmp_path, paths=(shout,))
    assert whole.stdout == "QUIET WORDS\n"
    both = turnkit("send", "--stream", "--json", "hi", cwd=tmp_path)
    assert both.returncode == 2 and "--stream and --json do not go together" in both.stderr


def test_the_fixture_kit_without_pytest_says_how_to_get_it() -> None:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(requirement.startswith("pytest") for requirement in extras["test"])
    hide_pytest = "import sys; sys.modules['pytest'] = None; import turnkit.testing"
    result = subprocess.run(
        [sys.executable, "-c", hide_pytest], capture_output=True, text=True, env=subprocess_env(), timeout=60
    )
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "ImportError: turnkit.testing needs pytest: pip install 'turnkit[test]'"
    )
    assert "During handling" not in result.stderr, "one error, not a chain"


@pytest.mark.parametrize("args", [("send", "--help"), ("serve", "--help"), ("--help",)])
def test_help_creates_no_store(tmp_path: Path, args: tuple[str, ...]) -> None:
    assert turnkit(*args, cwd=tmp_path).returncode == 0
    assert list(tmp_path.iterdir()) == []
