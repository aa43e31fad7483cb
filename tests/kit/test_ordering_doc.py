"""docs/ordering.md, followed to the letter: what it shows is what turnkit does.

The page is run in document order, as a reader would follow it:

* a ``python`` block starting ``# <file>.py`` is saved as that file: on the
  ``PYTHONPATH`` of the commands, or, for a ``test_*.py`` file, run with
  pytest (and the ``turnkit_agent`` fixture) right away;
* a ``toml`` block starting ``# pyproject.toml`` installs that distribution:
  a ``.dist-info`` with its entry points, found by the runtime's real
  discovery like any pip-installed plugin;
* a ``toml`` block starting ``# turnkit.toml`` becomes the configuration file
  of the working folder;
* each ``$ turnkit …`` line of a ``console`` block runs in a subprocess, and
  what it prints (stdout, then stderr) must be the lines the page shows.

The order each ``turnkit hooks`` block states is also checked in-process
against ``PluginManager.implementations``, and the rules the page states in
prose (registration order plays no part, plugins before services before
defaults, wrappers, repeated names, warnings) are checked on the same plugins.
"""

from __future__ import annotations

import importlib
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from turnkit.config import ModelConfig, PluginsConfig, parse_config
from turnkit.defaults import DEFAULTS_NAME, install_defaults
from turnkit.discovery import LOAD_ENV, PLUGINS_GROUP
from turnkit.manager import PluginManager
from turnkit_hookspecs import Message, hookimpl

from tests.support.dists import CliResult, run_turnkit, subprocess_env

PAGE = Path(__file__).resolve().parents[2] / "docs" / "ordering.md"
TEXT = PAGE.read_text(encoding="utf-8")

#: Fenced blocks: (language, body).
BLOCKS: list[tuple[str, str]] = re.findall(r"^```(\w+)\n(.*?)^```$", TEXT, flags=re.M | re.S)


@attrs.frozen
class Command:
    """One ``$ turnkit …`` line of the page, with what it should print and the setup it runs in."""

    argv: tuple[str, ...]
    shown: str
    config: str | None
    #: Entry point names installed so far (the only plugins the command may load).
    plugins: tuple[str, ...]


@attrs.define
class Reader:
    """Follows the page in ``root``: ``site`` is on the commands' PYTHONPATH, ``work`` their folder."""

    root: Path
    config: str | None = None
    plugins: list[str] = attrs.field(factory=list)

    @property
    def site(self) -> Path:
        return self.root / "site"

    @property
    def work(self) -> Path:
        return self.root / "work"

    def follow(self, run: bool) -> list[Command]:
        """Set up every block in order; return the commands (running the page's test files if ``run``)."""
        self.site.mkdir(parents=True)
        self.work.mkdir()
        commands: list[Command] = []
        for language, body in BLOCKS:
            first = body.splitlines()[0]
            if language == "python" and (file := re.fullmatch(r"# (\w+\.py)", first)):
                self._python(file.group(1), body, run)
            elif language == "toml" and first.startswith("# pyproject.toml"):
                self._install(first, body)
            elif language == "toml" and first == "# turnkit.toml":
                self.config = body
            elif language == "console":
                commands += self._commands(body)
        assert commands, f"{PAGE.name} shows no turnkit command"
        return commands

    def _python(self, name: str, body: str, run: bool) -> None:
        if not name.startswith("test_"):
            (self.site / name).write_text(body, encoding="utf-8")
            return
        (self.work / name).write_text(body, encoding="utf-8")
        if run:
            result = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", name],
                cwd=self.work,
                env=subprocess_env([self.site]),
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert result.returncode == 0, f"{PAGE.name}: {name} fails\n{result.stdout}{result.stderr}"

    def _install(self, first: str, body: str) -> None:
        named = re.search(r"distribution ([\w.-]+)", first)
        assert named, f"{PAGE.name}: a pyproject.toml block must name its distribution: {first!r}"
        distribution = named.group(1)
        entry_points = tomllib.loads(body)["project"]["entry-points"][PLUGINS_GROUP]
        info = self.site / f"{distribution.replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 1.0\n", encoding="utf-8"
        )
        lines = [f"[{PLUGINS_GROUP}]", *(f"{name} = {value}" for name, value in entry_points.items())]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.plugins += entry_points

    def _commands(self, body: str) -> list[Command]:
        commands = []
        for chunk in re.split(r"^\$ ", body, flags=re.M)[1:]:
            line, _, shown = chunk.partition("\n")
            argv = tuple(shlex.split(line))
            assert argv[0] == "turnkit", f"{PAGE.name}: only turnkit commands are run, not {line!r}"
            commands.append(Command(argv, shown, self.config, tuple(self.plugins)))
        return commands

    def run(self, command: Command) -> CliResult:
        """Run ``command`` with the configuration file and the plugins of its place in the page."""
        config = self.work / "turnkit.toml"
        if command.config is None:
            config.unlink(missing_ok=True)
        else:
            config.write_text(command.config, encoding="utf-8")
        # only the page's plugins, whatever else this environment has installed
        env = {LOAD_ENV: ",".join(command.plugins)}
        return run_turnkit(*command.argv[1:], paths=[self.site], env=env, cwd=self.work)


def stated_order(shown: str) -> list[str]:
    """The plugin names of a ``turnkit hooks`` listing, in the numbered order."""
    return re.findall(r"^ +\d+\. (\S+)", shown, flags=re.M)


