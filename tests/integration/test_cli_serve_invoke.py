"""``turnkit serve``, ``turnkit invoke`` and the per-service command groups, each run in a subprocess."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.dists import run_turnkit, subprocess_env, turnkit_command


def write_config(folder: Path, extra: str = "") -> Path:
    config = folder / "turnkit.toml"
    config.write_text('[store]\nurl = "t.db"\n' + extra)
    return config


def test_invoke_prints_the_value_as_json(tmp_path: Path) -> None:
    write_config(tmp_path)
    result = run_turnkit("invoke", "chat.bindings", cwd=tmp_path)
    assert result.returncode == 0, str(result)
    assert json.loads(result.stdout) == []


def test_invoke_reports_a_failing_action_and_exits_1(tmp_path: Path) -> None:
    write_config(tmp_path)
    payload = json.dumps({"channel": "telegram", "chat_id": "1", "text": "hi"})
    result = run_turnkit("invoke", "chat.deliver", payload, cwd=tmp_path)
    assert result.returncode == 1, str(result)
    assert "channel 'telegram' is not running" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("invoke", "chat.nope"), "service 'chat' has no action 'nope'"),
        (("invoke", "chta.bindings"), "unknown service 'chta'"),
        (("invoke", "chat.bindings", "[1]"), "PAYLOAD: must be a JSON object"),
        (("invoke", "chat.bindings", "{nope"), "PAYLOAD: not JSON"),
    ],
)
def test_invoke_names_what_is_wrong(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    write_config(tmp_path)
    result = run_turnkit(*args, cwd=tmp_path)
    assert result.returncode != 0 and message in result.stderr, str(result)


def test_a_bad_service_table_is_reported_with_its_key_path(tmp_path: Path) -> None:
    write_config(tmp_path, '[service.chat]\nchanels = ["http"]\n')
    result = run_turnkit("send", "hi", cwd=tmp_path)
    assert result.returncode == 1
    assert "extra fields found (chanels) @ $.service.chat" in result.stderr
    assert "turnkit.toml" in result.stderr


def test_service_groups_are_listed_without_importing_them(tmp_path: Path) -> None:
    top = run_turnkit("--help", cwd=tmp_path).stdout
    for name in ("memory", "shell", "task", "serve", "invoke"):
        assert f"\n  {name} " in top
    assert "Actions of the memory service (turnkit-services)." in top


def test_serve_runs_until_sigterm_and_stops_cleanly(tmp_path: Path) -> None:
    write_config(tmp_path, '[service.chat]\nchannels = ["http"]\n[service.chat.http]\nport = 0\n')
    process = subprocess.Popen(
        [*turnkit_command(), "serve"],
        cwd=tmp_path,
        env=subprocess_env(()),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert "turnkit: agent 'default' serving (" in line and "chat" in line
        time.sleep(0.2)
        assert process.poll() is None, "serve returned on its own"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
