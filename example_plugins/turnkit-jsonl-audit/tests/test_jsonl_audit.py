"""Tests of turnkit-jsonl-audit: the plugin registered with pluggy against the contract.

Only the contract (``turnkit_hookspecs``) and pluggy are used, never the
runtime: the hooks are called through a ``pluggy.PluginManager("turnkit")``
holding the contract's own hookspecs, with real ``TurnInfo``, ``Message``
and ``Deny`` objects, and the audit file is read back line by line.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from importlib.metadata import PackageNotFoundError, distribution, entry_points
from pathlib import Path
from typing import Any

import pluggy
import pytest
import turnkit_jsonl_audit
from turnkit_hookspecs import (
    CORE_HOOKSPECS,
    PROJECT_NAME,
    Deny,
    ImageBlock,
    Kind,
    Message,
    TextBlock,
    ToolCallBlock,
    TurnInfo,
    UrlSource,
    hookimpl,
    kind_of,
)
from turnkit_jsonl_audit import (
    AUDIT_FILE_ENV,
    DEFAULT_AUDIT_FILE,
    AuditWriteError,
    JsonlAuditPlugin,
    append_record,
    audit_file,
    audit_record,
    encode_line,
    timestamp,
)

PROJECT_DIR = Path(__file__).resolve().parents[1]
PLUGIN_NAME = "jsonl-audit"
POINTS = ("turn_completed", "turn_denied", "turn_failed")

# ------------------------------------------------------------------ fixtures and helpers


@pytest.fixture
def audit_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The audit file of the test, named by the environment variable (not created yet)."""
    path = tmp_path / "audit.jsonl"
    monkeypatch.setenv(AUDIT_FILE_ENV, str(path))
    return path


@pytest.fixture
def plugin() -> JsonlAuditPlugin:
    """The plugin as the entry point makes it, not configured: the variable names the file."""
    return JsonlAuditPlugin()


@pytest.fixture
def manager(plugin: JsonlAuditPlugin) -> pluggy.PluginManager:
    """A plugin manager of the ``turnkit`` project with the contract and this plugin, as turnkit loads it."""
    pm = pluggy.PluginManager(PROJECT_NAME)
    for hookspecs in CORE_HOOKSPECS:
        pm.add_hookspecs(hookspecs)
    pm.register(plugin, name=PLUGIN_NAME)
    pm.check_pending()
    return pm


