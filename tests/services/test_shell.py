"""The shell service on a real agent: real processes, real process groups, a real store.

Commands are plain system programs (``echo``, ``env``, ``cat``, ``sh``) run
in a root under ``tmp_path``. Each test states the ``[service.shell]`` table
it needs; nothing runs unless that table allows it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from turnkit.agent import Agent
from turnkit_hookspecs import ActionResult, Deny, ToolOutputBlock, TurnInfo, hookimpl
from turnkit_services.shell import ShellService

from tests.support.agents import eventually, running_agent
from tests.support.dists import run_turnkit

#: The base layer of every command's environment (documented in builtin_services/docs/shell.md).
BASE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The shell root: a folder of its own, beside (not above) everything else of the test."""
    folder = tmp_path / "root"
    folder.mkdir()
    return folder


@asynccontextmanager
async def shell_agent(
    tmp_path: Path, root: Path, plugins: Mapping[str, object] | None = None, **settings: Any
) -> AsyncIterator[Agent]:
    """A started agent with the shell service, ``[service.shell]`` = ``settings`` (root: ``root``).

    ``plugins`` are registered once the agent has started, after the shell
    service has added its points (as discovery orders them).
    """
    model = settings.pop("model", {})
    table = {"root": str(root), **settings}
    async with running_agent(
        tmp_path, services=[ShellService()], service={"shell": table}, model=model
    ) as agent:
        for name, plugin in (plugins or {}).items():
            agent.manager.register(plugin, name)
        yield agent


def value(result: ActionResult) -> Any:
    """The action's value; fails with the action's error if it did not succeed."""
    assert result.ok, result.error
    return result.value


def gone(pid: int) -> bool:
    """Whether process ``pid`` has ended (a zombie waiting to be reaped has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


async def wait_gone(pid: int) -> None:
    async def check() -> bool:
        return gone(pid)

    await eventually(check, timeout=5.0)


class ExitRecorder:
    """Records every ``shell_exited``."""

    def __init__(self) -> None:
        self.exits: list[dict[str, Any]] = []

    @hookimpl
    def shell_exited(
        self,
        argv: list[str],
        cwd: str,
        exit_code: int,
        duration: float,
        timed_out: bool,
        truncated: bool,
        turn: TurnInfo | None,
    ) -> None:
        self.exits.append(
            {
                "argv": argv,
                "cwd": cwd,
                "exit_code": exit_code,
                "duration": duration,
                "timed_out": timed_out,
                "truncated": truncated,
                "turn": turn,
            }
        )


# ------------------------------------------------------------------ authorization


async def test_commands_are_denied_by_default_with_how_to_allow_them(tmp_path: Path, root: Path) -> None:
    async with shell_agent(tmp_path, root) as agent:
        result = await agent.invoke("shell.exec", {"argv": ["touch", "made"]})
    assert not result.ok
    assert result.error is not None
    assert "'touch' is not allowed: the shell service runs no program by default" in result.error
    assert 'add it to [service.shell] allow in <config> (e.g. allow = ["touch"])' in result.error
    assert 'allow = ["*"] and decide per command in a shell_authorize plugin' in result.error
    assert not (root / "made").exists(), "a denied command must not run"


class Permissive:
    """A guard that allows everything: installing it must not open the shell."""

    @hookimpl
    def shell_authorize(self) -> None:
        return None


class NoPush:
    """Denies ``git push``, and records what every command looked like to a guard."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    @hookimpl
    def shell_authorize(
        self, argv: list[str], program: str, cwd: str, shell: bool, turn: TurnInfo | None
    ) -> Deny | None:
        self.seen.append({"argv": argv, "program": program, "cwd": cwd, "shell": shell, "turn": turn})
        return Deny("no pushing") if argv[:2] == ["echo", "push"] else None


