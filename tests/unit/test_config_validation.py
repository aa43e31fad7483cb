"""Every setting is checked when the file is read: a value out of its range, or a file that cannot
be read at all, is one line naming the file, the key and what is allowed.

The reproductions of the issue come first; then a sweep over every numeric setting of every
table, so that a setting added without a range fails here.
"""

from __future__ import annotations

import os
import tomllib
import typing
from pathlib import Path

import attrs
import pytest
from turnkit import ConfigError, TurnkitError
from turnkit.agent import Agent
from turnkit.config import Config, PluginsConfig, StoreConfig, load_config

from tests.support.dists import run_turnkit
from tests.support.markdown import blocks

README = Path(__file__).resolve().parents[2] / "README.md"

RANGE_ERRORS = [
    # the reproductions: each was accepted before
    ("[plugins]\neffect_workers = 0\n", "must be ≥ 1, got 0 @ $.plugins.effect_workers"),
    ("[plugins]\neffect_workers = -1\n", "must be ≥ 1, got -1 @ $.plugins.effect_workers"),
    (
        "[plugins]\neffect_workers = 1000000000000000000\n",
        "must be ≤ 1024, got 1000000000000000000 @ $.plugins.effect_workers",
    ),
    ("[turns]\ninbox_poll = -1\n", "must be ≥ 0.01, got -1.0 @ $.turns.inbox_poll"),
    ("[turns]\nkeep_recent = -1\n", "must be ≥ 0, got -1 @ $.turns.keep_recent"),
    ("[store]\nbusy_timeout = 1e18\n", "must be ≤ 86400, got 1e+18 @ $.store.busy_timeout"),
    (
        "[plugins.timeouts]\nturn_completed = nan\n",
        "must be a finite number, got nan @ $.plugins.timeouts['turn_completed']",
    ),
    # and their neighbours
    ("[plugins]\nguard_timeout = 0\n", "must be > 0, got 0.0 @ $.plugins.guard_timeout"),
    ("[plugins]\nwatchdog = inf\n", "must be a finite number, got inf @ $.plugins.watchdog"),
    ("[plugins]\neffect_queue = 0\n", "must be ≥ 1, got 0 @ $.plugins.effect_queue"),
    ("[store]\nheartbeat = 20\n", "must be < lease (15.0), got 20.0 @ $.store.heartbeat"),
    ("[store]\npool_size = 1\n", "must be ≥ 2, got 1 @ $.store.pool_size"),
    ("[store]\ngroup_commit = 2\n", "must be ≤ 1, got 2.0 @ $.store.group_commit"),
    ("[store]\ngroup_commit = -0.001\n", "must be ≥ 0, got -0.001 @ $.store.group_commit"),
    ("[model]\ncontext_windows = { big = 0 }\n", "must be ≥ 1, got 0 @ $.model.context_windows['big']"),
    ('[agent]\nid = " "\n', "must not be empty @ $.agent.id"),
    ('[store]\nurl = ""\n', "must not be empty @ $.store.url"),
    ('[store]\nurl = "a\\u0000b"\n', "must not contain control characters, got 'a\\x00b' @ $.store.url"),
    (
        '[[model.script]]\ntext = "hi"\ntool = "calc.add"\n',
        "give text or tool, not both @ $.model.script[0].tool",
    ),
    (
        '[services]\nrequired = ["chat"]\ndisabled = ["chat"]\n',
        "'chat' is required, it cannot be disabled @ $.services.disabled[0]",
    ),
    # the value itself stays out of the message: it may be the secret
    (
        '[secrets]\nenv = ["TOKEN=hunter2"]\n',
        "has an '=': give the variable's name, not its value @ $.secrets.env[0]",
    ),
    (
        "[plugins.effect_timeouts]\nturn_completed = 1\n",
        "renamed [plugins] timeouts (it applies to every kind of point) @ $.plugins.effect_timeouts",
    ),
]


