"""The agent is honest about its model: what it claims to be is what answers.

Through the real CLI, with the real turnkit-openai distribution installed
beside it where the issue met it: a configured model name nobody serves
stops the start naming ``$.model.name``; the echo model answering by
default says so once on stderr; an installed model plugin without its
table is listed as not configured and leaves unrelated agents alone,
unless required. In process: what ``model_names`` answers decides the
agent's model and its context window.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from turnkit.errors import ConfigError, TurnkitError
from turnkit_hookspecs import Message, Prompt, hookimpl

from tests.support.agents import running_agent
from tests.support.dists import (
    EXAMPLE_PLUGINS,
    CliResult,
    install_distribution,
    plugins_by_name,
    run_turnkit,
)

#: How the line starts that ``turnkit send`` and ``turnkit chat`` print when the echo model answers unasked.
NOTICE = "turnkit: the built-in echo model answers, repeating each message (no model plugin is configured)"
#: The store of every configuration here, beside it.
STORE = '[store]\nurl = "t.db"\n'
#: turnkit-openai pointed at a port where nothing listens: the start succeeds, a turn fails fast.
OPENAI = (
    '[plugin.openai]\nmodel = "gpt-4o-mini"\nbase_url = "http://127.0.0.1:9/v1"\n'
    'api_key_env = ""\nmax_retries = 0\n'
)


@pytest.fixture(scope="module")
def openai(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example turnkit-openai distribution, built and installed into a directory of its own."""
    return install_distribution(EXAMPLE_PLUGINS / "turnkit-openai", tmp_path_factory.mktemp("openai"))


def turnkit(home: Path, config: str, *args: str, paths: tuple[Path, ...] = ()) -> CliResult:
    """``turnkit ARGS…`` in ``home`` with ``config`` (after the store table) as its turnkit.toml."""
    (home / "turnkit.toml").write_text(STORE + config)
    return run_turnkit(*args, cwd=home, paths=paths, timeout=60)


# ------------------------------------------------------------------ the echo model


def test_the_default_echo_model_says_so_once_on_stderr(tmp_path: Path) -> None:
    result = turnkit(tmp_path, "", "send", "hello")
    assert (result.returncode, result.stdout) == (0, "hello\n"), result
    notices = [line for line in result.stderr.splitlines() if line.startswith(NOTICE)]
    assert len(notices) == 1, result
    assert (
        'pip install turnkit-openai and set [plugin.openai] model = …, or set [model] name = "echo"'
        in notices[0]
    )


def test_turnkit_chat_says_so_too(tmp_path: Path) -> None:
    result = turnkit(tmp_path, "", "chat")  # no input: the conversation ends at once
    assert result.returncode == 0, result
    assert result.stderr.count(NOTICE) == 1, result


@pytest.mark.parametrize(
    "config",
    ['[model]\nname = "echo"\n', '[[model.script]]\ntext = "Scripted."\n'],
    ids=["named", "scripted"],
)
def test_an_echo_model_asked_for_answers_without_the_notice(tmp_path: Path, config: str) -> None:
    result = turnkit(tmp_path, config, "send", "hello")
    assert result.returncode == 0, result
    assert NOTICE not in result.stderr, result


def test_json_output_carries_no_notice(tmp_path: Path) -> None:
    result = turnkit(tmp_path, "", "send", "--json", "hello")
    assert result.returncode == 0 and result.stderr == "", result
    assert result.json()["reply"]["author"] == "echo"


def test_a_model_name_no_plugin_serves_stops_the_start_in_one_line(tmp_path: Path) -> None:
    result = turnkit(tmp_path, '[model]\nname = "gpt-4o"\n', "send", "hello")
    assert (result.returncode, result.stdout) == (1, ""), result
    assert result.stderr.splitlines() == [
        "Error: turnkit.toml: no model 'gpt-4o': no model plugin is configured, so the built-in echo"
        " model answers (pip install turnkit-openai and set [plugin.openai] model = …) @ $.model.name"
    ]


# ------------------------------------------------------------------ an installed model plugin


def test_an_installed_model_plugin_without_its_table_leaves_the_agent_alone(
    tmp_path: Path, openai: Path
) -> None:
    result = turnkit(tmp_path, "", "send", "hello", paths=(openai,))
    assert (result.returncode, result.stdout) == (0, "hello\n"), result
    [warning] = [line for line in result.stderr.splitlines() if "openai" in line and "WARNING" in line]
    assert warning.endswith(
        "turnkit.toml: plugin 'openai' (turnkit-openai 0.2.0) is installed but not configured, so it"
        " stays inactive: add [plugin.openai] model = … to use it"
    ), warning
    assert NOTICE in result.stderr, "the echo model answered: say so"