async def test_a_plugin_guard_narrows_the_policy_but_never_opens_it(tmp_path: Path, root: Path) -> None:
    async with shell_agent(tmp_path, root, plugins={"permissive": Permissive()}) as agent:
        denied = await agent.invoke("shell.exec", {"argv": ["echo", "hi"]})
    assert not denied.ok and "not allowed" in (denied.error or "")

    guard = NoPush()
    async with shell_agent(tmp_path, root, plugins={"nopush": guard}, allow=["echo"]) as agent:
        assert value(await agent.invoke("shell.exec", {"argv": ["echo", "pull"]}))["stdout"] == "pull\n"
        refused = await agent.invoke("shell.exec", {"argv": ["echo", "push"]})
    assert not refused.ok
    assert "denied by nopush: no pushing" in (refused.error or "")
    assert guard.seen[0] == {
        "argv": ["echo", "pull"],
        "program": "/usr/bin/echo",
        "cwd": str(root.resolve()),
        "shell": False,
        "turn": None,
    }


@pytest.mark.parametrize(
    ("allow", "argv", "runs"),
    [
        (["echo"], ["echo", "x"], True),
        (["ech*"], ["echo", "x"], True),
        (["/usr/bin/*"], ["echo", "x"], True),
        (["/usr/bin/echo"], ["/usr/bin/echo", "x"], True),
        (["*"], ["/usr/bin/echo", "x"], True),
        (["echo"], ["/usr/bin/echo", "x"], False),  # a bare name allows the program PATH finds, only
        (["echo"], ["./echo", "x"], False),  # a file in the root never passes for an allowed name
        (["/usr/local/*"], ["echo", "x"], False),
        (["cat"], ["echo", "x"], False),
    ],
)
async def test_allow_entries_match_names_or_program_paths(
    tmp_path: Path, root: Path, allow: list[str], argv: list[str], runs: bool
) -> None:
    fake = root / "echo"
    fake.write_text("#!/bin/sh\necho fake\n")
    fake.chmod(0o755)
    async with shell_agent(tmp_path, root, allow=allow) as agent:
        result = await agent.invoke("shell.exec", {"argv": argv})
    assert result.ok is runs, result.error
    if runs:
        assert result.value["stdout"] == "x\n"
    else:
        assert "is not allowed by [service.shell] allow" in (result.error or "")


async def test_shell_strings_need_the_configuration_to_allow_them(tmp_path: Path, root: Path) -> None:
    payload = {"argv": ["echo abc | tr a z"], "shell": True}
    async with shell_agent(tmp_path, root, allow=["*"]) as agent:
        refused = await agent.invoke("shell.exec", payload)
    assert not refused.ok
    assert "shell strings are off" in (refused.error or "")
    assert "allow_shell_string = true" in (refused.error or "")

    async with shell_agent(tmp_path, root, allow_shell_string=True) as agent:
        assert value(await agent.invoke("shell.exec", payload))["stdout"] == "zbc\n"
        two = await agent.invoke("shell.exec", {"argv": ["echo", "a"], "shell": True})
    assert not two.ok and "argv must be one string" in (two.error or "")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"argv": "ls -la"}, "argv must be a non-empty list of strings"),
        ({"argv": []}, "argv must be a non-empty list of strings"),
        ({"argv": ["echo", 3]}, "argv[1] must be a string, got int 3"),
        ({"argv": ["echo"], "timeout": 601}, "timeout 601s exceeds [service.shell] max_timeout (600.0s)"),
        ({"argv": ["no-such-program"]}, "program 'no-such-program' not found on PATH"),
    ],
)
async def test_bad_input_is_named(tmp_path: Path, root: Path, payload: dict[str, Any], message: str) -> None:
    async with shell_agent(tmp_path, root, allow=["*"]) as agent:
        result = await agent.invoke("shell.exec", payload)
    assert not result.ok
    assert message in (result.error or "")


async def test_bad_settings_keep_the_service_out_with_the_key_named(tmp_path: Path, root: Path) -> None:
    async with shell_agent(tmp_path, root, timeout=700.0) as agent:
        assert "shell" not in agent.services
        assert agent.service_errors["shell"] == (
            "ValueError: [service.shell] timeout (700.0) exceeds max_timeout (600.0)"
        )


# ------------------------------------------------------------------ argv mode


