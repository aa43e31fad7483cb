"""Tests of turnkit-redact: the patterns, the hook implementations, and the plugin in a real agent.

The agent tests use turnkit's ``turnkit_agent`` fixture with the plugin made
from its entry point, as the runtime makes it.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from importlib.metadata import EntryPoint, PackageNotFoundError, distribution, entry_points
from pathlib import Path
from typing import Any

import attrs
import pluggy
import pytest
import turnkit_redact
from turnkit.errors import ConfigError
from turnkit.testing import AgentHarness, entry_point_plugin, tool_call
from turnkit_hookspecs import (
    PROJECT_NAME,
    ImageBlock,
    Message,
    Prompt,
    ReasoningBlock,
    TextBlock,
    ToolCallBlock,
    ToolOutputBlock,
    UrlSource,
    turn_points,
)
from turnkit_redact import (
    RedactPlugin,
    RedactSettings,
    luhn_valid,
    redact_memory,
    redact_prompt,
    redact_text,
    turn_inbound,
    turn_outbound,
)

PROJECT_DIR = Path(__file__).resolve().parents[1]
NAME = "redact"
GROUP = "turnkit.plugins"

# ------------------------------------------------------------------ redaction of text

REDACTED = [
    pytest.param(
        "Hi, I'm Ann. Write to ann.lee@example.org if the parcel is late.",
        "Hi, I'm Ann. Write to [email] if the parcel is late.",
        id="email",
    ),
    pytest.param(
        "cc: john.doe+billing@mail.example.co.uk, <support@shop.example.com>",
        "cc: [email], <[email]>",
        id="email-subaddress-and-angle-brackets",
    ),
    pytest.param("mailto:bob@example.com.", "mailto:[email].", id="email-end-of-sentence"),
    pytest.param(
        "You can call me on +44 20 7946 0958 after six.",
        "You can call me on [phone] after six.",
        id="phone-international-uk",
    ),
    pytest.param("Office: +44 (0)20 7946 0958", "Office: [phone]", id="phone-international-trunk-in-parens"),
    pytest.param("Handy: +4915112345678", "Handy: [phone]", id="phone-international-ungrouped"),
    pytest.param("Ring 0044 20 7946 0958", "Ring [phone]", id="phone-00-prefix"),
    pytest.param(
        "Call (415) 555-2671 or 415.555.2671 or 1-800-555-0199.",
        "Call [phone] or [phone] or [phone].",
        id="phone-north-american",
    ),
    pytest.param(
        "Büro 030 1234567, mobil 0151-23456789, Paris 06 12 34 56 78",
        "Büro [phone], mobil [phone], Paris [phone]",
        id="phone-national-trunk-zero",
    ),
    pytest.param(
        "My card is 4111 1111 1111 1111, expiry 12/27.",
        "My card is [card], expiry 12/27.",
        id="card-visa-spaces",
    ),
    pytest.param("Card 4111-1111-1111-1111, thanks", "Card [card], thanks", id="card-dashes"),
    pytest.param("5500000000000004 was charged", "[card] was charged", id="card-mastercard-plain"),
    pytest.param("Amex 3782 822463 10005 please", "Amex [card] please", id="card-amex-15-digits"),
    pytest.param("card 4222222222222 (old)", "card [card] (old)", id="card-13-digits"),
    pytest.param("use 6011 0009 9013 9424 here", "use [card] here", id="card-discover"),
    pytest.param("pay 4111111111111111 12 27", "pay [card] 12 27", id="card-followed-by-expiry"),
    pytest.param(
        "I'm Ann (ann@example.org, +1 415 555 2671), card 5555-5555-5555-4444.",
        "I'm Ann ([email], [phone]), card [card].",
        id="all-three",
    ),
]


@pytest.mark.parametrize(("text", "expected"), REDACTED)
def test_redacts(text: str, expected: str) -> None:
    assert redact_text(text) == expected


LEFT_ALONE = [
    pytest.param("Thanks, see you tomorrow!", id="plain-text"),
    pytest.param("Order 1234567890123456 has shipped.", id="16-digits-not-luhn"),
    pytest.param("Is 4111 1111 1111 1112 a card?", id="grouped-not-luhn"),
    pytest.param("Reference 12345678901234567890123", id="too-long-for-a-card"),
    pytest.param("Ticket 411111111111 is open", id="12-digits-too-short"),
    pytest.param("Meeting on 2024-01-15 at 10:30, or 05/11/2023, or 15.01.2024.", id="dates-and-times"),
    pytest.param("On 01-02-2024 10 people came.", id="date-followed-by-a-number"),
    pytest.param("Open 9:00-17:00, room 101-2.", id="hours-and-rooms"),
    pytest.param("It costs $1,299.99 (was 1.499,00 EUR).", id="prices"),
    pytest.param("Upgrade to 3.11.7; the server is 192.168.100.200.", id="versions-and-ip"),
    pytest.param("pi is 3.14159265358979323", id="long-decimal"),
    pytest.param("The year 2024 had 366 days; zip 94103.", id="small-numbers"),
    pytest.param("Tracking 1Z999AA10123456784", id="digits-glued-to-letters"),
    pytest.param("Write to ann@localhost or @ann on chat", id="no-domain"),
    pytest.param("", id="empty"),
]


@pytest.mark.parametrize("text", LEFT_ALONE)
def test_leaves_alone(text: str) -> None:
    assert redact_text(text) == text


@pytest.mark.parametrize(
    ("digits", "valid"),
    [
        ("4111111111111111", True),
        ("79927398713", True),
        ("378282246310005", True),
        ("4111111111111112", False),
        ("79927398710", False),
        ("", False),
        ("4111-1111", False),
    ],
)
def test_luhn(digits: str, valid: bool) -> None:
    assert luhn_valid(digits) is valid


def test_long_runs_of_small_groups_stay_fast() -> None:
    text = " ".join(["12"] * 20_000)
    assert redact_text(text) == text


# ------------------------------------------------------------------ kinds and placeholders


def test_each_kind_can_be_left_alone() -> None:
    text = "ann@example.org, +44 20 7946 0958, 4111 1111 1111 1111"
    assert redact_text(text, emails=None) == "ann@example.org, [phone], [card]"
    assert redact_text(text, phones=None) == "[email], +44 20 7946 0958, [card]"
    assert redact_text(text, cards=None) == "[email], [phone], 4111 1111 1111 1111"
    assert redact_text(text, emails=None, phones=None, cards=None) == text


def test_placeholders_are_taken_literally() -> None:
    settings = RedactSettings(email_placeholder=r"\g<0>\1", card_placeholder="", phone_placeholder="☎")
    assert settings.redact("ann@example.org, +44 20 7946 0958, 4111 1111 1111 1111") == r"\g<0>\1, ☎, "


# ------------------------------------------------------------------ the hook implementations


def hooks() -> list[Any]:
    """Every ``turn_inbound``/``turn_outbound`` there is: the module's, and an unconfigured instance's."""
    plugin = RedactPlugin()
    return [
        pytest.param(turn_inbound, id="module-turn_inbound"),
        pytest.param(turn_outbound, id="module-turn_outbound"),
        pytest.param(plugin.turn_inbound, id="instance-turn_inbound"),
        pytest.param(plugin.turn_outbound, id="instance-turn_outbound"),
    ]


@pytest.mark.parametrize("hook", hooks())
def test_hook_returns_a_redacted_copy(hook: Callable[..., Message | None]) -> None:
    original = Message(
        "user",
        (
            TextBlock("Please bill 4111 1111 1111 1111"),
            ImageBlock(UrlSource("https://example.org/receipt.png"), alt="receipt"),
            TextBlock("and mail the receipt to ann@example.org"),
            TextBlock("Thanks!"),
        ),
        id="m-1",
        author="ann",
        metadata={"channel": "telegram"},
    )

    result = hook(message=original)

    assert isinstance(result, Message)
    assert result is not original
    assert result.blocks == (
        TextBlock("Please bill [card]"),
        ImageBlock(UrlSource("https://example.org/receipt.png"), alt="receipt"),
        TextBlock("and mail the receipt to [email]"),
        TextBlock("Thanks!"),
    )
    assert (result.role, result.id, result.author) == ("user", "m-1", "ann")
    assert result.metadata == {"channel": "telegram"}
    assert result.blocks[3] is original.blocks[3]
    # the value handed in is untouched (it may be the stored inbound message)
    assert original.blocks[0] == TextBlock("Please bill 4111 1111 1111 1111")
    assert original.blocks[2] == TextBlock("and mail the receipt to ann@example.org")


@pytest.mark.parametrize("hook", hooks())
def test_hook_returns_none_when_nothing_to_redact(hook: Callable[..., Message | None]) -> None:
    message = Message.of("assistant", "Your order 1234567890123456 ships on 2024-01-15.")
    assert hook(message=message) is None


def test_tool_calls_are_not_rewritten() -> None:
    call = ToolCallBlock("call-1", "memory.store", {"email": "ann@example.org"})
    message = Message("assistant", (call,))
    assert turn_outbound(message=message) is None


def test_outbound_reply_is_redacted() -> None:
    reply = Message.of("assistant", "Sure, I have noted +49 30 1234567 as your number.")
    result = turn_outbound(message=reply)
    assert result is not None
    assert result.text == "Sure, I have noted [phone] as your number."
    assert result.role == "assistant"


def test_a_prompt_is_redacted_message_by_message() -> None:
    clean = Message.of("system", "Be brief.")
    prompt = Prompt(
        (
            clean,
            Message("assistant", (ReasoningBlock("she said ann@example.org"), TextBlock("Noted."))),
            Message("tool", (ToolOutputBlock("c1", '{"phone": "+44 20 7946 0958"}'),)),
        )
    )
    result = redact_prompt(prompt)
    assert result is not None
    assert result.messages[0] is clean
    assert result.messages[1].blocks == (ReasoningBlock("she said [email]"), TextBlock("Noted."))
    assert result.messages[2].blocks == (ToolOutputBlock("c1", '{"phone": "[phone]"}'),)
    assert redact_prompt(Prompt((clean,))) is None


@attrs.frozen
class Note:
    """Any frozen attrs value with a text, as the memory service's ``Memory`` is."""

    id: str
    text: str


