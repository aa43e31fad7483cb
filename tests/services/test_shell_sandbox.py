"""The shell service's bubblewrap sandbox, with the real ``bwrap`` and real agents.

The reproduction of the leak runs the real ``turnkit`` CLI in a process whose
environment holds a secret, asking an allowed ``cat`` for that very process's
``/proc/<pid>/environ``. The other tests use an agent in this process (its
pid does not matter to them).

Without ``bwrap`` the tests that need it are skipped, except in CI
(``CI=true``), where they fail: ``.ci/run`` installs bubblewrap.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from turnkit.errors import ConfigError
from turnkit_services.shell.sandbox import Bwrap

from tests.services.test_shell import BASE_ENV, parse_env, shell_agent, value
from tests.support.agents import eventually
from tests.support.dists import subprocess_env

BWRAP = shutil.which("bwrap")

#: The real CLI with ``{pid}`` in its arguments replaced by its own process id: the agent's.
CLI_AS_ITSELF = (
    "import os, sys; from turnkit.cli import main;"
    " main([a.replace('{pid}', str(os.getpid())) for a in sys.argv[1:]], prog_name='turnkit')"
)

SECRET = "sk-sandbox-test-0123456789"


@pytest.fixture
def bwrap() -> str:
    """The ``bwrap`` program; a skip (a failure in CI) when it is not installed."""
    if BWRAP is None:
        reason = "bubblewrap (bwrap) is not installed"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; CI must have it (.ci/run installs Debian's bubblewrap)")
        pytest.skip(reason)
    return BWRAP


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "notes.txt").write_text("the model's own file\n")
    return folder


@pytest.fixture
def outside() -> Iterator[Path]:
    """A writable folder outside the root and outside ``/tmp`` (which the sandbox replaces)."""
    folder = Path(tempfile.mkdtemp(prefix="turnkit-sandbox-", dir="/var/tmp"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


def turnkit_as_itself(cwd: Path, *args: str) -> dict[str, object]:
    """Run ``turnkit ARGS…`` in ``cwd`` with ``OPENAI_API_KEY`` set; its JSON output."""
    ran = subprocess.run(
        [sys.executable, "-c", CLI_AS_ITSELF, *args],
        cwd=cwd,
        env=subprocess_env(env={"OPENAI_API_KEY": SECRET}),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    result: dict[str, object] = json.loads(ran.stdout)
    # `turnkit shell exec` exits with the command's own status
    assert ran.returncode == result["exit_code"], f"exit {ran.returncode}\n{ran.stdout}{ran.stderr}"
    return result


# ------------------------------------------------------------------ the command line


def test_the_command_line_bwrap_gets() -> None:
    sandbox = Bwrap("/usr/bin/bwrap", Path("/srv/work"), network=False)
    argv = sandbox.argv("/usr/bin/cat", ["cat", "-n", "notes.txt"], Path("/srv/work/sub"))
    assert argv == [
        "/usr/bin/bwrap",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-net",
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
        "/srv/work",
        "/srv/work",
        "--chdir",
        "/srv/work/sub",
        "--",
        "/usr/bin/cat",
        "-n",
        "notes.txt",
    ]
    networked = Bwrap("/usr/bin/bwrap", Path("/srv/work"), network=True)
    assert networked.argv("/usr/bin/cat", ["cat"], Path("/srv/work")) == [
        item for item in sandbox.argv("/usr/bin/cat", ["cat"], Path("/srv/work")) if item != "--unshare-net"
    ]


# ------------------------------------------------------------------ the leak, reproduced and closed


def test_a_sandboxed_cat_cannot_read_the_agents_environ_but_reads_the_root(
    tmp_path: Path, root: Path, bwrap: str
) -> None:
    config = tmp_path / "turnkit.toml"
    table = f'[store]\nurl = "t.db"\n\n[service.shell]\nallow = ["cat"]\nroot = "{root.name}"\n'
    environ = ["shell", "exec", "--", "cat", "/proc/{pid}/environ"]

    config.write_text(table)
    leaked = turnkit_as_itself(tmp_path, *environ)
    assert leaked["exit_code"] == 0
    assert f"OPENAI_API_KEY={SECRET}" in str(leaked["stdout"]), "the reproduction: no sandbox, the key leaks"

    config.write_text(table + 'sandbox = "bwrap"\n')
    hidden = turnkit_as_itself(tmp_path, *environ)
    assert hidden["exit_code"] == 1
    assert "No such file or directory" in str(hidden["stderr"])
    assert SECRET not in json.dumps(hidden)
    notes = turnkit_as_itself(tmp_path, "shell", "exec", "--", "cat", "notes.txt")
    assert (notes["exit_code"], notes["stdout"]) == (0, "the model's own file\n")


# ------------------------------------------------------------------ files, network, environment


async def test_only_the_root_is_writable_and_the_hosts_tmp_is_private(
    tmp_path: Path, root: Path, outside: Path, bwrap: str
) -> None:
    hosts_tmp = tmp_path / "beside-the-root.txt"
    hosts_tmp.write_text("in the host's /tmp")
    async with shell_agent(tmp_path, root, allow=["touch", "cat"], sandbox="bwrap") as agent:
        inside = value(await agent.invoke("shell.exec", {"argv": ["touch", "made-inside"]}))
        refused = value(await agent.invoke("shell.exec", {"argv": ["touch", str(outside / "made")]}))
        hidden = value(await agent.invoke("shell.exec", {"argv": ["cat", str(hosts_tmp)]}))
    assert inside["exit_code"] == 0 and (root / "made-inside").exists()
    assert refused["exit_code"] == 1 and "Read-only file system" in refused["stderr"]
    assert not (outside / "made").exists()
    assert hidden["exit_code"] == 1 and "No such file or directory" in hidden["stderr"]

    async with shell_agent(tmp_path, root, allow=["touch"]) as agent:
        unsandboxed = value(await agent.invoke("shell.exec", {"argv": ["touch", str(outside / "made")]}))
    assert unsandboxed["exit_code"] == 0 and (outside / "made").exists(), "the same write, without a sandbox"


@pytest.mark.skipif(os.geteuid() != 0, reason="only an agent running as root has capabilities to lose")
async def test_root_in_the_sandbox_cannot_make_it_writable(
    tmp_path: Path, root: Path, outside: Path, bwrap: str
) -> None:
    remount = f"mount -o remount,bind,rw / && touch {outside / 'made'}"
    async with shell_agent(tmp_path, root, allow=["sh"], sandbox="bwrap") as agent:
        ran = value(await agent.invoke("shell.exec", {"argv": ["sh", "-c", remount]}))
    assert ran["exit_code"] != 0 and "permission denied" in ran["stderr"], ran
    assert not (outside / "made").exists()


#: Connects to the loopback port in ``argv[1]``.
CONNECT = "import socket, sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 5); print('ok')"
#: This interpreter itself, not a virtual environment's link to it: that may live in ``/tmp``.
PYTHON = os.path.realpath(sys.executable)


async def test_the_network_is_off_unless_allowed(tmp_path: Path, root: Path, bwrap: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:  # its backlog completes the handshake
        argv = [PYTHON, "-c", CONNECT, str(server.getsockname()[1])]
        async with shell_agent(tmp_path, root, allow=[PYTHON], sandbox="bwrap") as agent:
            off = value(await agent.invoke("shell.exec", {"argv": argv}))
        async with shell_agent(tmp_path, root, allow=[PYTHON], sandbox="bwrap", network=True) as agent:
            on = value(await agent.invoke("shell.exec", {"argv": argv}))
    assert off["exit_code"] == 1 and "ConnectionRefusedError" in off["stderr"], off
    assert (on["exit_code"], on["stdout"]) == (0, "ok\n"), on


async def test_the_environment_inside_is_exactly_the_layers(
    tmp_path: Path, root: Path, bwrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHELL_TEST_HOST_SECRET", "must not leak")
    configured = {"CONFIGURED": "yes"}
    async with shell_agent(tmp_path, root, allow=["env"], env=configured, sandbox="bwrap") as agent:
        ran = value(await agent.invoke("shell.exec", {"argv": ["env"]}))
    layers = {**BASE_ENV, "CONFIGURED": "yes", "TURNKIT_AGENT": "default"}
    assert parse_env(ran["stdout"]) == {**layers, "PWD": str(root)}, "bwrap adds PWD, nothing else"


# ------------------------------------------------------------------ lifetime


def running_with(marker: str) -> list[int]:
    """The host's processes with ``marker`` among their arguments."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                arguments = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if marker.encode() in arguments:
                found.append(int(entry.name))
    return found