def make_turn(status: str = "completed", number: int = 1, **kwargs: Any) -> TurnInfo:
    """A finished turn as the runtime hands it to the effects (its status already committed)."""
    fields: dict[str, Any] = {
        "turn_id": f"turn-{number}",
        "session_id": "session-1",
        "number": number,
        "initiator": "user",
        "initiator_id": "ann",
        "status": status,
        **kwargs,
    }
    return TurnInfo(**fields)


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every line of the file as a JSON object; fails on a partial or an empty line."""
    data = path.read_bytes().decode("utf-8")
    assert data.endswith("\n"), "the last record is not terminated"
    records = []
    for line in data[:-1].split("\n"):
        record = json.loads(line)
        assert isinstance(record, dict)
        records.append(record)
    return records


def check_time(value: str, before: datetime, after: datetime) -> None:
    assert value.endswith("Z")
    moment = datetime.fromisoformat(value)
    assert moment.utcoffset() == timedelta(0)
    # the stamp has millisecond precision: compare at that precision
    assert before - timedelta(milliseconds=1) <= moment <= after


def run_effect(pm: pluggy.PluginManager, point: str, **kwargs: Any) -> list[tuple[str, BaseException]]:
    """Call every implementation of an effect point the way the contract says turnkit does.

    All of them run; one that raises is isolated (here: collected with the
    plugin's name) and the others still run. Returns the isolated failures.
    """
    failures: list[tuple[str, BaseException]] = []
    for impl in getattr(pm.hook, point).get_hookimpls():
        try:
            impl.function(**{name: kwargs[name] for name in impl.argnames})
        except Exception as exc:
            failures.append((impl.plugin_name, exc))
    return failures


# ------------------------------------------------------------------ the plugin as turnkit sees it


def test_plugin_validates_against_the_contract(
    manager: pluggy.PluginManager, plugin: JsonlAuditPlugin
) -> None:
    """pluggy accepts the plugin and binds exactly the three end-of-turn effects to the contract."""
    callers = manager.get_hookcallers(plugin)
    assert callers is not None
    assert {caller.name for caller in callers} == set(POINTS)
    for point in POINTS:
        caller = getattr(manager.hook, point)
        spec = kind_of(caller.spec.function)
        assert spec is not None
        assert spec.kind is Kind.EFFECT
        [impl] = caller.get_hookimpls()
        assert impl.function == getattr(plugin, point)
        assert impl.plugin_name == PLUGIN_NAME


def test_entry_point_is_declared() -> None:
    """pyproject declares the plugin class, depending on the contract (and attrs) only."""
    project = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["entry-points"]["turnkit.plugins"] == {PLUGIN_NAME: "turnkit_jsonl_audit:JsonlAuditPlugin"}
    module, _, name = project["entry-points"]["turnkit.plugins"][PLUGIN_NAME].partition(":")
    assert getattr(importlib.import_module(module), name) is JsonlAuditPlugin
    assert project["dependencies"] == ["turnkit-hookspecs>=0.1.3,<0.2", "attrs>=23.1"]


def test_entry_point_is_registered() -> None:
    """Installed, the distribution exposes the entry point turnkit discovers."""
    try:
        distribution("turnkit-jsonl-audit")
    except PackageNotFoundError:
        pytest.skip("turnkit-jsonl-audit is not installed (tests run from the source tree)")
    [entry_point] = entry_points(group="turnkit.plugins", name=PLUGIN_NAME)
    assert entry_point.value == "turnkit_jsonl_audit:JsonlAuditPlugin"
    assert entry_point.load() is JsonlAuditPlugin
    assert entry_point.dist is not None
    assert entry_point.dist.name == "turnkit-jsonl-audit"


# ------------------------------------------------------------------ one record per finished turn


def test_completed_turn(manager: pluggy.PluginManager, audit_path: Path) -> None:
    turn = make_turn("completed", number=3)
    message = Message.of("user", "What time is it in Tokyo?", author="ann")
    reply = Message.of("assistant", "It is 21:00 in Tokyo.")

    before = datetime.now(UTC)
    results = manager.hook.turn_completed(ctx=None, turn=turn, message=message, reply=reply)
    after = datetime.now(UTC)

    assert results == []  # effects return nothing (pluggy drops None results)
    [record] = read_records(audit_path)
    check_time(record.pop("time"), before, after)
    assert record == {
        "session_id": "session-1",
        "turn_id": "turn-3",
        "number": 3,
        "status": "completed",
        "initiator": "user",
        "initiator_id": "ann",
        "message": "What time is it in Tokyo?",
        "reply": "It is 21:00 in Tokyo.",
    }


def test_denied_turn(manager: pluggy.PluginManager, audit_path: Path) -> None:
    turn = make_turn("denied", number=2, error="denied by allowlist: only alice and bob")
    message = Message.of("user", "let me in")
    deny = Deny("only alice and bob", plugin="allowlist")

    before = datetime.now(UTC)
    manager.hook.turn_denied(ctx=None, turn=turn, message=message, deny=deny)
    after = datetime.now(UTC)

    [record] = read_records(audit_path)
    check_time(record.pop("time"), before, after)
    assert record == {
        "session_id": "session-1",
        "turn_id": "turn-2",
        "number": 2,
        "status": "denied",
        "initiator": "user",
        "initiator_id": "ann",
        "message": "let me in",
        "deny": {"reason": "only alice and bob", "plugin": "allowlist"},
    }


def test_failed_turn(manager: pluggy.PluginManager, audit_path: Path) -> None:
    turn = make_turn("failed", number=5, initiator="system", initiator_id=None)
    message = Message.of("user", "summarise the report")
    error = "ModelError: the model endpoint answered 503"

    before = datetime.now(UTC)
    manager.hook.turn_failed(ctx=None, turn=turn, message=message, error=error)
    after = datetime.now(UTC)

    [record] = read_records(audit_path)
    check_time(record.pop("time"), before, after)
    assert record == {
        "session_id": "session-1",
        "turn_id": "turn-5",
        "number": 5,
        "status": "failed",
        "initiator": "system",
        "initiator_id": None,
        "message": "summarise the report",
        "error": "ModelError: the model endpoint answered 503",
    }


def test_records_are_appended_in_order(manager: pluggy.PluginManager, audit_path: Path) -> None:
    audit_path.write_text('{"kept": true}\n', encoding="utf-8")
    message = Message.of("user", "hi")

    manager.hook.turn_completed(
        ctx=None, turn=make_turn("completed", 1), message=message, reply=Message.of("assistant", "hello")
    )
    manager.hook.turn_denied(ctx=None, turn=make_turn("denied", 2), message=message, deny=Deny("no"))
    manager.hook.turn_failed(ctx=None, turn=make_turn("failed", 3), message=message, error="boom")

    records = read_records(audit_path)
    assert records[0] == {"kept": True}
    assert [(r["number"], r["status"]) for r in records[1:]] == [
        (1, "completed"),
        (2, "denied"),
        (3, "failed"),
    ]
    assert records[2]["deny"] == {"reason": "no", "plugin": None}
    assert [r["time"] for r in records[1:]] == sorted(r["time"] for r in records[1:])


def test_only_text_blocks_are_recorded(manager: pluggy.PluginManager, audit_path: Path) -> None:
    message = Message(
        "user",
        (
            TextBlock("Here is the receipt:"),
            ImageBlock(UrlSource("https://example.org/receipt.png"), alt="receipt"),
            TextBlock("please file it."),
        ),
    )
    reply = Message("assistant", (ToolCallBlock("call-1", "memory.store", {"key": "receipt"}),))

    manager.hook.turn_completed(ctx=None, turn=make_turn(), message=message, reply=reply)

    [record] = read_records(audit_path)
    assert record["message"] == "Here is the receipt:\nplease file it."
    assert record["reply"] == ""


def test_line_breaks_and_unicode_stay_on_one_line(manager: pluggy.PluginManager, audit_path: Path) -> None:
    text = 'Grüße aus 東京 🌸\nline two\r\nthree\u2028four\u2029five\x85six\tand "quotes" \\ \x00'
    manager.hook.turn_completed(
        ctx=None, turn=make_turn(), message=Message.of("user", text), reply=Message.of("assistant", text)
    )

    data = audit_path.read_bytes()
    assert data.count(b"\n") == 1
    assert len(data.decode("utf-8").splitlines()) == 1  # splitlines also breaks on \u2028, \x85 ...
    assert "Grüße aus 東京 🌸".encode() in data  # readable, not \u-escaped
    [record] = read_records(audit_path)
    assert record["message"] == text
    assert record["reply"] == text


# ------------------------------------------------------------------ the file: configuration


def test_default_file_is_in_the_working_directory(
    manager: pluggy.PluginManager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(AUDIT_FILE_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert audit_file() == Path(DEFAULT_AUDIT_FILE) == Path("turnkit-audit.jsonl")

    manager.hook.turn_failed(ctx=None, turn=make_turn("failed"), message=Message.of("user", "x"), error="e")

    assert [r["error"] for r in read_records(tmp_path / "turnkit-audit.jsonl")] == ["e"]


def test_empty_variable_means_the_default() -> None:
    assert audit_file({AUDIT_FILE_ENV: ""}) == Path(DEFAULT_AUDIT_FILE)
    assert audit_file({}) == Path(DEFAULT_AUDIT_FILE)


def test_home_is_expanded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("USERPROFILE", str(tmp_path))
    assert audit_file({AUDIT_FILE_ENV: "~/logs/audit.jsonl"}) == tmp_path / "logs" / "audit.jsonl"


def test_variable_is_read_at_every_write(
    manager: pluggy.PluginManager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    message = Message.of("user", "x")
    for name in ("first.jsonl", "second.jsonl"):
        monkeypatch.setenv(AUDIT_FILE_ENV, str(tmp_path / name))
        manager.hook.turn_failed(ctx=None, turn=make_turn("failed"), message=message, error=name)

    assert [r["error"] for r in read_records(tmp_path / "first.jsonl")] == ["first.jsonl"]
    assert [r["error"] for r in read_records(tmp_path / "second.jsonl")] == ["second.jsonl"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_a_new_file_is_readable_by_its_owner_only(audit_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        append_record({"n": 1})
    finally:
        os.umask(previous)
    assert audit_path.stat().st_mode & 0o777 == 0o600


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_an_existing_file_keeps_its_permissions(audit_path: Path) -> None:
    audit_path.touch(mode=0o640)
    audit_path.chmod(0o640)
    append_record({"n": 1})
    assert audit_path.stat().st_mode & 0o777 == 0o640


# ------------------------------------------------------------------ concurrency


def test_concurrent_turns_write_whole_lines(manager: pluggy.PluginManager, audit_path: Path) -> None:
    """Many threads finishing turns at once, as the runtime's effect workers do: no line interleaves."""
    threads, per_thread = 16, 40
    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def text_of(worker: int, n: int) -> str:
        # some lines far larger than a file buffer (8 KiB), most small
        size = 100_000 if n % 10 == 0 else 40 + n
        return f"<{worker}:{n}>" + chr(ord("a") + worker) * size

    def work(worker: int) -> None:
        try:
            start.wait()
            for n in range(per_thread):
                turn = make_turn("completed", number=n, session_id=f"session-{worker}")
                message = Message.of("user", text_of(worker, n))
                manager.hook.turn_completed(
                    ctx=None, turn=turn, message=message, reply=Message.of("assistant", f"ok {worker}:{n}")
                )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(worker,)) for worker in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=120)
    assert not errors
    assert not any(thread.is_alive() for thread in pool)

    records = read_records(audit_path)
    assert len(records) == threads * per_thread
    seen = set()
    for record in records:
        worker = int(record["session_id"].removeprefix("session-"))
        n = record["number"]
        assert record["message"] == text_of(worker, n)
        assert record["reply"] == f"ok {worker}:{n}"
        seen.add((worker, n))
    assert seen == {(w, n) for w in range(threads) for n in range(per_thread)}
    # per thread, the records are in the order that thread wrote them
    for worker in range(threads):
        mine = [r["number"] for r in records if r["session_id"] == f"session-{worker}"]
        assert mine == list(range(per_thread))