@pytest.mark.parametrize(("text", "problem"), RANGE_ERRORS)
def test_a_setting_out_of_range_is_one_line_naming_file_key_and_range(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "turnkit.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert str(caught.value) == f"{path}: {problem}"
    assert "hunter2" not in str(caught.value)


def test_the_readme_configuration_example_is_valid_and_shows_every_plugins_setting(tmp_path: Path) -> None:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("\n## Configuration\n") :]
    example = next(b.code for b in blocks(section) if b.language == "toml")
    path = tmp_path / "turnkit.toml"
    path.write_text(example)
    config = load_config(path, env={})
    shown = set(tomllib.loads(example)["plugins"])
    assert shown == {field.name for field in attrs.fields(PluginsConfig)}
    assert config.plugins.timeouts == {"turn_completed": 2.0, "turn_reply": 60.0}


def test_the_same_ranges_guard_configurations_built_in_code() -> None:
    with pytest.raises(ValueError, match="must be ≥ 1, got 0"):
        PluginsConfig(effect_workers=0)
    with pytest.raises(ValueError, match="must be < lease"):
        StoreConfig(lease=1.0, heartbeat=1.0)


def test_the_bounds_themselves_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "turnkit.toml"
    path.write_text(
        "[plugins]\ncall_workers = 1024\neffect_workers = 1\ninline_after = 0\nwatchdog = 0.01\n"
        "guard_timeout = 86400\n[plugins.timeouts]\nturn_completed = 0.05\n"
        "[turns]\nkeep_recent = 0\nmax_tool_steps = 0\ninbox_poll = 0.01\n"
        "[store]\npool_size = 2\nidempotency_keep = 31622400\n"
    )
    config = load_config(path, env={})
    assert (config.plugins.call_workers, config.turns.keep_recent, config.store.pool_size) == (1024, 0, 2)


def _numeric_settings() -> list[tuple[str, str, type, bool]]:
    """Every ``int`` and ``float`` setting of every table, and whether it is a mapping of them."""
    found = []
    for table in attrs.fields(Config):
        cls = typing.get_type_hints(Config)[table.name]
        if not attrs.has(cls):
            continue
        for name, hint in typing.get_type_hints(cls).items():
            if hint in (int, float):
                found.append((table.name, name, hint, False))
            elif typing.get_origin(hint) is dict and typing.get_args(hint)[1] in (int, float):
                found.append((table.name, name, typing.get_args(hint)[1], True))
    return found


NUMERIC = _numeric_settings()
#: Each numeric setting with values out of any sane range (floats only where the type takes them).
SWEEP = [
    pytest.param(table, key, mapping, value, id=f"{table}.{key}={value}")
    for table, key, kind, mapping in NUMERIC
    for value in ("-1", "1000000000000000000", *(("nan", "-inf") if kind is float else ()))
]


def test_the_sweep_sees_the_settings_of_every_table() -> None:
    tables = {table for table, *_ in NUMERIC}
    assert tables == {"store", "model", "turns", "plugins"}
    assert len(NUMERIC) >= 20


