"""``examples/http-agent``: its configuration serves the HTTP API with both example plugins at work.

The two plugins are imported from their source folders and registered in
code: the test environment does not install example plugins (an installed
plugin would change what every other runtime test discovers).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import attrs
import httpx
import pytest
from turnkit.agent import Agent
from turnkit.config import load_config, with_service_option
from turnkit.manager import PluginManager
from turnkit_services.chat import ChatService
from turnkit_services.memory import MemoryService

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "http-agent" / "turnkit.toml"


async def test_the_example_agent_serves_http_with_redaction_and_audit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for plugin in ("turnkit-redact", "turnkit-jsonl-audit"):
        monkeypatch.syspath_prepend(str(ROOT / "example_plugins" / plugin / "src"))
    import turnkit_jsonl_audit
    import turnkit_redact

    audit = tmp_path / "turns.jsonl"
    config = load_config(EXAMPLE)
    assert config.plugins.required == ["redact", "jsonl-audit"]
    assert config.plugin["jsonl-audit"] == {"file": "turns.jsonl"}
    config = attrs.evolve(
        config,
        store=attrs.evolve(config.store, url=str(tmp_path / "example.db")),
        plugin={**config.plugin, "jsonl-audit": {"file": str(audit)}},
    )
    # the example leaves the token off; a deployment turns it on (as its README says), and so does this test
    http = {**config.service["chat"]["http"], "port": 0, "token_env": "TURNKIT_HTTP_TOKEN"}
    config = with_service_option(config, "chat", "http", http)

    chat = ChatService()
    manager = PluginManager(config.plugins)
    for service in (chat, MemoryService()):
        manager.add_service(service)
    manager.register(turnkit_redact.RedactPlugin(), "redact")
    manager.register(turnkit_jsonl_audit.JsonlAuditPlugin(), "jsonl-audit")
    async with Agent(config, manager=manager, env={"TURNKIT_HTTP_TOKEN": "s3cret"}) as agent:
        serving = asyncio.create_task(agent.serve())
        while "http" not in chat.channels and not serving.done():
            await asyncio.sleep(0.01)
        channel = chat.channels["http"]
        await asyncio.wait_for(channel.ready.wait(), 10)  # type: ignore[attr-defined]
        headers = {"Authorization": "Bearer s3cret"}
        async with httpx.AsyncClient(base_url=channel.address, headers=headers) as client:  # type: ignore[attr-defined]
            refused = await client.post(
                "/api/chats/me/messages", json={"text": "hi"}, headers={"Authorization": ""}
            )
            response = await client.post("/api/chats/me/messages", json={"text": "mail ann@example.org"})
        await agent.dispatcher.drain()
        agent.request_stop()
        await asyncio.wait_for(serving, 10)
    assert refused.status_code == 401
    body = response.json()
    assert response.status_code == 200 and body["status"] == "completed"
    assert body["reply"] == "mail [email]"
    (line,) = audit.read_text().splitlines()
    record = json.loads(line)
    assert record["status"] == "completed" and record["reply"] == "mail [email]"
