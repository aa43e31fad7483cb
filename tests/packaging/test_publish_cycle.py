"""Every example plugin through the cycle its users see: publish, ``pip install``, use, ``pip uninstall``.

Each folder of ``example_plugins/`` with a ``pyproject.toml`` is covered (a
plugin added later is covered without touching this file): its sdist and
wheel are built as a release builds them and pass ``twine check --strict``;
``twine upload`` publishes them to a package index on loopback (pypiserver);
one fresh venv holding the runtime — installed from wheels of this checkout —
then gets every plugin at once with ``pip install --index-url <that index>``,
as a user gets them from PyPI (their third-party dependencies come from the
machine's configured indexes). ``turnkit plugins`` and ``turnkit hooks`` show
each one loaded at the version published; real turns (``turnkit send``, one
process each, on a SQLite file) show the plugins at work together, the
model being turnkit-openai talking to a Chat Completions server on loopback;
after ``pip uninstall`` the plugins are gone from both and the same turns
run without them.

The tests share the venv and run in file order: those after
``test_pip_uninstall_removes_every_plugin`` see the venv without plugins.
The example channels take part too: one ``turnkit serve`` answers a
message from each channel's platform (Feishu, QQ, a OneBot implementation),
played on loopback by :mod:`tests.support.platforms`.

Run by ``tox -e packaging`` (``-m packaging``), which installs pypiserver.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zipfile import ZipFile

import pytest

from tests.support.dists import (
    FIRST_PARTY,
    CliResult,
    Venv,
    build_distributions,
    example_plugins,
    plugins_by_name,
    run_command,
    session_dist_dir,
)
from tests.support.index_server import IndexServer, index_server, sha256_of
from tests.support.platforms import (
    Serving,
    feishu_event,
    free_port,
    onebot_exchange,
    platform,
    qq_callback,
    wait_until,
)
from tests.support.threaded import serving

pytestmark = pytest.mark.packaging

PLUGINS = example_plugins()
#: Every example plugin at the version this checkout publishes.
PINS = [f"{project.name}=={project.version}" for project in PLUGINS]

SENT = "write to ann@example.org or call +44 20 7946 0958"
#: ``SENT`` as turnkit-redact leaves it, with the e-mail placeholder the agent's table sets.
REDACTED = "write to <e-mail> or call [phone]"
#: What the loopback model puts before the last user message it was sent.
HEARD = "heard: "
SUBQUESTION = "What is the weather in Porto on Saturday?"
#: Long enough to fill the tiny context window of the ``summarized`` agent in one turn.
LONG = "We decided to hold the offsite in Lisbon on 14 March; the budget is 12000 EUR for 40 people."

#: Every agent's tables: the model (turnkit-openai → loopback) and the audit file (turnkit-jsonl-audit).
#: A table of a plugin that is not installed is only a warning, so the same files serve after uninstall.
BASE_CONFIG = """\
[plugin.openai]
base_url = "{model_url}"
model = "loopback"
stream = false
max_retries = 0

[plugin.jsonl-audit]
file = "audit.jsonl"
"""
#: Each agent's own tables, by folder name.
AGENT_CONFIGS = {
    "main": """
[plugin.redact]
email_placeholder = "<e-mail>"
""",
    "locked": """
[plugin.auth]
initiators = { local = "deny" }
""",
    "limited": """
[plugin.ratelimit]
per_principal = { capacity = 1, refill_per_second = 0.000001 }
""",
    "summarized": """
[model]
context_window = 16

[turns]
keep_recent = 0
""",
}


def require(*names: str) -> None:
    """Fail unless example plugins of these distribution names are there (a check below is theirs)."""
    found = {project.name for project in PLUGINS}
    assert set(names) <= found, f"no example plugin {sorted(set(names) - found)} among {sorted(found)}"


# ------------------------------------------------------------- the model


class Model(ThreadingHTTPServer):
    """A Chat Completions endpoint on loopback: answers ``heard: <the last user message>``."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ModelHandler)
        #: The ``messages`` of every request, in order.
        self.requests: list[list[dict[str, Any]]] = []

    @property
    def url(self) -> str:
        """The API's root: turnkit-openai's ``base_url``."""
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def last_user_texts(self) -> list[str]:
        """The text of the last user message of each request."""
        return [_last_user_text(messages) for messages in self.requests]