CHILD = """\
import sys
from turnkit_jsonl_audit import append_record
worker, count, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
for n in range(count):
    append_record({"worker": worker, "n": n, "text": str(worker) * size})
"""


@pytest.mark.skipif(os.name != "posix", reason="append-mode atomicity of a local POSIX file system")
def test_concurrent_processes_append_whole_lines(audit_path: Path) -> None:
    """Several agent processes sharing one file: each line lands whole, by one append."""
    source = str(Path(turnkit_jsonl_audit.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([source, os.environ.get("PYTHONPATH", "")])}
    processes, count, size = 4, 150, 20_000
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(worker), str(count), str(size)],
            env=env,
            stderr=subprocess.PIPE,
        )
        for worker in range(processes)
    ]
    for child in children:
        _, stderr = child.communicate(timeout=120)
        assert child.returncode == 0, stderr.decode()

    records = read_records(audit_path)
    assert len(records) == processes * count
    for record in records:
        assert record["text"] == str(record["worker"]) * size
    assert {(r["worker"], r["n"]) for r in records} == {
        (w, n) for w in range(processes) for n in range(count)
    }


# ------------------------------------------------------------------ a file that cannot be written


def _is_a_directory(tmp_path: Path) -> Path:
    return tmp_path


def _parent_is_a_file(tmp_path: Path) -> Path:
    (tmp_path / "plain-file").write_text("not a folder")
    return tmp_path / "plain-file" / "audit.jsonl"


