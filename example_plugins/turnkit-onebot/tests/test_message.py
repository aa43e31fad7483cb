"""The pure parts, through the package's functions: CQ codes, segments, events, addresses, handshakes."""

from __future__ import annotations

from typing import Any

import pytest
from onebot_emulator import SELF_ID, at, group, private, text
from turnkit_onebot import (
    Address,
    Refused,
    Segment,
    admit,
    incoming,
    is_loopback,
    parse_cq,
    plain_text,
    segments,
    succeeded,
)

ME = str(SELF_ID)


def test_a_cq_string_becomes_its_segments_with_text_and_values_unescaped() -> None:
    assert parse_cq(
        "a &#91;b&#93; &amp;amp;[CQ:share,title=x&#44;y,url=http://h/?a=1&amp;b=2][CQ:shake]z"
    ) == [
        Segment("text", {"text": "a [b] &amp;"}),
        Segment("share", {"title": "x,y", "url": "http://h/?a=1&b=2"}),
        Segment("shake", {}),
        Segment("text", {"text": "z"}),
    ]


def test_segments_read_an_array_or_a_string_and_skip_what_is_neither() -> None:
    assert segments([text("hi"), {"no": "type"}, "junk", {"type": "at", "data": None}]) == [
        Segment("text", {"text": "hi"}),
        Segment("at", {}),
    ]
    assert segments("[CQ:at,qq=5]") == [Segment("at", {"qq": "5"})]
    assert segments(None) == []


def test_plain_text_names_mentions_and_media_and_drops_quotes_and_faces() -> None:
    parts = segments([{"type": "reply", "data": {"id": "9"}}, at(5), text(" look "), at("all")])
    parts += segments([{"type": "face", "data": {"id": "1"}}, {"type": "image", "data": {"file": "a"}}])
    assert plain_text(parts) == "@5 look @everyone[image]"


def found(event: dict[str, Any], require_at: bool = True) -> tuple[str, str, str, str | None] | None:
    message = incoming(event, ME, group_require_at=require_at)
    if message is None:
        return None
    inbound = message.inbound
    return message.event_id, inbound.chat_id, inbound.message.text, inbound.principal.name


def test_events_become_messages_per_user_or_group_with_the_bot_in_the_ids() -> None:
    assert found(private(1, 2, [text("hi")])) == (f"{ME}:1", f"{ME}:private:2", "hi", "user2")
    mentioned = group(3, 4, 2, [at(ME), text(" yo")], sender={"nickname": "n", "card": "Card"})
    assert found(mentioned) == (f"{ME}:3", f"{ME}:group:4", "yo", "Card")
    assert found(group(3, 4, 2, [text("yo")])) is None
    assert found(group(3, 4, 2, [text("yo")]), require_at=False) == (
        f"{ME}:3",
        f"{ME}:group:4",
        "yo",
        "user2",
    )
    assert found(group(3, 4, 2, [at(ME)])) is None  # nothing left to answer
    assert found(private(1, 2, [text("hi")], message_type="discuss")) is None
    assert found(private("x", 2, [text("hi")])) is None
    assert found(private("-7", "2", [text("hi")])) == (f"{ME}:-7", f"{ME}:private:2", "hi", "user2")


def test_an_address_is_read_back_from_the_chat_id_it_made() -> None:
    address = Address(ME, "group", 4)
    assert Address.of(address.chat_id) == address
    for wrong in ("", "x:private:1", f"{ME}:discuss:1", f"{ME}:group:", f"{ME}:group:abc"):
        with pytest.raises(ValueError, match="not a OneBot conversation"):
            Address.of(wrong)


def test_admit_checks_the_token_before_the_account_and_the_role() -> None:
    headers = {"x-self-id": ME, "authorization": "Bearer t"}
    assert admit(headers, {}, "192.0.2.7", "t") == ME
    assert admit({"x-self-id": ME}, {"access_token": "t"}, None, "t") == ME
    assert admit({"x-self-id": ME}, {}, "::ffff:127.0.0.1", None) == ME
    with pytest.raises(Refused) as refused:
        admit({"authorization": "Bearer u"}, {}, "127.0.0.1", "t")
    assert refused.value.status == 401
    with pytest.raises(Refused) as refused:
        admit({"x-self-id": ME}, {}, "192.0.2.7", None)
    assert refused.value.status == 403


def test_loopback_and_success_answers() -> None:
    assert [is_loopback(h) for h in ("127.0.0.2", "::1", "::ffff:10.0.0.1", "localhost", None)] == [
        True,
        True,
        False,
        False,
        False,
    ]
    assert succeeded({"status": "ok", "retcode": 0})
    assert succeeded({"status": "async", "retcode": 1})
    assert not succeeded({"status": "ok", "retcode": 100})
    assert not succeeded({"status": "failed", "retcode": 0})
