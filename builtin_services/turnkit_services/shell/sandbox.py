"""The optional sandbox of every command: bubblewrap (``bwrap``), as one argv around the command.

``allow`` decides which program runs, not what it reaches: an allowed
``cat`` reads ``/proc/<agent pid>/environ`` (the agent's API keys) as
easily as a file of the root. With ``[service.shell] sandbox = "bwrap"``
each command runs in namespaces of its own:

- PID: a fresh ``/proc`` showing only the command's processes, so the
  agent and every other process of the host are invisible. It also bounds
  the command's lifetime: when its first process ends (or the ``bwrap``
  outside is killed, by a timeout, ``shell.close`` or the agent's death)
  the kernel kills everything left inside, ``setsid`` or not;
- mount: ``/`` read-only, the shell root read-write, a private ``/tmp``
  and a minimal ``/dev``;
- network (unless ``network = true``): only a loopback of its own;
- IPC: no System V shared memory or semaphores of the host.

Capabilities are dropped: an agent running as root would otherwise run
commands able to remount ``/`` read-write.

The environment is not put on bwrap's command line (``--setenv``), where
every user of the host could read it in ``/proc/<pid>/cmdline``: bwrap is
started with exactly the command's environment and passes it on as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs

#: Where the sandbox mounts file systems of its own: a root there (or above) would hide or expose them.
_OWN_MOUNTS = (Path("/proc"), Path("/dev"))
#: How long the start-up check of the sandbox may take.
_PROBE_TIMEOUT = 10.0


class SandboxUnavailable(RuntimeError):
    """``sandbox = "bwrap"`` cannot work here; the shell service does not start."""


@attrs.frozen
class Bwrap:
    """A bubblewrap sandbox: the ``bwrap`` program, the root it may write, whether it has network."""

    program: str
    root: Path
    network: bool

    def argv(self, program: str, argv: Sequence[str], cwd: Path) -> list[str]:
        """The command line running ``argv`` (``program`` found already) in ``cwd``, sandboxed.

        The order matters: later mounts go over earlier ones, so the root,
        which may lie inside ``/tmp``, is bound after the private ``/tmp``.
        ``program`` replaces ``argv[0]`` (bwrap cannot set it), with the same
        base name, which is what a multi-call binary looks at.
        """
        root = str(self.root)
        network = [] if self.network else ["--unshare-net"]
        return [
            self.program,
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
            "--unshare-pid",
            "--unshare-ipc",
            *network,
            "--ro-bind",
            "/",
            "/",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--tmpfs",
            "/tmp",
            "--bind",
            root,
            root,
            "--chdir",
            str(cwd),
            "--",
            program,
            *argv[1:],
        ]

    async def check(self) -> None:
        """Run ``bwrap --version`` sandboxed once: a host where bwrap cannot work says so at start-up.

        Without this, every command would fail with bwrap's own message in
        its ``stderr`` (no user namespaces, a seccomp policy forbidding
        ``unshare`` …), which a model would take for the command's fault.
        """
        try:
            process = await asyncio.create_subprocess_exec(
                *self.argv(self.program, [self.program, "--version"], self.root),
                env={},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        except OSError as exc:
            raise SandboxUnavailable(
                f'[service.shell] sandbox = "bwrap": cannot run {self.program}: {exc}'
            ) from None
        try:
            _, stderr = await asyncio.wait_for(process.communicate(), _PROBE_TIMEOUT)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise SandboxUnavailable(
                f'[service.shell] sandbox = "bwrap": {self.program} did not set up a sandbox'
                f" within {_PROBE_TIMEOUT:g}s"
            ) from None
        if process.returncode != 0:
            lines = stderr.decode(errors="replace").strip().splitlines()
            said = lines[-1] if lines else f"exit status {process.returncode}"
            raise SandboxUnavailable(
                f'[service.shell] sandbox = "bwrap": {self.program} cannot set up a sandbox here ({said});'
                " it needs user namespaces enabled, or to run as root"
            )


async def bwrap_sandbox(root: Path, network: bool, env: Mapping[str, str]) -> Bwrap:
    """The sandbox for ``root``, checked to work, with ``bwrap`` found on the agent's ``PATH`` (``env``)."""
    for mount in _OWN_MOUNTS:
        if mount.is_relative_to(root) or root.is_relative_to(mount):
            raise SandboxUnavailable(
                f'[service.shell] root: {str(root)!r} cannot be the root of sandbox = "bwrap",'
                f" which mounts its own {mount}; give a folder of files to work on"
            )
    path = env.get("PATH", "")
    program = shutil.which("bwrap", path=path)
    if program is None:
        raise SandboxUnavailable(
            f'[service.shell] sandbox = "bwrap": bwrap is not found on PATH {path!r};'
            ' install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap), or set sandbox = "none"'
        )
    sandbox = Bwrap(program, root, network)
    await sandbox.check()
    return sandbox