def test_turnkit_plugins_lists_it_as_not_configured_with_the_table_to_add(
    tmp_path: Path, openai: Path
) -> None:
    listed = plugins_by_name(turnkit(tmp_path, "", "plugins", "--json", paths=(openai,)).json())
    assert listed["openai"]["status"] == "not configured"
    assert listed["openai"]["error"] == "add [plugin.openai] model = … to use it"
    assert listed["openai"]["hooks"] == ["model_names", "turn_reply"]

    text = turnkit(tmp_path, "", "plugins", paths=(openai,))
    assert text.returncode == 0, text
    assert "openai  [plugin, not configured]  turnkit-openai 0.2.0" in text.stdout
    assert "    not configured: add [plugin.openai] model = … to use it" in text.stdout

    hooks = turnkit(tmp_path, "", "hooks", "turn_reply", paths=(openai,))
    assert "openai" not in hooks.stdout, "an inactive plugin answers nothing"


def test_a_required_model_plugin_without_its_table_stops_the_start(tmp_path: Path, openai: Path) -> None:
    result = turnkit(tmp_path, '[plugins]\nrequired = ["turnkit-openai"]\n', "send", "hello", paths=(openai,))
    assert result.returncode == 1, result
    assert result.stderr.splitlines() == [
        "Error: turnkit.toml: the required plugin 'openai' is not configured: add [plugin.openai] model = …"
        " @ $.plugin.openai"
    ]


def test_the_configured_plugin_s_model_is_the_agent_s(tmp_path: Path, openai: Path) -> None:
    hooks = turnkit(tmp_path, OPENAI, "hooks", "model_names", paths=(openai,))
    assert hooks.stdout.splitlines()[2].split()[:2] == ["1.", "openai"], hooks

    wrong = turnkit(tmp_path, OPENAI + '\n[model]\nname = "gpt-4o"\n', "send", "hello", paths=(openai,))
    assert wrong.returncode == 1, wrong
    assert wrong.stderr.splitlines() == [
        "Error: turnkit.toml: no model 'gpt-4o': the model plugin serves 'gpt-4o-mini' @ $.model.name"
    ]

    # unset (or named alike), the name is the plugin's: the start passes and the turn goes to it
    for config in (OPENAI, OPENAI + '\n[model]\nname = "gpt-4o-mini"\n'):
        sent = turnkit(tmp_path, config, "send", "hello", paths=(openai,))
        assert sent.returncode == 1, sent  # nothing listens at its base_url
        assert "POST http://127.0.0.1:9/v1/chat/completions" in sent.stderr, sent
        assert NOTICE not in sent.stderr, sent


# ------------------------------------------------------------------ what model_names decides, in process


class Serves:
    """A model plugin naming what it serves."""

    def __init__(self, *names: str) -> None:
        self.names = list(names)

    @hookimpl
    def model_names(self) -> list[str]:
        return self.names

    @hookimpl
    def turn_reply(self, prompt: Prompt) -> Message:
        return Message.of("assistant", f"{self.names[0]} says hi")


class Unnamed:
    """A model plugin from before ``model_names``: it answers turns and names nothing."""

    @hookimpl
    def turn_reply(self, prompt: Prompt) -> Message:
        return Message.of("assistant", "from elsewhere")


async def test_an_unset_name_is_the_first_served_and_picks_its_window(tmp_path: Path) -> None:
    model = {"context_window": 10, "context_windows": {"small": 500, "big": 1000}}
    async with running_agent(tmp_path, plugins={"m": Serves("small", "big")}, model=model) as agent:
        assert (agent.model.name, agent.model.served, agent.model.named) == ("small", ("small", "big"), False)
        assert (agent.config.model.name, agent.config.model.max_tokens) == ("small", 500)
        assert agent.context.config.model.name == "small", "services see the settled name"


async def test_the_echo_model_names_itself_only_when_it_is_the_model(tmp_path: Path) -> None:
    async with running_agent(tmp_path) as agent:
        assert (agent.model.name, agent.model.echo) == ("echo", True)
        assert await agent.context.plugins.resolve("model_names") == ["echo"]
    async with running_agent(tmp_path, plugins={"unnamed": Unnamed()}) as agent:
        assert (agent.model.name, agent.model.echo) == ("unnamed", False)
        assert (await agent.send("hi")).reply.text == "from elsewhere"  # type: ignore[union-attr]
    # a name given for a model plugin that names nothing is trusted: nothing can check it
    async with running_agent(tmp_path, plugins={"unnamed": Unnamed()}, model={"name": "llama3"}) as agent:
        assert await agent.context.plugins.resolve("model_names") == ["llama3"]


async def test_a_model_plugin_serving_no_name_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(TurnkitError, match=r"^the model plugin serves no model: model_names answered \[\]$"):
        async with running_agent(tmp_path, plugins={"m": Serves()}):
            pass


async def test_a_name_the_plugin_does_not_serve_is_refused_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"^<config>: no model 'huge': the model plugin serves 'small', 'big'"
    ):
        async with running_agent(tmp_path, plugins={"m": Serves("small", "big")}, model={"name": "huge"}):
            pass