@attrs.frozen
class Installed:
    """The page's plugins, installed on this process's ``sys.path``, and the page's commands."""

    plugins: tuple[str, ...]
    commands: list[Command]


@pytest.fixture
def acme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Installed]:
    reader = Reader(tmp_path)
    commands = reader.follow(run=False)
    monkeypatch.syspath_prepend(str(reader.site))
    yield Installed(tuple(reader.plugins), commands)
    for module in [name for name in sys.modules if name.startswith("acme_")]:
        del sys.modules[module]


def load(acme: Installed, config: str | None = None, **plugins: Any) -> PluginManager:
    """Discover services and the page's plugins, as the agent does, with ``config`` in effect."""
    parsed = parse_config(tomllib.loads(config or ""))
    if plugins:
        parsed = attrs.evolve(parsed, plugins=PluginsConfig(**plugins))
    manager = PluginManager.load(parsed, env={LOAD_ENV: ",".join(acme.plugins)})
    install_defaults(manager, parsed.model)
    return manager


def order(manager: PluginManager, point: str) -> list[str]:
    return [impl.plugin for impl in manager.implementations(point)]


# ------------------------------------------------------------------ the page, run


def test_every_command_prints_what_the_page_shows(tmp_path: Path) -> None:
    reader = Reader(tmp_path)
    ran = 0
    for command in reader.follow(run=True):
        result = reader.run(command)
        printed = result.stdout + result.stderr
        assert printed.rstrip() == command.shown.rstrip(), (
            f"{PAGE.name}: `$ {shlex.join(command.argv)}` prints something else than the page shows; "
            f"update the page (or fix the runtime)\n--- the page shows\n{command.shown}\n{result}"
        )
        ran += 1
    assert ran >= 5


def test_the_order_the_page_states_is_the_managers(acme: Installed) -> None:
    listings = [c for c in acme.commands if c.argv[:2] == ("turnkit", "hooks") and set(c.plugins)]
    assert {c.argv[2] for c in listings} >= {"turn_inbound", "turn_authorize"}
    for command in listings:
        point = command.argv[2]
        stated = stated_order(command.shown)
        assert stated, f"{PAGE.name}: the listing of {point} names no implementation"
        assert order(load(acme, command.config), point) == stated, f"{PAGE.name}: order of {point}"


# ------------------------------------------------------------------ the rules stated in prose


def test_a_listed_wrapper_stays_first_and_is_not_a_problem(acme: Installed) -> None:
    manager = load(acme, order={"turn_inbound": ["signature", "stopwatch"]})
    assert order(manager, "turn_inbound")[:2] == ["stopwatch", "signature"]
    assert manager.order_problems() == []


def test_the_warning_the_page_quotes_is_the_runtimes(acme: Installed) -> None:
    pattern = r"`(warning: plugins\.order\.(\w+):\s+'(\w+)'\s+does\s+not\s+implement\s+it\s+here)`"
    quoted = re.search(pattern, TEXT)
    assert quoted, f"{PAGE.name} no longer quotes the warning for a plugin not implementing the point"
    warning, point, plugin = " ".join(quoted.group(1).split()), quoted.group(2), quoted.group(3)
    manager = load(acme, order={point: [plugin]})
    assert [f"warning: {problem}" for problem in manager.order_problems()] == [warning]
    assert plugin not in order(manager, point)


class LateModel:
    @hookimpl(trylast=True)
    def turn_reply(self) -> Message:
        return Message.of("assistant", "late")


class LateSession:
    @hookimpl(trylast=True, optionalhook=True)
    def chat_session(self) -> str:
        return "mine"


class Outer:
    @hookimpl(wrapper=True)
    def turn_inbound(self) -> Iterator[None]:
        return (yield)


def in_code(*plugins: tuple[str, object]) -> PluginManager:
    """Services discovered, ``plugins`` registered in code in the given order, then the defaults."""
    manager = PluginManager.load(PluginsConfig(), env={LOAD_ENV: ""})
    for name, plugin in plugins:
        manager.register(plugin, name)
    install_defaults(manager, ModelConfig())
    return manager


def test_the_defaults_come_after_a_plugin_s_trylast_answer() -> None:
    assert order(in_code(("late-model", LateModel())), "turn_reply") == ["late-model", DEFAULTS_NAME]


def test_a_plugin_s_trylast_answer_comes_before_the_service_s() -> None:
    assert order(in_code(("late-session", LateSession())), "chat_session") == ["late-session", "chat"]


def test_the_order_of_registration_does_not_matter(acme: Installed) -> None:
    page = importlib.import_module("acme_plugins")  # written by the page, on sys.path
    discovered = order(load(acme), "turn_inbound")
    for names in (discovered, discovered[::-1]):
        plugins = [(name, getattr(page, name.capitalize())()) for name in names]
        assert order(in_code(*plugins), "turn_inbound") == discovered


def test_a_repeated_name_counts_at_its_first_mention(acme: Installed) -> None:
    manager = load(acme, order={"turn_inbound": ["signature", "translate", "signature"]})
    expected = ["stopwatch", "signature", "translate", "trim", "glossary", "disclaimer"]
    assert order(manager, "turn_inbound") == expected  # signature once, not moved back
    assert manager.order_problems() == []


def test_wrappers_follow_the_rule_whatever_the_registration() -> None:
    for first, last in [("a-outer", "b-outer"), ("b-outer", "a-outer")]:
        manager = in_code((first, Outer()), (last, Outer()))
        assert order(manager, "turn_inbound") == ["a-outer", "b-outer"]