def test_a_memory_keeps_everything_but_its_redacted_text() -> None:
    assert redact_memory(Note("n1", "ring 030 1234567")) == Note("n1", "ring [phone]")
    assert redact_memory(Note("n1", "nothing here")) is None


# ------------------------------------------------------------------ the plugin in a running agent


def declared_entry_point() -> EntryPoint:
    """The entry point as ``pyproject.toml`` declares it (what pip writes into the metadata)."""
    project = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return EntryPoint(NAME, project["entry-points"][GROUP][NAME], GROUP)


def redacting(harness: AgentHarness, settings: dict[str, Any] | None = None) -> RedactPlugin:
    """Register the plugin as the runtime would load it, with ``settings`` as ``[plugin.redact]``."""
    plugin = entry_point_plugin(PROJECT_DIR, NAME)
    harness.register(plugin, NAME, settings=settings)
    assert isinstance(plugin, RedactPlugin)
    return plugin


def test_the_model_never_sees_the_values_not_even_in_later_turns(turnkit_agent: AgentHarness) -> None:
    redacting(turnkit_agent)  # no memory service here: its optional point does not stop the plugin
    first = turnkit_agent.send("mail ann@example.org or call +44 20 7946 0958")
    session = first.turn.session_id
    turnkit_agent.send("and my card is 4111 1111 1111 1111", session)

    first_prompt, second_prompt = turnkit_agent.prompts
    assert first_prompt.messages[-1].text == "mail [email] or call [phone]"
    assert turnkit_agent.prompts[0].messages[-1].text == "mail [email] or call [phone]"  # turn_inbound did it
    assert [m.text for m in second_prompt.messages] == [
        "mail [email] or call [phone]",
        "mail [email] or call [phone]",  # the echo model's reply, stored redacted
        "and my card is [card]",
    ]
    # the inbound messages are stored as received; only the model's view is redacted
    history = turnkit_agent.history(session)
    assert history[0].text == "mail ann@example.org or call +44 20 7946 0958"


