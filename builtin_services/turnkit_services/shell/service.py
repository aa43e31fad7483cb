"""The shell service: commands and long-running processes, authorised fail-closed.

Every command, whether ``shell.exec`` (run to completion) or
``shell.start`` (kept running, driven with ``read`` / ``write`` / ``wait``
/ ``close``), goes the same way: argv checked, working directory confined
to the root, program found on the command's ``PATH``, ``shell_authorize``
(where the service's own ``allow`` policy answers last, so nothing runs
unless the configuration allows it), environment built in layers and
passed through ``shell_env``, then the process, in a process group of its
own (and, with ``sandbox = "bwrap"``, in a sandbox: :mod:`.sandbox`).
``shell_exited`` fires when it has exited. See
:mod:`turnkit_services.shell.points`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from pathlib import Path
from typing import Any

import attrs
from turnkit_hookspecs import Deny, ExecutionContext, Service, TurnInfo, action, current_turn, hookimpl

from . import points
from .environment import checked_env, layered_env
from .policy import ShellRefused, allowed, check_argv, confine, find_program, refusal
from .process import Process
from .sandbox import Bwrap, bwrap_sandbox
from .settings import ShellSettings


@attrs.frozen
class Command:
    """A command that passed every check: what runs, where, with what, for whom."""

    argv: list[str]
    program: str
    cwd: Path
    env: dict[str, str]
    turn: TurnInfo | None


@attrs.define
class Tracked:
    """A long-running process kept by ``shell.start`` until ``shell.close``."""

    id: str
    command: Command
    process: Process
    watcher: asyncio.Task[None] | None = None

    def status(self) -> dict[str, Any]:
        """What ``shell.status`` says about it."""
        process = self.process
        return {
            "id": self.id,
            "argv": self.command.argv,
            "cwd": str(self.command.cwd),
            "pid": process.pid,
            "running": process.running,
            "exit_code": process.exit_code,
            "duration": round(process.duration, 3),
            "session_id": self.command.turn.session_id if self.command.turn else None,
        }


#: What the model (and ``turnkit shell exec --help``) is told about ``exec``.
EXEC_DESCRIPTION = (
    "Run one command to completion and return its exit code, stdout and stderr."
    " argv is the program and its arguments as a list, passed as they are (no shell);"
    " cwd is a folder relative to the working root; timeout is in seconds;"
    " stdin is text written to the command's input."
)
#: What the model is told about ``start``.
START_DESCRIPTION = (
    "Start a long-running command (argv and cwd as for exec) and return its id,"
    " for shell.read, shell.write, shell.wait and shell.close."
)


class ShellService(Service):
    """Commands and long-running processes, authorised fail-closed."""

    name = "shell"
    hookspecs = (points,)
    settings_class = ShellSettings
    settings: ShellSettings

    def __init__(self) -> None:
        self._root: Path | None = None
        self._sandbox: Bwrap | None = None
        self._processes: dict[str, Tracked] = {}
        self._numbers = itertools.count(1)

    @property
    def root(self) -> Path:
        """The folder every working directory must be inside (resolved at start)."""
        if self._root is None:
            raise RuntimeError("the shell service is not started")
        return self._root

    # ------------------------------------------------------------------ lifecycle

    async def start(self, context: ExecutionContext) -> None:
        """Check the settings, resolve the root and check the sandbox; no command runs until asked."""
        self.context = context
        if self.settings is None:
            self.settings = ShellSettings()
        settings = self.settings  # each setting's range is checked as the settings are read
        if settings.timeout > settings.max_timeout:
            raise ValueError(
                f"[service.shell] timeout ({settings.timeout}) exceeds max_timeout ({settings.max_timeout})"
            )
        root = (Path(context.config.base_dir) / Path(settings.root).expanduser()).resolve()
        if not root.is_dir():
            raise ValueError(f"[service.shell] root: {str(root)!r} is not a directory")
        sandboxed = settings.sandbox == "bwrap"
        self._sandbox = await bwrap_sandbox(root, settings.network, context.env) if sandboxed else None
        self._root = root

    async def stop(self) -> None:
        """End every long-running process still kept (no ``shell_exited`` fires for them then)."""
        kept, self._processes = list(self._processes.values()), {}
        for tracked in kept:
            if tracked.watcher is not None:
                tracked.watcher.cancel()
        await asyncio.gather(*(t.process.stop(self.settings.kill_grace) for t in kept))

    # ------------------------------------------------------------------ the default policy

    @hookimpl(trylast=True)
    def shell_authorize(self, argv: list[str], program: str, shell: bool) -> Deny | None:
        """``[service.shell] allow`` (and ``allow_shell_string``): allow what it names, deny the rest."""
        if shell:
            if self.settings.allow_shell_string:
                return None
            return Deny(
                "shell strings are off: pass the command as an argv list, or set"
                f" [service.shell] allow_shell_string = true in {self.context.config.source}"
            )
        if allowed(self.settings.allow, argv[0], program):
            return None
        return Deny(refusal(self.settings.allow, argv[0], program, self.context.config.source))

    # ------------------------------------------------------------------ actions

    @action(tool=True, description=EXEC_DESCRIPTION)
    async def exec(
        self,
        argv: list[str],
        cwd: str | None = None,
        timeout: float | None = None,
        stdin: str | None = None,
        shell: bool = False,
    ) -> dict[str, Any]:
        """Run one command to completion (see ``EXEC_DESCRIPTION``).

        When the timeout runs out the whole group is ended, and so is
        whatever the command left running in the background when it exits:
        nothing outlives an ``exec``. ``shell=true`` runs ``argv``'s single
        string with ``sh -c`` if the configuration allows shell strings.

        Args:
            argv: the program and its arguments, passed as they are (no shell).
            cwd: the working folder, relative to [service.shell] root.
            timeout: seconds before the command is ended (default: [service.shell] timeout).
            stdin: text written to the command's input.
            shell: run argv's single string with sh -c (needs allow_shell_string).
        """
        limit = self._timeout(timeout)
        data = _encoded("stdin", stdin) if stdin is not None else None
        command = await self._prepare(argv, cwd, shell)
        process = await self._spawn(command, stdin=data is not None)
        feeding = asyncio.create_task(_feed(process, data)) if data is not None else None
        try:
            timed_out = not await process.wait(limit)
            await process.stop(self.settings.kill_grace)
        except BaseException:  # cancelled (the turn was): nothing may outlive the call
            process.kill_now()
            raise
        finally:
            if feeding is not None:
                feeding.cancel()
                await asyncio.gather(feeding, return_exceptions=True)
        await self._exited(command, process, timed_out=timed_out)
        return {
            "exit_code": process.exit_code,
            **self._output(process),
            "timed_out": timed_out,
            "duration": round(process.duration, 3),
        }

    # The method cannot be called ``start``: that is the service's lifecycle.
    @action(name="start", tool=True, description=START_DESCRIPTION)
    async def start_process(
        self, argv: list[str], cwd: str | None = None, shell: bool = False
    ) -> dict[str, Any]:
        """Start a long-running command (see ``START_DESCRIPTION``).

        The process keeps running until it exits or is closed; its unread
        output is kept up to the output cap.

        Args:
            argv: the program and its arguments, passed as they are (no shell).
            cwd: the working folder, relative to [service.shell] root.
            shell: run argv's single string with sh -c (needs allow_shell_string).
        """
        if len(self._processes) >= self.settings.max_processes:
            raise RuntimeError(
                f"{len(self._processes)} processes are kept already ([service.shell] max_processes);"
                " close one with shell.close first"
            )
        command = await self._prepare(argv, cwd, shell)
        process = await self._spawn(command, stdin=True)
        tracked = Tracked(f"proc-{next(self._numbers)}", command, process)
        tracked.watcher = asyncio.create_task(self._watch(tracked), name=f"shell {tracked.id}")
        self._processes[tracked.id] = tracked
        return tracked.status()

    @action(tool=True)
    async def status(self, id: str | None = None) -> list[dict[str, Any]]:
        """List the long-running processes (or only the one with this id): running, exit code, duration.

        Args:
            id: only this process (as start returned it).
        """
        if id is not None:
            return [self._find(id).status()]
        return [t.status() for t in self._visible()]

    @action(tool=True)
    async def read(self, id: str, timeout: float = 0.0) -> dict[str, Any]:
        """Return what a process wrote since the last read, waiting up to timeout seconds for something.

        Args:
            id: the process (as start returned it).
            timeout: seconds to wait for output when there is none yet.
        """
        tracked = self._find(id)
        process = tracked.process
        if not (process.stdout or process.stderr) and process.running and timeout:
            process.activity.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.activity.wait(), self._timeout(timeout))
        return {**tracked.status(), **self._output(process)}

    @action(tool=True)
    async def write(self, id: str, data: str, eof: bool = False) -> dict[str, Any]:
        """Write data to a process's input; eof=true closes the input afterwards.

        Args:
            id: the process (as start returned it).
            data: the text to write.
            eof: close the process's input afterwards.
        """
        tracked = self._find(id)
        encoded = _encoded("data", data)
        await tracked.process.write(encoded, eof=eof, timeout=self.settings.timeout)
        return {"id": id, "written": len(encoded), "eof": eof}

    @action(tool=True)
    async def wait(self, id: str, timeout: float | None = None) -> dict[str, Any]:
        """Wait up to timeout seconds for a process to exit (it is not killed if it does not).

        Args:
            id: the process (as start returned it).
            timeout: seconds to wait (default: [service.shell] timeout).
        """
        tracked = self._find(id)
        await tracked.process.wait(self._timeout(timeout))
        return tracked.status()

    @action(tool=True)
    async def close(self, id: str) -> dict[str, Any]:
        """End a process and everything it started, return its last output, and forget it.

        Args:
            id: the process (as start returned it).
        """
        tracked = self._find(id)
        del self._processes[id]
        await tracked.process.stop(self.settings.kill_grace)
        if tracked.watcher is not None:
            await tracked.watcher
        return {**tracked.status(), **self._output(tracked.process)}

    # ------------------------------------------------------------------ the way of every command

    async def _prepare(self, argv: Any, cwd: str | None, shell: bool) -> Command:
        """Check, confine, find, authorise and give an environment to a command; raise if refused."""
        argv = check_argv(argv)
        if shell:
            if len(argv) != 1:
                raise ValueError(f"with shell=true, argv must be one string (the command line), got {argv!r}")
            argv = [self.settings.shell_program, "-c", argv[0]]
        turn = current_turn()
        where = confine(self.root, cwd)
        env = layered_env(self.settings, self.context.env, self.context.agent_id, turn)
        program = find_program(argv[0], env, where)
        deny = await self.context.plugins.guard(
            "shell_authorize", argv=list(argv), program=program, cwd=str(where), shell=shell, turn=turn
        )
        if deny is not None:
            self.context.logger.info("shell: %r denied by %s: %s", argv, deny.plugin, deny.reason)
            raise ShellRefused(f"denied by {deny.plugin}: {deny.reason}")
        env = await self.context.plugins.pipeline(
            "shell_env", env=env, argv=list(argv), cwd=str(where), turn=turn
        )
        return Command(argv, program, where, checked_env(env), turn)

    async def _spawn(self, command: Command, stdin: bool) -> Process:
        """Start the command, inside the sandbox if there is one (plugins saw it as the caller gave it)."""
        argv, program = command.argv, command.program
        if self._sandbox is not None:
            argv, program = self._sandbox.argv(program, argv, command.cwd), self._sandbox.program
        return await Process.spawn(argv, program, command.cwd, command.env, self.settings.max_output, stdin)

    def _timeout(self, timeout: float | None) -> float:
        """A caller's timeout, checked against ``max_timeout`` (the configured one when ``None``)."""
        if timeout is None:
            return self.settings.timeout
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0:
            raise ValueError(f"timeout must be a number of seconds >= 0, got {timeout!r}")
        if timeout > self.settings.max_timeout:
            raise ValueError(
                f"timeout {timeout}s exceeds [service.shell] max_timeout ({self.settings.max_timeout}s)"
            )
        return float(timeout)

    async def _exited(self, command: Command, process: Process, timed_out: bool) -> None:
        await self.context.plugins.effect(
            "shell_exited",
            argv=list(command.argv),
            cwd=str(command.cwd),
            exit_code=process.exit_code,
            duration=process.duration,
            timed_out=timed_out,
            truncated=process.truncated,
            turn=command.turn,
        )

    async def _watch(self, tracked: Tracked) -> None:
        await tracked.process.wait(None)
        await self._exited(tracked.command, tracked.process, timed_out=False)

    # ------------------------------------------------------------------ long-running processes

    def _visible(self) -> list[Tracked]:
        """The processes the caller may reach: inside a turn, only those its session started.

        Outside a turn (the command line, an application) every process is.
        """
        session = _session_of(current_turn())
        return [
            t for t in self._processes.values() if session is None or _session_of(t.command.turn) == session
        ]

    def _find(self, id: str) -> Tracked:
        for tracked in self._visible():
            if tracked.id == id:
                return tracked
        known = ", ".join(t.id for t in self._visible()) or "none"
        raise LookupError(f"no process {id!r} (running or unclosed: {known}); shell.start gives the ids")

    @staticmethod
    def _output(process: Process) -> dict[str, Any]:
        stdout, cut_out = process.stdout.take()
        stderr, cut_err = process.stderr.take()
        return {"stdout": stdout, "stderr": stderr, "truncated": cut_out or cut_err}


def _session_of(turn: TurnInfo | None) -> str | None:
    return turn.session_id if turn is not None else None


async def _feed(process: Process, data: bytes) -> None:
    """Write ``exec``'s ``stdin`` and close it; a command that exits without reading it is fine."""
    with contextlib.suppress(ValueError):
        await process.write(data, eof=True)


def _encoded(name: str, text: Any) -> bytes:
    """A text argument (``stdin``, ``data``) as UTF-8, or an error naming it."""
    if not isinstance(text, str):
        raise ValueError(f"{name} must be a string, got {type(text).__name__} {text!r}")
    return text.encode()
