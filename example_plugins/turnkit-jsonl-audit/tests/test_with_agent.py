"""turnkit-jsonl-audit in a real agent (the ``turnkit_agent`` fixture): settings, records, isolation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from turnkit.errors import ConfigError
from turnkit.testing import AgentHarness
from turnkit_hookspecs import Deny, hookimpl
from turnkit_jsonl_audit import AUDIT_FILE_ENV, JsonlAuditPlugin


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


class NoSecrets:
    @hookimpl
    def turn_authorize(self, message: Any) -> Deny | None:
        return Deny("no secrets") if "secret" in message.text else None


def test_the_file_setting_is_relative_to_the_configuration_folder(
    turnkit_agent: AgentHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(AUDIT_FILE_ENV, str(turnkit_agent.directory / "from-the-variable.jsonl"))
    turnkit_agent.register(JsonlAuditPlugin(), "jsonl-audit", settings={"file": "audit.jsonl"})
    turnkit_agent.register(NoSecrets(), "no-secrets")
    done = turnkit_agent.send("hello")
    denied = turnkit_agent.send("my secret")
    turnkit_agent.settle()
    written = records(turnkit_agent.directory / "audit.jsonl")
    assert [(r["turn_id"], r["status"]) for r in written] == [
        (done.turn.turn_id, "completed"),
        (denied.turn.turn_id, "denied"),
    ]
    assert written[0]["reply"] == "hello"
    assert written[1]["deny"] == {"reason": "no secrets", "plugin": "no-secrets"}
    assert not (turnkit_agent.directory / "from-the-variable.jsonl").exists()


def test_without_a_file_setting_the_variable_names_the_file(
    turnkit_agent: AgentHarness, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    target = tmp_path / "env.jsonl"
    monkeypatch.setenv(AUDIT_FILE_ENV, str(target))
    turnkit_agent.register(JsonlAuditPlugin(), "jsonl-audit")
    result = turnkit_agent.send("hi")
    turnkit_agent.settle()
    assert [r["turn_id"] for r in records(target)] == [result.turn.turn_id]


def test_a_write_failure_is_isolated_and_traced(turnkit_agent: AgentHarness) -> None:
    turnkit_agent.register(JsonlAuditPlugin(), "jsonl-audit", settings={"file": "missing-folder/audit.jsonl"})
    result = turnkit_agent.send("hi")
    assert result.turn.status == "completed"
    assert result.reply is not None and result.reply.text == "hi"
    [call] = [c for c in turnkit_agent.trace(result.turn.turn_id) if c.plugin == "jsonl-audit"]
    assert call.point == "turn_completed"
    assert call.outcome == "error"
    assert call.error is not None and "cannot append to the audit file" in call.error


def test_an_unknown_setting_is_refused_with_its_path(turnkit_agent: AgentHarness) -> None:
    turnkit_agent.register(JsonlAuditPlugin(), "jsonl-audit", settings={"path": "audit.jsonl"})
    with pytest.raises(ConfigError, match=r"path.*\$\.plugin\.jsonl-audit"):
        turnkit_agent.start()
