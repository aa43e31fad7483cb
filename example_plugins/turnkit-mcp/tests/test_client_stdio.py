"""A stdio MCP server's tools, offered to the model and called in its turns."""

from __future__ import annotations

import json

from conftest import offered, outputs, stdio_toolbox, with_servers
from turnkit.testing import AgentHarness, tool_call
from turnkit_hookspecs import Base64Source, Deny, ImageBlock, ToolCallBlock, hookimpl

#: The toolbox's tools, three to a page of ``tools/list``.
TOOLBOX_TOOLS = {
    "echo",
    "picture",
    "stats",
    "failing",
    "links",
    "hang",
    "crash",
    "spawn",
    "environment",
    "grow",
}


def test_a_scripted_turn_calls_a_tool_and_reads_its_result(turnkit_agent: AgentHarness) -> None:
    plugin = with_servers(turnkit_agent, box=stdio_toolbox())
    turnkit_agent.script(tool_call("box.echo", text="hello from the model"), "It said hello.")
    result = turnkit_agent.send("call the echo tool")
    assert result.reply is not None and result.reply.text == "It said hello."
    [output] = outputs(turnkit_agent, result.turn.session_id)
    assert (output.output, output.is_error) == ("hello from the model", False)
    calls = [(c.point, c.plugin, c.outcome) for c in turnkit_agent.trace(result.turn.turn_id)]
    assert ("tool_call", "mcp", "value") in calls

    tools = {tool.name: tool for tool in turnkit_agent.prompts[-1].tools}
    assert set(tools) == {f"box.{name}" for name in TOOLBOX_TOOLS} == offered(plugin)  # every page
    echo = tools["box.echo"]
    assert (echo.plugin, echo.description) == ("mcp", "Say the text back.")
    assert echo.parameters["properties"] == {"text": {"type": "string"}}


def test_allow_and_deny_choose_the_tools_offered(turnkit_agent: AgentHarness) -> None:
    with_servers(
        turnkit_agent,
        some=stdio_toolbox(allow=["echo", "stats", "crash"], deny=["crash"]),
        most=stdio_toolbox(deny=["crash", "hang", "spawn", "environment"]),
    )
    turnkit_agent.script(tool_call("some.crash"), "done")
    result = turnkit_agent.send("crash it")
    names = {tool.name for tool in turnkit_agent.prompts[-1].tools}
    assert {name for name in names if name.startswith("some.")} == {"some.echo", "some.stats"}
    most = TOOLBOX_TOOLS - {"crash", "hang", "spawn", "environment"}
    assert {name for name in names if name.startswith("most.")} == {f"most.{name}" for name in most}
    [output] = outputs(turnkit_agent, result.turn.session_id)  # a tool left out cannot be called
    assert output.is_error and output.output == "unknown tool 'some.crash'"


class NoEcho:
    """A guard refusing the echo tool."""

    @hookimpl
    def tool_authorize(self, call: ToolCallBlock) -> Deny | None:
        return Deny("no echoes here") if call.name == "box.echo" else None


def test_a_tool_guard_refuses_a_call_before_it_reaches_the_server(turnkit_agent: AgentHarness) -> None:
    with_servers(turnkit_agent, box=stdio_toolbox())
    turnkit_agent.register(NoEcho(), "no-echo")
    turnkit_agent.script(tool_call("box.echo", text="hi"), "refused")
    result = turnkit_agent.send("echo")
    [output] = outputs(turnkit_agent, result.turn.session_id)
    assert output.is_error and output.output == "denied by no-echo: no echoes here"
    points = [(c.point, c.plugin) for c in turnkit_agent.trace(result.turn.turn_id)]
    assert ("tool_authorize", "no-echo") in points and ("tool_call", "mcp") not in points


def test_results_map_to_text_images_and_errors(turnkit_agent: AgentHarness) -> None:
    with_servers(turnkit_agent, box=stdio_toolbox())
    turnkit_agent.script(
        tool_call("box.picture"),
        tool_call("box.stats"),
        tool_call("box.links"),
        tool_call("box.failing"),
        "ok",
    )
    result = turnkit_agent.send("show me everything")
    picture, stats, links, failing = outputs(turnkit_agent, result.turn.session_id)
    assert picture.output == "a red dot" and not picture.is_error
    [image] = picture.images
    assert isinstance(image, ImageBlock) and isinstance(image.source, Base64Source)
    assert image.source.media_type == "image/png" and image.source.data.startswith("iVBORw0KGgo")
    assert json.loads(stats.output) == {"count": 3, "mean": 2.5}  # structured content, no text: as JSON
    assert links.output.splitlines() == [
        "[resource: file:///notes.txt, text/plain]",
        "buy milk",
        "[resource: file:///dot.png, image/png, 70 bytes not shown]",
        "[link: report <https://example.org/report>: the report]",
        "[audio: audio/wav, 3 bytes not shown]",
    ]
    assert (failing.output, failing.is_error) == ("no such file", True)


def test_the_server_gets_a_minimal_environment(turnkit_agent: AgentHarness, monkeypatch) -> None:
    monkeypatch.setenv("MCP_PASSED_ON", "wanted")
    monkeypatch.setenv("MCP_NOT_NAMED", "a secret of the agent")
    monkeypatch.setenv("LANG", "C.UTF-8")
    with_servers(turnkit_agent, box=stdio_toolbox(env=["MCP_PASSED_ON", "MCP_NOT_SET"]))
    turnkit_agent.script(tool_call("box.environment"), "ok")
    result = turnkit_agent.send("what is your environment?")
    [output] = outputs(turnkit_agent, result.turn.session_id)
    environment = json.loads(output.output)
    assert environment.pop("MCP_PASSED_ON") == "wanted"
    assert environment.pop("LANG") == "C.UTF-8"
    assert set(environment) <= {"PATH", "HOME", "LC_CTYPE"}  # Python may set LC_CTYPE itself