async def test_nothing_started_in_the_sandbox_outlives_its_command(
    tmp_path: Path, root: Path, bwrap: str
) -> None:
    marker = f"{900 + os.getpid() % 97}.25"  # sleep's seconds, unique to this test run
    escapee = ["sh", "-c", f"setsid sleep {marker} & echo started; sleep 60"]

    async def none_left() -> bool:
        return not running_with(marker)

    async def escaped() -> bool:  # "started" may be echoed before setsid has exec'd sleep
        return bool(running_with(marker))

    async with shell_agent(tmp_path, root, allow=["sh", "cat"], sandbox="bwrap") as agent:
        ran = value(await agent.invoke("shell.exec", {"argv": escapee, "timeout": 0.5}))
        assert (ran["timed_out"], ran["exit_code"], ran["stdout"]) == (True, -15, "started\n")
        await eventually(none_left)

        started = value(await agent.invoke("shell.start", {"argv": escapee}))
        assert value(await agent.invoke("shell.read", {"id": started["id"], "timeout": 5}))["stdout"] == (
            "started\n"
        )
        await eventually(escaped)  # setsid left the process group, not the sandbox
        closed = value(await agent.invoke("shell.close", {"id": started["id"]}))
        assert closed["exit_code"] == -15
        await eventually(none_left)

        cat = value(await agent.invoke("shell.start", {"argv": ["cat"]}))
        await agent.invoke("shell.write", {"id": cat["id"], "data": "through the sandbox\n", "eof": True})
        assert value(await agent.invoke("shell.wait", {"id": cat["id"], "timeout": 5}))["exit_code"] == 0
        closed = value(await agent.invoke("shell.close", {"id": cat["id"]}))
        assert closed["stdout"] == "through the sandbox\n"


