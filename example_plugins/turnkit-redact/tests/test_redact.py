"""Tests of turnkit-redact: the hook implementations called with real messages."""

from __future__ import annotations

from importlib.metadata import entry_points

import pluggy
import pytest
import turnkit_redact
from turnkit_hookspecs import (
    PROJECT_NAME,
    ImageBlock,
    Message,
    TextBlock,
    ToolCallBlock,
    UrlSource,
    turn_points,
)
from turnkit_redact import luhn_valid, redact_text, turn_inbound, turn_outbound

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


# ------------------------------------------------------------------ the hook implementations


@pytest.mark.parametrize("hook", [turn_inbound, turn_outbound], ids=["turn_inbound", "turn_outbound"])
def test_hook_returns_a_redacted_copy(hook: object) -> None:
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

    result = hook(message=original)  # type: ignore[operator]

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


@pytest.mark.parametrize("hook", [turn_inbound, turn_outbound], ids=["turn_inbound", "turn_outbound"])
def test_hook_returns_none_when_nothing_to_redact(hook: object) -> None:
    message = Message.of("assistant", "Your order 1234567890123456 ships on 2024-01-15.")
    assert hook(message=message) is None  # type: ignore[operator]


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


def test_entry_point_is_registered() -> None:
    [entry_point] = entry_points(group="turnkit.plugins", name="redact")
    assert entry_point.value == "turnkit_redact"
    assert entry_point.load() is turnkit_redact
    assert entry_point.dist is not None
    assert entry_point.dist.name == "turnkit-redact"
