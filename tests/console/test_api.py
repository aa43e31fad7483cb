"""The console's API and exports over real HTTP: what each answers, that no request fails the
server, the read-only ``turnkit console``, the token, and ``sessions export --html``."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.chat.http_server import Served, read_events, serving_http
from tests.console.read_only import read_only_console
from tests.console.scene import play, scene_options
from tests.support.dists import run_turnkit


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Served, dict[str, str]]]:
    async with serving_http(tmp_path, **scene_options()) as served:
        yield served, await play(served.agent)


async def test_every_view_answers_and_bad_requests_are_4xx_json_never_5xx(
    served: tuple[Served, dict[str, str]],
) -> None:
    server, ids = served
    main = ids["main"]
    async with server.client() as client:
        session = (await client.get(f"/console/api/sessions/{main}")).json()
        turn_id = session["turns"][0]["turn_id"]
        good = [
            "/console/api/info",
            "/console/api/sessions",
            "/console/api/sessions?q=fork&kind=chat&status=active&limit=1",
            f"/console/api/sessions/{main}",
            f"/console/api/turns/{turn_id}",
            "/console/api/audit?plugin=scenario&limit=2",
            "/console/api/plugins",
            f"/console/api/sessions/{main}/export.html",
            f"/console/api/turns/{turn_id}/export.html",
        ]
        for path in good:
            assert (await client.get(path)).status_code == 200, path
        bad = {
            "/console/api/sessions/nope": (404, "no session 'nope'"),
            "/console/api/turns/nope": (404, "no turn 'nope'"),
            "/console/api/turns/nope/export.html": (404, "no turn 'nope'"),
            "/console/api/sessions/nope/export.html": (404, "no session 'nope'"),
            "/console/api/sessions?after=x": (400, "after: not a page cursor"),
            "/console/api/sessions?after=1.5~": (400, "after: not a page cursor"),
            "/console/api/sessions?limit=abc": (400, "limit: not a whole number"),
            "/console/api/sessions?limit=100000": (400, "limit: must be between 1 and 200"),
            "/console/api/audit?before=-1": (400, "before: must be between"),
            "/console/api/live?since=nan": (400, "since: not a Unix time"),
            "/console/api/live?since=soon": (400, "since: not a Unix time"),
            "/console/api/nothing/here": (404, "no such console API"),
            "/console/assets/missing.js": (404, "Not Found"),
            "/console/assets/%2e%2e/%2e%2e/etc/passwd": (404, "Not Found"),
        }
        for path, (status, message) in bad.items():
            response = await client.get(path)
            assert response.status_code == status, path
            assert message in response.json()["error"]["message"], path
        for body, status in ((b"{", 400), (b"[]", 400), (b'{"text": 3}', 400), (b'{"text": " "}', 400)):
            response = await client.post(
                f"/console/api/sessions/{main}/messages",
                content=body,
                headers={"Content-Type": "application/json"},
            )
            assert response.status_code == status
        form = await client.post(f"/console/api/sessions/{main}/messages", data={"text": "hi"})
        assert form.status_code == 415
        missing = await client.post("/console/api/sessions/nope/messages", json={"text": "hi"})
        assert (missing.status_code, missing.json()["error"]["message"]) == (404, "no session 'nope'")


async def test_a_session_document_has_the_tree_context_instructions_and_marks(
    served: tuple[Served, dict[str, str]],
) -> None:
    server, ids = served
    async with server.client() as client:
        main = (await client.get(f"/console/api/sessions/{ids['main']}")).json()
        child = (await client.get(f"/console/api/sessions/{ids['child']}")).json()
    assert [c["session_id"] for c in main["tree"]["children"]] == [ids["child"]]
    assert main["tree"]["children"][0]["status"] == "merged"
    assert [a["session_id"] for a in child["tree"]["ancestors"]] == [ids["main"]]
    assert [c["key"] for c in main["context"]] == ["hint"]
    assert main["context"][0]["consumed_by"] is not None  # the next turn's prompt used it
    marks = {(m["compressed"], m["summary"], m["merged_from"]) for m in main["messages"]}
    assert (True, False, None) in marks and (False, True, None) in marks
    assert any(merged == ids["child"] for _, _, merged in marks)
    assert [t["status"] for t in main["turns"]].count("denied") == 1
    assert {e["action"] for e in main["audit"]} == {"contribute_context", "fork", "merge", "compress"}


async def test_the_live_stream_sends_new_turns_and_ends_when_the_agent_stops(tmp_path: Path) -> None:
    async with serving_http(tmp_path, **scene_options()) as server, server.client() as client:
        now = (await client.get("/console/api/info")).json()["now"]
        async with client.stream("GET", "/console/api/live", params={"since": now}) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            events = read_events(response)
            sent = asyncio.create_task(server.agent.send("live one"))
            seen: list[Any] = []
            async for event in events:
                seen.append(event.json())
                if seen[-1]["status"] == "completed":
                    break
            result = await sent
            assert {e["turn_id"] for e in seen} == {result.turn.turn_id}
            began = time.monotonic()
            server.agent.request_stop()  # the stream ends, so the server's shutdown does not wait for it
            async for _ in events:
                pass
            assert time.monotonic() - began < 5


def test_the_read_only_console_reads_any_store_and_refuses_to_send(tmp_path: Path) -> None:
    ids = asyncio.run(_played(tmp_path))
    store = tmp_path / "t.db"
    with read_only_console(store) as url:
        info = httpx.get(f"{url}/api/info", timeout=10).json()
        assert (info["read_only"], info["store"]) == (True, str(store))
        listed = httpx.get(f"{url}/api/sessions", timeout=10).json()["sessions"]
        assert {s["session_id"] for s in listed} == set(ids.values())
        refused = httpx.post(f"{url}/api/sessions/{ids['main']}/messages", json={"text": "hi"}, timeout=10)
        assert refused.status_code == 409
        assert "read-only" in refused.json()["error"]["message"]
        assert "turnkit console" in httpx.get(f"{url}/", timeout=10).text
        plugins = httpx.get(f"{url}/api/plugins", timeout=10).json()
        assert "turn_reply" in {p["point"] for p in plugins["points"]}

    with read_only_console(store, "--token-env", "CONSOLE_TOKEN", env={"CONSOLE_TOKEN": "tok"}) as url:
        assert httpx.get(f"{url}/api/sessions", timeout=10).status_code == 401
        assert httpx.get(f"{url}/", timeout=10).status_code == 200
        allowed = httpx.get(f"{url}/api/sessions", headers={"Authorization": "Bearer tok"}, timeout=10)
        assert allowed.status_code == 200


def test_the_read_only_console_will_not_listen_beyond_loopback_without_a_token(tmp_path: Path) -> None:
    result = run_turnkit("console", "--store", str(tmp_path / "t.db"), "--host", "0.0.0.0", cwd=tmp_path)
    assert result.returncode == 2
    assert "set --token-env" in result.stderr


def test_sessions_export_html_is_a_self_contained_page(tmp_path: Path) -> None:
    ids = asyncio.run(_played(tmp_path))
    (tmp_path / "turnkit.toml").write_text('[store]\nurl = "t.db"\n')
    page = run_turnkit("sessions", "export", ids["main"][:8], "--html", cwd=tmp_path)
    assert page.returncode == 0, page.stderr
    html = page.stdout
    assert html.startswith("<!doctype html>")
    assert "forbidden question" in html and "merge result" in html and "compressed" in html
    # nothing to fetch: no script, no stylesheet or image link, no address but text
    assert not re.search(r"<script|<link|<img|src=|https?://", html, re.IGNORECASE)

    document = run_turnkit("sessions", "export", ids["main"], cwd=tmp_path).stdout
    first = re.search(r'"turn_id": "([0-9a-f]+)"', document)
    assert first is not None
    one = run_turnkit("sessions", "export", ids["main"], "--html", "--turn", first.group(1)[:6], cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    assert "tool step 1" in one.stdout and 'class="wf-row' in one.stdout
    wrong = run_turnkit("sessions", "export", ids["main"], "--turn", "abc", cwd=tmp_path)
    assert wrong.returncode == 2 and "--turn goes with --html" in wrong.stderr


async def _played(directory: Path) -> dict[str, str]:
    from tests.support.agents import running_agent

    async with running_agent(directory, **scene_options()) as agent:
        return await play(agent)