# ------------------------------------------------------------------ start-up errors


async def test_no_bwrap_keeps_the_service_out_saying_to_install_it(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    async with shell_agent(tmp_path, root, allow=["cat"], sandbox="bwrap") as agent:
        assert "shell" not in agent.services
        assert agent.service_errors["shell"] == (
            f"SandboxUnavailable: [service.shell] sandbox = \"bwrap\": bwrap is not found on PATH '{empty}';"
            ' install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap), or set sandbox = "none"'
        )


async def test_a_bwrap_that_cannot_sandbox_keeps_the_service_out_with_its_reason(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What bwrap says where unprivileged user namespaces are off (a hardened kernel, some containers).
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create a new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    async with shell_agent(tmp_path, root, allow=["cat"], sandbox="bwrap") as agent:
        assert agent.service_errors["shell"] == (
            f'SandboxUnavailable: [service.shell] sandbox = "bwrap": {fake} cannot set up a sandbox here'
            " (bwrap: No permissions to create a new namespace);"
            " it needs user namespaces enabled, or to run as root"
        )


async def test_a_root_holding_the_sandboxs_own_mounts_is_refused(tmp_path: Path) -> None:
    async with shell_agent(tmp_path, Path("/"), allow=["cat"], sandbox="bwrap") as agent:
        assert agent.service_errors["shell"] == (
            "SandboxUnavailable: [service.shell] root: '/' cannot be the root of sandbox = \"bwrap\","
            " which mounts its own /proc; give a folder of files to work on"
        )


async def test_an_unknown_sandbox_is_a_configuration_error_naming_the_key(tmp_path: Path, root: Path) -> None:
    with pytest.raises(ConfigError, match=r"expected one of 'none', 'bwrap' @ \$\.service\.shell\.sandbox"):
        async with shell_agent(tmp_path, root, sandbox="docker"):
            pass