class _ModelHandler(BaseHTTPRequestHandler):
    server: Model

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path != "/v1/chat/completions":
            self.send_error(404)
            return
        self.server.requests.append(body["messages"])
        completion = {
            "id": f"loopback-{len(self.server.requests)}",
            "object": "chat.completion",
            "model": "loopback",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": HEARD + _last_user_text(body["messages"])},
                    "finish_reason": "stop",
                }
            ],
        }
        data = json.dumps(completion).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the requests are kept in ``Model.requests``."""


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    content = [m for m in messages if m["role"] == "user"][-1].get("content") or ""
    if isinstance(content, str):
        return content
    return "\n".join(part.get("text", "") for part in content if part.get("type") == "text")


@pytest.fixture(scope="module")
def model() -> Iterator[Model]:
    with serving(Model()) as server:
        yield server


# ------------------------------------------------------------- the agents


@dataclass(frozen=True)
class Agent:
    """A folder holding an agent's ``turnkit.toml`` (and, once it ran, its store and audit file)."""

    path: Path
    venv: Venv

    def argv(self, *args: str) -> tuple[str, ...]:
        """``turnkit`` arguments for this agent's configuration file."""
        return ("--config", str(self.path / "turnkit.toml"), *args)

    def turnkit(self, *args: str) -> str:
        return self.venv.turnkit(*self.argv(*args), cwd=self.path)

    def send(self, text: str) -> tuple[CliResult, dict[str, Any]]:
        """``turnkit send --json TEXT`` in a new session, whatever its exit status; and what it printed."""
        result = self.venv.turnkit_result(*self.argv("send", "--json", text), cwd=self.path)
        assert result.stdout, result
        printed: dict[str, Any] = json.loads(result.stdout)
        return result, printed

    def export(self, session_id: str) -> dict[str, Any]:
        """``turnkit sessions export``: the stored session, its turns with their traces, its audit trail."""
        document: dict[str, Any] = json.loads(self.turnkit("sessions", "export", session_id))
        return document

    def audit_lines(self) -> list[dict[str, Any]]:
        """The records turnkit-jsonl-audit appended to its file."""
        audit = self.path / "audit.jsonl"
        if not audit.exists():
            return []
        return [json.loads(line) for line in audit.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def agents(venv: Venv, model: Model, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Agent]:
    """One agent folder per configuration of ``AGENT_CONFIGS``, each with its own store."""
    made = {}
    for name, own in AGENT_CONFIGS.items():
        path = tmp_path_factory.mktemp(f"agent-{name}")
        (path / "turnkit.toml").write_text(BASE_CONFIG.format(model_url=model.url) + own, encoding="utf-8")
        made[name] = Agent(path, venv)
    return made


def reply_text(sent: dict[str, Any]) -> str:
    return "".join(block["text"] for block in sent["reply"]["blocks"] if block["type"] == "text")


def actions_of(document: dict[str, Any], extension_id: str) -> list[str]:
    return [event["action"] for event in document["audit"] if event["extension_id"] == extension_id]


# ------------------------------------------------------------- build, publish, install


@pytest.fixture(scope="module")
def dist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sdist and wheel of the first-party projects and of every example plugin, built once per session."""
    out = session_dist_dir(tmp_path_factory)
    build_distributions([*FIRST_PARTY, *PLUGINS], out)
    return out


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory, dist_dir: Path) -> Iterator[IndexServer]:
    """A loopback index that every example plugin was published to with ``twine upload``."""
    with index_server(tmp_path_factory.mktemp("index") / "packages") as server:
        assert list(server.root.iterdir()) == [], "the index must start empty"
        files = [dist_dir / name for project in PLUGINS for name in project.files]
        upload = [sys.executable, "-m", "twine", "upload", "--non-interactive", "--disable-progress-bar"]
        run_command([*upload, "--repository-url", server.url, "-u", "x", "-p", "x", *files])
        yield server


@pytest.fixture(scope="module")
def venv(dist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """One fresh venv with the runtime, the contract and the services: no plugin yet."""
    return Venv.with_runtime(tmp_path_factory.mktemp("publish-venv") / "env", dist_dir)


@pytest.fixture(scope="module")
def installed(venv: Venv, index: IndexServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every example plugin pip-installed from the loopback index, at the version published; pip's report."""
    assert venv.plugins() == {}, "the venv must start without plugins"
    report = tmp_path_factory.mktemp("pip-report") / "install.json"
    venv.pip("install", "--index-url", index.simple_url, "--report", report, *PINS)
    result: dict[str, Any] = json.loads(report.read_text(encoding="utf-8"))
    return result


@pytest.fixture(scope="module")
def uninstalled(installed: dict[str, Any], venv: Venv) -> None:
    """Every example plugin pip-uninstalled again."""
    venv.pip("uninstall", "-y", *(project.name for project in PLUGINS))


def test_every_example_plugin_builds_an_sdist_and_a_wheel(dist_dir: Path) -> None:
    require("turnkit-redact", "turnkit-jsonl-audit", "turnkit-onebot")
    for project in PLUGINS:
        assert project.plugins or project.channels, f"{project.name} declares no entry point of turnkit"
        for name in project.files:
            assert (dist_dir / name).is_file(), f"{project.name}: {name} was not built"
        with ZipFile(dist_dir / project.wheel) as wheel:
            names = wheel.namelist()
            entry_points = wheel.read(f"{project.stem}-{project.version}.dist-info/entry_points.txt").decode()
        assert not [n for n in names if n.startswith("tests/")], f"{project.name} ships its tests"
        references = {**project.plugins, **project.channels}
        for module in {ref.split(":")[0] for ref in references.values()}:
            package = module.split(".")[0]
            assert f"{package}/__init__.py" in names, f"{project.name}: no package {package}"
            assert f"{package}/py.typed" in names, f"{project.name}: {package} is not marked typed"
        for name, ref in references.items():
            assert f"{name} = {ref}" in entry_points, f"{project.name}: entry point {name} missing"


def test_twine_check_strict_passes_for_every_plugin(dist_dir: Path) -> None:
    files = [dist_dir / name for project in PLUGINS for name in project.files]
    output = run_command([sys.executable, "-m", "twine", "check", "--strict", *files])
    assert output.count("PASSED") == len(files), output


def test_the_index_serves_exactly_what_was_uploaded(index: IndexServer, dist_dir: Path) -> None:
    for project in PLUGINS:
        expected = {name: sha256_of(dist_dir / name) for name in project.files}
        assert index.files(project.name) == expected, project.name
    assert sorted(path.name for path in index.root.iterdir()) == sorted(
        name for project in PLUGINS for name in project.files
    )


def test_pip_download_from_the_index_gets_the_published_wheels(
    venv: Venv, index: IndexServer, dist_dir: Path, tmp_path: Path
) -> None:
    venv.pip("download", "--no-deps", "--index-url", index.simple_url, "--dest", tmp_path, *PINS)
    downloaded = {path.name: sha256_of(path) for path in tmp_path.iterdir()}
    assert downloaded == {project.wheel: sha256_of(dist_dir / project.wheel) for project in PLUGINS}


def test_pip_installs_every_plugin_from_the_index(
    installed: dict[str, Any], index: IndexServer, dist_dir: Path
) -> None:
    """pip's report: each plugin came from the loopback index, as the very wheel that was uploaded."""
    items = {item["metadata"]["name"]: item for item in installed["install"]}
    for project in PLUGINS:
        item = items[project.name]
        assert item["metadata"]["version"] == project.version
        assert item["download_info"]["url"] == f"{index.url}packages/{project.wheel}"
        hashes = item["download_info"]["archive_info"]["hashes"]
        assert hashes["sha256"] == sha256_of(dist_dir / project.wheel), project.name
    first_party = {project.name for project in FIRST_PARTY}
    assert not first_party & set(items), "the runtime installed with the plugins must be kept"


def test_every_plugin_is_loaded_at_the_published_version(
    installed: dict[str, Any], venv: Venv, agents: dict[str, Agent]
) -> None:
    # without its [plugin.openai] table, turnkit-openai is installed but not configured
    assert venv.plugins()["openai"]["status"] == "not configured"
    records = plugins_by_name(json.loads(agents["main"].turnkit("plugins", "--json")))
    for project in PLUGINS:
        for name, ref in project.plugins.items():
            record = records[name]
            assert record["status"] == "loaded", record
            assert record["error"] is None
            assert (record["distribution"], record["version"]) == (project.name, project.version)
            assert record["module"] == ref.split(":")[0]
            assert record["hooks"], f"{name} implements no hook"


def test_turnkit_hooks_shows_every_hook_of_every_plugin(
    installed: dict[str, Any], agents: dict[str, Agent]
) -> None:
    main = agents["main"]  # its configuration has every plugin's table
    records = plugins_by_name(json.loads(main.turnkit("plugins", "--json")))
    points = {entry["point"]: entry for entry in json.loads(main.turnkit("hooks", "--json"))}
    for project in PLUGINS:
        for name in project.plugins:
            for hook in records[name]["hooks"]:
                callers = [(i["plugin"], i["distribution"]) for i in points[hook]["implementations"]]
                assert (name, project.name) in callers, f"{hook}: {callers}"


# ------------------------------------------------------------- the plugins at work


def test_redact_keeps_personal_data_from_the_model_and_audit_records_the_turn(
    installed: dict[str, Any], agents: dict[str, Agent], model: Model
) -> None:
    """turnkit-redact (with its table's placeholder), turnkit-openai and turnkit-jsonl-audit in one turn."""
    require("turnkit-redact", "turnkit-openai", "turnkit-jsonl-audit")
    agent = agents["main"]
    audited, asked = len(agent.audit_lines()), len(model.requests)
    result, sent = agent.send(SENT)
    assert result.returncode == 0, result
    assert sent["turn"]["status"] == "completed"
    assert model.last_user_texts()[asked:] == [REDACTED]  # the model never saw the e-mail
    assert reply_text(sent) == HEARD + REDACTED
    assert sent["reply"]["author"] == "loopback"

    session = agent.export(sent["turn"]["session_id"])
    [stored] = [m["message"] for m in session["messages"] if m["message"]["role"] == "assistant"]
    assert reply_text({"reply": stored}) == HEARD + REDACTED
    [turn] = session["turns"]
    calls = {(call["point"], call["plugin"]) for call in turn["trace"]}
    assert {("turn_inbound", "redact"), ("turn_reply", "openai"), ("turn_completed", "jsonl-audit")} <= calls

    [record] = agent.audit_lines()[audited:]
    assert (record["status"], record["turn_id"]) == ("completed", turn["turn_id"])
    assert (record["message"], record["reply"]) == (SENT, HEARD + REDACTED)


def test_subquestion_answers_in_a_child_session(
    installed: dict[str, Any], agents: dict[str, Agent], model: Model
) -> None:
    require("turnkit-subquestion")
    agent = agents["main"]
    asked = len(model.requests)
    result, sent = agent.send(f"Plan my weekend in Porto.\n?? {SUBQUESTION}")
    assert result.returncode == 0, result
    assert model.last_user_texts()[asked:][0] == SUBQUESTION  # the child's turn, first
    session = agent.export(sent["turn"]["session_id"])
    assert actions_of(session, "subquestion") == ["fork", "merge"]
    assert f"{HEARD}{SUBQUESTION}" in json.dumps(session["messages"])  # the merged answer
    assert sent["turn"]["session_id"] in agent.turnkit("sessions", "tree")


def test_auth_denies_the_turns_its_table_denies(installed: dict[str, Any], agents: dict[str, Agent]) -> None:
    require("turnkit-auth")
    agent = agents["locked"]
    audited = len(agent.audit_lines())
    result, sent = agent.send("hello")
    assert result.returncode == 2, result
    assert sent["turn"]["status"] == "denied"
    assert sent["deny"]["plugin"] == "auth"
    assert [record["status"] for record in agent.audit_lines()[audited:]] == ["denied"]


def test_ratelimit_keeps_its_buckets_in_the_store(
    installed: dict[str, Any], agents: dict[str, Agent]
) -> None:
    """A bucket of one turn: the second ``turnkit send`` (another process) is denied."""
    require("turnkit-ratelimit")
    agent = agents["limited"]
    first, _ = agent.send("one")
    assert first.returncode == 0, first
    second, sent = agent.send("two")
    assert second.returncode == 2, second
    assert sent["deny"]["plugin"] == "ratelimit"
    assert sent["deny"]["reason"].startswith("rate limit:")


def test_summarizer_compresses_a_full_context_window(
    installed: dict[str, Any], agents: dict[str, Agent]
) -> None:
    require("turnkit-summarizer")
    agent = agents["summarized"]
    result, sent = agent.send(LONG)
    assert result.returncode == 0, result
    session = agent.export(sent["turn"]["session_id"])
    assert "compress" in actions_of(session, "summarizer")
    [summary] = [m["message"] for m in session["messages"] if m["summary"]]
    assert reply_text({"reply": summary}).startswith("Summary of earlier conversation (extractive):")


# ------------------------------------------------------------- channels

CHANNEL_SECRETS = {
    "FEISHU_APP_SECRET": "feishu-app-secret-loopback",
    "QQ_BOT_SECRET": "qq-bot-secret-loopback",
    "ONEBOT_ACCESS_TOKEN": "onebot-token-loopback",
}
VERIFICATION_TOKEN = "feishu-verification-loopback"


def channels_config(port: int, platform_url: str) -> str:
    """An agent serving every example channel beside the HTTP API, each platform on loopback."""
    return f"""
[store]
url = "channels.db"

[service.chat]
channels = ["http", "feishu", "qq", "onebot"]

[service.chat.http]
host = "127.0.0.1"
port = {port}

[plugin.auth.initiators]
user = "allow"   # turnkit-auth, installed with the others, would deny the platforms' users

[service.chat.channel.feishu]
app_id = "cli_loopback"
verification_token = "{VERIFICATION_TOKEN}"
base_url = "{platform_url}"

[service.chat.channel.qq]
app_id = "102000001"
api_base = "{platform_url}"
token_url = "{platform_url}/app/getAppAccessToken"
"""


def test_every_channel_answers_a_turn_from_its_platform(
    installed: dict[str, Any], venv: Venv, tmp_path: Path
) -> None:
    require("turnkit-feishu", "turnkit-qq", "turnkit-onebot")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TURNKIT_")} | CHANNEL_SECRETS
    with platform() as loopback:
        (tmp_path / "turnkit.toml").write_text(channels_config(port, loopback.url), encoding="utf-8")
        served = Serving(venv.bin / "turnkit", tmp_path, env)
        try:
            feishu = post_json(
                port,
                "/channels/feishu/events",
                feishu_event("ev-1", VERIFICATION_TOKEN, "om_1", "oc_1", "hello feishu"),
            )
            body, headers = qq_callback(
                CHANNEL_SECRETS["QQ_BOT_SECRET"], "qq-ev-1", "user-openid-1", "hello qq"
            )
            qq = post_json(port, "/channels/qq/webhook", body, headers)
            call = asyncio.run(
                onebot_exchange(
                    f"ws://127.0.0.1:{port}/onebot/v11/ws",
                    CHANNEL_SECRETS["ONEBOT_ACCESS_TOKEN"],
                    10001,
                    42,
                    "hello onebot",
                )
            )
            assert wait_until(lambda: len(loopback.sent) == 2), "".join(served.output)
        finally:
            served.stop()
    assert feishu[0] == 200, feishu
    assert qq == (200, {"op": 12, "d": 0})
    sent = dict(loopback.sent)
    assert json.loads(sent["/open-apis/im/v1/messages/om_1/reply"]["content"]) == {"text": "hello feishu"}
    assert sent["/v2/users/user-openid-1/messages"]["content"] == "hello qq"
    assert call["action"] == "send_private_msg"
    assert call["params"]["user_id"] == 42
    assert "hello onebot" in json.dumps(call["params"]["message"])
    sessions = json.loads(
        venv.turnkit("--config", str(tmp_path / "turnkit.toml"), "sessions", "list", "--json", cwd=tmp_path)
    )
    assert len(sessions) == 3


def test_an_agent_calls_another_through_mcp(installed: dict[str, Any], venv: Venv, tmp_path: Path) -> None:
    """turnkit-mcp both ways: agent B's model calls ``served.send``, a tool of agent A's ``turnkit mcp``."""
    require("turnkit-mcp")
    served, caller = tmp_path / "served", tmp_path / "caller"
    served.mkdir()
    caller.mkdir()
    (served / "turnkit.toml").write_text(
        """
[store]
url = "served.db"

[plugin.auth.initiators]
user = "allow"   # the MCP client speaks as a user

[service.chat.channel.mcp]
tools = ["send"]
""",
        encoding="utf-8",
    )
    (caller / "turnkit.toml").write_text(
        f"""
[store]
url = "caller.db"

[model]
script = [{{ tool = "served.send", args = {{ text = "hello from the caller" }} }}]

[plugin.mcp.servers.served]
command = "{venv.bin / "turnkit"}"
args = ["--config", "{served / "turnkit.toml"}", "mcp"]
""",
        encoding="utf-8",
    )
    result = venv.turnkit_result(
        "--config", str(caller / "turnkit.toml"), "send", "--json", "ask the other agent"
    )
    assert result.returncode == 0, result
    sent = json.loads(result.stdout)
    # the scripted model called the tool, then echoed its output: the served agent's reply
    assert "hello from the caller" in reply_text(sent), sent
    stored = json.loads(
        venv.turnkit("--config", str(served / "turnkit.toml"), "sessions", "list", "--json", cwd=served)
    )
    assert len(stored) == 1  # the served agent ran the turn, in a session of its own store


def post_json(port: int, path: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """POST ``body`` to the served agent; its status and JSON answer."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=body, headers=headers or {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


# ------------------------------------------------------------- uninstalled


def test_pip_uninstall_removes_every_plugin(uninstalled: None, venv: Venv) -> None:
    assert venv.plugins() == {}
    probe = (
        "import importlib.metadata as m; print([p.name for p in m.entry_points(group='turnkit.channels')])"
    )
    assert venv.python("-c", probe).strip() == "[]"
    points = json.loads(venv.turnkit("hooks", "--json"))
    plugin_dists = {project.name for project in PLUGINS}
    assert not [i for e in points for i in e["implementations"] if i["distribution"] in plugin_dists]


def test_after_uninstall_the_same_turn_is_echoed_unredacted_and_unaudited(
    uninstalled: None, agents: dict[str, Agent], model: Model
) -> None:
    agent = agents["main"]
    audited, asked = len(agent.audit_lines()), len(model.requests)
    result, sent = agent.send(SENT)
    assert result.returncode == 0, result
    assert reply_text(sent) == SENT  # turnkit's built-in echo model, given the message as sent
    assert (len(agent.audit_lines()), len(model.requests)) == (audited, asked)
    assert "[plugin.redact] configures a plugin that is not loaded" in result.stderr


def test_after_uninstall_no_guard_denies_and_nothing_forks_or_compresses(
    uninstalled: None, agents: dict[str, Agent]
) -> None:
    for name in ("locked", "limited"):  # the limited agent's bucket is still empty in its store
        result, sent = agents[name].send("hello again")
        assert (result.returncode, sent["turn"]["status"]) == (0, "completed"), result
    _, sent = agents["main"].send(f"Plan my weekend in Porto.\n?? {SUBQUESTION}")
    assert agents["main"].export(sent["turn"]["session_id"])["audit"] == []
    _, sent = agents["summarized"].send(LONG)
    messages = agents["summarized"].export(sent["turn"]["session_id"])["messages"]
    assert not [m for m in messages if m["summary"]]
