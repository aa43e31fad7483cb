"""An MCP server for the tests, written with the SDK's low-level server API, over stdio or HTTP.

Run as a script (the plugin starts it with a minimal environment, so it
imports nothing from the tests)::

    python toolbox.py stdio
    python toolbox.py http PORT        # streamable HTTP on 127.0.0.1:PORT/mcp
    python toolbox.py http PORT cue    # the same once a line arrives on stdin ("ready" on stdout first)

Over HTTP every request must carry ``Authorization: Bearer $TOOLBOX_TOKEN``
(the variable of the server's own environment), or it is answered 401: the
plugin's ``headers_env`` is proven by the server accepting it. Started
with ``cue``, it has imported and built everything before it says
``ready``, and listens within moments of its cue: a server restarting
faster than a client reconnects, which so meets a session it never made.

It lists its tools three to a page, so that a client reading only the first
page misses some. Each tool shows one thing a client must handle: text,
images, structured content alone, an error result, embedded resources, a
link and audio, a call that never ends (it writes ``CANCELLED`` to the file it is
given when the client cancels it), a crash in the middle of a call, a
process of its own (to see the process group ended), its environment, and a
tool list that changes (``grow`` adds ``extra`` and notifies).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.server.stdio import stdio_server

#: How many tools one page of ``tools/list`` holds.
PAGE = 3
#: A 1x1 red PNG.
RED_DOT = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
NO_ARGUMENTS: dict[str, Any] = {"type": "object", "properties": {}}


def _schema(**properties: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {name: {"type": kind} for name, kind in properties.items()},
        "required": list(properties),
    }


TOOLS = [
    types.Tool(name="echo", description="Say the text back.", input_schema=_schema(text="string")),
    types.Tool(name="picture", description="A picture of a red dot.", input_schema=NO_ARGUMENTS),
    types.Tool(
        name="stats", description="Statistics, as structured content only.", input_schema=NO_ARGUMENTS
    ),
    types.Tool(name="failing", description="Always fails.", input_schema=NO_ARGUMENTS),
    types.Tool(name="links", description="Resources, a link and audio.", input_schema=NO_ARGUMENTS),
    types.Tool(name="hang", description="Never answers.", input_schema=_schema(marker="string")),
    types.Tool(name="crash", description="Exits in the middle of the call.", input_schema=NO_ARGUMENTS),
    types.Tool(name="spawn", description="Starts a process; gives its pid.", input_schema=NO_ARGUMENTS),
    types.Tool(name="environment", description="The server's environment.", input_schema=NO_ARGUMENTS),
    types.Tool(name="grow", description="Adds the tool extra.", input_schema=NO_ARGUMENTS),
]
EXTRA = types.Tool(name="extra", description="Added by grow.", input_schema=NO_ARGUMENTS)


def _text(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=text)])


class Toolbox:
    """The server's state: its tools, which ``grow`` extends."""

    def __init__(self) -> None:
        self.tools = list(TOOLS)

    async def list_tools(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        start = int(params.cursor) if params is not None and params.cursor else 0
        end = start + PAGE
        more = str(end) if end < len(self.tools) else None
        return types.ListToolsResult(tools=self.tools[start:end], next_cursor=more)

    async def call_tool(
        self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        arguments = params.arguments or {}
        match params.name:
            case "echo":
                return _text(str(arguments["text"]))
            case "picture":
                return types.CallToolResult(
                    content=[
                        types.TextContent(text="a red dot"),
                        types.ImageContent(data=RED_DOT, mime_type="image/png"),
                    ]
                )
            case "stats":
                return types.CallToolResult(content=[], structured_content={"count": 3, "mean": 2.5})
            case "failing":
                return types.CallToolResult(content=[types.TextContent(text="no such file")], is_error=True)
            case "links":
                resource = types.TextResourceContents(
                    uri="file:///notes.txt", mime_type="text/plain", text="buy milk"
                )
                blob = types.BlobResourceContents(uri="file:///dot.png", mime_type="image/png", blob=RED_DOT)
                link = types.ResourceLink(
                    uri="https://example.org/report", name="report", description="the report"
                )
                audio = types.AudioContent(data="AAAA", mime_type="audio/wav")
                embedded = [types.EmbeddedResource(resource=resource), types.EmbeddedResource(resource=blob)]
                return types.CallToolResult(content=[*embedded, link, audio])
            case "hang":
                try:
                    await anyio.sleep_forever()
                finally:
                    Path(arguments["marker"]).write_text("CANCELLED", encoding="utf-8")
            case "crash":
                print("crashing on purpose", file=sys.stderr, flush=True)
                os._exit(3)
            case "spawn":
                child = subprocess.Popen(["sleep", "300"])
                return _text(json.dumps({"server": os.getpid(), "child": child.pid}))
            case "environment":
                return _text(json.dumps(dict(os.environ)))
            case "grow":
                if EXTRA not in self.tools:
                    self.tools.append(EXTRA)
                await ctx.session.send_tool_list_changed()
                return _text("grown")
            case "extra":
                return _text("extra here")
        return types.CallToolResult(content=[types.TextContent(text=f"no tool {params.name}")], is_error=True)


def build() -> Server[Any]:
    toolbox = Toolbox()
    return Server("toolbox", version="1.0", on_list_tools=toolbox.list_tools, on_call_tool=toolbox.call_tool)


async def serve_stdio() -> None:
    server = build()
    options = server.create_initialization_options(NotificationOptions(tools_changed=True))
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, options)


def serve_http(port: int, cue: bool) -> None:
    import uvicorn
    from starlette.middleware.base import BaseHTTPMiddleware
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response

    expected = f"Bearer {os.environ['TOOLBOX_TOKEN']}"

    async def check(request: Request, call_next: Any) -> Response:
        if request.headers.get("authorization") != expected:
            return PlainTextResponse("who are you?", status_code=401)
        response: Response = await call_next(request)
        return response

    app = build().streamable_http_app()
    app.add_middleware(BaseHTTPMiddleware, dispatch=check)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    config.load()
    if cue:
        print("ready", flush=True)
        sys.stdin.readline()
    uvicorn.Server(config).run()


if __name__ == "__main__":
    if sys.argv[1] == "stdio":
        anyio.run(serve_stdio)
    else:
        serve_http(int(sys.argv[2]), cue=sys.argv[3:] == ["cue"])
