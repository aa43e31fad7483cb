"""The agent as an MCP server: the tools of ``[service.chat.channel.mcp] tools``, listed and called.

Two kinds of tool are exposed. A service action offered to the model as a
tool (``memory.search``) keeps its name, description and JSON schema, and a
call runs it through ``context.run_tool``, as a model's call runs: the
result is the text the model would read (JSON unless the action returned
a string, the agent's secrets scrubbed), an action that fails is a tool
error with its message. ``send`` runs a chat turn, as a message on any other channel
would, through the chat main path (so the chat points, guards and the
store see it like every other turn), and answers with the agent's reply
and the session that holds it.

What a client gets wrong about the tool itself, such as a name this server
does not expose, is a protocol error; everything about a call's arguments
or its outcome is a tool error (``isError``), which the model on the other
side reads and can correct. Nothing a call does reaches the agent as an
exception: the channel must outlive any client.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

import mcp_types as types
from mcp.server import Server, ServerRequestContext
from mcp.shared.exceptions import MCPError
from turnkit_hookspecs import ChannelMessage, Message, Principal, ToolCallBlock, ToolSpec, unstructure
from turnkit_services.chat import ChatPath

from .server_settings import TABLE

if TYPE_CHECKING:
    from .channel import McpChannel

#: The tool that runs a chat turn; every other exposed name is a service action's.
SEND = "send"
#: The conversation a ``send`` without one goes to.
DEFAULT_CONVERSATION = "default"
#: Who is speaking when the MCP client did not say its name.
ANONYMOUS_CLIENT = "client"

_SEND_INPUT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "text": {"type": "string", "description": "The message to the agent."},
        "conversation": {
            "type": "string",
            "description": (
                "The conversation to continue, by any name you choose: each conversation keeps its own"
                f" session and history (default {DEFAULT_CONVERSATION!r})."
            ),
        },
    },
    "required": ["text"],
    "additionalProperties": False,
}
_SEND_OUTPUT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "reply": {"type": "string", "description": "The agent's reply (or why it did not answer)."},
        "session_id": {"type": "string", "description": "The session holding the conversation."},
        "status": {"type": "string", "description": "The turn's status: completed, denied or failed."},
    },
    "required": ["reply", "session_id", "status"],
}


class AgentServer:
    """The MCP server of one running channel: its tools, and what a call to each does.

    ``names`` are checked here, when the agent starts serving: none, or one
    that is neither ``send`` nor a service tool, raises ``ValueError``
    naming the setting, which stops the start.
    """

    def __init__(self, chat: ChatPath, channel: McpChannel, names: Sequence[str]) -> None:
        self.chat = chat
        self.channel = channel
        self.services = _chosen(names, chat.context.tools)
        self.sends = SEND in names
        agent = chat.context.agent_id
        self.tools = [_send_tool(agent)] if self.sends else []
        self.tools += [_service_tool(spec) for spec in self.services.values()]
        self.server: Server[Any] = Server(
            agent,
            version=_version(),
            title=f"turnkit agent {agent}",
            on_list_tools=self.list_tools,
            on_call_tool=self.call_tool,
        )

    async def list_tools(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        """Every exposed tool, in one page."""
        return types.ListToolsResult(tools=self.tools)

    async def call_tool(
        self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        """Run one call; a tool this server does not expose is the protocol error INVALID_PARAMS."""
        arguments = params.arguments or {}
        if params.name == SEND and self.sends:
            return await self._send(_client(ctx, self.channel.name), arguments)
        if params.name in self.services:
            return await self._run(ctx, params.name, arguments)
        exposed = ", ".join(tool.name for tool in self.tools)
        raise MCPError(types.INVALID_PARAMS, f"unknown tool {params.name!r} (this server has: {exposed})")

    async def _run(
        self, ctx: ServerRequestContext[Any], name: str, arguments: Mapping[str, Any]
    ) -> types.CallToolResult:
        call = ToolCallBlock(f"mcp-{ctx.request_id}", name, arguments)
        output = await self.chat.context.run_tool(call)
        return types.CallToolResult(content=[_text(output.output)], is_error=output.is_error)

    async def _send(self, client: Principal, arguments: Mapping[str, Any]) -> types.CallToolResult:
        problem = _send_problem(arguments)
        if problem is not None:
            return _failed(f"{SEND}: {problem}")
        conversation = arguments.get("conversation", DEFAULT_CONVERSATION)
        inbound = ChannelMessage(
            channel=self.channel.name,
            chat_id=conversation,
            principal=client,
            message=Message.of("user", arguments["text"]),
        )
        try:
            outcome = await self.channel.turn(inbound)
        except Exception:  # a chat point failed (the channel logged it): the client may try again
            return _failed(self.chat.settings.failed_reply)
        answer = {"reply": outcome.reply.text, "session_id": outcome.session_id, "status": outcome.status}
        return types.CallToolResult(
            content=[_text(outcome.reply.text)],
            structured_content=answer,
            is_error=outcome.status != "completed",
        )


def _chosen(names: Sequence[str], available: Sequence[ToolSpec]) -> dict[str, ToolSpec]:
    """The service tools among ``names``, by name; no name, or one not available, raises."""
    offered = {spec.name: spec for spec in available}
    exposable = ", ".join([SEND, *sorted(offered)])
    if not names:
        raise ValueError(
            f"{TABLE} tools: no tool to serve; list what MCP clients may call (one or more of: {exposable})"
        )
    unknown = [name for name in names if name != SEND and name not in offered]
    if unknown:
        close = difflib.get_close_matches(unknown[0], [SEND, *offered], n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValueError(f"{TABLE} tools: unknown tool {unknown[0]!r} ({hint}can be exposed: {exposable})")
    return {name: offered[name] for name in dict.fromkeys(names) if name != SEND}


def _send_tool(agent: str) -> types.Tool:
    return types.Tool(
        name=SEND,
        description=(
            f"Send a message to the turnkit agent {agent!r} and get its reply. The agent remembers the"
            " conversation: messages to the same conversation continue one session."
        ),
        input_schema=_SEND_INPUT,
        output_schema=_SEND_OUTPUT,
    )


def _service_tool(spec: ToolSpec) -> types.Tool:
    return types.Tool(name=spec.name, description=spec.description, input_schema=unstructure(spec.parameters))


def _send_problem(arguments: Mapping[str, Any]) -> str | None:
    """What is wrong with ``send``'s arguments, naming the argument; ``None`` when nothing is."""
    extra = sorted(set(arguments) - {"text", "conversation"})
    if extra:
        return f"unexpected argument {extra[0]!r} (send takes text and conversation)"
    text = arguments.get("text")
    if text is None:
        return "missing the argument 'text', the message to the agent"
    if not isinstance(text, str):
        return f"the argument 'text' must be a string, got {type(text).__name__}"
    conversation = arguments.get("conversation", DEFAULT_CONVERSATION)
    if not isinstance(conversation, str) or not conversation.strip():
        return f"the argument 'conversation' must be a non-empty string, got {conversation!r}"
    return None


def _client(ctx: ServerRequestContext[Any], channel: str) -> Principal:
    """The MCP client as the turn's principal: the name it gave when it connected (its ``clientInfo``)."""
    params = ctx.session.client_params
    if params is None or not params.client_info.name.strip():
        return Principal(channel, ANONYMOUS_CLIENT)
    info = params.client_info
    return Principal(channel, info.name, info.title)


def _text(text: str) -> types.TextContent:
    return types.TextContent(type="text", text=text)


def _failed(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[_text(text)], is_error=True)


def _version() -> str:
    try:
        return version("turnkit-mcp")
    except PackageNotFoundError:  # run from a source tree without installing it
        return ""