async def test_injection_attempts_are_plain_arguments_in_argv_mode(tmp_path: Path, root: Path) -> None:
    sentinel = root / "sentinel"
    sentinel.write_text("still here")
    attempts = [
        "; rm -rf sentinel",
        "$(rm sentinel)",
        "`rm sentinel`",
        "&& rm sentinel",
        "| rm sentinel",
        "'\"; rm sentinel; echo \"'",
        "$HOME ${PATH} *",
    ]
    async with shell_agent(tmp_path, root, allow=["echo", "printf"]) as agent:
        echoed = value(await agent.invoke("shell.exec", {"argv": ["echo", *attempts]}))
        printed = value(await agent.invoke("shell.exec", {"argv": ["printf", "%s\\n", *attempts]}))
    assert echoed["stdout"] == " ".join(attempts) + "\n"
    assert printed["stdout"].splitlines() == attempts
    assert sentinel.read_text() == "still here"


# ------------------------------------------------------------------ working directory


async def test_the_working_directory_is_confined_to_the_root(tmp_path: Path, root: Path) -> None:
    (root / "sub").mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "link-out").symlink_to(outside)
    (root / "link-in").symlink_to(root / "sub")
    async with shell_agent(tmp_path, root, allow=["pwd"]) as agent:
        for cwd, expected in [(None, root), ("sub", root / "sub"), ("link-in", root / "sub")]:
            ran = value(await agent.invoke("shell.exec", {"argv": ["pwd", "-P"], "cwd": cwd}))
            assert ran["stdout"] == f"{expected.resolve()}\n"
        absolute_inside = value(await agent.invoke("shell.exec", {"argv": ["pwd"], "cwd": str(root / "sub")}))
        assert absolute_inside["stdout"] == f"{(root / 'sub').resolve()}\n"

        for cwd in ["..", "sub/../..", "/", str(outside), "link-out", "link-out/"]:
            refused = await agent.invoke("shell.exec", {"argv": ["pwd"], "cwd": cwd})
            assert not refused.ok, cwd
            assert f"cwd {cwd!r} is outside the shell root" in (refused.error or "")
        missing = await agent.invoke("shell.exec", {"argv": ["pwd"], "cwd": "nope"})
        assert "cwd 'nope' is not a directory under the shell root" in (missing.error or "")


# ------------------------------------------------------------------ environment


class EnvEditor:
    """``shell_env``: drops ``DROPPED``, adds ``FROM_PLUGIN``; keeps what it was given."""

    def __init__(self) -> None:
        self.given: list[dict[str, str]] = []

    @hookimpl
    def shell_env(self, env: dict[str, str], turn: TurnInfo | None) -> dict[str, str]:
        self.given.append(dict(env))
        edited = {name: text for name, text in env.items() if name != "DROPPED"}
        return {**edited, "FROM_PLUGIN": turn.session_id if turn else "no turn"}


def parse_env(stdout: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in stdout.splitlines())