@pytest.mark.parametrize(("table", "key", "mapping", "value"), SWEEP)
def test_every_numeric_setting_has_a_range(
    tmp_path: Path, table: str, key: str, mapping: bool, value: str
) -> None:
    path = tmp_path / "turnkit.toml"
    assignment = f"{key} = {{ some = {value} }}" if mapping else f"{key} = {value}"
    path.write_text(f"[{table}]\n{assignment}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    message = str(caught.value)
    assert message.startswith(f"{path}: must be ")
    assert f"@ $.{table}.{key}" in message and "\n" not in message


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        # tomllib recurses once per level and raised RecursionError, a traceback
        (b"a = " + b"[" * 3000 + b"]" * 3000, "nested too deeply to read"),
        (b"a = " + b"{ b = " * 3000 + b"1" + b" }" * 3000, "nested too deeply to read"),
        (b'[agent]\nid = "\xff"\n', "not UTF-8 text (line 2: invalid start byte)"),
        (b"[plugin.x]\nrules = " + b"[" * 40 + b"]" * 40, "nested more than 32 tables or arrays deep"),
        (b'"a\\nb\\u001b[2J" = 1\n', "extra fields found (a\\nb\\x1b[2J) @ $"),
        (b"[turns]\nhistory = 1\nhistory = 2\n", "Cannot overwrite a value (at line 3, column 12)"),
    ],
)
def test_unreadable_contents_are_one_line_naming_the_file(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    path = tmp_path / "turnkit.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and problem in message
    assert "\n" not in message and "\x1b" not in message


def test_a_config_path_that_is_no_regular_file_is_refused_without_reading(tmp_path: Path) -> None:
    folder = tmp_path / "folder.toml"
    folder.mkdir()
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)  # reading it would block for ever
    for path in (folder, fifo, Path("/dev/zero")):
        with pytest.raises(ConfigError, match=f"^{path}: not a regular file$"):
            load_config(path, env={})


def test_an_implicit_config_file_that_is_a_folder_is_refused_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "turnkit.toml").mkdir()
    with pytest.raises(ConfigError, match="^turnkit.toml: not a regular file$"):
        load_config(env={})


# ---------------------------------------------------------------------- names checked at start
#
# What a name refers to is known only once services and plugins are loaded: the agent refuses
# to start, before it opens the store, naming the file and the key.


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "turnkit.toml"
    path.write_text(f'[store]\nurl = "t.db"\n{text}')
    return path


async def _refusal(path: Path) -> str:
    agent = Agent(path, env={})
    with pytest.raises(TurnkitError) as caught:
        await agent.start()
    await agent.stop()
    return str(caught.value)


async def test_a_required_service_that_is_not_installed_is_refused_naming_the_installed_ones(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path, '[services]\nrequired = ["chat", "nonexistent-service"]\n')
    message = await _refusal(path)
    assert message.startswith(f"{path}: service 'nonexistent-service' is not installed (installed services: ")
    assert "chat" in message and message.endswith(") @ $.services.required[1]")
    assert not (tmp_path / "t.db").exists(), "refused before the store is opened"


async def test_a_timeout_for_a_point_that_does_not_exist_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    path = _write(tmp_path, "[plugins.timeouts]\nchat_outbound = 1\nturn_complete = 2\n")
    message = await _refusal(path)
    assert message == (
        f"{path}: unknown extension point 'turn_complete' (did you mean 'turn_completed'?)"
        " @ $.plugins.timeouts['turn_complete']"
    ), "a point a service declares (chat_outbound) is a point too"


async def test_a_required_plugin_that_is_not_installed_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, '[plugins]\nrequired = ["nonexistent"]\n')
    message = await _refusal(path)
    assert message.startswith(f"{path}: required plugins not loaded — nonexistent: not installed (")


@pytest.mark.parametrize("where", ["file/x.db", "folder"])
async def test_a_store_that_cannot_be_opened_names_the_key_and_the_path(tmp_path: Path, where: str) -> None:
    (tmp_path / "file").write_text("not a folder")
    (tmp_path / "folder").mkdir()
    path = tmp_path / "turnkit.toml"
    path.write_text(f'[store]\nurl = "{where}"\n')
    message = await _refusal(path)
    assert message.startswith(f"{path}: ") and message.endswith(" @ $.store.url")
    assert str(tmp_path / where) in message and "\n" not in message


def test_turnkit_hooks_warns_of_timeouts_for_unknown_points(tmp_path: Path) -> None:
    path = _write(tmp_path, "[plugins.timeouts]\nturn_complete = 2\n")
    result = run_turnkit("--config", str(path), "hooks", "turn_completed", timeout=60)
    assert result.returncode == 0, result
    assert "warning: unknown extension point 'turn_complete'" in result.stderr
