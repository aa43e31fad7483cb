"""Serving the read-only console with uvicorn until Ctrl-C or SIGTERM (``turnkit console``)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Callable, Iterator

import uvicorn
from starlette.types import ASGIApp

#: Seconds requests still running get once the console is told to stop.
SHUTDOWN = 5


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port``, made with the protocol ``getaddrinfo`` names.

    asyncio disables Nagle's algorithm only on sockets that say they are
    ``IPPROTO_TCP``; with it on, every answer waits for the client's delayed
    ACK (about 40 ms on loopback), as the HTTP channel notes too.
    """
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
    )[0]
    listener = socket.socket(family, kind, proto)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen()
    except OSError:
        listener.close()
        raise
    return listener


async def serve(
    listener: socket.socket, make_app: Callable[[asyncio.Event], ASGIApp], ready: Callable[[], None]
) -> None:
    """Serve ``make_app(stopping)`` on ``listener`` until Ctrl-C or SIGTERM, which set ``stopping``.

    The signal handlers are in place before ``ready`` is called (it tells
    the world where the console listens), so that a SIGTERM sent as soon as
    the address is known ends the console cleanly (exit 0). ``stopping``
    ends the live streams: uvicorn waits for open responses to finish, and a
    live stream never would.
    """
    stopping = asyncio.Event()
    config = uvicorn.Config(
        make_app(stopping),
        log_level="warning",
        lifespan="off",
        access_log=False,
        timeout_graceful_shutdown=SHUTDOWN,
    )
    server = _Server(config)

    def stop() -> None:
        server.should_exit = True
        stopping.set()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop)
    try:
        ready()
        await server.serve(sockets=[listener])
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


class _Server(uvicorn.Server):
    """A uvicorn server that leaves SIGINT and SIGTERM to :func:`serve`."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
