"""Messages in, replies out: private and group messages over a real socket to a real ``turnkit serve``.

The OneBot implementation is :mod:`onebot_emulator`; the model is turnkit's
echo model, so a reply repeats the text the agent read.
"""

from __future__ import annotations

from collections.abc import Callable

from onebot_emulator import SELF_ID, OneBotEmulator, at, group, heartbeat, private, text
from turnkit.testing_served import ServedAgent

Bots = Callable[..., OneBotEmulator]


def test_a_private_message_is_answered_over_the_socket_with_its_echo_matched(
    served: ServedAgent, bots: Bots
) -> None:
    served.start()
    bot = bots()
    bot.push(private(1, 20002, [text("hello agent")]))
    served.wait_for(lambda: bot.texts() == ["hello agent"])
    [call] = bot.sent()
    assert call.action == "send_private_msg"
    assert call.params["user_id"] == 20002
    assert call.params["message"] == [{"type": "text", "data": {"text": "hello agent"}}]
    [turn] = served.turns()
    assert (turn["channel"], turn["chat_id"], turn["inbound"], turn["status"]) == (
        "onebot",
        f"{SELF_ID}:private:20002",
        "hello agent",
        "completed",
    )


def test_a_group_message_mentioning_the_bot_is_answered_in_the_group_without_the_mention(
    served: ServedAgent, bots: Bots
) -> None:
    served.start()
    bot = bots()
    bot.push(group(2, 30003, 20002, [at(SELF_ID), text(" what time is it?")]))
    served.wait_for(lambda: bot.texts() == ["what time is it?"])
    [call] = bot.sent()
    assert (call.action, call.params["group_id"]) == ("send_group_msg", 30003)
    [turn] = served.turns()
    assert (turn["chat_id"], turn["inbound"]) == (f"{SELF_ID}:group:30003", "what time is it?")


def test_a_group_message_without_a_mention_of_the_bot_makes_no_turn(served: ServedAgent, bots: Bots) -> None:
    served.start()
    bot = bots()
    bot.push(group(3, 30003, 20002, [text("just chatting")]))
    bot.push(group(4, 30003, 20002, [at(99999), text(" hi someone else")]))
    bot.push(group(5, 30003, 20002, [at("all"), text(" hi everyone")]))
    bot.push(group(6, 30003, 20002, [text("hey "), at(SELF_ID)]))  # the order is kept: this comes last
    served.wait_for(lambda: bot.texts() == ["hey"])
    assert [t["inbound"] for t in served.turns()] == ["hey"]
    assert len(bot.sent(None)) == 1


def test_without_group_require_at_every_group_message_is_answered(served: ServedAgent, bots: Bots) -> None:
    served.configure(service={"chat": {"channel": {"onebot": {"group_require_at": False}}}})
    served.start()
    bot = bots()
    bot.push(group(7, 30003, 20002, [text("no mention here")]))
    served.wait_for(lambda: bot.texts() == ["no mention here"])


def test_messages_reported_as_cq_code_strings_are_read_as_their_text(served: ServedAgent, bots: Bots) -> None:
    served.start()
    bot = bots()
    bot.push(private(8, 20002, "[CQ:face,id=178]look &#91;here&#93; &amp; there[CQ:image,file=a.jpg]"))
    served.wait_for(lambda: bot.texts() == ["look [here] & there[image]"])
    bot.push(group(9, 30003, 20002, f"[CQ:at,qq={SELF_ID}] from a string"))
    served.wait_for(lambda: bot.texts()[1:] == ["from a string"])
    bot.push(group(10, 30003, 20002, "[CQ:at,qq=99999] not for the bot"))
    bot.push(private(11, 20002, None, raw_message="only in raw_message"))
    served.wait_for(lambda: bot.texts()[2:] == ["only in raw_message"])
    assert [t["inbound"] for t in served.turns()] == [
        "look [here] & there[image]",
        "from a string",
        "only in raw_message",
    ]


def test_a_reply_is_sent_as_a_text_segment_so_cq_codes_in_it_stay_text(
    served: ServedAgent, bots: Bots
) -> None:
    served.start()
    bot = bots()
    bot.push(private(12, 20002, [text("[CQ:at,qq=all] [CQ:image,file=x]")]))  # the echo model repeats it
    served.wait_for(lambda: len(bot.sent()) == 1)
    [call] = bot.sent()
    assert call.params["message"] == [{"type": "text", "data": {"text": "[CQ:at,qq=all] [CQ:image,file=x]"}}]


def test_frames_that_are_neither_messages_nor_answers_are_ignored(served: ServedAgent, bots: Bots) -> None:
    served.start()
    bot = bots()
    bot.push(heartbeat())
    bot.push(
        {"self_id": SELF_ID, "post_type": "meta_event", "meta_event_type": "lifecycle", "sub_type": "connect"}
    )
    bot.push({"self_id": SELF_ID, "post_type": "notice", "notice_type": "group_increase", "group_id": 30003})
    bot.push(private(13, SELF_ID, [text("the bot's own message")], post_type="message_sent"))
    bot.push(private(14, 20002, [text("for another bot")], self_id=55555))
    bot.push({"status": "ok", "retcode": 0, "data": None, "echo": "nobody-asked"})
    bot.push("this is not JSON")
    bot.push("[1, 2, 3]")
    bot.push(private(15, 20002, [text("the real one")]))
    served.wait_for(lambda: bot.texts() == ["the real one"])
    assert [t["inbound"] for t in served.turns()] == ["the real one"]


def test_a_long_reply_is_split_into_several_messages_in_order(served: ServedAgent, bots: Bots) -> None:
    served.configure(service={"chat": {"channel": {"onebot": {"max_length": 20}}}})
    served.start()
    bot = bots()
    bot.push(private(16, 20002, [text("one two three four five six seven eight nine ten")]))
    served.wait_for(lambda: len(bot.texts()) == 3)
    assert bot.texts() == ["one two three four", "five six seven eight", "nine ten"]
    assert {call.params["user_id"] for call in bot.sent()} == {20002}
    assert len({call.echo for call in bot.sent()}) == 3  # each call its own echo