def test_the_stored_reply_is_redacted(turnkit_agent: AgentHarness) -> None:
    redacting(turnkit_agent)
    turnkit_agent.script("Sure, Ann is at ann@example.org and +44 20 7946 0958.")
    result = turnkit_agent.send("where is Ann?")
    assert result.reply is not None
    assert result.reply.text == "Sure, Ann is at [email] and [phone]."
    assert turnkit_agent.history(result.turn.session_id)[-1].text == "Sure, Ann is at [email] and [phone]."


def test_tool_outputs_are_redacted_in_later_prompts(turnkit_agent: AgentHarness, tmp_path: Path) -> None:
    (tmp_path / "contacts.txt").write_text("Ann: ann@example.org\n")
    turnkit_agent.add_service("shell", settings={"root": str(tmp_path), "allow": ["cat"]})
    redacting(turnkit_agent)
    turnkit_agent.script(tool_call("shell.exec", argv=["cat", "contacts.txt"]), "Found her.")
    session = turnkit_agent.send("find Ann").turn.session_id
    turnkit_agent.send("thanks", session)

    outputs = [
        block.output
        for message in turnkit_agent.prompts[-1].messages
        for block in message.blocks
        if isinstance(block, ToolOutputBlock)
    ]
    assert outputs and all("ann@example.org" not in output for output in outputs)
    assert any("Ann: [email]" in output for output in outputs)


