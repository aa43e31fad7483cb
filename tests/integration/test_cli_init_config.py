"""``turnkit init`` and ``turnkit config check``, each run in a subprocess of the console script."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.support.dists import CliResult, run_turnkit


def turnkit(*args: str, cwd: Path, expect: int = 0, env: dict[str, str] | None = None) -> CliResult:
    result = run_turnkit(*args, cwd=cwd, env=env, timeout=60)
    assert result.returncode == expect, str(result)
    return result


def without_none(value: Any) -> Any:
    """``value`` as TOML can hold it: keys whose value is ``None`` left out."""
    if isinstance(value, dict):
        return {k: without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_none(item) for item in value if item is not None]
    return value


def test_init_writes_a_commented_configuration_that_checks_and_runs(tmp_path: Path) -> None:
    wrote = turnkit("init", cwd=tmp_path)
    assert wrote.stdout.startswith("wrote turnkit.toml;")
    text = (tmp_path / "turnkit.toml").read_text()
    for part in (
        "[agent]",
        "instructions = ",
        "[model]",
        "# name = ",
        "[service.chat]",
        'channels = ["http"]',
    ):
        assert part in text
    assert '# token_env = "TURNKIT_HTTP_TOKEN"' in text, "the token is shown, and off"
    checked = turnkit("config", "check", "--json", cwd=tmp_path).json()
    assert checked["agent"]["instructions"].startswith("You are a helpful assistant.")
    assert checked["service"]["chat"]["channels"] == ["http"]
    assert checked["service"]["shell"]["allow"] == []
    assert turnkit("send", "hello", cwd=tmp_path).stdout == "hello\n"


def test_init_leaves_an_existing_file_alone_unless_forced(tmp_path: Path) -> None:
    (tmp_path / "turnkit.toml").write_text("# mine\n")
    refused = turnkit("init", cwd=tmp_path, expect=1)
    assert refused.stderr == "Error: turnkit.toml exists already: edit it, or pass --force to replace it\n"
    assert (tmp_path / "turnkit.toml").read_text() == "# mine\n"
    turnkit("init", "--force", cwd=tmp_path)
    assert "[service.chat]" in (tmp_path / "turnkit.toml").read_text()
    turnkit("--config", "other.toml", "init", cwd=tmp_path)
    turnkit("init", "third.toml", cwd=tmp_path)
    assert (tmp_path / "other.toml").read_text() == (tmp_path / "third.toml").read_text()


def test_config_check_prints_every_setting_in_effect_as_toml_or_json(tmp_path: Path) -> None:
    (tmp_path / "turnkit.toml").write_text(
        '[store]\nurl = "agent.db"\n\n[service.chat.http]\nport = 9000\n\n'
        '[[service.task.tasks]]\nname = "brief"\ninstructions = "Brief me."\ncron = "0 8 * * *"\n'
    )
    result = turnkit("config", "check", cwd=tmp_path)
    assert result.stderr == "turnkit.toml: ok\n"
    as_toml = tomllib.loads(result.stdout)
    as_json = turnkit("config", "check", "--json", cwd=tmp_path).json()
    assert as_toml == without_none(as_json), "the two forms say the same"
    assert as_json["store"]["url"] == str(tmp_path / "agent.db")
    assert as_json["model"]["name"] == "echo", "the model the agent settled on"
    http = as_json["service"]["chat"]["http"]
    assert (http["port"], http["host"], http["max_body"]) == (9000, "127.0.0.1", 1_000_000)
    assert as_json["service"]["shell"]["timeout"] == 30.0, "a service's defaults, filled in"
    assert [task["name"] for task in as_json["service"]["task"]["tasks"]] == ["brief"]
    assert as_json["turns"]["history"] == 50 and as_json["plugins"]["guard_timeout"] == 5.0
    assert not (tmp_path / "agent.db").exists(), "the configured store is not opened"


def test_config_check_masks_secrets(tmp_path: Path) -> None:
    (tmp_path / "turnkit.toml").write_text(
        '[store]\nurl = "postgresql://agent:hunter2hunter2@db.internal/agents"\n\n'
        '[service.chat.http]\ntoken = "http-token-123456"\n\n'
        '[service.shell]\nenv = { DEPLOY_TOKEN = "deploy-123456", GREETING = "hello" }\n'
        'allow = ["ls"]\nbase_env = ["HOME"]\n\n'
        '[secrets]\nenv = ["CUSTOM_SECRET"]\n\n'
        '[agent]\ninstructions = "Never say custom-value-987654."\n'
    )
    result = turnkit("config", "check", "--json", cwd=tmp_path, env={"CUSTOM_SECRET": "custom-value-987654"})
    for secret in ("hunter2hunter2", "http-token-123456", "deploy-123456", "custom-value-987654"):
        assert secret not in result.stdout + result.stderr
    checked = json.loads(result.stdout)
    assert checked["store"]["url"] == "postgresql://agent:***@db.internal/agents"
    assert checked["service"]["chat"]["http"]["token"] == "[secret]"
    assert checked["service"]["shell"]["env"] == {"DEPLOY_TOKEN": "[secret]", "GREETING": "hello"}
    assert checked["agent"]["instructions"] == "Never say [secret]."
    assert checked["service"]["chat"]["telegram"]["token_env"] == "TELEGRAM_BOT_TOKEN", "names are no secret"


@pytest.mark.parametrize(
    ("config", "error"),
    [
        (
            '[service.shell]\nallow = ["ls"]\ntimout = 3\n',
            "turnkit.toml: extra fields found (timout) @ $.service.shell",
        ),
        (
            '[service.chat]\nchannels = ["htp"]\n',
            "turnkit.toml: service 'chat' failed to start: ValueError: [service.chat] channels: unknown"
            " channel 'htp' (did you mean 'http'? known: http, telegram, terminal)",
        ),
        (
            '[plugins]\nrequired = ["nope"]\n',
            "turnkit.toml: required plugins not loaded — nope: not installed",
        ),
        (
            '[store]\nurl = "mysql://db/x"\n',
            "turnkit.toml: store url 'mysql://db/x': scheme 'mysql' is not supported",
        ),
        (
            "[service.chta]\nx = 1\n",
            "turnkit.toml: [service.chta] configures a service that is not installed",
        ),
        ("[agent]\nid = 3\n", "turnkit.toml: expected str, got int 3 @ $.agent.id"),
    ],
)
def test_config_check_names_the_first_problem_in_one_line(tmp_path: Path, config: str, error: str) -> None:
    (tmp_path / "turnkit.toml").write_text(config)
    result = turnkit("config", "check", cwd=tmp_path, expect=1)
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"Error: {error}"), line
    assert sorted(path.name for path in tmp_path.iterdir()) == ["turnkit.toml"], "nothing written"
