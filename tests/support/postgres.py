"""A throwaway PostgreSQL server on loopback, so the store's tests talk to a real server and not a fake.

::

    binaries = find_binaries()          # None: no server installed here, skip
    with PostgresServer(binaries) as server:
        url = server.create_database()  # postgresql://turnkit@127.0.0.1:PORT/test_…
        ...

Each server is a fresh cluster (``initdb``) in a temporary directory, started
with ``pg_ctl`` on a free port of 127.0.0.1 only (its Unix socket lives in the
same directory, never in ``/var/run/postgresql``), so it neither needs nor
touches a system cluster, and two test sessions never share one. Authentication
is ``trust`` for the superuser ``turnkit``: nothing but this machine can reach
it, and tests need no password plumbing.

``initdb`` and ``pg_ctl`` refuse to run as root (CI runs as root), so then
they run as the ``postgres`` system user (created if missing), which owns the
temporary directory.

psycopg is imported only where a connection is made: environments that load
the root ``tests/conftest.py`` without psycopg (``packaging``) still import
this module.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from psycopg import sql

HOST = "127.0.0.1"
#: The cluster's superuser: the user every URL names.
SUPERUSER = "turnkit"
#: Who runs ``initdb``/``pg_ctl`` when we are root (they refuse to run as root).
SYSTEM_USER = "postgres"
#: How long the server may take to accept connections after ``pg_ctl start``.
START_TIMEOUT = 30.0
#: Where Debian's ``postgresql-NN`` packages put the server binaries (several versions may coexist).
DEBIAN_BIN_GLOB = "/usr/lib/postgresql/*/bin"
#: Server settings for tests, besides where to listen. ``fsync`` stays on (the default): tests
#: exercise the server as it runs in production. 200 connections leave room for pools in many tests.
SERVER_SETTINGS: dict[str, str] = {"max_connections": "200", "shared_buffers": "64MB"}
#: A Unix socket path (``<dir>/.s.PGSQL.NNNNN``) must fit ``sun_path`` (108 bytes on Linux); a
#: temporary directory longer than this is made under /tmp instead.
_MAX_SOCKET_DIR = 80
_DB_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
#: How many times a start is retried when another process took the free port first.
_PORT_ATTEMPTS = 3


class PostgresServerError(RuntimeError):
    """The server could not be set up, started or stopped; the message holds its log when there is one."""


@dataclass(frozen=True)
class PostgresBinaries:
    """Where the server programs are. ``pg_isready`` is optional: without it readiness is probed directly."""

    initdb: Path
    pg_ctl: Path
    postgres: Path
    pg_isready: Path | None = None

    @property
    def version(self) -> str:
        """``postgres --version``, e.g. ``postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)``."""
        done = subprocess.run([str(self.postgres), "--version"], capture_output=True, text=True, check=False)
        return done.stdout.strip()


def _version_key(bin_dir: Path) -> tuple[int, ...]:
    """``/usr/lib/postgresql/9.6/bin`` → ``(9, 6)``: so 16 sorts above 9.6 (not as strings)."""
    try:
        return tuple(int(part) for part in bin_dir.parent.name.split("."))
    except ValueError:
        return ()


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _binaries_in(bin_dir: Path) -> PostgresBinaries | None:
    """The server programs of one directory, or None when any of the three is missing."""
    initdb, pg_ctl, postgres = (bin_dir / name for name in ("initdb", "pg_ctl", "postgres"))
    if not all(_executable(path) for path in (initdb, pg_ctl, postgres)):
        return None
    local, on_path = bin_dir / "pg_isready", shutil.which("pg_isready")
    # PATH's pg_isready (on Debian a wrapper in /usr/bin) speaks the same protocol to any version
    pg_isready = local if _executable(local) else Path(on_path) if on_path else None
    return PostgresBinaries(initdb, pg_ctl, postgres, pg_isready)


def find_binaries() -> PostgresBinaries | None:
    """The PostgreSQL server programs of this machine, or None when there are none (callers skip).

    Debian's versioned directories come first, highest version first: Debian
    puts only the clients (through its ``pg_wrapper``) and its own
    ``pg_ctlcluster`` tools on PATH, never ``initdb``, ``pg_ctl`` or
    ``postgres``. Then PATH,
    for installs that do put them there (Homebrew, Arch, a source build). All
    three programs are taken from one directory, so they are of one version.
    """
    debian_dirs = sorted((Path(p) for p in glob.glob(DEBIAN_BIN_GLOB)), key=_version_key, reverse=True)
    for bin_dir in debian_dirs:
        found = _binaries_in(bin_dir)
        if found is not None:
            return found
    initdb = shutil.which("initdb")
    if initdb is not None:
        # where the symlink points (Homebrew's Cellar, /usr/lib/postgresql/NN/bin), else next to it
        for bin_dir in (Path(initdb).resolve().parent, Path(initdb).parent):
            found = _binaries_in(bin_dir)
            if found is not None:
                return found
    return None


def database_name(url: str) -> str:
    """The database a URL of :meth:`PostgresServer.url` names: ``…/test_ab12`` → ``test_ab12``."""
    return url.rsplit("/", 1)[1]


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _clean_env() -> dict[str, str]:
    """This process's environment without libpq's ``PG*`` variables.

    A developer's ``PGHOST``/``PGPORT``/``PGDATA``/``PGSSLMODE`` would otherwise
    steer ``pg_ctl`` and ``pg_isready`` at another cluster or make them fail.
    """
    return {key: value for key, value in os.environ.items() if not key.startswith("PG")}


def _ensure_system_user() -> pwd.struct_passwd:
    """The ``postgres`` user, created (system user, no home) when Debian's package did not create it."""
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        pass
    useradd = shutil.which("useradd")
    if useradd is None:
        raise PostgresServerError(
            f"running as root, initdb must run as the {SYSTEM_USER!r} user, which does not exist, "
            "and useradd is not available to create it"
        )
    done = subprocess.run(
        [useradd, "--system", "--no-create-home", SYSTEM_USER], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise PostgresServerError(f"useradd {SYSTEM_USER} failed ({done.returncode}): {done.stderr.strip()}")
    return pwd.getpwnam(SYSTEM_USER)


def _as_system_user(command: Sequence[str]) -> list[str]:
    """``command`` run as the ``postgres`` user: with ``runuser`` (util-linux) or else ``su``."""
    runuser = shutil.which("runuser")
    if runuser is not None:
        return [runuser, "-u", SYSTEM_USER, "--", *command]
    su = shutil.which("su")
    if su is not None:
        # -s: the user's login shell may be nologin (useradd --system without --shell on some systems)
        return [su, "-s", "/bin/sh", SYSTEM_USER, "-c", shlex.join(command)]
    raise PostgresServerError(
        f"running as root, but neither runuser nor su is available to become {SYSTEM_USER}"
    )


class PostgresServer:
    """One PostgreSQL cluster of our own: ``start()`` it, make databases, ``stop()`` it.

    ``stop()`` is registered with :mod:`atexit` when the server starts, so a
    test session that ends without tearing its fixtures down still stops the
    server and removes its directory (a SIGKILLed one cannot: then the server
    outlives it, on a port nobody else uses, until the machine restarts).
    """

    def __init__(self, binaries: PostgresBinaries, *, start_timeout: float = START_TIMEOUT) -> None:
        self.binaries = binaries
        self.start_timeout = start_timeout
        self.port: int | None = None
        self.root: Path | None = None
        self._as_root = os.geteuid() == 0
        self._env = _clean_env()
        self._started = False

    # ------------------------------------------------------------------ paths and URLs

    @property
    def data_dir(self) -> Path:
        """The cluster (``initdb -D``), inside the server's temporary directory :attr:`root`."""
        return self._root / "data"

    @property
    def log_path(self) -> Path:
        """The server's log (``pg_ctl -l``): its content goes into every error this class raises."""
        return self._root / "server.log"

    @property
    def _root(self) -> Path:
        if self.root is None:
            raise PostgresServerError("the server was not started")
        return self.root

    def url(self, dbname: str = "postgres") -> str:
        """The URL of database ``dbname`` on this server, as the superuser (no password: trust)."""
        if self.port is None:
            raise PostgresServerError("the server was not started")
        return f"postgresql://{SUPERUSER}@{HOST}:{self.port}/{dbname}"

    def log(self) -> str:
        """What the server logged so far ('' before it logged anything)."""
        try:
            return self.log_path.read_text(errors="replace")
        except (OSError, PostgresServerError):
            return ""

    # ------------------------------------------------------------------ life cycle

    def start(self) -> PostgresServer:
        """``initdb`` a fresh cluster and start it; returns once it accepts connections."""
        if self._started:
            return self
        owner = _ensure_system_user() if self._as_root else None
        self.root = self._make_root(owner)
        atexit.register(self.stop)
        try:
            self._initdb()
            for attempt in range(1, _PORT_ATTEMPTS + 1):
                self.port = free_port()
                if self._pg_ctl_start(last_attempt=attempt == _PORT_ATTEMPTS):
                    break
            self._started = True
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server (``-m fast``: open sessions are ended) and remove its directory. Idempotent."""
        atexit.unregister(self.stop)
        root = self.root
        if root is None:
            return
        try:
            # postmaster.pid, not _started: a start that failed half-way may still have left a server
            if (root / "data" / "postmaster.pid").exists():
                self._run(
                    [
                        str(self.binaries.pg_ctl),
                        "-D",
                        str(root / "data"),
                        "-m",
                        "fast",
                        "-w",
                        "-t",
                        "30",
                        "stop",
                    ],
                    cwd=root,
                )
        finally:
            # cleared only now, so that an error of pg_ctl stop still shows the server's log
            self.root, self.port, self._started = None, None, False
            shutil.rmtree(root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ databases

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (a unique ``test_…`` name unless given) and return its URL."""
        from psycopg import sql

        name = name if name is not None else f"test_{uuid.uuid4().hex[:16]}"
        self._check_name(name)
        self._admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database even while clients are still connected to it (``WITH (FORCE)``, PostgreSQL 13+).

        A database that does not exist (the test dropped it itself) is no error.
        """
        from psycopg import sql

        self._check_name(name)
        self._admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    @staticmethod
    def _check_name(name: str) -> None:
        # quoted identifiers could hold anything, but a test asking for "Foo Bar" most likely has a bug
        if not _DB_NAME.fullmatch(name):
            raise ValueError(
                f"database name {name!r} is not a lower-case identifier of at most 63 characters"
            )

    def _admin(self, statement: sql.Composed) -> None:
        """Run one statement on the ``postgres`` database, outside a transaction (CREATE/DROP DATABASE)."""
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True, connect_timeout=10) as conn:
            conn.execute(statement)

    # ------------------------------------------------------------------ internals

    def _make_root(self, owner: pwd.struct_passwd | None) -> Path:
        """A fresh directory for the cluster, its log and its Unix socket, owned by whoever runs the server.

        It is made under the temporary directory unless that path is too long
        for a Unix socket. As root it is chowned to ``postgres`` and every
        directory above it must let that user through: a TMPDIR under /root
        would not, and initdb's own error would not say why.
        """
        base = tempfile.gettempdir()
        if len(base) > _MAX_SOCKET_DIR - 20:
            base = "/tmp"
        root = Path(tempfile.mkdtemp(prefix="turnkit-pg-", dir=base))
        if owner is not None:
            os.chown(root, owner.pw_uid, owner.pw_gid)
            os.chmod(root, 0o700)
            probe = subprocess.run(
                _as_system_user(["test", "-w", str(root)]), env=self._env, capture_output=True, check=False
            )
            if probe.returncode != 0:
                shutil.rmtree(root, ignore_errors=True)
                raise PostgresServerError(
                    f"the {SYSTEM_USER!r} user cannot write to {root}: a directory above it is closed to "
                    "other users; point TMPDIR at a directory it can reach (e.g. /tmp)"
                )
        return root

    def _run(self, command: Sequence[str], *, cwd: Path) -> subprocess.CompletedProcess[str]:
        """Run a server program (as ``postgres`` when we are root); raise with its output when it fails.

        The working directory is the cluster's own: as ``postgres`` the
        caller's (say /root/project) may be unreadable, which initdb reports
        as a confusing warning or error.
        """
        full = _as_system_user(command) if self._as_root else list(command)
        done = subprocess.run(full, cwd=cwd, env=self._env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise PostgresServerError(
                f"{shlex.join(full)} failed with exit code {done.returncode}\n"
                f"--- stdout\n{done.stdout}--- stderr\n{done.stderr}--- server log\n{self.log()}"
            )
        return done

    def _initdb(self) -> None:
        # --no-sync: skips flushing the new cluster's files to disk (seconds on slow disks); a cluster
        # that dies with the machine is thrown away anyway. The server itself runs with fsync on.
        self._run(
            [
                str(self.binaries.initdb),
                "-D",
                str(self.data_dir),
                "-A",
                "trust",
                "-U",
                SUPERUSER,
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            cwd=self._root,
        )

    def _server_options(self) -> list[str]:
        settings = {
            "listen_addresses": HOST,
            "port": str(self.port),
            "unix_socket_directories": str(self._root),
            **SERVER_SETTINGS,
        }
        return [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")]

    def _pg_ctl_start(self, *, last_attempt: bool) -> bool:
        """Start the server on ``self.port``; False when that port was taken meanwhile (try another).

        ``pg_ctl -w`` returns as soon as the postmaster is up or has died, so a
        server that cannot start fails here at once rather than after the
        readiness timeout. pg_ctl hands ``-o`` to ``/bin/sh``, hence the quoting.
        """
        command = [
            str(self.binaries.pg_ctl),
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_path),
            "-w",
            "-t",
            str(int(self.start_timeout)),
            "-o",
            shlex.join(self._server_options()),
            "start",
        ]
        try:
            self._run(command, cwd=self._root)
        except PostgresServerError:
            if not last_attempt and "could not bind" in self.log():
                self.log_path.unlink(missing_ok=True)
                return False
            raise
        return True

    def _wait_ready(self) -> None:
        """Poll until the server accepts connections on its TCP port, or raise with its log."""
        deadline = time.monotonic() + self.start_timeout
        last_error = ""
        while True:
            ready, last_error = self._probe()
            if ready:
                return
            if time.monotonic() >= deadline:
                raise PostgresServerError(
                    f"PostgreSQL on {HOST}:{self.port} did not accept connections within "
                    f"{self.start_timeout:.0f} s ({last_error})\n--- server log\n{self.log()}"
                )
            time.sleep(0.1)

    def _probe(self) -> tuple[bool, str]:
        """Whether the server accepts connections now, and what was wrong if not."""
        if self.binaries.pg_isready is not None:
            done = subprocess.run(
                [
                    str(self.binaries.pg_isready),
                    "-h",
                    HOST,
                    "-p",
                    str(self.port),
                    "-U",
                    SUPERUSER,
                    "-d",
                    "postgres",
                    "-t",
                    "2",
                ],
                env=self._env,
                capture_output=True,
                text=True,
                check=False,
            )
            return done.returncode == 0, done.stdout.strip() or f"pg_isready exit code {done.returncode}"
        try:
            with socket.create_connection((HOST, self.port or 0), timeout=2):
                pass
        except OSError as error:
            return False, f"TCP connect: {error}"
        import psycopg

        try:
            with psycopg.connect(self.url("postgres"), connect_timeout=2):
                return True, ""
        except psycopg.OperationalError as error:
            return False, f"psycopg connect: {error}"
