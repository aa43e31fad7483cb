"""Messages to the bot become turns in their conversations and are answered with passive replies."""

from __future__ import annotations

import time

from qq_platform import ACK, QQPlatform, Sent
from turnkit.testing_served import ServedAgent


def test_direct_and_group_messages_become_turns_in_their_own_conversations(
    served: ServedAgent, platform: QQPlatform
) -> None:
    served.start()
    first = platform.c2c_message("U1", "hello")
    group = platform.group_at_message("G1", "M1", "hi, group")
    second = platform.c2c_message("U1", "again")

    answers = [platform.push(payload, attempts=1) for payload in (first, group, second)]

    assert [(a.status, a.json()) for a in answers] == [(200, ACK)] * 3
    served.wait_for(lambda: len(platform.sent) == 3)
    turns = served.turns()
    assert [(t["chat_id"], t["inbound"], t["status"]) for t in turns] == [
        ("user:U1", "hello", "completed"),
        ("group:G1", "hi, group", "completed"),  # the mention's leading blank stripped
        ("user:U1", "again", "completed"),
    ]
    assert turns[0]["session_id"] == turns[2]["session_id"] != turns[1]["session_id"]
    token = platform.issued[0]
    assert sorted(platform.sent, key=lambda s: s.content) == [
        Sent("users", "U1", "again", second["d"]["id"], 1, f"QQBot {token}"),
        Sent("users", "U1", "hello", first["d"]["id"], 1, f"QQBot {token}"),
        Sent("groups", "G1", "hi, group", group["d"]["id"], 1, f"QQBot {token}"),
    ]
    assert len(platform.issued) == 1  # one token for all three


def test_a_message_pushed_again_is_dropped_and_other_events_are_acknowledged(
    served: ServedAgent, platform: QQPlatform
) -> None:
    served.start()
    message = platform.c2c_message("U1", "hello")
    platform.push(message)
    served.wait_for(lambda: platform.texts() == ["hello"])

    again = platform.push(message, attempts=1)
    pushed_twice = platform.push({**message, "id": "C2C_MESSAGE_CREATE:another-event"}, attempts=1)
    joined = platform.push(
        {"id": "GROUP_ADD_ROBOT:1", "op": 0, "t": "GROUP_ADD_ROBOT", "d": {"group_openid": "G1"}}
    )

    assert [(a.status, a.json()) for a in (again, pushed_twice, joined)] == [(200, ACK)] * 3
    time.sleep(0.5)  # time for a wrong second answer to show
    assert len(served.turns()) == 1
    assert platform.texts() == ["hello"]


def test_a_long_reply_is_split_into_replies_with_msg_seq_1_2_3(
    served: ServedAgent, platform: QQPlatform
) -> None:
    served.configure(service={"chat": {"channel": {"qq": {"max_length": 20}}}})
    served.start()
    message = platform.c2c_message("U1", "one two three four five six seven eight nine ten eleven")

    platform.push(message)

    served.wait_for(lambda: len(platform.sent) == 3)
    assert [(s.msg_id, s.msg_seq, s.content) for s in platform.sent] == [
        (message["d"]["id"], 1, "one two three four"),
        (message["d"]["id"], 2, "five six seven eight"),
        (message["d"]["id"], 3, "nine ten eleven"),
    ]


def test_parts_beyond_the_five_replies_a_message_takes_are_logged_as_undelivered(
    served: ServedAgent, platform: QQPlatform
) -> None:
    served.configure(service={"chat": {"channel": {"qq": {"max_length": 3}}}})
    served.start()

    platform.push(platform.c2c_message("U1", "one two six ten abc def ghi"))

    served.wait_for(lambda: len(platform.texts()) == 5)
    assert platform.texts() == ["one", "two", "six", "ten", "abc"]
    assert "the reply to message" in served.output and "the last 2 not delivered" in served.output
    assert platform.refusals == []


def test_a_reply_past_the_platforms_window_is_logged_as_undelivered(
    served: ServedAgent, platform: QQPlatform
) -> None:
    served.start()
    late = platform.group_at_message(
        "G1", "M1", "still there?", sent_at=time.time() - 600
    )  # group: 5 minutes

    platform.push(late)

    served.wait_for(lambda: "reply window of message" in served.output)
    assert [(t["inbound"], t["reply"]) for t in served.turns()] == [("still there?", "still there?")]
    assert platform.calls == 0  # nothing sent that the platform would refuse