def _parent_is_missing(tmp_path: Path) -> Path:
    return tmp_path / "no-such-folder" / "audit.jsonl"


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder without write permission; skips where permissions are not enforced (e.g. root)."""
    if os.name != "posix":
        pytest.skip("POSIX permissions")
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        try:
            (folder / "probe").touch()
        except PermissionError:
            yield folder
        else:
            pytest.skip("this user may write a read-only folder (root with CAP_DAC_OVERRIDE)")
    finally:
        folder.chmod(0o755)


UNWRITABLE = [
    pytest.param(_is_a_directory, id="path-is-a-directory"),
    pytest.param(_parent_is_a_file, id="parent-is-a-file"),
    pytest.param(_parent_is_missing, id="parent-is-missing"),
]


@pytest.mark.parametrize("unwritable", UNWRITABLE)
def test_unwritable_path_raises_a_clear_error(
    manager: pluggy.PluginManager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unwritable: Any
) -> None:
    path = unwritable(tmp_path)
    monkeypatch.setenv(AUDIT_FILE_ENV, str(path))

    with pytest.raises(AuditWriteError) as raised:
        manager.hook.turn_completed(
            ctx=None, turn=make_turn(), message=Message.of("user", "hi"), reply=Message.of("assistant", "yo")
        )

    error: AuditWriteError = raised.value
    assert isinstance(error, OSError)  # what callers catching file errors expect
    assert error.path == path
    assert str(path) in str(error)
    assert "turnkit-jsonl-audit" in str(error)
    assert AUDIT_FILE_ENV in str(error)
    assert isinstance(error.__cause__, OSError)
    assert error.__cause__.strerror is not None
    assert error.__cause__.strerror in str(error)
    assert not path.is_file()


def test_read_only_folder_raises_a_clear_error(
    manager: pluggy.PluginManager, read_only_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = read_only_folder / "audit.jsonl"
    monkeypatch.setenv(AUDIT_FILE_ENV, str(path))

    with pytest.raises(AuditWriteError) as raised:
        manager.hook.turn_failed(
            ctx=None, turn=make_turn("failed"), message=Message.of("user", "x"), error="e"
        )

    cause = raised.value.__cause__
    assert isinstance(cause, PermissionError)
    assert f"{str(path)!r}: {cause.strerror}" in str(raised.value)
    assert not path.exists()


def test_failure_is_isolated_and_the_plugin_recovers(
    manager: pluggy.PluginManager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unwritable file fails this effect only: other effects run, later turns are recorded."""

    class Witness:
        def __init__(self) -> None:
            self.seen: list[int] = []

        @hookimpl
        def turn_completed(self, turn: TurnInfo) -> None:
            self.seen.append(turn.number)

    witness = Witness()
    # registered after the plugin: run_effect calls it after the failing implementation
    manager.register(witness, name="zz-witness")
    monkeypatch.setenv(AUDIT_FILE_ENV, str(tmp_path))  # a directory
    kwargs = {"ctx": None, "message": Message.of("user", "hi"), "reply": Message.of("assistant", "yo")}

    failures = run_effect(manager, "turn_completed", turn=make_turn(number=1), **kwargs)

    [(plugin, error)] = failures
    assert plugin == PLUGIN_NAME
    assert isinstance(error, AuditWriteError)
    assert witness.seen == [1]

    # the write lock was released: the next turn, from another thread, is recorded once the path is fixed
    good = tmp_path / "audit.jsonl"
    monkeypatch.setenv(AUDIT_FILE_ENV, str(good))
    done: list[list[tuple[str, BaseException]]] = []
    thread = threading.Thread(
        target=lambda: done.append(run_effect(manager, "turn_completed", turn=make_turn(number=2), **kwargs))
    )
    thread.start()
    thread.join(timeout=10)
    assert done == [[]]
    assert [r["number"] for r in read_records(good)] == [2]
    assert witness.seen == [1, 2]


