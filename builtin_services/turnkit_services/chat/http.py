"""The HTTP channel: the chat API and the OpenAI-compatible endpoint, on one uvicorn server.

It runs while the agent serves (``turnkit serve``), listening on
``[service.chat.http] host`` (loopback unless told otherwise) and ``port``
(``0`` picks a free one). The address is printed on stderr once the socket
listens, and kept in :attr:`HttpChannel.address` for whoever embeds the
agent. Routes: :mod:`~turnkit_services.chat.http_api` (``/api``),
:mod:`~turnkit_services.chat.openai_api` (``/v1``) and the runtime's web
apps (``ExecutionContext.web_apps``: the console at ``/console``, ``/metrics``); every request passes
:mod:`~turnkit_services.chat.http_middleware` (a catch-all, the bearer
token, the body's size and time limits) first, and every error is JSON
(:mod:`~turnkit_services.chat.http_errors`). Other channels' routes (a
platform's webhooks, :meth:`Channel.routes`) are mounted here too, by
:meth:`HttpChannel.mount`, outside the bearer token.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import socket
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import ClassVar

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from turnkit_hookspecs import ChannelMessage, ChunkListener, WebApp

from .channel import Channel, ChatOutcome, ChatPath
from .http_api import ChatApi
from .http_errors import ApiError, chat_failure, key_reused, on_api_error, on_http_exception
from .http_middleware import BearerAuth, BodyLimits, CatchAll
from .openai_api import OpenAIApi
from .settings import HttpSettings

TABLE = "[service.chat.http]"
#: Path prefixes of the HTTP API's own routes, which no other channel may claim.
API_PREFIXES = ("/api/", "/v1/")


class HttpChannel(Channel):
    """Serves the chat over HTTP until cancelled; see the module docstring."""

    name = "http"
    settings_class = HttpSettings
    #: A reply travels whole in one response body: never split.
    max_length: ClassVar[int] = sys.maxsize
    #: HTTP answers requests; it has nowhere to send a message on its own.
    can_push: ClassVar[bool] = False
    settings: HttpSettings

    def __init__(self, chat: ChatPath, settings: HttpSettings) -> None:
        super().__init__(chat, settings)
        #: ``http://HOST:PORT`` once listening (the real port when ``port = 0``).
        self.address: str | None = None
        #: Set once :attr:`address` is known and connections are accepted.
        self.ready = asyncio.Event()
        self._turns: set[asyncio.Task[ChatOutcome]] = set()
        #: Routes of other channels (:meth:`mount`), those of them outside the token, and, by path,
        #: who claimed them.
        self._mounted: list[BaseRoute] = []
        self._open: list[BaseRoute] = []
        self._owners: dict[str, str] = {}

    def mount(self, owner: str, routes: Sequence[BaseRoute], *, public: bool = True) -> None:
        """Serve another channel's ``routes`` here; ``owner`` names it in errors.

        ``public`` routes are outside the bearer token (a platform's signed
        webhooks); the others take it like the HTTP API.

        ``owner`` is ``"<channel> (<distribution>)"``. A path claimed twice,
        or one under the HTTP API's own prefixes, is refused with both
        claimants named, before anything listens.
        """
        for route in routes:
            path = _path(route)
            if (path.rstrip("/") + "/").startswith(API_PREFIXES):
                raise ValueError(
                    f"[service.chat] channels: {owner} claims the path {path}, which belongs to the"
                    " HTTP API of http (turnkit-services); configure the channel's path elsewhere"
                )
            other = self._owners.get(path)
            if other is not None:
                raise ValueError(
                    f"[service.chat] channels: {other} and {owner} both claim the path {path};"
                    " configure one of them to use another path"
                )
            self._owners[path] = owner
            self._mounted.append(route)
            if public:
                self._open.append(route)

    # ------------------------------------------------------------------ serving

    async def run(self) -> None:
        """Listen and serve until cancelled; then let running requests finish (``shutdown_timeout``)."""
        token = self._token()
        app = self.app(token)
        with self._listening() as listener:
            host, port = listener.getsockname()[:2]
            self.address = f"http://{_url_host(host)}:{port}"
            print(f"turnkit: HTTP API on {self.address}", file=sys.stderr, flush=True)
            if token is None and not _loopback(host):
                print(
                    f"turnkit: warning: the HTTP API listens on {host} without a token: anyone who can"
                    f" reach it may talk to the agent (set {TABLE} token_env)",
                    file=sys.stderr,
                    flush=True,
                )
            config = uvicorn.Config(
                app,
                log_level="warning",
                log_config=None,
                lifespan="off",
                access_log=False,
                timeout_graceful_shutdown=self.settings.shutdown_timeout,
            )
            server = _QuietServer(config)
            serving = asyncio.create_task(server.serve(sockets=[listener]), name="turnkit http server")
            self.ready.set()
            try:
                await asyncio.shield(serving)
            finally:
                server.should_exit = True
                await serving
                await self._finish_turns()
                self.ready.clear()
                self.address = None

    def app(self, token: str | None = None) -> Starlette:
        """The ASGI application: the routes behind the catch-all, the token check and the body's limits."""
        routes: list[BaseRoute] = [*ChatApi(self).routes()]
        if self.settings.openai:
            routes += OpenAIApi(self).routes()
        settings = self.settings
        routes += self._mounted
        web, open_paths = self._web_apps()
        routes += web
        middleware = [Middleware(CatchAll, logger=self.chat.context.logger)]
        if token is not None:
            middleware.append(
                Middleware(BearerAuth, token=token, open_routes=tuple(self._open), open_paths=open_paths)
            )
        middleware.append(
            Middleware(BodyLimits, max_body=settings.max_body, read_timeout=settings.read_timeout)
        )
        app = Starlette(
            routes=routes,
            middleware=middleware,
            exception_handlers={ApiError: on_api_error, HTTPException: on_http_exception},
        )
        app.router.redirect_slashes = False  # a path is a route or a 404, never a redirect without a body
        return app

    def _web_apps(self) -> tuple[list[BaseRoute], list[str]]:
        """The runtime's web apps (``ExecutionContext.web_apps``: the console, ``/metrics``) as
        routes, and the paths of theirs the token does not cover (their ``public`` ones, and a
        page's bare path, which only redirects to the page)."""
        routes: list[BaseRoute] = []
        open_paths: list[str] = []
        # a runtime older than the contract's 0.1.7 has none to offer
        offered: Mapping[str, WebApp] = getattr(self.chat.context, "web_apps", {})
        for path, web in offered.items():
            root = path.rstrip("/")
            for claimed, owner in self._owners.items():
                if claimed == root or claimed.startswith(root + "/"):
                    raise ValueError(
                        f"[service.chat] channels: {owner} claims the path {claimed}, under {root}, where"
                        " the runtime serves its web app; configure the channel's path elsewhere"
                    )
            if "/" in web.public:
                # a page at its root: the bare path sends the browser there (relative links need
                # the slash), and holds no data
                routes += [Route(root, _redirect(root + "/")), Mount(root, app=web.app)]
                open_paths += [root, *(root + public for public in web.public)]
            else:  # an endpoint (/metrics): it answers its bare path itself
                routes += [Route(root, web.app), Mount(root, app=web.app)]
                open_paths += [root + public for public in web.public]
        return routes, open_paths

    @contextlib.contextmanager
    def _listening(self) -> Iterator[socket.socket]:
        """The listening socket, bound here so that a busy port is a clear error, not uvicorn's exit.

        It is made with the protocol ``getaddrinfo`` names (``IPPROTO_TCP``):
        asyncio disables Nagle's algorithm only on sockets that say so, and
        with it enabled every response waits for the client's delayed ACK
        (about 40 ms on loopback). With ``reuse_port`` it is marked
        ``SO_REUSEPORT`` before binding, which every worker sharing the port
        must do; a platform without it is refused here, when serving, so
        that commands which only read the configuration still work there.
        """
        host, port = self.settings.host, self.settings.port
        reuse_port = getattr(socket, "SO_REUSEPORT", None) if self.settings.reuse_port else None
        if self.settings.reuse_port and reuse_port is None:
            raise ValueError(
                f"{TABLE} reuse_port: this platform ({sys.platform}) has no SO_REUSEPORT, so workers"
                " cannot share a port here; give each its own port behind a load balancer"
            )
        try:
            family, kind, proto, _, address = socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
            )[0]
            listener = socket.socket(family, kind, proto)
        except OSError as exc:
            raise _cannot_listen(host, port, exc) from exc
        with listener:
            try:
                if os.name == "posix":  # rebinding right after a restart; elsewhere it means sharing
                    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if reuse_port is not None:  # workers on one port: the kernel spreads the connections
                    listener.setsockopt(socket.SOL_SOCKET, reuse_port, 1)
                listener.bind(address)
                listener.listen()
            except OSError as exc:
                raise _cannot_listen(host, port, exc) from exc
            yield listener

    def _token(self) -> str | None:
        """The bearer token every request must carry, or ``None`` when none is configured."""
        settings = self.settings
        if settings.token is not None and settings.token_env is not None:
            raise ValueError(f"{TABLE}: set token or token_env, not both")
        token = settings.token
        if settings.token_env is not None:
            token = self.chat.context.env.get(settings.token_env)
            if not token:
                name = settings.token_env
                raise ValueError(f"{TABLE} token_env: the environment variable {name} is not set")
        if token is not None and not token.strip():
            raise ValueError(f"{TABLE} token: empty")
        return token

    # ------------------------------------------------------------------ turns, for the routes

    async def turn(self, inbound: ChannelMessage, idempotency_key: str | None = None) -> ChatOutcome:
        """Run ``inbound`` through the chat path and wait for the outcome.

        A failing path is a 500, a reused ``idempotency_key`` a 409
        (:func:`~turnkit_services.chat.http_errors.chat_failure`).
        """
        try:
            return await self.chat.handle(inbound, self, idempotency_key=idempotency_key)
        except Exception as exc:
            self._log_failure(exc)
            raise chat_failure(exc) from exc

    def start_turn(
        self, inbound: ChannelMessage, listener: ChunkListener, idempotency_key: str | None = None
    ) -> asyncio.Task[ChatOutcome]:
        """Run ``inbound`` in a task of the channel's, streaming the reply to ``listener``.

        The task outlives the request if its client goes away: the turn
        completes and is stored all the same, and a failure is logged.
        """
        handling = self.chat.handle(inbound, self, stream=listener, idempotency_key=idempotency_key)
        task = asyncio.create_task(handling)
        self._turns.add(task)
        task.add_done_callback(self._turn_done)
        return task

    def _turn_done(self, task: asyncio.Task[ChatOutcome]) -> None:
        self._turns.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._log_failure(task.exception())

    def _log_failure(self, exc: BaseException | None) -> None:
        """Log a failed message; a reused idempotency key is the client's mistake: no traceback."""
        if exc is not None and key_reused(exc):
            self.chat.context.logger.info("HTTP channel: refused a request: %s", exc)
            return
        self.chat.context.logger.error("HTTP channel: handling a message failed", exc_info=exc)

    async def _finish_turns(self) -> None:
        """Give turns whose clients went away the shutdown timeout to finish, then cancel them."""
        if not self._turns:
            return
        _, pending = await asyncio.wait(self._turns, timeout=self.settings.shutdown_timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves SIGINT and SIGTERM alone: ``turnkit serve`` owns them.

    ``uvicorn.Server.serve`` replaces the process's handlers while it runs;
    here stopping goes through cancellation of :meth:`HttpChannel.run`.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _cannot_listen(host: str, port: int, error: OSError) -> OSError:
    failure = OSError(f"{TABLE} cannot listen on {host}:{port}: {error.strerror or error}")
    failure.errno = error.errno  # kept for callers, out of the message (no "[Errno 98]")
    return failure


def _path(route: BaseRoute) -> str:
    """The path a route serves (what two channels must not share)."""
    if isinstance(route, Route | WebSocketRoute | Mount):
        return route.path
    raise ValueError(f"a channel route must be a Route, WebSocketRoute or Mount, got {type(route).__name__}")


def _redirect(target: str) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint sending the browser on to ``target`` (``/console`` → ``/console/``)."""

    async def endpoint(request: Request) -> Response:
        return RedirectResponse(target, status_code=308)

    return endpoint


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