async def test_the_environment_is_exactly_the_layers(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHELL_TEST_HOST_SECRET", "must not leak")
    monkeypatch.setenv("SHELL_TEST_HOST_KEPT", "kept")
    editor = EnvEditor()
    settings = {
        "allow": ["env"],
        "base_env": ["SHELL_TEST_HOST_KEPT", "SHELL_TEST_NOT_SET_ANYWHERE"],
        "env": {"CONFIGURED": "yes", "DROPPED": "by the plugin", "LANG": "en_US.UTF-8"},
        "model": {"script": [{"tool": "shell.exec", "args": {"argv": ["env"]}}, {"text": "done"}]},
    }
    async with shell_agent(tmp_path, root, plugins={"editor": editor}, **settings) as agent:
        result = await agent.send("show me the environment")
        assert result.turn.status == "completed", result.turn.error
        session_id, turn_id = result.turn.session_id, result.turn.turn_id
        history = await agent.sessions.history(session_id)
        [output] = [b for m in history for b in m.blocks if isinstance(b, ToolOutputBlock)]
        in_turn = parse_env(json.loads(output.output)["stdout"])
        outside = parse_env(value(await agent.invoke("shell.exec", {"argv": ["env"]}))["stdout"])

    layers = {
        **BASE_ENV,
        "SHELL_TEST_HOST_KEPT": "kept",
        "CONFIGURED": "yes",
        "DROPPED": "by the plugin",
        "LANG": "en_US.UTF-8",
        "TURNKIT_AGENT": "default",
    }
    turn_vars = {"TURNKIT_SESSION_ID": session_id, "TURNKIT_TURN_ID": turn_id}
    assert editor.given == [{**layers, **turn_vars}, layers]
    pipeline = {"DROPPED": None}
    final = {name: text for name, text in layers.items() if name not in pipeline}
    assert in_turn == {**final, **turn_vars, "FROM_PLUGIN": session_id}
    assert outside == {**final, "FROM_PLUGIN": "no turn"}
    assert "SHELL_TEST_HOST_SECRET" not in in_turn and "HOME" not in in_turn


class BadEnv:
    @hookimpl
    def shell_env(self, env: dict[str, str]) -> dict[str, Any]:
        return {**env, "NUMBER": 3}


async def test_a_pipeline_giving_a_non_string_value_fails_the_command(tmp_path: Path, root: Path) -> None:
    async with shell_agent(tmp_path, root, plugins={"bad": BadEnv()}, allow=["env"]) as agent:
        result = await agent.invoke("shell.exec", {"argv": ["env"]})
    assert not result.ok
    assert "shell_env gave 'NUMBER': 3; names and values must be strings" in (result.error or "")


# ------------------------------------------------------------------ exec: timeouts, output, effect

#: Starts a grandchild (``sleep``), prints its pid, and waits for it.
GRANDCHILD = ["sh", "-c", "sleep 60 & echo $!; wait"]


async def test_a_timeout_kills_the_whole_process_group(tmp_path: Path, root: Path) -> None:
    recorder = ExitRecorder()
    async with shell_agent(tmp_path, root, plugins={"rec": recorder}, allow=["sh"], kill_grace=1.0) as agent:
        ran = value(await agent.invoke("shell.exec", {"argv": GRANDCHILD, "timeout": 0.5}))
        grandchild = int(ran["stdout"])
        await wait_gone(grandchild)
        await agent.dispatcher.drain()
    assert ran["timed_out"] is True
    assert ran["exit_code"] == -15, "SIGTERM ended the group within the grace period"
    [exit] = recorder.exits
    assert (exit["argv"], exit["exit_code"], exit["timed_out"]) == (GRANDCHILD, -15, True)


async def test_a_group_ignoring_sigterm_is_killed_after_the_grace_period(tmp_path: Path, root: Path) -> None:
    stubborn = ["sh", "-c", "trap '' TERM; sleep 60 & echo $!; wait"]  # the ignored TERM is inherited
    async with shell_agent(tmp_path, root, allow=["sh"], kill_grace=0.3) as agent:
        ran = value(await agent.invoke("shell.exec", {"argv": stubborn, "timeout": 0.3}))
        await wait_gone(int(ran["stdout"]))
    assert (ran["exit_code"], ran["timed_out"]) == (-9, True)


async def test_what_a_finished_command_left_running_is_ended_with_it(tmp_path: Path, root: Path) -> None:
    async with shell_agent(tmp_path, root, allow=["sh"]) as agent:
        ran = value(await agent.invoke("shell.exec", {"argv": ["sh", "-c", "sleep 60 & echo $!"]}))
        await wait_gone(int(ran["stdout"]))
    assert (ran["exit_code"], ran["timed_out"]) == (0, False)


async def test_output_over_the_cap_is_truncated_with_a_marker(tmp_path: Path, root: Path) -> None:
    full = "".join(f"{n}\n" for n in range(1, 10_001))
    async with shell_agent(tmp_path, root, allow=["seq", "echo"], max_output=100) as agent:
        long = value(await agent.invoke("shell.exec", {"argv": ["seq", "10000"]}))
        short = value(await agent.invoke("shell.exec", {"argv": ["echo", "short"]}))
    marker = f"\n[output truncated: {len(full) - 100} bytes dropped over max_output = 100]\n"
    assert long["stdout"] == full[:100] + marker
    assert (long["truncated"], long["exit_code"]) == (True, 0)
    assert (short["stdout"], short["truncated"]) == ("short\n", False)


async def test_stdin_and_stderr_and_the_exit_code(tmp_path: Path, root: Path) -> None:
    recorder = ExitRecorder()
    script = "read line; echo got $line; echo oops >&2; exit 3"
    async with shell_agent(tmp_path, root, plugins={"rec": recorder}, allow=["sh"]) as agent:
        ran = value(await agent.invoke("shell.exec", {"argv": ["sh", "-c", script], "stdin": "hello\n"}))
        await agent.dispatcher.drain()
    assert {k: ran[k] for k in ("exit_code", "stdout", "stderr", "timed_out", "truncated")} == {
        "exit_code": 3,
        "stdout": "got hello\n",
        "stderr": "oops\n",
        "timed_out": False,
        "truncated": False,
    }
    [exit] = recorder.exits
    assert exit["cwd"] == str(root.resolve()) and exit["turn"] is None and exit["duration"] >= 0


# ------------------------------------------------------------------ as a tool


async def test_the_model_calls_shell_exec_as_a_tool(tmp_path: Path, root: Path) -> None:
    recorder = ExitRecorder()
    script = [
        {"tool": "shell.exec", "args": {"argv": ["echo", "hi"]}},
        {"tool": "shell.exec", "args": {"argv": ["rm", "-rf", "/"]}},
        {"text": "done"},
    ]
    async with shell_agent(
        tmp_path, root, plugins={"rec": recorder}, allow=["echo"], model={"script": script}
    ) as agent:
        result = await agent.send("say hi")
        assert result.turn.status == "completed", result.turn.error
        history = await agent.sessions.history(result.turn.session_id)
        await agent.dispatcher.drain()
    assert [m.role for m in history] == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    [ok] = [b for b in history[2].blocks if isinstance(b, ToolOutputBlock)]
    [denied] = [b for b in history[4].blocks if isinstance(b, ToolOutputBlock)]
    assert ok.tool_call_id == history[1].tool_calls[0].tool_call_id and not ok.is_error
    assert json.loads(ok.output)["stdout"] == "hi\n"
    assert denied.is_error and "'rm' (/usr/bin/rm) is not allowed by" in denied.output
    [exit] = recorder.exits
    assert exit["turn"].turn_id == result.turn.turn_id, "the effect names the turn that asked"


# ------------------------------------------------------------------ long-running processes


async def test_start_write_read_wait_close_round_trip(tmp_path: Path, root: Path) -> None:
    recorder = ExitRecorder()
    async with shell_agent(tmp_path, root, plugins={"rec": recorder}, allow=["cat"]) as agent:
        started = value(await agent.invoke("shell.start", {"argv": ["cat"]}))
        pid = started["id"]
        assert started["running"] is True and started["argv"] == ["cat"]

        assert value(await agent.invoke("shell.write", {"id": pid, "data": "hello\n"}))["written"] == 6
        echoed = value(await agent.invoke("shell.read", {"id": pid, "timeout": 5}))
        assert (echoed["stdout"], echoed["running"]) == ("hello\n", True)
        assert value(await agent.invoke("shell.read", {"id": pid}))["stdout"] == "", "read consumes"

        await agent.invoke("shell.write", {"id": pid, "data": "bye", "eof": True})
        waited = value(await agent.invoke("shell.wait", {"id": pid, "timeout": 5}))
        assert (waited["running"], waited["exit_code"]) == (False, 0)
        [listed] = value(await agent.invoke("shell.status", {}))
        assert listed["id"] == pid and listed["running"] is False

        closed = value(await agent.invoke("shell.close", {"id": pid}))
        assert (closed["stdout"], closed["exit_code"]) == ("bye", 0)
        assert value(await agent.invoke("shell.status", {})) == []
        unknown = await agent.invoke("shell.read", {"id": pid})
        assert f"no process {pid!r}" in (unknown.error or "")
        await agent.dispatcher.drain()
    [exit] = recorder.exits
    assert (exit["argv"], exit["exit_code"], exit["timed_out"]) == (["cat"], 0, False)


async def test_a_character_split_between_reads_arrives_whole(tmp_path: Path, root: Path) -> None:
    split = ["sh", "-c", "printf '\\303'; sleep 0.2; printf '\\251 done'"]  # é is C3 A9 in UTF-8
    async with shell_agent(tmp_path, root, allow=["sh"]) as agent:
        started = value(await agent.invoke("shell.start", {"argv": split}))
        reads = []
        while not reads or reads[-1]["running"]:
            reads.append(value(await agent.invoke("shell.read", {"id": started["id"], "timeout": 5})))
        last = value(await agent.invoke("shell.close", {"id": started["id"]}))
    text = "".join(r["stdout"] for r in [*reads, last])
    assert text == "\u00e9 done", "half a character is kept for the next read, not replaced"


async def test_close_ends_the_process_and_everything_it_started(tmp_path: Path, root: Path) -> None:
    async with shell_agent(tmp_path, root, allow=["sh"], max_processes=1) as agent:
        started = value(await agent.invoke("shell.start", {"argv": GRANDCHILD}))
        grandchild = int(
            value(await agent.invoke("shell.read", {"id": started["id"], "timeout": 5}))["stdout"]
        )
        second = await agent.invoke("shell.start", {"argv": ["sh"]})
        assert "1 processes are kept already ([service.shell] max_processes)" in (second.error or "")

        closed = value(await agent.invoke("shell.close", {"id": started["id"]}))
        assert closed["running"] is False and closed["exit_code"] == -15
        await wait_gone(grandchild)


async def test_stopping_the_agent_ends_its_processes(tmp_path: Path, root: Path) -> None:
    async with shell_agent(tmp_path, root, allow=["sh"]) as agent:
        started = value(await agent.invoke("shell.start", {"argv": GRANDCHILD}))
        grandchild = int(
            value(await agent.invoke("shell.read", {"id": started["id"], "timeout": 5}))["stdout"]
        )
    await wait_gone(started["pid"])
    await wait_gone(grandchild)


async def test_a_session_reaches_only_the_processes_it_started(tmp_path: Path, root: Path) -> None:
    script = [
        {"tool": "shell.start", "args": {"argv": ["cat"]}},
        {"text": "started"},
        {"tool": "shell.status", "args": {}},
        {"tool": "shell.read", "args": {"id": "proc-1"}},
        {"text": "looked"},
    ]
    async with shell_agent(tmp_path, root, allow=["cat"], model={"script": script}) as agent:
        first = await agent.send("start cat")
        second = await agent.send("what runs?")
        history = await agent.sessions.history(second.turn.session_id)
        [listed, read] = [b for m in history for b in m.blocks if isinstance(b, ToolOutputBlock)]
        assert json.loads(listed.output) == []
        assert read.is_error and "no process 'proc-1' (running or unclosed: none)" in read.output
        [owned] = value(await agent.invoke("shell.status", {}))
    assert owned["session_id"] == first.turn.session_id != second.turn.session_id


# ------------------------------------------------------------------ the command line


def test_turnkit_shell_exec_from_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "turnkit.toml").write_text('[store]\nurl = "t.db"\n\n[service.shell]\nallow = ["echo"]\n')
    ran = run_turnkit("shell", "exec", "--", "echo", "hi", "; rm -rf .", cwd=tmp_path, timeout=60)
    assert ran.returncode == 0, str(ran)
    assert {k: v for k, v in ran.json().items() if k != "duration"} == {
        "exit_code": 0,
        "stdout": "hi ; rm -rf .\n",
        "stderr": "",
        "timed_out": False,
        "truncated": False,
    }
    denied = run_turnkit("--config", str(tmp_path / "turnkit.toml"), "shell", "exec", "--", "ls", timeout=60)
    assert denied.returncode == 1, str(denied)
    assert "'ls' (/usr/bin/ls) is not allowed by [service.shell] allow = ['echo']" in denied.stderr
    assert (tmp_path / "turnkit.toml").exists(), "the '; rm -rf .' argument stayed an argument"