def test_memories_are_stored_redacted(turnkit_agent: AgentHarness) -> None:
    turnkit_agent.add_service("memory")
    redacting(turnkit_agent)
    turnkit_agent.script(tool_call("memory.store", text="Ann's card is 4111 1111 1111 1111"), "Noted.")

    stored = turnkit_agent.invoke("memory.store", {"text": "Ann: ann@example.org, +44 20 7946 0958"})
    turnkit_agent.send("remember Ann's card")

    assert stored.ok and stored.value["text"] == "Ann: [email], [phone]"
    listed = turnkit_agent.invoke("memory.list")
    assert listed.ok
    assert sorted(memory["text"] for memory in listed.value) == [
        "Ann's card is [card]",
        "Ann: [email], [phone]",
    ]
    found = turnkit_agent.invoke("memory.search", {"query": "example"})
    assert found.ok and found.value == []  # the address is not in the search index either


def test_settings_switch_kinds_off_and_choose_placeholders(turnkit_agent: AgentHarness) -> None:
    turnkit_agent.add_service("memory")
    plugin = redacting(turnkit_agent, {"emails": False, "phone_placeholder": "<phone number>"})
    result = turnkit_agent.send("ann@example.org, +44 20 7946 0958, 4111 1111 1111 1111")
    stored = turnkit_agent.invoke("memory.store", {"text": "ann@example.org, 030 1234567"})

    assert plugin.settings == RedactSettings(emails=False, phone_placeholder="<phone number>")
    assert turnkit_agent.prompts[0].messages[-1].text == "ann@example.org, <phone number>, [card]"
    assert result.reply is not None and result.reply.text == "ann@example.org, <phone number>, [card]"
    assert stored.value["text"] == "ann@example.org, <phone number>"


def test_a_wrong_setting_stops_the_start_naming_the_key_path(turnkit_agent: AgentHarness) -> None:
    redacting(turnkit_agent, {"email": False, "cards": "no"})
    with pytest.raises(ConfigError) as raised:
        turnkit_agent.start()
    assert "extra fields found (email) @ $.plugin.redact" in str(raised.value)
    assert "expected bool, got str 'no' @ $.plugin.redact.cards" in str(raised.value)


# ------------------------------------------------------------------ the plugin as turnkit sees it


def test_module_validates_against_the_contract() -> None:
    """pluggy accepts the module as a plugin and binds both hooks to the contract's specs."""
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(turn_points)
    manager.register(turnkit_redact, name="redact")
    manager.check_pending()

    assert [impl.function for impl in manager.hook.turn_inbound.get_hookimpls()] == [turn_inbound]
    assert [impl.function for impl in manager.hook.turn_outbound.get_hookimpls()] == [turn_outbound]
    [result] = manager.hook.turn_inbound(ctx=None, turn=None, message=Message.of("user", "bob@example.com"))
    assert result.text == "[email]"


def test_an_unconfigured_instance_validates_and_redacts_everything() -> None:
    """What a bare plugin manager gets from the entry point: no agent, no configure, default settings."""
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(turn_points)
    manager.register(entry_point_plugin(PROJECT_DIR, NAME), name="redact")
    manager.check_pending()  # memory_store is optional: no memory service here

    [result] = manager.hook.turn_inbound(ctx=None, turn=None, message=Message.of("user", "bob@example.com"))
    assert result.text == "[email]"
    [prompt] = manager.hook.turn_prompt(
        ctx=None, turn=None, prompt=Prompt((Message.of("user", "030 1234567"),))
    )
    assert prompt.messages[0].text == "[phone]"


def test_the_entry_point_names_the_plugin_class() -> None:
    assert declared_entry_point().value == "turnkit_redact:RedactPlugin"
    assert declared_entry_point().load() is RedactPlugin


def test_the_installed_entry_point_is_the_declared_one() -> None:
    try:
        distribution("turnkit-redact")
    except PackageNotFoundError:
        pytest.skip("turnkit-redact is not installed (tests run from the source tree)")
    [installed] = entry_points(group=GROUP, name=NAME)
    assert installed.value == declared_entry_point().value
    assert installed.dist is not None and installed.dist.name == "turnkit-redact"
