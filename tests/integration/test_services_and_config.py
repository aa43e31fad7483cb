"""The agent's services lifecycle, and configuration errors that name the key.

Services start in ``[services] order`` then by name and stop in reverse; an
optional service that fails to start is reported and left out, a required
one stops the agent from starting (and what already started is stopped).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from turnkit.agent import Agent
from turnkit.config import load_config
from turnkit.errors import ConfigError, TurnkitError, UnknownActionError
from turnkit_hookspecs import ExecutionContext, Service, action

from tests.support.agents import build_agent, running_agent


class Recorded(Service):
    """A service writing ``start NAME`` / ``stop NAME`` to a shared log; ``fail`` makes start raise."""

    def __init__(self, name: str, log: list[str], fail: bool = False) -> None:
        self.name = name  # type: ignore[misc]
        self.log = log
        self.fail = fail
        self.context: ExecutionContext | None = None

    async def start(self, context: ExecutionContext) -> None:
        if self.fail:
            self.log.append(f"failed {self.name}")
            raise RuntimeError("no disk")
        self.context = context
        self.log.append(f"start {self.name}")

    async def stop(self) -> None:
        self.log.append(f"stop {self.name}")

    @action
    def ping(self) -> str:
        """Answer with the service's name."""
        return self.name


def services(log: list[str], *names: str, failing: str | None = None) -> list[Recorded]:
    return [Recorded(name, log, fail=name == failing) for name in names]


async def test_services_start_in_configured_order_then_by_name_and_stop_in_reverse(tmp_path: Path) -> None:
    log: list[str] = []
    found = services(log, "zeta", "beta", "alpha", "mid", "off")
    table = {"order": ["zeta", "mid"], "disabled": ["off"]}
    async with running_agent(tmp_path, services=found, services_table=table) as agent:
        assert log == ["start zeta", "start mid", "start alpha", "start beta"]
        assert list(agent.services) == ["zeta", "mid", "alpha", "beta"]
        assert agent.service_errors == {}
        context = found[0].context
        assert isinstance(context, ExecutionContext)
        assert context.config is agent.config and context.session is agent.sessions
        assert (await agent.invoke("mid.ping")).value == "mid"
        with pytest.raises(UnknownActionError, match="running services with actions: alpha, beta, mid, zeta"):
            await agent.invoke("off.ping")
        log.clear()
    assert log == ["stop beta", "stop alpha", "stop mid", "stop zeta"]


async def test_an_optional_service_failing_to_start_is_reported_and_left_out(tmp_path: Path) -> None:
    log: list[str] = []
    found = services(log, "alpha", "beta", "gamma", failing="beta")
    async with running_agent(tmp_path, services=found) as agent:
        assert agent.service_errors == {"beta": "RuntimeError: no disk"}
        assert list(agent.services) == ["alpha", "gamma"]
        assert (await agent.send("still works")).turn.status == "completed"
        assert (await agent.invoke("gamma.ping")).ok
        with pytest.raises(UnknownActionError):
            await agent.invoke("beta.ping")
        log.clear()
    assert log == ["stop gamma", "stop alpha"], "a service that never started is not stopped"


async def test_a_required_service_failing_to_start_stops_the_agent(tmp_path: Path) -> None:
    log: list[str] = []
    found = services(log, "alpha", "beta", "gamma", failing="beta")
    agent = build_agent(tmp_path, services=found, services_table={"required": ["beta"]})
    with pytest.raises(TurnkitError, match=r"required service 'beta' failed to start: no disk$"):
        await agent.start()
    assert log == ["start alpha", "failed beta", "stop alpha"], "what started is stopped again"
    with pytest.raises(TurnkitError, match="not started"):
        _ = agent.store
    await agent.stop()  # harmless after a failed start


# ---------------------------------------------------------------------- configuration errors


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('[turns]\nhistory = "x"\n', "expected int, got str 'x' @ $.turns.history"),
        ('[turns]\ninterrupted = "sometimes"\n', "expected one of 'rerun', 'report' @ $.turns.interrupted"),
        ("[turns]\nhistroy = 3\n", "extra fields found (histroy) @ $.turns"),
        ("[model]\nscript = [{ text = 3 }]\n", "@ $.model.script[0].text"),
        ('[services]\nrequired = "chat"\n', "@ $.services.required"),
        ("[agent]\nid = 7\n", "expected str, got int 7 @ $.agent.id"),
        ("[nonsense]\nx = 1\n", "extra fields found (nonsense) @ $"),
    ],
)
def test_config_errors_name_the_file_and_the_key(tmp_path: Path, toml: str, expected: str) -> None:
    path = tmp_path / "turnkit.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert expected in str(caught.value)
    with pytest.raises(ConfigError, match="turnkit.toml: "):
        Agent(str(path), env={})


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "turnkit.toml"
    path.write_text('[turns]\nhistory = "x"\ninterrupted = "sometimes"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "$.turns.history" in str(caught.value) and "$.turns.interrupted" in str(caught.value)


def test_unreadable_and_missing_config_files_are_named(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[turns\n")
    with pytest.raises(ConfigError, match=r"broken\.toml: .*line 1"):
        load_config(broken)
    with pytest.raises(ConfigError, match=r"missing\.toml: no such configuration file"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match=r"from-env\.toml: no such configuration file"):
        load_config(env={"TURNKIT_CONFIG": str(tmp_path / "from-env.toml")})


async def test_a_config_file_puts_a_relative_store_next_to_itself(tmp_path: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "turnkit.toml").write_text('[store]\nurl = "data/agent.db"\n[agent]\nid = "filed"\n')
    (folder / "data").mkdir()
    async with Agent(folder / "turnkit.toml", env={}) as agent:
        result = await agent.send("hello")
        assert agent.id == "filed" and result.turn.status == "completed"
    assert (folder / "data" / "agent.db").is_file()
