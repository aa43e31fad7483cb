"""A plugin's life in its agent: configured at start, closed at stop, or set aside when not configured.

``Plugin.close()`` lets a plugin hold what it needs across turns (a
connection pool, worker processes) and release it: it is called once the
turns and their effects are done, last configured first, each under
``[plugins] close_timeout``, and neither its failure nor its hanging stops
the agent from stopping. A plugin whose settings need keys the
configuration does not give stays out of an agent that has no table for
it, unless the agent requires it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import attrs
import pytest
from turnkit.agent import Agent
from turnkit.errors import ConfigError, PluginConfigureError
from turnkit.manager import PluginManager
from turnkit_hookspecs import ExecutionContext, Message, Plugin, hookimpl

from tests.support.agents import agent_config, build_agent, running_agent

#: What the plugins of a test did, in order: ("configure" | "close" | …, plugin name).
Events = list[tuple[str, str]]


class Holder(Plugin):
    """A plugin keeping something open from ``configure`` to ``close``, recording both."""

    def __init__(self, name: str, events: Events) -> None:
        self.name, self.events = name, events

    def configure(self, context: ExecutionContext) -> None:
        super().configure(context)
        self.events.append(("configure", self.name))

    async def close(self) -> None:
        await asyncio.sleep(0)  # a real close awaits something (a pool, a process)
        self.events.append(("close", self.name))


class SlowObserver(Holder):
    """Its ``turn_completed`` effect takes a while: ``close`` must come after it."""

    @hookimpl
    async def turn_completed(self, reply: Message) -> None:
        await asyncio.sleep(0.2)
        self.events.append(("observed", reply.text))


class BrokenClose(Holder):
    async def close(self) -> None:
        raise OSError("the socket was already gone")


class HangingClose(Holder):
    async def close(self) -> None:
        await asyncio.sleep(3600)


class FailingConfigure(Holder):
    def configure(self, context: ExecutionContext) -> None:
        raise RuntimeError("cannot reach the licence server")


async def test_close_comes_after_the_last_effect_in_reverse_configure_order(tmp_path: Path) -> None:
    events: Events = []
    plugins = {name: Holder(name, events) for name in ("alpha", "beta")}
    plugins["slow"] = SlowObserver("slow", events)
    async with running_agent(tmp_path, plugins=plugins) as agent:
        await agent.send("hello")
    configured = [name for what, name in events if what == "configure"]
    assert sorted(configured) == ["alpha", "beta", "slow"]
    assert [event for event in events if event[0] != "configure"] == [
        ("observed", "hello"),  # the turn's effect ran to its end before anything closed
        *(("close", name) for name in reversed(configured)),
    ]


async def test_a_close_that_fails_or_hangs_is_logged_and_the_others_still_close(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    events: Events = []
    plugins = {
        "alpha": Holder("alpha", events),
        "broken": BrokenClose("broken", events),
        "hanging": HangingClose("hanging", events),
        "zeta": Holder("zeta", events),
    }
    agent = build_agent(tmp_path, plugins=plugins, plugins_table={"close_timeout": 0.2})
    await agent.start()
    started = time.monotonic()
    with caplog.at_level(logging.ERROR):
        await agent.stop()
    assert time.monotonic() - started < 2, "a hanging close held the stop"
    assert sorted(name for what, name in events if what == "close") == ["alpha", "zeta"]
    logged = [record.getMessage() for record in caplog.records]
    assert "plugin broken failed to close: OSError: the socket was already gone" in logged
    assert "plugin hanging did not close within 0.2 s; stopping without it" in logged


async def test_a_failed_start_closes_the_plugins_already_configured(tmp_path: Path) -> None:
    events: Events = []
    plugins = {"alpha": Holder("alpha", events), "failing": FailingConfigure("failing", events)}
    agent = build_agent(tmp_path, plugins=plugins)
    with pytest.raises(PluginConfigureError, match="cannot reach the licence server"):
        await agent.start()
    # the one that failed holds nothing to release; the one configured before it is closed
    assert ("close", "failing") not in events
    assert [event for event in events if event[1] == "alpha"] == [("configure", "alpha"), ("close", "alpha")]


# ------------------------------------------------------------------ not configured


@attrs.frozen
class LicenceSettings:
    key: str
    seats: int = 1


class Licensed(Plugin):
    """Needs ``[plugin.licensed] key``; marks every reply while active."""

    settings_class = LicenceSettings

    def __init__(self, events: Events) -> None:
        self.events = events

    def configure(self, context: ExecutionContext) -> None:
        super().configure(context)
        self.events.append(("configure", "licensed"))

    async def close(self) -> None:
        self.events.append(("close", "licensed"))

    @hookimpl
    def turn_outbound(self, message: Message) -> Message:
        return Message.of("assistant", f"{message.text} (licensed)")


async def test_a_plugin_needing_a_table_it_lacks_stays_inactive_and_says_which_table(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    events: Events = []
    with caplog.at_level(logging.WARNING):
        async with running_agent(tmp_path, plugins={"licensed": Licensed(events)}) as agent:
            result = await agent.send("hello")
            record = agent.manager.records["licensed"]
            assert "licensed" not in agent.manager.plugins()
            assert [i.plugin for i in agent.manager.implementations("turn_outbound")] == []
    assert result.reply is not None and result.reply.text == "hello"
    assert (record.status, record.error) == ("not configured", "add [plugin.licensed] key = … to use it")
    assert events == [], "an inactive plugin is neither configured nor closed"
    [warning] = [r.getMessage() for r in caplog.records if "licensed" in r.getMessage()]
    assert warning == (
        "<config>: plugin 'licensed' is installed but not configured, so it stays inactive:"
        " add [plugin.licensed] key = … to use it"
    )


async def test_with_its_table_the_plugin_is_active(tmp_path: Path) -> None:
    events: Events = []
    plugin = {"licensed": {"key": "K-1"}}
    async with running_agent(tmp_path, plugins={"licensed": Licensed(events)}, plugin=plugin) as agent:
        result = await agent.send("hello")
    assert result.reply is not None and result.reply.text == "hello (licensed)"
    assert events == [("configure", "licensed"), ("close", "licensed")]


@pytest.mark.parametrize("required", ["licensed", "turnkit-licensed"])
async def test_a_required_plugin_without_its_table_stops_the_start(tmp_path: Path, required: str) -> None:
    config = agent_config(tmp_path, plugins={"required": [required]})
    manager = PluginManager(config.plugins)
    manager.register(Licensed([]), "licensed", distribution="turnkit-licensed")
    with pytest.raises(ConfigError) as raised:
        await Agent(config, manager=manager).start()
    assert str(raised.value) == (
        "<config>: the required plugin 'licensed' is not configured: add [plugin.licensed] key = …"
        " @ $.plugin.licensed"
    )
