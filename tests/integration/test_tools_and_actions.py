"""Service actions: as tools the model calls inside a turn, and through ``invoke``.

The built-in model's ``[model] script`` asks for tool calls; each one passes
the ``tool_authorize`` guard and runs the owning service's action, its
output goes back to the model as a ``tool`` message, and the whole exchange
is stored with the turn. Whatever goes wrong in a tool is told to the model
as an error output; only a model looping past ``[turns] max_tool_steps``
fails the turn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from turnkit.errors import UnknownActionError
from turnkit_hookspecs import (
    ActionResult,
    Deny,
    Message,
    Service,
    ToolCallBlock,
    ToolOutputBlock,
    action,
    hookimpl,
)

from tests.support.agents import ModelSpy, running_agent, texts


class Calculator(Service):
    """Two tools, and one action that is not offered to the model."""

    name = "calc"

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    @action(tool=True)
    def add(self, a: int, b: int) -> int:
        """Add two integers."""
        self.calls.append(("add", (a, b)))
        return a + b

    @action(tool=True)
    async def divide(self, a: float, b: float) -> dict[str, float]:
        """Divide a by b."""
        self.calls.append(("divide", (a, b)))
        return {"quotient": a / b}

    @action
    def reset(self) -> str:
        """Forget the calls so far."""
        self.calls.clear()
        return "reset"


class ToolGate:
    """Denies ``calc.divide``; raises for ``calc.add`` with ``a`` = 13."""

    @hookimpl
    def tool_authorize(self, call: ToolCallBlock) -> Deny | None:
        if call.name == "calc.divide":
            return Deny("no division today")
        if call.args.get("a") == 13:
            raise RuntimeError("unlucky")
        return None


def script(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"script": list(steps)}


def tool(name: str, **args: Any) -> dict[str, Any]:
    return {"tool": name, "args": args}


def outputs(message: Message) -> list[ToolOutputBlock]:
    return [b for b in message.blocks if isinstance(b, ToolOutputBlock)]


async def test_a_tool_call_runs_the_action_and_its_output_returns_to_the_model(tmp_path: Path) -> None:
    calc, spy = Calculator(), ModelSpy()
    model = script(tool("calc.add", a=2, b=3), {"text": "the sum is 5"})
    async with running_agent(tmp_path, plugins={"spy": spy}, services=[calc], model=model) as agent:
        result = await agent.send("what is 2 + 3?")
        assert result.turn.status == "completed"
        assert result.reply is not None and result.reply.text == "the sum is 5"
        assert calc.calls == [("add", (2, 3))]

        stored = [m.message for m in await agent.store.messages(result.turn.session_id)]
        assert [m.role for m in stored] == ["user", "assistant", "tool", "assistant"]
        [call] = stored[1].tool_calls
        assert (call.name, call.args) == ("calc.add", {"a": 2, "b": 3})
        [output] = outputs(stored[2])
        assert (output.tool_call_id, output.output, output.is_error) == (call.tool_call_id, "5", False)
        assert stored[3].text == "the sum is 5"
        turns = {m.turn_id for m in await agent.store.messages(result.turn.session_id)}
        assert turns == {result.turn.turn_id}, "the tool steps belong to the turn"

        first, second = spy.prompts
        offered = {t.name: t for t in first.tools}
        assert sorted(offered) == ["calc.add", "calc.divide"], "a plain action is not offered as a tool"
        assert offered["calc.add"].description == "Add two integers."
        assert offered["calc.add"].parameters == {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        }
        assert texts(first.messages) == [("user", "what is 2 + 3?")]
        assert [m.role for m in second.messages] == ["user", "assistant", "tool"]
        assert outputs(second.messages[-1]) == [output], "the model is asked again with the tool's output"


async def test_what_goes_wrong_in_a_tool_is_told_to_the_model(tmp_path: Path) -> None:
    calc = Calculator()
    model = script(
        tool("calc.divide", a=1, b=0),
        tool("calc.add", a=13, b=1),
        tool("calc.nope"),
        tool("weather.today"),
        tool("calc.reset"),
        tool("calc.add", a=1),
        {"text": "I tried"},
    )
    async with running_agent(tmp_path, plugins={"gate": ToolGate()}, services=[calc], model=model) as agent:
        result = await agent.send("go")
        assert result.turn.status == "completed"
        assert result.reply is not None and result.reply.text == "I tried"
        stored = [m.message for m in await agent.store.messages(result.turn.session_id)]
        errors = [(o.is_error, o.output) for m in stored if m.role == "tool" for o in outputs(m)]
        assert errors == [
            (True, "denied by gate: no division today"),
            (True, "denied by gate: gate failed: RuntimeError('unlucky')"),
            (True, "unknown tool 'calc.nope'"),
            (True, "unknown tool 'weather.today'"),
            (True, "unknown tool 'calc.reset'"),
            (True, "calc.add: bad payload: missing a required argument: 'b'"),
        ]
        assert calc.calls == [], "denied and malformed calls never reach the service"


async def test_a_raising_tool_gives_an_error_output(tmp_path: Path) -> None:
    calc = Calculator()
    model = script(tool("calc.divide", a=1, b=0), {"text": "cannot divide"})
    async with running_agent(tmp_path, services=[calc], model=model) as agent:
        result = await agent.send("1 / 0?")
        assert result.turn.status == "completed"
        tool_message = [m.message for m in await agent.store.messages(result.turn.session_id)][2]
        [output] = outputs(tool_message)
        assert output.is_error and output.output == "calc.divide raised ZeroDivisionError: division by zero"


@pytest.mark.parametrize(("rounds", "status"), [(2, "completed"), (3, "failed")])
async def test_tool_rounds_are_bounded_by_max_tool_steps(tmp_path: Path, rounds: int, status: str) -> None:
    calc = Calculator()
    steps = [tool("calc.add", a=n, b=n) for n in range(rounds)]
    model = script(*steps, {"text": "finally"})
    async with running_agent(tmp_path, services=[calc], model=model, turns={"max_tool_steps": 2}) as agent:
        result = await agent.send("loop")
        assert result.turn.status == status
        stored = texts(await agent.store.messages(result.turn.session_id))
        if status == "completed":
            assert result.reply is not None and result.reply.text == "finally"
            assert len(stored) == 1 + 2 * rounds + 1
        else:
            assert result.turn.error == (
                "TurnkitError: the model asked for tools more than 2 times ([turns] max_tool_steps)"
            )
            assert stored == [("user", "loop")], "a failed turn stores no tool steps and no reply"
            assert len(calc.calls) == 2, "the third round never ran"


# ---------------------------------------------------------------------- invoke


async def test_invoke_runs_an_action_and_reports_failures_as_results(tmp_path: Path) -> None:
    calc = Calculator()
    async with running_agent(tmp_path, services=[calc]) as agent:
        assert await agent.invoke("calc.add", {"a": 1, "b": 2}) == ActionResult("calc.add", ok=True, value=3)
        assert await agent.invoke("calc.reset") == ActionResult("calc.reset", ok=True, value="reset")
        assert (await agent.context.invoke("calc.divide", {"a": 3, "b": 2})).value == {"quotient": 1.5}

        failed = await agent.invoke("calc.divide", {"a": 1, "b": 0})
        assert (failed.action, failed.ok, failed.value) == ("calc.divide", False, None)
        assert failed.error == "calc.divide raised ZeroDivisionError: division by zero"

        missing = await agent.invoke("calc.add", {"a": 1})
        assert not missing.ok and missing.error == "calc.add: bad payload: missing a required argument: 'b'"
        extra = await agent.invoke("calc.add", {"a": 1, "b": 2, "c": 3})
        assert not extra.ok and extra.error is not None and "unexpected keyword argument 'c'" in extra.error


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("calc.ad", r"service 'calc' has no action 'ad'; did you mean 'calc.add'\?"),
        ("calq.add", r"unknown service 'calq' in 'calq.add' \(running services with actions: calc\)"),
        ("add", r"unknown service 'add' in 'add' \(running services with actions: calc\)"),
    ],
)
async def test_invoking_an_unknown_service_or_action_raises_with_a_suggestion(
    tmp_path: Path, name: str, message: str
) -> None:
    async with running_agent(tmp_path, services=[Calculator()]) as agent:
        with pytest.raises(UnknownActionError, match=message):
            await agent.invoke(name, {})


async def test_an_unknown_service_suggests_the_closest_action(tmp_path: Path) -> None:
    async with running_agent(tmp_path, services=[Calculator()]) as agent:
        with pytest.raises(UnknownActionError, match=r"did you mean 'calc\.add'\?"):
            await agent.invoke("calq.add", {})