# ------------------------------------------------------------------ the library functions


def test_audit_record_holds_only_the_outcome_given() -> None:
    turn = make_turn("completed")
    at = datetime(2025, 3, 1, 13, 0, 5, 250000, tzinfo=timezone(timedelta(hours=1)))
    record = audit_record(turn, Message.of("user", "hi"), time=at)
    assert record == {
        "time": "2025-03-01T12:00:05.250Z",
        "session_id": "session-1",
        "turn_id": "turn-1",
        "number": 1,
        "status": "completed",
        "initiator": "user",
        "initiator_id": "ann",
        "message": "hi",
    }
    assert next(iter(record)) == "time"


def test_timestamp_is_utc_with_milliseconds() -> None:
    assert timestamp(datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2025-01-02T03:04:05.000Z"
    assert timestamp(datetime(2025, 1, 2, 3, 4, 5, 999999, tzinfo=UTC)) == "2025-01-02T03:04:05.999Z"
    now = datetime.fromisoformat(timestamp())
    assert abs(datetime.now(UTC) - now) < timedelta(seconds=5)


def test_encode_line_is_one_utf8_line() -> None:
    line = encode_line({"a": "x\ny", "b": "ü"})
    assert line == '{"a": "x\\ny", "b": "ü"}\n'.encode()
    with pytest.raises(ValueError):
        encode_line({"nan": float("nan")})


def test_append_record_to_an_explicit_path(tmp_path: Path, audit_path: Path) -> None:
    other = tmp_path / "other.jsonl"
    assert append_record({"n": 1}, other) == other
    assert append_record({"n": 2}, str(other)) == other
    assert append_record({"n": 3}) == audit_path
    assert read_records(other) == [{"n": 1}, {"n": 2}]
    assert read_records(audit_path) == [{"n": 3}]
