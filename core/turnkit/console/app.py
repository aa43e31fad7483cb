"""The console as one ASGI application, for both of its hosts.

``turnkit console`` serves it alone with uvicorn, read-only, straight from
a store (:func:`read_only_console`); ``turnkit serve`` hands it to the
HTTP channel through ``ExecutionContext.web_apps`` (built by the agent,
able to send), which mounts it at ``/console`` behind its bearer token. In
both, the page and its assets (:data:`PUBLIC`) are served to anyone: they
hold no data, and the page must load to ask for the token; everything
under ``/api/`` takes the token when one is set.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from ..manager import PluginManager
from .api import ConsoleApi, error
from .plugins import describe

#: Paths of the console (below where it is mounted) served without the token: the page, and
#: everything under its assets (``WebApp.public``'s spelling).
PUBLIC = ("/", "/assets/*")

#: Where the page and its modules are, inside the package (shipped in the wheel: no build step).
STATIC = resources.files(__package__).joinpath("static")


def console_app(api: ConsoleApi, token: str | None = None) -> Starlette:
    """The page, its assets and ``api``; with ``token``, the API refuses requests without it (401)."""
    directory = str(STATIC)

    async def page(request: Request) -> Response:
        return FileResponse(f"{directory}/index.html", headers={"Cache-Control": "no-cache"})

    routes: list[BaseRoute] = [
        Route("/", page),
        Mount("/assets", app=StaticFiles(directory=directory)),
        *api.routes(),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        return error(status, f"{request.url.path}: {getattr(exc, 'detail', 'not found')}")

    app = Starlette(routes=routes, exception_handlers={HTTPException: not_found})
    app.router.redirect_slashes = False
    if token is not None:
        app.add_middleware(TokenGate, token=token)
    return app


class TokenGate:
    """The bearer token on everything but :data:`PUBLIC` (``turnkit console --token-env``).

    Under ``turnkit serve`` the HTTP channel's own check does this, with the
    same rule and the same answer.
    """

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()
        self.exact = frozenset(p for p in PUBLIC if not p.endswith("*"))
        self.prefixes = tuple(p.removesuffix("*") for p in PUBLIC if p.endswith("*"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in self.exact or path.startswith(self.prefixes):
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, credentials = header.partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(credentials.strip(), self.token):
            await self.app(scope, receive, send)
            return
        response = error(401, "missing or invalid bearer token: send 'Authorization: Bearer <token>'")
        response.headers["WWW-Authenticate"] = "Bearer"
        await response(scope, receive, send)


def plugin_listing(manager: PluginManager) -> Callable[[], Mapping[str, Any]]:
    """What ``turnkit plugins`` and ``turnkit hooks`` show of ``manager``, read once when first asked
    (the plugins loaded do not change while a process runs)."""
    listing: dict[str, Any] = {}

    def read() -> Mapping[str, Any]:
        if not listing:
            listing.update(describe(manager))
        return listing

    return read
