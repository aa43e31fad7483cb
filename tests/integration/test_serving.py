"""Services' settings tables, their storage, and ``Agent.serve`` running their long-running parts."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import attrs
import pytest
from turnkit.errors import ConfigError, TurnkitError
from turnkit_hookspecs import ExecutionContext, Service

from tests.support.agents import build_agent, running_agent


@attrs.frozen
class Limits:
    size: int = 10
    names: list[str] = attrs.field(factory=list)


@attrs.frozen
class Settings:
    greeting: str = "hello"
    limits: Limits = attrs.field(factory=Limits)


class Configured(Service):
    name = "configured"
    settings_class = Settings

    async def start(self, context: ExecutionContext) -> None:
        self.seen_at_start = self.settings
        self.agent_id = context.agent_id
        await context.storage(self.name).put("starts", "last", {"greeting": self.settings.greeting})


class Server(Service):
    """Serves until cancelled, or until ``finish`` is set (then returns or raises)."""

    def __init__(self, name: str, error: Exception | None = None) -> None:
        self.name = name  # type: ignore[misc]
        self.error = error
        self.finish = asyncio.Event()
        self.serving = asyncio.Event()
        self.cancelled = False

    async def serve(self, context: ExecutionContext) -> None:
        self.serving.set()
        try:
            await self.finish.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        if self.error is not None:
            raise self.error


class Idle(Service):
    name = "idle"


async def test_a_service_table_is_structured_into_its_settings_before_start(tmp_path: Path) -> None:
    service = Configured()
    table = {"configured": {"greeting": "hi", "limits": {"size": 3, "names": ["a"]}}}
    async with running_agent(tmp_path, services=[service], service=table, agent={"id": "a1"}) as agent:
        stored = await agent.context.storage("configured").get("starts", "last")
    assert service.seen_at_start == Settings("hi", Limits(3, ["a"]))
    assert service.agent_id == "a1"
    assert stored is not None and stored.value == {"greeting": "hi"}


async def test_a_missing_table_gives_the_defaults(tmp_path: Path) -> None:
    service = Configured()
    async with running_agent(tmp_path, services=[service]):
        pass
    assert service.seen_at_start == Settings()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"greting": "x"}, r"extra fields found \(greting\) @ \$\.service\.configured"),
        ({"limits": {"size": "big"}}, r"expected int, got str 'big' @ \$\.service\.configured\.limits\.size"),
    ],
)
async def test_a_bad_service_table_refuses_the_start_naming_the_key(
    tmp_path: Path, table: dict[str, Any], message: str
) -> None:
    agent = build_agent(tmp_path, services=[Configured()], service={"configured": table})
    with pytest.raises(ConfigError, match=message):
        await agent.start()
    with pytest.raises(TurnkitError, match="not started"):
        agent.store  # noqa: B018 - nothing is left half-started


async def test_a_table_for_a_service_that_is_not_installed_is_an_error(tmp_path: Path) -> None:
    agent = build_agent(tmp_path, services=[Idle()], service={"chta": {}})
    with pytest.raises(ConfigError, match=r"\[service\.chta\] configures a service that is not installed"):
        await agent.start()


async def test_serve_ends_when_one_service_returns_and_cancels_the_others(tmp_path: Path) -> None:
    ending, other = Server("ending"), Server("other")
    async with running_agent(tmp_path, services=[ending, other, Idle()]) as agent:
        serving = asyncio.create_task(agent.serve())
        await asyncio.wait_for(asyncio.gather(ending.serving.wait(), other.serving.wait()), 5)
        ending.finish.set()
        await asyncio.wait_for(serving, 5)
        assert other.cancelled and not ending.cancelled
        result = await agent.send("still running after serving")  # the agent stays started
    assert result.turn.status == "completed"


async def test_request_stop_ends_serving(tmp_path: Path) -> None:
    server = Server("server")
    async with running_agent(tmp_path, services=[server]) as agent:
        serving = asyncio.create_task(agent.serve())
        await asyncio.wait_for(server.serving.wait(), 5)
        agent.request_stop()
        await asyncio.wait_for(serving, 5)
    assert server.cancelled


async def test_serving_with_nothing_to_serve_waits_for_stop(tmp_path: Path) -> None:
    async with running_agent(tmp_path, services=[Idle()]) as agent:
        serving = asyncio.create_task(agent.serve())
        await asyncio.sleep(0.05)
        assert not serving.done()
        agent.request_stop()
        await asyncio.wait_for(serving, 5)


async def test_a_service_failing_while_serving_is_reported(tmp_path: Path) -> None:
    failing, other = Server("failing", RuntimeError("port in use")), Server("other")
    async with running_agent(tmp_path, services=[failing, other]) as agent:
        serving = asyncio.create_task(agent.serve())
        await asyncio.wait_for(failing.serving.wait(), 5)
        failing.finish.set()
        with pytest.raises(TurnkitError, match=r"service 'failing' stopped serving: port in use$"):
            await asyncio.wait_for(serving, 5)
    assert other.cancelled
