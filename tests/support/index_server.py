"""A package index on loopback (pypiserver): tests publish to it with ``twine`` and install with ``pip``.

::

    with index_server(tmp_path / "index") as index:
        run_command(["twine", "upload", "--repository-url", index.url, "-u", "x", "-p", "x", *files])
        venv.pip("install", "--index-url", index.simple_url, "turnkit-redact")

The server runs in a subprocess of the test's interpreter (``python -m
pypiserver``), so pypiserver must be installed there (the ``packaging`` tox
env lists it). Uploads need no credentials (``-a . -P .``: twine still sends
some), and a project it does not hold is answered 404 instead of redirected
to pypi.org (``--disable-fallback``): pip then looks in its other configured
indexes, as it would for a private index in real life.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
#: How long the server may take to answer its health check after it was started.
START_TIMEOUT = 30.0

#: A file's link on a simple page: ``<a href="/packages/NAME#sha256=DIGEST">NAME</a>``.
_LINK = re.compile(r'<a href="[^"#]*(?:#sha256=(?P<digest>[0-9a-f]+))?"[^>]*>(?P<name>[^<]+)</a>')


class IndexServerError(RuntimeError):
    """The index could not be started or did not answer; the message holds its log."""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def sha256_of(path: Path) -> str:
    """The hex SHA-256 of a file, as indexes publish it."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class IndexServer:
    """A running pypiserver: where to upload, where pip reads, what it serves."""

    root: Path
    port: int
    log: Path

    @property
    def url(self) -> str:
        """The upload URL (``twine upload --repository-url``)."""
        return f"http://{HOST}:{self.port}/"

    @property
    def simple_url(self) -> str:
        """The simple API (PEP 503) root: pip's ``--index-url``."""
        return f"{self.url}simple/"

    def files(self, project: str) -> dict[str, str]:
        """The files the index lists for ``project`` (file name → SHA-256), read from its simple page.

        A project the index does not hold has none.
        """
        try:
            with urllib.request.urlopen(f"{self.simple_url}{project}/", timeout=10) as response:
                page = response.read().decode("utf-8")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return {}
            raise
        return {match["name"]: match["digest"] or "" for match in _LINK.finditer(page)}


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:  # refused while starting, or reset
        return False


@contextmanager
def index_server(root: Path) -> Iterator[IndexServer]:
    """Run pypiserver on a free loopback port, serving (and storing uploads into) folder ``root``.

    Returns once the server answers its health check; the server is stopped
    on exit. Its log is ``root``'s sibling ``<root>.log`` (quoted in errors).
    """
    if importlib.util.find_spec("pypiserver") is None:
        raise IndexServerError(
            f"pypiserver is not installed in {sys.prefix}: the packaging tests need it "
            "(pip install pypiserver)"
        )
    root.mkdir(parents=True, exist_ok=True)
    log = root.with_name(root.name + ".log")
    server = IndexServer(root, free_port(), log)
    argv = [
        sys.executable,
        "-m",
        "pypiserver",
        "run",
        "--host",
        HOST,
        "--port",
        str(server.port),
        "--authenticate",
        ".",
        "--passwords",
        ".",
        "--disable-fallback",
        str(root),
    ]
    with log.open("wb") as log_file:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        _wait_until_healthy(server, process)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_healthy(server: IndexServer, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not _healthy(f"{server.url}health"):
        if process.poll() is not None:
            raise IndexServerError(
                f"pypiserver exited with status {process.returncode} on port {server.port}:\n"
                + server.log.read_text(errors="replace")
            )
        if time.monotonic() > deadline:
            raise IndexServerError(
                f"pypiserver did not answer on port {server.port} within {START_TIMEOUT:.0f} s:\n"
                + server.log.read_text(errors="replace")
            )
        time.sleep(0.1)
